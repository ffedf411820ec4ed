//! The health checker: finds dead chat servers, takes them out of picking, cleans up after
//! them, and puts them back when they answer again.
//!
//! **A round.** Every [`HealthConfig::interval`], one checker probes every node in the
//! table (heartbeat nodes, live or with a recently ended lease, and admin-registered ones)
//! with `GET {url}/healthz` on a fresh connection, all at once, each within
//! [`HealthConfig::timeout`]. A `2xx` answer, or a `503` whose body says `"status":
//! "draining"`, counts as up; anything else (refused, timed out, another status) as down.
//! A node without a URL cannot be probed: it counts as down once its lease has ended.
//! Then one Lua script applies the verdicts:
//! - up: its consecutive-failure count is reset, and if it had been removed it is
//!   re-admitted (picked again);
//! - down: the count grows; at [`HealthConfig::failures`] the node joins the `removed` set,
//!   which picking skips. If it is a heartbeat node whose lease has ended too (the process
//!   is gone, not only its HTTP side), it is **reaped**: it leaves every `room:<r>` set
//!   listed in its `noderooms:<uid>`, its record is deleted, and the [`NodeReaper`] hooks
//!   run for it (presence: its users' entries go, and those left offline wait for a chat
//!   node to announce them). Its lease is left to expire from the table, so the live node
//!   that announces lost nodes still sees it whichever acts first. A node whose heartbeat
//!   still runs is only removed: its rooms stay, since it still serves its sockets.
//!
//! A crashed node thus stops being picked when its lease ends (at most the lease, 3s) and
//! is reaped within `interval × failures`; a node whose HTTP side dies while its heartbeat
//! runs stops being picked within `interval × failures`; either is picked again at the
//! first round after it answers (a restarted chat-server has a new uid and is picked as
//! soon as its first heartbeat lands).
//!
//! **Several checkers.** Rounds are serialised by a lock: a checker runs a round only if it
//! takes `health:lock` (`SET NX PX interval`, tried every quarter interval), so the nodes
//! are probed once per interval however many checkers run, and the failure counts in
//! Redis (`health:failures`) are shared: a checker that dies is replaced within an interval
//! by another, which continues the counts. The verdicts are applied only if the round's
//! holder still holds the lock, checked in the same script (a fencing token), so a round
//! that overran its lock (a paused process) changes nothing. Reap hooks must be idempotent:
//! a reaped uid stays in `health:reaping` until every hook succeeded for it, and is retried
//! each round.
//!
//! **Metrics.** [`run`] serves `GET /metrics` (rounds, probes by outcome, removals,
//! re-admissions, reaps; `docs/metrics.md`), on `CHAT_METRICS_LISTEN` when set.

mod config;
mod probe;
mod round;

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use axum::{Json, Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use futures_util::{StreamExt, stream};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::trace::{DefaultOnFailure, TraceLayer};
use tracing::Level;

pub use config::HealthConfig;
pub use round::Changes;

use chat_core::{error::StoreError, keys::Keys, redis::Redis, serve::HttpLimits};
use chat_env::metrics::Exporter;
use metrics::{Counter, counter, describe_counter};
use probe::{Outcome, Prober};
use round::{APPLY, TARGETS, Target, UNLOCK, Verdict};

/// How many probes run at once.
const PARALLEL_PROBES: usize = 64;

/// Cleanup for a node the checker found dead, beyond the node table and room records
/// (which the checker removes itself). The Redis presence store implements it to drop the
/// node's presence leases. Give every checker of a deployment the same hooks: whichever
/// holds the round runs them.
#[async_trait]
pub trait NodeReaper: Send + Sync + 'static {
    /// Forgets what node `uid` held. Runs again after an error, and may run twice for the
    /// same uid (two checkers, a retry after a lost reply): it must be idempotent.
    async fn reap(&self, uid: &str) -> Result<(), StoreError>;
}

#[async_trait]
impl NodeReaper for chat_core::store::redis::PresenceReaper {
    async fn reap(&self, uid: &str) -> Result<(), StoreError> {
        chat_core::store::redis::PresenceReaper::reap(self, uid).await
    }
}

/// Counters of one checker, for its `/healthz`, tests and metrics.
#[derive(Debug, Default)]
pub struct Stats {
    /// Rounds this checker ran (it held the lock).
    pub rounds: AtomicU64,
    /// Probes it sent.
    pub probes: AtomicU64,
    /// Nodes it took out of picking.
    pub removed: AtomicU64,
    /// Nodes it put back.
    pub readmitted: AtomicU64,
    /// Dead nodes it reaped.
    pub reaped: AtomicU64,
    /// Rounds whose verdicts it dropped because the lock had passed on.
    pub discarded: AtomicU64,
}

