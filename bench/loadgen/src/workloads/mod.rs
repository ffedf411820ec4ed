//! The workloads, and what they share: common options, the open-loop senders and the
//! measurement window.

pub mod connect;
pub mod dm;
pub mod fanout;
pub mod floor;
pub mod slow;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use tokio::time::{sleep, sleep_until};

use crate::{
    args::{Args, Endpoint, loopback_url},
    client::{Handle, Sources, Target, Transport},
    metrics::{Procs, Stats, cpu_json, hist_json, merge, round3, t0},
    proto::{AckKind, Cmd},
};

/// Options every workload takes.
pub struct Common {
    pub eps: Vec<Arc<Endpoint>>,
    pub procs: Procs,
    pub tag: String,
    pub label: String,
    pub conn_timeout: Duration,
    pub concurrency: usize,
    pub assert: bool,
    pub sources: Sources,
}

impl Common {
    pub fn parse(args: &Args) -> Result<Self, String> {
        let eps: Vec<Arc<Endpoint>> = args
            .str("urls", "ws://127.0.0.1:3000")
            .split(',')
            .map(|u| loopback_url(u).map(Arc::new))
            .collect::<Result<_, _>>()?;
        let pids = args.str("pids", "");
        let redis = args.str("redis-pid", "");
        let sources: u8 = args.get("source-ips", 1)?;
        if sources == 0 || sources > 250 {
            return Err("need 1 <= --source-ips <= 250".into());
        }
        Ok(Self {
            eps,
            procs: Procs {
                servers: pids
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect(),
                redis: (!redis.is_empty()).then_some(redis),
            },
            tag: args.str("tag", &format!("b{}", std::process::id())),
            label: args.str("label", ""),
            conn_timeout: Duration::from_secs(args.get("conn-timeout", 20u64)?),
            concurrency: args.get("concurrency", 100usize)?,
            assert: args.flag("assert"),
            sources: Sources(sources),
        })
    }

    /// The `i`-th client of a workload, on server `ep`.
    pub fn target(
        &self,
        i: usize,
        ep: &Arc<Endpoint>,
        user: String,
        transport: Transport,
    ) -> Target {
        Target {
            ep: ep.clone(),
            user,
            transport,
            source: self.sources.pick(i, ep),
        }
    }

    /// The endpoint of node `i` (modulo the number of nodes).
    pub fn node(&self, i: usize) -> &Arc<Endpoint> {
        &self.eps[i % self.eps.len()]
    }
}

/// The handles when every connection succeeded; otherwise an error naming one failure.
pub fn all_connected(handles: Vec<Option<Handle>>, stats: &Stats) -> Result<Vec<Handle>, String> {
    let failed = handles.iter().filter(|h| h.is_none()).count();
    if failed > 0 {
        return Err(format!(
            "{failed} connections failed: {:?}",
            stats.error_sample()
        ));
    }
    Ok(handles.into_iter().flatten().collect())
}

pub fn close(stats: &Stats, handles: &[Handle]) {
    stats.closing.store(true, Relaxed);
    for h in handles {
        let _ = h.tx.send(Cmd::Close);
    }
}

/// Every message arrived once, and every send was accepted.
pub fn delivered_exactly_once(v: &Value) -> bool {
    v["lost"] == 0 && v["dup"] == 0 && v["delivered"].as_u64() > Some(0) && v["ack_err"] == 0
}

pub struct SenderPlan {
    pub handle: Handle,
    /// Sender id in message bodies (unique per measurement window).
    pub id: u32,
    /// JSON fragment naming the target, e.g. `"to":"bob"` or `"group":"G1"`.
    pub target: String,
}

/// What one measurement window sends.
pub struct Load {
    /// Deliveries owed per acknowledged message.
    pub audience: u64,
    /// Messages per second, all senders together.
    pub rate: f64,
    pub duration: Duration,
    /// How long to wait after the last send for acks and deliveries.
    pub drain: Duration,
    pub stall_ms: u64,
    /// Padding bytes in each body.
    pub pad: usize,
}

