//! `CHAT_*` parsing: defaults, values, and errors that name the variable.

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
    assert_eq!(c.api.token, None);
    let c = config(&[
        ("CHAT_API_TOKEN", "0123456789abcdef"),
        ("CHAT_API_RATE", "5"),
    ])
    .unwrap();
    assert_eq!(c.api.token.as_deref(), Some("0123456789abcdef"));
    assert_eq!((c.api.rate.per_second, c.api.rate.burst), (5.0, 10));
    assert!(!c.chat.allow_eio3, "old clients are refused unless allowed");
    assert_eq!(
        c.chat.presence_visibility,
        chat_core::config::PresenceVisibility::Everyone,
        "everyone sees presence unless restricted"
    );
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
        ("CHAT_ALLOW_EIO3", "true"),
        ("CHAT_PRESENCE_VISIBILITY", "contacts"),
        ("CHAT_MAX_CONTACTS", "50"),
        ("CHAT_RATE_CONTACT_REQUESTS", "0.5"),
        ("CHAT_RATE_CONTACT_REQUESTS_BURST", "3"),
    ])
    .unwrap();
    assert!(c.chat.allow_eio3);
    assert_eq!(
        c.chat.presence_visibility,
        chat_core::config::PresenceVisibility::Contacts
    );
    assert_eq!(c.chat.limits.contacts_per_user, 50);
    let rate = c.chat.limits.contact_request_rate;
    assert_eq!((rate.per_second, rate.burst), (0.5, 3));
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
        ("CHAT_API_TOKEN", "short"),
        ("CHAT_API_RATE", "0"),
        ("CHAT_MEMORY_MAX_MB", "0"),
        ("CHAT_ALLOW_EIO3", "yes"),
        ("CHAT_PRESENCE_VISIBILITY", "friends"),
        ("CHAT_MAX_CONTACTS", "0"),
        ("CHAT_RATE_CONTACT_REQUESTS", "0"),
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

/// Webhooks need both variables, an http(s) URL and a 16-byte secret.
#[test]
fn webhook_settings() {
    assert_eq!(config(&[]).unwrap().chat.webhook, None);
    let secret = ("CHAT_WEBHOOK_SECRET", "0123456789abcdef");
    let w = config(&[("CHAT_WEBHOOK_URL", "https://app.example/hooks"), secret])
        .unwrap()
        .chat
        .webhook
        .unwrap();
    assert_eq!(w.url, "https://app.example/hooks");
    assert_eq!(w.secret, "0123456789abcdef");
    assert_eq!(w.claim_after, Duration::from_secs(30));
    assert!(
        !format!("{w:?}").contains("0123456789abcdef"),
        "the secret is never logged"
    );
    let w = config(&[
        ("CHAT_WEBHOOK_URL", "http://127.0.0.1:9/"),
        secret,
        ("CHAT_WEBHOOK_CLAIM_AFTER", "2s"),
        ("CHAT_WEBHOOK_TIMEOUT", "500ms"),
    ])
    .unwrap()
    .chat
    .webhook
    .unwrap();
    assert_eq!(w.claim_after, Duration::from_secs(2));
    assert_eq!(w.timeout, Duration::from_millis(500));
    for (vars, var) in [
        (
            vec![("CHAT_WEBHOOK_URL", "http://a/")],
            "CHAT_WEBHOOK_SECRET",
        ),
        (vec![secret], "CHAT_WEBHOOK_URL"),
        (
            vec![("CHAT_WEBHOOK_URL", "ftp://a/"), secret],
            "CHAT_WEBHOOK_URL",
        ),
        (
            vec![("CHAT_WEBHOOK_URL", "/hooks"), secret],
            "CHAT_WEBHOOK_URL",
        ),
        (
            vec![
                ("CHAT_WEBHOOK_URL", "http://a/"),
                ("CHAT_WEBHOOK_SECRET", "short"),
            ],
            "CHAT_WEBHOOK_SECRET",
        ),
    ] {
        let err = config(&vars).unwrap_err().to_string();
        assert!(err.starts_with(var), "{err}");
        assert!(!err.contains("short"), "the secret is never shown: {err}");
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
