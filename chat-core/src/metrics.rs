//! Metrics: every handle chat-core records to, resolved once through the `metrics` facade.
//!
//! chat-core installs no recorder: whoever runs it does (the binaries: a Prometheus
//! recorder of their own, `chat_env::metrics`). Handles are resolved when they are made
//! ([`Metrics::resolve`], which [`Chat::builder`](crate::Chat::builder) calls), against the
//! recorder current then: the global one, or a local one set around that call
//! (`metrics::with_local_recorder(&recorder, || Chat::builder(config))`), so several chats
//! in one process can each have their own. Nothing is looked up by name afterwards: the hot
//! paths touch a handle (an atomic add), and nothing is allocated per socket.
//!
//! The families, with their meaning and units, are listed in `docs/metrics.md`. Some values
//! chat-core keeps as plain counters ([`cluster::Stats`](crate::cluster::Stats)) or can only
//! count when asked (sockets by transport, the inbox backlog): those are brought up to date
//! by [`ChatHandle::update_metrics`](crate::ChatHandle::update_metrics), before each scrape.

use std::time::Duration;

use ::metrics::{
    Counter, Gauge, Histogram, Unit, counter, describe_counter, describe_gauge, describe_histogram,
    gauge, histogram,
};

use crate::error::ErrorCode;

/// The acknowledged events counted by name in `chat_events_total`; any other name counts as
/// `unknown` (last: what a name not in the list counts as).
pub const EVENTS: [&str; 29] = [
    "message:send",
    "group:create",
    "group:join",
    "group:leave",
    "group:members",
    "group:update",
    "group:invite",
    "group:kick",
    "group:promote",
    "group:demote",
    "group:delete",
    "group:find",
    "history",
    "sync",
    "conversations",
    "read",
    "presence:subscribe",
    "presence:status",
    "presence:idle",
    "block",
    "unblock",
    "blocks",
    "contacts",
    "contacts:request",
    "contacts:accept",
    "contacts:decline",
    "contacts:remove",
    "search",
    "unknown",
];

/// The outcomes of an event in `chat_events_total`: `ok`, or the error code of the ack.
const CODES: [&str; 9] = [
    "ok",
    "bad_request",
    "unauthorized",
    "forbidden",
    "not_found",
    "conflict",
    "too_large",
    "rate_limited",
    "unavailable",
];

/// Why a Socket.IO handshake was refused (`chat_handshakes_refused_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// No valid credentials.
    Unauthorized = 0,
    /// The node is shutting down.
    Draining = 1,
    /// The node holds `CHAT_CAPACITY` sockets.
    Capacity = 2,
    /// The user is banned (server API `disconnect` with `banSeconds`).
    Banned = 3,
}

/// Every handle of one chat: its handlers, its cluster and its Redis connections.
#[derive(Debug, Clone)]
pub struct Metrics {
    pub(crate) chat: ChatMetrics,
    pub(crate) cluster: ClusterMetrics,
    pub(crate) redis: RedisMetrics,
    pub(crate) webhook: WebhookMetrics,
    /// Resolved by [`ChatBuilder::archive`](crate::ChatBuilder::archive); until then (and
    /// without an archive) they go nowhere.
    pub(crate) archive: crate::archive::ArchiveMetrics,
}

impl Metrics {
    /// Resolves (and describes) every family against the current recorder.
    pub fn resolve() -> Self {
        Self {
            chat: ChatMetrics::resolve(),
            cluster: ClusterMetrics::resolve(),
            redis: RedisMetrics::resolve(),
            webhook: WebhookMetrics::resolve(),
            archive: unrecorded(crate::archive::ArchiveMetrics::resolve),
        }
    }

    /// These metrics for a chat without webhooks: their families go nowhere.
    pub(crate) fn without_webhooks(self) -> Self {
        Self {
            webhook: unrecorded(WebhookMetrics::resolve),
            ..self
        }
    }

    /// [`Metrics::resolve`] for a chat without Redis: the cluster and Redis families go
    /// nowhere, so a scrape does not list them, always zero.
    pub(crate) fn embedded() -> Self {
        Self {
            chat: ChatMetrics::resolve(),
            cluster: unrecorded(ClusterMetrics::resolve),
            redis: unrecorded(RedisMetrics::resolve),
            webhook: WebhookMetrics::resolve(),
            archive: unrecorded(crate::archive::ArchiveMetrics::resolve),
        }
    }
}

/// Families resolved against no recorder: they go nowhere, and a scrape does not list them.
pub(crate) fn unrecorded<T>(resolve: impl FnOnce() -> T) -> T {
    ::metrics::with_local_recorder(&::metrics::NoopRecorder, resolve)
}

