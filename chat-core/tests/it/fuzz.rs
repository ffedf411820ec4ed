//! Random inbound frames and event payloads, on stable Rust through proptest: whatever a
//! client sends, every acknowledged event answers `{ok}` or a documented error code, nothing
//! panics, and the server goes on serving everyone else.

use std::sync::{
    Once,
    atomic::{AtomicU64, Ordering},
};

use proptest::{prelude::*, strategy::ValueTree, test_runner::TestRunner};
use serde_json::{Value, json};

use crate::helpers::*;

/// The events of docs/protocol.md that answer an ack, and one that does not exist.
const EVENTS: [&str; 30] = [
    "message:send",
    "group:create",
    "group:join",
    "group:leave",
    "group:members",
    "group:update",
    "group:kick",
    "group:promote",
    "group:demote",
    "group:delete",
    "group:invite",
    "group:find",
    "history",
    "sync",
    "conversations",
    "read",
    "presence:subscribe",
    "presence:status",
    "presence:idle",
    "block",
    "unblock",
    "blocks",
    "contacts",
    "contacts:request",
    "contacts:accept",
    "contacts:decline",
    "contacts:remove",
    "search",
    "typing",
    "no:such:event",
];

/// The error codes of docs/protocol.md.
const CODES: [&str; 8] = [
    "bad_request",
    "unauthorized",
    "forbidden",
    "not_found",
    "conflict",
    "too_large",
    "rate_limited",
    "unavailable",
];

/// Cases per run: bounded, so the run takes seconds.
const CASES: u32 = 200;

/// Panics anywhere in this process since the hook was installed.
static PANICS: AtomicU64 = AtomicU64::new(0);

fn count_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            previous(info);
        }));
    });
}

/// JSON values of every shape, small and nested, with the strings the protocol uses.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        "[a-z0-9:_.-]{0,12}".prop_map(Value::String),
        "\\PC{0,40}".prop_map(Value::String),
        Just(json!("dm:a:b")),
        Just(json!("group:G1")),
        Just(json!("9999999999999-0")),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::hash_map(
                prop_oneof![
                    Just("to".to_owned()),
                    Just("group".to_owned()),
                    Just("body".to_owned()),
                    Just("clientId".to_owned()),
                    Just("conversation".to_owned()),
                    Just("cursor".to_owned()),
                    Just("before".to_owned()),
                    Just("limit".to_owned()),
                    Just("users".to_owned()),
                    Just("user".to_owned()),
                    Just("members".to_owned()),
                    Just("name".to_owned()),
                    Just("messageId".to_owned()),
                    Just("typing".to_owned()),
                    "[a-z]{1,6}",
                ],
                inner,
                0..6,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// One thing a client sends: an acked event, or a raw frame that may not parse at all.
#[derive(Debug, Clone)]
enum Input {
    Event(&'static str, Vec<Value>),
    Raw(String),
}

fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        4 => (prop::sample::select(&EVENTS[..]), prop::collection::vec(json_value(), 0..3))
            .prop_map(|(e, args)| Input::Event(e, args)),
        1 => prop_oneof![
            "4[0-9]{0,3}\\PC{0,60}",
            "\\PC{0,60}",
            "42\\[\"[a-z:]{0,12}\",\\PC{0,40}",
            "45[0-9]{1,6}-\\[\"message:send\",\\{\"_placeholder\":true,\"num\":[0-9]{1,3}\\}\\]",
        ]
        .prop_map(Input::Raw),
    ]
}

/// Every acknowledged event answers `{ok: true, ...}` or `{ok: false, error: {code, message}}`
/// with a documented code, whatever its payload; malformed frames close at most their own
/// connection; nothing panics, and a bystander's requests keep working.
#[tokio::test]
async fn random_frames_and_payloads_get_documented_answers() {
    count_panics();
    let srv = TestServer::with(|c| {
        c.limits.event_rate = chat_core::config::Rate::new(1e6, 1_000_000);
        c.limits.message_rate = chat_core::config::Rate::new(1e6, 1_000_000);
    })
    .await;
    let mut bystander = srv.client(&uid("bystander")).await;
    let panics_before = PANICS.load(Ordering::SeqCst);
    let config = proptest::test_runner::Config {
        cases: CASES,
        failure_persistence: None,
        ..Default::default()
    };
    let mut runner = TestRunner::new(config);
    let strategy = prop::collection::vec(input(), 1..6);
    let mut cases = Vec::new();
    for _ in 0..CASES {
        let tree = strategy.new_tree(&mut runner).expect("a case");
        cases.push(tree.current());
    }
    let mut answered = 0usize;
    for inputs in cases {
        let mut c = srv.client(&uid("fuzz")).await;
        // Raw frames last: one may close the connection, and the events before it must each
        // get their answer.
        let (mut inputs, raw): (Vec<Input>, Vec<Input>) = inputs
            .into_iter()
            .partition(|i| matches!(i, Input::Event(..)));
        inputs.extend(raw);
        for input in inputs {
            match input {
                Input::Event("typing", args) => {
                    let mut array = vec![json!("typing")];
                    array.extend(args);
                    c.send_raw(format!("42{}", Value::Array(array)));
                }
                Input::Event(event, args) => {
                    let mut array = vec![json!(event)];
                    array.extend(args);
                    let ack = c.ack_raw(&Value::Array(array).to_string()).await;
                    assert_documented(event, &ack);
                    answered += 1;
                }
                Input::Raw(frame) => c.send_raw(frame),
            }
        }
    }
    ok(bystander.ack("conversations", json!({})).await);
    assert_eq!(
        PANICS.load(Ordering::SeqCst),
        panics_before,
        "a panic happened"
    );
    eprintln!("fuzz: {CASES} cases, {answered} acked events answered, 0 panics");
    assert!(answered > 0);
}

#[track_caller]
fn assert_documented(event: &str, ack: &Value) {
    match ack["ok"] {
        Value::Bool(true) => {}
        Value::Bool(false) => {
            let code = ack["error"]["code"].as_str().unwrap_or_default();
            assert!(CODES.contains(&code), "{event}: undocumented code in {ack}");
            assert!(
                ack["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty()),
                "{event}: no message in {ack}"
            );
        }
        _ => panic!("{event}: not an answer: {ack}"),
    }
}

/// Every acknowledged event of the protocol is counted under its own name in
/// `chat_events_total`, not as `unknown`.
#[test]
fn every_event_has_its_metric_label() {
    for event in EVENTS {
        if ["typing", "no:such:event"].contains(&event) {
            continue;
        }
        assert!(
            chat_core::metrics::EVENTS.contains(&event),
            "{event} is missing from chat_core::metrics::EVENTS"
        );
    }
}
