use chat_core::protocol::now_ms;
use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::{Value, json};

use crate::helpers::*;

const SECRET: &str = "integration-secret-0123456789";

fn token(claims: Value, secret: &str) -> Value {
    let t = encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap();
    json!({ "token": t })
}

/// With a secret, only valid unexpired tokens connect, as their `sub`.
#[tokio::test]
async fn jwt_mode() {
    let srv = TestServer::with(|c| c.auth_secret = Some(SECRET.into())).await;
    let exp = now_ms() / 1000 + 600;
    let c = Client::connect(srv.addr, token(json!({"sub": "zoe", "exp": exp}), SECRET))
        .await
        .unwrap();
    assert_eq!(c.ready["user"], "zoe");
    for auth in [
        json!({}),
        json!({"user": "zoe"}),
        json!({"token": 5}),
        json!({"token": "not.a.jwt"}),
        token(json!({"sub": "zoe", "exp": exp}), "some-other-secret-xyz"),
        token(json!({"sub": "zoe", "exp": exp - 1200}), SECRET),
        token(json!({"sub": "zoe"}), SECRET),
        token(json!({"sub": "zoe", "exp": exp, "nbf": exp - 10}), SECRET),
        token(json!({"sub": "z o e", "exp": exp}), SECRET),
    ] {
        let err = Client::connect(srv.addr, auth.clone())
            .await
            .err()
            .unwrap_or_else(|| panic!("{auth} connected"));
        assert!(err.starts_with("unauthorized"), "{err}");
    }
}

/// A token that expires while connected ends the session at expiry: the device gets
/// `expired` (with the reason), is disconnected, and receives nothing more.
#[tokio::test]
async fn expiry_while_connected() {
    let srv = TestServer::with(|c| c.auth_secret = Some(SECRET.into())).await;
    let exp = now_ms() / 1000 + 2;
    let ann = Client::connect(srv.addr, token(json!({"sub": "ann", "exp": exp}), SECRET))
        .await
        .unwrap();
    let later = token(json!({"sub": "ben", "exp": exp + 600}), SECRET);
    let mut ben = Client::connect(srv.addr, later).await.unwrap();
    let first = ok(ben
        .ack("message:send", json!({"to": "ann", "body": "1"}))
        .await);
    assert_eq!(ann.event("message", |_| true).await, first["message"]);
    let expired = ann
        .event_within(std::time::Duration::from_secs(10), "expired", |_| true)
        .await;
    assert!(now_ms() / 1000 >= exp, "told before expiry");
    assert!(
        expired["reason"]
            .as_str()
            .is_some_and(|r| r.contains("expired")),
        "{expired}"
    );
    ann.closed().await;
    // Ben's session goes on; what he sends now waits for Ann's next sync.
    ok(ben
        .ack("message:send", json!({"to": "ann", "body": "2"}))
        .await);
    assert_eq!(ann.received("message").len(), 0);
}

/// Development mode takes a valid user name, and refuses anything else.
#[tokio::test]
async fn development_mode() {
    let srv = TestServer::start().await;
    let c = Client::connect(srv.addr, json!({"user": "dev.user_1"}))
        .await
        .unwrap();
    assert_eq!(c.ready["user"], "dev.user_1");
    assert!(c.ready["node"].as_str().is_some_and(|n| !n.is_empty()));
    for auth in [
        json!({}),
        json!({"user": ""}),
        json!({"user": "a b"}),
        json!({"user": "x".repeat(65)}),
        json!(null),
    ] {
        let err = Client::connect(srv.addr, auth).await.err().unwrap();
        assert!(err.starts_with("unauthorized"), "{err}");
    }
}