/// The handlers' families.
#[derive(Debug, Clone)]
pub(crate) struct ChatMetrics {
    handshakes: Counter,
    refused: [Counter; 4],
    hook_events: Counter,
    hook_drops: Counter,
    events: Vec<[Counter; CODES.len()]>,
    messages_stored: Counter,
    deliveries_local: Counter,
    deliveries_remote: Counter,
    delivery_latency: Histogram,
    ack_latency: Histogram,
    pub(crate) connections_websocket: Gauge,
    pub(crate) connections_polling: Gauge,
    pub(crate) capacity: Gauge,
    pub(crate) order: OrderMetrics,
}

/// `chat_live_order_total`: what the live order of a conversation cost (`handlers::order`).
#[derive(Debug, Clone)]
pub(crate) struct OrderMetrics {
    /// Messages held back for their conversation's previous message.
    pub(crate) held: Counter,
    /// Messages read back from the store to fill a gap, and emitted.
    pub(crate) filled: Counter,
    /// Messages emitted after a later one of their conversation.
    pub(crate) late: Counter,
}

impl OrderMetrics {
    fn resolve() -> Self {
        describe_counter!(
            "chat_live_order_total",
            "Live messages put in order per conversation: `held` back for the previous one, `filled` from the store after a gap, emitted `late` (after a later one)."
        );
        let outcome = |o: &'static str| counter!("chat_live_order_total", "outcome" => o);
        Self {
            held: outcome("held"),
            filled: outcome("filled"),
            late: outcome("late"),
        }
    }

    /// Handles that record nothing.
    #[cfg(test)]
    pub(crate) fn noop() -> Self {
        Self {
            held: Counter::noop(),
            filled: Counter::noop(),
            late: Counter::noop(),
        }
    }
}

impl ChatMetrics {
    fn resolve() -> Self {
        describe_counter!(
            "chat_handshakes_total",
            "Socket.IO handshakes accepted (the socket got `ready`)."
        );
        describe_counter!(
            "chat_handshakes_refused_total",
            "Socket.IO handshakes refused with a connect_error, by reason."
        );
        describe_counter!(
            "chat_events_total",
            "Acknowledged events handled, by event name and outcome (`ok` or the error code)."
        );
        describe_counter!(
            "chat_messages_stored_total",
            "Messages appended to a conversation (duplicates and refusals not counted)."
        );
        describe_counter!(
            "chat_deliveries_total",
            "Message deliveries: `local` emits to this node's devices, `remote` entries sent to another node."
        );
        describe_histogram!(
            "chat_delivery_latency_seconds",
            Unit::Seconds,
            "From a message's timestamp to its emit to this node's devices."
        );
        describe_histogram!(
            "chat_ack_latency_seconds",
            Unit::Seconds,
            "From a message's emit to a device's ack of it."
        );
        describe_gauge!(
            "chat_connections",
            "Sockets connected to this node, by transport."
        );
        describe_gauge!(
            "chat_node_capacity",
            "Sockets this node is meant to hold (CHAT_CAPACITY); past it handshakes are refused."
        );
        describe_counter!(
            "chat_hook_events_total",
            "Events handed to the event hooks (webhooks included), by outcome: `queued`, or `dropped` because the hook queue was full."
        );
        let reasons = ["unauthorized", "draining", "capacity", "banned"];
        let events = EVENTS
            .iter()
            .map(|e| CODES.map(|c| counter!("chat_events_total", "event" => *e, "code" => c)))
            .collect();
        Self {
            handshakes: counter!("chat_handshakes_total"),
            refused: reasons.map(|r| counter!("chat_handshakes_refused_total", "reason" => r)),
            hook_events: counter!("chat_hook_events_total", "outcome" => "queued"),
            hook_drops: counter!("chat_hook_events_total", "outcome" => "dropped"),
            events,
            messages_stored: counter!("chat_messages_stored_total"),
            deliveries_local: counter!("chat_deliveries_total", "scope" => "local"),
            deliveries_remote: counter!("chat_deliveries_total", "scope" => "remote"),
            delivery_latency: histogram!("chat_delivery_latency_seconds"),
            ack_latency: histogram!("chat_ack_latency_seconds"),
            connections_websocket: gauge!("chat_connections", "transport" => "websocket"),
            connections_polling: gauge!("chat_connections", "transport" => "polling"),
            capacity: gauge!("chat_node_capacity"),
            order: OrderMetrics::resolve(),
        }
    }

