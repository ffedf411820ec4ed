//! # chat-core
//!
//! A Socket.IO chat server as a library: 1:1 and group messages, durable history, offline
//! sync, presence, typing, receipts, blocking, rate limits and token auth, speaking the
//! protocol in `docs/protocol.md` to any Socket.IO v4 client. Mount [`Chat::router`] in an
//! axum app (`examples/embed.rs`, and `examples/embed` at the repository's root with the seams); the `chat-server` crate runs a whole node from `CHAT_*`
//! variables, `chat-registry` and `chat-health` serve the node table this crate writes.
//!
//! ## Layout
//! - [`config`]: the chat's settings ([`Config`], [`Limits`]), plain structs with defaults.
//! - [`error`]: error codes at the edge, store errors.
//! - `eio3`: socket.io-client 2.x (Engine.IO 3, Socket.IO protocol v4), refused unless
//!   [`Config::allow_eio3`] is set.
//! - [`protocol`]: identifiers (`UserId`, `ConversationId`, `StreamId`...) and payloads.
//! - [`auth`]: the [`auth::Authenticator`] seam; development-mode user names and JWTs
//!   (HS256, RS256, ES256).
//! - [`hooks`]: the message hook and the event hooks embedders plug in.
//! - [`webhooks`]: signed POSTs of offline recipients and presence to the product's backend,
//!   queued in memory or in a Redis stream, retried (docs/webhooks.md).
//! - [`api`]: the server API on [`ChatHandle`]: what the product's backend does to the chat.
//! - [`archive`]: the database of record: every message queued for it before its ack (in
//!   memory, or Redis streams in a cluster), history past the store, search; `chat-archive`
//!   implements the seam on PostgreSQL (docs/archive.md).
//! - [`keys`]: the name of every Redis key and Socket.IO room, in one place.
//! - `handlers`: one file per event group, registered in one place.
//! - [`store`]: the storage traits, the in-memory and the Redis backends.
//! - [`redis`]: connections to Redis by URL or through Sentinels, reconnecting on failover.
//! - [`cluster`]: the node table, room routing and the inbox-stream transport between nodes.
//! - [`adapter`]: the socketioxide adapter that spans the cluster ([`adapter::ChatAdapter`]).
//! - [`server`]: the embeddable [`Chat`], its builder and [`ChatHandle`].
//! - [`serve`]: HTTP/1.1 serving with limits on what clients hold (connections, slow request
//!   heads, idle keep-alive) and a bounded graceful stop, as the binaries serve.
//! - [`metrics`]: the handles chat-core records to (the `metrics` facade; the embedder
//!   installs the recorder), resolved once when a chat is built.
//!
//! ## Seams
//! What an embedder plugs in through [`ChatBuilder`], and what its backend calls on
//! [`ChatHandle`]. Each seam has a built-in default: the configured authentication, no hooks,
//! the in-memory or Redis stores.
//!
//! **Authentication** ([`auth::Authenticator`]): who a connecting client is. Built in:
//! development-mode user names, HS256 JWTs ([`Config::auth_secret`]) and RS256 / ES256 JWTs
//! checked with the issuer's public key ([`Config::auth_public_key`], PEM; `CHAT_AUTH_PUBLIC_KEY`
//! in chat-server). An app's own sessions:
//!
//! ```
//! use chat_core::auth::{AuthError, Authenticator, Handshake, Identity};
//! use chat_core::{Chat, Config, protocol::UserId};
//!
//! /// `auth: {session: "..."}`, looked up in the app's own session store.
//! #[derive(Debug)]
//! struct Sessions;
//!
//! #[async_trait::async_trait]
//! impl Authenticator for Sessions {
//!     async fn authenticate(&self, hs: &Handshake<'_>) -> Result<Identity, AuthError> {
//!         let session = hs.auth_str("session").ok_or(AuthError::Missing("session"))?;
//!         let user = lookup(session).ok_or_else(|| AuthError::Refused("no such session".into()))?;
//!         Ok(Identity { user, expires_at: None })
//!     }
//! }
//! # fn lookup(session: &str) -> Option<UserId> { UserId::parse(session).ok() }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let chat = Chat::builder(Config::default()).authenticator(Sessions).build().await?;
//! # Ok(()) }
//! ```
//!
//! **Hooks** ([`hooks`]): a [`hooks::MessageHook`] sees every message before it is stored,
//! from sockets and from the server API alike, and accepts, rewrites or refuses it;
//! [`hooks::EventHook`]s are told after the fact (a message stored with its offline
//! recipients, users online and offline, devices connecting and leaving), on a task of their
//! own that never holds up a send.
//!
//! ```
//! use chat_core::hooks::{ChatEvent, Draft, EventHook, MessageHook, Verdict};
//! use chat_core::{Chat, ChatError, Config};
//!
//! #[derive(Debug)]
//! struct NoLinks;
//!
//! #[async_trait::async_trait]
//! impl MessageHook for NoLinks {
//!     async fn check(&self, draft: Draft<'_>) -> Verdict {
//!         match draft.body.contains("http://") {
//!             true => Verdict::Refuse(ChatError::forbidden("links are not allowed here")),
//!             false => Verdict::Accept,
//!         }
//!     }
//! }
//!
//! #[derive(Debug)]
//! struct Push;
//!
//! #[async_trait::async_trait]
//! impl EventHook for Push {
//!     async fn on_event(&self, event: &ChatEvent) {
//!         if let ChatEvent::MessageStored { message, offline } = event {
//!             // Send a push notification to each of `offline`.
//!             tracing::info!(id = %message.id, offline = offline.len(), "to notify");
//!         }
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let chat = Chat::builder(Config::default())
//!     .message_hook(NoLinks)
//!     .event_hook(Push)
//!     .build()
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! **Stores** ([`store::Stores`]): one trait per kind of data (messages, groups, blocks,
//! presence, rates, bans), built in memory or in Redis; an embedder may swap any of them,
//! keeping `messages`, `groups`, `blocks` and `rates` on the same data (the append checks
//! them in one step). Bans kept in the app's own database, the rest in memory:
//!
//! ```
//! use std::{collections::HashMap, sync::{Arc, Mutex}};
//! use chat_core::{Chat, Config, error::StoreError, protocol::UserId};
//! use chat_core::store::{Bans, Stores, memory::MemoryStore};
//!
//! #[derive(Debug, Default)]
//! struct AppBans(Mutex<HashMap<UserId, u64>>);
//!
//! #[async_trait::async_trait]
//! impl Bans for AppBans {
//!     async fn ban(&self, user: &UserId, until_ms: u64) -> Result<(), StoreError> {
//!         self.0.lock().unwrap().insert(user.clone(), until_ms);
//!         Ok(())
//!     }
//!     async fn banned_until(&self, user: &UserId, now_ms: u64) -> Result<Option<u64>, StoreError> {
//!         Ok(self.0.lock().unwrap().get(user).copied().filter(|&until| until > now_ms))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::default();
//! let memory = Arc::new(MemoryStore::new(&config.limits));
//! let stores = Stores { bans: Arc::new(AppBans::default()), ..Stores::all_in(memory) };
//! let chat = Chat::builder(config).stores(stores).build().await?;
//! # Ok(()) }
//! ```
//!
//! **The archive** ([`archive::Archive`], [`ChatBuilder::archive`]): a database of record
//! for every message; `history` goes on in it past the store, and `search` reads it.
//! `chat_archive::PgArchive` is the PostgreSQL one (docs/archive.md).
//!
//! **The server API** ([`api`]): what the product's backend does to the chat, as methods on
//! [`ChatHandle`], cluster-wide and with the socket path's checks: post messages as a user or
//! as the system (sender [`protocol::SYSTEM_SENDER`]), manage groups, read history and
//! presence, disconnect and ban users, announce. chat-server serves it over HTTP under
//! `/api/v1` (`docs/api.md`).
//!
//! ```
//! use std::time::Duration;
//! use chat_core::api::{Post, Target};
//! use chat_core::{Chat, Config, protocol::UserId};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let chat = Chat::builder(Config::default()).build().await?;
//! let handle = chat.handle();
//! let bob = UserId::parse("bob")?;
//! // A system message: `from: None`. Idempotent per clientId.
//! let sent = handle
//!     .send_message(Post {
//!         from: None,
//!         to: Target::User(bob.clone()),
//!         body: "Welcome!".into(),
//!         client_id: Some("welcome-bob".into()),
//!     })
//!     .await?;
//! assert_eq!(sent.message.conversation.to_string(), "dm:@system:bob");
//! let (page, has_more) = handle.history(&sent.message.conversation, None, 50).await?;
//! assert_eq!((page.len(), has_more), (1, false));
//! handle.announce("Maintenance at 22:00 UTC").await?;
//! // Disconnect bob's devices on every node and refuse him for an hour.
//! let disconnected = handle.disconnect_user(&bob, Some(Duration::from_secs(3600))).await?;
//! assert_eq!(disconnected, 0);
//! # Ok(()) }
//! ```
//!
//! ## How it works
//! Every socket of user `u` joins the room `user:u`, and every member socket of group `g`
//! the room `group:g`; presence subscribers join `presence:u`. A `message:send` is checked
//! (membership, blocks, limits, rate) and appended to the conversation log in one store
//! step, acknowledged, then emitted: to each recipient's `user:` room with an ack request
//! (the first device of each recipient to ack sends the sender a `receipt`), and to the
//! sender's other devices. Large groups get a single emit to the
//! group room, without receipts.
//!
//! A message is stored once, in its conversation, whatever the number of recipients; each
//! user's view (`sync`, unread counts) is read from their conversations. Message ids are
//! `<ms>-<seq>`, like Redis stream ids, and grow in send order across all conversations, so
//! one id is a position in all of them: a `sync` cursor is a message id, and a client that
//! keeps its cursor gets every message once. `clientId`s are idempotency keys per sender,
//! kept 24 hours.
//!
//! ## Life of a message
//! One `message:send` from a socket on node A to a recipient whose device is on node B,
//! file by file:
//! 1. `handlers/mod.rs`: the socket's one event handler matches `message:send` and queues
//!    the request (`handlers/queue.rs`): each socket's requests run one at a time, in order,
//!    at most 64 waiting.
//! 2. `handlers/call.rs`: the request becomes a `Call`: the socket's identity (its token not
//!    expired), the payload parsed into `SendReq`.
//! 3. `handlers/messages.rs`: `send` checks the body, the `clientId` and the target, then at
//!    once appends the message through the store (`store/memory/` or
//!    `store/redis/messages.rs`: budget, block or membership check, idempotency and the
//!    append in one atomic step) and looks up its route (`handlers/delivery.rs`, `route` →
//!    `cluster/routing.rs`: which other nodes host the rooms, one Redis round trip).
//! 4. `handlers/delivery.rs`: `deliver` sends one `Deliver` entry (`cluster/envelope.rs`) per
//!    other hosting node (`cluster/dispatch.rs`, `send_chat` → `cluster/transport.rs`: the
//!    outbox's ordered sender task, `XADD` to node B's inbox), emits the message to the
//!    sender's node's own devices, and the ack goes back to the sender. Each emit goes
//!    through `handlers/order/`: the append also named the conversation's previous message,
//!    and a node emits a message only after that one (or after filling the gap from the
//!    store, 500 ms on), so devices get a conversation's messages in id order.
//! 5. On node B, `cluster/transport.rs`: the inbox reader (`XREAD`) gets the entry;
//!    `cluster/dispatch.rs` decodes it and hands it to the chat through [`cluster::Events`].
//! 6. `handlers/delivery.rs`: `handle_events` emits it (in order, as in 4) to B's devices
//!    in the rooms, asking for acks where receipts apply; the first ack of each recipient
//!    becomes a `receipt` queued for the sender (`send_delivered`), which goes back to node
//!    A in a `Receipts` entry.
//!
//! Embedded mode keeps all of this in memory ([`store::memory::MemoryStore`]); on shutdown
//! it refuses writes (`unavailable`) rather than acknowledge what would be lost.
//!
//! ## The cluster
//! Several nodes share one Redis (standalone, or a master found through Sentinels). The
//! Socket.IO adapter ([`adapter::ChatAdapter`]) makes them one server: `io.to(room).emit`,
//! acks, `fetch_sockets`, `rooms`, remote `join`/`leave`/`disconnect` reach sockets on every
//! node. Every Redis key (prefix `chat:` by default) is named in [`keys`], whose docs list
//! them all with their types and writers.
//!
//! **How a broadcast travels.** The sending node looks up which nodes host the target rooms
//! (`SUNION room:<r>...`, intersected with the live nodes kept in memory), emits to its own
//! sockets, and appends one entry per other hosting node to that node's inbox (`XADD
//! inbox:<uid> MAXLEN ~ 100000`). A node that hosts none of the rooms gets nothing; a node
//! that hosts several gets one entry. Rooms outside the routed prefixes (joined without
//! chat-core) go to every live node. Each node reads its inbox with a blocking `XREAD` from
//! the last id it handled, applies the entry to its local sockets, and trims what it read.
//! Requests that wait for answers (`broadcast_with_ack`, `fetch_sockets`, `rooms`) ask exactly
//! the live target nodes and take one answer from each, at most the request timeout (2s).
//!
//! **Chat messages travel once per node.** A stored message is not a Socket.IO broadcast
//! with one ack request per recipient: the sender's node sends one chat entry (`k` = `c`,
//! `Deliver`) to each other node hosting the conversation's rooms (`group:<id>`, or both
//! users' rooms for a DM), and each node emits it to its own devices in those rooms, asking
//! for acks where receipts apply. The node that gets a device's acks turns them into
//! `receipt` events without a store call, and sends them to the sender's devices as one
//! chat entry (`Receipts`) per sender and batch (10 ms), to the nodes the `Deliver` entry
//! named as hosting the sender (its `reply` list, found in the same lookup as the route).
//! A node's inbox reader decodes the chat entries it reads and hands them to its chat through
//! a bounded queue ([`cluster::Events`], 1024 entries by default), the same queue that
//! announces lost nodes; while the chat is behind and the queue full, the reader waits, and
//! entries wait in the node's inbox stream in Redis: slower, nothing dropped.
//!
//! **Wire format, version 1.** An inbox entry has the fields `v` (`1`), `o` (sender uid), `s`
//! (sender sequence number), `k` (`q` request, `r` response, `c` chat), `n` (namespace; empty
//! for chat entries) and `d`: the msgpack of socketioxide-core's remote-adapter `RequestOut`,
//! of `(request id, Response)`, or of chat-core's own envelope (`{"deliver": {message, rooms,
//! receipts, reply?}}` or `{"receipts": {room, receipts}}`, with field names; a reader that
//! does not know `reply` ignores it). Binary attachments are msgpack `bin`. Readers skip
//! entries of another version or kind.
//!
//! **Joining rooms.** socketioxide's `socket.join` never reaches the adapter, so chat-core
//! joins through [`cluster::Cluster::join`], which records the node as a host of the routed
//! rooms before the join is acknowledged; a remote join (`io.to(..).join(..)`) records the
//! nodes of the matched sockets. Records of rooms a node no longer hosts are removed by its
//! heartbeat, at most every ten beats; until then a stale record costs an entry, never a
//! missed message. Every socket also joins a room named after its own id.
//!
//! **Failures.** Sends go through one ordered task per node with a bounded queue (65536
//! entries): when Redis is unreachable the task retries the same batch with backoff (50ms to
//! 2s) and callers wait for room in the queue; nothing is dropped but volatile packets when
//! the queue is full (counted in [`cluster::Stats::shed`], with a warning). A batch that Redis
//! stored although the reply was lost is sent again; its entries carry the sender's sequence
//! numbers and the reader skips those it has seen. The reader reconnects and resumes from its
//! last id, so a connection kill, a Redis restart (with AOF) or a Sentinel failover delays
//! delivery but loses nothing. On `READONLY`, `MASTERDOWN`, `LOADING` or a connection error,
//! the shared connection is dropped and the next command asks the sentinels for the master
//! again. While Redis cannot say who hosts a room, messages go to every node. A node whose
//! heartbeat stops leaves the live list within the lease (3s): requests no longer wait for
//! it; fire-and-forget messages (broadcasts and chat entries) still go to its inbox for ten
//! leases, so a node that only lost Redis for a while misses nothing.
//!
//! **A lapsed node rejoins.** One live node (the smallest uid) announces a node whose lease
//! ended: its users go offline for their peers (the presence cleanup, `REAP` in the Redis
//! store, is shared with the health checker and hands the users it leaves offline to whoever
//! announces). A node that was only frozen or cut off past its lease learns it at its next
//! heartbeat (its lease had ended, or the health checker had reaped its record) and rejoins
//! without a restart: it records its rooms again, records each of its sockets' presence
//! again (their users come back online for their peers), and delivers what its inbox
//! gathered meanwhile.
//!
//! **A stopping node cleans up after itself.** A node that stops leaves the node table, so no
//! lease of its ends and nobody announces it. After the drain timeout, before closing its
//! sockets, it records each as gone (its users with no device left go offline for their
//! peers and the hooks) and runs the same `REAP` on itself (`handlers::leave_all`).
//!
//! **Webhooks.** With [`Config::webhook`](config::Config::webhook), `message.offline`,
//! `user.online` and `user.offline` are POSTed, signed, to the product's backend
//! (`docs/webhooks.md`). In a cluster they wait in one stream (`webhooks:{webhooks}`) read
//! through a consumer group, each node a consumer: a node renews the entries it is sending,
//! and takes over those another node left unrenewed (it died) or released (it stopped), so an
//! event queued in Redis survives its node.

pub mod adapter;
pub mod api;
pub mod archive;
pub mod auth;
pub mod cluster;
pub mod config;
mod eio3;
pub mod error;
mod handlers;
pub mod hooks;
pub mod keys;
pub mod metrics;
pub mod protocol;
pub mod redis;
pub mod serve;
pub mod server;
pub mod store;
pub mod webhooks;

pub use config::{Config, Limits};
pub use error::{ChatError, ErrorCode};
pub use server::{Chat, ChatBuilder, ChatHandle};
