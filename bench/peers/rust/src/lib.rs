//! What `sxio-peer` and `ceiling-peer` share: the benchmarked subset of docs/protocol.md as
//! bench/peers/node/server.js implements it (checks, payload shapes with their field order).

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use serde_json::Value;

/// server.js's `seq`: the process-wide message sequence number.
static SEQ: AtomicU64 = AtomicU64::new(0);

/// Environment variable `key`, or `default` when unset or empty.
pub fn env_or(key: &str, default: &str) -> String {
    std::env::var(key)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_string())
}

/// `/^[A-Za-z0-9_.-]{1,64}$/`
pub fn valid_user(u: &str) -> bool {
    (1..=64).contains(&u.len())
        && u.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// JavaScript's `string.length` (UTF-16 code units).
pub fn js_len(s: &str) -> usize {
    if s.is_ascii() {
        s.len()
    } else {
        s.encode_utf16().count()
    }
}

/// Resolves on the first SIGTERM or SIGINT.
pub async fn shutdown_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

/// Milliseconds since the epoch (`Date.now()`).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A DM's conversation id: `dm:<a>:<b>`, the two (ASCII) user ids sorted.
pub fn dm_id(a: &str, b: &str) -> String {
    if a < b {
        format!("dm:{a}:{b}")
    } else {
        format!("dm:{b}:{a}")
    }
}

/// A group id as server.js makes it: `G` and 12 random hex digits.
pub fn new_group_id() -> String {
    format!("G{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff)
}

/// The `message` object, fields in server.js's order.
#[derive(Debug, Serialize)]
pub struct Message<'a> {
    pub id: String,
    pub conversation: String,
    pub from: &'a str,
    pub body: &'a str,
    pub ts: u64,
    #[serde(rename = "clientId", skip_serializing_if = "Option::is_none")]
    pub client_id: Option<&'a str>,
}

impl<'a> Message<'a> {
    /// A new message with server.js's id (`<ms>-<process-wide sequence>`); no conversation yet.
    pub fn new(seq: u64, from: &'a str, body: &'a str, client_id: Option<&'a str>) -> Self {
        let ts = now_ms();
        Message {
            id: format!("{ts}-{seq}"),
            conversation: String::new(),
            from,
            body,
            ts,
            client_id,
        }
    }
}

/// `message:send`'s ack: `{ok: true, message, duplicate: false}`.
#[derive(Debug, Serialize)]
pub struct SendAck<'a> {
    pub ok: bool,
    pub message: &'a Message<'a>,
    pub duplicate: bool,
}

impl<'a> SendAck<'a> {
    pub fn new(message: &'a Message<'a>) -> Self {
        SendAck {
            ok: true,
            message,
            duplicate: false,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ErrBody {
    pub code: &'static str,
    pub message: &'static str,
}

/// `{ok: false, error: {code, message}}`
#[derive(Debug, Serialize)]
pub struct Fail {
    pub ok: bool,
    pub error: ErrBody,
}

pub fn fail(code: &'static str, message: &'static str) -> Fail {
    Fail {
        ok: false,
        error: ErrBody { code, message },
    }
}

#[derive(Debug, Serialize)]
pub struct CreatedGroup<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub owner: &'a str,
    pub members: [&'a str; 1],
}

/// `group:create`'s ack: `{ok: true, group: {id, name, owner, members: [owner]}}`.
#[derive(Debug, Serialize)]
pub struct CreateAck<'a> {
    pub ok: bool,
    pub group: CreatedGroup<'a>,
}

impl<'a> CreateAck<'a> {
    pub fn new(id: &'a str, name: &'a str, owner: &'a str) -> Self {
        CreateAck {
            ok: true,
            group: CreatedGroup {
                id,
                name,
                owner,
                members: [owner],
            },
        }
    }
}

#[derive(Debug, Serialize)]
pub struct JoinedGroup<'a> {
    pub id: &'a str,
}

/// `group:join`'s ack: `{ok: true, group: {id}}`.
#[derive(Debug, Serialize)]
pub struct JoinAck<'a> {
    pub ok: bool,
    pub group: JoinedGroup<'a>,
}

impl<'a> JoinAck<'a> {
    pub fn new(id: &'a str) -> Self {
        JoinAck {
            ok: true,
            group: JoinedGroup { id },
        }
    }
}

/// The `ready` event's payload: `{user, node}`.
#[derive(Debug, Serialize)]
pub struct Ready<'a> {
    pub user: &'a str,
    pub node: &'a str,
}

/// The user id in a handshake `auth` object (`{user}`), if valid (server.js's `io.use`).
pub fn auth_user(auth: &Value) -> Option<&str> {
    match auth.get("user") {
        Some(Value::String(u)) if valid_user(u) => Some(u),
        _ => None,
    }
}

