//! The Socket.IO Admin UI (`@socket.io/admin-ui`, version 0.5) against the whole cluster:
//! its server side, the namespace `/admin`, and its page at `/admin/`.
//!
//! Off unless `CHAT_ADMIN_UI_USER` and `CHAT_ADMIN_UI_PASSWORD` are set. The UI logs in with
//! the handshake `auth` `{username, password}` (or the session id this node gave it), gets
//! `config` and `all_sockets` (every node's sockets, through the cluster adapter's
//! `fetch_sockets`), then live updates. Every node looks at its own sockets each second and
//! broadcasts what changed (`socket_connected`, `socket_disconnected`, `room_joined`,
//! `room_left`) and, every two seconds, its `server_stats` to the `/admin` namespace, which the
//! adapter carries to the admins on every node; it does so only while an admin is logged in
//! somewhere. Of the UI's commands only `_disconnect` is accepted: `join`, `leave` and
//! `emit` would put a socket in a conversation's room or hand a client a forged chat event
//! past every check of the chat, so the UI shows no such buttons. Chat event payloads are
//! never sent to the UI (no `event_received`/`event_sent`). `docs/admin-ui.md` has the rest.

mod auth;
mod sockets;

use std::{
    collections::HashMap,
    path::Path,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use axum::{
    Router,
    http::StatusCode,
    response::{Html, IntoResponse, Redirect},
    routing::get,
};
use chat_core::server::Io;
use serde_json::{Value, json};
use socketioxide::{
    adapter::Emitter,
    extract::{Data, SocketRef, TryData},
    handler::ConnectHandler,
};
use tokio_util::sync::CancellationToken;
use tower_http::services::ServeDir;

pub use auth::AdminCredentials;
use auth::{AdminAuth, Gate, Login};
use sockets::LocalSocket;

type Socket = SocketRef<chat_core::adapter::ChatAdapter<Emitter>>;

/// The Admin UI's namespace.
const ADMIN_NS: &str = "/admin";
/// The namespaces the UI lists: the chat's and its own.
const NAMESPACES: [&str; 2] = ["/", ADMIN_NS];
/// What the UI may do: disconnect a socket or a room's sockets; see the sockets (with
/// `ALL_EVENTS`, which only turns on the UI's socket, room and event pages here: no event
/// payload is ever sent) and the connection counts.
const FEATURES: [&str; 4] = [
    "DISCONNECT",
    "MDISCONNECT",
    "AGGREGATED_EVENTS",
    "ALL_EVENTS",
];
/// Socket changes one node broadcasts per second at most; past it the rest are dropped
/// (with a warning) and the UI is behind until it logs in again.
const MAX_CHANGES_PER_TICK: usize = 500;

/// The Admin UI's server side on this node.
#[derive(Debug)]
pub struct AdminUi {
    io: Io,
    node: String,
    gate: Gate,
    started: Instant,
    /// This node's sockets at the last tick.
    snapshot: Mutex<HashMap<String, LocalSocket>>,
    /// `(second in ms, type, subType) → count` since the last `server_stats`.
    events: Mutex<HashMap<(u64, &'static str, &'static str), u64>>,
}

impl AdminUi {
    /// Adds the `/admin` namespace to `io` and starts this node's updates, until `stop`.
    pub fn start(io: Io, node: String, credentials: AdminCredentials, stop: CancellationToken) {
        let admin = Arc::new(Self {
            io: io.clone(),
            node,
            gate: Gate::new(credentials),
            started: Instant::now(),
            snapshot: Mutex::default(),
            events: Mutex::default(),
        });
        let (on_connect, check) = (admin.clone(), admin.clone());
        let handler = move |s: Socket| {
            let admin = on_connect.clone();
            async move { admin.on_connect(s).await }
        };
        let middleware = move |s: Socket, TryData(auth): TryData<AdminAuth>| {
            let admin = check.clone();
            async move {
                let auth = auth.unwrap_or_default();
                let login = admin.gate.check(&auth).inspect_err(|e| {
                    tracing::warn!(socket = %s.id, cause = %e, "admin ui: login refused");
                })?;
                s.extensions.insert(login);
                Ok::<(), auth::Refused>(())
            }
        };
        io.ns(ADMIN_NS, handler.with(middleware));
        tokio::spawn(admin.run(stop));
    }

    async fn on_connect(self: Arc<Self>, s: Socket) {
        tracing::info!(socket = %s.id, "admin ui: logged in");
        if let Some(Login::NewSession(id)) = s.extensions.remove::<Login>() {
            let _ = s.emit("session", &id);
        }
        let _ = s.emit("config", &json!({ "supportedFeatures": FEATURES }));
        let io = self.io.clone();
        s.on(
            "_disconnect",
            move |admin: Socket, Data((nsp, _close, filter)): Data<(String, bool, String)>| {
                let io = io.clone();
                async move {
                    tracing::info!(admin = %admin.id, %nsp, %filter, "admin ui: disconnect");
                    if let Some(ns) = io.of(&nsp)
                        && let Err(e) = ns.within(filter).disconnect().await
                    {
                        tracing::warn!(cause = %e, "admin ui: disconnect failed");
                    }
                }
            },
        );
        let _ = s.emit("server_stats", &self.stats(Vec::new()));
        let before = self.snapshot_now();
        let mine = sockets::local(&self.io, &before);
        let all = sockets::all(&self.io, &self.node, &mine).await;
        let _ = s.emit("all_sockets", &all);
    }

    fn snapshot_now(&self) -> HashMap<String, LocalSocket> {
        self.snapshot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        for n in 0u64.. {
            tokio::select! {
                _ = every.tick() => {}
                () = stop.cancelled() => break,
            }
            self.tick(n % 2 == 0).await;
        }
    }

    /// One look at this node's sockets; what changed goes to the admins, if there are any.
    async fn tick(&self, with_stats: bool) {
        let before = self.snapshot_now();
        let after = sockets::local(&self.io, &before);
        let changes = sockets::diff(&before, &after);
        *self.snapshot.lock().unwrap_or_else(|p| p.into_inner()) = after;
        let second = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() * 1000);
        {
            let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
            let chat = |s: &&LocalSocket| s.nsp == "/";
            let up = changes.connected.iter().filter(chat).count() as u64;
            let down = changes.disconnected.iter().filter(chat).count() as u64;
            if up > 0 {
                *events.entry((second, "rawConnection", "")).or_default() += up;
            }
            if down > 0 {
                *events.entry((second, "rawDisconnection", "")).or_default() += down;
            }
        }
        let aggregated = if with_stats {
            std::mem::take(&mut *self.events.lock().unwrap_or_else(|p| p.into_inner()))
        } else {
            HashMap::new()
        };
        if !self.watched().await {
            return;
        }
        let Some(admins) = self.io.of(ADMIN_NS) else {
            return;
        };
        let now = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        let total = changes.connected.len()
            + changes.disconnected.len()
            + changes.joined.len()
            + changes.left.len();
        if total > MAX_CHANGES_PER_TICK {
            tracing::warn!(
                changes = total,
                max = MAX_CHANGES_PER_TICK,
                "admin ui: too many socket changes this second, some not shown"
            );
        }
        // Tuples: socketioxide sends a tuple's items as the event's arguments.
        let mut budget = MAX_CHANGES_PER_TICK;
        macro_rules! send {
            ($event:literal, $args:expr) => {
                if budget > 0 {
                    budget -= 1;
                    if let Err(e) = admins.clone().emit($event, &$args).await {
                        tracing::debug!(cause = %e, "admin ui: update not sent");
                    }
                }
            };
        }
        for s in &changes.connected {
            send!("socket_connected", (s.serialize(&self.node), &now));
        }
        for s in &changes.disconnected {
            send!("socket_disconnected", (s.nsp, &s.id, "disconnected", &now));
        }
        for (nsp, room, id) in &changes.joined {
            send!("room_joined", (nsp, room, id, &now));
        }
        for (nsp, room, id) in &changes.left {
            send!("room_left", (nsp, room, id, &now));
        }
        if with_stats {
            let aggregated = aggregated
                .into_iter()
                .map(|((timestamp, kind, sub), count)| {
                    json!({ "timestamp": timestamp, "type": kind, "subType": (!sub.is_empty()).then_some(sub), "count": count })
                })
                .collect();
            if let Err(e) = admins.emit("server_stats", &self.stats(aggregated)).await {
                tracing::debug!(cause = %e, "admin ui: stats not sent");
            }
        }
    }

    /// Whether an admin is logged in on any node (one cluster request).
    async fn watched(&self) -> bool {
        let Some(admins) = self.io.of(ADMIN_NS) else {
            return false;
        };
        if !admins.clone().sockets().is_empty() {
            return true;
        }
        admins
            .fetch_sockets()
            .await
            .is_ok_and(|sockets| !sockets.is_empty())
    }

    /// The UI's `server_stats` for this node.
    fn stats(&self, aggregated: Vec<Value>) -> Value {
        let (mut clients, mut polling) = (0usize, 0usize);
        let mut namespaces = Vec::new();
        for nsp in NAMESPACES {
            let sockets = self.io.of(nsp).map(|ns| ns.sockets()).unwrap_or_default();
            polling += sockets
                .iter()
                .filter(|s| s.transport_type() == socketioxide::TransportType::Polling)
                .count();
            clients += sockets.len();
            namespaces.push(json!({ "name": nsp, "socketsCount": sockets.len() }));
        }
        json!({
            "serverId": self.node,
            "hostname": hostname().unwrap_or_else(|| self.node.clone()),
            "pid": std::process::id(),
            "uptime": self.started.elapsed().as_secs_f64(),
            "clientsCount": clients,
            "pollingClientsCount": polling,
            "aggregatedEvents": aggregated,
            "namespaces": namespaces,
        })
    }
}

fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
}

/// The UI's page at `/admin/`: the files of `@socket.io/admin-ui`'s `ui/dist`, which the web
/// client's build copies to `{web_dir}/admin`. With the UI off, `/admin` answers 404.
pub fn routes(enabled: bool, web_dir: Option<&Path>) -> Router {
    let page = web_dir
        .filter(|dir| dir.join("admin/index.html").is_file())
        .map(Path::to_path_buf);
    let router = Router::new().route("/admin", get(|| async { Redirect::permanent("/admin/") }));
    match (enabled, page) {
        (true, Some(dir)) => router
            .route_service("/admin/", ServeDir::new(&dir))
            .route_service("/admin/{*path}", ServeDir::new(dir)),
        (true, None) => router
            .route("/admin/", get(not_built))
            .route("/admin/{*path}", get(not_built)),
        (false, _) => Router::new()
            .route("/admin", get(off))
            .route("/admin/", get(off))
            .route("/admin/{*path}", get(off)),
    }
}

async fn not_built() -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        Html(concat!(
            "<!doctype html><meta charset=utf-8><title>Admin UI</title>",
            "<p>The Admin UI's page is not built: run <code>npm --prefix web-client ci &amp;&amp; ",
            "npm --prefix web-client run build</code> (it copies <code>@socket.io/admin-ui</code>'s ",
            "page to <code>web-client/dist/admin</code>) and restart.</p>"
        )),
    )
}

async fn off() -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        "the admin ui is off: set CHAT_ADMIN_UI_USER and CHAT_ADMIN_UI_PASSWORD\n",
    )
}
