//! The node's HTTP connection cap, seen from outside: a refused connection gets `503` and
//! shows in `/metrics`.

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::helpers::Node;

#[tokio::test]
async fn connections_past_the_cap_are_refused_and_counted() {
    let node = Node::start(&[("CHAT_MAX_CONNECTIONS", "1")]).await;
    // One idle connection holds the only slot.
    let held = TcpStream::connect(node.addr).await.unwrap();
    let mut extra = TcpStream::connect(node.addr).await.unwrap();
    extra
        .write_all(b"GET /healthz HTTP/1.0\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    extra.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("\"unavailable\""), "{answer}");
    drop(held);
    // The slot frees when the held connection closes; then /metrics answers.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let metrics = loop {
        let text = node.get("/metrics").await;
        if text.contains("chat_http_connections_refused_total") {
            break text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no /metrics: {text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let refused =
        chat_testing::metrics::sample(&metrics, "chat_http_connections_refused_total", &[]);
    // At least that one (a metrics request racing the held connection's close may add more).
    assert!(refused.is_some_and(|n| n >= 1.0), "{metrics}");
}
