//! Delivering one webhook: a signed POST, retried with exponential backoff and jitter on
//! connection errors, timeouts and non-2xx answers, always with the same body (same id).
//!
//! The client is hyper's (the HTTP stack the chat already serves with) over rustls with the
//! ring provider and Mozilla's root certificates built in, so `https://` receivers work on a
//! host or image without a CA bundle.

use std::{sync::Arc, time::Duration};

use axum::http::{Request, Uri, header};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{
    Queued, WebhookConfig,
    sign::{EVENT_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign},
};
use crate::metrics::WebhookMetrics;

/// Why the webhook settings are unusable.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The URL is not an absolute `http://` or `https://` URL.
    #[error("webhook url must be an absolute http:// or https:// url")]
    Url,
    /// The secret is shorter than 16 bytes.
    #[error("webhook secret must have at least 16 bytes")]
    Secret,
    /// TLS could not be set up.
    #[error("cannot set up tls for webhooks")]
    Tls(#[from] rustls::Error),
}

/// What became of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The receiver answered 2xx.
    Delivered,
    /// Every attempt failed.
    Failed,
    /// Stopped before either (shutdown, or another node took the event over).
    Cancelled,
}

/// Why one attempt failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AttemptError {
    /// The receiver answered, but not 2xx.
    #[error("receiver answered {0}")]
    Status(u16),
    /// No answer within the timeout.
    #[error("timed out")]
    Timeout,
    /// Connecting or sending failed.
    #[error("request failed: {0}")]
    Request(#[from] hyper_util::client::legacy::Error),
}

/// Largest response body read (and discarded) so that the connection can be reused.
const MAX_RESPONSE: usize = 64 * 1024;

/// Sends webhooks to one receiver. Cheap to share.
#[derive(Debug, Clone)]
pub(crate) struct Sender {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    uri: Uri,
    secret: Arc<[u8]>,
    config: Arc<WebhookConfig>,
    metrics: WebhookMetrics,
}

impl Sender {
    pub fn new(config: &WebhookConfig, metrics: WebhookMetrics) -> Result<Self, WebhookError> {
        let uri: Uri = config.url.parse().map_err(|_| WebhookError::Url)?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(WebhookError::Url);
        }
        if config.secret.len() < 16 {
            return Err(WebhookError::Secret);
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(provider)?
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(https);
        Ok(Self {
            client,
            uri,
            secret: config.secret.as_bytes().into(),
            config: Arc::new(config.clone()),
            metrics,
        })
    }

    /// The webhook metrics.
    pub fn metrics(&self) -> &WebhookMetrics {
        &self.metrics
    }

    /// Tries `event` until it is delivered, every attempt failed, or `cancel`.
    pub async fn deliver(&self, event: &Queued, cancel: &CancellationToken) -> Outcome {
        let attempts = self.config.attempts.max(1);
        for attempt in 1..=attempts {
            tracing::debug!(id = %event.id, attempt, "webhook attempt");
            let started = Instant::now();
            let result = tokio::select! {
                r = self.attempt(event) => r,
                () = cancel.cancelled() => return Outcome::Cancelled,
            };
            self.metrics.attempt(result.is_ok(), started.elapsed());
            match result {
                Ok(()) => {
                    tracing::debug!(id = %event.id, attempt, "webhook delivered");
                    self.metrics.finished(true);
                    return Outcome::Delivered;
                }
                Err(e) if attempt == attempts => {
                    self.metrics.finished(false);
                    tracing::warn!(id = %event.id, attempts, cause = %e, "webhook dropped: every attempt failed");
                    return Outcome::Failed;
                }
                Err(e) => {
                    tracing::debug!(id = %event.id, attempt, cause = %e, "webhook attempt failed")
                }
            }
            let delay = jittered(backoff(&self.config, attempt));
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = cancel.cancelled() => return Outcome::Cancelled,
            }
        }
        Outcome::Failed
    }

    /// One signed POST, within the timeout.
    async fn attempt(&self, event: &Queued) -> Result<(), AttemptError> {
        let timestamp = crate::protocol::now_ms() / 1000;
        let signature = sign(&self.secret, timestamp, event.body.as_bytes());
        let request = Request::post(self.uri.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header(
                header::USER_AGENT,
                concat!("chat-core/", env!("CARGO_PKG_VERSION")),
            )
            .header(EVENT_ID_HEADER, &event.id)
            .header(TIMESTAMP_HEADER, timestamp)
            .header(SIGNATURE_HEADER, signature)
            .body(Full::new(Bytes::from(event.body.clone())))
            // Every part was checked: the URI at start, the id is ours.
            .unwrap_or_else(|_| unreachable!());
        let exchange = async {
            let response = self.client.request(request).await?;
            let status = response.status();
            // Read what the receiver says (up to a bound) so the connection can be reused.
            let _ = Limited::new(response.into_body(), MAX_RESPONSE)
                .collect()
                .await;
            match status.is_success() {
                true => Ok(()),
                false => Err(AttemptError::Status(status.as_u16())),
            }
        };
        tokio::time::timeout(self.config.timeout, exchange)
            .await
            .unwrap_or(Err(AttemptError::Timeout))
    }
}

/// The nominal delay after failed attempt `n` (1-based): `retry_min × 2^(n-1)`, at most
/// `retry_max`.
pub(crate) fn backoff(config: &WebhookConfig, n: u32) -> Duration {
    let factor = 1u32.checked_shl(n.saturating_sub(1)).unwrap_or(u32::MAX);
    config
        .retry_min
        .saturating_mul(factor)
        .min(config.retry_max)
}

/// Between half of `delay` and all of it, at random: failed events of one outage do not all
/// come back at once.
fn jittered(delay: Duration) -> Duration {
    delay / 2 + delay.mul_f64(rand::random::<f64>() / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Delays double from `retry_min` up to `retry_max`; jitter stays in the upper half.
    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let c = WebhookConfig::new("http://127.0.0.1:1/", "0123456789abcdef");
        let secs: Vec<u64> = (1..=11).map(|n| backoff(&c, n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(backoff(&c, 60), c.retry_max);
        for _ in 0..100 {
            let d = jittered(Duration::from_secs(8));
            assert!(
                d >= Duration::from_secs(4) && d <= Duration::from_secs(8),
                "{d:?}"
            );
        }
    }

    /// Only absolute http(s) URLs and secrets of 16 bytes or more are accepted.
    #[test]
    fn settings_are_checked() {
        let metrics =
            ::metrics::with_local_recorder(&::metrics::NoopRecorder, WebhookMetrics::resolve);
        for bad in [
            "ftp://example.com/",
            "/hooks",
            "example.com/hooks",
            "http://",
        ] {
            let c = WebhookConfig::new(bad, "0123456789abcdef");
            assert!(Sender::new(&c, metrics.clone()).is_err(), "{bad}");
        }
        let short = WebhookConfig::new("https://example.com/hooks", "0123456789abcde");
        assert!(Sender::new(&short, metrics.clone()).is_err());
        let c = WebhookConfig::new("https://example.com/hooks", "0123456789abcdef");
        assert!(Sender::new(&c, metrics).is_ok());
    }
}
