//! Contacts: requests and answers, the roster and the `contact` event; presence visibility
//! `contacts` (a non-contact learns nothing), on one node and across two.

use chat_core::{Config, config::PresenceVisibility};
use serde_json::{Value, json};

use crate::helpers::*;

fn contacts_only(c: &mut Config) {
    c.presence_visibility = PresenceVisibility::Contacts;
}

async fn roster(c: &mut Client) -> Value {
    ok(c.ack("contacts", json!({})).await)["contacts"].clone()
}

/// `a` asks `b` (on `cb`) and `b` accepts: they are contacts.
async fn befriend(ca: &mut Client, cb: &mut Client, b: &str) {
    let a = ok(ca.ack("contacts:request", json!({"user": b})).await);
    assert_eq!(a["state"], "outgoing");
    let from = cb.event("contact", |e| e["state"] == "incoming").await["user"].clone();
    ok(cb.ack("contacts:accept", json!({"user": from})).await);
    ca.event("contact", |e| e["user"] == b && e["state"] == "contact")
        .await;
}

/// A request reaches every device of both users; accepting makes them contacts, each told
/// with the other's presence.
#[tokio::test]
async fn a_request_accepted() {
    let srv = TestServer::start().await;
    let (a, b) = (uid("alice"), uid("bob"));
    let mut a1 = srv.client(&a).await;
    let a2 = srv.client(&a).await;
    let mut b1 = srv.client(&b).await;
    let res = ok(a1.ack("contacts:request", json!({"user": b})).await);
    assert_eq!(res["state"], "outgoing");
    let told = b1.event("contact", |_| true).await;
    assert_eq!(told, json!({"user": a, "state": "incoming"}));
    let told = a2.event("contact", |_| true).await;
    assert_eq!(told, json!({"user": b, "state": "outgoing"}));
    assert_eq!(
        roster(&mut a1).await,
        json!([{"user": b, "state": "outgoing"}])
    );
    assert_eq!(
        roster(&mut b1).await,
        json!([{"user": a, "state": "incoming"}])
    );
    let again = ok(a1.ack("contacts:request", json!({"user": b})).await);
    assert_eq!(again["state"], "outgoing", "asking twice is one request");

    ok(b1.ack("contacts:accept", json!({"user": a})).await);
    let online = json!({"online": true, "lastSeen": null});
    let told = a2.event("contact", |e| e["state"] == "contact").await;
    assert_eq!(
        told,
        json!({"user": b, "state": "contact", "presence": online})
    );
    let told = b1.event("contact", |e| e["state"] == "contact").await;
    assert_eq!(
        told,
        json!({"user": a, "state": "contact", "presence": online})
    );
    let entry = json!([{"user": b, "state": "contact", "presence": online}]);
    assert_eq!(roster(&mut a1).await, entry);
    ok(b1.ack("contacts:accept", json!({"user": a})).await);
    let again = ok(b1.ack("contacts:request", json!({"user": a})).await);
    assert_eq!(again["state"], "contact");
    assert_eq!(roster(&mut a1).await, entry, "nothing changed");
}

/// Declining, withdrawing and removing clear both rosters and tell both users; two users
/// who ask each other are contacts.
#[tokio::test]
async fn decline_withdraw_remove_and_mutual_requests() {
    let srv = TestServer::start().await;
    let (a, b) = (uid("alice"), uid("bob"));
    let mut ca = srv.client(&a).await;
    let mut cb = srv.client(&b).await;
    let none = |u: &str| json!({"user": u, "state": "none"});

    ok(ca.ack("contacts:request", json!({"user": b})).await);
    ok(cb.ack("contacts:decline", json!({"user": a})).await);
    assert_eq!(
        ca.event("contact", |e| e["state"] == "none").await,
        none(&b)
    );
    assert_eq!(roster(&mut ca).await, json!([]));
    assert_eq!(roster(&mut cb).await, json!([]));
    for answer in ["contacts:decline", "contacts:accept"] {
        assert_code(&cb.ack(answer, json!({"user": a})).await, "not_found");
    }

    ok(ca.ack("contacts:request", json!({"user": b})).await);
    ok(ca.ack("contacts:remove", json!({"user": b})).await);
    assert_eq!(
        cb.event("contact", |e| e["state"] == "none").await,
        none(&a)
    );
    assert_eq!(roster(&mut cb).await, json!([]), "the request is withdrawn");
    assert_code(
        &cb.ack("contacts:accept", json!({"user": a})).await,
        "not_found",
    );

    ok(cb.ack("contacts:request", json!({"user": a})).await);
    let res = ok(ca.ack("contacts:request", json!({"user": b})).await);
    assert_eq!(res["state"], "contact", "asking back accepts");
    assert_eq!(roster(&mut cb).await[0]["state"], "contact");

    ok(cb.ack("contacts:remove", json!({"user": a})).await);
    assert_eq!(
        ca.event("contact", |e| e["state"] == "none").await,
        none(&b)
    );
    assert_eq!(roster(&mut ca).await, json!([]));
    assert_eq!(roster(&mut cb).await, json!([]));
    ok(cb.ack("contacts:remove", json!({"user": a})).await);
}

