//! Event names, identifiers and payload types of the client protocol (docs/protocol.md).
//!
//! Identifiers are parsed at the boundary (`UserId::parse`, ...) and plain types inside;
//! they deserialize through their parsers, so a bad id in a payload is a `bad_request`.

use std::{cmp::Ordering, fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// Version of the client protocol described in docs/protocol.md.
pub const PROTOCOL_VERSION: u32 = 1;

/// Server → client event names.
pub mod events {
    /// Sent once after a successful connect.
    pub const READY: &str = "ready";
    /// A chat message.
    pub const MESSAGE: &str = "message";
    /// Somebody started or stopped typing.
    pub const TYPING: &str = "typing";
    /// Delivered / read receipt for the sender.
    pub const RECEIPT: &str = "receipt";
    /// A user went online or offline.
    pub const PRESENCE: &str = "presence";
    /// Group membership changed.
    pub const GROUP_MEMBER: &str = "group:member";
    /// A group's name, topic or roles changed, or it was deleted.
    pub const GROUP_UPDATED: &str = "group:updated";
    /// The node is shutting down.
    pub const DRAIN: &str = "drain";
    /// Server → client: the socket's token expired; the server disconnects it next.
    pub const EXPIRED: &str = "expired";
    /// Server → client: a message from the product's backend to every connected client.
    pub const ANNOUNCEMENT: &str = "announcement";
    /// Server → client: an entry of the user's contact roster changed.
    pub const CONTACT: &str = "contact";
}

/// A malformed identifier; the text says which rule it broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidId(pub &'static str);

fn check_id(s: &str, what: &'static str, extra: &[char]) -> Result<(), InvalidId> {
    if s.is_empty() || s.len() > 64 {
        return Err(InvalidId(what));
    }
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || extra.contains(&c))
    {
        Ok(())
    } else {
        Err(InvalidId(what))
    }
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $what:literal, $extra:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Parses an id, refusing anything outside the allowed length and characters.
            pub fn parse(s: impl Into<String>) -> Result<Self, InvalidId> {
                let s = s.into();
                check_id(&s, $what, $extra)?;
                Ok(Self(s))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidId;
            fn try_from(s: String) -> Result<Self, InvalidId> {
                Self::parse(s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_id!(
    /// A user id: 1–64 characters of `[A-Za-z0-9_.-]`.
    UserId,
    "user ids are 1-64 characters of A-Z a-z 0-9 _ . -",
    &['_', '.', '-']
);
string_id!(
    /// A group id: 1–64 characters of `[A-Za-z0-9_-]`.
    GroupId,
    "group ids are 1-64 characters of A-Z a-z 0-9 _ -",
    &['_', '-']
);

/// The sender of system messages: posted by the product's backend through the server API,
/// not by a user. Never a valid user id (`@` is not allowed in one), so no client can sign
/// in as it or name it.
pub const SYSTEM_SENDER: &str = "@system";

impl UserId {
    /// The sender of system messages ([`SYSTEM_SENDER`]).
    pub fn system() -> Self {
        Self(SYSTEM_SENDER.to_owned())
    }

    /// Whether this is the system sender.
    pub fn is_system(&self) -> bool {
        self.0 == SYSTEM_SENDER
    }

    /// A message's sender: a user id, or the system sender. Only for what the chat itself
    /// stored; a client's user ids go through [`UserId::parse`].
    pub fn parse_sender(s: impl Into<String>) -> Result<Self, InvalidId> {
        let s = s.into();
        if s == SYSTEM_SENDER {
            return Ok(Self(s));
        }
        Self::parse(s)
    }
}

/// Deserializes a stored message's sender: a user id or the system sender.
fn sender<'de, D: serde::Deserializer<'de>>(d: D) -> Result<UserId, D::Error> {
    let s = String::deserialize(d)?;
    UserId::parse_sender(s).map_err(serde::de::Error::custom)
}

impl GroupId {
    /// A fresh random group id (16 alphanumeric characters).
    pub fn random() -> Self {
        use rand::{Rng, distr::Alphanumeric};
        let s: String = rand::rng()
            .sample_iter(&Alphanumeric)
            .take(16)
            .map(char::from)
            .collect();
        Self(s)
    }
}

/// A conversation: `dm:<a>:<b>` with the two user ids sorted, or `group:<id>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum ConversationId {
    /// A direct conversation; the first id sorts before the second.
    Dm(UserId, UserId),
    /// A group conversation.
    Group(GroupId),
}

impl ConversationId {
    /// The DM between two distinct users, whichever order they are given in.
    pub fn dm(a: &UserId, b: &UserId) -> Self {
        if a <= b {
            Self::Dm(a.clone(), b.clone())
        } else {
            Self::Dm(b.clone(), a.clone())
        }
    }

    /// The other participant of a DM, if `user` is one of its two.
    pub fn dm_peer(&self, user: &UserId) -> Option<&UserId> {
        match self {
            Self::Dm(a, b) if a == user => Some(b),
            Self::Dm(a, b) if b == user => Some(a),
            _ => None,
        }
    }
}

impl FromStr for ConversationId {
    type Err = InvalidId;
    fn from_str(s: &str) -> Result<Self, InvalidId> {
        const BAD: InvalidId =
            InvalidId("conversation ids are dm:<user>:<user> (sorted, distinct) or group:<id>");
        if let Some(rest) = s.strip_prefix("dm:") {
            let (a, b) = rest.split_once(':').ok_or(BAD)?;
            // A system message to a user is stored in the DM of the system sender and the user.
            let (a, b) = (UserId::parse_sender(a)?, UserId::parse_sender(b)?);
            if a >= b {
                return Err(BAD);
            }
            Ok(Self::Dm(a, b))
        } else if let Some(id) = s.strip_prefix("group:") {
            Ok(Self::Group(GroupId::parse(id)?))
        } else {
            Err(BAD)
        }
    }
}

impl TryFrom<String> for ConversationId {
    type Error = InvalidId;
    fn try_from(s: String) -> Result<Self, InvalidId> {
        s.parse()
    }
}

impl From<ConversationId> for String {
    fn from(c: ConversationId) -> String {
        c.to_string()
    }
}

impl fmt::Display for ConversationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dm(a, b) => write!(f, "dm:{a}:{b}"),
            Self::Group(g) => write!(f, "group:{g}"),
        }
    }
}

