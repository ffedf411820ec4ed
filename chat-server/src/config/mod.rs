//! `chat-server`'s configuration, from `CHAT_*` variables in one place. A bad value is an
//! error at start that names the variable.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use chat_core::{
    Config, Limits,
    archive::ArchiveConfig,
    config::{Rate, RedisSettings, WebhookConfig},
    redis::RedisConfig,
    serve::HttpLimits,
};
use chat_env::{ConfigError, Env, LogFormat, invalid};

use crate::admin::AdminCredentials;
use crate::api::ApiConfig;

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
    /// The server API (`CHAT_API_TOKEN`, at least 16 bytes; `CHAT_API_RATE` requests per
    /// second, default 1000).
    pub api: ApiConfig,
    /// The Socket.IO Admin UI's login (`CHAT_ADMIN_UI_USER` and `CHAT_ADMIN_UI_PASSWORD`,
    /// both or neither); unset = the UI is off.
    pub admin_ui: Option<AdminCredentials>,
    /// The archive (`CHAT_DATABASE_URL`, `CHAT_SEARCH_LANGUAGE`, `CHAT_ARCHIVE_CLAIM_AFTER`);
    /// unset = no archive, no search.
    pub archive: Option<ArchiveSettings>,
    /// The chat itself.
    pub chat: Config,
}

/// Where the archive is and how messages reach it (docs/archive.md).
#[derive(Clone, PartialEq, Eq)]
pub struct ArchiveSettings {
    /// `postgres://user:password@host:port/database` (`CHAT_DATABASE_URL`).
    pub url: String,
    /// PostgreSQL's text search configuration (`CHAT_SEARCH_LANGUAGE`, default `simple`:
    /// no stemming, any language).
    pub language: String,
    /// The queue's settings.
    pub queue: ArchiveConfig,
}

impl std::fmt::Debug for ArchiveSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveSettings")
            .field("url", &"<hidden>")
            .field("language", &self.language)
            .field("queue", &self.queue)
            .finish()
    }
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
            memory_max_bytes: env.parse(
                "CHAT_MEMORY_MAX_MB",
                dl.memory_max_bytes >> 20,
                1..=1 << 20,
            )? << 20,
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
            search_rate: Rate::new(
                env.parse("CHAT_RATE_SEARCH", dl.search_rate.per_second, 0.01..=1e6)?,
                env.parse(
                    "CHAT_RATE_SEARCH_BURST",
                    dl.search_rate.burst,
                    1..=1_000_000,
                )?,
            ),
            contact_request_rate: Rate::new(
                env.parse(
                    "CHAT_RATE_CONTACT_REQUESTS",
                    dl.contact_request_rate.per_second,
                    0.001..=1e6,
                )?,
                env.parse(
                    "CHAT_RATE_CONTACT_REQUESTS_BURST",
                    dl.contact_request_rate.burst,
                    1..=1_000_000,
                )?,
            ),
            contacts_per_user: env.parse("CHAT_MAX_CONTACTS", dl.contacts_per_user, 1..=100_000)?,
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
            auth_public_key: auth_public_key(&env)?,
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
            allow_eio3: env.parse("CHAT_ALLOW_EIO3", d.allow_eio3, ..)?,
            presence_visibility: env.parse(
                "CHAT_PRESENCE_VISIBILITY",
                d.presence_visibility,
                ..,
            )?,
            webhook: webhook_from_env(&env)?,
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
            api: api_from_env(&env)?,
            admin_ui: admin_ui_from_env(&env)?,
            archive: archive_from_env(&env)?,
            chat,
        })
    }
}

fn api_from_env(env: &Env<'_>) -> Result<ApiConfig, ConfigError> {
    let d = ApiConfig::default();
    let token = match env.raw("CHAT_API_TOKEN") {
        Some(t) if t.len() < 16 => {
            return Err(invalid(
                "CHAT_API_TOKEN",
                "<hidden>",
                "use at least 16 bytes",
            ));
        }
        t => t,
    };
    let per_second = env.parse("CHAT_API_RATE", d.rate.per_second, 1.0..=1e6)?;
    Ok(ApiConfig {
        token,
        rate: Rate::new(per_second, (per_second * 2.0).ceil() as u32),
    })
}

