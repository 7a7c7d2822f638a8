//! An async in-memory cache with stampede protection: [`MemoryCache`] (TTL-aware, evicting with
//! `TinyUFO`) and [`RTCache`], a read-through cache whose concurrent misses for one key run one
//! lookup.
//!
//! This is the job of pingora-memory-cache, with the same names ([`CacheStatus`], [`Lookup`],
//! [`MultiLookup`], `get`/`put`/`get_stale`/`multi_get`), and some deliberate differences:
//! reads check a second, independent key hash so a 64-bit collision never serves another key's
//! value; a failed, cancelled or panicking lookup never leaves waiters stuck and never turns into
//! one lookup per waiter; lookups are `async fn`s in the trait (no boxing); and [`RTCache::stats`]
//! counts hits, misses and lookups.
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
