//! [`Presence`] in memory: one process is one node, so no socket outlives its node here.

use std::collections::HashSet;

use async_trait::async_trait;

use super::{MemoryStore, lock};
use crate::{
    error::StoreError,
    protocol::{PresenceState, UserId},
    store::Presence,
};

#[derive(Debug, Default)]
pub(super) struct Online {
    sockets: HashSet<String>,
    last_seen: Option<u64>,
}

#[async_trait]
impl Presence for MemoryStore {
    async fn connect(&self, user: &UserId, socket: &str) -> Result<bool, StoreError> {
        let mut st = lock(&self.presence);
        let entry = st.entry(user.clone()).or_default();
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
        let Some(entry) = st.get_mut(user) else {
            return Ok(None);
        };
        if !entry.sockets.remove(socket) || !entry.sockets.is_empty() {
            return Ok(None);
        }
        entry.last_seen = Some(now_ms);
        Ok(Some(now_ms))
    }

    async fn node_lost(&self, _: &str, _: u64) -> Result<Vec<(UserId, u64)>, StoreError> {
        // One process, one node: its sockets die with it.
        Ok(Vec::new())
    }

    async fn get(&self, users: &[UserId]) -> Result<Vec<PresenceState>, StoreError> {
        let st = lock(&self.presence);
        Ok(users
            .iter()
            .map(|u| match st.get(u) {
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
