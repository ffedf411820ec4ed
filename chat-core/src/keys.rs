//! Every Redis key and Socket.IO room name of the chat, in one place: the nodes, the
//! registry, the health checker and the Redis stores all name keys through [`Keys`], and
//! rooms through [`rooms`]. A leaf module: it uses nothing else of chat-core.
//!
//! Keys, after the prefix (`chat:` by default, `CHAT_REDIS_PREFIX`):
//!
//! | key | type | holds | written by |
//! |---|---|---|---|
//! | `nodes` | sorted set | node uid → lease expiry (ms, Redis time) | node heartbeat |
//! | `node:<uid>` | hash | `id`, `url`, `capacity`, `version`, `draining`, `connections`; the registry adds `provisional`, `provisional_at`, `drained`, `source` | node, registry |
//! | `inbox:<uid>` | stream | entries for that node (the cluster transport) | every node |
//! | `room:<room>` | set | uids of the nodes with sockets in a routed room | nodes |
//! | `noderooms:<uid>` | set | the rooms a node recorded, for cleanup | nodes |
//! | `static` | set | uids (`static-<id>`) of nodes registered through the registry's admin API | registry |
//! | `removed` | set | uids the health checker took out of picking | health checker |
//! | `health:lock`, `health:failures`, `health:reaping` | string, hash, set | the checkers' round lock; consecutive failed probes per uid; reaped uids whose cleanup is pending | health checker |
//! | `conv:<conversation>` | stream | messages: `f` sender, `b` body, `t` ms, `c` clientId; capped at `CHAT_HISTORY_MAX` | Redis store |
//! | `clock` | string | the newest message id handed out, in any conversation | Redis store |
//! | `last` | hash | conversation → its newest message id | Redis store |
//! | `count` | hash | conversation → messages ever sent to it | Redis store |
//! | `sent:<user>` | hash | conversation → messages the user sent to it | Redis store |
//! | `dms:<user>` | set | the user's DM conversations | Redis store |
//! | `marks:<user>` | hash | `r:<conversation>` read mark; `u:<conversation>` unread count, `count` and `sent` when the read mark was set | Redis store |
//! | `delivered:<conversation>` | hash | user → delivered mark | Redis store |
//! | `idem:<user>:<clientId>` | string | the first message sent with that key (JSON), 24 hours | Redis store |
//! | `group:<id>` | hash | `name`, `owner`, `seq` (join counter) | Redis store |
//! | `gmembers:<id>` | sorted set | member → join order | Redis store |
//! | `usergroups:<user>` | set | the user's groups | Redis store |
//! | `groups:{public}` | sorted set | public groups by name: `<lowercased name>\0<id>`, all scored 0 (lexicographic order); an entry whose group changed since is skipped when read. One slot by design, as the webhook queue: the index has no single owner | Redis store |
//! | `blocks:<user>` | set | users this user blocked | Redis store |
//! | `status:{<user>}` | hash | `s` the status the user set, `t` its text, `d:<socket>` a device that reported inactivity | Redis store |
//! | `contacts:{<user>}` | hash | the user's contact roster: other user → `c` contact, `o` request sent, `i` request received | Redis store |
//! | `presence:<user>` | hash | socket id → uid of the node holding it | Redis store |
//! | `lastseen` | hash | user → ms when the last device left | Redis store |
//! | `nodeusers:<uid>` | set | users who connected through that node | Redis store |
//! | `lostusers:<uid>` | set | users a dead node's cleanup left offline, until a chat node announces them (10 minutes at most) | Redis store, health checker |
//! | `ban:{<user>}` | string | until when the user is banned (ms), expiring then | server API |
//! | `webhooks:{webhooks}` | stream, consumer group `senders` | webhook events waiting for delivery (`i` event id, `b` body), each node a consumer; acknowledged and deleted once delivered. One slot by design: the queue has no single owner, so it has a hash tag of its own | every node |
//! | `archive:{archive-<n>}` | stream, consumer group `archivers` | messages waiting for the archive (`m`: the message as JSON), shard `n` of [`ARCHIVE_SHARDS`] by conversation ([`archive_shard`]), each node a consumer; acknowledged and deleted once written. Hash-tagged by shard: the shards spread over Redis Cluster's slots, every command touches one | every node |
//! | `bucket:<name>` | string | token bucket ([`buckets`]): `<tokens> <ms>`, expiring once it would be full | Redis store |

