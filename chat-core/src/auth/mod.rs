//! Who a connecting client is: the [`Authenticator`] seam, with development-mode user names
//! ([`Development`]) and JWTs ([`Jwt`]: HS256 with a shared secret, RS256 or ES256 with a
//! public key) built in. Embedders plug in their own (a session cookie, an API call) with
//! [`ChatBuilder::authenticator`](crate::ChatBuilder::authenticator).

mod jwt;

use async_trait::async_trait;
use axum::{
    extract::Query,
    http::{HeaderName, Uri, request::Parts},
};
use serde::{Deserialize, Serialize};
use socketioxide::ProtocolVersion;

use crate::protocol::UserId;

pub use jwt::{Jwt, KeyError};

/// How clients prove who they are. Called once per Socket.IO connection, in the connect
/// middleware: an error refuses the connection with a `connect_error` whose message is
/// `unauthorized: ` and the error's text.
///
/// ```
/// use chat_core::auth::{AuthError, Authenticator, Handshake, Identity};
/// use chat_core::protocol::UserId;
///
/// /// Trusts a header set by the app's own gateway.
/// #[derive(Debug)]
/// struct FromGateway;
///
/// #[async_trait::async_trait]
/// impl Authenticator for FromGateway {
///     async fn authenticate(&self, hs: &Handshake<'_>) -> Result<Identity, AuthError> {
///         let user = hs.header("x-user").ok_or(AuthError::Missing("x-user header"))?;
///         let user = UserId::parse(user).map_err(|e| AuthError::InvalidUser(e.0))?;
///         Ok(Identity { user, expires_at: None })
///     }
///     fn headers(&self) -> Vec<axum::http::HeaderName> {
///         vec![axum::http::HeaderName::from_static("x-user")]
///     }
/// }
/// ```
#[async_trait]
pub trait Authenticator: std::fmt::Debug + Send + Sync + 'static {
    /// Checks a connecting client.
    async fn authenticate(&self, handshake: &Handshake<'_>) -> Result<Identity, AuthError>;

    /// The request headers [`authenticate`](Self::authenticate) reads. Only these (and those
    /// Engine.IO needs) are kept with a connection: every header kept costs each connection
    /// memory for its whole life, so the others are dropped before the handshake.
    fn headers(&self) -> Vec<HeaderName> {
        Vec::new()
    }
}

/// What a client presents when it connects.
#[derive(Debug, Clone, Copy)]
pub struct Handshake<'a> {
    /// The HTTP request that opened the Engine.IO session: its URI (query string included)
    /// and the headers named by [`Authenticator::headers`].
    pub request: &'a Parts,
    /// The Socket.IO `auth` payload of the connect packet, if it had one. Socket.IO protocol
    /// v4 clients (socket.io-client 2.x, with [`Config::allow_eio3`](crate::Config::allow_eio3))
    /// have no such payload: theirs is made of the `user` and `token` parameters of the
    /// handshake's query string, `{"user": .., "token": ..}`, when either is there.
    pub auth: Option<&'a serde_json::Value>,
}

impl Handshake<'_> {
    /// A header's value, if present and valid text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.request.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// A string field of the `auth` payload.
    pub fn auth_str(&self, field: &str) -> Option<&str> {
        self.auth?.get(field)?.as_str()
    }
}

/// The `auth` payload a connection is checked with: the connect packet's, or for a client of
/// Socket.IO protocol v4, which sends none, the credentials in its handshake request's query
/// string (`?user=alice`, `?token=<JWT>`). Protocol v5 clients never authenticate by query: a
/// token there would only be exposed for nothing.
pub(crate) fn credentials(
    protocol: ProtocolVersion,
    auth: Option<serde_json::Value>,
    uri: &Uri,
) -> Option<serde_json::Value> {
    /// The query parameters that carry credentials; the others (`EIO`, `transport`, `t`...)
    /// are Engine.IO's.
    #[derive(Deserialize, Serialize)]
    struct QueryCredentials {
        #[serde(skip_serializing_if = "Option::is_none")]
        user: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        token: Option<String>,
    }
    match protocol {
        ProtocolVersion::V5 => auth,
        // A v4 client sends no payload (socketioxide's extractor reads it as `{}`).
        ProtocolVersion::V4 => {
            // A malformed query (a repeated parameter, bad escapes) is no credential.
            let Query(q) = Query::<QueryCredentials>::try_from_uri(uri).ok()?;
            (q.user.is_some() || q.token.is_some())
                .then(|| serde_json::to_value(q).ok())
                .flatten()
        }
    }
}

