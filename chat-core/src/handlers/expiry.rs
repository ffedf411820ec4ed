//! Sockets whose token expires are told (`expired`) and disconnected at expiry: an expired
//! token must stop receiving, not only stop sending. One task per node keeps the expiries in
//! order; a socket costs an entry in a set, no timer of its own.

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::json;
use socketioxide::{SocketIo, adapter::Adapter, socket::Sid};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::protocol::{events, now_ms};

/// The sockets of this node with an expiring token, by expiry (seconds since the epoch).
#[derive(Debug, Default)]
pub(crate) struct Expiries {
    due: Mutex<BTreeSet<(u64, Sid)>>,
    /// An expiry earlier than every other was added.
    sooner: Notify,
}

impl Expiries {
    /// Disconnects `sid` at `at` (seconds since the epoch).
    pub fn add(&self, at: u64, sid: Sid) {
        let first = {
            let mut due = self.lock();
            due.insert((at, sid));
            due.first() == Some(&(at, sid))
        };
        if first {
            self.sooner.notify_one();
        }
    }

    /// Forgets `sid` (it disconnected).
    pub fn remove(&self, at: u64, sid: Sid) {
        self.lock().remove(&(at, sid));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<(u64, Sid)>> {
        self.due.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes every socket whose expiry is at or before `now` (seconds); the next expiry.
    fn take_due(&self, now: u64) -> (Vec<Sid>, Option<u64>) {
        let mut due = self.lock();
        let later = due.split_off(&(now + 1, Sid::ZERO));
        let expired = std::mem::replace(&mut *due, later);
        (
            expired.into_iter().map(|(_, sid)| sid).collect(),
            due.first().map(|(at, _)| *at),
        )
    }
}

/// Disconnects sockets as their tokens expire, until `stop` fires.
pub(crate) async fn run<A: Adapter>(
    expiries: Arc<Expiries>,
    io: SocketIo<A>,
    stop: CancellationToken,
) {
    loop {
        let now_ms = now_ms();
        let (expired, next) = expiries.take_due(now_ms / 1000);
        for sid in expired {
            let Some(socket) = io.of("/").and_then(|ns| ns.get_socket(sid)) else {
                continue;
            };
            tracing::debug!(%sid, "token expired; disconnecting");
            let _ = socket.emit(
                events::EXPIRED,
                &json!({ "reason": "token expired; reconnect with a new token" }),
            );
            let _ = socket.disconnect();
        }
        // Expiries are whole seconds: wake at the start of the next one that is due.
        let wait = next.map_or(Duration::from_secs(3600), |at| {
            Duration::from_millis((at * 1000).saturating_sub(now_ms))
        });
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = expiries.sooner.notified() => {}
            () = stop.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Due sockets are taken in one go, the rest stay, and the next expiry is reported.
    #[test]
    fn takes_what_is_due() {
        let e = Expiries::default();
        let (a, b, c) = (Sid::new(), Sid::new(), Sid::new());
        e.add(10, a);
        e.add(20, b);
        e.add(20, c);
        e.remove(20, c);
        assert_eq!(e.take_due(9), (vec![], Some(10)));
        assert_eq!(e.take_due(15), (vec![a], Some(20)));
        assert_eq!(e.take_due(20), (vec![b], None));
    }
}