/// A position in a log: `<ms>-<seq>`, the form of a Redis stream id. Orders as a pair.
///
/// Used for message ids (per conversation) and for sync cursors (per user feed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StreamId {
    /// Milliseconds since the epoch when the entry was appended.
    pub ms: u64,
    /// Sequence number among the entries of the same millisecond.
    pub seq: u64,
}

/// Id of a message within its conversation.
pub type MessageId = StreamId;

impl StreamId {
    /// The id after `self` for an entry appended at `now_ms` (Redis `XADD *` rules).
    pub fn next(self, now_ms: u64) -> Self {
        if now_ms > self.ms {
            Self { ms: now_ms, seq: 0 }
        } else {
            Self {
                ms: self.ms,
                seq: self.seq + 1,
            }
        }
    }
}

impl Ord for StreamId {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.ms, self.seq).cmp(&(other.ms, other.seq))
    }
}

impl PartialOrd for StreamId {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl FromStr for StreamId {
    type Err = InvalidId;
    fn from_str(s: &str) -> Result<Self, InvalidId> {
        const BAD: InvalidId = InvalidId("ids have the form <ms>-<seq>");
        let (ms, seq) = s.split_once('-').ok_or(BAD)?;
        let digits =
            |p: &str| !p.is_empty() && p.len() <= 20 && p.bytes().all(|b| b.is_ascii_digit());
        if !digits(ms) || !digits(seq) {
            return Err(BAD);
        }
        Ok(Self {
            ms: ms.parse().map_err(|_| BAD)?,
            seq: seq.parse().map_err(|_| BAD)?,
        })
    }
}

impl TryFrom<String> for StreamId {
    type Error = InvalidId;
    fn try_from(s: String) -> Result<Self, InvalidId> {
        s.parse()
    }
}

impl From<StreamId> for String {
    fn from(id: StreamId) -> String {
        id.to_string()
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// A stored chat message, as clients see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// Position in the conversation log.
    pub id: MessageId,
    /// Where it was sent.
    pub conversation: ConversationId,
    /// The sender: a user, or [`SYSTEM_SENDER`].
    #[serde(deserialize_with = "sender")]
    pub from: UserId,
    /// The text, 1..=max_body characters.
    pub body: String,
    /// Milliseconds since the epoch, server time.
    pub ts: u64,
    /// The sender's idempotency key, if it gave one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub client_id: Option<String>,
}

/// A group and its members, in join order (the owner first at creation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    /// The group id.
    pub id: GroupId,
    /// Display name, 1–100 characters.
    pub name: String,
    /// The current owner.
    pub owner: UserId,
    /// Members in join order.
    pub members: Vec<UserId>,
    /// Members with the admin role, in join order. The owner is not listed: the owner may do
    /// all an admin may, and more. Left out when there are none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub admins: Vec<UserId>,
    /// What the group is about, if set (at most 250 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// Who may find and join it. Left out when public.
    #[serde(default, skip_serializing_if = "Visibility::is_public")]
    pub visibility: Visibility,
}

/// Who may find and join a group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Found by name (`group:find`); anyone may join.
    #[default]
    Public,
    /// Not listed; members are added by its owner or admins (`group:invite`) or the backend.
    Private,
}

impl Visibility {
    /// Whether this is [`Visibility::Public`], the default a group object leaves out.
    pub fn is_public(&self) -> bool {
        *self == Self::Public
    }
}

impl Group {
    /// The role of `user`: `owner`, `admin`, `member`, or none for a non-member.
    pub fn role(&self, user: &UserId) -> Option<Role> {
        if &self.owner == user {
            Some(Role::Owner)
        } else if self.admins.contains(user) {
            Some(Role::Admin)
        } else if self.members.contains(user) {
            Some(Role::Member)
        } else {
            None
        }
    }
}

