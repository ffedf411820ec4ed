//! A webhook receiver on 127.0.0.1 for tests: checks every request's signature with its own
//! HMAC (not chat-core's code), records what it got, and answers as the test says (200,
//! 500 a number of times, or never).

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    routing::post,
};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use tokio::sync::Notify;

/// How long [`Receiver::until`] waits.
const DEADLINE: Duration = Duration::from_secs(20);

/// How the receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// 200.
    Ok,
    /// 500 to the next `n` requests, then 200.
    FailTimes(u32),
    /// 500, always.
    Fail,
    /// Never: the request hangs until the sender gives up.
    Hang,
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Request {
    /// `X-Chat-Event-Id`.
    pub id: String,
    /// The body, parsed.
    pub event: Value,
    /// What the receiver answered (0: nothing, it hung).
    pub status: u16,
    /// When it arrived.
    pub at: tokio::time::Instant,
}

#[derive(Debug)]
struct Inner {
    secret: Vec<u8>,
    answer: Mutex<Answer>,
    requests: Mutex<Vec<Request>>,
    /// Requests whose signature, timestamp or id did not check out, with why.
    invalid: Mutex<Vec<String>>,
    changed: Notify,
}

/// A running receiver.
#[derive(Debug, Clone)]
pub struct Receiver {
    /// Its URL, for `CHAT_WEBHOOK_URL`.
    pub url: String,
    inner: Arc<Inner>,
}

impl Receiver {
    /// A receiver checking signatures made with `secret`, answering 200.
    pub async fn start(secret: &str) -> Receiver {
        let inner = Arc::new(Inner {
            secret: secret.as_bytes().to_vec(),
            answer: Mutex::new(Answer::Ok),
            requests: Mutex::default(),
            invalid: Mutex::default(),
            changed: Notify::new(),
        });
        let app = Router::new()
            .route("/hooks", post(receive))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver {
            url: format!("http://{addr}/hooks"),
            inner,
        }
    }

    /// Answers from now on as `answer` says.
    pub fn answer(&self, answer: Answer) {
        *self.inner.answer.lock().unwrap() = answer;
    }

    /// Every request so far; panics if any was not correctly signed.
    pub fn requests(&self) -> Vec<Request> {
        let invalid = self.inner.invalid.lock().unwrap();
        assert!(invalid.is_empty(), "badly signed webhooks: {invalid:?}");
        self.inner.requests.lock().unwrap().clone()
    }

    /// The events answered with 200 so far.
    pub fn delivered(&self) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|r| r.status == 200)
            .map(|r| r.event)
            .collect()
    }

    /// Waits (20 s at most) until the requests so far satisfy `ok`; returns them.
    #[track_caller]
    pub fn until(&self, ok: impl Fn(&[Request]) -> bool) -> impl Future<Output = Vec<Request>> {
        let caller = std::panic::Location::caller();
        async move {
            let wait = async {
                loop {
                    let changed = self.inner.changed.notified();
                    let requests = self.requests();
                    if ok(&requests) {
                        return requests;
                    }
                    changed.await;
                }
            };
            match tokio::time::timeout(DEADLINE, wait).await {
                Ok(requests) => requests,
                Err(_) => panic!(
                    "{caller}: the receiver never got what was expected; it got {:#?}",
                    self.requests()
                ),
            }
        }
    }

    /// Waits for a delivered (200) event of `kind` matching `pred`; returns it.
    #[track_caller]
    pub fn delivered_event(
        &self,
        kind: &str,
        pred: impl Fn(&Value) -> bool + Clone,
    ) -> impl Future<Output = Value> {
        let matches = {
            let (kind, pred) = (kind.to_owned(), pred.clone());
            move |r: &Request| {
                r.status == 200 && r.event["type"] == kind.as_str() && pred(&r.event["data"])
            }
        };
        let wait = self.until({
            let matches = matches.clone();
            move |rs| rs.iter().any(&matches)
        });
        async move {
            let found = wait.await;
            // The one that matched, not merely the first of its kind.
            found.into_iter().find(|r| matches(r)).unwrap().event
        }
    }
}

async fn receive(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let (id, ts, sig) = (
        header("x-chat-event-id").to_owned(),
        header("x-chat-timestamp").to_owned(),
        header("x-chat-signature").to_owned(),
    );
    let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if let Err(why) = check(&inner.secret, &id, &ts, &sig, &body, &event) {
        inner.invalid.lock().unwrap().push(format!("{id}: {why}"));
        inner.changed.notify_waiters();
        return StatusCode::UNAUTHORIZED;
    }
    let answer = {
        let mut answer = inner.answer.lock().unwrap();
        let now = *answer;
        if let Answer::FailTimes(n) = now {
            *answer = if n <= 1 {
                Answer::Ok
            } else {
                Answer::FailTimes(n - 1)
            };
        }
        now
    };
    let status = match answer {
        Answer::Ok => Some(StatusCode::OK),
        Answer::FailTimes(_) | Answer::Fail => Some(StatusCode::INTERNAL_SERVER_ERROR),
        Answer::Hang => None,
    };
    inner.requests.lock().unwrap().push(Request {
        id,
        event,
        status: status.map_or(0, |s| s.as_u16()),
        at: tokio::time::Instant::now(),
    });
    inner.changed.notify_waiters();
    match status {
        Some(status) => status,
        None => std::future::pending().await,
    }
}

/// The receiver's side of docs/webhooks.md: the HMAC-SHA256 of `<timestamp>.<body>`, a
/// timestamp within 5 minutes, the id header equal to the body's id.
fn check(
    secret: &[u8],
    id: &str,
    ts: &str,
    sig: &str,
    body: &[u8],
    event: &Value,
) -> Result<(), String> {
    let ts_secs: u64 = ts.parse().map_err(|_| format!("bad timestamp {ts:?}"))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if now.abs_diff(ts_secs) > 300 {
        return Err(format!("stale timestamp {ts}"));
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
    mac.update(format!("{ts}.").as_bytes());
    mac.update(body);
    let want = format!("v1={}", hex::encode(mac.finalize().into_bytes()));
    if sig != want {
        return Err(format!("signature {sig:?}, expected {want:?}"));
    }
    if event["id"] != id || id.is_empty() {
        return Err(format!(
            "id header {id:?} differs from the body's {}",
            event["id"]
        ));
    }
    Ok(())
}
