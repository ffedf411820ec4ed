//! An embedder's authenticator, message hook and event hooks, on either store.

use std::sync::Arc;

use async_trait::async_trait;
use chat_core::{
    ChatError, ErrorCode,
    api::{Post, Target},
    auth::{AuthError, Authenticator, Handshake, Identity},
    hooks::{ChatEvent, Draft, HookConfig, MessageHook, Verdict},
    protocol::UserId,
};
use serde_json::json;
use tokio::sync::Semaphore;

use super::Recorder;
use crate::helpers::*;

/// Tickets an app handed out: `t-<user>` is `<user>`.
#[derive(Debug)]
pub(super) struct Tickets;

#[async_trait]
impl Authenticator for Tickets {
    async fn authenticate(&self, hs: &Handshake<'_>) -> Result<Identity, AuthError> {
        let ticket = hs.auth_str("ticket").ok_or(AuthError::Missing("ticket"))?;
        let user = ticket
            .strip_prefix("t-")
            .ok_or_else(|| AuthError::Refused("unknown ticket; log in again".into()))?;
        let user = UserId::parse(user).map_err(|e| AuthError::InvalidUser(e.0))?;
        Ok(Identity {
            user,
            expires_at: None,
        })
    }
}

#[tokio::test]
async fn an_embedders_authenticator_decides_who_connects() {
    let server = TestServer::built(|_| {}, |b| b.authenticator(Tickets)).await;
    let alice = uid("alice");
    let client = Client::connect(server.addr, json!({"ticket": format!("t-{alice}")}))
        .await
        .unwrap();
    assert_eq!(client.ready["user"], alice.as_str());
    let refused = Client::connect(server.addr, json!({"ticket": "forged"}))
        .await
        .err()
        .unwrap();
    assert_eq!(refused, "unauthorized: unknown ticket; log in again");
    // Development mode is off: a bare user name is not a ticket.
    let refused = Client::connect(server.addr, json!({"user": alice}))
        .await
        .err()
        .unwrap();
    assert_eq!(refused, "unauthorized: missing ticket in auth");
}

/// Refuses "spam", turns "darn" into "d**n".
#[derive(Debug)]
pub(super) struct Moderator;

#[async_trait]
impl MessageHook for Moderator {
    async fn check(&self, draft: Draft<'_>) -> Verdict {
        if draft.body.contains("spam") {
            return Verdict::Refuse(ChatError::new(ErrorCode::Forbidden, "no spam here"));
        }
        match draft.body.contains("darn") {
            true => Verdict::Rewrite(draft.body.replace("darn", "d**n")),
            false => Verdict::Accept,
        }
    }
}

#[tokio::test]
async fn the_message_hook_refuses_and_rewrites_on_every_path() {
    let server = TestServer::built(|_| {}, |b| b.message_hook(Moderator)).await;
    let (a, b) = (uid("alice"), uid("bob"));
    let mut alice = server.client(&a).await;
    let mut bob = server.client(&b).await;
    let refused = alice
        .ack("message:send", json!({"to": b, "body": "buy spam"}))
        .await;
    assert_code(&refused, "forbidden");
    assert_eq!(refused["error"]["message"], "no spam here");
    let sent = ok(alice
        .ack("message:send", json!({"to": b, "body": "oh darn"}))
        .await);
    assert_eq!(sent["message"]["body"], "oh d**n");
    assert_eq!(bob.event("message", |_| true).await["body"], "oh d**n");
    // The server API goes through the same hook.
    let api = server.handle.send_message(Post {
        from: None,
        to: Target::User(UserId::parse(b.as_str()).unwrap()),
        body: "system spam".into(),
        client_id: None,
    });
    assert_eq!(api.await.unwrap_err().code, ErrorCode::Forbidden);
    // Nothing refused was stored.
    let history = ok(bob
        .ack(
            "history",
            json!({"conversation": sent["message"]["conversation"]}),
        )
        .await);
    let bodies: Vec<_> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].clone())
        .collect();
    assert_eq!(bodies, vec![json!("oh d**n")]);
}

