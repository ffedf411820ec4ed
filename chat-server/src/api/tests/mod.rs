//! The HTTP API on an embedded chat: tokens, the contract's shapes and statuses, bad input.
//! The cluster-wide behaviour (two nodes over Redis, sockets receiving) is in
//! `chat-server/tests/it/api.rs` and `e2e/test/api.test.mjs`.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use axum::{
    Router,
    body::Body,
    http::{Method, Request, StatusCode, header},
};
use chat_core::{Chat, Config, config::Rate};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::{ApiConfig, router};

const TOKEN: &str = "api-test-token-0123456789";

async fn app_with(config: ApiConfig) -> Router {
    let chat = Chat::builder(Config::default()).build().await.unwrap();
    router(chat.handle(), &config)
}

async fn app() -> Router {
    app_with(ApiConfig {
        token: Some(TOKEN.into()),
        ..ApiConfig::default()
    })
    .await
}

/// Sends a request with the token (or `auth` as the Authorization header); the status and
/// the JSON body (`Null` when empty).
async fn send(
    app: &Router,
    method: Method,
    uri: &str,
    auth: Option<&str>,
    body: Option<String>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(auth) = auth {
        req = req.header(header::AUTHORIZATION, auth);
    }
    let req = match body {
        Some(b) => req
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(b)),
        None => req.body(Body::empty()),
    }
    .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let value = match bytes.is_empty() {
        true => Value::Null,
        false => serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes))),
    };
    (status, value)
}

const BEARER: Option<&str> = Some("Bearer api-test-token-0123456789");

async fn call(app: &Router, method: Method, uri: &str, body: Value) -> (StatusCode, Value) {
    let body = (!body.is_null()).then(|| body.to_string());
    send(app, method, uri, BEARER, body).await
}

#[tokio::test]
async fn every_route_needs_the_token() {
    let app = app().await;
    let routes = [
        (Method::POST, "/api/v1/messages"),
        (Method::GET, "/api/v1/conversations/dm:a:b/messages"),
        (Method::POST, "/api/v1/groups"),
        (Method::POST, "/api/v1/groups/g/members"),
        (Method::DELETE, "/api/v1/groups/g/members/u"),
        (Method::GET, "/api/v1/presence?users=a"),
        (Method::POST, "/api/v1/users/u/disconnect"),
        (Method::POST, "/api/v1/announcements"),
    ];
    for (method, uri) in routes.clone() {
        let (status, body) = send(&app, method.clone(), uri, None, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {uri}");
        assert_eq!(body["error"]["code"], "unauthorized");
        let (status, body) = send(&app, method.clone(), uri, Some("Bearer wrong"), None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {uri}");
        assert_eq!(body["error"]["code"], "forbidden");
        let (status, _) = send(&app, method.clone(), uri, Some(TOKEN), None).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "no Bearer scheme: {method} {uri}"
        );
    }
    let off = app_with(ApiConfig::default()).await;
    for (method, uri) in routes {
        // Off: 403, with a token or without one.
        for auth in [BEARER, None] {
            let (status, body) = send(&off, method.clone(), uri, auth, None).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{method} {uri}");
            let message = body["error"]["message"].as_str().unwrap();
            assert!(message.contains("CHAT_API_TOKEN"), "{message}");
        }
    }
}

#[tokio::test]
async fn messages_are_posted_idempotently_and_read_back() {
    let app = app().await;
    let post = json!({"from": "alice", "to": "bob", "body": "hi", "clientId": "c1"});
    let (status, first) = call(&app, Method::POST, "/api/v1/messages", post.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(first["message"]["conversation"], "dm:alice:bob");
    assert_eq!(first["message"]["from"], "alice");
    assert_eq!(first["duplicate"], false);
    let (status, again) = call(&app, Method::POST, "/api/v1/messages", post).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["message"]["id"], first["message"]["id"]);
    let clash = json!({"from": "alice", "to": "bob", "body": "other", "clientId": "c1"});
    let (status, body) = call(&app, Method::POST, "/api/v1/messages", clash).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::CONFLICT, &json!("conflict"))
    );

    let system = json!({"to": "bob", "body": "welcome"});
    let (status, sys) = call(&app, Method::POST, "/api/v1/messages", system).await;
    assert_eq!(status, StatusCode::CREATED, "{sys}");
    assert_eq!(sys["message"]["from"], "@system");

    let uri = "/api/v1/conversations/dm:alice:bob/messages?limit=1";
    let (status, page) = call(&app, Method::GET, uri, Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["messages"][0]["body"], "hi");
    assert_eq!(page["hasMore"], false);
    let (_, sys_page) = call(
        &app,
        Method::GET,
        &format!(
            "/api/v1/conversations/{}/messages",
            sys["message"]["conversation"].as_str().unwrap()
        ),
        Value::Null,
    )
    .await;
    assert_eq!(sys_page["messages"][0]["body"], "welcome");
}

