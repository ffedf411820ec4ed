//! `loadgen`: a cheap Engine.IO v4 / Socket.IO v4 load generator for the chat benchmarks.
//!
//! It speaks raw frames over WebSocket (`0{open}`, `40{auth}`, `2`/`3` ping/pong, `42[...]`
//! events, `42<id>[...]` requests, `43<id>[...]` acks) so that the servers, not the client,
//! stay the bottleneck. Loopback targets only. Every loop is bounded in count and in time.
//!
//! ```text
//! loadgen dm      --urls ws://127.0.0.1:4001,ws://127.0.0.1:4002 --pairs 50 --rate 500 --duration 10
//! loadgen fanout  --urls A,B --groups 5 --size 100 --rate 50 --duration 10
//! loadgen connect --urls A,B --conns 2000 --concurrency 100
//! loadgen idle    --urls A   --conns 1000 --hold 5
//! ```
//! Common options: `--pids 1,2` (server pids: CPU and RSS from /proc), `--redis-pid N`,
//! `--label S` (copied into the output), `--tag S` (user-name prefix), `--assert` (exit 1 unless
//! every message arrived exactly once and every connection succeeded).
//! Output: one JSON line on stdout.

use std::{
    collections::{HashMap, HashSet},
    net::{IpAddr, Ipv6Addr},
    process::ExitCode,
    str::FromStr,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicBool, AtomicU64, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::{
    net::TcpStream,
    sync::{Semaphore, mpsc, oneshot},
    task::JoinHandle,
    time::{sleep, sleep_until, timeout},
};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, tungstenite::Message};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

static T0: OnceLock<Instant> = OnceLock::new();

fn t0() -> Instant {
    *T0.get_or_init(Instant::now)
}

/// Microseconds since the process's time origin (shared by senders and receivers).
fn now_us() -> u64 {
    t0().elapsed().as_micros() as u64
}

// ---------------------------------------------------------------------------------------------
// Arguments

struct Args {
    cmd: String,
    map: HashMap<String, String>,
    flags: HashSet<String>,
    used: Mutex<HashSet<String>>,
}

impl Args {
    fn parse() -> Result<Self, String> {
        let mut it = std::env::args().skip(1);
        let cmd = it.next().ok_or_else(usage)?;
        let mut map = HashMap::new();
        let mut flags = HashSet::new();
        let rest: Vec<String> = it.collect();
        let mut i = 0;
        while i < rest.len() {
            let k = rest[i]
                .strip_prefix("--")
                .ok_or_else(|| format!("unexpected argument {}", rest[i]))?
                .to_string();
            if k == "assert" {
                flags.insert(k);
                i += 1;
                continue;
            }
            let v = rest
                .get(i + 1)
                .ok_or_else(|| format!("--{k} needs a value"))?;
            map.insert(k, v.clone());
            i += 2;
        }
        Ok(Self {
            cmd,
            map,
            flags,
            used: Mutex::new(HashSet::new()),
        })
    }

    fn get<T: FromStr>(&self, k: &str, default: T) -> Result<T, String> {
        self.used.lock().unwrap().insert(k.to_string());
        match self.map.get(k) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| format!("bad value for --{k}: {v}")),
        }
    }

    fn str(&self, k: &str, default: &str) -> String {
        self.used.lock().unwrap().insert(k.to_string());
        self.map
            .get(k)
            .cloned()
            .unwrap_or_else(|| default.to_string())
    }

    fn flag(&self, k: &str) -> bool {
        self.flags.contains(k)
    }

    fn check_unused(&self) -> Result<(), String> {
        let used = self.used.lock().unwrap();
        for k in self.map.keys() {
            if !used.contains(k) {
                return Err(format!("unknown option --{k} for {}", self.cmd));
            }
        }
        Ok(())
    }
}

fn usage() -> String {
    "usage: loadgen dm|fanout|connect|idle --urls ws://127.0.0.1:PORT[,..] [options]".into()
}

