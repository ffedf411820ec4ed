//! Each adapter operation across real nodes: broadcasts, flags, acks, fetch_sockets, rooms, remote join/leave/disconnect.

use std::sync::atomic::Ordering;

use chat_core::redis::RedisConfig;
use serde_json::json;

use chat_testing::redis::RedisServer;

use super::*;

/// A broadcast to a room reaches exactly its members on every node, once; a node with no
/// member receives nothing for it.
#[tokio::test]
async fn room_broadcast_reaches_members_once_and_only_their_nodes() {
    let redis = RedisServer::start().await;
    let n = nodes(&RedisConfig::Url(redis.url()), 3).await;
    let mut a = n[0].client(&["group:x"]).await;
    let b = n[1].client(&["group:x"]).await;
    let c = n[2].client(&["group:y"]).await;
    let before = n[2].cluster.stats().received.load(Ordering::SeqCst);
    assert_eq!(
        a.ack("emit", json!({"rooms": ["group:x"], "data": 1}))
            .await,
        json!(true)
    );
    assert_eq!(a.event("message", |_| true).await, json!(1));
    assert_eq!(b.event("message", |_| true).await, json!(1));
    // Entries from one node arrive in order: once this one is in, an earlier one would be.
    assert_eq!(
        a.ack("emit", json!({"rooms": ["group:y", "group:x"], "data": 2}))
            .await,
        json!(true)
    );
    assert_eq!(c.event("message", |_| true).await, json!(2));
    assert_eq!(b.event("message", |_| true).await, json!(2));
    a.event("message", |v| v == 2).await;
    assert!(
        c.received("message").is_empty() && b.received("message").is_empty(),
        "delivered twice"
    );
    let got = n[2].cluster.stats().received.load(Ordering::SeqCst) - before;
    assert_eq!(got, 1, "node 3 got traffic for a room it does not host");
}

/// `except`, `local` and `volatile` hold across nodes; rooms outside the routed prefixes go
/// to every node.
#[tokio::test]
async fn broadcast_flags_hold_across_nodes() {
    let redis = RedisServer::start().await;
    let n = nodes(&RedisConfig::Url(redis.url()), 2).await;
    let mut a = n[0].client(&["group:x"]).await;
    let b = n[1].client(&["group:x", "user:b"]).await;
    let b2 = n[1].client(&["group:x"]).await;
    let d = n[1].client(&["custom"]).await;
    a.ack(
        "emit",
        json!({"rooms": ["group:x"], "except": ["user:b"], "data": "except"}),
    )
    .await;
    a.ack(
        "emit",
        json!({"rooms": ["group:x"], "local": true, "data": "local"}),
    )
    .await;
    a.ack(
        "emit",
        json!({"rooms": ["group:x"], "volatile": true, "data": "volatile"}),
    )
    .await;
    a.ack("emit", json!({"rooms": ["custom"], "data": "fallback"}))
        .await;
    a.ack("emit", json!({"rooms": ["group:x"], "data": "marker"}))
        .await;
    d.event("message", |v| v == "fallback").await;
    for (name, client, want) in [
        ("b", &b, vec!["volatile", "marker"]),
        ("b2", &b2, vec!["except", "volatile", "marker"]),
    ] {
        for w in &want {
            client.event("message", |v| v == *w).await;
        }
        assert!(
            client.received("message").is_empty(),
            "{name} got {:?}",
            client.received("message")
        );
    }
    for w in ["local", "volatile", "marker"] {
        a.event("message", |v| v == w).await;
    }
}

/// A broadcast with acks collects the acks of the sockets on every node.
#[tokio::test]
async fn acks_come_back_from_every_node() {
    let redis = RedisServer::start().await;
    let n = nodes(&RedisConfig::Url(redis.url()), 3).await;
    let mut a = n[0].client(&["group:x"]).await;
    let _b = n[1].client(&["group:x"]).await;
    let _c = n[2].client(&["group:x"]).await;
    let _d = n[2].client(&["group:other"]).await;
    let res = a
        .ack("emit_ack", json!({"rooms": ["group:x"], "data": "ack me"}))
        .await;
    assert_eq!(res, json!({"acked": 3, "answers": 3}));
}

/// `fetch_sockets` and `rooms` see the sockets and rooms of every node.
#[tokio::test]
async fn fetch_sockets_and_rooms_span_nodes() {
    let redis = RedisServer::start().await;
    let n = nodes(&RedisConfig::Url(redis.url()), 3).await;
    let mut a = n[0].client(&["group:x"]).await;
    let b = n[1].client(&["group:x", "group:b"]).await;
    let c = n[2].client(&["group:x", "custom:c"]).await;
    let mut want = vec![sid(&a), sid(&b), sid(&c)];
    want.sort();
    assert_eq!(
        a.ack("fetch", json!({"rooms": ["group:x"]})).await,
        json!(want)
    );
    assert_eq!(
        a.ack("fetch", json!({"rooms": ["group:b"]})).await,
        json!([sid(&b)])
    );
    let rooms = a.ack("rooms", json!({})).await;
    for r in ["group:x", "group:b", "custom:c"] {
        assert!(
            rooms.as_array().unwrap().contains(&json!(r)),
            "{r} missing from {rooms}"
        );
    }
}

/// Remote join, leave and disconnect act on sockets of other nodes; a remote join is routed
/// as soon as it is acknowledged.
#[tokio::test]
async fn remote_join_leave_and_disconnect() {
    let redis = RedisServer::start().await;
    let n = nodes(&RedisConfig::Url(redis.url()), 2).await;
    let mut a = n[0].client(&["user:a"]).await;
    let b = n[1].client(&["user:b"]).await;
    assert_eq!(
        a.ack(
            "join_remote",
            json!({"rooms": ["user:b"], "join": ["group:new"]})
        )
        .await,
        json!("ok")
    );
    a.ack("emit", json!({"rooms": ["group:new"], "data": "joined"}))
        .await;
    b.event("message", |v| v == "joined").await;
    a.ack(
        "leave_remote",
        json!({"rooms": ["user:b"], "leave": ["group:new"]}),
    )
    .await;
    a.ack(
        "emit",
        json!({"rooms": ["group:new"], "data": "after leave"}),
    )
    .await;
    a.ack("emit", json!({"rooms": ["user:b"], "data": "marker"}))
        .await;
    b.event("message", |v| v == "marker").await;
    assert!(
        b.received("message").is_empty(),
        "{:?}",
        b.received("message")
    );
    // A socket's own room reaches it from any node.
    a.ack("emit", json!({"rooms": [sid(&b)], "data": "to sid"}))
        .await;
    b.event("message", |v| v == "to sid").await;
    a.ack("disconnect_remote", json!({"rooms": ["user:b"]}))
        .await;
    b.closed().await;
}
