//! The chat across nodes: several chat servers on one Redis behave as one.

use std::{collections::BTreeMap, sync::atomic::Ordering, time::Duration};

use serde_json::{Value, json};

use crate::helpers::*;

/// `n` chat servers on `redis`, one cluster.
pub(crate) async fn cluster(redis: &RedisServer, n: usize) -> Vec<TestServer> {
    let prefix = format!("c{:08x}:", rand::random::<u32>());
    let mut nodes = Vec::new();
    for _ in 0..n {
        nodes.push(TestServer::node(&redis.url(), &prefix).await);
    }
    nodes
}

/// DMs, groups, typing, receipts, presence and blocks work between users on different
/// nodes, each device getting each message once.
#[tokio::test]
async fn every_event_across_nodes() {
    let redis = RedisServer::start().await;
    let n = cluster(&redis, 3).await;
    let (a, b, c) = (uid("alice"), uid("bob"), uid("carol"));
    let mut a0 = n[0].client(&a).await;
    let mut b1 = n[1].client(&b).await;
    let b2 = n[2].client(&b).await;
    let mut c2 = n[2].client(&c).await;

    // Presence: a subscribes on node 0 to carol on node 2.
    ok(a0.ack("presence:subscribe", json!({"users": [c]})).await);

    let m = ok(a0
        .ack(
            "message:send",
            json!({"to": b, "body": "hi", "clientId": "k1"}),
        )
        .await)["message"]
        .clone();
    assert_eq!(b1.event("message", |_| true).await, m);
    assert_eq!(b2.event("message", |_| true).await, m);
    a0.event("receipt", |r| {
        r["status"] == "delivered" && r["messageId"] == m["id"]
    })
    .await;
    // The same clientId retried through another node is the same message, not delivered again.
    let mut a1 = n[1].client(&a).await;
    let again = ok(a1
        .ack(
            "message:send",
            json!({"to": b, "body": "hi", "clientId": "k1"}),
        )
        .await);
    assert_eq!((&again["message"], &again["duplicate"]), (&m, &json!(true)));

    ok(b1
        .ack(
            "read",
            json!({"conversation": m["conversation"], "messageId": m["id"]}),
        )
        .await);
    a0.event("receipt", |r| r["status"] == "read").await;

    b1.emit(
        "typing",
        json!({"conversation": m["conversation"], "typing": true}),
    );
    a0.event("typing", |t| t["user"] == b.as_str()).await;

    let group = ok(c2
        .ack("group:create", json!({"name": "g", "members": [a, b]}))
        .await)["group"]
        .clone();
    let gid = group["id"].as_str().unwrap().to_owned();
    a0.event("group:member", |e| e["user"] == a.as_str()).await;
    let gm = ok(a0
        .ack(
            "message:send",
            json!({"group": gid, "body": "to the group"}),
        )
        .await)["message"]
        .clone();
    for client in [&b1, &b2, &c2] {
        assert_eq!(client.event("message", |v| v["id"] == gm["id"]).await, gm);
    }
    // history, members and conversations from any node
    let mut b3 = n[2].client(&b).await;
    let h = ok(b3
        .ack("history", json!({"conversation": format!("group:{gid}")}))
        .await);
    assert_eq!(h["messages"][0], gm);

    // Blocks hold across nodes, and are listed on any.
    ok(b1.ack("block", json!({"user": c})).await);
    assert_eq!(ok(b3.ack("blocks", json!({})).await)["users"], json!([c]));
    assert_code(
        &c2.ack("message:send", json!({"to": b, "body": "x"})).await,
        "forbidden",
    );

    // Carol leaves: a, subscribed on another node, sees her go.
    drop(c2);
    let off = a0
        .event("presence", |p| {
            p["user"] == c.as_str() && p["online"] == false
        })
        .await;
    assert!(off["lastSeen"].as_u64().is_some());
    let snap = ok(a0.ack("presence:subscribe", json!({"users": [b, c]})).await)["presence"].clone();
    assert_eq!(
        (snap[&b]["online"].clone(), snap[&c]["online"].clone()),
        (json!(true), json!(false))
    );

    // Unread counts and the conversation list are the same from every node.
    let list0 = ok(a0.ack("conversations", json!({})).await);
    let list1 = ok(a1.ack("conversations", json!({})).await);
    assert_eq!(list0, list1);
    drop(b2);
}

