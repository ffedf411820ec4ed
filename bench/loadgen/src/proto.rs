//! Engine.IO v4 / Socket.IO v4 framing, independent of the transport.
//!
//! Engine.IO packets: `0{open}`, `1` close, `2`/`3` ping/pong, `4…` message, `6` noop. Socket.IO
//! packets ride in Engine.IO messages: `40{auth}` connect, `41` disconnect, `42[…]` events,
//! `42<id>[…]` events asking for an ack, `43<id>[…]` acks, `44{…}` connect errors. Over HTTP
//! long-polling several Engine.IO packets share one body, separated by `\x1e`.

use std::{
    collections::HashMap,
    sync::{Arc, atomic::Ordering::Relaxed},
};

use tokio::sync::oneshot;

use crate::metrics::{Stats, now_us};

/// The Engine.IO v4 packet separator in polling payloads.
pub const SEP: char = '\x1e';

pub enum AckKind {
    /// A `message:send`: record the ack latency from the intended send time.
    Send { intended_us: u64 },
    /// A setup request: hand the ack's data back.
    Reply(oneshot::Sender<String>),
}

pub enum Cmd {
    /// `array` is the Socket.IO event array text, e.g. `["message:send",{...}]`.
    Emit {
        array: String,
        ack: Option<AckKind>,
    },
    Close,
}

/// Per-receiver duplicate detection: one bit per (sender, sequence number).
#[derive(Default)]
pub struct Seen {
    bits: HashMap<u32, Vec<u64>>,
}

impl Seen {
    /// True when new.
    pub fn insert(&mut self, sender: u32, seq: u64) -> bool {
        let v = self.bits.entry(sender).or_default();
        let (w, b) = ((seq / 64) as usize, seq % 64);
        if v.len() <= w {
            v.resize(w + 1, 0);
        }
        let new = v[w] & (1 << b) == 0;
        v[w] |= 1 << b;
        new
    }
}

/// Splits `<digits>rest` into the optional id and the rest.
pub fn split_id(s: &str) -> (Option<u64>, &str) {
    let n = s.bytes().take_while(u8::is_ascii_digit).count();
    if n == 0 {
        (None, s)
    } else {
        (s[..n].parse().ok(), &s[n..])
    }
}

/// Body layout: `m<sender>.<seq>.<intended send time in µs>.<padding>`.
pub fn parse_body(array: &str) -> Option<(u32, u64, u64)> {
    let i = array.find("\"body\":\"")? + 8;
    let body = &array[i..];
    let body = &body[..body.find('"')?];
    let mut it = body.strip_prefix('m')?.split('.');
    Some((
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
    ))
}

/// The string value of `"key":"…"` in a JSON text (no unescaping; ids and sids need none).
pub fn extract_str(data: &str, key: &str) -> Option<String> {
    let pat = format!("\"{key}\":\"");
    let i = data.find(&pat)? + pat.len();
    let rest = &data[i..];
    Some(rest[..rest.find('"')?].to_string())
}

/// `40{"user":…}`: the Socket.IO connect packet with the development auth object.
pub fn connect_packet(user: &str) -> String {
    format!("40{}", serde_json::json!({ "user": user }))
}

/// Where the handshake is after one packet.
pub enum Handshake {
    /// Keep reading.
    More,
    /// `ready` arrived: the session is up.
    Ready,
}

/// Tracks the Socket.IO handshake: the connect ack (`40`), then the `ready` event. Pings are
/// answered through `out`.
#[derive(Default)]
pub struct HandshakeState {
    connected: bool,
}

impl HandshakeState {
    pub fn on_packet(&mut self, t: &str, out: &mut Vec<String>) -> Result<Handshake, String> {
        if t == "2" {
            out.push("3".into());
        } else if t.starts_with("40") {
            self.connected = true;
        } else if t.starts_with("44") {
            return Err(format!("connect_error: {t:.200}"));
        } else if self.connected && t.starts_with("42[\"ready\"") {
            return Ok(Handshake::Ready);
        } else if t == "1" || t.starts_with("41") {
            return Err("closed during the handshake".into());
        }
        Ok(Handshake::More)
    }
}

/// One connected Socket.IO session: outstanding requests and what it received.
pub struct Session {
    pending: HashMap<u64, AckKind>,
    next_id: u64,
    seen: Seen,
    stats: Arc<Stats>,
}

impl Session {
    pub fn new(stats: Arc<Stats>) -> Self {
        Self {
            pending: HashMap::new(),
            next_id: 0,
            seen: Seen::default(),
            stats,
        }
    }

