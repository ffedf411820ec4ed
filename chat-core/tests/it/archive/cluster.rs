//! The archive across two nodes on one Redis (one archive, as one PostgreSQL): messages
//! queued in Redis by the node that stored them and written once, whichever node reads
//! them; search and history from either node; entries a dead node had read taken over.

use std::{sync::Arc, time::Duration};

use chat_core::{
    archive::ArchiveConfig,
    keys::{ARCHIVE_SHARDS, Keys, archive_shard},
    protocol::{ConversationId, Message, MessageId, UserId},
};
use chat_testing::archive::MemoryArchive;
use serde_json::json;

use super::{all_history, found};
use crate::helpers::*;

async fn node(redis: &RedisServer, prefix: &str, archive: &MemoryArchive) -> TestServer {
    let settings = redis_settings(&redis.url(), prefix);
    let archive = archive.clone();
    let config = ArchiveConfig {
        claim_after: Duration::from_secs(1),
        ..ArchiveConfig::default()
    };
    TestServer::built(
        |c| {
            c.redis = Some(settings);
            c.limits.history_max = 4;
        },
        |b| b.archive(Arc::new(archive), config),
    )
    .await
}

#[tokio::test]
async fn two_nodes_archive_once_and_search_and_page_from_either() {
    let redis = RedisServer::start().await;
    let archive = MemoryArchive::default();
    let prefix = format!("a{:08x}:", rand::random::<u32>());
    let (a, b) = (
        node(&redis, &prefix, &archive).await,
        node(&redis, &prefix, &archive).await,
    );
    let (ann, bob) = (uid("ann"), uid("bob"));
    let mut ann_a = a.client(&ann).await;
    let mut bob_b = b.client(&bob).await;
    let gid = ok(ann_a.ack("group:create", json!({"name": "Both"})).await)["group"]["id"].clone();
    ok(bob_b.ack("group:join", json!({"group": gid})).await);
    let sent: Vec<String> = (0..10).map(|i| format!("release note {i}")).collect();
    for (i, body) in sent.iter().enumerate() {
        let client = if i % 2 == 0 { &mut ann_a } else { &mut bob_b };
        ok(client
            .ack("message:send", json!({"group": gid, "body": body}))
            .await);
    }
    archive.until(Duration::from_secs(10), |n| n >= 10).await;
    let group = format!("group:{}", gid.as_str().unwrap());
    assert_eq!(archive.bodies(&group), sent, "each once, in order");
    // Queued on the node that stored it, written by whichever read it: every entry written
    // and acknowledged, the streams empty.
    let written = a.metric("chat_archive_written_total", &[]).await
        + b.metric("chat_archive_written_total", &[]).await;
    assert!(written >= 10.0, "{written}");
    a.metric_until("chat_archive_backlog", &[], |n| n == 0.0)
        .await;
    // History past the store's four, and search, from the other node.
    assert_eq!(all_history(&mut bob_b, &group, 3).await, sent);
    let hits = ok(bob_b
        .ack("search", json!({"query": "release note", "limit": 50}))
        .await);
    let mut newest_first = sent.clone();
    newest_first.reverse();
    assert_eq!(found(&hits), newest_first);
    // A resent message (same clientId) is queued again but archived once.
    for _ in 0..2 {
        ok(ann_a
            .ack(
                "message:send",
                json!({"group": gid, "body": "once", "clientId": "k1"}),
            )
            .await);
    }
    archive.until(Duration::from_secs(10), |n| n == 11).await;
    assert_eq!(
        a.metric("chat_archive_queued_total", &[]).await,
        7.0,
        "5 + 2 for `once`"
    );
}

/// Entries a node read and never wrote (it died) are taken over by a live node after
/// `claim_after`, and archived.
#[tokio::test]
async fn a_dead_nodes_entries_are_taken_over() {
    let redis = RedisServer::start().await;
    let archive = MemoryArchive::default();
    let prefix = format!("a{:08x}:", rand::random::<u32>());
    let keys = Keys::new(prefix.clone());
    let conversation: ConversationId = "group:orphans".parse().unwrap();
    let message = Message {
        id: MessageId { ms: 42, seq: 0 },
        conversation: conversation.clone(),
        from: UserId::parse("ann").unwrap(),
        body: "read by a node that died".into(),
        ts: chat_core::protocol::now_ms(),
        client_id: None,
    };
    let key = keys.archive(archive_shard(&conversation));
    assert!(archive_shard(&conversation) < ARCHIVE_SHARDS);
    let mut con = redis.connect().await;
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&key)
        .arg("archivers")
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut con)
        .await
        .unwrap();
    let _: String = redis::cmd("XADD")
        .arg(&key)
        .arg("*")
        .arg("m")
        .arg(serde_json::to_string(&message).unwrap())
        .query_async(&mut con)
        .await
        .unwrap();
    // A node that died right after reading it.
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("archivers")
        .arg("dead-node")
        .arg("STREAMS")
        .arg(&key)
        .arg(">")
        .query_async(&mut con)
        .await
        .unwrap();
    let live = node(&redis, &prefix, &archive).await;
    archive.until(Duration::from_secs(10), |n| n == 1).await;
    assert_eq!(
        archive.bodies("group:orphans"),
        ["read by a node that died"]
    );
    live.metric_until("chat_archive_reclaimed_total", &[], |n| n >= 1.0)
        .await;
    // Acknowledged and deleted: nothing left pending.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let len: u64 = redis::cmd("XLEN")
            .arg(&key)
            .query_async(&mut con)
            .await
            .unwrap();
        let (pending, ..): (u64, redis::Value, redis::Value, redis::Value) = redis::cmd("XPENDING")
            .arg(&key)
            .arg("archivers")
            .query_async(&mut con)
            .await
            .unwrap();
        if (len, pending) == (0, 0) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{len} entries, {pending} pending"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