/// Runs the fixed-rate senders (open loop: the send time is the scheduled time, so queueing
/// delay counts in the latency), then waits for outstanding acks and deliveries.
/// Returns the measurement JSON.
pub async fn measure(
    senders: Vec<SenderPlan>,
    load: &Load,
    procs: &Procs,
    stats: Arc<Stats>,
) -> Value {
    let Load {
        audience,
        rate: total_rate,
        duration,
        drain,
        stall_ms,
        pad,
    } = *load;
    let m = senders.len().max(1) as f64;
    let period = Duration::from_secs_f64(m / total_rate);
    let max_per_sender = (duration.as_secs_f64() / period.as_secs_f64()).ceil() as u64 + 1;
    let padding = "x".repeat(pad);
    let before = procs.sample();
    let start = Instant::now() + Duration::from_millis(20);
    let end = start + duration;
    let sending = Arc::new(AtomicBool::new(true));

    // Stall detector: no new delivery for `stall_ms` while deliveries are owed.
    let stall = {
        let (stats, sending) = (stats.clone(), sending.clone());
        tokio::spawn(async move {
            let (mut stalls, mut max_gap, mut last, mut last_n, mut in_stall) =
                (0u64, 0u64, Instant::now(), 0u64, false);
            let limit = duration + drain + Duration::from_secs(5);
            let t_start = Instant::now();
            while t_start.elapsed() < limit {
                sleep(Duration::from_millis(20)).await;
                let n = stats.delivered.load(Relaxed);
                let owed = stats.acks_ok.load(Relaxed) * audience > n
                    || stats.sent.load(Relaxed)
                        > stats.acks_ok.load(Relaxed) + stats.acks_err.load(Relaxed);
                if n != last_n || !(owed || sending.load(Relaxed)) {
                    last = Instant::now();
                    last_n = n;
                    in_stall = false;
                    if !sending.load(Relaxed) && !owed {
                        break;
                    }
                    continue;
                }
                let gap = last.elapsed().as_millis() as u64;
                max_gap = max_gap.max(gap);
                if gap >= stall_ms && !in_stall {
                    stalls += 1;
                    in_stall = true;
                }
            }
            (stalls, max_gap)
        })
    };

    let mut tasks = Vec::new();
    for (i, s) in senders.into_iter().enumerate() {
        let offset = period.mul_f64(i as f64 / m);
        let (stats, padding) = (stats.clone(), padding.clone());
        tasks.push(tokio::spawn(async move {
            for k in 0..max_per_sender {
                let at = start + offset + period * k as u32;
                if at >= end {
                    break;
                }
                sleep_until(at.into()).await;
                let t_us = at.saturating_duration_since(t0()).as_micros() as u64;
                let array = format!(
                    "[\"message:send\",{{{},\"body\":\"m{}.{}.{}.{}\"}}]",
                    s.target, s.id, k, t_us, padding
                );
                let cmd = Cmd::Emit {
                    array,
                    ack: Some(AckKind::Send { intended_us: t_us }),
                };
                if s.handle.tx.send(cmd).is_err() {
                    break;
                }
                stats.sent.fetch_add(1, Relaxed);
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    sending.store(false, Relaxed);
    let send_end = Instant::now();
    // Drain: until every ack and every owed delivery is in, or `drain` passes.
    while send_end.elapsed() < drain {
        let ok = stats.acks_ok.load(Relaxed);
        let answered = ok + stats.acks_err.load(Relaxed);
        if answered >= stats.sent.load(Relaxed) && stats.delivered.load(Relaxed) >= ok * audience {
            break;
        }
        sleep(Duration::from_millis(5)).await;
    }
    let wall = start.elapsed().as_secs_f64();
    let after = procs.sample();
    let (stalls, max_gap) = stall.await.unwrap_or((0, 0));

    let sent = stats.sent.load(Relaxed);
    let ok = stats.acks_ok.load(Relaxed);
    let delivered = stats.delivered.load(Relaxed);
    let expected = ok * audience;
    let (cpu, cpu_json) = cpu_json(&before, &after);
    let mut v = json!({
        "sent": sent,
        "acked_ok": ok,
        "ack_err": stats.acks_err.load(Relaxed),
        "unanswered": sent.saturating_sub(ok + stats.acks_err.load(Relaxed)),
        "expected": expected,
        "delivered": delivered,
        "lost": expected.saturating_sub(delivered),
        "dup": stats.dups.load(Relaxed),
        "unparsed": stats.unparsed.load(Relaxed),
        "achieved_rate": round3(sent as f64 / duration.as_secs_f64()),
        "wall_s": round3(wall),
        "lat_us": hist_json(&stats.lat.lock().unwrap()),
        "ack_lat_us": hist_json(&stats.ack_lat.lock().unwrap()),
        "stalls": stalls,
        "max_gap_ms": max_gap,
        "cpu_us_per_msg": if ok > 0 { round3(cpu * 1e6 / ok as f64) } else { 0.0 },
        "deliveries_per_cpu_s": if cpu > 0.0 { (delivered as f64 / cpu).round() } else { 0.0 },
    });
    merge(&mut v, cpu_json);
    v
}

/// Waits until no event has arrived for `quiet` (e.g. the `group:member` announcements of a
/// large group's joins), at most `limit`. Returns how long it waited.
pub async fn wait_quiet(stats: &Stats, quiet: Duration, limit: Duration) -> Duration {
    let start = Instant::now();
    let mut last_n = stats.other_events.load(Relaxed) + stats.delivered.load(Relaxed);
    let mut last_change = Instant::now();
    while start.elapsed() < limit {
        sleep(Duration::from_millis(50)).await;
        let n = stats.other_events.load(Relaxed) + stats.delivered.load(Relaxed);
        if n != last_n {
            last_n = n;
            last_change = Instant::now();
        } else if last_change.elapsed() >= quiet {
            break;
        }
    }
    start.elapsed()
}
