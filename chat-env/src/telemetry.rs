//! Log output for the binaries. The library itself only emits `tracing` events.

use tracing_subscriber::{EnvFilter, fmt};

use crate::LogFormat;

/// Installs the global subscriber: `RUST_LOG` filter (default `info`), text or JSON lines
/// on stdout. Call once, at the start of `main`.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Never report a failed log write on stderr: with both pipes closed by whoever started
    // us, that report would panic the task that logged, shutdown included.
    let builder = fmt().with_env_filter(filter).log_internal_errors(false);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    if let Err(e) = result {
        eprintln!("logging was already set up: {e}");
    }
}
