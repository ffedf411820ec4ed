//! A socket's closing signal: set once, awaited by its transport and its heartbeat job.
//!
//! In place of a tokio-util `CancellationToken`, whose tree node (parent, children, waiters)
//! is a heap allocation of 112 bytes per socket that no child token ever uses: here a flag and
//! a notifier, inside the socket.

use std::{
    future::Future,
    pin::Pin,
    sync::atomic::{AtomicBool, Ordering},
    task::{Context, Poll},
};

use pin_project_lite::pin_project;
use tokio::sync::{Notify, futures::Notified};

#[derive(Debug, Default)]
pub(crate) struct Cancellation {
    cancelled: AtomicBool,
    notify: Notify,
}

impl Cancellation {
    /// Sets the signal and wakes every waiter; later waits end at once.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    /// Resolves once [`Cancellation::cancel`] was called.
    pub async fn cancelled(&self) {
        self.run_until_cancelled(std::future::pending::<()>()).await;
    }

    /// Runs `fut` until it completes (`Some`) or the signal is set (`None`); `fut` is polled
    /// first, so what it finishes in the same turn as the cancel is not lost.
    pub fn run_until_cancelled<F: Future>(&self, fut: F) -> UntilCancelled<'_, F> {
        UntilCancelled {
            fut,
            notified: self.notify.notified(),
            cancellation: self,
        }
    }
}

pin_project! {
    /// See [`Cancellation::run_until_cancelled`].
    pub(crate) struct UntilCancelled<'a, F> {
        #[pin]
        fut: F,
        #[pin]
        notified: Notified<'a>,
        cancellation: &'a Cancellation,
    }
}

impl<F: Future> Future for UntilCancelled<'_, F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Poll::Ready(out) = this.fut.poll(cx) {
            return Poll::Ready(Some(out));
        }
        // Registered before the flag is read: a cancel in between still wakes this.
        this.notified.as_mut().enable();
        if this.cancellation.is_cancelled() || this.notified.poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures_util::FutureExt;

    use super::*;

    #[test]
    fn the_future_wins_a_tie_and_a_set_signal_ends_waits_at_once() {
        let c = Cancellation::default();
        c.cancel();
        assert_eq!(
            c.run_until_cancelled(async { 7 }).now_or_never(),
            Some(Some(7))
        );
        assert_eq!(
            c.run_until_cancelled(std::future::pending::<()>())
                .now_or_never(),
            Some(None)
        );
        assert!(c.cancelled().now_or_never().is_some());
    }

    #[tokio::test]
    async fn waiters_wake_on_cancel() {
        let c = Arc::new(Cancellation::default());
        let waiters: Vec<_> = (0..2)
            .map(|i| {
                let c = c.clone();
                tokio::spawn(async move {
                    if i == 0 {
                        c.cancelled().await;
                        None
                    } else {
                        c.run_until_cancelled(std::future::pending::<()>()).await
                    }
                })
            })
            .collect();
        tokio::task::yield_now().await;
        assert!(!c.is_cancelled());
        c.cancel();
        for waiter in waiters {
            assert_eq!(waiter.await.unwrap(), None);
        }
    }
}
