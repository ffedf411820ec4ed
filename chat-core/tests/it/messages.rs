use serde_json::json;

use crate::helpers::*;

/// A DM reaches every device of the recipient and the sender's other devices, once.
#[tokio::test]
async fn dm_reaches_every_device_once() {
    let srv = TestServer::start().await;
    let (a, b) = (uid("alice"), uid("bob"));
    let mut a1 = srv.client(&a).await;
    let mut a2 = srv.client(&a).await;
    let mut b1 = srv.client(&b).await;
    let mut b2 = srv.client(&b).await;
    let ack = ok(a1
        .ack(
            "message:send",
            json!({"to": b, "body": "hi", "clientId": "c1"}),
        )
        .await);
    let msg = &ack["message"];
    let mut pair = [a.clone(), b.clone()];
    pair.sort();
    assert_eq!(msg["conversation"], format!("dm:{}:{}", pair[0], pair[1]));
    assert_eq!(
        (msg["from"].as_str(), msg["body"].as_str()),
        (Some(a.as_str()), Some("hi"))
    );
    assert_eq!(msg["clientId"], "c1");
    assert_eq!(ack["duplicate"], false);
    assert!(msg["ts"].as_u64().unwrap() > 1_700_000_000_000);
    for c in [&mut a2, &mut b1, &mut b2] {
        assert_eq!(&c.event("message", |_| true).await, msg);
        c.barrier().await;
        assert!(c.received("message").is_empty(), "delivered twice");
    }
    a1.barrier().await;
    assert!(
        a1.received("message").is_empty(),
        "echoed to the sending socket"
    );
}

/// Retrying with the same clientId returns the first message and delivers nothing twice.
#[tokio::test]
async fn client_id_retries_are_idempotent() {
    let srv = TestServer::start().await;
    let (a, b) = (uid("alice"), uid("bob"));
    let mut a1 = srv.client(&a).await;
    let mut b1 = srv.client(&b).await;
    let send = json!({"to": b, "body": "once", "clientId": "k-1"});
    let first = ok(a1.ack("message:send", send.clone()).await);
    let again = ok(a1.ack("message:send", send).await);
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["message"], first["message"]);
    b1.event("message", |_| true).await;
    b1.barrier().await;
    assert!(b1.received("message").is_empty());
    let other = a1
        .ack(
            "message:send",
            json!({"to": b, "body": "different", "clientId": "k-1"}),
        )
        .await;
    assert_code(&other, "conflict");
    // Another sender may use the same key.
    let mut b_send = b1;
    ok(b_send
        .ack(
            "message:send",
            json!({"to": a, "body": "x", "clientId": "k-1"}),
        )
        .await);
}

/// Bad message payloads are refused with the right code and the socket stays usable.
#[tokio::test]
async fn bad_sends_are_refused() {
    let srv = TestServer::with(|c| c.limits.max_body = 10).await;
    let (a, b) = (uid("alice"), uid("bob"));
    let mut c = srv.client(&a).await;
    for (payload, code) in [
        (json!({"to": b, "body": ""}), "bad_request"),
        (json!({"to": b, "body": 5}), "bad_request"),
        (json!({"to": b}), "bad_request"),
        (json!({"body": "x"}), "bad_request"),
        (json!({"to": b, "group": "g", "body": "x"}), "bad_request"),
        (json!({"to": "not valid", "body": "x"}), "bad_request"),
        (json!({"to": a, "body": "me"}), "bad_request"),
        (json!({"to": b, "body": "x", "clientId": ""}), "bad_request"),
        (
            json!({"to": b, "body": "x", "clientId": "k".repeat(65)}),
            "bad_request",
        ),
        (json!({"to": b, "body": "x".repeat(11)}), "too_large"),
        (json!({"group": "nope", "body": "x"}), "not_found"),
        (json!("just a string"), "bad_request"),
        (json!({"to": b, "body": "x", "extra": 1}), "bad_request"),
        (json!([1, 2]), "bad_request"),
    ] {
        assert_code(&c.ack("message:send", payload).await, code);
    }
    // Ten characters exactly is fine, counted as characters, not bytes.
    ok(
        c.ack("message:send", json!({"to": b, "body": "é".repeat(10)}))
            .await,
    );
    // No payload at all, and several arguments.
    assert_code(&c.ack_raw(r#"["message:send"]"#).await, "bad_request");
    assert_code(&c.ack_raw(r#"["unknown:event", {}]"#).await, "bad_request");
    ok(
        c.ack("message:send", json!({"to": b, "body": "still here"}))
            .await,
    );
}

/// Blocking refuses the blocked user's DMs until unblocked.
#[tokio::test]
async fn blocked_senders_are_refused() {
    let srv = TestServer::start().await;
    let (a, b) = (uid("alice"), uid("bob"));
    let mut ca = srv.client(&a).await;
    let mut cb = srv.client(&b).await;
    ok(cb.ack("block", json!({"user": a})).await);
    ok(cb.ack("block", json!({"user": a})).await);
    assert_code(
        &ca.ack("message:send", json!({"to": b, "body": "hey"}))
            .await,
        "forbidden",
    );
    // The blocker can still write to the blocked user.
    ok(cb
        .ack("message:send", json!({"to": a, "body": "go away"}))
        .await);
    ok(cb.ack("unblock", json!({"user": a})).await);
    ok(ca
        .ack("message:send", json!({"to": b, "body": "sorry"}))
        .await);
    assert_code(&cb.ack("block", json!({"user": b})).await, "bad_request");
    assert_code(&cb.ack("block", json!({"user": 7})).await, "bad_request");
}

/// Sends fired back to back from one socket are stored and delivered in the order sent.
#[tokio::test]
async fn back_to_back_sends_keep_their_order() {
    let srv =
        TestServer::with(|c| c.limits.message_rate = chat_core::config::Rate::new(100.0, 100))
            .await;
    let (a, b) = (uid("alice"), uid("bob"));
    let mut ca = srv.client(&a).await;
    let cb = srv.client(&b).await;
    let sends = (0..30)
        .map(|i| ("message:send", json!({"to": b, "body": i.to_string()})))
        .collect();
    let acks = ca.ack_all(sends).await;
    let ids: Vec<String> = acks
        .iter()
        .map(|a| ok(a.clone())["message"]["id"].as_str().unwrap().to_owned())
        .collect();
    let parsed: Vec<chat_core::protocol::StreamId> =
        ids.iter().map(|i| i.parse().unwrap()).collect();
    assert!(
        parsed.windows(2).all(|w| w[0] < w[1]),
        "ids out of send order: {ids:?}"
    );
    for i in 0..30 {
        let m = cb.event("message", |_| true).await;
        assert_eq!(m["body"], i.to_string(), "delivered out of order");
    }
}

/// A socket that floods past its request queue gets `rate_limited`, not silence.
#[tokio::test]
async fn request_queue_overflow_is_answered() {
    let srv =
        TestServer::with(|c| c.limits.event_rate = chat_core::config::Rate::new(1000.0, 1000))
            .await;
    let mut c = srv.client(&uid("alice")).await;
    let flood = (0..300).map(|_| ("conversations", json!({}))).collect();
    let acks = c.ack_all(flood).await;
    assert!(
        acks.iter()
            .all(|a| a["ok"] == true || a["error"]["code"] == "rate_limited")
    );
    assert_eq!(acks.len(), 300, "every request was answered");
}
