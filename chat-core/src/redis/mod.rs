//! Connections to Redis: a URL or a Sentinel group, with failover-aware reconnects.
//!
//! Every part of chat-core that talks to Redis goes through [`Redis`]. It keeps one shared
//! multiplexed connection for ordinary commands and hands out dedicated connections for
//! blocking reads. When a command fails with a connection error, `READONLY` (the master was
//! demoted) or another failover error, the shared connection is dropped; the next call
//! connects again, asking the sentinels for the current master first. Nothing needs a restart.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use redis::{
    AsyncConnectionConfig, Client, ErrorKind, FromRedisValue, RedisError,
    aio::MultiplexedConnection,
    sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType},
};
use tokio::sync::Mutex;

use crate::metrics::{RedisCall, RedisMetrics};

/// Where Redis is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisConfig {
    /// `redis://[:password@]host:port/db`.
    Url(String),
    /// A master found through Sentinels.
    Sentinel {
        /// Sentinel addresses, `host:port`.
        sentinels: Vec<String>,
        /// The monitored master's name (default `mymaster`).
        master: String,
        /// Password of the Redis servers (not of the sentinels).
        password: Option<String>,
    },
}

/// How long a command may wait for its answer before the connection counts as broken.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long establishing a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// A handle to Redis, cheap to clone.
#[derive(Clone)]
pub struct Redis {
    inner: Arc<Inner>,
}

struct Inner {
    config: RedisConfig,
    source: Source,
    shared: Mutex<Option<(u64, MultiplexedConnection)>>,
    generation: AtomicU64,
    metrics: RedisMetrics,
}

enum Source {
    Url(Client),
    Sentinel(Mutex<SentinelClient>),
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let target = match &self.inner.config {
            RedisConfig::Url(_) => "url".to_owned(),
            RedisConfig::Sentinel { master, .. } => format!("sentinel:{master}"),
        };
        f.debug_struct("Redis").field("target", &target).finish()
    }
}

impl Redis {
    /// Prepares connections; fails only on a malformed configuration. Connecting happens on
    /// first use (see [`Redis::ping`] to check reachability). Its metrics go to the recorder
    /// current now (see [`crate::metrics`]).
    pub fn new(config: RedisConfig) -> Result<Self, RedisError> {
        Self::with_metrics(config, RedisMetrics::resolve())
    }

