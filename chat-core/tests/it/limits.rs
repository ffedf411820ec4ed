use chat_core::config::Rate;
use serde_json::json;

use crate::helpers::*;

/// A flood of sends is cut with `rate_limited`; the connection stays and recovers.
#[tokio::test]
async fn message_rate_limit() {
    let srv = TestServer::with(|c| c.limits.message_rate = Rate::new(5.0, 5)).await;
    let (a, b) = (uid("alice"), uid("bob"));
    let mut ca = srv.client(&a).await;
    let mut refused = 0;
    for i in 0..20 {
        let ack = ca
            .ack("message:send", json!({"to": b, "body": format!("{i}")}))
            .await;
        if ack["ok"] == false {
            assert_code(&ack, "rate_limited");
            refused += 1;
        }
    }
    assert!(refused >= 10, "only {refused} of 20 refused");
    // The limit is per user: another device of the same user shares it.
    let mut ca2 = srv.client(&a).await;
    let ack = ca2
        .ack("message:send", json!({"to": b, "body": "other device"}))
        .await;
    assert_code(&ack, "rate_limited");
    // Tokens come back; poll until a send passes.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while ca
        .ack("message:send", json!({"to": b, "body": "later"}))
        .await["ok"]
        != true
    {
        assert!(tokio::time::Instant::now() < deadline, "never recovered");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Every acked event counts against a per-user budget.
#[tokio::test]
async fn event_rate_limit() {
    let srv = TestServer::with(|c| c.limits.event_rate = Rate::new(1.0, 10)).await;
    let mut c = srv.client(&uid("alice")).await;
    let mut codes = Vec::new();
    for _ in 0..15 {
        let ack = c.ack("conversations", json!({})).await;
        codes.push(ack["ok"] == true);
    }
    assert_eq!(codes.iter().filter(|ok| **ok).count(), 10);
    assert_code(
        &c.ack("history", json!({"conversation": "dm:a:b"})).await,
        "rate_limited",
    );
}

/// Sends refused for other reasons count against the message budget too, whether they fail
/// before the store (bad payload, bad input) or in it (blocked); over the budget,
/// `rate_limited` is the answer.
#[tokio::test]
async fn refused_sends_spend_the_message_budget() {
    let srv = TestServer::with(|c| c.limits.message_rate = Rate::new(0.001, 3)).await;
    let (a, b) = (uid("alice"), uid("bob"));
    let mut ca = srv.client(&a).await;
    let mut cb = srv.client(&b).await;
    ok(cb.ack("block", json!({"user": a})).await);
    let refusals = [
        (json!({"to": b, "body": ""}), "bad_request"),
        (json!({"to": b, "body": 5}), "bad_request"),
        (json!({"to": b, "body": "hi"}), "forbidden"),
    ];
    for (payload, code) in refusals {
        assert_code(&ca.ack("message:send", payload).await, code);
    }
    ok(cb.ack("unblock", json!({"user": a})).await);
    assert_code(
        &ca.ack("message:send", json!({"to": b, "body": "hi"})).await,
        "rate_limited",
    );
}

/// A send refused by the message budget takes nothing from the event budget: both budgets
/// are checked and spent together, in one step.
#[tokio::test]
async fn a_refused_send_spends_no_event_budget() {
    let srv = TestServer::with(|c| {
        c.limits.message_rate = Rate::new(0.001, 1);
        c.limits.event_rate = Rate::new(0.001, 4);
    })
    .await;
    let (a, b) = (uid("alice"), uid("bob"));
    let mut c = srv.client(&a).await;
    ok(c.ack("message:send", json!({"to": b, "body": "one"})).await);
    assert_code(
        &c.ack("message:send", json!({"to": b, "body": "two"})).await,
        "rate_limited",
    );
    // 4 event tokens, 1 spent by the first send: 3 left, the refused send took none.
    for _ in 0..3 {
        ok(c.ack("conversations", json!({})).await);
    }
    assert_code(&c.ack("conversations", json!({})).await, "rate_limited");
}

/// A packet over the Engine.IO payload limit closes that connection only.
#[tokio::test]
async fn oversized_packets_close_only_their_connection() {
    let srv = TestServer::with(|c| c.limits.max_payload = 4096).await;
    let (a, b) = (uid("alice"), uid("bob"));
    let big = srv.client(&a).await;
    let mut other = srv.client(&b).await;
    big.send_raw(format!(
        "42{}",
        json!(["message:send", {"to": b, "body": "x".repeat(10_000)}])
    ));
    big.closed().await;
    ok(other
        .ack("message:send", json!({"to": a, "body": "still fine"}))
        .await);
}

/// A packet announcing more binary attachments than a chat event could carry closes its
/// connection before anything is buffered for them; other clients go on.
#[tokio::test]
async fn packets_announcing_many_attachments_close_their_connection() {
    let srv = TestServer::start().await;
    let (a, b) = (uid("alice"), uid("bob"));
    let greedy = srv.client(&a).await;
    let mut other = srv.client(&b).await;
    greedy.send_raw(format!(
        "451000-{}",
        json!(["message:send", {"_placeholder": true, "num": 0}])
    ));
    greedy.closed().await;
    ok(other
        .ack("message:send", json!({"to": a, "body": "still fine"}))
        .await);
}

/// A user blocks at most `blocks_per_user` others: one more is `conflict`, blocking someone
/// already blocked is still fine, and unblocking makes room.
#[tokio::test]
async fn blocks_stop_at_the_cap() {
    let server = TestServer::with(|c| c.limits.blocks_per_user = 3).await;
    let me = uid("me");
    let mut client = server.client(&me).await;
    let others: Vec<String> = (0..4).map(|i| uid(&format!("o{i}"))).collect();
    for o in &others[..3] {
        ok(client.ack("block", json!({"user": o})).await);
    }
    let refused = client.ack("block", json!({"user": others[3]})).await;
    assert_code(&refused, "conflict");
    ok(client.ack("block", json!({"user": others[0]})).await);
    ok(client.ack("unblock", json!({"user": others[1]})).await);
    ok(client.ack("block", json!({"user": others[3]})).await);
    // `blocks` lists them, sorted; it takes no arguments.
    let mut expected = vec![others[0].clone(), others[2].clone(), others[3].clone()];
    expected.sort();
    assert_eq!(
        ok(client.ack("blocks", json!({})).await)["users"],
        json!(expected)
    );
    assert_code(
        &client.ack("blocks", json!({"user": me})).await,
        "bad_request",
    );
}
