//! [`TieredStorage`]: an ordered list of storages used as one, fastest first: a memory tier in
//! front of a disk and a shared Redis (`memory+disk+redis://…` in the `larder` binary), or any
//! other list of [`Storage`]s.

use std::any::Any;
use std::time::Duration;

use async_trait::async_trait;
use tracing::Span;

use crate::eviction::EvictionManager;
use crate::metrics::{MetricSample, write_prometheus};
use crate::{
    CacheKey, CacheMeta, CompactCacheKey, HitHandler, MissHandler, PurgeType, Result, Storage,
};

mod hit;
mod miss;
mod stats;
mod tier;

use hit::PromotingHit;
use miss::{LaterWrite, TieredMiss};
pub use stats::{TierStats, TieredStats};
pub use tier::{DEFAULT_MAX_PROMOTE_SIZE, Tier};
use tier::{TierState, inc};

/// Storages as one, in order: lookups try each tier in turn; writes go to every tier; a hit
/// from a later tier is copied into the earlier tiers that take promotions as it is read (a
/// *promotion*), so the next lookup of the object stays in the fastest tier that holds it.
///
/// - **Promotion.** A tier takes bodies of at most its
///   [`max_promote_size`](Tier::with_max_promote_size) bytes (default 1 MiB; 0 takes none)
///   read from start to end without seeking; the body is collected as the hit streams it and
///   written to each of those tiers in one go at its end, so other readers never see a
///   promotion half done.
/// - **Size.** A tier that does not bound its own size (a
///   [`MemCache`](crate::MemCache)) gets an [`EvictionManager`]
///   ([`Tier::with_eviction`]); every entry that enters that tier (writes and promotions) is
///   admitted there and its victims are purged from that tier only. Use these managers rather
///   than an `HttpCache` one, which would not see promotions.
/// - **Purges.** An [invalidation](PurgeType::Invalidation) removes the entry from every tier
///   (and so from every proxy sharing a shared tier); an [eviction](PurgeType::Eviction) from
///   outside only from the first tier, since the others manage their own space. A purge that
///   some tier cannot carry out fails (after the other tiers dropped their copy): the caller
///   learns that a copy may remain.
/// - **Failures.** A tier that cannot be reached (an error that
///   [`is_unavailable`](crate::Error::is_unavailable): a Redis down, too slow or skipped by
///   its circuit breaker) is a miss for that tier on lookup (counted in
///   [`TierStats::unavailable`]), so a proxy keeps serving from the other tiers without an
///   error per request; the tier reports the outage itself. Another error of a tier that is
///   not the last is logged and skipped; the last tier's fails the lookup. A write that a
///   tier after the first cannot start or carry on is dropped for that tier (counted in
///   [`TierStats::write_errors`]) and the others continue; the first tier's write is the one
///   readers stream from, so its failure is the write's.
/// - **Streaming.** Streaming partial writes are supported if the first tier supports them:
///   readers then stream the first tier's copy of a write in progress.
/// - **Fleets.** A purge through one proxy reaches the shared tier and its own local tiers,
///   not the local tiers of the other proxies: they keep their copy until it is evicted or,
///   with [`Tier::with_ttl`], until it is that old. Bound that TTL by how long a purged
///   object may still be served.
///
/// # Example
///
/// Three tiers; an object stored only in the last is promoted into both others:
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use bytes::Bytes;
/// use larder_storage::tiered::{Tier, TieredStorage};
/// use larder_storage::{CacheKey, CacheMeta, MemCache, ResponseHeader, Storage};
///
/// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
/// let leak = || -> &'static MemCache { Box::leak(Box::new(MemCache::new())) };
/// let (hot, warm, cold) = (leak(), leak(), leak());
/// let tiered: &'static TieredStorage = Box::leak(Box::new(TieredStorage::from_tiers([
///     Tier::new(hot).with_name("hot"),
///     Tier::new(warm).with_name("warm"),
///     Tier::new(cold).with_name("cold"),
/// ])));
///
/// let span = tracing::Span::none();
/// let key = CacheKey::new("", "https://example.com/", "");
/// let now = SystemTime::now();
/// let meta = CacheMeta::new(now + Duration::from_secs(60), now, 0, 0,
///     ResponseHeader::new(http::StatusCode::OK));
/// let mut miss = cold.get_miss_handler(&key, &meta, &span).await?;
/// miss.write_body(Bytes::from_static(b"hello"), true).await?;
/// miss.finish().await?;
///
/// let (_, mut hit) = tiered.lookup(&key, &span).await?.expect("in the cold tier");
/// while hit.read_body().await?.is_some() {}
/// assert_eq!((hot.len(), warm.len()), (1, 1));
/// assert_eq!(tiered.tier_stats(2).map(|s| s.hits), Some(1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct TieredStorage {
    /// Never empty.
    tiers: Vec<TierState>,
}

