//! A socket's outgoing packets: a bounded queue, the latest volatile packets, and the one
//! transport that writes them.
//!
//! This replaces a tokio `mpsc` channel and a `watch` channel per socket. Both keep their
//! shared state for as long as the socket lives, about 1.1 KB of it for an idle socket (the
//! channel's first block of 32 slots, its semaphore, the watch's eight notifiers). Here an
//! idle socket keeps a mutex, a waker and a notifier; the queue is allocated while packets
//! wait and released once they are all taken.
//!
//! There is one reader at a time, the transport holding the socket's `internal_rx`: the
//! websocket session for its whole life, or one polling request after another.
//!
//! The queue is bounded in packet groups (`capacity`) and in bytes (`budget`): the bytes of
//! the packets queued and of those the reader took but has not handed on yet (a websocket
//! session releases them once the websocket is flushed, so what tungstenite buffers for a
//! client that stopped reading counts too; a polling request as it encodes them). A packet
//! that would go past either bound is refused; past the budget, unless nothing is held (one
//! packet larger than the budget still goes, alone). A refusal means the client fell behind:
//! the socket closes it (`Socket::fell_behind`).
use std::{
    collections::VecDeque,
    sync::Mutex,
    task::{Context, Poll},
};

use engineioxide_core::{Packet, PacketBuf};
use futures_core::Stream;
use futures_util::task::AtomicWaker;
use tokio::sync::{Notify, mpsc::error::TrySendError};

use crate::socket::QueuedPackets;

pub(crate) struct Outbox {
    state: Mutex<State>,
    /// How many packet groups may wait, reserved ones included.
    capacity: usize,
    /// How many bytes may be held (see the module's docs).
    budget: usize,
    /// The reader waiting for packets.
    reader: AtomicWaker,
    /// Wakes [`Outbox::closed`].
    closing: Notify,
}

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<QueuedPackets>,
    /// Places held by [`Permit`]s.
    reserved: usize,
    /// The latest volatile packets, replaced by newer ones, written when the queue is empty.
    volatile: Option<QueuedPackets>,
    closed: bool,
    /// Bytes of the packets queued, and of those taken and not yet released.
    held: usize,
    /// A packet was refused: the client fell behind.
    overflowed: bool,
}

/// A place in the queue for one packet group.
pub(crate) struct Permit<'a> {
    outbox: &'a Outbox,
}

/// The bytes `packets` count for: their encoded length (binary data unencoded).
pub(crate) fn size(packets: &PacketBuf) -> usize {
    packets.iter().map(|p| p.get_size_hint(false)).sum()
}

/// The bytes one packet counts for.
pub(crate) fn packet_size(packet: &Packet) -> usize {
    packet.get_size_hint(false)
}

