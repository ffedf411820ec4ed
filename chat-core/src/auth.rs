//! Who a connecting client is: a signed token, or a bare user name in development mode.

use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};
use serde::Deserialize;

use crate::protocol::UserId;

/// How clients prove who they are.
#[derive(Clone)]
pub enum Authenticator {
    /// `{"user": "alice"}` is trusted as is. Development only.
    Development,
    /// `{"token": "<JWT>"}`: HS256 with this key; `sub` is the user, `exp` is required.
    Jwt(Box<(DecodingKey, Validation)>),
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Development => f.write_str("Development"),
            Self::Jwt(_) => f.write_str("Jwt(<secret>)"),
        }
    }
}

/// An authenticated connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user.
    pub user: UserId,
    /// When the credentials expire (seconds since the epoch), if they do.
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
    /// No usable credentials in the `auth` object.
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
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
}

#[derive(Deserialize, Default)]
struct AuthPayload {
    user: Option<serde_json::Value>,
    token: Option<serde_json::Value>,
}

impl Authenticator {
    /// JWT mode with an HS256 secret, or development mode without one.
    pub fn new(secret: Option<&str>) -> Self {
        match secret {
            None => Self::Development,
            Some(secret) => {
                let mut v = Validation::new(Algorithm::HS256);
                v.set_required_spec_claims(&["exp", "sub"]);
                v.leeway = 0;
                // `nbf` is optional; when present it is enforced like `exp`.
                v.validate_nbf = true;
                Self::Jwt(Box::new((DecodingKey::from_secret(secret.as_bytes()), v)))
            }
        }
    }

    /// Checks the Socket.IO `auth` object of a connection.
    pub fn authenticate(&self, auth: Option<&serde_json::Value>) -> Result<Identity, AuthError> {
        let payload: AuthPayload = auth
            .and_then(|a| serde_json::from_value(a.clone()).ok())
            .unwrap_or_default();
        match self {
            Self::Development => {
                let Some(serde_json::Value::String(user)) = payload.user else {
                    return Err(AuthError::Missing("user"));
                };
                let user = UserId::parse(user).map_err(|e| AuthError::InvalidUser(e.0))?;
                Ok(Identity {
                    user,
                    expires_at: None,
                })
            }
            Self::Jwt(jwt) => {
                let Some(serde_json::Value::String(token)) = payload.token else {
                    return Err(AuthError::Missing("token"));
                };
                let data =
                    jsonwebtoken::decode::<Claims>(&token, &jwt.0, &jwt.1).map_err(|e| match e
                        .kind()
                    {
                        ErrorKind::ExpiredSignature => AuthError::Expired,
                        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
                        _ => AuthError::InvalidToken,
                    })?;
                let user =
                    UserId::parse(data.claims.sub).map_err(|e| AuthError::InvalidUser(e.0))?;
                Ok(Identity {
                    user,
                    expires_at: Some(data.claims.exp),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    const SECRET: &str = "0123456789abcdef-secret";

    fn token(claims: serde_json::Value, secret: &str) -> serde_json::Value {
        let t = encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap();
        json!({ "token": t })
    }

    #[test]
    fn development_mode_takes_a_valid_user() {
        let a = Authenticator::new(None);
        assert_eq!(
            a.authenticate(Some(&json!({"user": "alice"})))
                .unwrap()
                .user
                .as_str(),
            "alice"
        );
        assert_eq!(a.authenticate(None), Err(AuthError::Missing("user")));
        assert_eq!(
            a.authenticate(Some(&json!({"user": 5}))),
            Err(AuthError::Missing("user"))
        );
        assert!(matches!(
            a.authenticate(Some(&json!({"user": "a b"}))),
            Err(AuthError::InvalidUser(_))
        ));
    }

    #[test]
    fn jwt_mode_checks_signature_expiry_and_claims() {
        let a = Authenticator::new(Some(SECRET));
        let exp = crate::protocol::now_ms() / 1000 + 60;
        let id = a
            .authenticate(Some(&token(json!({"sub": "bob", "exp": exp}), SECRET)))
            .unwrap();
        assert_eq!((id.user.as_str(), id.expires_at), ("bob", Some(exp)));
        assert!(!id.expired(crate::protocol::now_ms()));
        assert!(id.expired((exp + 1) * 1000));

        let bad_sig = token(json!({"sub": "bob", "exp": exp}), "another-secret-of-16b");
        assert_eq!(a.authenticate(Some(&bad_sig)), Err(AuthError::InvalidToken));
        let expired = token(json!({"sub": "bob", "exp": exp - 120}), SECRET);
        assert_eq!(a.authenticate(Some(&expired)), Err(AuthError::Expired));
        let early = token(json!({"sub": "bob", "exp": exp, "nbf": exp - 30}), SECRET);
        assert_eq!(a.authenticate(Some(&early)), Err(AuthError::NotYetValid));
        let started = token(json!({"sub": "bob", "exp": exp, "nbf": exp - 120}), SECRET);
        assert!(a.authenticate(Some(&started)).is_ok());
        let no_exp = token(json!({"sub": "bob"}), SECRET);
        assert_eq!(a.authenticate(Some(&no_exp)), Err(AuthError::InvalidToken));
        let bad_user = token(json!({"sub": "b o b", "exp": exp}), SECRET);
        assert!(matches!(
            a.authenticate(Some(&bad_user)),
            Err(AuthError::InvalidUser(_))
        ));
        assert_eq!(
            a.authenticate(Some(&json!({"user": "bob"}))),
            Err(AuthError::Missing("token"))
        );
    }
}
