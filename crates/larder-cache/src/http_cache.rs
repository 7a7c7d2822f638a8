//! [`HttpCache`]: the per-request, phase-gated cache state machine.
//!
//! A proxy owns one `HttpCache` per request and drives it through the phases of
//! [`CachePhase`]; see the crate docs for the miss and hit flows. Each phase carries the data
//! that only exists in it (the found meta and hit handler, the miss handler, ...); the context
//! shared by the enabled phases (storage, eviction, lock) lives beside it and is dropped by
//! [`HttpCache::disable`].
//!
//! Calling a method in a phase where it makes no sense is a bug in the calling code and panics
//! with `"{method}: wrong phase {phase:?}"`, as in pingora-cache. Nothing received from the
//! network can cause such a panic.

use std::time::{Duration, Instant, SystemTime};

use larder_storage::eviction::EvictionManager;
use larder_storage::{
    CacheKey, CacheMeta, HashBinary, HitHandler, MissFinishType, MissHandler, PurgeType,
    ResponseHeader, Storage,
};
use tracing::Span;

use crate::error::{Error, Result};
use crate::lock::{CacheKeyLockImpl, LockStatus, Locked, WritePermit};
use crate::max_file_size::MaxFileSizeTracker;
use crate::phase::{CachePhase, HitStatus, NoCacheReason};
use crate::predictor::CacheablePredictor;

/// Per-request options that override the cache-wide configuration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheOptionOverrides {
    /// The total time this request may spend waiting on cache locks (across every wait).
    /// `None` waits until the lock is released or its age timeout passes.
    pub wait_timeout: Option<Duration>,
}

impl CacheOptionOverrides {
    /// Sets the lock wait budget.
    #[must_use]
    pub fn with_wait_timeout(mut self, wait_timeout: Option<Duration>) -> Self {
        self.wait_timeout = wait_timeout;
        self
    }
}

/// Timings kept for tracing and metrics. They accumulate over the request and survive
/// [`HttpCache::disable`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HttpCacheDigest {
    /// Total time spent waiting on cache locks.
    pub lock_duration: Option<Duration>,
    /// Total time spent in storage lookups.
    pub lookup_duration: Option<Duration>,
}

fn add_duration(total: &mut Option<Duration>, more: Duration) {
    *total = Some(total.unwrap_or_default().saturating_add(more));
}

/// The cache lock in use for a request and the lock it holds.
struct LockCtx {
    cache_lock: &'static CacheKeyLockImpl,
    wait_timeout: Option<Duration>,
    lock: Option<Locked>,
}

/// What exists while the cache is enabled; dropped by `disable`.
struct EnabledCtx {
    storage: &'static (dyn Storage + Sync),
    eviction: Option<&'static (dyn EvictionManager + Sync)>,
    lock_ctx: Option<LockCtx>,
    /// Entries created before this time are ignored by lookups (the primary entry of a varied
    /// resource is a tombstone for older variants).
    valid_after: Option<SystemTime>,
    span: Span,
}

/// What survives `disable`: the key, the size limit and the predictor.
struct Inner {
    key: Option<CacheKey>,
    max_file_size: Option<MaxFileSizeTracker>,
    predictor: Option<&'static (dyn CacheablePredictor + Sync)>,
    enabled: Option<EnabledCtx>,
}

/// A found entry: its meta and body reader (`None` once finished).
struct Found {
    meta: CacheMeta,
    hit_handler: Option<HitHandler>,
}

/// The state of a response being fetched and written.
#[derive(Default)]
struct MissState {
    meta: Option<CacheMeta>,
    miss_handler: Option<MissHandler>,
    /// Whether `set_miss_handler` ran (the handler itself is gone once finished).
    miss_handler_set: bool,
    /// A reader of the body being written, when the storage streams partial writes.
    body_reader: Option<HitHandler>,
}

/// The phase with the data only it has.
enum State {
    Disabled(NoCacheReason),
    Uninit,
    Bypass,
    CacheKey,
    Hit(Found),
    Miss(MissState),
    Stale(Found),
    StaleUpdating(Found),
    Expired(MissState),
    Revalidated(Found),
    RevalidatedNoCache(NoCacheReason, Found),
}

impl State {
    fn phase(&self) -> CachePhase {
        match self {
            State::Disabled(reason) => CachePhase::Disabled(*reason),
            State::Uninit => CachePhase::Uninit,
            State::Bypass => CachePhase::Bypass,
            State::CacheKey => CachePhase::CacheKey,
            State::Hit(_) => CachePhase::Hit,
            State::Miss(_) => CachePhase::Miss,
            State::Stale(_) => CachePhase::Stale,
            State::StaleUpdating(_) => CachePhase::StaleUpdating,
            State::Expired(_) => CachePhase::Expired,
            State::Revalidated(_) => CachePhase::Revalidated,
            State::RevalidatedNoCache(reason, _) => CachePhase::RevalidatedNoCache(*reason),
        }
    }

    fn found(&self) -> Option<&Found> {
        match self {
            State::Hit(f)
            | State::Stale(f)
            | State::StaleUpdating(f)
            | State::Revalidated(f)
            | State::RevalidatedNoCache(_, f) => Some(f),
            _ => None,
        }
    }

    fn found_mut(&mut self) -> Option<&mut Found> {
        match self {
            State::Hit(f)
            | State::Stale(f)
            | State::StaleUpdating(f)
            | State::Revalidated(f)
            | State::RevalidatedNoCache(_, f) => Some(f),
            _ => None,
        }
    }

    fn miss_mut(&mut self) -> Option<&mut MissState> {
        match self {
            State::Miss(m) | State::Expired(m) => Some(m),
            _ => None,
        }
    }
}

