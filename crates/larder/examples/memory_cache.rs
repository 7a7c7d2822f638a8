//! `RTCache` in front of a slow lookup: a burst of concurrent requests for one cold key runs
//! the lookup once, and later requests are served from memory until the TTL passes.
//!
//! Run with `cargo run -p larder --example memory_cache --features memory-cache`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use larder::memory_cache::{BoxError, CacheStatus, Lookup, RTCache};

/// How many times the slow backend was asked.
static BACKEND_CALLS: AtomicUsize = AtomicUsize::new(0);

/// A backend that takes 50 ms to answer.
struct SlowBackend;

impl Lookup<u64, String, ()> for SlowBackend {
    async fn lookup(id: &u64, _extra: Option<&()>) -> Result<(String, Option<Duration>), BoxError> {
        BACKEND_CALLS.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        Ok((
            format!("profile of user {id}"),
            Some(Duration::from_mins(1)),
        ))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cache: &'static RTCache<u64, String, SlowBackend, ()> = Box::leak(Box::new(RTCache::new(
        1_000,
        None,
        Some(Duration::from_secs(1)),
    )));

    let started = Instant::now();
    let burst: Vec<_> = (0..100)
        .map(|_| tokio::spawn(async move { cache.get(&42, None, None).await }))
        .collect();
    let mut lock_hits = 0;
    for task in burst {
        let (value, status) = task.await?;
        assert_eq!(value?, "profile of user 42");
        if status == CacheStatus::LockHit {
            lock_hits += 1;
        }
    }
    println!(
        "100 concurrent gets of a cold key: {} backend call(s), {lock_hits} waited on the lock, {:?}",
        BACKEND_CALLS.load(Ordering::SeqCst),
        started.elapsed()
    );
    assert_eq!(BACKEND_CALLS.load(Ordering::SeqCst), 1);

    let started = Instant::now();
    let (value, status) = cache.get(&42, None, None).await;
    println!(
        "then: {:?} ({}) in {:?}",
        value?,
        status.as_str(),
        started.elapsed()
    );
    assert_eq!(status, CacheStatus::Hit);
    Ok(())
}
