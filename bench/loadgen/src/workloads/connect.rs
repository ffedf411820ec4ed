//! `connect` (a connect storm: handshakes per second and per server CPU-second) and `idle`
//! (connections held open: server memory per connection). Client `i` goes to node `i mod n`;
//! with `--polling-share F` a fraction F of them (spread evenly) long-poll instead of using a
//! WebSocket.

use std::{
    sync::{Arc, Mutex, atomic::Ordering::Relaxed},
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::time::sleep;

use super::{Common, close};
use crate::{
    args::Args,
    client::{Transport, connect_all, ensure_fds},
    metrics::{Stats, cpu_json, hist_json, merge, round3},
};

/// Whether client `i` of a population long-polls: `floor(n * share)` of every `n`, spread.
fn is_polling(i: usize, share: f64) -> bool {
    ((i + 1) as f64 * share).floor() > (i as f64 * share).floor()
}

pub async fn connect(
    args: &Args,
    c: &Common,
    stats: &Arc<Stats>,
    hs: Arc<Mutex<Histogram<u64>>>,
) -> Result<(Value, bool), String> {
    let idle = args.cmd == "idle";
    let conns: usize = args.get("conns", 1000)?;
    let hold = Duration::from_secs_f64(if idle { args.get("hold", 5.0)? } else { 0.0 });
    let share: f64 = args.get("polling-share", 0.0)?;
    args.check_unused()?;
    if conns == 0 || conns > 20_000 {
        return Err("need 0 < conns <= 20000".into());
    }
    if !(0.0..=1.0).contains(&share) || hold.as_secs_f64() > 3600.0 {
        return Err("need 0 <= --polling-share <= 1 and --hold <= 3600".into());
    }
    let transport = |i| {
        if is_polling(i, share) {
            Transport::Polling
        } else {
            Transport::Ws
        }
    };
    ensure_fds((0..conns).map(|i| transport(i).fds()).sum())?;
    let polling = (0..conns).filter(|&i| is_polling(i, share)).count();
    let targets = (0..conns)
        .map(|i| c.target(i, c.node(i), format!("{}c{i}", c.tag), transport(i)))
        .collect();
    let before = c.procs.sample();
    let start = Instant::now();
    let handles = connect_all(
        targets,
        c.concurrency,
        stats.clone(),
        hs.clone(),
        c.conn_timeout,
    )
    .await;
    let elapsed = start.elapsed().as_secs_f64();
    let after_connect = c.procs.sample();
    let okn = handles.iter().filter(|h| h.is_some()).count();
    let failed = conns - okn;
    let mut v = json!({
        "workload": args.cmd, "conns": conns, "connected": okn, "failed": failed,
        "concurrency": c.concurrency,
        "handshake_us": hist_json(&hs.lock().unwrap()),
        "polling": polling, "polling_share": share,
    });
    if !idle {
        let (cpu, cj) = cpu_json(&before, &after_connect);
        merge(
            &mut v,
            json!({
                "elapsed_s": round3(elapsed),
                "handshakes_per_s": (okn as f64 / elapsed).round(),
                "handshakes_per_cpu_s": if cpu > 0.0 { (okn as f64 / cpu).round() } else { 0.0 },
            }),
        );
        merge(&mut v, cj);
    } else {
        sleep(hold).await;
        let after = c.procs.sample();
        let delta_kb: i64 = after
            .servers_rss
            .iter()
            .zip(&before.servers_rss)
            .map(|(a, b)| *a as i64 - *b as i64)
            .sum();
        merge(
            &mut v,
            json!({
                "connect_s": round3(elapsed),
                "hold_s": hold.as_secs_f64(),
                "server_rss_kb_before": before.servers_rss,
                "server_rss_kb": after.servers_rss,
                "redis_rss_kb_before": before.redis_rss,
                "redis_rss_kb": after.redis_rss,
                "server_rss_delta_kb": delta_kb,
                "bytes_per_conn": if okn > 0 { (delta_kb as f64 * 1024.0 / okn as f64).round() } else { 0.0 },
                "disconnects": stats.disconnects.load(Relaxed),
            }),
        );
    }
    let handles: Vec<_> = handles.into_iter().flatten().collect();
    close(stats, &handles);
    let ok = failed == 0 && stats.disconnects.load(Relaxed) == 0;
    Ok((v, ok))
}

#[cfg(test)]
mod tests {
    use super::is_polling;

    #[test]
    fn polling_share_is_spread() {
        assert_eq!((0..18_000).filter(|&i| is_polling(i, 0.05)).count(), 900);
        assert_eq!((0..1_000).filter(|&i| is_polling(i, 0.05)).count(), 50);
        assert_eq!((0..100).filter(|&i| is_polling(i, 0.0)).count(), 0);
        assert_eq!((0..100).filter(|&i| is_polling(i, 1.0)).count(), 100);
        assert!(!is_polling(0, 0.05) && is_polling(19, 0.05));
    }
}
