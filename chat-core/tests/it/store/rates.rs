//! [`RateLimiter`]: token buckets, alone and several at once (all or nothing).

use std::time::Duration;

use chat_core::{Limits, config::Rate};
use tokio::time::Instant;

use super::Store;
use crate::helpers::uid;

super::on_both_stores! {
    a_bucket_gives_its_burst_then_refuses(Limits::default());
    buckets_refill(Limits::default());
    several_buckets_are_all_or_nothing(Limits::default());
}

/// Far slower than any test: a spent token does not come back while a test runs.
fn slow(burst: u32) -> Rate {
    Rate::new(0.0001, burst)
}

/// A new bucket is full: exactly `burst` tokens, then refusals; keys are separate buckets;
/// no bucket at all always passes.
async fn a_bucket_gives_its_burst_then_refuses(store: &dyn Store) {
    let (key, other) = (uid("k"), uid("other"));
    for i in 0..3 {
        assert!(store.try_acquire(&key, slow(3)).await.unwrap(), "token {i}");
    }
    assert!(
        !store.try_acquire(&key, slow(3)).await.unwrap(),
        "burst spent"
    );
    assert!(
        !store.try_acquire(&key, slow(3)).await.unwrap(),
        "still empty"
    );
    assert!(
        store.try_acquire(&other, slow(1)).await.unwrap(),
        "its own bucket"
    );
    assert!(store.try_acquire_all(&[]).await.unwrap(), "nothing to take");
}

/// A token bucket spends its burst, refuses, then refills at its rate, one token at a time.
async fn buckets_refill(store: &dyn Store) {
    let rate = Rate::new(5.0, 2);
    let key = uid("bucket");
    assert!(store.try_acquire(&key, rate).await.unwrap());
    assert!(store.try_acquire(&key, rate).await.unwrap());
    assert!(!store.try_acquire(&key, rate).await.unwrap(), "burst spent");
    // Polls: Redis time cannot be paused.
    let deadline = Instant::now() + Duration::from_secs(3);
    while !store.try_acquire(&key, rate).await.unwrap() {
        assert!(Instant::now() < deadline, "no token after 3 s at 5/s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        !store.try_acquire(&key, rate).await.unwrap(),
        "one token at a time"
    );
}

/// Taking from several buckets takes one token from each only if each has one: a refusal
/// leaves the others' tokens where they were.
async fn several_buckets_are_all_or_nothing(store: &dyn Store) {
    let (a, b, c) = (uid("a"), uid("b"), uid("c"));
    let two = [(a.as_str(), slow(1)), (b.as_str(), slow(2))];
    assert!(store.try_acquire_all(&two).await.unwrap());
    // a is empty now, b has one token left, c is new.
    let three = [
        (c.as_str(), slow(1)),
        (b.as_str(), slow(2)),
        (a.as_str(), slow(1)),
    ];
    assert!(!store.try_acquire_all(&three).await.unwrap());
    assert!(!store.try_acquire_all(&two).await.unwrap());
    assert!(
        store.try_acquire(&c, slow(1)).await.unwrap(),
        "c kept its token"
    );
    assert!(
        store.try_acquire(&b, slow(2)).await.unwrap(),
        "b kept its token"
    );
    assert!(!store.try_acquire(&b, slow(2)).await.unwrap());
    assert!(!store.try_acquire(&a, slow(1)).await.unwrap());
}
