//! The chat's configuration: plain structs with documented defaults, so embedders need no
//! environment. `chat-server` fills them from `CHAT_*` variables (the names are given with
//! each field).

use std::time::Duration;

use crate::redis::RedisConfig;
pub use crate::webhooks::WebhookConfig;

/// Limits on what clients control. Defaults are the documented ones (docs/protocol.md).
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Longest message body in characters (`CHAT_MAX_BODY`, default 4000).
    pub max_body: usize,
    /// Largest Engine.IO packet in bytes (`CHAT_MAX_PAYLOAD`, default 64 KiB). Sixteen times
    /// this (1 MiB by default) is what a node holds at most for one socket's client: past it
    /// the client is too slow and is disconnected (README, "Slow clients").
    pub max_payload: u64,
    /// Most members in a group, owner included (`CHAT_MAX_GROUP_SIZE`, default 1000).
    pub max_group_size: usize,
    /// Messages kept per conversation (`CHAT_HISTORY_MAX`, default 10000).
    pub history_max: usize,
    /// `message:send` per user (`CHAT_RATE_MESSAGES` per second, `CHAT_RATE_MESSAGES_BURST`).
    pub message_rate: Rate,
    /// Acknowledged events per user (`CHAT_RATE_EVENTS`, `CHAT_RATE_EVENTS_BURST`).
    pub event_rate: Rate,
    /// `search` per user, on top of the event rate (`CHAT_RATE_SEARCH` per second, default 2,
    /// bursts of 10): each one is a database query.
    pub search_rate: Rate,
    /// `contacts:request` per user, on top of the event rate (`CHAT_RATE_CONTACT_REQUESTS` per
    /// second, default 0.2 — 12 a minute — with bursts of 20,
    /// `CHAT_RATE_CONTACT_REQUESTS_BURST`): each one lands in another user's roster.
    pub contact_request_rate: Rate,
    /// `presence:status` and `presence:idle` per user, on top of the event rate (1 per
    /// second, bursts of 10): each change is told to the user's audience.
    pub status_rate: Rate,
    /// `typing` events per user; more are dropped (5 per second, bursts of 5).
    pub typing_rate: Rate,
    /// Whether `delivered` and `read` receipts are sent at all (`CHAT_RECEIPTS`, default
    /// true). Off, read marks still count unread messages; nothing asks devices for acks.
    pub receipts: bool,
    /// Largest group that gets receipts (`CHAT_RECEIPT_GROUP_MAX`, default 100).
    pub receipt_group_max: usize,
    /// Users per `presence:subscribe` call (100).
    pub presence_batch: usize,
    /// Presence subscriptions per socket (1000).
    pub presence_per_socket: usize,
    /// Groups one user may belong to (1000).
    pub groups_per_user: usize,
    /// Users one user may block (1000).
    pub blocks_per_user: usize,
    /// Entries of one user's contact roster: contacts and requests both ways
    /// (`CHAT_MAX_CONTACTS`, default 1000).
    pub contacts_per_user: usize,
    /// Embedded mode only: what the in-memory store keeps of conversations (messages,
    /// counters, read marks), in estimated bytes (`CHAT_MEMORY_MAX_MB`, default 1024 MiB).
    /// Past it, the least recently active conversations are forgotten whole, as a cache
    /// forgets (README, "Embedded mode's memory"). Redis is bounded by its own `maxmemory`.
    pub memory_max_bytes: usize,
    /// How long `clientId` idempotency keys are kept (24 hours).
    pub idempotency_ttl: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body: 4000,
            max_payload: 64 * 1024,
            max_group_size: 1000,
            history_max: 10_000,
            message_rate: Rate::new(10.0, 20),
            event_rate: Rate::new(30.0, 60),
            search_rate: Rate::new(2.0, 10),
            contact_request_rate: Rate::new(0.2, 20),
            status_rate: Rate::new(1.0, 10),
            typing_rate: Rate::new(5.0, 5),
            receipts: true,
            receipt_group_max: 100,
            presence_batch: 100,
            presence_per_socket: 1000,
            groups_per_user: 1000,
            blocks_per_user: 1000,
            contacts_per_user: 1000,
            memory_max_bytes: 1024 << 20,
            idempotency_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

/// A token bucket: `per_second` refill, `burst` capacity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Tokens added per second.
    pub per_second: f64,
    /// Bucket capacity.
    pub burst: u32,
}