impl std::fmt::Debug for TieredStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tiers: Vec<&Tier> = self.tiers.iter().map(|t| &t.tier).collect();
        f.debug_struct("TieredStorage")
            .field("tiers", &tiers)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl TieredStorage {
    /// Two tiers: `front` (named `front`) in front of `back` (named `back`), without an
    /// eviction manager for the front tier. The `with_front_*` and `with_*` methods tune the
    /// front tier.
    pub fn new(front: &'static (dyn Storage + Sync), back: &'static (dyn Storage + Sync)) -> Self {
        Self::from_tiers([
            Tier::new(front).with_name("front"),
            Tier::new(back).with_name("back"),
        ])
    }

    /// `tiers` in order, the fastest first. A tier without a [name](Tier::with_name) is named
    /// by its position (`"0"`, `"1"`, ...).
    ///
    /// # Panics
    ///
    /// When `tiers` is empty (a caller bug: a storage needs somewhere to store).
    pub fn from_tiers(tiers: impl IntoIterator<Item = Tier>) -> Self {
        let tiers: Vec<TierState> = tiers
            .into_iter()
            .enumerate()
            .map(|(i, tier)| {
                let name = tier.name.unwrap_or_else(|| {
                    // Built once per storage, which lives for the whole process.
                    Box::leak(i.to_string().into_boxed_str())
                });
                TierState::new(tier, name)
            })
            .collect();
        assert!(!tiers.is_empty(), "TieredStorage::from_tiers: no tier");
        TieredStorage { tiers }
    }

    /// The first tier.
    fn first(&self) -> &TierState {
        &self.tiers[0]
    }

    /// The first tier, for the builder methods.
    fn first_mut(&mut self) -> &mut Tier {
        &mut self.tiers[0].tier
    }

    /// [`Tier::with_ttl`] for the first tier.
    #[must_use]
    pub fn with_front_ttl(mut self, ttl: Duration) -> Self {
        self.first_mut().ttl = Some(ttl);
        self
    }

    /// [`Tier::with_eviction`] for the first tier.
    #[must_use]
    pub fn with_eviction(mut self, manager: &'static (dyn EvictionManager + Sync)) -> Self {
        self.first_mut().eviction = Some(manager);
        self
    }

    /// [`Tier::with_max_promote_size`] for the first tier.
    #[must_use]
    pub fn with_max_promote_size(mut self, bytes: usize) -> Self {
        self.first_mut().max_promote_size = bytes;
        self
    }

    /// The first tier's storage.
    pub fn front(&self) -> &'static (dyn Storage + Sync) {
        self.first().storage()
    }

    /// The last tier's storage (with two tiers, the back one).
    pub fn back(&self) -> &'static (dyn Storage + Sync) {
        self.tiers[self.tiers.len() - 1].storage()
    }

    /// The eviction manager bounding the first tier, if it has one.
    pub fn eviction(&self) -> Option<&'static (dyn EvictionManager + Sync)> {
        self.first().tier.eviction
    }

    /// The tiers, in order.
    pub fn tiers(&self) -> impl ExactSizeIterator<Item = &Tier> {
        self.tiers.iter().map(|t| &t.tier)
    }

    /// The tier at `index` (0 = the first), if there is one.
    pub fn tier(&self, index: usize) -> Option<&Tier> {
        self.tiers.get(index).map(|t| &t.tier)
    }

    /// The first tier's storage that is a `T`, if any: for a concrete tier's own figures or
    /// state (`tiered.tier_as::<RedisStorage>()`).
    pub fn tier_as<T: Any>(&self) -> Option<&'static T> {
        self.tiers.iter().find_map(|t| {
            let storage: &'static (dyn Storage + Sync) = t.storage();
            storage.as_any().downcast_ref::<T>()
        })
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

    /// The counters since the storage was created, summed over the tiers.
    pub fn stats(&self) -> TieredStats {
        TieredStats::of(&self.tiers)
    }

    /// The counters of the tier at `index`, if there is one.
    pub fn tier_stats(&self, index: usize) -> Option<TierStats> {
        self.tiers.get(index).map(TierStats::of)
    }

    /// Whether `index` is the last tier.
    fn is_last(&self, index: usize) -> bool {
        index + 1 == self.tiers.len()
    }
}

