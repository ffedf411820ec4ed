//! Unit tests of the memory store; the conformance suite (`tests/it/store`) runs both stores.

use std::time::Duration;

use super::MemoryStore;
use crate::{
    config::{Limits, Rate},
    error::StoreError,
    protocol::{ConversationId, Group, GroupId, Message, PresenceState, StreamId, UserId},
    store::{Appended, Groups, Mark, MessageLog, NewMessage, Presence, RateLimiter},
};

fn user(s: &str) -> UserId {
    UserId::parse(s).unwrap()
}

fn store() -> MemoryStore {
    MemoryStore::new(&Limits {
        history_max: 5,
        ..Limits::default()
    })
}

async fn send(s: &MemoryStore, from: &str, to: &str, body: &str, ts: u64) -> Message {
    let (a, b) = (user(from), user(to));
    let new = NewMessage {
        conversation: ConversationId::dm(&a, &b),
        from: a.clone(),
        body: body.into(),
        ts,
        client_id: None,
    };
    match s.append(new, &[]).await.unwrap() {
        Appended::New { message, .. } => message,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn ids_grow_within_a_millisecond_and_history_is_capped() {
    let s = store();
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(send(&s, "a", "b", &format!("m{i}"), 1000).await.id);
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    let dm = ConversationId::dm(&user("a"), &user("b"));
    let (page, more) = s.history(&dm, None, 100).await.unwrap();
    assert_eq!(page.len(), 5, "capped at history_max");
    assert!(!more);
    let (page, more) = s.history(&dm, Some(ids[5]), 2).await.unwrap();
    assert_eq!(page.iter().map(|m| m.id).collect::<Vec<_>>(), ids[3..5]);
    assert!(more);
}

#[tokio::test]
async fn idempotent_append_returns_the_first_message_or_conflicts() {
    let s = store();
    let (a, b) = (user("a"), user("b"));
    let new = |body: &str| NewMessage {
        conversation: ConversationId::dm(&a, &b),
        from: a.clone(),
        body: body.into(),
        ts: 1,
        client_id: Some("k".into()),
    };
    let Appended::New { message: first, .. } = s.append(new("x"), &[]).await.unwrap() else {
        panic!()
    };
    assert_eq!(
        s.append(new("x"), &[]).await.unwrap(),
        Appended::Duplicate(first)
    );
    assert_eq!(s.append(new("y"), &[]).await.unwrap(), Appended::Conflict);
}

#[tokio::test]
async fn sync_without_cursor_gives_unread_then_cursor_gives_rest_once() {
    let s = MemoryStore::new(&Limits::default());
    let m1 = send(&s, "a", "b", "1", 10).await;
    let m2 = send(&s, "a", "b", "2", 11).await;
    let dm = m1.conversation.clone();
    s.advance(&user("b"), &dm, m1.id, Mark::Read).await.unwrap();
    let page = s.sync(&user("b"), None, 100).await.unwrap();
    assert_eq!(page.messages, vec![m2.clone()]);
    assert!(!page.has_more);
    let again = s.sync(&user("b"), Some(page.cursor), 100).await.unwrap();
    assert!(again.messages.is_empty());
    let m3 = send(&s, "b", "a", "3", 12).await;
    let next = s.sync(&user("b"), Some(page.cursor), 100).await.unwrap();
    assert_eq!(next.messages, vec![m3], "own sends reach other devices");
}

#[tokio::test]
async fn sync_pages_and_reports_truncation() {
    let s = store();
    for i in 0..7 {
        send(&s, "a", "b", &i.to_string(), 100 + i).await;
    }
    let first = s
        .sync(&user("b"), Some(StreamId::default()), 2)
        .await
        .unwrap();
    assert!(first.truncated, "history_max 5 trimmed two messages");
    assert_eq!(bodies(&first.messages), ["2", "3"]);
    assert!(first.has_more);
    let rest = s.sync(&user("b"), Some(first.cursor), 10).await.unwrap();
    assert_eq!(bodies(&rest.messages), ["4", "5", "6"]);
    assert!(!rest.has_more && !rest.truncated);
}

fn bodies(messages: &[Message]) -> Vec<&str> {
    messages.iter().map(|m| m.body.as_str()).collect()
}

#[tokio::test]
async fn ids_grow_across_conversations_and_sync_merges_them() {
    let s = MemoryStore::new(&Limits::default());
    let (a, b, c) = (user("a"), user("b"), user("c"));
    let g = Group {
        id: GroupId::parse("g1").unwrap(),
        name: "g".into(),
        owner: a.clone(),
        members: vec![a.clone(), b.clone(), c.clone()],
        admins: Vec::new(),
        topic: None,
        visibility: Default::default(),
    };
    s.create(g.clone()).await.unwrap();
    let group = ConversationId::Group(g.id.clone());
    let to_group = |from: &UserId, body: &str, ts| NewMessage {
        conversation: group.clone(),
        from: from.clone(),
        body: body.into(),
        ts,
        client_id: None,
    };
    // The clock runs back between sends: ids still grow, across conversations.
    let m1 = send(&s, "a", "b", "dm1", 50).await;
    let Appended::New { message: g1, .. } = s.append(to_group(&c, "g1", 40), &[]).await.unwrap()
    else {
        panic!()
    };
    let m2 = send(&s, "c", "b", "dm2", 30).await;
    assert!(m1.id < g1.id && g1.id < m2.id);
    let page = s.sync(&b, None, 100).await.unwrap();
    assert_eq!(bodies(&page.messages), ["dm1", "g1", "dm2"]);
    assert_eq!(page.cursor, m2.id);
    let paged = s.sync(&b, Some(m1.id), 1).await.unwrap();
    assert_eq!(bodies(&paged.messages), ["g1"]);
    assert!(paged.has_more);
    assert_eq!(paged.cursor, g1.id);
    s.leave(&g.id, &b).await.unwrap();
    let after_leaving = s.sync(&b, Some(m1.id), 10).await.unwrap();
    assert_eq!(
        bodies(&after_leaving.messages),
        ["dm2"],
        "only current groups"
    );
}

#[tokio::test]
async fn advance_reports_newest_per_sender_once() {
    let s = MemoryStore::new(&Limits::default());
    let m1 = send(&s, "a", "b", "1", 10).await;
    let m2 = send(&s, "a", "b", "2", 11).await;
    send(&s, "b", "a", "own", 12).await;
    let dm = m1.conversation.clone();
    let far = StreamId {
        ms: u64::MAX,
        seq: 0,
    };
    let got = s
        .advance(&user("b"), &dm, far, Mark::Delivered)
        .await
        .unwrap();
    assert_eq!(got, vec![(user("a"), m2.id)]);
    assert!(
        s.advance(&user("b"), &dm, m2.id, Mark::Delivered)
            .await
            .unwrap()
            .is_empty()
    );
    let read = s.advance(&user("b"), &dm, m1.id, Mark::Read).await.unwrap();
    assert_eq!(read, vec![(user("a"), m1.id)]);
    let summary = s.conversations(&user("b"), &[]).await.unwrap();
    assert_eq!(summary[0].unread, 1);
}

#[tokio::test]
async fn closed_store_refuses_writes() {
    let s = store();
    s.close();
    let (a, b) = (user("a"), user("b"));
    let new = NewMessage {
        conversation: ConversationId::dm(&a, &b),
        from: a.clone(),
        body: "x".into(),
        ts: 1,
        client_id: None,
    };
    assert_eq!(s.append(new, &[]).await, Err(StoreError::Closed));
    assert!(
        s.history(&ConversationId::dm(&a, &b), None, 1)
            .await
            .is_ok()
    );
}

#[tokio::test(start_paused = true)]
async fn token_bucket_refills_over_time() {
    let s = store();
    let rate = Rate::new(2.0, 2);
    assert!(s.try_acquire("k", rate).await.unwrap());
    assert!(s.try_acquire("k", rate).await.unwrap());
    assert!(!s.try_acquire("k", rate).await.unwrap());
    tokio::time::advance(Duration::from_millis(600)).await;
    assert!(s.try_acquire("k", rate).await.unwrap());
    assert!(!s.try_acquire("k", rate).await.unwrap());
}

/// A slow bucket left idle past the pruning interval is not full yet: it is not forgotten
/// (and refilled) before its time.
#[tokio::test(start_paused = true)]
async fn an_idle_bucket_is_kept_until_full() {
    let s = store();
    let slow = Rate::new(0.01, 2);
    assert!(s.try_acquire("k", slow).await.unwrap());
    assert!(s.try_acquire("k", slow).await.unwrap());
    tokio::time::advance(Duration::from_secs(130)).await;
    assert!(s.try_acquire("other", slow).await.unwrap(), "prunes");
    assert!(s.try_acquire("k", slow).await.unwrap(), "1.3 tokens back");
    assert!(
        !s.try_acquire("k", slow).await.unwrap(),
        "not a full bucket"
    );
    tokio::time::advance(Duration::from_secs(300)).await;
    assert!(
        s.try_acquire("other", slow).await.unwrap(),
        "prunes k, full again"
    );
    assert!(s.try_acquire("k", slow).await.unwrap());
    assert!(s.try_acquire("k", slow).await.unwrap());
    assert!(!s.try_acquire("k", slow).await.unwrap());
}

#[tokio::test]
async fn presence_counts_devices() {
    let s = store();
    let a = user("a");
    assert!(s.connect(&a, "s1").await.unwrap());
    assert!(!s.connect(&a, "s2").await.unwrap());
    assert_eq!(s.disconnect(&a, "s1", 5).await.unwrap(), None);
    assert_eq!(s.disconnect(&a, "s2", 6).await.unwrap(), Some(6));
    assert_eq!(
        Presence::get(&s, std::slice::from_ref(&a)).await.unwrap(),
        vec![PresenceState {
            online: false,
            last_seen: Some(6)
        }]
    );
}
