//! Socket.IO event handlers, one file per event group, registered in one place.
//!
//! Every acknowledged event goes through [`on`]: session and token-expiry check, the per-user
//! event rate, payload parsing, then the handler; its `Result` becomes the ack
//! `{ok: true, ...}` or `{ok: false, error: {code, message}}`. Handlers are written once
//! against the store traits and socketioxide's adapter, so they run unchanged on any backend.

mod blocks;
mod connection;
pub(crate) mod delivery;
mod groups;
mod history;
mod messages;
mod presence;
mod receipts;
mod typing;

use std::{
    collections::VecDeque,
    future::Future,
    pin::Pin,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;
use socketioxide::{
    SocketIo,
    adapter::Adapter,
    extract::{AckSender, Event, SocketRef, State, TryData},
};

use crate::{
    auth::{Authenticator, Identity},
    cluster::Cluster,
    config::{Limits, Rate},
    error::{ChatError, ErrorCode},
    protocol::{ConversationId, Group, UserId, now_ms},
    store::{Stores, memory::TokenBuckets},
};

/// What every handler shares: stores, limits, identity of the node.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub stores: Stores,
    pub limits: Limits,
    pub node_id: String,
    pub auth: Authenticator,
    /// How long a `message` emit waits for a device's ack before giving up on `delivered`.
    pub delivery_ack_timeout: Duration,
    /// Devices' acks of `message`, on their way to the senders as receipts.
    pub delivered: tokio::sync::mpsc::Sender<delivery::Delivered>,
    /// Typing throttle; volatile, so per node is enough.
    pub typing: TokenBuckets,
    /// Set when the node starts shutting down: new connections are refused.
    pub draining: AtomicBool,
    /// The cluster, in cluster mode.
    pub cluster: Option<Arc<Cluster>>,
}

impl Ctx {
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Whether receipts are sent in a conversation: unless they are off, DMs (`None`), and
    /// groups of up to `receipt_group_max` members.
    pub fn receipts_for(&self, group_size: Option<usize>) -> bool {
        self.limits.receipts && group_size.is_none_or(|n| n <= self.limits.receipt_group_max)
    }

    /// Joins a socket to rooms; in a cluster, records this node as their host first-hand
    /// so other nodes' broadcasts reach the socket.
    pub async fn join<A: Adapter>(&self, s: &SocketRef<A>, rooms: Vec<String>) {
        match &self.cluster {
            Some(c) => {
                if let Err(e) = c.join(s, rooms).await {
                    // The heartbeat records local rooms again; until then this socket may
                    // miss broadcasts from other nodes (sync fills the gap).
                    tracing::warn!(cause = %e, "cannot record rooms in the cluster");
                }
            }
            None => s.join(rooms),
        }
    }
}

/// Installs the connect middleware and handlers on the default namespace.
pub(crate) fn register<A: Adapter + socketioxide_core::adapter::DefinedAdapter>(io: &SocketIo<A>) {
    connection::register(io);
}

/// A node died: its users with no other device go offline for their peers.
pub(crate) async fn node_lost<A: Adapter>(
    ctx: &Ctx,
    io: &SocketIo<A>,
    node: socketioxide_core::Uid,
) {
    match ctx
        .stores
        .presence
        .node_lost(&node.to_string(), now_ms())
        .await
    {
        Ok(gone) => {
            for (user, last_seen) in gone {
                connection::announce_presence(ctx, io.broadcast(), &user, false, Some(last_seen))
                    .await;
            }
        }
        Err(e) => tracing::warn!(%node, cause = %e, "cannot clear a lost node's presence"),
    }
}

