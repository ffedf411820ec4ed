//! `ceiling-peer`: the "plain tokio-tungstenite fan-out server" ceiling for the benchmarks.
//!
//! No Socket.IO library, no Redis, one process: WebSocket upgrades on
//! `/socket.io/?EIO=4&transport=websocket` (tokio-tungstenite), and just enough Engine.IO v4 /
//! Socket.IO v4 written by hand for the load generator:
//!   - `0{open}` on accept; the server pings (`2`) every pingInterval and closes a connection
//!     that does not answer (`3`) within pingTimeout; a client's `2` gets a `3`
//!   - `40{auth}` -> `40{"sid":…}` then `42["ready",{user, node}]`, or
//!     `44{"message":"unauthorized: invalid user id"}`
//!   - `42<id>["message:send",{to|group, body, clientId?}]`, `group:create`, `group:join`,
//!     handled exactly like bench/peers/node/server.js (same message object, same acks
//!     `43<id>[…]`), delivered through in-process rooms (room -> connections' senders)
//!
//! No HTTP long-polling, no binary packets, no other namespaces, no clustering: it is what
//! one process (one core with `TOKIO_WORKER_THREADS=1`) can do for this traffic.
//!
//! Environment: PORT (default 3000), HOST (default 127.0.0.1), NODE_ID (default: random).
//! Exits on SIGTERM/SIGINT.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bench_peers::{
    CreateAck, JoinAck, Ready, Target, auth_user, create_name, env_or, join_group, new_group_id,
    prepare_send, shutdown_signal,
};
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use serde_json::Value;
use tokio::{
    net::{TcpListener, TcpStream},
    sync::mpsc,
    time::{Instant, sleep},
};
use tokio_tungstenite::{
    accept_hdr_async_with_config,
    tungstenite::{
        Message, Utf8Bytes,
        handshake::server::{ErrorResponse, Request, Response},
        http::StatusCode,
        protocol::WebSocketConfig,
    },
};

const PING_INTERVAL: Duration = Duration::from_millis(25_000);
const PING_TIMEOUT: Duration = Duration::from_millis(20_000);
const MAX_PAYLOAD: usize = 1_000_000;
/// Frames written per flush at most, so one busy connection cannot hold the others back.
const WRITE_BATCH: usize = 256;

static NODE_ID: OnceLock<String> = OnceLock::new();
static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

type Tx = mpsc::UnboundedSender<Utf8Bytes>;

/// room -> (connection id -> that connection's outgoing queue)
#[derive(Default)]
struct Rooms(Mutex<HashMap<String, HashMap<u64, Tx>>>);

impl Rooms {
    fn join(&self, room: &str, conn: u64, tx: &Tx) -> bool {
        let mut rooms = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let members = match rooms.get_mut(room) {
            Some(m) => m,
            None => rooms.entry(room.to_string()).or_default(),
        };
        members.insert(conn, tx.clone()).is_none()
    }

    fn leave_all(&self, joined: &[String], conn: u64) {
        let mut rooms = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for room in joined {
            if let Some(members) = rooms.get_mut(room.as_str()) {
                members.remove(&conn);
                if members.is_empty() {
                    rooms.remove(room.as_str());
                }
            }
        }
    }

    /// `socket.to(rooms).emit(…)`: every connection in any of `targets` once, except `except`.
    fn deliver(&self, targets: &[&str], except: u64, frame: &Utf8Bytes) {
        let rooms = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let found: Vec<&HashMap<u64, Tx>> = targets.iter().filter_map(|r| rooms.get(*r)).collect();
        for (i, members) in found.iter().enumerate() {
            for (id, tx) in members.iter() {
                if *id == except || found[..i].iter().any(|m| m.contains_key(id)) {
                    continue;
                }
                let _ = tx.send(frame.clone());
            }
        }
    }
}

/// A 20-character id in socket.io's alphabet (base64url).
fn new_sid() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut x: u128 = rand::random();
    (0..20)
        .map(|_| {
            let c = ALPHABET[(x & 63) as usize] as char;
            x >>= 6;
            c
        })
        .collect()
}

/// Serializes `v` (infallible for the types used here).
fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

/// One connection's state.
struct Conn {
    id: u64,
    tx: Tx,
    rooms: Arc<Rooms>,
    user: Option<Arc<str>>,
    joined: Vec<String>,
}

