//! `slow`: a slow consumer (issue 27). A group of three on one node: a sender, a member that
//! reads and acks like any client, and a member that joins and then stops reading (`--silent
//! ws`: its WebSocket is never read again, so its TCP receive window fills; `--silent
//! polling`: it never sends its next long-poll `GET`; `--silent none`: the same load without
//! it, the baseline). The sender streams `--rate` messages/s of `--pad` bytes for `--duration`
//! seconds.
//!
//! Reports the server's RSS before the stream, its peak (sampled every 50 ms) and after
//! `--hold` more seconds, the reading member's latencies (it must see no slowdown), and when
//! the server dropped the silent member: the first `/healthz` (polled every 50 ms) that
//! counts fewer than three connections, in seconds from the first send, with the messages sent
//! by then. Servers without `/healthz` (the peers) report no time. With `--sync`, the silent
//! user then reconnects and calls `sync` until `hasMore` is false, and the run fails unless
//! every message of the stream comes back (the server's history must hold them all:
//! `CHAT_HISTORY_MAX`).

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::{sleep, timeout},
};

use super::{Common, Load, SenderPlan, all_connected, close, delivered_exactly_once, measure};
use crate::{
    args::{Args, Endpoint},
    client::{Transport, connect, connect_all},
    metrics::{Procs, Stats, merge, round3},
    polling, proto,
    proto::{Seen, extract_str},
    ws,
};

/// Connections the server holds while the silent member is there.
const MEMBERS: u64 = 3;

pub async fn slow(
    args: &Args,
    c: &Common,
    stats: &Arc<Stats>,
    hs: Arc<Mutex<Histogram<u64>>>,
) -> Result<(Value, bool), String> {
    let silent = args.str("silent", "ws");
    let load = Load {
        audience: 1,
        rate: args.get("rate", 1000.0)?,
        duration: Duration::from_secs_f64(args.get("duration", 20.0)?),
        drain: Duration::from_secs_f64(args.get("drain", 10.0)?),
        stall_ms: args.get("stall-ms", 1000)?,
        pad: args.get("pad", 2000)?,
    };
    let hold = Duration::from_secs_f64(args.get("hold", 5.0)?);
    let check_sync = args.flag("sync");
    args.check_unused()?;
    let silent: Option<Transport> = match silent.as_str() {
        "none" => None,
        t => Some(t.parse()?),
    };
    if !(load.rate > 0.0 && load.rate <= 1e5)
        || load.duration.as_secs_f64() > 600.0
        || hold.as_secs_f64() > 600.0
        || load.pad > 60_000
    {
        return Err("need 0 < rate <= 1e5, duration and hold <= 600, pad <= 60000".into());
    }
    let ep = c.node(0).clone();
    let user = |j: usize| format!("{}s{j}", c.tag);
    let targets = (0..2)
        .map(|j| c.target(j, &ep, user(j), Transport::Ws))
        .collect();
    let handles = connect_all(targets, 2, stats.clone(), hs, c.conn_timeout).await;
    let handles = all_connected(handles, stats)?;
    let req = Duration::from_secs(30);
    let reply = handles[0]
        .request("[\"group:create\",{\"name\":\"slow\"}]".into(), req)
        .await?;
    let group = extract_str(&reply, "id")
        .filter(|_| reply.contains("\"ok\":true"))
        .ok_or_else(|| format!("group:create: {reply:.200}"))?;
    let join = format!("[\"group:join\",{{\"group\":\"{group}\"}}]");
    let r = handles[1].request(join.clone(), req).await?;
    if !r.contains("\"ok\":true") {
        return Err(format!("group:join: {r:.200}"));
    }
    // The silent member joins, then is held without being read (dropped at the end).
    let held = match silent {
        None => None,
        Some(t) => Some(
            timeout(c.conn_timeout, join_then_stop(&ep, &user(2), t, &join))
                .await
                .map_err(|_| "silent member: join timed out".to_string())??,
        ),
    };
    // Membership announcements are over before the measurement.
    sleep(Duration::from_millis(300)).await;

    let procs = Procs {
        servers: c.procs.servers.clone(),
        redis: None,
    };
    let watch = Watch::start(procs, silent.is_some().then(|| ep.clone()), stats.clone());
    let before = c.procs.sample();
    let senders = vec![SenderPlan {
        handle: handles[0].clone(),
        id: 0,
        target: format!("\"group\":\"{group}\""),
    }];
    let stream_start = Instant::now();
    let mut v = measure(senders, &load, &c.procs, stats.clone()).await;
    let end_of_stream = c.procs.sample();
    sleep(hold).await;
    let after = c.procs.sample();
    let seen = watch.stop().await;
    let rss = |s: &crate::metrics::ProcSample| s.servers_rss.iter().sum::<u64>();
    let peak = seen.peak_kb.max(rss(&end_of_stream));
    let dropped_at = seen.dropped_at.map(|t| t.duration_since(stream_start));
    merge(
        &mut v,
        json!({
            "workload": "slow",
            "silent": silent.map_or("none", Transport::name),
            "rate": load.rate, "duration_s": load.duration.as_secs_f64(), "pad": load.pad,
            "server_rss_kb_before": rss(&before),
            "server_rss_kb_peak": peak,
            "server_rss_kb_end": rss(&end_of_stream),
            "server_rss_kb_after_hold": rss(&after),
            "hold_s": hold.as_secs_f64(),
            "server_rss_growth_kb": peak as i64 - rss(&before) as i64,
            "server_rss_held_kb": rss(&after) as i64 - rss(&before) as i64,
            "healthz": seen.healthz,
            "silent_dropped_s": dropped_at.map(|d| round3(d.as_secs_f64())),
            "sent_when_dropped": seen.sent_when_dropped,
        }),
    );
    drop(held);
    let mut ok = delivered_exactly_once(&v);
    if silent.is_some() && seen.healthz {
        ok &= dropped_at.is_some();
    }
    if check_sync && silent.is_some() {
        let expected = stats.acks_ok.load(Relaxed);
        let (got, calls) = sync_all(c, &ep, &user(2), stats, expected).await?;
        merge(
            &mut v,
            json!({"sync_messages": got, "sync_calls": calls, "sync_expected": expected}),
        );
        ok &= got == expected;
    }
    close(stats, &handles);
    Ok((v, ok))
}

