//! Typed configuration, read from `CHAT_*` environment variables in one place.
//!
//! A bad value is an error at start that names the variable. Library tunables live in
//! [`Limits`], a plain struct with documented defaults, so embedders need no environment.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use crate::{
    env::{Env, invalid},
    error::ConfigError,
    redis::RedisConfig,
};

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines (default).
    #[default]
    Text,
    /// One JSON object per line (`CHAT_LOG_FORMAT=json`).
    Json,
}

/// Limits on what clients control. Defaults are the documented ones (docs/protocol.md).
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Longest message body in characters (`CHAT_MAX_BODY`, default 4000).
    pub max_body: usize,
    /// Largest Engine.IO packet in bytes (`CHAT_MAX_PAYLOAD`, default 64 KiB).
    pub max_payload: u64,
    /// Most members in a group, owner included (`CHAT_MAX_GROUP_SIZE`, default 1000).
    pub max_group_size: usize,
    /// Messages kept per conversation (`CHAT_HISTORY_MAX`, default 10000).
    pub history_max: usize,
    /// `message:send` per user (`CHAT_RATE_MESSAGES` per second, `CHAT_RATE_MESSAGES_BURST`).
    pub message_rate: Rate,
    /// Acknowledged events per user (`CHAT_RATE_EVENTS`, `CHAT_RATE_EVENTS_BURST`).
    pub event_rate: Rate,
    /// `typing` events per user; more are dropped (5 per second, bursts of 5).
    pub typing_rate: Rate,
    /// Whether `delivered` and `read` receipts are sent at all (`CHAT_RECEIPTS`, default
    /// true). Off, read marks still count unread messages; nothing asks devices for acks.
    pub receipts: bool,
    /// Largest group that gets receipts (`CHAT_RECEIPT_GROUP_MAX`, default 100).
    pub receipt_group_max: usize,
    /// Users per `presence:subscribe` call (100).
    pub presence_batch: usize,
    /// Presence subscriptions per socket (1000).
    pub presence_per_socket: usize,
    /// Groups one user may belong to (1000).
    pub groups_per_user: usize,
    /// How long `clientId` idempotency keys are kept (24 hours).
    pub idempotency_ttl: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body: 4000,
            max_payload: 64 * 1024,
            max_group_size: 1000,
            history_max: 10_000,
            message_rate: Rate::new(10.0, 20),
            event_rate: Rate::new(30.0, 60),
            typing_rate: Rate::new(5.0, 5),
            receipts: true,
            receipt_group_max: 100,
            presence_batch: 100,
            presence_per_socket: 1000,
            groups_per_user: 1000,
            idempotency_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

/// A token bucket: `per_second` refill, `burst` capacity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Tokens added per second.
    pub per_second: f64,
    /// Bucket capacity.
    pub burst: u32,
}

impl Rate {
    /// A rate of `per_second` with bursts of `burst`.
    pub const fn new(per_second: f64, burst: u32) -> Self {
        Self { per_second, burst }
    }
}

/// Configuration of a chat server node.
#[derive(Debug, Clone)]
pub struct Config {
    /// Bind address (`CHAT_LISTEN`, default `0.0.0.0:3000`).
    pub listen: SocketAddr,
    /// The URL clients use to reach this node (`CHAT_PUBLIC_URL`).
    pub public_url: Option<String>,
    /// This node's id (`CHAT_NODE_ID`, default random).
    pub node_id: String,
    /// HS256 secret for client tokens (`CHAT_AUTH_SECRET`); `None` = development mode.
    pub auth_secret: Option<String>,
    /// Built web client to serve at `/` (`CHAT_WEB_DIR`).
    pub web_dir: Option<PathBuf>,
    /// Allowed CORS origins (`CHAT_CORS_ORIGINS`, comma-separated); `None` = any origin.
    pub cors_origins: Option<Vec<String>>,
    /// How long to wait for clients to leave on shutdown (`CHAT_DRAIN_TIMEOUT`, default 10s).
    pub drain_timeout: Duration,
    /// Limits on what clients control.
    pub limits: Limits,
    /// Log format (`CHAT_LOG_FORMAT`).
    pub log_format: LogFormat,
    /// Connections this node is meant to hold (`CHAT_CAPACITY`, default 10000); the registry
    /// picks by connections ÷ capacity.
    pub capacity: u32,
    /// Redis, in cluster mode (`CHAT_REDIS_URL` or `CHAT_REDIS_SENTINELS`); `None`: embedded.
    pub redis: Option<RedisSettings>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 3000)),
            public_url: None,
            node_id: random_node_id(),
            auth_secret: None,
            web_dir: None,
            cors_origins: None,
            drain_timeout: Duration::from_secs(10),
            limits: Limits::default(),
            log_format: LogFormat::Text,
            capacity: 10_000,
            redis: None,
        }
    }
}