#[tokio::test]
async fn groups_are_created_and_their_members_changed() {
    let app = app().await;
    let (status, created) = call(
        &app,
        Method::POST,
        "/api/v1/groups",
        json!({"name": "Team", "owner": "alice", "members": ["bob"]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["group"]["id"].as_str().unwrap().to_owned();
    assert_eq!(created["group"]["members"], json!(["alice", "bob"]));
    let members = format!("/api/v1/groups/{id}/members");
    let (status, added) = call(&app, Method::POST, &members, json!({"user": "carol"})).await;
    assert_eq!((status, &added["added"]), (StatusCode::OK, &json!(true)));
    let (_, again) = call(&app, Method::POST, &members, json!({"user": "carol"})).await;
    assert_eq!(again["added"], false);
    let (status, posted) = call(
        &app,
        Method::POST,
        "/api/v1/messages",
        json!({"from": "carol", "group": id, "body": "hello team"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{posted}");
    let carol = format!("{members}/carol");
    let (status, body) = call(&app, Method::DELETE, &carol, Value::Null).await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    let (status, body) = call(&app, Method::DELETE, &carol, Value::Null).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::NOT_FOUND, &json!("not_found"))
    );
    let (status, body) = call(
        &app,
        Method::POST,
        "/api/v1/messages",
        json!({"from": "carol", "group": id, "body": "still here?"}),
    )
    .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::FORBIDDEN, &json!("forbidden"))
    );
    for uri in [
        "/api/v1/groups/nope/members",
        "/api/v1/groups/nope/members/bob",
    ] {
        let method = match uri.ends_with("bob") {
            true => Method::DELETE,
            false => Method::POST,
        };
        let (status, _) = call(&app, method, uri, json!({"user": "bob"})).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
    }
}

#[tokio::test]
async fn presence_disconnect_and_announcements() {
    let app = app().await;
    let (status, body) = call(
        &app,
        Method::GET,
        "/api/v1/presence?users=alice,bob",
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["presence"]["alice"]["online"], false);
    assert_eq!(body["presence"]["bob"]["online"], false);
    let (status, body) = call(
        &app,
        Method::POST,
        "/api/v1/users/alice/disconnect",
        Value::Null,
    )
    .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"disconnected": 0})));
    let (status, body) = call(
        &app,
        Method::POST,
        "/api/v1/users/alice/disconnect",
        json!({"banSeconds": 60}),
    )
    .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"disconnected": 0})));
    let (status, body) = call(
        &app,
        Method::POST,
        "/api/v1/announcements",
        json!({"body": "hello all"}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["body"], "hello all");
    assert!(body["ts"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn the_api_rate_is_enforced() {
    let app = app_with(ApiConfig {
        token: Some(TOKEN.into()),
        rate: Rate::new(0.01, 3),
    })
    .await;
    let uri = "/api/v1/presence?users=a";
    for _ in 0..3 {
        assert_eq!(
            call(&app, Method::GET, uri, Value::Null).await.0,
            StatusCode::OK
        );
    }
    let (status, body) = call(&app, Method::GET, uri, Value::Null).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::TOO_MANY_REQUESTS, &json!("rate_limited"))
    );
}

#[tokio::test]
async fn the_openapi_document_lists_every_route() {
    let app = app().await;
    let (status, doc) = send(&app, Method::GET, "/api/v1/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/api/v1/messages",
        "/api/v1/conversations/{id}/messages",
        "/api/v1/search",
        "/api/v1/groups",
        "/api/v1/groups/{id}/members",
        "/api/v1/groups/{id}/members/{user}",
        "/api/v1/presence",
        "/api/v1/users/{id}/disconnect",
        "/api/v1/announcements",
    ] {
        assert!(paths.contains_key(path), "{path} missing");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["api"]["scheme"],
        "bearer"
    );
    assert!(doc["components"]["schemas"]["Message"].is_object());
    assert!(doc["components"]["schemas"]["SearchResults"].is_object());
}

mod bad_input;
