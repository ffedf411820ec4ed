//! `chat-server`'s configuration, from `CHAT_*` variables in one place. A bad value is an
//! error at start that names the variable.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use chat_core::{
    Config, Limits,
    config::{Rate, RedisSettings},
    redis::RedisConfig,
    serve::HttpLimits,
};
use chat_env::{ConfigError, Env, LogFormat, invalid};

use crate::admin::AdminCredentials;

/// Configuration of a chat-server node: the chat's, and what only the binary uses.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Bind address (`CHAT_LISTEN`, default `0.0.0.0:3000`).
    pub listen: SocketAddr,
    /// Where `/metrics` is served apart (`CHAT_METRICS_LISTEN`); unset = on `listen`.
    pub metrics_listen: Option<SocketAddr>,
    /// Built web client to serve at `/` (`CHAT_WEB_DIR`; default `web-client/dist` when it
    /// was built).
    pub web_dir: Option<PathBuf>,
    /// Log format (`CHAT_LOG_FORMAT`).
    pub log_format: LogFormat,
    /// What HTTP clients may hold: `CHAT_MAX_CONNECTIONS` (open TCP connections, WebSockets
    /// included, default 100,000); request heads and idle keep-alive connections time out
    /// after 10 s.
    pub http: HttpLimits,
    /// The Socket.IO Admin UI's login (`CHAT_ADMIN_UI_USER` and `CHAT_ADMIN_UI_PASSWORD`,
    /// both or neither); unset = the UI is off.
    pub admin_ui: Option<AdminCredentials>,
    /// The chat itself.
    pub chat: Config,
}

