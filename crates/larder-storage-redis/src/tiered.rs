//! [`TieredStorage`]: a fast local tier (typically [`MemCache`](larder_storage::MemCache)) in
//! front of a shared one (typically [`RedisStorage`](crate::RedisStorage)).

use std::any::Any;
use std::time::Duration;

use async_trait::async_trait;
use larder_storage::eviction::EvictionManager;
use larder_storage::metrics::{MetricSample, write_prometheus};
use larder_storage::{
    CacheKey, CacheMeta, CompactCacheKey, HitHandler, MissHandler, PurgeType, Result, Storage,
};
use tracing::Span;

use crate::stats::inc;
use crate::storage::RedisStorage;

mod front;
mod hit;
mod miss;
mod stats;

use front::{FrontTier, Tier};
use hit::PromotingHit;
use miss::TieredMiss;
pub use stats::TieredStats;

/// Two storages as one: lookups try the `front` tier first and fall back to the `back` one;
/// writes go to both; a hit from the back tier is copied into the front one as it is read
/// (a *promotion*), so the next lookup of the object on this proxy stays local.
///
/// - **Promotion.** Only bodies of at most [`max_promote_size`](Self::with_max_promote_size)
///   bytes (default 1 MiB) read from start to end without seeking are promoted; the body is
///   collected as the hit streams it and written to the front tier in one go at its end, so
///   other readers never see a promotion half done.
/// - **Front size.** The front tier does not limit its own size: give the tiered storage an
///   [`EvictionManager`] ([`with_eviction`](Self::with_eviction)); every entry that enters the
///   front tier (writes and promotions) is admitted there and its victims are purged from the
///   front tier only. Use this manager rather than an `HttpCache` one, which would not see
///   promotions.
/// - **Purges.** An [invalidation](PurgeType::Invalidation) removes the entry from both tiers
///   (and so from every proxy sharing the back tier); an [eviction](PurgeType::Eviction) only
///   from the front tier, since the back tier manages its own space.
/// - **Failures.** While the back tier cannot be reached (it is down, too slow, or skipped
///   while [`RedisStorage`]'s circuit breaker is open: an error that
///   [`is_unavailable`](larder_storage::Error::is_unavailable)), a lookup that
///   misses the front tier is a plain miss (`Ok(None)`, counted in
///   [`TieredStats::back_unavailable`]) and writes go to the front tier only (counted in
///   [`TieredStats::back_write_errors`]), so a proxy keeps collapsing misses and serving
///   hits from memory without an error per request; the back tier reports the outage
///   itself ([`RedisStorage`] logs once when Redis becomes unreachable and once when it is
///   back). Other back-tier errors (a corrupt entry) still fail the lookup. A purge or an
///   invalidation fails when it cannot reach the back tier, after removing the front tier's
///   copy: the caller learns that the other proxies still have the object. A failing front
///   tier is skipped on lookup.
/// - **Streaming.** Streaming partial writes are supported if the front tier supports them:
///   readers then stream the front tier's copy of a write in progress.
/// - **Fleets.** A purge through one proxy reaches Redis and its own front tier, not the
///   front tiers of the other proxies: they keep their copy until it is evicted or, with
///   [`with_front_ttl`](Self::with_front_ttl), until it is that old. Bound the front TTL by
///   how long a purged object may still be served.
pub struct TieredStorage {
    front: FrontTier,
    back: Tier,
}

