//! [`Groups`]: creation, joining (and its refusals), leaving, ownership, a user's groups.

use chat_core::{
    Limits,
    protocol::{ConversationId, Group, GroupId, UserId},
    store::{Appended, GroupRefusal, Groups},
};

use super::{Store, group, message, user};
use crate::helpers::uid;

super::on_both_stores! {
    create_then_get_and_list(Limits::default());
    join_adds_a_user_once_at_the_end(Limits::default());
    join_refusals_change_nothing(Limits::default());
    leave_is_idempotent_and_passes_ownership_on(Limits::default());
    leaving_frees_a_place(Limits::default());
}

/// The group as the store has it now.
async fn get(store: &dyn Store, id: &GroupId) -> Group {
    Groups::get(store, id).await.unwrap().expect("group exists")
}

/// The ids of `user`'s groups, as `of_user` lists them.
async fn groups_of(store: &dyn Store, user: &UserId) -> Vec<GroupId> {
    let groups = store.of_user(user).await.unwrap();
    groups.into_iter().map(|g| g.id).collect()
}

/// A created group reads back as given (owner, members in order); an unknown one is absent;
/// each member's groups list it, sorted by id, and nobody else's does.
async fn create_then_get_and_list(store: &dyn Store) {
    let (ann, ben, cid) = (user("ann"), user("ben"), user("cid"));
    let created = Group {
        id: GroupId::parse(uid("b")).unwrap(),
        name: "Team".into(),
        owner: ann.clone(),
        members: vec![ann.clone(), ben.clone()],
        admins: Vec::new(),
        topic: None,
        visibility: Default::default(),
    };
    assert_eq!(store.create(created.clone()).await.unwrap(), created);
    assert_eq!(get(store, &created.id).await, created);
    let unknown = GroupId::parse(uid("none")).unwrap();
    assert_eq!(Groups::get(store, &unknown).await.unwrap(), None);

    // A second group whose id sorts first: lists are in id order.
    let first = Group {
        id: GroupId::parse(uid("a")).unwrap(),
        name: "First".into(),
        owner: ben.clone(),
        members: vec![ben.clone()],
        admins: Vec::new(),
        topic: None,
        visibility: Default::default(),
    };
    store.create(first.clone()).await.unwrap();
    assert_eq!(
        store.of_user(&ben).await.unwrap(),
        vec![first.clone(), created.clone()]
    );
    assert_eq!(groups_of(store, &ann).await, [created.id]);
    assert!(groups_of(store, &cid).await.is_empty());
    // Counts follow the lists, in the order asked, unknown users at 0.
    assert_eq!(
        store
            .counts(&[ben.clone(), cid.clone(), ann.clone()])
            .await
            .unwrap(),
        [2, 0, 1]
    );
    assert!(store.counts(&[]).await.unwrap().is_empty());
    store.leave(&first.id, &ben).await.unwrap();
    assert_eq!(store.counts(&[ben]).await.unwrap(), [1]);
}

/// Joining adds the user after the others and says so; joining again changes nothing and
/// says it did not add; the group's messages then count the new member.
async fn join_adds_a_user_once_at_the_end(store: &dyn Store) {
    let (ann, ben, cid) = (user("ann"), user("ben"), user("cid"));
    let id = group(store, &[ann.clone(), ben.clone()]).await;
    let (joined, added) = store.join(&id, &cid, 10, 10).await.unwrap().unwrap();
    assert!(added);
    assert_eq!(joined.members, [ann.clone(), ben.clone(), cid.clone()]);
    assert_eq!(joined.owner, ann);
    assert_eq!(joined, get(store, &id).await);
    let (again, added) = store.join(&id, &cid, 10, 10).await.unwrap().unwrap();
    assert!(!added, "already a member");
    assert_eq!(again, joined);
    assert_eq!(groups_of(store, &cid).await, std::slice::from_ref(&id));
    let conv = ConversationId::Group(id);
    let sent = store.append(message(&conv, &cid, None), &[]).await.unwrap();
    assert!(
        matches!(sent, Appended::New { audience: 3, .. }),
        "{sent:?}"
    );
}

