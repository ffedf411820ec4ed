//! The health checker's typed configuration, from `CHAT_*` variables.

use std::{net::SocketAddr, time::Duration};

use chat_core::{keys::DEFAULT_PREFIX, redis::RedisConfig};
use chat_env::{ConfigError, Env, LogFormat, invalid};

/// Configuration of `chat-health`.
#[derive(Clone)]
pub struct HealthConfig {
    /// Bind address of its own `/healthz` (`CHAT_LISTEN`, default `0.0.0.0:8090`).
    pub listen: SocketAddr,
    /// Where `/metrics` is served apart (`CHAT_METRICS_LISTEN`); unset = on `listen`.
    pub metrics_listen: Option<SocketAddr>,
    /// Where the node table is (`CHAT_REDIS_URL`, or `CHAT_REDIS_SENTINELS` +
    /// `CHAT_REDIS_MASTER` + `CHAT_REDIS_PASSWORD`). Required.
    pub redis: RedisConfig,
    /// Time between two probes of a node (`CHAT_HEALTH_INTERVAL`, default 2s).
    pub interval: Duration,
    /// Consecutive failed probes before a node is removed from picking
    /// (`CHAT_HEALTH_FAILURES`, default 3).
    pub failures: u32,
    /// How long one probe may take, connecting included (`CHAT_HEALTH_TIMEOUT`, default the
    /// smaller of 1s and half the interval; must be shorter than the interval).
    pub timeout: Duration,
    /// Prefix of every Redis key (default `chat:`, as the chat nodes).
    pub prefix: String,
    /// Log format (`CHAT_LOG_FORMAT`).
    pub log_format: LogFormat,
}

impl std::fmt::Debug for HealthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The Redis URL may hold a password.
        f.debug_struct("HealthConfig")
            .field("listen", &self.listen)
            .field("metrics_listen", &self.metrics_listen)
            .field("interval", &self.interval)
            .field("failures", &self.failures)
            .field("timeout", &self.timeout)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl HealthConfig {
    /// A configuration with the documented defaults on `redis`.
    pub fn new(redis: RedisConfig) -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8090)),
            metrics_listen: None,
            redis,
            interval: Duration::from_secs(2),
            failures: 3,
            timeout: Duration::from_secs(1),
            prefix: DEFAULT_PREFIX.into(),
            log_format: LogFormat::Text,
        }
    }

    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads variables through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env::new(&lookup);
        let d = Self::new(env.require_redis()?);
        let interval = env.duration(
            "CHAT_HEALTH_INTERVAL",
            d.interval,
            Duration::from_millis(50),
            Duration::from_secs(3600),
        )?;
        let timeout = env.duration(
            "CHAT_HEALTH_TIMEOUT",
            d.timeout.min(interval / 2),
            Duration::from_millis(10),
            Duration::from_secs(3600),
        )?;
        if timeout >= interval {
            return Err(invalid(
                "CHAT_HEALTH_TIMEOUT",
                &format!("{timeout:?}"),
                "must be shorter than CHAT_HEALTH_INTERVAL",
            ));
        }
        Ok(Self {
            listen: env.listen(d.listen)?,
            metrics_listen: env.metrics_listen()?,
            interval,
            failures: env.parse("CHAT_HEALTH_FAILURES", d.failures, 1..=1000)?,
            timeout,
            log_format: env.log_format()?,
            prefix: env.redis_prefix(),
            ..d
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<HealthConfig, ConfigError> {
        HealthConfig::from_lookup(chat_env::vars(vars))
    }

    const REDIS: (&str, &str) = ("CHAT_REDIS_URL", "redis://127.0.0.1:6379");

    #[test]
    fn defaults_and_values() {
        let c = config(&[REDIS]).unwrap();
        assert_eq!(c.listen.port(), 8090);
        assert_eq!(c.metrics_listen, None);
        let m = config(&[REDIS, ("CHAT_METRICS_LISTEN", "127.0.0.1:9100")]).unwrap();
        assert_eq!(m.metrics_listen.map(|a| a.port()), Some(9100));
        assert_eq!(
            (c.interval, c.failures, c.timeout),
            (Duration::from_secs(2), 3, Duration::from_secs(1))
        );
        let c = config(&[
            REDIS,
            ("CHAT_HEALTH_INTERVAL", "500ms"),
            ("CHAT_HEALTH_FAILURES", "5"),
        ])
        .unwrap();
        assert_eq!(
            (c.interval, c.failures, c.timeout),
            (Duration::from_millis(500), 5, Duration::from_millis(250))
        );
        let c = config(&[REDIS, ("CHAT_HEALTH_TIMEOUT", "1500ms")]).unwrap();
        assert_eq!(c.timeout, Duration::from_millis(1500));
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (var, value) in [
            ("CHAT_HEALTH_INTERVAL", "often"),
            ("CHAT_HEALTH_INTERVAL", "1ms"),
            ("CHAT_HEALTH_FAILURES", "0"),
            ("CHAT_HEALTH_FAILURES", "x"),
            ("CHAT_HEALTH_TIMEOUT", "2s"),
            ("CHAT_LISTEN", "nope"),
            ("CHAT_METRICS_LISTEN", "nope"),
        ] {
            let err = config(&[REDIS, (var, value)]).unwrap_err().to_string();
            assert!(err.starts_with(var), "{err}");
        }
        let err = config(&[]).unwrap_err().to_string();
        assert!(err.starts_with("CHAT_REDIS_URL"), "{err}");
    }
}
