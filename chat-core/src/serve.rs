//! Serving an app over HTTP/1.1 with a bounded graceful stop.

/// How long open HTTP requests get to finish once a server stops.
pub const GRACE: std::time::Duration = std::time::Duration::from_secs(2);

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
    mut listener: tokio::net::TcpListener,
    app: axum::Router,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::Listener;
    use hyper_util::{rt::TokioIo, service::TowerToHyperService};

    // `with_state` turns every handler into a route once, as axum would per connection.
    let app = app.with_state(());
    let http = hyper::server::conn::http1::Builder::new();
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
        let conn = http
            .serve_connection(TokioIo::new(io), TowerToHyperService::new(app.clone()))
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

#[cfg(test)]
mod tests {
    use std::{sync::Arc, time::Duration};

    use axum::{Router, routing::get};
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::{TcpListener, TcpStream},
        sync::{Notify, oneshot},
    };

    use super::*;

    /// Starts `serve` on a free port; the sender stops it, the handle ends with it.
    async fn start(
        app: Router,
    ) -> (
        std::net::SocketAddr,
        oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let served = tokio::spawn(async move {
            serve(listener, app, async move {
                stop_rx.await.ok();
            })
            .await
            .unwrap();
        });
        (addr, stop_tx, served)
    }

    /// Reads one response whose body is `body` (the handlers' bodies are distinct).
    async fn response(conn: &mut TcpStream, body: &str) -> String {
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while !got.ends_with(body.as_bytes()) {
            let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf))
                .await
                .expect("a response in time")
                .unwrap();
            assert!(
                n > 0,
                "closed before the response: {:?}",
                String::from_utf8_lossy(&got)
            );
            got.extend_from_slice(&buf[..n]);
        }
        String::from_utf8(got).unwrap()
    }

    fn request(path: &str) -> String {
        format!("GET {path} HTTP/1.1\r\nhost: test\r\n\r\n")
    }

    #[tokio::test]
    async fn keep_alive_then_stop_finishes_the_request_in_flight() {
        let (started, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let app = Router::new()
            .route("/fast", get(|| async { "fast!" }))
            .route(
                "/slow",
                get({
                    let (started, release) = (started.clone(), release.clone());
                    move || async move {
                        started.notify_one();
                        release.notified().await;
                        "slow!"
                    }
                }),
            );
        let (addr, stop, served) = start(app).await;
        let mut conn = TcpStream::connect(addr).await.unwrap();
        for _ in 0..2 {
            conn.write_all(request("/fast").as_bytes()).await.unwrap();
            let got = response(&mut conn, "fast!").await;
            assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
        }
        // A second connection idles between requests; the first has one in flight.
        let mut idle = TcpStream::connect(addr).await.unwrap();
        idle.write_all(request("/fast").as_bytes()).await.unwrap();
        response(&mut idle, "fast!").await;
        conn.write_all(request("/slow").as_bytes()).await.unwrap();
        started.notified().await;
        stop.send(()).unwrap();
        let mut rest = Vec::new();
        let n = tokio::time::timeout(Duration::from_secs(10), idle.read_to_end(&mut rest))
            .await
            .expect("the idle connection closed once stopping")
            .unwrap();
        assert_eq!(n, 0, "nothing more on the idle connection");
        assert!(!served.is_finished(), "a request is in flight");
        release.notify_one();
        let got = response(&mut conn, "slow!").await;
        assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
        tokio::time::timeout(Duration::from_secs(10), served)
            .await
            .expect("serve returned once the request finished")
            .unwrap();
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "no longer listening"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_that_never_finishes_does_not_hold_the_server() {
        let started = Arc::new(Notify::new());
        let app = Router::new().route(
            "/hang",
            get({
                let started = started.clone();
                move || async move {
                    started.notify_one();
                    std::future::pending::<&'static str>().await
                }
            }),
        );
        let (addr, stop, served) = start(app).await;
        let mut conn = TcpStream::connect(addr).await.unwrap();
        conn.write_all(request("/hang").as_bytes()).await.unwrap();
        started.notified().await;
        stop.send(()).unwrap();
        let started = tokio::time::Instant::now();
        served.await.unwrap();
        assert!(
            started.elapsed() >= GRACE,
            "returned after the grace period, not before"
        );
    }
}
