//! The ws transport module is responsible for handling websocket connections
//! The only public function is [`new_req`] which is used to upgrade a http request to a websocket connection
//!
//! Other functions are used internally to handle the websocket connection through tasks and channels
//! and to handle upgrade from polling to ws

use std::{
    future::{Future, poll_fn},
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use futures_util::{SinkExt, StreamExt, pin_mut};
use http::{HeaderValue, Request, Response, StatusCode, request::Parts};
use smallvec::smallvec;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    sync::{MutexGuard, mpsc::error::TrySendError},
    time::{Instant, Sleep},
};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{
        self, Message,
        handshake::derive_accept_key,
        protocol::{Role, WebSocketConfig},
    },
};

use engineioxide_core::{Packet, ProtocolVersion, Sid, Str, TransportType};

use crate::{
    DisconnectReason, Socket,
    body::ResponseBody,
    config::EngineIoConfig,
    engine::EngineIo,
    errors::Error,
    handler::EngineIoHandler,
    outbox::{self, Outbox},
    socket::{InternalRx, QueuedPackets},
    transport::make_open_packet,
};

/// Create a response for websocket upgrade
fn ws_response<B>(ws_key: &HeaderValue) -> Response<ResponseBody<B>> {
    let derived = derive_accept_key(ws_key.as_bytes());
    let sec = derived.parse::<HeaderValue>().unwrap();
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(http::header::UPGRADE, HeaderValue::from_static("websocket"))
        .header(
            http::header::CONNECTION,
            HeaderValue::from_static("Upgrade"),
        )
        .header(http::header::SEC_WEBSOCKET_ACCEPT, sec)
        .body(ResponseBody::empty_response())
        .unwrap() // we are only using constants
}

/// Upgrade a websocket request to create a websocket connection.
///
/// If a sid is provided in the query it means that is is upgraded from an existing HTTP polling request.
/// In this case the http polling request is closed and the SID is kept for the websocket
pub fn new_req<R: Send + 'static, B, H: EngineIoHandler>(
    engine: Arc<EngineIo<H>>,
    protocol: ProtocolVersion,
    sid: Option<Sid>,
    req: Request<R>,
) -> Result<Response<ResponseBody<B>>, Error> {
    let (mut parts, body) = req.into_parts();
    let req = Request::from_parts(parts.clone(), body);
    // The session keeps the head without the upgrade handle: the request above upgrades, and
    // the handle is of no use after that. Without it an empty extension map is not kept
    // either (128 bytes per session).
    parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
    if parts.extensions.is_empty() {
        parts.extensions = http::Extensions::new();
    }

    // Taken out of the head the session keeps: the key is the handshake's nonce, of no use
    // after it, and a head left without headers keeps no header map (about 200 bytes).
    let ws_key = parts
        .headers
        .remove(http::header::SEC_WEBSOCKET_KEY)
        .ok_or(Error::InvalidWebSocketKey)?;
    if parts.headers.is_empty() {
        parts.headers = http::HeaderMap::new();
    }

    // The request, its head and the handshake live in this box until the session is open:
    // the task that then reads the websocket for as long as it lives keeps none of them.
    let engine_ = engine.clone();
    let opening = Box::pin(async move {
        match hyper::upgrade::on(req).await {
            Ok(conn) => {
                let conn = hyper_util::rt::TokioIo::new(conn);
                Some(open(engine_, conn, protocol, sid, parts).await)
            }
            Err(_e) => {
                #[cfg(feature = "tracing")]
                tracing::debug!("ws upgrade error: {}", _e);
                None
            }
        }
    });

    tokio::spawn(async move {
        // Moved out of the capture so that the box is freed before the session runs.
        let opened = { opening }.await;
        let res = match opened {
            None => return,
            Some(Ok(session)) => {
                session.run().await;
                Ok(())
            }
            Some(Err(e)) => Err(e),
        };

        match res {
            Ok(_) => {
                #[cfg(feature = "tracing")]
                tracing::debug!(?sid, "ws closed")
            }
            Err(Error::MultipleWebsocketRequests) => {}
            Err(_e) => {
                #[cfg(feature = "tracing")]
                tracing::debug!(?sid, "ws closed with error: {_e}");
                if let Some(sid) = sid {
                    engine.close_session(sid, DisconnectReason::TransportError);
                }
            }
        }
    });

    Ok(ws_response(&ws_key))
}

/// Handle a websocket connection upgrade
///
/// Sends an open packet if it is not an upgrade from a polling request
///
/// Read packets from the websocket and handle them, it will block until the connection is closed
pub fn on_init<H: EngineIoHandler, S>(
    engine: Arc<EngineIo<H>>,
    conn: S,
    protocol: ProtocolVersion,
    sid: Option<Sid>,
    req_data: Parts,
) -> impl Future<Output = Result<(), Error>> + Send + 'static
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Boxed so that the handshake's state is freed once the session is open (see `new_req`).
    let opening = Box::pin(open(engine, conn, protocol, sid, req_data));
    async move {
        // Moved out of the capture so that the box is freed before the session runs.
        let session = { opening }.await?;
        session.run().await;
        Ok(())
    }
}

