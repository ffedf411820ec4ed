//! [`Statuses`] in memory: an entry per user with a status, a text or an idle device.

use std::collections::HashSet;

use async_trait::async_trait;

use super::{MemoryStore, lock};
use crate::{
    error::StoreError,
    protocol::{Status, UserId},
    store::{StatusRecord, Statuses},
};

#[derive(Debug, Default)]
pub(super) struct Entry {
    status: Status,
    text: Option<String>,
    idle: HashSet<String>,
}

impl Entry {
    fn is_default(&self) -> bool {
        self.status == Status::Available && self.text.is_none() && self.idle.is_empty()
    }
}

impl MemoryStore {
    fn with_status(&self, user: &UserId, f: impl FnOnce(&mut Entry)) -> Result<(), StoreError> {
        self.writable()?;
        let mut all = lock(&self.statuses);
        let entry = all.entry(user.clone()).or_default();
        f(entry);
        if entry.is_default() {
            all.remove(user);
        }
        Ok(())
    }
}

#[async_trait]
impl Statuses for MemoryStore {
    async fn set_status(
        &self,
        user: &UserId,
        status: Status,
        text: Option<&str>,
    ) -> Result<(), StoreError> {
        self.with_status(user, |e| {
            e.status = status;
            e.text = text.map(str::to_owned);
        })
    }

    async fn set_device_idle(
        &self,
        user: &UserId,
        socket: &str,
        idle: bool,
    ) -> Result<(), StoreError> {
        self.with_status(user, |e| {
            if idle {
                e.idle.insert(socket.to_owned());
            } else {
                e.idle.remove(socket);
            }
        })
    }

    async fn forget_devices(&self, user: &UserId) -> Result<(), StoreError> {
        self.with_status(user, |e| e.idle.clear())
    }

    async fn statuses(&self, users: &[UserId]) -> Result<Vec<StatusRecord>, StoreError> {
        let all = lock(&self.statuses);
        Ok(users
            .iter()
            .map(|u| {
                all.get(u)
                    .map_or_else(StatusRecord::default, |e| StatusRecord {
                        status: e.status,
                        text: e.text.clone(),
                        idle_devices: e.idle.len(),
                    })
            })
            .collect())
    }
}
