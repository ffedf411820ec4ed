//! The archive (issue #19) on one node, either store: every message queued for it and
//! written, history going on in it past what the store keeps, search over what the user may
//! read, and an archive that fails losing nothing. Across nodes in `cluster`.

mod cluster;

use std::time::Duration;

use chat_core::{Config, archive::ArchiveConfig, config::Rate};
use chat_testing::archive::MemoryArchive;
use serde_json::{Value, json};

use crate::helpers::*;

/// A server whose archive is `archive`, keeping `history_max` messages per conversation,
/// searches limited by the event rate only (one test is about the search rate).
async fn server(archive: &MemoryArchive, history_max: usize) -> TestServer {
    let archive = archive.clone();
    TestServer::built(
        |c: &mut Config| {
            c.limits.history_max = history_max;
            c.limits.search_rate = Rate::new(100.0, 100);
        },
        |b| b.archive(std::sync::Arc::new(archive), ArchiveConfig::default()),
    )
    .await
}

/// Every page of `conversation`'s history, `limit` at a time from the newest: the bodies,
/// oldest first.
pub async fn all_history(client: &mut Client, conversation: &str, limit: usize) -> Vec<String> {
    let mut bodies: Vec<String> = Vec::new();
    let mut before = Value::Null;
    for _ in 0..100 {
        let mut req = json!({"conversation": conversation, "limit": limit});
        if !before.is_null() {
            req["before"] = before.clone();
        }
        let page = ok(client.ack("history", req).await);
        let messages = page["messages"].as_array().unwrap().clone();
        let mut older: Vec<String> = messages
            .iter()
            .map(|m| m["body"].as_str().unwrap().to_owned())
            .collect();
        older.append(&mut bodies);
        bodies = older;
        if page["hasMore"] != true {
            return bodies;
        }
        before = messages[0]["id"].clone();
    }
    panic!("history did not end within 100 pages");
}

