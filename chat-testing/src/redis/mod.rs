//! Real Redis for the integration tests: Docker containers started through testcontainers.
//!
//! - [`RedisServer`]: one standalone server with an append-only file, for outage tests
//!   ([`stop`](RedisServer::stop) / [`resume`](RedisServer::resume),
//!   [`restart`](RedisServer::restart), [`kill_clients`](RedisServer::kill_clients)).
//! - [`SentinelTopology`]: a master, one replica and three sentinels (quorum 2) watching
//!   [`MASTER_NAME`], for failover tests.
//!
//! Every container uses host networking and listens on its own free loopback port, so every
//! address a test sees, Sentinel's answers included, is `127.0.0.1:PORT` (CI machines run Docker
//! with the bridge off). A container is removed when its handle drops, also when a test panics.
//!
//! The image is `CHAT_TEST_REDIS_IMAGE`, by default `chat-test-redis:local`, which
//! `scripts/redis-test-image.sh` builds from the host's `redis-server` without any registry
//! (`.ci/run` calls it). The official `redis:7` image works as well where a registry is
//! reachable (`CHAT_TEST_REDIS_IMAGE=redis:7`): the command lines are the same.
//!
//! ```text
//! let redis = RedisServer::start().await;
//! let client = redis::Client::open(redis.url())?;
//! redis.restart().await; // what was written before is still there
//!
//! let topology = SentinelTopology::start().await;
//! let sentinels = topology.sentinel_urls(); // for redis::sentinel::SentinelClient
//! let old = topology.kill_master().await;
//! let new = topology.wait_for_failover(&old).await;
//! ```
//!
//! Helpers panic with a message naming the server and the step that failed; they poll with
//! deadlines, never fixed sleeps.

mod container;
mod sentinel;
#[cfg(test)]
mod tests;

use std::time::Duration;

use redis::{FromRedisValue, RedisResult, aio::MultiplexedConnection};

use container::{Node, connect, query, server_args};
pub use sentinel::SentinelTopology;
/// The image used when `CHAT_TEST_REDIS_IMAGE` is not set.
pub const DEFAULT_IMAGE: &str = "chat-test-redis:local";
/// The name the sentinels of a [`SentinelTopology`] monitor their master under.
pub const MASTER_NAME: &str = "mymaster";

/// How long a server gets to answer `PING` after its container starts.
pub(crate) const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a replica and the sentinels get to find each other.
pub(crate) const TOPOLOGY_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a failover may take, from the master's death to all sentinels naming the new one.
pub(crate) const FAILOVER_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between two polls.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(25);
/// Where a sentinel's config file goes: Sentinel rewrites it, so it must be writable, and the
/// official image hands `/data` to its `redis` user.
pub(crate) const SENTINEL_CONF: &str = "/data/sentinel.conf";

/// A standalone Redis in a container, on `127.0.0.1:port()`, with an append-only file synced on
/// every write: data survives [`restart`](Self::restart) and [`stop`](Self::stop) +
/// [`resume`](Self::resume).
#[derive(Debug)]
pub struct RedisServer {
    node: Node,
}

impl RedisServer {
    /// Starts a server and waits until it answers `PING`.
    pub async fn start() -> RedisServer {
        let node = Node::launch("redis", |port| {
            let mut cmd = server_args(port);
            cmd.extend(["--appendonly", "yes", "--appendfsync", "always"].map(String::from));
            (cmd, None)
        })
        .await;
        RedisServer { node }
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://{}", self.node.addr())
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        self.node.addr()
    }

    /// The loopback port the server listens on; it stays the same across restarts.
    pub fn port(&self) -> u16 {
        self.node.port
    }

    /// A new multiplexed connection (connect timeout 1 s, response timeout 5 s).
    pub async fn connect(&self) -> MultiplexedConnection {
        connect(&self.node.addr())
            .await
            .unwrap_or_else(|err| panic!("cannot connect to {}: {err}", self.node))
    }

    /// Stops the container (SIGTERM, as an operator would) and returns once it is down. Clients
    /// see their connections close; new connections are refused until [`resume`](Self::resume).
    pub async fn stop(&self) {
        self.node.stop(5).await;
    }

    /// Starts the stopped container again, on the same port and with the same data, and waits
    /// until it answers `PING`.
    pub async fn resume(&self) {
        self.node.resume().await;
    }

    /// [`stop`](Self::stop) then [`resume`](Self::resume).
    pub async fn restart(&self) {
        self.stop().await;
        self.resume().await;
    }

    /// Closes every client connection (normal and Pub/Sub) but the one that asks, as a network
    /// blip would. Returns how many were closed.
    pub async fn kill_clients(&self) -> u64 {
        let result: RedisResult<(u64, u64)> = async {
            let mut con = connect(&self.node.addr()).await?;
            let normal = redis::cmd("CLIENT")
                .arg(&["KILL", "TYPE", "normal"])
                .query_async(&mut con)
                .await?;
            let pubsub = redis::cmd("CLIENT")
                .arg(&["KILL", "TYPE", "pubsub"])
                .query_async(&mut con)
                .await?;
            Ok((normal, pubsub))
        }
        .await;
        let (normal, pubsub) =
            result.unwrap_or_else(|err| panic!("CLIENT KILL on {}: {err}", self.node));
        normal + pubsub
    }

    /// Runs one command on a fresh connection, like `redis-cli`, and converts the reply:
    /// `redis.cli::<Option<String>>(&["GET", "k"]).await`. Panics on errors.
    pub async fn cli<T: FromRedisValue>(&self, args: &[&str]) -> T {
        self.try_cli(args)
            .await
            .unwrap_or_else(|err| panic!("{args:?} on {}: {err}", self.node))
    }

    /// [`cli`](Self::cli) that returns errors (a refused connection while stopped, say).
    pub async fn try_cli<T: FromRedisValue>(&self, args: &[&str]) -> RedisResult<T> {
        query(&self.node.addr(), args).await
    }
}