impl std::fmt::Debug for TieredStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TieredStorage")
            .field("max_promote_size", &self.front.max_promote_size)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl TieredStorage {
    /// `front` in front of `back`, without an eviction manager for the front tier.
    pub fn new(front: Tier, back: Tier) -> Self {
        TieredStorage {
            front: FrontTier::new(front),
            back,
        }
    }

    /// Serves a front-tier entry only while it is younger than `ttl` (since it was written or
    /// promoted); an older one is dropped from the front tier and looked up in the back tier
    /// again. Bounds how long a proxy serves an object purged through another proxy.
    #[must_use]
    pub fn with_front_ttl(mut self, ttl: Duration) -> Self {
        self.front.ttl = Some(ttl);
        self
    }

    /// Limits the front tier with `manager`: entries entering it are admitted there, and the
    /// victims are purged from the front tier.
    #[must_use]
    pub fn with_eviction(mut self, manager: &'static (dyn EvictionManager + Sync)) -> Self {
        self.front.eviction = Some(manager);
        self
    }

    /// The largest body (plus serialized meta, as hits report their weight) that is promoted
    /// into the front tier. 0 turns promotion off.
    #[must_use]
    pub fn with_max_promote_size(mut self, bytes: usize) -> Self {
        self.front.max_promote_size = bytes;
        self
    }

    /// The front (local) tier.
    pub fn front(&self) -> &'static (dyn Storage + Sync) {
        self.front.storage
    }

    /// The back (shared) tier.
    pub fn back(&self) -> &'static (dyn Storage + Sync) {
        self.back
    }

    /// The back tier as a [`RedisStorage`], if it is one (for its
    /// [`stats`](RedisStorage::stats) and [state](RedisStorage::is_marked_down)).
    pub fn back_redis(&self) -> Option<&'static RedisStorage> {
        let back: &'static (dyn Storage + Sync) = self.back;
        back.as_any().downcast_ref::<RedisStorage>()
    }

    /// The eviction manager bounding the front tier, if one was given with
    /// [`with_eviction`](Self::with_eviction).
    pub fn eviction(&self) -> Option<&'static (dyn EvictionManager + Sync)> {
        self.front.eviction
    }

    /// Everything worth exporting about this storage in the Prometheus text format: what
    /// [`Storage::metrics`] reports, as text.
    pub fn render_prometheus(&self) -> String {
        let mut samples = Vec::new();
        self.metrics(&mut samples);
        let mut out = String::with_capacity(4096);
        write_prometheus(&samples, &mut out);
        out
    }

    /// The counters since the storage was created.
    pub fn stats(&self) -> TieredStats {
        self.front.counters.snapshot()
    }
}

#[async_trait]
impl Storage for TieredStorage {
    async fn lookup(
        &'static self,
        key: &CacheKey,
        trace: &Span,
    ) -> Result<Option<(CacheMeta, HitHandler)>> {
        match self.front.storage.lookup(key, trace).await {
            Ok(Some(_)) if self.front.is_expired(&key.to_compact()) => {
                let compact = key.to_compact();
                self.front.left(&compact);
                if let Some(manager) = self.front.eviction {
                    manager.remove(&compact);
                }
                if let Err(e) = self
                    .front
                    .storage
                    .purge(&compact, PurgeType::Eviction, trace)
                    .await
                {
                    tracing::debug!(error = %e, "dropping an old front tier entry failed");
                }
            }
            Ok(Some((meta, hit))) => {
                inc(&self.front.counters.front_hits);
                if let Some(manager) = self.front.eviction {
                    manager.access(
                        &key.to_compact(),
                        hit.get_eviction_weight(),
                        meta.fresh_until(),
                    );
                }
                return Ok(Some((meta, hit)));
            }
            Ok(None) => {}
            Err(e) => tracing::debug!(error = %e, "front tier lookup failed"),
        }
        let found = match self.back.lookup(key, trace).await {
            Ok(found) => found,
            // The back tier cannot be reached (Redis down, slow, or skipped while its circuit
            // breaker is open): a plain miss. The write that follows fills the front tier, and
            // the back tier logs the outage once, not once per request.
            Err(e) if e.is_unavailable() => {
                tracing::debug!(error = %e, "back tier unavailable: lookup is a miss");
                inc(&self.front.counters.back_unavailable);
                None
            }
            Err(e) => return Err(e),
        };
        let Some((meta, hit)) = found else {
            return Ok(None);
        };
        inc(&self.front.counters.back_hits);
        let weight = hit.get_eviction_weight();
        if self.front.max_promote_size == 0 || weight > self.front.max_promote_size {
            return Ok(Some((meta, hit)));
        }
        let promoting = PromotingHit::new(&self.front, self.back, hit, key.clone(), meta.clone());
        Ok(Some((meta, Box::new(promoting))))
    }

