//! The failure drills: a dead node, a Redis outage, a Sentinel failover, room reconciliation.

use std::{sync::atomic::Ordering, time::Duration};

use chat_core::redis::RedisConfig;
use serde_json::json;

use chat_testing::{
    Client,
    redis::{MASTER_NAME, RedisServer, SentinelTopology},
    test_config,
};

use super::*;

/// A node that dies (its heartbeat stops) stops being counted within the lease, and
/// requests that wait on every node answer without it.
#[tokio::test]
async fn dead_nodes_drop_out_within_the_lease() {
    let redis = RedisServer::start().await;
    let n = nodes(&RedisConfig::Url(redis.url()), 3).await;
    let mut a = n[0].client(&["group:x"]).await;
    let b = n[1].client(&["group:x"]).await;
    let _c = n[2].client(&["group:x"]).await;
    n[2].cluster.halt();
    let started = tokio::time::Instant::now();
    // Asked while the dead node still counts: the answer comes after the request timeout.
    let sids = a.ack("fetch", json!({"rooms": ["group:x"]})).await;
    assert_eq!(sids.as_array().unwrap().len(), 2, "{sids}");
    n[0].wait_live(2).await;
    let gone_after = started.elapsed();
    let lease = test_config("x:").lease + test_config("x:").heartbeat;
    assert!(
        gone_after <= lease * 2,
        "dead node counted for {gone_after:?}"
    );
    let mut want = vec![sid(&a), sid(&b)];
    want.sort();
    assert_eq!(
        a.ack("fetch", json!({"rooms": ["group:x"]})).await,
        json!(want)
    );
    let res = a
        .ack("emit_ack", json!({"rooms": ["group:x"], "data": "x"}))
        .await;
    assert_eq!(res["acked"], 2);
    eprintln!("dead node dropped out after {gone_after:?}");
}

/// Sends `data` values `range` to `group:x` from `a`; every emit is accepted.
async fn emit_range(a: &mut Client, range: std::ops::Range<u64>) {
    for i in range {
        assert_eq!(
            a.ack("emit", json!({"rooms": ["group:x"], "data": i}))
                .await,
            json!(true)
        );
    }
}

/// Takes the next `range` messages from `b` in order, each exactly once.
async fn expect_range(b: &Client, range: std::ops::Range<u64>, deadline: Duration) {
    for i in range {
        let got = b.event_within(deadline, "message", |_| true).await;
        assert_eq!(got, json!(i), "out of order or lost");
    }
}

/// Redis drops every connection, then stops and comes back: what was sent before, during
/// and after reaches its sockets once delivery resumes, in order, nothing lost or doubled.
#[tokio::test]
async fn redis_outage_loses_nothing() {
    let redis = RedisServer::start().await;
    let n = nodes(&RedisConfig::Url(redis.url()), 2).await;
    let mut a = n[0].client(&["user:a"]).await;
    let b = n[1].client(&["group:x"]).await;
    emit_range(&mut a, 0..10).await;
    expect_range(&b, 0..10, Duration::from_secs(5)).await;

    let killed = redis.kill_clients().await;
    emit_range(&mut a, 10..20).await;
    redis.stop().await;
    emit_range(&mut a, 20..30).await;
    let resumed = tokio::time::Instant::now();
    redis.resume().await;
    emit_range(&mut a, 30..40).await;
    expect_range(&b, 10..40, Duration::from_secs(20)).await;
    let recovered = resumed.elapsed();
    a.ack("emit", json!({"rooms": ["group:x"], "data": "marker"}))
        .await;
    b.event("message", |v| v == "marker").await;
    assert!(
        b.received("message").is_empty(),
        "doubled: {:?}",
        b.received("message")
    );
    let stats = n[0].cluster.stats();
    eprintln!(
        "outage drill: {killed} connections killed; all 40 delivered {recovered:?} after redis came back; \
         sent {} entries, shed {}, duplicates skipped at the receiver {}",
        stats.sent.load(Ordering::SeqCst),
        stats.shed.load(Ordering::SeqCst),
        n[1].cluster.stats().duplicates.load(Ordering::SeqCst),
    );
    assert_eq!(stats.shed.load(Ordering::SeqCst), 0);
}

/// Sentinel: the master dies, the replica is promoted, and both nodes follow it without a
/// restart; what was sent during the failover arrives once it is over.
#[tokio::test]
async fn sentinel_failover_is_followed() {
    let topo = SentinelTopology::start().await;
    let config = RedisConfig::Sentinel {
        sentinels: topo.sentinel_addrs(),
        master: MASTER_NAME.to_owned(),
        password: None,
    };
    let n = nodes(&config, 2).await;
    let mut a = n[0].client(&["user:a"]).await;
    let b = n[1].client(&["group:x"]).await;
    emit_range(&mut a, 0..10).await;
    expect_range(&b, 0..10, Duration::from_secs(5)).await;

    let killed_at = tokio::time::Instant::now();
    let old = topo.kill_master().await;
    emit_range(&mut a, 10..20).await;
    let new = topo.wait_for_failover(&old).await;
    let promoted = killed_at.elapsed();
    emit_range(&mut a, 20..30).await;
    expect_range(&b, 10..30, Duration::from_secs(30)).await;
    let recovered = killed_at.elapsed();
    eprintln!(
        "failover drill: {old} -> {new}; promoted after {promoted:?}; all delivered {recovered:?} after the kill"
    );
}

