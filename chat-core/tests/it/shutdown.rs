use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use chat_core::hooks::{ChatEvent, EventHook};
use serde_json::json;

use crate::helpers::*;

/// Shutdown tells clients to reconnect, refuses what it would lose (in memory: any write;
/// with Redis nothing is lost, so writes go on), then closes them.
#[tokio::test]
async fn shutdown_drains() {
    let srv = TestServer::with(|c| c.drain_timeout = std::time::Duration::from_secs(2)).await;
    let (a, b) = (uid("alice"), uid("bob"));
    let mut ca = srv.client(&a).await;
    let handle = srv.handle.clone();
    assert_eq!(handle.connections(), 1);
    let stopping = tokio::spawn(async move { handle.shutdown().await });
    assert_eq!(
        ca.event("drain", |_| true).await,
        json!({"reconnect": true})
    );
    let late = ca
        .ack("message:send", json!({"to": b, "body": "late"}))
        .await;
    if redis_backend() {
        ok(late);
    } else {
        assert_code(&late, "unavailable");
    }
    let err = Client::connect(srv.addr, json!({"user": b}))
        .await
        .err()
        .unwrap();
    assert!(err.starts_with("unavailable"), "{err}");
    ca.closed().await;
    stopping.await.unwrap();
    assert_eq!(srv.handle.connections(), 0);
}

/// An event hook that records what it is told.
#[derive(Debug, Default, Clone)]
struct Recorder(Arc<Mutex<Vec<ChatEvent>>>);

#[async_trait::async_trait]
impl EventHook for Recorder {
    async fn on_event(&self, event: &ChatEvent) {
        self.0.lock().unwrap().push(event.clone());
    }
}

impl Recorder {
    fn events(&self) -> Vec<ChatEvent> {
        self.0.lock().unwrap().clone()
    }

    /// The users the hook was told went offline, in order.
    fn offline(&self) -> Vec<String> {
        self.events()
            .iter()
            .filter_map(|e| match e {
                ChatEvent::UserOffline { user, .. } => Some(user.to_string()),
                _ => None,
            })
            .collect()
    }

    /// Waits (5 s at most) until the hook was told `ok`.
    async fn until(&self, ok: impl Fn(&[ChatEvent]) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !ok(&self.events()) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the hook was never told that; it got {:#?}",
                self.events()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Users still connected when the drain timeout ends go offline as the chat stops: by the
/// time `shutdown` returns, the event hook was told `user.offline` once for each, and each
/// of their devices left once.
#[tokio::test]
async fn shutdown_takes_the_remaining_users_offline() {
    let hook = Recorder::default();
    let srv = TestServer::built(
        |c| c.drain_timeout = Duration::from_millis(300),
        |b| b.event_hook(hook.clone()),
    )
    .await;
    let (a, b) = (uid("alice"), uid("bob"));
    let _alice = srv.client(&a).await;
    let _bob = srv.client(&b).await;
    let _bob2 = srv.client(&b).await;
    hook.until(|events| {
        events
            .iter()
            .filter(|e| matches!(e, ChatEvent::Connected { .. }))
            .count()
            == 3
    })
    .await;
    let before = chat_core::protocol::now_ms();

    srv.handle.shutdown().await;

    let mut offline = hook.offline();
    offline.sort();
    assert_eq!(offline, [a.clone(), b.clone()], "{:#?}", hook.events());
    for e in hook.events() {
        if let ChatEvent::UserOffline { last_seen, .. } = e {
            assert!(last_seen >= before, "{last_seen} < {before}");
        }
    }
    let left = hook
        .events()
        .iter()
        .filter(|e| matches!(e, ChatEvent::Disconnected { .. }))
        .count();
    assert_eq!(left, 3, "{:#?}", hook.events());
    assert_eq!(srv.handle.connections(), 0);
}