/// Accepts only loopback targets: `ws://127.x.y.z:port`, `ws://[::1]:port`, `ws://localhost:port`.
fn loopback_url(u: &str) -> Result<String, String> {
    let rest = u
        .strip_prefix("ws://")
        .ok_or_else(|| format!("{u}: only ws:// URLs are supported"))?;
    let hostport = rest.split('/').next().unwrap_or("");
    let (host, port) = if let Some(h) = hostport.strip_prefix('[') {
        let (h, p) = h
            .split_once("]:")
            .ok_or_else(|| format!("{u}: needs a port"))?;
        (h.to_string(), p)
    } else {
        let (h, p) = hostport
            .rsplit_once(':')
            .ok_or_else(|| format!("{u}: needs a port"))?;
        (h.to_string(), p)
    };
    let port: u16 = port.parse().map_err(|_| format!("{u}: bad port"))?;
    let ip: IpAddr = if host == "localhost" {
        IpAddr::from([127, 0, 0, 1])
    } else {
        host.parse()
            .map_err(|_| format!("{u}: host must be a loopback IP"))?
    };
    let ok = match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6 == Ipv6Addr::LOCALHOST,
    };
    if !ok {
        return Err(format!("{u}: refusing a non-loopback target"));
    }
    let host = match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    };
    Ok(format!(
        "ws://{host}:{port}/socket.io/?EIO=4&transport=websocket"
    ))
}

// ---------------------------------------------------------------------------------------------
// Shared statistics

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("histogram bounds")
}

struct Stats {
    sent: AtomicU64,
    acks_ok: AtomicU64,
    acks_err: AtomicU64,
    delivered: AtomicU64,
    dups: AtomicU64,
    unparsed: AtomicU64,
    disconnects: AtomicU64,
    closing: AtomicBool,
    lat: Mutex<Histogram<u64>>,
    ack_lat: Mutex<Histogram<u64>>,
    err_sample: Mutex<Option<String>>,
}

impl Stats {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            sent: AtomicU64::new(0),
            acks_ok: AtomicU64::new(0),
            acks_err: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            dups: AtomicU64::new(0),
            unparsed: AtomicU64::new(0),
            disconnects: AtomicU64::new(0),
            closing: AtomicBool::new(false),
            lat: Mutex::new(hist()),
            ack_lat: Mutex::new(hist()),
            err_sample: Mutex::new(None),
        })
    }

    fn error(&self, e: impl Into<String>) {
        let mut s = self.err_sample.lock().unwrap();
        if s.is_none() {
            *s = Some(e.into());
        }
    }
}

fn hist_json(h: &Histogram<u64>) -> Value {
    if h.is_empty() {
        return json!({"n": 0});
    }
    json!({
        "n": h.len(),
        "p50": h.value_at_quantile(0.50),
        "p99": h.value_at_quantile(0.99),
        "p999": h.value_at_quantile(0.999),
        "max": h.max(),
        "mean": (h.mean() * 10.0).round() / 10.0,
    })
}

// ---------------------------------------------------------------------------------------------
// /proc

fn clk_tck() -> f64 {
    // SAFETY-free: sysconf is a plain libc call without pointers.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// utime + stime of `pid` in seconds.
fn cpu_s(pid: &str) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = s.get(s.rfind(')')? + 2..)?;
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / clk_tck())
}