impl Rate {
    /// A rate of `per_second` with bursts of `burst`.
    pub const fn new(per_second: f64, burst: u32) -> Self {
        Self { per_second, burst }
    }
}

/// Configuration of a chat.
#[derive(Debug, Clone)]
pub struct Config {
    /// The URL clients use to reach this node (`CHAT_PUBLIC_URL`).
    pub public_url: Option<String>,
    /// This node's id (`CHAT_NODE_ID`, default random).
    pub node_id: String,
    /// HS256 secret for client tokens (`CHAT_AUTH_SECRET`); `None` (and no public key) =
    /// development mode.
    pub auth_secret: Option<String>,
    /// PEM public key (RSA or P-256 EC) for RS256 / ES256 client tokens
    /// (`CHAT_AUTH_PUBLIC_KEY`); takes precedence over `auth_secret`.
    pub auth_public_key: Option<String>,
    /// Allowed CORS origins (`CHAT_CORS_ORIGINS`, comma-separated); `None` = any origin.
    pub cors_origins: Option<Vec<String>>,
    /// How long to wait for clients to leave on shutdown (`CHAT_DRAIN_TIMEOUT`, default 10s).
    pub drain_timeout: Duration,
    /// Limits on what clients control.
    pub limits: Limits,
    /// Sockets this node is meant to hold (`CHAT_CAPACITY`, default 10000); the registry
    /// picks by connections ÷ capacity and skips a node that holds its capacity. Past it the
    /// node refuses new handshakes (`unavailable: node is at capacity`).
    pub capacity: u32,
    /// Redis, in cluster mode (`CHAT_REDIS_URL` or `CHAT_REDIS_SENTINELS`); `None`: embedded.
    pub redis: Option<RedisSettings>,
    /// Whether Engine.IO 3 / Socket.IO protocol v4 clients (socket.io-client 2.x and its
    /// generation) may connect (`CHAT_ALLOW_EIO3`, default false, as Node's `allowEIO3`).
    /// They authenticate with query parameters (docs/protocol.md). Off, their handshake gets
    /// `400` `Unsupported protocol version`.
    pub allow_eio3: bool,
    /// Who learns a user's presence, typing in DMs and `lastSeen`
    /// (`CHAT_PRESENCE_VISIBILITY`, default `everyone`).
    pub presence_visibility: PresenceVisibility,
    /// Signed webhooks for offline recipients and presence (`CHAT_WEBHOOK_URL`,
    /// `CHAT_WEBHOOK_SECRET`; docs/webhooks.md); `None`: none are sent.
    pub webhook: Option<WebhookConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            public_url: None,
            node_id: random_node_id(),
            auth_secret: None,
            auth_public_key: None,
            cors_origins: None,
            drain_timeout: Duration::from_secs(10),
            limits: Limits::default(),
            capacity: 10_000,
            redis: None,
            allow_eio3: false,
            presence_visibility: PresenceVisibility::Everyone,
            webhook: None,
        }
    }
}

/// Who learns a user's presence (`presence`, `presence:subscribe`, `lastSeen`) and DM typing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd)]
pub enum PresenceVisibility {
    /// Anyone may subscribe; DM partners and fellow members of small groups are told.
    #[default]
    Everyone,
    /// Only the user's accepted contacts (docs/protocol.md, "Contacts").
    Contacts,
}

impl std::str::FromStr for PresenceVisibility {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "everyone" => Ok(Self::Everyone),
            "contacts" => Ok(Self::Contacts),
            _ => Err("expected everyone or contacts"),
        }
    }
}

/// A random node id, for nodes not given one.
pub fn random_node_id() -> String {
    format!("{:08x}", rand::random::<u32>())
}

/// Where Redis is, and how writes wait for replicas.
#[derive(Debug, Clone, PartialEq)]
pub struct RedisSettings {
    /// URL or Sentinels.
    pub target: RedisConfig,
    /// Prefix of every key (`CHAT_REDIS_PREFIX`, default `chat:`).
    pub prefix: String,
    /// Replicas a message append waits for before its ack (`CHAT_REDIS_WAIT`; default 1
    /// with Sentinels, 0 with a URL).
    pub wait_replicas: u32,
    /// How long that wait may take (`CHAT_REDIS_WAIT_TIMEOUT`, default 1s).
    pub wait_timeout: Duration,
}
