//! A shared cache tier on Redis: [`RedisStorage`] is a larder
//! [`Storage`](larder_storage::Storage) that many proxies point at, so an object fetched
//! through one of them is a hit on all of them.
//!
//! - [`RedisStorage`]: entries as a meta hash plus body chunks (64 KiB by default), published
//!   atomically when complete, expiring with their freshness, read lazily with seeking.
//! - [`RedisConfig`]: the server URL, key prefix, chunk size, timeouts and expiry knobs.
//! - [`RedisStats`]: counters of hits, misses, failures and writes, for metrics.
//! - [`TieredStorage`] (re-exported from [`larder_storage::tiered`]): local tiers (a
//!   [`MemCache`](larder_storage::MemCache), a disk) in front of the shared one; hits from
//!   Redis are promoted into them.
//! - [`Error`]: what went wrong; an outage (Redis unreachable, too slow, or skipped after
//!   repeated failures) reaches callers as [`larder_storage::Error::Unavailable`], so they
//!   can log it quietly by asking [`larder_storage::Error::is_unavailable`].
//!
//! Redis being down or slow does not stall requests: every call is bounded by
//! [`RedisConfig::timeout`] and, after a few failures in a row, Redis is skipped for a
//! moment; lookups fail (a proxy serves from upstream; behind a [`TieredStorage`] they are
//! plain misses), writes are dropped, and caching resumes by itself when the server is back.
//! The storage logs one warning when Redis becomes unreachable and one line when it answers
//! again, not one per call.
//!
//! The example needs a Redis server on 127.0.0.1:6379, so it is only compiled here; the
//! integration tests run the same steps against a server they start.
//!
//! # Example
//!
//! ```no_run
//! use std::time::{Duration, SystemTime};
//! use bytes::Bytes;
//! use larder_storage::{CacheKey, CacheMeta, ResponseHeader, Storage};
//! use larder_storage_redis::{RedisConfig, RedisStorage};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
//! let mut config = RedisConfig::new("redis://127.0.0.1:6379");
//! config.timeout = Duration::from_millis(100);
//! let storage: &'static RedisStorage = Box::leak(Box::new(RedisStorage::new(config)?));
//! storage.ping().await?;
//!
//! let span = tracing::Span::none();
//! let key = CacheKey::new("", "https://example.com/", "");
//! let now = SystemTime::now();
//! let meta = CacheMeta::new(now + Duration::from_secs(60), now, 0, 0,
//!     ResponseHeader::new(http::StatusCode::OK));
//!
//! let mut miss = storage.get_miss_handler(&key, &meta, &span).await?;
//! miss.write_body(Bytes::from_static(b"hello"), true).await?;
//! miss.finish().await?;
//!
//! // Any proxy sharing this Redis now finds the entry.
//! let (_meta, mut hit) = storage.lookup(&key, &span).await?.expect("stored");
//! assert_eq!(hit.read_body().await?.as_deref(), Some(&b"hello"[..]));
//! assert_eq!(storage.stats().hits, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Running a fleet on one Redis
//!
//! Point every proxy at the same server (and prefix):
//!
//! ```text
//! larder --upstream http://origin:8000 --storage redis://10.0.0.5:6379 --admin 127.0.0.1:9090
//! ```
//!
//! or in the TOML file:
//!
//! ```toml
//! [cache]
//! storage = "redis://10.0.0.5:6379/0"
//! redis_prefix = "larder:"     # several caches can share one Redis
//! redis_timeout_ms = 250       # a slower call is a miss (lookup) or a dropped write
//! ```
//!
//! To keep hot objects in each proxy's memory as well, name both tiers: `--storage
//! memory+redis://10.0.0.5:6379` (`storage = "memory+redis://10.0.0.5:6379/0"`). Each proxy
//! then runs a [`TieredStorage`] whose memory tier holds `cache.size` bytes (evicting with
//! `cache.eviction`); lookups try memory first, then Redis (a hit there is copied into
//! memory), and new responses are written to both. Objects larger than `cache.size` (or
//! `max_object_size`) are stored in neither. `local_ttl_secs` (`--local-ttl-secs`) bounds how
//! long a proxy serves its local copy before asking Redis again.
//!
//! - Give Redis a memory limit and an eviction policy: `maxmemory 4gb` and
//!   `maxmemory-policy volatile-lru` (every key written here has an expiry). With Redis
//!   storage the proxy's `cache.size` does not apply. No persistence is needed if the cache
//!   may start empty: `--save '' --appendonly no`.
//! - Put the proxies behind one name: the cache key includes the `Host`, so every proxy must
//!   see the same host for an object to be shared.
//! - A PURGE (or an unsafe method's invalidation) through any proxy removes the entry for all
//!   of them, and stops writes of it in flight elsewhere from being published. With
//!   `memory+redis`, it removes the entry from Redis and from that proxy's memory; the other
//!   proxies keep their local copy until it is evicted, goes stale, or is older than
//!   `local_ttl_secs` (set it to bound how long a purged object is still served).
//! - If Redis goes down or hangs, every proxy keeps serving from the origin: lookups fail
//!   within `redis_timeout_ms` (at once when refused, or after five failures in a row, for a
//!   second at a time), writes are dropped, and caching resumes by itself when Redis is back.
//!   `/metrics` shows it as `larder_redis_lookup_errors_total`,
//!   `larder_redis_timeouts_total`, `larder_redis_skipped_total` and
//!   `larder_redis_writes_dropped_total`. With `memory+redis`, memory keeps serving what it
//!   holds, misses are plain misses (`larder_tiered_back_unavailable_total`) filled into
//!   memory only, and a PURGE that cannot reach Redis answers 500.
//! - Each proxy has its own cache lock: concurrent misses of one object on different proxies
//!   each fetch it once (the last fill wins), so the origin sees at most one fetch per proxy.
//! - Not supported: Redis Cluster (the keys of an entry share a hash tag, but the client here
//!   talks to one server) and TLS (`rediss://`).
//!
//! Library users build the same tiers with [`TieredStorage::new`]`(memory, redis)` and
//! bound the memory tier with [`TieredStorage::with_eviction`]; more tiers (a disk between
//! memory and Redis: `--storage memory+disk:/var/cache/larder+redis://10.0.0.5:6379`) with
//! [`TieredStorage::from_tiers`] and [`larder_storage::tiered::Tier`].

mod breaker;
mod client;
mod config;
mod entry;
mod error;
mod hit;
mod miss;
mod scripts;
mod stats;
mod storage;

pub use config::RedisConfig;
pub use error::{Error, Result};
pub use larder_storage::tiered::{TieredStats, TieredStorage};
pub use stats::RedisStats;
pub use storage::RedisStorage;