#[track_caller]
fn wrong_phase(method: &str, phase: CachePhase) -> ! {
    panic!("{method}: wrong phase {phase:?}")
}

/// The per-request HTTP cache state machine (pingora-cache's `HttpCache`).
///
/// Starts in [`CachePhase::Disabled`]`(NeverEnabled)`; [`enable`](Self::enable) turns it on.
/// See the crate docs for the miss and hit flows, and [`CachePhase`] for the phases.
pub struct HttpCache {
    state: State,
    inner: Option<Box<Inner>>,
    digest: HttpCacheDigest,
}

impl Default for HttpCache {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for HttpCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpCache")
            .field("phase", &self.phase())
            .field("key", &self.maybe_cache_key())
            .field("digest", &self.digest)
            .finish_non_exhaustive()
    }
}

impl HttpCache {
    /// A cache in `Disabled(NeverEnabled)`.
    pub fn new() -> Self {
        Self {
            state: State::Disabled(NoCacheReason::NeverEnabled),
            inner: None,
            digest: HttpCacheDigest::default(),
        }
    }

    /// The current phase.
    pub fn phase(&self) -> CachePhase {
        self.state.phase()
    }

    /// Whether caching is on: neither disabled nor bypassed.
    pub fn enabled(&self) -> bool {
        !matches!(self.state, State::Disabled(_) | State::Bypass)
    }

    /// Whether the phase is `Bypass`.
    pub fn bypassing(&self) -> bool {
        matches!(self.state, State::Bypass)
    }

    /// Whether the response comes from upstream (true for `Disabled`, `Bypass`, `Miss`,
    /// `Expired`, `Revalidated` and `RevalidatedNoCache`).
    pub fn upstream_used(&self) -> bool {
        matches!(
            self.state,
            State::Disabled(_)
                | State::Bypass
                | State::Miss(_)
                | State::Expired(_)
                | State::Revalidated(_)
                | State::RevalidatedNoCache(..)
        )
    }

    /// The lookup and lock timings so far.
    pub fn digest(&self) -> &HttpCacheDigest {
        &self.digest
    }

    /// Total time spent waiting on cache locks, if any wait happened.
    pub fn lock_duration(&self) -> Option<Duration> {
        self.digest.lock_duration
    }

    /// Total time spent in storage lookups, if any lookup happened.
    pub fn lookup_duration(&self) -> Option<Duration> {
        self.digest.lookup_duration
    }

    fn inner(&self) -> Option<&Inner> {
        self.inner.as_deref()
    }

    fn inner_mut(&mut self) -> Option<&mut Inner> {
        self.inner.as_deref_mut()
    }

    #[track_caller]
    fn enabled_ctx(&self, method: &str) -> &EnabledCtx {
        match self.inner().and_then(|i| i.enabled.as_ref()) {
            Some(ctx) => ctx,
            None => wrong_phase(method, self.phase()),
        }
    }

    #[track_caller]
    fn key_and_ctx(&mut self, method: &str) -> (&mut CacheKey, &mut EnabledCtx) {
        let phase = self.phase();
        match self.inner.as_deref_mut() {
            Some(Inner {
                key: Some(key),
                enabled: Some(ctx),
                ..
            }) => (key, ctx),
            _ => wrong_phase(method, phase),
        }
    }

    /// Turns caching on with the given storage and optional eviction manager, predictor and
    /// cache lock. Everything is `'static`: they are shared by all requests.
    ///
    /// # Panics
    ///
    /// Unless the phase is `Disabled(_)`.
    pub fn enable(
        &mut self,
        storage: &'static (dyn Storage + Sync),
        eviction: Option<&'static (dyn EvictionManager + Sync)>,
        predictor: Option<&'static (dyn CacheablePredictor + Sync)>,
        cache_lock: Option<&'static CacheKeyLockImpl>,
        overrides: Option<CacheOptionOverrides>,
    ) {
        if !matches!(self.state, State::Disabled(_)) {
            wrong_phase("enable", self.phase());
        }
        let overrides = overrides.unwrap_or_default();
        let ctx = EnabledCtx {
            storage,
            eviction,
            lock_ctx: cache_lock.map(|cache_lock| LockCtx {
                cache_lock,
                wait_timeout: overrides.wait_timeout,
                lock: None,
            }),
            valid_after: None,
            span: Span::none(),
        };
        match self.inner.as_deref_mut() {
            Some(inner) => {
                inner.predictor = predictor;
                inner.enabled = Some(ctx);
            }
            None => {
                self.inner = Some(Box::new(Inner {
                    key: None,
                    max_file_size: None,
                    predictor,
                    enabled: Some(ctx),
                }));
            }
        }
        self.state = State::Uninit;
    }

    /// Sets the span passed to storage calls (none by default).
    ///
    /// # Panics
    ///
    /// When the cache is not enabled.
    pub fn enable_tracing(&mut self, span: Span) {
        let phase = self.phase();
        match self.inner_mut().and_then(|i| i.enabled.as_mut()) {
            Some(ctx) => ctx.span = span,
            None => wrong_phase("enable_tracing", phase),
        }
    }