/// Registers the event handler on a freshly connected socket: one handler that dispatches
/// on the event name, rather than one per event, which every socket would keep in a map of
/// boxed handlers of its own.
fn register_events<A: Adapter>(s: &SocketRef<A>) {
    s.on_fallback(
        |s: SocketRef<A>,
         State(ctx): State<Arc<Ctx>>,
         Event(event): Event,
         TryData(data): TryData<Value>,
         ack: AckSender<A>| {
            // Not an `async` closure: its body runs in socketioxide's receive loop, in packet
            // order, and only queues the request.
            let data = data.ok();
            match event.as_str() {
                "message:send" => queue(s, ctx, "message:send", data, ack, messages::send::<A>),
                "group:create" => queue(s, ctx, "group:create", data, ack, groups::create::<A>),
                "group:join" => queue(s, ctx, "group:join", data, ack, groups::join::<A>),
                "group:leave" => queue(s, ctx, "group:leave", data, ack, groups::leave::<A>),
                "group:members" => queue(s, ctx, "group:members", data, ack, groups::members::<A>),
                "history" => queue(s, ctx, "history", data, ack, history::history::<A>),
                "sync" => queue(s, ctx, "sync", data, ack, history::sync::<A>),
                "conversations" => queue(
                    s,
                    ctx,
                    "conversations",
                    data,
                    ack,
                    history::conversations::<A>,
                ),
                "read" => queue(s, ctx, "read", data, ack, receipts::read::<A>),
                "presence:subscribe" => queue(
                    s,
                    ctx,
                    "presence:subscribe",
                    data,
                    ack,
                    presence::subscribe::<A>,
                ),
                "block" => queue(s, ctx, "block", data, ack, blocks::block::<A>),
                "unblock" => queue(s, ctx, "unblock", data, ack, blocks::unblock::<A>),
                "typing" => {
                    tokio::spawn(typing::handle(s, ctx, data));
                }
                _ => {
                    let _ = ack.send(&reply::<()>(Err(ChatError::bad_request("unknown event"))));
                }
            }
            std::future::ready(())
        },
    );
}

/// One acknowledged request in progress: who asked, on which socket.
pub(crate) struct Call<A: Adapter> {
    pub ctx: Arc<Ctx>,
    pub socket: SocketRef<A>,
    pub user: UserId,
    event: &'static str,
}

/// The rate buckets a request takes a token from: the user's event bucket, and the message
/// bucket for `message:send`.
pub(crate) struct Budget(Vec<(String, Rate)>);

impl Budget {
    /// The buckets, as the stores take them.
    pub fn buckets(&self) -> Vec<(&str, Rate)> {
        self.0.iter().map(|(k, r)| (k.as_str(), *r)).collect()
    }
}

/// `message:send` takes its budget in the same store step as the append (one round trip);
/// every other event before its handler runs.
fn budget_in_store(event: &str) -> bool {
    event == "message:send"
}

impl<A: Adapter> Call<A> {
    async fn start(
        ctx: Arc<Ctx>,
        socket: SocketRef<A>,
        event: &'static str,
    ) -> Result<Self, ChatError> {
        let Some(identity) = socket.extensions.get::<Identity>() else {
            return Err(ChatError::new(ErrorCode::Unauthorized, "not signed in"));
        };
        if identity.expired(now_ms()) {
            return Err(ChatError::new(
                ErrorCode::Unauthorized,
                "token expired; reconnect with a new token",
            ));
        }
        let call = Self {
            ctx,
            socket,
            user: identity.user,
            event,
        };
        if !budget_in_store(event) {
            call.spend_budget().await?;
        }
        Ok(call)
    }

    /// What this request spends from the user's rate budgets.
    pub fn budget(&self) -> Budget {
        let limits = &self.ctx.limits;
        let mut buckets = vec![(format!("ev:{}", self.user), limits.event_rate)];
        if self.event == "message:send" {
            buckets.push((format!("msg:{}", self.user), limits.message_rate));
        }
        Budget(buckets)
    }

    /// Takes the request's budget (every bucket or none); `rate_limited` if one is empty.
    async fn spend_budget(&self) -> Result<(), ChatError> {
        let budget = self.budget();
        if self
            .ctx
            .stores
            .rates
            .try_acquire_all(&budget.buckets())
            .await?
        {
            Ok(())
        } else {
            Err(rate_limited())
        }
    }

