//! 1:1 messages: `dm` (WebSocket, or `--transport polling`), `polling` (long-polling clients
//! only) and `dm-search` (the highest rate whose p99 stays under a bound).
//!
//! Senders are on the first node, their receivers on the second (cross-node when two URLs are
//! given).

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::time::sleep;

use super::{Common, Load, SenderPlan, all_connected, close, delivered_exactly_once, measure};
use crate::{
    args::Args,
    client::{Handle, Transport, connect_all, ensure_fds},
    metrics::{Stats, merge, round3},
};

struct Pairs {
    pairs: usize,
    transport: Transport,
    handles: Vec<Handle>,
}

impl Pairs {
    /// Receivers `<tag>r<i>` on node 1, senders `<tag>s<i>` on node 0.
    async fn connect(
        c: &Common,
        pairs: usize,
        transport: Transport,
        stats: &Arc<Stats>,
        hs: Arc<Mutex<Histogram<u64>>>,
    ) -> Result<Self, String> {
        if pairs == 0 || pairs > 20_000 {
            return Err("need 0 < pairs <= 20000".into());
        }
        ensure_fds(2 * pairs * transport.fds())?;
        let mut targets = Vec::new();
        for i in 0..pairs {
            targets.push(c.target(i, c.node(1), format!("{}r{i}", c.tag), transport));
        }
        for i in 0..pairs {
            targets.push(c.target(pairs + i, c.node(0), format!("{}s{i}", c.tag), transport));
        }
        let handles = connect_all(targets, c.concurrency, stats.clone(), hs, c.conn_timeout).await;
        Ok(Self {
            pairs,
            transport,
            handles: all_connected(handles, stats)?,
        })
    }

    /// Sender plans; `id_base` keeps sender ids unique across measurement windows.
    fn senders(&self, c: &Common, id_base: usize) -> Vec<SenderPlan> {
        (0..self.pairs)
            .map(|i| SenderPlan {
                handle: self.handles[self.pairs + i].clone(),
                id: (id_base + i) as u32,
                target: format!("\"to\":\"{}r{i}\"", c.tag),
            })
            .collect()
    }
}

fn load_opts(args: &Args, default_rate: f64) -> Result<Load, String> {
    let load = Load {
        audience: 1,
        rate: args.get("rate", default_rate)?,
        duration: Duration::from_secs_f64(args.get("duration", 10.0)?),
        drain: Duration::from_secs_f64(args.get("drain", 5.0)?),
        stall_ms: args.get("stall-ms", 1000)?,
        pad: args.get("pad", 32)?,
    };
    if !(load.rate > 0.0 && load.rate <= 1e6) {
        return Err("need 0 < rate <= 1e6".into());
    }
    if !(load.duration.as_secs_f64() <= 3600.0 && load.drain.as_secs_f64() <= 3600.0) {
        return Err("duration and drain are at most 3600 s".into());
    }
    Ok(load)
}

/// `dm` (WebSocket unless `--transport polling`) and `polling` (`--clients N` long-polling
/// clients, half of them senders).
pub async fn dm(
    args: &Args,
    c: &Common,
    stats: &Arc<Stats>,
    hs: Arc<Mutex<Histogram<u64>>>,
) -> Result<(Value, bool), String> {
    let polling = args.cmd == "polling";
    let (pairs, transport) = if polling {
        let clients: usize = args.get("clients", 500)?;
        if clients < 2 || !clients.is_multiple_of(2) {
            return Err("--clients must be even and at least 2".into());
        }
        (clients / 2, Transport::Polling)
    } else {
        (
            args.get("pairs", 10)?,
            args.get("transport", Transport::Ws)?,
        )
    };
    let load = load_opts(args, if polling { 250.0 } else { 100.0 })?;
    args.check_unused()?;
    let p = Pairs::connect(c, pairs, transport, stats, hs).await?;
    let mut v = measure(p.senders(c, 0), &load, &c.procs, stats.clone()).await;
    let cpu = v["server_cpu_s"].as_f64().unwrap_or(0.0);
    let redis_cpu = v["redis_cpu_s"].as_f64().unwrap_or(0.0);
    let ok_n = v["acked_ok"].as_u64().unwrap_or(0) as f64;
    merge(
        &mut v,
        json!({
            "workload": args.cmd, "pairs": pairs, "rate": load.rate,
            "duration_s": load.duration.as_secs_f64(), "transport": p.transport.name(),
            "msgs_per_cpu_s": if cpu > 0.0 { (ok_n / cpu).round() } else { 0.0 },
            "msgs_per_total_cpu_s":
                if cpu + redis_cpu > 0.0 { (ok_n / (cpu + redis_cpu)).round() } else { 0.0 },
        }),
    );
    if polling {
        merge(&mut v, json!({"clients": 2 * pairs}));
    }
    close(stats, &p.handles);
    let ok = delivered_exactly_once(&v);
    Ok((v, ok))
}

