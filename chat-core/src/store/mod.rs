//! Storage seams: what the handlers need from a backend, written once.
//!
//! [`memory::MemoryStore`] implements every trait in process (embedded mode); a Redis
//! implementation plugs in beside it without touching the handlers. Each method is one
//! atomic step of the backend, so that two keys that must change together do.

pub mod memory;
pub mod redis;

use std::sync::Arc;

use async_trait::async_trait;

use crate::{
    config::Rate,
    error::StoreError,
    protocol::{
        ContactState, ConversationId, ConversationSummary, Group, GroupId, Message, MessageId,
        PresenceState, Status, StreamId, UserId, Visibility,
    },
};

/// A message to append; the store assigns its id.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// Target conversation.
    pub conversation: ConversationId,
    /// The sender.
    pub from: UserId,
    /// The text.
    pub body: String,
    /// Server time, ms since the epoch.
    pub ts: u64,
    /// The sender's idempotency key.
    pub client_id: Option<String>,
}

/// What [`MessageLog::append`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// A new message was stored.
    New {
        /// The stored message.
        message: Message,
        /// How many users the conversation has: 2 for a DM, a group's member count.
        audience: usize,
        /// The conversation's newest message before this one (none for its first): live
        /// delivery emits a conversation's messages in id order by waiting for it.
        prev: Option<MessageId>,
    },
    /// The sender had used this `clientId` for the same message: the first one.
    Duplicate(Message),
    /// The sender had used this `clientId` for a different message.
    Conflict,
    /// Nothing was stored.
    Refused(Refusal),
}

/// Why [`MessageLog::append`] stored nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A budget bucket was empty (none was spent).
    RateLimited,
    /// The other user of the DM blocked the sender.
    Blocked,
    /// The group does not exist.
    NoGroup,
    /// The sender is not in the conversation (not a member of the group).
    NotMember,
}

/// One page of [`MessageLog::sync`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncPage {
    /// Messages in id order (oldest first), across conversations.
    pub messages: Vec<Message>,
    /// Where the next call continues: a message id.
    pub cursor: StreamId,
    /// More messages follow the cursor.
    pub has_more: bool,
    /// The given cursor is older than the oldest message a full conversation history
    /// (`history_max`) kept: messages after it may have been trimmed.
    pub truncated: bool,
}

/// Which watermark [`MessageLog::advance`] moves; also a `receipt`'s `status`
/// (`"delivered"`, `"read"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mark {
    /// Some device received the messages.
    Delivered,
    /// The user read them (implies delivered).
    Read,
}

/// Most entries of a conversation looked at when a mark moves: receipts cover the newest
/// messages of each sender among them, however far behind the old mark was.
pub(crate) const MARK_SCAN: usize = 1000;

