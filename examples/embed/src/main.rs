//! `chat-example-embed`: the example app. `EXAMPLE_LISTEN` (default `127.0.0.1:3100`),
//! `EXAMPLE_BANNED_WORDS` (comma-separated, default `spam,scam,phishing`), `RUST_LOG`
//! (default `info`).

use std::net::SocketAddr;

use anyhow::Context;
use chat_example_embed::{DEFAULT_BANNED_WORDS, DEFAULT_LISTEN, WordList};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The library only emits `tracing` events; the binary decides where they go.
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let listen = std::env::var("EXAMPLE_LISTEN").unwrap_or_else(|_| DEFAULT_LISTEN.to_owned());
    let listen: SocketAddr = listen.parse().with_context(|| {
        format!("EXAMPLE_LISTEN: {listen:?} is not an address like 127.0.0.1:3100")
    })?;
    let words =
        std::env::var("EXAMPLE_BANNED_WORDS").unwrap_or_else(|_| DEFAULT_BANNED_WORDS.to_owned());
    let words = WordList::new(words.split(','));
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    chat_example_embed::run(listener, words, async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(cause = %e, "cannot wait for ctrl-c; stopping");
        }
    })
    .await
}
