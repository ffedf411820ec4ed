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

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use futures_util::FutureExt;
use tokio::{sync::mpsc, time::Instant};

use crate::protocol::{ConversationId, MessageId};

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
/// Most messages held back in one conversation; past it the oldest goes without waiting.
const MAX_WAITING: usize = 1024;
/// Ids emitted from the store remembered per conversation, so their late originals are
/// skipped.
const FILLED_KEPT: usize = 2 * FILL_MAX;

/// Per conversation, the order of this node's live emits (see the module docs).
#[derive(Debug)]
pub(crate) struct Sequencer {
    convs: Mutex<HashMap<ConversationId, Conv>>,
    /// Held-back messages, in the order their wait ends, for [`fill_gaps`].
    waits: mpsc::UnboundedSender<Wait>,
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
        }
    }

    fn push(&mut self, id: MessageId, emit: Emit, now: Instant) {
        self.ready.push_back(emit);
        if id > self.last {
            self.last = id;
            self.at = now;
        }
    }

    /// Moves the held-back messages whose predecessor has been emitted to `ready`.
    fn release(&mut self, now: Instant) {
        while let Some(entry) = self.waiting.first_entry() {
            if entry.get().0 > self.last {
                break;
            }
            let (id, (_, emit)) = entry.remove_entry();
            self.push(id, emit, now);
        }
    }

    fn idle(&self, now: Instant) -> bool {
        !self.running
            && self.waiting.is_empty()
            && self.filling.is_none()
            && now.duration_since(self.at) >= IDLE
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
    pub(crate) fn new() -> (Self, Waits) {
        let (waits, rx) = mpsc::unbounded_channel();
        let convs = Mutex::default();
        (Self { convs, waits }, Waits(rx))
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<ConversationId, Conv>> {
        // Every critical section leaves the map consistent (no await, no panic midway).
        self.convs.lock().unwrap_or_else(|p| p.into_inner())
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
        let mut convs = self.lock();
        if convs.len() >= MAX_TRACKED && !convs.contains_key(conversation) {
            drop(convs);
            tokio::spawn(emit);
            return;
        }
        let conv = convs
            .entry(conversation.clone())
            .or_insert_with(|| Conv::new(floor(id), now));
        if id <= conv.last {
            // Late: emitted from the store already, or out of order rather than not at all.
            if conv.filled.contains(&id) {
                return;
            }
            conv.ready.push_back(emit);
        } else if prev.is_none_or(|p| p <= conv.last) {
            conv.push(id, emit, now);
            conv.release(now);
        } else {
            conv.waiting.insert(id, (prev.unwrap_or_default(), emit));
            if conv.waiting.len() > MAX_WAITING
                && let Some((id, (_, emit))) = conv.waiting.pop_first()
            {
                conv.push(id, emit, now);
                conv.release(now);
            }
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
                let mut convs = self.lock();
                let Some(conv) = convs.get_mut(&conversation) else {
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

    /// The wait of `id` is over: if it is still held back, the range of ids to read from the
    /// store, after the last emitted and before `id`; `None` if it went meanwhile, or if a
    /// fill of the conversation is under way (which then goes on up to `id`).
    pub(crate) fn gap(&self, conversation: &ConversationId, id: MessageId) -> Option<MessageId> {
        let mut convs = self.lock();
        let conv = convs.get_mut(conversation)?;
        if !conv.waiting.contains_key(&id) {
            return None;
        }
        match &mut conv.filling {
            Some(more) => {
                *more = (*more).max(Some(id));
                None
            }
            None => {
                conv.filling = Some(None);
                Some(conv.last)
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
        let mut convs = self.lock();
        let conv = convs.get_mut(conversation)?;
        let mut due: BTreeMap<MessageId, (bool, Emit)> = found
            .into_iter()
            .filter(|(id, _)| *id > conv.last && *id < upto)
            .map(|(id, emit)| (id, (true, emit)))
            .collect();
        // What arrived meanwhile is emitted as it came, not from the store.
        while let Some(entry) = conv.waiting.first_entry() {
            if *entry.key() > upto {
                break;
            }
            let (id, (_, emit)) = entry.remove_entry();
            due.insert(id, (false, emit));
        }
        for (id, (from_store, emit)) in due {
            if from_store {
                conv.filled.push_back(id);
                if conv.filled.len() > FILLED_KEPT {
                    conv.filled.pop_front();
                }
            }
            conv.push(id, emit, now);
        }
        conv.release(now);
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

    /// The last id emitted in `conversation`, for a fill's read.
    pub(crate) fn last(&self, conversation: &ConversationId) -> Option<MessageId> {
        self.lock().get(conversation).map(|c| c.last)
    }

    /// Forgets the conversations idle for [`IDLE`]; returns how many are left.
    pub(crate) fn forget_idle(&self) -> usize {
        let now = Instant::now();
        let mut convs = self.lock();
        convs.retain(|_, c| !c.idle(now));
        if convs.capacity() > 2 * convs.len() + 64 {
            convs.shrink_to_fit();
        }
        convs.len()
    }
}

mod fill;

pub(crate) use fill::fill_gaps;
