//! Shared counters, latency histograms, /proc sampling (CPU, RSS) and JSON helpers.

use std::{
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicBool, AtomicU64, Ordering::Relaxed},
    },
    time::Instant,
};

use hdrhistogram::Histogram;
use serde_json::{Value, json};

static T0: OnceLock<Instant> = OnceLock::new();

/// The process's time origin (shared by senders and receivers).
pub fn t0() -> Instant {
    *T0.get_or_init(Instant::now)
}

/// Microseconds since the process's time origin.
pub fn now_us() -> u64 {
    t0().elapsed().as_micros() as u64
}

pub fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("histogram bounds")
}

pub struct Stats {
    pub sent: AtomicU64,
    pub acks_ok: AtomicU64,
    pub acks_err: AtomicU64,
    pub delivered: AtomicU64,
    pub dups: AtomicU64,
    pub unparsed: AtomicU64,
    /// Events other than `message` (e.g. `group:member`, `receipt`): used to wait for quiet.
    pub other_events: AtomicU64,
    pub disconnects: AtomicU64,
    pub closing: AtomicBool,
    pub lat: Mutex<Histogram<u64>>,
    pub ack_lat: Mutex<Histogram<u64>>,
    pub err_sample: Mutex<Option<String>>,
}

impl Stats {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            sent: AtomicU64::new(0),
            acks_ok: AtomicU64::new(0),
            acks_err: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            dups: AtomicU64::new(0),
            unparsed: AtomicU64::new(0),
            other_events: AtomicU64::new(0),
            disconnects: AtomicU64::new(0),
            closing: AtomicBool::new(false),
            lat: Mutex::new(hist()),
            ack_lat: Mutex::new(hist()),
            err_sample: Mutex::new(None),
        })
    }

    pub fn error(&self, e: impl Into<String>) {
        let mut s = self.err_sample.lock().unwrap();
        if s.is_none() {
            *s = Some(e.into());
        }
    }

    pub fn error_sample(&self) -> Option<String> {
        self.err_sample.lock().unwrap().clone()
    }

    /// Zeroes the message counters and histograms (between the steps of a rate search).
    pub fn reset_messages(&self) {
        for c in [
            &self.sent,
            &self.acks_ok,
            &self.acks_err,
            &self.delivered,
            &self.dups,
            &self.unparsed,
        ] {
            c.store(0, Relaxed);
        }
        self.lat.lock().unwrap().reset();
        self.ack_lat.lock().unwrap().reset();
    }
}

pub fn hist_json(h: &Histogram<u64>) -> Value {
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

pub struct Procs {
    pub servers: Vec<String>,
    pub redis: Option<String>,
}

#[derive(Clone)]
pub struct ProcSample {
    pub servers_cpu: Vec<f64>,
    pub redis_cpu: f64,
    pub self_cpu: f64,
    pub servers_rss: Vec<u64>,
    pub redis_rss: u64,
}

impl Procs {
    pub fn sample(&self) -> ProcSample {
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

pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Server CPU seconds between two samples, and the CPU/RSS fields of the output.
pub fn cpu_json(a: &ProcSample, b: &ProcSample) -> (f64, Value) {
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

pub fn merge(a: &mut Value, b: Value) {
    if let (Value::Object(a), Value::Object(b)) = (a, b) {
        a.extend(b);
    }
}