/// A member's role in a group: what they may change ([`Group::role`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads and writes.
    Member,
    /// Also renames, sets the topic and removes members.
    Admin,
    /// Also promotes and demotes admins and deletes the group.
    Owner,
}

/// One entry of the `conversations` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversationSummary {
    /// The conversation.
    pub id: ConversationId,
    /// The group name, for groups.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The newest message, if any.
    pub last_message: Option<Message>,
    /// Messages from others after the user's read position.
    pub unread: u64,
}

/// A user's presence as `presence:subscribe` and `presence` report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PresenceState {
    /// At least one device connected.
    pub online: bool,
    /// When the last device disconnected (ms since epoch), if known.
    pub last_seen: Option<u64>,
}

/// What a user is up to, shown with their presence while they are online.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The default.
    #[default]
    Available,
    /// Set by the user.
    Away,
    /// Set by the user: do not disturb.
    Busy,
    /// Never set: an available user whose every device reported inactivity.
    Idle,
}

impl Status {
    /// The form the Redis store keeps.
    pub(crate) fn code(self) -> &'static str {
        match self {
            Self::Available => "available",
            Self::Away => "away",
            Self::Busy => "busy",
            Self::Idle => "idle",
        }
    }

    /// The status a [`Status::code`] names.
    pub(crate) fn from_code(code: &str) -> Option<Self> {
        [Self::Available, Self::Away, Self::Busy, Self::Idle]
            .into_iter()
            .find(|s| s.code() == code)
    }
}

/// A user's presence with their status, as clients see it: `presence` events,
/// `presence:subscribe`, the contact roster. `status` is there while online and not
/// `available`; `text` while online and set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PresenceInfo {
    /// Online and last seen.
    #[serde(flatten)]
    pub state: PresenceState,
    /// The status, while online and not `available`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// The user's status text, while online, if they set one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// One user's record of another in their contact roster (`contacts`, `contact`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContactState {
    /// Both accepted: each sees the other's presence where visibility is `contacts`.
    Contact,
    /// This user asked the other, who has not answered yet.
    Outgoing,
    /// The other user asked this one.
    Incoming,
}

impl ContactState {
    /// The one-letter form the Redis store keeps.
    pub(crate) fn code(self) -> &'static str {
        match self {
            Self::Contact => "c",
            Self::Outgoing => "o",
            Self::Incoming => "i",
        }
    }

    /// The state a [`ContactState::code`] names.
    pub(crate) fn from_code(code: &str) -> Option<Self> {
        match code {
            "c" => Some(Self::Contact),
            "o" => Some(Self::Outgoing),
            "i" => Some(Self::Incoming),
            _ => None,
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_follow_the_contract() {
        assert!(UserId::parse("alice.b-c_9").is_ok());
        assert!(UserId::parse("").is_err());
        assert!(UserId::parse("a b").is_err());
        assert!(UserId::parse("a:b").is_err());
        assert!(UserId::parse("x".repeat(64)).is_ok());
        assert!(UserId::parse("x".repeat(65)).is_err());
        assert!(GroupId::parse("a.b").is_err());
    }

    #[test]
    fn dm_ids_are_sorted_and_round_trip() {
        let (a, b) = (
            UserId::parse("bob").unwrap(),
            UserId::parse("alice").unwrap(),
        );
        let dm = ConversationId::dm(&a, &b);
        assert_eq!(dm.to_string(), "dm:alice:bob");
        assert_eq!("dm:alice:bob".parse::<ConversationId>().unwrap(), dm);
        assert!("dm:bob:alice".parse::<ConversationId>().is_err());
        assert!("dm:bob:bob".parse::<ConversationId>().is_err());
        assert!("dm:bob".parse::<ConversationId>().is_err());
        assert_eq!(dm.dm_peer(&a), Some(&b));
        let g: ConversationId = "group:G1".parse().unwrap();
        assert_eq!(g, ConversationId::Group(GroupId::parse("G1").unwrap()));
        assert!("chan:x".parse::<ConversationId>().is_err());
    }

    #[test]
    fn stream_ids_order_as_pairs_not_strings() {
        let a: StreamId = "1000-9".parse().unwrap();
        let b: StreamId = "1000-10".parse().unwrap();
        assert!(a < b);
        assert_eq!(b.to_string(), "1000-10");
        assert!("1000".parse::<StreamId>().is_err());
        assert!("-1".parse::<StreamId>().is_err());
        assert!("1-+1".parse::<StreamId>().is_err());
        assert!("99999999999999999999999-0".parse::<StreamId>().is_err());
    }

    #[test]
    fn next_id_follows_xadd_rules() {
        let id = StreamId { ms: 10, seq: 3 };
        assert_eq!(id.next(11), StreamId { ms: 11, seq: 0 });
        assert_eq!(id.next(10), StreamId { ms: 10, seq: 4 });
        // A clock that goes backwards never produces a smaller id.
        assert_eq!(id.next(5), StreamId { ms: 10, seq: 4 });
    }
}
