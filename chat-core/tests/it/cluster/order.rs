//! Live order across chat nodes: whatever order concurrent sends finish in, and whichever
//! node they were sent from, a device gets a conversation's messages in id order.

use std::collections::BTreeSet;

use futures_util::future::join_all;
use serde_json::{Value, json};

use chat_testing::metrics::sample;

use crate::{cluster_chat::cluster, helpers::*};

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
