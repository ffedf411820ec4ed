//! The service registry: which chat server a client should connect to.
//!
//! Stateless HTTP over the node table in Redis, so any number of registries can run behind
//! a load balancer (`deploy/nginx/registry.conf`). Clients call `GET /api/v1/servers/pick`
//! before every (re)connection and connect to the `url` they get.
//!
//! **Picking.** One Lua script reads the live nodes (lease running, see
//! `chat_core::cluster`) and the admin-registered ones, skips those draining (the node's own
//! flag or an admin drain), removed by the health checker, without a URL, with capacity
//! 0 or holding their capacity (`connections >= capacity`), and chooses the smallest
//! `(connections + provisional) / capacity` (ties: smallest uid); when only full nodes are
//! left the pick answers `503` ([`AT_CAPACITY`]). It adds one to the chosen node's provisional load in the same step, so concurrent
//! picks from every registry see each other and a burst spreads out. `connections` is the
//! node's real socket count, rewritten by its heartbeat every second; `provisional` decays
//! by half every `CHAT_PICK_HALF_LIFE` (2s), so a pick whose client never connects fades
//! away and one that did is soon counted once, in `connections`. Nothing is only
//! incremented. All times are Redis time.
//!
//! **Admin.** `POST /api/v1/servers` registers a node that has no heartbeat (it counts as
//! live until the health checker removes it); `DELETE /api/v1/servers/{id}` drains the
//! node(s) with that name or uid: they are not picked any more. Both need
//! `Authorization: Bearer $CHAT_ADMIN_TOKEN` (401 without, 403 when wrong).
//!
//! Errors are `{"error": {"code", "message"}}` with the codes of [`ErrorCode`]; the
//! OpenAPI document is served at `/api/v1/openapi.json` ([`ApiDoc`]). [`run`] also serves
//! `GET /metrics` (picks, pick failures by reason, Redis latency; `docs/metrics.md`), on
//! `CHAT_METRICS_LISTEN` when set.
//!
//! [`ErrorCode`]: chat_core::ErrorCode

mod admin;
mod api;
mod config;
mod table;

use std::{future::Future, sync::Arc};

use chat_core::serve::HttpLimits;
use chat_env::metrics::Exporter;
use metrics::{Counter, counter, describe_counter};
use tokio::net::TcpListener;

pub use admin::Admin;
pub use api::{AT_CAPACITY, ApiDoc, app};
pub use chat_env::api::{ApiError, ErrorBody};
pub use config::RegistryConfig;
pub use table::{NodeTable, Pick, Picked, Registered, Registration, Server, Source};

use chat_core::redis::Redis;

/// The registry's shared state: the node table, the admin settings and its metrics.
#[derive(Clone)]
pub struct Registry {
    table: NodeTable,
    admin_token: Option<Arc<str>>,
    cors_origins: Option<Vec<String>>,
    metrics: PickMetrics,
}

/// `chat_registry_picks_total` and `chat_registry_pick_failures_total{reason}`.
#[derive(Clone)]
struct PickMetrics {
    picks: Counter,
    /// By reason: `no_node`, `at_capacity`, `redis`.
    failures: [Counter; 3],
}

impl PickMetrics {
    fn resolve() -> Self {
        describe_counter!("chat_registry_picks_total", "Picks answered with a node.");
        describe_counter!(
            "chat_registry_pick_failures_total",
            "Picks answered 503, by reason: no_node (none pickable), at_capacity (every pickable node full), redis (the node table is unreachable)."
        );
        Self {
            picks: counter!("chat_registry_picks_total"),
            failures: ["no_node", "at_capacity", "redis"]
                .map(|r| counter!("chat_registry_pick_failures_total", "reason" => r)),
        }
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("table", &self.table)
            .field("admin", &self.admin_token.is_some())
            .finish_non_exhaustive()
    }
}

/// Errors of [`run`].
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The Redis configuration is malformed.
    #[error("bad redis configuration")]
    Redis(#[from] ::redis::RedisError),
    /// Binding or serving failed.
    #[error("registry i/o failed")]
    Io(#[from] std::io::Error),
}

impl Registry {
    /// A registry on `redis` with `config`'s token, origins, half-life and prefix. Its
    /// metrics go to the recorder current now (see `chat_core::metrics`).
    pub fn new(redis: Redis, config: &RegistryConfig) -> Self {
        Self {
            table: NodeTable::new(redis, &config.prefix, config.pick_half_life),
            admin_token: config.admin_token.as_deref().map(Arc::from),
            cors_origins: config.cors_origins.clone(),
            metrics: PickMetrics::resolve(),
        }
    }

    /// The node table it serves.
    pub fn table(&self) -> &NodeTable {
        &self.table
    }
}

/// Serves the registry on `listener` until `shutdown` resolves. Starts even when Redis is
/// down (answering 503 until it is back), so it can start before Redis.
pub async fn run(
    listener: TcpListener,
    config: RegistryConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RegistryError> {
    let metrics_listener = chat_env::metrics::bind(config.metrics_listen).await?;
    serve(listener, metrics_listener, config, shutdown).await
}

/// [`run`] with `/metrics` on `metrics_listener`, or on `listener` when it is `None`
/// (`config.metrics_listen` is not read).
pub async fn serve(
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    config: RegistryConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RegistryError> {
    let exporter = Arc::new(Exporter::new());
    let registry = exporter
        .scope(|| Redis::new(config.redis.clone()).map(|redis| Registry::new(redis, &config)))?;
    if let Err(e) = registry.table.redis().ping().await {
        tracing::warn!(cause = %e, "redis is unreachable for now; answering 503 until it is back");
    }
    if config.admin_token.is_none() {
        tracing::warn!("CHAT_ADMIN_TOKEN is unset: the admin endpoints refuse every request");
    }
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "registry listening");
    let metrics = chat_env::metrics::router(exporter.clone(), || async {});
    chat_env::metrics::serve(
        listener,
        app(registry),
        metrics,
        metrics_listener,
        HttpLimits::default(),
        exporter,
        shutdown,
    )
    .await?;
    tracing::info!("registry stopped");
    Ok(())
}
