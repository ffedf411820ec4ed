//! Test nodes whose `/healthz` the test breaks, running checkers, and polling helpers.

use std::{
    collections::HashSet,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU8, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use async_trait::async_trait;
use axum::{Json, Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use chat_core::{
    adapter::{AdapterState, ChatAdapter},
    cluster::{Cluster, NodeInfo},
    error::StoreError,
    redis::{Redis, RedisConfig},
};
use chat_env::metrics::Exporter;
use chat_health::{Checker, HealthConfig, NodeReaper};
use chat_registry::{NodeTable, Server};
use serde_json::{Value, json};
use socketioxide::{
    SocketIo, SocketIoConfig,
    adapter::Emitter,
    extract::{SocketRef, State as IoState, TryData},
};
use tokio::{net::TcpSocket, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use chat_testing::{Client, redis::RedisServer, test_config};

pub(crate) const INTERVAL: Duration = Duration::from_millis(200);
pub(crate) const FAILURES: u32 = 3;
/// The test nodes' lease (`test_config`).
pub(crate) const LEASE: Duration = Duration::from_millis(1000);

pub(crate) type A = ChatAdapter<Emitter>;

/// What a test node's `/healthz` does.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub(crate) enum Mode {
    Up = 0,
    /// Never answers (the probe times out).
    Hang = 1,
    /// Answers 500.
    Fail = 2,
}

/// A cluster node with Socket.IO clients (joined through the cluster, so rooms are
/// recorded) and a `/healthz` that counts its probes.
pub(crate) struct TestNode {
    pub(crate) addr: SocketAddr,
    pub(crate) cluster: Arc<Cluster>,
    pub(crate) mode: Arc<AtomicU8>,
    pub(crate) probes: Arc<AtomicU64>,
    pub(crate) app: Router,
    pub(crate) http: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Clone)]
pub(crate) struct HealthState {
    pub(crate) mode: Arc<AtomicU8>,
    pub(crate) probes: Arc<AtomicU64>,
}

impl TestNode {
    /// Starts a node on `addr` (port 0: any).
    pub(crate) async fn start(
        redis: &RedisConfig,
        prefix: &str,
        name: &str,
        addr: SocketAddr,
    ) -> TestNode {
        let listener = bind(addr);
        let addr = listener.local_addr().unwrap();
        let info = NodeInfo {
            id: name.to_owned(),
            url: Some(format!("http://{addr}")),
            capacity: 100,
        };
        // No chat here: nothing reads the cluster's events.
        let (cluster, _events) = Cluster::start(
            Redis::new(redis.clone()).unwrap(),
            test_config(prefix),
            info,
        )
        .await
        .unwrap();
        let mut config = SocketIoConfig::default();
        config.server_id = cluster.uid();
        let (svc, io): (_, SocketIo<A>) = SocketIo::builder()
            .with_config(config)
            .with_adapter::<A>(AdapterState(Some(cluster.clone())))
            .with_state(cluster.clone())
            .build_svc();
        io.ns("/", on_connect);
        let (mode, probes) = (Arc::new(AtomicU8::new(0)), Arc::new(AtomicU64::new(0)));
        let app = Router::new()
            .route("/healthz", get(healthz))
            .with_state(HealthState {
                mode: mode.clone(),
                probes: probes.clone(),
            })
            .route_service("/socket.io/", svc);
        let node = TestNode {
            addr,
            cluster,
            mode,
            probes,
            app,
            http: Mutex::new(None),
        };
        node.serve(listener);
        node
    }

    pub(crate) fn serve(&self, listener: tokio::net::TcpListener) {
        let app = self.app.clone();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        *self.http.lock().unwrap() = Some(task);
    }

    /// Closes the listener: connections are refused.
    pub(crate) fn stop_http(&self) {
        if let Some(t) = self.http.lock().unwrap().take() {
            t.abort();
        }
    }

    /// Listens again on the same port.
    pub(crate) fn restart_http(&self) {
        self.serve(bind(self.addr));
    }

    pub(crate) fn set_mode(&self, m: Mode) {
        self.mode.store(m as u8, Ordering::SeqCst);
    }

    /// As a killed process: no heartbeat, no HTTP.
    pub(crate) fn crash(&self) {
        self.cluster.halt();
        self.stop_http();
    }

    pub(crate) async fn client(&self, rooms: &[&str]) -> Client {
        Client::connect(self.addr, json!({ "rooms": rooms }))
            .await
            .unwrap()
    }

    pub(crate) fn uid(&self) -> String {
        self.cluster.uid().to_string()
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.crash();
    }
}

/// A listener on `addr` that may reuse a port just closed.
pub(crate) fn bind(addr: SocketAddr) -> tokio::net::TcpListener {
    let s = TcpSocket::new_v4().unwrap();
    s.set_reuseaddr(true).unwrap();
    s.bind(if addr.port() == 0 {
        "127.0.0.1:0".parse().unwrap()
    } else {
        addr
    })
    .unwrap();
    s.listen(128).unwrap()
}

pub(crate) async fn healthz(State(s): State<HealthState>) -> impl IntoResponse {
    s.probes.fetch_add(1, Ordering::SeqCst);
    match s.mode.load(Ordering::SeqCst) {
        0 => (
            StatusCode::OK,
            Json(json!({"status": "ok", "connections": 0})),
        ),
        1 => std::future::pending().await,
        _ => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"status": "broken"})),
        ),
    }
}

