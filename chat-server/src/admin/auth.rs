//! Who may open the Admin UI: the `{username, password}` of `CHAT_ADMIN_UI_USER` and
//! `CHAT_ADMIN_UI_PASSWORD`, compared in constant time, or a session id this node handed out
//! after such a login (the UI keeps it and reconnects with it after a page reload).

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use rand::RngCore;
use serde::Deserialize;
use subtle::ConstantTimeEq;

/// How long a session id stays valid.
const SESSION_TTL: Duration = Duration::from_secs(24 * 3600);
/// Sessions kept at most; the oldest goes first.
const MAX_SESSIONS: usize = 1000;
/// Failed logins allowed per [`FAILURE_WINDOW`] on this node; past it every login is
/// refused until the window ends, so a password cannot be guessed at network speed.
const MAX_FAILURES: u32 = 20;
const FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// The Admin UI's credentials (`CHAT_ADMIN_UI_USER`, `CHAT_ADMIN_UI_PASSWORD`).
#[derive(Clone, PartialEq, Eq)]
pub struct AdminCredentials {
    /// User name the UI's login form must give.
    pub user: String,
    /// Password the UI's login form must give (at least 8 bytes).
    pub password: String,
}

impl std::fmt::Debug for AdminCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminCredentials")
            .field("user", &self.user)
            .field("password", &"<hidden>")
            .finish()
    }
}

/// The handshake `auth` payload of the Admin UI.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct AdminAuth {
    username: Option<String>,
    password: Option<String>,
    session_id: Option<String>,
}

/// Why a login was refused: the message is what the UI shows (it opens its login form on
/// exactly `invalid credentials`).
#[derive(Debug, thiserror::Error)]
pub(super) enum Refused {
    /// Wrong user name, password or session.
    #[error("invalid credentials")]
    Invalid,
    /// Too many failed logins on this node in the last minute.
    #[error("too many failed logins, retry in a minute")]
    TooMany,
}

/// The outcome of a good login.
#[derive(Debug, Clone)]
pub(super) enum Login {
    /// Credentials: a new session id to hand the UI.
    NewSession(String),
    /// A session id from before.
    Resumed,
}

#[derive(Debug)]
pub(super) struct Gate {
    credentials: AdminCredentials,
    sessions: Mutex<HashMap<String, Instant>>,
    failures: Mutex<(Instant, u32)>,
}

impl Gate {
    pub(super) fn new(credentials: AdminCredentials) -> Self {
        Self {
            credentials,
            sessions: Mutex::default(),
            failures: Mutex::new((Instant::now(), 0)),
        }
    }

    pub(super) fn check(&self, auth: &AdminAuth) -> Result<Login, Refused> {
        let now = Instant::now();
        {
            let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
            if now.duration_since(f.0) >= FAILURE_WINDOW {
                *f = (now, 0);
            }
            if f.1 >= MAX_FAILURES {
                return Err(Refused::TooMany);
            }
        }
        if let Some(id) = &auth.session_id {
            let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
            sessions.retain(|_, born| now.duration_since(*born) < SESSION_TTL);
            if sessions.contains_key(id) {
                return Ok(Login::Resumed);
            }
        }
        let (user, password) = (
            auth.username.as_deref().unwrap_or_default(),
            auth.password.as_deref().unwrap_or_default(),
        );
        // Both compared whatever the first says: the time taken tells nothing.
        let good = user.as_bytes().ct_eq(self.credentials.user.as_bytes())
            & password
                .as_bytes()
                .ct_eq(self.credentials.password.as_bytes());
        if bool::from(good) {
            return Ok(Login::NewSession(self.new_session(now)));
        }
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        f.1 += 1;
        Err(Refused::Invalid)
    }

    fn new_session(&self, now: Instant) -> String {
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, t)| **t)
                .map(|(k, _)| k.clone())
        {
            sessions.remove(&oldest);
        }
        sessions.insert(id.clone(), now);
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate() -> Gate {
        Gate::new(AdminCredentials {
            user: "admin".into(),
            password: "correct horse".into(),
        })
    }

    fn login(user: &str, password: &str) -> AdminAuth {
        AdminAuth {
            username: Some(user.into()),
            password: Some(password.into()),
            session_id: None,
        }
    }

    /// Only the exact user and password log in, and the session id handed out then works
    /// alone; a made-up one does not.
    #[test]
    fn credentials_and_sessions() {
        let g = gate();
        assert!(matches!(
            g.check(&login("admin", "correct hors")),
            Err(Refused::Invalid)
        ));
        assert!(matches!(
            g.check(&login("Admin", "correct horse")),
            Err(Refused::Invalid)
        ));
        assert!(matches!(
            g.check(&AdminAuth::default()),
            Err(Refused::Invalid)
        ));
        let Ok(Login::NewSession(id)) = g.check(&login("admin", "correct horse")) else {
            panic!("good credentials refused");
        };
        let resume = |id: &str| AdminAuth {
            session_id: Some(id.into()),
            ..AdminAuth::default()
        };
        assert!(matches!(g.check(&resume(&id)), Ok(Login::Resumed)));
        assert!(matches!(g.check(&resume("0123")), Err(Refused::Invalid)));
    }

    /// After 20 failed logins in a minute even the right password is refused.
    #[test]
    fn failures_lock_logins_out() {
        let g = gate();
        for _ in 0..MAX_FAILURES {
            assert!(matches!(
                g.check(&login("admin", "guess")),
                Err(Refused::Invalid)
            ));
        }
        assert!(matches!(
            g.check(&login("admin", "correct horse")),
            Err(Refused::TooMany)
        ));
    }
}
