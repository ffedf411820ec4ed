//! Live order across chat nodes: whatever order concurrent sends finish in, and whichever
//! node they were sent from, a device gets a conversation's messages in id order; one whose
//! node died before delivering it is read back from the store.

use std::{collections::BTreeSet, time::Duration};

use chat_core::{
    Limits,
    protocol::{ConversationId, UserId},
};
use futures_util::future::join_all;
use serde_json::{Value, json};
use socketioxide_core::Uid;

use chat_testing::metrics::sample;

use crate::{
    cluster_chat::cluster,
    helpers::*,
    store::{fresh_prefix, redis_node, say},
};

/// Senders per node.
const SENDERS: usize = 4;
/// Rounds of concurrent sends; each sender sends `BURST` per round.
const ROUNDS: usize = 5;
const BURST: usize = 2;

/// A message id as the pair it orders by (`"<ms>-<seq>"`).
#[track_caller]
fn id_of(m: &Value) -> (u64, u64) {
    let id = m["id"].as_str().unwrap();
    let (ms, seq) = id.split_once('-').unwrap();
    (ms.parse().unwrap(), seq.parse().unwrap())
}

/// Waits for `n` `message` events on `client` and returns their ids in arrival order;
/// then checks nothing more came (a barrier's round trip later).
async fn live_ids(client: &mut Client, n: usize) -> Vec<(u64, u64)> {
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        ids.push(id_of(&client.event("message", |_| true).await));
    }
    client.barrier().await;
    let extra: Vec<(u64, u64)> = client.received("message").iter().map(id_of).collect();
    assert!(extra.is_empty(), "delivered twice or unsent: {extra:?}");
    ids
}

/// Senders on two nodes post to one group at once; a member's device on either node gets
/// every message exactly once, in id order (before, overlapping sends were emitted in the
/// order their handlers finished: hundreds of inversions in a run like this one).
#[tokio::test]
async fn concurrent_sends_from_two_nodes_arrive_once_in_id_order() {
    let redis = RedisServer::start().await;
    let n = cluster(&redis, 2).await;
    let owner = uid("owner");
    let mut receivers = [n[0].client(&owner).await, n[1].client(&owner).await];
    let users: Vec<String> = (0..2 * SENDERS).map(|i| uid(&format!("s{i}"))).collect();
    let mut senders = Vec::new();
    for (i, user) in users.iter().enumerate() {
        senders.push(n[i % 2].client(user).await);
    }
    let group = ok(receivers[0]
        .ack("group:create", json!({"name": "g", "members": users}))
        .await)["group"]["id"]
        .clone();
    for (s, user) in senders.iter().zip(&users) {
        s.event("group:member", |e| e["user"] == user.as_str())
            .await;
    }

    let mut sent = BTreeSet::new();
    for round in 0..ROUNDS {
        let sends = senders.iter_mut().enumerate().map(|(i, s)| {
            let send = json!({"group": group, "body": format!("{round}/{i}")});
            s.ack_all(vec![("message:send", send); BURST])
        });
        for acks in join_all(sends).await {
            for ack in acks {
                assert!(sent.insert(id_of(&ok(ack)["message"])));
            }
        }
    }
    let total = sent.len();
    assert_eq!(total, ROUNDS * 2 * SENDERS * BURST);

    for (node, receiver) in receivers.iter_mut().enumerate() {
        let ids = live_ids(receiver, total).await;
        let inversions = ids.windows(2).filter(|w| w[0] >= w[1]).count();
        assert_eq!(inversions, 0, "node {node}: out of id order: {ids:?}");
        assert_eq!(
            ids.into_iter().collect::<BTreeSet<_>>(),
            sent,
            "node {node}"
        );
    }
    // Each sender gets everyone else's messages, in order too.
    for (i, sender) in senders.iter_mut().enumerate() {
        let ids = live_ids(sender, total - ROUNDS * BURST).await;
        assert!(ids.is_sorted_by(|a, b| a < b), "sender {i}: {ids:?}");
    }
    // Nothing went out of order for want of a cap or a fill.
    for node in &n {
        let late = sample(
            &node.scrape().await,
            "chat_live_order_total",
            &[("outcome", "late")],
        );
        assert_eq!(late, Some(0.0));
    }
}

/// A message stored but never delivered (its node died right after the append) holds up
/// the next one of its conversation for the wait (500 ms), no longer: then the node reads
/// it from the store, and the device gets both, in id order.
#[tokio::test]
async fn a_message_never_delivered_is_filled_from_the_store() {
    let redis = RedisServer::start().await;
    let prefix = fresh_prefix();
    let node = TestServer::node(&redis.url(), &prefix).await;
    let (a, b) = (uid("alice"), uid("bob"));
    let mut a0 = node.client(&a).await;
    let b0 = node.client(&b).await;
    let first = ok(a0.ack("message:send", json!({"to": b, "body": "1"})).await)["message"].clone();
    assert_eq!(b0.event("message", |_| true).await, first);

    // Appended as another node would, which then never delivers it.
    let dead = redis_node(&redis, &prefix, &Limits::default(), Uid::new(), 0).await;
    let (ua, ub) = (UserId::parse(&a).unwrap(), UserId::parse(&b).unwrap());
    let lost = say(&dead, &ConversationId::dm(&ua, &ub), &ua, "2").await;
    let sent = tokio::time::Instant::now();
    let next = ok(a0.ack("message:send", json!({"to": b, "body": "3"})).await)["message"].clone();

    let filled = b0.event("message", |_| true).await;
    assert_eq!(filled["id"], lost.id.to_string(), "{filled}");
    assert_eq!(filled["body"], "2");
    assert_eq!(b0.event("message", |_| true).await, next);
    let waited = sent.elapsed();
    assert!(waited >= Duration::from_millis(450), "not held: {waited:?}");
    assert_eq!(
        sample(
            &node.scrape().await,
            "chat_live_order_total",
            &[("outcome", "filled")]
        ),
        Some(1.0)
    );
}
