//! The stores agree: the same calls give the same answers in memory and on Redis.

use chat_core::{
    Limits,
    config::Rate,
    protocol::{ConversationId, Group, GroupId, Message, MessageId, UserId},
    redis::Redis,
    store::{
        Appended, Blocks, Groups, Mark, MessageLog, NewMessage, RateLimiter, Refusal,
        memory::MemoryStore, redis::RedisStore,
    },
};
use socketioxide_core::Uid;

use chat_testing::redis::RedisServer;

use crate::helpers::*;

fn user(name: &str) -> UserId {
    UserId::parse(uid(name)).unwrap()
}

/// Every store the tests below need.
trait Store: MessageLog + Groups + Blocks + RateLimiter {}
impl<S: MessageLog + Groups + Blocks + RateLimiter> Store for S {}

fn message(conv: &ConversationId, from: &UserId, client_id: Option<&str>) -> NewMessage {
    NewMessage {
        conversation: conv.clone(),
        from: from.clone(),
        body: "hello".into(),
        ts: 1,
        client_id: client_id.map(Into::into),
    }
}

async fn append(store: &dyn Store, conv: &ConversationId, from: &UserId) -> MessageId {
    match store.append(message(conv, from, None), &[]).await.unwrap() {
        Appended::New { message, .. } => message.id,
        other => panic!("not stored: {other:?}"),
    }
}

async fn group(store: &dyn Store, members: &[UserId]) -> GroupId {
    let id = GroupId::parse(uid("g")).unwrap();
    store
        .create(Group {
            id: id.clone(),
            name: "g".into(),
            owner: members[0].clone(),
            members: members.to_vec(),
        })
        .await
        .unwrap();
    id
}

/// Delivered marks of several members from different positions: each covers only what
/// lies after its own mark, never the member's own messages, and a read mark moves the
/// delivered mark along.
async fn delivered_marks_from_each_position(store: &dyn Store) {
    let (owner, ann, ben, cid) = (user("owner"), user("ann"), user("ben"), user("cid"));
    let all = [owner.clone(), ann.clone(), ben.clone(), cid.clone()];
    let g = ConversationId::Group(group(store, &all).await);
    let m1 = append(store, &g, &owner).await;
    let m2 = append(store, &g, &ann).await;
    let delivered = async |u: &UserId, upto| store.advance(u, &g, upto, Mark::Delivered).await;
    for u in [&ann, &ben] {
        assert_eq!(delivered(u, m1).await.unwrap(), vec![(owner.clone(), m1)]);
    }
    store.advance(&owner, &g, m2, Mark::Read).await.unwrap();
    let covered = [
        (&ann, vec![]),                                       // only her own m2 is new
        (&ben, vec![(ann.clone(), m2)]),                      // had m1
        (&cid, vec![(ann.clone(), m2), (owner.clone(), m1)]), // had nothing; newest first
        (&owner, vec![]),                                     // read up to m2 already
    ];
    for (u, want) in covered {
        assert_eq!(delivered(u, m2).await.unwrap(), want, "{u}");
        // Marks never go back, and nothing is covered twice.
        assert!(delivered(u, m1).await.unwrap().is_empty());
        assert!(delivered(u, m2).await.unwrap().is_empty());
    }
}

