//! # chat-example-embed
//!
//! An axum app of its own with the chat inside it, using chat-core's seams the way a product
//! would (README.md says how to run and try it):
//!
//! - **[`Authenticator`](chat_core::auth::Authenticator)** ([`CookieSessions`]): the app signs
//!   users in with its own session cookie (`POST /login`), and the chat trusts that cookie
//!   instead of tokens. Shows reading the handshake's HTTP request (its `Cookie` header, which
//!   the authenticator must name in `headers()` to be kept), and refusing with a message of the
//!   app's (`connect_error`: `unauthorized: log in first (POST /login)`).
//! - **[`MessageHook`](chat_core::hooks::MessageHook)** ([`WordList`]): moderation before a
//!   message is stored. A refused message is answered with the hook's error in the sender's
//!   ack, and is neither stored nor delivered.
//! - **The server API** ([`ChatHandle::send_message`](chat_core::ChatHandle::send_message)):
//!   a route of the app's own (`POST /announce-system`) posts a system message, sender
//!   `@system`, delivered to the recipient's connected devices like any message.
//! - **[`Chat::router`]**: merged next to the app's routes, which get request tracing (the
//!   chat's own routes are left untraced, as chat-server does: long polling makes many
//!   requests).
//!
//! Embedded mode (everything in memory): no Redis needed.
//!
//! ## Layout
//! - [`sessions`]: the in-memory sessions, their cookie, and the [`CookieSessions`]
//!   authenticator.
//! - [`moderation`]: the [`WordList`] message hook.
//! - `routes`: `/login`, `/logout`, `/announce-system` and the page at `/`.

pub mod moderation;
mod routes;
pub mod sessions;

use std::net::SocketAddr;

use axum::{
    Router,
    routing::{get, post},
};
use chat_core::{Chat, Config, server::ServerError};
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

pub use moderation::WordList;
pub use sessions::{CookieSessions, Sessions};

use routes::AppState;

/// Where the binary listens unless `EXAMPLE_LISTEN` says otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:3100";

/// The words refused unless `EXAMPLE_BANNED_WORDS` (comma-separated) says otherwise.
pub const DEFAULT_BANNED_WORDS: &str = "spam,scam,phishing";

/// Builds the chat with the app's seams: `sessions` authenticate its connections, `words`
/// moderates its messages. Embedded (in memory) unless `config` says otherwise.
pub async fn chat(
    config: Config,
    sessions: Sessions,
    words: WordList,
) -> Result<Chat, ServerError> {
    Chat::builder(config)
        .authenticator(CookieSessions::new(sessions))
        .message_hook(words)
        .build()
        .await
}

/// The whole HTTP surface: the app's routes (traced) and the chat's (`/socket.io/`,
/// `/healthz`).
pub fn app(chat: &Chat, sessions: Sessions) -> Router {
    let state = AppState {
        sessions,
        chat: chat.handle(),
    };
    let own = Router::new()
        .route("/", get(routes::index))
        .route("/login", post(routes::login))
        .route("/logout", post(routes::logout))
        .route("/announce-system", post(routes::announce_system))
        .with_state(state)
        .layer(TraceLayer::new_for_http());
    chat.router().merge(own)
}

/// Serves the app on `listener` until `shutdown` resolves, then drains the chat (clients are
/// told to reconnect, for at most its drain timeout) and stops serving.
pub async fn run(
    listener: TcpListener,
    words: WordList,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    tracing::warn!(
        "POST /login signs in as any user id, no password: an example, not for production"
    );
    tracing::info!(words = words.len(), "word list loaded");
    let sessions = Sessions::default();
    let chat = chat(Config::default(), sessions.clone(), words).await?;
    let app = app(&chat, sessions);
    let addr: SocketAddr = listener.local_addr()?;
    tracing::info!(%addr, "listening; open http://{addr}/");
    let handle = chat.handle();
    let (drained, stop) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        shutdown.await;
        handle.shutdown().await;
        let _ = drained.send(());
    });
    chat_core::serve::serve(listener, app, async move {
        let _ = stop.await;
    })
    .await?;
    tracing::info!("stopped");
    Ok(())
}