/// An open websocket session: the socket and its websocket.
struct WsSession<H: EngineIoHandler, S> {
    engine: Arc<EngineIo<H>>,
    socket: Arc<Socket<H::Data>>,
    ws: WebSocketStream<S>,
    /// The session started on this websocket: its task runs the heartbeat too. An upgraded
    /// polling session keeps the heartbeat task it started with.
    heartbeat: bool,
}

/// Opens a websocket session: a new one with its open packet, or the upgrade of a polling
/// session.
#[cfg_attr(
    feature = "tracing",
    tracing::instrument(level = "trace", name = "init_websocket", skip(engine, conn, req_data))
)]
async fn open<H: EngineIoHandler, S>(
    engine: Arc<EngineIo<H>>,
    conn: S,
    protocol: ProtocolVersion,
    sid: Option<Sid>,
    req_data: Parts,
) -> Result<Box<WsSession<H, S>>, Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(engine.config.ws_read_buffer_size)
        .max_message_size(Some(engine.config.ws_max_message_size))
        .max_frame_size(Some(engine.config.ws_max_frame_size));

    let ws_init = move || WebSocketStream::from_raw_socket(conn, Role::Server, Some(ws_config));
    let (socket, ws, heartbeat) = if let Some(sid) = sid {
        match engine.get_socket(sid) {
            None => return Err(Error::UnknownSessionID(sid)),
            Some(socket) if socket.is_ws() => return Err(Error::MultipleWebsocketRequests),
            Some(socket) => {
                let mut ws = ws_init().await;

                let upgrade_fut = upgrade_handshake::<H, S>(&socket, &mut ws);
                let upgrade_fut = tokio::time::timeout(engine.config.upgrade_timeout, upgrade_fut);
                match socket
                    .cancellation_token
                    .run_until_cancelled(upgrade_fut)
                    .await
                {
                    Some(Ok(res)) => res?,
                    Some(Err(_)) => {
                        #[cfg(feature = "tracing")]
                        tracing::debug!(?sid, "ws upgrade timed out, closing session");
                        engine.close_session(socket.id, DisconnectReason::TransportError);
                        return Err(Error::Upgrade);
                    }
                    None => {
                        #[cfg(feature = "tracing")]
                        tracing::debug!(?sid, "socket is being closed");
                        return Err(Error::Upgrade);
                    }
                }
                (socket, ws, false)
            }
        }
    } else {
        let socket = engine.create_session(protocol, TransportType::Websocket, req_data, false);

        #[cfg(feature = "tracing")]
        tracing::debug!("new websocket connection");

        let mut ws = ws_init().await;
        init_handshake(socket.id, &mut ws, &engine.config).await?;
        (socket, ws, true)
    };
    // Boxed: the futures that await the session would each keep a copy of its room.
    Ok(Box::new(WsSession {
        engine,
        socket,
        ws,
        heartbeat,
    }))
}

/// Why a session's loop ended.
enum End {
    /// The client closed the websocket, or sent a close packet.
    Closed,
    /// The session was closed (its cancellation token fired).
    Cancelled,
    /// The session was closed because the client fell behind its packets or missed its
    /// heartbeat.
    Unresponsive,
    /// Reading failed, or the client sent what the protocol does not allow.
    Failed(Error),
}