/// The checks of an append, in their order: the budget (all buckets or none), then who may
/// post, then the clientId; a refused append stores nothing.
async fn append_checks_in_order(store: &dyn Store) {
    let (ann, ben, cid) = (user("ann"), user("ben"), user("cid"));
    let dm = ConversationId::dm(&ann, &ben);
    let g = ConversationId::Group(group(store, &[ann.clone(), ben.clone()]).await);
    let refused = |r| Appended::Refused(r);
    let once = Rate::new(0.001, 1);
    let (events, msgs) = (format!("ev:{ann}"), format!("msg:{ann}"));
    let budget = [(events.as_str(), once), (msgs.as_str(), once)];

    // Blocked: refused after the budget was spent.
    store.block(&ben, &ann).await.unwrap();
    let first = store
        .append(message(&dm, &ann, None), &budget)
        .await
        .unwrap();
    assert_eq!(first, refused(Refusal::Blocked));
    let second = store
        .append(message(&dm, &ann, None), &budget)
        .await
        .unwrap();
    assert_eq!(second, refused(Refusal::RateLimited), "the budget is spent");
    // All or nothing: the event bucket alone still has its token.
    let other = format!("ev:{cid}");
    let mixed = [(other.as_str(), once), (msgs.as_str(), once)];
    let third = store
        .append(message(&dm, &ann, None), &mixed)
        .await
        .unwrap();
    assert_eq!(third, refused(Refusal::RateLimited));
    assert!(store.try_acquire(&other, once).await.unwrap());

    // A blocked user's clientId is not used up: after unblocking, it stores the message.
    store.unblock(&ben, &ann).await.unwrap();
    let Appended::New {
        message: m,
        audience,
    } = store
        .append(message(&dm, &ann, Some("k")), &[])
        .await
        .unwrap()
    else {
        panic!("not stored");
    };
    assert_eq!(audience, 2);
    assert_eq!(store.history(&dm, None, 10).await.unwrap().0, vec![m]);

    // Groups: members only, and the group must exist.
    let in_group = store.append(message(&g, &cid, None), &[]).await.unwrap();
    assert_eq!(in_group, refused(Refusal::NotMember));
    let nowhere = ConversationId::Group(GroupId::parse(uid("none")).unwrap());
    let missing = store
        .append(message(&nowhere, &ann, None), &[])
        .await
        .unwrap();
    assert_eq!(missing, refused(Refusal::NoGroup));
    assert!(store.history(&g, None, 10).await.unwrap().0.is_empty());
    let stored = store.append(message(&g, &ben, None), &[]).await.unwrap();
    assert!(
        matches!(stored, Appended::New { audience: 2, .. }),
        "{stored:?}"
    );
    // Every member syncs it, the sender included.
    for u in [&ann, &ben] {
        let page = store.sync(u, Some(Default::default()), 10).await.unwrap();
        assert!(page.messages.iter().any(|m| m.conversation == g), "{u}");
    }
}

fn bodies(messages: &[Message]) -> Vec<&str> {
    messages.iter().map(|m| m.body.as_str()).collect()
}

async fn say(store: &dyn Store, conv: &ConversationId, from: &UserId, body: &str) -> Message {
    let new = NewMessage {
        body: body.into(),
        ..message(conv, from, None)
    };
    match store.append(new, &[]).await.unwrap() {
        Appended::New { message, .. } => message,
        other => panic!("not stored: {other:?}"),
    }
}

/// One cursor covers all of a user's conversations: ids grow across them, `sync` merges DMs
/// and groups in send order, pages without skipping or repeating, and reads the groups the
/// user is in now.
async fn sync_merges_conversations(store: &dyn Store) {
    let (ann, ben, cid) = (user("ann"), user("ben"), user("cid"));
    let gid = group(store, &[ann.clone(), ben.clone(), cid.clone()]).await;
    let g = ConversationId::Group(gid.clone());
    let (ab, bc) = (
        ConversationId::dm(&ann, &ben),
        ConversationId::dm(&ben, &cid),
    );
    let mut sent = Vec::new();
    for i in 0..4 {
        sent.push(say(store, &ab, &ann, &format!("ab{i}")).await);
        sent.push(say(store, &g, &cid, &format!("g{i}")).await);
        sent.push(say(store, &bc, &ben, &format!("bc{i}")).await);
    }
    assert!(
        sent.windows(2).all(|w| w[0].id < w[1].id),
        "ids grow across conversations"
    );
    let unread = store.sync(&ben, None, 100).await.unwrap();
    assert_eq!(
        bodies(&unread.messages),
        ["ab0", "g0", "ab1", "g1", "ab2", "g2", "ab3", "g3"],
        "unread: not ben's own"
    );
    assert!(!unread.has_more);
    assert_eq!(unread.cursor, sent.last().unwrap().id);

    // Pages of 5 from the start: every message once, in order, own ones included.
    let (mut cursor, mut got) = (Default::default(), Vec::new());
    loop {
        let page = store.sync(&ben, Some(cursor), 5).await.unwrap();
        assert!(page.messages.len() <= 5);
        got.extend(page.messages.iter().map(|m| m.id));
        cursor = page.cursor;
        if !page.has_more {
            break;
        }
    }
    assert_eq!(got, sent.iter().map(|m| m.id).collect::<Vec<_>>());
    let idle = store.sync(&ben, Some(cursor), 5).await.unwrap();
    assert!(idle.messages.is_empty() && !idle.has_more);
    assert_eq!(idle.cursor, cursor);

    store.leave(&gid, &ben).await.unwrap();
    let later = say(store, &g, &cid, "after").await;
    let dm = say(store, &ab, &ann, "dm").await;
    let page = store.sync(&ben, Some(cursor), 10).await.unwrap();
    assert_eq!(bodies(&page.messages), ["dm"], "a group left is not read");
    assert!(later.id < dm.id);
}

