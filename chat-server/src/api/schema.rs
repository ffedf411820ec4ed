//! The shapes of chat-core's values in the OpenAPI document (chat-core does not depend on
//! utoipa): documentation only, the values are chat-core's own.

use serde::Serialize;
use utoipa::ToSchema;

/// A stored message (as Socket.IO clients get it in `message`).
#[derive(Serialize, ToSchema)]
#[schema(as = Message)]
#[serde(rename_all = "camelCase")]
pub struct MessageSchema {
    /// Position in the conversation: `<ms>-<seq>`.
    #[schema(example = "1733356800000-0")]
    id: String,
    /// `dm:<a>:<b>` (sorted) or `group:<id>`.
    #[schema(example = "dm:alice:bob")]
    conversation: String,
    /// The sender: a user id, or `@system` for system messages.
    #[schema(example = "alice")]
    from: String,
    /// The text.
    body: String,
    /// Server time, ms since the epoch.
    ts: u64,
    /// The sender's idempotency key, if given.
    client_id: Option<String>,
}

/// A group.
#[derive(Serialize, ToSchema)]
#[schema(as = Group)]
pub struct GroupSchema {
    /// The group id.
    id: String,
    /// Display name, 1–100 characters.
    name: String,
    /// The owner.
    owner: String,
    /// Members in join order, the owner first at creation.
    members: Vec<String>,
    /// Members with the admin role, in join order (the owner is not one); absent when none.
    admins: Option<Vec<String>>,
    /// What the group is about, if set.
    topic: Option<String>,
    /// `private` (members are added); absent for a public group (found by name, anyone joins).
    visibility: Option<String>,
}

/// One user's presence.
#[derive(Serialize, ToSchema)]
#[schema(as = Presence)]
#[serde(rename_all = "camelCase")]
pub struct PresenceSchema {
    /// At least one device is connected.
    online: bool,
    /// When the last device left, ms since the epoch; absent if never seen.
    last_seen: Option<u64>,
}
