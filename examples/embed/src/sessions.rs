//! The app's own sign-in: session ids in a cookie, kept in memory, and [`CookieSessions`], the
//! chat's [`Authenticator`] that reads the same cookie from the Socket.IO handshake.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use async_trait::async_trait;
use axum::http::{HeaderMap, HeaderName, header::COOKIE};
use chat_core::{
    auth::{AuthError, Authenticator, Handshake, Identity},
    protocol::UserId,
};
use rand::{Rng, distr::Alphanumeric};

/// The cookie that carries the session id.
pub const COOKIE_NAME: &str = "session";

/// What a connection without a valid session is told (after `unauthorized: `).
pub const LOG_IN_FIRST: &str = "log in first (POST /login)";

/// Signed-in sessions: session id → user. In memory, so a restart signs everyone out; a real
/// app keeps them in its database or in Redis. Cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct Sessions {
    inner: Arc<Mutex<HashMap<String, UserId>>>,
}

impl Sessions {
    /// Signs `user` in: a fresh session id (32 alphanumeric characters, about 190 bits, from
    /// rand's thread-local CSPRNG).
    pub fn create(&self, user: UserId) -> String {
        let id: String = rand::rng()
            .sample_iter(&Alphanumeric)
            .take(32)
            .map(char::from)
            .collect();
        self.map().insert(id.clone(), user);
        id
    }

    /// The user of session `id`, if it is signed in.
    pub fn user(&self, id: &str) -> Option<UserId> {
        self.map().get(id).cloned()
    }

    /// Signs session `id` out; its user, if it was signed in.
    pub fn remove(&self, id: &str) -> Option<UserId> {
        self.map().remove(id)
    }

    /// The user of the session named by the `Cookie` headers of a request, if any.
    pub fn from_headers(&self, headers: &HeaderMap) -> Option<UserId> {
        session_id(headers).and_then(|id| self.user(id))
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, UserId>> {
        // The map is never left half-changed (single inserts and removes): a panic elsewhere
        // while it was held does not make it wrong.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The chat's authenticator: a Socket.IO connection is the user of the session cookie its
/// handshake request carried. Browsers send the cookie by themselves, on the polling requests
/// and on the WebSocket upgrade alike, when the page and the chat share an origin (or with
/// `withCredentials: true` across origins allowed by the chat's CORS settings).
#[derive(Debug, Clone)]
pub struct CookieSessions {
    sessions: Sessions,
}

impl CookieSessions {
    /// Authenticates against `sessions`, the ones `/login` fills.
    pub fn new(sessions: Sessions) -> Self {
        Self { sessions }
    }
}

#[async_trait]
impl Authenticator for CookieSessions {
    async fn authenticate(&self, hs: &Handshake<'_>) -> Result<Identity, AuthError> {
        match self.sessions.from_headers(&hs.request.headers) {
            // Sessions last until `/logout`: no expiry for the chat to enforce.
            Some(user) => Ok(Identity {
                user,
                expires_at: None,
            }),
            None => {
                tracing::debug!("socket.io connection without a valid session refused");
                Err(AuthError::Refused(LOG_IN_FIRST.to_owned()))
            }
        }
    }

    /// Without this, the chat drops the `Cookie` header before the handshake reaches
    /// [`authenticate`](Self::authenticate) (it keeps only the headers authenticators name).
    fn headers(&self) -> Vec<HeaderName> {
        vec![COOKIE]
    }
}

/// The `Set-Cookie` value that signs a browser in: not readable by scripts (`HttpOnly`), not
/// sent on cross-site subrequests (`SameSite=Lax`), for every path. No `Secure`: the example
/// serves plain HTTP on loopback; behind TLS, add it.
pub fn set_cookie(id: &str) -> String {
    format!("{COOKIE_NAME}={id}; HttpOnly; SameSite=Lax; Path=/")
}

/// The `Set-Cookie` value that makes the browser forget the session.
pub fn clear_cookie() -> String {
    format!("{COOKIE_NAME}=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0")
}

/// The session id in the `Cookie` headers (`a=1; session=xyz`), the first if there are
/// several. HTTP/2 clients may split cookies over several headers, hence all of them.
pub(crate) fn session_id(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use axum::http::HeaderValue;

    use super::*;

    /// The session cookie is found among others, in any `Cookie` header; an empty one is none.
    #[test]
    fn finds_the_session_among_other_cookies() {
        let mut headers = HeaderMap::new();
        assert_eq!(session_id(&headers), None);
        headers.append(COOKIE, HeaderValue::from_static("theme=dark; lang=en"));
        assert_eq!(session_id(&headers), None);
        headers.append(COOKIE, HeaderValue::from_static("a=1;session=abc; b=2"));
        assert_eq!(session_id(&headers), Some("abc"));
        let mut empty = HeaderMap::new();
        empty.append(COOKIE, HeaderValue::from_static("session="));
        assert_eq!(session_id(&empty), None);
    }

    /// A session signs its user in until it is removed; ids are not reused.
    #[test]
    fn sessions_sign_in_and_out() {
        let sessions = Sessions::default();
        let alice = UserId::parse("alice").unwrap();
        let a = sessions.create(alice.clone());
        let b = sessions.create(alice.clone());
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert_eq!(sessions.user(&a), Some(alice.clone()));
        assert_eq!(sessions.remove(&a), Some(alice.clone()));
        assert_eq!(sessions.user(&a), None);
        assert_eq!(sessions.user(&b), Some(alice));
    }
}
