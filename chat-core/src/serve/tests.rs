//! Serving: keep-alive, graceful stop and its bound, slow heads, the connection cap.

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
    let (addr, stop, served, _) = start_with(app, HttpLimits::default()).await;
    (addr, stop, served)
}

/// [`start`] with `limits`, and the server's counters.
async fn start_with(
    app: Router,
    limits: HttpLimits,
) -> (
    std::net::SocketAddr,
    oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
    Arc<HttpStats>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let stats = Arc::new(HttpStats::default());
    let counters = stats.clone();
    let served = tokio::spawn(async move {
        serve_with(listener, app, limits, counters, async move {
            stop_rx.await.ok();
        })
        .await
        .unwrap();
    });
    (addr, stop_tx, served, stats)
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

/// Reads until the server closes the connection; what it sent.
async fn until_closed(conn: &mut TcpStream, within: Duration) -> String {
    let mut got = Vec::new();
    tokio::time::timeout(within, conn.read_to_end(&mut got))
        .await
        .expect("closed in time")
        .unwrap();
    String::from_utf8_lossy(&got).into_owned()
}

/// A client that sends its request head slowly, or a keep-alive connection left idle, is
/// closed once the header timeout passes (slowloris): it holds nothing for longer.
#[tokio::test(start_paused = true)]
async fn slow_heads_and_idle_connections_are_closed() {
    let limits = HttpLimits {
        header_timeout: Duration::from_secs(10),
        ..HttpLimits::default()
    };
    let app = Router::new().route("/", get(|| async { "hi!" }));
    let (addr, _stop, _served, _) = start_with(app, limits).await;
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nhost: test\r\n")
        .await
        .unwrap();
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(request("/").as_bytes()).await.unwrap();
    response(&mut idle, "hi!").await;
    let started = tokio::time::Instant::now();
    let got = until_closed(&mut slow, Duration::from_secs(60)).await;
    assert!(!got.contains("hi!"), "{got}");
    assert!(
        started.elapsed() >= Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(until_closed(&mut idle, Duration::from_secs(60)).await, "");
}

/// Past `max_connections` a connection is answered 503 `unavailable` and closed, and
/// counted; once a connection closes, a new one is served again.
#[tokio::test]
async fn connections_past_the_cap_get_503() {
    let limits = HttpLimits {
        max_connections: 2,
        ..HttpLimits::default()
    };
    let app = Router::new().route("/", get(|| async { "hi!" }));
    let (addr, _stop, _served, stats) = start_with(app, limits).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(request("/").as_bytes()).await.unwrap();
        response(&mut c, "hi!").await;
        held.push(c);
    }
    let mut over = TcpStream::connect(addr).await.unwrap();
    let got = until_closed(&mut over, Duration::from_secs(10)).await;
    assert!(got.starts_with("HTTP/1.1 503 "), "{got}");
    assert!(got.contains(r#""code":"unavailable""#), "{got}");
    assert_eq!(stats.refused.load(Ordering::Relaxed), 1);
    drop(held.pop());
    // The freed slot comes back once the server sees the close: poll for it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(b"GET / HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut got = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), c.read_to_end(&mut got))
            .await
            .ok();
        if String::from_utf8_lossy(&got).contains("hi!") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slot never came back"
        );
        tokio::task::yield_now().await;
    }
}
