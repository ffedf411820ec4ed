//! Live delivery in id order: per conversation, each node emits messages to its devices in
//! the order of their ids, whatever order their sends finish or their entries arrive in.
//!
//! Ids are handed out when a message is stored; the store also says which message of the
//! conversation came before it (`prev`). Two sends of one conversation that overlap, on one
//! node or on two, reach their emits in any order, so the [`Sequencer`] holds a message back
//! until the one before it has been emitted here. A message whose predecessor does not come
//! within [`GAP_WAIT`] (its node died after storing it, its entry is stuck behind a Redis
//! failover or a frozen node, or this node was not among its targets) is not held longer:
//! the missing ones are read back from the store ([`fill_gaps`], at most [`FILL_MAX`]) and
//! emitted first, and the late original, if it ever comes, is not emitted again. If the
//! store cannot say, the waiting message goes anyway; clients catch up with `sync`.
//!
//! The cost on the send path is one short lock of a map per message, no store call: the
//! order comes from the append's answer. A conversation is tracked only while it is active
//! (forgotten after [`IDLE`] without a message) and at most [`MAX_TRACKED`] at once; past
//! that, messages of untracked conversations are emitted at once, as before. A conversation
//! this node starts tracking waits only for messages stored in the [`RECENT`] second before.
//!
//! Memory is bounded: at most [`MAX_HELD`] messages are held back on a node, and
//! [`MAX_WAITING`] in one conversation. Past either, the conversation stops waiting (what it
//! held goes in id order, then the new message) and a predecessor that comes after all is
//! emitted late, out of order rather than not at all. `chat_live_order_total` counts
//! messages held, filled from the store and emitted late.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use futures_util::FutureExt;
use tokio::{sync::mpsc, time::Instant};

use crate::{
    metrics::OrderMetrics,
    protocol::{ConversationId, MessageId},
};

/// An emit of one message to this node's devices, ready to run.
pub(crate) type Emit = Pin<Box<dyn Future<Output = ()> + Send>>;

/// How long a message waits for its conversation's previous message before the gap is
/// filled from the store. Between live nodes an entry takes a few milliseconds.
pub(crate) const GAP_WAIT: Duration = Duration::from_millis(500);
/// Most messages read back from the store to fill one gap (the newest before the waiting one).
pub(crate) const FILL_MAX: usize = 64;
/// A conversation with nothing emitted for this long is forgotten.
pub(crate) const IDLE: Duration = Duration::from_secs(60);
/// Most conversations tracked at once.
pub(crate) const MAX_TRACKED: usize = 100_000;
/// A conversation seen here for the first time (or again after [`IDLE`]) waits only for
/// messages stored this shortly before: those may still be on their way (concurrent sends,
/// retries after a fault), older ones were emitted, or not sent to this node.
pub(crate) const RECENT: Duration = Duration::from_secs(1);
/// Most messages held back on this node, all conversations together (each holds its
/// message, up to `max_payload`).
pub(crate) const MAX_HELD: usize = 10_000;
/// Most messages held back in one conversation.
pub(crate) const MAX_WAITING: usize = 1024;
/// Ids emitted from the store remembered per conversation, so their late originals are
/// skipped.
const FILLED_KEPT: usize = 2 * FILL_MAX;
/// The newest ids emitted live remembered per conversation, so one offered twice is emitted
/// once.
const RECENT_KEPT: usize = 8;

/// Per conversation, the order of this node's live emits (see the module docs).
#[derive(Debug)]
pub(crate) struct Sequencer {
    state: Mutex<State>,
    /// Held-back messages, in the order their wait ends, for [`fill_gaps`].
    waits: mpsc::UnboundedSender<Wait>,
    metrics: OrderMetrics,
}

#[derive(Debug, Default)]
struct State {
    convs: HashMap<ConversationId, Conv>,
    /// Messages held back, in every `Conv::waiting` together.
    held: usize,
}

/// A held-back message whose wait ends at `until`.
#[derive(Debug)]
pub(crate) struct Wait {
    pub until: Instant,
    pub conversation: ConversationId,
    pub id: MessageId,
}

/// The waits of a [`Sequencer`], for [`fill_gaps`].
#[derive(Debug)]
pub(crate) struct Waits(pub(crate) mpsc::UnboundedReceiver<Wait>);

