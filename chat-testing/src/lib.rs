//! # chat-testing
//!
//! What the integration tests of chat-core, chat-registry and chat-health share: real Redis
//! servers and Sentinel topologies in containers ([`redis`]), PostgreSQL ([`postgres`]), an archive in memory ([`archive`]), a raw Socket.IO client
//! ([`client::Client`]) that sees exactly what a client sees, reading one metric out of a
//! scrape ([`metrics`]), a webhook receiver that checks signatures ([`webhook`]), and names unique to a test run.
//! Test code only: helpers panic with a message naming what failed.

// Test support: a panic is the failure report.
#![allow(clippy::unwrap_used)]

pub mod archive;
pub mod client;
pub mod metrics;
pub mod postgres;
pub mod redis;
pub mod webhook;

use std::time::Duration;

use chat_core::cluster::ClusterConfig;

pub use client::Client;

/// A name unique to this test run, so tests never see each other's data.
pub fn uid(prefix: &str) -> String {
    format!("{prefix}-{:06x}", rand::random::<u32>() & 0xff_ffff)
}

/// A Redis key prefix unique to this test run.
pub fn prefix() -> String {
    format!("t{:08x}:", rand::random::<u32>())
}

/// Cluster settings for tests under `prefix`: heartbeats, leases and timeouts short enough
/// that failure tests take a second or two.
pub fn test_config(prefix: &str) -> ClusterConfig {
    ClusterConfig {
        prefix: prefix.to_owned(),
        heartbeat: Duration::from_millis(200),
        lease: Duration::from_millis(1000),
        request_timeout: Duration::from_millis(1000),
        inbox_block: Duration::from_millis(500),
        ..ClusterConfig::default()
    }
}