#[async_trait]
impl Storage for TieredStorage {
    async fn lookup(
        &'static self,
        key: &CacheKey,
        trace: &Span,
    ) -> Result<Option<(CacheMeta, HitHandler)>> {
        for (i, tier) in self.tiers.iter().enumerate() {
            let (meta, hit) = match tier.storage().lookup(key, trace).await {
                Ok(Some(_)) if tier.is_expired(&key.to_compact()) => {
                    tier.drop_entry(&key.to_compact(), trace).await;
                    continue;
                }
                Ok(Some(found)) => found,
                Ok(None) => continue,
                // The tier cannot be reached (Redis down, slow, or skipped while its circuit
                // breaker is open): a miss for it. A write that follows fills the other tiers,
                // and the tier logs the outage once, not once per request.
                Err(e) if e.is_unavailable() => {
                    tracing::debug!(tier = tier.name, error = %e, "tier unavailable: a miss");
                    inc(&tier.counters.unavailable);
                    continue;
                }
                Err(e) if !self.is_last(i) => {
                    tracing::debug!(tier = tier.name, error = %e, "tier lookup failed");
                    continue;
                }
                Err(e) => return Err(e),
            };
            inc(&tier.counters.hits);
            let weight = hit.get_eviction_weight();
            if let Some(manager) = tier.tier.eviction {
                manager.access(&key.to_compact(), weight, meta.fresh_until());
            }
            let targets: Vec<&'static TierState> = self.tiers[..i]
                .iter()
                .filter(|t| t.tier.max_promote_size != 0 && weight <= t.tier.max_promote_size)
                .collect();
            if targets.is_empty() {
                return Ok(Some((meta, hit)));
            }
            let promoting =
                PromotingHit::new(targets, tier.storage(), hit, key.clone(), meta.clone());
            return Ok(Some((meta, Box::new(promoting))));
        }
        Ok(None)
    }

    async fn lookup_streaming_write(
        &'static self,
        key: &CacheKey,
        streaming_write_tag: Option<&[u8]>,
        trace: &Span,
    ) -> Result<Option<(CacheMeta, HitHandler)>> {
        // The write in progress streams through the first tier.
        self.first()
            .storage()
            .lookup_streaming_write(key, streaming_write_tag, trace)
            .await
    }

    async fn get_miss_handler(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        trace: &Span,
    ) -> Result<MissHandler> {
        let (first_tier, later_tiers) = self.tiers.split_first().expect("never empty");
        let first = first_tier
            .storage()
            .get_miss_handler(key, meta, trace)
            .await?;
        let mut later = Vec::with_capacity(later_tiers.len());
        for tier in later_tiers {
            match tier.storage().get_miss_handler(key, meta, trace).await {
                Ok(handler) => later.push(LaterWrite {
                    tier,
                    handler: Some(handler),
                }),
                Err(e) => {
                    inc(&tier.counters.write_errors);
                    tracing::debug!(tier = tier.name, error = %e, "tier write not started");
                }
            }
        }
        Ok(Box::new(TieredMiss {
            key: key.to_compact(),
            fresh_until: meta.fresh_until(),
            first_tier,
            first,
            later,
        }))
    }

