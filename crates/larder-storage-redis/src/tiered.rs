//! [`TieredStorage`]: a fast local tier (typically [`MemCache`](larder_storage::MemCache)) in
//! front of a shared one (typically [`RedisStorage`](crate::RedisStorage)).

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use larder_storage::eviction::EvictionManager;
use larder_storage::metrics::{MetricSample, write_prometheus};
use larder_storage::{
    CacheKey, CacheMeta, CompactCacheKey, HandleHit, HandleMiss, HashBinary, HitHandler,
    MissFinishType, MissHandler, PurgeType, Result, Storage,
};
use parking_lot::Mutex;
use tracing::Span;

use crate::RedisStorage;
use crate::stats::inc;

type Tier = &'static (dyn Storage + Sync);

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
    front: Tier,
    back: Tier,
    eviction: Option<&'static (dyn EvictionManager + Sync)>,
    max_promote_size: usize,
    front_ttl: Option<Duration>,
    /// When each front-tier entry entered it, kept only with a front TTL.
    entered: Mutex<HashMap<HashBinary, Instant>>,
    counters: TieredCounters,
}

#[derive(Debug, Default)]
struct TieredCounters {
    front_hits: AtomicU64,
    back_hits: AtomicU64,
    promotions: AtomicU64,
    back_write_errors: AtomicU64,
    back_unavailable: AtomicU64,
}

/// A snapshot of a [`TieredStorage`]'s counters, from [`TieredStorage::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TieredStats {
    /// Lookups answered by the front tier.
    pub front_hits: u64,
    /// Lookups answered by the back tier.
    pub back_hits: u64,
    /// Back-tier hits copied into the front tier.
    pub promotions: u64,
    /// Writes the back tier failed or refused (stored in the front tier only).
    pub back_write_errors: u64,
    /// Lookups that missed the front tier while the back tier could not be reached, answered
    /// as misses.
    pub back_unavailable: u64,
}

impl TieredStats {
    /// The counters as `larder_tiered_*_total` metric samples.
    pub fn samples(&self) -> [MetricSample; 5] {
        [
            MetricSample::counter(
                "larder_tiered_front_hits_total",
                "Lookups answered by the local memory tier.",
                self.front_hits,
            ),
            MetricSample::counter(
                "larder_tiered_back_hits_total",
                "Lookups answered by the shared tier (Redis).",
                self.back_hits,
            ),
            MetricSample::counter(
                "larder_tiered_promotions_total",
                "Shared-tier hits copied into the local tier.",
                self.promotions,
            ),
            MetricSample::counter(
                "larder_tiered_back_write_errors_total",
                "Writes stored in the local tier only because the shared tier failed.",
                self.back_write_errors,
            ),
            MetricSample::counter(
                "larder_tiered_back_unavailable_total",
                "Lookups answered as misses because the shared tier was unreachable.",
                self.back_unavailable,
            ),
        ]
    }

    /// The counters in the Prometheus text exposition format, as `larder_tiered_*_total`
    /// counters with `HELP` and `TYPE` lines.
    ///
    /// ```
    /// let text = larder_storage_redis::TieredStats::default().render_prometheus();
    /// assert!(text.contains("# TYPE larder_tiered_front_hits_total counter\n"));
    /// assert!(text.contains("\nlarder_tiered_back_unavailable_total 0\n"));
    /// ```
    pub fn render_prometheus(&self) -> String {
        let mut out = String::with_capacity(1024);
        write_prometheus(&self.samples(), &mut out);
        out
    }
}

