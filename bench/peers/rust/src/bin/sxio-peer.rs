//! `sxio-peer`: benchmark peer, a minimal socketioxide 0.18 server clustered through
//! `socketioxide-redis` (Redis pub/sub, RESP3).
//!
//! Implements the benchmarked subset of docs/protocol.md exactly like
//! `bench/peers/node/server.js`, nothing more:
//!   - dev auth: `{user}` in the handshake auth object; the socket joins room `user:<id>`; `ready`
//!   - `message:send {to|group, body, clientId?}` -> `message` to `user:<to>` (+ the sender's
//!     other devices) or to `group:<id>`; ack `{ok: true, message, duplicate: false}`
//!   - `group:create {name}` -> joins `group:<id>`; `group:join {group}` -> joins `group:<id>`
//!
//! No persistence, no membership checks, no rate limits, no receipts (`message` is emitted
//! without an ack request). Like server.js, handlers answer only events sent with an ack id
//! and exactly one argument, and ignore the others.
//!
//! Tuning: no compression (socketioxide has none), TCP_NODELAY, max payload 1e6 bytes (Node's
//! default), per-socket send buffer of 8192 packets and an adapter receive buffer of 65536
//! messages (socketioxide-redis drops what does not fit, with a warning; Node buffers without
//! bound).
//!
//! Environment: PORT (default 3000), HOST (default 127.0.0.1), REDIS_URL (default
//! redis://127.0.0.1:6379; `protocol=resp3` is added), NODE_ID (default: random).
//! One Tokio runtime; `TOKIO_WORKER_THREADS` sets its worker count. Exits on SIGTERM/SIGINT.

use std::{
    convert::Infallible,
    future::{Future, ready},
    net::SocketAddr,
    sync::{Arc, OnceLock},
    time::Duration,
};

use bench_peers::{
    CreateAck, JoinAck, Ready, SendAck, Target, auth_user, create_name, env_or, join_group,
    new_group_id, prepare_send, shutdown_signal,
};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::de::IgnoredAny;
use serde_json::Value;
use socketioxide::{
    SocketIo,
    adapter::{Adapter, Emitter},
    extract::{AckSender, SocketRef, TryData},
    handler::{ConnectHandler, FromMessageParts},
    socket::Socket,
};
use socketioxide_redis::{
    RedisAdapter, RedisAdapterConfig, RedisAdapterCtr, drivers::redis::redis_client as redis,
};
use tokio::net::TcpListener;

type Adp = RedisAdapter<Emitter>;

static NODE_ID: OnceLock<String> = OnceLock::new();

/// Whether server.js would answer: its handlers are `(req, ack) => { if (typeof ack !==
/// 'function') return; … }`, so they act only when the client asked for an acknowledgement
/// and sent exactly one argument.
struct Answerable(bool);

impl<A: Adapter> FromMessageParts<A> for Answerable {
    type Error = Infallible;
    fn from_message_parts(
        _: &Arc<Socket<A>>,
        v: &mut socketioxide::handler::Value,
        ack_id: &Option<i64>,
    ) -> Result<Self, Infallible> {
        // `["event", arg]`: count the elements without building them.
        let one_arg = ack_id.is_some()
            && v.as_str()
                .and_then(|s| serde_json::from_str::<Vec<IgnoredAny>>(s).ok())
                .is_some_and(|a| a.len() == 2);
        Ok(Answerable(one_arg))
    }
}

/// Connect middleware: the `io.use` of server.js.
async fn authenticate(TryData(auth): TryData<Value>) -> Result<(), &'static str> {
    match auth.ok().as_ref().and_then(auth_user) {
        Some(_) => Ok(()),
        None => Err("unauthorized: invalid user id"),
    }
}

