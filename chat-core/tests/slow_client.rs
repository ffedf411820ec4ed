//! Clients that stop reading (issue 27): a WebSocket whose TCP receive window fills, and a
//! long-polling client that never sends its next `GET`. The node holds at most its budget for
//! each (16 × `max_payload`), then disconnects it; the other members are not held back; the
//! device catches up through `sync` when it reconnects.
//!
//! A test binary of its own: one test measures this process's memory, which the other
//! integration tests (`tests/it`) would grow at the same time.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used)]

// Shared with `tests/it`, of which this binary uses a part.
#[allow(dead_code, unused_imports)]
#[path = "it/helpers.rs"]
mod helpers;

use std::time::Duration;

use chat_core::{Config, config::Rate};
use chat_testing::client::DEADLINE;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
};
use tokio_tungstenite::{WebSocketStream, tungstenite::Message as Ws};

use crate::helpers::*;

/// Limits for streams of large messages: no rate limits.
fn unlimited(c: &mut Config, max_body: usize, history_max: usize) {
    c.limits.message_rate = Rate::new(1e6, 1_000_000);
    c.limits.event_rate = Rate::new(1e6, 1_000_000);
    c.limits.max_body = max_body;
    c.limits.history_max = history_max;
}

/// What the node may hold for one socket: 16 payloads.
fn budget(c: &chat_core::Limits) -> u64 {
    16 * c.max_payload
}

/// Held by the tests of this file: each streams megabytes, and one measures this process's
/// memory.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A group of four: a sender, a member who reads, and two members who join and then stop
/// reading, one on each transport.
struct Group {
    id: String,
    sender: Client,
    reader: Client,
    silent_ws: WebSocketStream<TcpStream>,
    silent_polling: Polling,
    users: [String; 4],
}

impl Group {
    async fn start(srv: &TestServer) -> Group {
        let users = [uid("send"), uid("read"), uid("ws"), uid("poll")];
        let mut sender = srv.client(&users[0]).await;
        let mut reader = srv.client(&users[1]).await;
        let group = ok(sender
            .ack(
                "group:create",
                json!({"name": "slow", "members": [users[1], users[2], users[3]]}),
            )
            .await);
        let id = group["group"]["id"].as_str().unwrap().to_owned();
        let silent_ws = silent_ws(srv, &users[2]).await;
        let silent_polling = Polling::connect(srv, &users[3]).await;
        // Membership announcements are not part of the stream.
        reader.barrier().await;
        assert_eq!(srv.handle.connections(), 4);
        Group {
            id,
            sender,
            reader,
            silent_ws,
            silent_polling,
            users,
        }
    }

    /// Sends `n` messages of `size` bytes in lockstep: each is acked and reaches the reader
    /// before the next is sent. Returns their ids and the largest RSS growth (KiB) of this
    /// process seen during the stream.
    async fn stream(&mut self, n: usize, size: usize) -> (Vec<String>, u64) {
        let before = rss_kib();
        let mut most = before;
        let mut ids = Vec::new();
        for i in 0..n {
            let body = format!("{i:06}{}", "x".repeat(size - 6));
            let sent = ok(self
                .sender
                .ack("message:send", json!({"group": self.id, "body": body}))
                .await);
            let id = sent["message"]["id"].as_str().unwrap().to_owned();
            // Taken out of the reader's inbox as it arrives, so the test keeps nothing.
            self.reader
                .event("message", |m| m["id"] == id.as_str())
                .await;
            ids.push(id);
            if i % 4 == 0 {
                most = most.max(rss_kib());
            }
        }
        (ids, most.max(rss_kib()) - before)
    }
}

/// Waits until the node holds only the sender's and the reader's sockets.
async fn silent_ones_dropped(srv: &TestServer) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while srv.handle.connections() > 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the silent clients are still connected ({})",
            srv.handle.connections()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Clients that stop reading are disconnected once the node would hold more than the budget
