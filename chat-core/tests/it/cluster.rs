//! The cluster adapter across real nodes: several socketioxide servers sharing one Redis,
//! with real Socket.IO clients, one test per adapter operation and the failure drills.

use std::{
    net::SocketAddr,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use axum::Router;
use chat_core::{
    adapter::{AdapterState, ChatAdapter},
    cluster::{Cluster, NodeInfo},
    redis::{Redis, RedisConfig},
};
use futures_util::StreamExt;
use serde_json::{Value, json};
use socketioxide::{
    SocketIo, SocketIoConfig,
    adapter::Emitter,
    extract::{AckSender, Data, SocketRef, State, TryData},
};
use tokio::net::TcpListener;

use chat_testing::{
    Client, prefix,
    redis::{MASTER_NAME, RedisServer, SentinelTopology},
    test_config,
};

type Io = SocketIo<ChatAdapter<Emitter>>;

/// One test node: a socketioxide server with the cluster adapter, and test events that
/// drive the adapter's operations from a client.
pub struct Node {
    pub addr: SocketAddr,
    pub cluster: Arc<Cluster>,
    pub prefix: String,
}

impl Node {
    pub async fn start(redis: RedisConfig, prefix: &str, name: &str) -> Node {
        let redis = Redis::new(redis).expect("redis config");
        let info = NodeInfo {
            id: name.to_owned(),
            ..NodeInfo::default()
        };
        // No chat here: nothing reads the cluster's events.
        let (cluster, _events) = Cluster::start(redis, test_config(prefix), info)
            .await
            .expect("join the cluster");
        let mut config = SocketIoConfig::default();
        config.server_id = cluster.uid();
        let (svc, io): (_, Io) = SocketIo::builder()
            .with_config(config)
            .with_adapter::<ChatAdapter<Emitter>>(AdapterState(Some(cluster.clone())))
            .with_state(cluster.clone())
            .build_svc();
        io.ns("/", on_connect);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route_service("/socket.io/", svc);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Node {
            addr,
            cluster,
            prefix: prefix.to_owned(),
        }
    }

    /// A client on this node, in `rooms` (joined through the cluster, so they are routed).
    pub async fn client(&self, rooms: &[&str]) -> Client {
        Client::connect(self.addr, json!({ "rooms": rooms }))
            .await
            .expect("connect")
    }

    /// Waits until this node counts `n` live nodes.
    pub async fn wait_live(&self, n: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.cluster.live_nodes().len() != n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "never saw {n} live nodes: {:?}",
                self.cluster.live_nodes()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Starts `n` nodes on one Redis and waits until each sees all of them.
pub async fn nodes(redis: &RedisConfig, n: usize) -> Vec<Node> {
    let p = prefix();
    let mut nodes = Vec::new();
    for i in 0..n {
        nodes.push(Node::start(redis.clone(), &p, &format!("n{i}")).await);
    }
    for node in &nodes {
        node.wait_live(n).await;
    }
    nodes
}

type A = ChatAdapter<Emitter>;

async fn on_connect(
    s: SocketRef<A>,
    State(cluster): State<Arc<Cluster>>,
    TryData(auth): TryData<Value>,
) {
    let mut rooms = auth.map(|a| rooms_of(&a["rooms"])).unwrap_or_default();
    // As chat-core does: a room named after the socket, so `io.to(sid)` works anywhere.
    rooms.push(s.id.to_string());
    cluster.join(&s, rooms).await.expect("record rooms");
    s.on("ping", async |ack: AckSender<A>| {
        let _ = ack.send(&"pong");
    });
    s.on("emit", on_emit);
    s.on("emit_ack", on_emit_ack);
    s.on(
        "fetch",
        async |s: SocketRef<A>, Data(v): Data<Value>, ack: AckSender<A>| {
            let sockets = s
                .within(rooms_of(&v["rooms"]))
                .fetch_sockets()
                .await
                .unwrap();
            let mut sids: Vec<String> = sockets.iter().map(|r| r.data().id.to_string()).collect();
            sids.sort();
            let _ = ack.send(&sids);
        },
    );
    s.on("rooms", async |s: SocketRef<A>, ack: AckSender<A>| {
        let rooms = s.broadcast().rooms().await.unwrap();
        let mut rooms: Vec<String> = rooms.into_iter().map(|r| r.to_string()).collect();
        rooms.sort();
        let _ = ack.send(&rooms);
    });
    s.on(
        "join_remote",
        async |s: SocketRef<A>, Data(v): Data<Value>, ack: AckSender<A>| {
            s.within(rooms_of(&v["rooms"]))
                .join(rooms_of(&v["join"]))
                .await
                .unwrap();
            let _ = ack.send(&"ok");
        },
    );
    s.on(
        "leave_remote",
        async |s: SocketRef<A>, Data(v): Data<Value>, ack: AckSender<A>| {
            s.within(rooms_of(&v["rooms"]))
                .leave(rooms_of(&v["leave"]))
                .await
                .unwrap();
            let _ = ack.send(&"ok");
        },
    );
    s.on(
        "disconnect_remote",
        async |s: SocketRef<A>, Data(v): Data<Value>, ack: AckSender<A>| {
            s.within(rooms_of(&v["rooms"])).disconnect().await.unwrap();
            let _ = ack.send(&"ok");
        },
    );
    let _ = s.emit("ready", &json!({ "sid": s.id.to_string() }));
}

fn rooms_of(v: &Value) -> Vec<String> {
    serde_json::from_value(v.clone()).unwrap_or_default()
}

/// `{rooms, except, local, volatile, data}`: broadcasts `message` from this socket's node
/// (the sender included if it is in the rooms), then acks.
async fn on_emit(s: SocketRef<A>, Data(v): Data<Value>, ack: AckSender<A>) {
    let mut op = s.within(rooms_of(&v["rooms"]));
    let except = rooms_of(&v["except"]);
    if !except.is_empty() {
        // Note: `except` also makes it a broadcast, which leaves the sender out.
        op = op.except(except);
    }
    if v["local"] == true {
        op = op.local();
    }
    if v["volatile"] == true {
        op = op.volatile();
    }
    let res = op.emit("message", &v["data"]).await;
    let _ = ack.send(&json!(res.is_ok()));
}

/// `{rooms, data}`: broadcasts `message` asking every socket for an ack; answers with the
/// number of sockets that acked.
async fn on_emit_ack(s: SocketRef<A>, Data(v): Data<Value>, ack: AckSender<A>) {
    let stream = s
        .within(rooms_of(&v["rooms"]))
        .timeout(Duration::from_secs(2))
        .emit_with_ack::<_, Value>("message", &v["data"])
        .await
        .unwrap();
    // An empty ack (`ack()` in JS) cannot be decoded as a value but is an answer all the same.
    let answers: Vec<bool> = stream
        .map(|(_, r)| !matches!(r, Err(socketioxide::AckError::Timeout)))
        .collect()
        .await;
    let _ = ack.send(
        &json!({ "acked": answers.iter().filter(|a| **a).count(), "answers": answers.len() }),
    );
}

fn sid(c: &Client) -> String {
    c.ready["sid"].as_str().unwrap().to_owned()
}

/// A broadcast to a room reaches exactly its members on every node, once; a node with no
/// member receives nothing for it.
#[tokio::test]
async fn room_broadcast_reaches_members_once_and_only_their_nodes() {
    let redis = RedisServer::start().await;
    let n = nodes(&RedisConfig::Url(redis.url()), 3).await;
    let mut a = n[0].client(&["group:x"]).await;
    let b = n[1].client(&["group:x"]).await;
    let c = n[2].client(&["group:y"]).await;
    let before = n[2].cluster.stats().received.load(Ordering::SeqCst);
    assert_eq!(
        a.ack("emit", json!({"rooms": ["group:x"], "data": 1}))
            .await,
        json!(true)
    );
    assert_eq!(a.event("message", |_| true).await, json!(1));
    assert_eq!(b.event("message", |_| true).await, json!(1));
    // Entries from one node arrive in order: once this one is in, an earlier one would be.
    assert_eq!(
        a.ack("emit", json!({"rooms": ["group:y", "group:x"], "data": 2}))
            .await,
        json!(true)
    );
    assert_eq!(c.event("message", |_| true).await, json!(2));
    assert_eq!(b.event("message", |_| true).await, json!(2));
    a.event("message", |v| v == 2).await;
    assert!(
        c.received("message").is_empty() && b.received("message").is_empty(),
        "delivered twice"
    );
    let got = n[2].cluster.stats().received.load(Ordering::SeqCst) - before;
    assert_eq!(got, 1, "node 3 got traffic for a room it does not host");
}

/// `except`, `local` and `volatile` hold across nodes; rooms outside the routed prefixes go
/// to every node.
#[tokio::test]
async fn broadcast_flags_hold_across_nodes() {
    let redis = RedisServer::start().await;
    let n = nodes(&RedisConfig::Url(redis.url()), 2).await;
    let mut a = n[0].client(&["group:x"]).await;
    let b = n[1].client(&["group:x", "user:b"]).await;
    let b2 = n[1].client(&["group:x"]).await;
    let d = n[1].client(&["custom"]).await;
    a.ack(
        "emit",
        json!({"rooms": ["group:x"], "except": ["user:b"], "data": "except"}),
    )
    .await;
    a.ack(
        "emit",
        json!({"rooms": ["group:x"], "local": true, "data": "local"}),
    )
    .await;
    a.ack(
        "emit",
        json!({"rooms": ["group:x"], "volatile": true, "data": "volatile"}),
    )
    .await;
    a.ack("emit", json!({"rooms": ["custom"], "data": "fallback"}))
        .await;
    a.ack("emit", json!({"rooms": ["group:x"], "data": "marker"}))
        .await;
    d.event("message", |v| v == "fallback").await;
    for (name, client, want) in [
        ("b", &b, vec!["volatile", "marker"]),
        ("b2", &b2, vec!["except", "volatile", "marker"]),
    ] {
        for w in &want {
            client.event("message", |v| v == *w).await;
        }
        assert!(
            client.received("message").is_empty(),
            "{name} got {:?}",
            client.received("message")
        );
    }
    for w in ["local", "volatile", "marker"] {
        a.event("message", |v| v == w).await;
    }
}

/// A broadcast with acks collects the acks of the sockets on every node.
#[tokio::test]
async fn acks_come_back_from_every_node() {
    let redis = RedisServer::start().await;
    let n = nodes(&RedisConfig::Url(redis.url()), 3).await;
    let mut a = n[0].client(&["group:x"]).await;
    let _b = n[1].client(&["group:x"]).await;
    let _c = n[2].client(&["group:x"]).await;
    let _d = n[2].client(&["group:other"]).await;
    let res = a
        .ack("emit_ack", json!({"rooms": ["group:x"], "data": "ack me"}))
        .await;
    assert_eq!(res, json!({"acked": 3, "answers": 3}));
}

/// `fetch_sockets` and `rooms` see the sockets and rooms of every node.
#[tokio::test]
async fn fetch_sockets_and_rooms_span_nodes() {
    let redis = RedisServer::start().await;
    let n = nodes(&RedisConfig::Url(redis.url()), 3).await;
    let mut a = n[0].client(&["group:x"]).await;
    let b = n[1].client(&["group:x", "group:b"]).await;
    let c = n[2].client(&["group:x", "custom:c"]).await;
    let mut want = vec![sid(&a), sid(&b), sid(&c)];
    want.sort();
    assert_eq!(
        a.ack("fetch", json!({"rooms": ["group:x"]})).await,
        json!(want)
    );
    assert_eq!(
        a.ack("fetch", json!({"rooms": ["group:b"]})).await,
        json!([sid(&b)])
    );
    let rooms = a.ack("rooms", json!({})).await;
    for r in ["group:x", "group:b", "custom:c"] {
        assert!(
            rooms.as_array().unwrap().contains(&json!(r)),
            "{r} missing from {rooms}"
        );
    }
}

/// Remote join, leave and disconnect act on sockets of other nodes; a remote join is routed
/// as soon as it is acknowledged.
#[tokio::test]
async fn remote_join_leave_and_disconnect() {
    let redis = RedisServer::start().await;
    let n = nodes(&RedisConfig::Url(redis.url()), 2).await;
    let mut a = n[0].client(&["user:a"]).await;
    let b = n[1].client(&["user:b"]).await;
    assert_eq!(
        a.ack(
            "join_remote",
            json!({"rooms": ["user:b"], "join": ["group:new"]})
        )
        .await,
        json!("ok")
    );
    a.ack("emit", json!({"rooms": ["group:new"], "data": "joined"}))
        .await;
    b.event("message", |v| v == "joined").await;
    a.ack(
        "leave_remote",
        json!({"rooms": ["user:b"], "leave": ["group:new"]}),
    )
    .await;
    a.ack(
        "emit",
        json!({"rooms": ["group:new"], "data": "after leave"}),
    )
    .await;
    a.ack("emit", json!({"rooms": ["user:b"], "data": "marker"}))
        .await;
    b.event("message", |v| v == "marker").await;
    assert!(
        b.received("message").is_empty(),
        "{:?}",
        b.received("message")
    );
    // A socket's own room reaches it from any node.
    a.ack("emit", json!({"rooms": [sid(&b)], "data": "to sid"}))
        .await;
    b.event("message", |v| v == "to sid").await;
    a.ack("disconnect_remote", json!({"rooms": ["user:b"]}))
        .await;
    b.closed().await;
}

/// A node that dies (its heartbeat stops) stops being counted within the lease, and
/// requests that wait on every node answer without it.
#[tokio::test]
async fn dead_nodes_drop_out_within_the_lease() {
    let redis = RedisServer::start().await;
    let n = nodes(&RedisConfig::Url(redis.url()), 3).await;
    let mut a = n[0].client(&["group:x"]).await;
    let b = n[1].client(&["group:x"]).await;
    let _c = n[2].client(&["group:x"]).await;
    n[2].cluster.halt();
    let started = tokio::time::Instant::now();
    // Asked while the dead node still counts: the answer comes after the request timeout.
    let sids = a.ack("fetch", json!({"rooms": ["group:x"]})).await;
    assert_eq!(sids.as_array().unwrap().len(), 2, "{sids}");
    n[0].wait_live(2).await;
    let gone_after = started.elapsed();
    let lease = test_config("x:").lease + test_config("x:").heartbeat;
    assert!(
        gone_after <= lease * 2,
        "dead node counted for {gone_after:?}"
    );
    let mut want = vec![sid(&a), sid(&b)];
    want.sort();
    assert_eq!(
        a.ack("fetch", json!({"rooms": ["group:x"]})).await,
        json!(want)
    );
    let res = a
        .ack("emit_ack", json!({"rooms": ["group:x"], "data": "x"}))
        .await;
    assert_eq!(res["acked"], 2);
    eprintln!("dead node dropped out after {gone_after:?}");
}

/// Sends `data` values `range` to `group:x` from `a`; every emit is accepted.
async fn emit_range(a: &mut Client, range: std::ops::Range<u64>) {
    for i in range {
        assert_eq!(
            a.ack("emit", json!({"rooms": ["group:x"], "data": i}))
                .await,
            json!(true)
        );
    }
}

/// Takes the next `range` messages from `b` in order, each exactly once.
async fn expect_range(b: &Client, range: std::ops::Range<u64>, deadline: Duration) {
    for i in range {
        let got = b.event_within(deadline, "message", |_| true).await;
        assert_eq!(got, json!(i), "out of order or lost");
    }
}

/// Redis drops every connection, then stops and comes back: what was sent before, during
/// and after reaches its sockets once delivery resumes, in order, nothing lost or doubled.
#[tokio::test]
async fn redis_outage_loses_nothing() {
    let redis = RedisServer::start().await;
    let n = nodes(&RedisConfig::Url(redis.url()), 2).await;
    let mut a = n[0].client(&["user:a"]).await;
    let b = n[1].client(&["group:x"]).await;
    emit_range(&mut a, 0..10).await;
    expect_range(&b, 0..10, Duration::from_secs(5)).await;

    let killed = redis.kill_clients().await;
    emit_range(&mut a, 10..20).await;
    redis.stop().await;
    emit_range(&mut a, 20..30).await;
    let resumed = tokio::time::Instant::now();
    redis.resume().await;
    emit_range(&mut a, 30..40).await;
    expect_range(&b, 10..40, Duration::from_secs(20)).await;
    let recovered = resumed.elapsed();
    a.ack("emit", json!({"rooms": ["group:x"], "data": "marker"}))
        .await;
    b.event("message", |v| v == "marker").await;
    assert!(
        b.received("message").is_empty(),
        "doubled: {:?}",
        b.received("message")
    );
    let stats = n[0].cluster.stats();
    eprintln!(
        "outage drill: {killed} connections killed; all 40 delivered {recovered:?} after redis came back; \
         sent {} entries, shed {}, duplicates skipped at the receiver {}",
        stats.sent.load(Ordering::SeqCst),
        stats.shed.load(Ordering::SeqCst),
        n[1].cluster.stats().duplicates.load(Ordering::SeqCst),
    );
    assert_eq!(stats.shed.load(Ordering::SeqCst), 0);
}

/// Sentinel: the master dies, the replica is promoted, and both nodes follow it without a
/// restart; what was sent during the failover arrives once it is over.
#[tokio::test]
async fn sentinel_failover_is_followed() {
    let topo = SentinelTopology::start().await;
    let config = RedisConfig::Sentinel {
        sentinels: topo.sentinel_addrs(),
        master: MASTER_NAME.to_owned(),
        password: None,
    };
    let n = nodes(&config, 2).await;
    let mut a = n[0].client(&["user:a"]).await;
    let b = n[1].client(&["group:x"]).await;
    emit_range(&mut a, 0..10).await;
    expect_range(&b, 0..10, Duration::from_secs(5)).await;

    let killed_at = tokio::time::Instant::now();
    let old = topo.kill_master().await;
    emit_range(&mut a, 10..20).await;
    let new = topo.wait_for_failover(&old).await;
    let promoted = killed_at.elapsed();
    emit_range(&mut a, 20..30).await;
    expect_range(&b, 10..30, Duration::from_secs(30)).await;
    let recovered = killed_at.elapsed();
    eprintln!(
        "failover drill: {old} -> {new}; promoted after {promoted:?}; all delivered {recovered:?} after the kill"
    );
}

/// Routing records outlive the heartbeat's room reconciliation: rooms that still have local
/// sockets stay recorded, rooms whose sockets left are dropped.
#[tokio::test]
async fn room_records_survive_reconciliation() {
    let redis = RedisServer::start().await;
    let n = nodes(&RedisConfig::Url(redis.url()), 2).await;
    let mut a = n[0].client(&["user:a"]).await;
    let b = n[1].client(&["group:kept"]).await;
    let gone = n[1].client(&["group:gone"]).await;
    drop(gone);
    // Reconciliation runs every ten beats; wait for two of them.
    let target = n[1].cluster.heartbeats() + 21;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while n[1].cluster.heartbeats() < target {
        assert!(tokio::time::Instant::now() < deadline, "heartbeats stalled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    a.ack(
        "emit",
        json!({"rooms": ["group:kept"], "data": "still routed"}),
    )
    .await;
    b.event("message", |v| v == "still routed").await;
    let node1 = n[1].cluster.uid().to_string();
    let members = |room: &str| {
        let key = format!("{}room:{room}", n[1].prefix);
        let redis = &redis;
        async move { redis.cli::<Vec<String>>(&["SMEMBERS", &key]).await }
    };
    assert!(members("group:kept").await.contains(&node1));
    assert!(
        !members("group:gone").await.contains(&node1),
        "a room without sockets stayed recorded"
    );
}
