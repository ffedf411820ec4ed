//! The word list refusing messages before they are stored.

use chat_example_embed::moderation::REFUSED;
use serde_json::json;

use crate::helpers::{TestApp, WORDS};

/// A message with a listed word (any case, inside punctuation) is refused with `forbidden` in
/// the sender's ack, and the recipient never gets it nor finds it in the history; a clean
/// message goes through.
#[tokio::test]
async fn a_listed_word_is_refused_and_never_delivered() {
    let app = TestApp::start().await;
    let (_, mut alice) = app.user("alice").await;
    let (_, mut bob) = app.user("bob").await;

    let refused = alice
        .ack(
            "message:send",
            json!({ "to": "bob", "body": "cheap SPAM, today!" }),
        )
        .await;
    assert_eq!(refused["ok"], false, "{refused}");
    assert_eq!(refused["error"]["code"], "forbidden");
    assert_eq!(refused["error"]["message"], REFUSED);
    for word in WORDS {
        let text = refused.to_string();
        assert!(!text.contains(word), "the refusal names the list: {text}");
    }

    // "spammer" contains a listed word but is not one.
    let sent = alice
        .ack(
            "message:send",
            json!({ "to": "bob", "body": "hello, spammer" }),
        )
        .await;
    assert_eq!(sent["ok"], true, "{sent}");
    let got = bob.event("message", |_| true).await;
    assert_eq!(got["body"], "hello, spammer");
    // Messages arrive in send order: had the refused one been delivered, it would be here.
    bob.barrier().await;
    assert!(
        bob.received("message").is_empty(),
        "{:?}",
        bob.received("message")
    );

    let history = bob
        .ack("history", json!({ "conversation": "dm:alice:bob" }))
        .await;
    let bodies: Vec<_> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].clone())
        .collect();
    assert_eq!(bodies, [json!("hello, spammer")], "{history}");
}
