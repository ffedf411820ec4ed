//! Serving an app over HTTP/1.1: limits on what clients hold (connections, slow request
//! heads, idle keep-alive) and a bounded graceful stop.

mod counted;
#[cfg(test)]
mod tests;

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::serve::Listener;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use tokio::{net::TcpListener, sync::Semaphore};

use counted::Counted;

/// Limits of the HTTP server on what clients hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpLimits {
    /// Open TCP connections at most, WebSockets included (`CHAT_MAX_CONNECTIONS` in
    /// chat-server, default 100,000; a long-polling client holds two). Past it a connection
    /// is answered `503` with `{"error": {"code": "unavailable", ...}}` and closed, before
    /// its request is read.
    pub max_connections: usize,
    /// How long a client has to send a request's head, and how long an idle keep-alive
    /// connection waits for its next request, before it is closed (default 10 s).
    pub header_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_connections: 100_000,
            header_timeout: Duration::from_secs(10),
        }
    }
}

/// Counters of one HTTP server, for tests and metrics.
#[derive(Debug, Default)]
pub struct HttpStats {
    /// Connections refused at the cap.
    pub refused: AtomicU64,
}

/// How long open HTTP requests get to finish once a server stops.
pub const GRACE: Duration = Duration::from_secs(2);

/// Serves `app` over HTTP/1.1 until `stop` resolves, then lets open requests finish for at
/// most [`GRACE`]: a client that never completes its request must not keep the process alive.
/// Upgraded connections (WebSockets) are the socket.io server's to close.
///
/// Every connection shares one router. Served as a plain `Router`, axum gives each
/// connection a deep copy of it (every route's boxed service, the CORS layer's settings),
/// about 9 KB that a keep-alive connection holds while idle: a long-polling client keeps two.
///
/// Connections are served by hyper's HTTP/1 server directly, not by `axum::serve`: that one
/// sniffs for HTTP/2 first, and the 24 bytes it sniffs reach hyper as a read of their own, so
/// hyper's read buffer, 8 KiB when a request arrives in one read, doubles to 16 KiB on the
/// second, for every connection. A long-polling client keeps two connections open, each with
/// its read buffer (RSS per idle long-polling client 39.5 → 32.7 KB). Clients reach the nodes
/// over HTTP/1.1 (browsers and the socket.io clients send WebSockets and long polls over
/// HTTP/1.1; a TLS proxy in front speaks HTTP/1.1 to its upstream), so no HTTP/2 is served.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, app, HttpLimits::default(), Arc::default(), stop).await
}

/// [`serve`] with `limits`, counting in `stats`.
pub async fn serve_with(
    mut listener: TcpListener,
    app: axum::Router,
    limits: HttpLimits,
    stats: Arc<HttpStats>,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // `with_state` turns every handler into a route once, as axum would per connection.
    let app = app.with_state(());
    let mut http = hyper::server::conn::http1::Builder::new();
    // Without a timer hyper never times out a request head: a client could hold a
    // connection forever by sending one byte now and then (slowloris). The timer also runs
    // while a keep-alive connection waits for its next request.
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    // Connections watch `stopping` to shut down gracefully and hold a `done` receiver until
    // they end: `done_tx.closed()` resolves when the last one has.
    let stopping = tokio_util::sync::CancellationToken::new();
    let (done_tx, done_rx) = tokio::sync::watch::channel(());
    tokio::pin!(stop);
    loop {
        let io = tokio::select! {
            // Retries and logs failed accepts itself (and waits a second when out of file
            // descriptors).
            (io, _remote) = Listener::accept(&mut listener) => io,
            () = &mut stop => break,
        };
        // Small writes (acks, pings) go out at once rather than waiting for Nagle.
        if let Err(e) = io.set_nodelay(true) {
            tracing::debug!(cause = %e, "cannot set TCP_NODELAY");
        }
        // The slot goes with the connection, into an upgraded WebSocket too.
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            let n = stats.refused.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(
                    refused = n,
                    max = limits.max_connections,
                    "connection limit reached"
                );
            }
            tokio::spawn(counted::refuse(io));
            continue;
        };
        let conn = http
            .serve_connection(
                TokioIo::new(Counted::new(io, slot)),
                TowerToHyperService::new(app.clone()),
            )
            .with_upgrades();
        let (stopping, done) = (stopping.clone(), done_rx.clone());
        tokio::spawn(async move {
            tokio::pin!(conn);
            let served = tokio::select! {
                served = conn.as_mut() => served,
                () = stopping.cancelled() => {
                    // Finishes the request in flight, if any, and closes.
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = served {
                tracing::trace!(cause = %e, "connection ended with an error");
            }
            drop(done);
        });
    }
    drop(listener);
    drop(done_rx);
    stopping.cancel();
    if tokio::time::timeout(GRACE, done_tx.closed()).await.is_err() {
        tracing::warn!(grace = ?GRACE, "requests still open after the grace period; closing them");
    }
    Ok(())
}