    /// Replaces the cache lock and its per-request options, e.g. from a key or hit filter.
    ///
    /// # Panics
    ///
    /// Unless the phase is `CacheKey`, `Stale` or `Hit`, or while a lock is held.
    pub fn set_cache_lock(
        &mut self,
        cache_lock: Option<&'static CacheKeyLockImpl>,
        overrides: Option<CacheOptionOverrides>,
    ) {
        let phase = self.phase();
        if !matches!(
            self.state,
            State::CacheKey | State::Stale(_) | State::Hit(_)
        ) {
            wrong_phase("set_cache_lock", phase);
        }
        let Some(ctx) = self.inner_mut().and_then(|i| i.enabled.as_mut()) else {
            wrong_phase("set_cache_lock", phase);
        };
        assert!(
            ctx.lock_ctx.as_ref().is_none_or(|l| l.lock.is_none()),
            "set_cache_lock: a cache lock is held"
        );
        let wait_timeout = overrides.unwrap_or_default().wait_timeout;
        ctx.lock_ctx = cache_lock.map(|cache_lock| LockCtx {
            cache_lock,
            wait_timeout,
            lock: None,
        });
    }

    /// Turns caching off for this request with `reason`, releasing a held write lock (so
    /// waiting requests can proceed) and dropping the enabled state. If already disabled, only
    /// the reason is replaced, except that `NeverEnabled` is kept.
    ///
    /// # Panics
    ///
    /// If `reason` is `NeverEnabled`.
    pub fn disable(&mut self, reason: NoCacheReason) {
        assert!(
            reason != NoCacheReason::NeverEnabled,
            "disable: NeverEnabled is not a reason to disable"
        );
        match self.state {
            State::Disabled(NoCacheReason::NeverEnabled) => {
                tracing::warn!(
                    ?reason,
                    "disable called on a cache that was never enabled; keeping NeverEnabled"
                );
            }
            State::Disabled(_) => self.state = State::Disabled(reason),
            _ => {
                self.release_write_lock(reason);
                if let Some(inner) = self.inner_mut() {
                    inner.enabled = None;
                }
                self.state = State::Disabled(reason);
            }
        }
    }

    /// Skips the cache for this request (e.g. predicted uncacheable). The response may still
    /// turn out cacheable, and [`cache_miss`](Self::cache_miss) can then fill the cache.
    ///
    /// # Panics
    ///
    /// Unless the phase is `CacheKey`.
    pub fn bypass(&mut self) {
        match self.state {
            State::CacheKey => self.state = State::Bypass,
            _ => wrong_phase("bypass", self.phase()),
        }
    }

    /// Sets the key the entry is looked up and stored under.
    ///
    /// # Panics
    ///
    /// Unless the phase is `Uninit` or `CacheKey`.
    pub fn set_cache_key(&mut self, key: CacheKey) {
        if !matches!(self.state, State::Uninit | State::CacheKey) {
            wrong_phase("set_cache_key", self.phase());
        }
        if let Some(inner) = self.inner_mut() {
            inner.key = Some(key);
        }
        self.state = State::CacheKey;
    }

    /// The cache key.
    ///
    /// # Panics
    ///
    /// If no key was set.
    pub fn cache_key(&self) -> &CacheKey {
        match self.maybe_cache_key() {
            Some(key) => key,
            None => wrong_phase("cache_key", self.phase()),
        }
    }

    /// The cache key, if one was set.
    pub fn maybe_cache_key(&self) -> Option<&CacheKey> {
        self.inner().and_then(|i| i.key.as_ref())
    }

