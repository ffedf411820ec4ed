//! The server API on one node, either store: what the backend does, seen by clients.

use std::time::Duration;

use chat_core::{
    ErrorCode,
    api::{Post, Target},
    protocol::{GroupId, UserId},
};
use serde_json::json;

use crate::helpers::*;

fn user(s: &str) -> UserId {
    UserId::parse(s).unwrap()
}

fn post(from: Option<&str>, to: Target, body: &str) -> Post {
    Post {
        from: from.map(user),
        to,
        body: body.into(),
        client_id: None,
    }
}

#[tokio::test]
async fn system_messages_reach_users_and_stay_in_their_history() {
    let server = TestServer::start().await;
    let b = uid("bob");
    let mut bob = server.client(&b).await;
    let sent = server
        .handle
        .send_message(post(None, Target::User(user(&b)), "welcome"))
        .await
        .unwrap();
    assert!(!sent.duplicate);
    let got = bob.event("message", |_| true).await;
    assert_eq!(
        (&got["from"], &got["body"]),
        (&json!("@system"), &json!("welcome"))
    );
    assert_eq!(got["conversation"], format!("dm:@system:{b}"));
    let history = ok(bob
        .ack("history", json!({"conversation": got["conversation"]}))
        .await);
    assert_eq!(history["messages"][0]["id"], got["id"]);
    // A client can read it but cannot answer as, or to, the system sender.
    let reply = bob
        .ack("message:send", json!({"to": "@system", "body": "hi"}))
        .await;
    assert_code(&reply, "bad_request");
    let refused = Client::connect(server.addr, json!({"user": "@system"}))
        .await
        .err()
        .unwrap();
    assert!(refused.starts_with("unauthorized"), "{refused}");
}

#[tokio::test]
async fn the_api_sends_as_a_user_with_the_socket_paths_checks() {
    let server = TestServer::start().await;
    let (a, b) = (uid("alice"), uid("bob"));
    let mut alice = server.client(&a).await;
    let mut bob = server.client(&b).await;
    let first = Post {
        client_id: Some("k1".into()),
        ..post(Some(&a), Target::User(user(&b)), "from the backend")
    };
    let sent = server.handle.send_message(first.clone()).await.unwrap();
    // Every device of both users, the sender's included.
    for c in [&mut alice, &mut bob] {
        let got = c.event("message", |_| true).await;
        assert_eq!(got["id"], sent.message.id.to_string());
    }
    let again = server.handle.send_message(first).await.unwrap();
    assert!(again.duplicate);
    assert_eq!(again.message.id, sent.message.id);
    // A block stops the API as it stops the socket.
    ok(bob.ack("block", json!({"user": a})).await);
    let blocked = server
        .handle
        .send_message(post(Some(&a), Target::User(user(&b)), "still there?"))
        .await
        .unwrap_err();
    assert_eq!(blocked.code, ErrorCode::Forbidden);
    let too_long = "x".repeat(4001);
    let err = server
        .handle
        .send_message(post(Some(&a), Target::User(user(&b)), &too_long))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::TooLarge);
    let nobody = GroupId::parse("nope").unwrap();
    let err = server
        .handle
        .send_message(post(Some(&a), Target::Group(nobody), "hi"))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::NotFound);
}

#[tokio::test]
async fn groups_made_by_the_backend_reach_connected_members() {
    let server = TestServer::start().await;
    let (a, b, c) = (uid("alice"), uid("bob"), uid("carol"));
    let mut bob = server.client(&b).await;
    let mut carol = server.client(&c).await;
    let group = server
        .handle
        .create_group(&user(&a), "Team", vec![user(&b)], Default::default())
        .await
        .unwrap();
    let (_, added) = server
        .handle
        .add_member(&group.id, &user(&c))
        .await
        .unwrap();
    assert!(added);
    let (_, again) = server
        .handle
        .add_member(&group.id, &user(&c))
        .await
        .unwrap();
    assert!(!again, "already a member");
    // Connected members joined the group's room at once: a message reaches them live.
    server
        .handle
        .send_message(post(
            Some(&a),
            Target::Group(group.id.clone()),
            "hello team",
        ))
        .await
        .unwrap();
    for client in [&mut bob, &mut carol] {
        let got = client.event("message", |m| m["body"] == "hello team").await;
        assert_eq!(got["conversation"], format!("group:{}", group.id));
    }
    assert!(
        server
            .handle
            .remove_member(&group.id, &user(&c))
            .await
            .unwrap()
    );
    assert!(
        !server
            .handle
            .remove_member(&group.id, &user(&c))
            .await
            .unwrap()
    );
    server
        .handle
        .send_message(post(None, Target::Group(group.id.clone()), "carol left"))
        .await
        .unwrap();
    bob.event("message", |m| m["body"] == "carol left").await;
    carol.barrier().await;
    assert!(
        !carol
            .received("message")
            .iter()
            .any(|m| m["body"] == "carol left"),
        "a removed member still gets the group's messages"
    );
    let err = carol
        .ack(
            "message:send",
            json!({"group": group.id.to_string(), "body": "hey"}),
        )
        .await;
    assert_code(&err, "forbidden");
}

#[tokio::test]
async fn presence_disconnect_ban_and_announcements() {
    let server = TestServer::start().await;
    let (a, b) = (uid("alice"), uid("bob"));
    let alice1 = server.client(&a).await;
    let alice2 = server.client(&a).await;
    let mut bob = server.client(&b).await;
    let states = server
        .handle
        .presence(&[user(&a), user(&uid("nobody"))])
        .await
        .unwrap();
    assert!(states[0].online);
    assert!(!states[1].online);

    let announced = server.handle.announce("maintenance at ten").await.unwrap();
    for c in [&alice1, &alice2, &bob] {
        let got = c.event("announcement", |_| true).await;
        assert_eq!(
            got,
            json!({"body": "maintenance at ten", "ts": announced.ts})
        );
    }
    bob.barrier().await;
    assert!(bob.received("announcement").is_empty(), "more than once");

    let n = server
        .handle
        .disconnect_user(&user(&a), Some(Duration::from_secs(2)))
        .await
        .unwrap();
    assert_eq!(n, 2, "both devices");
    alice1.closed().await;
    alice2.closed().await;
    assert!(!bob.is_closed());
    let refused = Client::connect(server.addr, json!({"user": a}))
        .await
        .err()
        .unwrap();
    let until: u64 = refused
        .strip_prefix("banned: until ")
        .unwrap_or_else(|| panic!("{refused}"))
        .parse()
        .unwrap();
    assert!(until > chat_core::protocol::now_ms());
    // The ban ends on its own.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match Client::connect(server.addr, json!({"user": a})).await {
            Ok(_) => break,
            Err(e) => assert!(e.starts_with("banned"), "{e}"),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still banned after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    for bad in [
        Duration::ZERO,
        chat_core::api::MAX_BAN + Duration::from_secs(1),
    ] {
        let err = server
            .handle
            .disconnect_user(&user(&b), Some(bad))
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::BadRequest);
    }
    assert!(!bob.is_closed(), "a refused ban disconnects nobody");
    let err = server.handle.announce("").await.unwrap_err();
    assert_eq!(err.code, ErrorCode::BadRequest);
    let err = server.handle.presence(&[]).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::BadRequest);
}