pub(crate) async fn on_connect(
    s: SocketRef<A>,
    IoState(cluster): IoState<Arc<Cluster>>,
    TryData(auth): TryData<Value>,
) {
    let rooms: Vec<String> = auth
        .ok()
        .and_then(|a| serde_json::from_value(a["rooms"].clone()).ok())
        .unwrap_or_default();
    cluster.join(&s, rooms).await.unwrap();
    let _ = s.emit("ready", &json!({ "sid": s.id.to_string() }));
}

/// Records the uids it is asked to clean up after, as the presence store would.
#[derive(Default)]
pub(crate) struct Reaped(pub(crate) Mutex<Vec<String>>);

#[async_trait]
impl NodeReaper for Reaped {
    async fn reap(&self, uid: &str) -> Result<(), StoreError> {
        self.0.lock().unwrap().push(uid.to_owned());
        Ok(())
    }
}

/// A running checker.
pub(crate) struct RunningChecker {
    pub(crate) checker: Arc<Checker>,
    /// The checker's own recorder.
    pub(crate) exporter: Arc<Exporter>,
    pub(crate) stop: CancellationToken,
    pub(crate) task: JoinHandle<()>,
}

impl RunningChecker {
    pub(crate) fn start(
        redis: &RedisConfig,
        prefix: &str,
        reaper: Option<Arc<Reaped>>,
    ) -> RunningChecker {
        Self::start_with(redis, prefix, reaper, |_| {})
    }

    /// [`RunningChecker::start`] with settings changed by `f`.
    pub(crate) fn start_with(
        redis: &RedisConfig,
        prefix: &str,
        reaper: Option<Arc<Reaped>>,
        f: impl FnOnce(&mut HealthConfig),
    ) -> RunningChecker {
        let mut config = HealthConfig::new(redis.clone());
        config.prefix = prefix.to_owned();
        config.interval = INTERVAL;
        config.failures = FAILURES;
        config.timeout = Duration::from_millis(100);
        f(&mut config);
        let exporter = Arc::new(Exporter::new());
        let mut checker =
            exporter.scope(|| Checker::new(Redis::new(redis.clone()).unwrap(), &config));
        if let Some(r) = reaper {
            checker = checker.with_reaper(r);
        }
        let checker = Arc::new(checker);
        let stop = CancellationToken::new();
        let task = tokio::spawn(checker.clone().run(stop.clone()));
        RunningChecker {
            checker,
            exporter,
            stop,
            task,
        }
    }

    pub(crate) async fn stop(self) {
        self.stop.cancel();
        self.task.await.unwrap();
    }

    /// The sample `name{labels}` of the checker's metrics now (0 when absent).
    pub(crate) fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        chat_testing::metrics::sample(&self.exporter.render(), name, labels).unwrap_or(0.0)
    }

    pub(crate) fn rounds(&self) -> u64 {
        self.checker.stats().rounds.load(Ordering::SeqCst)
    }
}

/// Polls `f` every 20ms until it is true; panics after `within`. Returns the time it took.
pub(crate) async fn until(
    what: &str,
    within: Duration,
    mut f: impl AsyncFnMut() -> bool,
) -> Duration {
    let start = Instant::now();
    loop {
        if f().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The node names chosen by `n` picks.
pub(crate) async fn picks(table: &NodeTable, n: usize) -> HashSet<String> {
    let mut out = HashSet::new();
    for _ in 0..n {
        if let chat_registry::Pick::Picked(p) = table.pick().await.unwrap() {
            out.insert(p.node_id);
        }
    }
    out
}

pub(crate) async fn server(table: &NodeTable, uid: &str) -> Option<Server> {
    table
        .list()
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.uid == uid)
}

pub(crate) async fn members(redis: &RedisServer, key: &str) -> HashSet<String> {
    redis.cli::<HashSet<String>>(&["SMEMBERS", key]).await
}

/// The longest a dead node may stay pickable: the issue's `interval × failures + lease`,
/// plus one interval for where in its round the failure began.
pub(crate) fn removal_bound() -> Duration {
    INTERVAL * (FAILURES + 1) + LEASE
}
