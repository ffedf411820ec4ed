use serde_json::json;

use crate::helpers::*;

/// The sender learns when a device of the recipient got the message, and when it was read.
#[tokio::test]
async fn delivered_then_read() {
    let srv = TestServer::start().await;
    let (a, b) = (uid("alice"), uid("bob"));
    let mut ca = srv.client(&a).await;
    let cb = srv.client(&b).await;
    let m = ok(ca.ack("message:send", json!({"to": b, "body": "hi"})).await)["message"].clone();
    cb.event("message", |_| true).await;
    let r = ca.event("receipt", |v| v["status"] == "delivered").await;
    assert_eq!(
        r,
        json!({"conversation": m["conversation"], "user": b, "messageId": m["id"], "status": "delivered"})
    );
    let mut cb = cb;
    ok(cb
        .ack(
            "read",
            json!({"conversation": m["conversation"], "messageId": m["id"]}),
        )
        .await);
    let r = ca.event("receipt", |v| v["status"] == "read").await;
    assert_eq!(r["messageId"], m["id"]);
    // Reading the same again sends nothing new.
    ok(cb
        .ack(
            "read",
            json!({"conversation": m["conversation"], "messageId": m["id"]}),
        )
        .await);
    ca.barrier().await;
    assert!(ca.received("receipt").is_empty());
}

/// A recipient that was offline confirms delivery by syncing; receipts are cumulative.
#[tokio::test]
async fn sync_counts_as_delivered() {
    let srv = TestServer::start().await;
    let (a, b) = (uid("alice"), uid("bob"));
    let mut ca = srv.client(&a).await;
    ok(ca.ack("message:send", json!({"to": b, "body": "1"})).await);
    let m2 = ok(ca.ack("message:send", json!({"to": b, "body": "2"})).await)["message"].clone();
    let mut cb = srv.client(&b).await.without_delivery_acks();
    ok(cb.ack("sync", json!({})).await);
    let r = ca.event("receipt", |_| true).await;
    assert_eq!(
        (&r["messageId"], &r["status"]),
        (&m2["id"], &json!("delivered"))
    );
}

/// A device that does not ack `message` produces no delivered receipt.
#[tokio::test]
async fn no_ack_no_delivered() {
    let srv = TestServer::start().await;
    let (a, b) = (uid("alice"), uid("bob"));
    let mut ca = srv.client(&a).await;
    let mut cb = srv.client(&b).await.without_delivery_acks();
    ok(ca.ack("message:send", json!({"to": b, "body": "1"})).await);
    cb.event("message", |_| true).await;
    cb.barrier().await;
    ca.barrier().await;
    assert!(ca.received("receipt").is_empty());
}

