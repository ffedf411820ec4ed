//! Assembles axum and socketioxide: the embeddable [`Chat`].

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use axum::{
    Json, Router,
    extract::State,
    http::{HeaderValue, Method, StatusCode},
    response::IntoResponse,
    routing::get,
};
use serde_json::json;
use socketioxide::{ParserConfig, SocketIo, SocketIoConfig, adapter::Emitter};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};

use axum::http::HeaderName;

use crate::{
    adapter::{AdapterState, ChatAdapter},
    auth::{Authenticator, Development, Jwt},
    cluster::{Cluster, ClusterConfig, NodeInfo},
    config::Config,
    handlers::{self, Ctx},
    hooks::{EventHook, HookConfig, Hooks, MessageHook},
    metrics::Metrics,
    protocol::events,
    redis::Redis,
    store::{Stores, memory::MemoryStore, redis::RedisStore},
    webhooks::{self, StreamQueue},
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

/// Binary attachments one Socket.IO packet may announce (their bytes together are bounded
/// by [`Limits::max_payload`](crate::Limits::max_payload)).
const MAX_ATTACHMENTS: usize = 4;

/// How long shutdown waits for the hook tasks (the event hooks told the last events, the
/// webhooks queued in Redis, those being sent handed over).
const HOOKS_STOP: Duration = Duration::from_secs(5);

/// How long shutdown spends, once the drain timeout is over, recording the sockets still
/// connected as gone: their users offline for subscribers and the hooks.
const LEAVE_STOP: Duration = Duration::from_secs(5);

/// The Socket.IO server type of a chat: socketioxide with the cluster adapter.
pub type Io = SocketIo<ChatAdapter<Emitter>>;

/// Builds a [`Chat`] from a [`Config`], with the embedder's seams: its own
/// [`Authenticator`], a [`MessageHook`], [`EventHook`]s and stores.
#[derive(Debug)]
pub struct ChatBuilder {
    config: Config,
    metrics: Metrics,
    authenticator: Option<Arc<dyn Authenticator>>,
    hooks: Hooks,
    stores: Option<Stores>,
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

impl ChatBuilder {
    /// Authenticates connecting clients with `authenticator` instead of the configured
    /// development mode or JWT keys.
    pub fn authenticator(mut self, authenticator: impl Authenticator) -> Self {
        self.authenticator = Some(Arc::new(authenticator));
        self
    }

    /// Shows every message to `hook` before it is stored (one hook; a later call replaces it).
    pub fn message_hook(mut self, hook: impl MessageHook) -> Self {
        self.hooks.message = Some(Arc::new(hook));
        self
    }

    /// Tells `hook` what happens (messages stored, users online and offline, devices
    /// connecting and leaving), after the fact, on the chat's hook task.
    pub fn event_hook(mut self, hook: impl EventHook) -> Self {
        self.hooks.events.push(Arc::new(hook));
        self
    }

    /// The hook queue's settings.
    pub fn hook_config(mut self, config: HookConfig) -> Self {
        self.hooks.config = config;
        self
    }

    /// Runs on these stores instead of the built-in ones (in memory, or in Redis with Redis
    /// settings). In cluster mode, the stores must be shared by every node, as the Redis
    /// ones are; see [`Stores`] for what must sit on the same data.
    pub fn stores(mut self, stores: Stores) -> Self {
        self.stores = Some(stores);
        self
    }

    /// Sets up storage and the Socket.IO server. With Redis settings, joins the cluster
    /// (Redis must answer) and keeps everything in Redis; otherwise embedded, in memory.
    /// With [`Config::webhook`], the webhook sender is one more event hook, after the
    /// embedder's ([`crate::webhooks`]).
    pub async fn build(mut self) -> Result<Chat, ServerError> {
        let (config, metrics) = (self.config, self.metrics);
        let stop = CancellationToken::new();
        let hook_tasks = TaskTracker::new();
        let authenticator = match self.authenticator {
            Some(a) => a,
            None => configured_authenticator(&config)?,
        };
        let mut sio = SocketIoConfig::default();
        let mut webhook_stream = None;
        let (mut stores, mut memory, cluster, events) = match &config.redis {
            None => {
                let memory = Arc::new(MemoryStore::new(&config.limits));
                (Stores::all_in(memory.clone()), Some(memory), None, None)
            }
            Some(settings) => {
                let redis = Redis::with_metrics(settings.target.clone(), metrics.redis.clone())?;
                let cluster_config = ClusterConfig {
                    prefix: settings.prefix.clone(),
                    metrics: metrics.cluster.clone(),
                    ..ClusterConfig::default()
                };
                let info = NodeInfo {
                    id: config.node_id.clone(),
                    url: config.public_url.clone(),
                    capacity: config.capacity,
                };
                let (cluster, events) = Cluster::start(redis.clone(), cluster_config, info).await?;
                let keys = crate::keys::Keys::new(settings.prefix.clone());
                webhook_stream = Some(StreamQueue::new(
                    redis.clone(),
                    &keys,
                    cluster.uid().to_string(),
                ));
                let store = RedisStore::new(redis, settings, &config.limits, cluster.uid());
                (
                    Stores::all_in(Arc::new(store)),
                    None,
                    Some(cluster),
                    Some(events),
                )
            }
        };
        if let Some(own) = self.stores {
            // The embedder's stores: nothing of the built-in memory store is used.
            stores = own;
            memory = None;
        }
        if let Some(c) = &cluster {
            // Remote sockets and requests name their node by this id.
            sio.server_id = c.uid();
        }
        if let Some(webhook) = &config.webhook {
            // The chat's own event hook, after the embedder's.
            let hook = webhooks::start(
                webhook,
                webhook_stream,
                metrics.webhook.clone(),
                &hook_tasks,
                stop.clone(),
            )?;
            self.hooks.events.push(Arc::new(hook));
        }
        let (delivered, receipt_queue) = handlers::delivery::receipt_queue();
        let (notices, notice_queue) = match self.hooks.events.is_empty() {
            true => (None, None),
            false => {
                let (tx, rx) = handlers::notify::queue(self.hooks.config.queue);
                (Some(tx), Some(rx))
            }
        };
        let (order, waits) = handlers::order::Sequencer::new(metrics.chat.order.clone());
        let ctx = Arc::new(Ctx {
            stores,
            limits: config.limits.clone(),
            node_id: config.node_id.clone(),
            auth: authenticator.clone(),
            message_hook: self.hooks.message.clone(),
            notices,
            delivery_ack_timeout: Duration::from_secs(10),
            delivered,
            order: Arc::new(order),
            expiries: Default::default(),
            typing: Default::default(),
            draining: Default::default(),
            cluster: cluster.clone(),
            capacity: config.capacity as usize,
            connected: Default::default(),
            socket_tasks: Default::default(),
            metrics: metrics.chat,
        });
        let (svc, io) = SocketIo::builder()
            .with_config(sio)
            .with_adapter::<ChatAdapter<Emitter>>(AdapterState(cluster.clone()))
            // Outgoing packets queued per socket. Room for a burst of acks (a full request
            // queue answers at once) on top of regular traffic. A client that falls further
            // behind is disconnected and catches up with `sync` when it reconnects.
            .max_buffer_size(1024)
            // Also bounds what a socket may hold for its client in bytes: 16 payloads (1 MiB
            // by default; engineioxide's `EngineIoConfig::max_buffer_bytes`). Past it the
            // socket is disconnected the same way.
            .max_payload(config.limits.max_payload)
            // Read in 256-byte steps: every idle WebSocket keeps this buffer (4 KiB by default),
            // and what clients send is small (requests, acks, pings). The cost is read calls:
            // tungstenite reads at most this much at a time, so a 2 KB frame takes 8.
            .ws_read_buffer_size(256)
            .ws_max_message_size(config.limits.max_payload as usize)
            .ws_max_frame_size(config.limits.max_payload as usize)
            // No chat event carries binary data. socketioxide's defaults let one packet announce
            // 10,000 attachments and buffer 10 MB of them per socket; a packet past these
            // bounds closes its connection, as an oversized packet does.
            .with_parser(
                ParserConfig::common()
                    .max_incoming_binaries(MAX_ATTACHMENTS)
                    .max_incoming_binary_buf_size(config.limits.max_payload as usize),
            )
            .with_state(ctx.clone())
            .build_svc();
        handlers::register(&io);
        tokio::spawn(handlers::delivery::send_delivered(
            ctx.clone(),
            io.clone(),
            receipt_queue,
            stop.clone(),
        ));
        tokio::spawn(handlers::order::fill_gaps(
            ctx.clone(),
            io.clone(),
            waits,
            stop.clone(),
        ));
        tokio::spawn(handlers::expiry::run(
            ctx.expiries.clone(),
            io.clone(),
            stop.clone(),
        ));
        if let Some(rx) = notice_queue {
            hook_tasks.spawn(handlers::notify::run(
                ctx.clone(),
                rx,
                self.hooks.events,
                stop.clone(),
            ));
        }
        if let Some(events) = events {
            tokio::spawn(handlers::delivery::handle_events(
                ctx.clone(),
                io.clone(),
                events,
                stop.clone(),
            ));
        }
        let handle = ChatHandle {
            io,
            ctx,
            memory,
            drain_timeout: config.drain_timeout,
            stop,
            hook_tasks,
        };
        // Explicit routes rather than a layer, so the router merges into any app, fallbacks
        // included. Engine.IO clients always request `/socket.io/`.
        let mut kept: Vec<HeaderName> = ENGINE_IO_HEADERS.to_vec();
        kept.extend(authenticator.headers());
        let kept: Arc<[HeaderName]> = kept.into();
        let mut router = Router::new().route_service(
            "/socket.io/",
            tower::ServiceExt::map_request(svc, move |req| detach_head(req, &kept)),
        );
        if !config.allow_eio3 {
            router = router.route_layer(axum::middleware::from_fn(crate::eio3::refuse));
        }
        let router = router
            .route("/healthz", get(healthz))
            .with_state(handle.clone())
            .layer(cors(config.cors_origins.as_deref()));
        Ok(Chat { router, handle })
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

/// The authenticator `config` describes: JWTs with a public key (`auth_public_key`) or a
/// secret (`auth_secret`), else development mode.
fn configured_authenticator(config: &Config) -> Result<Arc<dyn Authenticator>, ServerError> {
    Ok(match (&config.auth_public_key, &config.auth_secret) {
        (Some(pem), _) => Arc::new(Jwt::public_key_pem(pem)?),
        (None, Some(secret)) => Arc::new(Jwt::hs256(secret.as_bytes())),
        (None, None) => Arc::new(Development),
    })
}

/// Any origin when `origins` is unset or holds `*` (mirrored: a literal `*` cannot go with
/// credentials, and tower-http refuses it in a list), else exactly those listed.
fn cors(origins: Option<&[String]>) -> CorsLayer {
    let allow = match origins {
        None => AllowOrigin::mirror_request(),
        Some(list) if list.iter().any(|o| o == "*") => AllowOrigin::mirror_request(),
        Some(list) => AllowOrigin::list(
            list.iter()
                .filter_map(|o| HeaderValue::from_str(o).ok())
                .collect::<Vec<_>>(),
        ),
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_credentials(true)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers(AllowHeaders::mirror_request())
}

/// The request headers engineioxide reads: the WebSocket handshake's key, and a polling
/// `POST`'s content type (binary or text payloads).
const ENGINE_IO_HEADERS: [HeaderName; 2] = [
    axum::http::header::SEC_WEBSOCKET_KEY,
    axum::http::header::CONTENT_TYPE,
];

/// Copies a request's URI and header values out of the connection's read buffer, and keeps
/// only what the socket.io service reads of the request.
///
/// hyper parses them as slices of its HTTP/1 read buffer (8 KiB or more), and engineioxide keeps
/// the handshake request's head for the whole session, so every WebSocket and polling session
/// would pin that buffer after it is no longer read: the largest part of an idle connection's
/// memory. Copies cost a few hundred bytes, once per request.
///
/// The session keeps the head too, so it is kept small. Of the headers, only `kept`: those
/// the Engine.IO layer reads ([`ENGINE_IO_HEADERS`]) and those the authenticator names
/// ([`Authenticator::headers`]; the built-in ones read none: a client authenticates with the
/// `auth` payload of its Socket.IO connect, or a protocol v4 one with the URI's query, which
/// is always kept), and each kept header costs
/// an idle connection about 100 bytes for its whole life (a browser sends 10 to 15). The CORS
/// layer, outside this one, has seen them all. Of the extensions, only hyper's upgrade handle
/// (the WebSocket upgrade needs it; engineioxide does not keep it in the session). axum's
/// routing leaves (the matched path, the path parameters, `OriginalUri`) are dropped: the route
/// is already chosen, nothing past this reads them, and a session that keeps no extension
/// keeps no extension map (128 bytes, and 300 with the routing leaves).
fn detach_head<B>(req: axum::http::Request<B>, kept: &[HeaderName]) -> axum::http::Request<B> {
    use axum::http::{Extensions, Uri};
    let (mut parts, body) = req.into_parts();
    parts.uri = Uri::from_maybe_shared(bytes::Bytes::copy_from_slice(
        parts.uri.to_string().as_bytes(),
    ))
    .unwrap_or_else(|_| parts.uri.clone());
    let mut extensions = Extensions::new();
    if let Some(upgrade) = parts.extensions.remove::<hyper::upgrade::OnUpgrade>() {
        extensions.insert(upgrade);
    }
    parts.extensions = extensions;
    let mut headers = axum::http::HeaderMap::new();
    for (name, value) in parts.headers.iter().filter(|(name, _)| kept.contains(name)) {
        // A value hyper accepted but `HeaderValue` would not is kept as it is: never dropped.
        let mut copy = HeaderValue::from_bytes(value.as_bytes()).unwrap_or_else(|_| value.clone());
        copy.set_sensitive(value.is_sensitive());
        headers.append(name.clone(), copy);
    }
    // A map's capacity is rounded up to a power of two; a clone holds exactly its entries
    // (about 100 bytes each).
    parts.headers = headers.clone();
    axum::http::Request::from_parts(parts, body)
}

#[cfg(test)]
mod tests {
    use axum::{
        extract::OriginalUri,
        http::{HeaderValue, Request, Uri},
    };
    use bytes::Bytes;

    use super::detach_head;

    /// `CHAT_CORS_ORIGINS=*` allows any origin, as unset does, and a list allows only its
    /// origins (tower-http panics on a `*` in a list: the node would not start).
    #[test]
    fn cors_star_allows_any_origin() {
        use tower::ServiceExt;
        let preflight = |origin: &'static str| {
            axum::http::Request::builder()
                .method("OPTIONS")
                .uri("/")
                .header("origin", origin)
                .header("access-control-request-method", "GET")
                .body(axum::body::Body::empty())
                .unwrap()
        };
        let allowed = |layer: super::CorsLayer, origin: &'static str| {
            let app = axum::Router::new()
                .route("/", axum::routing::get(|| async { "" }))
                .layer(layer);
            let res = futures_util::FutureExt::now_or_never(app.oneshot(preflight(origin)))
                .expect("ready")
                .unwrap();
            res.headers()
                .get("access-control-allow-origin")
                .map(|v| v.to_str().unwrap().to_owned())
        };
        let star = ["*".to_owned()];
        assert_eq!(
            allowed(super::cors(Some(&star)), "http://a.example").as_deref(),
            Some("http://a.example")
        );
        let list = ["http://a.example".to_owned()];
        assert_eq!(allowed(super::cors(Some(&list)), "http://b.example"), None);
        assert_eq!(
            allowed(super::cors(None), "http://b.example").as_deref(),
            Some("http://b.example")
        );
    }

    /// The detached request shares no byte with hyper's read buffer, and keeps its URI and the
    /// headers engineioxide reads, but not the headers and extensions the socket.io service
    /// never reads.
    #[test]
    fn detached_head_keeps_nothing_of_the_read_buffer() {
        // What hyper does: the head's parts are slices of one read buffer.
        let text =
            "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nsec-websocket-key: abc\r\n";
        let buffer = Bytes::from(text.to_string().into_bytes());
        let slice = |s: &str| {
            let at = text.find(s).unwrap();
            buffer.slice(at..at + s.len())
        };
        let uri = Uri::from_maybe_shared(slice("/socket.io/?EIO=4&transport=websocket")).unwrap();
        let mut req = Request::get(uri.clone()).body(()).unwrap();
        req.extensions_mut().insert(OriginalUri(uri));
        #[derive(Clone)]
        struct RoutingLeftover;
        req.extensions_mut().insert(RoutingLeftover);
        let value = || HeaderValue::from_maybe_shared(slice("abc")).unwrap();
        req.headers_mut().insert("sec-websocket-key", value());
        req.headers_mut().insert("content-type", value());
        req.headers_mut().append("x-custom", value());
        req.headers_mut().append("cookie", value());
        assert!(!buffer.is_unique(), "the request shares the buffer");

        let req = detach_head(req, &super::ENGINE_IO_HEADERS);
        assert!(
            buffer.is_unique(),
            "the detached request still points into the buffer"
        );
        assert_eq!(req.uri(), "/socket.io/?EIO=4&transport=websocket");
        assert_eq!(req.headers()["sec-websocket-key"], "abc");
        assert_eq!(req.headers()["content-type"], "abc");
        assert_eq!(
            req.headers().len(),
            2,
            "headers engineioxide does not read are dropped"
        );
        assert!(req.extensions().get::<RoutingLeftover>().is_none());
        assert!(req.extensions().get::<OriginalUri>().is_none());
        assert!(req.extensions().is_empty(), "no extension map is kept");
    }
}
