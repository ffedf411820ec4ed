//! A minimal Socket.IO v4 client over WebSocket, speaking raw Engine.IO frames, so tests
//! see exactly what a client sees.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message as Ws;

/// How long any wait in a test may take before it fails.
pub const DEADLINE: Duration = Duration::from_secs(5);

/// A connected Socket.IO client.
#[allow(missing_debug_implementations)]
pub struct Client {
    out: mpsc::UnboundedSender<String>,
    inner: Arc<Inner>,
    next_ack: u64,
    /// The `ready` payload.
    pub ready: Value,
}

#[derive(Default)]
struct Inner {
    events: Mutex<Vec<(String, Value)>>,
    acks: Mutex<HashMap<u64, oneshot::Sender<Value>>>,
    changed: Notify,
    closed: std::sync::atomic::AtomicBool,
    /// Answer `message` events' ack requests (a device confirming delivery).
    ack_messages: std::sync::atomic::AtomicBool,
}

impl Client {
    /// Connects with `auth`; `Err` carries the `connect_error` message.
    pub async fn connect(addr: SocketAddr, auth: Value) -> Result<Client, String> {
        Self::connect_with_headers(addr, auth, &[]).await
    }

    /// [`Client::connect`] with extra headers on the WebSocket handshake request, as a
    /// browser sends its cookies (`[("cookie", "session=..")]`) to an embedder's
    /// authenticator.
    pub async fn connect_with_headers(
        addr: SocketAddr,
        auth: Value,
        headers: &[(&str, &str)],
    ) -> Result<Client, String> {
        use tokio_tungstenite::tungstenite::{client::IntoClientRequest, http::HeaderValue};
        let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
        let mut request = url.into_client_request().map_err(|e| e.to_string())?;
        for (name, value) in headers {
            let name: tokio_tungstenite::tungstenite::http::HeaderName = name
                .parse()
                .map_err(|_| format!("bad header name {name}"))?;
            let value = HeaderValue::from_str(value).map_err(|e| e.to_string())?;
            request.headers_mut().append(name, value);
        }
        let (ws, _) = tokio_tungstenite::connect_async(request)
            .await
            .map_err(|e| format!("ws connect: {e}"))?;
        let (mut sink, mut stream) = ws.split();
        let open = next_text(&mut stream).await?;
        assert!(open.starts_with('0'), "engine.io open: {open}");
        sink.send(Ws::text(format!("40{auth}")))
            .await
            .map_err(|e| e.to_string())?;
        let connect = loop {
            match next_text(&mut stream).await? {
                ping if ping == "2" => sink.send(Ws::text("3")).await.map_err(|e| e.to_string())?,
                frame => break frame,
            }
        };
        if let Some(err) = connect.strip_prefix("44") {
            let v: Value = serde_json::from_str(err).unwrap_or_default();
            return Err(v["message"].as_str().unwrap_or(err).to_owned());
        }
        assert!(connect.starts_with("40"), "socket.io connect: {connect}");

        let (out, mut rx) = mpsc::unbounded_channel::<String>();
        tokio::spawn(async move {
            while let Some(frame) = rx.recv().await {
                if sink.send(Ws::text(frame)).await.is_err() {
                    break;
                }
            }
            let _ = sink.close().await;
        });
        let inner = Arc::new(Inner::default());
        inner
            .ack_messages
            .store(true, std::sync::atomic::Ordering::SeqCst);
        // Weak, so dropping the client closes the connection.
        let (reader, pong) = (inner.clone(), out.downgrade());
        tokio::spawn(async move {
            while let Ok(frame) = next_text(&mut stream).await {
                let Some(out) = pong.upgrade() else { break };
                reader.handle(&frame, &out);
            }
            reader
                .closed
                .store(true, std::sync::atomic::Ordering::SeqCst);
            reader.changed.notify_waiters();
        });
        let mut client = Client {
            out,
            inner,
            next_ack: 0,
            ready: Value::Null,
        };
        client.ready = client.event("ready", |_| true).await;
        Ok(client)
    }

    /// Connects in development mode as `user`, panicking on refusal.
    #[track_caller]
    pub fn dev(addr: SocketAddr, user: &str) -> impl Future<Output = Client> {
        let auth = json!({ "user": user });
        async move { Client::connect(addr, auth).await.expect("connect") }
    }

    /// Stops answering `message` ack requests, like a client without an ack callback.
    pub fn without_delivery_acks(self) -> Self {
        self.inner
            .ack_messages
            .store(false, std::sync::atomic::Ordering::SeqCst);
        self
    }

    /// Emits `event` with `data` and waits for the ack.
    pub async fn ack(&mut self, event: &str, data: Value) -> Value {
        self.ack_raw(&json!([event, data]).to_string()).await
    }