/// The checker's metrics families (`docs/metrics.md`).
#[derive(Debug)]
struct CheckerMetrics {
    rounds: Counter,
    probes_up: Counter,
    probes_down: Counter,
    removed: Counter,
    readmitted: Counter,
    reaped: Counter,
    discarded: Counter,
}

impl CheckerMetrics {
    fn resolve() -> Self {
        describe_counter!(
            "chat_health_rounds_total",
            "Rounds this checker ran (it held the lock)."
        );
        describe_counter!(
            "chat_health_probes_total",
            "Probes of a node's /healthz, by outcome: up (2xx, or 503 draining) or down."
        );
        describe_counter!(
            "chat_health_removals_total",
            "Nodes taken out of picking after CHAT_HEALTH_FAILURES failed probes."
        );
        describe_counter!(
            "chat_health_readmissions_total",
            "Removed nodes put back into picking when they answered again."
        );
        describe_counter!(
            "chat_health_reaped_total",
            "Dead nodes (lease ended, no answer) whose records were cleared."
        );
        describe_counter!(
            "chat_health_rounds_discarded_total",
            "Rounds whose verdicts were dropped because the lock had passed on."
        );
        Self {
            rounds: counter!("chat_health_rounds_total"),
            probes_up: counter!("chat_health_probes_total", "outcome" => "up"),
            probes_down: counter!("chat_health_probes_total", "outcome" => "down"),
            removed: counter!("chat_health_removals_total"),
            readmitted: counter!("chat_health_readmissions_total"),
            reaped: counter!("chat_health_reaped_total"),
            discarded: counter!("chat_health_rounds_discarded_total"),
        }
    }
}

/// Errors of the checker and of [`run`].
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    /// Redis refused or could not be reached (or its configuration is malformed).
    #[error("redis request failed")]
    Redis(#[from] ::redis::RedisError),
    /// Binding or serving failed.
    #[error("health checker i/o failed")]
    Io(#[from] std::io::Error),
}

/// One health checker. Run any number of them on one node table.
pub struct Checker {
    redis: Redis,
    keys: Keys,
    interval: Duration,
    failures: u32,
    prober: Prober,
    /// Random, per process: the lock holder's name.
    id: String,
    reapers: Vec<Arc<dyn NodeReaper>>,
    stats: Stats,
    metrics: CheckerMetrics,
    rounds: AtomicU64,
}

impl std::fmt::Debug for Checker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checker")
            .field("id", &self.id)
            .field("interval", &self.interval)
            .field("failures", &self.failures)
            .finish_non_exhaustive()
    }
}

impl Checker {
    /// A checker of the node table on `redis` with `config`'s interval, failures, timeout
    /// and prefix. Its metrics go to the recorder current now (see `chat_core::metrics`).
    pub fn new(redis: Redis, config: &HealthConfig) -> Self {
        Self {
            redis,
            keys: Keys::new(&config.prefix),
            interval: config.interval,
            failures: config.failures,
            prober: Prober::new(config.timeout),
            id: format!("{:016x}", rand::random::<u64>()),
            reapers: Vec::new(),
            stats: Stats::default(),
            metrics: CheckerMetrics::resolve(),
            rounds: AtomicU64::new(0),
        }
    }

    /// Adds a cleanup hook for dead nodes.
    pub fn with_reaper(mut self, reaper: Arc<dyn NodeReaper>) -> Self {
        self.reapers.push(reaper);
        self
    }