impl Outbox {
    pub fn new(capacity: usize, budget: usize) -> Self {
        Self {
            state: Mutex::default(),
            capacity,
            budget,
            reader: AtomicWaker::new(),
            closing: Notify::new(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // Nothing panics while holding the lock; a poisoned one still holds valid state.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `bytes` more fit: within the budget, or alone.
    fn fits(&self, state: &State, bytes: usize) -> bool {
        state.held == 0 || state.held.saturating_add(bytes) <= self.budget
    }

    /// Whether one more packet group of `bytes` may be queued or reserved.
    fn admit(&self, state: &State, bytes: usize) -> Result<(), TrySendError<()>> {
        if state.closed {
            Err(TrySendError::Closed(()))
        } else if state.queue.len() + state.reserved >= self.capacity || !self.fits(state, bytes) {
            Err(TrySendError::Full(()))
        } else {
            Ok(())
        }
    }

    /// Queues packets, unless the queue is full (in packet groups or bytes) or closed.
    pub fn try_send(&self, packets: QueuedPackets) -> Result<(), TrySendError<QueuedPackets>> {
        {
            let bytes = size(&packets);
            let mut state = self.state();
            match self.admit(&state, bytes) {
                Ok(()) => {
                    state.queue.push_back(packets);
                    state.held += bytes;
                }
                Err(TrySendError::Closed(())) => return Err(TrySendError::Closed(packets)),
                Err(TrySendError::Full(())) => return Err(TrySendError::Full(packets)),
            }
        }
        self.reader.wake();
        Ok(())
    }

    /// Holds a place in the queue, unless it is full or closed (the bytes are checked when
    /// the packets come, [`Permit::send`]).
    pub fn try_reserve(&self) -> Result<Permit<'_>, TrySendError<()>> {
        let mut state = self.state();
        self.admit(&state, 0)?;
        state.reserved += 1;
        Ok(Permit { outbox: self })
    }

    /// The reader handed on packets of `bytes` (written and flushed, or encoded).
    pub fn release(&self, bytes: usize) {
        let mut state = self.state();
        state.held = state.held.saturating_sub(bytes);
    }

    /// The reader keeps packets of `bytes` aside (a polling request's peeked packet): they
    /// count again until released.
    pub fn hold(&self, bytes: usize) {
        self.state().held += bytes;
    }

    /// Bytes held now.
    pub fn held(&self) -> usize {
        self.state().held
    }

    /// The budget in bytes.
    pub fn budget(&self) -> usize {
        self.budget
    }

    /// Records that a packet was refused; `true` the first time only.
    pub fn overflow(&self) -> bool {
        !std::mem::replace(&mut self.state().overflowed, true)
    }

    /// Whether a packet was refused: the client fell behind.
    pub fn overflowed(&self) -> bool {
        self.state().overflowed
    }

    /// Replaces the volatile packets not yet written; `false` once the queue is closed.
    pub fn send_volatile(&self, packets: QueuedPackets) -> bool {
        {
            let mut state = self.state();
            if state.closed {
                return false;
            }
            state.volatile = Some(packets);
        }
        self.reader.wake();
        true
    }

    /// No more packets are taken; those queued can still be read.
    pub fn close(&self) {
        {
            let mut state = self.state();
            state.closed = true;
            state.volatile = None;
        }
        self.closing.notify_waiters();
        self.reader.wake();
    }

    pub fn is_closed(&self) -> bool {
        self.state().closed
    }

    /// Resolves once the queue is closed.
    pub async fn closed(&self) {
        let notified = self.closing.notified();
        tokio::pin!(notified);
        // Registered before the check, so a close in between still wakes it.
        notified.as_mut().enable();
        if !self.is_closed() {
            notified.await;
        }
    }

    /// The next queued packets; `None` once the queue is closed and empty. For the reader
    /// (the holder of `internal_rx`) only.
    pub fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<QueuedPackets>> {
        self.reader.register(cx.waker());
        let mut state = self.state();
        match state.queue.pop_front() {
            Some(packets) => {
                if state.queue.is_empty() {
                    // Idle sockets are most of them: they keep no queue.
                    state.queue = VecDeque::new();
                }
                Poll::Ready(Some(packets))
            }
            None if state.closed => Poll::Ready(None),
            None => Poll::Pending,
        }
    }

    /// The latest volatile packets, once. For the reader only.
    pub fn poll_volatile(&self, cx: &mut Context<'_>) -> Poll<QueuedPackets> {
        self.reader.register(cx.waker());
        match self.state().volatile.take() {
            Some(packets) => Poll::Ready(packets),
            None => Poll::Pending,
        }
    }

    /// The next queued packets, waiting for them. For the reader only.
    #[cfg(any(test, feature = "__test_harness"))]
    pub async fn recv(&self) -> Option<QueuedPackets> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Queued packets first, then volatile ones, as the polling transport encodes them; ends
    /// once the queue is closed and empty. Packets taken are released. For the reader only.
    pub fn stream(&self) -> impl Stream<Item = PacketBuf> + '_ {
        futures_util::stream::poll_fn(move |cx| match self.poll_recv(cx) {
            Poll::Ready(packets) => Poll::Ready(packets.map(|p| {
                self.release(size(&p));
                *p
            })),
            Poll::Pending => self.poll_volatile(cx).map(|p| Some(*p)),
        })
    }
}

impl Permit<'_> {
    /// Queues packets in the reserved place (dropped if the queue was closed meanwhile);
    /// `false` when they do not fit in the budget (they are dropped).
    pub fn send(self, packets: QueuedPackets) -> bool {
        let outbox = self.outbox;
        std::mem::forget(self);
        let bytes = size(&packets);
        {
            let mut state = outbox.state();
            state.reserved -= 1;
            if state.closed {
                return true;
            }
            if !outbox.fits(&state, bytes) {
                return false;
            }
            state.queue.push_back(packets);
            state.held += bytes;
        }
        outbox.reader.wake();
        true
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.outbox.state().reserved -= 1;
    }
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state();
        f.debug_struct("Outbox")
            .field("queued", &state.queue.len())
            .field("reserved", &state.reserved)
            .field("volatile", &state.volatile.is_some())
            .field("closed", &state.closed)
            .field("held", &state.held)
            .field("overflowed", &state.overflowed)
            .field("capacity", &self.capacity)
            .field("budget", &self.budget)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::{sync::Arc, task::Waker};

    use engineioxide_core::Packet;
    use futures_util::{FutureExt, StreamExt};
    use smallvec::smallvec;

    use super::*;

    fn packets(text: &str) -> QueuedPackets {
        Box::new(smallvec![Packet::Message(text.to_string().into())])
    }

    fn text(packets: &PacketBuf) -> String {
        match &packets[0] {
            Packet::Message(msg) => msg.to_string(),
            other => panic!("unexpected packet {other:?}"),
        }
    }

