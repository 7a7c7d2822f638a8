//! Eviction core for larder: a sharded weighted LRU and a TinyUFO-backed policy.
//!
//! Keys are `u64` values that are already hashes (a cache key's hash); this crate knows nothing
//! of HTTP and does no IO. Two policies share the [`EvictionPolicy`] interface:
//!
//! - [`Lru`]: a sharded, weighted LRU (the job of pingora-lru). `N` shards, each an index-linked
//!   list in one `Vec` plus a hash table, behind its own `parking_lot` mutex; every operation is
//!   O(1). Admit with [`Lru::admit_and_evict`] to get back what must go to stay under the weight
//!   limit, or split it into [`Lru::admit`] + [`Lru::evict_to_limit`]. [`Lru::iter_for_each`] and
//!   [`Lru::insert_tail`] save and restore the order.
//! - [`TinyUfoPolicy`]: S3-FIFO eviction with TinyLFU admission from the `tinyufo` crate, which
//!   may reject a newcomer in favour of a more popular victim.
//!
//! # Choosing the calls
//! | need | call |
//! | --- | --- |
//! | a hit, or admit on a miss and evict (one lock) | [`Lru::promote_or_admit_and_evict`] |
//! | admit and learn what to purge | [`Lru::admit_and_evict`] (or `_with`, no allocation) |
//! | start tracking on access without evicting | [`Lru::promote_or_admit`] |
//! | batch admissions, evict later | [`Lru::admit`] then [`Lru::evict_to_limit`] |
//! | grow an entry as its body arrives | [`Lru::increment_weight`] then [`Lru::evict_to_limit`] |
//! | save / restore | [`Lru::iter_for_each`] per shard, then [`Lru::insert_tail`] in that order |
//!
//! # Layout and cost
//! A shard is a `Vec` of 32-byte nodes (key, weight, `u32` links, data) plus a hash table holding
//! only `u32` slot indices, so an entry costs about 40 bytes with `T = ()` and nothing is
//! allocated per operation once the shard has grown (freed slots are reused). Keys are mixed
//! before indexing the table, since keys sharing a shard share their low bits. The totals are
//! relaxed atomics that a steady-state miss (admit one, evict one of the same weight) does not
//! touch; the shard lock is then the only shared write. More shards mean less lock contention
//! but a coarser global LRU order: eviction is strict LRU within a shard and "power of two
//! choices" across shards.
//!
//! # Example
//! ```
//! use larder_eviction::{EvictionPolicy, Lru};
//!
//! // 100 bytes in total over 8 shards, room for 4 entries per shard preallocated.
//! let lru: Lru<String, 8> = Lru::with_capacity(100, 4);
//! for k in 0..10u64 {
//!     let victims = lru.admit_and_evict(k, format!("object {k}"), 20);
//!     // The caller purges each victim from its storage.
//!     for v in victims {
//!         assert!(!lru.peek(v.key));
//!     }
//! }
//! assert!(lru.weight() <= 100);
//! assert_eq!(lru.len(), 5);
//! assert!(lru.access(9)); // a hit promotes
//!
//! // Save each shard from most to least recently used, restore into a fresh LRU.
//! let restored: Lru<String, 8> = Lru::with_capacity(100, 4);
//! for shard in 0..lru.shards() {
//!     lru.iter_for_each(shard, |key, data, weight| {
//!         restored.insert_tail(key, data.clone(), weight);
//!     });
//! }
//! assert_eq!(restored.len(), 5);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

// The docs name algorithms (TinyUFO, TinyLFU, S3-FIFO) in prose, not code items.
#![allow(clippy::doc_markdown)]

mod lru;
mod policy;
mod shard;
mod tinyufo;

pub use crate::lru::Lru;
pub use crate::policy::{Evicted, EvictionPolicy};
pub use crate::tinyufo::TinyUfoPolicy;
