//! [`Groups`] administration: names and topics, admin roles, ownership passing to an admin,
//! and deletion.

use chat_core::{
    Limits,
    protocol::{ConversationId, GroupId, Visibility},
    store::{GroupRefusal, Groups},
};

use super::{Store, group, say, user};

super::on_both_stores! {
    update_names_and_topics(Limits::default());
    admins_are_members_in_join_order(Limits::default());
    an_owner_who_leaves_hands_over_to_an_admin(Limits::default());
    delete_forgets_the_group_everywhere(Limits::default());
    public_groups_are_found_by_name(Limits::default());
}

/// `update` changes what it is given and leaves the rest; an unknown group is none.
async fn update_names_and_topics(store: &dyn Store) {
    let ann = user("ann");
    let id = group(store, std::slice::from_ref(&ann)).await;
    let g = store
        .update(&id, None, Some(Some("plans")), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((g.name.as_str(), g.topic.as_deref()), ("g", Some("plans")));
    let g = store
        .update(&id, Some("Team"), None, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (g.name.as_str(), g.topic.as_deref()),
        ("Team", Some("plans"))
    );
    let g = store
        .update(&id, None, Some(None), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(g.topic, None);
    assert_eq!(Groups::get(store, &id).await.unwrap().unwrap(), g);
    let nope = GroupId::parse("nope-group").unwrap();
    assert_eq!(
        store.update(&nope, Some("x"), None, None).await.unwrap(),
        None
    );
}

/// Admins are listed in join order, only while members; the owner is never one.
async fn admins_are_members_in_join_order(store: &dyn Store) {
    let (ann, ben, cid, dan) = (user("ann"), user("ben"), user("cid"), user("dan"));
    let id = group(store, &[ann.clone(), ben.clone(), cid.clone()]).await;
    store.set_admin(&id, &cid, true).await.unwrap().unwrap();
    let g = store.set_admin(&id, &ben, true).await.unwrap().unwrap();
    assert_eq!(g.admins, [ben.clone(), cid.clone()]);
    assert_eq!(
        store.set_admin(&id, &dan, true).await.unwrap(),
        Err(GroupRefusal::NotMember)
    );
    let nope = GroupId::parse("nope-group").unwrap();
    assert_eq!(
        store.set_admin(&nope, &ben, true).await.unwrap(),
        Err(GroupRefusal::NotFound)
    );
    let g = store.set_admin(&id, &ben, false).await.unwrap().unwrap();
    assert_eq!(g.admins, std::slice::from_ref(&cid));
    assert!(store.leave(&id, &cid).await.unwrap());
    store.join(&id, &cid, 10, 10).await.unwrap().unwrap();
    let g = Groups::get(store, &id).await.unwrap().unwrap();
    assert!(g.admins.is_empty(), "leaving ends the role: {g:?}");
}

/// The owner's successor is the longest-standing admin, before longer-standing members.
async fn an_owner_who_leaves_hands_over_to_an_admin(store: &dyn Store) {
    let (ann, ben, cid) = (user("ann"), user("ben"), user("cid"));
    let id = group(store, &[ann.clone(), ben.clone(), cid.clone()]).await;
    store.set_admin(&id, &cid, true).await.unwrap().unwrap();
    assert!(store.leave(&id, &ann).await.unwrap());
    let g = Groups::get(store, &id).await.unwrap().unwrap();
    assert_eq!(g.owner, cid);
    assert!(g.admins.is_empty(), "the new owner is no admin: {g:?}");
    assert!(store.leave(&id, &cid).await.unwrap());
    assert_eq!(Groups::get(store, &id).await.unwrap().unwrap().owner, ben);
}

/// A deleted group is gone: not found, in nobody's groups, its messages unreadable; a
/// second delete finds nothing.
async fn delete_forgets_the_group_everywhere(store: &dyn Store) {
    let (ann, ben) = (user("ann"), user("ben"));
    let id = group(store, &[ann.clone(), ben.clone()]).await;
    let conv = ConversationId::Group(id.clone());
    say(store, &conv, &ann, "hello").await;
    let gone = store.delete(&id).await.unwrap().unwrap();
    assert_eq!(gone.members, [ann.clone(), ben.clone()]);
    assert_eq!(Groups::get(store, &id).await.unwrap(), None);
    assert!(store.of_user(&ben).await.unwrap().is_empty());
    assert_eq!(store.counts(std::slice::from_ref(&ann)).await.unwrap(), [0]);
    let page = store.sync(&ben, None, 10).await.unwrap();
    assert!(page.messages.is_empty(), "{page:?}");
    assert_eq!(store.delete(&id).await.unwrap(), None);
}

/// `find` lists public groups by lowercased name prefix, in name order, in pages; private,
/// renamed-away and deleted groups are not found.
async fn public_groups_are_found_by_name(store: &dyn Store) {
    let ann = user("ann");
    // A prefix of this run's own, so that other runs' groups never match.
    let tag = user("t").to_string().to_lowercase();
    let mut ids = Vec::new();
    for name in ["Beta", "alpha", "ALPHA two", "gamma"] {
        let id = group(store, std::slice::from_ref(&ann)).await;
        store
            .update(&id, Some(&format!("{tag} {name}")), None, None)
            .await
            .unwrap()
            .unwrap();
        ids.push(id);
    }
    let names = |gs: &[chat_core::protocol::Group]| -> Vec<String> {
        gs.iter().map(|g| g.name.clone()).collect()
    };
    let (all, next) = store.find(&tag, None, 10).await.unwrap();
    assert_eq!(
        names(&all),
        [
            format!("{tag} alpha"),
            format!("{tag} ALPHA two"),
            format!("{tag} Beta"),
            format!("{tag} gamma")
        ]
    );
    assert_eq!(next, None);
    let (alphas, _) = store.find(&format!("{tag} al"), None, 10).await.unwrap();
    assert_eq!(alphas.len(), 2, "any case: {alphas:?}");
    let (first, next) = store.find(&tag, None, 2).await.unwrap();
    assert_eq!(names(&first), names(&all[..2]));
    let (rest, last) = store.find(&tag, next.as_deref(), 2).await.unwrap();
    assert_eq!(names(&rest), names(&all[2..]));
    assert!(
        last.is_none()
            || store
                .find(&tag, last.as_deref(), 2)
                .await
                .unwrap()
                .0
                .is_empty()
    );

    store
        .update(&ids[0], None, None, Some(Visibility::Private))
        .await
        .unwrap();
    store
        .update(&ids[1], Some("renamed away"), None, None)
        .await
        .unwrap();
    store.delete(&ids[3]).await.unwrap();
    let (left, _) = store.find(&tag, None, 10).await.unwrap();
    assert_eq!(names(&left), [format!("{tag} ALPHA two")]);
    store
        .update(&ids[0], None, None, Some(Visibility::Public))
        .await
        .unwrap();
    assert_eq!(store.find(&tag, None, 10).await.unwrap().0.len(), 2);
}
