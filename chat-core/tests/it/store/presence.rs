//! [`Presence`]: devices per user, `lastSeen`, and a dead node's sockets.

use chat_core::{Limits, protocol::PresenceState, store::Presence};
use socketioxide_core::Uid;

use super::{LEASE_FOREVER, Store, fresh_prefix, redis_node, user};
use crate::helpers::RedisServer;

super::on_both_stores! {
    online_until_the_last_device_leaves(Limits::default());
    connecting_a_socket_again_is_not_a_first_device(Limits::default());
    presence_answers_per_user_in_order(Limits::default());
    losing_an_unknown_node_changes_nothing(Limits::default());
}

const OFFLINE: PresenceState = PresenceState {
    online: false,
    last_seen: None,
};

fn state(online: bool, last_seen: Option<u64>) -> PresenceState {
    PresenceState { online, last_seen }
}

/// The first socket of a user says "first", later ones do not; the user stays online until
/// the last one leaves, which alone sets `lastSeen`; leaving with an unknown socket, or
/// twice, does nothing; `lastSeen` stays while the user is back online.
async fn online_until_the_last_device_leaves(store: &dyn Store) {
    let ann = user("ann");
    let me = std::slice::from_ref(&ann);
    assert_eq!(Presence::get(store, me).await.unwrap(), [OFFLINE]);
    assert!(store.connect(&ann, "s1").await.unwrap());
    assert!(!store.connect(&ann, "s2").await.unwrap());
    assert_eq!(Presence::get(store, me).await.unwrap(), [state(true, None)]);
    assert_eq!(store.disconnect(&ann, "s1", 100).await.unwrap(), None);
    assert_eq!(store.disconnect(&ann, "s9", 110).await.unwrap(), None);
    assert_eq!(Presence::get(store, me).await.unwrap(), [state(true, None)]);
    assert_eq!(store.disconnect(&ann, "s2", 120).await.unwrap(), Some(120));
    assert_eq!(store.disconnect(&ann, "s2", 130).await.unwrap(), None);
    assert_eq!(
        Presence::get(store, me).await.unwrap(),
        [state(false, Some(120))]
    );
    assert!(store.connect(&ann, "s3").await.unwrap(), "first again");
    assert_eq!(
        Presence::get(store, me).await.unwrap(),
        [state(true, Some(120))]
    );
    assert_eq!(store.disconnect(&ann, "s3", 140).await.unwrap(), Some(140));
    let ben = user("ben");
    assert_eq!(
        store.disconnect(&ben, "s1", 150).await.unwrap(),
        None,
        "never seen"
    );
}

/// A socket recorded twice is still one device: the second connect is not the user's
/// first, and one disconnect takes the user offline.
async fn connecting_a_socket_again_is_not_a_first_device(store: &dyn Store) {
    let ann = user("ann");
    assert!(store.connect(&ann, "s1").await.unwrap());
    assert!(!store.connect(&ann, "s1").await.unwrap(), "already online");
    assert_eq!(store.disconnect(&ann, "s1", 7).await.unwrap(), Some(7));
    let now = Presence::get(store, std::slice::from_ref(&ann))
        .await
        .unwrap();
    assert_eq!(now, [state(false, Some(7))]);
}

/// `get` answers one state per user asked, in the order asked (repeats included); users
/// never seen are offline with no `lastSeen`; sockets are per user.
async fn presence_answers_per_user_in_order(store: &dyn Store) {
    let (ann, ben, cid) = (user("ann"), user("ben"), user("cid"));
    assert!(Presence::get(store, &[]).await.unwrap().is_empty());
    assert!(store.connect(&ann, "s1").await.unwrap());
    assert!(
        store.connect(&ben, "s1").await.unwrap(),
        "same socket name, other user"
    );
    assert_eq!(store.disconnect(&ben, "s1", 50).await.unwrap(), Some(50));
    let asked = [cid.clone(), ben.clone(), ann.clone(), ben.clone()];
    let want = [
        OFFLINE,
        state(false, Some(50)),
        state(true, None),
        state(false, Some(50)),
    ];
    assert_eq!(Presence::get(store, &asked).await.unwrap(), want);
}

/// Losing a node that held none of the users' sockets returns nobody, twice, and every
/// user keeps their presence.
async fn losing_an_unknown_node_changes_nothing(store: &dyn Store) {
    let ann = user("ann");
    assert!(store.connect(&ann, "s1").await.unwrap());
    let dead = Uid::new().to_string();
    assert!(store.node_lost(&dead, 10).await.unwrap().is_empty());
    assert!(store.node_lost(&dead, 20).await.unwrap().is_empty());
    let now = Presence::get(store, std::slice::from_ref(&ann))
        .await
        .unwrap();
    assert_eq!(now, [state(true, None)]);
}

/// Two nodes share presence on Redis: when one dies, `node_lost` forgets its sockets and
/// returns, with `lastSeen`, only the users left with no device (once); users with a device
/// on the live node stay online.
#[tokio::test]
async fn node_lost_forgets_the_dead_nodes_sockets() {
    let server = RedisServer::start().await;
    let prefix = fresh_prefix();
    let limits = Limits::default();
    let (live_uid, dead_uid) = (Uid::new(), Uid::new());
    let live = redis_node(&server, &prefix, &limits, live_uid, LEASE_FOREVER).await;
    let dead = redis_node(&server, &prefix, &limits, dead_uid, LEASE_FOREVER).await;
    let (ann, ben) = (user("ann"), user("ben"));
    assert!(dead.connect(&ann, "a1").await.unwrap());
    assert!(dead.connect(&ben, "b1").await.unwrap());
    assert!(
        !live.connect(&ben, "b2").await.unwrap(),
        "ben's second device"
    );
    let gone = live.node_lost(&dead_uid.to_string(), 500).await.unwrap();
    assert_eq!(gone, [(ann.clone(), 500)]);
    assert!(
        live.node_lost(&dead_uid.to_string(), 600)
            .await
            .unwrap()
            .is_empty()
    );
    let both = Presence::get(&live, &[ann.clone(), ben.clone()])
        .await
        .unwrap();
    assert_eq!(both, [state(false, Some(500)), state(true, None)]);
    assert_eq!(
        live.disconnect(&ben, "b1", 700).await.unwrap(),
        None,
        "forgotten"
    );
    assert_eq!(live.disconnect(&ben, "b2", 800).await.unwrap(), Some(800));
}

/// On Redis a socket counts only while its node's lease runs: a node whose lease ended
/// holds nobody online even before `node_lost`, and a user's next socket is a first again.
#[tokio::test]
async fn sockets_of_a_node_whose_lease_ended_do_not_count() {
    let server = RedisServer::start().await;
    let prefix = fresh_prefix();
    let limits = Limits::default();
    let expired = redis_node(&server, &prefix, &limits, Uid::new(), 1).await;
    let live = redis_node(&server, &prefix, &limits, Uid::new(), LEASE_FOREVER).await;
    let ann = user("ann");
    expired.connect(&ann, "a1").await.unwrap();
    let now = Presence::get(&live, std::slice::from_ref(&ann))
        .await
        .unwrap();
    assert_eq!(now, [OFFLINE]);
    assert!(live.connect(&ann, "a2").await.unwrap());
}