impl ServerConfig {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads variables through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env::new(&lookup);
        let d = Config::default();
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
        let chat = Config {
            public_url: env.raw("CHAT_PUBLIC_URL"),
            node_id: match env.raw("CHAT_NODE_ID") {
                Some(id) => {
                    chat_core::protocol::GroupId::parse(id.as_str())
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
            cors_origins: env.cors_origins()?,
            drain_timeout: env.duration(
                "CHAT_DRAIN_TIMEOUT",
                d.drain_timeout,
                Duration::ZERO,
                Duration::from_secs(3600),
            )?,
            limits,
            capacity: env.parse("CHAT_CAPACITY", d.capacity, 1..=10_000_000)?,
            redis: redis_from_env(&env)?,
        };
        Ok(Self {
            listen: env.listen(SocketAddr::from(([0, 0, 0, 0], 3000)))?,
            metrics_listen: env.metrics_listen()?,
            web_dir: env.raw("CHAT_WEB_DIR").map(PathBuf::from),
            log_format: env.log_format()?,
            http: HttpLimits {
                max_connections: env.parse(
                    "CHAT_MAX_CONNECTIONS",
                    HttpLimits::default().max_connections,
                    1..=10_000_000,
                )?,
                ..HttpLimits::default()
            },
            admin_ui: admin_ui_from_env(&env)?,
            chat,
        })
    }
}

fn admin_ui_from_env(env: &Env<'_>) -> Result<Option<AdminCredentials>, ConfigError> {
    const USER: &str = "CHAT_ADMIN_UI_USER";
    const PASSWORD: &str = "CHAT_ADMIN_UI_PASSWORD";
    match (env.raw(USER), env.raw(PASSWORD)) {
        (None, None) => Ok(None),
        (Some(_), None) => Err(invalid(PASSWORD, "", format!("required with {USER}"))),
        (None, Some(_)) => Err(invalid(USER, "", format!("required with {PASSWORD}"))),
        (Some(_), Some(p)) if p.len() < 8 => {
            Err(invalid(PASSWORD, "<hidden>", "use at least 8 bytes"))
        }
        (Some(user), Some(password)) => Ok(Some(AdminCredentials { user, password })),
    }
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

    fn config(vars: &[(&str, &str)]) -> Result<ServerConfig, ConfigError> {
        ServerConfig::from_lookup(chat_env::vars(vars))
    }

    #[test]
    fn defaults_without_environment() {
        let c = config(&[]).unwrap();
        assert_eq!(c.listen.port(), 3000);
        assert_eq!(c.metrics_listen, None);
        let c = config(&[("CHAT_METRICS_LISTEN", "127.0.0.1:9100")]).unwrap();
        assert_eq!(
            c.metrics_listen,
            Some(SocketAddr::from(([127, 0, 0, 1], 9100)))
        );
        let c = config(&[]).unwrap();
        assert_eq!(c.chat.limits, Limits::default());
        assert!(c.chat.auth_secret.is_none());
        assert_eq!(c.chat.drain_timeout, Duration::from_secs(10));
        assert_eq!(c.admin_ui, None, "the admin ui is off by default");
    }

    /// The Admin UI needs both variables and a password of 8 bytes or more.
    #[test]
    fn admin_ui_credentials() {
        let c = config(&[
            ("CHAT_ADMIN_UI_USER", "admin"),
            ("CHAT_ADMIN_UI_PASSWORD", "long enough"),
        ])
        .unwrap();
        let creds = c.admin_ui.unwrap();
        assert_eq!(
            (creds.user.as_str(), creds.password.as_str()),
            ("admin", "long enough")
        );
        assert!(
            !format!("{creds:?}").contains("long enough"),
            "the password is not logged"
        );
        let err = config(&[
            ("CHAT_ADMIN_UI_USER", "admin"),
            ("CHAT_ADMIN_UI_PASSWORD", "short"),
        ])
        .unwrap_err();
        assert!(
            err.to_string().starts_with("CHAT_ADMIN_UI_PASSWORD"),
            "{err}"
        );
        // One without the other names the missing one.
        let err = config(&[("CHAT_ADMIN_UI_USER", "admin")]).unwrap_err();
        assert!(
            err.to_string().starts_with("CHAT_ADMIN_UI_PASSWORD"),
            "{err}"
        );
        let err = config(&[("CHAT_ADMIN_UI_PASSWORD", "long enough")]).unwrap_err();
        assert!(err.to_string().starts_with("CHAT_ADMIN_UI_USER"), "{err}");
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
            ("CHAT_MAX_CONNECTIONS", "500"),
        ])
        .unwrap();
        assert_eq!(c.http.max_connections, 500);
        assert!(!c.chat.limits.receipts);
        assert_eq!(c.listen.port(), 0);
        assert_eq!(c.chat.limits.max_body, 10);
        assert_eq!(c.chat.drain_timeout, Duration::from_millis(500));
        assert_eq!(c.chat.cors_origins.unwrap(), vec!["http://a", "http://b"]);
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.chat.limits.message_rate.per_second, 2.5);
        assert_eq!(
            config(&[("CHAT_DRAIN_TIMEOUT", "3")])
                .unwrap()
                .chat
                .drain_timeout
                .as_secs(),
            3
        );
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (var, value) in [
            ("CHAT_LISTEN", "nope"),
            ("CHAT_METRICS_LISTEN", "localhost:9100"),
            ("CHAT_MAX_BODY", "0"),
            ("CHAT_MAX_BODY", "-3"),
            ("CHAT_DRAIN_TIMEOUT", "soon"),
            ("CHAT_LOG_FORMAT", "xml"),
            ("CHAT_NODE_ID", "a b"),
            ("CHAT_AUTH_SECRET", "short"),
            ("CHAT_RECEIPTS", "maybe"),
            ("CHAT_MAX_CONNECTIONS", "0"),
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
        assert_eq!(config(&[]).unwrap().chat.redis, None);
        let url = config(&[("CHAT_REDIS_URL", "redis://127.0.0.1:6379/0")])
            .unwrap()
            .chat
            .redis
            .unwrap();
        assert_eq!(
            url.target,
            RedisConfig::Url("redis://127.0.0.1:6379/0".into())
        );
        assert_eq!((url.prefix.as_str(), url.wait_replicas), ("chat:", 0));
        let s = config(&[("CHAT_REDIS_SENTINELS", "10.0.0.1:26379, s2:26379")])
            .unwrap()
            .chat
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
