//! Signing in over HTTP, and the chat trusting the session cookie.

use axum::http::{Method, StatusCode};
use chat_example_embed::sessions::LOG_IN_FIRST;
use serde_json::json;

use crate::helpers::{TestApp, cookie_of};

/// What a refused client's `connect_error` says.
fn refused() -> String {
    format!("unauthorized: {LOG_IN_FIRST}")
}

/// A client without a session cookie, or with one the app never issued, cannot connect, and
/// is told to log in.
#[tokio::test]
async fn connecting_without_a_session_is_refused() {
    let app = TestApp::start().await;
    assert_eq!(app.connect(None).await.err(), Some(refused()));
    let bogus = "session=0123456789abcdef0123456789abcdef";
    assert_eq!(app.connect(Some(bogus)).await.err(), Some(refused()));
    let other = "theme=dark";
    assert_eq!(app.connect(Some(other)).await.err(), Some(refused()));
}

/// After `/login`, the session cookie connects the chat as the user who logged in; the
/// cookie is out of scripts' reach.
#[tokio::test]
async fn the_session_cookie_connects_as_the_logged_in_user() {
    let app = TestApp::start().await;
    let body = json!({ "user": "alice" }).to_string();
    let (status, set_cookie, res) = app
        .request(Method::POST, "/login", None, "application/json", body)
        .await;
    assert_eq!((status, &res["user"]), (StatusCode::OK, &json!("alice")));
    let header = set_cookie.join("\n");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(header.contains(attribute), "{attribute} missing: {header}");
    }
    let alice = app.connect(Some(&cookie_of(&set_cookie))).await.unwrap();
    assert_eq!(alice.ready["user"], "alice");
}

/// A form post signs in too, as an HTML form would.
#[tokio::test]
async fn a_login_form_signs_in() {
    let app = TestApp::start().await;
    let form = "user=bob".to_owned();
    let (status, set_cookie, _) = app
        .request(
            Method::POST,
            "/login",
            None,
            "application/x-www-form-urlencoded",
            form,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let bob = app.connect(Some(&cookie_of(&set_cookie))).await.unwrap();
    assert_eq!(bob.ready["user"], "bob");
}

/// A user id outside the rules is refused at `/login`, with the chat's error shape.
#[tokio::test]
async fn an_invalid_user_id_cannot_log_in() {
    let app = TestApp::start().await;
    let (status, res) = app.post("/login", None, json!({ "user": "a b" })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{res}");
    assert_eq!(res["error"]["code"], "bad_request");
    let (status, _) = app.post("/login", None, json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// After `/logout`, the old cookie no longer connects, and the browser is told to forget it.
#[tokio::test]
async fn after_logout_the_cookie_is_refused() {
    let app = TestApp::start().await;
    let cookie = app.login("carol").await;
    let (status, set_cookie, _) = app
        .request(
            Method::POST,
            "/logout",
            Some(&cookie),
            "text/plain",
            String::new(),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(
        set_cookie.iter().any(|c| c.contains("Max-Age=0")),
        "{set_cookie:?}"
    );
    assert_eq!(app.connect(Some(&cookie)).await.err(), Some(refused()));
}
