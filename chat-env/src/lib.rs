//! # chat-env
//!
//! What the chat binaries (`chat-server`, `chat-registry`, `chat-health`) share and an app
//! that embeds chat-core does not need: reading `CHAT_*` variables into typed configuration,
//! with an error that names the bad variable, installing the log subscriber, serving
//! `/metrics`, and the stop signal.
//!
//! ## Layout
//! - [`Env`]: typed parsing of variables, and the ones every binary reads (Redis, listen
//!   address, CORS origins, log format, key prefix).
//! - [`ConfigError`]: a bad value, naming its variable.
//! - [`telemetry`]: the `tracing` subscriber, text or JSON lines ([`LogFormat`]).
//! - [`metrics`]: the Prometheus recorder of each binary and its `GET /metrics`.
//! - [`signal`]: SIGTERM or ctrl-c, for every binary's `run`.
//! - [`api`]: the HTTP APIs' errors (`{error: {code, message}}`) and bearer-token checks.

pub mod api;
mod env;
pub mod metrics;
mod signal;
pub mod telemetry;

pub use env::{Env, invalid, vars};
pub use signal::signal;

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines (default).
    #[default]
    Text,
    /// One JSON object per line (`CHAT_LOG_FORMAT=json`).
    Json,
}

/// A bad configuration value; names the variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The variable is set to a value that does not parse or is out of range.
    #[error("{var}={value:?} is invalid: {reason}")]
    Invalid {
        /// Name of the environment variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
}
