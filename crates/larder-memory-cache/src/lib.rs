//! An async in-memory cache with stampede protection: [`MemoryCache`] (TTL-aware, evicting with
//! `TinyUFO`) and [`RTCache`], a read-through cache whose concurrent misses for one key run one
//! lookup.
//!
//! This is the job of pingora-memory-cache, with the same names ([`CacheStatus`], [`Lookup`],
//! [`MultiLookup`], `get`/`put`/`get_stale`/`multi_get`), and some deliberate differences:
//!
//! * **Admission** adds `TinyLFU`'s doorkeeper in front of `TinyUFO`: once the cache is full, a
//!   new key is admitted on its second put within a window. On a Zipf 0.99 workload this raises
//!   the hit ratio slightly and makes get + put-on-miss several times faster, because keys seen
//!   once no longer go through the admission sketch. Until the cache first evicts, every put is
//!   stored, as in a map.
//! * **Keys** are checked with a second, independent 64-bit hash on every read, so a collision of
//!   the index hash is a miss, never another key's value.
//! * **Lookups** are `async fn`s in the trait (no boxing, no `async_trait`); errors are this
//!   crate's cloneable [`Error`].
//! * **Stampedes**: a failed, cancelled or panicking lookup never leaves waiters stuck and never
//!   turns into one lookup per waiter: waiters share the leader's error, or one of them takes
//!   over from a cancelled leader. A lock older than `lock_age` is replaced (and its result
//!   cached) rather than bypassed.
//! * **Counters**: [`RTCache::stats`] counts hits, misses and lookups.
//! * **Clock**: TTLs use [`tokio::time::Instant`], so tests can drive them with tokio's paused
//!   clock; a put with a zero TTL removes the key's old value instead of leaving it.
//!
//! # Example
//! ```
//! use std::time::Duration;
//! use larder_memory_cache::{BoxError, CacheStatus, Lookup, MemoryCache, RTCache};
//!
//! // A plain cache.
//! let cache: MemoryCache<str, u64> = MemoryCache::new(10_000);
//! cache.put("a", 1, Some(Duration::from_secs(30)));
//! assert_eq!(cache.get("a"), (Some(1), CacheStatus::Hit));
//!
//! // A read-through cache in front of a (pretend) slow backend.
//! struct Backend;
//! impl Lookup<u64, String, ()> for Backend {
//!     async fn lookup(id: &u64, _: Option<&()>) -> Result<(String, Option<Duration>), BoxError> {
//!         tokio::time::sleep(Duration::from_millis(5)).await;
//!         Ok((format!("user {id}"), Some(Duration::from_secs(60))))
//!     }
//! }
//! let users: RTCache<u64, String, Backend, ()> = RTCache::new(10_000, None, None);
//! # tokio::runtime::Builder::new_current_thread().enable_time().build()?.block_on(async {
//! // Concurrent misses for one key run one lookup; the others wait for it.
//! let (a, b, c) = tokio::join!(
//!     users.get(&7, None, None),
//!     users.get(&7, None, None),
//!     users.get(&7, None, None),
//! );
//! assert_eq!((a.0?, a.1), ("user 7".to_string(), CacheStatus::Miss));
//! assert_eq!((b.0?, b.1), ("user 7".to_string(), CacheStatus::LockHit));
//! assert_eq!((c.0?, c.1), ("user 7".to_string(), CacheStatus::LockHit));
//! assert_eq!(users.stats().lookups, 1);
//! # Ok::<(), larder_memory_cache::Error>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod doorkeeper;
mod error;
mod lock;
mod memory;
mod read_through;
mod stats;
mod status;

pub use error::{BoxError, Error};
pub use memory::MemoryCache;
pub use read_through::{Lookup, MultiLookup, RTCache};
pub use stats::Stats;
pub use status::CacheStatus;
