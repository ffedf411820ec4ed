//! Webhooks survive a node crash: what a node queued in Redis and could not deliver is
//! delivered by another node after the first is SIGKILLed mid-retry.

use std::collections::HashSet;

use chat_testing::{
    Client,
    redis::RedisServer,
    uid,
    webhook::{Answer, Receiver},
};
use serde_json::json;

use crate::helpers::Node;

const SECRET: &str = "crash-test-secret-0123";

/// How node A goes away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Kill,
    Stop,
}

/// Node A takes four events (a user online, three messages to an offline user) while the
/// receiver fails; A is SIGKILLed while retrying them; once the receiver answers again,
/// node B delivers each of the four, with the same ids.
#[tokio::test]
async fn a_killed_nodes_events_are_delivered_by_another() {
    takeover(End::Kill, "2s").await;
}

/// The same with a graceful stop (SIGTERM) and a takeover delay of an hour: the stopping
/// node hands its entries over at once.
#[tokio::test]
async fn a_stopped_nodes_events_are_handed_over() {
    takeover(End::Stop, "1h").await;
}

/// Runs the scenario.
async fn takeover(end: End, claim_after: &str) {
    let redis = RedisServer::start().await;
    let receiver = Receiver::start(SECRET).await;
    receiver.answer(Answer::Fail);
    let (url, prefix) = (redis.url(), chat_testing::prefix());
    let vars = [
        ("CHAT_REDIS_URL", url.as_str()),
        ("CHAT_REDIS_PREFIX", prefix.as_str()),
        ("CHAT_WEBHOOK_URL", receiver.url.as_str()),
        ("CHAT_WEBHOOK_SECRET", SECRET),
        ("CHAT_WEBHOOK_CLAIM_AFTER", claim_after),
    ];
    let mut a = Node::start(&vars).await;
    let (ann, bob) = (uid("ann"), uid("bob"));
    let mut client = Client::dev(a.addr, &ann).await;
    for i in 0..3 {
        let ack = client
            .ack("message:send", json!({"to": bob, "body": format!("m{i}")}))
            .await;
        assert_eq!(ack["ok"], true, "{ack}");
    }
    // Every event was tried (and refused) at least once: A holds all four.
    let tried = receiver
        .until(|rs| rs.iter().map(|r| &r.id).collect::<HashSet<_>>().len() == 4)
        .await;
    let ids: HashSet<String> = tried.iter().map(|r| r.id.clone()).collect();
    let b = Node::start(&vars).await;
    match end {
        End::Kill => a.kill().await,
        End::Stop => a.stop().await,
    }
    drop(client);
    let ended = tokio::time::Instant::now();
    receiver.answer(Answer::Ok);
    let all = receiver
        .until(|rs| {
            let ok: HashSet<&String> = rs
                .iter()
                .filter(|r| r.status == 200)
                .map(|r| &r.id)
                .collect();
            ids.iter().all(|id| ok.contains(id))
        })
        .await;
    println!(
        "{end:?}: all {} events delivered {:?} after the end of node A; {} requests in all",
        ids.len(),
        ended.elapsed(),
        all.len()
    );
    let kinds: Vec<String> = all
        .iter()
        .filter(|r| r.status == 200 && ids.contains(&r.id))
        .map(|r| r.event["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| *k == "message.offline").count(),
        3,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| *k == "user.online").count(),
        1,
        "{kinds:?}"
    );
    let metrics = b.get("/metrics").await;
    let reclaimed = chat_testing::metrics::sample(&metrics, "chat_webhook_reclaimed_total", &[]);
    assert!(
        reclaimed >= Some(4.0),
        "B took the entries over: {reclaimed:?}"
    );
    // And A's user goes offline for her peers: when A's lease ends (B says so), or as A
    // stops (A queues it).
    receiver
        .delivered_event("user.offline", |d| d["user"] == ann.as_str())
        .await;
}
