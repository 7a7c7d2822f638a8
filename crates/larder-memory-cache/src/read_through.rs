//! [`RTCache`]: a read-through cache that coalesces concurrent lookups of one key.

use std::future::Future;
use std::hash::Hash;
use std::marker::PhantomData;
use std::time::Duration;

use crate::lock::{Acquired, LockTable, Waited};
use crate::memory::KeyHash;
use crate::stats::{Counters, Stat};
use crate::{BoxError, CacheStatus, Error, MemoryCache, Stats};

/// How an [`RTCache`] fetches a missing value: a function of the key and the caller's `extra`
/// argument, implemented on a marker type `CB` (there is no `self`).
///
/// It returns the value and an optional TTL, which, when given, overrides the TTL passed to
/// [`RTCache::get`]. Implement it with `async fn`; the future must be `Send`.
///
/// ```
/// use std::time::Duration;
/// use larder_memory_cache::{BoxError, Lookup};
///
/// struct Squares;
/// impl Lookup<u64, u64, ()> for Squares {
///     async fn lookup(key: &u64, _extra: Option<&()>) -> Result<(u64, Option<Duration>), BoxError> {
///         Ok((key * key, None))
///     }
/// }
/// ```
pub trait Lookup<K: ?Sized, T, S> {
    /// Fetches the value for `key`.
    ///
    /// # Errors
    /// Whatever the backend fails with; the [`RTCache`] hands it, wrapped in
    /// [`Error::Lookup`], to every caller that waited for this lookup, and does not cache it.
    fn lookup(
        key: &K,
        extra: Option<&S>,
    ) -> impl Future<Output = Result<(T, Option<Duration>), BoxError>> + Send;
}

/// How an [`RTCache`] fetches several missing values at once, for [`RTCache::multi_get`].
pub trait MultiLookup<K: ?Sized, T, S> {
    /// Fetches the values for `keys`: exactly one `(value, ttl)` per key, in the same order.
    ///
    /// # Errors
    /// Whatever the backend fails with; [`RTCache::multi_get`] then fails as a whole.
    fn multi_lookup(
        keys: &[&K],
        extra: Option<&S>,
    ) -> impl Future<Output = Result<Vec<(T, Option<Duration>)>, BoxError>> + Send;
}