/// Where a `message:send` goes.
#[derive(Debug, PartialEq, Eq)]
pub enum Target<'a> {
    /// To room `user:<to>` and the sender's other devices (room `user:<from>`).
    User(&'a str),
    /// To room `group:<id>`.
    Group(&'a str),
}

/// Checks a `message:send` payload exactly like server.js and builds the message. The
/// conversation id is set; the sending socket itself is never a recipient.
pub fn prepare_send<'a>(from: &'a str, req: &'a Value) -> Result<(Message<'a>, Target<'a>), Fail> {
    let body = match req.get("body") {
        Some(Value::String(b)) if !b.is_empty() => b.as_str(),
        _ => return Err(fail("bad_request", "body is required")),
    };
    if js_len(body) > 4000 {
        return Err(fail("too_large", "body is too long"));
    }
    let client_id = match req.get("clientId") {
        Some(Value::String(c)) => Some(c.as_str()),
        _ => None,
    };
    let mut message = Message::new(SEQ.fetch_add(1, Ordering::Relaxed), from, body, client_id);
    // `typeof req.to === 'string' && req.group === undefined`, and the other way round.
    match (req.get("to"), req.get("group")) {
        (Some(Value::String(to)), None) => {
            if !valid_user(to) {
                return Err(fail("bad_request", "bad user id"));
            }
            if to == from {
                return Err(fail("bad_request", "cannot message yourself"));
            }
            message.conversation = dm_id(from, to);
            Ok((message, Target::User(to)))
        }
        (None, Some(Value::String(group))) => {
            message.conversation = format!("group:{group}");
            Ok((message, Target::Group(group)))
        }
        _ => Err(fail("bad_request", "exactly one of to or group")),
    }
}

/// The group name of a `group:create` payload (1–100 characters).
pub fn create_name(req: &Value) -> Result<&str, Fail> {
    let name = match req.get("name") {
        Some(Value::String(n)) => n.as_str(),
        _ => "",
    };
    let len = js_len(name);
    if len == 0 || len > 100 {
        return Err(fail("bad_request", "bad name"));
    }
    Ok(name)
}

/// The group id of a `group:join` payload (a non-empty string).
pub fn join_group(req: &Value) -> Result<&str, Fail> {
    match req.get("group") {
        Some(Value::String(g)) if !g.is_empty() => Ok(g),
        _ => Err(fail("bad_request", "bad group")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_and_lengths() {
        assert!(valid_user("a.b-c_9"));
        assert!(!valid_user(""));
        assert!(!valid_user("a b"));
        assert!(!valid_user(&"x".repeat(65)));
        assert_eq!(js_len("héllo"), 5);
        assert_eq!(js_len("😀"), 2);
        assert_eq!(dm_id("bob", "alice"), "dm:alice:bob");
    }

    #[test]
    fn send_checks() {
        let req = serde_json::json!({"to": "bob", "body": "hi", "clientId": "c1"});
        let (m, t) = prepare_send("carol", &req).unwrap();
        assert_eq!(t, Target::User("bob"));
        assert_eq!(m.conversation, "dm:bob:carol");
        assert_eq!(m.client_id, Some("c1"));
        let req = serde_json::json!({"group": "G1", "body": "hi"});
        let (m, t) = prepare_send("carol", &req).unwrap();
        assert_eq!(t, Target::Group("G1"));
        assert_eq!(m.conversation, "group:G1");
        for (req, code) in [
            (serde_json::json!({"to": "bob"}), "bad_request"),
            (serde_json::json!({"to": "bob", "body": ""}), "bad_request"),
            (
                serde_json::json!({"to": "bob", "body": "x".repeat(4001)}),
                "too_large",
            ),
            (
                serde_json::json!({"to": "carol", "body": "x"}),
                "bad_request",
            ),
            (serde_json::json!({"to": "b o", "body": "x"}), "bad_request"),
            (
                serde_json::json!({"to": "bob", "group": "G", "body": "x"}),
                "bad_request",
            ),
            (
                serde_json::json!({"to": "bob", "group": null, "body": "x"}),
                "bad_request",
            ),
            (serde_json::json!({"body": "x"}), "bad_request"),
            (serde_json::json!("nope"), "bad_request"),
        ] {
            assert_eq!(
                prepare_send("carol", &req).unwrap_err().error.code,
                code,
                "{req}"
            );
        }
        assert!(create_name(&serde_json::json!({"name": ""})).is_err());
        assert_eq!(create_name(&serde_json::json!({"name": "n"})).unwrap(), "n");
        assert!(join_group(&serde_json::json!({"group": 1})).is_err());
        assert_eq!(auth_user(&serde_json::json!({"user": "u1"})), Some("u1"));
        assert_eq!(auth_user(&serde_json::json!({"user": ""})), None);
    }

    #[test]
    fn shapes_keep_server_js_order() {
        let m = Message {
            id: "1-0".into(),
            conversation: "dm:a:b".into(),
            from: "a",
            body: "hi",
            ts: 1,
            client_id: None,
        };
        assert_eq!(
            serde_json::to_string(&SendAck::new(&m)).unwrap(),
            r#"{"ok":true,"message":{"id":"1-0","conversation":"dm:a:b","from":"a","body":"hi","ts":1},"duplicate":false}"#
        );
        assert_eq!(
            serde_json::to_string(&CreateAck::new("G1", "n", "a")).unwrap(),
            r#"{"ok":true,"group":{"id":"G1","name":"n","owner":"a","members":["a"]}}"#
        );
        assert_eq!(
            serde_json::to_string(&fail("bad_request", "bad group")).unwrap(),
            r#"{"ok":false,"error":{"code":"bad_request","message":"bad group"}}"#
        );
    }
}