impl<H: EngineIoHandler, S> WsSession<H, S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    /// Runs the session until it closes. One task reads, writes and (for a session that
    /// started here) keeps the heartbeat, so an idle session is one task: a writer and a
    /// heartbeat task of their own cost about 1.4 KB per connection. Reading never waits on a
    /// write: a client that reads slowly still has its pongs and packets read.
    async fn run(mut self: Box<Self>) {
        let Self {
            engine,
            socket,
            ws,
            heartbeat,
        } = &mut *self;
        let (engine, socket) = (&*engine, &*socket);
        let mut heartbeat = heartbeat.then(|| {
            Heartbeat::new(
                socket.protocol,
                engine.config.ping_interval,
                engine.config.ping_timeout,
            )
        });
        let mut conn = Conn {
            engine,
            socket,
            ws,
            heartbeat: heartbeat.as_mut(),
        };

        let end = match conn.lock().await {
            Err(end) => end,
            Ok(mut rx) => {
                let mut session = Session {
                    current: rx.peeked_packet.take().map(in_order),
                    outbox: &socket.outbox,
                    unflushed: false,
                    handed: 0,
                    unresponsive: false,
                };
                let timer = tokio::time::sleep(Duration::ZERO);
                let cancelled = socket.cancellation_token.cancelled();
                pin_mut!(timer, cancelled);
                let end =
                    poll_fn(|cx| session.poll(cx, &mut conn, timer.as_mut(), cancelled.as_mut()))
                        .await;
                match end {
                    End::Cancelled if session.unresponsive || socket.outbox.overflowed() => {
                        End::Unresponsive
                    }
                    end => end,
                }
            }
        };

        match end {
            End::Failed(ref e) => {
                let reason =
                    Option::<DisconnectReason>::from(e).unwrap_or(DisconnectReason::TransportError);
                #[cfg(feature = "tracing")]
                tracing::debug!("error when handling packet: {:?}", e);
                engine.close_session(socket.id, reason);
            }
            End::Closed => {
                #[cfg(feature = "tracing")]
                tracing::debug!(sid = %socket.id, "ws transport was closed");
                engine.close_session(socket.id, DisconnectReason::TransportClose);
            }
            End::Cancelled => {
                #[cfg(feature = "tracing")]
                tracing::debug!(sid = %socket.id, "socket is closing");
            }
            End::Unresponsive => {
                // A client that fell behind or missed its heartbeat is not reading: waiting
                // for it to take the rest would only keep the buffers. The connection goes.
                #[cfg(feature = "tracing")]
                tracing::debug!(sid = %socket.id, "client not reading, dropping the connection");
                return;
            }
        }

        // What was written is sent, then the close handshake; bounded, as a client that no
        // longer reads would hold the task forever.
        #[cfg(feature = "tracing")]
        tracing::trace!(sid = %socket.id, "ws closing flush");
        let closing = async {
            ws.flush().await.ok();
            ws.close(None).await.ok();
        };
        tokio::time::timeout(engine.config.ping_timeout, closing)
            .await
            .ok();
    }
}

/// What both halves of a session share: the socket and its websocket.
struct Conn<'a, H: EngineIoHandler, S> {
    engine: &'a Arc<EngineIo<H>>,
    socket: &'a Arc<Socket<H::Data>>,
    ws: &'a mut WebSocketStream<S>,
    heartbeat: Option<&'a mut Heartbeat>,
}

impl<'a, H: EngineIoHandler, S> Conn<'a, H, S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    /// The socket's packet channels, once free. A polling request that was in progress during
    /// the upgrade may still hold them: frames are read meanwhile.
    async fn lock(&mut self) -> Result<MutexGuard<'a, InternalRx>, End> {
        let socket = self.socket;
        tokio::select! {
            biased;
            () = socket.cancellation_token.cancelled() => Err(End::Cancelled),
            // Cancel-safe: frames are handled as they are read, between polls.
            end = poll_fn(|cx| self.poll_read(cx)) => Err(end),
            rx = socket.internal_rx.lock() => Ok(rx),
        }
    }

    /// Reads and handles every frame that has arrived; ready when the session ends.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<End> {
        loop {
            let msg = match self.ws.poll_next_unpin(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(End::Closed),
                Poll::Ready(Some(Err(e))) => return Poll::Ready(End::Failed(e.into())),
                Poll::Ready(Some(Ok(msg))) => msg,
            };
            match self.on_frame(msg) {
                Ok(true) => {}
                Ok(false) => return Poll::Ready(End::Closed),
                Err(e) => return Poll::Ready(End::Failed(e)),
            }
        }
    }

    /// Handles one frame from the client; `false` once the client closed the session.
    fn on_frame(&mut self, msg: Message) -> Result<bool, Error> {
        let (engine, socket) = (self.engine, self.socket);
        match msg {
            Message::Text(msg) => match Packet::parse(socket.protocol, ws_bytes_to_str(msg))? {
                Packet::Close => {
                    #[cfg(feature = "tracing")]
                    tracing::debug!("[sid={}] closing session", socket.id);
                    engine.close_session(socket.id, DisconnectReason::TransportClose);
                    return Ok(false);
                }
                Packet::Pong | Packet::Ping => match self.heartbeat.as_deref_mut() {
                    Some(heartbeat) => heartbeat.received(),
                    // A second pong before the heartbeat job looks counts once: the client is alive.
                    None => socket.heartbeat_received(),
                },
                Packet::Message(msg) => engine.handler.on_message(msg, socket.clone()),
                p => return Err(Error::BadPacket(p)),
            },
            Message::Binary(mut data) => {
                if socket.protocol == ProtocolVersion::V3 && !data.is_empty() {
                    // The first byte is the message type, which we don't need.
                    data = data.split_off(1);
                }
                engine.handler.on_binary(data, socket.clone());
            }
            Message::Close(_) => {
                #[cfg(feature = "tracing")]
                tracing::debug!("websocket closed, closing session");
                engine.close_session(socket.id, DisconnectReason::TransportClose);
                return Ok(false);
            }
            _ => {
                #[cfg(feature = "tracing")]
                tracing::debug!(sid = ?socket.id, "unexpected ws message");
            }
        }
        Ok(true)
    }
}