/// The bodies of a `search` answer.
pub fn found(answer: &Value) -> Vec<String> {
    answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["message"]["body"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn history_goes_on_in_the_archive_past_the_store() {
    let archive = MemoryArchive::default();
    let srv = server(&archive, 5).await;
    let (a, b) = (uid("alice"), uid("bob"));
    let mut alice = srv.client(&a).await;
    let sent: Vec<String> = (0..12).map(|i| format!("m{i}")).collect();
    for body in &sent {
        ok(alice
            .ack("message:send", json!({"to": b, "body": body}))
            .await);
    }
    archive.until(Duration::from_secs(10), |n| n == 12).await;
    let conversation = format!("dm:{}", {
        let mut ids = [a.clone(), b.clone()];
        ids.sort();
        ids.join(":")
    });
    assert_eq!(archive.bodies(&conversation), sent);
    // Pages of every size, crossing the store's five at any point: no gap, no repeat.
    for limit in [1, 3, 4, 5, 7, 100] {
        assert_eq!(
            all_history(&mut alice, &conversation, limit).await,
            sent,
            "limit {limit}"
        );
    }
    // The store alone would stop at five.
    archive.fail(true);
    let page = ok(alice
        .ack("history", json!({"conversation": conversation, "limit": 8}))
        .await);
    assert_eq!(page["messages"].as_array().unwrap().len(), 5);
    assert_eq!(page["hasMore"], true, "the rest when the archive is back");
    let older = alice
        .ack(
            "history",
            json!({"conversation": conversation, "before": page["messages"][0]["id"]}),
        )
        .await;
    assert_code(&older, "unavailable");
}

#[tokio::test]
async fn search_finds_what_the_user_may_read_and_nothing_else() {
    let archive = MemoryArchive::default();
    let srv = server(&archive, 100).await;
    let (a, b, c) = (uid("alice"), uid("bob"), uid("carol"));
    let (mut alice, mut bob, mut carol) = (
        srv.client(&a).await,
        srv.client(&b).await,
        srv.client(&c).await,
    );
    let gid = ok(alice.ack("group:create", json!({"name": "Ops"})).await)["group"]["id"].clone();
    ok(carol.ack("group:join", json!({"group": gid})).await);
    ok(alice
        .ack("message:send", json!({"to": b, "body": "deploy tonight"}))
        .await);
    ok(carol
        .ack(
            "message:send",
            json!({"group": gid, "body": "Deploy on Friday"}),
        )
        .await);
    ok(bob
        .ack("message:send", json!({"to": c, "body": "secret deploy"}))
        .await);
    ok(alice
        .ack("message:send", json!({"to": b, "body": "lunch?"}))
        .await);
    archive.until(Duration::from_secs(10), |n| n == 4).await;
    let search = |q: &str| json!({"query": q});
    let mine = ok(alice.ack("search", search("deploy")).await);
    assert_eq!(
        found(&mine),
        ["Deploy on Friday", "deploy tonight"],
        "newest first"
    );
    assert_eq!(
        mine["results"][0]["conversation"]["id"],
        format!("group:{}", gid.as_str().unwrap())
    );
    assert_eq!(mine["results"][0]["conversation"]["name"], "Ops");
    assert_eq!(mine["results"][0]["message"]["from"], c.as_str());
    assert!(mine.get("cursor").is_none());
    assert_eq!(
        found(&ok(bob.ack("search", search("deploy")).await)),
        ["secret deploy", "deploy tonight"]
    );
    // Pages: one at a time, by cursor.
    let first = ok(carol
        .ack("search", json!({"query": "deploy", "limit": 1}))
        .await);
    assert_eq!(found(&first), ["secret deploy"]);
    let second = ok(carol
        .ack(
            "search",
            json!({"query": "deploy", "limit": 1, "cursor": first["cursor"]}),
        )
        .await);
    assert_eq!(found(&second), ["Deploy on Friday"]);
    assert!(second.get("cursor").is_none());
    // One conversation: the caller's only.
    let group = format!("group:{}", gid.as_str().unwrap());
    let within = ok(alice
        .ack("search", json!({"query": "deploy", "conversation": group}))
        .await);
    assert_eq!(found(&within), ["Deploy on Friday"]);
    let theirs = bob
        .ack("search", json!({"query": "deploy", "conversation": group}))
        .await;
    assert_code(&theirs, "forbidden");
    // Membership is read at search time: carol left the group.
    ok(carol.ack("group:leave", json!({"group": gid})).await);
    assert_eq!(
        found(&ok(carol.ack("search", search("deploy")).await)),
        ["secret deploy"]
    );
    // Bad input.
    for (req, code) in [
        (json!({"query": "  "}), "bad_request"),
        (json!({"query": "x".repeat(201)}), "too_large"),
        (json!({"query": "deploy", "limit": 0}), "bad_request"),
        (json!({"query": "deploy", "limit": 51}), "bad_request"),
        (json!({"query": "deploy", "cursor": "nope"}), "bad_request"),
        (json!({"query": "deploy", "sql": "1"}), "bad_request"),
        (json!({"q": "deploy"}), "bad_request"),
    ] {
        assert_code(&alice.ack("search", req.clone()).await, code);
    }
    // The archive down: unavailable, at once while it failed a moment ago; then back.
    archive.fail(true);
    assert_code(&alice.ack("search", search("deploy")).await, "unavailable");
    archive.fail(false);
    assert_code(&alice.ack("search", search("deploy")).await, "unavailable");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while alice.ack("search", search("deploy")).await["ok"] != true {
        assert!(
            tokio::time::Instant::now() < deadline,
            "search never came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn searches_are_rate_limited_and_need_the_archive() {
    let archive = MemoryArchive::default();
    let srv = TestServer::built(
        |_| {},
        |b| b.archive(std::sync::Arc::new(archive), ArchiveConfig::default()),
    )
    .await;
    let mut alice = srv.client(&uid("alice")).await;
    let answers = alice
        .ack_all((0..12).map(|_| ("search", json!({"query": "x"}))).collect())
        .await;
    let limited = answers
        .iter()
        .filter(|a| a["error"]["code"] == "rate_limited")
        .count();
    assert!(
        (1..=3).contains(&limited),
        "12 searches at once against a burst of 10: {answers:?}"
    );
    let plain = TestServer::start().await;
    let mut bob = plain.client(&uid("bob")).await;
    assert_code(
        &bob.ack("search", json!({"query": "x"})).await,
        "unavailable",
    );
}

/// An archive down for a while: sends go on, nothing is lost, everything is written once it
/// is back, and the gauges show the wait.
#[tokio::test]
async fn an_archive_that_fails_loses_nothing() {
    let archive = MemoryArchive::default();
    let srv = server(&archive, 100).await;
    let (a, b) = (uid("alice"), uid("bob"));
    let mut alice = srv.client(&a).await;
    archive.fail(true);
    for i in 0..20 {
        ok(alice
            .ack("message:send", json!({"to": b, "body": format!("m{i}")}))
            .await);
    }
    srv.metric_until("chat_archive_backlog", &[], |n| n > 0.0)
        .await;
    srv.metric_until("chat_archive_writes_total", &[("result", "error")], |n| {
        n >= 1.0
    })
    .await;
    srv.metric_until("chat_archive_lag_seconds", &[], |s| s > 0.0)
        .await;
    assert!(archive.is_empty());
    archive.fail(false);
    archive.until(Duration::from_secs(20), |n| n == 20).await;
    srv.metric_until("chat_archive_written_total", &[], |n| n >= 20.0)
        .await;
    srv.metric_until("chat_archive_backlog", &[], |n| n == 0.0)
        .await;
    srv.metric_until("chat_archive_lag_seconds", &[], |s| s == 0.0)
        .await;
    assert_eq!(srv.metric("chat_archive_queued_total", &[]).await, 20.0);
    // Every batch write is timed, the failed ones included.
    let timed = srv
        .metric("chat_archive_write_duration_seconds_count", &[])
        .await;
    let mut writes = 0.0;
    for result in ["ok", "error"] {
        writes += srv
            .metric("chat_archive_writes_total", &[("result", result)])
            .await;
    }
    assert!(
        timed >= 2.0 && timed == writes,
        "{timed} timed, {writes} writes"
    );
}

/// Embedded: a graceful stop writes what is queued before it returns.
#[tokio::test]
async fn shutdown_writes_what_is_queued() {
    if redis_backend() {
        return; // In a cluster the queue is in Redis: `cluster` covers a node stopping.
    }
    let archive = MemoryArchive::default();
    let srv = server(&archive, 100).await;
    let mut alice = srv.client(&uid("alice")).await;
    archive.fail(true);
    for i in 0..5 {
        ok(alice
            .ack(
                "message:send",
                json!({"to": uid("bob"), "body": format!("m{i}")}),
            )
            .await);
    }
    let handle = srv.handle.clone();
    let stopping = tokio::spawn(async move { handle.shutdown().await });
    // Still failing as the stop begins: the drain retries.
    archive.fail(false);
    stopping.await.unwrap();
    assert_eq!(archive.len(), 5);
}
