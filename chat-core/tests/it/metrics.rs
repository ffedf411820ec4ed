//! Metrics: each family moves when its event happens, read from the server's scrape, on
//! the store under test (`CHAT_TEST_STORE`) and across two nodes for the cluster families.

use std::time::Duration;

use chat_core::config::Rate;
use serde_json::json;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::helpers::*;

/// A handshake with bad credentials is refused and counted as `unauthorized`, not accepted;
/// the node's capacity is a gauge.
#[tokio::test]
async fn unauthorized_refusals_and_capacity_gauge() {
    let srv = TestServer::with(|c| {
        c.capacity = 2;
        c.auth_secret = Some("metrics-secret-0123456789".into());
    })
    .await;
    assert_eq!(srv.metric("chat_node_capacity", &[]).await, 2.0);
    let refused = |r: &'static str| [("reason", r)];

    let err = Client::connect(srv.addr, json!({"user": "x"})).await.err();
    assert!(err.is_some_and(|e| e.starts_with("unauthorized")));
    srv.metric_until(
        "chat_handshakes_refused_total",
        &refused("unauthorized"),
        |v| v == 1.0,
    )
    .await;
    assert_eq!(srv.metric("chat_handshakes_total", &[]).await, 0.0);
}

/// A node holding `CHAT_CAPACITY` sockets refuses the next handshake with
/// `unavailable: node is at capacity`, and takes one again once a socket leaves.
#[tokio::test]
async fn capacity_refuses_handshakes() {
    let srv = TestServer::with(|c| c.capacity = 2).await;
    let a = srv.client(&uid("alice")).await;
    let _b = srv.client(&uid("bob")).await;
    srv.metric_until("chat_handshakes_total", &[], |v| v == 2.0)
        .await;
    let err = Client::connect(srv.addr, json!({"user": uid("carol")}))
        .await
        .err();
    assert_eq!(err.as_deref(), Some("unavailable: node is at capacity"));
    assert_eq!(
        srv.metric("chat_handshakes_refused_total", &[("reason", "capacity")])
            .await,
        1.0
    );
    drop(a);
    // The slot comes back when the server sees the socket go.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match Client::connect(srv.addr, json!({"user": uid("carol")})).await {
            Ok(_) => break,
            Err(e) => assert!(tokio::time::Instant::now() < deadline, "still refused: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    srv.metric_until("chat_handshakes_total", &[], |v| v == 3.0)
        .await;
}

/// A draining node refuses handshakes, counted as `draining`.
#[tokio::test]
async fn draining_refusals_are_counted() {
    let srv = TestServer::with(|c| c.drain_timeout = Duration::from_secs(5)).await;
    let c = srv.client(&uid("alice")).await;
    let handle = srv.handle.clone();
    let drain = tokio::spawn(async move { handle.shutdown().await });
    // `drain` reaches the client once shutdown has begun.
    c.event("drain", |_| true).await;
    let err = Client::connect(srv.addr, json!({"user": uid("bob")}))
        .await
        .err();
    assert!(err.is_some_and(|e| e.contains("shutting down")));
    assert_eq!(
        srv.metric("chat_handshakes_refused_total", &[("reason", "draining")])
            .await,
        1.0
    );
    drop(c);
    drain.await.unwrap();
}

/// Events are counted by name and outcome: `ok`, an error code, unknown events, and
/// `rate_limited` (the rate-limited count).
#[tokio::test]
async fn events_by_name_and_outcome() {
    let srv = TestServer::with(|c| c.limits.event_rate = Rate::new(0.01, 3)).await;
    let mut c = srv.client(&uid("alice")).await;
    let ev = |e: &'static str, code: &'static str| [("event", e), ("code", code)];
    ok(c.ack("conversations", json!({})).await);
    assert_code(
        &c.ack("history", json!({"conversation": 5})).await,
        "bad_request",
    );
    assert_code(&c.ack("nope", json!({})).await, "bad_request");
    ok(c.ack("conversations", json!({})).await);
    assert_code(&c.ack("conversations", json!({})).await, "rate_limited");
    assert_eq!(
        srv.metric("chat_events_total", &ev("conversations", "ok"))
            .await,
        2.0
    );
    assert_eq!(
        srv.metric("chat_events_total", &ev("history", "bad_request"))
            .await,
        1.0
    );
    assert_eq!(
        srv.metric("chat_events_total", &ev("unknown", "bad_request"))
            .await,
        1.0
    );
    assert_eq!(
        srv.metric("chat_events_total", &ev("conversations", "rate_limited"))
            .await,
        1.0
    );
}

/// A message on one node: stored once, delivered locally with its latency, its ack's
/// latency recorded; on Redis, the store's round trips are timed.
#[tokio::test]
async fn messages_stored_and_delivered_here() {
    let srv = TestServer::start().await;
    let (a, b) = (uid("alice"), uid("bob"));
    let mut ca = srv.client(&a).await;
    let cb = srv.client(&b).await;
    let redis_calls = |text: &str| {
        ["command", "pipeline", "script"]
            .iter()
            .map(|k| {
                chat_testing::metrics::sample(
                    text,
                    "chat_redis_command_duration_seconds_count",
                    &[("kind", k)],
                )
                .unwrap_or(0.0)
            })
            .sum::<f64>()
    };
    let before = redis_calls(&srv.scrape().await);
    ok(ca.ack("message:send", json!({"to": b, "body": "hi"})).await);
    cb.event("message", |_| true).await;
    assert_eq!(srv.metric("chat_messages_stored_total", &[]).await, 1.0);
    assert_eq!(
        srv.metric("chat_deliveries_total", &[("scope", "local")])
            .await,
        1.0
    );
    assert_eq!(
        srv.metric("chat_delivery_latency_seconds_count", &[]).await,
        1.0
    );
    // bob's device acks the delivery.
    srv.metric_until("chat_ack_latency_seconds_count", &[], |v| v >= 1.0)
        .await;
    // A retried send is a duplicate: not stored again.
    ok(ca
        .ack(
            "message:send",
            json!({"to": b, "body": "x", "clientId": "k"}),
        )
        .await);
    ok(ca
        .ack(
            "message:send",
            json!({"to": b, "body": "x", "clientId": "k"}),
        )
        .await);
    assert_eq!(srv.metric("chat_messages_stored_total", &[]).await, 2.0);
    let after = redis_calls(&srv.scrape().await);
    if redis_backend() {
        assert!(after > before, "redis calls {before} -> {after}");
    } else {
        assert_eq!(after, 0.0, "no redis in memory mode");
    }
}

/// Sockets are counted by transport: WebSocket and long-polling.
#[tokio::test]
async fn connections_by_transport() {
    let srv = TestServer::start().await;
    let ws = |n| {
        srv.metric_until(
            "chat_connections",
            &[("transport", "websocket")],
            move |v| v == n,
        )
    };
    let polling = |n| {
        srv.metric_until("chat_connections", &[("transport", "polling")], move |v| {
            v == n
        })
    };
    let c = srv.client(&uid("alice")).await;
    ws(1.0).await;
    let _p = polling_session(srv.addr, &uid("bob")).await;
    polling(1.0).await;
    drop(c);
    ws(0.0).await;
}

/// Redis errors are counted: a command on a connection Redis closed fails.
#[tokio::test]
async fn redis_errors_are_counted() {
    let redis = RedisServer::start().await;
    let srv = TestServer::node(&redis.url(), &format!("m{:08x}:", rand::random::<u32>())).await;
    let mut c = srv.client(&uid("alice")).await;
    ok(c.ack("conversations", json!({})).await);
    redis.stop().await;
    let ack = c.ack("conversations", json!({})).await;
    assert_code(&ack, "unavailable");
    let errors = |text: &str| {
        ["command", "pipeline", "script"]
            .iter()
            .map(|k| {
                chat_testing::metrics::sample(text, "chat_redis_errors_total", &[("kind", k)])
                    .unwrap_or(0.0)
            })
            .sum::<f64>()
    };
    assert!(errors(&srv.metrics.render()) >= 1.0);
    redis.resume().await;
}

/// Across two nodes: the sender's node counts a remote delivery and the entry it sent, the
/// recipient's node the entry it read (with its inbox lag) and a local delivery; both see
/// two live nodes. A halted reader leaves entries in its inbox: the backlog shows them.
#[tokio::test]
async fn cluster_families_across_two_nodes() {
    let redis = RedisServer::start().await;
    let prefix = format!("m{:08x}:", rand::random::<u32>());
    let n0 = TestServer::node(&redis.url(), &prefix).await;
    let n1 = TestServer::node(&redis.url(), &prefix).await;
    let (a, b) = (uid("alice"), uid("bob"));
    let mut ca = n0.client(&a).await;
    let cb = n1.client(&b).await;
    n0.metric_until("chat_cluster_live_nodes", &[], |v| v == 2.0)
        .await;
    n1.metric_until("chat_cluster_live_nodes", &[], |v| v == 2.0)
        .await;
    let remote = [("scope", "remote")];
    let local = [("scope", "local")];
    let r0 = n0.metric("chat_deliveries_total", &remote).await;
    let l1 = n1.metric("chat_deliveries_total", &local).await;
    let lag1 = n1.metric("chat_cluster_inbox_lag_seconds_count", &[]).await;
    ok(ca
        .ack("message:send", json!({"to": b, "body": "across"}))
        .await);
    cb.event("message", |m| m["body"] == "across").await;
    assert_eq!(n0.metric("chat_deliveries_total", &remote).await, r0 + 1.0);
    n0.metric_until("chat_cluster_entries_sent_total", &[], |v| v >= 1.0)
        .await;
    n1.metric_until("chat_deliveries_total", &local, |v| v == l1 + 1.0)
        .await;
    n1.metric_until("chat_cluster_entries_received_total", &[], |v| v >= 1.0)
        .await;
    n1.metric_until("chat_cluster_inbox_lag_seconds_count", &[], |v| v > lag1)
        .await;
    assert_eq!(n0.metric("chat_messages_stored_total", &[]).await, 1.0);
    assert_eq!(n1.metric("chat_messages_stored_total", &[]).await, 0.0);

    // A broadcast to every client goes to the other node; the outbox has drained.
    let broadcasts = [("scope", "remote")];
    let before = n0
        .metric("chat_cluster_broadcasts_total", &broadcasts)
        .await;
    n0.handle.announce("to everyone").await.unwrap();
    cb.event("announcement", |a| a["body"] == "to everyone")
        .await;
    n0.metric_until("chat_cluster_broadcasts_total", &broadcasts, |v| v > before)
        .await;
    n0.metric_until("chat_cluster_outbox_backlog", &[], |v| v == 0.0)
        .await;

    // Node 1's reader stops (as if frozen); what node 0 sends waits in its inbox.
    n1.handle.cluster().unwrap().halt();
    ok(ca
        .ack("message:send", json!({"to": b, "body": "waits"}))
        .await);
    n1.metric_until("chat_cluster_inbox_backlog", &[], |v| v >= 1.0)
        .await;
}

/// A long-polling Socket.IO session connected as `user`: its Engine.IO handshake and the
/// Socket.IO connect, over plain HTTP requests. The session lives until the server times it
/// out (no poll follows).
async fn polling_session(addr: std::net::SocketAddr, user: &str) -> String {
    let open = http(addr, "GET", "/socket.io/?EIO=4&transport=polling", "").await;
    let sid = open
        .split("\"sid\":\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("engine.io open packet")
        .to_owned();
    let path = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
    let auth = json!({ "user": user });
    let posted = http(addr, "POST", &path, &format!("40{auth}")).await;
    assert!(posted.contains("ok"), "{posted}");
    sid
}

/// One HTTP/1.1 request on its own connection; the response body.
async fn http(addr: std::net::SocketAddr, method: &str, path: &str, body: &str) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\
         content-type: text/plain;charset=UTF-8\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut res = String::new();
    tcp.read_to_string(&mut res).await.unwrap();
    let (head, body) = res.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_owned()
}