/// for them, while the stream goes on; the node's memory grows by no more than their budgets
/// and a small constant, and the reader gets every message in step.
#[tokio::test]
async fn slow_clients_are_disconnected_past_the_budget() {
    let _alone = ONE_AT_A_TIME.lock().await;
    // The store keeps one message: its memory is not the one measured.
    let srv = TestServer::with(|c| unlimited(c, 60_000, 1)).await;
    let budget = budget(&Config::default().limits);
    let mut group = Group::start(&srv).await;

    // 18 MB: far more than the budgets and the kernel's socket buffers (a few MB) hold.
    let (_, grown_kib) = group.stream(300, 60_000).await;
    // Both budgets, and 8 MiB for everything else the process does meanwhile (the test runs
    // beside others). Unbounded, the two would hold the stream itself.
    let bound_kib = (2 * budget + (8 << 20)) / 1024;
    assert!(
        grown_kib <= bound_kib,
        "grew {grown_kib} KiB, bound {bound_kib} KiB"
    );
    silent_ones_dropped(&srv).await;

    // What the slow clients see: the WebSocket, read again, ends after what was in flight;
    // the long-polling session is gone.
    let mut frames = 0;
    let ended = tokio::time::timeout(DEADLINE, async {
        // Bounded: the kernel's buffers hold a few hundred of these messages.
        for _ in 0..100_000 {
            match group.silent_ws.next().await {
                Some(Ok(Ws::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => frames += 1,
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the websocket is still open after {frames} frames"
    );
    assert!(frames < 300, "{frames} frames: it was not cut off");
    let (status, body) = group.silent_polling.get().await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("Session ID unknown"), "{body}");
}

/// A device disconnected for falling behind gets every message it missed through `sync`
/// when it reconnects: messages are stored before they are delivered.
#[tokio::test]
async fn a_slow_device_catches_up_with_sync() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let srv = TestServer::with(|c| unlimited(c, 16_000, 10_000)).await;
    let mut group = Group::start(&srv).await;
    let (ids, _) = group.stream(300, 16_000).await;
    silent_ones_dropped(&srv).await;

    for user in &group.users[2..] {
        let mut device = srv.client(user).await;
        let mut got = Vec::new();
        let mut cursor = Value::Null;
        // Bounded: 100 messages a page.
        for _ in 0..ids.len() / 100 + 5 {
            let args = match &cursor {
                Value::String(c) => json!({ "cursor": c }),
                _ => json!({}),
            };
            let page = ok(device.ack("sync", args).await);
            for m in page["messages"].as_array().unwrap() {
                if m["conversation"] == format!("group:{}", group.id).as_str() {
                    got.push(m["id"].as_str().unwrap().to_owned());
                }
            }
            cursor = page["cursor"].clone();
            if page["hasMore"] != true {
                break;
            }
        }
        assert_eq!(got, ids, "{user} missed messages");
    }
}

/// This process's resident memory, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A raw WebSocket client that joins (the group's creator added it), says `ready`, and then
/// reads nothing more: a small receive buffer, so its TCP window fills early.
async fn silent_ws(srv: &TestServer, user: &str) -> WebSocketStream<TcpStream> {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket.connect(srv.addr).await.unwrap();
    let url = format!("ws://{}/socket.io/?EIO=4&transport=websocket", srv.addr);
    let (mut ws, _) = tokio_tungstenite::client_async(url, tcp).await.unwrap();
    ws.send(Ws::text(format!("40{}", json!({ "user": user }))))
        .await
        .unwrap();
    let ready = tokio::time::timeout(DEADLINE, async {
        // Bounded: open, connect, pings, membership events, then ready.
        for _ in 0..100 {
            match ws.next().await {
                Some(Ok(Ws::Text(t))) if t.as_str() == "2" => {
                    ws.send(Ws::text("3")).await.unwrap();
                }
                Some(Ok(Ws::Text(t))) if t.starts_with("42[\"ready\"") => return,
                Some(Ok(_)) => {}
                other => panic!("websocket handshake: {other:?}"),
            }
        }
        panic!("no ready");
    })
    .await;
    assert!(ready.is_ok(), "no ready in time");
    ws
}

/// A raw long-polling client: one request per connection.
struct Polling {
    addr: std::net::SocketAddr,
    path: String,
}

impl Polling {
    /// Opens a session as `user`, polls until `ready`, and then polls no more.
    async fn connect(srv: &TestServer, user: &str) -> Polling {
        let mut polling = Polling {
            addr: srv.addr,
            path: "/socket.io/?EIO=4&transport=polling".into(),
        };
        let (_, open) = polling.get().await;
        let open: Value = serde_json::from_str(&open[1..]).unwrap();
        polling.path = format!("{}&sid={}", polling.path, open["sid"].as_str().unwrap());
        polling
            .post(&format!("40{}", json!({ "user": user })))
            .await;
        // Bounded: each poll answers at least one packet.
        for _ in 0..100 {
            let (status, payload) = polling.get().await;
            assert_eq!(status, 200, "{payload}");
            for packet in payload.split('\x1e') {
                if packet == "2" {
                    polling.post("3").await;
                }
                if packet.starts_with("42[\"ready\"") {
                    return polling;
                }
            }
        }
        panic!("no ready");
    }

    async fn get(&self) -> (u16, String) {
        self.request(&format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.path, self.addr
        ))
        .await
    }

    async fn post(&self, body: &str) {
        let (status, answer) = self
            .request(&format!(
                "POST {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: text/plain;charset=UTF-8\r\nContent-Length: {}\r\n\r\n{body}",
                self.path,
                self.addr,
                body.len()
            ))
            .await;
        assert_eq!((status, answer.as_str()), (200, "ok"));
    }

    /// Sends `request` on a new connection and reads the whole answer.
    async fn request(&self, request: &str) -> (u16, String) {
        let exchange = async {
            let mut tcp = TcpStream::connect(self.addr).await.unwrap();
            tcp.write_all(request.as_bytes()).await.unwrap();
            let mut answer = Vec::new();
            tcp.read_to_end(&mut answer).await.unwrap();
            String::from_utf8(answer).unwrap()
        };
        let answer = tokio::time::timeout(DEADLINE, exchange)
            .await
            .expect("answered in time");
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, body.to_owned())
    }
}