#[tokio::test]
async fn event_hooks_hear_connections_presence_and_offline_recipients() {
    let events = Recorder::default();
    let server = TestServer::built(|_| {}, |b| b.event_hook(events.clone())).await;
    let (a, b) = (uid("alice"), uid("bob"));
    let user = |s: &str| UserId::parse(s).unwrap();
    let mut alice = server.client(&a).await;
    events
        .until("alice online", |e| {
            e.contains(&ChatEvent::UserOnline { user: user(&a) })
                && e.iter()
                    .any(|e| matches!(e, ChatEvent::Connected { user: u, .. } if *u == user(&a)))
        })
        .await;
    let sent = ok(alice
        .ack("message:send", json!({"to": b, "body": "are you there?"}))
        .await);
    let stored = events
        .until("message.stored", |e| {
            e.iter()
                .any(|e| matches!(e, ChatEvent::MessageStored { .. }))
        })
        .await;
    let Some(ChatEvent::MessageStored { message, offline }) = stored
        .iter()
        .find(|e| matches!(e, ChatEvent::MessageStored { .. }))
    else {
        unreachable!()
    };
    assert_eq!(
        message.id.to_string(),
        sent["message"]["id"].as_str().unwrap()
    );
    assert_eq!(offline, &vec![user(&b)], "bob had no device");
    // With bob connected, nobody is offline.
    let _bob = server.client(&b).await;
    ok(alice
        .ack("message:send", json!({"to": b, "body": "there you are"}))
        .await);
    events
        .until("a message with nobody offline", |e| {
            e.iter().any(|e| {
                matches!(e, ChatEvent::MessageStored { offline, message } if offline.is_empty() && message.body == "there you are")
            })
        })
        .await;
    drop(alice);
    let events = events
        .until("alice offline", |e| {
            e.iter()
                .any(|e| matches!(e, ChatEvent::UserOffline { user: u, .. } if *u == user(&a)))
        })
        .await;
    assert!(
        events
            .iter()
            .any(|e| matches!(e, ChatEvent::Disconnected { user: u, .. } if *u == user(&a)))
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, ChatEvent::UserOnline { user: u } if *u == user(&a)))
            .count(),
        1,
        "online once: {events:#?}"
    );
}

/// A hook that waits for permits: the queue behind it fills up.
#[derive(Debug, Clone)]
struct Stuck(Arc<Semaphore>);

#[async_trait]
impl chat_core::hooks::EventHook for Stuck {
    async fn on_event(&self, _: &ChatEvent) {
        let _ = self.0.acquire().await.map(|p| p.forget());
    }
}

#[tokio::test]
async fn a_stuck_event_hook_never_slows_sending_and_drops_are_counted() {
    let gate = Arc::new(Semaphore::new(0));
    let server = TestServer::built(
        |c| c.limits.message_rate = chat_core::config::Rate::new(1000.0, 1000),
        |b| {
            b.event_hook(Stuck(gate.clone()))
                .hook_config(HookConfig { queue: 2 })
        },
    )
    .await;
    let (a, b) = (uid("alice"), uid("bob"));
    let mut alice = server.client(&a).await;
    for i in 0..20 {
        ok(alice
            .ack("message:send", json!({"to": b, "body": format!("m{i}")}))
            .await);
    }
    let dropped = server
        .metric_until("chat_hook_events_total", &[("outcome", "dropped")], |v| {
            v >= 15.0
        })
        .await;
    let queued = server
        .metric("chat_hook_events_total", &[("outcome", "queued")])
        .await;
    assert!(queued >= 2.0, "queued {queued}, dropped {dropped}");
    gate.close();
}

/// Bans kept by the embedder's own system: everyone whose name starts with `troll-`.
#[derive(Debug)]
struct AppBans;

#[async_trait]
impl chat_core::store::Bans for AppBans {
    async fn ban(&self, _: &UserId, _: u64) -> Result<(), chat_core::error::StoreError> {
        Ok(())
    }
    async fn banned_until(
        &self,
        user: &UserId,
        now_ms: u64,
    ) -> Result<Option<u64>, chat_core::error::StoreError> {
        Ok(user
            .as_str()
            .starts_with("troll-")
            .then_some(now_ms + 60_000))
    }
}

/// An embedder brings its own stores: the chat reads and writes through them.
#[tokio::test]
async fn injected_stores_are_the_ones_used() {
    use chat_core::store::{MessageLog, Stores, memory::MemoryStore};
    let mine = Arc::new(MemoryStore::new(&chat_core::Limits::default()));
    let stores = Stores {
        bans: Arc::new(AppBans),
        ..Stores::all_in(mine.clone())
    };
    let server = TestServer::built(|_| {}, |b| b.stores(stores)).await;
    let refused = Client::connect(server.addr, json!({"user": uid("troll")}))
        .await
        .err()
        .unwrap();
    assert!(refused.starts_with("banned: until "), "{refused}");
    let (a, b) = (uid("alice"), uid("bob"));
    let mut alice = server.client(&a).await;
    let sent = ok(alice
        .ack(
            "message:send",
            json!({"to": b, "body": "kept by the embedder"}),
        )
        .await);
    let conversation = chat_core::protocol::ConversationId::dm(
        &UserId::parse(a.as_str()).unwrap(),
        &UserId::parse(b.as_str()).unwrap(),
    );
    let (kept, _) = mine.history(&conversation, None, 10).await.unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(
        kept[0].id.to_string(),
        sent["message"]["id"].as_str().unwrap()
    );
}
