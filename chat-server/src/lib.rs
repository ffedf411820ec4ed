//! # chat-server
//!
//! A chat node: [`chat_core::Chat`] with the web client, configured from `CHAT_*` variables
//! ([`ServerConfig`]). Embedded mode (everything in memory) without Redis settings, a
//! cluster node with them. The binary's `main` sets up logs, binds and calls [`run`].
//!
//! `GET /metrics` (Prometheus text, `docs/metrics.md`) is served on the main listener, or on
//! `CHAT_METRICS_LISTEN` when set, from a recorder of the node's own
//! ([`chat_env::metrics::Exporter`]) that the chat's handles are resolved against.

mod admin;
pub mod api;
mod config;

use std::{
    future::Future,
    path::{Path, PathBuf},
    sync::Arc,
};

use axum::{Router, response::Html, routing::get};
use chat_archive::PgArchive;
use chat_core::{Chat, server::ServerError};
use chat_env::metrics::Exporter;
use tokio::net::TcpListener;
use tower_http::{
    services::{ServeDir, ServeFile},
    trace::TraceLayer,
};

pub use admin::AdminCredentials;
pub use config::{ArchiveSettings, ServerConfig};

/// The whole HTTP surface of `chat-server`: the chat, the server API under `/api/v1`
/// ([`api`]), and the web client, with request tracing.
///
/// The chat's own routes are not traced: a long-polling client makes several Engine.IO
/// requests per message, and tracing them cost about 9% of the server's CPU in the polling
/// benchmark, logging nothing at the default level.
///
/// `/admin` is the Admin UI's page when `CHAT_ADMIN_UI_USER` is set, and a 404 otherwise.
pub fn app(chat: &Chat, config: &ServerConfig, web_dir: Option<&Path>) -> Router {
    let web = admin::routes(config.admin_ui.is_some(), web_dir).merge(match web_dir {
        Some(dir) => Router::new()
            .fallback_service(ServeDir::new(dir).fallback(ServeFile::new(dir.join("index.html")))),
        None => Router::new().route("/", get(no_web_client)),
    });
    let traced = api::router(chat.handle(), &config.api).merge(web);
    chat.router()
        .merge(traced.layer(TraceLayer::new_for_http()))
}

async fn no_web_client() -> Html<&'static str> {
    Html(concat!(
        "<!doctype html><meta charset=utf-8><title>chat-server</title>",
        "<h1>chat-server is running</h1>",
        "<p>Socket.IO is at <code>/socket.io/</code>. The web client is not built: run ",
        "<code>npm --prefix web-client ci &amp;&amp; npm --prefix web-client run build</code> ",
        "and restart (or set <code>CHAT_WEB_DIR</code> to the built files).</p>"
    ))
}

/// Where the web client is: `CHAT_WEB_DIR`, else `web-client/dist` if it was built.
fn web_dir(config: &ServerConfig) -> Option<PathBuf> {
    config.web_dir.clone().or_else(|| {
        let default = PathBuf::from("web-client/dist");
        default.join("index.html").is_file().then_some(default)
    })
}

/// `chat-server backfill`: archives what Redis holds (docs/archive.md), resuming where an
/// earlier run stopped. Needs the Redis settings and `CHAT_DATABASE_URL`.
pub async fn backfill(
    config: &ServerConfig,
) -> Result<chat_core::archive::backfill::BackfillReport, Box<dyn std::error::Error + Send + Sync>>
{
    let (Some(redis), Some(settings)) = (&config.chat.redis, &config.archive) else {
        return Err(
            "backfill needs CHAT_REDIS_URL (or CHAT_REDIS_SENTINELS) and CHAT_DATABASE_URL".into(),
        );
    };
    let archive = PgArchive::connect(&settings.url, &settings.language).await?;
    let report = chat_core::archive::backfill::backfill(redis, &archive, |conversation, n| {
        tracing::info!(%conversation, messages = n, "conversation archived");
    })
    .await?;
    tracing::info!(
        conversations = report.conversations,
        skipped = report.skipped,
        messages = report.messages,
        "backfill done"
    );
    Ok(report)
}

/// Serves a chat node on `listener` (and `/metrics` on `CHAT_METRICS_LISTEN`, bound here,
/// when set) until `shutdown` resolves, then drains and returns.
pub async fn run(
    listener: TcpListener,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let metrics_listener = chat_env::metrics::bind(config.metrics_listen).await?;
    serve(listener, metrics_listener, config, shutdown).await
}

/// [`run`] with `/metrics` on `metrics_listener`, or on `listener` when it is `None`
/// (`config.metrics_listen` is not read).
pub async fn serve(
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    if config.api.token.is_none() {
        tracing::info!("CHAT_API_TOKEN is unset: the server API answers 403");
    }
    if config.chat.auth_secret.is_none() {
        tracing::warn!("CHAT_AUTH_SECRET is unset: development mode, clients choose their user id");
    }
    let web = web_dir(&config);
    let exporter = Arc::new(Exporter::new());
    let archive = match &config.archive {
        Some(settings) => {
            let archive = PgArchive::connect(&settings.url, &settings.language)
                .await
                .map_err(|e| ServerError::Archive(Box::new(e)))?;
            tracing::info!(language = %settings.language, "archive on");
            Some((Arc::new(archive), settings.queue.clone()))
        }
        None => None,
    };
    let chat = exporter
        .scope(|| {
            let builder = Chat::builder(config.chat.clone());
            match archive {
                Some((archive, queue)) => builder.archive(archive, queue),
                None => builder,
            }
        })
        .build()
        .await?;
    let app = app(&chat, &config, web.as_deref());
    let handle = chat.handle();
    let admin_stop = tokio_util::sync::CancellationToken::new();
    if let Some(credentials) = config.admin_ui.clone() {
        tracing::info!("admin ui on at /admin/");
        admin::AdminUi::start(
            handle.io().clone(),
            config.chat.node_id.clone(),
            credentials,
            admin_stop.clone(),
        );
    }
    let _stop_admin = admin_stop.drop_guard();
    let scraped = handle.clone();
    let metrics = chat_env::metrics::router(exporter.clone(), move || {
        let h = scraped.clone();
        async move { h.update_metrics().await }
    });
    let addr = listener.local_addr()?;
    tracing::info!(%addr, node = %config.chat.node_id, web = ?web, "listening");
    let (drained, stop) = tokio::sync::oneshot::channel::<()>();
    let drainer = tokio::spawn(async move {
        shutdown.await;
        handle.shutdown().await;
        let _ = drained.send(());
    });
    let stop = async move {
        let _ = stop.await;
    };
    chat_env::metrics::serve(
        listener,
        app,
        metrics,
        metrics_listener,
        config.http.clone(),
        exporter,
        stop,
    )
    .await?;
    drainer.abort();
    tracing::info!("stopped");
    Ok(())
}
