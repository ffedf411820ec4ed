//! Group roles and administration: `group:update`, `group:kick`, `group:promote`,
//! `group:demote`, `group:delete`, the events members get, on one node and across two.

use serde_json::{Value, json};

use crate::helpers::*;

/// A group of `owner` (on `co`) with `members`; its id.
async fn team(co: &mut Client, members: &[&str]) -> String {
    let g = ok(co
        .ack("group:create", json!({"name": "Team", "members": members}))
        .await);
    g["group"]["id"].as_str().unwrap().to_owned()
}

async fn updated(c: &Client, pred: impl Fn(&Value) -> bool) -> Value {
    c.event("group:updated", |e| pred(&e["group"])).await["group"].clone()
}

/// The owner promotes an admin, who renames the group and removes a member; members cannot;
/// admins cannot touch the owner or other admins; demoted, the admin can do no more.
#[tokio::test]
async fn owners_and_admins_manage_the_group() {
    let srv = TestServer::start().await;
    let (o, a, m, n) = (uid("olga"), uid("adam"), uid("mia"), uid("nils"));
    let mut co = srv.client(&o).await;
    let mut ca = srv.client(&a).await;
    let mut cm = srv.client(&m).await;
    let gid = team(&mut co, &[&a, &m, &n]).await;
    let g = |extra: Value| {
        let mut v = json!({"group": gid});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        v
    };

    let res = ok(co.ack("group:promote", g(json!({"user": a}))).await);
    assert_eq!(res["group"]["admins"], json!([a]));
    updated(&cm, |g| g["admins"] == json!([a])).await;

    let res = ok(ca
        .ack(
            "group:update",
            g(json!({"name": " Core ", "topic": "Q3 plans"})),
        )
        .await);
    assert_eq!(
        (&res["group"]["name"], &res["group"]["topic"]),
        (&json!("Core"), &json!("Q3 plans"))
    );
    let seen = updated(&cm, |g| g["name"] == "Core").await;
    assert_eq!(seen["topic"], "Q3 plans");

    for (event, extra) in [
        ("group:update", json!({"name": "Mine"})),
        ("group:kick", json!({"user": n})),
        ("group:promote", json!({"user": m})),
        ("group:delete", json!({})),
    ] {
        assert_code(&cm.ack(event, g(extra)).await, "forbidden");
    }
    assert_code(
        &ca.ack("group:promote", g(json!({"user": m}))).await,
        "forbidden",
    );
    assert_code(
        &ca.ack("group:kick", g(json!({"user": o}))).await,
        "forbidden",
    );
    assert_code(&ca.ack("group:delete", g(json!({}))).await, "forbidden");

    ok(ca.ack("group:kick", g(json!({"user": m}))).await);
    let removed = cm.event("group:member", |e| e["event"] == "removed").await;
    assert_eq!(
        removed,
        json!({"group": gid, "user": m, "event": "removed", "by": a})
    );
    let conv = format!("group:{gid}");
    assert_code(
        &cm.ack("message:send", json!({"group": gid, "body": "still here?"}))
            .await,
        "forbidden",
    );
    assert_code(
        &cm.ack("history", json!({"conversation": conv})).await,
        "forbidden",
    );
    let sent = ok(co
        .ack("message:send", json!({"group": gid, "body": "after"}))
        .await);
    ca.event("message", |v| v["id"] == sent["message"]["id"])
        .await;
    cm.barrier().await;
    assert!(
        cm.received("message").is_empty(),
        "a removed member still gets messages: {:?}",
        cm.received("message")
    );

    // Members read the whole group with its member list.
    let read = ok(ca.ack("group:members", g(json!({}))).await);
    assert_eq!(read["members"], json!([o, a, n]));
    assert_eq!(
        (&read["group"]["name"], &read["group"]["admins"]),
        (&json!("Core"), &json!([a]))
    );
    let res = ok(co.ack("group:demote", g(json!({"user": a}))).await);
    assert!(
        res["group"].get("admins").is_none(),
        "no admins left: {res}"
    );
    assert_code(
        &ca.ack("group:kick", g(json!({"user": n}))).await,
        "forbidden",
    );
}

