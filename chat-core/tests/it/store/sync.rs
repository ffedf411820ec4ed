//! [`MessageLog`], reading: `sync` pages and cursors, read and delivered marks, unread
//! counts and the conversation list.

use chat_core::{
    Limits,
    protocol::{ConversationId, GroupId, StreamId, UserId},
    store::{Groups, Mark},
};

use super::{FAR, Store, append, bodies, group, say, short_history, user};

super::on_both_stores! {
    delivered_marks_from_each_position(Limits::default());
    read_marks_clamp_to_the_newest_and_move_delivered(Limits::default());
    sync_merges_conversations(Limits::default());
    unread_sync_fills_pages_with_others_messages(Limits::default());
    sync_follows_membership_changes(Limits::default());
    sync_with_a_limit_of_zero_gives_one(Limits::default());
    sync_reports_trimmed_history(short_history());
    unread_counts(Limits::default());
    unread_counts_messages_trimmed_from_history(short_history());
    conversations_most_recent_first(Limits::default());
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
        let groups = [Groups::get(store, &gid).await.unwrap().unwrap()];
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

/// A read mark past the newest message stops at it (later messages are unread), covers the
/// newest message of each other sender once, and moves the delivered mark along; marks of
/// a conversation without messages do nothing.
async fn read_marks_clamp_to_the_newest_and_move_delivered(store: &dyn Store) {
    let (ann, ben, cid) = (user("ann"), user("ben"), user("cid"));
    let gid = group(store, &[ann.clone(), ben.clone(), cid.clone()]).await;
    let g = ConversationId::Group(gid.clone());
    assert!(
        store
            .advance(&ann, &g, FAR, Mark::Read)
            .await
            .unwrap()
            .is_empty()
    );
    let b1 = append(store, &g, &ben).await;
    let c1 = append(store, &g, &cid).await;
    let b2 = append(store, &g, &ben).await;
    append(store, &g, &ann).await;
    let read = store.advance(&ann, &g, FAR, Mark::Read).await.unwrap();
    assert_eq!(read, [(ben.clone(), b2), (cid.clone(), c1)], "newest first");
    let delivered = store.advance(&ann, &g, FAR, Mark::Delivered).await.unwrap();
    assert!(delivered.is_empty(), "read implies delivered");
    assert_eq!(unread(store, &ann, &gid).await, 0);
    let c2 = append(store, &g, &cid).await;
    assert_eq!(
        unread(store, &ann, &gid).await,
        1,
        "the mark stopped at the newest"
    );
    assert!(
        store
            .advance(&ann, &g, b1, Mark::Read)
            .await
            .unwrap()
            .is_empty()
    );
    let delivered = store.advance(&ann, &g, FAR, Mark::Delivered).await.unwrap();
    assert_eq!(delivered, [(cid.clone(), c2)]);
    assert_eq!(unread(store, &ann, &gid).await, 1, "delivered is not read");
    let read = store.advance(&ann, &g, c2, Mark::Read).await.unwrap();
    assert_eq!(read, [(cid, c2)]);
    let page = store.sync(&ann, None, 10).await.unwrap();
    assert!(page.messages.is_empty(), "nothing unread");
}

/// The user's unread count in group `gid`, from the conversation list.
async fn unread(store: &dyn Store, u: &UserId, gid: &GroupId) -> u64 {
    let groups = [Groups::get(store, gid).await.unwrap().unwrap()];
    let list = store.conversations(u, &groups).await.unwrap();
    let g = ConversationId::Group(gid.clone());
    list.iter().find(|c| c.id == g).unwrap().unread
}

/// Without a cursor, a page holds up to `limit` unread messages from others, however many
/// of the user's own messages lie between them; paging on from its cursor misses none.
async fn unread_sync_fills_pages_with_others_messages(store: &dyn Store) {
    let (ann, ben, cid) = (user("ann"), user("ben"), user("cid"));
    let g = ConversationId::Group(group(store, &[ann.clone(), ben.clone(), cid.clone()]).await);
    let dm = ConversationId::dm(&ann, &cid);
    for i in 0..4 {
        say(store, &g, &ann, &format!("own{i}")).await;
    }
    say(store, &g, &ben, "b1").await;
    say(store, &dm, &ann, "own dm").await;
    say(store, &dm, &cid, "c1").await;
    say(store, &g, &ben, "b2").await;
    let first = store.sync(&ann, None, 2).await.unwrap();
    assert_eq!(bodies(&first.messages), ["b1", "c1"]);
    assert!(first.has_more);
    assert_eq!(first.cursor, first.messages[1].id);
    assert!(!first.truncated);
    let rest = store.sync(&ann, Some(first.cursor), 2).await.unwrap();
    assert_eq!(bodies(&rest.messages), ["b2"]);
    assert!(!rest.has_more);
    let all = store.sync(&ann, None, 3).await.unwrap();
    assert_eq!(bodies(&all.messages), ["b1", "c1", "b2"]);
    assert!(!all.has_more);
    assert_eq!(all.cursor, all.messages[2].id, "the newest message");
}

/// `sync` reads the groups the user is in at the time of the call: after joining, a group's
/// messages after the cursor (sent before the join too); after leaving, none.
async fn sync_follows_membership_changes(store: &dyn Store) {
    let (ann, ben) = (user("ann"), user("ben"));
    let gid = group(store, std::slice::from_ref(&ann)).await;
    let g = ConversationId::Group(gid.clone());
    let start = store
        .sync(&ben, Some(StreamId::default()), 10)
        .await
        .unwrap();
    assert!(start.messages.is_empty() && !start.has_more);
    say(store, &g, &ann, "before").await;
    let outside = store.sync(&ben, Some(start.cursor), 10).await.unwrap();
    assert!(outside.messages.is_empty(), "not a member yet");
    store.join(&gid, &ben, 10, 10).await.unwrap().unwrap();
    let joined = store.sync(&ben, Some(start.cursor), 10).await.unwrap();
    assert_eq!(bodies(&joined.messages), ["before"]);
    let unread = store.sync(&ben, None, 10).await.unwrap();
    assert_eq!(bodies(&unread.messages), ["before"], "never read");
    assert!(store.leave(&gid, &ben).await.unwrap());
    say(store, &g, &ann, "after").await;
    let left = store.sync(&ben, Some(joined.cursor), 10).await.unwrap();
    assert!(left.messages.is_empty() && !left.has_more);
    assert!(
        store
            .sync(&ben, None, 10)
            .await
            .unwrap()
            .messages
            .is_empty()
    );
}

/// A page of zero messages would tell nothing and move no cursor: a limit of 0 gives pages
/// of one, like a limit of 1.
async fn sync_with_a_limit_of_zero_gives_one(store: &dyn Store) {
    let (ann, ben) = (user("ann"), user("ben"));
    let dm = ConversationId::dm(&ann, &ben);
    let m1 = say(store, &dm, &ann, "1").await;
    let m2 = say(store, &dm, &ann, "2").await;
    for cursor in [None, Some(StreamId::default())] {
        let page = store.sync(&ben, cursor, 0).await.unwrap();
        assert_eq!(page.messages, std::slice::from_ref(&m1), "{cursor:?}");
        assert!(page.has_more);
        assert_eq!(page.cursor, m1.id);
    }
    let last = store.sync(&ben, Some(m1.id), 0).await.unwrap();
    assert_eq!(last.messages, std::slice::from_ref(&m2));
    assert!(!last.has_more);
    let idle = store.sync(&ben, Some(m2.id), 0).await.unwrap();
    assert!(idle.messages.is_empty() && !idle.has_more);
    assert_eq!(idle.cursor, m2.id);
}

/// Unread counts cover every message from others after the read mark, also those trimmed
/// from history since (`history_max` 5 here): what the user missed, not what is left. A
/// read mark moves only onto a message still kept.
async fn unread_counts_messages_trimmed_from_history(store: &dyn Store) {
    let (ann, ben) = (user("ann"), user("ben"));
    let dm = ConversationId::dm(&ann, &ben);
    let unread_of = async |u: &UserId| store.conversations(u, &[]).await.unwrap()[0].unread;
    let first = say(store, &dm, &ben, "0").await;
    say(store, &dm, &ann, "own").await;
    for i in 1..8 {
        say(store, &dm, &ben, &i.to_string()).await;
    }
    assert_eq!(unread_of(&ann).await, 8);
    assert_eq!(unread_of(&ben).await, 1);
    let trimmed = store
        .advance(&ann, &dm, first.id, Mark::Read)
        .await
        .unwrap();
    assert!(trimmed.is_empty());
    assert_eq!(
        unread_of(&ann).await,
        8,
        "a mark on a trimmed message moves nothing"
    );
    let (kept, _) = store.history(&dm, None, 100).await.unwrap();
    store
        .advance(&ann, &dm, kept[1].id, Mark::Read)
        .await
        .unwrap();
    assert_eq!(unread_of(&ann).await, 3);
}

/// The conversation list holds the user's DMs with messages and the groups given, each
/// with its newest message and a group's name, most recently active first; groups without
/// messages come last, by id.
async fn conversations_most_recent_first(store: &dyn Store) {
    let (ann, ben, cid) = (user("ann"), user("ben"), user("cid"));
    let (ab, ac) = (
        ConversationId::dm(&ann, &ben),
        ConversationId::dm(&ann, &cid),
    );
    let quiet = [
        group(store, std::slice::from_ref(&ann)).await,
        group(store, std::slice::from_ref(&ann)).await,
    ];
    let busy = group(store, &[ann.clone(), ben.clone()]).await;
    let g = ConversationId::Group(busy.clone());
    say(store, &ab, &ben, "ab").await;
    say(store, &g, &ben, "g").await;
    let newest_ac = say(store, &ac, &ann, "ac").await;
    let last_ab = say(store, &ab, &ann, "ab2").await;
    let mut groups = Vec::new();
    for id in quiet.iter().chain([&busy]) {
        groups.push(Groups::get(store, id).await.unwrap().unwrap());
    }
    let list = store.conversations(&ann, &groups).await.unwrap();
    let mut quiet_ids: Vec<ConversationId> = quiet
        .iter()
        .map(|q| ConversationId::Group(q.clone()))
        .collect();
    quiet_ids.sort();
    let ids: Vec<&ConversationId> = list.iter().map(|c| &c.id).collect();
    assert_eq!(ids, [&ab, &ac, &g, &quiet_ids[0], &quiet_ids[1]]);
    assert_eq!(list[0].last_message.as_ref(), Some(&last_ab));
    assert_eq!(list[1].last_message.as_ref(), Some(&newest_ac));
    assert_eq!((list[0].unread, list[1].unread, list[2].unread), (1, 0, 1));
    assert_eq!(
        (list[0].name.as_deref(), list[2].name.as_deref()),
        (None, Some("g"))
    );
    assert!(list[3].last_message.is_none() && list[3].unread == 0);
    let without_groups = store.conversations(&ann, &[]).await.unwrap();
    assert_eq!(without_groups, list[..2]);
    assert!(
        store
            .conversations(&user("nobody"), &[])
            .await
            .unwrap()
            .is_empty()
    );
}
