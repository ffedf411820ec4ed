//! The sequencer on its own, time paused: each emit reports its message's number on a
//! channel, so a test sees what devices would get and in which order.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::{sync::mpsc, time::Instant};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::protocol::GroupId;

/// Emits reported by messages read from the store: their number plus this.
const FROM_STORE: u64 = 1000;

/// Message `n` (ids a millisecond apart).
fn id(n: u64) -> MessageId {
    MessageId {
        ms: 1_000_000 + n,
        seq: 0,
    }
}

fn group(name: &str) -> ConversationId {
    ConversationId::Group(GroupId::parse(name).unwrap())
}

struct Node {
    order: Arc<Sequencer>,
    waits: Option<Waits>,
    tx: mpsc::UnboundedSender<u64>,
    rx: mpsc::UnboundedReceiver<u64>,
}

impl Node {
    fn new() -> Self {
        let (order, waits) = Sequencer::new(OrderMetrics::noop());
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            order: Arc::new(order),
            waits: Some(waits),
            tx,
            rx,
        }
    }

    /// Offers message `n` of `conv`, whose predecessor is `prev`.
    fn offer_in(&self, conv: &ConversationId, n: u64, prev: Option<u64>) {
        let tx = self.tx.clone();
        let emit: Emit = Box::pin(async move {
            let _ = tx.send(n);
        });
        self.order.offer(conv, id(n), prev.map(id), emit);
    }

    fn offer(&self, n: u64, prev: Option<u64>) {
        self.offer_in(&group("g"), n, prev);
    }

    /// Runs the fill loop on a store that holds messages `1..=stored` of every conversation;
    /// returns how many reads it made.
    fn fill_from(&mut self, stored: u64, stop: &CancellationToken) -> Arc<AtomicUsize> {
        let (reads, tx) = (Arc::new(AtomicUsize::new(0)), self.tx.clone());
        let counted = reads.clone();
        let read = move |_conv: ConversationId, upto: MessageId| {
            counted.fetch_add(1, Ordering::SeqCst);
            let found: Vec<(MessageId, Emit)> = (1..=stored)
                .filter(|n| id(*n) < upto)
                .map(|n| {
                    let tx = tx.clone();
                    let emit: Emit = Box::pin(async move {
                        let _ = tx.send(FROM_STORE + n);
                    });
                    (id(n), emit)
                })
                .collect();
            async move { found }
        };
        let waits = self.waits.take().unwrap();
        tokio::spawn(fill::run(self.order.clone(), waits, read, stop.clone()));
        reads
    }

    /// What was emitted until the paused clock has moved on by `within` (it only moves
    /// when every task is idle, so everything due before has run).
    async fn emitted(&mut self, within: Duration) -> Vec<u64> {
        let deadline = Instant::now() + within;
        let mut out = Vec::new();
        while let Ok(Some(n)) = tokio::time::timeout_at(deadline, self.rx.recv()).await {
            out.push(n);
        }
        out
    }
}

const SOON: Duration = Duration::from_millis(10);

/// Messages offered in id order go at once, in that order.
#[tokio::test(start_paused = true)]
async fn in_order_goes_at_once() {
    let mut node = Node::new();
    node.offer(1, None);
    node.offer(2, Some(1));
    node.offer(3, Some(2));
    assert_eq!(node.emitted(SOON).await, [1, 2, 3]);
    assert_eq!(node.order.held(), 0);
}

/// A message whose predecessor has not been emitted waits for it, then both go in order.
#[tokio::test(start_paused = true)]
async fn out_of_order_is_held_until_its_predecessor() {
    let mut node = Node::new();
    node.offer(1, None);
    node.offer(4, Some(3));
    node.offer(3, Some(2));
    assert_eq!(node.emitted(SOON).await, [1]);
    assert_eq!(node.order.held(), 2);
    node.offer(2, Some(1));
    assert_eq!(node.emitted(SOON).await, [2, 3, 4]);
    assert_eq!(node.order.held(), 0);
    // Another conversation is not held up by this one's order.
    node.offer_in(&group("other"), 7, None);
    assert_eq!(node.emitted(SOON).await, [7]);
}