/// Conversation logs, read/delivered positions and idempotency keys.
///
/// Message ids grow across all conversations of a store, not only within one: one id is a
/// position in every conversation, which is what a `sync` cursor is. A message is stored
/// once, in its conversation; `sync` and `conversations` read each user's conversations.
#[async_trait]
pub trait MessageLog: Send + Sync + 'static {
    /// Appends `msg` to its conversation, with an id greater than any the store has handed
    /// out. One atomic step with its checks, which run in this order, each ending the step
    /// if it fails:
    /// 1. a token from each bucket of `budget` ([`RateLimiter::try_acquire_all`]);
    /// 2. the sender is one of the DM's two users and the other has not blocked them; the
    ///    group exists and the sender is a member;
    /// 3. the sender has not used `client_id` yet (else the first message, or a conflict).
    ///
    /// Checks and append are one step so that a message costs one round trip, and so that
    /// no block or leave slips in between.
    async fn append(
        &self,
        msg: NewMessage,
        budget: &[(&str, Rate)],
    ) -> Result<Appended, StoreError>;

    /// Up to `limit` messages older than `before` (or the newest), oldest first, and
    /// whether older ones exist.
    async fn history(
        &self,
        conversation: &ConversationId,
        before: Option<MessageId>,
        limit: usize,
    ) -> Result<(Vec<Message>, bool), StoreError>;

    /// Up to `limit` messages of the user's conversations (DMs with messages, and the groups
    /// the user is a member of now) after `cursor`, or without one, the user's unread
    /// messages (after their read mark, not their own); oldest first. A `limit` of 0 counts
    /// as 1: an empty page would move no cursor. Without a cursor, a page holds up to `limit`
    /// unread messages however many of the user's own lie between them.
    async fn sync(
        &self,
        user: &UserId,
        cursor: Option<StreamId>,
        limit: usize,
    ) -> Result<SyncPage, StoreError>;

    /// The users the given user has DMs with.
    async fn dm_peers(&self, user: &UserId) -> Result<Vec<UserId>, StoreError>;

    /// Summaries (last message, unread count) of the user's DMs that have messages, and of
    /// the given groups; most recently active first. The unread count is every message from
    /// others after the user's read mark, those trimmed from history since (`history_max`)
    /// included: what the user missed, not what is left to read.
    async fn conversations(
        &self,
        user: &UserId,
        groups: &[Group],
    ) -> Result<Vec<ConversationSummary>, StoreError>;

    /// Moves the user's `mark` in `conversation` onto the newest message at or before `upto`
    /// (so never past the newest message, and not at all if every message kept is newer;
    /// never backwards); a read mark moves the delivered mark along. Returns, per sender of a
    /// newly covered message (among the newest 1,000 covered), the newest such id,
    /// newest first, the user's own messages left out.
    async fn advance(
        &self,
        user: &UserId,
        conversation: &ConversationId,
        upto: MessageId,
        mark: Mark,
    ) -> Result<Vec<(UserId, MessageId)>, StoreError>;
}

/// Why a group operation did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupRefusal {
    /// No such group.
    NotFound,
    /// The group has `max_group_size` members.
    Full,
    /// The user belongs to `max_groups` groups already.
    TooManyGroups,
    /// The user is not a member of the group.
    NotMember,
}

/// Groups and membership.
#[async_trait]
pub trait Groups: Send + Sync + 'static {
    /// Stores a new group; `members` holds the owner first, without duplicates.
    async fn create(&self, group: Group) -> Result<Group, StoreError>;
    /// The group, if it exists.
    async fn get(&self, id: &GroupId) -> Result<Option<Group>, StoreError>;
    /// Adds `user` (no-op if a member). Returns the group and whether the user was added.
    async fn join(
        &self,
        id: &GroupId,
        user: &UserId,
        max_size: usize,
        max_groups: usize,
    ) -> Result<Result<(Group, bool), GroupRefusal>, StoreError>;
    /// Removes `user` (and their admin role); an owner who leaves passes ownership to the
    /// longest-standing admin, else the longest-standing member. False if the user was not
    /// a member (or there is no such group).
    async fn leave(&self, id: &GroupId, user: &UserId) -> Result<bool, StoreError>;
    /// The groups `user` belongs to.
    async fn of_user(&self, user: &UserId) -> Result<Vec<Group>, StoreError>;
    /// How many groups each of `users` belongs to, in order (0 for an unknown user).
    async fn counts(&self, users: &[UserId]) -> Result<Vec<usize>, StoreError>;
    /// Renames the group (`name`), sets its topic (`Some(None)` clears it) and its
    /// visibility. The group as it is after, or none if there is no such group.
    async fn update(
        &self,
        id: &GroupId,
        name: Option<&str>,
        topic: Option<Option<&str>>,
        visibility: Option<Visibility>,
    ) -> Result<Option<Group>, StoreError>;
    /// Public groups whose name starts with `prefix` (lowercase; the names are compared
    /// lowercased), by name, after the cursor `after`, at most `limit`; and the cursor of the
    /// next page if more may follow.
    async fn find(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Group>, Option<String>), StoreError>;
    /// Makes a member an admin (`admin`) or a plain member again. The group as it is after.
    async fn set_admin(
        &self,
        id: &GroupId,
        user: &UserId,
        admin: bool,
    ) -> Result<Result<Group, GroupRefusal>, StoreError>;
    /// Deletes the group, its membership and its conversation. The group as it was, or none
    /// if there was no such group.
    async fn delete(&self, id: &GroupId) -> Result<Option<Group>, StoreError>;
}