/// Bad input: nothing to change, names and topics out of bounds, oneself, strangers, the
/// owner's role, unknown groups and fields.
#[tokio::test]
async fn bad_group_changes_are_refused() {
    let srv = TestServer::start().await;
    let (o, a, x) = (uid("olga"), uid("adam"), uid("xena"));
    let mut co = srv.client(&o).await;
    let gid = team(&mut co, &[&a]).await;
    let cases = [
        ("group:update", json!({"group": gid}), "bad_request"),
        (
            "group:update",
            json!({"group": gid, "name": "  "}),
            "bad_request",
        ),
        (
            "group:update",
            json!({"group": gid, "name": "n".repeat(101)}),
            "too_large",
        ),
        (
            "group:update",
            json!({"group": gid, "topic": "t".repeat(251)}),
            "too_large",
        ),
        (
            "group:update",
            json!({"group": gid, "owner": a}),
            "bad_request",
        ),
        (
            "group:kick",
            json!({"group": gid, "user": o}),
            "bad_request",
        ),
        ("group:kick", json!({"group": gid, "user": x}), "not_found"),
        (
            "group:promote",
            json!({"group": gid, "user": o}),
            "bad_request",
        ),
        (
            "group:promote",
            json!({"group": gid, "user": x}),
            "not_found",
        ),
        (
            "group:delete",
            json!({"group": "no-such-group"}),
            "not_found",
        ),
        ("group:kick", json!({"group": gid}), "bad_request"),
    ];
    for (event, req, code) in cases {
        let ack = co.ack(event, req.clone()).await;
        assert_eq!(ack["error"]["code"], code, "{event} {req}: {ack}");
    }
    let res = ok(co
        .ack("group:update", json!({"group": gid, "topic": "x"}))
        .await);
    assert_eq!(res["group"]["topic"], "x");
    let res = ok(co
        .ack("group:update", json!({"group": gid, "topic": ""}))
        .await);
    assert!(
        res["group"].get("topic").is_none(),
        "an empty topic clears it: {res}"
    );
}

/// The owner leaving hands the group to the longest-standing admin, and members are told.
#[tokio::test]
async fn ownership_passes_to_an_admin() {
    let srv = TestServer::start().await;
    let (o, m, a) = (uid("olga"), uid("mia"), uid("adam"));
    let mut co = srv.client(&o).await;
    let cm = srv.client(&m).await;
    let gid = team(&mut co, &[&m, &a]).await;
    ok(co
        .ack("group:promote", json!({"group": gid, "user": a}))
        .await);
    ok(co.ack("group:leave", json!({"group": gid})).await);
    let now = updated(&cm, |g| g["owner"] == a.as_str()).await;
    assert!(
        now.get("admins").is_none(),
        "the new owner is no admin: {now}"
    );
    assert_eq!(now["members"], json!([m, a]));
}

/// Deleting: members are told, the group and its history are gone, only the owner may.
#[tokio::test]
async fn the_owner_deletes_the_group() {
    let srv = TestServer::start().await;
    let (o, m) = (uid("olga"), uid("mia"));
    let mut co = srv.client(&o).await;
    let mut cm = srv.client(&m).await;
    let gid = team(&mut co, &[&m]).await;
    ok(co
        .ack("message:send", json!({"group": gid, "body": "bye"}))
        .await);
    ok(co.ack("group:delete", json!({"group": gid})).await);
    let e = cm.event("group:updated", |e| e["deleted"] == true).await;
    assert_eq!(e["group"]["id"], gid.as_str());
    let conv = format!("group:{gid}");
    assert_code(
        &cm.ack("history", json!({"conversation": conv})).await,
        "not_found",
    );
    assert_code(
        &cm.ack("group:members", json!({"group": gid})).await,
        "not_found",
    );
    assert_code(
        &cm.ack("message:send", json!({"group": gid, "body": "x"}))
            .await,
        "not_found",
    );
    let list = ok(cm.ack("conversations", json!({})).await);
    assert_eq!(list["conversations"], json!([]), "{list}");
    assert_code(
        &co.ack("group:delete", json!({"group": gid})).await,
        "not_found",
    );
}