/// A connection held open and never read again (the other field is `None`).
struct Held {
    _ws: Option<ws::Ws>,
    _polling: Option<polling::Silent>,
}

/// Connects as `user`, sends `join` and reads until its ack; then reads nothing more.
async fn join_then_stop(
    ep: &Endpoint,
    user: &str,
    transport: Transport,
    join: &str,
) -> Result<Held, String> {
    let frame = format!("420{join}");
    Ok(match transport {
        Transport::Ws => {
            let mut w = ws::handshake(ep, user, None).await?;
            ws::send_until_ack(&mut w, frame).await?;
            Held {
                _ws: Some(w),
                _polling: None,
            }
        }
        Transport::Polling => {
            let p = polling::handshake(ep, user, None).await?;
            Held {
                _ws: None,
                _polling: Some(p.send_until_ack(frame).await?),
            }
        }
    })
}

/// What the watcher saw.
struct Watched {
    peak_kb: u64,
    healthz: bool,
    dropped_at: Option<Instant>,
    sent_when_dropped: Option<u64>,
}

/// Samples the servers' RSS and `/healthz` every 50 ms until stopped.
struct Watch {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Watched>,
}

impl Watch {
    /// `ep`: the server whose `/healthz` tells when the silent member is gone (none without
    /// one).
    fn start(procs: Procs, ep: Option<Arc<Endpoint>>, stats: Arc<Stats>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut seen = Watched {
                peak_kb: 0,
                healthz: false,
                dropped_at: None,
                sent_when_dropped: None,
            };
            // Bounded: the caller stops it after the stream, the drain and the hold (each at
            // most 600 s); the count bounds it anyway.
            for _ in 0..40_000 {
                if flag.load(Relaxed) {
                    break;
                }
                let kb: u64 = procs.sample().servers_rss.iter().sum();
                seen.peak_kb = seen.peak_kb.max(kb);
                if let Some(ep) = ep.as_ref().filter(|_| seen.dropped_at.is_none())
                    && let Some(n) = healthz_connections(ep).await
                {
                    seen.healthz = true;
                    if n < MEMBERS {
                        seen.dropped_at = Some(Instant::now());
                        seen.sent_when_dropped = Some(stats.sent.load(Relaxed));
                    }
                }
                sleep(Duration::from_millis(50)).await;
            }
            seen
        });
        Self { stop, task }
    }

    async fn stop(self) -> Watched {
        self.stop.store(true, Relaxed);
        self.task.await.unwrap_or(Watched {
            peak_kb: 0,
            healthz: false,
            dropped_at: None,
            sent_when_dropped: None,
        })
    }
}

/// The `connections` of the server's `/healthz`; `None` when it has none (the peers).
async fn healthz_connections(ep: &Endpoint) -> Option<u64> {
    let fut = async {
        let mut s = TcpStream::connect(ep.addr).await.ok()?;
        let req = format!(
            "GET /healthz HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            ep.host
        );
        s.write_all(req.as_bytes()).await.ok()?;
        let mut body = Vec::new();
        s.take(64 * 1024).read_to_end(&mut body).await.ok()?;
        let text = String::from_utf8(body).ok()?;
        let at = text.find("\"connections\":")? + 14;
        let digits: String = text[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    };
    timeout(Duration::from_secs(1), fut).await.ok().flatten()
}

/// Reconnects as `user` and calls `sync` until `hasMore` is false; returns the stream's
/// messages it got (each once) and the calls it took.
async fn sync_all(
    c: &Common,
    ep: &Arc<Endpoint>,
    user: &str,
    stats: &Arc<Stats>,
    expected: u64,
) -> Result<(u64, u64), String> {
    let target = c.target(3, ep, user.to_owned(), Transport::Ws);
    let (h, _task) = connect(&target, stats.clone(), c.conn_timeout).await?;
    let mut seen = Seen::default();
    let (mut got, mut cursor) = (0u64, None::<String>);
    // At most 100 messages a page; a few empty pages more at most.
    let most = expected / 100 + 20;
    for calls in 1..=most {
        let args = match &cursor {
            Some(c) => format!("{{\"cursor\":\"{c}\"}}"),
            None => "{}".into(),
        };
        let reply = h
            .request(format!("[\"sync\",{args}]"), Duration::from_secs(30))
            .await?;
        if !reply.contains("\"ok\":true") {
            return Err(format!("sync: {reply:.200}"));
        }
        for part in reply.split("\"body\":\"").skip(1) {
            if let Some((sender, seq, _)) = proto::parse_body(&format!("\"body\":\"{part}"))
                && seen.insert(sender, seq)
            {
                got += 1;
            }
        }
        cursor = extract_str(&reply, "cursor").or(cursor);
        if !reply.contains("\"hasMore\":true") {
            let _ = h.tx.send(crate::proto::Cmd::Close);
            return Ok((got, calls));
        }
    }
    Err(format!("sync: more than {most} pages"))
}