/// VmRSS of `pid` in KiB.
fn rss_kb(pid: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

struct Procs {
    servers: Vec<String>,
    redis: Option<String>,
}

#[derive(Clone)]
struct ProcSample {
    servers_cpu: Vec<f64>,
    redis_cpu: f64,
    self_cpu: f64,
    servers_rss: Vec<u64>,
    redis_rss: u64,
}

impl Procs {
    fn sample(&self) -> ProcSample {
        ProcSample {
            servers_cpu: self
                .servers
                .iter()
                .map(|p| cpu_s(p).unwrap_or(0.0))
                .collect(),
            redis_cpu: self.redis.as_deref().and_then(cpu_s).unwrap_or(0.0),
            self_cpu: cpu_s("self").unwrap_or(0.0),
            servers_rss: self
                .servers
                .iter()
                .map(|p| rss_kb(p).unwrap_or(0))
                .collect(),
            redis_rss: self.redis.as_deref().and_then(rss_kb).unwrap_or(0),
        }
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn cpu_json(a: &ProcSample, b: &ProcSample) -> (f64, Value) {
    let per: Vec<f64> = a
        .servers_cpu
        .iter()
        .zip(&b.servers_cpu)
        .map(|(x, y)| round3(y - x))
        .collect();
    let total: f64 = per.iter().sum();
    (
        total,
        json!({
            "server_cpu_s": round3(total),
            "server_cpu_s_each": per,
            "redis_cpu_s": round3(b.redis_cpu - a.redis_cpu),
            "loadgen_cpu_s": round3(b.self_cpu - a.self_cpu),
            "server_rss_kb": b.servers_rss,
            "redis_rss_kb": b.redis_rss,
        }),
    )
}

// ---------------------------------------------------------------------------------------------
// One Socket.IO connection

enum AckKind {
    /// A `message:send`: record the ack latency from the intended send time.
    Send { intended_us: u64 },
    /// A setup request: hand the ack's data back.
    Reply(oneshot::Sender<String>),
}

enum Cmd {
    /// `array` is the Socket.IO event array text, e.g. `["message:send",{...}]`.
    Emit {
        array: String,
        ack: Option<AckKind>,
    },
    Close,
}

#[derive(Clone)]
struct Handle {
    tx: mpsc::UnboundedSender<Cmd>,
}

impl Handle {
    async fn request(&self, array: String, within: Duration) -> Result<String, String> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Emit {
                array,
                ack: Some(AckKind::Reply(tx)),
            })
            .map_err(|_| "connection closed".to_string())?;
        match timeout(within, rx).await {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(_)) => Err("connection closed before the ack".into()),
            Err(_) => Err("ack timed out".into()),
        }
    }
}

async fn next_text(ws: &mut Ws) -> Result<String, String> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return Ok(t.to_string()),
            Some(Ok(Message::Close(c))) => return Err(format!("closed: {c:?}")),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err("closed".into()),
        }
    }
}

/// Connects, authenticates as `user` and waits for `ready`. Returns the handle and the task.
async fn connect(
    url: &str,
    user: &str,
    stats: Arc<Stats>,
    within: Duration,
) -> Result<(Handle, JoinHandle<()>), String> {
    let handshake = async {
        let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, None, true)
            .await
            .map_err(|e| format!("websocket: {e}"))?;
        let open = next_text(&mut ws).await?;
        if !open.starts_with('0') {
            return Err(format!("expected an open packet, got {open:.80}"));
        }
        let auth = json!({ "user": user }).to_string();
        ws.send(Message::text(format!("40{auth}")))
            .await
            .map_err(|e| e.to_string())?;
        // Bounded by the outer timeout; each frame is one of open/ping/connect/event.
        let mut connected = false;
        for _ in 0..10_000 {
            let t = next_text(&mut ws).await?;
            if t == "2" {
                ws.send(Message::text("3"))
                    .await
                    .map_err(|e| e.to_string())?;
            } else if t.starts_with("40") {
                connected = true;
            } else if t.starts_with("44") {
                return Err(format!("connect_error: {t:.200}"));
            } else if connected && t.starts_with("42[\"ready\"") {
                return Ok(ws);
            }
        }
        Err("no ready event".into())
    };
    let ws = timeout(within, handshake)
        .await
        .map_err(|_| "handshake timed out".to_string())??;
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(run_conn(ws, rx, stats));
    Ok((Handle { tx }, task))
}

/// Per-receiver duplicate detection: one bit per (sender, sequence number).
#[derive(Default)]
struct Seen {
    bits: HashMap<u32, Vec<u64>>,
}

impl Seen {
    /// True when new.
    fn insert(&mut self, sender: u32, seq: u64) -> bool {
        let v = self.bits.entry(sender).or_default();
        let (w, b) = ((seq / 64) as usize, seq % 64);
        if v.len() <= w {
            v.resize(w + 1, 0);
        }
        let new = v[w] & (1 << b) == 0;
        v[w] |= 1 << b;
        new
    }
}

/// Splits `<digits>rest` into the optional id and the rest.
fn split_id(s: &str) -> (Option<u64>, &str) {
    let n = s.bytes().take_while(u8::is_ascii_digit).count();
    if n == 0 {
        (None, s)
    } else {
        (s[..n].parse().ok(), &s[n..])
    }
}

