//! Picking: least loaded, provisional load, unpickable nodes, concurrent registries.

use std::{collections::HashMap, sync::Arc, time::Duration};

use axum::{body::Bytes, http::StatusCode};
use chat_core::{
    cluster::{Cluster, NodeInfo},
    redis::{Redis, RedisConfig},
};
use chat_registry::{self as registry, RegistryConfig};
use chat_testing::{prefix, redis::RedisServer, test_config};
use http_body_util::{BodyExt, Empty};
use hyper_util::{client::legacy::Client as HttpClient, rt::TokioExecutor};
use redis::AsyncCommands;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::helpers::*;

/// Picks go to the least-loaded node, load being (connections + picks) / capacity: a small
/// empty node first, then the nodes fill up evenly and the busiest is picked last.
#[tokio::test]
async fn picks_follow_load_and_capacity() {
    // Picks barely decay during the test, so loads are exact enough to predict.
    let fx = Fixture::start(|c| c.pick_half_life = Duration::from_secs(3600)).await;
    fx.node(FakeNode {
        uid: "a",
        connections: 50,
        ..FakeNode::default()
    })
    .await;
    fx.node(FakeNode {
        uid: "b",
        connections: 20,
        ..FakeNode::default()
    })
    .await;
    fx.node(FakeNode {
        uid: "c",
        capacity: 10,
        ..FakeNode::default()
    })
    .await;
    let picks = fx.picks(40).await;
    assert_eq!(picks[0], "c", "{picks:?}");
    // b needs 30 picks and c 5 to reach a's 0.5; until then a gets nothing.
    let early = count(&picks[..34]);
    assert_eq!(early.get("a"), None, "{picks:?}");
    assert!(early["b"] >= 29 && early["c"] >= 4, "{picks:?}");
    let s = fx.servers().await;
    let loads: Vec<f64> = ["a", "b", "c"]
        .map(|u| s[u]["load"].as_f64().unwrap())
        .to_vec();
    assert!(
        loads.iter().all(|l| (0.5..0.75).contains(l)),
        "loads after 40 picks: {loads:?}"
    );
    assert_eq!(s["c"]["connections"], 0);
    assert!(s["c"]["provisional"].as_f64().unwrap() > 4.0, "{}", s["c"]);
}

