//! The HTTP long-polling transport: Engine.IO v4 over plain HTTP/1.1 keep-alive, never upgraded.
//!
//! `GET /socket.io/?EIO=4&transport=polling` answers the open packet (with the session id);
//! from then on exactly one `GET …&sid=…` is always outstanding (the server answers it when it
//! has packets, or with a ping after `pingInterval`), and packets to the server go in `POST`
//! bodies, one POST at a time per session (Engine.IO refuses overlapping ones). Packets in one
//! body are separated by `\x1e`. Each client holds two connections: one for its long poll, one
//! for its POSTs (reopened when it was idle long enough for the server to have closed it).
//!
//! The HTTP client is minimal on purpose (the servers must stay the bottleneck): one request
//! at a time per connection, responses framed by `Content-Length` or chunked encoding.

use std::{
    future::Future,
    net::{IpAddr, SocketAddr},
    pin::Pin,
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::mpsc,
    time::timeout,
};

use crate::{
    args::Endpoint,
    client::{lost_connection, tcp_connect},
    metrics::Stats,
    proto::{Cmd, Handshake, HandshakeState, SEP, Session, connect_packet, extract_str},
};

/// A long poll is answered within the server's ping interval (25 s by default).
const POLL_TIMEOUT: Duration = Duration::from_secs(90);
const POST_TIMEOUT: Duration = Duration::from_secs(30);
/// Node's HTTP server closes keep-alive connections idle for 5 s: reopen before that.
const KEEP_ALIVE_IDLE: Duration = Duration::from_secs(4);
const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 16 << 20;

// ---------------------------------------------------------------------------------------------
// A minimal HTTP/1.1 client connection

enum HttpErr {
    /// The connection was closed before any byte of the response: the request can be retried
    /// on a new connection (a server closing an idle keep-alive connection).
    ClosedBeforeResponse,
    Other(String),
}

impl HttpErr {
    fn text(self) -> String {
        match self {
            Self::ClosedBeforeResponse => "connection closed before the response".into(),
            Self::Other(s) => s,
        }
    }
}

struct HttpConn {
    stream: TcpStream,
    buf: Vec<u8>,
    last_used: Instant,
    reusable: bool,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

impl HttpConn {
    async fn open(addr: SocketAddr, source: Option<IpAddr>) -> Result<Self, String> {
        let stream = tcp_connect(addr, source)
            .await
            .map_err(|e| format!("polling: tcp: {e}"))?;
        Ok(Self {
            stream,
            buf: Vec::new(),
            last_used: Instant::now(),
            reusable: true,
        })
    }

    /// Reads more bytes into `buf`; 0 at the end of the stream.
    async fn fill(&mut self) -> Result<usize, String> {
        if self.buf.capacity() - self.buf.len() < 1024 {
            self.buf.reserve(4096);
        }
        self.stream
            .read_buf(&mut self.buf)
            .await
            .map_err(|e| e.to_string())
    }

    /// Sends one request and returns the body of a 200 response.
    async fn roundtrip(&mut self, req: &[u8]) -> Result<String, HttpErr> {
        self.last_used = Instant::now();
        self.buf.clear();
        if let Err(e) = self.stream.write_all(req).await {
            self.reusable = false;
            return Err(
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
                ) {
                    HttpErr::ClosedBeforeResponse
                } else {
                    HttpErr::Other(e.to_string())
                },
            );
        }
        let r = self.read_response().await;
        self.last_used = Instant::now();
        if r.is_err() {
            self.reusable = false;
        }
        // Keep idle connections small.
        if self.buf.capacity() > 64 * 1024 {
            self.buf = Vec::new();
        }
        r
    }

