//! Webhooks, against a local receiver that checks every signature (chat-testing's, with its
//! own HMAC): what is sent, retries, a receiver that hangs, and two nodes sharing the queue.
//! The single-node tests run on both stores (`CHAT_TEST_STORE`): in memory, and through the
//! Redis stream.

use std::{collections::HashSet, time::Duration};

use chat_core::config::WebhookConfig;
use chat_testing::webhook::{Answer, Receiver, Request};
use serde_json::{Value, json};

use crate::helpers::*;

const SECRET: &str = "test-webhook-secret-0123";

/// Webhook settings for `receiver`, retrying fast.
fn webhook(receiver: &Receiver) -> WebhookConfig {
    WebhookConfig {
        retry_min: Duration::from_millis(50),
        retry_max: Duration::from_millis(400),
        claim_after: Duration::from_secs(2),
        ..WebhookConfig::new(&receiver.url, SECRET)
    }
}

/// The 200-answered events of `kind` whose data matches `pred`.
fn delivered(requests: &[Request], kind: &str, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
    requests
        .iter()
        .filter(|r| r.status == 200 && r.event["type"] == kind && pred(&r.event["data"]))
        .map(|r| r.event.clone())
        .collect()
}

/// A message to an offline user becomes `message.offline` naming them; a message to a
/// connected user does not; connecting and leaving become `user.online` and `user.offline`,
/// each event with an id of its own, every request signed.
#[tokio::test]
async fn offline_recipients_and_presence_reach_the_webhook() {
    let receiver = Receiver::start(SECRET).await;
    // One delivery at a time: the events arrive in the order they happened.
    let srv = TestServer::with(|c| {
        c.webhook = Some(WebhookConfig {
            concurrency: 1,
            ..webhook(&receiver)
        })
    })
    .await;
    let (a, b) = (uid("ann"), uid("bob"));
    let mut ann = srv.client(&a).await;
    let online = receiver
        .delivered_event("user.online", |d| d["user"] == a)
        .await;
    assert!(online["ts"].as_u64().unwrap() > 1_700_000_000_000);

    let first = ok(ann
        .ack("message:send", json!({"to": b, "body": "one"}))
        .await);
    let event = receiver
        .delivered_event("message.offline", |d| d["message"]["body"] == "one")
        .await;
    assert_eq!(event["data"]["recipients"], json!([b]));
    assert_eq!(event["data"]["message"], first["message"]);

    let bob = srv.client(&b).await;
    receiver
        .delivered_event("user.online", |d| d["user"] == b)
        .await;
    ok(ann
        .ack("message:send", json!({"to": b, "body": "two"}))
        .await);
    drop(bob);
    let gone = receiver
        .delivered_event("user.offline", |d| d["user"] == b)
        .await;
    assert!(gone["data"]["lastSeen"].as_u64().unwrap() >= online["ts"].as_u64().unwrap());
    ok(ann
        .ack("message:send", json!({"to": b, "body": "three"}))
        .await);
    drop(ann);
    let all = receiver
        .until(|rs| !delivered(rs, "user.offline", |d| d["user"] == a).is_empty())
        .await;
    assert!(
        delivered(&all, "message.offline", |d| d["message"]["body"] == "three").len() == 1,
        "a message to a user gone offline again is announced: {all:#?}"
    );
    assert!(
        delivered(&all, "message.offline", |d| d["message"]["body"] == "two").is_empty(),
        "bob was online for message two: {all:#?}"
    );
    let ids: HashSet<&str> = all.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        ids.len(),
        all.len(),
        "one request per event, each its own id"
    );
}

/// A receiver that fails twice gets the same event a third time, same id, and then has it.
#[tokio::test]
async fn failed_deliveries_are_retried_with_the_same_id() {
    let receiver = Receiver::start(SECRET).await;
    receiver.answer(Answer::FailTimes(2));
    let srv = TestServer::with(|c| c.webhook = Some(webhook(&receiver))).await;
    let a = uid("ann");
    let _ann = srv.client(&a).await;
    let tries = receiver
        .until(|rs| rs.iter().any(|r| r.status == 200))
        .await;
    let statuses: Vec<u16> = tries.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [500, 500, 200], "{tries:#?}");
    assert!(tries.iter().all(|r| r.id == tries[0].id), "{tries:#?}");
    assert_eq!(tries[0].event, tries[2].event, "the same body each time");
    let gaps: Vec<Duration> = tries.windows(2).map(|w| w[1].at - w[0].at).collect();
    // retry_min 50ms doubling, with jitter down to half: at least 25ms, then 50ms.
    assert!(
        gaps[0] >= Duration::from_millis(25) && gaps[1] >= Duration::from_millis(50),
        "{gaps:?}"
    );
    println!("retry gaps: {gaps:?}");
    srv.metric_until(
        "chat_webhook_events_total",
        &[("outcome", "delivered")],
        |v| v == 1.0,
    )
    .await;
    let errors = srv
        .metric("chat_webhook_attempts_total", &[("result", "error")])
        .await;
    assert_eq!(errors, 2.0);
    // Every attempt is timed: the two failures and the delivery.
    srv.metric_until("chat_webhook_attempt_duration_seconds_count", &[], |v| {
        v == 3.0
    })
    .await;
}

