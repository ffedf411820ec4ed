//! [`Contacts`] in memory: one sorted roster per user.

use std::ops::Bound;

use async_trait::async_trait;

use super::{MemoryStore, lock};
use crate::{
    error::StoreError,
    protocol::{ContactState, UserId},
    store::{ContactChange, Contacts},
};

#[async_trait]
impl Contacts for MemoryStore {
    async fn set_contact(
        &self,
        user: &UserId,
        other: &UserId,
        from: &[Option<ContactState>],
        to: Option<ContactState>,
        max: usize,
    ) -> Result<ContactChange, StoreError> {
        self.writable()?;
        let mut all = lock(&self.contacts);
        let roster = all.entry(user.clone()).or_default();
        let now = roster.get(other).copied();
        if !from.contains(&now) {
            return Ok(ContactChange::Unexpected(now));
        }
        match to {
            Some(state) => {
                if now.is_none() && roster.len() >= max {
                    return Ok(ContactChange::Full);
                }
                roster.insert(other.clone(), state);
            }
            None => {
                roster.remove(other);
                if roster.is_empty() {
                    all.remove(user);
                }
            }
        }
        Ok(ContactChange::Done(now))
    }

    async fn roster(
        &self,
        user: &UserId,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Vec<(UserId, ContactState)>, StoreError> {
        let all = lock(&self.contacts);
        let Some(roster) = all.get(user) else {
            return Ok(Vec::new());
        };
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        Ok(roster
            .range::<UserId, _>((start, Bound::Unbounded))
            .take(limit)
            .map(|(u, s)| (u.clone(), *s))
            .collect())
    }

    async fn contact_states(
        &self,
        pairs: &[(UserId, UserId)],
    ) -> Result<Vec<Option<ContactState>>, StoreError> {
        let all = lock(&self.contacts);
        Ok(pairs
            .iter()
            .map(|(owner, other)| all.get(owner).and_then(|r| r.get(other)).copied())
            .collect())
    }

    async fn contacts(&self, user: &UserId) -> Result<Vec<UserId>, StoreError> {
        Ok(lock(&self.contacts).get(user).map_or_else(Vec::new, |r| {
            r.iter()
                .filter(|(_, s)| **s == ContactState::Contact)
                .map(|(u, _)| u.clone())
                .collect()
        }))
    }
}
