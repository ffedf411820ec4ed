//! The cluster: node table, room routing and the transport between nodes, over Redis.
//!
//! [`Cluster`] is the state shared by the Socket.IO adapter of every namespace
//! ([`crate::adapter::ChatAdapter`]). It registers this node (a lease renewed by a heartbeat),
//! keeps the list of live nodes in memory, records which nodes host which rooms, and moves
//! adapter requests and responses between nodes through per-node inbox streams
//! (see the crate docs, "The cluster").

mod dispatch;
pub(crate) mod envelope;
mod lease;
mod nodes;
mod routing;
pub(crate) mod transport;

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use socketioxide_core::{Uid, adapter::Room};
use tokio::{sync::mpsc, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use crate::{
    keys::{Keys, rooms},
    metrics::ClusterMetrics,
    redis::Redis,
};
pub(crate) use dispatch::ClusterEvent;
pub use dispatch::Events;
use transport::{Outbox, TransportClosed};

/// Cluster tunables. Defaults suit a LAN; see each field.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Prefix of every Redis key (default `chat:`).
    pub prefix: String,
    /// Heartbeat period (default 1s).
    pub heartbeat: Duration,
    /// How long a node counts as live after its last heartbeat (default 3s).
    pub lease: Duration,
    /// How long requests that wait on other nodes (`fetch_sockets`, `rooms`, acks) wait
    /// for their answers, beyond any ack timeout (default 2s).
    pub request_timeout: Duration,
    /// Entries waiting to be sent before senders wait (default 65536).
    pub outbox_capacity: usize,
    /// Longest blocking read on the inbox (default 2s).
    pub inbox_block: Duration,
    /// Approximate cap on an inbox stream's length (default 100000).
    pub inbox_max_len: usize,
    /// Events (chat entries from other nodes, lost nodes) waiting for the chat before the
    /// inbox reader waits too (default 1024); see [`Events`].
    pub inbound_capacity: usize,
    /// Room name prefixes whose hosting nodes are recorded, so broadcasts to them go only
    /// to those nodes. Other rooms go to every live node. Default: `user:`, `group:`,
    /// `presence:` (the rooms chat-core joins).
    pub routed_prefixes: Vec<String>,
    /// Where the cluster's metrics go (default: handles on the recorder current when the
    /// config is made; see [`crate::metrics`]).
    pub metrics: ClusterMetrics,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            prefix: crate::keys::DEFAULT_PREFIX.into(),
            heartbeat: Duration::from_secs(1),
            lease: Duration::from_secs(3),
            request_timeout: Duration::from_secs(2),
            outbox_capacity: 65_536,
            inbox_block: Duration::from_secs(2),
            inbox_max_len: 100_000,
            inbound_capacity: 1024,
            routed_prefixes: rooms::ROUTED.map(String::from).to_vec(),
            metrics: ClusterMetrics::default(),
        }
    }
}

/// What this node tells the node table about itself.
#[derive(Debug, Clone, Default)]
pub struct NodeInfo {
    /// The operator's name for the node (`CHAT_NODE_ID`).
    pub id: String,
    /// Where clients reach it (`CHAT_PUBLIC_URL`).
    pub url: Option<String>,
    /// How many connections it is meant to hold (`CHAT_CAPACITY`).
    pub capacity: u32,
}

/// Counters of the cluster transport and routing, for tests and metrics.
#[derive(Debug, Default)]
pub struct Stats {
    /// Inbox entries appended for other nodes.
    pub sent: AtomicU64,
    /// Inbox entries handled by this node.
    pub received: AtomicU64,
    /// Entries seen twice (a retried append) and skipped.
    pub duplicates: AtomicU64,
    /// Entries dropped: volatile packets with a full outbox, or unsendable at shutdown.
    pub shed: AtomicU64,
    /// Broadcasts that went to at least one other node.
    pub remote_broadcasts: AtomicU64,
    /// Broadcasts that needed no other node.
    pub local_broadcasts: AtomicU64,
}

/// Receives what other nodes send to one namespace's adapter.
pub(crate) trait NamespaceHandler: Send + Sync + 'static {
    fn on_request(self: Arc<Self>, data: Vec<u8>);
    fn on_response(&self, data: Vec<u8>);
    /// Rooms with local sockets, for the heartbeat's room reconciliation.
    fn local_rooms(&self) -> HashSet<Room>;
    fn local_sockets(&self) -> usize;
}

