//! `loadgen`: a cheap Engine.IO v4 / Socket.IO v4 load generator for the chat benchmarks.
//!
//! It speaks raw frames (`0{open}`, `40{auth}`, `2`/`3` ping/pong, `42[...]` events,
//! `42<id>[...]` requests, `43<id>[...]` acks) over WebSocket or HTTP long-polling, so that the
//! servers, not the client, stay the bottleneck. Loopback targets only. Every loop is bounded in
//! count and in time.
//!
//! ```text
//! loadgen dm        --urls ws://127.0.0.1:4001,ws://127.0.0.1:4002 --pairs 50 --rate 500 --duration 10
//! loadgen dm        --urls A,B --transport polling --pairs 50 --rate 200
//! loadgen polling   --urls A,B --clients 500 --rate 250 --duration 10
//! loadgen dm-search --urls A,B --pairs 100 --rates 500,1000,2000 --p99-ms 50 --step-duration 5
//! loadgen fanout    --urls A,B,C --groups 5 --size 100 --rate 50 --duration 10 [--member-nodes 1]
//! loadgen connect   --urls A,B --conns 2000 --concurrency 100
//! loadgen idle      --urls A   --conns 1000 --hold 5 [--polling-share 0.05]
//! loadgen slow      --urls A   --silent ws|polling|none --rate 1000 --duration 20 --pad 2000 [--sync]
//! loadgen floor     --conns 10 --rate 1000 --duration 3
//! ```
//! Common options: `--pids 1,2` (server pids: CPU and RSS from /proc), `--redis-pid N`,
//! `--label S` (copied into the output), `--tag S` (user-name prefix), `--concurrency N`
//! (handshakes in flight), `--conn-timeout S`, `--source-ips N` (bind client sockets to
//! 127.0.0.1..N round-robin, for more connections to one server than one address has ports),
//! `--max-seconds S` (default 600), `--assert` (exit 1 unless every message arrived exactly
//! once and every connection succeeded). Output: one JSON line on stdout.

mod args;
mod client;
mod metrics;
mod polling;
mod proto;
mod workloads;
mod ws;

use std::{
    process::ExitCode,
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::{Value, json};
use tokio::time::{sleep, timeout};

use crate::{
    args::{Args, usage},
    metrics::{Stats, hist, merge, t0},
    workloads::Common,
};

async fn run(args: &Args) -> Result<(Value, bool), String> {
    if args.cmd == "floor" {
        let label = args.str("label", "floor");
        return workloads::floor::floor(args, &label).await;
    }
    let c = Common::parse(args)?;
    let stats = Stats::new();
    let hs = Arc::new(Mutex::new(hist()));
    let (mut out, ok) = match args.cmd.as_str() {
        "dm" | "polling" => workloads::dm::dm(args, &c, &stats, hs).await?,
        "dm-search" => workloads::dm::search(args, &c, &stats, hs).await?,
        "fanout" => workloads::fanout::fanout(args, &c, &stats, hs).await?,
        "connect" | "idle" => workloads::connect::connect(args, &c, &stats, hs).await?,
        "slow" => workloads::slow::slow(args, &c, &stats, hs).await?,
        other => return Err(format!("unknown command {other}; {}", usage())),
    };
    merge(
        &mut out,
        json!({"label": c.label, "error_sample": stats.error_sample()}),
    );
    // Let the close frames go out (bounded).
    sleep(Duration::from_millis(200)).await;
    Ok((out, ok || !c.assert))
}

fn main() -> ExitCode {
    t0();
    let args = match Args::parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::from(2);
        }
    };
    let max_s: u64 = match args.get("max-seconds", 600) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadgen: runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let res = rt.block_on(async { timeout(Duration::from_secs(max_s), run(&args)).await });
    match res {
        Ok(Ok((v, pass))) => {
            println!("{v}");
            if pass {
                ExitCode::SUCCESS
            } else {
                eprintln!("loadgen: assertion failed (lost, duplicate, failed or disconnected)");
                ExitCode::from(1)
            }
        }
        Ok(Err(e)) => {
            eprintln!("loadgen: {e}");
            println!("{}", json!({"workload": args.cmd, "error": e}));
            ExitCode::from(1)
        }
        Err(_) => {
            eprintln!("loadgen: gave up after --max-seconds {max_s}");
            ExitCode::from(1)
        }
    }
}