    async fn lookup_streaming_write(
        &'static self,
        key: &CacheKey,
        streaming_write_tag: Option<&[u8]>,
        trace: &Span,
    ) -> Result<Option<(CacheMeta, HitHandler)>> {
        // The write in progress streams through the front tier.
        self.front
            .storage
            .lookup_streaming_write(key, streaming_write_tag, trace)
            .await
    }

    async fn get_miss_handler(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        trace: &Span,
    ) -> Result<MissHandler> {
        let front = self
            .front
            .storage
            .get_miss_handler(key, meta, trace)
            .await?;
        let back = match self.back.get_miss_handler(key, meta, trace).await {
            Ok(back) => Some(back),
            Err(e) => {
                inc(&self.front.counters.back_write_errors);
                tracing::debug!(error = %e, "back tier write not started");
                None
            }
        };
        Ok(Box::new(TieredMiss {
            tier: &self.front,
            key: key.to_compact(),
            fresh_until: meta.fresh_until(),
            front,
            back,
        }))
    }

    async fn purge(
        &'static self,
        key: &CompactCacheKey,
        purge_type: PurgeType,
        trace: &Span,
    ) -> Result<bool> {
        let front = self.front.storage.purge(key, purge_type, trace).await;
        self.front.left(key);
        if let Some(manager) = self.front.eviction
            && purge_type == PurgeType::Invalidation
        {
            manager.remove(key);
        }
        if purge_type == PurgeType::Eviction {
            return front;
        }
        let back = self.back.purge(key, purge_type, trace).await?;
        Ok(front.unwrap_or(false) || back)
    }

    async fn update_meta(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        trace: &Span,
    ) -> Result<bool> {
        let front = self
            .front
            .storage
            .update_meta(key, meta, trace)
            .await
            .unwrap_or(false);
        match self.back.update_meta(key, meta, trace).await {
            Ok(back) => Ok(front || back),
            Err(e) if front => {
                tracing::debug!(error = %e, "back tier meta update failed");
                Ok(true)
            }
            Err(e) => Err(e),
        }
    }

    fn support_streaming_partial_write(&self) -> bool {
        self.front.storage.support_streaming_partial_write()
    }

    /// The front tier's size (`larder_tiered_front_bytes`, `larder_tiered_front_entries` and
    /// its evictions, with an eviction manager), the [`TieredStats`] counters
    /// (`larder_tiered_*_total`), then what each tier reports itself (a [`RedisStorage`]
    /// back tier: its `larder_redis_*_total` counters).
    fn metrics(&self, out: &mut Vec<MetricSample>) {
        if let Some(manager) = self.front.eviction {
            let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
            out.extend([
                MetricSample::gauge(
                    "larder_tiered_front_bytes",
                    "Bytes held in the local memory tier.",
                    count(manager.total_size()),
                ),
                MetricSample::gauge(
                    "larder_tiered_front_entries",
                    "Entries held in the local memory tier.",
                    count(manager.total_items()),
                ),
                MetricSample::counter(
                    "larder_tiered_front_evictions_total",
                    "Entries evicted from the local memory tier.",
                    count(manager.evicted_items()),
                ),
                MetricSample::counter(
                    "larder_tiered_front_evicted_bytes_total",
                    "Bytes evicted from the local memory tier.",
                    count(manager.evicted_size()),
                ),
            ]);
        }
        out.extend(self.stats().samples());
        self.front.storage.metrics(out);
        self.back.metrics(out);
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync + 'static) {
        self
    }
}
