use serde_json::json;

use crate::helpers::*;

/// Subscribers see the first device come online and the last one go, not the ones between.
#[tokio::test]
async fn presence_follows_first_and_last_device() {
    let srv = TestServer::start().await;
    let (a, b, n) = (uid("alice"), uid("bob"), uid("never"));
    let mut ca = srv.client(&a).await;
    let snap = ok(ca
        .ack("presence:subscribe", json!({"users": [b, n, a]}))
        .await)["presence"]
        .clone();
    assert_eq!(snap[&b], json!({"online": false, "lastSeen": null}));
    assert_eq!(snap[&n], json!({"online": false, "lastSeen": null}));
    assert_eq!(snap[&a]["online"], true);

    let b1 = srv.client(&b).await;
    let on = ca.event("presence", |v| v["user"] == b.as_str()).await;
    assert_eq!(on["online"], true);
    let b2 = srv.client(&b).await;
    drop(b2);
    drop(b1);
    let off = ca.event("presence", |v| v["user"] == b.as_str()).await;
    assert_eq!(
        off["online"], false,
        "an offline event came before the last device left: {off}"
    );
    assert!(off["lastSeen"].as_u64().is_some());
    let snap = ok(ca.ack("presence:subscribe", json!({"users": [b]})).await)["presence"].clone();
    assert_eq!(
        snap[&b],
        json!({"online": false, "lastSeen": off["lastSeen"]})
    );
}

/// DM partners get presence events without subscribing.
#[tokio::test]
async fn dm_partners_see_presence() {
    let srv = TestServer::start().await;
    let (a, b) = (uid("alice"), uid("bob"));
    let mut ca = srv.client(&a).await;
    ok(ca.ack("message:send", json!({"to": b, "body": "hi"})).await);
    let cb = srv.client(&b).await;
    ca.event("presence", |v| {
        v["user"] == b.as_str() && v["online"] == true
    })
    .await;
    drop(cb);
    ca.event("presence", |v| {
        v["user"] == b.as_str() && v["online"] == false
    })
    .await;
}

/// Subscription lists are bounded.
#[tokio::test]
async fn presence_limits() {
    let srv = TestServer::start().await;
    let mut ca = srv.client(&uid("alice")).await;
    let many: Vec<String> = (0..101).map(|i| format!("u{i}")).collect();
    assert_code(
        &ca.ack("presence:subscribe", json!({"users": many})).await,
        "too_large",
    );
    assert_code(
        &ca.ack("presence:subscribe", json!({"users": "bob"})).await,
        "bad_request",
    );
    assert_code(
        &ca.ack("presence:subscribe", json!({"users": ["a b"]}))
            .await,
        "bad_request",
    );
    for batch in 0..10 {
        let users: Vec<String> = (0..100).map(|i| format!("u{batch}-{i}")).collect();
        ok(ca.ack("presence:subscribe", json!({"users": users})).await);
    }
    assert_code(
        &ca.ack("presence:subscribe", json!({"users": ["one-more"]}))
            .await,
        "too_large",
    );
    ok(ca
        .ack("presence:subscribe", json!({"users": ["u0-1"]}))
        .await);
}
