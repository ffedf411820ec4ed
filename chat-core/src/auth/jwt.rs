//! JWT authentication: `{"token": "<JWT>"}` in the `auth` payload, `sub` the user, `exp`
//! required, `nbf` enforced when present.

use async_trait::async_trait;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};

use super::{AuthError, Authenticator, Claims, Handshake, Identity, parse_user};

/// Verifies JWTs: HS256 with a shared secret ([`Jwt::hs256`], `CHAT_AUTH_SECRET`), or RS256 /
/// ES256 with the issuer's public key ([`Jwt::public_key_pem`], `CHAT_AUTH_PUBLIC_KEY`), so
/// the chat never holds a key that can sign.
#[derive(Clone)]
pub struct Jwt {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for Jwt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwt")
            .field("algorithms", &self.validation.algorithms)
            .finish_non_exhaustive()
    }
}

/// A public key that cannot verify tokens.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the public key is neither an RSA nor a P-256 EC key in PEM")]
pub struct KeyError;

impl Jwt {
    /// HS256 tokens signed with `secret`.
    pub fn hs256(secret: &[u8]) -> Self {
        Self::new(DecodingKey::from_secret(secret), Algorithm::HS256)
    }

    /// RS256 tokens (an RSA public key) or ES256 tokens (a P-256 EC public key), from PEM
    /// (`-----BEGIN PUBLIC KEY-----`, or `BEGIN RSA PUBLIC KEY`).
    pub fn public_key_pem(pem: &str) -> Result<Self, KeyError> {
        if let Ok(key) = DecodingKey::from_rsa_pem(pem.as_bytes()) {
            return Ok(Self::new(key, Algorithm::RS256));
        }
        match DecodingKey::from_ec_pem(pem.as_bytes()) {
            Ok(key) => Ok(Self::new(key, Algorithm::ES256)),
            Err(_) => Err(KeyError),
        }
    }

    fn new(key: DecodingKey, algorithm: Algorithm) -> Self {
        // One algorithm per key: a token cannot choose a weaker one (or `none`).
        let mut validation = Validation::new(algorithm);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = 0;
        // `nbf` is optional; when present it is enforced like `exp`.
        validation.validate_nbf = true;
        Self { key, validation }
    }

    /// Checks a token: signature, algorithm, `exp`, `nbf`, and `sub` as a user id.
    pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).map_err(
            |e| match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                ErrorKind::ImmatureSignature => AuthError::NotYetValid,
                _ => AuthError::InvalidToken,
            },
        )?;
        Ok(Identity {
            user: parse_user(&data.claims.sub)?,
            expires_at: Some(data.claims.exp),
        })
    }
}

#[async_trait]
impl Authenticator for Jwt {
    async fn authenticate(&self, hs: &Handshake<'_>) -> Result<Identity, AuthError> {
        let token = hs.auth_str("token").ok_or(AuthError::Missing("token"))?;
        self.verify(token)
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    use super::super::tests::check;
    use super::*;

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

    /// HS256: signature, expiry, not-before and the user id are all checked.
    #[test]
    fn hs256_checks_signature_expiry_and_claims() {
        let a = Jwt::hs256(SECRET.as_bytes());
        let exp = crate::protocol::now_ms() / 1000 + 60;
        let id = check(&a, Some(token(json!({"sub": "bob", "exp": exp}), SECRET))).unwrap();
        assert_eq!((id.user.as_str(), id.expires_at), ("bob", Some(exp)));
        assert!(!id.expired(crate::protocol::now_ms()));
        assert!(id.expired((exp + 1) * 1000));

        let bad_sig = token(json!({"sub": "bob", "exp": exp}), "another-secret-of-16b");
        assert_eq!(check(&a, Some(bad_sig)), Err(AuthError::InvalidToken));
        let expired = token(json!({"sub": "bob", "exp": exp - 120}), SECRET);
        assert_eq!(check(&a, Some(expired)), Err(AuthError::Expired));
        let early = token(json!({"sub": "bob", "exp": exp, "nbf": exp - 30}), SECRET);
        assert_eq!(check(&a, Some(early)), Err(AuthError::NotYetValid));
        let started = token(json!({"sub": "bob", "exp": exp, "nbf": exp - 120}), SECRET);
        assert!(check(&a, Some(started)).is_ok());
        let no_exp = token(json!({"sub": "bob"}), SECRET);
        assert_eq!(check(&a, Some(no_exp)), Err(AuthError::InvalidToken));
        let bad_user = token(json!({"sub": "b o b", "exp": exp}), SECRET);
        assert!(matches!(
            check(&a, Some(bad_user)),
            Err(AuthError::InvalidUser(_))
        ));
        assert_eq!(
            check(&a, Some(json!({"user": "bob"}))),
            Err(AuthError::Missing("token"))
        );
    }

    /// RS256 and ES256 tokens verify against their public key, and a token signed with the
    /// other algorithm, or with HS256 using the public key as the secret, does not.
    #[test]
    fn public_keys_verify_rs256_and_es256() {
        let exp = crate::protocol::now_ms() / 1000 + 60;
        let claims = json!({"sub": "carol", "exp": exp});
        let sign = |alg, key: EncodingKey| json!({ "token": encode(&Header::new(alg), &claims, &key).unwrap() });
        let rs_pub = include_str!("../../tests/fixtures/rs256-public.pem");
        let es_pub = include_str!("../../tests/fixtures/es256-public.pem");
        let rs = sign(
            Algorithm::RS256,
            EncodingKey::from_rsa_pem(include_bytes!("../../tests/fixtures/rs256-private.pem"))
                .unwrap(),
        );
        let es = sign(
            Algorithm::ES256,
            EncodingKey::from_ec_pem(include_bytes!("../../tests/fixtures/es256-private.pem"))
                .unwrap(),
        );
        let confused = sign(
            Algorithm::HS256,
            EncodingKey::from_secret(rs_pub.as_bytes()),
        );

        let rsa = Jwt::public_key_pem(rs_pub).unwrap();
        let ec = Jwt::public_key_pem(es_pub).unwrap();
        assert_eq!(
            check(&rsa, Some(rs.clone())).unwrap().user.as_str(),
            "carol"
        );
        assert_eq!(check(&ec, Some(es.clone())).unwrap().user.as_str(), "carol");
        assert_eq!(check(&rsa, Some(es)), Err(AuthError::InvalidToken));
        assert_eq!(check(&ec, Some(rs)), Err(AuthError::InvalidToken));
        assert_eq!(check(&rsa, Some(confused)), Err(AuthError::InvalidToken));
    }

    /// A key that is not a PEM public key is refused when the chat is configured.
    #[test]
    fn public_key_must_be_rsa_or_ec_pem() {
        assert_eq!(Jwt::public_key_pem("not a key").unwrap_err(), KeyError);
    }
}
