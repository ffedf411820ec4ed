//! Assembles axum and socketioxide: the embeddable [`Chat`], built by [`ChatBuilder`]
//! (`builder`), and its [`ChatHandle`].

mod builder;

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use axum::{Json, Router, extract::State, http::StatusCode, response::IntoResponse};
use serde_json::json;
use socketioxide::{SocketIo, adapter::Emitter};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    adapter::ChatAdapter,
    auth::Authenticator,
    cluster::Cluster,
    config::Config,
    handlers::{self, Ctx},
    hooks::Hooks,
    metrics::Metrics,
    protocol::events,
    store::{Stores, memory::MemoryStore},
};

/// An embeddable chat: mount [`Chat::router`] in any axum app, keep the [`ChatHandle`]
/// to shut it down.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let chat = chat_core::Chat::builder(chat_core::Config::default()).build().await?;
/// let app = axum::Router::new().merge(chat.router());
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
/// axum::serve(listener, app).await?;
/// # Ok(()) }
/// ```
///
/// [`crate::serve::serve`] serves the same app over HTTP/1.1 only, with less memory per
/// connection (hyper's buffers: a long-polling client keeps two connections) and a bounded
/// graceful stop; the binaries use it.
#[derive(Debug)]
pub struct Chat {
    router: Router,
    handle: ChatHandle,
}

/// How long shutdown waits for the hook tasks (the event hooks told the last events, the
/// webhooks queued in Redis, those being sent handed over) and the archive's writer (what
/// is queued in memory written).
const HOOKS_STOP: Duration = Duration::from_secs(10);

/// How long shutdown spends, once the drain timeout is over, recording the sockets still
/// connected as gone: their users offline for subscribers and the hooks.
const LEAVE_STOP: Duration = Duration::from_secs(5);

/// The Socket.IO server type of a chat: socketioxide with the cluster adapter.
pub type Io = SocketIo<ChatAdapter<Emitter>>;

/// Builds a [`Chat`] from a [`Config`], with the embedder's seams: its own
/// [`Authenticator`], a [`MessageHook`](crate::hooks::MessageHook),
/// [`EventHook`](crate::hooks::EventHook)s and stores.
#[derive(Debug)]
pub struct ChatBuilder {
    config: Config,
    metrics: Metrics,
    authenticator: Option<Arc<dyn Authenticator>>,
    hooks: Hooks,
    stores: Option<Stores>,
    archive: Option<(
        Arc<dyn crate::archive::Archive>,
        crate::archive::ArchiveConfig,
    )>,
}

/// Controls a running chat: connection count and graceful shutdown.
#[derive(Debug, Clone)]
pub struct ChatHandle {
    pub(crate) io: Io,
    pub(crate) ctx: Arc<Ctx>,
    /// The embedded store, which must refuse writes once shutdown starts.
    memory: Option<Arc<MemoryStore>>,
    drain_timeout: Duration,
    /// Stops the delivery tasks (after they wrote what is queued).
    stop: CancellationToken,
    /// The event hook task and the webhook tasks: awaited on shutdown, so that the hooks are
    /// told the last events (users going offline as the node stops), the webhooks are
    /// queued in Redis and what this node was sending is handed over.
    hook_tasks: TaskTracker,
}