fn random_node_id() -> String {
    format!("{:08x}", rand::random::<u32>())
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads variables through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(&lookup);
        let d = Self::default();
        let dl = Limits::default();
        let limits = Limits {
            max_body: env.parse("CHAT_MAX_BODY", dl.max_body, 1..=1_000_000)?,
            max_payload: env.parse("CHAT_MAX_PAYLOAD", dl.max_payload, 1024..=64 << 20)?,
            max_group_size: env.parse("CHAT_MAX_GROUP_SIZE", dl.max_group_size, 2..=100_000)?,
            history_max: env.parse("CHAT_HISTORY_MAX", dl.history_max, 1..=10_000_000)?,
            message_rate: Rate::new(
                env.parse("CHAT_RATE_MESSAGES", dl.message_rate.per_second, 0.01..=1e6)?,
                env.parse(
                    "CHAT_RATE_MESSAGES_BURST",
                    dl.message_rate.burst,
                    1..=1_000_000,
                )?,
            ),
            event_rate: Rate::new(
                env.parse("CHAT_RATE_EVENTS", dl.event_rate.per_second, 0.01..=1e6)?,
                env.parse("CHAT_RATE_EVENTS_BURST", dl.event_rate.burst, 1..=1_000_000)?,
            ),
            receipts: env.parse("CHAT_RECEIPTS", dl.receipts, ..)?,
            receipt_group_max: env.parse(
                "CHAT_RECEIPT_GROUP_MAX",
                dl.receipt_group_max,
                0..=100_000,
            )?,
            ..dl
        };
        let log_format = env.log_format()?;
        Ok(Self {
            listen: env.listen(d.listen)?,
            public_url: env.raw("CHAT_PUBLIC_URL"),
            node_id: match env.raw("CHAT_NODE_ID") {
                Some(id) => {
                    crate::protocol::GroupId::parse(id.as_str())
                        .map_err(|e| invalid("CHAT_NODE_ID", &id, e.0.replace("group", "node")))?;
                    id
                }
                None => d.node_id,
            },
            auth_secret: match env.raw("CHAT_AUTH_SECRET") {
                Some(s) if s.len() < 16 => {
                    return Err(invalid(
                        "CHAT_AUTH_SECRET",
                        "<hidden>",
                        "use at least 16 bytes",
                    ));
                }
                s => s,
            },
            web_dir: env.raw("CHAT_WEB_DIR").map(PathBuf::from),
            cors_origins: env.cors_origins()?,
            drain_timeout: env.duration(
                "CHAT_DRAIN_TIMEOUT",
                d.drain_timeout,
                Duration::ZERO,
                Duration::from_secs(3600),
            )?,
            limits,
            log_format,
            capacity: env.parse("CHAT_CAPACITY", d.capacity, 1..=10_000_000)?,
            redis: redis_from_env(&env)?,
        })
    }
}

/// Where Redis is, and how writes wait for replicas.
#[derive(Debug, Clone, PartialEq)]
pub struct RedisSettings {
    /// URL or Sentinels.
    pub target: RedisConfig,
    /// Prefix of every key (`CHAT_REDIS_PREFIX`, default `chat:`).
    pub prefix: String,
    /// Replicas a message append waits for before its ack (`CHAT_REDIS_WAIT`; default 1
    /// with Sentinels, 0 with a URL).
    pub wait_replicas: u32,
    /// How long that wait may take (`CHAT_REDIS_WAIT_TIMEOUT`, default 1s).
    pub wait_timeout: Duration,
}