    async fn read_response(&mut self) -> Result<String, HttpErr> {
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            if self.buf.len() > MAX_HEAD {
                return Err(HttpErr::Other("response head too large".into()));
            }
            match self.fill().await {
                Ok(0) if self.buf.is_empty() => return Err(HttpErr::ClosedBeforeResponse),
                Ok(0) => return Err(HttpErr::Other("connection closed mid-response".into())),
                Ok(_) => {}
                Err(e) if self.buf.is_empty() => {
                    return Err(if e.contains("reset") {
                        HttpErr::ClosedBeforeResponse
                    } else {
                        HttpErr::Other(e)
                    });
                }
                Err(e) => return Err(HttpErr::Other(e)),
            }
        };
        let head = std::str::from_utf8(&self.buf[..head_end])
            .map_err(|_| HttpErr::Other("response head is not UTF-8".into()))?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or("");
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| HttpErr::Other(format!("bad status line {status_line:.80}")))?;
        let mut length = None;
        let mut chunked = false;
        for l in lines {
            let Some((k, v)) = l.split_once(':') else {
                continue;
            };
            let v = v.trim();
            if k.eq_ignore_ascii_case("content-length") {
                length = v.parse::<usize>().ok();
            } else if k.eq_ignore_ascii_case("transfer-encoding") {
                chunked = v.to_ascii_lowercase().contains("chunked");
            } else if k.eq_ignore_ascii_case("connection") && v.eq_ignore_ascii_case("close") {
                self.reusable = false;
            }
        }
        let body = if chunked {
            self.read_chunked(head_end).await?
        } else if let Some(n) = length {
            if n > MAX_BODY {
                return Err(HttpErr::Other("response body too large".into()));
            }
            while self.buf.len() < head_end + n {
                if self.fill().await.map_err(HttpErr::Other)? == 0 {
                    return Err(HttpErr::Other("connection closed mid-body".into()));
                }
            }
            self.buf[head_end..head_end + n].to_vec()
        } else {
            // Delimited by the end of the connection.
            self.reusable = false;
            while self.fill().await.map_err(HttpErr::Other)? > 0 {
                if self.buf.len() > MAX_BODY {
                    return Err(HttpErr::Other("response body too large".into()));
                }
            }
            self.buf[head_end..].to_vec()
        };
        let body = String::from_utf8(body)
            .map_err(|_| HttpErr::Other("response body is not UTF-8".into()))?;
        if status != 200 {
            return Err(HttpErr::Other(format!("HTTP {status}: {body:.200}")));
        }
        Ok(body)
    }

    async fn read_chunked(&mut self, mut pos: usize) -> Result<Vec<u8>, HttpErr> {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(i) = find(&self.buf[pos..], b"\r\n") {
                    break pos + i;
                }
                if self.fill().await.map_err(HttpErr::Other)? == 0 {
                    return Err(HttpErr::Other("connection closed mid-chunk".into()));
                }
            };
            let size_text = std::str::from_utf8(&self.buf[pos..line_end]).unwrap_or("");
            let size_text = size_text.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_text, 16)
                .map_err(|_| HttpErr::Other(format!("bad chunk size {size_text:.20}")))?;
            pos = line_end + 2;
            if size == 0 {
                // No trailers expected: the final CRLF.
                while self.buf.len() < pos + 2 {
                    if self.fill().await.map_err(HttpErr::Other)? == 0 {
                        break;
                    }
                }
                return Ok(body);
            }
            if body.len() + size > MAX_BODY {
                return Err(HttpErr::Other("response body too large".into()));
            }
            while self.buf.len() < pos + size + 2 {
                if self.fill().await.map_err(HttpErr::Other)? == 0 {
                    return Err(HttpErr::Other("connection closed mid-chunk".into()));
                }
            }
            body.extend_from_slice(&self.buf[pos..pos + size]);
            pos += size + 2;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The Engine.IO polling session

/// What every request of one session needs.
struct Route {
    addr: SocketAddr,
    source: Option<IpAddr>,
    host: String,
    /// `/socket.io/?EIO=4&transport=polling&sid=…`
    path: String,
    /// The long-poll request, ready to write.
    get: Vec<u8>,
}

impl Route {
    fn post(&self, body: &str) -> Vec<u8> {
        format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: text/plain;charset=UTF-8\r\nContent-Length: {}\r\n\r\n{}",
            self.path,
            self.host,
            body.len(),
            body
        )
        .into_bytes()
    }
}

