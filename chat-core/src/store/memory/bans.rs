//! Bans: user → until when.

use async_trait::async_trait;

use super::{MemoryStore, lock};
use crate::{error::StoreError, protocol::UserId, store::Bans};

#[async_trait]
impl Bans for MemoryStore {
    async fn ban(&self, user: &UserId, until_ms: u64) -> Result<(), StoreError> {
        self.writable()?;
        let now = crate::protocol::now_ms();
        let mut bans = lock(&self.bans);
        // Bans are few (the server API is rate limited): pruning here keeps the map to the
        // bans that run.
        bans.retain(|_, until| *until > now);
        bans.insert(user.clone(), until_ms);
        Ok(())
    }

    async fn banned_until(&self, user: &UserId, now_ms: u64) -> Result<Option<u64>, StoreError> {
        Ok(lock(&self.bans).get(user).copied().filter(|u| *u > now_ms))
    }
}