    /// Emits every request at once, then waits for all the acks, in request order.
    pub async fn ack_all(&mut self, requests: Vec<(&str, Value)>) -> Vec<Value> {
        let mut pending = Vec::new();
        for (event, data) in requests {
            let id = self.next_ack;
            self.next_ack += 1;
            let (tx, rx) = oneshot::channel();
            self.inner.acks.lock().unwrap().insert(id, tx);
            self.out
                .send(format!("42{id}{}", json!([event, data])))
                .expect("socket open");
            pending.push(rx);
        }
        let mut acks = Vec::new();
        for rx in pending {
            let ack = tokio::time::timeout(DEADLINE, rx)
                .await
                .expect("ack in time")
                .expect("ack");
            acks.push(ack.get(0).cloned().unwrap_or(Value::Null));
        }
        acks
    }

    /// Emits a raw Socket.IO event array (e.g. `["x", 1, 2]`) asking for an ack.
    pub async fn ack_raw(&mut self, array: &str) -> Value {
        let id = self.next_ack;
        self.next_ack += 1;
        let (tx, rx) = oneshot::channel();
        self.inner.acks.lock().unwrap().insert(id, tx);
        self.out
            .send(format!("42{id}{array}"))
            .expect("socket open");
        let ack = tokio::time::timeout(DEADLINE, rx)
            .await
            .unwrap_or_else(|_| panic!("no ack for {array} within {DEADLINE:?}"))
            .expect("ack");
        // Acks are arrays of arguments; ours always have one.
        ack.get(0).cloned().unwrap_or(Value::Null)
    }

    /// Emits without asking for an ack.
    pub fn emit(&self, event: &str, data: Value) {
        self.out
            .send(format!("42{}", json!([event, data])))
            .expect("socket open");
    }

    /// Sends a raw frame.
    pub fn send_raw(&self, frame: String) {
        let _ = self.out.send(frame);
    }

    /// Waits for an event matching `pred`, returns its payload and removes it.
    pub async fn event(&self, name: &str, pred: impl Fn(&Value) -> bool) -> Value {
        self.event_within(DEADLINE, name, pred).await
    }

    /// [`Client::event`] with a deadline of its own, for waits across a failover.
    pub async fn event_within(
        &self,
        deadline: Duration,
        name: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let fut = async {
            loop {
                let notified = self.inner.changed.notified();
                {
                    let mut events = self.inner.events.lock().unwrap();
                    if let Some(i) = events.iter().position(|(n, v)| n == name && pred(v)) {
                        return events.remove(i).1;
                    }
                }
                if self.is_closed() {
                    panic!("socket closed while waiting for {name}");
                }
                notified.await;
            }
        };
        match tokio::time::timeout(deadline, fut).await {
            Ok(v) => v,
            Err(_) => panic!(
                "no {name} event within {deadline:?}; received {:?}",
                self.inner.events.lock().unwrap()
            ),
        }
    }

    /// The payloads of events named `name` received so far (not removed).
    pub fn received(&self, name: &str) -> Vec<Value> {
        let events = self.inner.events.lock().unwrap();
        events
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Whether the server closed the connection.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits until the server has closed the connection.
    pub async fn closed(&self) {
        let fut = async {
            loop {
                let notified = self.inner.changed.notified();
                if self.is_closed() {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(DEADLINE, fut)
            .await
            .expect("connection closed");
    }

    /// A round trip that proves every event emitted to this socket before it has arrived.
    pub async fn barrier(&mut self) {
        let res = self.ack("conversations", json!({})).await;
        assert_eq!(res["ok"], true, "{res}");
    }
}

impl Inner {
    fn handle(&self, frame: &str, out: &mpsc::UnboundedSender<String>) {
        if frame == "2" {
            let _ = out.send("3".into());
            return;
        }
        let Some(packet) = frame.strip_prefix('4') else {
            return;
        };
        let (kind, rest) = packet.split_at(1);
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (id, body) = rest.split_at(digits);
        let id: Option<u64> = id.parse().ok();
        match kind {
            "2" => {
                let v: Value = serde_json::from_str(body).expect("event json");
                let name = v[0].as_str().unwrap_or_default().to_owned();
                let data = v.get(1).cloned().unwrap_or(Value::Null);
                if let Some(id) = id
                    && name == "message"
                    && self.ack_messages.load(std::sync::atomic::Ordering::SeqCst)
                {
                    let _ = out.send(format!("43{id}[]"));
                }
                self.events.lock().unwrap().push((name, data));
            }
            "3" => {
                let v: Value = serde_json::from_str(body).expect("ack json");
                if let Some(tx) = id.and_then(|id| self.acks.lock().unwrap().remove(&id)) {
                    let _ = tx.send(v);
                }
            }
            "1" => self.closed.store(true, std::sync::atomic::Ordering::SeqCst),
            _ => {}
        }
        self.changed.notify_waiters();
    }
}

async fn next_text<S>(stream: &mut S) -> Result<String, String>
where
    S: futures_util::Stream<Item = Result<Ws, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        match tokio::time::timeout(Duration::from_secs(60), stream.next()).await {
            Ok(Some(Ok(Ws::Text(t)))) => return Ok(t.to_string()),
            Ok(Some(Ok(Ws::Close(_)))) | Ok(None) => return Err("closed".into()),
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(e))) => return Err(e.to_string()),
            Err(_) => return Err("idle".into()),
        }
    }
}
