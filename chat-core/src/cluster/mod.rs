//! The cluster: node table, room routing and the transport between nodes, over Redis.
//!
//! [`Cluster`] is the state shared by the Socket.IO adapter of every namespace
//! ([`crate::adapter::ChatAdapter`]). It registers this node (a lease renewed by a heartbeat),
//! keeps the list of live nodes in memory, records which nodes host which rooms, and moves
//! adapter requests and responses between nodes through per-node inbox streams
//! (see the crate docs, "The cluster").

mod nodes;
pub(crate) mod transport;

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex, RwLock, Weak,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use socketioxide_core::{
    Uid,
    adapter::{BroadcastOptions, Room},
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::redis::Redis;
use transport::{Incoming, Kind, Outbox, Outgoing, TransportClosed};

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
    /// Room name prefixes whose hosting nodes are recorded, so broadcasts to them go only
    /// to those nodes. Other rooms go to every live node. Default: `user:`, `group:`,
    /// `presence:` (the rooms chat-core joins).
    pub routed_prefixes: Vec<String>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            prefix: "chat:".into(),
            heartbeat: Duration::from_secs(1),
            lease: Duration::from_secs(3),
            request_timeout: Duration::from_secs(2),
            outbox_capacity: 65_536,
            inbox_block: Duration::from_secs(2),
            inbox_max_len: 100_000,
            routed_prefixes: vec!["user:".into(), "group:".into(), "presence:".into()],
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

/// Called with the uid of a node found dead.
pub type NodeLostHook = Arc<dyn Fn(Uid) + Send + Sync>;

/// Called with the payload of each chat-level message another node sent this one.
pub type ChatHook = Arc<dyn Fn(Vec<u8>) + Send + Sync>;

/// Shared cluster state; one per process.
pub struct Cluster {
    redis: Redis,
    config: ClusterConfig,
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
    /// Lost nodes whose hooks already ran (until they come back).
    announced: Mutex<HashSet<String>>,
    node_lost: Mutex<Vec<NodeLostHook>>,
    chat: RwLock<Option<ChatHook>>,
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
    /// reader, the sender and the heartbeat. Fails if Redis cannot be reached.
    pub async fn start(
        redis: Redis,
        config: ClusterConfig,
        info: NodeInfo,
    ) -> Result<Arc<Self>, ClusterError> {
        let uid = Uid::new();
        let stats = Arc::new(Stats::default());
        let stop = CancellationToken::new();
        let (outbox, sender) = Outbox::spawn(
            redis.clone(),
            config.prefix.clone(),
            uid,
            config.outbox_capacity,
            config.inbox_max_len,
            stats.clone(),
            stop.clone(),
        );
        let cluster = Arc::new(Self {
            redis,
            config,
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
            node_lost: Mutex::default(),
            chat: RwLock::default(),
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
            cluster.config.prefix.clone(),
            uid,
            cluster.config.inbox_block,
            cluster.stats.clone(),
            cluster.stop.clone(),
            move |incoming| {
                if let Some(c) = weak.upgrade() {
                    c.dispatch(incoming);
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
                    *c.healthy_since.lock().unwrap_or_else(|p| p.into_inner()) = None;
                    tracing::warn!(cause = %e, "cluster heartbeat failed");
                }
            }
        });
        cluster.lock_tasks().extend([reader, beat]);
        tracing::info!(uid = %uid, node = %cluster.info.id, "joined the cluster");
        Ok(cluster)
    }

    fn lock_tasks(&self) -> std::sync::MutexGuard<'_, Vec<JoinHandle<()>>> {
        self.tasks.lock().unwrap_or_else(|p| p.into_inner())
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
        self.live.read().unwrap_or_else(|p| p.into_inner()).clone()
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

    fn key(&self, rest: &str) -> String {
        format!("{}{rest}", self.config.prefix)
    }

    async fn heartbeat(&self) -> Result<(), ClusterError> {
        let connections: usize = {
            let nss = self.namespaces.read().unwrap_or_else(|p| p.into_inner());
            nss.values()
                .filter_map(Weak::upgrade)
                .map(|h| h.local_sockets())
                .sum()
        };
        let script = nodes::heartbeat_script();
        let mut inv = script.key(self.key("nodes"));
        inv.key(self.key(&format!("node:{}", self.uid)))
            .key(transport::inbox_key(&self.config.prefix, self.uid))
            .arg(self.uid.to_string())
            .arg(self.config.lease.as_millis() as u64)
            .arg("id")
            .arg(&self.info.id)
            .arg("url")
            .arg(self.info.url.as_deref().unwrap_or(""))
            .arg("capacity")
            .arg(self.info.capacity)
            .arg("version")
            .arg(env!("CARGO_PKG_VERSION"))
            .arg("draining")
            .arg(u8::from(self.draining.load(Ordering::SeqCst)))
            .arg("connections")
            .arg(connections);
        let reply: Vec<String> = self.redis.script(&inv).await?;
        let (mut live, expired, fresh) = nodes::parse_members(reply);
        live.sort_by_key(|u| u.to_string());
        self.detect_lost(&live, &expired);
        let mut reachable = live.clone();
        reachable.extend(expired);
        *self.live.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(live);
        self.dead.lock().unwrap_or_else(|p| p.into_inner()).clear();
        *self.reachable.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(reachable);
        let n = self.heartbeats.fetch_add(1, Ordering::Relaxed);
        if fresh && n > 0 {
            // The health checker reaped this node (or its record expired during a long
            // outage): its room records are gone, so record every local room again.
            tracing::warn!(uid = %self.uid, "node record was missing; recording rooms again");
            self.registered
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clear();
        }
        if n.is_multiple_of(10) || (fresh && n > 0) {
            self.reconcile_rooms().await?;
        }
        Ok(())
    }

    /// Runs the node-lost hooks for nodes whose lease ended, once each, on one node only:
    /// the live node with the smallest uid. Only while this node has been beating without a
    /// failure for a whole lease, so that an outage everyone went through (every lease ran
    /// out at once) is not mistaken for the death of the others.
    fn detect_lost(&self, live: &[Uid], expired: &[Uid]) {
        let healthy_for = {
            let mut since = self.healthy_since.lock().unwrap_or_else(|p| p.into_inner());
            since
                .get_or_insert_with(tokio::time::Instant::now)
                .elapsed()
        };
        let mut announced = self.announced.lock().unwrap_or_else(|p| p.into_inner());
        announced.retain(|u| !live.iter().any(|l| l.to_string() == *u));
        let leader = live.first() == Some(&self.uid);
        if !leader || healthy_for < self.config.lease {
            return;
        }
        let hooks = self
            .node_lost
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for &uid in expired {
            if uid != self.uid && announced.insert(uid.to_string()) {
                tracing::info!(lost = %uid, "node lease ended; announcing its users offline");
                for hook in &hooks {
                    hook(uid);
                }
            }
        }
    }

    /// Hands every chat-level message other nodes send this one (`send_chat`) to `hook`.
    pub fn on_chat(&self, hook: ChatHook) {
        *self.chat.write().unwrap_or_else(|p| p.into_inner()) = Some(hook);
    }

    /// The other nodes a chat-level message to `rooms` must reach: those hosting one of them
    /// (routed rooms; any other room reaches every node).
    pub(crate) async fn chat_targets(&self, rooms: &[String]) -> Vec<Uid> {
        self.chat_routes(&[rooms]).await.pop().unwrap_or_default()
    }

    /// [`Cluster::chat_targets`] of several room sets, in one round trip.
    pub(crate) async fn chat_routes(&self, sets: &[&[String]]) -> Vec<Vec<Uid>> {
        // Include recently expired nodes while recovering, as requests that wait do: right
        // after an outage, skipping a live node would lose the message until its next sync.
        let (wait, candidates) = self.candidates(true);
        if sets
            .iter()
            .any(|rooms| !rooms.iter().all(|r| self.is_routed(r)))
        {
            return vec![self.others(&candidates); sets.len()];
        }
        let sets: Vec<Vec<&str>> = sets
            .iter()
            .map(|rooms| rooms.iter().map(String::as_str).collect())
            .collect();
        let sets: Vec<&[&str]> = sets.iter().map(Vec::as_slice).collect();
        self.hosting(&sets, &candidates, wait).await
    }

    /// Sends a chat-level message to `targets`, in order with this node's broadcasts.
    pub(crate) async fn send_chat(
        &self,
        targets: &[Uid],
        data: Vec<u8>,
    ) -> Result<(), ClusterError> {
        self.send(targets, Kind::Chat, "", data, false).await
    }

    /// Calls `hook` with the uid of every node found dead (its lease ended), on one live node.
    pub fn on_node_lost(&self, hook: NodeLostHook) {
        self.node_lost
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(hook);
    }

    /// Records local routed rooms not yet in Redis, and forgets rooms no longer local.
    async fn reconcile_rooms(&self) -> Result<(), ClusterError> {
        let local: HashSet<Room> = {
            let nss = self.namespaces.read().unwrap_or_else(|p| p.into_inner());
            nss.values()
                .filter_map(Weak::upgrade)
                .flat_map(|h| h.local_rooms())
                .filter(|r| self.is_routed(r))
                .collect()
        };
        let (add, remove): (Vec<Room>, Vec<Room>) = {
            let reg = self.registered.lock().unwrap_or_else(|p| p.into_inner());
            (
                local.difference(&reg).cloned().collect(),
                reg.difference(&local).cloned().collect(),
            )
        };
        if add.is_empty() && remove.is_empty() {
            return Ok(());
        }
        let me = self.uid.to_string();
        let noderooms = self.key(&format!("noderooms:{me}"));
        let mut pipe = ::redis::pipe();
        for r in &add {
            pipe.sadd(self.key(&format!("room:{r}")), &me).ignore();
            pipe.sadd(&noderooms, r.as_ref()).ignore();
        }
        for r in &remove {
            pipe.srem(self.key(&format!("room:{r}")), &me).ignore();
            pipe.srem(&noderooms, r.as_ref()).ignore();
        }
        self.redis.query::<()>(&pipe).await?;
        {
            let mut reg = self.registered.lock().unwrap_or_else(|p| p.into_inner());
            reg.extend(add);
            for r in &remove {
                reg.remove(r);
            }
        }
        // A socket may have joined one of the removed rooms meanwhile, seeing it still
        // registered: record those again.
        let back: Vec<Room> = {
            let nss = self.namespaces.read().unwrap_or_else(|p| p.into_inner());
            let now: HashSet<Room> = nss
                .values()
                .filter_map(Weak::upgrade)
                .flat_map(|h| h.local_rooms())
                .collect();
            remove.into_iter().filter(|r| now.contains(r)).collect()
        };
        if !back.is_empty() {
            self.record_rooms(&back, &[self.uid]).await?;
        }
        Ok(())
    }

    /// Whether broadcasts to `room` are routed by the recorded hosting nodes.
    fn is_routed(&self, room: &str) -> bool {
        self.config
            .routed_prefixes
            .iter()
            .any(|p| room.starts_with(p.as_str()))
    }

    /// Records that `nodes` host `rooms` (routed rooms only), before the join is visible.
    pub(crate) async fn record_rooms(
        &self,
        rooms: &[Room],
        nodes: &[Uid],
    ) -> Result<(), ClusterError> {
        let rooms: Vec<&Room> = rooms.iter().filter(|r| self.is_routed(r)).collect();
        let local_only = nodes == [self.uid];
        let rooms: Vec<&Room> = if local_only {
            let reg = self.registered.lock().unwrap_or_else(|p| p.into_inner());
            rooms.into_iter().filter(|r| !reg.contains(*r)).collect()
        } else {
            rooms
        };
        if rooms.is_empty() || nodes.is_empty() {
            return Ok(());
        }
        let mut pipe = ::redis::pipe();
        for r in &rooms {
            for n in nodes {
                pipe.sadd(self.key(&format!("room:{r}")), n.to_string())
                    .ignore();
                pipe.sadd(self.key(&format!("noderooms:{n}")), r.as_ref())
                    .ignore();
            }
        }
        self.redis.query::<()>(&pipe).await?;
        if nodes.contains(&self.uid) {
            let mut reg = self.registered.lock().unwrap_or_else(|p| p.into_inner());
            reg.extend(rooms.into_iter().cloned());
        }
        Ok(())
    }

    /// The other nodes a request with `opts` must reach. `wait`: the caller waits for their
    /// answers, so only live nodes count; otherwise recently expired ones are included too.
    /// If Redis cannot say which nodes host the rooms, every candidate is a target: more
    /// traffic, nothing lost.
    pub(crate) async fn targets(&self, opts: &BroadcastOptions, wait: bool) -> Vec<Uid> {
        let (wait, candidates) = self.candidates(wait);
        if let Some(server) = opts.server_id {
            return match server {
                s if s == self.uid => Vec::new(),
                s if candidates.contains(&s) => vec![s],
                s => self.check_unknown(vec![s], wait).await,
            };
        }
        if opts.rooms.is_empty() || !opts.rooms.iter().all(|r| self.is_routed(r)) {
            return self.others(&candidates);
        }
        let rooms: Vec<&str> = opts.rooms.iter().map(|r| r.as_ref()).collect();
        self.hosting(&[&rooms], &candidates, wait)
            .await
            .pop()
            .unwrap_or_default()
    }

    /// The nodes a request may go to, and whether its caller may wait for them: with `wait`,
    /// the live ones; without, or right after an outage (every lease had run out and the
    /// others have not beaten yet: waiting on recently expired nodes is better then than
    /// skipping live ones), the reachable ones.
    fn candidates(&self, wait: bool) -> (bool, Arc<Vec<Uid>>) {
        let wait = wait && !self.recovering();
        let nodes = if wait {
            self.live_nodes()
        } else {
            self.reachable_nodes()
        };
        (wait, nodes)
    }

    /// `candidates` but this node.
    fn others(&self, candidates: &[Uid]) -> Vec<Uid> {
        candidates
            .iter()
            .copied()
            .filter(|u| *u != self.uid)
            .collect()
    }

    /// For each set of routed rooms, the other nodes among `candidates` that host one of them,
    /// in one round trip. If Redis cannot say, every candidate.
    async fn hosting(&self, sets: &[&[&str]], candidates: &[Uid], wait: bool) -> Vec<Vec<Uid>> {
        let me = self.uid;
        let mut pipe = ::redis::pipe();
        for rooms in sets {
            let keys: Vec<String> = rooms
                .iter()
                .map(|r| self.key(&format!("room:{r}")))
                .collect();
            pipe.cmd("SUNION").arg(&keys);
        }
        let hosts = match self.redis.query::<Vec<Vec<String>>>(&pipe).await {
            Ok(hosts) if hosts.len() == sets.len() => hosts,
            reply => {
                let cause = reply.err().map(|e| e.to_string()).unwrap_or_default();
                tracing::debug!(%cause, "cluster: room lookup failed; sending to every node");
                return vec![self.others(candidates); sets.len()];
            }
        };
        let reachable = self.reachable_nodes();
        let mut out = Vec::with_capacity(sets.len());
        for hosts in hosts {
            let mut targets = Vec::new();
            let mut unknown = Vec::new();
            for host in hosts.iter().filter_map(|h| h.parse::<Uid>().ok()) {
                if host == me {
                    continue;
                }
                if candidates.contains(&host) {
                    targets.push(host);
                } else if !reachable.contains(&host) {
                    unknown.push(host);
                }
            }
            if !unknown.is_empty() {
                targets.extend(self.check_unknown(unknown, wait).await);
            }
            out.push(targets);
        }
        out
    }

    /// Whether heartbeats failed within the last lease (or never succeeded since a failure).
    fn recovering(&self) -> bool {
        self.healthy_since
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_none_or(|since| since.elapsed() < self.config.lease)
    }

    fn reachable_nodes(&self) -> Arc<Vec<Uid>> {
        self.reachable
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Looks up nodes this one has not heard of since its last heartbeat: a node that just
    /// joined must not miss what is sent to it before the next beat. Nodes found dead are
    /// remembered until then, so lingering records cost one lookup per beat.
    async fn check_unknown(&self, uids: Vec<Uid>, wait: bool) -> Vec<Uid> {
        let uids: Vec<Uid> = {
            let dead = self.dead.lock().unwrap_or_else(|p| p.into_inner());
            uids.into_iter()
                .filter(|u| !dead.contains(&u.to_string()))
                .collect()
        };
        if uids.is_empty() {
            return Vec::new();
        }
        let mut inv = self.lookup.key(self.key("nodes"));
        inv.arg(self.config.lease.as_millis() as u64 * 10);
        for u in &uids {
            inv.arg(u.to_string());
        }
        let reply: Vec<i64> = match self.redis.script(&inv).await {
            Ok(r) => r,
            // Unknown to us and Redis cannot tell: send anyway, nothing is lost.
            Err(_) => return if wait { Vec::new() } else { uids },
        };
        let (mut live, mut reachable) = (Vec::new(), Vec::new());
        let mut dead = self.dead.lock().unwrap_or_else(|p| p.into_inner());
        for (u, state) in uids.into_iter().zip(reply) {
            match state {
                2 => {
                    live.push(u);
                    reachable.push(u);
                }
                1 => reachable.push(u),
                _ => {
                    dead.insert(u.to_string());
                }
            }
        }
        drop(dead);
        if !reachable.is_empty() {
            let extend = |lock: &RwLock<Arc<Vec<Uid>>>, add: &[Uid]| {
                let mut l = lock.write().unwrap_or_else(|p| p.into_inner());
                let mut v = (**l).clone();
                v.extend(
                    add.iter()
                        .filter(|u| !v.contains(u))
                        .copied()
                        .collect::<Vec<_>>(),
                );
                *l = Arc::new(v);
            };
            extend(&self.live, &live);
            extend(&self.reachable, &reachable);
        }
        if wait { live } else { reachable }
    }

    /// Joins a local socket to `rooms` and records this node as a host of the routed ones,
    /// so broadcasts from other nodes find it. Use this instead of `socket.join` for rooms
    /// that should be routed.
    pub async fn join<A: socketioxide::adapter::Adapter>(
        &self,
        socket: &socketioxide::extract::SocketRef<A>,
        rooms: Vec<String>,
    ) -> Result<(), ClusterError> {
        socket.join(rooms.clone());
        let rooms: Vec<Room> = rooms.into_iter().map(Room::from).collect();
        self.record_rooms(&rooms, &[self.uid]).await
    }

    /// Sends an encoded message to each target.
    pub(crate) async fn send(
        &self,
        targets: &[Uid],
        kind: Kind,
        ns: &str,
        data: Vec<u8>,
        volatile: bool,
    ) -> Result<(), ClusterError> {
        let data = Arc::new(data);
        for &target in targets {
            let out = Outgoing {
                target,
                kind,
                ns: ns.to_owned(),
                data: data.clone(),
            };
            if volatile {
                self.outbox.try_send(out, &self.stats);
            } else {
                self.outbox.send(out).await?;
            }
        }
        Ok(())
    }

    pub(crate) fn register_namespace(&self, path: &str, handler: Weak<dyn NamespaceHandler>) {
        self.namespaces
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(path.to_owned(), handler);
    }

    fn dispatch(&self, incoming: Incoming) {
        let namespace = || {
            let handler = self
                .namespaces
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .get(&incoming.ns)
                .and_then(Weak::upgrade);
            if handler.is_none() {
                tracing::debug!(ns = %incoming.ns, origin = %incoming.origin, "message for an unknown namespace");
            }
            handler
        };
        match incoming.kind {
            Kind::Request => {
                if let Some(h) = namespace() {
                    h.on_request(incoming.data);
                }
            }
            Kind::Response => {
                if let Some(h) = namespace() {
                    h.on_response(incoming.data);
                }
            }
            Kind::Chat => {
                let hook = self.chat.read().unwrap_or_else(|p| p.into_inner()).clone();
                match hook {
                    Some(hook) => hook(incoming.data),
                    None => {
                        tracing::debug!(origin = %incoming.origin, "chat message before the chat is ready")
                    }
                }
            }
        }
    }

    /// Stops every task at once without leaving the node table, as a crash would: the lease
    /// runs out and the other nodes stop counting this one. For failure drills and tests.
    pub fn halt(&self) {
        self.stop.cancel();
        for t in self.lock_tasks().drain(..) {
            t.abort();
        }
    }

    /// Leaves the cluster: stops the tasks (flushing queued sends), removes this node from
    /// the node table and its rooms from the routing sets.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        // The hooks hold the Socket.IO server, which holds this cluster.
        self.node_lost
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.chat.write().unwrap_or_else(|p| p.into_inner()).take();
        let tasks: Vec<JoinHandle<()>> = self.lock_tasks().drain(..).collect();
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
        let me = self.uid.to_string();
        let rooms: Vec<Room> = self
            .registered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .collect();
        let mut pipe = ::redis::pipe();
        pipe.zrem(self.key("nodes"), &me).ignore();
        pipe.del(self.key(&format!("node:{me}"))).ignore();
        pipe.del(self.key(&format!("noderooms:{me}"))).ignore();
        pipe.del(transport::inbox_key(&self.config.prefix, self.uid))
            .ignore();
        for r in &rooms {
            pipe.srem(self.key(&format!("room:{r}")), &me).ignore();
        }
        match self.redis.query::<()>(&pipe).await {
            Ok(()) => tracing::info!(uid = %self.uid, "left the cluster"),
            Err(e) => tracing::warn!(cause = %e, "cannot deregister; the lease will expire"),
        }
    }
}
