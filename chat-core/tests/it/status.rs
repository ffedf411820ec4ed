//! Statuses: `presence:status` and `presence:idle` in `presence`, on one node and two.

use serde_json::{Value, json};

use crate::helpers::*;

/// The status a presence shows: `available` when it has none.
fn shown(p: &Value) -> &str {
    p["status"].as_str().unwrap_or("available")
}

/// `a`'s next online `presence` event showing `status` on `c`.
async fn status_of(c: &Client, a: &str, status: &str) -> Value {
    c.event("presence", |p| {
        p["user"] == a && p["online"] == true && shown(p) == status
    })
    .await
}

/// A status and its text reach subscribers and the user's other devices, stay in the
/// snapshot, outlive a reconnect, and are not shown while offline.
#[tokio::test]
async fn a_status_is_part_of_presence() {
    let srv = TestServer::start().await;
    let (a, b) = (uid("alice"), uid("bob"));
    let mut a1 = srv.client(&a).await;
    let a2 = srv.client(&a).await;
    let mut cb = srv.client(&b).await;
    let snap = ok(cb.ack("presence:subscribe", json!({"users": [a]})).await);
    assert_eq!(
        snap["presence"][&a],
        json!({"online": true, "lastSeen": null}),
        "available, as before statuses existed"
    );

    ok(a1
        .ack(
            "presence:status",
            json!({"status": "away", "text": " lunch "}),
        )
        .await);
    let seen = status_of(&cb, &a, "away").await;
    assert_eq!(seen["text"], "lunch");
    assert_eq!(seen["online"], true);
    assert_eq!(status_of(&a2, &a, "away").await["text"], "lunch");
    let snap = ok(cb.ack("presence:subscribe", json!({"users": [a]})).await);
    assert_eq!(
        snap["presence"][&a],
        json!({"online": true, "lastSeen": null, "status": "away", "text": "lunch"})
    );

    drop(a1);
    drop(a2);
    let off = cb.event("presence", |p| p["online"] == false).await;
    assert!(off.get("status").is_none(), "{off}");
    let snap = ok(cb.ack("presence:subscribe", json!({"users": [a]})).await);
    assert!(snap["presence"][&a].get("status").is_none(), "{snap}");
    let mut a3 = srv.client(&a).await;
    let on = cb.event("presence", |p| p["online"] == true).await;
    assert_eq!(
        (&on["status"], &on["text"]),
        (&json!("away"), &json!("lunch"))
    );

    ok(a3
        .ack("presence:status", json!({"status": "available"}))
        .await);
    let back = status_of(&cb, &a, "available").await;
    assert!(back.get("text").is_none(), "the text is cleared: {back}");
}

/// An available user is `idle` once every device reported inactivity; activity on one, a
/// status they set, or an idle device leaving changes what others see.
#[tokio::test]
async fn idle_when_every_device_is() {
    let srv = TestServer::start().await;
    let (a, b) = (uid("alice"), uid("bob"));
    let mut a1 = srv.client(&a).await;
    let mut a2 = srv.client(&a).await;
    let mut cb = srv.client(&b).await;
    ok(cb.ack("presence:subscribe", json!({"users": [a]})).await);

    ok(a1.ack("presence:idle", json!({"idle": true})).await);
    cb.barrier().await;
    assert!(
        cb.received("presence").is_empty(),
        "one device is still in use"
    );
    ok(a2.ack("presence:idle", json!({"idle": true})).await);
    status_of(&cb, &a, "idle").await;
    ok(a1.ack("presence:status", json!({"status": "busy"})).await);
    status_of(&cb, &a, "busy").await;
    ok(a1
        .ack("presence:status", json!({"status": "available"}))
        .await);
    status_of(&cb, &a, "idle").await;
    ok(a1.ack("presence:idle", json!({"idle": false})).await);
    status_of(&cb, &a, "available").await;
    // a2 is in use again, a1 idle: available; then a2 leaves, and a1 is all that is left.
    ok(a2.ack("presence:idle", json!({"idle": false})).await);
    ok(a1.ack("presence:idle", json!({"idle": true})).await);
    cb.barrier().await;
    assert!(
        cb.received("presence").is_empty(),
        "{:?}",
        cb.received("presence")
    );
    drop(a2);
    status_of(&cb, &a, "idle").await;
}

/// Bad statuses, long texts and too many changes are refused with their codes.
#[tokio::test]
async fn bad_statuses_are_refused() {
    let srv = TestServer::with(|c| {
        c.limits.status_rate = chat_core::config::Rate::new(0.001, 6);
    })
    .await;
    let mut ca = srv.client(&uid("alice")).await;
    for bad in [
        json!({"status": "idle"}),
        json!({"status": "sleeping"}),
        json!({}),
        json!({"status": "away", "extra": 1}),
    ] {
        assert_code(&ca.ack("presence:status", bad).await, "bad_request");
    }
    let long = "x".repeat(101);
    assert_code(
        &ca.ack("presence:status", json!({"status": "away", "text": long}))
            .await,
        "too_large",
    );
    assert_code(&ca.ack("presence:idle", json!({})).await, "bad_request");
    assert_code(
        &ca.ack("presence:idle", json!({"idle": 1})).await,
        "rate_limited",
    );
}

/// Across two nodes: a status set on one node and idle devices on both.
#[tokio::test]
async fn statuses_across_nodes() {
    let redis = RedisServer::start().await;
    let prefix = chat_testing::prefix();
    let (n0, n1) = (
        TestServer::node(&redis.url(), &prefix).await,
        TestServer::node(&redis.url(), &prefix).await,
    );
    let (a, b) = (uid("alice"), uid("bob"));
    let mut a0 = n0.client(&a).await;
    let mut a1 = n1.client(&a).await;
    let mut cb = n1.client(&b).await;
    ok(cb.ack("presence:subscribe", json!({"users": [a]})).await);
    ok(a0
        .ack(
            "presence:status",
            json!({"status": "busy", "text": "focus"}),
        )
        .await);
    assert_eq!(status_of(&cb, &a, "busy").await["text"], "focus");
    assert_eq!(status_of(&a1, &a, "busy").await["text"], "focus");
    ok(a0
        .ack("presence:status", json!({"status": "available"}))
        .await);
    status_of(&cb, &a, "available").await;
    ok(a0.ack("presence:idle", json!({"idle": true})).await);
    ok(a1.ack("presence:idle", json!({"idle": true})).await);
    status_of(&cb, &a, "idle").await;
    ok(a0.ack("presence:idle", json!({"idle": false})).await);
    status_of(&cb, &a, "available").await;
}
