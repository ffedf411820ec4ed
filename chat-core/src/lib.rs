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
//! - [`server`]: the embeddable [`Chat`], the binary's HTTP app and [`server::run`].
//! - [`shutdown`], [`telemetry`]: signals and log output for the binaries.
//!
//! ## How it works
//! Every socket of user `u` joins the room `user:u`, and every member socket of group `g`
//! the room `group:g`; presence subscribers join `presence:u`. A `message:send` is checked
//! (membership, blocks, limits, rate), appended to the conversation log and to the sync
//! feed of every participant in one store step, acknowledged, then emitted: to each
//! recipient's `user:` room with an ack request (the first device to ack moves the
//! recipient's delivered mark and the sender gets a `receipt`), and to the sender's other
//! devices. Large groups get a single emit to the group room, without receipts.
//!
//! Message ids are `<ms>-<seq>`, like Redis stream ids, and grow in send order within a
//! conversation. Each user has a feed, a log of `(conversation, message)` entries with ids
//! of the same form; a `sync` cursor is a feed id, so a client that keeps its cursor gets
//! every message once. `clientId`s are idempotency keys per sender, kept 24 hours.
//!
//! Embedded mode keeps all of this in memory ([`store::memory::MemoryStore`]); on shutdown
//! it refuses writes (`unavailable`) rather than acknowledge what would be lost.

pub mod auth;
pub mod config;
pub mod error;
mod handlers;
pub mod protocol;
pub mod redis;
pub mod server;
pub mod shutdown;
pub mod store;
pub mod telemetry;

pub use config::{Config, Limits};
pub use error::{ChatError, ConfigError, ErrorCode};
pub use server::{Chat, ChatBuilder, ChatHandle};