use std::fmt::Display;

/// The key prefix when none is configured.
pub const DEFAULT_PREFIX: &str = "chat:";

/// Names the Redis keys of one deployment (one prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Default for Keys {
    fn default() -> Self {
        Self::new(DEFAULT_PREFIX)
    }
}

/// One key function per kind of key: `$name(args) = "format"` after the prefix.
macro_rules! keys {
    ($($(#[$doc:meta])* $name:ident($($arg:ident),*) = $fmt:literal;)*) => {
        impl Keys {
            $(
                $(#[$doc])*
                pub fn $name(&self $(, $arg: impl Display)*) -> String {
                    format!(concat!("{}", $fmt), self.prefix $(, $arg)*)
                }
            )*
        }
    };
}

impl Keys {
    /// Keys under `prefix`.
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// The prefix of every key.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

keys! {
    /// Sorted set: heartbeat node uid → lease expiry (ms).
    nodes() = "nodes";
    /// Hash: one node's record.
    node(uid) = "node:{}";
    /// What [`Keys::node`] puts before the uid (for scripts that build node keys).
    node_prefix() = "node:";
    /// Stream: entries for one node.
    inbox(uid) = "inbox:{}";
    /// Set: the nodes hosting a routed room.
    room(room) = "room:{}";
    /// What [`Keys::room`] puts before the room.
    room_prefix() = "room:";
    /// Set: the rooms a node recorded.
    noderooms(uid) = "noderooms:{}";
    /// What [`Keys::noderooms`] puts before the uid.
    noderooms_prefix() = "noderooms:";
    /// Set: uids of admin-registered nodes ([`static_uid`]).
    statics() = "static";
    /// Set: uids the health checker took out of picking.
    removed() = "removed";
    /// String: the health checkers' round lock.
    health_lock() = "health:lock";
    /// Hash: uid → consecutive failed probes.
    health_failures() = "health:failures";
    /// Set: reaped uids whose cleanup has not all succeeded yet.
    health_reaping() = "health:reaping";

    /// Stream: a conversation's messages.
    conv(conversation) = "conv:{}";
    /// What [`Keys::conv`] puts before the conversation.
    conv_prefix() = "conv:";
    /// String: the newest message id handed out.
    clock() = "clock";
    /// Hash: conversation → its newest message id.
    last() = "last";
    /// Hash: conversation → messages ever sent to it.
    count() = "count";
    /// Hash: conversation → messages the user sent to it.
    sent(user) = "sent:{}";
    /// Set: the user's DM conversations.
    dms(user) = "dms:{}";
    /// What [`Keys::dms`] puts before the user.
    dms_prefix() = "dms:";
    /// Hash: the user's read marks and unread counts.
    marks(user) = "marks:{}";
    /// Hash: user → delivered mark in a conversation.
    delivered(conversation) = "delivered:{}";
    /// String: the first message a sender sent with a `clientId`.
    idem(user, client_id) = "idem:{}:{}";
    /// Hash: a group's name, owner and join counter.
    group(id) = "group:{}";
    /// Sorted set: a group's members by join order.
    gmembers(id) = "gmembers:{}";
    /// Set: the user's groups.
    usergroups(user) = "usergroups:{}";
    /// Sorted set: the public groups' name index. A hash tag of its own.
    public_groups() = "groups:{{public}}";
    /// Set: the users this user blocked.
    blocks(user) = "blocks:{}";
    /// Hash: the user's status (`s`), text (`t`) and idle devices (`d:<socket>`).
    /// Hash-tagged by user.
    status(user) = "status:{{{}}}";
    /// Hash: the user's contact roster, other user → state code. Hash-tagged by user.
    contacts(user) = "contacts:{{{}}}";
    /// Hash: socket id → the node holding it.
    presence(user) = "presence:{}";
    /// What [`Keys::presence`] puts before the user.
    presence_prefix() = "presence:";
    /// Hash: user → when their last device left (ms).
    lastseen() = "lastseen";
    /// Set: users who connected through a node.
    nodeusers(uid) = "nodeusers:{}";
    /// Set: users a dead node's cleanup found offline, until the chat announces them.
    lostusers(uid) = "lostusers:{}";
    /// String: a token bucket named by [`buckets`].
    bucket(name) = "bucket:{}";
    /// String: until when a user is banned (ms). Hash-tagged by user, like every key added
    /// since: it lands in the user's slot in Redis Cluster.
    ban(user) = "ban:{{{}}}";
    /// Stream: webhook events, read through the consumer group `senders`. Its own hash tag:
    /// the queue belongs to no user or node, and every command on it touches this one slot.
    webhooks() = "webhooks:{{webhooks}}";
    /// Stream: messages waiting for the archive, shard `n` of [`ARCHIVE_SHARDS`], read
    /// through the consumer group `archivers`. Hash-tagged by shard.
    archive(shard) = "archive:{{archive-{}}}";
}

/// How many streams the archive's queue is sharded into ([`Keys::archive`]).
pub const ARCHIVE_SHARDS: u32 = 8;

/// The archive shard of a conversation (FNV-1a of its id): every message of a conversation
/// goes through one stream.
pub fn archive_shard(conversation: impl Display) -> u32 {
    let hash = conversation
        .to_string()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    (hash % u64::from(ARCHIVE_SHARDS)) as u32
}

/// The uid under which the registry records an admin-registered node.
pub fn static_uid(id: &str) -> String {
    format!("static-{id}")
}

/// Names of the rate buckets, per user.
pub mod buckets {
    use std::fmt::Display;

    /// Every acknowledged event of a user.
    pub fn events(user: impl Display) -> String {
        format!("ev:{user}")
    }

    /// A user's `message:send`.
    pub fn messages(user: impl Display) -> String {
        format!("msg:{user}")
    }

    /// A user's `search`. Hash-tagged by user, like every key added since the bans.
    pub fn search(user: impl Display) -> String {
        format!("search:{{{user}}}")
    }

    /// A user's `presence:status`. Hash-tagged by user.
    pub fn status(user: impl Display) -> String {
        format!("status:{{{user}}}")
    }

    /// A user's `contacts:request`. Hash-tagged by user.
    pub fn contact_requests(user: impl Display) -> String {
        format!("creq:{{{user}}}")
    }
}

/// Socket.IO room names. The rooms chat-core joins; the cluster adapter routes by them.
pub mod rooms {
    use std::fmt::Display;

    /// Every socket of a user: [`user`] starts with this.
    pub const USER: &str = "user:";
    /// Every socket of a group's members: [`group`] starts with this.
    pub const GROUP: &str = "group:";
    /// Sockets subscribed to a user's presence: [`presence`] starts with this.
    pub const PRESENCE: &str = "presence:";
    /// The prefixes of the rooms whose hosting nodes the cluster records.
    pub const ROUTED: [&str; 3] = [USER, GROUP, PRESENCE];

    /// Every socket of a user.
    pub fn user(u: impl Display) -> String {
        format!("{USER}{u}")
    }

    /// Every socket of every member of a group.
    pub fn group(g: impl Display) -> String {
        format!("{GROUP}{g}")
    }

    /// Sockets subscribed to a user's presence.
    pub fn presence(u: impl Display) -> String {
        format!("{PRESENCE}{u}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys carry the prefix; prefixes for scripts agree with the keys they build.
    #[test]
    fn keys_and_their_prefixes_agree() {
        let k = Keys::new("t1:");
        assert_eq!(k.nodes(), "t1:nodes");
        assert_eq!(k.idem("ann", "c1"), "t1:idem:ann:c1");
        assert_eq!(k.ban("ann"), "t1:ban:{ann}");
        assert_eq!(k.webhooks(), "t1:webhooks:{webhooks}");
        assert_eq!(k.archive(3), "t1:archive:{archive-3}");
        assert_eq!(k.bucket(buckets::search("ann")), "t1:bucket:search:{ann}");
        let shards: std::collections::BTreeSet<u32> = (0..100)
            .map(|i| archive_shard(format!("group:g{i}")))
            .collect();
        assert_eq!(shards.len(), ARCHIVE_SHARDS as usize, "every shard is used");
        assert_eq!(k.conv("dm:a:b"), format!("{}dm:a:b", k.conv_prefix()));
        assert_eq!(k.node("u"), format!("{}u", k.node_prefix()));
        assert_eq!(k.room("user:a"), format!("{}user:a", k.room_prefix()));
        assert_eq!(Keys::default().prefix(), DEFAULT_PREFIX);
        assert_eq!(rooms::user("ann"), "user:ann");
        assert!(
            rooms::ROUTED
                .iter()
                .any(|p| rooms::presence("a").starts_with(p))
        );
    }
}
