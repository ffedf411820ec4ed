//! Engine.IO 3 clients (socket.io-client 2.x: Socket.IO protocol v4), spoken over plain HTTP
//! long-polling requests: refused unless `allow_eio3`, then chatting as any client.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use chat_core::config::Rate;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
};
use tokio_tungstenite::{WebSocketStream, tungstenite::Message as Ws};

use crate::helpers::*;

/// Off by default: an Engine.IO 3 handshake gets engineioxide's `400 Unsupported protocol
/// version` on both transports, and current clients still connect.
#[tokio::test]
async fn refused_unless_allowed() {
    let srv = TestServer::start().await;
    for transport in ["polling", "websocket"] {
        let path = format!("/socket.io/?EIO=3&transport={transport}&user=ann");
        let (status, body) = http(srv.addr, "GET", &path, "").await;
        assert_eq!(status, 400, "{transport}: {body}");
        assert_eq!(
            body, r#"{"code":"5","message":"Unsupported protocol version"}"#,
            "{transport}"
        );
    }
    let (status, _) = http(srv.addr, "GET", "/socket.io/?EIO=4&transport=polling", "").await;
    assert_eq!(status, 200);
    srv.client(&uid("cur")).await;
}

/// Allowed, a protocol v4 client authenticates with `?user=` and chats with a current
/// client: `ready`, a send with its ack, the message live on the other side, an error code.
#[tokio::test]
async fn allowed_clients_chat_with_current_ones() {
    let srv = TestServer::with(|c| c.allow_eio3 = true).await;
    let (old, new) = (uid("old"), uid("new"));
    let mut current = srv.client(&new).await;
    let mut legacy = Session::open(srv.addr, &format!("user={old}")).await;
    assert_eq!(legacy.next_packet().await, "0", "the v4 connect packet");
    let ready = legacy.next_packet().await;
    assert!(ready.starts_with(r#"2["ready","#), "{ready}");
    assert!(ready.contains(&format!(r#""user":"{old}""#)), "{ready}");

    let send = json!(["message:send", {"to": new, "body": "from 2.x", "clientId": "c1"}]);
    legacy.post(&format!("21{send}")).await;
    let ack = legacy.next_packet().await;
    let ack: Value = serde_json::from_str(ack.strip_prefix("31").expect(&ack)).unwrap();
    assert_eq!(ack[0]["ok"], true, "{ack}");
    let got = current.event("message", |m| m["body"] == "from 2.x").await;
    assert_eq!(got["from"], old.as_str());

    ok(current
        .ack("message:send", json!({"to": old, "body": "from 4.x"}))
        .await);
    // The server asks for delivery acks and sends receipts, as to any client.
    let live = legacy.event("message").await;
    assert_eq!(live["body"], "from 4.x");
    let receipt = legacy.event("receipt").await;
    assert_eq!(receipt["status"], "delivered", "{receipt}");

    let empty = json!(["message:send", {"to": new, "body": "", "clientId": "c2"}]);
    legacy.post(&format!("22{empty}")).await;
    let err = legacy.next_packet().await;
    let err: Value = serde_json::from_str(err.strip_prefix("32").expect(&err)).unwrap();
    assert_code(&err[0], "bad_request");
}

/// Allowed, a protocol v4 client without credentials in its query is refused with the
/// `unauthorized` error every client gets.
#[tokio::test]
async fn allowed_clients_still_authenticate() {
    let srv = TestServer::with(|c| c.allow_eio3 = true).await;
    let mut legacy = Session::open(srv.addr, "other=x").await;
    let refused = legacy.next_packet().await;
    assert_eq!(
        refused,
        r#"4{"message":"unauthorized: missing user in auth"}"#
    );
}

/// An Engine.IO 3 WebSocket that stops reading is disconnected once the node would hold more
/// than its budget (16 payloads), long before its heartbeat would end it (45 s), and the
/// sender is not held back: engineioxide's byte budget holds on the protocol's own path.
#[tokio::test]
async fn a_silent_eio3_websocket_is_dropped_past_the_budget() {
    let srv = TestServer::with(|c| {
        c.allow_eio3 = true;
        c.limits.message_rate = Rate::new(1e6, 1_000_000);
        c.limits.event_rate = Rate::new(1e6, 1_000_000);
        c.limits.max_body = 60_000;
        c.limits.history_max = 1;
    })
    .await;
    let silent = uid("silent");
    let _ws = silent_ws(srv.addr, &silent).await;
    let mut sender = srv.client(&uid("send")).await;
    assert_eq!(srv.handle.connections(), 2);
    // 18 MB: far more than the budget (1 MiB) and the kernel's socket buffers (a few MB).
    for i in 0..300 {
        let body = format!("{i:06}{}", "x".repeat(60_000 - 6));
        ok(sender
            .ack("message:send", json!({"to": silent, "body": body}))
            .await);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while srv.handle.connections() > 1 {
        assert!(
            Instant::now() < deadline,
            "the silent client is still connected"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A raw Engine.IO 3 WebSocket client authenticated by query, with a small receive buffer so
/// its TCP window fills early: reads until `ready`, and then nothing more.
async fn silent_ws(addr: SocketAddr, user: &str) -> WebSocketStream<TcpStream> {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket.connect(addr).await.unwrap();
    let url = format!("ws://{addr}/socket.io/?EIO=3&transport=websocket&user={user}");
    let (mut ws, _) = tokio_tungstenite::client_async(url, tcp).await.unwrap();
    let ready = tokio::time::timeout(Duration::from_secs(5), async {
        // Bounded: open, connect, then ready (the v3 server sends no ping).
        for _ in 0..10 {
            match ws.next().await {
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

/// An Engine.IO 3 long-polling session.
struct Session {
    addr: SocketAddr,
    path: String,
    /// Packets received and not yet taken.
    queued: Vec<String>,
}

impl Session {
    /// Opens a session whose handshake carries `query` (credentials).
    async fn open(addr: SocketAddr, query: &str) -> Session {
        let (status, body) = http(
            addr,
            "GET",
            &format!("/socket.io/?EIO=3&transport=polling&{query}"),
            "",
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let open = decode(&body).remove(0);
        let sid = open
            .split("\"sid\":\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .expect("engine.io open packet")
            .to_owned();
        Session {
            addr,
            path: format!("/socket.io/?EIO=3&transport=polling&sid={sid}"),
            queued: Vec::new(),
        }
    }

    /// The next Socket.IO packet (what Engine.IO message packets carry, after their `4`),
    /// polling as needed, 5 s at most.
    async fn next_packet(&mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.queued.is_empty() {
            self.poll(deadline).await;
        }
        self.queued.remove(0)
    }

    /// One poll, by `deadline`: queues the Socket.IO packets it brings.
    async fn poll(&mut self, deadline: Instant) {
        let left = deadline.saturating_duration_since(Instant::now());
        let (status, body) = tokio::time::timeout(left, http(self.addr, "GET", &self.path, ""))
            .await
            .expect("a packet in time");
        assert_eq!(status, 200, "{body}");
        self.queued.extend(
            decode(&body)
                .into_iter()
                .filter_map(|p| p.strip_prefix('4').map(str::to_owned)),
        );
    }

    /// The payload of the next event named `name` (`2["name",payload]`, with or without an
    /// ack id), leaving other packets queued.
    async fn event(&mut self, name: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let found = self.queued.iter().position(|p| {
                p.strip_prefix('2')
                    .map(|e| e.trim_start_matches(|c: char| c.is_ascii_digit()))
                    .is_some_and(|e| e.starts_with(&format!("[\"{name}\",")))
            });
            if let Some(at) = found {
                let packet = self.queued.remove(at);
                let array = &packet[packet.find('[').unwrap()..];
                let array: Value = serde_json::from_str(array).unwrap();
                return array[1].clone();
            }
            self.poll(deadline).await;
        }
    }

    /// Sends one Socket.IO packet.
    async fn post(&self, packet: &str) {
        let (status, body) = http(
            self.addr,
            "POST",
            &self.path,
            &encode(&format!("4{packet}")),
        )
        .await;
        assert_eq!((status, body.as_str()), (200, "ok"));
    }
}

/// Engine.IO 3's polling payload: each packet as `<length>:<packet>`.
fn encode(packet: &str) -> String {
    format!("{}:{packet}", packet.chars().count())
}

/// The packets of an Engine.IO 3 polling payload (text, ASCII here).
fn decode(mut payload: &str) -> Vec<String> {
    let mut packets = Vec::new();
    while let Some((len, rest)) = payload.split_once(':') {
        let len: usize = len.parse().expect(payload);
        packets.push(rest[..len].to_owned());
        payload = &rest[len..];
    }
    assert!(payload.is_empty(), "trailing bytes: {payload}");
    packets
}

/// One HTTP/1.1 request on its own connection: the status and the body.
async fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\
         content-type: text/plain;charset=UTF-8\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut res = String::new();
    tcp.read_to_string(&mut res).await.unwrap();
    let (head, body) = res.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap();
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    (
        status,
        if chunked {
            dechunk(body)
        } else {
            body.to_owned()
        },
    )
}

/// The body of a chunked HTTP/1.1 response.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).expect(size);
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
    out
}