impl Conn {
    fn join(&mut self, room: String) {
        if self.rooms.join(&room, self.id, &self.tx) {
            self.joined.push(room);
        }
    }

    /// Handles one Socket.IO packet (the text after the Engine.IO `4`), pushing the frames to
    /// send back on this connection to `out`. `Err` closes the connection.
    fn on_packet(&mut self, p: &str, out: &mut Vec<String>) -> Result<(), ()> {
        let (kind, rest) = match p.as_bytes().first() {
            Some(k) => (*k, &p[1..]),
            None => return Ok(()),
        };
        match kind {
            b'0' => {
                if rest.starts_with('/') {
                    let nsp = rest.split(',').next().unwrap_or(rest);
                    out.push(format!("44{nsp},{{\"message\":\"Invalid namespace\"}}"));
                    return Ok(());
                }
                if self.user.is_some() {
                    return Ok(());
                }
                let auth = serde_json::from_str::<Value>(rest).unwrap_or(Value::Null);
                let Some(user) = auth_user(&auth) else {
                    out.push("44{\"message\":\"unauthorized: invalid user id\"}".into());
                    return Ok(());
                };
                let user: Arc<str> = user.into();
                self.join(format!("user:{user}"));
                out.push(format!("40{{\"sid\":\"{}\"}}", new_sid()));
                let node = NODE_ID.get().map_or("", String::as_str);
                out.push(format!(
                    "42[\"ready\",{}]",
                    json(&Ready { user: &user, node })
                ));
                self.user = Some(user);
            }
            b'1' => return Err(()),
            b'2' if self.user.is_some() => self.on_event(rest, out),
            _ => {}
        }
        Ok(())
    }

    /// `<ack id>[event, data]` on the main namespace. Events without an ack id or without
    /// exactly one argument are ignored, as in server.js, and so are unknown events.
    fn on_event(&mut self, rest: &str, out: &mut Vec<String>) {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return;
        }
        let (ack_id, array) = rest.split_at(digits);
        // server.js's handlers are `(req, ack) => { if (typeof ack !== 'function') return; … }`:
        // they answer only `[event, req]` with an ack id.
        let Ok(mut args) = serde_json::from_str::<Vec<Value>>(array) else {
            return;
        };
        if args.len() != 2 {
            return;
        }
        let data = args.swap_remove(1);
        let reply = match args[0].as_str() {
            Some("message:send") => self.message_send(&data),
            Some("group:create") => match create_name(&data) {
                Ok(name) => {
                    let id = new_group_id();
                    self.join(format!("group:{id}"));
                    json(&CreateAck::new(
                        &id,
                        name,
                        self.user.as_deref().unwrap_or(""),
                    ))
                }
                Err(e) => json(&e),
            },
            Some("group:join") => match join_group(&data) {
                Ok(id) => {
                    self.join(format!("group:{id}"));
                    json(&JoinAck::new(id))
                }
                Err(e) => json(&e),
            },
            _ => return,
        };
        out.push(format!("43{ack_id}[{reply}]"));
    }

    fn message_send(&self, req: &Value) -> String {
        let user: &str = self.user.as_deref().unwrap_or("");
        let (message, target) = match prepare_send(user, req) {
            Ok(m) => m,
            Err(e) => return json(&e),
        };
        // Serialized once, for the deliveries and the ack (the shape of `SendAck`).
        let msg = json(&message);
        let frame = Utf8Bytes::from(format!("42[\"message\",{msg}]"));
        match target {
            // The recipient's devices and the sender's other devices.
            Target::User(to) => {
                let (a, b) = (format!("user:{to}"), format!("user:{user}"));
                self.rooms.deliver(&[&a, &b], self.id, &frame);
            }
            Target::Group(_) => self
                .rooms
                .deliver(&[&message.conversation], self.id, &frame),
        }
        format!("{{\"ok\":true,\"message\":{msg},\"duplicate\":false}}")
    }
}

// The signature is tungstenite's handshake `Callback`.
#[allow(clippy::result_large_err)]
fn check_path(req: &Request, resp: Response) -> Result<Response, ErrorResponse> {
    let uri = req.uri();
    let path_ok = matches!(uri.path(), "/socket.io/" | "/socket.io");
    let query = uri.query().unwrap_or("");
    let has = |kv: &str| query.split('&').any(|p| p == kv);
    if path_ok && has("EIO=4") && has("transport=websocket") {
        Ok(resp)
    } else {
        let mut r = ErrorResponse::new(Some("only /socket.io/?EIO=4&transport=websocket".into()));
        *r.status_mut() = StatusCode::BAD_REQUEST;
        Err(r)
    }
}

