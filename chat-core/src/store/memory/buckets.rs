//! Token buckets in process: [`TokenBuckets`], the memory store's [`RateLimiter`], also used
//! on their own for limits that never leave a node (typing).

use std::{collections::HashMap, sync::Mutex, time::Duration};

use async_trait::async_trait;
use tokio::time::Instant;

use super::{MemoryStore, lock};
use crate::{config::Rate, error::StoreError, store::RateLimiter};

/// How often buckets that are full again are forgotten.
const PRUNE_EVERY: Duration = Duration::from_secs(120);

/// Token buckets by key, in process. A bucket is forgotten once it is full again (a new
/// bucket starts full), as a Redis bucket expires.
#[derive(Debug, Default)]
pub struct TokenBuckets(Mutex<BucketMap>);

#[derive(Debug, Default)]
struct BucketMap {
    map: HashMap<String, Bucket>,
    last_prune: Option<Instant>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    /// When `tokens` was counted.
    at: Instant,
    /// When the bucket is full again; `None` if never (no refill).
    full_at: Option<Instant>,
}

impl TokenBuckets {
    /// Takes a token from `key`'s bucket; false if it is empty.
    pub fn try_acquire(&self, key: &str, rate: Rate) -> bool {
        self.try_acquire_all(&[(key, rate)])
    }

    /// Takes a token from every bucket if each has one; otherwise takes none and says false.
    pub fn try_acquire_all(&self, buckets: &[(&str, Rate)]) -> bool {
        let now = Instant::now();
        let mut b = lock(&self.0);
        if b.last_prune
            .is_none_or(|t| now.duration_since(t) > PRUNE_EVERY)
        {
            // Forgetting an idle bucket that is not full yet would hand out its burst again.
            b.map
                .retain(|_, bucket| bucket.full_at.is_none_or(|at| at > now));
            b.last_prune = Some(now);
        }
        let mut all = true;
        for (key, rate) in buckets {
            let burst = f64::from(rate.burst);
            let bucket = b.map.entry((*key).to_owned()).or_insert(Bucket {
                tokens: burst,
                at: now,
                full_at: Some(now),
            });
            let refill = now.duration_since(bucket.at).as_secs_f64() * rate.per_second;
            bucket.tokens = (bucket.tokens + refill).min(burst);
            bucket.at = now;
            all &= bucket.tokens >= 1.0;
        }
        for (key, rate) in buckets {
            if let Some(bucket) = b.map.get_mut(*key) {
                if all {
                    bucket.tokens -= 1.0;
                }
                let missing = f64::from(rate.burst) - bucket.tokens;
                bucket.full_at = Duration::try_from_secs_f64(missing.max(0.0) / rate.per_second)
                    .ok()
                    .and_then(|d| now.checked_add(d));
            }
        }
        all
    }
}

#[async_trait]
impl RateLimiter for MemoryStore {
    async fn try_acquire_all(&self, buckets: &[(&str, Rate)]) -> Result<bool, StoreError> {
        Ok(self.buckets.try_acquire_all(buckets))
    }
}
