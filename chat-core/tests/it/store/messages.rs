//! [`MessageLog`], writing: the append's checks, idempotency by clientId, history pages and
//! trimming, DM partners; on Redis, how ids and costs behave.

use std::time::Duration;

use chat_core::{
    Limits,
    config::Rate,
    protocol::{ConversationId, GroupId, StreamId, UserId},
    redis::Redis,
    store::{Appended, MessageLog, NewMessage, Refusal, redis::RedisStore},
};
use socketioxide_core::Uid;

use super::{FAR, Store, append, bodies, group, message, say, short_history, user};
use crate::helpers::{RedisServer, redis_settings, uid};

super::on_both_stores! {
    append_checks_in_order(Limits::default());
    a_dm_needs_the_sender_in_it(Limits::default());
    client_ids_give_the_first_message_or_a_conflict(short_history());
    client_ids_expire(Limits { idempotency_ttl: Duration::from_secs(1), ..Limits::default() });
    history_pages_back_with_before(Limits::default());
    history_keeps_the_newest_history_max(short_history());
    dm_peers_are_the_users_with_a_dm(Limits::default());
    an_append_names_the_message_before_it(short_history());
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
        ..
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

/// A DM the sender is not part of is refused as `NotMember`, after the budget like every
/// other refusal: an empty bucket answers `RateLimited` first, and a refusal spends a token.
async fn a_dm_needs_the_sender_in_it(store: &dyn Store) {
    let (ann, ben, eve) = (user("ann"), user("ben"), user("eve"));
    let dm = ConversationId::dm(&ann, &ben);
    let key = format!("msg:{eve}");
    let budget = [(key.as_str(), Rate::new(0.0001, 1))];
    let stranger = store
        .append(message(&dm, &eve, None), &budget)
        .await
        .unwrap();
    assert_eq!(stranger, Appended::Refused(Refusal::NotMember));
    let again = store
        .append(message(&dm, &eve, None), &budget)
        .await
        .unwrap();
    assert_eq!(
        again,
        Appended::Refused(Refusal::RateLimited),
        "the budget is spent"
    );
    assert!(store.history(&dm, None, 10).await.unwrap().0.is_empty());
    assert!(store.dm_peers(&eve).await.unwrap().is_empty());
}

/// The same clientId from the same sender answers the first message (same id, body and
/// ts), stores nothing, also once the first is trimmed from history; with another body or
/// conversation it is a conflict; other senders' keys are their own.
async fn client_ids_give_the_first_message_or_a_conflict(store: &dyn Store) {
    let (ann, ben, cid) = (user("ann"), user("ben"), user("cid"));
    let (ab, ac) = (
        ConversationId::dm(&ann, &ben),
        ConversationId::dm(&ann, &cid),
    );
    let keyed = |conv: &ConversationId, from: &UserId, body: &str, ts| NewMessage {
        conversation: conv.clone(),
        from: from.clone(),
        body: body.into(),
        ts,
        client_id: Some("k1".into()),
    };
    let Appended::New { message: first, .. } =
        store.append(keyed(&ab, &ann, "x", 10), &[]).await.unwrap()
    else {
        panic!("not stored")
    };
    assert_eq!(first.client_id.as_deref(), Some("k1"));
    let again = store.append(keyed(&ab, &ann, "x", 20), &[]).await.unwrap();
    assert_eq!(
        again,
        Appended::Duplicate(first.clone()),
        "the first, its ts too"
    );
    let other_body = store.append(keyed(&ab, &ann, "y", 30), &[]).await.unwrap();
    assert_eq!(other_body, Appended::Conflict);
    let other_conv = store.append(keyed(&ac, &ann, "x", 40), &[]).await.unwrap();
    assert_eq!(other_conv, Appended::Conflict);
    assert_eq!(
        store.history(&ab, None, 10).await.unwrap().0,
        std::slice::from_ref(&first)
    );
    assert!(store.history(&ac, None, 10).await.unwrap().0.is_empty());
    let bens = store.append(keyed(&ab, &ben, "x", 50), &[]).await.unwrap();
    assert!(
        matches!(bens, Appended::New { .. }),
        "ben's own key: {bens:?}"
    );

    // Five messages kept: after four more, the first has left history; still a duplicate.
    for _ in 0..4 {
        append(store, &ab, &ben).await;
    }
    let (kept, _) = store.history(&ab, None, 100).await.unwrap();
    assert!(kept.iter().all(|m| m.id != first.id));
    let later = store.append(keyed(&ab, &ann, "x", 60), &[]).await.unwrap();
    assert_eq!(later, Appended::Duplicate(first));
    assert_eq!(store.history(&ab, None, 100).await.unwrap().0, kept);
}

/// A clientId is kept for the idempotency TTL: after it, the same key stores a new message.
async fn client_ids_expire(store: &dyn Store) {
    let (ann, ben) = (user("ann"), user("ben"));
    let dm = ConversationId::dm(&ann, &ben);
    let Appended::New { message: first, .. } = store
        .append(message(&dm, &ann, Some("k")), &[])
        .await
        .unwrap()
    else {
        panic!("not stored")
    };
    // Polls: Redis time cannot be paused. The TTL is 1 s.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match store
            .append(message(&dm, &ann, Some("k")), &[])
            .await
            .unwrap()
        {
            Appended::Duplicate(m) => assert_eq!(m, first),
            Appended::New { message, .. } => {
                assert!(message.id > first.id);
                break;
            }
            other => panic!("{other:?}"),
        }
        assert!(tokio::time::Instant::now() < deadline, "key kept over 5 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// History pages go back from the newest or from `before` (exclusive), oldest first, and
/// say whether older messages exist; a page of 0 says only that; an unknown conversation
/// is empty.
async fn history_pages_back_with_before(store: &dyn Store) {
    let (ann, ben) = (user("ann"), user("ben"));
    let dm = ConversationId::dm(&ann, &ben);
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(
            say(
                store,
                &dm,
                if i % 2 == 0 { &ann } else { &ben },
                &i.to_string(),
            )
            .await
            .id,
        );
    }
    let page = async |before, limit| {
        let (msgs, more) = store.history(&dm, before, limit).await.unwrap();
        (msgs.iter().map(|m| m.id).collect::<Vec<_>>(), more)
    };
    assert_eq!(page(None, 3).await, (ids[4..].to_vec(), true));
    assert_eq!(page(Some(ids[4]), 3).await, (ids[1..4].to_vec(), true));
    assert_eq!(page(Some(ids[1]), 3).await, (ids[..1].to_vec(), false));
    assert_eq!(page(Some(ids[0]), 3).await, (vec![], false));
    assert_eq!(
        page(Some(StreamId::default()), 3).await,
        (vec![], false),
        "before all"
    );
    assert_eq!(page(None, 100).await, (ids.clone(), false));
    assert_eq!(page(Some(FAR), 2).await, (ids[5..].to_vec(), true));
    assert_eq!(
        page(Some(ids[3]), 3).await,
        (ids[..3].to_vec(), false),
        "exactly all"
    );
    assert_eq!(page(None, 0).await, (vec![], true));
    assert_eq!(page(Some(ids[0]), 0).await, (vec![], false));
    let (msgs, _) = store.history(&dm, None, 100).await.unwrap();
    assert_eq!(bodies(&msgs), ["0", "1", "2", "3", "4", "5", "6"]);
    assert_eq!(msgs[1].from, ben);
    let nowhere = ConversationId::Group(GroupId::parse(uid("none")).unwrap());
    assert_eq!(
        store.history(&nowhere, None, 10).await.unwrap(),
        (vec![], false)
    );
}

/// A conversation keeps its newest `history_max` messages: older ones are gone from
/// history (no `hasMore` for them), per conversation.
async fn history_keeps_the_newest_history_max(store: &dyn Store) {
    let (ann, ben, cid) = (user("ann"), user("ben"), user("cid"));
    let (ab, ac) = (
        ConversationId::dm(&ann, &ben),
        ConversationId::dm(&ann, &cid),
    );
    let mut ids = Vec::new();
    for i in 0..8 {
        ids.push(say(store, &ab, &ann, &i.to_string()).await.id);
    }
    let kept = say(store, &ac, &cid, "other").await;
    let (msgs, more) = store.history(&ab, None, 100).await.unwrap();
    assert_eq!(bodies(&msgs), ["3", "4", "5", "6", "7"]);
    assert!(!more);
    let (older, more) = store.history(&ab, Some(ids[4]), 100).await.unwrap();
    assert_eq!(bodies(&older), ["3"]);
    assert!(!more, "0..2 are gone");
    assert_eq!(
        store.history(&ac, None, 100).await.unwrap(),
        (vec![kept], false)
    );
}

/// A user's DM partners are those with a stored DM, whoever wrote first; refused DMs and
/// group messages make none.
async fn dm_peers_are_the_users_with_a_dm(store: &dyn Store) {
    let (ann, ben, cid, dan) = (user("ann"), user("ben"), user("cid"), user("dan"));
    assert!(store.dm_peers(&ann).await.unwrap().is_empty());
    let g = ConversationId::Group(group(store, &[ann.clone(), dan.clone()]).await);
    say(store, &g, &dan, "group").await;
    say(store, &ConversationId::dm(&ann, &ben), &ann, "hi ben").await;
    say(store, &ConversationId::dm(&cid, &ann), &cid, "hi ann").await;
    say(store, &ConversationId::dm(&ann, &ben), &ben, "hi back").await;
    store.block(&dan, &ann).await.unwrap();
    let refused = store
        .append(message(&ConversationId::dm(&ann, &dan), &ann, None), &[])
        .await
        .unwrap();
    assert_eq!(refused, Appended::Refused(Refusal::Blocked));
    let sorted = async |u: &UserId| {
        let mut peers = store.dm_peers(u).await.unwrap();
        peers.sort();
        peers
    };
    let mut want = vec![ben.clone(), cid.clone()];
    want.sort();
    assert_eq!(sorted(&ann).await, want);
    assert_eq!(sorted(&ben).await, std::slice::from_ref(&ann));
    assert_eq!(sorted(&cid).await, [ann]);
    assert!(sorted(&dan).await.is_empty());
}

fn redis_store(server: &RedisServer) -> RedisStore {
    let settings = redis_settings(&server.url(), &super::fresh_prefix());
    let redis = Redis::new(settings.target.clone()).unwrap();
    RedisStore::new(redis, &settings, &Limits::default(), Uid::new())
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

/// Each new message names its conversation's previous message (none for the first), also
/// once history has trimmed it, and whatever other conversations took ids in between: what
/// live delivery orders a conversation by.
async fn an_append_names_the_message_before_it(store: &dyn Store) {
    let (ann, ben, cid) = (user("ann"), user("ben"), user("cid"));
    let ab = ConversationId::dm(&ann, &ben);
    let ac = ConversationId::dm(&ann, &cid);
    let mut before = None;
    for i in 0..8 {
        let Appended::New {
            message: m, prev, ..
        } = store.append(message(&ab, &ann, None), &[]).await.unwrap()
        else {
            panic!("not stored")
        };
        assert_eq!(prev, before, "message {i}");
        before = Some(m.id);
        // Another conversation in between: its ids do not count.
        let Appended::New { prev: other, .. } =
            store.append(message(&ac, &cid, None), &[]).await.unwrap()
        else {
            panic!("not stored")
        };
        assert_eq!(other.is_some(), i > 0);
    }
    // A keyed message names it too, and its duplicate is the first message again.
    let Appended::New {
        message: keyed,
        prev,
        ..
    } = store
        .append(message(&ab, &ben, Some("k")), &[])
        .await
        .unwrap()
    else {
        panic!("not stored")
    };
    assert_eq!(prev, before);
    assert_eq!(
        store
            .append(message(&ab, &ben, Some("k")), &[])
            .await
            .unwrap(),
        Appended::Duplicate(keyed)
    );
}