    /// The answer to a request refused before its store step. One whose budget is taken in
    /// that step takes it here instead: refused requests count against the rates as well,
    /// and being over the rate wins over any other refusal, as for every other event.
    pub async fn refuse(&self, e: ChatError) -> ChatError {
        if !budget_in_store(self.event) {
            return e;
        }
        match self.spend_budget().await {
            Ok(()) => e,
            Err(over) => over,
        }
    }

    /// Checks that the caller may read and write `conversation`; returns the group for groups.
    pub async fn authorize(
        &self,
        conversation: &ConversationId,
    ) -> Result<Option<Group>, ChatError> {
        match conversation {
            ConversationId::Dm(..) => match conversation.dm_peer(&self.user) {
                Some(_) => Ok(None),
                None => Err(ChatError::forbidden(
                    "you are not part of this conversation",
                )),
            },
            ConversationId::Group(id) => {
                let group = self
                    .ctx
                    .stores
                    .groups
                    .get(id)
                    .await?
                    .ok_or_else(|| ChatError::not_found("no such group"))?;
                if group.members.contains(&self.user) {
                    Ok(Some(group))
                } else {
                    Err(ChatError::forbidden("you are not a member of this group"))
                }
            }
        }
    }

    /// Whether receipts are sent in a conversation (DMs, and groups up to the limit).
    pub fn receipts_for(&self, group: Option<&Group>) -> bool {
        self.ctx.receipts_for(group.map(|g| g.members.len()))
    }
}

pub(crate) fn rate_limited() -> ChatError {
    ChatError::new(ErrorCode::RateLimited, "too many requests; slow down")
}

/// Requests of one socket waiting for its worker; more are refused with `rate_limited`.
const QUEUE_DEPTH: usize = 64;

type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The per-socket request queue. socketioxide runs async handlers concurrently, so two
/// sends from one socket could reach the store out of order; one worker per socket runs
/// the acknowledged events in the order they arrived. The worker exists only while there is
/// work: an idle socket holds no task and no buffer, only this small shared state.
#[derive(Clone, Default)]
pub(crate) struct RequestQueue(Arc<Mutex<QueueState>>);

#[derive(Default)]
struct QueueState {
    jobs: VecDeque<Job>,
    /// A worker is running and will take every job pushed before it sees the queue empty.
    running: bool,
}

/// Room for one job in a [`RequestQueue`], held under its lock.
struct Reserved<'a> {
    queue: &'a RequestQueue,
    state: MutexGuard<'a, QueueState>,
}

impl Reserved<'_> {
    /// Queues `job` behind the socket's earlier requests, starting a worker if none runs.
    fn push(mut self, job: Job) {
        self.state.jobs.push_back(job);
        if !self.state.running {
            self.state.running = true;
            tokio::spawn(RequestQueue::work(self.queue.0.clone()));
        }
    }
}

impl RequestQueue {
    /// Room for one more job; `None` when [`QUEUE_DEPTH`] requests are already waiting.
    fn reserve(&self) -> Option<Reserved<'_>> {
        let state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        (state.jobs.len() < QUEUE_DEPTH).then_some(Reserved { queue: self, state })
    }

    async fn work(shared: Arc<Mutex<QueueState>>) {
        loop {
            let job = {
                let mut state = shared.lock().unwrap_or_else(|e| e.into_inner());
                match state.jobs.pop_front() {
                    Some(job) => job,
                    None => {
                        state.running = false;
                        state.jobs = VecDeque::new(); // give the buffer back while idle
                        return;
                    }
                }
            };
            // A request that panics must not leave the socket without a worker (its state
            // would still say one runs): the panic is logged and the next request goes on.
            if futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(job))
                .await
                .is_err()
            {
                tracing::error!("a request handler panicked");
            }
        }
    }
}

