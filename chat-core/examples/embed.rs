//! An axum app of your own with the chat inside it: your routes next to Socket.IO.
//!
//! ```sh
//! cargo run -p chat-core --example embed
//! curl http://127.0.0.1:3000/api/hello        # the app's own route
//! curl http://127.0.0.1:3000/healthz          # the chat's health check
//! ```
//!
//! Socket.IO clients connect to `http://127.0.0.1:3000` (path `/socket.io/`) with
//! `auth: {user: "alice"}` (development mode: no token secret is set). Set `REDIS_URL` to
//! run the same app as a cluster node on that Redis. Ctrl-C drains the chat (clients get
//! `drain`), then stops serving.
//!
//! The smallest embedding. `examples/embed` at the repository's root goes further: its own
//! cookie sessions as the authenticator, a moderation hook and a route posting system
//! messages.

use axum::{Json, Router, routing::get};
use chat_core::{Chat, Config, config::RedisSettings, redis::RedisConfig};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The library only emits `tracing` events; the app decides where they go.
    tracing_subscriber::fmt().init();

    let mut config = Config::default();
    config.limits.max_body = 2000;
    if let Ok(url) = std::env::var("REDIS_URL") {
        config.redis = Some(RedisSettings {
            target: RedisConfig::Url(url),
            prefix: "example:".into(),
            wait_replicas: 0,
            wait_timeout: std::time::Duration::from_secs(1),
        });
    }
    let chat = Chat::builder(config).build().await?;

    let app = Router::new()
        .route("/api/hello", get(hello))
        .merge(chat.router());

    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    tracing::info!(addr = %listener.local_addr()?, "listening");
    // Once ctrl-c comes, drain the chat, then stop serving HTTP.
    let handle = chat.handle();
    let (drained, stop) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        handle.shutdown().await;
        let _ = drained.send(());
    });
    // `axum::serve` works too; this one keeps less memory per idle connection and bounds the
    // graceful stop (see its docs).
    chat_core::serve::serve(listener, app, async move {
        let _ = stop.await;
    })
    .await?;
    Ok(())
}

async fn hello() -> Json<Value> {
    Json(json!({ "hello": "from the app's own route" }))
}
