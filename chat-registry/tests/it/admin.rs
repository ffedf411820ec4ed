//! The admin endpoints, errors, OpenAPI, CORS and a Redis outage.

use std::time::Duration;

use axum::{
    body::Body,
    http::{Request, StatusCode},
};
use chat_core::redis::Redis;
use chat_registry::{self as registry, Registry};
use serde_json::json;
use tower::ServiceExt;

use crate::helpers::*;

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