    /// This checker's counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// This checker's name (the lock holder value's first part).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Runs rounds until `stop` is cancelled, then lets go of the lock if it holds it.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        tracing::info!(checker = %self.id, interval = ?self.interval, failures = self.failures, "health checker started");
        let mut tick = tokio::time::interval(self.interval / 4);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut holder = None;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = stop.cancelled() => break,
            }
            let round = tokio::select! {
                r = self.try_round() => r,
                () = stop.cancelled() => break,
            };
            match round {
                Ok(Some((h, changes))) => {
                    holder = Some(h);
                    if !changes.removed.is_empty()
                        || !changes.readmitted.is_empty()
                        || !changes.reaped.is_empty()
                    {
                        tracing::info!(removed = ?changes.removed, readmitted = ?changes.readmitted, reaped = ?changes.reaped, "health round changed the node table");
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(cause = %e, "health round failed"),
            }
        }
        if let Some(h) = holder {
            // Another checker may start the next round at once instead of after the lock's
            // expiry.
            let mut inv = UNLOCK.key(self.keys.health_lock());
            inv.arg(h);
            let _ = self.redis.script::<i64>(&inv).await;
        }
        tracing::info!(checker = %self.id, "health checker stopped");
    }

    /// Runs one round if this checker can take the lock. Returns the lock value it used
    /// and what changed, or `None` if another checker holds the lock.
    pub async fn try_round(&self) -> Result<Option<(String, Changes)>, HealthError> {
        let n = self.rounds.fetch_add(1, Ordering::Relaxed);
        let holder = format!("{}:{n}", self.id);
        let ttl = self.interval.as_millis().max(1) as u64;
        let taken: Option<String> = self
            .redis
            .query(&round::lock_cmd(&self.keys.health_lock(), &holder, ttl))
            .await?;
        if taken.is_none() {
            return Ok(None);
        }
        self.stats.rounds.fetch_add(1, Ordering::Relaxed);
        self.metrics.rounds.increment(1);
        let changes = self.round(&holder).await?;
        self.run_reapers().await;
        Ok(Some((holder, changes)))
    }

    /// Probes every node and applies the verdicts under `holder`'s lock.
    async fn round(&self, holder: &str) -> Result<Changes, HealthError> {
        let mut inv = TARGETS.key(self.keys.nodes());
        inv.key(self.keys.statics()).arg(self.keys.node_prefix());
        let targets = round::parse_targets(self.redis.script(&inv).await?);
        let verdicts: Vec<(String, Verdict)> = stream::iter(targets)
            .map(|t| async move {
                let v = self.verdict(&t).await;
                v.map(|v| (t.uid, v))
            })
            .buffer_unordered(PARALLEL_PROBES)
            .filter_map(async |v| v)
            .collect()
            .await;
        let mut inv = APPLY.key(self.keys.health_lock());
        inv.key(self.keys.health_failures())
            .key(self.keys.removed())
            .key(self.keys.nodes())
            .key(self.keys.statics())
            .key(self.keys.health_reaping())
            .arg(holder)
            .arg(self.failures)
            .arg(self.keys.node_prefix())
            .arg(self.keys.noderooms_prefix())
            .arg(self.keys.room_prefix())
            .arg(round::verdict_args(&verdicts));
        let reply: Option<Vec<Vec<String>>> = self.redis.script(&inv).await?;
        let Some(reply) = reply else {
            self.stats.discarded.fetch_add(1, Ordering::Relaxed);
            self.metrics.discarded.increment(1);
            tracing::warn!(checker = %self.id, "health round overran its lock; verdicts dropped");
            return Ok(Changes::default());
        };
        let mut parts = reply.into_iter();
        let changes = Changes {
            removed: parts.next().unwrap_or_default(),
            readmitted: parts.next().unwrap_or_default(),
            reaped: parts.next().unwrap_or_default(),
        };
        for uid in &changes.removed {
            tracing::warn!(node = %uid, failures = self.failures, "node removed from picking: /healthz stopped answering");
        }
        for uid in &changes.readmitted {
            tracing::info!(node = %uid, "node answers again: picked again");
        }
        for uid in &changes.reaped {
            tracing::warn!(node = %uid, "node is dead (lease ended, no answer): records cleared");
        }
        self.stats
            .removed
            .fetch_add(changes.removed.len() as u64, Ordering::Relaxed);
        self.stats
            .readmitted
            .fetch_add(changes.readmitted.len() as u64, Ordering::Relaxed);
        self.stats
            .reaped
            .fetch_add(changes.reaped.len() as u64, Ordering::Relaxed);
        let m = &self.metrics;
        m.removed.increment(changes.removed.len() as u64);
        m.readmitted.increment(changes.readmitted.len() as u64);
        m.reaped.increment(changes.reaped.len() as u64);
        Ok(changes)
    }

    /// Probes one node; `None` when there is nothing to decide (no URL, lease running).
    async fn verdict(&self, t: &Target) -> Option<Verdict> {
        let Some(url) = &t.url else {
            return (t.lease_live == Some(false)).then_some(Verdict::Down);
        };
        self.stats.probes.fetch_add(1, Ordering::Relaxed);
        match self.prober.probe(url).await {
            Outcome::Up { connections } => {
                self.metrics.probes_up.increment(1);
                Some(Verdict::Up { connections })
            }
            Outcome::Down(reason) => {
                self.metrics.probes_down.increment(1);
                tracing::debug!(node = %t.uid, %url, %reason, "probe failed");
                Some(Verdict::Down)
            }
        }
    }

    /// Runs the cleanup hooks for every reaped node not yet cleaned up.
    async fn run_reapers(&self) {
        let pending: Vec<String> = match self
            .redis
            .query(::redis::cmd("SMEMBERS").arg(self.keys.health_reaping()))
            .await
        {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(cause = %e, "cannot read the nodes to clean up");
                return;
            }
        };
        for uid in pending {
            let mut done = true;
            for r in &self.reapers {
                if let Err(e) = r.reap(&uid).await {
                    tracing::warn!(node = %uid, cause = %e, "node cleanup failed; retrying next round");
                    done = false;
                }
            }
            if done {
                let srem = ::redis::cmd("SREM")
                    .arg(self.keys.health_reaping())
                    .arg(&uid)
                    .clone();
                if let Err(e) = self.redis.query::<()>(&srem).await {
                    tracing::warn!(node = %uid, cause = %e, "cannot record a finished cleanup");
                }
            }
        }
    }
}

