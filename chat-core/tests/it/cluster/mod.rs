//! The cluster adapter across real nodes: several socketioxide servers sharing one Redis,
//! with real Socket.IO clients, one test per adapter operation and the failure drills; and
//! the live order of a conversation across chat nodes.

mod adapter;
mod failures;
mod order;

use std::{net::SocketAddr, sync::Arc, time::Duration};

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

use chat_testing::{Client, prefix, test_config};

pub(crate) type Io = SocketIo<ChatAdapter<Emitter>>;

/// One test node: a socketioxide server with the cluster adapter, and test events that
/// drive the adapter's operations from a client.
pub struct Node {
    pub addr: SocketAddr,
    pub cluster: Arc<Cluster>,
    pub prefix: String,
}

impl Node {
    pub async fn start(redis: RedisConfig, prefix: &str, name: &str) -> Node {
        Self::start_with(redis, prefix, name, |_| {}).await
    }

    /// [`Node::start`] with the cluster settings changed by `f`.
    pub async fn start_with(
        redis: RedisConfig,
        prefix: &str,
        name: &str,
        f: impl FnOnce(&mut chat_core::cluster::ClusterConfig),
    ) -> Node {
        let redis = Redis::new(redis).expect("redis config");
        let info = NodeInfo {
            id: name.to_owned(),
            ..NodeInfo::default()
        };
        let mut config = test_config(prefix);
        f(&mut config);
        // No chat here: nothing reads the cluster's events.
        let (cluster, _events) = Cluster::start(redis, config, info)
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

pub(crate) type A = ChatAdapter<Emitter>;

pub(crate) async fn on_connect(
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

pub(crate) fn rooms_of(v: &Value) -> Vec<String> {
    serde_json::from_value(v.clone()).unwrap_or_default()
}

/// `{rooms, except, local, volatile, data}`: broadcasts `message` from this socket's node
/// (the sender included if it is in the rooms), then acks.
pub(crate) async fn on_emit(s: SocketRef<A>, Data(v): Data<Value>, ack: AckSender<A>) {
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
pub(crate) async fn on_emit_ack(s: SocketRef<A>, Data(v): Data<Value>, ack: AckSender<A>) {
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

pub(crate) fn sid(c: &Client) -> String {
    c.ready["sid"].as_str().unwrap().to_owned()
}
