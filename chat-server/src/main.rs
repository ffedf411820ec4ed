//! `chat-server`: one chat node. Embedded (in memory) by default. `chat-server backfill`
//! archives what Redis holds, then exits.

use anyhow::Context;
use chat_server::ServerConfig;
use tokio::net::TcpListener;

/// mimalloc rather than glibc's allocator: a message allocates and frees many small buffers
/// (packets, Redis commands and replies), and mimalloc spends 6-14% less server CPU on them
/// in the benchmarks (BENCHMARKS.md) for about the same memory per idle connection, given no
/// transparent huge pages (feature `no_thp`; with them RSS grew 11% per connection). A choice
/// of this binary: chat-core leaves the allocator to whoever embeds it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = ServerConfig::from_env().context("bad configuration")?;
    chat_env::telemetry::init(config.log_format);
    match std::env::args().nth(1).as_deref() {
        None => {}
        Some("backfill") => {
            let report = chat_server::backfill(&config)
                .await
                .map_err(|e| anyhow::anyhow!(e))
                .context("backfill stopped; run it again to go on")?;
            println!(
                "backfill: {} conversations archived ({} messages), {} done before",
                report.conversations, report.messages, report.skipped
            );
            return Ok(());
        }
        Some(other) => anyhow::bail!(
            "unknown command {other:?}: `chat-server` serves, `chat-server backfill` archives what Redis holds"
        ),
    }
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    chat_server::run(listener, config, chat_env::signal()).await?;
    Ok(())
}