/// `CHAT_AUTH_PUBLIC_KEY`: the PEM itself, or the path of a file holding it; checked here
/// so that a bad key stops the node at start.
fn auth_public_key(env: &Env<'_>) -> Result<Option<String>, ConfigError> {
    const VAR: &str = "CHAT_AUTH_PUBLIC_KEY";
    let Some(value) = env.raw(VAR) else {
        return Ok(None);
    };
    let pem = match value.trim_start().starts_with("-----BEGIN") {
        true => value,
        false => std::fs::read_to_string(&value).map_err(|e| {
            invalid(
                VAR,
                &value,
                format!("not a PEM key, nor a readable file: {e}"),
            )
        })?,
    };
    chat_core::auth::Jwt::public_key_pem(&pem).map_err(|e| invalid(VAR, "<key>", e.to_string()))?;
    Ok(Some(pem))
}

/// `CHAT_WEBHOOK_URL` and `CHAT_WEBHOOK_SECRET` (both or neither), with the tunables
/// `CHAT_WEBHOOK_TIMEOUT` and `CHAT_WEBHOOK_CLAIM_AFTER`.
fn webhook_from_env(env: &Env<'_>) -> Result<Option<WebhookConfig>, ConfigError> {
    let (url, secret) = match (env.raw("CHAT_WEBHOOK_URL"), env.raw("CHAT_WEBHOOK_SECRET")) {
        (None, None) => return Ok(None),
        (Some(url), Some(secret)) => (url, secret),
        (Some(_), None) => {
            return Err(invalid(
                "CHAT_WEBHOOK_SECRET",
                "",
                "required with CHAT_WEBHOOK_URL",
            ));
        }
        (None, Some(_)) => {
            return Err(invalid(
                "CHAT_WEBHOOK_URL",
                "",
                "required with CHAT_WEBHOOK_SECRET",
            ));
        }
    };
    let parsed: Option<axum::http::Uri> = url.parse().ok();
    if !parsed
        .is_some_and(|u| matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some())
    {
        return Err(invalid(
            "CHAT_WEBHOOK_URL",
            &url,
            "use an absolute http:// or https:// url",
        ));
    }
    if secret.len() < 16 {
        return Err(invalid(
            "CHAT_WEBHOOK_SECRET",
            "<hidden>",
            "use at least 16 bytes",
        ));
    }
    let d = WebhookConfig::new(url, secret);
    Ok(Some(WebhookConfig {
        timeout: env.duration(
            "CHAT_WEBHOOK_TIMEOUT",
            d.timeout,
            Duration::from_millis(100),
            Duration::from_secs(300),
        )?,
        claim_after: env.duration(
            "CHAT_WEBHOOK_CLAIM_AFTER",
            d.claim_after,
            Duration::from_millis(100),
            Duration::from_secs(3600),
        )?,
        ..d
    }))
}

/// `CHAT_ADMIN_UI_USER` and `CHAT_ADMIN_UI_PASSWORD` (both or neither, 8 bytes or more).
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

/// `CHAT_DATABASE_URL` turns the archive on; `CHAT_SEARCH_LANGUAGE` and
/// `CHAT_ARCHIVE_CLAIM_AFTER` tune it.
fn archive_from_env(env: &Env<'_>) -> Result<Option<ArchiveSettings>, ConfigError> {
    let Some(url) = env.raw("CHAT_DATABASE_URL") else {
        return Ok(None);
    };
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(invalid(
            "CHAT_DATABASE_URL",
            "<hidden>",
            "use a postgres:// url",
        ));
    }
    let language = env
        .raw("CHAT_SEARCH_LANGUAGE")
        .unwrap_or_else(|| chat_archive::DEFAULT_LANGUAGE.to_owned());
    if language.is_empty()
        || !language
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(invalid(
            "CHAT_SEARCH_LANGUAGE",
            &language,
            "name a text search configuration (simple, english, french...)",
        ));
    }
    let d = ArchiveConfig::default();
    Ok(Some(ArchiveSettings {
        url,
        language,
        queue: ArchiveConfig {
            claim_after: env.duration(
                "CHAT_ARCHIVE_CLAIM_AFTER",
                d.claim_after,
                Duration::from_millis(100),
                Duration::from_secs(3600),
            )?,
            ..d
        },
    }))
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
mod tests;