/// Unread counts: messages from others after the read mark, however many came before or
/// after, the user's own ones never.
async fn unread_counts(store: &dyn Store) {
    let (ann, ben, cid) = (user("ann"), user("ben"), user("cid"));
    let gid = group(store, &[ann.clone(), ben.clone(), cid.clone()]).await;
    let g = ConversationId::Group(gid.clone());
    let unread = async |u: UserId| {
        let groups = [store.get(&gid).await.unwrap().unwrap()];
        let list = store.conversations(&u, &groups).await.unwrap();
        list.iter().find(|c| c.id == g).unwrap().unread
    };
    assert_eq!(unread(ben.clone()).await, 0);
    say(store, &g, &ann, "a1").await;
    let a2 = say(store, &g, &ann, "a2").await;
    say(store, &g, &ben, "own").await;
    say(store, &g, &cid, "c1").await;
    assert_eq!(unread(ben.clone()).await, 3);
    assert_eq!(unread(ann.clone()).await, 2);
    // Read up to a2: "own" is not unread, c1 is.
    store.advance(&ben, &g, a2.id, Mark::Read).await.unwrap();
    assert_eq!(unread(ben.clone()).await, 1);
    say(store, &g, &ben, "own2").await;
    say(store, &g, &ann, "a3").await;
    assert_eq!(unread(ben.clone()).await, 2);
    let newest = say(store, &g, &cid, "c2").await;
    store
        .advance(&ben, &g, newest.id, Mark::Read)
        .await
        .unwrap();
    assert_eq!(unread(ben.clone()).await, 0);
    // A read mark never goes back.
    store.advance(&ben, &g, a2.id, Mark::Read).await.unwrap();
    assert_eq!(unread(ben.clone()).await, 0);
    say(store, &g, &cid, "c3").await;
    assert_eq!(unread(ben).await, 1);
    assert_eq!(
        unread(cid).await,
        5,
        "never read: every message from others"
    );
}

/// A cursor older than what a conversation kept (`history_max`) says `truncated`, and the
/// page starts with the oldest message kept.
async fn sync_reports_trimmed_history(store: &dyn Store) {
    let (ann, ben) = (user("ann"), user("ben"));
    let dm = ConversationId::dm(&ann, &ben);
    let first = say(store, &dm, &ann, "0").await;
    for i in 1..8 {
        say(store, &dm, &ann, &i.to_string()).await;
    }
    let page = store.sync(&ben, Some(first.id), 100).await.unwrap();
    assert!(page.truncated);
    assert_eq!(bodies(&page.messages), ["3", "4", "5", "6", "7"]);
    let newer = store
        .sync(&ben, Some(page.messages[0].id), 100)
        .await
        .unwrap();
    assert!(!newer.truncated, "nothing after this cursor was trimmed");
}

fn redis_store(server: &RedisServer) -> RedisStore {
    redis_store_with(server, &Limits::default())
}

fn redis_store_with(server: &RedisServer, limits: &Limits) -> RedisStore {
    let settings = redis_settings(&server.url(), &format!("s{:08x}:", rand::random::<u32>()));
    let redis = Redis::new(settings.target.clone()).unwrap();
    RedisStore::new(redis, &settings, limits, Uid::new())
}

/// Five messages kept per conversation.
fn short_history() -> Limits {
    Limits {
        history_max: 5,
        ..Limits::default()
    }
}

