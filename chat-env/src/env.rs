//! Reading `CHAT_*` variables: typed parsing with errors that name the variable, and the
//! variables every binary shares (Redis, listen address, CORS, log format). An empty value
//! counts as unset.

use std::{fmt::Display, net::SocketAddr, str::FromStr, time::Duration};

use chat_core::{keys::DEFAULT_PREFIX, redis::RedisConfig};

use crate::{ConfigError, LogFormat};

/// A source of variables: the environment, or a map in tests.
pub struct Env<'a>(&'a dyn Fn(&str) -> Option<String>);

impl std::fmt::Debug for Env<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Env")
    }
}

impl<'a> Env<'a> {
    /// Variables read through `lookup`: `|k| std::env::var(k).ok()`, or [`vars`] in tests.
    pub fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Self(lookup)
    }
}

impl Env<'_> {
    /// The value, with empty treated as unset.
    pub fn raw(&self, var: &str) -> Option<String> {
        (self.0)(var).filter(|v| !v.trim().is_empty())
    }

    /// A value parsed as `T` within `range`, or `default` when unset.
    pub fn parse<T>(
        &self,
        var: &'static str,
        default: T,
        range: impl std::ops::RangeBounds<T> + std::fmt::Debug,
    ) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd,
        T::Err: Display,
    {
        let Some(raw) = self.raw(var) else {
            return Ok(default);
        };
        let v = raw
            .trim()
            .parse::<T>()
            .map_err(|e| invalid(var, &raw, e.to_string()))?;
        if !range.contains(&v) {
            return Err(invalid(var, &raw, format!("out of range {range:?}")));
        }
        Ok(v)
    }

    /// A duration such as `2s`, `500ms`, `1m`; a bare number is seconds. Must lie in
    /// `min..=max`.
    pub fn duration(
        &self,
        var: &'static str,
        default: Duration,
        min: Duration,
        max: Duration,
    ) -> Result<Duration, ConfigError> {
        let Some(raw) = self.raw(var) else {
            return Ok(default);
        };
        let t = raw.trim();
        let d = match t.parse::<u64>() {
            Ok(secs) => Duration::from_secs(secs),
            Err(_) => {
                humantime::parse_duration(t).map_err(|e| invalid(var, &raw, e.to_string()))?
            }
        };
        if d < min || d > max {
            return Err(invalid(
                var,
                &raw,
                format!("out of range {min:?}..={max:?}"),
            ));
        }
        Ok(d)
    }

    /// `CHAT_LISTEN`, or `default`.
    pub fn listen(&self, default: SocketAddr) -> Result<SocketAddr, ConfigError> {
        self.parse("CHAT_LISTEN", default, ..)
    }

    /// `CHAT_METRICS_LISTEN`: where `/metrics` is served apart from the main listener, an
    /// `ip:port`; unset = on the main listener.
    pub fn metrics_listen(&self) -> Result<Option<SocketAddr>, ConfigError> {
        const VAR: &str = "CHAT_METRICS_LISTEN";
        self.raw(VAR)
            .map(|raw| {
                raw.trim()
                    .parse()
                    .map_err(|e: std::net::AddrParseError| invalid(VAR, &raw, e.to_string()))
            })
            .transpose()
    }

    /// `CHAT_LOG_FORMAT`: `text` (default) or `json`.
    pub fn log_format(&self) -> Result<LogFormat, ConfigError> {
        match self.raw("CHAT_LOG_FORMAT").as_deref() {
            None | Some("text") => Ok(LogFormat::Text),
            Some("json") => Ok(LogFormat::Json),
            Some(other) => Err(invalid("CHAT_LOG_FORMAT", other, "expected text or json")),
        }
    }

    /// `CHAT_CORS_ORIGINS`, comma-separated; `None` when unset.
    pub fn cors_origins(&self) -> Result<Option<Vec<String>>, ConfigError> {
        let Some(raw) = self.raw("CHAT_CORS_ORIGINS") else {
            return Ok(None);
        };
        let list: Vec<String> = raw
            .split(',')
            .map(|o| o.trim().to_owned())
            .filter(|o| !o.is_empty())
            .collect();
        if let Some(bad) = list
            .iter()
            .find(|o| o.as_str() != "*" && http::HeaderValue::from_str(o).is_err())
        {
            return Err(invalid("CHAT_CORS_ORIGINS", bad, "not a valid origin"));
        }
        Ok(Some(list))
    }

    /// Where Redis is: `CHAT_REDIS_URL`, or `CHAT_REDIS_SENTINELS` (+ `CHAT_REDIS_MASTER`,
    /// default `mymaster`, and `CHAT_REDIS_PASSWORD`). `None` when neither is set.
    pub fn redis(&self) -> Result<Option<RedisConfig>, ConfigError> {
        let url = self.raw("CHAT_REDIS_URL");
        let sentinels = self.raw("CHAT_REDIS_SENTINELS");
        match (url, sentinels) {
            (Some(_), Some(_)) => Err(ConfigError::Invalid {
                var: "CHAT_REDIS_SENTINELS",
                value: "<set>".into(),
                reason: "set either CHAT_REDIS_URL or CHAT_REDIS_SENTINELS, not both".into(),
            }),
            (Some(url), None) => {
                let t = url.trim();
                if !(t.starts_with("redis://")
                    || t.starts_with("rediss://")
                    || t.starts_with("unix://"))
                {
                    // The URL may hold a password: never echo it.
                    return Err(invalid(
                        "CHAT_REDIS_URL",
                        "<hidden>",
                        "expected redis://[:password@]host:port/db",
                    ));
                }
                Ok(Some(RedisConfig::Url(t.to_owned())))
            }
            (None, Some(list)) => {
                let sentinels: Vec<String> = list
                    .split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect();
                for s in &sentinels {
                    let port_ok = s.rsplit_once(':').is_some_and(|(host, port)| {
                        !host.is_empty() && port.parse::<u16>().is_ok()
                    });
                    if !port_ok {
                        return Err(invalid("CHAT_REDIS_SENTINELS", s, "expected host:port"));
                    }
                }
                Ok(Some(RedisConfig::Sentinel {
                    sentinels,
                    master: self
                        .raw("CHAT_REDIS_MASTER")
                        .unwrap_or_else(|| "mymaster".into()),
                    password: self.raw("CHAT_REDIS_PASSWORD"),
                }))
            }
            (None, None) => Ok(None),
        }
    }

    /// `CHAT_REDIS_PREFIX`: the prefix of every Redis key, `chat:` by default.
    pub fn redis_prefix(&self) -> String {
        self.raw("CHAT_REDIS_PREFIX")
            .unwrap_or_else(|| DEFAULT_PREFIX.into())
    }

    /// [`Env::redis`], required: the registry and the health checker only work on Redis.
    pub fn require_redis(&self) -> Result<RedisConfig, ConfigError> {
        self.redis()?.ok_or(ConfigError::Invalid {
            var: "CHAT_REDIS_URL",
            value: String::new(),
            reason: "required (or CHAT_REDIS_SENTINELS): the node table lives in Redis".into(),
        })
    }
}

/// A [`ConfigError::Invalid`] for `var`.
pub fn invalid(var: &'static str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        var,
        value: value.to_owned(),
        reason: reason.into(),
    }
}

/// A lookup over fixed variables, for config tests.
pub fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: std::collections::HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}
