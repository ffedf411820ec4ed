//! The server API over HTTP on two chat-server processes over one Redis: every route,
//! called on node A, seen by a client of node B.

use chat_testing::{Client, redis::RedisServer, uid};
use serde_json::{Value, json};

use crate::helpers::Node;

const TOKEN: &str = "api-it-token-0123456789";

#[tokio::test]
async fn every_route_acts_across_nodes() {
    let redis = RedisServer::start().await;
    let (url, prefix) = (redis.url(), chat_testing::prefix());
    let vars = [
        ("CHAT_REDIS_URL", url.as_str()),
        ("CHAT_REDIS_PREFIX", prefix.as_str()),
        ("CHAT_API_TOKEN", TOKEN),
    ];
    let a = Node::start(&vars).await;
    let b = Node::start(&vars).await;
    let (alice, bob, carol) = (uid("alice"), uid("bob"), uid("carol"));
    let bob_b = Client::dev(b.addr, &bob).await;

    let (status, posted) = a
        .call(
            "POST",
            "/api/v1/messages",
            TOKEN,
            Some(json!({"from": alice, "to": bob, "body": "hi", "clientId": "c1"})),
        )
        .await;
    assert_eq!(status, 201, "{posted}");
    let got = bob_b.event("message", |m| m["body"] == "hi").await;
    assert_eq!(got, posted["message"]);
    let (status, system) = a
        .call(
            "POST",
            "/api/v1/messages",
            TOKEN,
            Some(json!({"to": bob, "body": "notice"})),
        )
        .await;
    assert_eq!(status, 201, "{system}");
    assert_eq!(
        bob_b.event("message", |m| m["body"] == "notice").await["from"],
        "@system"
    );

    let conversation = posted["message"]["conversation"].as_str().unwrap();
    let (status, page) = b
        .call(
            "GET",
            &format!("/api/v1/conversations/{conversation}/messages?limit=10"),
            TOKEN,
            None,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["messages"][0], posted["message"]);
    assert_eq!(page["hasMore"], false);

    let (status, presence) = a
        .call(
            "GET",
            &format!("/api/v1/presence?users={bob},{carol}"),
            TOKEN,
            None,
        )
        .await;
    assert_eq!(status, 200, "{presence}");
    assert_eq!(presence["presence"][&bob]["online"], true);
    assert_eq!(presence["presence"][&carol]["online"], false);

    let (status, created) = a
        .call(
            "POST",
            "/api/v1/groups",
            TOKEN,
            Some(json!({"name": "Team", "owner": alice, "members": [carol]})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let group = created["group"]["id"].as_str().unwrap().to_owned();
    let (status, added) = a
        .call(
            "POST",
            &format!("/api/v1/groups/{group}/members"),
            TOKEN,
            Some(json!({"user": bob})),
        )
        .await;
    assert_eq!((status, &added["added"]), (200, &json!(true)), "{added}");
    a.call(
        "POST",
        "/api/v1/messages",
        TOKEN,
        Some(json!({"from": alice, "group": group, "body": "team"})),
    )
    .await;
    bob_b.event("message", |m| m["body"] == "team").await;
    let (status, removed) = a
        .call(
            "DELETE",
            &format!("/api/v1/groups/{group}/members/{bob}"),
            TOKEN,
            None,
        )
        .await;
    assert_eq!((status, removed), (204, Value::Null));

    // Administration: carol, a member connected to node B, sees each change.
    let carol_b = Client::dev(b.addr, &carol).await;
    let path = format!("/api/v1/groups/{group}/admins/{carol}");
    let (status, promoted) = a.call("PUT", &path, TOKEN, None).await;
    assert_eq!(
        (status, &promoted["group"]["admins"]),
        (200, &json!([carol])),
        "{promoted}"
    );
    carol_b
        .event("group:updated", |e| e["group"]["admins"] == json!([carol]))
        .await;
    let (status, renamed) = a
        .call(
            "PATCH",
            &format!("/api/v1/groups/{group}"),
            TOKEN,
            Some(json!({"name": "Core", "topic": "Q3"})),
        )
        .await;
    assert_eq!(
        (status, &renamed["group"]["topic"]),
        (200, &json!("Q3")),
        "{renamed}"
    );
    carol_b
        .event("group:updated", |e| e["group"]["name"] == "Core")
        .await;
    let (status, demoted) = a.call("DELETE", &path, TOKEN, None).await;
    assert_eq!(status, 200, "{demoted}");
    assert!(demoted["group"].get("admins").is_none(), "{demoted}");
    let (status, err) = a
        .call(
            "PATCH",
            &format!("/api/v1/groups/{group}"),
            TOKEN,
            Some(json!({})),
        )
        .await;
    assert_eq!(
        (status, &err["error"]["code"]),
        (400, &json!("bad_request")),
        "{err}"
    );
    let (status, deleted) = a
        .call("DELETE", &format!("/api/v1/groups/{group}"), TOKEN, None)
        .await;
    assert_eq!((status, deleted), (204, Value::Null));
    carol_b
        .event("group:updated", |e| e["deleted"] == true)
        .await;
    let (status, err) = a
        .call("DELETE", &format!("/api/v1/groups/{group}"), TOKEN, None)
        .await;
    assert_eq!(
        (status, &err["error"]["code"]),
        (404, &json!("not_found")),
        "{err}"
    );

    let (status, announced) = a
        .call(
            "POST",
            "/api/v1/announcements",
            TOKEN,
            Some(json!({"body": "all hands"})),
        )
        .await;
    assert_eq!(status, 202, "{announced}");
    let got = bob_b.event("announcement", |_| true).await;
    assert_eq!(got, announced);

    let (status, out) = a
        .call(
            "POST",
            &format!("/api/v1/users/{bob}/disconnect"),
            TOKEN,
            Some(json!({"banSeconds": 600})),
        )
        .await;
    assert_eq!((status, out), (200, json!({"disconnected": 1})));
    bob_b.closed().await;
    let refused = Client::connect(b.addr, json!({"user": bob}))
        .await
        .err()
        .unwrap();
    assert!(refused.starts_with("banned: until "), "{refused}");

    let (status, err) = b
        .call(
            "POST",
            "/api/v1/announcements",
            "wrong-token",
            Some(json!({"body": "x"})),
        )
        .await;
    assert_eq!((status, &err["error"]["code"]), (403, &json!("forbidden")));
}

#[tokio::test]
async fn without_a_token_every_route_is_off() {
    let a = Node::start(&[]).await;
    let (status, err) = a.call("GET", "/api/v1/presence?users=a", TOKEN, None).await;
    assert_eq!((status, &err["error"]["code"]), (403, &json!("forbidden")));
    let (status, doc) = a.call("GET", "/api/v1/openapi.json", "", None).await;
    assert_eq!(status, 200);
    assert!(doc["paths"]["/api/v1/messages"].is_object());
}
