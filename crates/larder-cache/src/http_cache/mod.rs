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

use std::time::{Duration, SystemTime};

use larder_storage::eviction::EvictionManager;
use larder_storage::{CacheKey, CacheMeta, HitHandler, MissHandler, Storage};
use tracing::Span;

use crate::lock::{CacheKeyLockImpl, Locked};
use crate::max_file_size::MaxFileSizeTracker;
use crate::phase::{CachePhase, NoCacheReason};
use crate::predictor::CacheablePredictor;

mod locking;
mod lookup;
mod write;

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
