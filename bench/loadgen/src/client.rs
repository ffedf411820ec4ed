//! One client connection, whatever its transport: the handle workloads use, connecting many at
//! once, closing them all.

use std::{
    io,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    str::FromStr,
    sync::{Arc, Mutex, atomic::Ordering::Relaxed},
    time::Duration,
};

use hdrhistogram::Histogram;
use tokio::{
    net::{TcpSocket, TcpStream},
    sync::{Semaphore, mpsc, oneshot},
    task::JoinHandle,
    time::timeout,
};

use crate::{
    args::Endpoint,
    metrics::{Stats, now_us},
    polling, proto,
    proto::{AckKind, Cmd},
    ws,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// Engine.IO over WebSocket (no polling first).
    Ws,
    /// Engine.IO HTTP long-polling, never upgraded.
    Polling,
}

impl FromStr for Transport {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ws" | "websocket" => Ok(Self::Ws),
            "polling" => Ok(Self::Polling),
            _ => Err(format!("unknown transport {s} (ws | polling)")),
        }
    }
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Self::Ws => "websocket",
            Self::Polling => "polling",
        }
    }

    /// File descriptors one client of this transport holds.
    pub fn fds(self) -> usize {
        match self {
            Self::Ws => 1,
            // One connection with the long poll always outstanding, one for POSTs.
            Self::Polling => 2,
        }
    }
}

/// Where and as whom one client connects.
pub struct Target {
    pub ep: Arc<Endpoint>,
    pub user: String,
    pub transport: Transport,
    /// Local address to bind before connecting (spreads ephemeral ports); None: the kernel's.
    pub source: Option<IpAddr>,
}

/// Source addresses 127.0.0.1 ..= 127.0.0.n, round-robin: each has its own ephemeral port range
/// towards one server port, so more than ~28k connections to one server become possible.
#[derive(Clone, Copy)]
pub struct Sources(pub u8);

impl Sources {
    pub fn pick(self, i: usize, ep: &Endpoint) -> Option<IpAddr> {
        if self.0 <= 1 || !ep.addr.is_ipv4() {
            return None;
        }
        Some(IpAddr::V4(Ipv4Addr::new(
            127,
            0,
            0,
            1 + (i % self.0 as usize) as u8,
        )))
    }
}

/// Connects a TCP socket (Nagle off), bound to `source` first when given. The port is chosen
/// at connect time (`IP_BIND_ADDRESS_NO_PORT`), so the bind does not use up ports.
pub async fn tcp_connect(addr: SocketAddr, source: Option<IpAddr>) -> io::Result<TcpStream> {
    let stream = match source {
        None => TcpStream::connect(addr).await?,
        Some(src) => {
            let sock = if addr.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            bind_address_no_port(&sock);
            sock.bind(SocketAddr::new(src, 0))?;
            sock.connect(addr).await?
        }
    };
    stream.set_nodelay(true)?;
    Ok(stream)
}

fn bind_address_no_port(sock: &TcpSocket) {
    use std::os::fd::AsRawFd;
    let one: libc::c_int = 1;
    // SAFETY: a plain setsockopt on a socket we own, with a pointer to a live c_int and its size.
    // Best effort: without it the bind picks the port (fine below ~28k sockets per address).
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

#[derive(Clone)]
pub struct Handle {
    pub tx: mpsc::UnboundedSender<Cmd>,
}

impl Handle {
    pub async fn request(&self, array: String, within: Duration) -> Result<String, String> {
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

/// Connects, authenticates as `t.user` and waits for `ready`. Returns the handle and the task.
pub async fn connect(
    t: &Target,
    stats: Arc<Stats>,
    within: Duration,
) -> Result<(Handle, JoinHandle<()>), String> {
    let (tx, rx) = mpsc::unbounded_channel();
    let session = proto::Session::new(stats.clone());
    let task = match t.transport {
        Transport::Ws => {
            let ws = timeout(within, ws::handshake(&t.ep, &t.user, t.source))
                .await
                .map_err(|_| "handshake timed out".to_string())??;
            tokio::spawn(ws::run(ws, rx, session, stats))
        }
        Transport::Polling => {
            let p = timeout(within, polling::handshake(&t.ep, &t.user, t.source))
                .await
                .map_err(|_| "handshake timed out".to_string())??;
            tokio::spawn(polling::run(p, rx, session, stats))
        }
    };
    Ok((Handle { tx }, task))
}

/// Connects every target with at most `concurrency` handshakes in flight. Records each
/// handshake's latency in `hs`. Returns the handles (None for failures), in target order.
pub async fn connect_all(
    targets: Vec<Target>,
    concurrency: usize,
    stats: Arc<Stats>,
    hs: Arc<Mutex<Histogram<u64>>>,
    within: Duration,
) -> Vec<Option<Handle>> {
    let sem = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = Vec::with_capacity(targets.len());
    for t in targets {
        let (sem, stats, hs) = (sem.clone(), stats.clone(), hs.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await.ok()?;
            let start = now_us();
            match connect(&t, stats.clone(), within).await {
                Ok((h, _task)) => {
                    let _ = hs.lock().unwrap().record((now_us() - start).max(1));
                    Some(h)
                }
                Err(e) => {
                    stats.error(format!("connect {} ({}): {e}", t.user, t.transport.name()));
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

/// Counts a disconnect the client did not ask for.
pub fn lost_connection(stats: &Stats, why: &str) {
    if !stats.closing.load(Relaxed) {
        stats.disconnects.fetch_add(1, Relaxed);
        stats.error(format!("unexpected disconnect: {why}"));
    }
}

/// Raises the soft open-file limit to the hard one and checks that `needed` descriptors fit.
pub fn ensure_fds(needed: usize) -> Result<(), String> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a pointer to a live rlimit struct.
    let soft = unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Ok(());
        }
        if lim.rlim_cur < lim.rlim_max {
            let want = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
        lim.rlim_cur
    };
    // Room for stdio, the runtime's epoll and eventfd, /proc reads.
    let needed = needed as u64 + 32;
    if soft != libc::RLIM_INFINITY && needed > soft {
        return Err(format!(
            "needs about {needed} file descriptors, the limit is {soft} (ulimit -n)"
        ));
    }
    Ok(())
}
