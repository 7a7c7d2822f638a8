//! `RTCache`: coalescing, errors, lock age and timeout, cancellation, panics, staleness.

use std::error::Error as _;
use std::sync::Arc;
use std::time::Duration;

use larder_memory_cache::{CacheStatus, Error, RTCache};
use tokio::time::{Instant, sleep};

use crate::backend::{Backend, FAST, Step, Via};

type Cache = RTCache<String, String, Via, Backend>;

const SEC: Duration = Duration::from_secs(1);

fn key() -> String {
    "k".to_string()
}

/// Spawns `n` concurrent `get`s of `key()` and returns their results in spawn order.
async fn concurrent_gets(
    cache: &Arc<Cache>,
    backend: &Arc<Backend>,
    n: usize,
) -> Vec<(Result<String, Error>, CacheStatus)> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (cache, backend) = (cache.clone(), backend.clone());
            tokio::spawn(async move { cache.get(&key(), None, Some(&backend)).await })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("get does not panic"));
    }
    out
}

fn count(results: &[(Result<String, Error>, CacheStatus)], status: CacheStatus) -> usize {
    results.iter().filter(|r| r.1 == status).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_key_1000_concurrent_gets_run_one_lookup() {
    let cache = Arc::new(Cache::new(100, None, None));
    let backend = Arc::new(Backend::new(|_| Step::Value(Duration::from_millis(100))));
    let results = concurrent_gets(&cache, &backend, 1_000).await;
    assert_eq!(backend.calls(), 1);
    for (value, status) in &results {
        assert_eq!(value.as_deref().ok(), Some("k#0"));
        assert!(
            status.is_hit() || *status == CacheStatus::Miss,
            "{status:?}"
        );
    }
    assert_eq!(count(&results, CacheStatus::Miss), 1);
    let stats = cache.stats();
    assert_eq!((stats.lookups, stats.misses), (1, 1));
    assert_eq!(stats.hits + stats.lock_hits, 999);
}

#[tokio::test(start_paused = true)]
async fn get_misses_then_hits() {
    let cache = Cache::new(10, None, None);
    let backend = Backend::new(|_| FAST);
    let (v, s) = cache.get(&key(), None, Some(&backend)).await;
    assert_eq!((v.ok(), s), (Some("k#0".to_string()), CacheStatus::Miss));
    let (v, s) = cache.get(&key(), None, Some(&backend)).await;
    assert_eq!((v.ok(), s), (Some("k#0".to_string()), CacheStatus::Hit));
    assert_eq!(backend.calls(), 1);
    cache.remove(&key());
    let (v, s) = cache.get(&key(), None, Some(&backend)).await;
    assert_eq!((v.ok(), s), (Some("k#1".to_string()), CacheStatus::Miss));
}

#[tokio::test(start_paused = true)]
async fn lookup_error_reaches_every_waiter_then_next_get_retries() {
    let cache = Arc::new(Cache::new(10, None, None));
    let backend = Arc::new(Backend::new(
        |call| {
            if call == 0 { Step::Fail(SEC) } else { FAST }
        },
    ));
    let results = concurrent_gets(&cache, &backend, 50).await;
    assert_eq!(backend.calls(), 1);
    for (value, status) in results {
        let err = value.expect_err("the lookup failed");
        assert!(matches!(err, Error::Lookup(_)), "{err:?}");
        assert_eq!(err.to_string(), "rtcache lookup error");
        let cause = err.source().map(ToString::to_string);
        assert_eq!(cause.as_deref(), Some("backend down (call 0)"));
        assert_eq!(status, CacheStatus::Miss);
    }
    // Errors are not cached: the next get runs the lookup again.
    let (v, s) = cache.get(&key(), None, Some(&backend)).await;
    assert_eq!((v.ok(), s), (Some("k#1".to_string()), CacheStatus::Miss));
    let stats = cache.stats();
    assert_eq!(
        (stats.lookups, stats.lookup_errors, stats.misses),
        (2, 1, 51)
    );
}

#[tokio::test(start_paused = true)]
async fn failing_backend_sees_one_lookup_per_round_of_callers() {
    let cache = Arc::new(Cache::new(10, None, None));
    let backend = Arc::new(Backend::new(|_| Step::Fail(SEC)));
    for round in 1..=3 {
        let results = concurrent_gets(&cache, &backend, 50).await;
        assert!(results.iter().all(|r| r.0.is_err()));
        assert_eq!(backend.calls(), round);
    }
}

#[tokio::test(start_paused = true)]
async fn lock_timeout_releases_waiters_to_look_up_themselves() {
    let cache = Arc::new(Cache::new(10, None, Some(SEC)));
    let backend = Arc::new(Backend::new(|call| {
        if call == 0 {
            Step::Value(10 * SEC)
        } else {
            FAST
        }
    }));
    let leader = {
        let (cache, backend) = (cache.clone(), backend.clone());
        tokio::spawn(async move { cache.get(&key(), None, Some(&backend)).await })
    };
    sleep(Duration::from_millis(10)).await;
    let start = Instant::now();
    let (v, s) = cache.get(&key(), None, Some(&backend)).await;
    assert_eq!((v.ok(), s), (Some("k#1".to_string()), CacheStatus::Miss));
    assert_eq!(start.elapsed(), SEC);
    // The waiter's own lookup is not cached; the leader's will be.
    assert_eq!(cache.cache().get(&key()), (None, CacheStatus::Miss));
    let (v, s) = leader.await.expect("leader does not panic");
    assert_eq!((v.ok(), s), (Some("k#0".to_string()), CacheStatus::Miss));
    assert_eq!(
        cache.cache().get(&key()),
        (Some("k#0".to_string()), CacheStatus::Hit)
    );
}

#[tokio::test(start_paused = true)]
async fn waiter_takes_over_a_lock_that_reaches_lock_age() {
    let cache = Arc::new(Cache::new(10, Some(2 * SEC), None));
    let backend = Arc::new(Backend::new(|call| {
        if call == 0 {
            Step::Value(10 * SEC)
        } else {
            FAST
        }
    }));
    let leader = {
        let (cache, backend) = (cache.clone(), backend.clone());
        tokio::spawn(async move { cache.get(&key(), None, Some(&backend)).await })
    };
    sleep(Duration::from_millis(10)).await;
    let start = Instant::now();
    let (v, s) = cache.get(&key(), None, Some(&backend)).await;
    assert_eq!((v.ok(), s), (Some("k#1".to_string()), CacheStatus::Miss));
    assert_eq!(start.elapsed(), Duration::from_millis(1_990));
    // The new leader's value is cached.
    let (v, s) = cache.get(&key(), None, Some(&backend)).await;
    assert_eq!((v.ok(), s), (Some("k#1".to_string()), CacheStatus::Hit));
    // The stuck leader still finishes and stores its (later) value.
    let (v, _) = leader.await.expect("leader does not panic");
    assert_eq!(v.ok().as_deref(), Some("k#0"));
    assert_eq!(backend.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn aged_lock_is_replaced_by_the_next_caller_at_once() {
    let cache = Arc::new(Cache::new(10, Some(2 * SEC), None));
    let backend = Arc::new(Backend::new(|call| {
        if call == 0 {
            Step::Value(10 * SEC)
        } else {
            FAST
        }
    }));
    let leader = {
        let (cache, backend) = (cache.clone(), backend.clone());
        tokio::spawn(async move { cache.get(&key(), None, Some(&backend)).await })
    };
    sleep(3 * SEC).await;
    let start = Instant::now();
    let (v, s) = cache.get(&key(), None, Some(&backend)).await;
    assert_eq!((v.ok(), s), (Some("k#1".to_string()), CacheStatus::Miss));
    assert_eq!(start.elapsed(), Duration::ZERO);
    leader.abort();
}

#[tokio::test(start_paused = true)]
async fn expired_entry_is_looked_up_again() {
    let cache = Cache::new(10, None, None);
    let backend = Backend::new(|_| FAST);
    let ttl = Some(Duration::from_millis(50));
    let (v, s) = cache.get(&key(), ttl, Some(&backend)).await;
    assert_eq!((v.ok(), s), (Some("k#0".to_string()), CacheStatus::Miss));
    sleep(Duration::from_millis(60)).await;
    let (v, s) = cache.get(&key(), ttl, Some(&backend)).await;
    assert_eq!((v.ok(), s), (Some("k#1".to_string()), CacheStatus::Expired));
    let (v, s) = cache.get(&key(), ttl, Some(&backend)).await;
    assert_eq!((v.ok(), s), (Some("k#1".to_string()), CacheStatus::Hit));
}

#[tokio::test(start_paused = true)]
async fn lookup_ttl_overrides_the_callers_ttl() {
    let cache = Cache::new(10, None, None);
    let backend = Backend::new(|_| FAST).with_ttl(SEC);
    let ttl = Some(Duration::from_millis(50));
    cache.get(&key(), ttl, Some(&backend)).await.0.expect("ok");
    sleep(Duration::from_millis(500)).await;
    let (v, s) = cache.get(&key(), ttl, Some(&backend)).await;
    assert_eq!((v.ok(), s), (Some("k#0".to_string()), CacheStatus::Hit));
    sleep(SEC).await;
    assert_eq!(
        cache.get(&key(), ttl, Some(&backend)).await.1,
        CacheStatus::Expired
    );
}

#[tokio::test(start_paused = true)]
async fn get_stale_serves_within_stale_ttl_then_fetches() {
    let cache = Cache::new(10, None, None);
    let backend = Backend::new(|_| FAST);
    cache
        .get(&key(), Some(SEC), Some(&backend))
        .await
        .0
        .expect("ok");
    let (v, s) = cache
        .get_stale(&key(), Some(SEC), Some(&backend), SEC)
        .await;
    assert_eq!((v.ok(), s), (Some("k#0".to_string()), CacheStatus::Hit));
    sleep(Duration::from_millis(1_500)).await;
    let (v, s) = cache
        .get_stale(&key(), Some(SEC), Some(&backend), SEC)
        .await;
    let half = Duration::from_millis(500);
    assert_eq!(
        (v.ok(), s),
        (Some("k#0".to_string()), CacheStatus::Stale(half))
    );
    assert_eq!(backend.calls(), 1);
    sleep(SEC).await;
    let (v, s) = cache
        .get_stale(&key(), Some(SEC), Some(&backend), SEC)
        .await;
    assert_eq!((v.ok(), s), (Some("k#1".to_string()), CacheStatus::Expired));
    assert_eq!(cache.stats().stale, 1);
}

#[tokio::test(start_paused = true)]
async fn stale_while_update_runs_exactly_one_refresh() {
    let cache: &'static Cache = Box::leak(Box::new(Cache::new(10, None, None)));
    let backend: &'static Backend = Box::leak(Box::new(Backend::new(|call| {
        if call == 0 { FAST } else { Step::Value(SEC) }
    })));
    let ttl = Some(SEC);
    cache.get(&key(), ttl, Some(backend)).await.0.expect("ok");
    sleep(2 * SEC).await;
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            tokio::spawn(async move {
                cache
                    .get_stale_while_update(&key(), ttl, Some(backend), 10 * SEC)
                    .await
            })
        })
        .collect();
    for t in tasks {
        let (v, s) = t.await.expect("no panic");
        assert_eq!(
            (v.ok(), s),
            (Some("k#0".to_string()), CacheStatus::Stale(SEC))
        );
    }
    // A plain get while the refresh runs waits for it rather than starting another lookup.
    let (v, s) = cache.get(&key(), ttl, Some(backend)).await;
    assert_eq!((v.ok(), s), (Some("k#1".to_string()), CacheStatus::LockHit));
    let (v, s) = cache
        .get_stale_while_update(&key(), ttl, Some(backend), 10 * SEC)
        .await;
    assert_eq!((v.ok(), s), (Some("k#1".to_string()), CacheStatus::Hit));
    assert_eq!(backend.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn cancelled_leader_lets_one_waiter_take_over() {
    let cache = Arc::new(Cache::new(10, None, None));
    let backend = Arc::new(Backend::new(|call| {
        if call == 0 {
            Step::Value(10 * SEC)
        } else {
            Step::Value(SEC)
        }
    }));
    let leader = {
        let (cache, backend) = (cache.clone(), backend.clone());
        tokio::spawn(async move { cache.get(&key(), None, Some(&backend)).await })
    };
    sleep(Duration::from_millis(10)).await;
    let waiters = {
        let (cache, backend) = (cache.clone(), backend.clone());
        tokio::spawn(async move { concurrent_gets(&cache, &backend, 20).await })
    };
    sleep(SEC).await;
    leader.abort();
    assert!(leader.await.expect_err("aborted").is_cancelled());
    let start = Instant::now();
    let results = waiters.await.expect("no panic");
    assert_eq!(start.elapsed(), SEC);
    assert!(results.iter().all(|r| r.0.as_deref().ok() == Some("k#1")));
    assert_eq!(count(&results, CacheStatus::Miss), 1);
    assert_eq!(count(&results, CacheStatus::LockHit), 19);
    assert_eq!(backend.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn leader_dropped_by_a_timeout_lets_waiters_finish() {
    let cache = Arc::new(Cache::new(10, None, None));
    let backend = Arc::new(Backend::new(|call| {
        if call == 0 {
            Step::Value(10 * SEC)
        } else {
            FAST
        }
    }));
    let waiter = {
        let (cache, backend) = (cache.clone(), backend.clone());
        tokio::spawn(async move {
            sleep(Duration::from_millis(10)).await;
            cache.get(&key(), None, Some(&backend)).await
        })
    };
    // The leader's future is dropped when the timeout fires.
    let dropped = tokio::time::timeout(SEC, cache.get(&key(), None, Some(&backend))).await;
    assert!(dropped.is_err());
    let (v, s) = waiter.await.expect("no panic");
    assert_eq!((v.ok(), s), (Some("k#1".to_string()), CacheStatus::Miss));
}

#[tokio::test(start_paused = true)]
async fn panicking_lookup_does_not_wedge_waiters() {
    let cache = Arc::new(Cache::new(10, None, None));
    let backend = Arc::new(Backend::new(|call| {
        if call == 0 { Step::Panic(SEC) } else { FAST }
    }));
    let leader = {
        let (cache, backend) = (cache.clone(), backend.clone());
        tokio::spawn(async move { cache.get(&key(), None, Some(&backend)).await })
    };
    sleep(Duration::from_millis(10)).await;
    let results = concurrent_gets(&cache, &backend, 20).await;
    assert!(leader.await.expect_err("leader panicked").is_panic());
    for (value, status) in results {
        assert!(matches!(value, Err(Error::LookupPanicked)), "{value:?}");
        assert_eq!(status, CacheStatus::Miss);
    }
    assert_eq!(backend.calls(), 1);
    let (v, s) = cache.get(&key(), None, Some(&backend)).await;
    assert_eq!((v.ok(), s), (Some("k#1".to_string()), CacheStatus::Miss));
}

#[tokio::test(start_paused = true)]
async fn multi_get_looks_up_all_misses_at_once() {
    let cache = Cache::new(10, None, None);
    let backend = Backend::new(|_| FAST);
    cache
        .get(&"a".to_string(), None, Some(&backend))
        .await
        .0
        .expect("ok");
    let keys = ["a", "b", "c"].map(String::from);
    let got = cache
        .multi_get(keys.iter(), None, Some(&backend))
        .await
        .expect("ok");
    let expect = [
        ("a#0", CacheStatus::Hit),
        ("b#1", CacheStatus::Miss),
        ("c#1", CacheStatus::Miss),
    ];
    let got: Vec<_> = got.iter().map(|(v, s)| (v.as_str(), *s)).collect();
    assert_eq!(got, expect);
    let again = cache
        .multi_get(keys.iter(), None, Some(&backend))
        .await
        .expect("ok");
    assert!(again.iter().all(|(_, s)| *s == CacheStatus::Hit));
    assert_eq!(backend.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn multi_get_fails_whole_on_lookup_error_or_wrong_count() {
    let cache = Cache::new(10, None, None);
    let keys = ["a", "b"].map(String::from);
    let failing = Backend::new(|_| Step::Fail(Duration::ZERO));
    let err = cache
        .multi_get(keys.iter(), None, Some(&failing))
        .await
        .expect_err("fails");
    assert!(matches!(err, Error::Lookup(_)), "{err:?}");
    let short = Backend::new(|_| Step::Panic(Duration::ZERO));
    let err = cache
        .multi_get(keys.iter(), None, Some(&short))
        .await
        .expect_err("fails");
    assert!(
        matches!(
            err,
            Error::MultiLookupCount {
                expected: 2,
                got: 1
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "rtcache multi lookup returned 1 values for 2 keys"
    );
}

#[tokio::test(start_paused = true)]
async fn in_a_full_cache_a_value_someone_waited_for_is_stored() {
    let cache = Arc::new(Cache::new(10, None, None));
    // Filled directly, so that the admission doorkeeper has seen no key yet.
    for k in 0..100 {
        cache
            .cache()
            .force_put(&format!("f{k}"), String::new(), None);
    }
    // Alone, a new key's value goes through admission: not stored on its first lookup.
    let backend = Arc::new(Backend::new(|_| Step::Value(SEC)));
    cache.get(&key(), None, Some(&backend)).await.0.expect("ok");
    assert_eq!(cache.cache().get(&key()).1, CacheStatus::Miss);
    // With callers waiting on the lookup, it is stored.
    let other = "other".to_string();
    let results = {
        let (c1, b1) = (cache.clone(), backend.clone());
        let (c2, b2) = (cache.clone(), backend.clone());
        let o = other.clone();
        let o2 = other.clone();
        tokio::join!(
            tokio::spawn(async move { c1.get(&o, None, Some(&b1)).await }),
            tokio::spawn(async move { c2.get(&o2, None, Some(&b2)).await }),
        )
    };
    assert_eq!(results.0.expect("ok").1, CacheStatus::Miss);
    assert_eq!(results.1.expect("ok").1, CacheStatus::LockHit);
    assert_eq!(cache.cache().get(&other).1, CacheStatus::Hit);
}