impl std::fmt::Debug for TieredStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TieredStorage")
            .field("max_promote_size", &self.max_promote_size)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl TieredStorage {
    /// `front` in front of `back`, without an eviction manager for the front tier.
    pub fn new(front: Tier, back: Tier) -> Self {
        TieredStorage {
            front,
            back,
            eviction: None,
            max_promote_size: 1024 * 1024,
            front_ttl: None,
            entered: Mutex::new(HashMap::new()),
            counters: TieredCounters::default(),
        }
    }

    /// Serves a front-tier entry only while it is younger than `ttl` (since it was written or
    /// promoted); an older one is dropped from the front tier and looked up in the back tier
    /// again. Bounds how long a proxy serves an object purged through another proxy.
    #[must_use]
    pub fn with_front_ttl(mut self, ttl: Duration) -> Self {
        self.front_ttl = Some(ttl);
        self
    }

    /// Notes that the entry for `key` entered the front tier now.
    fn entered(&self, key: &CompactCacheKey) {
        if self.front_ttl.is_some() {
            self.entered
                .lock()
                .insert(key.combined_bin(), Instant::now());
        }
    }

    /// Forgets the front-tier entry for `key`.
    fn left(&self, key: &CompactCacheKey) {
        if self.front_ttl.is_some() {
            self.entered.lock().remove(&key.combined_bin());
        }
    }

    /// Whether the front-tier entry for `key` is too old to serve.
    fn is_front_expired(&self, key: &CompactCacheKey) -> bool {
        let Some(ttl) = self.front_ttl else {
            return false;
        };
        self.entered
            .lock()
            .get(&key.combined_bin())
            .is_none_or(|at| at.elapsed() >= ttl)
    }

    /// Limits the front tier with `manager`: entries entering it are admitted there, and the
    /// victims are purged from the front tier.
    #[must_use]
    pub fn with_eviction(mut self, manager: &'static (dyn EvictionManager + Sync)) -> Self {
        self.eviction = Some(manager);
        self
    }

    /// The largest body (plus serialized meta, as hits report their weight) that is promoted
    /// into the front tier. 0 turns promotion off.
    #[must_use]
    pub fn with_max_promote_size(mut self, bytes: usize) -> Self {
        self.max_promote_size = bytes;
        self
    }

    /// The front (local) tier.
    pub fn front(&self) -> &'static (dyn Storage + Sync) {
        self.front
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
        self.eviction
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
        let get = |c: &AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        TieredStats {
            front_hits: get(&self.counters.front_hits),
            back_hits: get(&self.counters.back_hits),
            promotions: get(&self.counters.promotions),
            back_write_errors: get(&self.counters.back_write_errors),
            back_unavailable: get(&self.counters.back_unavailable),
        }
    }

    /// Admits a new front-tier entry into the eviction manager and purges its victims from
    /// the front tier.
    async fn admit(&self, key: CompactCacheKey, size: usize, fresh_until: SystemTime) {
        self.entered(&key);
        let Some(manager) = self.eviction else {
            return;
        };
        for victim in manager.admit(key, size, fresh_until) {
            self.left(&victim);
            if let Err(e) = self
                .front
                .purge(&victim, PurgeType::Eviction, &Span::none())
                .await
            {
                tracing::debug!(error = %e, "front tier eviction failed");
            }
        }
    }

    /// Copies a fully read back-tier body into the front tier.
    async fn promote(&self, key: &CacheKey, meta: &CacheMeta, body: Vec<Bytes>) {
        let span = Span::none();
        let result = async {
            let mut miss = self.front.get_miss_handler(key, meta, &span).await?;
            for part in body {
                miss.write_body(part, false).await?;
            }
            miss.write_body(Bytes::new(), true).await?;
            miss.finish().await
        }
        .await;
        match result {
            Ok(MissFinishType::Created(size)) => {
                inc(&self.counters.promotions);
                self.admit(key.to_compact(), size, meta.fresh_until()).await;
            }
            Ok(MissFinishType::Appended(..)) => {
                inc(&self.counters.promotions);
                self.entered(&key.to_compact());
            }
            Err(e) => tracing::debug!(error = %e, "promotion into the front tier failed"),
        }
    }
}

