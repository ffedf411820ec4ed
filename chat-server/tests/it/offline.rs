//! A node stopped gracefully (SIGTERM) takes its users offline itself: no lease has to run
//! out, and nothing waits for the health checker.

use std::time::Duration;

use chat_testing::{Client, redis::RedisServer, uid, webhook::Receiver};
use serde_json::{Value, json};

use crate::helpers::Node;

const SECRET: &str = "offline-test-secret-0123";

/// Longer than the stop takes (a 1 s drain, then the cleanup), shorter than anything that
/// would reap the node's users otherwise (nothing does: a stopped node leaves the node
/// table, so no lease ends).
const DEADLINE: Duration = Duration::from_secs(10);

/// Whether `presence` events so far say `user` went offline.
fn went_offline(events: &[Value], user: &str) -> bool {
    events
        .iter()
        .any(|e| e["user"] == user && e["online"] == false)
}

/// Alice's only device is on node A, Carol has one on A and one on B, Bob on B follows both.
/// SIGTERM to A: Bob is told Alice went offline (with her last seen), a fresh query agrees,
/// the webhook gets `user.offline` for her; Carol stays online throughout.
#[tokio::test]
async fn a_stopped_nodes_users_go_offline() {
    let redis = RedisServer::start().await;
    let receiver = Receiver::start(SECRET).await;
    let (url, prefix) = (redis.url(), chat_testing::prefix());
    let vars = [
        ("CHAT_REDIS_URL", url.as_str()),
        ("CHAT_REDIS_PREFIX", prefix.as_str()),
        ("CHAT_WEBHOOK_URL", receiver.url.as_str()),
        ("CHAT_WEBHOOK_SECRET", SECRET),
    ];
    let mut a = Node::start(&vars).await;
    let b = Node::start(&vars).await;
    let (alice, bob, carol) = (uid("alice"), uid("bob"), uid("carol"));
    let alice_a = Client::dev(a.addr, &alice).await;
    let carol_a = Client::dev(a.addr, &carol).await;
    let carol_b = Client::dev(b.addr, &carol).await;
    let mut bob_b = Client::dev(b.addr, &bob).await;
    let sub = bob_b
        .ack("presence:subscribe", json!({"users": [alice, carol]}))
        .await;
    assert_eq!(sub["ok"], true, "{sub}");
    assert_eq!(sub["presence"][&alice]["online"], true, "{sub}");
    assert_eq!(sub["presence"][&carol]["online"], true, "{sub}");
    // Both came online through the webhook: the hooks work before the stop.
    receiver
        .until(|rs| {
            [&alice, &carol].iter().all(|u| {
                rs.iter()
                    .any(|r| r.event["type"] == "user.online" && r.event["data"]["user"] == **u)
            })
        })
        .await;

    let stopped_at = chat_core::protocol::now_ms();
    a.stop().await;
    drop((alice_a, carol_a));

    let offline = bob_b
        .event_within(DEADLINE, "presence", |e| e["user"] == alice.as_str())
        .await;
    assert_eq!(offline["online"], false, "{offline}");
    let last_seen = offline["lastSeen"].as_u64().expect("lastSeen");
    assert!(last_seen >= stopped_at, "{last_seen} < {stopped_at}");

    let now = bob_b
        .ack("presence:subscribe", json!({"users": [alice, carol]}))
        .await;
    assert_eq!(now["ok"], true, "{now}");
    assert_eq!(now["presence"][&alice]["online"], false, "{now}");
    assert_eq!(now["presence"][&alice]["lastSeen"], last_seen, "{now}");
    assert_eq!(now["presence"][&carol]["online"], true, "{now}");

    let delivered = receiver
        .until(|rs| {
            rs.iter().any(|r| {
                r.status == 200
                    && r.event["type"] == "user.offline"
                    && r.event["data"]["user"] == alice.as_str()
            })
        })
        .await;
    let offline_hook = delivered
        .iter()
        .find(|r| r.event["type"] == "user.offline" && r.event["data"]["user"] == alice.as_str())
        .unwrap();
    assert_eq!(
        offline_hook.event["data"]["lastSeen"], last_seen,
        "{:?}",
        offline_hook.event
    );

    // Carol's device on B kept her online: nobody was told otherwise. Alice's offline went
    // out in the same cleanup, and the webhook arrived after it, so Carol's would have too.
    bob_b.barrier().await;
    assert!(
        !went_offline(&bob_b.received("presence"), &carol),
        "{:?}",
        bob_b.received("presence")
    );
    assert!(
        !delivered
            .iter()
            .any(|r| r.event["type"] == "user.offline" && r.event["data"]["user"] == carol.as_str()),
        "{delivered:#?}"
    );
    assert!(!carol_b.is_closed());
}
