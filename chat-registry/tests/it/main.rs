//! The registry's HTTP API against a real Redis: picking, listing, admin registration and
//! drain, errors, and many concurrent picks through two registries at once.
//!
//! Most tests write node records the way the heartbeat does (`nodes` lease, `node:<uid>`
//! hash), so loads are under the test's control; the concurrency test uses real cluster
//! nodes.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::{collections::HashMap, sync::Arc, time::Duration};

use axum::{
    Router,
    body::{Body, Bytes},
    http::{HeaderMap, Request, StatusCode},
};
use chat_core::{
    cluster::{Cluster, NodeInfo},
    redis::{Redis, RedisConfig},
};
use chat_registry::{self as registry, Registry, RegistryConfig};
use chat_testing::{prefix, redis::RedisServer, test_config};
use http_body_util::{BodyExt, Empty};
use hyper_util::{client::legacy::Client as HttpClient, rt::TokioExecutor};
use redis::AsyncCommands;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tower::ServiceExt;

pub const TOKEN: &str = "test-admin-token-0123456789";

/// A registry app on its own key prefix in a Redis container.
struct Fixture {
    pub redis: RedisServer,
    pub conn: redis::aio::MultiplexedConnection,
    pub prefix: String,
    pub config: RegistryConfig,
    pub app: Router,
}

/// A node record as a heartbeat writes it.
struct FakeNode<'a> {
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
        let app = registry::app(Registry::new(
            Redis::new(config.redis.clone()).unwrap(),
            &config,
        ));
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

fn count(picks: &[String]) -> HashMap<&str, usize> {
    let mut m = HashMap::new();
    for p in picks {
        *m.entry(p.as_str()).or_default() += 1;
    }
    m
}

/// Picks go to the least-loaded node, load being (connections + picks) / capacity: a small
/// empty node first, then the nodes fill up evenly and the busiest is picked last.
#[tokio::test]
async fn picks_follow_load_and_capacity() {
    // Picks barely decay during the test, so loads are exact enough to predict.
    let fx = Fixture::start(|c| c.pick_half_life = Duration::from_secs(3600)).await;
    fx.node(FakeNode {
        uid: "a",
        connections: 50,
        ..FakeNode::default()
    })
    .await;
    fx.node(FakeNode {
        uid: "b",
        connections: 20,
        ..FakeNode::default()
    })
    .await;
    fx.node(FakeNode {
        uid: "c",
        capacity: 10,
        ..FakeNode::default()
    })
    .await;
    let picks = fx.picks(40).await;
    assert_eq!(picks[0], "c", "{picks:?}");
    // b needs 30 picks and c 5 to reach a's 0.5; until then a gets nothing.
    let early = count(&picks[..34]);
    assert_eq!(early.get("a"), None, "{picks:?}");
    assert!(early["b"] >= 29 && early["c"] >= 4, "{picks:?}");
    let s = fx.servers().await;
    let loads: Vec<f64> = ["a", "b", "c"]
        .map(|u| s[u]["load"].as_f64().unwrap())
        .to_vec();
    assert!(
        loads.iter().all(|l| (0.5..0.75).contains(l)),
        "loads after 40 picks: {loads:?}"
    );
    assert_eq!(s["c"]["connections"], 0);
    assert!(s["c"]["provisional"].as_f64().unwrap() > 4.0, "{}", s["c"]);
}

