//! [`Bans`](chat_core::store::Bans) and the system sender: what the server API stores.

use chat_core::{
    Limits,
    protocol::{ConversationId, GroupId, UserId, now_ms},
    store::{Appended, Refusal},
};

use super::{Store, group, message, say, user};

super::on_both_stores! {
    a_ban_runs_until_its_end_and_a_new_one_replaces_it(Limits::default());
    the_system_sender_posts_to_users_and_existing_groups(Limits::default());
}

async fn a_ban_runs_until_its_end_and_a_new_one_replaces_it(store: &dyn Store) {
    let (ann, ben) = (user("ann"), user("ben"));
    let now = now_ms();
    assert_eq!(store.banned_until(&ann, now).await.unwrap(), None);
    store.ban(&ann, now + 60_000).await.unwrap();
    assert_eq!(
        store.banned_until(&ann, now).await.unwrap(),
        Some(now + 60_000)
    );
    assert_eq!(
        store.banned_until(&ben, now).await.unwrap(),
        None,
        "one user only"
    );
    // Asked as of after its end, the ban is over.
    assert_eq!(store.banned_until(&ann, now + 60_001).await.unwrap(), None);
    // A new ban replaces the old one, shorter or longer.
    store.ban(&ann, now + 30_000).await.unwrap();
    assert_eq!(
        store.banned_until(&ann, now).await.unwrap(),
        Some(now + 30_000)
    );
    store.ban(&ann, now + 90_000).await.unwrap();
    assert_eq!(
        store.banned_until(&ann, now).await.unwrap(),
        Some(now + 90_000)
    );
}

async fn the_system_sender_posts_to_users_and_existing_groups(store: &dyn Store) {
    let (ann, ben) = (user("ann"), user("ben"));
    let system = UserId::system();
    let dm = ConversationId::dm(&system, &ann);
    assert_eq!(dm.to_string(), format!("dm:@system:{ann}"));
    let m = say(store, &dm, &system, "welcome").await;
    assert_eq!((m.from.as_str(), m.body.as_str()), ("@system", "welcome"));
    // Into a group it is not a member of, as long as the group exists.
    let g = group(store, &[ann.clone(), ben.clone()]).await;
    let conv = ConversationId::Group(g);
    let m = say(store, &conv, &system, "maintenance tonight").await;
    assert_eq!(m.from, system);
    let missing = ConversationId::Group(GroupId::parse(crate::helpers::uid("none")).unwrap());
    match store
        .append(message(&missing, &system, None), &[])
        .await
        .unwrap()
    {
        Appended::Refused(Refusal::NoGroup) => {}
        other => panic!("posted to a missing group: {other:?}"),
    }
}