/// While the receiver never answers, sends are acknowledged as always; the full queue drops
/// events and counts them.
#[tokio::test]
async fn a_hanging_receiver_never_slows_sends() {
    let receiver = Receiver::start(SECRET).await;
    receiver.answer(Answer::Hang);
    let srv = TestServer::with(|c| {
        c.webhook = Some(WebhookConfig {
            timeout: Duration::from_secs(600),
            queue: 4,
            concurrency: 1,
            ..webhook(&receiver)
        })
    })
    .await;
    let (a, b) = (uid("ann"), uid("bob"));
    let mut ann = srv.client(&a).await;
    // The user.online event is stuck in the receiver: the one delivery slot is taken.
    receiver.until(|rs| rs.len() == 1).await;
    let sends: Vec<(&str, Value)> = (0..20)
        .map(|i| ("message:send", json!({"to": b, "body": format!("m{i}")})))
        .collect();
    for ack in ann.ack_all(sends).await {
        ok(ack);
    }
    // Every event is queued or counted as dropped (in a cluster, once the writer is done).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let (queued, dropped) = loop {
        let queued = (srv.metric("chat_webhook_events_total", &[("outcome", "queued")])).await;
        let dropped = (srv.metric("chat_webhook_events_total", &[("outcome", "dropped")])).await;
        if queued + dropped == 21.0 || tokio::time::Instant::now() > deadline {
            break (queued, dropped);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(queued + dropped, 21.0, "{queued} queued, {dropped} dropped");
    let requests = receiver.requests();
    assert_eq!(requests.len(), 1, "still hanging on the first event");
    assert_eq!(requests[0].status, 0);
    // The one being delivered and the 4 waiting (in a cluster, 4 in the stream in all).
    assert!(queued <= 5.0, "bounded: {queued} queued");
    // The events waiting show in the backlog gauge.
    srv.metric_until("chat_webhook_backlog", &[], |v| v >= 1.0)
        .await;
}

/// Two nodes on one Redis share one queue: each node's events are delivered, once each (the
/// receiver answers at once), and the stream is empty afterwards.
#[tokio::test]
async fn two_nodes_deliver_through_the_redis_stream() {
    let redis = RedisServer::start().await;
    let receiver = Receiver::start(SECRET).await;
    let prefix = format!("w{:08x}:", rand::random::<u32>());
    let settings = redis_settings(&redis.url(), &prefix);
    let mut nodes = Vec::new();
    for _ in 0..2 {
        let (s, w) = (settings.clone(), webhook(&receiver));
        nodes.push(
            TestServer::with(|c| {
                c.redis = Some(s);
                c.webhook = Some(w);
            })
            .await,
        );
    }
    let (a, b, c) = (uid("ann"), uid("bob"), uid("cat"));
    let mut ann = nodes[0].client(&a).await;
    let mut bob = nodes[1].client(&b).await;
    ok(ann
        .ack("message:send", json!({"to": c, "body": "from a"}))
        .await);
    ok(bob
        .ack("message:send", json!({"to": c, "body": "from b"}))
        .await);
    drop(ann);
    let all = receiver
        .until(|rs| {
            delivered(rs, "message.offline", |d| d["recipients"] == json!([c])).len() == 2
                && !delivered(rs, "user.offline", |d| d["user"] == a).is_empty()
                && !delivered(rs, "user.online", |d| d["user"] == b).is_empty()
        })
        .await;
    assert_eq!(delivered(&all, "user.online", |d| d["user"] == a).len(), 1);
    let ids: HashSet<&str> = all.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), all.len(), "each event once: {all:#?}");
    let key = format!("{prefix}webhooks:{{webhooks}}");
    let mut conn = redis.connect().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let len: u64 = ::redis::cmd("XLEN")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        if len == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{len} entries left in {key}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A node retrying an event for longer than the takeover delay renews its hold on it: the
/// other node never takes it over, and the receiver gets it from one node only (one failed
/// try, one retry).
#[tokio::test]
async fn a_retrying_node_keeps_its_events() {
    let redis = RedisServer::start().await;
    let receiver = Receiver::start(SECRET).await;
    let prefix = format!("w{:08x}:", rand::random::<u32>());
    let settings = redis_settings(&redis.url(), &prefix);
    let mut nodes = Vec::new();
    for _ in 0..2 {
        let (s, w) = (settings.clone(), webhook(&receiver));
        nodes.push(
            TestServer::with(|c| {
                c.redis = Some(s);
                // The retry comes 1.5 to 3 takeover delays after the failed try.
                c.webhook = Some(WebhookConfig {
                    claim_after: Duration::from_secs(1),
                    retry_min: Duration::from_secs(3),
                    retry_max: Duration::from_secs(3),
                    ..w
                });
            })
            .await,
        );
    }
    receiver.answer(Answer::FailTimes(1));
    let a = uid("ann");
    let _ann = nodes[0].client(&a).await;
    let tries = receiver
        .until(|rs| rs.iter().any(|r| r.status == 200))
        .await;
    let statuses: Vec<u16> = tries.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [500, 200], "{tries:#?}");
    for n in &nodes {
        let reclaimed = n.metric("chat_webhook_reclaimed_total", &[]).await;
        assert_eq!(reclaimed, 0.0, "an event was taken from a live node");
    }
}