/// An authenticated connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user.
    pub user: UserId,
    /// When the credentials expire (seconds since the epoch), if they do: the socket is sent
    /// `expired` and disconnected then.
    pub expires_at: Option<u64>,
}

impl Identity {
    /// Whether the credentials have expired at `now_ms`.
    pub fn expired(&self, now_ms: u64) -> bool {
        self.expires_at.is_some_and(|exp| now_ms / 1000 >= exp)
    }
}

/// Why a connection was refused. The text follows `unauthorized: ` in the `connect_error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No usable credentials.
    #[error("missing {0} in auth")]
    Missing(&'static str),
    /// The token's signature, algorithm or claims are wrong.
    #[error("invalid token")]
    InvalidToken,
    /// The token has expired.
    #[error("token expired")]
    Expired,
    /// The token's `nbf` (not before) is still in the future.
    #[error("token not valid yet")]
    NotYetValid,
    /// The user id does not follow the rules.
    #[error("invalid user id: {0}")]
    InvalidUser(&'static str),
    /// Refused by an embedder's authenticator; the text is shown to the client.
    #[error("{0}")]
    Refused(String),
}

/// Development mode: `{"user": "alice"}` is trusted as is. Never in production.
#[derive(Debug, Clone, Copy, Default)]
pub struct Development;

#[async_trait]
impl Authenticator for Development {
    async fn authenticate(&self, hs: &Handshake<'_>) -> Result<Identity, AuthError> {
        let user = hs.auth_str("user").ok_or(AuthError::Missing("user"))?;
        Ok(Identity {
            user: parse_user(user)?,
            expires_at: None,
        })
    }
}

/// A user id from credentials.
fn parse_user(user: &str) -> Result<UserId, AuthError> {
    UserId::parse(user).map_err(|e| AuthError::InvalidUser(e.0))
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
}

#[cfg(test)]
pub(crate) mod tests {
    use axum::http::Request;
    use serde_json::json;

    use super::*;

    /// Runs `a` on a handshake with this `auth` payload and no header.
    pub(crate) fn check(
        a: &dyn Authenticator,
        auth: Option<serde_json::Value>,
    ) -> Result<Identity, AuthError> {
        let (parts, ()) = Request::get("/socket.io/?EIO=4")
            .body(())
            .unwrap()
            .into_parts();
        let hs = Handshake {
            request: &parts,
            auth: auth.as_ref(),
        };
        futures_util::FutureExt::now_or_never(a.authenticate(&hs)).expect("ready")
    }

    /// A protocol v4 client's credentials come from its handshake's query string (`user`,
    /// `token`, percent-decoded); a protocol v5 client's only from its `auth` payload.
    #[test]
    fn protocol_v4_credentials_come_from_the_query() {
        let uri: Uri = "/socket.io/?EIO=3&transport=polling&user=al%69ce&token=a.b-c_d&t=N"
            .parse()
            .unwrap();
        let v4 = credentials(ProtocolVersion::V4, Some(json!({})), &uri);
        assert_eq!(v4, Some(json!({"user": "alice", "token": "a.b-c_d"})));
        let only_user: Uri = "/socket.io/?EIO=3&user=bob".parse().unwrap();
        assert_eq!(
            credentials(ProtocolVersion::V4, None, &only_user),
            Some(json!({"user": "bob"}))
        );
        let none: Uri = "/socket.io/?EIO=3&transport=websocket".parse().unwrap();
        assert_eq!(credentials(ProtocolVersion::V4, None, &none), None);
        let twice: Uri = "/socket.io/?EIO=3&user=a&user=b".parse().unwrap();
        assert_eq!(credentials(ProtocolVersion::V4, None, &twice), None);
        assert_eq!(credentials(ProtocolVersion::V5, None, &uri), None);
        let payload = json!({"user": "carol"});
        assert_eq!(
            credentials(ProtocolVersion::V5, Some(payload.clone()), &uri),
            Some(payload)
        );
    }

    /// Development mode takes a valid user id from `auth.user`, and nothing else.
    #[test]
    fn development_mode_takes_a_valid_user() {
        let a = Development;
        let ok = check(&a, Some(json!({"user": "alice"}))).unwrap();
        assert_eq!(ok.user.as_str(), "alice");
        assert_eq!(check(&a, None), Err(AuthError::Missing("user")));
        assert_eq!(
            check(&a, Some(json!({"user": 5}))),
            Err(AuthError::Missing("user"))
        );
        assert!(matches!(
            check(&a, Some(json!({"user": "a b"}))),
            Err(AuthError::InvalidUser(_))
        ));
    }
}
