//! Webhook signatures: `X-Chat-Signature: v1=<hex>`, the HMAC-SHA256 of
//! `<X-Chat-Timestamp>.<body>` keyed with the secret. The timestamp (unix seconds, the time
//! of the attempt) is signed with the body so a captured request cannot be replayed later:
//! receivers refuse timestamps more than [`TOLERANCE`] away from their clock.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header carrying the event id (the body's `id`).
pub const EVENT_ID_HEADER: &str = "x-chat-event-id";
/// The header carrying the attempt's time, unix seconds.
pub const TIMESTAMP_HEADER: &str = "x-chat-timestamp";
/// The header carrying the signature, `v1=<hex>`.
pub const SIGNATURE_HEADER: &str = "x-chat-signature";
/// How far a receiver should let a timestamp be from its clock, in seconds (5 minutes).
pub const TOLERANCE: u64 = 300;

/// Why [`verify`] refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The timestamp is not a number.
    #[error("malformed timestamp")]
    Timestamp,
    /// The timestamp is more than [`TOLERANCE`] away from now.
    #[error("timestamp outside the tolerance")]
    Stale,
    /// No `v1=` signature, or not hex.
    #[error("malformed signature")]
    Malformed,
    /// The signature does not match: another secret, or an altered body or timestamp.
    #[error("signature mismatch")]
    Mismatch,
}

/// The signature header's value for `body` sent at `timestamp` (unix seconds).
pub fn sign(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    format!(
        "v1={}",
        hex::encode(mac(secret, timestamp, body).finalize().into_bytes())
    )
}

/// Checks a received webhook: `timestamp` and `signature` are the header values, `now` the
/// receiver's unix time in seconds. Constant-time comparison.
pub fn verify(
    secret: &[u8],
    timestamp: &str,
    signature: &str,
    body: &[u8],
    now: u64,
) -> Result<(), VerifyError> {
    let ts: u64 = timestamp.parse().map_err(|_| VerifyError::Timestamp)?;
    if ts.abs_diff(now) > TOLERANCE {
        return Err(VerifyError::Stale);
    }
    let hex_sig = signature
        .strip_prefix("v1=")
        .ok_or(VerifyError::Malformed)?;
    let bytes = hex::decode(hex_sig).map_err(|_| VerifyError::Malformed)?;
    mac(secret, ts, body)
        .verify_slice(&bytes)
        .map_err(|_| VerifyError::Mismatch)
}

fn mac(secret: &[u8], timestamp: u64, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A known vector (computed with `openssl dgst -sha256 -hmac`), and every refusal.
    #[test]
    fn signs_and_verifies() {
        let (secret, body) = (b"0123456789abcdef", br#"{"id":"evt_1"}"#);
        let sig = sign(secret, 1_700_000_000, body);
        assert_eq!(
            sig,
            "v1=9483985a1de97b8e9342f2306f8e68512fdf9176cc65f2595ea38e056d78bfdd"
        );
        let now = 1_700_000_100;
        assert_eq!(verify(secret, "1700000000", &sig, body, now), Ok(()));
        assert_eq!(
            verify(secret, "1700000000", &sig, b"{}", now),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(b"another secret!!", "1700000000", &sig, body, now),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(secret, "1700000001", &sig, body, now),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(secret, "1700000000", &sig, body, now + TOLERANCE),
            Err(VerifyError::Stale)
        );
        assert_eq!(
            verify(secret, "x", &sig, body, now),
            Err(VerifyError::Timestamp)
        );
        assert_eq!(
            verify(secret, "1700000000", &sig[3..], body, now),
            Err(VerifyError::Malformed)
        );
    }
}