/// In a group each member's device confirms what it got: the sender hears once per member.
/// A member whose device did not confirm a message confirms it when it fetches it (`sync`),
/// not when it confirms a later message of someone else. (store/sync.rs checks the marks.)
#[tokio::test]
async fn group_receipts_come_from_what_each_member_got() {
    let srv = TestServer::start().await;
    let (o, a, b, c) = (uid("owner"), uid("ann"), uid("ben"), uid("cid"));
    let mut co = srv.client(&o).await;
    let ca = srv.client(&a).await;
    let cb = srv.client(&b).await;
    let cc = srv.client(&c).await.without_delivery_acks();
    let group = ok(co
        .ack("group:create", json!({"name": "g", "members": [a, b, c]}))
        .await)["group"]["id"]
        .clone();
    let m1 = ok(co
        .ack("message:send", json!({"group": group, "body": "one"}))
        .await)["message"]
        .clone();
    for client in [&ca, &cb, &cc] {
        client.event("message", |v| v["id"] == m1["id"]).await;
    }
    let mut confirmed = std::collections::BTreeSet::new();
    while confirmed.len() < 2 {
        let r = co.event("receipt", |_| true).await;
        assert_eq!(
            (&r["messageId"], &r["status"]),
            (&m1["id"], &json!("delivered"))
        );
        assert!(
            confirmed.insert(r["user"].as_str().unwrap().to_owned()),
            "{r}"
        );
    }
    assert_eq!(confirmed, [a.clone(), b.clone()].into());

    // cid comes back on a device that confirms; ann's message reaches three devices that do.
    drop(cc);
    let mut cc = srv.client(&c).await;
    let mut ca = ca;
    let m2 = ok(ca
        .ack("message:send", json!({"group": group, "body": "two"}))
        .await)["message"]
        .clone();
    for client in [&co, &cb, &cc] {
        client.event("message", |v| v["id"] == m2["id"]).await;
    }
    let mut confirmed = std::collections::BTreeSet::new();
    while confirmed.len() < 3 {
        let r = ca.event("receipt", |_| true).await;
        assert_eq!(
            (&r["messageId"], &r["status"]),
            (&m2["id"], &json!("delivered"))
        );
        assert!(
            confirmed.insert(r["user"].as_str().unwrap().to_owned()),
            "{r}"
        );
    }
    co.barrier().await;
    assert!(
        co.received("receipt").is_empty(),
        "cid never got m1 on a device"
    );

    // cid's device fetches what it missed: now the owner hears that cid has m1.
    let unread = ok(cc.ack("sync", json!({})).await);
    assert!(
        unread["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == m1["id"])
    );
    let late = co.event("receipt", |_| true).await;
    assert_eq!(
        late,
        json!({"conversation": m1["conversation"], "user": c, "messageId": m1["id"], "status": "delivered"})
    );
    co.barrier().await;
    assert!(
        co.received("receipt").is_empty(),
        "{:?}",
        co.received("receipt")
    );
}

/// With receipts off (`CHAT_RECEIPTS=false`) nobody hears of deliveries or reads, in DMs or
/// groups, and unread counts still follow read marks.
#[tokio::test]
async fn receipts_can_be_off() {
    let srv = TestServer::with(|c| c.limits.receipts = false).await;
    let (a, b) = (uid("alice"), uid("bob"));
    let mut ca = srv.client(&a).await;
    let mut cb = srv.client(&b).await;
    let group = ok(ca
        .ack("group:create", json!({"name": "g", "members": [b]}))
        .await)["group"]["id"]
        .clone();
    let dm = ok(ca.ack("message:send", json!({"to": b, "body": "1"})).await)["message"].clone();
    let gm = ok(ca
        .ack("message:send", json!({"group": group, "body": "2"}))
        .await)["message"]
        .clone();
    for m in [&dm, &gm] {
        cb.event("message", |v| v["id"] == m["id"]).await;
        ok(cb
            .ack(
                "read",
                json!({"conversation": m["conversation"], "messageId": m["id"]}),
            )
            .await);
    }
    ok(cb.ack("sync", json!({})).await);
    let list = ok(cb.ack("conversations", json!({})).await)["conversations"].clone();
    assert!(
        list.as_array().unwrap().iter().all(|c| c["unread"] == 0),
        "{list}"
    );
    cb.barrier().await;
    ca.barrier().await;
    assert!(
        ca.received("receipt").is_empty(),
        "{:?}",
        ca.received("receipt")
    );
}

/// Typing reaches the other participants, never non-members, and is throttled.
#[tokio::test]
async fn typing_reaches_participants_only() {
    let srv = TestServer::start().await;
    let (a, b, c) = (uid("alice"), uid("bob"), uid("carol"));
    let mut ca = srv.client(&a).await;
    let mut cb = srv.client(&b).await;
    let mut cc = srv.client(&c).await;
    let conv =
        ok(ca.ack("message:send", json!({"to": b, "body": "hi"})).await)["message"]["conversation"]
            .clone();
    ca.emit("typing", json!({"conversation": conv, "typing": true}));
    let t = cb.event("typing", |_| true).await;
    assert_eq!(t, json!({"conversation": conv, "user": a, "typing": true}));

    let gid = ok(ca
        .ack("group:create", json!({"name": "g", "members": [b]}))
        .await)["group"]["id"]
        .clone();
    let gconv = format!("group:{}", gid.as_str().unwrap());
    cc.emit("typing", json!({"conversation": gconv, "typing": true}));
    cc.emit("typing", json!({"conversation": conv, "typing": true}));
    cc.emit("typing", json!("garbage"));
    ca.emit("typing", json!({"conversation": gconv, "typing": false}));
    cb.event("typing", |v| {
        v["conversation"] == gconv.as_str() && v["typing"] == false
    })
    .await;
    cc.barrier().await;
    ca.barrier().await;
    cb.barrier().await;
    assert!(
        cb.received("typing").is_empty(),
        "a non-member's typing leaked: {:?}",
        cb.received("typing")
    );
    assert!(
        ca.received("typing").is_empty(),
        "typing echoed to its sender"
    );

    // A burst is cut to the throttle's size.
    for _ in 0..30 {
        ca.emit("typing", json!({"conversation": conv, "typing": true}));
    }
    ca.barrier().await;
    cb.barrier().await;
    let got = cb.received("typing").len();
    assert!(
        (1..=5).contains(&got),
        "{got} typing events passed the throttle"
    );
}