fn get_request(path: &str, host: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: */*\r\n\r\n").into_bytes()
}

/// A polling session after the Socket.IO handshake.
pub struct Polling {
    route: Arc<Route>,
    get: HttpConn,
    post: Option<HttpConn>,
    /// Packets that came in the same response as `ready`.
    leftover: Vec<String>,
}

type Exchange = (Option<HttpConn>, Result<String, String>);
type ExchangeFut = Pin<Box<dyn Future<Output = Exchange> + Send>>;

async fn long_poll(mut conn: HttpConn, route: Arc<Route>) -> Exchange {
    let r = match timeout(POLL_TIMEOUT, conn.roundtrip(&route.get)).await {
        Ok(r) => r.map_err(HttpErr::text),
        Err(_) => Err("long poll timed out".into()),
    };
    (Some(conn), r)
}

/// POSTs `body` on `conn` (or a new connection when there is none or it sat idle too long);
/// retries once on a new connection when the old one turns out to be closed.
async fn post(conn: Option<HttpConn>, route: Arc<Route>, body: String) -> Exchange {
    let req = route.post(&body);
    let fut = async {
        let mut conn = match conn {
            Some(c) if c.reusable && c.last_used.elapsed() < KEEP_ALIVE_IDLE => Some(c),
            _ => None,
        };
        for _ in 0..2 {
            let reused = conn.is_some();
            let mut c = match conn.take() {
                Some(c) => c,
                None => match HttpConn::open(route.addr, route.source).await {
                    Ok(c) => c,
                    Err(e) => return (None, Err(e)),
                },
            };
            match c.roundtrip(&req).await {
                Ok(b) => return (Some(c), Ok(b)),
                Err(HttpErr::ClosedBeforeResponse) if reused => continue,
                Err(e) => return (None, Err(e.text())),
            }
        }
        (None, Err("POST failed twice".into()))
    };
    timeout(POST_TIMEOUT, fut)
        .await
        .unwrap_or_else(|_| (None, Err("POST timed out".into())))
}

async fn pending_exchange(f: &mut Option<ExchangeFut>) -> Exchange {
    match f {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

/// Opens the session, authenticates as `user` and waits for `ready` (the caller bounds it in
/// time).
pub async fn handshake(
    ep: &Endpoint,
    user: &str,
    source: Option<IpAddr>,
) -> Result<Polling, String> {
    let mut get = HttpConn::open(ep.addr, source).await?;
    let open = get
        .roundtrip(&get_request(
            "/socket.io/?EIO=4&transport=polling",
            &ep.host,
        ))
        .await
        .map_err(|e| format!("polling open: {}", e.text()))?;
    if !open.starts_with('0') {
        return Err(format!("expected an open packet, got {open:.80}"));
    }
    let sid = extract_str(&open, "sid").ok_or_else(|| format!("no sid in {open:.80}"))?;
    let path = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
    let route = Arc::new(Route {
        addr: ep.addr,
        source,
        host: ep.host.clone(),
        get: get_request(&path, &ep.host),
        path,
    });
    let (mut post_conn, r) = post(None, route.clone(), connect_packet(user)).await;
    match r {
        Ok(b) if b == "ok" => {}
        Ok(b) => return Err(format!("polling connect: {b:.100}")),
        Err(e) => return Err(format!("polling connect: {e}")),
    }
    let mut hs = HandshakeState::default();
    let mut out = Vec::new();
    // Bounded by the caller's timeout, and in count.
    for _ in 0..1000 {
        let body = get
            .roundtrip(&route.get)
            .await
            .map_err(|e| format!("polling: {}", e.text()))?;
        if body.is_empty() {
            return Err("polling: session closed during the handshake".into());
        }
        let mut packets = body.split(SEP);
        let mut ready = false;
        for p in packets.by_ref() {
            if let Handshake::Ready = hs.on_packet(p, &mut out)? {
                ready = true;
                break;
            }
        }
        if !out.is_empty() {
            let (c, r) = post(post_conn.take(), route.clone(), out.join("\x1e")).await;
            out.clear();
            r.map_err(|e| format!("polling: pong: {e}"))?;
            post_conn = c;
        }
        if ready {
            return Ok(Polling {
                route,
                get,
                post: post_conn,
                leftover: packets.map(String::from).collect(),
            });
        }
    }
    Err("no ready event".into())
}

pub async fn run(
    p: Polling,
    mut rx: mpsc::UnboundedReceiver<Cmd>,
    mut session: Session,
    stats: Arc<Stats>,
) {
    let Polling {
        route,
        get,
        post: post_conn,
        leftover,
    } = p;
    let mut out: Vec<String> = Vec::new();
    for pkt in &leftover {
        if !session.incoming(pkt, &mut out) {
            lost_connection(&stats, "closed by the server");
            return;
        }
    }
    let mut get_fut: ExchangeFut = Box::pin(long_poll(get, route.clone()));
    let mut idle_post = post_conn;
    let mut post_fut: Option<ExchangeFut> = None;
    let mut closing = false;
    let why = loop {
        // One POST at a time: whatever queued up meanwhile goes in the next one.
        if post_fut.is_none() && !out.is_empty() {
            let body = out.join("\x1e");
            out.clear();
            post_fut = Some(Box::pin(post(idle_post.take(), route.clone(), body)));
        }
        if closing && out.is_empty() {
            // The close packet is in the POST in flight: give it a moment, then go.
            if let Some(f) = post_fut.take() {
                let _ = timeout(Duration::from_secs(1), f).await;
            }
            return;
        }
        tokio::select! {
            (conn, res) = &mut get_fut => match (conn, res) {
                (Some(conn), Ok(body)) => {
                    if body.is_empty() {
                        break "empty long-poll answer (session closed)";
                    }
                    let mut open = true;
                    for pkt in body.split(SEP) {
                        if !session.incoming(pkt, &mut out) {
                            open = false;
                            break;
                        }
                    }
                    if !open {
                        break "closed by the server";
                    }
                    get_fut = Box::pin(long_poll(conn, route.clone()));
                }
                (_, Err(e)) => {
                    if !closing {
                        stats.error(format!("long poll: {e}"));
                    }
                    break "long poll failed";
                }
                (None, Ok(_)) => break "long poll lost its connection",
            },
            (conn, res) = pending_exchange(&mut post_fut) => {
                post_fut = None;
                match res {
                    Ok(b) if b == "ok" => idle_post = conn.filter(|c| c.reusable),
                    Ok(b) => {
                        stats.error(format!("POST answered {b:.100}"));
                        break "POST refused";
                    }
                    Err(e) => {
                        stats.error(format!("POST: {e}"));
                        break "POST failed";
                    }
                }
            }
            cmd = rx.recv(), if !closing => match cmd {
                Some(Cmd::Emit { array, ack }) => out.push(session.emit(array, ack)),
                Some(Cmd::Close) | None => {
                    closing = true;
                    out.push("1".into());
                }
            },
        }
    };
    if !closing {
        lost_connection(&stats, why);
    }
}

/// A polling session that stopped polling: its connections, held open, never used again.
pub struct Silent {
    _get: HttpConn,
    _post: Option<HttpConn>,
}

impl Polling {
    /// POSTs `frame` (a request `42<id>[…]`) and long-polls until its ack (`43<id>…`),
    /// answering pings; then sends no `GET` again (a client that stops reading).
    pub async fn send_until_ack(self, frame: String) -> Result<Silent, String> {
        let Polling {
            route,
            mut get,
            post: post_conn,
            leftover,
        } = self;
        let id: String = frame[2..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        let ack = format!("43{id}");
        let (mut post_conn, r) = post(post_conn, route.clone(), frame).await;
        r?;
        let mut packets = leftover;
        // Bounded by the caller's timeout, and in count.
        for _ in 0..1000 {
            if packets.iter().any(|p| p.starts_with(&ack)) {
                return Ok(Silent {
                    _get: get,
                    _post: post_conn,
                });
            }
            if packets.iter().any(|p| p == "2") {
                let (c, r) = post(post_conn.take(), route.clone(), "3".into()).await;
                r?;
                post_conn = c;
            }
            let body = get.roundtrip(&route.get).await.map_err(HttpErr::text)?;
            if body.is_empty() {
                return Err("polling: session closed".into());
            }
            packets = body.split(SEP).map(String::from).collect();
        }
        Err("no ack".into())
    }
}