async fn serve(stream: TcpStream, rooms: Arc<Rooms>) {
    let _ = stream.set_nodelay(true);
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(16 * 1024)
        .max_message_size(Some(MAX_PAYLOAD))
        .max_frame_size(Some(MAX_PAYLOAD));
    let handshake = accept_hdr_async_with_config(stream, check_path, Some(config));
    let Ok(Ok(mut ws)) = tokio::time::timeout(Duration::from_secs(10), handshake).await else {
        return;
    };
    let open = format!(
        "0{{\"sid\":\"{}\",\"upgrades\":[],\"pingInterval\":{},\"pingTimeout\":{},\"maxPayload\":{}}}",
        new_sid(),
        PING_INTERVAL.as_millis(),
        PING_TIMEOUT.as_millis(),
        MAX_PAYLOAD
    );
    if ws.send(Message::text(open)).await.is_err() {
        return;
    }
    let (tx, mut rx) = mpsc::unbounded_channel::<Utf8Bytes>();
    let mut conn = Conn {
        id: NEXT_CONN.fetch_add(1, Ordering::Relaxed),
        tx,
        rooms,
        user: None,
        joined: Vec::new(),
    };
    let ping = sleep(PING_INTERVAL);
    tokio::pin!(ping);
    let mut last_ping = Instant::now();
    let mut pong_pending = false;
    let mut replies: Vec<String> = Vec::new();
    loop {
        tokio::select! {
            msg = ws.next() => {
                let text = match msg {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                    Some(Ok(_)) => continue,
                };
                let t = text.as_str();
                let close = match t.as_bytes().first() {
                    Some(b'3') if pong_pending => {
                        pong_pending = false;
                        ping.as_mut().reset(last_ping + PING_INTERVAL);
                        false
                    }
                    Some(b'2') => {
                        replies.push("3".into());
                        false
                    }
                    Some(b'1') => true,
                    Some(b'4') => conn.on_packet(&t[1..], &mut replies).is_err(),
                    _ => false,
                };
                if close {
                    break;
                }
                if !replies.is_empty() {
                    let mut failed = false;
                    for r in replies.drain(..) {
                        if ws.feed(Message::text(r)).await.is_err() {
                            failed = true;
                            break;
                        }
                    }
                    if failed || ws.flush().await.is_err() {
                        break;
                    }
                }
            }
            frame = rx.recv() => {
                let Some(frame) = frame else { break };
                if ws.feed(Message::Text(frame)).await.is_err() {
                    break;
                }
                let mut failed = false;
                for _ in 1..WRITE_BATCH {
                    match rx.try_recv() {
                        Ok(f) => {
                            if ws.feed(Message::Text(f)).await.is_err() {
                                failed = true;
                                break;
                            }
                        }
                        Err(_) => break,
                    }
                }
                if failed || ws.flush().await.is_err() {
                    break;
                }
            }
            () = &mut ping => {
                if pong_pending {
                    break; // ping timeout
                }
                if ws.send(Message::text("2")).await.is_err() {
                    break;
                }
                pong_pending = true;
                last_ping = Instant::now();
                ping.as_mut().reset(last_ping + PING_TIMEOUT);
            }
        }
    }
    conn.rooms.leave_all(&conn.joined, conn.id);
    let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = env_or("PORT", "3000").parse()?;
    let host = env_or("HOST", "127.0.0.1");
    let node_id = env_or("NODE_ID", &format!("{:08x}", rand::random::<u32>()));
    let _ = NODE_ID.set(node_id.clone());

    let addr: SocketAddr = format!("{host}:{port}").parse()?;
    let listener = TcpListener::bind(addr).await?;
    eprintln!("ceiling-peer {node_id} listening on {addr}");

    let rooms = Arc::new(Rooms::default());
    // The accept loop runs on the runtime's workers like everything else; `main`'s thread
    // only waits for the signal.
    let accept = tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(serve(stream, rooms.clone()));
                }
                Err(e) => {
                    eprintln!("ceiling-peer: accept: {e}");
                    sleep(Duration::from_millis(10)).await;
                }
            }
        }
    });
    shutdown_signal().await?;
    accept.abort();
    eprintln!("ceiling-peer {node_id} stopped");
    Ok(())
}
