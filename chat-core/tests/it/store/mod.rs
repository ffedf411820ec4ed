//! The stores agree: every store trait's contract, checked on the in-memory store and on Redis
//! with the same calls, and random operation sequences that must give the same answers on both.
//!
//! Each check is an `async fn(&dyn Store)` run twice by [`on_both_stores!`]: once on a fresh
//! [`MemoryStore`], once on a [`RedisStore`] under a fresh key prefix in its own container.
//! Message ids differ between the stores (memory takes the given `ts`, Redis its own clock), so
//! checks compare ids with each other, never with a value.

mod bans;
mod blocks;
mod contacts;
mod group_admin;
mod groups;
mod messages;
mod presence;
mod random;
mod rates;
mod statuses;
mod sync;

use chat_core::{
    Limits,
    protocol::{ConversationId, Group, GroupId, Message, MessageId, StreamId, UserId},
    redis::Redis,
    store::{
        Appended, Bans, Blocks, Contacts, Groups, MessageLog, NewMessage, Presence, RateLimiter,
        Statuses, redis::RedisStore,
    },
};
use socketioxide_core::Uid;

use crate::helpers::*;

/// Every store trait: what a chat node runs on.
pub trait Store:
    MessageLog + Groups + Blocks + Contacts + Statuses + Presence + RateLimiter + Bans
{
}
impl<S> Store for S where
    S: MessageLog + Groups + Blocks + Contacts + Statuses + Presence + RateLimiter + Bans
{
}

/// Runs each check as two tests, `in_memory::check` and `on_redis::check`, with its limits.
macro_rules! on_both_stores {
    ($($check:ident($limits:expr);)*) => {
        mod in_memory {
            use super::*;
            $(#[tokio::test]
            async fn $check() {
                let store = chat_core::store::memory::MemoryStore::new(&$limits);
                super::$check(&store).await;
            })*
        }
        mod on_redis {
            use super::*;
            $(#[tokio::test]
            async fn $check() {
                let server = $crate::helpers::RedisServer::start().await;
                let store = crate::store::redis_store_with(&server, &$limits).await;
                super::$check(&store).await;
            })*
        }
    };
}
pub(crate) use on_both_stores;

/// A user id unique to this run.
pub fn user(name: &str) -> UserId {
    UserId::parse(uid(name)).unwrap()
}

/// A message of `from` to `conv` with body "hello" at ts 1.
pub fn message(conv: &ConversationId, from: &UserId, client_id: Option<&str>) -> NewMessage {
    NewMessage {
        conversation: conv.clone(),
        from: from.clone(),
        body: "hello".into(),
        ts: 1,
        client_id: client_id.map(Into::into),
    }
}

/// Appends "hello" from `from`, which must be stored; its id.
pub async fn append(store: &dyn Store, conv: &ConversationId, from: &UserId) -> MessageId {
    say(store, conv, from, "hello").await.id
}

/// Appends `body` from `from`, which must be stored.
pub async fn say(store: &dyn Store, conv: &ConversationId, from: &UserId, body: &str) -> Message {
    let new = NewMessage {
        body: body.into(),
        ..message(conv, from, None)
    };
    match store.append(new, &[]).await.unwrap() {
        Appended::New { message, .. } => message,
        other => panic!("not stored: {other:?}"),
    }
}

/// Creates a group of `members`, the first the owner; its id.
pub async fn group(store: &dyn Store, members: &[UserId]) -> GroupId {
    let id = GroupId::parse(uid("g")).unwrap();
    store
        .create(Group {
            id: id.clone(),
            name: "g".into(),
            owner: members[0].clone(),
            members: members.to_vec(),
            admins: Vec::new(),
            topic: None,
            visibility: Default::default(),
        })
        .await
        .unwrap();
    id
}

/// The bodies of `messages`, in order.
pub fn bodies(messages: &[Message]) -> Vec<&str> {
    messages.iter().map(|m| m.body.as_str()).collect()
}

/// An id after every id a store hands out.
pub const FAR: StreamId = StreamId {
    ms: u64::MAX,
    seq: 0,
};

/// Five messages kept per conversation.
pub fn short_history() -> Limits {
    Limits {
        history_max: 5,
        ..Limits::default()
    }
}

/// A Redis store under a fresh key prefix, as a live node.
pub async fn redis_store_with(server: &RedisServer, limits: &Limits) -> RedisStore {
    redis_node(server, &fresh_prefix(), limits, Uid::new(), LEASE_FOREVER).await
}

/// A key prefix no other test uses.
pub fn fresh_prefix() -> String {
    format!("s{:08x}:", rand::random::<u32>())
}

/// A node lease that outlives the test (ms since the epoch, as in the node table).
pub const LEASE_FOREVER: u64 = 32_503_680_000_000;

/// A Redis store for `node` under `prefix`, whose lease in the node table runs until
/// `lease_until` (Redis time, ms): presence entries count only while their node's lease runs.
pub async fn redis_node(
    server: &RedisServer,
    prefix: &str,
    limits: &Limits,
    node: Uid,
    lease_until: u64,
) -> RedisStore {
    let nodes = format!("{prefix}nodes");
    let _: i64 = server
        .cli(&["ZADD", &nodes, &lease_until.to_string(), &node.to_string()])
        .await;
    let settings = redis_settings(&server.url(), prefix);
    let redis = Redis::new(settings.target.clone()).unwrap();
    RedisStore::new(redis, &settings, limits, node)
}
