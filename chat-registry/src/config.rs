//! The registry's typed configuration, from `CHAT_*` variables.

use std::{net::SocketAddr, time::Duration};

use chat_core::{keys::DEFAULT_PREFIX, redis::RedisConfig};
use chat_env::{ConfigError, Env, LogFormat, invalid};

/// Configuration of `chat-registry`.
#[derive(Clone)]
pub struct RegistryConfig {
    /// Bind address (`CHAT_LISTEN`, default `0.0.0.0:8080`).
    pub listen: SocketAddr,
    /// Where `/metrics` is served apart (`CHAT_METRICS_LISTEN`); unset = on `listen`.
    pub metrics_listen: Option<SocketAddr>,
    /// Where the node table is (`CHAT_REDIS_URL`, or `CHAT_REDIS_SENTINELS` +
    /// `CHAT_REDIS_MASTER` + `CHAT_REDIS_PASSWORD`). Required.
    pub redis: RedisConfig,
    /// Bearer token of the admin endpoints (`CHAT_ADMIN_TOKEN`, at least 16 bytes); unset =
    /// the admin endpoints refuse every request.
    pub admin_token: Option<String>,
    /// Origins allowed to call the API from a browser (`CHAT_CORS_ORIGINS`, comma-separated;
    /// `*` or unset = any origin).
    pub cors_origins: Option<Vec<String>>,
    /// Half-life of the provisional load a pick adds to its node (`CHAT_PICK_HALF_LIFE`,
    /// default 2s): a pick weighs one connection at first, half after one half-life.
    pub pick_half_life: Duration,
    /// Prefix of every Redis key (default `chat:`, as the chat nodes).
    pub prefix: String,
    /// Log format (`CHAT_LOG_FORMAT`).
    pub log_format: LogFormat,
}

impl std::fmt::Debug for RegistryConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Neither the token nor a Redis URL (it may hold a password) reaches the logs.
        f.debug_struct("RegistryConfig")
            .field("listen", &self.listen)
            .field("metrics_listen", &self.metrics_listen)
            .field("admin_token", &self.admin_token.as_ref().map(|_| "<set>"))
            .field("cors_origins", &self.cors_origins)
            .field("pick_half_life", &self.pick_half_life)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RegistryConfig {
    /// A configuration with the documented defaults on `redis`.
    pub fn new(redis: RedisConfig) -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            metrics_listen: None,
            redis,
            admin_token: None,
            cors_origins: None,
            pick_half_life: Duration::from_secs(2),
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
        let admin_token = match env.raw("CHAT_ADMIN_TOKEN") {
            Some(t) if t.len() < 16 => {
                return Err(invalid(
                    "CHAT_ADMIN_TOKEN",
                    "<hidden>",
                    "use at least 16 bytes",
                ));
            }
            t => t,
        };
        Ok(Self {
            listen: env.listen(d.listen)?,
            metrics_listen: env.metrics_listen()?,
            admin_token,
            cors_origins: env.cors_origins()?,
            pick_half_life: env.duration(
                "CHAT_PICK_HALF_LIFE",
                d.pick_half_life,
                Duration::from_millis(10),
                Duration::from_secs(3600),
            )?,
            log_format: env.log_format()?,
            prefix: env.redis_prefix(),
            ..d
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<RegistryConfig, ConfigError> {
        RegistryConfig::from_lookup(chat_env::vars(vars))
    }

    const REDIS: (&str, &str) = ("CHAT_REDIS_URL", "redis://127.0.0.1:6379");

    #[test]
    fn key_prefix_is_shared_with_the_nodes() {
        assert_eq!(config(&[REDIS]).unwrap().prefix, "chat:");
        let c = config(&[REDIS, ("CHAT_REDIS_PREFIX", "team1:")]).unwrap();
        assert_eq!(c.prefix, "team1:");
    }

    #[test]
    fn defaults_and_values() {
        let c = config(&[REDIS]).unwrap();
        assert_eq!(c.listen.port(), 8080);
        assert_eq!(c.redis, RedisConfig::Url("redis://127.0.0.1:6379".into()));
        assert!(c.admin_token.is_none() && c.cors_origins.is_none());
        assert_eq!(c.pick_half_life, Duration::from_secs(2));
        assert_eq!(c.metrics_listen, None);
        let c = config(&[REDIS, ("CHAT_METRICS_LISTEN", "127.0.0.1:9100")]).unwrap();
        assert_eq!(c.metrics_listen.map(|a| a.port()), Some(9100));
        let c = config(&[
            ("CHAT_REDIS_SENTINELS", "10.0.0.1:26379, s2:26379"),
            ("CHAT_REDIS_PASSWORD", "pw"),
            ("CHAT_LISTEN", "127.0.0.1:9000"),
            ("CHAT_ADMIN_TOKEN", "0123456789abcdef"),
            ("CHAT_CORS_ORIGINS", "http://a.test,http://b.test"),
            ("CHAT_PICK_HALF_LIFE", "500ms"),
        ])
        .unwrap();
        assert_eq!(
            c.redis,
            RedisConfig::Sentinel {
                sentinels: vec!["10.0.0.1:26379".into(), "s2:26379".into()],
                master: "mymaster".into(),
                password: Some("pw".into()),
            }
        );
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.admin_token.as_deref(), Some("0123456789abcdef"));
        assert_eq!(c.cors_origins.unwrap().len(), 2);
        assert_eq!(c.pick_half_life, Duration::from_millis(500));
        assert!(
            !format!(
                "{:?}",
                config(&[REDIS, ("CHAT_ADMIN_TOKEN", "0123456789abcdef")]).unwrap()
            )
            .contains("0123")
        );
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (var, value) in [
            ("CHAT_LISTEN", "nope"),
            ("CHAT_METRICS_LISTEN", "9100"),
            ("CHAT_ADMIN_TOKEN", "short"),
            ("CHAT_PICK_HALF_LIFE", "soon"),
            ("CHAT_PICK_HALF_LIFE", "0s"),
            ("CHAT_CORS_ORIGINS", "http://a\u{1}b"),
            ("CHAT_LOG_FORMAT", "xml"),
        ] {
            let err = config(&[REDIS, (var, value)]).unwrap_err().to_string();
            assert!(err.starts_with(var), "{err}");
        }
        let err = config(&[]).unwrap_err().to_string();
        assert!(err.starts_with("CHAT_REDIS_URL"), "{err}");
        let err = config(&[("CHAT_REDIS_URL", "http://x")])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("CHAT_REDIS_URL"), "{err}");
        let err = config(&[("CHAT_REDIS_SENTINELS", "hostonly")])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("CHAT_REDIS_SENTINELS"), "{err}");
    }
}