    pub fn handshake(&self) {
        self.handshakes.increment(1);
    }

    pub fn refused(&self, why: Refused) {
        self.refused[why as usize].increment(1);
    }

    /// One acknowledged event and its outcome.
    pub fn event(&self, event: &str, outcome: Option<ErrorCode>) {
        let e = EVENTS
            .iter()
            .position(|n| *n == event)
            .unwrap_or(EVENTS.len() - 1);
        let c = match outcome {
            None => 0,
            Some(code) => 1 + code as usize,
        };
        if let Some(counter) = self.events.get(e).and_then(|codes| codes.get(c)) {
            counter.increment(1);
        }
    }

    /// An event for the hooks was queued (`true`) or dropped.
    pub fn hook_event(&self, queued: bool) {
        match queued {
            true => self.hook_events.increment(1),
            false => self.hook_drops.increment(1),
        }
    }

    pub fn stored(&self) {
        self.messages_stored.increment(1);
    }

    pub fn delivered_local(&self, sent_at_ms: u64, now_ms: u64) {
        self.deliveries_local.increment(1);
        self.delivery_latency
            .record(now_ms.saturating_sub(sent_at_ms) as f64 / 1000.0);
    }

    pub fn delivered_remote(&self, nodes: usize) {
        self.deliveries_remote.increment(nodes as u64);
    }

    pub fn acked(&self, after: Duration) {
        self.ack_latency.record(after.as_secs_f64());
    }
}

/// The cluster's families.
#[derive(Debug, Clone)]
pub struct ClusterMetrics {
    pub(crate) inbox_lag: Histogram,
    pub(crate) inbox_backlog: Gauge,
    pub(crate) outbox_backlog: Gauge,
    pub(crate) sent: Counter,
    pub(crate) received: Counter,
    pub(crate) duplicates: Counter,
    pub(crate) shed: Counter,
    pub(crate) broadcasts_local: Counter,
    pub(crate) broadcasts_remote: Counter,
    pub(crate) live_nodes: Gauge,
}

impl Default for ClusterMetrics {
    /// Handles on the current recorder.
    fn default() -> Self {
        Self::resolve()
    }
}

impl ClusterMetrics {
    /// Resolves the cluster families against the current recorder.
    pub fn resolve() -> Self {
        describe_histogram!(
            "chat_cluster_inbox_lag_seconds",
            Unit::Seconds,
            "Per entry read from this node's inbox: how long it waited there (Redis stream id time to now)."
        );
        describe_gauge!(
            "chat_cluster_inbox_backlog",
            "Entries in this node's inbox stream (unread, and read ones not yet trimmed: at most 1 s or 1024)."
        );
        describe_gauge!(
            "chat_cluster_outbox_backlog",
            "Entries queued on this node for other nodes' inboxes, not yet appended."
        );
        describe_counter!(
            "chat_cluster_entries_sent_total",
            "Entries appended to other nodes' inboxes."
        );
        describe_counter!(
            "chat_cluster_entries_received_total",
            "Entries read from this node's inbox and handled."
        );
        describe_counter!(
            "chat_cluster_duplicates_total",
            "Inbox entries seen twice (a retried append) and skipped."
        );
        describe_counter!(
            "chat_cluster_shed_total",
            "Entries dropped: volatile packets with a full outbox, or unsendable at shutdown."
        );
        describe_counter!(
            "chat_cluster_broadcasts_total",
            "Adapter broadcasts: `remote` went to at least one other node, `local` needed none."
        );
        describe_gauge!(
            "chat_cluster_live_nodes",
            "Live nodes, this one included, as of its last heartbeat."
        );
        Self {
            inbox_lag: histogram!("chat_cluster_inbox_lag_seconds"),
            inbox_backlog: gauge!("chat_cluster_inbox_backlog"),
            outbox_backlog: gauge!("chat_cluster_outbox_backlog"),
            sent: counter!("chat_cluster_entries_sent_total"),
            received: counter!("chat_cluster_entries_received_total"),
            duplicates: counter!("chat_cluster_duplicates_total"),
            shed: counter!("chat_cluster_shed_total"),
            broadcasts_local: counter!("chat_cluster_broadcasts_total", "scope" => "local"),
            broadcasts_remote: counter!("chat_cluster_broadcasts_total", "scope" => "remote"),
            live_nodes: gauge!("chat_cluster_live_nodes"),
        }
    }
}

/// Redis command families, by what was sent: one `command`, a `pipeline`, or a `script`.
#[derive(Debug, Clone)]
pub struct RedisMetrics {
    latency: [Histogram; 3],
    errors: [Counter; 3],
}