    /// The Engine.IO packet for an outgoing event; registers the ack if one is wanted.
    pub fn emit(&mut self, array: String, ack: Option<AckKind>) -> String {
        match ack {
            Some(a) => {
                let id = self.next_id;
                self.next_id += 1;
                self.pending.insert(id, a);
                format!("42{id}{array}")
            }
            None => format!("42{array}"),
        }
    }

    /// Handles one incoming Engine.IO packet; what to send back goes to `out` (in order).
    /// Returns false when the server ended the session.
    pub fn incoming(&mut self, t: &str, out: &mut Vec<String>) -> bool {
        let stats = &self.stats;
        if t == "2" {
            out.push("3".into());
        } else if let Some(rest) = t.strip_prefix("42") {
            let (id, array) = split_id(rest);
            if array.starts_with("[\"message\"") {
                let now = now_us();
                match parse_body(array) {
                    Some((sender, seq, sent_us)) => {
                        if self.seen.insert(sender, seq) {
                            stats.delivered.fetch_add(1, Relaxed);
                            let _ = stats
                                .lat
                                .lock()
                                .unwrap()
                                .record(now.saturating_sub(sent_us).max(1));
                        } else {
                            stats.dups.fetch_add(1, Relaxed);
                        }
                    }
                    None => {
                        stats.unparsed.fetch_add(1, Relaxed);
                    }
                }
            } else {
                stats.other_events.fetch_add(1, Relaxed);
            }
            // The server asked for an acknowledgement (delivery receipts): answer like a
            // client whose handler calls the callback.
            if let Some(id) = id {
                out.push(format!("43{id}[true]"));
            }
        } else if let Some(rest) = t.strip_prefix("43") {
            let (id, data) = split_id(rest);
            match id.and_then(|id| self.pending.remove(&id)) {
                Some(AckKind::Send { intended_us }) => {
                    if data.contains("\"ok\":true") {
                        stats.acks_ok.fetch_add(1, Relaxed);
                        let _ = stats
                            .ack_lat
                            .lock()
                            .unwrap()
                            .record(now_us().saturating_sub(intended_us).max(1));
                    } else {
                        stats.acks_err.fetch_add(1, Relaxed);
                        stats.error(format!("ack: {data:.200}"));
                    }
                }
                Some(AckKind::Reply(tx)) => {
                    let _ = tx.send(data.to_string());
                }
                None => {}
            }
        } else if t.starts_with("41") || t.starts_with('1') {
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_and_ids() {
        assert_eq!(
            parse_body(r#"["message",{"from":"a","body":"m3.17.123456.xxxx","ts":1}]"#),
            Some((3, 17, 123456))
        );
        assert_eq!(parse_body(r#"["message",{"body":"hello"}]"#), None);
        assert_eq!(split_id("12[1]"), (Some(12), "[1]"));
        assert_eq!(split_id("[1]"), (None, "[1]"));
        assert_eq!(
            extract_str(r#"{"sid":"abc","upgrades":[]}"#, "sid").as_deref(),
            Some("abc")
        );
        assert_eq!(connect_packet("u1"), r#"40{"user":"u1"}"#);
    }

    #[test]
    fn seen_detects_duplicates() {
        let mut s = Seen::default();
        assert!(s.insert(1, 0));
        assert!(s.insert(1, 130));
        assert!(!s.insert(1, 130));
        assert!(s.insert(2, 130));
    }

    #[test]
    fn session_answers_pings_acks_and_counts() {
        let stats = Stats::new();
        let mut s = Session::new(stats.clone());
        let mut out = Vec::new();
        assert!(s.incoming("2", &mut out));
        assert!(s.incoming(r#"425["message",{"body":"m1.0.1.x"}]"#, &mut out));
        assert!(s.incoming(r#"42["message",{"body":"m1.0.1.x"}]"#, &mut out));
        assert_eq!(out, vec!["3".to_string(), "435[true]".to_string()]);
        assert_eq!(stats.delivered.load(Relaxed), 1);
        assert_eq!(stats.dups.load(Relaxed), 1);
        let f = s.emit("[\"x\",{}]".into(), Some(AckKind::Send { intended_us: 0 }));
        assert_eq!(f, "420[\"x\",{}]");
        assert!(s.incoming(r#"430[{"ok":true}]"#, &mut out));
        assert_eq!(stats.acks_ok.load(Relaxed), 1);
        assert!(!s.incoming("41", &mut out));
        assert!(!s.incoming("1", &mut out));
    }
}
