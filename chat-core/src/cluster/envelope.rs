//! Chat entries between nodes: what a node's chat sends the chat on other nodes (msgpack
//! with field names, inbox entries of kind `c`; see the crate docs, "Wire format").

use serde::{Deserialize, Serialize};
use socketioxide_core::Uid;

use crate::{
    protocol::{ConversationId, Message, MessageId, UserId},
    store::Mark,
};

/// What nodes send each other about messages (msgpack with field names).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Envelope {
    /// A stored message for the devices in `rooms`; with `receipts`, ask them for acks.
    Deliver {
        message: Message,
        rooms: Vec<String>,
        receipts: bool,
        /// The nodes hosting the sender's devices when the message was sent, the sending
        /// node included: where its receipts go, without a lookup. Absent from older nodes.
        #[serde(default)]
        reply: Option<Vec<Uid>>,
        /// The conversation's message before this one, which the receiving node emits first
        /// (see `handlers::order`). Absent from older nodes: emitted as it comes.
        #[serde(default)]
        prev: Option<MessageId>,
    },
    /// `receipt` events for the devices in `room`, in order.
    Receipts {
        room: String,
        receipts: Vec<Receipt>,
    },
}

/// The `receipt` event: `user` received or read the sender's messages up to `message_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Receipt {
    pub conversation: ConversationId,
    pub user: UserId,
    pub message_id: MessageId,
    pub status: Mark,
}