/// The writing side of a session, once it holds the socket's packet channels.
struct Session<'a> {
    /// The packets being written, last first (popped as they are written).
    current: Option<QueuedPackets>,
    /// The socket's packets, read while the session holds `internal_rx`; volatile ones
    /// are written when no queued packet waits.
    outbox: &'a Outbox,
    /// Frames were written since the last flush.
    unflushed: bool,
    /// Bytes of the packets written since the last completed flush: they count in the
    /// outbox's bytes until then (tungstenite keeps them while the client does not read).
    handed: usize,
    /// The client missed its heartbeat: the session is closing.
    unresponsive: bool,
}

/// Packets queued together, reversed so that popping them gives them in order; they stay in
/// their box (the session's task keeps room for a pointer, not for a packet group).
fn in_order(mut packets: QueuedPackets) -> QueuedPackets {
    packets.reverse();
    packets
}

impl Session<'_> {
    /// One turn of the session: every frame that has arrived, the heartbeat, every packet
    /// queued (flushed once the queue is drained, so a burst is one write), then the end of
    /// the session. Ready when the session ends. The heartbeat's timer is polled whether or
    /// not writing is blocked: a client that stops reading still misses its deadline.
    fn poll<H: EngineIoHandler, S>(
        &mut self,
        cx: &mut Context<'_>,
        conn: &mut Conn<'_, H, S>,
        timer: Pin<&mut Sleep>,
        cancelled: Pin<&mut impl Future<Output = ()>>,
    ) -> Poll<End>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        if let Poll::Ready(end) = conn.poll_read(cx) {
            return Poll::Ready(end);
        }
        if let Some(heartbeat) = conn.heartbeat.as_deref_mut()
            && let Err(_e) = heartbeat.poll(cx, conn.socket, timer)
        {
            #[cfg(feature = "tracing")]
            tracing::debug!(id = ?conn.socket.id, "heartbeat error: {_e}");
            // Queues a close packet, written below if there is room, and closes the
            // session: the cancellation then ends it.
            self.unresponsive = true;
            conn.socket.close(DisconnectReason::HeartbeatTimeout);
        }
        let closed = self.poll_write(cx, conn);
        if self.unflushed {
            match conn.ws.poll_flush_unpin(cx) {
                Poll::Ready(Ok(())) => self.unflushed = false,
                Poll::Ready(Err(_e)) => {
                    #[cfg(feature = "tracing")]
                    tracing::debug!("[sid={}] error flushing: {}", conn.socket.id, _e);
                    self.unflushed = false;
                }
                Poll::Pending => {}
            }
        }
        if !self.unflushed && self.handed > 0 {
            // In the kernel now (or lost with the connection): no longer this socket's.
            self.outbox.release(std::mem::take(&mut self.handed));
        }
        if closed || cancelled.poll(cx).is_ready() {
            return Poll::Ready(End::Cancelled);
        }
        Poll::Pending
    }

    /// Writes queued packets while the websocket takes them; `true` once the channel is
    /// closed (the session is over).
    fn poll_write<H: EngineIoHandler, S>(
        &mut self,
        cx: &mut Context<'_>,
        conn: &mut Conn<'_, H, S>,
    ) -> bool
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        loop {
            if self.current.as_ref().is_none_or(|c| c.is_empty()) {
                self.current = match self.outbox.poll_recv(cx) {
                    Poll::Ready(Some(packets)) => Some(in_order(packets)),
                    Poll::Ready(None) => return true,
                    Poll::Pending => match self.outbox.poll_volatile(cx) {
                        Poll::Ready(packets) => {
                            #[cfg(feature = "tracing")]
                            tracing::debug!(sid = ?conn.socket.id, "ws volatile flush: {} packets", packets.len());
                            Some(in_order(packets))
                        }
                        Poll::Pending => return false,
                    },
                };
                continue;
            }
            // Room first, then the packet: a packet taken is a packet written.
            match conn.ws.poll_ready_unpin(cx) {
                Poll::Pending => return false,
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(_e)) => {
                    #[cfg(feature = "tracing")]
                    tracing::debug!("[sid={}] error sending packet: {}", conn.socket.id, _e);
                }
            }
            let Some(packet) = self.current.as_mut().and_then(|p| p.pop()) else {
                continue;
            };
            if self.current.as_ref().is_some_and(|c| c.is_empty()) {
                // An idle session keeps no empty box.
                self.current = None;
            }
            self.handed += outbox::packet_size(&packet);
            if let Some(msg) = packet_message(conn.socket.protocol, packet)
                && let Err(_e) = conn.ws.start_send_unpin(msg)
            {
                #[cfg(feature = "tracing")]
                tracing::debug!("[sid={}] error sending packet: {}", conn.socket.id, _e);
            }
            self.unflushed = true;
        }
    }
}

