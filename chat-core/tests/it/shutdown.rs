use serde_json::json;

use crate::helpers::*;

/// Shutdown tells clients to reconnect, refuses what it would lose (in memory: any write;
/// with Redis nothing is lost, so writes go on), then closes them.
#[tokio::test]
async fn shutdown_drains() {
    let srv = TestServer::with(|c| c.drain_timeout = std::time::Duration::from_secs(2)).await;
    let (a, b) = (uid("alice"), uid("bob"));
    let mut ca = srv.client(&a).await;
    let handle = srv.handle.clone();
    assert_eq!(handle.connections(), 1);
    let stopping = tokio::spawn(async move { handle.shutdown().await });
    assert_eq!(
        ca.event("drain", |_| true).await,
        json!({"reconnect": true})
    );
    let late = ca
        .ack("message:send", json!({"to": b, "body": "late"}))
        .await;
    if redis_backend() {
        ok(late);
    } else {
        assert_code(&late, "unavailable");
    }
    let err = Client::connect(srv.addr, json!({"user": b}))
        .await
        .err()
        .unwrap();
    assert!(err.starts_with("unavailable"), "{err}");
    ca.closed().await;
    stopping.await.unwrap();
    assert_eq!(srv.handle.connections(), 0);
}