    /// Whether the storage is a `T`.
    ///
    /// # Panics
    ///
    /// When the cache is not enabled.
    pub fn storage_type_is<T: 'static>(&self) -> bool {
        self.enabled_ctx("storage_type_is")
            .storage
            .as_any()
            .is::<T>()
    }

    /// Whether the storage lets readers stream a body while it is written; `None` when the
    /// cache is not enabled.
    pub fn support_streaming_partial_write(&self) -> Option<bool> {
        self.inner()
            .and_then(|i| i.enabled.as_ref())
            .map(|ctx| ctx.storage.support_streaming_partial_write())
    }

    // ---------------------------------------------------------------- max file size

    /// Sets the largest body (in bytes, headers excluded) to admit.
    ///
    /// # Panics
    ///
    /// When the cache is disabled.
    pub fn set_max_file_size_bytes(&mut self, max: usize) {
        let phase = self.phase();
        if matches!(self.state, State::Disabled(_)) {
            wrong_phase("set_max_file_size_bytes", phase);
        }
        match self.inner_mut() {
            Some(inner) => inner.max_file_size = Some(MaxFileSizeTracker::new(max)),
            None => wrong_phase("set_max_file_size_bytes", phase),
        }
    }

    /// The configured maximum body size.
    ///
    /// # Panics
    ///
    /// If the cache was never enabled.
    pub fn max_file_size_bytes(&self) -> Option<usize> {
        match self.inner() {
            Some(inner) => inner.max_file_size.as_ref().map(MaxFileSizeTracker::max),
            None => wrong_phase("max_file_size_bytes", self.phase()),
        }
    }

    /// Counts `len` more body bytes; false once the total is over the maximum. Works after
    /// `disable` too, so a response disabled as `PredictedResponseTooLarge` can be re-marked
    /// cacheable when it ends under the limit.
    pub fn track_body_bytes_for_max_file_size(&mut self, len: usize) -> bool {
        match self.inner_mut().and_then(|i| i.max_file_size.as_mut()) {
            Some(tracker) => tracker.add_body_bytes(len),
            None => true,
        }
    }

    /// Whether the body went over the maximum size.
    pub fn exceeded_max_file_size(&self) -> bool {
        self.inner()
            .and_then(|i| i.max_file_size.as_ref())
            .is_some_and(MaxFileSizeTracker::exceeded)
    }

    // ---------------------------------------------------------------- predictor

    /// The predictor's guess that this key is cacheable (true without a predictor).
    pub fn cacheable_prediction(&self) -> bool {
        match self.inner() {
            Some(Inner {
                predictor: Some(predictor),
                key: Some(key),
                ..
            }) => predictor.cacheable_prediction(key),
            _ => true,
        }
    }

    /// Tells the predictor the response turned out cacheable.
    pub fn response_became_cacheable(&self) {
        if let Some(Inner {
            predictor: Some(predictor),
            key: Some(key),
            ..
        }) = self.inner()
        {
            predictor.mark_cacheable(key);
        }
    }

    /// Tells the predictor the response turned out uncacheable for `reason`.
    pub fn response_became_uncacheable(&self, reason: NoCacheReason) {
        if let Some(Inner {
            predictor: Some(predictor),
            key: Some(key),
            ..
        }) = self.inner()
        {
            predictor.mark_uncacheable(key, reason);
        }
    }

    // ---------------------------------------------------------------- lookup

    /// Looks the key up in storage. Entries created before a varied primary entry are
    /// ignored. On a miss, takes the cache lock if one is configured: the first request becomes
    /// the writer, the others readers ([`is_cache_locked`](Self::is_cache_locked)).
    ///
    /// # Errors
    ///
    /// The storage failed; a proxy treats this as a miss.
    ///
    /// # Panics
    ///
    /// Unless the phase is `CacheKey` or `Stale`.
    pub async fn cache_lookup(&mut self) -> Result<Option<(CacheMeta, HitHandler)>> {
        if !matches!(self.state, State::CacheKey | State::Stale(_)) {
            wrong_phase("cache_lookup", self.phase());
        }
        let (key, ctx) = self.key_and_ctx("cache_lookup");
        let start = Instant::now();
        let result = ctx.storage.lookup(key, &ctx.span).await;
        add_duration(&mut self.digest.lookup_duration, start.elapsed());
        let (key, ctx) = self.key_and_ctx("cache_lookup");
        let found = result?.filter(|(meta, _)| {
            let valid = ctx.valid_after.is_none_or(|after| meta.created() >= after);
            if !valid {
                tracing::debug!("ignoring an entry older than its primary");
            }
            valid
        });
        if found.is_none() {
            Self::take_lock(key, ctx, false);
        }
        Ok(found)
    }

    /// Takes the cache lock unless this request already writes.
    fn take_lock(key: &CacheKey, ctx: &mut EnabledCtx, stale_writer: bool) {
        if let Some(lock_ctx) = ctx.lock_ctx.as_mut()
            && !matches!(lock_ctx.lock, Some(Locked::Write(_)))
        {
            lock_ctx.lock = Some(lock_ctx.cache_lock.lock(key, stale_writer));
        }
    }

    /// Records what the lookup found and how to treat it: `Fresh`/`ForceFresh` → `Hit`;
    /// `Expired`/`ForceExpired` → `Stale` (taking the lock as a stale writer, so one request
    /// revalidates; `ForceExpired` also disables stale serving for this request, since the
    /// entry must be validated first); `ForceMiss`/`FailedHitFilter` → the entry is dropped, the lock taken and
    /// the phase goes back to `CacheKey` (call [`cache_miss`](Self::cache_miss) next).
    /// A real hit counts as an access for the eviction manager and ends any lock this request
    /// held (a write permit is released with `Done`).
    ///
    /// # Panics
    ///
    /// Unless the phase is `CacheKey` or `Stale`.
    pub fn cache_found(&mut self, meta: CacheMeta, hit_handler: HitHandler, hit_status: HitStatus) {
        if !matches!(self.state, State::CacheKey | State::Stale(_)) {
            wrong_phase("cache_found", self.phase());
        }
        let (key, ctx) = self.key_and_ctx("cache_found");
        let mut found = Found {
            meta,
            hit_handler: Some(hit_handler),
        };
        if hit_status == HitStatus::ForceExpired {
            found.meta.disable_serve_stale();
        }
        match hit_status {
            HitStatus::Fresh | HitStatus::ForceFresh => {
                // A hit needs no lock: stop waiting, or let waiters look up again.
                if let Some(lock_ctx) = ctx.lock_ctx.as_mut() {
                    match lock_ctx.lock.take() {
                        Some(Locked::Write(permit)) => {
                            lock_ctx.cache_lock.release(key, permit, LockStatus::Done);
                        }
                        Some(Locked::Read(_)) | None => {}
                    }
                }
                if let Some(eviction) = ctx.eviction
                    && let Some(handler) = &found.hit_handler
                    && handler.should_count_access()
                {
                    eviction.access(
                        &key.to_compact(),
                        handler.get_eviction_weight(),
                        found.meta.fresh_until(),
                    );
                }
                self.state = State::Hit(found);
            }
            HitStatus::Expired | HitStatus::ForceExpired => {
                Self::take_lock(key, ctx, true);
                self.state = State::Stale(found);
            }
            HitStatus::ForceMiss | HitStatus::FailedHitFilter => {
                Self::take_lock(key, ctx, false);
                self.state = State::CacheKey;
            }
        }
    }

    /// Records the variance of this request for a found entry whose response varies, and says
    /// whether the entry is the right variant. Entries older than `meta` (the primary entry)
    /// are ignored from now on. On `false`, look up again: the key now points at this
    /// request's variant.
    ///
    /// # Panics
    ///
    /// Unless the phase is `CacheKey` or `Stale`.
    pub fn cache_vary_lookup(&mut self, variance: HashBinary, meta: &CacheMeta) -> bool {
        if !matches!(self.state, State::CacheKey | State::Stale(_)) {
            wrong_phase("cache_vary_lookup", self.phase());
        }
        let (key, ctx) = self.key_and_ctx("cache_vary_lookup");
        ctx.valid_after = Some(meta.created());
        let matches = meta.variance() == Some(variance);
        if matches {
            // The primary entry is this variant: keep using the primary slot.
            key.remove_variance_key();
        } else {
            key.set_variance_key(variance);
        }
        matches
    }

    /// Nothing usable is cached: the response comes from upstream and may be stored.
    ///
    /// # Panics
    ///
    /// Unless the phase is `CacheKey`, `Bypass` or `Stale`.
    pub fn cache_miss(&mut self) {
        match self.state {
            State::CacheKey | State::Bypass | State::Stale(_) => {
                self.state = State::Miss(MissState::default());
            }
            _ => wrong_phase("cache_miss", self.phase()),
        }
    }

    // ---------------------------------------------------------------- hit side

    /// The body reader of the found entry.
    ///
    /// # Panics
    ///
    /// Unless the phase is `Hit`, `Stale`, `StaleUpdating`, `Revalidated` or `RevalidatedNoCache`, or
    /// after [`finish_hit_handler`](Self::finish_hit_handler).
    pub fn hit_handler(&mut self) -> &mut HitHandler {
        let phase = self.phase();
        match self.state.found_mut() {
            Some(Found {
                hit_handler: Some(handler),
                ..
            }) => handler,
            _ => wrong_phase("hit_handler", phase),
        }
    }

    /// Ends the hit, letting the storage release what the reader holds. Safe to call twice.
    ///
    /// # Errors
    ///
    /// The storage failed.
    ///
    /// # Panics
    ///
    /// Unless the phase has a found entry (see [`hit_handler`](Self::hit_handler)).
    pub async fn finish_hit_handler(&mut self) -> Result<()> {
        let phase = self.phase();
        let Some(found) = self.state.found_mut() else {
            wrong_phase("finish_hit_handler", phase);
        };
        let Some(handler) = found.hit_handler.take() else {
            return Ok(());
        };
        let inner = self.inner.as_deref();
        let (Some(key), Some(ctx)) = (
            inner.and_then(|i| i.key.as_ref()),
            inner.and_then(|i| i.enabled.as_ref()),
        ) else {
            wrong_phase("finish_hit_handler", phase);
        };
        handler.finish(ctx.storage, key, &ctx.span).await?;
        Ok(())
    }

    /// The meta of the found or fetched entry.
    ///
    /// # Panics
    ///
    /// When there is none (see [`maybe_cache_meta`](Self::maybe_cache_meta)).
    pub fn cache_meta(&self) -> &CacheMeta {
        match self.maybe_cache_meta() {
            Some(meta) => meta,
            None => wrong_phase("cache_meta", self.phase()),
        }
    }

    /// The meta of the found entry (`Hit`, `Stale`, `StaleUpdating`, `Revalidated`,
    /// `RevalidatedNoCache`) or of the response being written (`Miss`, `Expired`, after
    /// [`set_cache_meta`](Self::set_cache_meta)).
    pub fn maybe_cache_meta(&self) -> Option<&CacheMeta> {
        match &self.state {
            State::Miss(m) | State::Expired(m) => m.meta.as_ref(),
            state => state.found().map(|f| &f.meta),
        }
    }

    // ---------------------------------------------------------------- miss side

    /// Sets the meta of the response about to be stored. From `Stale`, the new response
    /// replaces the stale entry and the phase becomes `Expired`.
    ///
    /// # Panics
    ///
    /// Unless the phase is `Miss`, `Expired` or `Stale`.
    pub fn set_cache_meta(&mut self, meta: CacheMeta) {
        match &mut self.state {
            State::Miss(m) | State::Expired(m) => m.meta = Some(meta),
            State::Stale(_) => {
                self.state = State::Expired(MissState {
                    meta: Some(meta),
                    ..MissState::default()
                });
            }
            _ => wrong_phase("set_cache_meta", self.phase()),
        }
    }

    /// Sets (or removes) the variance of the response about to be stored. If the lookup
    /// assumed a different variant, the response goes to the primary slot instead, which makes
    /// every older variant invalid, and the variant's lock is released.
    ///
    /// # Panics
    ///
    /// Unless the phase is `Miss` or `Expired` with a meta set.
    pub fn update_variance(&mut self, variance: Option<HashBinary>) {
        let phase = self.phase();
        let Some(MissState {
            meta: Some(meta), ..
        }) = self.state.miss_mut()
        else {
            wrong_phase("update_variance", phase);
        };
        match variance {
            Some(v) => meta.set_variance_key(v),
            None => meta.remove_variance(),
        }
        let (key, ctx) = self.key_and_ctx("update_variance");
        if let Some(old) = key.get_variance_key().copied()
            && Some(old) != variance
        {
            if let Some(lock_ctx) = ctx.lock_ctx.as_mut()
                && let Some(Locked::Write(permit)) = lock_ctx.lock.take()
            {
                lock_ctx.cache_lock.release(key, permit, LockStatus::Done);
            }
            key.remove_variance_key();
        }
    }

    /// Starts writing the response (its meta must be set) into storage. With a storage that
    /// streams partial writes, the write lock is released right away (waiting requests read
    /// the body as it is written) and [`miss_body_reader`](Self::miss_body_reader) becomes
    /// available.
    ///
    /// # Errors
    ///
    /// The storage failed; the proxy should [`disable`](Self::disable) with `StorageError`.
    ///
    /// # Panics
    ///
    /// Unless the phase is `Miss` or `Expired` with a meta set, or if called twice.
    pub async fn set_miss_handler(&mut self) -> Result<()> {
        let phase = self.phase();
        let meta = match self.state.miss_mut() {
            Some(MissState {
                meta: Some(meta),
                miss_handler_set: false,
                ..
            }) => meta.clone(),
            _ => wrong_phase("set_miss_handler", phase),
        };
        let (key, ctx) = self.key_and_ctx("set_miss_handler");
        let storage = ctx.storage;
        let handler = storage.get_miss_handler(key, &meta, &ctx.span).await?;
        let mut body_reader = None;
        if storage.support_streaming_partial_write() {
            let tag = handler.streaming_write_tag().map(<[u8]>::to_vec);
            if let Some(lock_ctx) = ctx.lock_ctx.as_mut()
                && let Some(Locked::Write(permit)) = lock_ctx.lock.take()
            {
                lock_ctx.cache_lock.release(key, permit, LockStatus::Done);
            }
            match storage
                .lookup_streaming_write(key, tag.as_deref(), &ctx.span)
                .await?
            {
                Some((_, reader)) => body_reader = Some(reader),
                None => return Err(Error::MissingStreamingWrite),
            }
        }
        let Some(miss) = self.state.miss_mut() else {
            wrong_phase("set_miss_handler", phase);
        };
        miss.miss_handler = Some(handler);
        miss.miss_handler_set = true;
        miss.body_reader = body_reader;
        Ok(())
    }

    /// The writer of the response body; `None` once finished.
    ///
    /// # Panics
    ///
    /// Unless the phase is `Miss` or `Expired`.
    pub fn miss_handler(&mut self) -> Option<&mut MissHandler> {
        let phase = self.phase();
        match self.state.miss_mut() {
            Some(miss) => miss.miss_handler.as_mut(),
            None => wrong_phase("miss_handler", phase),
        }
    }

    /// A reader of the body being written, when the storage streams partial writes, so the
    /// client can be served through the cache.
    ///
    /// # Panics
    ///
    /// Unless the phase is `Miss` or `Expired`.
    pub fn miss_body_reader(&mut self) -> Option<&mut HitHandler> {
        let phase = self.phase();
        match self.state.miss_mut() {
            Some(miss) => miss.body_reader.as_mut(),
            None => wrong_phase("miss_body_reader", phase),
        }
    }

    /// Completes the write: the entry becomes visible, the write lock is released with
    /// `Done`, the entry is admitted into the eviction manager and any victims it names are
    /// purged in a spawned task. Idempotent.
    ///
    /// # Errors
    ///
    /// The storage failed to complete the write (nothing was stored).
    ///
    /// # Panics
    ///
    /// Unless the phase is `Miss` or `Expired`.
    pub async fn finish_miss_handler(&mut self) -> Result<()> {
        let phase = self.phase();
        let Some(miss) = self.state.miss_mut() else {
            wrong_phase("finish_miss_handler", phase);
        };
        let Some(handler) = miss.miss_handler.take() else {
            return Ok(());
        };
        let fresh_until = miss.meta.as_ref().map(CacheMeta::fresh_until);
        let finished = handler.finish().await?;
        let (key, ctx) = self.key_and_ctx("finish_miss_handler");
        if let Some(lock_ctx) = ctx.lock_ctx.as_mut()
            && let Some(Locked::Write(permit)) = lock_ctx.lock.take()
        {
            lock_ctx.cache_lock.release(key, permit, LockStatus::Done);
        }
        if let Some(eviction) = ctx.eviction {
            let compact = key.to_compact();
            let victims = match finished {
                MissFinishType::Created(size) => {
                    eviction.admit(compact, size, fresh_until.unwrap_or_else(SystemTime::now))
                }
                MissFinishType::Appended(delta, max) => {
                    eviction.increment_weight(&compact, delta, max)
                }
            };
            if !victims.is_empty() {
                let storage = ctx.storage;
                let span = ctx.span.clone();
                tokio::spawn(async move {
                    for victim in victims {
                        if let Err(error) = storage.purge(&victim, PurgeType::Eviction, &span).await
                        {
                            tracing::warn!(%victim, %error, "failed to purge an evicted entry");
                        }
                    }
                });
            }
        }
        Ok(())
    }

    // ---------------------------------------------------------------- revalidation

    /// The stale entry was revalidated (304): `meta` (computed from the merged headers)
    /// replaces the stored meta, keeping the original `created` and variance, and the write
    /// lock is released. The phase becomes `Revalidated` whatever the storage says.
    /// Returns whether the storage had the entry.
    ///
    /// # Errors
    ///
    /// The storage failed to update the meta (the response is still served).
    ///
    /// # Panics
    ///
    /// Unless the phase is `Stale`.
    pub async fn revalidate_cache_meta(&mut self, mut meta: CacheMeta) -> Result<bool> {
        if !matches!(self.state, State::Stale(_)) {
            wrong_phase("revalidate_cache_meta", self.phase());
        }
        let State::Stale(found) = std::mem::replace(&mut self.state, State::Uninit) else {
            unreachable!("checked above");
        };
        let old = &found.meta;
        meta.set_created(old.created());
        match old.variance() {
            Some(v) => meta.set_variance(v),
            None => meta.remove_variance(),
        }
        let mut extensions = old.extensions().clone();
        extensions.extend(std::mem::take(meta.extensions_mut()));
        *meta.extensions_mut() = extensions;
        self.state = State::Revalidated(Found {
            meta: meta.clone(),
            hit_handler: found.hit_handler,
        });
        let (key, ctx) = self.key_and_ctx("revalidate_cache_meta");
        let result = ctx.storage.update_meta(key, &meta, &ctx.span).await;
        let (key, ctx) = self.key_and_ctx("revalidate_cache_meta");
        if let Some(lock_ctx) = ctx.lock_ctx.as_mut()
            && let Some(Locked::Write(permit)) = lock_ctx.lock.take()
        {
            lock_ctx.cache_lock.release(key, permit, LockStatus::Done);
        }
        Ok(result?)
    }

    /// The stored response header updated by a 304's header fields (RFC 9111 §3.2, §4.3.4;
    /// see [`merge_not_modified`](crate::revalidate::merge_not_modified)). The status and
    /// version stay those of the stored response. Feed the result to the cacheability filters,
    /// then call [`revalidate_cache_meta`](Self::revalidate_cache_meta) or
    /// [`revalidate_uncacheable`](Self::revalidate_uncacheable).
    ///
    /// # Panics
    ///
    /// Unless the phase is `Stale`.
    pub fn revalidate_merge_header(&self, not_modified: &ResponseHeader) -> ResponseHeader {
        let State::Stale(found) = &self.state else {
            wrong_phase("revalidate_merge_header", self.phase());
        };
        let stored = found.meta.response_header();
        ResponseHeader {
            status: stored.status,
            version: stored.version,
            headers: crate::revalidate::merge_not_modified(&stored.headers, &not_modified.headers),
        }
    }

    /// The stale entry was revalidated, but the merged response is not cacheable: the stored
    /// response is served with `header`, the cache is not updated and the write lock is
    /// released.
    ///
    /// # Panics
    ///
    /// Unless the phase is `Stale`.
    pub fn revalidate_uncacheable(&mut self, header: ResponseHeader, reason: NoCacheReason) {
        if !matches!(self.state, State::Stale(_)) {
            wrong_phase("revalidate_uncacheable", self.phase());
        }
        let State::Stale(mut found) = std::mem::replace(&mut self.state, State::Uninit) else {
            unreachable!("checked above");
        };
        *found.meta.response_header_mut() = header;
        self.state = State::RevalidatedNoCache(reason, found);
        self.release_write_lock(reason);
    }

    /// A stale entry is served while another request (or a background task holding the write
    /// permit) revalidates it.
    ///
    /// # Panics
    ///
    /// Unless the phase is `Stale`.
    pub fn set_stale_updating(&mut self) {
        if !matches!(self.state, State::Stale(_)) {
            wrong_phase("set_stale_updating", self.phase());
        }
        if let State::Stale(found) = std::mem::replace(&mut self.state, State::Uninit) {
            self.state = State::StaleUpdating(found);
        }
    }

    /// Whether the stale entry may be served because upstream failed (RFC 5861
    /// stale-if-error window). False outside `Stale` and `StaleUpdating`.
    pub fn can_serve_stale_error(&self) -> bool {
        match &self.state {
            State::Stale(f) | State::StaleUpdating(f) => {
                f.meta.serve_stale_if_error(SystemTime::now())
            }
            _ => false,
        }
    }

    /// Whether the stale entry may be served while it is revalidated (RFC 5861
    /// stale-while-revalidate window). False outside `Stale` and `StaleUpdating`.
    pub fn can_serve_stale_updating(&self) -> bool {
        match &self.state {
            State::Stale(f) | State::StaleUpdating(f) => {
                f.meta.serve_stale_while_revalidate(SystemTime::now())
            }
            _ => false,
        }
    }

    // ---------------------------------------------------------------- lock

    fn lock_ctx(&self) -> Option<&LockCtx> {
        self.inner()
            .and_then(|i| i.enabled.as_ref())
            .and_then(|c| c.lock_ctx.as_ref())
    }

    /// Whether this request waits on another request's write (holds a read lock).
    pub fn is_cache_locked(&self) -> bool {
        matches!(
            self.lock_ctx().and_then(|l| l.lock.as_ref()),
            Some(Locked::Read(_))
        )
    }

    /// Whether this request is the writer for its key (holds the write permit).
    pub fn is_cache_lock_writer(&self) -> bool {
        matches!(
            self.lock_ctx().and_then(|l| l.lock.as_ref()),
            Some(Locked::Write(_))
        )
    }

    /// Waits for the writer to release the lock, within what is left of this request's wait
    /// budget ([`CacheOptionOverrides::wait_timeout`], shared by every wait). Returns the
    /// lock's status: look up again on `Done`, `TransientError`, `Dangling` or `AgeTimeout`;
    /// go upstream uncached on `GiveUp` (`disable(CacheLockGiveUp)`) or `WaitTimeout`
    /// (`disable(CacheLockTimeout)`).
    ///
    /// # Panics
    ///
    /// Unless this request holds a read lock.
    pub async fn cache_lock_wait(&mut self) -> LockStatus {
        let phase = self.phase();
        let Some(lock_ctx) = self.lock_ctx() else {
            wrong_phase("cache_lock_wait", phase);
        };
        let Some(Locked::Read(read_lock)) = lock_ctx.lock.as_ref() else {
            wrong_phase("cache_lock_wait", phase);
        };
        let start = Instant::now();
        let status = if let Some(budget) = lock_ctx.wait_timeout {
            let left = budget.saturating_sub(self.digest.lock_duration.unwrap_or_default());
            match tokio::time::timeout(left, read_lock.wait()).await {
                Ok(()) => read_lock.lock_status(),
                Err(_) => LockStatus::WaitTimeout,
            }
        } else {
            read_lock.wait().await;
            read_lock.lock_status()
        };
        add_duration(&mut self.digest.lock_duration, start.elapsed());
        status
    }

    /// Releases the write lock, if this request holds it, with the status `reason` implies:
    /// transient failures let a waiting request become the writer (`TransientError`);
    /// uncacheable responses send the waiters upstream uncached (`GiveUp`); a custom reason
    /// asks the lock. Used to keep serving stale while letting others proceed.
    pub fn release_write_lock(&mut self, reason: NoCacheReason) {
        let Some(Inner {
            key: Some(key),
            enabled: Some(ctx),
            ..
        }) = self.inner.as_deref_mut()
        else {
            return;
        };
        let Some(lock_ctx) = ctx.lock_ctx.as_mut() else {
            return;
        };
        if !matches!(lock_ctx.lock, Some(Locked::Write(_))) {
            return;
        }
        let Some(Locked::Write(permit)) = lock_ctx.lock.take() else {
            return;
        };
        let status = match reason {
            NoCacheReason::OriginNotCache
            | NoCacheReason::ResponseTooLarge
            | NoCacheReason::PredictedResponseTooLarge => LockStatus::GiveUp,
            NoCacheReason::Custom(custom) => lock_ctx.cache_lock.custom_lock_status(custom),
            // Transient: another request may succeed where this one failed.
            NoCacheReason::NeverEnabled
            | NoCacheReason::StorageError
            | NoCacheReason::InternalError
            | NoCacheReason::Deferred
            | NoCacheReason::DeclinedToUpstream
            | NoCacheReason::UpstreamError
            | NoCacheReason::CacheLockGiveUp
            | NoCacheReason::CacheLockTimeout => LockStatus::TransientError,
        };
        lock_ctx.cache_lock.release(key, permit, status);
    }

    /// Moves the write permit out, e.g. to hand it to a background revalidation task, together
    /// with the lock it belongs to.
    ///
    /// # Panics
    ///
    /// Unless this request holds the write permit.
    pub fn take_write_lock(&mut self) -> (WritePermit, &'static CacheKeyLockImpl) {
        let phase = self.phase();
        let lock_ctx = self
            .inner_mut()
            .and_then(|i| i.enabled.as_mut())
            .and_then(|c| c.lock_ctx.as_mut());
        match lock_ctx {
            Some(lock_ctx) => match lock_ctx.lock.take() {
                Some(Locked::Write(permit)) => (permit, lock_ctx.cache_lock),
                other => {
                    lock_ctx.lock = other;
                    wrong_phase("take_write_lock", phase)
                }
            },
            None => wrong_phase("take_write_lock", phase),
        }
    }

    /// Puts a write permit taken from another request in (the background revalidation side).
    ///
    /// # Panics
    ///
    /// When the cache is not enabled with a cache lock.
    pub fn set_write_lock(&mut self, permit: WritePermit) {
        let phase = self.phase();
        match self
            .inner_mut()
            .and_then(|i| i.enabled.as_mut())
            .and_then(|c| c.lock_ctx.as_mut())
        {
            Some(lock_ctx) => lock_ctx.lock = Some(Locked::Write(permit)),
            None => wrong_phase("set_write_lock", phase),
        }
    }

    // ---------------------------------------------------------------- purge

    /// Removes the entry under the key from storage (and from the eviction manager if it was
    /// there). Purging the primary key makes every variant unreachable. Returns whether an
    /// entry was found.
    ///
    /// # Errors
    ///
    /// The storage failed.
    ///
    /// # Panics
    ///
    /// Unless the phase is `CacheKey`.
    pub async fn purge(&mut self) -> Result<bool> {
        if !matches!(self.state, State::CacheKey) {
            wrong_phase("purge", self.phase());
        }
        let (key, ctx) = self.key_and_ctx("purge");
        let compact = key.to_compact();
        let found = ctx
            .storage
            .purge(&compact, PurgeType::Invalidation, &ctx.span)
            .await?;
        if found && let Some(eviction) = ctx.eviction {
            eviction.remove(&compact);
        }
        Ok(found)
    }

    /// The same purge in a spawned task, usable in any enabled phase (e.g. after an unsafe
    /// method, RFC 9111 §4.4). `context` names the caller in logs.
    ///
    /// # Panics
    ///
    /// When the cache is disabled or has no key.
    pub fn spawn_async_purge(
        &mut self,
        context: &'static str,
    ) -> tokio::task::JoinHandle<Result<bool>> {
        let (key, ctx) = self.key_and_ctx("spawn_async_purge");
        let compact = key.to_compact();
        let storage = ctx.storage;
        let eviction = ctx.eviction;
        let span = ctx.span.clone();
        tokio::spawn(async move {
            let found = storage
                .purge(&compact, PurgeType::Invalidation, &span)
                .await?;
            if found && let Some(eviction) = eviction {
                eviction.remove(&compact);
            }
            tracing::debug!(context, found, "async purge done");
            Ok(found)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>() {}

    #[test]
    fn http_cache_can_move_between_tasks() {
        assert_send::<HttpCache>();
        assert_send::<CacheOptionOverrides>();
    }

    #[test]
    fn new_cache_is_never_enabled() {
        let mut cache = HttpCache::default();
        assert_eq!(
            cache.phase(),
            CachePhase::Disabled(NoCacheReason::NeverEnabled)
        );
        assert!(!cache.enabled());
        assert!(!cache.bypassing());
        assert!(cache.maybe_cache_key().is_none());
        assert!(cache.maybe_cache_meta().is_none());
        assert!(!cache.is_cache_locked());
        assert!(!cache.can_serve_stale_error());
        assert!(cache.cacheable_prediction());
        assert!(cache.track_body_bytes_for_max_file_size(1 << 30));
        assert!(!cache.exceeded_max_file_size());
        assert_eq!(cache.digest(), &HttpCacheDigest::default());
        assert!(format!("{cache:?}").contains("NeverEnabled"));
    }
}