    fn poll_now(outbox: &Outbox) -> Poll<Option<QueuedPackets>> {
        outbox.poll_recv(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn full_counts_reserved_places_and_frees_them_on_drop() {
        let outbox = Outbox::new(2, usize::MAX);
        outbox.try_send(packets("a")).unwrap();
        let permit = outbox.try_reserve().unwrap();
        assert!(matches!(
            outbox.try_send(packets("b")),
            Err(TrySendError::Full(_))
        ));
        assert!(matches!(outbox.try_reserve(), Err(TrySendError::Full(()))));
        drop(permit);
        assert!(outbox.try_reserve().unwrap().send(packets("c")));
        let Poll::Ready(Some(first)) = poll_now(&outbox) else {
            panic!("nothing queued")
        };
        let Poll::Ready(Some(second)) = poll_now(&outbox) else {
            panic!("one queued")
        };
        assert_eq!((text(&first), text(&second)), ("a".into(), "c".into()));
        assert!(poll_now(&outbox).is_pending());
    }

    #[test]
    fn closed_refuses_packets_but_yields_those_queued() {
        let outbox = Outbox::new(4, usize::MAX);
        outbox.try_send(packets("a")).unwrap();
        let permit = outbox.try_reserve().unwrap();
        assert!(outbox.send_volatile(packets("v")));
        outbox.close();
        assert!(matches!(
            outbox.try_send(packets("b")),
            Err(TrySendError::Closed(_))
        ));
        assert!(matches!(
            outbox.try_reserve(),
            Err(TrySendError::Closed(()))
        ));
        assert!(!outbox.send_volatile(packets("w")));
        assert!(
            permit.send(packets("late")),
            "dropped, as the queue is closed"
        );
        let Poll::Ready(Some(first)) = poll_now(&outbox) else {
            panic!("queued packet lost")
        };
        assert_eq!(text(&first), "a");
        assert!(matches!(poll_now(&outbox), Poll::Ready(None)));
        assert!(outbox.closed().now_or_never().is_some());
    }

    #[test]
    fn volatile_keeps_the_latest_and_comes_after_the_queue() {
        let outbox = Outbox::new(4, usize::MAX);
        assert!(outbox.send_volatile(packets("v1")));
        assert!(outbox.send_volatile(packets("v2")));
        outbox.try_send(packets("q")).unwrap();
        let mut stream = std::pin::pin!(outbox.stream());
        let got: Vec<String> = (0..2)
            .map(|_| {
                text(
                    &stream
                        .next()
                        .now_or_never()
                        .flatten()
                        .expect("a packet ready"),
                )
            })
            .collect();
        assert_eq!(got, ["q", "v2"]);
        assert!(
            stream.next().now_or_never().is_none(),
            "v1 was replaced, v2 written once"
        );
    }

    /// Bytes count from queueing until the reader releases them; past the budget a packet is
    /// refused, unless nothing is held.
    #[test]
    fn bytes_are_bounded_by_the_budget() {
        let outbox = Outbox::new(100, 10);
        // A message counts its text and its packet type: 21 bytes, over the budget, alone.
        outbox.try_send(packets(&"x".repeat(20))).unwrap();
        assert_eq!(outbox.held(), 21);
        assert!(matches!(
            outbox.try_send(packets("a")),
            Err(TrySendError::Full(_))
        ));
        assert!(matches!(outbox.try_reserve(), Err(TrySendError::Full(()))));
        // A websocket session takes it: held until written and flushed.
        let Poll::Ready(Some(taken)) = poll_now(&outbox) else {
            panic!("nothing queued")
        };
        assert_eq!(outbox.held(), 21);
        outbox.release(size(&taken));
        assert_eq!(outbox.held(), 0);

        outbox.try_send(packets("abcd")).unwrap();
        // The bytes of a reserved place are checked when its packets come.
        let permit = outbox.try_reserve().unwrap();
        assert!(!permit.send(packets("abcdefgh")), "5 + 9 bytes > 10");
        assert!(outbox.try_reserve().unwrap().send(packets("abc")));
        assert_eq!(outbox.held(), 9);
        assert!(outbox.overflow(), "the first refusal is reported");
        assert!(!outbox.overflow(), "once");
    }

    /// The polling transport's stream releases what it takes; a packet it keeps aside counts
    /// again.
    #[test]
    fn the_polling_stream_releases_what_it_takes() {
        let outbox = Outbox::new(100, 100);
        outbox.try_send(packets("abc")).unwrap();
        outbox.try_send(packets("de")).unwrap();
        let mut stream = std::pin::pin!(outbox.stream());
        let first = stream.next().now_or_never().flatten().expect("queued");
        assert_eq!(outbox.held(), 3);
        outbox.hold(size(&first));
        assert_eq!(outbox.held(), 7);
    }

    #[test]
    fn an_emptied_queue_is_released() {
        let outbox = Outbox::new(128, usize::MAX);
        for i in 0..100 {
            outbox.try_send(packets(&i.to_string())).unwrap();
        }
        while let Poll::Ready(Some(_)) = poll_now(&outbox) {}
        assert_eq!(outbox.state().queue.capacity(), 0);
    }

    #[tokio::test]
    async fn a_waiting_reader_and_closed_wake_up() {
        let outbox = Arc::new(Outbox::new(4, usize::MAX));
        let reader = tokio::spawn({
            let outbox = outbox.clone();
            async move { outbox.recv().await.map(|p| text(&p)) }
        });
        let closed = tokio::spawn({
            let outbox = outbox.clone();
            async move { outbox.closed().await }
        });
        tokio::task::yield_now().await;
        outbox.try_send(packets("x")).unwrap();
        assert_eq!(reader.await.unwrap().as_deref(), Some("x"));
        outbox.close();
        closed.await.unwrap();
    }
}