/// A group message crosses to another node once, however many members are there, and
/// their delivery receipts come back in batches: before, each member cost one cluster
/// entry each way.
#[tokio::test]
async fn group_messages_cross_once_per_node() {
    let redis = RedisServer::start().await;
    let n = cluster(&redis, 2).await;
    let owner = uid("owner");
    let mut sender = n[0].client(&owner).await;
    let members: Vec<String> = (0..20).map(|i| uid(&format!("m{i}"))).collect();
    let mut clients = Vec::new();
    for m in &members {
        clients.push(n[1].client(m).await);
    }
    let group = ok(sender
        .ack("group:create", json!({"name": "g", "members": members}))
        .await)["group"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for c in &clients {
        c.event("group:member", |e| e["group"] == group.as_str())
            .await;
    }
    // Entries handled by each node: counted before they reach any socket.
    let received = |i: usize| {
        let cluster = n[i].handle.cluster().unwrap();
        cluster.stats().received.load(Ordering::SeqCst)
    };
    let (before0, before1) = (received(0), received(1));

    let m = ok(sender
        .ack("message:send", json!({"group": group, "body": "hello all"}))
        .await)["message"]
        .clone();
    for c in &clients {
        assert_eq!(c.event("message", |v| v["id"] == m["id"]).await, m);
    }
    let mut confirmed = std::collections::BTreeSet::new();
    while confirmed.len() < members.len() {
        let r = sender
            .event("receipt", |r| r["status"] == "delivered")
            .await;
        assert_eq!(r["messageId"], m["id"], "{r}");
        confirmed.insert(r["user"].as_str().unwrap().to_owned());
    }
    let into1 = received(1) - before1;
    let into0 = received(0) - before0;
    assert!(
        into1 <= 2,
        "{into1} entries carried one message to 20 members"
    );
    assert!(into0 <= 5, "{into0} entries carried 20 receipts back");
}

/// Delivery receipts reach every device of the sender, on the sending node and on others,
/// in DMs and groups, each once.
#[tokio::test]
async fn receipts_reach_the_senders_devices_on_every_node() {
    let redis = RedisServer::start().await;
    let n = cluster(&redis, 3).await;
    let (a, b) = (uid("alice"), uid("bob"));
    let mut a0 = n[0].client(&a).await;
    let mut a1 = n[1].client(&a).await;
    let a0_again = n[0].client(&a).await;
    let b2 = n[2].client(&b).await;
    let group = ok(a0
        .ack("group:create", json!({"name": "g", "members": [b]}))
        .await)["group"]["id"]
        .clone();
    for to in [json!({"to": b}), json!({"group": group})] {
        let mut send = to.clone();
        send["body"] = json!("hi");
        let m = ok(a0.ack("message:send", send).await)["message"].clone();
        b2.event("message", |v| v["id"] == m["id"]).await;
        for device in [&a0, &a1, &a0_again] {
            let r = device.event("receipt", |r| r["messageId"] == m["id"]).await;
            assert_eq!((&r["user"], &r["status"]), (&json!(b), &json!("delivered")));
        }
    }
    for device in [&mut a0, &mut a1] {
        device.barrier().await;
        assert!(
            device.received("receipt").is_empty(),
            "{:?}",
            device.received("receipt")
        );
    }
}

/// A user who was offline catches up through `sync` on another node than the one they
/// left, each message once.
#[tokio::test]
async fn offline_user_syncs_on_another_node() {
    let redis = RedisServer::start().await;
    let n = cluster(&redis, 2).await;
    let (a, b) = (uid("alice"), uid("bob"));
    let mut a0 = n[0].client(&a).await;
    let mut b0 = n[0].client(&b).await;
    ok(a0
        .ack("message:send", json!({"to": b, "body": "before"}))
        .await);
    b0.event("message", |_| true).await;
    let cursor = ok(b0.ack("sync", json!({})).await)["cursor"].clone();
    drop(b0);
    for i in 0..5 {
        ok(a0
            .ack(
                "message:send",
                json!({"to": b, "body": format!("missed {i}")}),
            )
            .await);
    }
    let mut b1 = n[1].client(&b).await;
    let page = ok(b1.ack("sync", json!({"cursor": cursor})).await);
    let bodies: Vec<&str> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(
        bodies,
        ["missed 0", "missed 1", "missed 2", "missed 3", "missed 4"]
    );
    let again = ok(b1.ack("sync", json!({"cursor": page["cursor"]})).await);
    assert_eq!(again["messages"], json!([]));
}

/// Rate limits are per user across nodes: two devices on two nodes share one budget.
#[tokio::test]
async fn rate_limits_span_nodes() {
    let redis = RedisServer::start().await;
    let prefix = format!("r{:08x}:", rand::random::<u32>());
    let mut nodes = Vec::new();
    for _ in 0..2 {
        let settings = redis_settings(&redis.url(), &prefix);
        nodes.push(
            TestServer::with(|c| {
                c.redis = Some(settings);
                c.limits.message_rate = chat_core::config::Rate::new(0.1, 3);
            })
            .await,
        );
    }
    let (a, b) = (uid("alice"), uid("bob"));
    let mut a0 = nodes[0].client(&a).await;
    let mut a1 = nodes[1].client(&a).await;
    for i in 0..3 {
        let c = if i % 2 == 0 { &mut a0 } else { &mut a1 };
        ok(c.ack("message:send", json!({"to": b, "body": "x"})).await);
    }
    assert_code(
        &a1.ack("message:send", json!({"to": b, "body": "x"})).await,
        "rate_limited",
    );
    assert_code(
        &a0.ack("message:send", json!({"to": b, "body": "x"})).await,
        "rate_limited",
    );
}

/// Failover drill: a master with a replica and three Sentinels, two nodes in Sentinel mode,
/// a client sending a steady stream with clientIds and retrying failures while the master is
/// killed. Every message the sender saw acknowledged reaches the recipient, live or through
/// `sync`; none twice; writes resume after the failover.
#[tokio::test]
async fn failover_drill_loses_no_acknowledged_message() {
    let topo = SentinelTopology::start().await;
    let prefix = format!("f{:08x}:", rand::random::<u32>());
    let mut nodes = Vec::new();
    for _ in 0..2 {
        let settings = chat_core::config::RedisSettings {
            target: chat_core::redis::RedisConfig::Sentinel {
                sentinels: topo.sentinel_addrs(),
                master: MASTER_NAME.to_owned(),
                password: None,
            },
            prefix: prefix.clone(),
            wait_replicas: 1,
            wait_timeout: Duration::from_secs(1),
        };
        nodes.push(
            TestServer::with(|c| {
                c.redis = Some(settings);
                c.limits.message_rate = chat_core::config::Rate::new(1000.0, 1000);
                c.limits.event_rate = chat_core::config::Rate::new(1000.0, 1000);
            })
            .await,
        );
    }
    let (a, b) = (uid("alice"), uid("bob"));
    let mut sender = nodes[0].client(&a).await;
    let mut receiver = nodes[1].client(&b).await;
    let start_cursor = ok(receiver.ack("sync", json!({})).await)["cursor"].clone();

    const TOTAL: usize = 120;
    let mut acked: BTreeMap<String, String> = BTreeMap::new(); // clientId -> message id
    let mut attempts = 0;
    let mut failures = 0;
    let (mut first_failure, mut resumed) = (None, None);
    let drill_start = tokio::time::Instant::now();
    let mut killed = None;
    for i in 0..TOTAL {
        if i == TOTAL / 3 {
            killed = Some((topo.kill_master().await, drill_start.elapsed()));
        }
        let client_id = format!("m{i}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            attempts += 1;
            let res = sender
                .ack(
                    "message:send",
                    json!({"to": b, "body": format!("n{i}"), "clientId": client_id}),
                )
                .await;
            if res["ok"] == true {
                if first_failure.is_some() && resumed.is_none() {
                    resumed = Some(drill_start.elapsed());
                }
                acked.insert(
                    client_id.clone(),
                    res["message"]["id"].as_str().unwrap().to_owned(),
                );
                break;
            }
            failures += 1;
            first_failure.get_or_insert(drill_start.elapsed());
            assert_eq!(res["error"]["code"], "unavailable", "{res}");
            assert!(
                tokio::time::Instant::now() < deadline,
                "writes never resumed: {res}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await; // a client's retry backoff
        }
    }
    // Everything acknowledged is there: live events plus a sync from before the drill.
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut cursor = start_cursor;
    loop {
        let page = ok(receiver.ack("sync", json!({"cursor": cursor})).await);
        for m in page["messages"].as_array().unwrap() {
            *seen
                .entry(m["clientId"].as_str().unwrap_or_default().to_owned())
                .or_default() += 1;
        }
        cursor = page["cursor"].clone();
        if page["hasMore"] != true {
            break;
        }
    }
    let live: Vec<Value> = receiver.received("message");
    let missing: Vec<&String> = acked.keys().filter(|k| !seen.contains_key(*k)).collect();
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
    let doubled: Vec<(&String, &usize)> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubled.is_empty(), "stored twice: {doubled:?}");
    let mut ids: Vec<&String> = acked.values().collect();
    ids.dedup();
    assert_eq!(ids.len(), TOTAL);
    let (old, killed_at) = killed.unwrap();
    eprintln!(
        "failover drill: master {old} killed at {killed_at:?}; {TOTAL} messages acked after {attempts} attempts \
         ({failures} refused with unavailable); writes failed from {first_failure:?} to {resumed:?}; \
         {} delivered live, all {} in sync, none twice",
        live.len(),
        seen.len()
    );
}

/// A node that dies without a goodbye: within its lease its users show offline, and their
/// peers on other nodes get the `presence` event, with no health checker involved.
#[tokio::test]
async fn a_dead_nodes_users_go_offline_for_their_peers() {
    let redis = RedisServer::start().await;
    let n = cluster(&redis, 2).await;
    let (a, b) = (uid("alice"), uid("bob"));
    let mut a0 = n[0].client(&a).await;
    let _b1 = n[1].client(&b).await;
    ok(a0.ack("presence:subscribe", json!({"users": [b]})).await);
    let started = tokio::time::Instant::now();
    n[1].handle.cluster().unwrap().halt();
    let off = a0
        .event_within(Duration::from_secs(15), "presence", |p| {
            p["user"] == b.as_str() && p["online"] == false
        })
        .await;
    assert!(off["lastSeen"].as_u64().is_some(), "{off}");
    let snap = ok(a0.ack("presence:subscribe", json!({"users": [b]})).await)["presence"].clone();
    assert_eq!(snap[&b]["online"], false);
    eprintln!(
        "dead node's user announced offline {:?} after the crash",
        started.elapsed()
    );
}

/// A node that stops tells its own clients to reconnect, and no one else's: a rolling
/// restart moves one node's clients at a time.
#[tokio::test]
async fn drain_reaches_only_the_stopping_nodes_clients() {
    let redis = RedisServer::start().await;
    let prefix = format!("d{:08x}:", rand::random::<u32>());
    let mut n = Vec::new();
    for _ in 0..3 {
        let settings = redis_settings(&redis.url(), &prefix);
        n.push(
            TestServer::with(|c| {
                c.redis = Some(settings);
                c.drain_timeout = std::time::Duration::from_millis(300);
            })
            .await,
        );
    }
    let (a, b, c) = (uid("alice"), uid("bob"), uid("carol"));
    let a0 = n[0].client(&a).await;
    let b1 = n[1].client(&b).await;
    let mut c2 = n[2].client(&c).await;
    n[0].handle.shutdown().await;
    assert_eq!(a0.received("drain"), vec![json!({"reconnect": true})]);
    // Node 0's drain, had it been broadcast, sits in node 1's inbox before this message.
    let m = ok(c2
        .ack("message:send", json!({"to": b, "body": "after"}))
        .await)["message"]
        .clone();
    assert_eq!(b1.event("message", |_| true).await, m);
    assert!(
        b1.received("drain").is_empty(),
        "{:?}",
        b1.received("drain")
    );
    assert!(c2.received("drain").is_empty());
}
