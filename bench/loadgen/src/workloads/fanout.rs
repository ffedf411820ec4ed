//! Group fan-out: `--groups` groups of `--size` members; member 0 of each group creates it and
//! sends, the others join and receive.
//!
//! Placement: by default member `j` is on node `j mod n`. With `--member-nodes K`, group `g`'s
//! sender is on node `g mod n` and its other members on the `K` nodes after it (so with
//! `K < n`, some nodes hold none of a group's members: partial fan-out).

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::time::sleep;

use super::{
    Common, Load, SenderPlan, all_connected, close, delivered_exactly_once, measure, wait_quiet,
};
use crate::{
    args::Args,
    client::{Transport, connect_all, ensure_fds},
    metrics::{Stats, merge, round3},
    proto::extract_str,
};

pub async fn fanout(
    args: &Args,
    c: &Common,
    stats: &Arc<Stats>,
    hs: Arc<Mutex<Histogram<u64>>>,
) -> Result<(Value, bool), String> {
    let groups: usize = args.get("groups", 2)?;
    let size: usize = args.get("size", 100)?;
    let load = Load {
        audience: size.saturating_sub(1) as u64,
        rate: args.get("rate", 20.0)?,
        duration: Duration::from_secs_f64(args.get("duration", 10.0)?),
        drain: Duration::from_secs_f64(args.get("drain", 5.0)?),
        stall_ms: args.get("stall-ms", 1000)?,
        pad: args.get("pad", 32)?,
    };
    let settle = Duration::from_millis(args.get("settle-ms", 1000)?);
    let member_nodes: usize = args.get("member-nodes", 0)?;
    args.check_unused()?;
    if !(load.rate > 0.0 && load.rate <= 1e6 && groups > 0 && size >= 2 && groups * size <= 20_000)
    {
        return Err("need rate > 0, groups > 0, size >= 2, groups*size <= 20000".into());
    }
    let n = c.eps.len();
    if member_nodes > n {
        return Err(format!("--member-nodes {member_nodes}: only {n} nodes"));
    }
    ensure_fds(groups * size)?;
    let node_of = |g: usize, j: usize| {
        if member_nodes == 0 {
            j % n
        } else if j == 0 {
            g % n
        } else {
            (g + 1 + (j - 1) % member_nodes) % n
        }
    };
    let mut targets = Vec::new();
    for g in 0..groups {
        for j in 0..size {
            targets.push(c.target(
                g * size + j,
                c.node(node_of(g, j)),
                format!("{}g{g}m{j}", c.tag),
                Transport::Ws,
            ));
        }
    }
    let setup_start = Instant::now();
    let handles = connect_all(targets, c.concurrency, stats.clone(), hs, c.conn_timeout).await;
    let handles = all_connected(handles, stats)?;
    let h = |g: usize, j: usize| handles[g * size + j].clone();
    let mut senders = Vec::new();
    let req = Duration::from_secs(60);
    for g in 0..groups {
        let reply = h(g, 0)
            .request(format!("[\"group:create\",{{\"name\":\"bench{g}\"}}]"), req)
            .await?;
        let id = extract_str(&reply, "id")
            .filter(|_| reply.contains("\"ok\":true"))
            .ok_or_else(|| format!("group:create: {reply:.200}"))?;
        // Joins, all of a group's at once (bounded: `size` requests).
        let mut joins = Vec::new();
        for j in 1..size {
            let (hh, id) = (h(g, j), id.clone());
            joins.push(tokio::spawn(async move {
                hh.request(format!("[\"group:join\",{{\"group\":\"{id}\"}}]"), req)
                    .await
            }));
        }
        for j in joins {
            let r = j.await.map_err(|e| e.to_string())??;
            if !r.contains("\"ok\":true") {
                return Err(format!("group:join: {r:.200}"));
            }
        }
        senders.push(SenderPlan {
            handle: h(g, 0),
            id: g as u32,
            target: format!("\"group\":\"{id}\""),
        });
    }
    sleep(settle).await;
    // Membership announcements (one per join, to the whole group: quadratic in the group
    // size on servers that send them) must be over before the measurement starts.
    let quiet = wait_quiet(stats, Duration::from_millis(300), Duration::from_secs(120)).await;
    let setup_s = setup_start.elapsed().as_secs_f64();
    let mut v = measure(senders, &load, &c.procs, stats.clone()).await;
    let delivered = v["delivered"].as_u64().unwrap_or(0).max(1) as f64;
    let per_delivery = |k: &str| round3(v[k].as_f64().unwrap_or(0.0) * 1e6 / delivered);
    let extra = json!({
        "workload": "fanout", "groups": groups, "size": size, "rate": load.rate,
        "duration_s": load.duration.as_secs_f64(),
        "member_nodes": if member_nodes == 0 { n } else { member_nodes },
        "placement": if member_nodes == 0 { "spread" } else { "sender apart" },
        "setup_s": round3(setup_s), "quiet_wait_s": round3(quiet.as_secs_f64()),
        "server_cpu_us_per_delivery": per_delivery("server_cpu_s"),
        "redis_cpu_us_per_delivery": per_delivery("redis_cpu_s"),
    });
    merge(&mut v, extra);
    close(stats, &handles);
    let ok = delivered_exactly_once(&v);
    Ok((v, ok))
}
