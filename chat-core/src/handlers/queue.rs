//! The per-socket request queue: a socket's acknowledged events run one at a time, in the
//! order they arrived.

use std::{
    collections::VecDeque,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard},
};

use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;
use socketioxide::{
    adapter::Adapter,
    extract::{AckSender, SocketRef},
};

use super::{
    Ctx,
    call::{Call, parse, rate_limited, reply},
};
use crate::error::ChatError;

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
pub(super) fn queue<A, Req, Res, F, Fut>(
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
        ctx.metrics.event(event, Some(rate_limited().code));
        let _ = ack.send(&reply::<()>(Err(rate_limited())));
        return;
    };
    slot.push(Box::pin(async move {
        let tally = ctx.clone();
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
        let outcome = result.as_ref().err().map(|e| e.code);
        tally.metrics.event(event, outcome);
        // The client may not have asked for an ack; nothing to do then.
        let _ = ack.send(&reply(result));
    }));
}
