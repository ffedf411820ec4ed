//! The stores agree: the same calls give the same answers in memory and on Redis.

use chat_core::{
    Limits,
    protocol::{ConversationId, GroupId, MessageId, UserId},
    redis::Redis,
    store::{Appended, Mark, MessageLog, NewMessage, memory::MemoryStore, redis::RedisStore},
};
use socketioxide_core::Uid;

use crate::{helpers::*, redis_env::RedisServer};

fn user(name: &str) -> UserId {
    UserId::parse(uid(name)).unwrap()
}

async fn append(
    store: &dyn MessageLog,
    conv: &ConversationId,
    from: &UserId,
    audience: &[UserId],
) -> MessageId {
    let new = NewMessage {
        conversation: conv.clone(),
        from: from.clone(),
        body: "hello".into(),
        ts: 1,
        client_id: None,
    };
    match store.append(new, audience).await.unwrap() {
        Appended::New(m) => m.id,
        other => panic!("not stored: {other:?}"),
    }
}

/// Delivered marks of several members, written in one call from different positions: each
/// covers only what lies after its own mark, and never its own messages.
async fn delivered_marks_in_one_call(store: &dyn MessageLog) {
    let (owner, ann, ben, cid) = (user("owner"), user("ann"), user("ben"), user("cid"));
    let all = [owner.clone(), ann.clone(), ben.clone(), cid.clone()];
    let g = ConversationId::Group(GroupId::parse(uid("g")).unwrap());
    let m1 = append(store, &g, &owner, &all).await;
    let m2 = append(store, &g, &ann, &all).await;
    for u in [&ann, &ben] {
        let covered = store.advance(u, &g, m1, Mark::Delivered).await.unwrap();
        assert_eq!(covered, vec![(owner.clone(), m1)]);
    }
    let marks: Vec<_> = [&ann, &ben, &cid, &owner]
        .into_iter()
        .map(|u| (u.clone(), g.clone(), m2))
        .collect();
    let covered = store.advance_delivered(&marks).await.unwrap();
    assert_eq!(
        covered,
        vec![
            vec![],                                       // ann: only her own m2 is new
            vec![(ann.clone(), m2)],                      // ben: had m1
            vec![(ann.clone(), m2), (owner.clone(), m1)], // cid: had nothing
            vec![(ann.clone(), m2)],                      // owner: m1 is his own
        ]
    );
    // Marks never go back, and nothing is covered twice.
    let again = store.advance_delivered(&marks).await.unwrap();
    assert!(again.iter().all(Vec::is_empty), "{again:?}");
}

#[tokio::test]
async fn delivered_marks_in_one_call_in_memory() {
    delivered_marks_in_one_call(&MemoryStore::new(&Limits::default())).await;
}

#[tokio::test]
async fn delivered_marks_in_one_call_on_redis() {
    let server = RedisServer::start().await;
    let settings = redis_settings(&server.url(), &format!("s{:08x}:", rand::random::<u32>()));
    let redis = Redis::new(settings.target.clone()).unwrap();
    let store = RedisStore::new(redis, &settings, &Limits::default(), Uid::new());
    delivered_marks_in_one_call(&store).await;
}
