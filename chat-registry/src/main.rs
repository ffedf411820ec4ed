//! `chat-registry`: the service registry's HTTP API over the node table in Redis.

use anyhow::Context;
use chat_registry::RegistryConfig;
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = RegistryConfig::from_env().context("bad configuration")?;
    chat_env::telemetry::init(config.log_format);
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    chat_registry::run(listener, config, chat_env::signal()).await?;
    Ok(())
}