/// Bad input is refused with its code; blocked users cannot ask, and a block ends a contact.
#[tokio::test]
async fn refusals_and_blocks() {
    let srv = TestServer::start().await;
    let (a, b, c, d) = (uid("alice"), uid("bob"), uid("carol"), uid("dave"));
    let mut ca = srv.client(&a).await;
    for event in [
        "contacts:request",
        "contacts:accept",
        "contacts:decline",
        "contacts:remove",
    ] {
        assert_code(&ca.ack(event, json!({"user": a})).await, "bad_request");
        assert_code(&ca.ack(event, json!({})).await, "bad_request");
        assert_code(&ca.ack(event, json!({"user": "a b"})).await, "bad_request");
        assert_code(
            &ca.ack(event, json!({"user": b, "x": 1})).await,
            "bad_request",
        );
    }
    for bad in [
        json!({"limit": 0}),
        json!({"limit": 101}),
        json!({"after": 3}),
    ] {
        assert_code(&ca.ack("contacts", bad).await, "bad_request");
    }

    let mut cb = srv.client(&b).await;
    ok(cb.ack("block", json!({"user": a})).await);
    assert_code(
        &ca.ack("contacts:request", json!({"user": b})).await,
        "forbidden",
    );
    ok(ca.ack("block", json!({"user": c})).await);
    assert_code(
        &ca.ack("contacts:request", json!({"user": c})).await,
        "forbidden",
    );
    assert_eq!(roster(&mut cb).await, json!([]), "no request got through");

    let mut cd = srv.client(&d).await;
    befriend(&mut ca, &mut cd, &d).await;
    ok(cd.ack("block", json!({"user": a})).await);
    let gone = ca.event("contact", |e| e["state"] == "none").await;
    assert_eq!(gone, json!({"user": d, "state": "none"}));
    assert_eq!(roster(&mut ca).await, json!([]));
    assert_eq!(roster(&mut cd).await, json!([]));
}