/// Runs each check as two tests: on the in-memory store and on Redis, with its limits.
macro_rules! on_both_stores {
    ($($check:ident($limits:expr);)*) => {
        mod in_memory {
            use super::*;
            $(#[tokio::test]
            async fn $check() {
                super::$check(&MemoryStore::new(&$limits)).await;
            })*
        }
        mod on_redis {
            use super::*;
            $(#[tokio::test]
            async fn $check() {
                let server = RedisServer::start().await;
                super::$check(&redis_store_with(&server, &$limits)).await;
            })*
        }
    };
}

on_both_stores! {
    delivered_marks_from_each_position(Limits::default());
    append_checks_in_order(Limits::default());
    sync_merges_conversations(Limits::default());
    unread_counts(Limits::default());
    sync_reports_trimmed_history(short_history());
    buckets_refill(Limits::default());
}

/// Messages stored before ids came from one clock may sit ahead of it (a master whose clock
/// ran fast): the next message of that conversation goes after them, and later messages of
/// any conversation after it.
#[tokio::test]
async fn ids_go_after_a_stream_that_is_ahead_of_the_clock() {
    let server = RedisServer::start().await;
    let settings = redis_settings(&server.url(), "ahead:");
    let store = RedisStore::new(
        Redis::new(settings.target.clone()).unwrap(),
        &settings,
        &Limits::default(),
        Uid::new(),
    );
    let (ann, ben, cid) = (user("ann"), user("ben"), user("cid"));
    let dm = ConversationId::dm(&ann, &ben);
    // An entry an hour ahead of Redis time, written the way the store writes messages.
    let time: Vec<String> = server.cli(&["TIME"]).await;
    let ahead = format!("{}-5", time[0].parse::<u64>().unwrap() * 1000 + 3_600_000);
    let key = format!("ahead:conv:{dm}");
    let _: String = server
        .cli(&[
            "XADD",
            &key,
            &ahead,
            "f",
            ann.as_str(),
            "b",
            "old",
            "t",
            "1",
            "c",
            "",
        ])
        .await;
    let next = say(&store, &dm, &ben, "new").await;
    assert!(
        next.id > ahead.parse().unwrap(),
        "{} after {ahead}",
        next.id
    );
    let elsewhere = say(&store, &ConversationId::dm(&ann, &cid), &cid, "x").await;
    assert!(elsewhere.id > next.id);
    let (page, _) = store.history(&dm, None, 10).await.unwrap();
    assert_eq!(bodies(&page), ["old", "new"]);
}

/// A group message is written once, whatever the group's size: no command per member.
#[tokio::test]
async fn group_messages_cost_the_same_whatever_the_size() {
    let server = RedisServer::start().await;
    let store = redis_store(&server);
    let commands = || async {
        let info: String = server.cli(&["INFO", "commandstats"]).await;
        info.lines()
            .filter_map(|l| {
                l.split_once("calls=")?
                    .1
                    .split(',')
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .sum::<u64>()
    };
    let mut cost = Vec::new();
    for size in [3, 300] {
        let members: Vec<UserId> = (0..size).map(|i| user(&format!("m{i}"))).collect();
        let g = ConversationId::Group(group(&store, &members).await);
        say(&store, &g, &members[1], "warm-up").await;
        let before = commands().await;
        for i in 0..10 {
            say(&store, &g, &members[i % size], "hello").await;
        }
        cost.push(commands().await - before);
    }
    assert_eq!(
        cost[0], cost[1],
        "commands for 10 messages to groups of 3 and 300"
    );
}

/// A token bucket spends its burst, refuses, then refills at its rate.
async fn buckets_refill(store: &dyn Store) {
    let rate = Rate::new(5.0, 2);
    let key = uid("bucket");
    assert!(store.try_acquire(&key, rate).await.unwrap());
    assert!(store.try_acquire(&key, rate).await.unwrap());
    assert!(!store.try_acquire(&key, rate).await.unwrap(), "burst spent");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(3);
    while !store.try_acquire(&key, rate).await.unwrap() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no token after 3 s at 5/s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(
        !store.try_acquire(&key, rate).await.unwrap(),
        "one token at a time"
    );
}