/// `dm-search`: one set of connections, the rates of `--rates` in order, each for
/// `--step-duration` seconds; stops at the first rate whose p99 delivery latency is not under
/// `--p99-ms` or that loses or duplicates a message. Reports the highest passing rate.
pub async fn search(
    args: &Args,
    c: &Common,
    stats: &Arc<Stats>,
    hs: Arc<Mutex<Histogram<u64>>>,
) -> Result<(Value, bool), String> {
    let pairs: usize = args.get("pairs", 100)?;
    let transport: Transport = args.get("transport", Transport::Ws)?;
    let rates_text = args.str("rates", "500,1000,2000,3000,5000,8000");
    let step = Duration::from_secs_f64(args.get("step-duration", 5.0)?);
    let drain = Duration::from_secs_f64(args.get("drain", 5.0)?);
    let p99_ms: f64 = args.get("p99-ms", 50.0)?;
    let stall_ms: u64 = args.get("stall-ms", 1000)?;
    let pad: usize = args.get("pad", 32)?;
    let pause = Duration::from_secs_f64(args.get("pause", 1.0)?);
    args.check_unused()?;
    let rates: Vec<f64> = rates_text
        .split(',')
        .map(|r| r.trim().parse::<f64>().map_err(|_| format!("bad rate {r}")))
        .collect::<Result<_, _>>()?;
    if rates.is_empty() || rates.len() > 20 || rates.iter().any(|r| !(*r > 0.0 && *r <= 1e6)) {
        return Err("--rates: 1 to 20 rates, each in (0, 1e6]".into());
    }
    if step.as_secs_f64() > 600.0 || drain.as_secs_f64() > 600.0 || pause.as_secs_f64() > 60.0 {
        return Err("--step-duration and --drain are at most 600 s, --pause 60 s".into());
    }
    let p = Pairs::connect(c, pairs, transport, stats, hs).await?;
    let mut steps = Vec::new();
    let (mut best, mut lost, mut dup, mut failed_on) = (0.0f64, 0u64, 0u64, Value::Null);
    for (k, &rate) in rates.iter().enumerate() {
        if k > 0 {
            sleep(pause).await;
        }
        stats.reset_messages();
        let load = Load {
            audience: 1,
            rate,
            duration: step,
            drain,
            stall_ms,
            pad,
        };
        let v = measure(p.senders(c, k * pairs), &load, &c.procs, stats.clone()).await;
        let p99_us = v["lat_us"]["p99"].as_f64().unwrap_or(f64::INFINITY);
        let clean = delivered_exactly_once(&v) && v["unanswered"] == 0;
        let pass = clean && p99_us < p99_ms * 1000.0;
        lost += v["lost"].as_u64().unwrap_or(0);
        dup += v["dup"].as_u64().unwrap_or(0);
        steps.push(json!({
            "rate": rate, "pass": pass, "achieved_rate": v["achieved_rate"],
            "lat_us": v["lat_us"], "ack_lat_us": v["ack_lat_us"],
            "sent": v["sent"], "delivered": v["delivered"], "lost": v["lost"], "dup": v["dup"],
            "unanswered": v["unanswered"], "ack_err": v["ack_err"], "stalls": v["stalls"],
            "max_gap_ms": v["max_gap_ms"], "cpu_us_per_msg": v["cpu_us_per_msg"],
            "server_cpu_s": v["server_cpu_s"], "redis_cpu_s": v["redis_cpu_s"],
            "loadgen_cpu_s": v["loadgen_cpu_s"], "wall_s": v["wall_s"],
        }));
        if !pass {
            failed_on = json!({
                "rate": rate,
                "why": if clean { format!("p99 {:.1} ms", p99_us / 1000.0) }
                       else { "lost, duplicated or unanswered messages".to_string() },
            });
            break;
        }
        best = rate;
    }
    let v = json!({
        "workload": "dm-search", "pairs": pairs, "transport": p.transport.name(),
        "p99_limit_ms": p99_ms, "step_duration_s": step.as_secs_f64(),
        "rates": rates, "best_rate": best, "failed_at": failed_on,
        "steps": steps, "lost": lost, "dup": dup,
        "wall_s": round3(steps.iter().filter_map(|s| s["wall_s"].as_f64()).sum()),
    });
    close(stats, &p.handles);
    // What must hold whatever the rate: nothing duplicated, and nothing lost at a rate that
    // passed (a saturated step may still be owed messages when its drain ends).
    let ok = dup == 0
        && steps
            .iter()
            .filter(|s| s["pass"] == true)
            .all(|s| s["lost"] == 0);
    Ok((v, ok))
}
