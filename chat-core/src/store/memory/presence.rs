//! [`Presence`] in memory: one process is one node, so no socket outlives its node here.
//!
//! A user with no device left keeps only their last-seen time, for the [`MAX_OFFLINE`]
//! most recently seen such users; older ones are forgotten (their presence reads as never
//! seen), so users who come once and leave do not grow the map for ever.

use std::collections::{HashMap, HashSet, VecDeque};

use async_trait::async_trait;

use super::{MemoryStore, lock};
use crate::{
    error::StoreError,
    protocol::{PresenceState, UserId},
    store::Presence,
};

/// Offline users whose last-seen time is kept.
pub(super) const MAX_OFFLINE: usize = 200_000;

#[derive(Debug, Default)]
pub(super) struct Roster {
    users: HashMap<UserId, Online>,
    /// Users as they went offline, oldest first; an entry whose user came back (or left
    /// again later) is skipped when its turn comes.
    offline: VecDeque<(UserId, u64)>,
}

#[derive(Debug, Default)]
struct Online {
    sockets: HashSet<String>,
    last_seen: Option<u64>,
}

impl Roster {
    fn went_offline(&mut self, user: &UserId, at: u64) {
        self.offline.push_back((user.clone(), at));
        while self.offline.len() > MAX_OFFLINE {
            let Some((user, at)) = self.offline.pop_front() else {
                break;
            };
            if self
                .users
                .get(&user)
                .is_some_and(|e| e.sockets.is_empty() && e.last_seen == Some(at))
            {
                self.users.remove(&user);
            }
        }
    }
}

#[async_trait]
impl Presence for MemoryStore {
    async fn connect(&self, user: &UserId, socket: &str) -> Result<bool, StoreError> {
        let mut st = lock(&self.presence);
        let entry = st.users.entry(user.clone()).or_default();
        let first = entry.sockets.is_empty();
        entry.sockets.insert(socket.to_owned());
        Ok(first)
    }

    async fn disconnect(
        &self,
        user: &UserId,
        socket: &str,
        now_ms: u64,
    ) -> Result<Option<u64>, StoreError> {
        let mut st = lock(&self.presence);
        let Some(entry) = st.users.get_mut(user) else {
            return Ok(None);
        };
        if !entry.sockets.remove(socket) || !entry.sockets.is_empty() {
            return Ok(None);
        }
        entry.last_seen = Some(now_ms);
        st.went_offline(user, now_ms);
        Ok(Some(now_ms))
    }

    async fn node_lost(&self, _: &str, _: u64) -> Result<Vec<(UserId, u64)>, StoreError> {
        // One process, one node: its sockets die with it.
        Ok(Vec::new())
    }

    async fn devices(&self, user: &UserId) -> Result<usize, StoreError> {
        Ok(lock(&self.presence)
            .users
            .get(user)
            .map_or(0, |e| e.sockets.len()))
    }

    async fn get(&self, users: &[UserId]) -> Result<Vec<PresenceState>, StoreError> {
        let st = lock(&self.presence);
        Ok(users
            .iter()
            .map(|u| match st.users.get(u) {
                Some(e) => PresenceState {
                    online: !e.sockets.is_empty(),
                    last_seen: e.last_seen,
                },
                None => PresenceState {
                    online: false,
                    last_seen: None,
                },
            })
            .collect())
    }
}
