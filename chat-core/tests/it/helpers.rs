//! Test servers on port 0 and small assertion helpers.

use std::net::SocketAddr;

use chat_core::{
    Chat, ChatBuilder, ChatHandle, Config, Limits, config::RedisSettings, redis::RedisConfig,
};
use chat_testing::metrics::sample;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::Value;
use tokio::net::TcpListener;

pub use chat_testing::{
    Client,
    redis::{MASTER_NAME, RedisServer, SentinelTopology},
    uid,
};

/// A chat server on a random loopback port.
///
/// The store comes from `CHAT_TEST_STORE`: `memory` (default) or `redis`, which gives every
/// server its own Redis container and makes it a (single-node) cluster member, so the same
/// handler tests run on both backends.
pub struct TestServer {
    pub addr: SocketAddr,
    pub handle: ChatHandle,
    /// The chat's own Prometheus recorder (see `scrape`).
    pub metrics: PrometheusHandle,
    _redis: Option<RedisServer>,
}

/// Whether the tests run on the Redis backend.
pub fn redis_backend() -> bool {
    std::env::var("CHAT_TEST_STORE").is_ok_and(|v| v == "redis")
}

impl TestServer {
    /// A server with default settings.
    pub async fn start() -> TestServer {
        Self::with(|_| {}).await
    }

    /// A server with settings changed by `f`.
    pub async fn with(f: impl FnOnce(&mut Config)) -> TestServer {
        Self::built(f, |b| b).await
    }

    /// A server with settings changed by `f` and seams plugged in by `build`.
    pub async fn built(
        f: impl FnOnce(&mut Config),
        build: impl FnOnce(ChatBuilder) -> ChatBuilder,
    ) -> TestServer {
        // RUST_LOG=debug shows the servers' logs under the failing test.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let mut config = Config {
            limits: Limits::default(),
            ..Config::default()
        };
        f(&mut config);
        let redis = if redis_backend() && config.redis.is_none() {
            let server = RedisServer::start().await;
            config.redis = Some(redis_settings(
                &server.url(),
                &format!("t{:08x}:", rand::random::<u32>()),
            ));
            Some(server)
        } else {
            None
        };
        // A recorder per server: two nodes in one test keep their metrics apart.
        let recorder = PrometheusBuilder::new()
            .set_buckets(&[0.001, 0.01, 0.1, 1.0, 10.0])
            .unwrap()
            .build_recorder();
        let metrics = recorder.handle();
        let chat = ::metrics::with_local_recorder(&recorder, || build(Chat::builder(config)))
            .build()
            .await
            .expect("build chat");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = chat.router();
        tokio::spawn(async move { axum::serve(listener, app).await });
        TestServer {
            addr,
            handle: chat.handle(),
            metrics,
            _redis: redis,
        }
    }

    /// A cluster node on an existing Redis: nodes with the same `prefix` form one cluster.
    pub async fn node(redis_url: &str, prefix: &str) -> TestServer {
        let settings = redis_settings(redis_url, prefix);
        Self::with(|c| c.redis = Some(settings)).await
    }

    /// The server's metrics, as `/metrics` would answer now.
    pub async fn scrape(&self) -> String {
        self.handle.update_metrics().await;
        self.metrics.render()
    }

    /// The sample `name{labels}` now (0 when absent).
    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        sample(&self.scrape().await, name, labels).unwrap_or(0.0)
    }

    /// Waits (10 s at most) until the sample `name{labels}` satisfies `ok`; returns it.
    pub async fn metric_until(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        ok: impl Fn(f64) -> bool,
    ) -> f64 {
        chat_testing::metrics::until(|| self.scrape(), name, labels, ok).await
    }

    /// Connects a development-mode client as `user`.
    pub async fn client(&self, user: &str) -> Client {
        Client::dev(self.addr, user).await
    }
}

/// Redis settings for a test: no replicas to wait for.
pub fn redis_settings(url: &str, prefix: &str) -> RedisSettings {
    RedisSettings {
        target: RedisConfig::Url(url.to_owned()),
        prefix: prefix.to_owned(),
        wait_replicas: 0,
        wait_timeout: std::time::Duration::from_secs(1),
    }
}

/// Asserts an ack is `{ok: false}` with `code`.
#[track_caller]
pub fn assert_code(ack: &Value, code: &str) {
    assert_eq!(ack["ok"], false, "expected {code}, got {ack}");
    assert_eq!(ack["error"]["code"], code, "{ack}");
    assert!(
        ack["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{ack}"
    );
}

/// Asserts an ack is `{ok: true}` and returns it.
#[track_caller]
pub fn ok(ack: Value) -> Value {
    assert_eq!(ack["ok"], true, "expected ok, got {ack}");
    ack
}
