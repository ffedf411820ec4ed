//! Removal, reaping, re-admission and shared rounds, timed against the bounds.

use std::{
    collections::HashSet,
    net::SocketAddr,
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use chat_core::redis::{Redis, RedisConfig};
use chat_registry::NodeTable;

use chat_testing::{prefix, redis::RedisServer};

use crate::helpers::*;

/// A node whose `/healthz` stops answering (refused, hanging past the timeout, or 500)
/// while its heartbeat runs is taken out of picking within interval × failures, keeps its
/// room records, and is picked again as soon as it answers; the checker's metrics count the
/// probes by outcome, the removals and the re-admissions.
#[tokio::test]
async fn unhealthy_nodes_are_removed_and_readmitted() {
    let redis = RedisServer::start().await;
    let (rc, p) = (RedisConfig::Url(redis.url()), prefix());
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut nodes = Vec::new();
    for name in ["refuses", "hangs", "fails", "fine"] {
        nodes.push(TestNode::start(&rc, &p, name, any).await);
    }
    let _alice = nodes[0].client(&["user:alice"]).await;
    let table = NodeTable::new(Redis::new(rc.clone()).unwrap(), &p, Duration::from_secs(2));
    let checker = RunningChecker::start(&rc, &p, None);
    until("all four picked", Duration::from_secs(5), async || {
        picks(&table, 8).await.len() == 4
    })
    .await;

    let up = [("outcome", "up")];
    let down = [("outcome", "down")];
    until(
        "a round probed the four nodes",
        Duration::from_secs(5),
        async || checker.metric("chat_health_probes_total", &up) >= 4.0,
    )
    .await;
    assert!(checker.metric("chat_health_rounds_total", &[]) >= 1.0);
    assert_eq!(checker.metric("chat_health_probes_total", &down), 0.0);
    assert_eq!(checker.metric("chat_health_removals_total", &[]), 0.0);

    nodes[0].stop_http();
    nodes[1].set_mode(Mode::Hang);
    nodes[2].set_mode(Mode::Fail);
    let broken = [nodes[0].uid(), nodes[1].uid(), nodes[2].uid()];
    let removal = until(
        "the three broken nodes removed",
        removal_bound() * 2,
        async || {
            let mut removed = 0;
            for uid in &broken {
                removed += usize::from(server(&table, uid).await.is_some_and(|s| s.removed));
            }
            removed == 3
        },
    )
    .await;
    eprintln!(
        "unhealthy nodes removed from picking after {removal:?} (bound {:?})",
        removal_bound()
    );
    assert!(removal <= removal_bound(), "removal took {removal:?}");
    assert_eq!(checker.metric("chat_health_removals_total", &[]), 3.0);
    assert!(checker.metric("chat_health_probes_total", &down) >= 3.0 * f64::from(FAILURES));
    assert_eq!(checker.metric("chat_health_readmissions_total", &[]), 0.0);
    assert_eq!(picks(&table, 12).await, HashSet::from(["fine".to_owned()]));
    // Still heartbeating, still serving its sockets: its rooms stay.
    let room = members(&redis, &format!("{p}room:user:alice")).await;
    assert!(room.contains(&nodes[0].uid()), "{room:?}");

    nodes[0].restart_http();
    nodes[1].set_mode(Mode::Up);
    nodes[2].set_mode(Mode::Up);
    let readmission = until(
        "the three nodes re-admitted",
        Duration::from_secs(5),
        async || {
            let mut back = 0;
            for uid in &broken {
                back += usize::from(server(&table, uid).await.is_some_and(|s| s.pickable()));
            }
            back == 3
        },
    )
    .await;
    eprintln!("nodes re-admitted {readmission:?} after answering again");
    assert!(
        readmission <= INTERVAL * 3,
        "re-admission took {readmission:?}"
    );
    // Less loaded than the node that took every pick meanwhile, they get the next ones.
    let next = picks(&table, 6).await;
    for name in ["refuses", "hangs", "fails"] {
        assert!(next.contains(name), "{name} not picked: {next:?}");
    }
    assert!(checker.checker.stats().readmitted.load(Ordering::SeqCst) >= 3);
    assert!(checker.metric("chat_health_readmissions_total", &[]) >= 3.0);
    checker.stop().await;
}

/// A crashed node (no heartbeat, no HTTP) is no longer picked within its lease, is reaped
/// within interval × failures + lease (its room records and node record go, the cleanup
/// hooks run once), and the restarted node is picked again at once; the other node's
/// records are untouched.
#[tokio::test]
async fn crashed_node_is_reaped_and_its_restart_is_picked() {
    let redis = RedisServer::start().await;
    let (rc, p) = (RedisConfig::Url(redis.url()), prefix());
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let victim = TestNode::start(&rc, &p, "victim", any).await;
    let other = TestNode::start(&rc, &p, "other", any).await;
    let _a = victim.client(&["user:alice", "group:g"]).await;
    let _b = other.client(&["user:bob", "group:g"]).await;
    let table = NodeTable::new(Redis::new(rc.clone()).unwrap(), &p, Duration::from_secs(2));
    let reaped = Arc::new(Reaped::default());
    let checker = RunningChecker::start(&rc, &p, Some(reaped.clone()));
    until("both picked", Duration::from_secs(5), async || {
        picks(&table, 4).await.len() == 2
    })
    .await;

    let uid = victim.uid();
    victim.crash();
    let crashed = Instant::now();
    let unpicked = until(
        "the crashed node unpicked",
        removal_bound() * 2,
        async || !server(&table, &uid).await.is_some_and(|s| s.pickable()),
    )
    .await;
    assert_eq!(picks(&table, 6).await, HashSet::from(["other".to_owned()]));
    until("the crashed node reaped", removal_bound() * 3, async || {
        !reaped.0.lock().unwrap().is_empty()
    })
    .await;
    let reap = crashed.elapsed();
    eprintln!(
        "crashed node unpicked {unpicked:?} and reaped {reap:?} after the crash (bound {:?})",
        removal_bound()
    );
    assert!(unpicked <= LEASE + INTERVAL, "unpicked after {unpicked:?}");
    assert!(reap <= removal_bound(), "reaped after {reap:?}");
    assert_eq!(*reaped.0.lock().unwrap(), std::slice::from_ref(&uid));
    assert_eq!(checker.metric("chat_health_reaped_total", &[]), 1.0);
    assert_eq!(
        members(&redis, &format!("{p}room:group:g")).await,
        HashSet::from([other.uid()])
    );
    assert!(
        members(&redis, &format!("{p}room:user:alice"))
            .await
            .is_empty()
    );
    assert!(
        members(&redis, &format!("{p}room:user:bob"))
            .await
            .contains(&other.uid())
    );
    assert!(
        members(&redis, &format!("{p}noderooms:{uid}"))
            .await
            .is_empty()
    );
    assert!(
        server(&table, &uid).await.is_none(),
        "record of the dead node still listed"
    );
    // Its lease is left to expire (the node announcing lost nodes must still see it).
    let score: Option<f64> = redis.cli(&["ZSCORE", &format!("{p}nodes"), &uid]).await;
    let now_ms: Vec<String> = redis.cli(&["TIME"]).await;
    let now_ms =
        now_ms[0].parse::<f64>().unwrap() * 1000.0 + now_ms[1].parse::<f64>().unwrap() / 1000.0;
    assert!(
        score.is_none_or(|s| s < now_ms),
        "lease still running: {score:?}"
    );

    // The same process comes back on the same address (a new uid, as after a restart).
    let addr = victim.addr;
    drop(victim);
    let back = TestNode::start(&rc, &p, "victim", addr).await;
    let started = Instant::now();
    until(
        "the restarted node picked",
        Duration::from_secs(5),
        async || picks(&table, 4).await.contains("victim"),
    )
    .await;
    eprintln!(
        "restarted node picked {:?} after it started",
        started.elapsed()
    );
    // The cleanup ran once, though rounds went on.
    tokio::time::sleep(INTERVAL * 2).await;
    assert_eq!(reaped.0.lock().unwrap().len(), 1);
    assert!(back.probes.load(Ordering::SeqCst) > 0);
    checker.stop().await;
}

/// A node whose records were reaped while it was still running (cut off from Redis and the
/// checkers for a while) records its rooms again at its next heartbeat.
#[tokio::test]
async fn a_reaped_node_that_comes_back_records_its_rooms_again() {
    let redis = RedisServer::start().await;
    let (rc, p) = (RedisConfig::Url(redis.url()), prefix());
    let node = TestNode::start(&rc, &p, "n", "127.0.0.1:0".parse().unwrap()).await;
    let _a = node.client(&["user:alice", "group:g"]).await;
    let uid = node.uid();
    // What a reap does (see the health module).
    let mut c = redis.connect().await;
    let _: () = redis::pipe()
        .atomic()
        .srem(format!("{p}room:user:alice"), &uid)
        .srem(format!("{p}room:group:g"), &uid)
        .del(format!("{p}noderooms:{uid}"))
        .del(format!("{p}node:{uid}"))
        .zrem(format!("{p}nodes"), &uid)
        .query_async(&mut c)
        .await
        .unwrap();
    until("rooms recorded again", Duration::from_secs(5), async || {
        members(&redis, &format!("{p}room:user:alice"))
            .await
            .contains(&uid)
            && members(&redis, &format!("{p}room:group:g"))
                .await
                .contains(&uid)
    })
    .await;
    assert!(
        members(&redis, &format!("{p}noderooms:{uid}"))
            .await
            .contains("user:alice")
    );
}

/// Two checkers at once probe each node once per interval between them (the round lock),
/// not twice; when one stops, the other carries on and still removes a dead node in time.
#[tokio::test]
async fn two_checkers_share_the_rounds() {
    let redis = RedisServer::start().await;
    let (rc, p) = (RedisConfig::Url(redis.url()), prefix());
    let node = TestNode::start(&rc, &p, "n", "127.0.0.1:0".parse().unwrap()).await;
    let table = NodeTable::new(Redis::new(rc.clone()).unwrap(), &p, Duration::from_secs(2));
    let one = RunningChecker::start(&rc, &p, None);
    let two = RunningChecker::start(&rc, &p, None);
    let started = Instant::now();
    let before = node.probes.load(Ordering::SeqCst);
    until("ten rounds", Duration::from_secs(10), async || {
        one.rounds() + two.rounds() >= 10
    })
    .await;
    let elapsed = started.elapsed();
    let rounds = one.rounds() + two.rounds();
    let probes = node.probes.load(Ordering::SeqCst) - before;
    eprintln!(
        "two checkers: {rounds} rounds ({} + {}) and {probes} probes in {elapsed:?}",
        one.rounds(),
        two.rounds()
    );
    // Each round needs the lock, which lasts an interval: never more than one per interval.
    let max = (elapsed.as_millis() / INTERVAL.as_millis()) as u64 + 1;
    assert!(rounds <= max, "{rounds} rounds in {elapsed:?}");
    assert!(probes <= max + 1, "{probes} probes in {elapsed:?}");

    let stopped_rounds = {
        one.stop().await;
        two.rounds()
    };
    node.set_mode(Mode::Fail);
    let took = until(
        "removed by the remaining checker",
        removal_bound() * 2,
        async || server(&table, &node.uid()).await.is_some_and(|s| s.removed),
    )
    .await;
    eprintln!("with one checker stopped, the other removed the node after {took:?}");
    assert!(took <= removal_bound(), "took {took:?}");
    assert!(two.rounds() > stopped_rounds);
    assert_eq!(two.checker.stats().removed.load(Ordering::SeqCst), 1);
    node.set_mode(Mode::Up);
    until("picked again", Duration::from_secs(5), async || {
        picks(&table, 1).await.contains("n")
    })
    .await;
    two.stop().await;
}

/// A round whose lock passed to another checker while it probed (it overran the lock) drops
/// its verdicts and counts the round as discarded.
#[tokio::test]
async fn a_round_that_lost_its_lock_is_discarded() {
    let redis = RedisServer::start().await;
    let (rc, p) = (RedisConfig::Url(redis.url()), prefix());
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let node = TestNode::start(&rc, &p, "slow", any).await;
    node.set_mode(Mode::Hang);
    // Probes time out after 2 s: time for the lock to change hands mid-round.
    let checker = RunningChecker::start_with(&rc, &p, None, |c| c.timeout = Duration::from_secs(2));
    until(
        "a round probing the node",
        Duration::from_secs(5),
        async || node.probes.load(Ordering::SeqCst) >= 1,
    )
    .await;
    let _: () = redis
        .cli(&[
            "SET",
            &format!("{p}health:lock"),
            "another-checker",
            "PX",
            "60000",
        ])
        .await;
    until("the round discarded", Duration::from_secs(10), async || {
        checker.metric("chat_health_rounds_discarded_total", &[]) >= 1.0
    })
    .await;
}