/// Shared cluster state; one per process.
pub struct Cluster {
    redis: Redis,
    config: ClusterConfig,
    keys: Keys,
    uid: Uid,
    info: NodeInfo,
    live: RwLock<Arc<Vec<Uid>>>,
    /// Live nodes and those whose lease ended recently: fire-and-forget messages still go
    /// to them, so a node that only missed heartbeats (a Redis outage) loses nothing.
    reachable: RwLock<Arc<Vec<Uid>>>,
    outbox: Outbox,
    namespaces: RwLock<HashMap<String, Weak<dyn NamespaceHandler>>>,
    /// Routed rooms this node has recorded in Redis.
    registered: Mutex<HashSet<Room>>,
    /// Nodes found dead since the last heartbeat.
    dead: Mutex<HashSet<String>>,
    /// Since when heartbeats have succeeded without a failure.
    healthy_since: Mutex<Option<tokio::time::Instant>>,
    /// Lost nodes already announced (until they come back).
    announced: Mutex<HashSet<String>>,
    /// Where chat entries from other nodes and lost nodes go (see [`Events`]).
    events: mpsc::Sender<ClusterEvent>,
    lookup: ::redis::Script,
    draining: AtomicBool,
    stats: Arc<Stats>,
    stop: CancellationToken,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    heartbeats: AtomicUsize,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("uid", &self.uid)
            .field("node", &self.info.id)
            .finish_non_exhaustive()
    }
}

