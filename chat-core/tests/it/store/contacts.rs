//! [`Contacts`]: each roster changed by compare-and-set, capped, listed in pages.

use chat_core::{
    Limits,
    protocol::ContactState::{Contact, Incoming, Outgoing},
    store::ContactChange,
};

use super::{Store, user};

super::on_both_stores! {
    an_entry_changes_only_from_what_was_expected(Limits::default());
    rosters_are_capped_sorted_and_paged(Limits::default());
}

/// `set_contact` changes an entry only if it is one of the expected states, says what it
/// was, and touches only its owner's roster.
async fn an_entry_changes_only_from_what_was_expected(store: &dyn Store) {
    let (ann, ben) = (user("ann"), user("ben"));
    let set = |from, to| store.set_contact(&ann, &ben, from, to, 10);
    assert_eq!(
        set(&[None], Some(Outgoing)).await.unwrap(),
        ContactChange::Done(None)
    );
    assert_eq!(
        set(&[None], Some(Contact)).await.unwrap(),
        ContactChange::Unexpected(Some(Outgoing)),
        "an entry that is not absent any more is left alone"
    );
    assert_eq!(
        set(&[Some(Incoming), Some(Outgoing)], Some(Contact))
            .await
            .unwrap(),
        ContactChange::Done(Some(Outgoing))
    );
    let both = [(ann.clone(), ben.clone()), (ben.clone(), ann.clone())];
    assert_eq!(
        store.contact_states(&both).await.unwrap(),
        [Some(Contact), None],
        "one roster only"
    );
    assert_eq!(
        store.contacts(&ann).await.unwrap(),
        std::slice::from_ref(&ben)
    );
    assert_eq!(
        set(&[Some(Contact)], None).await.unwrap(),
        ContactChange::Done(Some(Contact))
    );
    assert_eq!(
        set(&[Some(Contact)], None).await.unwrap(),
        ContactChange::Unexpected(None)
    );
    assert!(store.roster(&ann, None, 10).await.unwrap().is_empty());
    assert!(store.contact_states(&[]).await.unwrap().is_empty());
}

/// A roster takes `max` entries, and changing an entry is not a new one; pages follow the
/// user order; `contacts` lists accepted contacts only.
async fn rosters_are_capped_sorted_and_paged(store: &dyn Store) {
    let owner = user("owner");
    let mut others: Vec<_> = (0..3).map(|i| user(&format!("u{i}"))).collect();
    for (o, state) in others.iter().zip([Contact, Incoming, Outgoing]) {
        let done = store.set_contact(&owner, o, &[None], Some(state), 3).await;
        assert_eq!(done.unwrap(), ContactChange::Done(None));
    }
    let extra = user("extra");
    assert_eq!(
        store
            .set_contact(&owner, &extra, &[None], Some(Outgoing), 3)
            .await
            .unwrap(),
        ContactChange::Full
    );
    assert_eq!(
        store
            .set_contact(&owner, &others[1], &[Some(Incoming)], Some(Contact), 3)
            .await
            .unwrap(),
        ContactChange::Done(Some(Incoming)),
        "a full roster still changes its entries"
    );
    let all = store.roster(&owner, None, 10).await.unwrap();
    let mut users: Vec<_> = all.iter().map(|(u, _)| u.clone()).collect();
    let mut sorted = users.clone();
    sorted.sort();
    assert_eq!(users, sorted, "sorted by user");
    others.sort();
    assert_eq!(users, others);
    let first = store.roster(&owner, None, 2).await.unwrap();
    assert_eq!(first, all[..2]);
    let rest = store.roster(&owner, Some(&first[1].0), 2).await.unwrap();
    assert_eq!(rest, all[2..]);
    users.retain(|u| all.iter().any(|(v, s)| v == u && *s == Contact));
    assert_eq!(store.contacts(&owner).await.unwrap(), users);
}
