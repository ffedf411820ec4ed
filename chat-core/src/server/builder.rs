//! [`ChatBuilder`]: the seams an embedder plugs in, and [`ChatBuilder::build`], which
//! assembles storage, the cluster, the hooks and the Socket.IO server into a [`Chat`].

use std::{sync::Arc, time::Duration};

use axum::{
    Router,
    http::{HeaderValue, Method},
    routing::get,
};
use socketioxide::{ParserConfig, SocketIo, SocketIoConfig, adapter::Emitter};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};

use axum::http::HeaderName;

use crate::{
    adapter::{AdapterState, ChatAdapter},
    archive::{Archiver, RedisQueue},
    auth::{Authenticator, Development, Jwt},
    cluster::{Cluster, ClusterConfig, NodeInfo},
    config::Config,
    handlers::{self, Ctx},
    hooks::{EventHook, HookConfig, MessageHook},
    redis::Redis,
    store::{Stores, memory::MemoryStore, redis::RedisStore},
    webhooks::{self, StreamQueue},
};

use super::{Chat, ChatBuilder, ChatHandle, ServerError, healthz};

/// Binary attachments one Socket.IO packet may announce (their bytes together are bounded
/// by [`Limits::max_payload`](crate::Limits::max_payload)).
const MAX_ATTACHMENTS: usize = 4;

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

    /// Keeps every message in `archive` too (queued before the sender's ack, written in
    /// batches as `config` says), pages `history` into it past what the store keeps, and
    /// answers `search` from it ([`crate::archive`]). Its metrics are resolved here, against
    /// the recorder current now.
    pub fn archive(
        mut self,
        archive: Arc<dyn crate::archive::Archive>,
        config: crate::archive::ArchiveConfig,
    ) -> Self {
        self.metrics.archive = crate::archive::ArchiveMetrics::resolve();
        self.archive = Some((archive, config));
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
        let mut archive_queue = None;
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
                archive_queue = Some(RedisQueue {
                    redis: redis.clone(),
                    prefix: settings.prefix.clone(),
                    consumer: cluster.uid().to_string(),
                    wait: (settings.wait_replicas > 0)
                        .then_some((settings.wait_replicas, settings.wait_timeout)),
                });
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
        let archive = self.archive.map(|(archive, archive_config)| {
            Archiver::start(
                archive,
                &archive_config,
                archive_queue,
                metrics.archive.clone(),
                &hook_tasks,
                stop.clone(),
            )
        });
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
            presence_visibility: config.presence_visibility,
            node_id: config.node_id.clone(),
            auth: authenticator.clone(),
            message_hook: self.hooks.message.clone(),
            archive,
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