/// Routing records outlive the heartbeat's room reconciliation: rooms that still have local
/// sockets stay recorded, rooms whose sockets left are dropped.
#[tokio::test]
async fn room_records_survive_reconciliation() {
    let redis = RedisServer::start().await;
    let n = nodes(&RedisConfig::Url(redis.url()), 2).await;
    let mut a = n[0].client(&["user:a"]).await;
    let b = n[1].client(&["group:kept"]).await;
    let gone = n[1].client(&["group:gone"]).await;
    drop(gone);
    // Reconciliation runs every ten beats; wait for two of them.
    let target = n[1].cluster.heartbeats() + 21;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while n[1].cluster.heartbeats() < target {
        assert!(tokio::time::Instant::now() < deadline, "heartbeats stalled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    a.ack(
        "emit",
        json!({"rooms": ["group:kept"], "data": "still routed"}),
    )
    .await;
    b.event("message", |v| v == "still routed").await;
    let node1 = n[1].cluster.uid().to_string();
    let members = |room: &str| {
        let key = format!("{}room:{room}", n[1].prefix);
        let redis = &redis;
        async move { redis.cli::<Vec<String>>(&["SMEMBERS", &key]).await }
    };
    assert!(members("group:kept").await.contains(&node1));
    assert!(
        !members("group:gone").await.contains(&node1),
        "a room without sockets stayed recorded"
    );
}

/// Volatile packets (typing, presence pushes) are dropped, and counted as shed, when the
/// outbox toward other nodes is full because Redis is down; what is not volatile waits and
/// arrives once Redis is back.
#[tokio::test]
async fn volatile_packets_are_shed_when_the_outbox_is_full() {
    let redis = RedisServer::start().await;
    let rc = RedisConfig::Url(redis.url());
    let p = prefix();
    let a = Node::start_with(rc.clone(), &p, "a", |c| c.outbox_capacity = 2).await;
    let b = Node::start(rc, &p, "b").await;
    a.wait_live(2).await;
    b.wait_live(2).await;
    let mut sender = a.client(&["user:a"]).await;
    let receiver = b.client(&["group:x"]).await;
    emit_range(&mut sender, 0..1).await;
    expect_range(&receiver, 0..1, Duration::from_secs(5)).await;
    assert_eq!(a.cluster.stats().shed.load(Ordering::SeqCst), 0);

    redis.stop().await;
    // Kept: the first is with the sender task (retrying), the outbox holds two more.
    emit_range(&mut sender, 1..3).await;
    for i in 0..10 {
        sender
            .ack(
                "emit",
                json!({"rooms": ["group:x"], "volatile": true, "data": format!("v{i}")}),
            )
            .await;
    }
    let shed = a.cluster.stats().shed.load(Ordering::SeqCst);
    assert!(shed >= 8, "{shed} volatile packets shed of 10");
    redis.resume().await;
    expect_range(&receiver, 1..3, Duration::from_secs(20)).await;
}

/// An inbox entry read twice (a sender's append retried after its reply was lost) is
/// handled once and counted as a duplicate.
#[tokio::test]
async fn an_entry_read_twice_is_handled_once() {
    let redis = RedisServer::start().await;
    let n = nodes(&RedisConfig::Url(redis.url()), 2).await;
    let mut sender = n[0].client(&["user:a"]).await;
    let receiver = n[1].client(&["group:x"]).await;
    emit_range(&mut sender, 0..1).await;
    expect_range(&receiver, 0..1, Duration::from_secs(5)).await;
    // The entry node 1 just read, appended to its inbox again.
    let inbox = format!("{}inbox:{}", n[1].prefix, n[1].cluster.uid());
    let mut con = redis.connect().await;
    let last: redis::streams::StreamRangeReply = redis::cmd("XREVRANGE")
        .arg(&inbox)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query_async(&mut con)
        .await
        .unwrap();
    let entry = &last.ids[0];
    let mut again = redis::cmd("XADD");
    again.arg(&inbox).arg("*");
    for (field, value) in &entry.map {
        let bytes: Vec<u8> = redis::FromRedisValue::from_redis_value(value.clone()).unwrap();
        again.arg(field).arg(bytes);
    }
    let _: String = again.query_async(&mut con).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while n[1].cluster.stats().duplicates.load(Ordering::SeqCst) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the copy was not seen"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A later message arrives, and the copy was not delivered again.
    emit_range(&mut sender, 1..2).await;
    expect_range(&receiver, 1..2, Duration::from_secs(5)).await;
    assert!(
        receiver.received("message").is_empty(),
        "{:?}",
        receiver.received("message")
    );
}
