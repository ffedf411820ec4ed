//! The containers start, answer and fail over as the tests expect.

use redis::AsyncCommands;
use redis::sentinel::{SentinelClient, SentinelServerType};

use super::*;
use crate::uid;

/// A standalone server starts and answers commands on its loopback URL.
#[tokio::test]
async fn standalone_server_answers() {
    let redis = RedisServer::start().await;
    assert_eq!(redis.url(), format!("redis://127.0.0.1:{}", redis.port()));
    assert_eq!(redis.addr(), format!("127.0.0.1:{}", redis.port()));

    let mut con = redis.connect().await;
    let key = uid("standalone");
    let () = con.set(&key, "v").await.unwrap();
    assert_eq!(redis.cli::<String>(&["GET", &key]).await, "v");
}

/// What was written before a restart is read back after it, on the same URL.
#[tokio::test]
async fn data_survives_restart() {
    let redis = RedisServer::start().await;
    let key = uid("durable");
    redis.cli::<()>(&["SET", &key, "kept"]).await;

    redis.restart().await;

    assert_eq!(
        redis.cli::<Option<String>>(&["GET", &key]).await.as_deref(),
        Some("kept")
    );
}

/// While the server is stopped commands fail; once resumed they work and data is intact.
#[tokio::test]
async fn commands_fail_while_stopped() {
    let redis = RedisServer::start().await;
    let key = uid("outage");
    redis.cli::<()>(&["SET", &key, "before"]).await;

    redis.stop().await;
    assert!(redis.try_cli::<String>(&["PING"]).await.is_err());

    redis.resume().await;
    assert_eq!(redis.cli::<String>(&["GET", &key]).await, "before");
}

/// `kill_clients` drops open connections: the next command on them fails.
#[tokio::test]
async fn kill_clients_drops_connections() {
    let redis = RedisServer::start().await;
    let mut con = redis.connect().await;
    let pong: String = redis::cmd("PING").query_async(&mut con).await.unwrap();
    assert_eq!(pong, "PONG");

    assert!(redis.kill_clients().await >= 1);

    let after: RedisResult<String> = redis::cmd("PING").query_async(&mut con).await;
    assert!(
        after.is_err(),
        "the killed connection still answered: {after:?}"
    );
    assert_eq!(redis.cli::<String>(&["PING"]).await, "PONG");
}

/// Killing the master promotes the replica, which holds what was written before, and the
/// old master comes back as a replica.
#[tokio::test]
async fn sentinel_failover_promotes_the_replica() {
    let topology = SentinelTopology::start().await;
    assert_eq!(topology.sentinel_addrs().len(), 3);
    let mut sentinel = SentinelClient::build(
        topology.sentinel_urls(),
        topology.master_name().to_owned(),
        None,
        SentinelServerType::Master,
    )
    .unwrap();
    let mut con = sentinel.get_async_connection().await.unwrap();
    let key = uid("failover");
    let () = con.set(&key, "replicated").await.unwrap();
    let acked: u32 = redis::cmd("WAIT")
        .arg(1)
        .arg(2000)
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(acked, 1, "the replica did not acknowledge the write");

    let old = topology.kill_master().await;
    let new = topology.wait_for_failover(&old).await;

    assert_ne!(new, old);
    assert_eq!(topology.master_addr().await, new);
    let mut con = sentinel.get_async_connection().await.unwrap();
    let value: Option<String> = con.get(&key).await.unwrap();
    assert_eq!(value.as_deref(), Some("replicated"));

    topology.restart_old_master(&old).await;
    assert_eq!(topology.master_addr().await, new);
}
