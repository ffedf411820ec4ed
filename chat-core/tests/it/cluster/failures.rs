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