/// A roster holds `contacts_per_user` entries, the other's roster too; pages follow the
/// user order; requests have a rate of their own.
#[tokio::test]
async fn caps_pages_and_request_rate() {
    let srv = TestServer::with(|c| {
        c.limits.contacts_per_user = 3;
        c.limits.contact_request_rate = chat_core::config::Rate::new(0.001, 4);
    })
    .await;
    let a = uid("alice");
    let mut ca = srv.client(&a).await;
    let mut users: Vec<String> = (0..4).map(|i| uid(&format!("u{i}"))).collect();
    for u in &users[..3] {
        ok(ca.ack("contacts:request", json!({"user": u})).await);
    }
    assert_code(
        &ca.ack("contacts:request", json!({"user": users[3]})).await,
        "conflict",
    );
    assert_code(
        &ca.ack("contacts:request", json!({"user": users[3]})).await,
        "rate_limited",
    );
    users.truncate(3);
    users.sort();
    let page = ok(ca.ack("contacts", json!({"limit": 2})).await);
    let names = |p: &Value| -> Vec<String> {
        p["contacts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["user"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names(&page), users[..2]);
    assert_eq!(page["next"], users[1].as_str());
    let rest = ok(ca
        .ack("contacts", json!({"limit": 2, "after": page["next"]}))
        .await);
    assert_eq!(names(&rest), users[2..]);
    assert!(rest.get("next").is_none(), "{rest}");

    // users[0]'s roster holds alice's request; fill it, then a newcomer is refused.
    let mut full = srv.client(&users[0]).await;
    for i in 0..2 {
        ok(full
            .ack("contacts:request", json!({"user": uid(&format!("v{i}"))}))
            .await);
    }
    let late = uid("late");
    let mut cl = srv.client(&late).await;
    assert_code(
        &cl.ack("contacts:request", json!({"user": users[0]})).await,
        "conflict",
    );
    assert_eq!(
        roster(&mut cl).await,
        json!([]),
        "the refused request is undone"
    );
}

/// With visibility `contacts`, presence, `lastSeen` and DM typing reach contacts only: a
/// stranger with a DM, a shared group and a subscription learns nothing.
#[tokio::test]
async fn presence_reaches_contacts_only() {
    let srv = TestServer::with(contacts_only).await;
    let (a, b, c) = (uid("alice"), uid("bob"), uid("carol"));
    let mut ca = srv.client(&a).await;
    let mut cb = srv.client(&b).await;
    let mut cc = srv.client(&c).await;
    befriend(&mut ca, &mut cb, &b).await;
    let dm =
        ok(cc.ack("message:send", json!({"to": a, "body": "hi"})).await)["message"]["conversation"]
            .clone();
    ok(cc
        .ack("group:create", json!({"name": "g", "members": [a]}))
        .await);
    let snap = ok(cc.ack("presence:subscribe", json!({"users": [a, b]})).await);
    assert_eq!(snap["presence"], json!({}));
    assert_eq!(snap["hidden"], json!([a, b]));
    let snap = ok(cb.ack("presence:subscribe", json!({"users": [a, c]})).await);
    assert_eq!(snap["presence"][&a]["online"], true);
    assert_eq!(snap["hidden"], json!([c]));

    let to_b =
        ok(ca.ack("message:send", json!({"to": b, "body": "hi"})).await)["message"]["conversation"]
            .clone();
    ca.emit("typing", json!({"conversation": dm, "typing": true}));
    cc.emit("typing", json!({"conversation": dm, "typing": true}));
    ca.emit("typing", json!({"conversation": to_b, "typing": true}));
    cb.event("typing", |t| t["user"] == a.as_str()).await;
    cc.barrier().await;
    ca.barrier().await;
    assert!(
        cc.received("typing").is_empty(),
        "{:?}",
        cc.received("typing")
    );
    assert!(
        ca.received("typing").is_empty(),
        "{:?}",
        ca.received("typing")
    );

    drop(ca);
    let off = cb.event("presence", |p| p["user"] == a.as_str()).await;
    assert_eq!(off["online"], false);
    assert!(off["lastSeen"].as_u64().is_some(), "{off}");
    let _back = srv.client(&a).await;
    cb.event("presence", |p| {
        p["user"] == a.as_str() && p["online"] == true
    })
    .await;
    cc.barrier().await;
    assert!(
        cc.received("presence").is_empty(),
        "{:?}",
        cc.received("presence")
    );
    // Nor did b, a stranger to c, hear of c connecting (c has no contacts at all).
    cb.barrier().await;
    let heard = cb.received("presence");
    assert!(heard.iter().all(|p| p["user"] == a.as_str()), "{heard:?}");
    let seen = roster(&mut cb).await[0]["presence"].clone();
    assert_eq!(seen["online"], true);
    assert_eq!(seen["lastSeen"], off["lastSeen"]);
}

/// Everything above across two nodes on one Redis: requests, answers and presence reach
/// the other node's devices; the stranger on the contact's node still learns nothing.
#[tokio::test]
async fn contacts_across_nodes() {
    let redis = RedisServer::start().await;
    let prefix = chat_testing::prefix();
    let node = || {
        let settings = redis_settings(&redis.url(), &prefix);
        TestServer::with(move |c| {
            contacts_only(c);
            c.redis = Some(settings);
        })
    };
    let (n0, n1) = (node().await, node().await);
    let (a, b, c) = (uid("alice"), uid("bob"), uid("carol"));
    let mut ca = n0.client(&a).await;
    let mut cb = n1.client(&b).await;
    let mut cc = n1.client(&c).await;
    befriend(&mut ca, &mut cb, &b).await;
    ok(cc.ack("message:send", json!({"to": a, "body": "hi"})).await);
    let snap = ok(cc.ack("presence:subscribe", json!({"users": [a]})).await);
    assert_eq!(snap["hidden"], json!([a]));

    drop(ca);
    let off = cb.event("presence", |p| p["user"] == a.as_str()).await;
    assert_eq!(off["online"], false);
    let mut ca = n0.client(&a).await;
    cb.event("presence", |p| {
        p["user"] == a.as_str() && p["online"] == true
    })
    .await;
    cc.barrier().await;
    assert!(
        cc.received("presence").is_empty(),
        "{:?}",
        cc.received("presence")
    );
    let entry = roster(&mut ca).await;
    assert_eq!(entry[0]["user"], b.as_str());
    assert_eq!(entry[0]["presence"]["online"], true);

    ok(cb.ack("contacts:remove", json!({"user": a})).await);
    ca.event("contact", |e| {
        e["user"] == b.as_str() && e["state"] == "none"
    })
    .await;
    assert_eq!(roster(&mut ca).await, json!([]));
    let snap = ok(ca.ack("presence:subscribe", json!({"users": [b]})).await);
    assert_eq!(snap["hidden"], json!([b]), "no contact, no presence");
}