/// Body layout: `m<sender>.<seq>.<intended send time in µs>.<padding>`.
fn parse_body(array: &str) -> Option<(u32, u64, u64)> {
    let i = array.find("\"body\":\"")? + 8;
    let body = &array[i..];
    let body = &body[..body.find('"')?];
    let mut it = body.strip_prefix('m')?.split('.');
    Some((
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
    ))
}

async fn run_conn(mut ws: Ws, mut rx: mpsc::UnboundedReceiver<Cmd>, stats: Arc<Stats>) {
    let mut pending: HashMap<u64, AckKind> = HashMap::new();
    let mut next_id = 0u64;
    let mut seen = Seen::default();
    loop {
        tokio::select! {
            cmd = rx.recv() => match cmd {
                Some(Cmd::Emit { array, ack }) => {
                    let frame = match ack {
                        Some(a) => {
                            let id = next_id;
                            next_id += 1;
                            pending.insert(id, a);
                            format!("42{id}{array}")
                        }
                        None => format!("42{array}"),
                    };
                    if let Err(e) = ws.send(Message::text(frame)).await {
                        stats.error(format!("send: {e}"));
                        break;
                    }
                }
                Some(Cmd::Close) | None => {
                    let _ = timeout(Duration::from_secs(1), ws.close(None)).await;
                    return;
                }
            },
            msg = ws.next() => {
                let t = match msg {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => continue,
                };
                let t = t.as_str();
                if t == "2" {
                    if ws.send(Message::text("3")).await.is_err() {
                        break;
                    }
                } else if let Some(rest) = t.strip_prefix("42") {
                    let (id, array) = split_id(rest);
                    if array.starts_with("[\"message\"") {
                        let now = now_us();
                        match parse_body(array) {
                            Some((sender, seq, sent_us)) => {
                                if seen.insert(sender, seq) {
                                    stats.delivered.fetch_add(1, Relaxed);
                                    let _ = stats.lat.lock().unwrap().record(now.saturating_sub(sent_us).max(1));
                                } else {
                                    stats.dups.fetch_add(1, Relaxed);
                                }
                            }
                            None => { stats.unparsed.fetch_add(1, Relaxed); }
                        }
                    }
                    // The server asked for an acknowledgement (delivery receipts): answer like
                    // a client whose handler calls the callback.
                    if let Some(id) = id
                        && ws.send(Message::text(format!("43{id}[true]"))).await.is_err()
                    {
                        break;
                    }
                } else if let Some(rest) = t.strip_prefix("43") {
                    let (id, data) = split_id(rest);
                    match id.and_then(|id| pending.remove(&id)) {
                        Some(AckKind::Send { intended_us }) => {
                            if data.contains("\"ok\":true") {
                                stats.acks_ok.fetch_add(1, Relaxed);
                                let _ = stats.ack_lat.lock().unwrap()
                                    .record(now_us().saturating_sub(intended_us).max(1));
                            } else {
                                stats.acks_err.fetch_add(1, Relaxed);
                                stats.error(format!("ack: {data:.200}"));
                            }
                        }
                        Some(AckKind::Reply(tx)) => { let _ = tx.send(data.to_string()); }
                        None => {}
                    }
                } else if t.starts_with("41") || t.starts_with('1') {
                    break;
                }
            }
        }
    }
    if !stats.closing.load(Relaxed) {
        stats.disconnects.fetch_add(1, Relaxed);
        stats.error("unexpected disconnect");
    }
}

/// Connects `users[i]` to `urls[i]` with at most `concurrency` handshakes in flight.
/// Records each handshake's latency in `hs`. Returns the handles (None for failures).
async fn connect_all(
    targets: Vec<(String, String)>,
    concurrency: usize,
    stats: Arc<Stats>,
    hs: Arc<Mutex<Histogram<u64>>>,
    within: Duration,
) -> Vec<Option<Handle>> {
    let sem = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = Vec::with_capacity(targets.len());
    for (url, user) in targets {
        let (sem, stats, hs) = (sem.clone(), stats.clone(), hs.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await.ok()?;
            let start = now_us();
            match connect(&url, &user, stats.clone(), within).await {
                Ok((h, _task)) => {
                    let _ = hs.lock().unwrap().record((now_us() - start).max(1));
                    Some(h)
                }
                Err(e) => {
                    stats.error(format!("connect {user}: {e}"));
                    None
                }
            }
        }));
    }
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.ok().flatten());
    }
    out
}