/// The websocket message of a packet; none for a Noop.
fn packet_message(protocol: ProtocolVersion, packet: Packet) -> Option<Message> {
    match packet {
        Packet::Binary(bin) | Packet::BinaryV3(bin) => {
            if protocol == ProtocolVersion::V3 {
                // v3 protocol requires packet type as the first byte.
                // This requires a new buffer. This is OK as it is only for the V3 protocol.
                let mut buff = Vec::with_capacity(bin.len() + 1);
                buff.push(0x04);
                buff.extend(bin);
                Some(Message::Binary(buff.into()))
            } else {
                Some(Message::Binary(bin))
            }
        }
        // A Noop Packet maybe sent by the server to upgrade from a polling connection
        // In the case that the packet was not poll in time it will remain in the buffer and therefore
        // it should be discarded here
        Packet::Noop => None,
        item => Some(Message::Text(String::from(item).into())),
    }
}

/// The heartbeat of a session that started on websocket, kept by the session's task with
/// its one timer: what [`Socket::spawn_heartbeat`](crate::Socket) runs in a task of its own,
/// with the same timings.
///
/// v4: a ping at once, then one every `interval` once the last one was answered; no pong
/// within `timeout` closes the session. v3: the client pings; no ping within `interval +
/// timeout` closes it, and each one is answered with a pong.
struct Heartbeat {
    protocol: ProtocolVersion,
    interval: Duration,
    timeout: Duration,
    /// Pongs (v4) or pings (v3) that arrived and are not handled yet: as many as the heartbeat
    /// task's `Notify` remembers, one for the ping waiting for it (if any) and one more. An
    /// early pong answers the next ping.
    received: u8,
    /// v4: a ping is waiting for its pong, and the timer is its deadline.
    waiting: bool,
    /// v4: when the next ping is due (ticks of `interval` from the first ping, which is due
    /// at once); v3: when the client's last ping arrived. `None` before the first turn.
    last: Option<Instant>,
}

impl Heartbeat {
    fn new(protocol: ProtocolVersion, interval: Duration, timeout: Duration) -> Self {
        Self {
            protocol,
            interval,
            timeout,
            received: 0,
            waiting: false,
            last: None,
        }
    }

    /// A pong (v4) or ping (v3) arrived.
    fn received(&mut self) {
        let most = if self.waiting || self.protocol == ProtocolVersion::V3 {
            2
        } else {
            1
        };
        self.received = (self.received + 1).min(most);
    }

    /// Sends the ping or pong that is due and moves the timer; `Err` when the client missed
    /// its deadline (or the packet could not be queued).
    fn poll<D: Default + Send + Sync + 'static>(
        &mut self,
        cx: &mut Context<'_>,
        socket: &Socket<D>,
        mut timer: Pin<&mut Sleep>,
    ) -> Result<(), Error> {
        // A packet that does not fit closes the socket (the client fell behind).
        let queue = |packet| socket.send(packet).map_err(|_| Error::HeartbeatTimeout);
        let deadline = |timer: Pin<&mut Sleep>, cx: &mut Context<'_>| match timer.poll(cx) {
            Poll::Ready(()) => Err(Error::HeartbeatTimeout),
            Poll::Pending => Ok(()),
        };
        if self.protocol == ProtocolVersion::V3 {
            let fresh = self.last.is_none();
            let pongs = std::mem::take(&mut self.received);
            for _ in 0..pongs {
                #[cfg(feature = "tracing")]
                tracing::trace!(sid = ?socket.id, "ping received, sending pong");
                queue(Packet::Pong)?;
            }
            if pongs > 0 || fresh {
                let now = Instant::now();
                self.last = Some(now);
                timer.as_mut().reset(now + self.interval + self.timeout);
            }
            return deadline(timer, cx);
        }
        loop {
            if self.waiting {
                if self.received == 0 {
                    return deadline(timer, cx);
                }
                self.received -= 1;
                #[cfg(feature = "tracing")]
                tracing::trace!(sid = ?socket.id, "pong received");
                self.waiting = false;
                if let Some(due) = self.last {
                    timer.as_mut().reset(due);
                }
            }
            let now = Instant::now();
            let due = *self.last.get_or_insert(now);
            if due > now && timer.as_mut().poll(cx).is_pending() {
                return Ok(());
            }
            #[cfg(feature = "tracing")]
            tracing::trace!(sid = ?socket.id, "emitting ping");
            queue(Packet::Ping)?;
            self.last = Some(due + self.interval);
            self.waiting = true;
            timer.as_mut().reset(Instant::now() + self.timeout);
        }
    }
}
/// Send a Engine.IO [`OpenPacket`] to initiate a websocket connection
async fn init_handshake<S>(
    sid: Sid,
    ws: &mut WebSocketStream<S>,
    config: &EngineIoConfig,
) -> Result<(), Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let packet = Packet::Open(make_open_packet(TransportType::Websocket, sid, config));
    let packet: String = packet.into();
    ws.send(Message::Text(packet.into())).await?;
    Ok(())
}