/// The checker's HTTP surface: `GET /healthz` (200 while Redis answers, with the checker's
/// counters; 503 otherwise), with request tracing.
pub fn app(checker: Arc<Checker>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .with_state(checker)
        .layer(TraceLayer::new_for_http().on_failure(DefaultOnFailure::new().level(Level::DEBUG)))
}

async fn healthz(State(c): State<Arc<Checker>>) -> impl IntoResponse {
    let s = c.stats();
    let counters = json!({
        "checker": c.id,
        "rounds": s.rounds.load(Ordering::Relaxed),
        "probes": s.probes.load(Ordering::Relaxed),
        "removed": s.removed.load(Ordering::Relaxed),
        "readmitted": s.readmitted.load(Ordering::Relaxed),
        "reaped": s.reaped.load(Ordering::Relaxed),
    });
    match c.redis.ping().await {
        Ok(()) => (
            StatusCode::OK,
            Json(json!({ "status": "ok", "stats": counters })),
        ),
        Err(e) => {
            tracing::warn!(cause = %e, "health checker: redis is unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({
                    "error": { "code": "unavailable", "message": "redis is unreachable" },
                    "stats": counters,
                })),
            )
        }
    }
}

/// Runs a checker and serves its `/healthz` and `/metrics` on `listener` (`/metrics` on
/// `CHAT_METRICS_LISTEN` instead, bound here, when set) until `shutdown` resolves;
/// `reapers` clean up after dead nodes beyond the node table and rooms.
pub async fn run_with(
    listener: TcpListener,
    config: HealthConfig,
    reapers: Vec<Arc<dyn NodeReaper>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), HealthError> {
    let metrics_listener = chat_env::metrics::bind(config.metrics_listen).await?;
    let exporter = Arc::new(Exporter::new());
    let checker = exporter
        .scope(|| Redis::new(config.redis.clone()).map(|redis| Checker::new(redis, &config)))?;
    if let Err(e) = checker.redis.ping().await {
        tracing::warn!(cause = %e, "redis is unreachable for now; rounds start when it is back");
    }
    let checker = Arc::new(reapers.into_iter().fold(checker, Checker::with_reaper));
    let stop = CancellationToken::new();
    let task = tokio::spawn(checker.clone().run(stop.clone()));
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "health checker listening");
    let stopping = stop.clone();
    let metrics = chat_env::metrics::router(exporter.clone(), || async {});
    let served = chat_env::metrics::serve(
        listener,
        app(checker),
        metrics,
        metrics_listener,
        HttpLimits::default(),
        exporter,
        async move {
            tokio::select! {
                () = shutdown => {}
                () = stopping.cancelled() => {}
            }
        },
    )
    .await;
    stop.cancel();
    let _ = task.await;
    served?;
    Ok(())
}

/// [`run_with`] the chat's own cleanup: a reaped node's presence entries.
pub async fn run(
    listener: TcpListener,
    config: HealthConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), HealthError> {
    let redis = Redis::new(config.redis.clone())?;
    let presence = chat_core::store::redis::PresenceReaper::new(redis, config.prefix.clone());
    run_with(listener, config, vec![Arc::new(presence)], shutdown).await
}
