//! The WebSocket transport: Engine.IO v4 straight over WebSocket (`transport=websocket`).

use std::{net::IpAddr, sync::Arc, time::Duration};

use futures_util::{SinkExt, StreamExt};
use tokio::{net::TcpStream, sync::mpsc, time::timeout};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{Message, protocol::WebSocketConfig},
};

use crate::{
    args::Endpoint,
    client::{lost_connection, tcp_connect},
    metrics::Stats,
    proto::{Cmd, Handshake, HandshakeState, Session, connect_packet},
};

pub type Ws = WebSocketStream<TcpStream>;

/// Small read buffers: tungstenite's default (128 KiB per connection) would cost the load
/// generator gigabytes at 18k connections; the frames here are tiny.
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(8 * 1024)
}

pub async fn next_text(ws: &mut Ws) -> Result<String, String> {
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

/// Opens the WebSocket, authenticates as `user` and waits for `ready` (the caller bounds it
/// in time).
pub async fn handshake(ep: &Endpoint, user: &str, source: Option<IpAddr>) -> Result<Ws, String> {
    let tcp = tcp_connect(ep.addr, source)
        .await
        .map_err(|e| format!("websocket: tcp: {e}"))?;
    let (mut ws, _) =
        tokio_tungstenite::client_async_with_config(ep.ws_url.as_str(), tcp, Some(ws_config()))
            .await
            .map_err(|e| format!("websocket: {e}"))?;
    let open = next_text(&mut ws).await?;
    if !open.starts_with('0') {
        return Err(format!("expected an open packet, got {open:.80}"));
    }
    ws.send(Message::text(connect_packet(user)))
        .await
        .map_err(|e| e.to_string())?;
    // Bounded by the caller's timeout; each frame is one of open/ping/connect/event.
    let mut hs = HandshakeState::default();
    let mut out = Vec::new();
    for _ in 0..10_000 {
        let t = next_text(&mut ws).await?;
        let step = hs.on_packet(&t, &mut out)?;
        for p in out.drain(..) {
            ws.send(Message::text(p)).await.map_err(|e| e.to_string())?;
        }
        if let Handshake::Ready = step {
            return Ok(ws);
        }
    }
    Err("no ready event".into())
}

pub async fn run(
    mut ws: Ws,
    mut rx: mpsc::UnboundedReceiver<Cmd>,
    mut session: Session,
    stats: Arc<Stats>,
) {
    let mut out = Vec::new();
    let why = loop {
        tokio::select! {
            cmd = rx.recv() => match cmd {
                Some(Cmd::Emit { array, ack }) => {
                    let frame = session.emit(array, ack);
                    if let Err(e) = ws.send(Message::text(frame)).await {
                        stats.error(format!("send: {e}"));
                        break "send failed";
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
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break "closed by the server",
                    Some(Ok(_)) => continue,
                };
                let open = session.incoming(t.as_str(), &mut out);
                let mut failed = false;
                for p in out.drain(..) {
                    if ws.send(Message::text(p)).await.is_err() {
                        failed = true;
                        break;
                    }
                }
                if failed {
                    break "send failed";
                }
                if !open {
                    break "closed by the server";
                }
            }
        }
    };
    lost_connection(&stats, why);
}

/// Sends `frame` (a request `42<id>[…]`) and reads until its ack (`43<id>…`), answering
/// pings; then returns, reading nothing more (a client that stops reading).
pub async fn send_until_ack(ws: &mut Ws, frame: String) -> Result<(), String> {
    let id: String = frame[2..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let ack = format!("43{id}");
    ws.send(Message::text(frame))
        .await
        .map_err(|e| e.to_string())?;
    // Bounded by the caller's timeout, and in count.
    for _ in 0..10_000 {
        let t = next_text(ws).await?;
        if t == "2" {
            ws.send(Message::text("3"))
                .await
                .map_err(|e| e.to_string())?;
        } else if t.starts_with(&ack) {
            return Ok(());
        }
    }
    Err("no ack".into())
}
