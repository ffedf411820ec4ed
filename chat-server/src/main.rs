//! `chat-server`: one chat node. Embedded (in memory) by default.

use anyhow::Context;
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = chat_core::Config::from_env().context("bad configuration")?;
    chat_core::telemetry::init(config.log_format);
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    chat_core::server::run(listener, config, chat_core::shutdown::signal()).await?;
    Ok(())
}