/// A burst of picks spreads over equal nodes instead of piling onto one, and the
/// provisional load fades: after a few half-lives the picks count for nothing.
#[tokio::test]
async fn provisional_load_spreads_a_burst_and_fades() {
    let fx = Fixture::start(|c| c.pick_half_life = Duration::from_millis(200)).await;
    for uid in ["a", "b", "c"] {
        fx.node(FakeNode {
            uid,
            capacity: 1000,
            ..FakeNode::default()
        })
        .await;
    }
    let picks = fx.picks(30).await;
    let c = count(&picks);
    for uid in ["a", "b", "c"] {
        assert!((9..=11).contains(&c[uid]), "{c:?}");
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let s = fx.servers().await;
        let prov: f64 = s.values().map(|v| v["provisional"].as_f64().unwrap()).sum();
        if prov < 0.5 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "provisional load never faded: {prov}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Nodes that cannot take clients are never picked: lease ended, draining (itself or by an
/// admin), removed by the health checker, no URL, capacity 0. With none left: 503.
#[tokio::test]
async fn unpickable_nodes_are_skipped_and_none_means_503() {
    let fx = Fixture::start(|_| {}).await;
    let empty = fx.call("GET", "/api/v1/servers/pick", None, None).await;
    assert_error(&empty, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert_eq!(empty.2["retry-after"], "1");

    fx.node(FakeNode {
        uid: "busy",
        connections: 99,
        ..FakeNode::default()
    })
    .await;
    fx.node(FakeNode {
        uid: "expired",
        lease_ms: -10,
        ..FakeNode::default()
    })
    .await;
    fx.node(FakeNode {
        uid: "draining",
        draining: true,
        ..FakeNode::default()
    })
    .await;
    fx.node(FakeNode {
        uid: "drained",
        ..FakeNode::default()
    })
    .await;
    fx.node(FakeNode {
        uid: "removed",
        ..FakeNode::default()
    })
    .await;
    fx.node(FakeNode {
        uid: "nourl",
        url: None,
        ..FakeNode::default()
    })
    .await;
    fx.node(FakeNode {
        uid: "nocap",
        capacity: 0,
        ..FakeNode::default()
    })
    .await;
    let (status, body, _) = fx
        .call("DELETE", "/api/v1/servers/drained", Some(TOKEN), None)
        .await;
    assert_eq!(
        (status, &body),
        (StatusCode::OK, &json!({"drained": ["drained"]}))
    );
    let _: () = fx
        .conn
        .clone()
        .sadd(format!("{}removed", fx.prefix), "removed")
        .await
        .unwrap();

    assert_eq!(count(&fx.picks(10).await), HashMap::from([("busy", 10)]));
    let s = fx.servers().await;
    assert_eq!(s.len(), 7);
    assert!(!s["expired"]["live"].as_bool().unwrap());
    assert!(s["draining"]["draining"].as_bool().unwrap());
    assert!(s["drained"]["draining"].as_bool().unwrap());
    assert!(s["removed"]["removed"].as_bool().unwrap() && !s["removed"]["live"].as_bool().unwrap());
    assert_eq!(s["nourl"]["url"], Value::Null);

    fx.call("DELETE", "/api/v1/servers/busy", Some(TOKEN), None)
        .await;
    let none = fx.call("GET", "/api/v1/servers/pick", None, None).await;
    assert_error(&none, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
}

/// The admin endpoints refuse a request without a token (401, with `WWW-Authenticate`),
/// with a wrong one (403), and everything when no token is configured (403).
#[tokio::test]
async fn admin_endpoints_need_the_token() {
    let fx = Fixture::start(|_| {}).await;
    let body = r#"{"id":"s1","url":"http://127.0.0.1:9","capacity":10}"#;
    for (method, path, b) in [
        ("POST", "/api/v1/servers", Some(body)),
        ("DELETE", "/api/v1/servers/s1", None),
    ] {
        let none = fx.call(method, path, None, b).await;
        assert_error(&none, StatusCode::UNAUTHORIZED, "unauthorized");
        assert_eq!(none.2["www-authenticate"], "Bearer");
        let wrong = fx
            .call(method, path, Some("test-admin-token-0123456780"), b)
            .await;
        assert_error(&wrong, StatusCode::FORBIDDEN, "forbidden");
        let short = fx.call(method, path, Some("x"), b).await;
        assert_error(&short, StatusCode::FORBIDDEN, "forbidden");
    }
    let req = Request::post("/api/v1/servers")
        .header("authorization", format!("Basic {TOKEN}"))
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap();
    let res = fx.app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // Nothing was registered by the refused requests.
    assert!(fx.servers().await.is_empty());

    let mut config = fx.config.clone();
    config.admin_token = None;
    let open = registry::app(Registry::new(
        Redis::new(config.redis.clone()).unwrap(),
        &config,
    ));
    let off = call(&open, "POST", "/api/v1/servers", Some(TOKEN), Some(body)).await;
    assert_error(&off, StatusCode::FORBIDDEN, "forbidden");
}

/// Bad admin input is refused with 400 and `bad_request` (413 `too_large` for a huge
/// body); an unknown node is 404 `not_found`; an id used by a self-registered node is
/// 409 `conflict`.
#[tokio::test]
async fn bad_admin_input_gets_a_code() {
    let fx = Fixture::start(|_| {}).await;
    fx.node(FakeNode {
        uid: "taken",
        ..FakeNode::default()
    })
    .await;
    let post = async |body: &str| {
        fx.call("POST", "/api/v1/servers", Some(TOKEN), Some(body))
            .await
    };
    for body in [
        "{not json",
        "[]",
        r#"{"url":"http://h","capacity":1}"#,
        r#"{"id":"a","url":"http://h","capacity":1,"extra":true}"#,
        r#"{"id":"a b","url":"http://h","capacity":1}"#,
        r#"{"id":"a","url":"ftp://h","capacity":1}"#,
        r#"{"id":"a","url":"no-scheme","capacity":1}"#,
        r#"{"id":"a","url":"http://h","capacity":0}"#,
        r#"{"id":"a","url":"http://h","capacity":-1}"#,
        r#"{"id":"a","url":"http://h","capacity":"ten"}"#,
    ] {
        assert_error(&post(body).await, StatusCode::BAD_REQUEST, "bad_request");
    }
    let req = Request::post("/api/v1/servers")
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "text/plain")
        .body(Body::from(r#"{"id":"a","url":"http://h","capacity":1}"#))
        .unwrap();
    let res = fx.app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let huge = format!(
        r#"{{"id":"a","url":"http://h/{}","capacity":1}}"#,
        "x".repeat(20_000)
    );
    assert_error(
        &post(&huge).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
    );
    assert_error(
        &post(r#"{"id":"taken","url":"http://h","capacity":1}"#).await,
        StatusCode::CONFLICT,
        "conflict",
    );
    let del = async |id: &str| {
        fx.call(
            "DELETE",
            &format!("/api/v1/servers/{id}"),
            Some(TOKEN),
            None,
        )
        .await
    };
    assert_error(&del("nobody").await, StatusCode::NOT_FOUND, "not_found");
    assert_error(&del("a%20b").await, StatusCode::BAD_REQUEST, "bad_request");
    assert_error(
        &fx.call("GET", "/api/v1/nothing", None, None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    // Only the fake node: nothing was registered.
    assert_eq!(fx.servers().await.len(), 1);
}

/// A node registered by an admin is listed and picked; re-registering replaces it; a drain
/// stops its picks, and registering it again ends the drain.
#[tokio::test]
async fn admin_registration_and_drain() {
    let fx = Fixture::start(|_| {}).await;
    let body = r#"{"id":"s1","url":"http://127.0.0.1:9/","capacity":10}"#;
    let (status, created, _) = fx
        .call("POST", "/api/v1/servers", Some(TOKEN), Some(body))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["id"], "s1");
    assert_eq!(created["url"], "http://127.0.0.1:9");
    assert_eq!(created["source"], "admin");
    assert_eq!(created["live"], true);
    let (status, body_json, _) = fx.call("GET", "/api/v1/servers/pick", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body_json["url"], "http://127.0.0.1:9");
    assert_eq!(body_json["nodeId"], "s1");

    let bigger = r#"{"id":"s1","url":"http://127.0.0.1:10","capacity":20}"#;
    let (status, updated, _) = fx
        .call("POST", "/api/v1/servers", Some(TOKEN), Some(bigger))
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(
        (updated["capacity"].as_u64(), updated["url"].as_str()),
        (Some(20), Some("http://127.0.0.1:10"))
    );

    let (status, drained, _) = fx
        .call("DELETE", "/api/v1/servers/s1", Some(TOKEN), None)
        .await;
    assert_eq!(
        (status, drained),
        (StatusCode::OK, json!({"drained": ["static-s1"]}))
    );
    assert_eq!(fx.picks(1).await, ["503"]);
    assert_eq!(fx.servers().await["static-s1"]["draining"], true);

    fx.call("POST", "/api/v1/servers", Some(TOKEN), Some(bigger))
        .await;
    assert_eq!(fx.picks(1).await, ["s1"]);
}

/// The OpenAPI document, `/healthz` and CORS are served; with Redis down, every endpoint
/// that needs it answers 503 `unavailable`, and all is well again once Redis is back.
#[tokio::test]
async fn openapi_healthz_cors_and_redis_outage() {
    let fx = Fixture::start(|c| c.cors_origins = Some(vec!["http://web.test".into()])).await;
    let (status, doc, _) = fx.call("GET", "/api/v1/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    for path in [
        "/api/v1/servers/pick",
        "/api/v1/servers",
        "/api/v1/servers/{id}",
    ] {
        assert!(doc["paths"][path].is_object(), "{path}");
    }
    assert!(doc["components"]["schemas"]["Picked"].is_object());
    assert_eq!(
        fx.call("GET", "/healthz", None, None).await.1,
        json!({"status": "ok"})
    );

    let preflight = Request::builder()
        .method("OPTIONS")
        .uri("/api/v1/servers/pick")
        .header("origin", "http://web.test")
        .header("access-control-request-method", "GET")
        .body(Body::empty())
        .unwrap();
    let res = fx.app.clone().oneshot(preflight).await.unwrap();
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "http://web.test"
    );
    let other = Request::get("/api/v1/servers")
        .header("origin", "http://evil.test")
        .body(Body::empty())
        .unwrap();
    let res = fx.app.clone().oneshot(other).await.unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());

    fx.node(FakeNode {
        uid: "a",
        ..FakeNode::default()
    })
    .await;
    fx.redis.stop().await;
    for path in ["/healthz", "/api/v1/servers/pick", "/api/v1/servers"] {
        let got = fx.call("GET", path, None, None).await;
        assert_error(&got, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    }
    fx.redis.resume().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while fx.picks(1).await != ["a"] {
        assert!(
            tokio::time::Instant::now() < deadline,
            "registry never recovered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// 1,000 picks from 50 tasks through two registries (real HTTP) over 3 live cluster nodes
/// end within ±10% of even: the pick is atomic across registries.
#[tokio::test]
async fn concurrent_picks_through_two_registries_spread_evenly() {
    let redis = RedisServer::start().await;
    let p = prefix();
    let rc = RedisConfig::Url(redis.url());
    let mut clusters: Vec<Arc<Cluster>> = Vec::new();
    for i in 0..3 {
        let info = NodeInfo {
            id: format!("n{i}"),
            url: Some(format!("http://127.0.0.1:{}", 40_000 + i)),
            capacity: 1000,
        };
        clusters.push(
            Cluster::start(Redis::new(rc.clone()).unwrap(), test_config(&p), info)
                .await
                .unwrap()
                .0,
        );
    }
    let mut config = RegistryConfig::new(rc);
    config.prefix = p.clone();
    let mut registries = Vec::new();
    for _ in 0..2 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        registries.push(listener.local_addr().unwrap());
        tokio::spawn(registry::run(
            listener,
            config.clone(),
            std::future::pending(),
        ));
    }
    let client: HttpClient<_, Empty<Bytes>> =
        HttpClient::builder(TokioExecutor::new()).build_http();
    let started = std::time::Instant::now();
    let tasks: Vec<_> = (0..50)
        .map(|t| {
            let (client, addr) = (client.clone(), registries[t % 2]);
            tokio::spawn(async move {
                let mut got = Vec::new();
                for _ in 0..20 {
                    let uri = format!("http://{addr}/api/v1/servers/pick");
                    let res = client.get(uri.parse().unwrap()).await.unwrap();
                    assert_eq!(res.status(), StatusCode::OK);
                    let body = res.into_body().collect().await.unwrap().to_bytes();
                    let v: Value = serde_json::from_slice(&body).unwrap();
                    got.push(v["nodeId"].as_str().unwrap().to_owned());
                }
                got
            })
        })
        .collect();
    let mut picks = Vec::new();
    for t in tasks {
        picks.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed();
    let c = count(&picks);
    eprintln!("1000 concurrent picks in {elapsed:?}: {c:?}");
    assert_eq!(picks.len(), 1000);
    for n in ["n0", "n1", "n2"] {
        let got = c.get(n).copied().unwrap_or(0);
        assert!((300..=367).contains(&got), "{n}: {got} of 1000 ({c:?})");
    }
    for cl in clusters {
        cl.shutdown().await;
    }
}
