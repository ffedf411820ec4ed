//! The server API and the hooks across two nodes on one Redis: whatever node the backend
//! calls, every node's clients see it.

use std::time::Duration;

use chat_core::{
    api::{Post, Target},
    hooks::ChatEvent,
    protocol::UserId,
};
use serde_json::json;

use super::{
    Recorder,
    hooks::{Moderator, Tickets},
};
use crate::helpers::*;

fn user(s: &str) -> UserId {
    UserId::parse(s).unwrap()
}

async fn two_nodes(redis: &RedisServer, events: &Recorder) -> (TestServer, TestServer) {
    let prefix = format!("s{:08x}:", rand::random::<u32>());
    let settings = redis_settings(&redis.url(), &prefix);
    let a = TestServer::with(|c| c.redis = Some(settings.clone())).await;
    let hook = events.clone();
    let b = TestServer::built(|c| c.redis = Some(settings), |b| b.event_hook(hook)).await;
    (a, b)
}

#[tokio::test]
async fn the_backend_acts_on_every_nodes_clients() {
    let redis = RedisServer::start().await;
    let events = Recorder::default();
    let (a, b) = two_nodes(&redis, &events).await;
    let (alice, bob, carol) = (uid("alice"), uid("bob"), uid("carol"));
    let mut bob_b = b.client(&bob).await;
    let carol_a = a.client(&carol).await;

    // Posted on A, as a user and as the system: bob's device on B gets both.
    let sent = a
        .handle
        .send_message(Post {
            from: Some(user(&alice)),
            to: Target::User(user(&bob)),
            body: "from the backend".into(),
            client_id: None,
        })
        .await
        .unwrap();
    let got = bob_b
        .event("message", |m| m["body"] == "from the backend")
        .await;
    assert_eq!(got["id"], sent.message.id.to_string());
    a.handle
        .send_message(Post {
            from: None,
            to: Target::User(user(&bob)),
            body: "system notice".into(),
            client_id: None,
        })
        .await
        .unwrap();
    let got = bob_b
        .event("message", |m| m["body"] == "system notice")
        .await;
    assert_eq!(got["from"], "@system");

    // Presence asked on A sees a user connected to B.
    let states = a.handle.presence(&[user(&bob)]).await.unwrap();
    assert!(states[0].online);

    // A group made on A: bob's socket on B joins it at once.
    let group = a
        .handle
        .create_group(&user(&carol), "Team", vec![user(&bob)], Default::default())
        .await
        .unwrap();
    a.handle
        .send_message(Post {
            from: Some(user(&carol)),
            to: Target::Group(group.id.clone()),
            body: "team hello".into(),
            client_id: None,
        })
        .await
        .unwrap();
    bob_b.event("message", |m| m["body"] == "team hello").await;
    assert!(
        a.handle
            .remove_member(&group.id, &user(&bob))
            .await
            .unwrap()
    );
    let err = bob_b
        .ack(
            "message:send",
            json!({"group": group.id.to_string(), "body": "hi"}),
        )
        .await;
    assert_code(&err, "forbidden");

    // An announcement on A: every client of both nodes, once.
    a.handle.announce("all hands").await.unwrap();
    bob_b
        .event("announcement", |m| m["body"] == "all hands")
        .await;
    carol_a
        .event("announcement", |m| m["body"] == "all hands")
        .await;
    bob_b.barrier().await;
    assert!(bob_b.received("announcement").is_empty(), "more than once");

    // A disconnect with a ban on A: bob's device on B goes, and B refuses him.
    let n = a
        .handle
        .disconnect_user(&user(&bob), Some(Duration::from_secs(600)))
        .await
        .unwrap();
    assert_eq!(n, 1);
    bob_b.closed().await;
    for node in [&a, &b] {
        let refused = Client::connect(node.addr, json!({"user": bob}))
            .await
            .err()
            .unwrap();
        assert!(refused.starts_with("banned: until "), "{refused}");
    }
    assert!(!carol_a.is_closed());

    // Event hooks hear what happens on their node: bob's device on B came and went.
    events
        .until("bob offline on B", |e| {
            e.iter()
                .any(|e| matches!(e, ChatEvent::UserOffline { user: u, .. } if *u == user(&bob)))
        })
        .await;
}

#[tokio::test]
async fn offline_recipients_are_counted_cluster_wide() {
    let redis = RedisServer::start().await;
    let events = Recorder::default();
    let (a, b) = two_nodes(&redis, &events).await;
    let (alice, bob, dave) = (uid("alice"), uid("bob"), uid("dave"));
    // bob is online on A only; alice sends on B, where the hook is.
    let _bob_a = a.client(&bob).await;
    let mut alice_b = b.client(&alice).await;
    let group = b
        .handle
        .create_group(
            &user(&alice),
            "G",
            vec![user(&bob), user(&dave)],
            Default::default(),
        )
        .await
        .unwrap();
    ok(alice_b
        .ack(
            "message:send",
            json!({"group": group.id.to_string(), "body": "who is here?"}),
        )
        .await);
    let seen = events
        .until("message.stored", |e| {
            e.iter().any(|e| matches!(e, ChatEvent::MessageStored { message, .. } if message.body == "who is here?"))
        })
        .await;
    let offline = seen
        .iter()
        .find_map(|e| match e {
            ChatEvent::MessageStored { message, offline } if message.body == "who is here?" => {
                Some(offline.clone())
            }
            _ => None,
        })
        .unwrap();
    assert_eq!(
        offline,
        vec![user(&dave)],
        "bob is online on the other node"
    );
}

/// Two nodes each built with the app's authenticator and message hook: tickets sign in on
/// either node, and a message rewritten on one node is delivered rewritten on the other.
#[tokio::test]
async fn the_authenticator_and_message_hook_hold_on_every_node() {
    let redis = RedisServer::start().await;
    let settings = redis_settings(&redis.url(), &chat_testing::prefix());
    let node = || {
        let settings = settings.clone();
        TestServer::built(
            move |c| c.redis = Some(settings),
            |b| b.authenticator(Tickets).message_hook(Moderator),
        )
    };
    let (a, b) = (node().await, node().await);
    let (alice, bob) = (uid("alice"), uid("bob"));
    let mut alice_a = Client::connect(a.addr, json!({"ticket": format!("t-{alice}")}))
        .await
        .unwrap();
    let mut bob_b = Client::connect(b.addr, json!({"ticket": format!("t-{bob}")}))
        .await
        .unwrap();
    let refused = Client::connect(b.addr, json!({"user": bob})).await.err();
    assert_eq!(
        refused.as_deref(),
        Some("unauthorized: missing ticket in auth")
    );

    let sent = ok(alice_a
        .ack("message:send", json!({"to": bob, "body": "oh darn"}))
        .await);
    assert_eq!(sent["message"]["body"], "oh d**n");
    let got = bob_b.event("message", |_| true).await;
    assert_eq!(got, sent["message"]);
    let spam = bob_b
        .ack("message:send", json!({"to": alice, "body": "spam from B"}))
        .await;
    assert_code(&spam, "forbidden");
    assert_eq!(spam["error"]["message"], "no spam here");
}
