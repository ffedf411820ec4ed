//! [`Blocks`] in memory: who blocked whom, which [`MessageLog::append`] checks for DMs.
//!
//! [`MessageLog::append`]: crate::store::MessageLog::append

use async_trait::async_trait;

use super::{MemoryStore, lock};
use crate::{error::StoreError, protocol::UserId, store::Blocks};

#[async_trait]
impl Blocks for MemoryStore {
    async fn block(&self, user: &UserId, target: &UserId) -> Result<(), StoreError> {
        self.writable()?;
        lock(&self.blocks)
            .entry(user.clone())
            .or_default()
            .insert(target.clone());
        Ok(())
    }

    async fn unblock(&self, user: &UserId, target: &UserId) -> Result<(), StoreError> {
        self.writable()?;
        let mut blocks = lock(&self.blocks);
        if let Some(set) = blocks.get_mut(user) {
            set.remove(target);
            if set.is_empty() {
                blocks.remove(user);
            }
        }
        Ok(())
    }

    async fn is_blocked(&self, user: &UserId, target: &UserId) -> Result<bool, StoreError> {
        Ok(lock(&self.blocks)
            .get(user)
            .is_some_and(|s| s.contains(target)))
    }

    async fn count(&self, user: &UserId) -> Result<usize, StoreError> {
        Ok(lock(&self.blocks).get(user).map_or(0, |s| s.len()))
    }

    async fn list(&self, user: &UserId) -> Result<Vec<UserId>, StoreError> {
        let mut users: Vec<UserId> = lock(&self.blocks)
            .get(user)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        users.sort();
        Ok(users)
    }
}