/// A read-through cache: a [`MemoryCache`] in front of a [`Lookup`], with stampede protection.
///
/// When several callers miss the same key at once, only the first (the *leader*) runs the
/// lookup; the others wait on the key's lock and are woken with the leader's result as soon as
/// it is ready ([`CacheStatus::LockHit`], or the same error). In detail:
///
/// * **Errors** are shared, never cached: every waiter gets the leader's [`Error::Lookup`], and
///   the next read after that runs the lookup again (again coalesced, so a failing backend sees
///   one lookup per round of concurrent callers, not one per caller).
/// * **A cancelled leader** (its future dropped) releases its waiters without a result; they race
///   for the lock and exactly one of them runs the lookup while the others wait on it.
/// * **A panicking lookup** gives every waiter [`Error::LookupPanicked`]; the panic itself
///   continues in the leader's task. The next read retries.
/// * **`lock_age`**: a lock held that long counts as abandoned (a stuck lookup). The next caller
///   replaces it and leads a new lookup, whose result is cached; waiters of the old lock move to
///   the new one when the age is reached. `None`: locks never age.
/// * **Admission**: a looked-up value that other callers waited for is always stored; one that
///   only its own caller asked for goes through the same admission as [`MemoryCache::put`] (so
///   when the cache is full, a key seen for the first time in a while may not displace a more
///   popular one). A refresh of an entry already cached always updates it.
/// * **`lock_timeout`**: a waiter waits at most that long, then runs the lookup itself and
///   returns its result without caching it (the leader is still expected to). `None`: wait for
///   the leader.
///
/// `get_stale` and `get_stale_while_update` may serve an expired value for a while; the latter
/// refreshes it with exactly one background lookup.
///
/// # Example
/// ```
/// use std::time::Duration;
/// use larder_memory_cache::{BoxError, CacheStatus, Lookup, RTCache};
///
/// struct Upper;
/// impl Lookup<String, String, ()> for Upper {
///     async fn lookup(key: &String, _: Option<&()>) -> Result<(String, Option<Duration>), BoxError> {
///         Ok((key.to_uppercase(), None))
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build()?.block_on(async {
/// let cache: RTCache<String, String, Upper, ()> = RTCache::new(1_000, None, None);
/// let key = "abc".to_string();
/// let (value, status) = cache.get(&key, Some(Duration::from_secs(60)), None).await;
/// assert_eq!((value?.as_str(), status), ("ABC", CacheStatus::Miss));
/// let (value, status) = cache.get(&key, None, None).await;
/// assert_eq!((value?.as_str(), status), ("ABC", CacheStatus::Hit));
/// assert_eq!(cache.stats().lookups, 1);
/// # Ok::<(), larder_memory_cache::Error>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RTCache<K: ?Sized, T, CB, S> {
    cache: MemoryCache<K, T>,
    locks: LockTable<T>,
    lock_age: Option<Duration>,
    lock_timeout: Option<Duration>,
    counters: Counters,
    _lookup: PhantomData<fn() -> (CB, S)>,
}

impl<K, T, CB, S> RTCache<K, T, CB, S>
where
    K: Hash + ?Sized,
    T: Clone + Send + Sync + 'static,
{
    /// A read-through cache holding up to `size` items; see the type docs for `lock_age` and
    /// `lock_timeout`.
    pub fn new(size: usize, lock_age: Option<Duration>, lock_timeout: Option<Duration>) -> Self {
        Self {
            cache: MemoryCache::new(size),
            locks: LockTable::new(),
            lock_age,
            lock_timeout,
            counters: Counters::default(),
            _lookup: PhantomData,
        }
    }

    /// The underlying [`MemoryCache`], to read or write it directly (such accesses are not
    /// counted in [`stats`](Self::stats)).
    pub fn cache(&self) -> &MemoryCache<K, T> {
        &self.cache
    }

    /// Removes `key` from the cache (a lookup in flight for it still stores its result).
    pub fn remove(&self, key: &K) {
        self.cache.remove(key);
    }

    /// The hit, miss and lookup counters so far.
    pub fn stats(&self) -> Stats {
        self.counters.snapshot()
    }
}

impl<K, T, CB, S> RTCache<K, T, CB, S>
where
    K: Hash + Sync + ?Sized,
    T: Clone + Send + Sync + 'static,
    CB: Lookup<K, T, S>,
    S: Sync,
{
    /// Reads `key`, running the lookup on a miss (or an expired entry) and caching its value for
    /// the lookup's TTL, or else `ttl` (`None`: no expiry).
    ///
    /// Returns the value or the lookup's error, and how it was answered: [`CacheStatus::Hit`];
    /// [`CacheStatus::Miss`] or [`CacheStatus::Expired`] when this caller ran the lookup (or got
    /// the error of the one it waited on); [`CacheStatus::LockHit`] when another caller's lookup
    /// answered it.
    pub async fn get(
        &self,
        key: &K,
        ttl: Option<Duration>,
        extra: Option<&S>,
    ) -> (Result<T, Error>, CacheStatus) {
        let hash = self.cache.hash(key);
        match self.cache.get_hashed(hash) {
            (Some(value), _) => {
                self.counters.add(Stat::Hit);
                (Ok(value), CacheStatus::Hit)
            }
            (None, status) => self.fetch(key, hash, status, ttl, extra).await,
        }
    }

    /// Like [`get`](Self::get), but an entry that expired no more than `stale_ttl` ago is
    /// returned as [`CacheStatus::Stale`] without a lookup. Older entries are fetched again.
    pub async fn get_stale(
        &self,
        key: &K,
        ttl: Option<Duration>,
        extra: Option<&S>,
        stale_ttl: Duration,
    ) -> (Result<T, Error>, CacheStatus) {
        self.get_stale_hashed(key, self.cache.hash(key), ttl, extra, stale_ttl)
            .await
    }

    async fn get_stale_hashed(
        &self,
        key: &K,
        hash: KeyHash,
        ttl: Option<Duration>,
        extra: Option<&S>,
        stale_ttl: Duration,
    ) -> (Result<T, Error>, CacheStatus) {
        match self.cache.get_stale_hashed(hash) {
            (Some(value), CacheStatus::Hit) => {
                self.counters.add(Stat::Hit);
                (Ok(value), CacheStatus::Hit)
            }
            (Some(value), CacheStatus::Stale(d)) if d <= stale_ttl => {
                self.counters.add(Stat::Stale);
                (Ok(value), CacheStatus::Stale(d))
            }
            (Some(_), _) => {
                self.fetch(key, hash, CacheStatus::Expired, ttl, extra)
                    .await
            }
            (None, status) => self.fetch(key, hash, status, ttl, extra).await,
        }
    }

    /// Like [`get_stale`](Self::get_stale), and when it serves a stale value, refreshes the
    /// entry in the background (`tokio::spawn`, so it needs a tokio runtime). At most one lookup
    /// per key runs at a time: no refresh starts while one (or a [`get`](Self::get)'s lookup) is
    /// in flight.
    ///
    /// # Panics
    /// When it needs to start a refresh outside a tokio runtime (as `tokio::spawn` does).
    pub async fn get_stale_while_update(
        &'static self,
        key: &K,
        ttl: Option<Duration>,
        extra: Option<&S>,
        stale_ttl: Duration,
    ) -> (Result<T, Error>, CacheStatus)
    where
        K: Clone + Send + 'static,
        S: Clone + Send + 'static,
        CB: 'static,
    {
        let hash = self.cache.hash(key);
        let (result, status) = self
            .get_stale_hashed(key, hash, ttl, extra, stale_ttl)
            .await;
        if status.stale().is_some()
            && let Some(leader) = self.locks.try_lead(hash, self.lock_age)
        {
            let key = key.clone();
            let extra = extra.cloned();
            tokio::spawn(async move {
                let result = self.lookup_and_store(&key, hash, ttl, extra.as_ref()).await;
                leader.finish(&result);
            });
        }
        (result, status)
    }

    /// The miss path: lead the lookup or wait for the leader.
    async fn fetch(
        &self,
        key: &K,
        hash: KeyHash,
        miss_status: CacheStatus,
        ttl: Option<Duration>,
        extra: Option<&S>,
    ) -> (Result<T, Error>, CacheStatus) {
        loop {
            match self.locks.acquire(hash, self.lock_age) {
                Acquired::Leader(leader) => {
                    // A previous leader may have stored the value between our read and now.
                    let absent = match self.cache.get_hashed(hash) {
                        (Some(value), _) => {
                            let result = Ok(value);
                            leader.finish(&result);
                            self.counters.add(Stat::LockHit);
                            return (result, CacheStatus::LockHit);
                        }
                        (None, status) => status == CacheStatus::Miss,
                    };
                    let result = self.lookup(key, extra).await;
                    let result = result.map(|(value, lookup_ttl)| {
                        let ttl = lookup_ttl.or(ttl);
                        if leader.has_waiters() || !absent {
                            // Someone waited for it, or it refreshes an expired entry.
                            self.cache.force_put_hashed(hash, value.clone(), ttl);
                        } else {
                            self.cache.put_absent_hashed(hash, value.clone(), ttl);
                        }
                        value
                    });
                    leader.finish(&result);
                    self.counters.add(Stat::Miss);
                    return (result, miss_status);
                }
                Acquired::Waiter(waiter) => match waiter.wait(self.lock_timeout).await {
                    Waited::Done(Ok(value)) => {
                        self.counters.add(Stat::LockHit);
                        return (Ok(value), CacheStatus::LockHit);
                    }
                    Waited::Done(Err(e)) => {
                        self.counters.add(Stat::Miss);
                        return (Err(e), miss_status);
                    }
                    Waited::Abandoned => {}
                    Waited::TimedOut => {
                        let result = self.lookup(key, extra).await.map(|(value, _)| value);
                        self.counters.add(Stat::Miss);
                        return (result, miss_status);
                    }
                },
            }
        }
    }

    async fn lookup(&self, key: &K, extra: Option<&S>) -> Result<(T, Option<Duration>), Error> {
        self.counters.add(Stat::Lookup);
        let result = CB::lookup(key, extra).await.map_err(Error::lookup);
        if result.is_err() {
            self.counters.add(Stat::LookupError);
        }
        result
    }

    async fn lookup_and_store(
        &self,
        key: &K,
        hash: KeyHash,
        ttl: Option<Duration>,
        extra: Option<&S>,
    ) -> Result<T, Error> {
        let (value, lookup_ttl) = self.lookup(key, extra).await?;
        self.cache
            .force_put_hashed(hash, value.clone(), lookup_ttl.or(ttl));
        Ok(value)
    }
}

impl<K, T, CB, S> RTCache<K, T, CB, S>
where
    K: Hash + Sync + ?Sized,
    T: Clone + Send + Sync + 'static,
    CB: MultiLookup<K, T, S>,
    S: Sync,
{
    /// Reads several keys, fetching all the missing ones with one
    /// [`MultiLookup::multi_lookup`] call and caching them (for the lookup's TTL or else `ttl`).
    /// Returns one `(value, status)` per key, in order. Unlike [`get`](Self::get) this does not
    /// coalesce with other callers (so concurrent multi-gets cannot wait on each other).
    ///
    /// # Errors
    /// [`Error::Lookup`] if the lookup fails, [`Error::MultiLookupCount`] if it returns the wrong
    /// number of values; the whole call fails (values it did return are cached anyway).
    pub async fn multi_get<'a, I>(
        &self,
        keys: I,
        ttl: Option<Duration>,
        extra: Option<&S>,
    ) -> Result<Vec<(T, CacheStatus)>, Error>
    where
        I: Iterator<Item = &'a K>,
        K: 'a,
    {
        let mut found = Vec::new();
        let mut misses = Vec::new();
        for key in keys {
            let hash = self.cache.hash(key);
            match self.cache.get_hashed(hash) {
                (Some(value), status) => found.push(Some((value, status))),
                (None, status) => {
                    misses.push((key, hash, status, found.len()));
                    found.push(None);
                }
            }
        }
        let hits = found.len() - misses.len();
        for _ in 0..hits {
            self.counters.add(Stat::Hit);
        }
        if !misses.is_empty() {
            let keys: Vec<&K> = misses.iter().map(|m| m.0).collect();
            self.counters.add(Stat::Lookup);
            let values = CB::multi_lookup(&keys, extra).await.map_err(|e| {
                self.counters.add(Stat::LookupError);
                Error::lookup(e)
            })?;
            for ((_, hash, status, at), (value, lookup_ttl)) in misses.iter().zip(&values) {
                self.cache
                    .force_put_hashed(*hash, value.clone(), lookup_ttl.or(ttl));
                found[*at] = Some((value.clone(), *status));
                self.counters.add(Stat::Miss);
            }
            if values.len() != misses.len() {
                self.counters.add(Stat::LookupError);
                return Err(Error::MultiLookupCount {
                    expected: misses.len(),
                    got: values.len(),
                });
            }
        }
        Ok(found.into_iter().flatten().collect())
    }
}

