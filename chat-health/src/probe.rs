//! One probe of a node: `GET {url}/healthz` on a fresh connection, within a timeout.

use std::time::Duration;

use axum::body::Bytes;
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use serde::Deserialize;

/// Largest `/healthz` answer read; the rest is not needed.
const MAX_BODY: usize = 16 * 1024;

/// What a node said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// It answers: `2xx`, or `503` with `"status": "draining"` (a draining chat-server is
    /// alive and still serves its sockets). `connections` if the body said.
    Up { connections: Option<u64> },
    /// It does not: refused, timed out, or another status. The reason is for logs.
    Down(String),
}

#[derive(Deserialize)]
struct HealthBody {
    status: Option<String>,
    connections: Option<u64>,
}

/// Probes nodes over plain HTTP, one connection per probe (no pooling: a probe must show
/// that the node accepts connections, as a new client would).
#[derive(Debug, Clone)]
pub(crate) struct Prober {
    client: Client<HttpConnector, Empty<Bytes>>,
    timeout: Duration,
}

impl Prober {
    pub(crate) fn new(timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build(connector);
        Self { client, timeout }
    }

    /// Probes the node at `base` (its public URL). `https` URLs get a TCP connect only:
    /// this build has no TLS client.
    pub(crate) async fn probe(&self, base: &str) -> Outcome {
        let target = format!("{}/healthz", base.trim_end_matches('/'));
        let uri = match target.parse::<Uri>() {
            Ok(u) => u,
            Err(e) => return Outcome::Down(format!("bad url: {e}")),
        };
        match tokio::time::timeout(self.timeout, self.request(uri)).await {
            Ok(outcome) => outcome,
            Err(_) => Outcome::Down(format!("no answer within {:?}", self.timeout)),
        }
    }

    async fn request(&self, uri: Uri) -> Outcome {
        if uri.scheme_str() == Some("https") {
            return tcp_connect(&uri).await;
        }
        let req = match Request::get(uri).body(Empty::new()) {
            Ok(r) => r,
            Err(e) => return Outcome::Down(format!("bad request: {e}")),
        };
        let res = match self.client.request(req).await {
            Ok(r) => r,
            Err(e) => return Outcome::Down(format!("request failed: {e}")),
        };
        let status = res.status();
        let body = Limited::new(res.into_body(), MAX_BODY)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let parsed: Option<HealthBody> = serde_json::from_slice(&body).ok();
        let connections = parsed.as_ref().and_then(|b| b.connections);
        let draining = parsed
            .as_ref()
            .is_some_and(|b| b.status.as_deref() == Some("draining"));
        if status.is_success() || (status == StatusCode::SERVICE_UNAVAILABLE && draining) {
            Outcome::Up { connections }
        } else {
            Outcome::Down(format!("answered {status}"))
        }
    }
}

async fn tcp_connect(uri: &Uri) -> Outcome {
    let Some(host) = uri.host() else {
        return Outcome::Down("no host".into());
    };
    let port = uri.port_u16().unwrap_or(443);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match tokio::net::TcpStream::connect((host, port)).await {
        Ok(_) => Outcome::Up { connections: None },
        Err(e) => Outcome::Down(format!("connect failed: {e}")),
    }
}