/// Upgrade a session from a polling request to a websocket request.
///
/// Before upgrading the session the server should send a NOOP packet to any pending polling request.
///
/// ## Handshake :
/// ```text
/// CLIENT                                                 SERVER
///│                                                      │
///│   GET /engine.io/?EIO=4&transport=websocket&sid=...  │
///│ ───────────────────────────────────────────────────► │
///│  ◄─────────────────────────────────────────────────┘ │
///│            HTTP 101 (WebSocket handshake)            │
///│                                                      │
///│            -----  WebSocket frames -----             │
///│  ─────────────────────────────────────────────────►  │
///│                         2probe                       │ (ping packet)
///│  ◄─────────────────────────────────────────────────  │
///│                         3probe                       │ (pong packet)
///│  ─────────────────────────────────────────────────►  │
///│                         5                            │ (upgrade packet)
///│                                                      │
///│            -----  WebSocket frames -----             │
/// ```
#[cfg_attr(
    feature = "tracing",
    tracing::instrument(level = "trace", skip(socket, ws))
)]
async fn upgrade_handshake<H: EngineIoHandler, S>(
    socket: &Arc<Socket<H::Data>>,
    ws: &mut WebSocketStream<S>,
) -> Result<(), Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    #[cfg(feature = "tracing")]
    tracing::debug!("starting websocket connection upgrade");

    // The socket is upgrading, from now on all polling
    // request will return a `Packet::Noop`
    socket.start_upgrade();

    // We send a last Noop request to close a potential waiting polling request. A full
    // queue needs none: a polling request returns at once with what is queued, and the next
    // ones get a Noop as the socket is upgrading.
    match socket.outbox.try_send(Box::new(smallvec![Packet::Noop])) {
        Ok(()) | Err(TrySendError::Full(_)) => {}
        Err(TrySendError::Closed(_)) => return Err(Error::Upgrade),
    }

    // wait for any current polling connection to finish by waiting for the socket to be unlocked
    // All other polling connection will be immediately closed with a NOOP packet.
    let _lock = socket.internal_rx.lock().await;

    // Fetch the next packet from the ws stream, it should be a PingUpgrade packet
    let msg = match ws.next().await {
        Some(Ok(Message::Text(d))) => d,
        _ => Err(Error::Upgrade)?,
    };
    match Packet::parse(socket.protocol, ws_bytes_to_str(msg))? {
        Packet::PingUpgrade => {
            #[cfg(feature = "tracing")]
            tracing::debug!("received first ping upgrade");
            // Respond with a PongUpgrade packet
            ws.send(Message::Text(String::from(Packet::PongUpgrade).into()))
                .await?;
        }
        p => Err(Error::BadPacket(p))?,
    };

    // Fetch the next packet from the ws stream, it should be an Upgrade packet
    let msg = match ws.next().await {
        Some(Ok(Message::Text(d))) => d,
        Some(Ok(Message::Close(_))) => {
            #[cfg(feature = "tracing")]
            tracing::debug!("ws stream closed before upgrade");
            Err(Error::Upgrade)?
        }
        _ => {
            #[cfg(feature = "tracing")]
            tracing::debug!("unexpected ws message before upgrade");
            Err(Error::Upgrade)?
        }
    };
    match Packet::parse(socket.protocol, ws_bytes_to_str(msg))? {
        Packet::Upgrade => {
            #[cfg(feature = "tracing")]
            tracing::debug!("ws upgraded successfully")
        }
        p => Err(Error::BadPacket(p))?,
    };

    socket.upgrade_to_websocket();
    Ok(())
}

