//! Embedding seams around the chat's work: a [`MessageHook`] that sees every message before
//! it is stored (accept, refuse, rewrite), and [`EventHook`]s told what happened after the
//! fact (a message stored, a device connected or left, a user came online or went offline)
//! without ever holding up the chat.
//!
//! The message hook runs on the send path, once per message, before the store step: it
//! should answer in milliseconds. Event hooks run on one task of their own, fed through a
//! bounded queue ([`HookConfig::queue`]); when the queue is full, events are dropped and
//! counted (`chat_hook_events_total{outcome="dropped"}`) rather than slowing sends.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;

use crate::{
    error::ChatError,
    protocol::{ConversationId, Message, UserId},
};

/// A message about to be stored, as the message hook sees it.
#[derive(Debug, Clone, Copy)]
pub struct Draft<'a> {
    /// The sender: a user, or the system sender for server API system messages.
    pub from: &'a UserId,
    /// The conversation it goes to.
    pub conversation: &'a ConversationId,
    /// The text, already within the body limits.
    pub body: &'a str,
}

/// What the message hook decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Store the message as it is.
    Accept,
    /// Store it with this body instead (checked against the body limits again).
    Rewrite(String),
    /// Refuse it: the sender gets this error (a contract code, e.g. `forbidden`) and
    /// nothing is stored.
    Refuse(ChatError),
}

/// Sees every message before it is stored, from sockets and from the server API alike.
#[async_trait]
pub trait MessageHook: std::fmt::Debug + Send + Sync + 'static {
    /// Decides what happens to `draft`.
    async fn check(&self, draft: Draft<'_>) -> Verdict;
}

/// Something that happened, told to every [`EventHook`] after the fact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ChatEvent {
    /// A message was stored (and is being delivered).
    #[serde(rename = "message.stored")]
    MessageStored {
        /// The message.
        message: Message,
        /// The recipients that had no connected device when it was stored (the sender
        /// excluded): the users to notify some other way.
        offline: Vec<UserId>,
    },
    /// A user's first device connected: the user is online for their peers.
    #[serde(rename = "user.online")]
    UserOnline {
        /// The user.
        user: UserId,
    },
    /// A user's last device left (or its node died): the user is offline.
    #[serde(rename = "user.offline")]
    UserOffline {
        /// The user.
        user: UserId,
        /// When the last device left, ms since the epoch.
        #[serde(rename = "lastSeen")]
        last_seen: u64,
    },
    /// A device connected to this node.
    #[serde(rename = "socket.connected")]
    Connected {
        /// Its user.
        user: UserId,
        /// The Socket.IO socket id.
        socket: String,
    },
    /// A device left this node.
    #[serde(rename = "socket.disconnected")]
    Disconnected {
        /// Its user.
        user: UserId,
        /// The Socket.IO socket id.
        socket: String,
    },
}

/// Told what happened, after the fact, on the chat's hook task. A slow hook delays only
/// the hooks behind it; events it cannot take in time are dropped and counted.
#[async_trait]
pub trait EventHook: std::fmt::Debug + Send + Sync + 'static {
    /// Handles one event.
    async fn on_event(&self, event: &ChatEvent);
}

/// The hook queue's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HookConfig {
    /// Events waiting for the hooks; more are dropped and counted (default 4096).
    pub queue: usize,
}

impl Default for HookConfig {
    fn default() -> Self {
        Self { queue: 4096 }
    }
}

/// The hooks a chat was built with.
#[derive(Debug, Clone, Default)]
pub(crate) struct Hooks {
    pub message: Option<Arc<dyn MessageHook>>,
    pub events: Vec<Arc<dyn EventHook>>,
    pub config: HookConfig,
}