/// A predecessor that never comes is read from the store once the wait is over (not
/// before), emitted first, and not emitted again when its late original comes.
#[tokio::test(start_paused = true)]
async fn a_gap_is_filled_from_the_store_after_the_wait() {
    let mut node = Node::new();
    let stop = CancellationToken::new();
    let reads = node.fill_from(3, &stop);
    node.offer(1, None);
    node.offer(3, Some(2));
    let held_at = Instant::now();
    assert_eq!(node.emitted(GAP_WAIT - SOON).await, [1]);
    assert_eq!(
        reads.load(Ordering::SeqCst),
        0,
        "read before the wait ended"
    );
    assert_eq!(node.emitted(SOON * 2).await, [FROM_STORE + 2, 3]);
    let waited = held_at.elapsed();
    assert!(
        waited >= GAP_WAIT && waited <= GAP_WAIT + SOON * 2,
        "{waited:?}"
    );
    assert_eq!(reads.load(Ordering::SeqCst), 1);
    node.offer(2, Some(1));
    node.offer(4, Some(3));
    assert_eq!(node.emitted(GAP_WAIT * 2).await, [4]);
    assert_eq!((node.order.held(), reads.load(Ordering::SeqCst)), (0, 1));
    stop.cancel();
}

/// A message offered twice (held, or already emitted) is emitted once.
#[tokio::test(start_paused = true)]
async fn duplicates_are_dropped() {
    let mut node = Node::new();
    node.offer(1, None);
    node.offer(3, Some(2));
    node.offer(3, Some(2));
    assert_eq!(node.order.held(), 1);
    node.offer(2, Some(1));
    node.offer(2, Some(1));
    node.offer(1, None);
    assert_eq!(node.emitted(SOON).await, [1, 2, 3]);
}

/// One conversation holds at most `MAX_WAITING` messages: past it, what it held goes in id
/// order, then the new one; a missing message that comes after all is emitted late, out of
/// order rather than not at all.
#[tokio::test(start_paused = true)]
async fn a_conversation_holds_at_most_max_waiting() {
    let mut node = Node::new();
    node.offer(1, None);
    // 3, 5, 7, ...: each waits for the even number before it.
    let held: Vec<u64> = (0..MAX_WAITING as u64).map(|k| 2 * k + 3).collect();
    for n in &held {
        node.offer(*n, Some(n - 1));
    }
    assert_eq!(node.emitted(SOON).await, [1]);
    assert_eq!(node.order.held(), MAX_WAITING);
    let past = held.last().unwrap() + 2;
    node.offer(past, Some(past - 1));
    let mut all = held.clone();
    all.push(past);
    assert_eq!(node.emitted(SOON).await, all);
    assert_eq!(node.order.held(), 0);
    node.offer(2, Some(1));
    assert_eq!(node.emitted(SOON).await, [2]);
}

/// The node holds at most `MAX_HELD` messages over all its conversations: past it, a
/// message goes without waiting, and the held set does not grow.
#[tokio::test(start_paused = true)]
async fn a_node_holds_at_most_max_held() {
    let mut node = Node::new();
    let per = 500;
    assert!(per < MAX_WAITING as u64 && (MAX_HELD as u64).is_multiple_of(per));
    let convs: Vec<ConversationId> = (0..MAX_HELD as u64 / per)
        .map(|i| group(&format!("g{i}")))
        .collect();
    for conv in &convs {
        node.offer_in(conv, 1, None);
        for k in 0..per {
            node.offer_in(conv, 2 * k + 3, Some(2 * k + 2));
        }
    }
    assert_eq!(node.emitted(SOON).await.len(), convs.len());
    assert_eq!(node.order.held(), MAX_HELD);
    let one_more = group("one-more");
    node.offer_in(&one_more, 1, None);
    node.offer_in(&one_more, 3, Some(2));
    assert_eq!(node.emitted(SOON).await, [1, 3]);
    assert_eq!(node.order.held(), MAX_HELD);
}
