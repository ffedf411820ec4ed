//! Token buckets in process: [`TokenBuckets`], the memory store's [`RateLimiter`], also used
//! on their own for limits that never leave a node (typing).

use std::{collections::HashMap, sync::Mutex, time::Duration};

use async_trait::async_trait;
use tokio::time::Instant;

use super::{MemoryStore, lock};
use crate::{config::Rate, error::StoreError, store::RateLimiter};

/// Rate buckets idle this long are full again and can be forgotten.
const BUCKET_IDLE: Duration = Duration::from_secs(120);

/// Token buckets by key, in process. Idle buckets are forgotten (they would be full anyway).
#[derive(Debug, Default)]
pub struct TokenBuckets(Mutex<BucketMap>);

#[derive(Debug, Default)]
struct BucketMap {
    map: HashMap<String, (f64, Instant)>,
    last_prune: Option<Instant>,
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
            .is_none_or(|t| now.duration_since(t) > BUCKET_IDLE)
        {
            b.map
                .retain(|_, (_, at)| now.duration_since(*at) < BUCKET_IDLE);
            b.last_prune = Some(now);
        }
        let mut all = true;
        for (key, rate) in buckets {
            let (tokens, at) = b
                .map
                .entry((*key).to_owned())
                .or_insert((f64::from(rate.burst), now));
            let refill = now.duration_since(*at).as_secs_f64() * rate.per_second;
            *tokens = (*tokens + refill).min(f64::from(rate.burst));
            *at = now;
            all &= *tokens >= 1.0;
        }
        if all {
            for (key, _) in buckets {
                if let Some((tokens, _)) = b.map.get_mut(*key) {
                    *tokens -= 1.0;
                }
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