/// Queues an acknowledged request behind the socket's earlier ones: `f` gets the parsed
/// payload, its result is the ack.
fn queue<A, Req, Res, F, Fut>(
    s: SocketRef<A>,
    ctx: Arc<Ctx>,
    event: &'static str,
    data: Option<Value>,
    ack: AckSender<A>,
    f: F,
) where
    A: Adapter,
    Req: DeserializeOwned + Send + 'static,
    Res: Serialize + Send + 'static,
    F: FnOnce(Call<A>, Req) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Res, ChatError>> + Send + 'static,
{
    let Some(queue) = s.extensions.get::<RequestQueue>() else {
        return;
    };
    let Some(slot) = queue.reserve() else {
        tracing::debug!(event, "request queue full");
        let _ = ack.send(&reply::<()>(Err(rate_limited())));
        return;
    };
    slot.push(Box::pin(async move {
        let result = async {
            let call = Call::start(ctx, s, event).await?;
            match parse::<Req>(data.unwrap_or(Value::Null)) {
                Ok(req) => f(call, req).await,
                Err(e) => Err(call.refuse(e).await),
            }
        }
        .await;
        if let Err(e) = &result {
            tracing::debug!(event, code = ?e.code, reason = %e.message, "request refused");
        }
        // The client may not have asked for an ack; nothing to do then.
        let _ = ack.send(&reply(result));
    }));
}

/// Deserializes a payload; a missing payload reads as `{}`.
pub(crate) fn parse<T: DeserializeOwned>(data: Value) -> Result<T, ChatError> {
    let data = match data {
        Value::Null => Value::Object(Default::default()),
        v => v,
    };
    if !data.is_object() {
        return Err(ChatError::bad_request("the payload must be an object"));
    }
    serde_json::from_value(data).map_err(|e| ChatError::bad_request(format!("bad payload: {e}")))
}

/// The ack for a handler result.
pub(crate) fn reply<T: Serialize>(result: Result<T, ChatError>) -> Value {
    let err = |e: ChatError| serde_json::json!({ "ok": false, "error": { "code": e.code, "message": e.message } });
    match result.map(|data| serde_json::to_value(data)) {
        Ok(Ok(Value::Object(mut map))) => {
            map.insert("ok".into(), Value::Bool(true));
            Value::Object(map)
        }
        Ok(Ok(Value::Null)) => serde_json::json!({ "ok": true }),
        Ok(Ok(_)) | Ok(Err(_)) => {
            tracing::error!("a handler produced a reply that is not an object");
            err(ChatError::new(ErrorCode::Unavailable, "internal error"))
        }
        Err(e) => err(e),
    }
}

/// Socket.IO room names. Rooms joined through chat-core; the cluster adapter routes by them.
pub(crate) mod rooms {
    use crate::protocol::{GroupId, UserId};

    /// Every socket of a user.
    pub fn user(u: &UserId) -> String {
        format!("user:{u}")
    }

    /// Every socket of every member of a group.
    pub fn group(g: &GroupId) -> String {
        format!("group:{g}")
    }

    /// Sockets subscribed to a user's presence.
    pub fn presence(u: &UserId) -> String {
        format!("presence:{u}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn replies_have_the_contract_shape() {
        #[derive(Serialize)]
        struct Members {
            members: Vec<String>,
        }
        let ok = reply(Ok(Members {
            members: vec!["a".into()],
        }));
        assert_eq!(ok, json!({"ok": true, "members": ["a"]}));
        assert_eq!(reply(Ok(())), json!({"ok": true}));
        let err = reply::<()>(Err(ChatError::forbidden("no")));
        assert_eq!(
            err,
            json!({"ok": false, "error": {"code": "forbidden", "message": "no"}})
        );
    }

    #[test]
    fn payloads_must_be_objects() {
        #[derive(serde::Deserialize, Debug)]
        struct Req {
            #[allow(dead_code)]
            x: Option<u8>,
        }
        assert!(parse::<Req>(Value::Null).is_ok());
        for bad in [json!("s"), json!(5), json!([1]), json!({"x": "y"})] {
            assert_eq!(parse::<Req>(bad).unwrap_err().code, ErrorCode::BadRequest);
        }
    }
}
