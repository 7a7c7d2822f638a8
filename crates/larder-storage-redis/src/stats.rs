//! Counters of what a [`RedisStorage`](crate::RedisStorage) did, for metrics.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of a storage's counters (all since it was created), from
/// [`RedisStorage::stats`](crate::RedisStorage::stats).
///
/// `errors` counts every failed Redis call, `timeouts` the part of them that took longer
/// than [`RedisConfig::timeout`](crate::RedisConfig::timeout). While Redis is down,
/// `lookup_errors` and `writes_dropped` grow and the proxy serves from upstream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisStats {
    /// Lookups that found a complete entry.
    pub hits: u64,
    /// Lookups that found nothing.
    pub misses: u64,
    /// Lookups that failed (Redis down, slow or an unreadable entry).
    pub lookup_errors: u64,
    /// Hits whose body could not be read to the end.
    pub read_errors: u64,
    /// Entries published by a finished write.
    pub writes_stored: u64,
    /// Writes abandoned or failed, so nothing was stored.
    pub writes_dropped: u64,
    /// Failed Redis calls of any kind.
    pub errors: u64,
    /// Redis calls that did not answer within the timeout (counted in `errors` too).
    pub timeouts: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) lookup_errors: AtomicU64,
    pub(crate) read_errors: AtomicU64,
    pub(crate) writes_stored: AtomicU64,
    pub(crate) writes_dropped: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) timeouts: AtomicU64,
}

pub(crate) fn inc(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    pub(crate) fn snapshot(&self) -> RedisStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RedisStats {
            hits: get(&self.hits),
            misses: get(&self.misses),
            lookup_errors: get(&self.lookup_errors),
            read_errors: get(&self.read_errors),
            writes_stored: get(&self.writes_stored),
            writes_dropped: get(&self.writes_dropped),
            errors: get(&self.errors),
            timeouts: get(&self.timeouts),
        }
    }
}
