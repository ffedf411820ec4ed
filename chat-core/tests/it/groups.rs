use serde_json::json;

use crate::helpers::*;

/// Creating, joining, leaving: members get the right events and only members take part.
#[tokio::test]
async fn group_lifecycle() {
    let srv = TestServer::start().await;
    let (a, b, c) = (uid("alice"), uid("bob"), uid("carol"));
    let mut ca = srv.client(&a).await;
    let mut cb = srv.client(&b).await;
    let mut cc = srv.client(&c).await;

    let group = ok(ca
        .ack(
            "group:create",
            json!({"name": " Team ", "members": [b, a, b]}),
        )
        .await)["group"]
        .clone();
    assert_eq!(group["name"], "Team");
    assert_eq!(group["owner"], a.as_str());
    assert_eq!(group["members"], json!([a, b]));
    let gid = group["id"].as_str().unwrap().to_owned();
    let joined = cb.event("group:member", |v| v["user"] == b.as_str()).await;
    assert_eq!(joined, json!({"group": gid, "user": b, "event": "joined"}));

    // A non-member is kept out of everything.
    let conv = format!("group:{gid}");
    assert_code(
        &cc.ack("message:send", json!({"group": gid, "body": "x"}))
            .await,
        "forbidden",
    );
    assert_code(
        &cc.ack("history", json!({"conversation": conv})).await,
        "forbidden",
    );
    assert_code(
        &cc.ack("group:members", json!({"group": gid})).await,
        "forbidden",
    );
    assert_code(
        &cc.ack("read", json!({"conversation": conv, "messageId": "1-0"}))
            .await,
        "forbidden",
    );

    // Anyone may join by id; members hear about it.
    let g = ok(cc.ack("group:join", json!({"group": gid})).await);
    assert_eq!(g["group"]["members"], json!([a, b, c]));
    ca.event("group:member", |v| {
        v["user"] == c.as_str() && v["event"] == "joined"
    })
    .await;
    ok(cc.ack("group:join", json!({"group": gid})).await);

    let sent = ok(cb
        .ack("message:send", json!({"group": gid, "body": "hello all"}))
        .await)["message"]
        .clone();
    assert_eq!(sent["conversation"], conv);
    assert_eq!(ca.event("message", |_| true).await, sent);
    assert_eq!(cc.event("message", |_| true).await, sent);

    // Leaving: announced, then nothing more arrives.
    ok(cc.ack("group:leave", json!({"group": gid})).await);
    ca.event("group:member", |v| {
        v["user"] == c.as_str() && v["event"] == "left"
    })
    .await;
    ok(cc.ack("group:leave", json!({"group": gid})).await);
    ok(ca
        .ack("message:send", json!({"group": gid, "body": "after"}))
        .await);
    cb.event("message", |v| v["body"] == "after").await;
    cc.barrier().await;
    assert!(cc.received("message").is_empty(), "a leaver still receives");
    let members = ok(cb.ack("group:members", json!({"group": gid})).await);
    assert_eq!(members["members"], json!([a, b]));

    // The owner leaving hands the group on.
    ok(ca.ack("group:leave", json!({"group": gid})).await);
    let g = ok(cc.ack("group:join", json!({"group": gid})).await);
    assert_eq!(g["group"]["owner"], b.as_str());
}

/// A member joining on one device is in the group on all of them.
#[tokio::test]
async fn joining_covers_every_device() {
    let srv = TestServer::start().await;
    let (a, b) = (uid("alice"), uid("bob"));
    let mut ca = srv.client(&a).await;
    let mut b1 = srv.client(&b).await;
    let b2 = srv.client(&b).await;
    let gid = ok(ca.ack("group:create", json!({"name": "G"})).await)["group"]["id"].clone();
    ok(b1.ack("group:join", json!({"group": gid})).await);
    ok(ca
        .ack("message:send", json!({"group": gid, "body": "to both"}))
        .await);
    b2.event("message", |v| v["body"] == "to both").await;
    // A device connecting later joins the group's room at connect.
    let b3 = srv.client(&b).await;
    ok(ca
        .ack("message:send", json!({"group": gid, "body": "later"}))
        .await);
    b3.event("message", |v| v["body"] == "later").await;
}

/// Group limits and bad input.
#[tokio::test]
async fn group_limits() {
    let srv = TestServer::with(|c| c.limits.max_group_size = 3).await;
    let (a, b, c, d) = (uid("a"), uid("b"), uid("c"), uid("d"));
    let mut ca = srv.client(&a).await;
    let mut cd = srv.client(&d).await;
    assert_code(
        &ca.ack("group:create", json!({"name": "   "})).await,
        "bad_request",
    );
    assert_code(
        &ca.ack("group:create", json!({"name": "n".repeat(101)}))
            .await,
        "too_large",
    );
    assert_code(
        &ca.ack("group:create", json!({"name": "x", "members": [b, c, d]}))
            .await,
        "too_large",
    );
    assert_code(
        &ca.ack("group:create", json!({"name": "x", "members": ["bad id"]}))
            .await,
        "bad_request",
    );
    assert_code(
        &ca.ack("group:create", json!({"members": [b]})).await,
        "bad_request",
    );
    let gid = ok(ca
        .ack("group:create", json!({"name": "x", "members": [b, c]}))
        .await)["group"]["id"]
        .clone();
    assert_code(
        &cd.ack("group:join", json!({"group": gid})).await,
        "conflict",
    );
    assert_code(
        &cd.ack("group:join", json!({"group": "missing"})).await,
        "not_found",
    );
    assert_code(
        &cd.ack("group:join", json!({"group": "bad.id"})).await,
        "bad_request",
    );
    assert_code(
        &cd.ack("group:members", json!({"group": "missing"})).await,
        "not_found",
    );
}

/// Others cannot push a user past the groups cap by naming them in `group:create`: the
/// create is refused with `conflict` naming that user, and the user can still create and join
/// groups up to the cap.
#[tokio::test]
async fn creating_groups_respects_every_members_cap() {
    let srv = TestServer::with(|c| {
        c.limits.groups_per_user = 2;
        c.limits.event_rate = chat_core::config::Rate::new(1000.0, 1000);
    })
    .await;
    let victim = uid("victim");
    let mut cv = srv.client(&victim).await;
    for i in 0..2 {
        let other = uid(&format!("other{i}"));
        let mut c = srv.client(&other).await;
        ok(
            c.ack("group:create", json!({"name": "g", "members": [victim]}))
                .await,
        );
    }
    let mut pusher = srv.client(&uid("pusher")).await;
    let refused = pusher
        .ack("group:create", json!({"name": "g", "members": [victim]}))
        .await;
    assert_code(&refused, "conflict");
    assert!(
        refused["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains(victim.as_str())),
        "{refused}"
    );
    // The pusher's own group was not created, and the victim is at the cap, not past it.
    assert_eq!(
        ok(pusher.ack("conversations", json!({})).await)["conversations"],
        json!([])
    );
    assert_code(
        &cv.ack("group:create", json!({"name": "mine"})).await,
        "conflict",
    );
    // Leaving frees a place for the victim's own group.
    let groups = ok(cv.ack("conversations", json!({})).await);
    let first = groups["conversations"][0]["id"]
        .as_str()
        .and_then(|c| c.strip_prefix("group:"))
        .unwrap()
        .to_owned();
    ok(cv.ack("group:leave", json!({"group": first})).await);
    ok(cv.ack("group:create", json!({"name": "mine"})).await);
}