/// Errors of [`ChatBuilder::build`] (and of serving a chat, in the binaries).
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Binding or serving failed.
    #[error("server i/o failed")]
    Io(#[from] std::io::Error),
    /// The Redis settings are unusable.
    #[error("bad redis settings")]
    Redis(#[from] ::redis::RedisError),
    /// Joining the cluster failed (Redis unreachable?).
    #[error("cannot join the cluster")]
    Cluster(#[from] crate::cluster::ClusterError),
    /// `auth_public_key` is not a usable public key.
    #[error("bad auth public key")]
    AuthKey(#[from] crate::auth::KeyError),
    /// The webhook settings are unusable.
    #[error("bad webhook settings")]
    Webhook(#[from] crate::webhooks::WebhookError),
    /// The archive cannot start (the database unreachable, a migration failed).
    #[error("cannot start the archive")]
    Archive(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl Chat {
    /// Starts building a chat. Its metrics handles are resolved here, against the recorder
    /// current now (see [`crate::metrics`]): for a recorder of its own, call this inside
    /// `metrics::with_local_recorder`.
    pub fn builder(config: Config) -> ChatBuilder {
        let metrics = match config.redis {
            Some(_) => Metrics::resolve(),
            None => Metrics::embedded(),
        };
        let metrics = match config.webhook {
            Some(_) => metrics,
            None => metrics.without_webhooks(),
        };
        ChatBuilder {
            config,
            metrics,
            authenticator: None,
            hooks: Hooks::default(),
            stores: None,
            archive: None,
        }
    }

    /// The routes to mount: Socket.IO at `/socket.io/` and `GET /healthz`, with CORS.
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// The handle for connection counts and shutdown.
    pub fn handle(&self) -> ChatHandle {
        self.handle.clone()
    }
}

impl ChatHandle {
    /// The cluster this node belongs to, in cluster mode.
    pub fn cluster(&self) -> Option<Arc<Cluster>> {
        self.ctx.cluster.clone()
    }

    /// The Socket.IO server, for an embedder's own namespaces beside the chat's `/` (the
    /// chat-server's Admin UI namespace, `/admin`). Their broadcasts, `fetch_sockets` and
    /// remote actions span the cluster like the chat's.
    pub fn io(&self) -> &Io {
        &self.io
    }

    /// Sockets connected to this node.
    pub fn connections(&self) -> usize {
        // After `close` the namespace is gone, and with it every socket.
        self.io.of("/").map_or(0, |ns| ns.sockets().len())
    }

    /// Brings the metrics chat-core cannot keep current by itself up to date: sockets by
    /// transport (a walk over this node's sockets), the capacity, and in a cluster its
    /// counters and inbox length (one Redis call). Call it before each scrape.
    pub async fn update_metrics(&self) {
        let m = &self.ctx.metrics;
        let (mut websocket, mut polling) = (0usize, 0usize);
        if let Some(ns) = self.io.of("/") {
            for s in ns.sockets() {
                match s.transport_type() {
                    socketioxide::TransportType::Websocket => websocket += 1,
                    socketioxide::TransportType::Polling => polling += 1,
                }
            }
        }
        m.connections_websocket.set(websocket as f64);
        m.connections_polling.set(polling as f64);
        m.capacity.set(self.ctx.capacity as f64);
        if let Some(a) = &self.ctx.archive {
            a.update_metrics();
        }
        if let Some(c) = &self.ctx.cluster {
            c.update_metrics().await;
        }
    }

    /// Drains and closes: refuses new connections and writes, tells every socket of this node
    /// to reconnect (`drain`; other nodes' sockets are not told anything), waits up to the
    /// drain timeout for them to leave, records the rest as gone (their users offline for
    /// subscribers and the hooks, unless they have a device on another node), closes them,
    /// waits for the hooks, leaves the cluster.
    pub async fn shutdown(&self) {
        self.ctx.draining.store(true, Ordering::SeqCst);
        if let Some(c) = &self.ctx.cluster {
            c.set_draining();
        }
        // In memory, anything accepted from now on would die with the process.
        if let Some(m) = &self.memory {
            m.close();
        }
        let n = self.connections();
        tracing::info!(connections = n, timeout = ?self.drain_timeout, "draining");
        // This node's sockets only: the adapter would take a plain `emit` to every node, and a
        // rolling restart would move every client of the cluster.
        if let Err(e) = self
            .io
            .local()
            .emit(events::DRAIN, &json!({ "reconnect": true }))
            .await
        {
            tracing::warn!(cause = %e, "cannot send drain");
        }
        let deadline = tokio::time::Instant::now() + self.drain_timeout;
        while self.connections() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let left = self.connections();
        // Before closing: the disconnect handlers socketioxide spawns then would race the
        // rest of this shutdown (the hook queue closing, the cluster leaving, the process
        // exiting), and their users would stay online.
        if tokio::time::timeout(LEAVE_STOP, handlers::leave_all(&self.ctx, &self.io))
            .await
            .is_err()
        {
            tracing::warn!(
                sockets = left,
                "presence still being recorded at shutdown; some users may stay online"
            );
        }
        self.io.close().await;
        tracing::info!(closed = left, "socket.io closed");
        self.stop.cancel();
        self.hook_tasks.close();
        if tokio::time::timeout(HOOKS_STOP, self.hook_tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("hook tasks still busy at shutdown");
        }
        if let Some(c) = &self.ctx.cluster {
            c.shutdown().await;
        }
    }
}

async fn healthz(State(h): State<ChatHandle>) -> impl IntoResponse {
    let draining = h.ctx.is_draining();
    let status = if draining {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let body = json!({
        "status": if draining { "draining" } else { "ok" },
        "node": h.ctx.node_id,
        "connections": h.connections(),
    });
    (status, Json(body))
}
