//! `chat-health`: probes every chat server, removes dead ones from picking, re-admits them.

use anyhow::Context;
use chat_health::HealthConfig;
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = HealthConfig::from_env().context("bad configuration")?;
    chat_env::telemetry::init(config.log_format);
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    chat_health::run(listener, config, chat_env::signal()).await?;
    Ok(())
}
