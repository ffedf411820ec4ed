//! [`Blocks`]: who blocked whom, and what a block refuses.

use chat_core::{
    Limits,
    protocol::ConversationId,
    store::{Appended, Refusal},
};

use super::{Store, group, message, say, user};

super::on_both_stores! {
    blocks_are_directed_and_idempotent(Limits::default());
    a_block_refuses_the_blocked_users_dms_only(Limits::default());
}

/// Blocking twice or unblocking twice is one block or none; a block is one way only; and
/// unblocking someone never blocked is fine.
async fn blocks_are_directed_and_idempotent(store: &dyn Store) {
    let (ann, ben, cid) = (user("ann"), user("ben"), user("cid"));
    assert!(!store.is_blocked(&ann, &ben).await.unwrap());
    store.block(&ann, &ben).await.unwrap();
    store.block(&ann, &ben).await.unwrap();
    assert!(store.is_blocked(&ann, &ben).await.unwrap());
    assert!(!store.is_blocked(&ben, &ann).await.unwrap(), "one way");
    assert!(!store.is_blocked(&ann, &cid).await.unwrap());
    store.unblock(&ann, &ben).await.unwrap();
    assert!(
        !store.is_blocked(&ann, &ben).await.unwrap(),
        "one unblock undoes two blocks"
    );
    store.unblock(&ann, &ben).await.unwrap();
    store.unblock(&cid, &ann).await.unwrap();
    assert!(!store.is_blocked(&cid, &ann).await.unwrap());
    // The list: sorted, one entry per blocked user, the blocker's only.
    for u in [&cid, &ben, &cid] {
        store.block(&ann, u).await.unwrap();
    }
    assert_eq!(store.list(&ann).await.unwrap(), [ben.clone(), cid.clone()]);
    assert_eq!(store.count(&ann).await.unwrap(), 2);
    assert!(store.list(&ben).await.unwrap().is_empty());
    store.unblock(&ann, &ben).await.unwrap();
    assert_eq!(store.list(&ann).await.unwrap(), [cid]);
}

/// A block refuses the blocked user's DMs to the blocker, not the blocker's DMs to them,
/// and not group messages between the two; unblocking lets DMs through again.
async fn a_block_refuses_the_blocked_users_dms_only(store: &dyn Store) {
    let (ann, ben) = (user("ann"), user("ben"));
    let dm = ConversationId::dm(&ann, &ben);
    let g = ConversationId::Group(group(store, &[ann.clone(), ben.clone()]).await);
    store.block(&ann, &ben).await.unwrap();
    let refused = store.append(message(&dm, &ben, None), &[]).await.unwrap();
    assert_eq!(refused, Appended::Refused(Refusal::Blocked));
    assert!(store.history(&dm, None, 10).await.unwrap().0.is_empty());
    assert!(
        store.dm_peers(&ben).await.unwrap().is_empty(),
        "no DM was made"
    );
    say(store, &dm, &ann, "from the blocker").await;
    say(store, &g, &ben, "in the group").await;
    store.unblock(&ann, &ben).await.unwrap();
    say(store, &dm, &ben, "after unblocking").await;
    let (page, _) = store.history(&dm, None, 10).await.unwrap();
    assert_eq!(
        super::bodies(&page),
        ["from the blocker", "after unblocking"]
    );
}