/// Not `async`: rooms and handlers are in place before the socket's first event is handled.
fn on_connect(s: SocketRef<Adp>, TryData(auth): TryData<Value>) -> impl Future<Output = ()> {
    let Some(user) = auth.ok().as_ref().and_then(auth_user).map(Arc::<str>::from) else {
        let _ = s.disconnect();
        return ready(());
    };
    s.join(format!("user:{user}"));

    let u = user.clone();
    s.on(
        "message:send",
        move |s: SocketRef<Adp>,
              TryData(req): TryData<Value>,
              Answerable(answer),
              ack: AckSender<Adp>| {
            message_send(s, u, req.unwrap_or(Value::Null), answer, ack)
        },
    );
    let u = user.clone();
    s.on(
        "group:create",
        move |s: SocketRef<Adp>,
              TryData(req): TryData<Value>,
              Answerable(answer),
              ack: AckSender<Adp>| {
            if answer {
                let req = req.unwrap_or(Value::Null);
                let _ = match create_name(&req) {
                    Ok(name) => {
                        let id = new_group_id();
                        s.join(format!("group:{id}"));
                        ack.send(&CreateAck::new(&id, name, &u))
                    }
                    Err(e) => ack.send(&e),
                };
            }
            ready(())
        },
    );
    s.on(
        "group:join",
        move |s: SocketRef<Adp>,
              TryData(req): TryData<Value>,
              Answerable(answer),
              ack: AckSender<Adp>| {
            if answer {
                let req = req.unwrap_or(Value::Null);
                let _ = match join_group(&req) {
                    Ok(id) => {
                        s.join(format!("group:{id}"));
                        ack.send(&JoinAck::new(id))
                    }
                    Err(e) => ack.send(&e),
                };
            }
            ready(())
        },
    );

    let node = NODE_ID.get().map_or("", String::as_str);
    let _ = s.emit("ready", &Ready { user: &user, node });
    ready(())
}

async fn message_send(
    s: SocketRef<Adp>,
    user: Arc<str>,
    req: Value,
    answer: bool,
    ack: AckSender<Adp>,
) {
    if !answer {
        return;
    }
    let (message, target) = match prepare_send(&user, &req) {
        Ok(m) => m,
        Err(e) => {
            let _ = ack.send(&e);
            return;
        }
    };
    let sent = match target {
        // The recipient's devices and the sender's other devices.
        Target::User(to) => {
            s.to([format!("user:{to}"), format!("user:{user}")])
                .emit("message", &message)
                .await
        }
        Target::Group(_) => {
            s.to(message.conversation.clone())
                .emit("message", &message)
                .await
        }
    };
    if let Err(e) = sent {
        // server.js does not look at the adapter's result either; say so in the log.
        eprintln!("sxio-peer: emit failed: {e}");
    }
    let _ = ack.send(&SendAck::new(&message));
}

/// The redis driver of socketioxide-redis needs RESP3 (push messages on a multiplexed
/// connection).
fn resp3(url: &str) -> String {
    if url.contains("protocol=") {
        url.to_string()
    } else if url.contains('?') {
        format!("{url}&protocol=resp3")
    } else {
        format!("{url}?protocol=resp3")
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = env_or("PORT", "3000").parse()?;
    let host = env_or("HOST", "127.0.0.1");
    let redis_url = resp3(&env_or("REDIS_URL", "redis://127.0.0.1:6379"));
    let node_id = env_or("NODE_ID", &format!("{:08x}", rand::random::<u32>()));
    let _ = NODE_ID.set(node_id.clone());

    let client = redis::Client::open(redis_url.as_str())?;
    let config = RedisAdapterConfig::new().with_stream_buffer(65_536);
    let adapter = RedisAdapterCtr::new_with_redis_config(&client, config).await?;
    let (svc, io) = SocketIo::builder()
        .with_adapter::<Adp>(adapter)
        .max_payload(1_000_000)
        .ws_max_message_size(1_000_000)
        .ws_max_frame_size(1_000_000)
        .max_buffer_size(8192)
        .build_svc();
    io.ns("/", on_connect.with(authenticate))
        .await
        .map_err(|e| format!("redis adapter: {e:?}"))?;

    let addr: SocketAddr = format!("{host}:{port}").parse()?;
    let listener = TcpListener::bind(addr).await?;
    eprintln!("sxio-peer {node_id} listening on {addr}");

    // The accept loop runs on the runtime's workers like everything else; `main`'s thread
    // only waits for the signal.
    let accept = tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let svc = svc.clone();
                    tokio::spawn(async move {
                        let _ = http1::Builder::new()
                            .timer(TokioTimer::new())
                            .serve_connection(TokioIo::new(stream), svc)
                            .with_upgrades()
                            .await;
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait a little, keep serving.
                    eprintln!("sxio-peer: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    });
    shutdown_signal().await?;
    accept.abort();
    let _ = tokio::time::timeout(Duration::from_secs(2), io.close()).await;
    eprintln!("sxio-peer {node_id} stopped");
    Ok(())
}
