//! A long-polling client that stops polling: the socket holds at most its byte budget
//! (`EngineIoConfig::max_buffer_bytes`) for it, then closes it with
//! `DisconnectReason::TransportError`; a client that polls takes its packets out of the budget.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use engineioxide::{
    Str,
    config::EngineIoConfig,
    handler::EngineIoHandler,
    service::EngineIoService,
    socket::{DisconnectReason, Socket},
};
use tokio::sync::mpsc;

mod fixture;

use fixture::{create_polling_connection, send_req_raw};

/// Forwards every connected socket and every disconnect reason to the test.
#[derive(Debug, Clone)]
struct Handler {
    sockets: mpsc::Sender<Arc<Socket<()>>>,
    reasons: mpsc::Sender<DisconnectReason>,
}

impl EngineIoHandler for Handler {
    type Data = ();

    fn on_connect(self: Arc<Self>, socket: Arc<Socket<()>>) {
        self.sockets.try_send(socket).unwrap();
    }
    fn on_disconnect(&self, _socket: Arc<Socket<()>>, reason: DisconnectReason) {
        self.reasons.try_send(reason).unwrap();
    }
    fn on_message(self: &Arc<Self>, _msg: Str, _socket: Arc<Socket<()>>) {}
    fn on_binary(self: &Arc<Self>, _data: Bytes, _socket: Arc<Socket<()>>) {}
}

/// A server with 4 KB payloads (a 64 KiB budget per socket), heartbeats out of the way, and
/// a polling client connected to it.
async fn connected() -> (
    EngineIoService<Handler>,
    String,
    Arc<Socket<()>>,
    mpsc::Receiver<DisconnectReason>,
) {
    let (sockets, mut socket_rx) = mpsc::channel(1);
    let (reasons, reason_rx) = mpsc::channel(1);
    let config = EngineIoConfig::builder()
        .ping_interval(Duration::from_secs(60))
        .ping_timeout(Duration::from_secs(60))
        .max_payload(4096)
        .max_buffer_size(100_000)
        .build();
    assert_eq!(config.max_buffer_bytes(), 64 * 1024);
    let mut svc = EngineIoService::with_config(Arc::new(Handler { sockets, reasons }), config);
    let sid = create_polling_connection(&mut svc).await;
    let socket = socket_rx.recv().await.unwrap();
    // The heartbeat's first ping.
    assert_eq!(poll(&mut svc, &sid).await, "2");
    (svc, sid, socket, reason_rx)
}

async fn poll(svc: &mut EngineIoService<Handler>, sid: &str) -> String {
    let req = send_req_raw(
        svc,
        format!("transport=polling&sid={sid}"),
        http::Method::GET,
        None,
    );
    tokio::time::timeout(Duration::from_secs(2), req)
        .await
        .expect("polling request answered")
}

/// A client that never sends its next GET is closed once its packets would take more than
/// the budget: emits are refused from then on, and the handler hears `TransportError`.
#[tokio::test]
async fn a_client_that_stops_polling_is_closed_past_the_budget() {
    let (_svc, _sid, socket, mut reasons) = connected().await;
    let message = "x".repeat(2000);
    let mut taken = 0;
    // Bounded: the budget is 32 such messages.
    for _ in 0..10_000 {
        if socket.emit(Str::from(message.clone())).is_err() {
            break;
        }
        taken += 1;
    }
    assert_eq!(taken, 64 * 1024 / 2001, "as many as the budget holds");
    let reason = tokio::time::timeout(Duration::from_secs(2), reasons.recv()).await;
    assert_eq!(reason.unwrap(), Some(DisconnectReason::TransportError));
    assert!(socket.is_closed());
    assert!(socket.emit(Str::from("late")).is_err());
}

/// A client that polls takes its packets out of the budget, the packet a payload had no
/// room for included: ten budgets' worth goes through, in order.
#[tokio::test]
async fn a_client_that_polls_stays_within_the_budget() {
    let (mut svc, sid, socket, mut reasons) = connected().await;
    let (mut next, mut received) = (0, 0);
    let total = 10 * 64 * 1024 / 2001;
    // Bounded: every round trip takes at least one packet.
    for _ in 0..total {
        // Two packets fit in a payload, the third is peeked and comes next time.
        while next < received + 30 && next < total {
            let message = format!("{next:04}{}", "x".repeat(1996));
            socket.emit(Str::from(message)).expect("within the budget");
            next += 1;
        }
        if received == total {
            break;
        }
        let payload = poll(&mut svc, &sid).await;
        for packet in payload.split('\x1e') {
            assert_eq!(&packet[1..5], format!("{received:04}"), "in order");
            received += 1;
        }
    }
    assert_eq!(received, total);
    assert!(reasons.try_recv().is_err(), "never closed");
}
