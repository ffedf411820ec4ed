//! # chat-core
//!
//! A Socket.IO chat server as a library: 1:1 and group messages, durable history, offline
//! sync, presence, typing, receipts, blocking, rate limits and token auth, speaking the
//! protocol in `docs/protocol.md` to any Socket.IO v4 client. Mount [`Chat::router`] in an
//! axum app, or run a whole node with [`server::run`].
//!
//! ## Layout
//! - [`config`]: typed configuration from `CHAT_*` variables; [`Limits`] for embedders.
//! - [`error`]: error codes at the edge, store and config errors.
//! - [`protocol`]: identifiers (`UserId`, `ConversationId`, `StreamId`...) and payloads.
//! - [`auth`]: development-mode user names and HS256 JWTs.
//! - `handlers`: one file per event group, registered in one place.
//! - [`store`]: the storage traits and the in-memory backend.
//! - [`redis`]: connections to Redis by URL or through Sentinels, reconnecting on failover.
//! - [`cluster`]: the node table, room routing and the inbox-stream transport between nodes.
//! - [`adapter`]: the socketioxide adapter that spans the cluster ([`adapter::ChatAdapter`]).
//! - [`registry`]: the service registry's HTTP API: least-loaded picking over the node table.
//! - [`health`]: the health checker: probes nodes, removes dead ones, re-admits them.
//! - [`server`]: the embeddable [`Chat`], the binary's HTTP app and [`server::run`].
//! - [`shutdown`], [`telemetry`]: signals and log output for the binaries.
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
//! Embedded mode keeps all of this in memory ([`store::memory::MemoryStore`]); on shutdown
//! it refuses writes (`unavailable`) rather than acknowledge what would be lost.
//!
//! ## The cluster
//! Several nodes share one Redis (standalone, or a master found through Sentinels). The
//! Socket.IO adapter ([`adapter::ChatAdapter`]) makes them one server: `io.to(room).emit`,
//! acks, `fetch_sockets`, `rooms`, remote `join`/`leave`/`disconnect` reach sockets on every
//! node. Redis keys (prefix `chat:` by default):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `nodes` | sorted set | node uid → lease expiry (ms, Redis time); renewed every heartbeat (1s), lease 3s |
//! | `node:<uid>` | hash | `id`, `url`, `capacity`, `version`, `draining`, `connections`; the registry adds `provisional`, `provisional_at` (decaying pick count), `drained` (admin drain), `source` |
//! | `inbox:<uid>` | stream | messages for that node; expires a minute after the node stops renewing it |
//! | `room:<room>` | set | uids of the nodes with sockets in a routed room (`user:`, `group:`, `presence:`) |
//! | `noderooms:<uid>` | set | the rooms a node recorded, for cleanup |
//! | `static` | set | uids (`static-<id>`) of nodes registered through the registry's admin API |
//! | `removed` | set | uids the health checker took out of picking |
//! | `health:lock`, `health:failures`, `health:reaping` | string, hash, set | the checkers' round lock; consecutive failed probes per uid; reaped uids whose cleanup hooks are pending |
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
//! it; fire-and-forget messages still go to its inbox for ten leases, so a node that only
//! lost Redis for a while misses nothing.

pub mod adapter;
pub mod auth;
pub mod cluster;
pub mod config;
mod env;
pub mod error;
mod handlers;
pub mod health;
pub mod protocol;
pub mod redis;
pub mod registry;
pub mod server;
pub mod shutdown;
pub mod store;
pub mod telemetry;

pub use config::{Config, Limits};
pub use error::{ChatError, ConfigError, ErrorCode};
pub use server::{Chat, ChatBuilder, ChatHandle};