#[async_trait]
impl Storage for TieredStorage {
    async fn lookup(
        &'static self,
        key: &CacheKey,
        trace: &Span,
    ) -> Result<Option<(CacheMeta, HitHandler)>> {
        match self.front.lookup(key, trace).await {
            Ok(Some(_)) if self.is_front_expired(&key.to_compact()) => {
                let compact = key.to_compact();
                self.left(&compact);
                if let Some(manager) = self.eviction {
                    manager.remove(&compact);
                }
                if let Err(e) = self.front.purge(&compact, PurgeType::Eviction, trace).await {
                    tracing::debug!(error = %e, "dropping an old front tier entry failed");
                }
            }
            Ok(Some((meta, hit))) => {
                inc(&self.counters.front_hits);
                if let Some(manager) = self.eviction {
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
                inc(&self.counters.back_unavailable);
                None
            }
            Err(e) => return Err(e),
        };
        let Some((meta, hit)) = found else {
            return Ok(None);
        };
        inc(&self.counters.back_hits);
        let weight = hit.get_eviction_weight();
        if self.max_promote_size == 0 || weight > self.max_promote_size {
            return Ok(Some((meta, hit)));
        }
        let promoting = PromotingHit {
            storage: self,
            inner: hit,
            promotion: Some(Promotion {
                key: key.clone(),
                meta: meta.clone(),
                body: Vec::new(),
                len: 0,
            }),
        };
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
            .lookup_streaming_write(key, streaming_write_tag, trace)
            .await
    }

    async fn get_miss_handler(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        trace: &Span,
    ) -> Result<MissHandler> {
        let front = self.front.get_miss_handler(key, meta, trace).await?;
        let back = match self.back.get_miss_handler(key, meta, trace).await {
            Ok(back) => Some(back),
            Err(e) => {
                inc(&self.counters.back_write_errors);
                tracing::debug!(error = %e, "back tier write not started");
                None
            }
        };
        Ok(Box::new(TieredMiss {
            storage: self,
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
        let front = self.front.purge(key, purge_type, trace).await;
        self.left(key);
        if let Some(manager) = self.eviction
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
        self.front.support_streaming_partial_write()
    }

    /// The front tier's size (`larder_tiered_front_bytes`, `larder_tiered_front_entries` and
    /// its evictions, with an eviction manager), the [`TieredStats`] counters
    /// (`larder_tiered_*_total`), then what each tier reports itself (a [`RedisStorage`]
    /// back tier: its `larder_redis_*_total` counters).
    fn metrics(&self, out: &mut Vec<MetricSample>) {
        if let Some(manager) = self.eviction {
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
        self.front.metrics(out);
        self.back.metrics(out);
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync + 'static) {
        self
    }
}

/// A back-tier body being collected for promotion.
struct Promotion {
    key: CacheKey,
    meta: CacheMeta,
    body: Vec<Bytes>,
    len: usize,
}

/// A back-tier hit that copies the body into the front tier when read to its end.
struct PromotingHit {
    storage: &'static TieredStorage,
    inner: HitHandler,
    /// `None` once promotion is off (a seek, a too large body or a read error).
    promotion: Option<Promotion>,
}

#[async_trait]
impl HandleHit for PromotingHit {
    async fn read_body(&mut self) -> Result<Option<Bytes>> {
        let read = self.inner.read_body().await;
        match &read {
            Ok(Some(chunk)) => {
                if let Some(p) = &mut self.promotion {
                    p.len += chunk.len();
                    p.body.push(chunk.clone());
                    if p.len > self.storage.max_promote_size {
                        self.promotion = None;
                    }
                }
            }
            Ok(None) => {
                if let Some(p) = self.promotion.take() {
                    self.storage.promote(&p.key, &p.meta, p.body).await;
                }
            }
            Err(_) => self.promotion = None,
        }
        read
    }

    async fn finish(
        self: Box<Self>,
        _storage: &'static (dyn Storage + Sync),
        key: &CacheKey,
        trace: &Span,
    ) -> Result<()> {
        self.inner.finish(self.storage.back, key, trace).await
    }

    fn can_seek(&self) -> bool {
        self.inner.can_seek()
    }

    fn seek(&mut self, start: usize, end: Option<usize>) -> Result<()> {
        // A range is not the whole body: no promotion from this hit.
        self.promotion = None;
        self.inner.seek(start, end)
    }

    fn should_count_access(&self) -> bool {
        self.inner.should_count_access()
    }

    fn get_eviction_weight(&self) -> usize {
        self.inner.get_eviction_weight()
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }

    fn as_any_mut(&mut self) -> &mut (dyn Any + Send + Sync) {
        self
    }
}

/// Writes to both tiers; the back tier is dropped (and the front kept) when it fails.
struct TieredMiss {
    storage: &'static TieredStorage,
    key: CompactCacheKey,
    fresh_until: SystemTime,
    front: MissHandler,
    back: Option<MissHandler>,
}

impl TieredMiss {
    fn back_failed(&mut self, e: &larder_storage::Error) {
        inc(&self.storage.counters.back_write_errors);
        tracing::debug!(error = %e, "back tier write dropped");
        self.back = None;
    }
}

#[async_trait]
impl HandleMiss for TieredMiss {
    async fn write_body(&mut self, data: Bytes, eof: bool) -> Result<()> {
        if let Some(back) = &mut self.back
            && let Err(e) = back.write_body(data.clone(), eof).await
        {
            self.back_failed(&e);
        }
        self.front.write_body(data, eof).await
    }

    async fn finish(mut self: Box<Self>) -> Result<MissFinishType> {
        if let Some(back) = self.back.take() {
            match back.finish().await {
                Ok(_) => {}
                Err(e) => self.back_failed(&e),
            }
        }
        let TieredMiss {
            storage,
            key,
            fresh_until,
            front,
            ..
        } = *self;
        let finished = front.finish().await?;
        match finished {
            MissFinishType::Created(size) => storage.admit(key, size, fresh_until).await,
            MissFinishType::Appended(..) => storage.entered(&key),
        }
        Ok(finished)
    }

    fn streaming_write_tag(&self) -> Option<&[u8]> {
        self.front.streaming_write_tag()
    }
}