/// What a Redis call sent, for [`RedisMetrics`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum RedisCall {
    Command = 0,
    Pipeline = 1,
    Script = 2,
}

impl RedisMetrics {
    /// Resolves the Redis families against the current recorder.
    pub fn resolve() -> Self {
        describe_histogram!(
            "chat_redis_command_duration_seconds",
            Unit::Seconds,
            "Redis round trips on the shared connection, by kind (command, pipeline, script), errors included."
        );
        describe_counter!(
            "chat_redis_errors_total",
            "Redis calls on the shared connection that failed, by kind."
        );
        let kinds = ["command", "pipeline", "script"];
        Self {
            latency: kinds.map(|k| histogram!("chat_redis_command_duration_seconds", "kind" => k)),
            errors: kinds.map(|k| counter!("chat_redis_errors_total", "kind" => k)),
        }
    }

    pub(crate) fn record(&self, call: RedisCall, took: Duration, failed: bool) {
        self.latency[call as usize].record(took.as_secs_f64());
        if failed {
            self.errors[call as usize].increment(1);
        }
    }
}

/// The webhook families (`chat_webhook_*`).
#[derive(Debug, Clone)]
pub struct WebhookMetrics {
    /// `queued`, `dropped`, `delivered`, `failed`.
    events: [Counter; 4],
    /// `ok`, `error`.
    attempts: [Counter; 2],
    attempt_duration: Histogram,
    reclaimed: Counter,
    pub(crate) backlog: Gauge,
}

impl WebhookMetrics {
    /// Resolves the webhook families against the current recorder.
    pub fn resolve() -> Self {
        describe_counter!(
            "chat_webhook_events_total",
            "Webhook events by outcome: `queued`, `dropped` (the queue was full), `delivered` (a 2xx), `failed` (every attempt failed)."
        );
        describe_counter!(
            "chat_webhook_attempts_total",
            "Webhook POSTs by result: `ok` (2xx) or `error` (connection error, timeout or another status)."
        );
        describe_histogram!(
            "chat_webhook_attempt_duration_seconds",
            Unit::Seconds,
            "How long one webhook POST took, failures included."
        );
        describe_counter!(
            "chat_webhook_reclaimed_total",
            "Cluster: webhook events this node took over from a node that held them too long (a dead one)."
        );
        describe_gauge!(
            "chat_webhook_backlog",
            "Webhook events waiting: in this node's queue (embedded) or in the cluster's stream (as of this node's last look)."
        );
        Self {
            events: ["queued", "dropped", "delivered", "failed"]
                .map(|o| counter!("chat_webhook_events_total", "outcome" => o)),
            attempts: ["ok", "error"]
                .map(|r| counter!("chat_webhook_attempts_total", "result" => r)),
            attempt_duration: histogram!("chat_webhook_attempt_duration_seconds"),
            reclaimed: counter!("chat_webhook_reclaimed_total"),
            backlog: gauge!("chat_webhook_backlog"),
        }
    }

    /// An event was queued (`true`) or dropped.
    pub(crate) fn enqueued(&self, queued: bool) {
        self.events[usize::from(!queued)].increment(1);
    }

    /// `n` events were dropped (the queue was full).
    pub(crate) fn dropped(&self, n: u64) {
        self.events[1].increment(n);
    }

    /// An event was delivered (`true`), or given up.
    pub(crate) fn finished(&self, delivered: bool) {
        self.events[if delivered { 2 } else { 3 }].increment(1);
    }

    /// One POST and its result.
    pub(crate) fn attempt(&self, ok: bool, took: Duration) {
        self.attempts[usize::from(!ok)].increment(1);
        self.attempt_duration.record(took.as_secs_f64());
    }

    /// `n` events taken over from another node.
    pub(crate) fn reclaimed(&self, n: u64) {
        self.reclaimed.increment(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every error code has its outcome label, in the enum's order.
    #[test]
    fn codes_follow_the_error_enum() {
        for (i, code) in [
            ErrorCode::BadRequest,
            ErrorCode::Unauthorized,
            ErrorCode::Forbidden,
            ErrorCode::NotFound,
            ErrorCode::Conflict,
            ErrorCode::TooLarge,
            ErrorCode::RateLimited,
            ErrorCode::Unavailable,
        ]
        .into_iter()
        .enumerate()
        {
            let label = serde_json::to_value(code).unwrap();
            assert_eq!(label, CODES[1 + i]);
            assert_eq!(code as usize, i);
        }
    }
}