struct Conv {
    /// The newest id emitted (or queued to be) here.
    last: MessageId,
    /// When `last` last moved.
    at: Instant,
    /// Messages held back for their predecessor, by id, with that predecessor.
    waiting: BTreeMap<MessageId, (MessageId, Emit)>,
    /// Emits in order, run one at a time by one task.
    ready: VecDeque<Emit>,
    running: bool,
    /// A fill from the store is under way; `Some` more to fill when it ends.
    filling: Option<Option<MessageId>>,
    /// Ids emitted from the store, newest last.
    filled: VecDeque<MessageId>,
    /// The newest ids queued live, newest last.
    recent: VecDeque<MessageId>,
}

impl std::fmt::Debug for Conv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conv")
            .field("last", &self.last)
            .field("waiting", &self.waiting.len())
            .field("ready", &self.ready.len())
            .finish_non_exhaustive()
    }
}

impl Conv {
    fn new(last: MessageId, now: Instant) -> Self {
        Self {
            last,
            at: now,
            waiting: BTreeMap::new(),
            ready: VecDeque::new(),
            running: false,
            filling: None,
            filled: VecDeque::new(),
            recent: VecDeque::new(),
        }
    }

    fn push(&mut self, id: MessageId, emit: Emit, now: Instant) {
        self.ready.push_back(emit);
        keep(&mut self.recent, id, RECENT_KEPT);
        if id > self.last {
            self.last = id;
            self.at = now;
        }
    }

    /// Whether `id` was queued here already: held, emitted live lately, or from the store.
    fn seen(&self, id: MessageId) -> bool {
        self.waiting.contains_key(&id) || self.recent.contains(&id) || self.filled.contains(&id)
    }

    /// Moves the held-back messages whose predecessor has been emitted to `ready`; returns
    /// how many.
    fn release(&mut self, now: Instant) -> usize {
        let mut n = 0;
        while let Some(entry) = self.waiting.first_entry() {
            if entry.get().0 > self.last {
                break;
            }
            let (id, (_, emit)) = entry.remove_entry();
            self.push(id, emit, now);
            n += 1;
        }
        n
    }

    /// Stops waiting for what is missing before `id`: the held-back messages before it go
    /// in id order. Returns how many.
    fn skip_to(&mut self, id: MessageId, now: Instant) -> usize {
        let mut n = 0;
        while let Some(entry) = self.waiting.first_entry() {
            if *entry.key() >= id {
                break;
            }
            let (id, (_, emit)) = entry.remove_entry();
            self.push(id, emit, now);
            n += 1;
        }
        n
    }

    fn idle(&self, now: Instant) -> bool {
        !self.running
            && self.waiting.is_empty()
            && self.filling.is_none()
            && now.duration_since(self.at) >= IDLE
    }
}

/// Appends `id` to `ring`, dropping the oldest past `cap`.
fn keep(ring: &mut VecDeque<MessageId>, id: MessageId, cap: usize) {
    ring.push_back(id);
    if ring.len() > cap {
        ring.pop_front();
    }
}

/// Where a conversation first seen with message `id` starts: [`RECENT`] before it (ids
/// start with the store's time in ms).
fn floor(id: MessageId) -> MessageId {
    MessageId {
        ms: id.ms.saturating_sub(RECENT.as_millis() as u64),
        seq: 0,
    }
}

