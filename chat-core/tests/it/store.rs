//! The stores agree: the same calls give the same answers in memory and on Redis.

use chat_core::{
    Limits,
    config::Rate,
    protocol::{ConversationId, Group, GroupId, MessageId, UserId},
    redis::Redis,
    store::{
        Appended, Blocks, Groups, Mark, MessageLog, NewMessage, RateLimiter, Refusal,
        memory::MemoryStore, redis::RedisStore,
    },
};
use socketioxide_core::Uid;

use crate::{helpers::*, redis_env::RedisServer};

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

/// Delivered marks of several members, written in one call from different positions: each
/// covers only what lies after its own mark, and never its own messages. The same call
/// carries marks of another conversation, between them: each answer lands in its place.
async fn delivered_marks_in_one_call(store: &dyn Store) {
    let (owner, ann, ben, cid) = (user("owner"), user("ann"), user("ben"), user("cid"));
    let all = [owner.clone(), ann.clone(), ben.clone(), cid.clone()];
    let g = ConversationId::Group(group(store, &all).await);
    let m1 = append(store, &g, &owner).await;
    let m2 = append(store, &g, &ann).await;
    for u in [&ann, &ben] {
        let covered = store.advance(u, &g, m1, Mark::Delivered).await.unwrap();
        assert_eq!(covered, vec![(owner.clone(), m1)]);
    }
    let dm = ConversationId::dm(&ben, &cid);
    let d1 = append(store, &dm, &cid).await;
    let mut marks: Vec<_> = [&ann, &ben, &cid, &owner]
        .into_iter()
        .map(|u| (u.clone(), g.clone(), m2))
        .collect();
    marks.insert(2, (ben.clone(), dm.clone(), d1));
    marks.push((cid.clone(), dm.clone(), d1));
    let covered = store.advance_delivered(&marks).await.unwrap();
    assert_eq!(
        covered,
        vec![
            vec![],                                       // ann: only her own m2 is new
            vec![(ann.clone(), m2)],                      // ben: had m1
            vec![(cid.clone(), d1)],                      // ben, in the DM
            vec![(ann.clone(), m2), (owner.clone(), m1)], // cid: had nothing
            vec![(ann.clone(), m2)],                      // owner: m1 is his own
            vec![],                                       // cid, in the DM: his own d1
        ]
    );
    // Marks never go back, and nothing is covered twice.
    let again = store.advance_delivered(&marks).await.unwrap();
    assert!(again.iter().all(Vec::is_empty), "{again:?}");
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
    // The sync feed of every member has it, the sender's included.
    for u in [&ann, &ben] {
        let page = store.sync(u, Some(Default::default()), 10).await.unwrap();
        assert!(page.messages.iter().any(|m| m.conversation == g), "{u}");
    }
}

fn redis_store(server: &RedisServer) -> RedisStore {
    let settings = redis_settings(&server.url(), &format!("s{:08x}:", rand::random::<u32>()));
    let redis = Redis::new(settings.target.clone()).unwrap();
    RedisStore::new(redis, &settings, &Limits::default(), Uid::new())
}

#[tokio::test]
async fn delivered_marks_in_one_call_in_memory() {
    delivered_marks_in_one_call(&MemoryStore::new(&Limits::default())).await;
}

#[tokio::test]
async fn delivered_marks_in_one_call_on_redis() {
    let server = RedisServer::start().await;
    delivered_marks_in_one_call(&redis_store(&server)).await;
}

#[tokio::test]
async fn append_checks_in_order_in_memory() {
    append_checks_in_order(&MemoryStore::new(&Limits::default())).await;
}

#[tokio::test]
async fn append_checks_in_order_on_redis() {
    let server = RedisServer::start().await;
    append_checks_in_order(&redis_store(&server)).await;
}