/// A public group's entry in the name index [`Groups::find`] reads: its lowercased name, a
/// NUL, its id (ids have no NUL, and sort the same names apart).
pub fn public_entry(group: &Group) -> String {
    format!("{}\0{}", group.name.to_lowercase(), group.id)
}

/// Who blocked whom.
#[async_trait]
pub trait Blocks: Send + Sync + 'static {
    /// `user` blocks `target` (idempotent).
    async fn block(&self, user: &UserId, target: &UserId) -> Result<(), StoreError>;
    /// `user` unblocks `target` (idempotent).
    async fn unblock(&self, user: &UserId, target: &UserId) -> Result<(), StoreError>;
    /// Whether `user` has blocked `target`.
    async fn is_blocked(&self, user: &UserId, target: &UserId) -> Result<bool, StoreError>;
    /// How many users `user` blocks.
    async fn count(&self, user: &UserId) -> Result<usize, StoreError>;
    /// The users `user` blocks, sorted (at most `blocks_per_user` of them).
    async fn list(&self, user: &UserId) -> Result<Vec<UserId>, StoreError>;
}

/// What [`Contacts::set_contact`] found, and whether it changed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactChange {
    /// The entry was one of the expected states (shown) and is now the new one.
    Done(Option<ContactState>),
    /// The entry was none of the expected states (shown); nothing changed.
    Unexpected(Option<ContactState>),
    /// A new entry would take the roster past its cap; nothing changed.
    Full,
}

/// Contact rosters: each user's own record of the others, one per user.
///
/// A relation between two users lives in two rosters, each changed in its own step (one
/// Redis Cluster slot each): the handlers order the two steps so that a failure between
/// them leaves a state a retry completes, and never one that shows a user's presence to
/// someone that user did not accept (docs/protocol.md, "Contacts").
#[async_trait]
pub trait Contacts: Send + Sync + 'static {
    /// In `user`'s roster, sets the entry for `other` to `to` (`None` removes it) if it is
    /// now one of `from` (`None` = no entry). A new entry is refused once the roster holds
    /// `max` entries. One atomic step.
    async fn set_contact(
        &self,
        user: &UserId,
        other: &UserId,
        from: &[Option<ContactState>],
        to: Option<ContactState>,
        max: usize,
    ) -> Result<ContactChange, StoreError>;
    /// `user`'s roster sorted by user, the entries after `after`, at most `limit`.
    async fn roster(
        &self,
        user: &UserId,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Vec<(UserId, ContactState)>, StoreError>;
    /// For each `(owner, other)`, the owner's entry for the other, in order.
    async fn contact_states(
        &self,
        pairs: &[(UserId, UserId)],
    ) -> Result<Vec<Option<ContactState>>, StoreError>;
    /// The users `user` has accepted as contacts (state [`ContactState::Contact`]), sorted.
    async fn contacts(&self, user: &UserId) -> Result<Vec<UserId>, StoreError>;
}

/// A user's status as stored: what they set, and how many of their devices reported
/// inactivity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusRecord {
    /// The status the user set ([`Status::Available`] unless they set another).
    pub status: Status,
    /// The status text they set.
    pub text: Option<String>,
    /// Devices that reported inactivity and have not reported activity or left since.
    pub idle_devices: usize,
}

/// Users' statuses and their devices' inactivity reports; one record per user.
#[async_trait]
pub trait Statuses: Send + Sync + 'static {
    /// Sets the user's status and text (`None` clears it).
    async fn set_status(
        &self,
        user: &UserId,
        status: Status,
        text: Option<&str>,
    ) -> Result<(), StoreError>;
    /// Records device `socket` of `user` as inactive (`idle`) or active again (or gone).
    async fn set_device_idle(
        &self,
        user: &UserId,
        socket: &str,
        idle: bool,
    ) -> Result<(), StoreError>;
    /// Forgets every inactivity report of `user` (their last device left).
    async fn forget_devices(&self, user: &UserId) -> Result<(), StoreError>;
    /// Each user's record, in order.
    async fn statuses(&self, users: &[UserId]) -> Result<Vec<StatusRecord>, StoreError>;
}

