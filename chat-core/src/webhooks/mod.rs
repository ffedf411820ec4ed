//! Webhooks: what happened, POSTed as signed JSON to the product's backend
//! (`docs/webhooks.md` is the receiver's side of the contract).
//!
//! Three events: `message.offline` (a stored message had recipients with no connected
//! device: the cue for a push notification), `user.online` and `user.offline`. The webhook is
//! an [`EventHook`] the chat registers for itself when [`Config::webhook`](crate::Config) is
//! set; like every event hook it only enqueues, so a receiver that is down, slow or failing
//! never slows the chat:
//! - embedded, the queue is in memory (`memory`): bounded, lost on a crash;
//! - in a cluster, the hook hands events to a writer task that appends them to one Redis
//!   stream ([`Keys::webhooks`](crate::keys::Keys::webhooks)) read by a consumer group, each
//!   node a consumer (`stream`); a node that dies holding entries has them reclaimed by
//!   another, so an event in the stream is delivered even if its node crashes.
//!
//! Deliveries (`send`) are retried with exponential backoff and jitter on connection
//! errors, timeouts and non-2xx answers, keeping the event id: at-least-once, receivers
//! dedupe by id. Each POST is signed ([`sign`]).

mod memory;
mod send;
pub mod sign;
mod stream;

use std::{fmt, time::Duration};

use async_trait::async_trait;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

pub use send::WebhookError;
pub(crate) use stream::StreamQueue;

use crate::{
    hooks::{ChatEvent, EventHook},
    metrics::WebhookMetrics,
    protocol::now_ms,
};

/// Where webhooks go and how they are retried. Only `url` and `secret` have no default
/// ([`WebhookConfig::new`]).
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    /// The receiver, `http://` or `https://` (`CHAT_WEBHOOK_URL`).
    pub url: String,
    /// The HMAC-SHA256 key of the signatures, at least 16 bytes (`CHAT_WEBHOOK_SECRET`).
    pub secret: String,
    /// How long one POST may take, connecting included (`CHAT_WEBHOOK_TIMEOUT`, default 10s).
    pub timeout: Duration,
    /// Attempts per event, the first included (default 10); then it is dropped and counted
    /// (`chat_webhook_events_total{outcome="failed"}`).
    pub attempts: u32,
    /// The delay before the first retry (default 1s); each retry waits twice the one before,
    /// at most `retry_max`, less a random part of up to half (jitter).
    pub retry_min: Duration,
    /// The longest delay between two attempts (default 5 minutes).
    pub retry_max: Duration,
    /// Events waiting for delivery, in memory or (in a cluster) in the Redis stream; past
    /// it new events are dropped and counted (default 10,000).
    pub queue: usize,
    /// Events being delivered at once by one node (default 8).
    pub concurrency: usize,
    /// Cluster: how long an entry a node took may go without a sign of life from that node
    /// before another node takes it over (`CHAT_WEBHOOK_CLAIM_AFTER`, default 30s). A live
    /// node renews its entries every quarter of this.
    pub claim_after: Duration,
}

impl WebhookConfig {
    /// Webhooks to `url` signed with `secret`, the rest by default.
    pub fn new(url: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            secret: secret.into(),
            timeout: Duration::from_secs(10),
            attempts: 10,
            retry_min: Duration::from_secs(1),
            retry_max: Duration::from_secs(300),
            queue: 10_000,
            concurrency: 8,
            claim_after: Duration::from_secs(30),
        }
    }
}

impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &self.url)
            .field("secret", &"<hidden>")
            .field("timeout", &self.timeout)
            .field("attempts", &self.attempts)
            .field("retry_min", &self.retry_min)
            .field("retry_max", &self.retry_max)
            .field("queue", &self.queue)
            .field("concurrency", &self.concurrency)
            .field("claim_after", &self.claim_after)
            .finish()
    }
}

/// One event as it is queued and sent: its id and the exact body (what is signed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Queued {
    pub id: String,
    pub body: String,
}

