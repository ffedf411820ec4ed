//! The HTTP API's answers to bad input and to the limits: the contract's codes and statuses.

use axum::http::{Method, StatusCode};
use chat_core::{Chat, Config};
use serde_json::{Value, json};

use super::{BEARER, TOKEN, app, call, send};
use crate::api::{ApiConfig, MAX_BODY, router};

#[tokio::test]
async fn bad_input_is_refused_with_the_contracts_codes() {
    let app = app().await;
    let long = "x".repeat(4001);
    let cases: Vec<(Method, &str, Value, StatusCode, &str)> = vec![
        (
            Method::POST,
            "/api/v1/messages",
            json!({"from": "a", "body": "x"}),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            Method::POST,
            "/api/v1/messages",
            json!({"from": "a", "to": "b", "group": "g", "body": "x"}),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            Method::POST,
            "/api/v1/messages",
            json!({"from": "a b", "to": "b", "body": "x"}),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            Method::POST,
            "/api/v1/messages",
            json!({"from": "@system", "to": "b", "body": "x"}),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            Method::POST,
            "/api/v1/messages",
            json!({"from": "a", "to": "b", "body": ""}),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            Method::POST,
            "/api/v1/messages",
            json!({"from": "a", "to": "b", "body": long}),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
        ),
        (
            Method::POST,
            "/api/v1/messages",
            json!({"from": "a", "to": "b", "body": "x", "extra": 1}),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            Method::POST,
            "/api/v1/messages",
            json!({"from": "a", "group": "nope", "body": "x"}),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::GET,
            "/api/v1/conversations/nonsense/messages",
            Value::Null,
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            Method::GET,
            "/api/v1/conversations/dm:a:b/messages?limit=0",
            Value::Null,
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            Method::GET,
            "/api/v1/conversations/dm:a:b/messages?limit=101",
            Value::Null,
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            Method::GET,
            "/api/v1/conversations/dm:a:b/messages?before=x",
            Value::Null,
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            Method::GET,
            "/api/v1/conversations/group:nope/messages",
            Value::Null,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::POST,
            "/api/v1/groups",
            json!({"name": "", "owner": "a"}),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            Method::POST,
            "/api/v1/groups",
            json!({"name": "n", "owner": "a", "admins": []}),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            Method::GET,
            "/api/v1/presence",
            Value::Null,
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            Method::GET,
            "/api/v1/presence?users=a,b%20c",
            Value::Null,
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            Method::POST,
            "/api/v1/users/a/disconnect",
            json!({"banSeconds": 0}),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            Method::POST,
            "/api/v1/users/a/disconnect",
            json!({"banSeconds": 40_000_000}),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            Method::POST,
            "/api/v1/users/a/disconnect",
            json!({"ban": 1}),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            Method::POST,
            "/api/v1/announcements",
            json!({"body": ""}),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            Method::GET,
            "/api/v1/nothing",
            Value::Null,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::PUT,
            "/api/v1/messages",
            Value::Null,
            StatusCode::METHOD_NOT_ALLOWED,
            "bad_request",
        ),
    ];
    for (method, uri, body, status, code) in cases {
        let shown = format!("{method} {uri} {body}");
        let (got, answer) = call(&app, method, uri, body).await;
        assert_eq!(got, status, "{shown}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{shown}: {answer}");
    }
    let users = (0..101)
        .map(|i| format!("u{i}"))
        .collect::<Vec<_>>()
        .join(",");
    let (status, _) = call(
        &app,
        Method::GET,
        &format!("/api/v1/presence?users={users}"),
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let huge = format!("{{\"body\": \"{}\"}}", "x".repeat(MAX_BODY));
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v1/announcements",
        BEARER,
        Some(huge.clone()),
    )
    .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::PAYLOAD_TOO_LARGE, &json!("too_large"))
    );
    let (status, _) = send(
        &app,
        Method::POST,
        "/api/v1/users/a/disconnect",
        BEARER,
        Some(huge),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v1/messages",
        BEARER,
        Some("{".into()),
    )
    .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::BAD_REQUEST, &json!("bad_request"))
    );
}

/// Group limits answer the socket protocol's codes, as the OpenAPI document says: a full
/// group `409 conflict`, a name over 100 characters or too many members `413 too_large`.
#[tokio::test]
async fn group_limits_answer_conflict_and_too_large() {
    let mut config = Config::default();
    config.limits.max_group_size = 2;
    let chat = Chat::builder(config).build().await.unwrap();
    let app = router(
        chat.handle(),
        &ApiConfig {
            token: Some(TOKEN.into()),
            ..ApiConfig::default()
        },
    );
    let (status, created) = call(
        &app,
        Method::POST,
        "/api/v1/groups",
        json!({"name": "Pair", "owner": "alice", "members": ["bob"]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let members = format!(
        "/api/v1/groups/{}/members",
        created["group"]["id"].as_str().unwrap()
    );
    let (status, body) = call(&app, Method::POST, &members, json!({"user": "carol"})).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::CONFLICT, &json!("conflict"))
    );
    for body in [
        json!({"name": "n".repeat(101), "owner": "alice"}),
        json!({"name": "Trio", "owner": "alice", "members": ["bob", "carol"]}),
    ] {
        let (status, answer) = call(&app, Method::POST, "/api/v1/groups", body.clone()).await;
        assert_eq!(
            (status, &answer["error"]["code"]),
            (StatusCode::PAYLOAD_TOO_LARGE, &json!("too_large")),
            "{body}"
        );
    }
}