fn close_all(stats: &Stats, handles: &[Option<Handle>]) {
    stats.closing.store(true, Relaxed);
    for h in handles.iter().flatten() {
        let _ = h.tx.send(Cmd::Close);
    }
}

// ---------------------------------------------------------------------------------------------
// Sending and measuring

struct SenderPlan {
    handle: Handle,
    id: u32,
    /// JSON fragment naming the target, e.g. `"to":"bob"` or `"group":"G1"`.
    target: String,
}

/// Runs the fixed-rate senders (open loop: the send time is the scheduled time, so queueing
/// delay counts in the latency), then waits for outstanding acks and deliveries.
/// Returns the measurement JSON.
#[allow(clippy::too_many_arguments)]
async fn measure(
    senders: Vec<SenderPlan>,
    audience: u64,
    total_rate: f64,
    duration: Duration,
    drain: Duration,
    stall_ms: u64,
    pad: usize,
    procs: &Procs,
    stats: Arc<Stats>,
) -> Value {
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

fn merge(a: &mut Value, b: Value) {
    if let (Value::Object(a), Value::Object(b)) = (a, b) {
        a.extend(b);
    }
}

fn extract_str(data: &str, key: &str) -> Option<String> {
    let pat = format!("\"{key}\":\"");
    let i = data.find(&pat)? + pat.len();
    let rest = &data[i..];
    Some(rest[..rest.find('"')?].to_string())
}

// ---------------------------------------------------------------------------------------------
// Workloads

struct Common {
    urls: Vec<String>,
    procs: Procs,
    tag: String,
    label: String,
    conn_timeout: Duration,
    concurrency: usize,
    assert: bool,
}

async fn run(args: &Args) -> Result<(Value, bool), String> {
    let urls: Vec<String> = args
        .str("urls", "ws://127.0.0.1:3000")
        .split(',')
        .map(loopback_url)
        .collect::<Result<_, _>>()?;
    let pids = args.str("pids", "");
    let redis = args.str("redis-pid", "");
    let c = Common {
        urls,
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
    };
    let stats = Stats::new();
    let hs = Arc::new(Mutex::new(hist()));
    let (mut out, ok) = match args.cmd.as_str() {
        "dm" => {
            let pairs: usize = args.get("pairs", 10)?;
            let rate: f64 = args.get("rate", 100.0)?;
            let duration = Duration::from_secs_f64(args.get("duration", 10.0)?);
            let drain = Duration::from_secs_f64(args.get("drain", 5.0)?);
            let stall_ms: u64 = args.get("stall-ms", 1000)?;
            let pad: usize = args.get("pad", 32)?;
            args.check_unused()?;
            if !(rate > 0.0 && rate <= 1e6 && pairs > 0 && pairs <= 20_000) {
                return Err("need 0 < rate <= 1e6 and 0 < pairs <= 20000".into());
            }
            let b = &c.urls[1 % c.urls.len()];
            let mut targets = Vec::new();
            for i in 0..pairs {
                targets.push((b.clone(), format!("{}r{i}", c.tag)));
            }
            for i in 0..pairs {
                targets.push((c.urls[0].clone(), format!("{}s{i}", c.tag)));
            }
            let handles =
                connect_all(targets, c.concurrency, stats.clone(), hs, c.conn_timeout).await;
            let failed = handles.iter().filter(|h| h.is_none()).count();
            if failed > 0 {
                return Err(format!(
                    "{failed} connections failed: {:?}",
                    stats.err_sample.lock().unwrap()
                ));
            }
            let senders = (0..pairs)
                .map(|i| SenderPlan {
                    handle: handles[pairs + i].clone().expect("checked"),
                    id: i as u32,
                    target: format!("\"to\":\"{}r{i}\"", c.tag),
                })
                .collect();
            let mut v = measure(
                senders,
                1,
                rate,
                duration,
                drain,
                stall_ms,
                pad,
                &c.procs,
                stats.clone(),
            )
            .await;
            merge(
                &mut v,
                json!({"workload": "dm", "pairs": pairs, "rate": rate, "duration_s": duration.as_secs_f64()}),
            );
            close_all(&stats, &handles);
            let ok = v["lost"] == 0
                && v["dup"] == 0
                && v["delivered"].as_u64() > Some(0)
                && v["ack_err"] == 0;
            (v, ok)
        }
        "fanout" => {
            let groups: usize = args.get("groups", 2)?;
            let size: usize = args.get("size", 100)?;
            let rate: f64 = args.get("rate", 20.0)?;
            let duration = Duration::from_secs_f64(args.get("duration", 10.0)?);
            let drain = Duration::from_secs_f64(args.get("drain", 5.0)?);
            let stall_ms: u64 = args.get("stall-ms", 1000)?;
            let pad: usize = args.get("pad", 32)?;
            let settle = Duration::from_millis(args.get("settle-ms", 1000)?);
            args.check_unused()?;
            if !(rate > 0.0 && rate <= 1e6 && groups > 0 && size >= 2 && groups * size <= 20_000) {
                return Err("need rate > 0, groups > 0, size >= 2, groups*size <= 20000".into());
            }
            let mut targets = Vec::new();
            for g in 0..groups {
                for j in 0..size {
                    targets.push((
                        c.urls[j % c.urls.len()].clone(),
                        format!("{}g{g}m{j}", c.tag),
                    ));
                }
            }
            let handles =
                connect_all(targets, c.concurrency, stats.clone(), hs, c.conn_timeout).await;
            let failed = handles.iter().filter(|h| h.is_none()).count();
            if failed > 0 {
                return Err(format!(
                    "{failed} connections failed: {:?}",
                    stats.err_sample.lock().unwrap()
                ));
            }
            let h = |g: usize, j: usize| handles[g * size + j].clone().expect("checked");
            let mut senders = Vec::new();
            let req = Duration::from_secs(30);
            for g in 0..groups {
                let reply = h(g, 0)
                    .request(format!("[\"group:create\",{{\"name\":\"bench{g}\"}}]"), req)
                    .await?;
                let id = extract_str(&reply, "id")
                    .filter(|_| reply.contains("\"ok\":true"))
                    .ok_or_else(|| format!("group:create: {reply:.200}"))?;
                // Joins, a few at a time per group (bounded: `size` requests).
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
            let mut v = measure(
                senders,
                size as u64 - 1,
                rate,
                duration,
                drain,
                stall_ms,
                pad,
                &c.procs,
                stats.clone(),
            )
            .await;
            merge(
                &mut v,
                json!({"workload": "fanout", "groups": groups, "size": size, "rate": rate,
                       "duration_s": duration.as_secs_f64()}),
            );
            close_all(&stats, &handles);
            let ok = v["lost"] == 0
                && v["dup"] == 0
                && v["delivered"].as_u64() > Some(0)
                && v["ack_err"] == 0;
            (v, ok)
        }
        "connect" | "idle" => {
            let conns: usize = args.get("conns", 1000)?;
            let hold = Duration::from_secs_f64(if args.cmd == "idle" {
                args.get("hold", 5.0)?
            } else {
                0.0
            });
            args.check_unused()?;
            if conns == 0 || conns > 20_000 {
                return Err("need 0 < conns <= 20000".into());
            }
            let targets = (0..conns)
                .map(|i| (c.urls[i % c.urls.len()].clone(), format!("{}c{i}", c.tag)))
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
            });
            if args.cmd == "connect" {
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
            close_all(&stats, &handles);
            let ok = failed == 0 && stats.disconnects.load(Relaxed) == 0;
            (v, ok)
        }
        other => return Err(format!("unknown command {other}; {}", usage())),
    };
    merge(
        &mut out,
        json!({"label": c.label, "error_sample": *stats.err_sample.lock().unwrap()}),
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
