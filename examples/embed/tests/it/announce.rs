//! `POST /announce-system`: the app's own route posting system messages.

use axum::http::StatusCode;
use serde_json::json;

use crate::helpers::TestApp;

/// A signed-in session's `/announce-system` reaches the recipient's connected socket as a
/// `message` from `@system`, and answers `201` with the stored message.
#[tokio::test]
async fn a_system_message_reaches_the_recipient() {
    let app = TestApp::start().await;
    let admin = app.login("alice").await;
    let (_, bob) = app.user("bob").await;

    let (status, res) = app
        .post(
            "/announce-system",
            Some(&admin),
            json!({ "to": "bob", "body": "welcome aboard" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{res}");
    assert_eq!(res["message"]["from"], "@system");

    let got = bob
        .event("message", |m| m["body"] == "welcome aboard")
        .await;
    assert_eq!(got["from"], "@system");
    assert_eq!(got["id"], res["message"]["id"]);
}

/// Without a session, `/announce-system` is `401` and nothing is posted.
#[tokio::test]
async fn announcing_needs_a_session() {
    let app = TestApp::start().await;
    let (bob_cookie, mut bob) = app.user("bob").await;
    let body = json!({ "to": "bob", "body": "hi" });
    let (status, res) = app.post("/announce-system", None, body.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{res}");
    assert_eq!(res["error"]["code"], "unauthorized");
    // A session id the app never issued.
    let forged = format!("{bob_cookie}x");
    let (status, _) = app.post("/announce-system", Some(&forged), body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    bob.barrier().await;
    assert!(bob.received("message").is_empty());
}

/// The word list moderates system messages too: `403`, and nothing reaches the recipient.
#[tokio::test]
async fn system_messages_are_moderated_too() {
    let app = TestApp::start().await;
    let admin = app.login("alice").await;
    let (_, mut bob) = app.user("bob").await;
    let body = json!({ "to": "bob", "body": "Scam alert" });
    let (status, res) = app.post("/announce-system", Some(&admin), body).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{res}");
    assert_eq!(res["error"]["code"], "forbidden");
    bob.barrier().await;
    assert!(bob.received("message").is_empty());
}