/// A burst of picks spreads over equal nodes instead of piling onto one, and the
/// provisional load fades: after a few half-lives the picks count for nothing.
#[tokio::test]
async fn provisional_load_spreads_a_burst_and_fades() {
    let fx = Fixture::start(|c| c.pick_half_life = Duration::from_millis(200)).await;
    for uid in ["a", "b", "c"] {
        fx.node(FakeNode {
            uid,
            capacity: 1000,
            ..FakeNode::default()
        })
        .await;
    }
    let picks = fx.picks(30).await;
    let c = count(&picks);
    for uid in ["a", "b", "c"] {
        assert!((9..=11).contains(&c[uid]), "{c:?}");
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let s = fx.servers().await;
        let prov: f64 = s.values().map(|v| v["provisional"].as_f64().unwrap()).sum();
        if prov < 0.5 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "provisional load never faded: {prov}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Nodes that cannot take clients are never picked: lease ended, draining (itself or by an
/// admin), removed by the health checker, no URL, capacity 0. With none left: 503.
#[tokio::test]
async fn unpickable_nodes_are_skipped_and_none_means_503() {
    let fx = Fixture::start(|_| {}).await;
    let empty = fx.call("GET", "/api/v1/servers/pick", None, None).await;
    assert_error(&empty, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert_eq!(empty.2["retry-after"], "1");

    fx.node(FakeNode {
        uid: "busy",
        connections: 99,
        ..FakeNode::default()
    })
    .await;
    fx.node(FakeNode {
        uid: "expired",
        lease_ms: -10,
        ..FakeNode::default()
    })
    .await;
    fx.node(FakeNode {
        uid: "draining",
        draining: true,
        ..FakeNode::default()
    })
    .await;
    fx.node(FakeNode {
        uid: "drained",
        ..FakeNode::default()
    })
    .await;
    fx.node(FakeNode {
        uid: "removed",
        ..FakeNode::default()
    })
    .await;
    fx.node(FakeNode {
        uid: "nourl",
        url: None,
        ..FakeNode::default()
    })
    .await;
    fx.node(FakeNode {
        uid: "nocap",
        capacity: 0,
        ..FakeNode::default()
    })
    .await;
    let (status, body, _) = fx
        .call("DELETE", "/api/v1/servers/drained", Some(TOKEN), None)
        .await;
    assert_eq!(
        (status, &body),
        (StatusCode::OK, &json!({"drained": ["drained"]}))
    );
    let _: () = fx
        .conn
        .clone()
        .sadd(format!("{}removed", fx.prefix), "removed")
        .await
        .unwrap();

    assert_eq!(count(&fx.picks(10).await), HashMap::from([("busy", 10)]));
    let s = fx.servers().await;
    assert_eq!(s.len(), 7);
    assert!(!s["expired"]["live"].as_bool().unwrap());
    assert!(s["draining"]["draining"].as_bool().unwrap());
    assert!(s["drained"]["draining"].as_bool().unwrap());
    assert!(s["removed"]["removed"].as_bool().unwrap() && !s["removed"]["live"].as_bool().unwrap());
    assert_eq!(s["nourl"]["url"], Value::Null);

    fx.call("DELETE", "/api/v1/servers/busy", Some(TOKEN), None)
        .await;
    let none = fx.call("GET", "/api/v1/servers/pick", None, None).await;
    assert_error(&none, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
}

/// 1,000 picks from 50 tasks through two registries (real HTTP) over 3 live cluster nodes
/// end within ±10% of even: the pick is atomic across registries.
#[tokio::test]
async fn concurrent_picks_through_two_registries_spread_evenly() {
    let redis = RedisServer::start().await;
    let p = prefix();
    let rc = RedisConfig::Url(redis.url());
    let mut clusters: Vec<Arc<Cluster>> = Vec::new();
    for i in 0..3 {
        let info = NodeInfo {
            id: format!("n{i}"),
            url: Some(format!("http://127.0.0.1:{}", 40_000 + i)),
            capacity: 1000,
        };
        clusters.push(
            Cluster::start(Redis::new(rc.clone()).unwrap(), test_config(&p), info)
                .await
                .unwrap()
                .0,
        );
    }
    let mut config = RegistryConfig::new(rc);
    config.prefix = p.clone();
    let mut registries = Vec::new();
    for _ in 0..2 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        registries.push(listener.local_addr().unwrap());
        tokio::spawn(registry::run(
            listener,
            config.clone(),
            std::future::pending(),
        ));
    }
    let client: HttpClient<_, Empty<Bytes>> =
        HttpClient::builder(TokioExecutor::new()).build_http();
    let started = std::time::Instant::now();
    let tasks: Vec<_> = (0..50)
        .map(|t| {
            let (client, addr) = (client.clone(), registries[t % 2]);
            tokio::spawn(async move {
                let mut got = Vec::new();
                for _ in 0..20 {
                    let uri = format!("http://{addr}/api/v1/servers/pick");
                    let res = client.get(uri.parse().unwrap()).await.unwrap();
                    assert_eq!(res.status(), StatusCode::OK);
                    let body = res.into_body().collect().await.unwrap().to_bytes();
                    let v: Value = serde_json::from_slice(&body).unwrap();
                    got.push(v["nodeId"].as_str().unwrap().to_owned());
                }
                got
            })
        })
        .collect();
    let mut picks = Vec::new();
    for t in tasks {
        picks.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed();
    let c = count(&picks);
    eprintln!("1000 concurrent picks in {elapsed:?}: {c:?}");
    assert_eq!(picks.len(), 1000);
    for n in ["n0", "n1", "n2"] {
        let got = c.get(n).copied().unwrap_or(0);
        assert!((300..=367).contains(&got), "{n}: {got} of 1000 ({c:?})");
    }
    for cl in clusters {
        cl.shutdown().await;
    }
}

/// A registry refuses picks with `503 unavailable` when every pickable node holds its
/// capacity (and picks one again once one has room); picks, and failures by reason (no node,
/// at capacity, Redis away), are counted, and so are its Redis calls and errors.
#[tokio::test]
async fn at_capacity_refusals_and_pick_metrics() {
    let fx = Fixture::start(|_| {}).await;
    let failures = |r: &'static str| [("reason", r)];
    let pick = || fx.call("GET", "/api/v1/servers/pick", None, None);

    let got = pick().await;
    assert_error(&got, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert_eq!(
        fx.metric("chat_registry_pick_failures_total", &failures("no_node"))
            .await,
        1.0
    );

    fx.node(FakeNode {
        uid: "full",
        capacity: 10,
        connections: 10,
        ..FakeNode::default()
    })
    .await;
    let got = pick().await;
    assert_error(&got, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert_eq!(got.1["error"]["message"], registry::AT_CAPACITY);
    assert_eq!(got.2["retry-after"], "1");
    assert_eq!(
        fx.metric(
            "chat_registry_pick_failures_total",
            &failures("at_capacity")
        )
        .await,
        1.0
    );

    // One connection leaves the full node: it is picked again.
    fx.node(FakeNode {
        uid: "full",
        capacity: 10,
        connections: 9,
        ..FakeNode::default()
    })
    .await;
    assert_eq!(fx.picks(1).await, ["full"]);
    assert_eq!(fx.metric("chat_registry_picks_total", &[]).await, 1.0);
    let scripts = [("kind", "script")];
    assert!(
        fx.metric("chat_redis_command_duration_seconds_count", &scripts)
            .await
            >= 3.0
    );

    fx.redis.stop().await;
    let got = pick().await;
    assert_error(&got, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert_eq!(
        fx.metric("chat_registry_pick_failures_total", &failures("redis"))
            .await,
        1.0
    );
    assert!(fx.metric("chat_redis_errors_total", &scripts).await >= 1.0);
    assert_eq!(fx.metric("chat_registry_picks_total", &[]).await, 1.0);
}
