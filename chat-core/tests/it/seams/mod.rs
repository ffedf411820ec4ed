//! The embedding seams and the server API (issue #18): an embedder's authenticator, message
//! and event hooks, and what the backend does through [`chat_core::ChatHandle`]: on one
//! node here (either store), across nodes in `cluster`.

mod api;
mod bans;
mod cluster;
mod hooks;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use chat_core::hooks::{ChatEvent, EventHook};

/// An event hook that keeps what it is told.
#[derive(Debug, Clone, Default)]
pub struct Recorder(Arc<Mutex<Vec<ChatEvent>>>);

#[async_trait]
impl EventHook for Recorder {
    async fn on_event(&self, event: &ChatEvent) {
        self.0.lock().unwrap().push(event.clone());
    }
}

impl Recorder {
    /// Waits (10 s at most) until the events so far satisfy `ok`; returns them.
    pub async fn until(&self, what: &str, ok: impl Fn(&[ChatEvent]) -> bool) -> Vec<ChatEvent> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let events = self.0.lock().unwrap().clone();
            if ok(&events) {
                return events;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {what} within 10 s; events: {events:#?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