impl<K: ?Sized, T, CB, S> std::fmt::Debug for RTCache<K, T, CB, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RTCache")
            .field("lock_age", &self.lock_age)
            .field("lock_timeout", &self.lock_timeout)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A lookup that, by call number, sleeps 0-2 ms and then fails, panics or returns the key.
    struct Chaos;
    impl Lookup<u64, u64, AtomicUsize> for Chaos {
        async fn lookup(
            key: &u64,
            calls: Option<&AtomicUsize>,
        ) -> Result<(u64, Option<Duration>), BoxError> {
            let n = calls
                .expect("a call counter")
                .fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(n as u64 % 3)).await;
            match n % 11 {
                0 => Err("chaos".into()),
                7 if n < 100 => panic!("chaos"),
                _ => Ok((*key, Some(Duration::from_millis(5)))),
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn errors_panics_and_cancellations_never_wedge_callers_or_leak_locks() {
        let cache = Arc::new(RTCache::<u64, u64, Chaos, AtomicUsize>::new(
            100,
            Some(Duration::from_millis(200)),
            Some(Duration::from_millis(100)),
        ));
        let calls = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..200u64)
            .map(|t| {
                let (cache, calls) = (cache.clone(), calls.clone());
                tokio::spawn(async move {
                    for i in 0..20u64 {
                        let key = (t + i) % 5;
                        if let (Ok(value), _) = cache.get(&key, None, Some(&calls)).await {
                            assert_eq!(value, key);
                        }
                    }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(3)).await;
        for task in tasks.iter().step_by(7) {
            task.abort();
        }
        let all = async {
            for task in tasks {
                // A task may end in a lookup's panic; what matters is that it ends.
                let _ = task.await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), all)
            .await
            .expect("no caller is left waiting");
        assert_eq!(cache.locks.len(), 0, "every lock was released");
        assert!(calls.load(Ordering::Relaxed) > 5);
    }
}
