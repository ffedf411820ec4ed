//! A registry on its own key prefix in a Redis container, and fake node records.

use std::{collections::HashMap, sync::Arc};

use axum::{
    Router,
    body::Body,
    http::{HeaderMap, Request, StatusCode},
};
use chat_core::redis::{Redis, RedisConfig};
use chat_env::metrics::Exporter;
use chat_registry::{self as registry, Registry, RegistryConfig};
use chat_testing::{prefix, redis::RedisServer};
use http_body_util::BodyExt;
use redis::AsyncCommands;
use serde_json::Value;
use tower::ServiceExt;

pub const TOKEN: &str = "test-admin-token-0123456789";

/// A registry app on its own key prefix in a Redis container.
pub struct Fixture {
    pub redis: RedisServer,
    pub conn: redis::aio::MultiplexedConnection,
    pub prefix: String,
    pub config: RegistryConfig,
    /// The registry's routes with `GET /metrics`, on a recorder of its own.
    pub app: Router,
}

/// A node record as a heartbeat writes it.
pub struct FakeNode<'a> {
    pub uid: &'a str,
    pub url: Option<&'a str>,
    pub capacity: u64,
    pub connections: u64,
    /// Lease left, ms; negative: it ended that long ago.
    pub lease_ms: i64,
    pub draining: bool,
}

impl Default for FakeNode<'_> {
    fn default() -> Self {
        Self {
            uid: "n",
            url: Some("http://127.0.0.1:1"),
            capacity: 100,
            connections: 0,
            lease_ms: 60_000,
            draining: false,
        }
    }
}

impl Fixture {
    pub async fn start(f: impl FnOnce(&mut RegistryConfig)) -> Fixture {
        let redis = RedisServer::start().await;
        let prefix = prefix();
        let mut config = RegistryConfig::new(RedisConfig::Url(redis.url()));
        config.prefix = prefix.clone();
        config.admin_token = Some(TOKEN.into());
        f(&mut config);
        let exporter = Arc::new(Exporter::new());
        let registry =
            exporter.scope(|| Registry::new(Redis::new(config.redis.clone()).unwrap(), &config));
        let app = registry::app(registry).merge(chat_env::metrics::router(exporter, || async {}));
        let conn = redis.connect().await;
        Fixture {
            redis,
            conn,
            prefix,
            config,
            app,
        }
    }

    /// Redis time, ms.
    pub async fn now_ms(&self) -> i64 {
        let (s, us): (i64, i64) = redis::cmd("TIME")
            .query_async(&mut self.conn.clone())
            .await
            .unwrap();
        s * 1000 + us / 1000
    }

    /// Writes a node record as a heartbeat would; the name is the uid.
    pub async fn node(&self, n: FakeNode<'_>) {
        let now = self.now_ms().await;
        let mut c = self.conn.clone();
        let key = format!("{}node:{}", self.prefix, n.uid);
        let _: () = c
            .zadd(format!("{}nodes", self.prefix), n.uid, now + n.lease_ms)
            .await
            .unwrap();
        let fields = [
            ("id", n.uid.to_owned()),
            ("url", n.url.unwrap_or("").to_owned()),
            ("capacity", n.capacity.to_string()),
            ("connections", n.connections.to_string()),
            ("draining", u8::from(n.draining).to_string()),
            ("version", "test".to_owned()),
        ];
        let _: () = c.hset_multiple(&key, &fields).await.unwrap();
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (StatusCode, Value, HeaderMap) {
        call(&self.app, method, path, token, body).await
    }

    /// `GET /metrics`: the sample `name{labels}` (0 when absent).
    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let req = Request::get("/metrics").body(Body::empty()).unwrap();
        let res = self.app.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(
            res.headers()["content-type"],
            chat_env::metrics::CONTENT_TYPE
        );
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        chat_testing::metrics::sample(&text, name, labels).unwrap_or(0.0)
    }

    /// `n` picks, as node ids (or `503` for each refusal).
    pub async fn picks(&self, n: usize) -> Vec<String> {
        let mut out = Vec::new();
        for _ in 0..n {
            let (status, body, _) = self.call("GET", "/api/v1/servers/pick", None, None).await;
            out.push(match status {
                StatusCode::OK => body["nodeId"].as_str().unwrap().to_owned(),
                s => s.as_u16().to_string(),
            });
        }
        out
    }

    /// The listing, by uid.
    pub async fn servers(&self) -> HashMap<String, Value> {
        let (status, body, _) = self.call("GET", "/api/v1/servers", None, None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["servers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["uid"].as_str().unwrap().to_owned(), s.clone()))
            .collect()
    }
}

/// One request through the router, without a socket.
pub async fn call(
    app: &Router,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (StatusCode, Value, HeaderMap) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let req = req.body(Body::from(body.unwrap_or("").to_owned())).unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (parts.status, value, parts.headers)
}

/// Asserts an error answer: `status` and `{error: {code, message}}`.
#[track_caller]
pub fn assert_error(got: &(StatusCode, Value, HeaderMap), status: StatusCode, code: &str) {
    assert_eq!(got.0, status, "{}", got.1);
    assert_eq!(got.1["error"]["code"], code, "{}", got.1);
    assert!(
        got.1["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{}",
        got.1
    );
}

pub fn count(picks: &[String]) -> HashMap<&str, usize> {
    let mut m = HashMap::new();
    for p in picks {
        *m.entry(p.as_str()).or_default() += 1;
    }
    m
}