/// Which users are online, by connected socket.
#[async_trait]
pub trait Presence: Send + Sync + 'static {
    /// Records a connected socket. Returns true if it is the user's first (a socket recorded
    /// again is not).
    async fn connect(&self, user: &UserId, socket: &str) -> Result<bool, StoreError>;
    /// Forgets a socket at `now_ms`. Returns the new `lastSeen` if it was the user's last.
    async fn disconnect(
        &self,
        user: &UserId,
        socket: &str,
        now_ms: u64,
    ) -> Result<Option<u64>, StoreError>;
    /// The presence of each user, in order.
    async fn get(&self, users: &[UserId]) -> Result<Vec<PresenceState>, StoreError>;
    /// How many sockets the user has recorded (those of a node that died count until its
    /// cleanup).
    async fn devices(&self, user: &UserId) -> Result<usize, StoreError>;
    /// Forgets the sockets node `node` held (it died) as of `now_ms`; returns the users left
    /// with no device, with their new `lastSeen`. Idempotent: a second call returns nothing.
    async fn node_lost(&self, node: &str, now_ms: u64) -> Result<Vec<(UserId, u64)>, StoreError>;
}

/// Users banned from connecting for a while (server API `disconnect` with `banSeconds`).
#[async_trait]
pub trait Bans: Send + Sync + 'static {
    /// Bans `user` until `until_ms` (ms since the epoch), replacing any earlier ban.
    async fn ban(&self, user: &UserId, until_ms: u64) -> Result<(), StoreError>;
    /// Until when `user` is banned, if a ban runs at `now_ms`.
    async fn banned_until(&self, user: &UserId, now_ms: u64) -> Result<Option<u64>, StoreError>;
}

/// Per-key token buckets shared by every device of a user.
#[async_trait]
pub trait RateLimiter: Send + Sync + 'static {
    /// Takes a token from every bucket if each has one (atomically); otherwise takes none and
    /// answers false. Each key appears at most once in `buckets`. A bucket starts full, and
    /// is forgotten (as good as full) only once it is full again.
    async fn try_acquire_all(&self, buckets: &[(&str, Rate)]) -> Result<bool, StoreError>;

    /// Takes a token from `key`'s bucket; false if it is empty.
    async fn try_acquire(&self, key: &str, rate: Rate) -> Result<bool, StoreError> {
        self.try_acquire_all(&[(key, rate)]).await
    }
}

/// The set of stores a chat node runs on. `messages` must sit on the same data as `groups`,
/// `blocks` and `rates`: its append checks them in the same step ([`MessageLog::append`]);
/// [`Stores::all_in`] makes such a set.
#[derive(Clone)]
pub struct Stores {
    /// Messages, positions, idempotency.
    pub messages: Arc<dyn MessageLog>,
    /// Groups.
    pub groups: Arc<dyn Groups>,
    /// Blocks.
    pub blocks: Arc<dyn Blocks>,
    /// Contact rosters.
    pub contacts: Arc<dyn Contacts>,
    /// Statuses.
    pub statuses: Arc<dyn Statuses>,
    /// Presence.
    pub presence: Arc<dyn Presence>,
    /// Rate limits.
    pub rates: Arc<dyn RateLimiter>,
    /// Bans.
    pub bans: Arc<dyn Bans>,
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stores").finish_non_exhaustive()
    }
}

impl Stores {
    /// Every store backed by one instance that implements them all.
    pub fn all_in<S>(store: Arc<S>) -> Self
    where
        S: MessageLog + Groups + Blocks + Contacts + Statuses + Presence + RateLimiter + Bans,
    {
        Self {
            messages: store.clone(),
            groups: store.clone(),
            blocks: store.clone(),
            contacts: store.clone(),
            statuses: store.clone(),
            presence: store.clone(),
            rates: store.clone(),
            bans: store,
        }
    }
}

/// Orders a conversation list: most recently active first, then by id.
pub(crate) fn sort_recent_first(list: &mut [ConversationSummary]) {
    list.sort_by(|a, b| {
        let key = |s: &ConversationSummary| s.last_message.as_ref().map(|m| m.id);
        key(b).cmp(&key(a)).then_with(|| a.id.cmp(&b.id))
    });
}
