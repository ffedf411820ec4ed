//! Every store in process memory: embedded mode, and the reference for other backends.
//!
//! Each trait call takes one lock for its whole step, so every step is atomic. Nothing here
//! survives a restart; [`MemoryStore::close`] makes writes fail with [`StoreError::Closed`]
//! so a node that is shutting down never acknowledges what it would lose.
//!
//! One file per job: `messages` (conversation logs, marks, idempotency keys), `groups`,
//! `blocks`, `contacts`, `statuses`, `presence`, `bans`, and `buckets` ([`TokenBuckets`], also used on their own).

mod bans;
mod blocks;
mod buckets;
mod contacts;
mod groups;
mod messages;
mod presence;
mod retention;
mod statuses;
#[cfg(test)]
mod tests;

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{
        Mutex, MutexGuard,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

pub use buckets::TokenBuckets;

use self::{groups::GroupState, messages::LogState, presence::Roster};
use crate::{
    config::Limits,
    error::StoreError,
    protocol::{ContactState, UserId},
};

/// In-memory implementation of every store trait.
#[derive(Debug)]
pub struct MemoryStore {
    history_max: usize,
    memory_max_bytes: usize,
    idempotency_ttl: Duration,
    closed: AtomicBool,
    log: Mutex<LogState>,
    groups: Mutex<GroupState>,
    blocks: Mutex<HashMap<UserId, HashSet<UserId>>>,
    /// User → their contact roster, sorted.
    contacts: Mutex<HashMap<UserId, BTreeMap<UserId, ContactState>>>,
    /// User → status, text and idle devices; only users with something to keep.
    statuses: Mutex<HashMap<UserId, statuses::Entry>>,
    presence: Mutex<Roster>,
    /// User → banned until (ms); expired entries are pruned as bans are added.
    bans: Mutex<HashMap<UserId, u64>>,
    buckets: TokenBuckets,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave these maps half-updated in a way that
    // matters more than refusing all further service, so keep going with the data.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl MemoryStore {
    /// An empty store with the retention limits of `limits`.
    pub fn new(limits: &Limits) -> Self {
        Self {
            history_max: limits.history_max,
            memory_max_bytes: limits.memory_max_bytes,
            idempotency_ttl: limits.idempotency_ttl,
            closed: AtomicBool::new(false),
            log: Mutex::default(),
            groups: Mutex::default(),
            blocks: Mutex::default(),
            contacts: Mutex::default(),
            statuses: Mutex::default(),
            presence: Mutex::default(),
            bans: Mutex::default(),
            buckets: TokenBuckets::default(),
        }
    }

    /// Refuses every later write: the process is about to exit and would lose it.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    fn writable(&self) -> Result<(), StoreError> {
        if self.closed.load(Ordering::SeqCst) {
            Err(StoreError::Closed)
        } else {
            Ok(())
        }
    }
}