impl Sequencer {
    pub(crate) fn new(metrics: OrderMetrics) -> (Self, Waits) {
        let (waits, rx) = mpsc::unbounded_channel();
        let state = Mutex::default();
        (
            Self {
                state,
                waits,
                metrics,
            },
            Waits(rx),
        )
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state consistent (no await, no panic midway).
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Emits message `id` of `conversation` (`emit`) once `prev`, the message before it, has
    /// been emitted here, or once the gap is filled (see the module docs). Never waits.
    pub(crate) fn offer(
        self: &Arc<Self>,
        conversation: &ConversationId,
        id: MessageId,
        prev: Option<MessageId>,
        emit: Emit,
    ) {
        let now = Instant::now();
        let mut state = self.lock();
        let State { convs, held } = &mut *state;
        if convs.len() >= MAX_TRACKED && !convs.contains_key(conversation) {
            drop(state);
            tokio::spawn(emit);
            return;
        }
        let conv = convs
            .entry(conversation.clone())
            .or_insert_with(|| Conv::new(floor(id), now));
        if conv.seen(id) {
            // Emitted from the store already (its entry came late), or offered twice.
            tracing::debug!(%conversation, %id, "live order: emitted already");
            return;
        }
        if id <= conv.last {
            // Its successors went without it (a cap, or a gap the store did not fill): out
            // of order rather than not at all.
            self.metrics.late.increment(1);
            conv.push(id, emit, now);
        } else if prev.is_none_or(|p| p <= conv.last) {
            conv.push(id, emit, now);
            *held -= conv.release(now);
        } else if *held >= MAX_HELD || conv.waiting.len() >= MAX_WAITING {
            tracing::debug!(%conversation, held = *held, "live order: too many held back, not waiting");
            *held -= conv.skip_to(id, now);
            conv.push(id, emit, now);
            *held -= conv.release(now);
        } else {
            conv.waiting.insert(id, (prev.unwrap_or_default(), emit));
            *held += 1;
            self.metrics.held.increment(1);
            let wait = Wait {
                until: now + GAP_WAIT,
                conversation: conversation.clone(),
                id,
            };
            let _ = self.waits.send(wait);
        }
        self.start(conversation, conv);
    }

    /// Starts the task that runs `conv`'s ready emits, unless one runs.
    fn start(self: &Arc<Self>, conversation: &ConversationId, conv: &mut Conv) {
        if conv.running || conv.ready.is_empty() {
            return;
        }
        conv.running = true;
        tokio::spawn(self.clone().run(conversation.clone()));
    }

    async fn run(self: Arc<Self>, conversation: ConversationId) {
        loop {
            let emit = {
                let mut state = self.lock();
                let Some(conv) = state.convs.get_mut(&conversation) else {
                    return;
                };
                match conv.ready.pop_front() {
                    Some(emit) => emit,
                    None => {
                        conv.running = false;
                        return;
                    }
                }
            };
            // An emit that panics must not leave the conversation without a runner.
            if std::panic::AssertUnwindSafe(emit)
                .catch_unwind()
                .await
                .is_err()
            {
                tracing::error!(%conversation, "a live emit panicked");
            }
        }
    }

    /// The wait of `id` is over: whether to fill the gap before it from the store. Not if
    /// it went meanwhile, or if a fill of the conversation is under way (which then goes on
    /// up to `id`).
    pub(crate) fn gap(&self, conversation: &ConversationId, id: MessageId) -> bool {
        let mut state = self.lock();
        let Some(conv) = state.convs.get_mut(conversation) else {
            return false;
        };
        if !conv.waiting.contains_key(&id) {
            return false;
        }
        match &mut conv.filling {
            Some(more) => {
                *more = (*more).max(Some(id));
                false
            }
            None => {
                conv.filling = Some(None);
                true
            }
        }
    }

    /// Ends a fill up to `upto`: emits `found` (the store's messages before `upto`, oldest
    /// first, with their emits) that were not emitted yet, then every held-back message up
    /// to `upto`, in id order. Returns the next id to fill up to, if more waits ended
    /// meanwhile.
    pub(crate) fn filled(
        self: &Arc<Self>,
        conversation: &ConversationId,
        upto: MessageId,
        found: Vec<(MessageId, Emit)>,
    ) -> Option<MessageId> {
        let now = Instant::now();
        let mut state = self.lock();
        let State { convs, held } = &mut *state;
        let conv = convs.get_mut(conversation)?;
        let mut due: BTreeMap<MessageId, (bool, Emit)> = found
            .into_iter()
            .filter(|(id, _)| *id > conv.last && *id < upto)
            .map(|(id, emit)| (id, (true, emit)))
            .collect();
        let missing = due.len();
        // What arrived meanwhile is emitted as it came, not from the store.
        while let Some(entry) = conv.waiting.first_entry() {
            if *entry.key() > upto {
                break;
            }
            let (id, (_, emit)) = entry.remove_entry();
            *held -= 1;
            due.insert(id, (false, emit));
        }
        for (id, (from_store, emit)) in due {
            if from_store {
                keep(&mut conv.filled, id, FILLED_KEPT);
                self.metrics.filled.increment(1);
            }
            conv.push(id, emit, now);
        }
        *held -= conv.release(now);
        tracing::debug!(%conversation, missing, "live order: gap filled from the store");
        self.start(conversation, conv);
        let more = conv.filling.take().flatten();
        match more.filter(|m| conv.waiting.contains_key(m)) {
            Some(next) => {
                conv.filling = Some(None);
                Some(next)
            }
            None => None,
        }
    }

    /// Forgets the conversations idle for [`IDLE`]; returns how many are left.
    pub(crate) fn forget_idle(&self) -> usize {
        let now = Instant::now();
        let mut state = self.lock();
        let convs = &mut state.convs;
        convs.retain(|_, c| !c.idle(now));
        if convs.capacity() > 2 * convs.len() + 64 {
            convs.shrink_to_fit();
        }
        convs.len()
    }

    /// How many messages are held back now.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.lock().held
    }
}

mod fill;
#[cfg(test)]
mod tests;

pub(crate) use fill::fill_gaps;