    async fn purge(
        &'static self,
        key: &CompactCacheKey,
        purge_type: PurgeType,
        trace: &Span,
    ) -> Result<bool> {
        let tiers = match purge_type {
            // The other tiers manage their own space.
            PurgeType::Eviction => &self.tiers[..1],
            PurgeType::Invalidation => &self.tiers[..],
        };
        let mut purged = false;
        let mut failed = None;
        for tier in tiers {
            let result = tier.storage().purge(key, purge_type, trace).await;
            tier.left(key);
            if let Some(manager) = tier.tier.eviction
                && purge_type == PurgeType::Invalidation
            {
                manager.remove(key);
            }
            match result {
                Ok(found) => purged |= found,
                Err(e) => {
                    tracing::debug!(tier = tier.name, error = %e, "tier purge failed");
                    failed.get_or_insert(e);
                }
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(purged),
        }
    }

    async fn update_meta(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        trace: &Span,
    ) -> Result<bool> {
        let mut updated = false;
        let mut failed = None;
        for tier in &self.tiers {
            match tier.storage().update_meta(key, meta, trace).await {
                Ok(found) => updated |= found,
                Err(e) => {
                    tracing::debug!(tier = tier.name, error = %e, "tier meta update failed");
                    failed.get_or_insert(e);
                }
            }
        }
        match failed {
            // Some tier holds the new meta: it serves the entry.
            Some(e) if !updated => Err(e),
            _ => Ok(updated),
        }
    }

    fn support_streaming_partial_write(&self) -> bool {
        self.first().storage().support_streaming_partial_write()
    }

    /// The first tier's size (`larder_tiered_front_bytes`, `larder_tiered_front_entries` and
    /// its evictions, with an eviction manager), the [`TieredStats`] sums
    /// (`larder_tiered_*_total`), per tier (label `tier`) its [`TierStats`]
    /// (`larder_tiered_tier_*_total`) and size (`larder_tiered_tier_bytes`,
    /// `larder_tiered_tier_entries`, with an eviction manager), then what each tier's storage
    /// reports itself (a Redis tier: its `larder_redis_*_total` counters).
    fn metrics(&self, out: &mut Vec<MetricSample>) {
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        if let Some(manager) = self.first().tier.eviction {
            out.extend([
                MetricSample::gauge(
                    "larder_tiered_front_bytes",
                    "Bytes held in the first (local memory) tier.",
                    count(manager.total_size()),
                ),
                MetricSample::gauge(
                    "larder_tiered_front_entries",
                    "Entries held in the first (local memory) tier.",
                    count(manager.total_items()),
                ),
                MetricSample::counter(
                    "larder_tiered_front_evictions_total",
                    "Entries evicted from the first (local memory) tier.",
                    count(manager.evicted_items()),
                ),
                MetricSample::counter(
                    "larder_tiered_front_evicted_bytes_total",
                    "Bytes evicted from the first (local memory) tier.",
                    count(manager.evicted_size()),
                ),
            ]);
        }
        out.extend(self.stats().samples());
        for tier in &self.tiers {
            out.extend(TierStats::of(tier).samples(tier.name));
            if let Some(manager) = tier.tier.eviction {
                out.extend(
                    [
                        MetricSample::gauge(
                            "larder_tiered_tier_bytes",
                            "Bytes held in this tier, as its eviction manager counts them.",
                            count(manager.total_size()),
                        ),
                        MetricSample::gauge(
                            "larder_tiered_tier_entries",
                            "Entries held in this tier, as its eviction manager counts them.",
                            count(manager.total_items()),
                        ),
                    ]
                    .map(|s| s.with_label("tier", tier.name)),
                );
            }
        }
        for tier in &self.tiers {
            tier.storage().metrics(out);
        }
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync + 'static) {
        self
    }
}