fn ws_bytes_to_str(bytes: tungstenite::Utf8Bytes) -> Str {
    // SAFETY: the bytes are guaranteed to be valid UTF-8 by the tungstenite parser
    unsafe { Str::from_bytes_unchecked(bytes.into()) }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::atomic::{AtomicUsize, Ordering},
        time::Duration,
    };

    use bytes::Bytes;
    use futures_util::StreamExt;
    use http::Request;
    use tokio::io::DuplexStream;

    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(2);

    /// Counts the messages the session hands it, keeps the disconnect reasons.
    #[derive(Debug, Default)]
    struct StubHandler {
        messages: AtomicUsize,
        disconnects: std::sync::Mutex<Vec<DisconnectReason>>,
    }
    impl EngineIoHandler for StubHandler {
        type Data = ();
        fn on_connect(self: Arc<Self>, _: Arc<Socket<()>>) {}
        fn on_disconnect(&self, _: Arc<Socket<()>>, reason: DisconnectReason) {
            self.disconnects.lock().unwrap().push(reason);
        }
        fn on_message(self: &Arc<Self>, _: Str, _: Arc<Socket<()>>) {
            self.messages.fetch_add(1, Ordering::SeqCst);
        }
        fn on_binary(self: &Arc<Self>, _: Bytes, _: Arc<Socket<()>>) {}
    }

    fn engine(config: EngineIoConfig) -> Arc<EngineIo<StubHandler>> {
        Arc::new(EngineIo::new(Arc::new(StubHandler::default()), config))
    }

    /// A session on a websocket pair, `capacity` bytes of buffer each way; `heartbeat`: the
    /// session runs it (it started on websocket).
    async fn session(
        engine: &Arc<EngineIo<StubHandler>>,
        capacity: usize,
        heartbeat: bool,
    ) -> (
        Box<WsSession<StubHandler, DuplexStream>>,
        WebSocketStream<DuplexStream>,
    ) {
        let socket = engine.create_session(
            ProtocolVersion::V4,
            TransportType::Websocket,
            Request::<()>::default().into_parts().0,
            false,
        );
        let (server, client) = tokio::io::duplex(capacity);
        let session = Box::new(WsSession {
            engine: engine.clone(),
            socket,
            ws: WebSocketStream::from_raw_socket(server, Role::Server, None).await,
            heartbeat,
        });
        let client = WebSocketStream::from_raw_socket(client, Role::Client, None).await;
        (session, client)
    }

    async fn next_text(client: &mut WebSocketStream<DuplexStream>) -> String {
        match tokio::time::timeout(TIMEOUT, client.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => t.to_string(),
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    /// Polls `cond` until it holds, for at most TIMEOUT.
    async fn until(mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + TIMEOUT;
        while !cond() {
            assert!(Instant::now() < deadline, "condition not met in time");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// A polling request can still hold the lock at the end of an upgrade: the session reads
    /// meanwhile, and writes once the lock is free.
    #[tokio::test]
    async fn session_reads_while_a_polling_request_holds_the_lock() {
        let engine = engine(EngineIoConfig::default());
        let (session, mut client) = session(&engine, 1024, false).await;
        let socket = session.socket.clone();

        let polling = socket.internal_rx.lock().await;
        let task = tokio::spawn(session.run());
        client.send(Message::text("4hello")).await.unwrap();
        until(|| engine.handler.messages.load(Ordering::SeqCst) == 1).await;
        assert!(!task.is_finished());

        socket.emit(Str::from("queued")).unwrap();
        drop(polling);
        assert_eq!(next_text(&mut client).await, "4queued");
    }

    #[tokio::test]
    async fn session_waiting_for_the_lock_stops_with_the_session() {
        let engine = engine(EngineIoConfig::default());
        let (session, _client) = session(&engine, 1024, false).await;
        let socket = session.socket.clone();

        let _polling = socket.internal_rx.lock().await;
        let task = tokio::spawn(session.run());
        socket.cancellation_token.cancel();
        tokio::time::timeout(TIMEOUT, task)
            .await
            .expect("the session should stop")
            .unwrap();
    }

    /// A client that does not read blocks the session's writes, not its reads.
    #[tokio::test]
    async fn a_blocked_write_does_not_stop_reading() {
        let engine = engine(EngineIoConfig::default());
        let (session, mut client) = session(&engine, 256, false).await;
        let socket = session.socket.clone();
        tokio::spawn(session.run());

        // Far more than the pipe holds, so writing waits for the client.
        let big = "x".repeat(200);
        for _ in 0..20 {
            socket.emit(Str::from(big.clone())).unwrap();
        }
        for _ in 0..3 {
            client.send(Message::text("4ping")).await.unwrap();
        }
        until(|| engine.handler.messages.load(Ordering::SeqCst) == 3).await;

        // Once the client reads, everything arrives, in order.
        for _ in 0..20 {
            assert_eq!(next_text(&mut client).await, format!("4{big}"));
        }
    }

    /// The heartbeat of a session that started on websocket: a ping at once and one per
    /// interval while the client answers, then a close when it stops answering.
    #[tokio::test]
    async fn session_heartbeat_pings_and_times_out() {
        let config = EngineIoConfig::builder()
            .ping_interval(Duration::from_millis(100))
            .ping_timeout(Duration::from_millis(100))
            .build();
        let engine = engine(config);
        let (session, mut client) = session(&engine, 1024, true).await;
        let socket = session.socket.clone();
        let start = Instant::now();
        let task = tokio::spawn(session.run());

        for i in 0..3 {
            assert_eq!(next_text(&mut client).await, "2", "ping {i}");
            // An interval between pings, after the first one.
            if i > 0 {
                assert!(start.elapsed() >= Duration::from_millis(100) * i);
            }
            client.send(Message::text("3")).await.unwrap();
        }
        assert!(
            engine.get_socket(socket.id).is_some(),
            "answered: still open"
        );

        // No pong for the next ping: the session is closed, with a close packet.
        assert_eq!(next_text(&mut client).await, "2");
        assert_eq!(next_text(&mut client).await, "1");
        tokio::time::timeout(TIMEOUT, task)
            .await
            .expect("the session should end")
            .unwrap();
        assert!(engine.get_socket(socket.id).is_none());
    }

    /// A pong that arrives before its ping answers the next one, as with the heartbeat task.
    #[tokio::test]
    async fn an_early_pong_answers_the_next_ping() {
        let config = EngineIoConfig::builder()
            .ping_interval(Duration::from_millis(150))
            .ping_timeout(Duration::from_millis(150))
            .build();
        let engine = engine(config);
        let (session, mut client) = session(&engine, 1024, true).await;
        let socket = session.socket.clone();
        tokio::spawn(session.run());

        assert_eq!(next_text(&mut client).await, "2");
        client.send(Message::text("3")).await.unwrap();
        client.send(Message::text("3")).await.unwrap();
        // The second pong answers the second ping; the third has none and closes.
        assert_eq!(next_text(&mut client).await, "2");
        assert_eq!(next_text(&mut client).await, "2");
        assert_eq!(next_text(&mut client).await, "1");
        until(|| engine.get_socket(socket.id).is_none()).await;
    }

    /// A client that stops reading: the socket holds at most its byte budget (plus one
    /// packet) for it, then is closed (`TransportError`, counted), and the connection is
    /// dropped at once, not after a closing flush it would never read.
    #[tokio::test]
    async fn a_client_that_stops_reading_is_closed_past_the_budget() {
        let config = EngineIoConfig::builder()
            .max_payload(4096)
            .max_buffer_size(100_000)
            // A closing flush would wait this long for the client.
            .ping_timeout(Duration::from_secs(60))
            .build();
        let budget = config.max_buffer_bytes();
        let engine = engine(config);
        let (session, _client) = session(&engine, 256, false).await;
        let socket = session.socket.clone();
        let before = crate::socket::fell_behind_count();
        let task = tokio::spawn(session.run());

        let message = "x".repeat(2000);
        let packet = message.len() + 1;
        let (mut most, mut sent, mut refused) = (0, 0, false);
        // Bounded: the budget is 32 such messages.
        for _ in 0..10_000 {
            if socket.emit(Str::from(message.clone())).is_err() {
                refused = true;
                break;
            }
            sent += 1;
            most = most.max(socket.outbox.held());
            // The session writes what the client's pipe takes.
            tokio::task::yield_now().await;
        }
        assert!(refused, "never refused");
        assert!(
            most <= budget + packet,
            "held {most} bytes, budget {budget}"
        );
        assert!(sent <= budget / packet + 2, "{sent} messages taken");
        assert!(engine.get_socket(socket.id).is_none(), "closed");
        tokio::time::timeout(TIMEOUT, task)
            .await
            .expect("the connection is dropped without waiting for the client")
            .unwrap();
        until(|| !engine.handler.disconnects.lock().unwrap().is_empty()).await;
        assert_eq!(
            *engine.handler.disconnects.lock().unwrap(),
            [DisconnectReason::TransportError]
        );
        assert!(crate::socket::fell_behind_count() > before, "counted");
        assert!(socket.emit(Str::from("late")).is_err(), "closed");
    }

    /// A client that reads releases what it was sent: the same stream, read as it comes,
    /// never comes near the budget.
    #[tokio::test]
    async fn a_client_that_reads_stays_within_the_budget() {
        let config = EngineIoConfig::builder()
            .max_payload(4096)
            .max_buffer_size(100_000)
            .build();
        let engine = engine(config);
        let (session, mut client) = session(&engine, 4096, false).await;
        let socket = session.socket.clone();
        tokio::spawn(session.run());

        let message = "x".repeat(2000);
        for _ in 0..200 {
            socket.emit(Str::from(message.clone())).unwrap();
            assert_eq!(next_text(&mut client).await, format!("4{message}"));
        }
        assert!(engine.get_socket(socket.id).is_some(), "still open");
        until(|| socket.outbox.held() == 0).await;
    }

    /// The heartbeat closes a client that stops reading (and so answering) within the ping
    /// interval and timeout of its last pong, though its writes are blocked and its ping is
    /// queued behind data it will never read.
    #[tokio::test(start_paused = true)]
    async fn the_heartbeat_closes_a_client_whose_writes_are_blocked() {
        let (interval, timeout) = (Duration::from_secs(25), Duration::from_secs(20));
        let config = EngineIoConfig::builder()
            .ping_interval(interval)
            .ping_timeout(timeout)
            .build();
        let engine = engine(config);
        let (session, mut client) = session(&engine, 256, true).await;
        let socket = session.socket.clone();
        let task = tokio::spawn(session.run());

        assert_eq!(next_text(&mut client).await, "2");
        client.send(Message::text("3")).await.unwrap();
        let answered = Instant::now();
        // Then it stops reading: far more than its pipe holds, well within the budget.
        for _ in 0..20 {
            socket.emit(Str::from("x".repeat(200))).unwrap();
        }
        tokio::time::timeout(interval + timeout + TIMEOUT, task)
            .await
            .expect("the session should end")
            .unwrap();
        let closed = answered.elapsed();
        assert!(engine.get_socket(socket.id).is_none());
        assert!(
            closed <= interval + timeout + Duration::from_millis(10),
            "closed {closed:?} after the last pong"
        );
        until(|| !engine.handler.disconnects.lock().unwrap().is_empty()).await;
        assert_eq!(
            *engine.handler.disconnects.lock().unwrap(),
            [DisconnectReason::HeartbeatTimeout]
        );
    }
}