    /// [`Redis::new`], recording to `metrics`.
    pub fn with_metrics(config: RedisConfig, metrics: RedisMetrics) -> Result<Self, RedisError> {
        let source = match &config {
            RedisConfig::Url(url) => Source::Url(Client::open(url.as_str())?),
            RedisConfig::Sentinel {
                sentinels,
                master,
                password,
            } => {
                let addrs: Vec<String> = sentinels.iter().map(|s| format!("redis://{s}")).collect();
                let mut info = redis::RedisConnectionInfo::default();
                if let Some(p) = password {
                    info = info.set_password(p.clone());
                }
                let node = SentinelNodeConnectionInfo::default().set_redis_connection_info(info);
                Source::Sentinel(Mutex::new(SentinelClient::build(
                    addrs,
                    master.clone(),
                    Some(node),
                    SentinelServerType::Master,
                )?))
            }
        };
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                source,
                shared: Mutex::new(None),
                generation: AtomicU64::new(0),
                metrics,
            }),
        })
    }

    /// A new connection to the current master, for blocking commands. `response_timeout`
    /// must exceed the longest `BLOCK` used on it.
    pub async fn dedicated(
        &self,
        response_timeout: Duration,
    ) -> Result<MultiplexedConnection, RedisError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(response_timeout));
        match &self.inner.source {
            Source::Url(client) => {
                client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
            }
            Source::Sentinel(sentinel) => {
                // Asks the sentinels every time: after a failover this finds the new master.
                let client = sentinel.lock().await.async_get_client().await?;
                client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
            }
        }
    }

    /// The shared connection, connecting (and resolving the master) if there is none.
    async fn shared(&self) -> Result<(u64, MultiplexedConnection), RedisError> {
        let mut slot = self.inner.shared.lock().await;
        if let Some((generation, conn)) = slot.as_ref() {
            return Ok((*generation, conn.clone()));
        }
        let conn = self.dedicated(RESPONSE_TIMEOUT).await?;
        let generation = self.inner.generation.fetch_add(1, Ordering::SeqCst) + 1;
        *slot = Some((generation, conn.clone()));
        tracing::debug!(generation, "redis connected");
        Ok((generation, conn))
    }

    /// Forgets the shared connection if `err` means it (or the master behind it) is gone.
    async fn on_error(&self, generation: u64, err: &RedisError) {
        if !is_failover_error(err) {
            return;
        }
        let mut slot = self.inner.shared.lock().await;
        if slot.as_ref().is_some_and(|(g, _)| *g == generation) {
            tracing::warn!(cause = %err, "redis connection lost; reconnecting on next use");
            *slot = None;
        }
    }

    /// Runs a command (or pipeline, or script invocation) on the shared connection.
    pub async fn query<T: FromRedisValue>(&self, cmd: &impl Query) -> Result<T, RedisError> {
        let kind = if cmd.is_pipeline() {
            RedisCall::Pipeline
        } else {
            RedisCall::Command
        };
        let started = std::time::Instant::now();
        let (generation, mut conn) = match self.shared().await {
            Ok(shared) => shared,
            Err(e) => {
                self.inner.metrics.record(kind, started.elapsed(), true);
                return Err(e);
            }
        };
        let result = cmd.run(&mut conn).await;
        self.inner
            .metrics
            .record(kind, started.elapsed(), result.is_err());
        if let Err(e) = &result {
            self.on_error(generation, e).await;
        }
        result
    }

    /// Runs a Lua script on the shared connection.
    pub async fn script<T: FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T, RedisError> {
        let started = std::time::Instant::now();
        let (generation, mut conn) = match self.shared().await {
            Ok(shared) => shared,
            Err(e) => {
                let took = started.elapsed();
                self.inner.metrics.record(RedisCall::Script, took, true);
                return Err(e);
            }
        };
        let result = invocation.invoke_async(&mut conn).await;
        self.inner
            .metrics
            .record(RedisCall::Script, started.elapsed(), result.is_err());
        if let Err(e) = &result {
            self.on_error(generation, e).await;
        }
        result
    }

    /// Checks that the master answers.
    pub async fn ping(&self) -> Result<(), RedisError> {
        self.query::<String>(&redis::cmd("PING")).await.map(|_| ())
    }
}

/// Something [`Redis::query`] can run: a command or a pipeline.
pub trait Query: Sync {
    /// Whether it is a pipeline (the `kind` label of the Redis metrics).
    fn is_pipeline(&self) -> bool {
        false
    }

    /// Sends it on `conn` and parses the answer.
    fn run<T: FromRedisValue>(
        &self,
        conn: &mut MultiplexedConnection,
    ) -> impl std::future::Future<Output = Result<T, RedisError>> + Send;
}

impl Query for redis::Cmd {
    fn run<T: FromRedisValue>(
        &self,
        conn: &mut MultiplexedConnection,
    ) -> impl std::future::Future<Output = Result<T, RedisError>> + Send {
        self.query_async(conn)
    }
}

impl Query for redis::Pipeline {
    fn is_pipeline(&self) -> bool {
        true
    }

    fn run<T: FromRedisValue>(
        &self,
        conn: &mut MultiplexedConnection,
    ) -> impl std::future::Future<Output = Result<T, RedisError>> + Send {
        self.query_async(conn)
    }
}

/// Whether an error means the connection, or the master behind it, is no longer usable.
pub fn is_failover_error(err: &RedisError) -> bool {
    err.is_io_error()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || err.is_timeout()
        || matches!(err.kind(), ErrorKind::MasterNameNotFoundBySentinel)
        || matches!(err.code(), Some("LOADING" | "MASTERDOWN" | "READONLY"))
}