/// Errors of cluster operations.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// Redis refused or could not be reached.
    #[error("redis request failed")]
    Redis(#[from] ::redis::RedisError),
    /// The transport is shut down.
    #[error(transparent)]
    Closed(#[from] TransportClosed),
    /// A packet could not be encoded.
    #[error("cannot encode cluster message")]
    Encode(#[from] rmp_serde::encode::Error),
}
impl Cluster {
    /// Connects the node to the cluster: registers it (first heartbeat), starts the inbox
    /// reader, the sender and the heartbeat. Fails if Redis cannot be reached. The [`Events`]
    /// are for the chat on this node (a cluster without one may drop them).
    pub async fn start(
        redis: Redis,
        config: ClusterConfig,
        info: NodeInfo,
    ) -> Result<(Arc<Self>, Events), ClusterError> {
        let uid = Uid::new();
        let keys = Keys::new(config.prefix.clone());
        let (events, inbound) = mpsc::channel(config.inbound_capacity);
        let stats = Arc::new(Stats::default());
        let stop = CancellationToken::new();
        let (outbox, sender) = Outbox::spawn(
            redis.clone(),
            keys.clone(),
            uid,
            config.outbox_capacity,
            config.inbox_max_len,
            stats.clone(),
            stop.clone(),
        );
        let cluster = Arc::new(Self {
            redis,
            config,
            keys,
            uid,
            info,
            live: RwLock::new(Arc::new(Vec::new())),
            reachable: RwLock::new(Arc::new(Vec::new())),
            outbox,
            namespaces: RwLock::default(),
            registered: Mutex::default(),
            dead: Mutex::default(),
            healthy_since: Mutex::default(),
            announced: Mutex::default(),
            events,
            lookup: nodes::lookup_script(),
            draining: AtomicBool::new(false),
            stats,
            stop,
            tasks: Mutex::new(vec![sender]),
            heartbeats: AtomicUsize::new(0),
        });
        // The inbox is new (the uid is), so reading from the start loses nothing sent
        // once the first heartbeat makes this node visible.
        let weak = Arc::downgrade(&cluster);
        let reader = tokio::spawn(transport::read_loop(
            cluster.redis.clone(),
            cluster.keys.inbox(uid),
            cluster.config.inbox_block,
            cluster.stats.clone(),
            cluster.config.metrics.inbox_lag.clone(),
            cluster.stop.clone(),
            move |incoming| {
                let weak = weak.clone();
                async move {
                    if let Some(c) = weak.upgrade() {
                        c.dispatch(incoming).await;
                    }
                }
            },
        ));
        cluster.heartbeat().await?;
        let weak = Arc::downgrade(&cluster);
        let period = cluster.config.heartbeat;
        let stop = cluster.stop.clone();
        let beat = tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = stop.cancelled() => break,
                }
                let Some(c) = weak.upgrade() else { break };
                if let Err(e) = c.heartbeat().await {
                    *lock(&c.healthy_since) = None;
                    tracing::warn!(cause = %e, "cluster heartbeat failed");
                }
            }
        });
        lock(&cluster.tasks).extend([reader, beat]);
        tracing::info!(uid = %uid, node = %cluster.info.id, "joined the cluster");
        Ok((cluster, Events(inbound)))
    }

    /// This node's uid (its socketioxide server id).
    pub fn uid(&self) -> Uid {
        self.uid
    }

    /// Heartbeats done so far.
    pub fn heartbeats(&self) -> usize {
        self.heartbeats.load(Ordering::Relaxed)
    }

    /// Transport and routing counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Live nodes, this one included, as of the last heartbeat.
    pub fn live_nodes(&self) -> Arc<Vec<Uid>> {
        read(&self.live).clone()
    }

    /// Brings the cluster's metrics up to date: its counters ([`Stats`]), the live nodes,
    /// the outbox queue, and this node's inbox length (one `XLEN`). Before each scrape.
    pub async fn update_metrics(&self) {
        let (m, s) = (&self.config.metrics, &self.stats);
        m.sent.absolute(s.sent.load(Ordering::Relaxed));
        m.received.absolute(s.received.load(Ordering::Relaxed));
        m.duplicates.absolute(s.duplicates.load(Ordering::Relaxed));
        m.shed.absolute(s.shed.load(Ordering::Relaxed));
        m.broadcasts_local
            .absolute(s.local_broadcasts.load(Ordering::Relaxed));
        m.broadcasts_remote
            .absolute(s.remote_broadcasts.load(Ordering::Relaxed));
        m.live_nodes.set(self.live_nodes().len() as f64);
        m.outbox_backlog.set(self.outbox.backlog() as f64);
        let xlen = ::redis::cmd("XLEN").arg(self.keys.inbox(self.uid)).clone();
        match self.redis.query::<u64>(&xlen).await {
            Ok(n) => m.inbox_backlog.set(n as f64),
            Err(e) => tracing::debug!(cause = %e, "cannot read the inbox length"),
        }
    }

    /// How long requests wait for other nodes' answers.
    pub fn request_timeout(&self) -> Duration {
        self.config.request_timeout
    }

    pub(crate) fn count_broadcast(&self, remote: bool) {
        let counter = if remote {
            &self.stats.remote_broadcasts
        } else {
            &self.stats.local_broadcasts
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Marks the node as draining in the node table (at the next heartbeat).
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Stops every task at once without leaving the node table, as a crash would: the lease
    /// runs out and the other nodes stop counting this one. For failure drills and tests.
    pub fn halt(&self) {
        self.stop.cancel();
        for t in lock(&self.tasks).drain(..) {
            t.abort();
        }
    }

    /// Leaves the cluster: stops the tasks (flushing queued sends), removes this node from
    /// the node table and its rooms from the routing sets.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        let tasks: Vec<JoinHandle<()>> = lock(&self.tasks).drain(..).collect();
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
        let me = self.uid.to_string();
        let rooms: Vec<Room> = lock(&self.registered).drain().collect();
        let mut pipe = ::redis::pipe();
        pipe.zrem(self.keys.nodes(), &me).ignore();
        pipe.del(self.keys.node(&me)).ignore();
        pipe.del(self.keys.noderooms(&me)).ignore();
        pipe.del(self.keys.inbox(self.uid)).ignore();
        for r in &rooms {
            pipe.srem(self.keys.room(r), &me).ignore();
        }
        match self.redis.query::<()>(&pipe).await {
            Ok(()) => tracing::info!(uid = %self.uid, "left the cluster"),
            Err(e) => tracing::warn!(cause = %e, "cannot deregister; the lease will expire"),
        }
    }
}

// A panic while a lock is held leaves no half-done state here (every critical section is a
// read or a whole assignment), so a poisoned lock is used as it is.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}