fn redis_from_env(env: &Env<'_>) -> Result<Option<RedisSettings>, ConfigError> {
    let Some(target) = env.redis()? else {
        return Ok(None);
    };
    let default_wait = u32::from(matches!(target, RedisConfig::Sentinel { .. }));
    Ok(Some(RedisSettings {
        prefix: env.redis_prefix(),
        wait_replicas: env.parse("CHAT_REDIS_WAIT", default_wait, 0..=16)?,
        wait_timeout: env.duration(
            "CHAT_REDIS_WAIT_TIMEOUT",
            Duration::from_secs(1),
            Duration::from_millis(1),
            Duration::from_secs(60),
        )?,
        target,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_lookup(crate::env::vars(vars))
    }

    #[test]
    fn defaults_without_environment() {
        let c = config(&[]).unwrap();
        assert_eq!(c.listen.port(), 3000);
        assert_eq!(c.limits, Limits::default());
        assert!(c.auth_secret.is_none());
        assert_eq!(c.drain_timeout, Duration::from_secs(10));
    }

    #[test]
    fn values_are_parsed() {
        let c = config(&[
            ("CHAT_LISTEN", "127.0.0.1:0"),
            ("CHAT_MAX_BODY", "10"),
            ("CHAT_DRAIN_TIMEOUT", "500ms"),
            ("CHAT_CORS_ORIGINS", "http://a, http://b"),
            ("CHAT_LOG_FORMAT", "json"),
            ("CHAT_RATE_MESSAGES", "2.5"),
            ("CHAT_RECEIPTS", "false"),
        ])
        .unwrap();
        assert!(!c.limits.receipts);
        assert_eq!(c.listen.port(), 0);
        assert_eq!(c.limits.max_body, 10);
        assert_eq!(c.drain_timeout, Duration::from_millis(500));
        assert_eq!(c.cors_origins.unwrap(), vec!["http://a", "http://b"]);
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.limits.message_rate.per_second, 2.5);
        assert_eq!(
            config(&[("CHAT_DRAIN_TIMEOUT", "3")])
                .unwrap()
                .drain_timeout
                .as_secs(),
            3
        );
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (var, value) in [
            ("CHAT_LISTEN", "nope"),
            ("CHAT_MAX_BODY", "0"),
            ("CHAT_MAX_BODY", "-3"),
            ("CHAT_DRAIN_TIMEOUT", "soon"),
            ("CHAT_LOG_FORMAT", "xml"),
            ("CHAT_NODE_ID", "a b"),
            ("CHAT_AUTH_SECRET", "short"),
            ("CHAT_RECEIPTS", "maybe"),
        ] {
            let err = config(&[(var, value)]).unwrap_err().to_string();
            assert!(err.starts_with(var), "{err}");
        }
        for (var, value) in [
            ("CHAT_REDIS_URL", "localhost:6379"),
            ("CHAT_REDIS_SENTINELS", "a:1,b"),
            ("CHAT_REDIS_WAIT", "x"),
        ] {
            let mut vars = vec![(var, value)];
            if var == "CHAT_REDIS_WAIT" {
                vars.push(("CHAT_REDIS_URL", "redis://127.0.0.1:6379"));
            }
            let err = config(&vars).unwrap_err().to_string();
            assert!(err.starts_with(var), "{err}");
        }
    }

    #[test]
    fn redis_settings() {
        assert_eq!(config(&[]).unwrap().redis, None);
        let url = config(&[("CHAT_REDIS_URL", "redis://127.0.0.1:6379/0")])
            .unwrap()
            .redis
            .unwrap();
        assert_eq!(
            url.target,
            RedisConfig::Url("redis://127.0.0.1:6379/0".into())
        );
        assert_eq!((url.prefix.as_str(), url.wait_replicas), ("chat:", 0));
        let s = config(&[("CHAT_REDIS_SENTINELS", "10.0.0.1:26379, s2:26379")])
            .unwrap()
            .redis
            .unwrap();
        assert_eq!(
            s.target,
            RedisConfig::Sentinel {
                sentinels: vec!["10.0.0.1:26379".into(), "s2:26379".into()],
                master: "mymaster".into(),
                password: None
            }
        );
        assert_eq!(s.wait_replicas, 1);
        assert!(
            config(&[
                ("CHAT_REDIS_URL", "redis://a:1"),
                ("CHAT_REDIS_SENTINELS", "b:2")
            ])
            .is_err()
        );
    }
}
