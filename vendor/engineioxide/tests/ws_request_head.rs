//! A WebSocket session opened through hyper's upgrade keeps the request's head, but not what
//! only the handshake used: hyper's upgrade handle and the `Sec-WebSocket-Key` header, which
//! (with an extension map holding nothing else) would stay for the life of the session.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use engineioxide::{
    Str,
    handler::EngineIoHandler,
    service::EngineIoService,
    socket::{DisconnectReason, Socket},
};
use hyper::{service::service_fn, upgrade::OnUpgrade};
use hyper_util::rt::TokioIo;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    sync::mpsc,
};

/// What a session kept of its request.
#[derive(Debug, PartialEq)]
struct Kept {
    upgrade_handle: bool,
    layer_extension: bool,
    no_extension: bool,
    websocket_key: bool,
    host_header: bool,
}

#[derive(Debug)]
struct MyHandler(mpsc::UnboundedSender<Kept>);
impl EngineIoHandler for MyHandler {
    type Data = ();
    fn on_connect(self: Arc<Self>, socket: Arc<Socket<()>>) {
        let (ext, headers) = (&socket.req_parts.extensions, &socket.req_parts.headers);
        let kept = Kept {
            upgrade_handle: ext.get::<OnUpgrade>().is_some(),
            layer_extension: ext.get::<Marker>().is_some(),
            no_extension: ext.is_empty(),
            websocket_key: headers.contains_key("sec-websocket-key"),
            host_header: headers.contains_key("host"),
        };
        self.0.send(kept).unwrap();
    }
    fn on_disconnect(&self, _: Arc<Socket<()>>, _: DisconnectReason) {}
    fn on_message(self: &Arc<Self>, _: Str, _: Arc<Socket<()>>) {}
    fn on_binary(self: &Arc<Self>, _: Bytes, _: Arc<Socket<()>>) {}
}

/// An extension a layer in front of engineioxide adds, as `ConnectInfo` would be.
#[derive(Clone)]
struct Marker;

/// Opens a WebSocket session over hyper (a real HTTP/1.1 upgrade, on an in-memory pipe) and
/// returns what its socket kept.
async fn open_session(with_marker: bool) -> Kept {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let svc = EngineIoService::new(Arc::new(MyHandler(tx)));
    let (client, server) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        let service = service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            if with_marker {
                req.extensions_mut().insert(Marker);
            }
            hyper::service::Service::call(&svc, req)
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(server), service)
            .with_upgrades()
            .await;
    });
    let mut client = client;
    client
        .write_all(
            b"GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\nhost: test\r\n\
              connection: Upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\n\
              sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .await
        .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        let n = tokio::time::timeout(Duration::from_secs(10), client.read(&mut byte))
            .await
            .expect("an upgrade response in time")
            .unwrap();
        assert_eq!(n, 1, "closed before the response");
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let kept = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("the session opened in time")
        .unwrap();
    drop(client);
    kept
}

#[tokio::test]
async fn the_session_keeps_the_head_but_not_the_handshakes_parts() {
    let kept = Kept {
        upgrade_handle: false,
        layer_extension: true,
        no_extension: false,
        websocket_key: false,
        host_header: true,
    };
    assert_eq!(open_session(true).await, kept);
}

#[tokio::test]
async fn a_session_with_no_other_extension_keeps_no_map() {
    let kept = open_session(false).await;
    assert!(kept.no_extension && !kept.upgrade_handle, "{kept:?}");
}