/// Joining an unknown group, a full group, or one group too many is refused and changes
/// nothing; a member of a full group still "joins" (nothing to add); fullness is checked
/// before the user's group count.
async fn join_refusals_change_nothing(store: &dyn Store) {
    let (ann, ben, cid) = (user("ann"), user("ben"), user("cid"));
    let unknown = GroupId::parse(uid("none")).unwrap();
    let refused = store.join(&unknown, &cid, 10, 10).await.unwrap();
    assert_eq!(refused, Err(GroupRefusal::NotFound));
    assert_eq!(Groups::get(store, &unknown).await.unwrap(), None);

    let pair = group(store, &[ann.clone(), ben.clone()]).await;
    let before = get(store, &pair).await;
    let full = store.join(&pair, &cid, 2, 10).await.unwrap();
    assert_eq!(full, Err(GroupRefusal::Full));
    assert_eq!(get(store, &pair).await, before);
    assert!(groups_of(store, &cid).await.is_empty());
    let member = store.join(&pair, &ben, 2, 0).await.unwrap();
    assert_eq!(
        member,
        Ok((before.clone(), false)),
        "members are not refused"
    );

    // cid is in one group: a limit of one group refuses a second; a full group says full.
    let own = group(store, std::slice::from_ref(&cid)).await;
    let too_many = store.join(&pair, &cid, 10, 1).await.unwrap();
    assert_eq!(too_many, Err(GroupRefusal::TooManyGroups));
    assert_eq!(get(store, &pair).await, before);
    assert_eq!(groups_of(store, &cid).await, [own]);
    let both = store.join(&pair, &cid, 2, 1).await.unwrap();
    assert_eq!(both, Err(GroupRefusal::Full), "size is checked first");
}

/// Leaving says whether the user was a member (of an existing group); the owner's leaving
/// makes the longest-standing member the owner, a rejoined user counting from the rejoin;
/// the last member's leaving leaves an empty group that can be joined again.
async fn leave_is_idempotent_and_passes_ownership_on(store: &dyn Store) {
    let (ann, ben, cid, dan) = (user("ann"), user("ben"), user("cid"), user("dan"));
    let id = group(store, &[ann.clone(), ben.clone(), cid.clone()]).await;
    let unknown = GroupId::parse(uid("none")).unwrap();
    assert!(!store.leave(&unknown, &ann).await.unwrap(), "no such group");
    assert!(!store.leave(&id, &dan).await.unwrap(), "not a member");

    // ben leaves and rejoins: now he is the newest member.
    assert!(store.leave(&id, &ben).await.unwrap());
    assert!(!store.leave(&id, &ben).await.unwrap(), "left already");
    assert!(groups_of(store, &ben).await.is_empty());
    store.join(&id, &ben, 10, 10).await.unwrap().unwrap();
    assert_eq!(
        get(store, &id).await.members,
        [ann.clone(), cid.clone(), ben.clone()]
    );

    assert!(store.leave(&id, &ann).await.unwrap());
    let g = get(store, &id).await;
    assert_eq!(
        (g.owner, g.members),
        (cid.clone(), vec![cid.clone(), ben.clone()])
    );
    assert!(
        store.leave(&id, &ben).await.unwrap(),
        "not the owner: owner stays"
    );
    assert_eq!(get(store, &id).await.owner, cid);
    assert!(store.leave(&id, &cid).await.unwrap());
    assert!(get(store, &id).await.members.is_empty());
    let (g, added) = store.join(&id, &dan, 10, 10).await.unwrap().unwrap();
    assert!(added);
    assert_eq!(g.members, [dan]);
}

/// A member who leaves frees a place in a full group and in their own group count; a
/// former member can no longer post to the group.
async fn leaving_frees_a_place(store: &dyn Store) {
    let (ann, ben, cid) = (user("ann"), user("ben"), user("cid"));
    let id = group(store, &[ann.clone(), ben.clone()]).await;
    let other = group(store, std::slice::from_ref(&cid)).await;
    assert_eq!(
        store.join(&id, &cid, 2, 10).await.unwrap(),
        Err(GroupRefusal::Full)
    );
    assert!(store.leave(&id, &ben).await.unwrap());
    assert_eq!(
        store.join(&id, &cid, 2, 1).await.unwrap(),
        Err(GroupRefusal::TooManyGroups)
    );
    assert!(store.leave(&other, &cid).await.unwrap());
    let (g, added) = store.join(&id, &cid, 2, 1).await.unwrap().unwrap();
    assert!(added);
    assert_eq!(g.members, [ann, cid]);
    let conv = ConversationId::Group(id);
    let refused = store.append(message(&conv, &ben, None), &[]).await.unwrap();
    assert_eq!(
        refused,
        Appended::Refused(chat_core::store::Refusal::NotMember)
    );
}