/// Across two nodes: roles, renames, removal (the removed member's sockets on the other
/// node leave the room) and deletion reach every node.
#[tokio::test]
async fn group_changes_across_nodes() {
    let redis = RedisServer::start().await;
    let prefix = chat_testing::prefix();
    let n0 = TestServer::node(&redis.url(), &prefix).await;
    let n1 = TestServer::node(&redis.url(), &prefix).await;
    let (o, a, m) = (uid("olga"), uid("adam"), uid("mia"));
    let mut co = n0.client(&o).await;
    let mut ca = n1.client(&a).await;
    let mut cm = n1.client(&m).await;
    let gid = team(&mut co, &[&a, &m]).await;
    ok(co
        .ack("group:promote", json!({"group": gid, "user": a}))
        .await);
    updated(&cm, |g| g["admins"] == json!([a])).await;
    ok(ca
        .ack("group:update", json!({"group": gid, "name": "Renamed"}))
        .await);
    updated(&co, |g| g["name"] == "Renamed").await;
    ok(co.ack("group:kick", json!({"group": gid, "user": m})).await);
    cm.event("group:member", |e| e["event"] == "removed").await;
    let sent = ok(co
        .ack("message:send", json!({"group": gid, "body": "m is out"}))
        .await);
    ca.event("message", |v| v["id"] == sent["message"]["id"])
        .await;
    cm.barrier().await;
    assert!(
        cm.received("message").is_empty(),
        "{:?}",
        cm.received("message")
    );
    let found = ok(ca.ack("group:find", json!({"prefix": "renamed"})).await);
    assert!(
        found["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["id"] == gid.as_str()),
        "found on the other node: {found}"
    );
    ok(co.ack("group:delete", json!({"group": gid})).await);
    ca.event("group:updated", |e| e["deleted"] == true).await;
    assert_code(
        &ca.ack("message:send", json!({"group": gid, "body": "x"}))
            .await,
        "not_found",
    );
}

/// Private groups take members by invitation only; public ones are found by name, in any
/// case, a page at a time, without their member lists.
#[tokio::test]
async fn private_groups_and_finding_public_ones() {
    let srv = TestServer::start().await;
    let (o, x, a) = (uid("olga"), uid("xena"), uid("adam"));
    let mut co = srv.client(&o).await;
    let mut cx = srv.client(&x).await;
    let tag = uid("club");
    let private = ok(co
        .ack(
            "group:create",
            json!({"name": format!("{tag} secret"), "visibility": "private"}),
        )
        .await)["group"]
        .clone();
    assert_eq!(private["visibility"], "private");
    let pid = private["id"].as_str().unwrap();
    assert_code(
        &cx.ack("group:join", json!({"group": pid})).await,
        "forbidden",
    );
    assert_code(
        &cx.ack("group:invite", json!({"group": pid, "user": a}))
            .await,
        "forbidden",
    );
    let added = ok(co
        .ack("group:invite", json!({"group": pid, "user": x}))
        .await);
    assert_eq!(added["group"]["members"], json!([o, x]));
    cx.event("group:member", |e| {
        e["event"] == "joined" && e["group"] == pid
    })
    .await;

    for name in ["Chess", "chess juniors", "Go"] {
        ok(co
            .ack(
                "group:create",
                json!({"name": format!("{tag} {name}"), "members": [a]}),
            )
            .await);
    }
    let found = ok(cx
        .ack(
            "group:find",
            json!({"prefix": format!("{} CH", tag.to_uppercase())}),
        )
        .await);
    let groups = found["groups"].as_array().unwrap();
    let names: Vec<&str> = groups.iter().map(|g| g["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [format!("{tag} Chess"), format!("{tag} chess juniors")]
    );
    assert_eq!(groups[0]["memberCount"], 2);
    assert!(groups[0].get("members").is_none(), "{found}");
    assert!(found.get("cursor").is_none(), "{found}");

    let page = ok(cx
        .ack("group:find", json!({"prefix": tag, "limit": 2}))
        .await);
    assert_eq!(page["groups"].as_array().unwrap().len(), 2);
    let rest = ok(cx
        .ack(
            "group:find",
            json!({"prefix": tag, "limit": 2, "cursor": page["cursor"]}),
        )
        .await);
    let names: Vec<&str> = rest["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [format!("{tag} Go")],
        "the private group is never listed"
    );
    let gid = rest["groups"][0]["id"].as_str().unwrap();
    ok(cx.ack("group:join", json!({"group": gid})).await);

    ok(co
        .ack(
            "group:update",
            json!({"group": pid, "visibility": "public"}),
        )
        .await);
    let found = ok(cx
        .ack("group:find", json!({"prefix": format!("{tag} sec")}))
        .await);
    assert_eq!(found["groups"][0]["id"], pid);
    for bad in [
        json!({"limit": 0}),
        json!({"limit": 51}),
        json!({"cursor": "zz"}),
        json!({"prefix": "p".repeat(101)}),
        json!({"prefix": 3}),
    ] {
        let ack = cx.ack("group:find", bad.clone()).await;
        assert!(
            ["bad_request", "too_large"].contains(&ack["error"]["code"].as_str().unwrap()),
            "{bad}: {ack}"
        );
    }
}
