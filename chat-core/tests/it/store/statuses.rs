//! [`Statuses`]: a user's status and text, and their idle devices.

use chat_core::{Limits, protocol::Status, store::StatusRecord};

use super::{Store, user};

super::on_both_stores! {
    statuses_and_idle_devices(Limits::default());
}

/// A status and text are kept until changed; idle devices are counted once each, forgotten
/// one by one or all at once; users are answered in order, unknown ones as available.
async fn statuses_and_idle_devices(store: &dyn Store) {
    let (ann, ben) = (user("ann"), user("ben"));
    let both = [ann.clone(), ben.clone()];
    assert_eq!(
        store.statuses(&both).await.unwrap(),
        [StatusRecord::default(), StatusRecord::default()]
    );
    store
        .set_status(&ann, Status::Away, Some("lunch"))
        .await
        .unwrap();
    for socket in ["s1", "s2", "s2"] {
        store.set_device_idle(&ann, socket, true).await.unwrap();
    }
    let away = StatusRecord {
        status: Status::Away,
        text: Some("lunch".into()),
        idle_devices: 2,
    };
    assert_eq!(
        store.statuses(&both).await.unwrap(),
        [away.clone(), StatusRecord::default()]
    );
    store.set_device_idle(&ann, "s1", false).await.unwrap();
    store.set_status(&ann, Status::Busy, None).await.unwrap();
    let got = store.statuses(std::slice::from_ref(&ann)).await.unwrap();
    assert_eq!(
        got[0],
        StatusRecord {
            status: Status::Busy,
            text: None,
            idle_devices: 1,
        }
    );
    store.forget_devices(&ann).await.unwrap();
    let got = store.statuses(std::slice::from_ref(&ann)).await.unwrap();
    assert_eq!(got[0].idle_devices, 0);
    assert_eq!(got[0].status, Status::Busy, "the status stays");
}
