use serde_json::{Value, json};

use crate::helpers::*;

fn ids(v: &Value) -> Vec<String> {
    v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

fn bodies(v: &Value) -> Vec<String> {
    v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap().to_owned())
        .collect()
}

/// History pages backwards with `before`, oldest first within a page, with `hasMore`.
#[tokio::test]
async fn history_pages() {
    let srv = TestServer::start().await;
    let (a, b) = (uid("alice"), uid("bob"));
    let mut ca = srv.client(&a).await;
    let mut cb = srv.client(&b).await;
    let mut conv = String::new();
    for i in 0..7 {
        conv = ok(ca
            .ack("message:send", json!({"to": b, "body": format!("m{i}")}))
            .await)["message"]["conversation"]
            .as_str()
            .unwrap()
            .to_owned();
    }
    let page = ok(cb
        .ack("history", json!({"conversation": conv, "limit": 3}))
        .await);
    assert_eq!(bodies(&page), ["m4", "m5", "m6"]);
    assert_eq!(page["hasMore"], true);
    let before = ids(&page)[0].clone();
    let page2 = ok(cb
        .ack(
            "history",
            json!({"conversation": conv, "limit": 3, "before": before}),
        )
        .await);
    assert_eq!(bodies(&page2), ["m1", "m2", "m3"]);
    let page3 = ok(cb
        .ack(
            "history",
            json!({"conversation": conv, "before": ids(&page2)[0]}),
        )
        .await);
    assert_eq!(bodies(&page3), ["m0"]);
    assert_eq!(page3["hasMore"], false);
    let all = ok(ca.ack("history", json!({"conversation": conv})).await);
    assert_eq!(all["messages"].as_array().unwrap().len(), 7);

    for limit in [json!(0), json!(101), json!(-1), json!("5")] {
        assert_code(
            &cb.ack("history", json!({"conversation": conv, "limit": limit}))
                .await,
            "bad_request",
        );
    }
    assert_code(
        &cb.ack("history", json!({"conversation": conv, "before": "x"}))
            .await,
        "bad_request",
    );
    assert_code(
        &cb.ack("history", json!({"conversation": "dm:zz:aa"})).await,
        "bad_request",
    );
    assert_code(
        &cb.ack("history", json!({"conversation": "room:1"})).await,
        "bad_request",
    );
    let mut eve = srv.client(&uid("eve")).await;
    assert_code(
        &eve.ack("history", json!({"conversation": conv})).await,
        "forbidden",
    );
}

/// An offline user catches up with `sync`: unread first, then everything after the cursor, once.
#[tokio::test]
async fn sync_catches_up_without_duplicates() {
    let srv = TestServer::start().await;
    let (a, b) = (uid("alice"), uid("bob"));
    let mut ca = srv.client(&a).await;
    let gid = ok(ca
        .ack("group:create", json!({"name": "g", "members": [b]}))
        .await)["group"]["id"]
        .clone();
    ok(ca.ack("message:send", json!({"to": b, "body": "d1"})).await);
    ok(ca
        .ack("message:send", json!({"group": gid, "body": "g1"}))
        .await);
    ok(ca.ack("message:send", json!({"to": b, "body": "d2"})).await);

    let mut cb = srv.client(&b).await;
    let first = ok(cb.ack("sync", json!({})).await);
    assert_eq!(bodies(&first), ["d1", "g1", "d2"]);
    assert_eq!(first["hasMore"], false);
    let cursor = first["cursor"].clone();
    let again = ok(cb.ack("sync", json!({"cursor": cursor})).await);
    assert!(bodies(&again).is_empty());
    assert_eq!(again["cursor"], cursor);

    drop(cb);
    ok(ca.ack("message:send", json!({"to": b, "body": "d3"})).await);
    ok(ca
        .ack("message:send", json!({"group": gid, "body": "g2"}))
        .await);
    let mut cb = srv.client(&b).await;
    ok(cb
        .ack("message:send", json!({"to": a, "body": "mine"}))
        .await);
    let next = ok(cb.ack("sync", json!({"cursor": cursor})).await);
    assert_eq!(
        bodies(&next),
        ["d3", "g2", "mine"],
        "own sends from other devices are included"
    );

    assert_code(
        &cb.ack("sync", json!({"cursor": "garbage"})).await,
        "bad_request",
    );
    assert_code(&cb.ack("sync", json!({"cursor": 5})).await, "bad_request");
}

/// Sync pages through a long backlog in batches of 100, each message once.
#[tokio::test]
async fn sync_pages_through_a_backlog() {
    let srv = TestServer::with(|c| {
        c.limits.message_rate = chat_core::config::Rate::new(1000.0, 1000);
        c.limits.event_rate = chat_core::config::Rate::new(1000.0, 1000);
    })
    .await;
    let (a, b) = (uid("alice"), uid("bob"));
    let mut ca = srv.client(&a).await;
    for i in 0..130 {
        ok(ca
            .ack("message:send", json!({"to": b, "body": format!("{i}")}))
            .await);
    }
    let mut cb = srv.client(&b).await;
    let p1 = ok(cb.ack("sync", json!({})).await);
    assert_eq!(p1["messages"].as_array().unwrap().len(), 100);
    assert_eq!(p1["hasMore"], true);
    let p2 = ok(cb.ack("sync", json!({"cursor": p1["cursor"]})).await);
    assert_eq!(p2["hasMore"], false);
    let got: Vec<String> = bodies(&p1).into_iter().chain(bodies(&p2)).collect();
    let want: Vec<String> = (0..130).map(|i| i.to_string()).collect();
    assert_eq!(got, want);
}

/// The conversation list shows last messages and unread counts, which `read` clears.
#[tokio::test]
async fn conversations_and_unread() {
    let srv = TestServer::start().await;
    let (a, b) = (uid("alice"), uid("bob"));
    let mut ca = srv.client(&a).await;
    let mut cb = srv.client(&b).await;
    let gid = ok(cb.ack("group:create", json!({"name": "Empty"})).await)["group"]["id"].clone();
    ok(ca.ack("message:send", json!({"to": b, "body": "1"})).await);
    let last = ok(ca.ack("message:send", json!({"to": b, "body": "2"})).await)["message"].clone();
    let list = ok(cb.ack("conversations", json!({})).await)["conversations"].clone();
    assert_eq!(list[0]["id"], last["conversation"]);
    assert_eq!(list[0]["lastMessage"], last);
    assert_eq!(list[0]["unread"], 2);
    assert_eq!(list[1]["id"], format!("group:{}", gid.as_str().unwrap()));
    assert_eq!(list[1]["name"], "Empty");
    assert_eq!(list[1]["lastMessage"], Value::Null);
    let mine = ok(ca.ack("conversations", json!({})).await)["conversations"].clone();
    assert_eq!(mine[0]["unread"], 0, "own messages are not unread");

    ok(cb
        .ack(
            "read",
            json!({"conversation": last["conversation"], "messageId": last["id"]}),
        )
        .await);
    let list = ok(cb.ack("conversations", json!({})).await)["conversations"].clone();
    assert_eq!(list[0]["unread"], 0);
    assert_code(
        &cb.ack(
            "read",
            json!({"conversation": last["conversation"], "messageId": "x"}),
        )
        .await,
        "bad_request",
    );
    assert_code(
        &cb.ack("read", json!({"conversation": last["conversation"]}))
            .await,
        "bad_request",
    );
}