impl Queued {
    /// The webhook for `event`, if it has one: `{id, type, ts, data}` with a new id.
    pub fn from_event(event: &ChatEvent) -> Option<Self> {
        let (kind, data) = match event {
            ChatEvent::MessageStored { message, offline } if !offline.is_empty() => (
                "message.offline",
                json!({ "message": message, "recipients": offline }),
            ),
            ChatEvent::UserOnline { user } => ("user.online", json!({ "user": user })),
            ChatEvent::UserOffline { user, last_seen } => (
                "user.offline",
                json!({ "user": user, "lastSeen": last_seen }),
            ),
            _ => return None,
        };
        let id = format!("evt_{:032x}", rand::random::<u128>());
        let body = json!({ "id": id, "type": kind, "ts": now_ms(), "data": data });
        Some(Self {
            id,
            body: Value::to_string(&body),
        })
    }
}

/// The chat's own event hook: turns events into webhooks and queues them without waiting.
#[derive(Debug)]
pub(crate) struct WebhookHook {
    /// The in-memory queue (embedded), or the writer's outbox (cluster).
    tx: mpsc::Sender<Queued>,
    /// Whether `tx` is the queue itself: in a cluster, the writer counts what reaches the
    /// stream.
    is_queue: bool,
    metrics: WebhookMetrics,
}

/// Starts delivering webhooks as `config` says, in memory or (with `redis`) through the
/// cluster's stream, until `stop`, on `tasks`; returns the hook that feeds them.
pub(crate) fn start(
    config: &WebhookConfig,
    redis: Option<stream::StreamQueue>,
    metrics: WebhookMetrics,
    tasks: &TaskTracker,
    stop: CancellationToken,
) -> Result<WebhookHook, WebhookError> {
    let sender = send::Sender::new(config, metrics.clone())?;
    let (tx, rx) = mpsc::channel(config.queue.max(1));
    let is_queue = redis.is_none();
    match redis {
        None => {
            tasks.spawn(memory::run(rx, sender, config.concurrency, stop));
        }
        Some(queue) => queue.spawn(rx, sender, config, tasks, stop),
    }
    Ok(WebhookHook {
        tx,
        is_queue,
        metrics,
    })
}

#[async_trait]
impl EventHook for WebhookHook {
    async fn on_event(&self, event: &ChatEvent) {
        let Some(queued) = Queued::from_event(event) else {
            return;
        };
        let ok = self.tx.try_send(queued).is_ok();
        if !ok {
            self.metrics.dropped(1);
            tracing::debug!("webhook queue full: event dropped");
        } else if self.is_queue {
            self.metrics.enqueued(true);
            let waiting = self.tx.max_capacity() - self.tx.capacity();
            self.metrics.backlog.set(waiting as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{ConversationId, Message, MessageId, UserId};

    fn user(u: &str) -> UserId {
        UserId::parse(u).unwrap()
    }

    /// Each kind of event has its webhook type and data; a message everyone got has none.
    #[test]
    fn events_become_webhooks() {
        let (ann, bob) = (user("ann"), user("bob"));
        let message = Message {
            id: MessageId { ms: 5, seq: 0 },
            conversation: ConversationId::dm(&ann, &bob),
            from: ann.clone(),
            body: "hi".into(),
            ts: 5,
            client_id: None,
        };
        let body = |e: &ChatEvent| -> Value {
            serde_json::from_str(&Queued::from_event(e).unwrap().body).unwrap()
        };
        let offline = ChatEvent::MessageStored {
            message: message.clone(),
            offline: vec![bob.clone()],
        };
        let b = body(&offline);
        assert_eq!(b["type"], "message.offline");
        assert_eq!(b["data"]["recipients"], json!(["bob"]));
        assert_eq!(b["data"]["message"]["body"], "hi");
        assert!(b["id"].as_str().unwrap().starts_with("evt_"));
        assert_ne!(body(&offline)["id"], b["id"], "ids are unique");
        let online = ChatEvent::UserOnline { user: ann.clone() };
        assert_eq!(body(&online)["data"], json!({ "user": "ann" }));
        let gone = ChatEvent::UserOffline {
            user: ann.clone(),
            last_seen: 7,
        };
        assert_eq!(body(&gone)["data"]["lastSeen"], 7);
        let everyone = ChatEvent::MessageStored {
            message,
            offline: vec![],
        };
        assert_eq!(Queued::from_event(&everyone), None);
    }
}
