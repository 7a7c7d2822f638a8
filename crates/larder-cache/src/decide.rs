//! The decisions of a caching proxy's request flow, without IO (sans-IO).
//!
//! A proxy drives one [`HttpCache`](crate::HttpCache) per request; between its calls it has to
//! decide what to do next. Those decisions live here as plain functions over facts the proxy
//! has gathered: no IO, no channels, no spawning, and the time (where it matters) a parameter.
//! The proxy executes what they return; the crate's test driver executes the same functions,
//! so both follow one set of rules. Callbacks a proxy asks only under some conditions (such as
//! whether a stale response may be served) are passed as closures and asked exactly when the
//! rule needs them.
//!
//! The flow, in the order a proxy runs it:
//!
//! 1. [`Bypass::check`]: whether the cache handles the request at all.
//! 2. For a found entry: [`entry`] (how it may be reused, after the request directives and the
//!    hit filter), then [`found`] (serve, serve stale with one background refresh, wait for
//!    another request's fill, revalidate or refetch). Without an entry: [`not_found`]. After a
//!    lock wait: [`after_wait`].
//! 3. Upstream: [`upstream_request`] (preconditions and `Range` stripped, `HEAD` as `GET`,
//!    validators added), then [`on_upstream_error`] (stale-if-error, RFC 9111 §4.2.4
//!    disconnected) or, for a stale entry, [`on_stale_response`] (304, stale-if-error, replace),
//!    and [`store`] (whether and how the response is stored).
//! 4. The answer: [`downstream`] (the client's preconditions, `HEAD` and ranges), and its
//!    `Cache-Status` ([`hit_status`], [`forwarded_status`]).
//!
//! ```
//! use larder_cache::decide::{self, FoundAction, FoundFacts};
//! use larder_cache::CachePhase;
//!
//! // A stale entry nobody else is refreshing, within its stale-while-revalidate window.
//! let facts = FoundFacts {
//!     phase: CachePhase::Stale,
//!     must_revalidate: false,
//!     locked: false,
//!     lock_writer: true,
//!     can_serve_stale_updating: true,
//!     no_store: false,
//! };
//! assert_eq!(decide::found(facts, || true), FoundAction::ServeStaleAndRefresh);
//! // The hook refuses stale serving: revalidate in the foreground.
//! assert_eq!(decide::found(facts, || false), FoundAction::Revalidate);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use http::header::{self, HeaderMap, HeaderName};
use http::{Method, StatusCode};
use larder_storage::CacheMeta;

use crate::cache_status::ForwardReason;
use crate::filters::{self, RespCacheable};
use crate::lock::LockStatus;
use crate::max_file_size::content_length_exceeds;
use crate::phase::{CachePhase, ForcedFreshness, HitStatus, NoCacheReason};
use crate::request::Reuse;
use crate::revalidate;

// ------------------------------------------------------------------------- the request

/// Why the cache does not handle a request: it is forwarded as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bypass {
    /// The method is not cacheable (the request filter said no).
    Method,
    /// A cacheable method with a request body: the key does not cover the body, so an origin
    /// that reads it would let one client choose what every other client gets ("fat GET").
    RequestBody,
    /// Caching is off (no storage).
    Disabled,
    /// The request has no cache key.
    NoKey,
}

impl Bypass {
    /// Whether the cache handles a request, checked in order: `cacheable_method` (the request
    /// filter's answer), `has_body` (the request carries a body), `enabled` (there is a
    /// storage). The cache key, computed after these pass, gives [`Bypass::NoKey`] when absent.
    #[inline]
    pub fn check(cacheable_method: bool, has_body: bool, enabled: bool) -> Option<Self> {
        if !cacheable_method {
            Some(Self::Method)
        } else if has_body {
            Some(Self::RequestBody)
        } else if !enabled {
            Some(Self::Disabled)
        } else {
            None
        }
    }

    /// The `Cache-Status` `fwd` parameter (RFC 9211 §2.2).
    pub fn forward_reason(self) -> ForwardReason {
        match self {
            Self::Method => ForwardReason::Method,
            Self::RequestBody | Self::Disabled | Self::NoKey => ForwardReason::Bypass,
        }
    }

    /// Why nothing is stored (the `Cache-Status` detail and the metrics' reason).
    pub fn reason(self) -> NoCacheReason {
        match self {
            Self::Method | Self::Disabled => NoCacheReason::NeverEnabled,
            Self::NoKey => NoCacheReason::Custom("NoCacheKey"),
            Self::RequestBody => NoCacheReason::Custom("RequestBody"),
        }
    }
}

/// Whether content in a request with `method` has no generally defined semantics (RFC 9110
/// §9.3.1, §9.3.2, §9.3.5, §9.3.7, §9.3.8), so that many origins never read it: such a request
/// with a body goes upstream on a connection that is not reused.
pub fn body_without_meaning(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::DELETE | Method::OPTIONS | Method::TRACE
    )
}

/// Whether a method is unsafe (RFC 9110 §9.2.1).
pub fn is_unsafe(method: &Method) -> bool {
    !matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// Whether the answer `status` to a request with `method` invalidates the stored responses of
/// the target URI and of same-host `Location` / `Content-Location` (RFC 9111 §4.4): an unsafe
/// method answered with a non-error status.
pub fn invalidates(method: &Method, status: StatusCode) -> bool {
    is_unsafe(method) && (status.is_success() || status.is_redirection())
}

// ------------------------------------------------------------------------- a found entry

/// How a found entry is handed to `HttpCache::cache_found`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The status to pass to `cache_found`.
    pub hit_status: HitStatus,
    /// The request demands validation (its directives, or a hit filter forcing expiry): the
    /// entry is not served stale.
    pub must_revalidate: bool,
    /// The hit filter forced expiry: stale serving is turned off for the entry
    /// (`CacheMeta::disable_serve_stale`).
    pub disable_serve_stale: bool,
}

/// How a found entry is used: `reuse` is what the request directives allow
/// ([`RequestDirectives::reuse`](crate::request::RequestDirectives::reuse)), `forced` asks the
/// hit filter (asked only when the entry is usable). `None` for an `only-if-cached` request the
/// entry cannot answer: 504 (RFC 9111 §5.2.1.7).
#[inline]
pub fn entry(reuse: Reuse, forced: impl FnOnce() -> Option<ForcedFreshness>) -> Option<Entry> {
    let mut hit_status = reuse.hit_status()?;
    let mut must_revalidate = reuse == Reuse::MustRevalidate;
    let mut disable_serve_stale = false;
    if let Some(forced) = forced() {
        hit_status = forced.into();
        if hit_status == HitStatus::ForceExpired {
            disable_serve_stale = true;
            must_revalidate = true;
        }
    }
    Some(Entry {
        hit_status,
        must_revalidate,
        disable_serve_stale,
    })
}

/// What the proxy knows after `HttpCache::cache_found`.
// Each flag is one independent fact the proxy reads off the cache or the request; a state
// enum would only rename them.
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FoundFacts {
    /// The phase `cache_found` moved to.
    pub phase: CachePhase,
    /// From [`Entry::must_revalidate`].
    pub must_revalidate: bool,
    /// Another request holds the key's lock (`HttpCache::is_cache_locked`).
    pub locked: bool,
    /// This request holds the key's write lock (`HttpCache::is_cache_lock_writer`).
    pub lock_writer: bool,
    /// The entry is within its stale-while-revalidate window
    /// (`HttpCache::can_serve_stale_updating`).
    pub can_serve_stale_updating: bool,
    /// The request says `no-store` (RFC 9111 §5.2.1.5).
    pub no_store: bool,
}

/// What to do with a found entry (or with none, [`not_found`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FoundAction {
    /// Serve it: a fresh hit.
    Serve,
    /// Serve it stale (`set_stale_updating`): another request is refreshing it.
    ServeStale,
    /// Serve it stale (`set_stale_updating`) and start one background refresh, handing it the
    /// write lock when this request holds it (stale-while-revalidate, RFC 5861 §3).
    ServeStaleAndRefresh,
    /// Serve it stale without a refresh, releasing the write lock as
    /// [`NoCacheReason::Deferred`]: a `no-store` request may store nothing it fetches
    /// (RFC 9111 §5.2.1.5), so the next request without it refreshes.
    ServeStaleWithoutRefresh,
    /// Wait for the request that holds the lock, then look up again.
    Wait,
    /// Go upstream with the entry's validators (the phase is `Stale`).
    Revalidate,
    /// Go upstream as for a miss (`cache_miss`): the hit filter treated the entry as a miss, or
    /// nothing was found.
    Miss,
}

/// What to do with a found entry, after `cache_found`. `should_serve_stale` asks the hook
/// whether stale-while-revalidate may be used; it is asked only when the entry's window and the
/// request allow it.
#[inline]
pub fn found(facts: FoundFacts, should_serve_stale: impl FnOnce() -> bool) -> FoundAction {
    match facts.phase {
        CachePhase::Hit => FoundAction::Serve,
        CachePhase::Stale => {
            let swr =
                !facts.must_revalidate && facts.can_serve_stale_updating && should_serve_stale();
            if facts.locked {
                // Another request revalidates.
                return if swr {
                    FoundAction::ServeStale
                } else {
                    FoundAction::Wait
                };
            }
            if !swr {
                FoundAction::Revalidate
            } else if facts.no_store {
                FoundAction::ServeStaleWithoutRefresh
            } else {
                FoundAction::ServeStaleAndRefresh
            }
        }
        // Treated as a miss by the hit filter.
        _ => not_found(facts.locked),
    }
}

/// What to do when the lookup found nothing: wait when another request is filling the key
/// (`locked`), otherwise go upstream as a miss.
#[inline]
pub fn not_found(locked: bool) -> FoundAction {
    if locked {
        FoundAction::Wait
    } else {
        FoundAction::Miss
    }
}

/// The `fwd` reason for going upstream from a found entry: the request demanded validation
/// (`request`), or the entry was stale or treated as a miss.
pub fn found_forward_reason(phase: CachePhase, must_revalidate: bool) -> ForwardReason {
    if phase == CachePhase::Stale && !must_revalidate {
        ForwardReason::Stale
    } else {
        ForwardReason::Request
    }
}

/// After waiting on another request's lock: `Ok` to look up again, or the reason the cache is
/// disabled for this request before it goes upstream on its own.
///
/// # Errors
///
/// [`NoCacheReason::CacheLockGiveUp`] when the writer found the response uncacheable,
/// [`NoCacheReason::CacheLockTimeout`] when the wait budget ran out.
pub fn after_wait(status: LockStatus) -> Result<(), NoCacheReason> {
    match status {
        LockStatus::GiveUp => Err(NoCacheReason::CacheLockGiveUp),
        LockStatus::WaitTimeout => Err(NoCacheReason::CacheLockTimeout),
        _ => Ok(()),
    }
}

// ------------------------------------------------------------------------- upstream

/// Whether the upstream answer in `phase` is fetched for the cache (a miss or a
/// revalidation), so the request sent is the cache's own rather than the client's.
#[inline]
pub fn fetches_for_cache(phase: CachePhase) -> bool {
    matches!(phase, CachePhase::Miss | CachePhase::Stale)
}

/// Prepares the request head sent upstream in `phase`: for the cache (a miss or a
/// revalidation) `HEAD` becomes `GET`, the client's preconditions and `Range` are removed and,
/// for a stale entry, its validators (`stored`, its header fields) are added
/// ([`revalidate::request_filter`], RFC 9111 §4.3.1); otherwise the client's request goes
/// unchanged.
pub fn upstream_request(
    phase: CachePhase,
    method: &mut Method,
    headers: &mut HeaderMap,
    stored: Option<&HeaderMap>,
) {
    if fetches_for_cache(phase) {
        let stored = if phase == CachePhase::Stale {
            stored
        } else {
            None
        };
        revalidate::request_filter(method, headers, stored);
    }
}

/// Prepares the head of a background refresh (stale-while-revalidate) from the client's:
/// a `GET` without body fields.
pub fn refresh_request(method: &mut Method, headers: &mut HeaderMap) {
    *method = Method::GET;
    for name in [
        header::CONTENT_LENGTH,
        header::TRANSFER_ENCODING,
        header::CONTENT_TYPE,
    ] {
        headers.remove(name);
    }
}

/// Whether a stale entry may be served because the upstream is unreachable (RFC 9111 §4.2.4
/// "disconnected"), outside any stale-if-error window: only when `enabled` by configuration,
/// when the request does not demand validation and when the stored response (its
/// `targeted_names` fields or `Cache-Control`) does not forbid stale serving.
pub fn stale_on_disconnect(
    enabled: bool,
    must_revalidate: bool,
    meta: Option<&CacheMeta>,
    targeted_names: &[HeaderName],
) -> bool {
    if !enabled || must_revalidate {
        return false;
    }
    let Some(meta) = meta else {
        return false;
    };
    let cc = larder_cache_control::targeted(meta.headers(), targeted_names);
    !filters::forbids_stale(&cc)
}

/// What replaces an upstream that failed before answering, in `phase`: a stale entry within
/// its stale-if-error window (`can_serve_stale_error`) or served while disconnected
/// (`on_disconnect`, [`stale_on_disconnect`]), if the hook agrees (`should_serve_stale`, asked
/// only then); `None` for a `502`.
pub fn on_upstream_error(
    phase: CachePhase,
    can_serve_stale_error: bool,
    on_disconnect: bool,
    should_serve_stale: impl FnOnce() -> bool,
) -> Option<HitKind> {
    let usable = phase == CachePhase::Stale && (can_serve_stale_error || on_disconnect);
    if !usable || !should_serve_stale() {
        return None;
    }
    Some(if can_serve_stale_error {
        HitKind::StaleIfError(None)
    } else {
        HitKind::StaleOnDisconnect
    })
}

/// What to do with an upstream answer to a revalidation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaleAnswer {
    /// A 304: merge its header into the stored one and serve the stored body.
    NotModified,
    /// A server error within the stale-if-error window: release the lock and serve the stale
    /// entry instead.
    ServeStale,
    /// A new response replaces the entry (it goes through [`store`]).
    Replace,
}

/// What to do with the upstream's `status` answering a revalidation: `can_serve_stale_error`
/// is the entry's stale-if-error window; `should_serve_stale` asks the hook, only for a server
/// error inside the window.
pub fn on_stale_response(
    status: StatusCode,
    can_serve_stale_error: bool,
    should_serve_stale: impl FnOnce() -> bool,
) -> StaleAnswer {
    if status == StatusCode::NOT_MODIFIED {
        StaleAnswer::NotModified
    } else if status.is_server_error() && can_serve_stale_error && should_serve_stale() {
        StaleAnswer::ServeStale
    } else {
        StaleAnswer::Replace
    }
}

/// Whether the header merged from a 304 refreshes the stored entry: not for a `no-store`
/// request (RFC 9111 §5.2.1.5; the client still gets the stored body), otherwise as the
/// response filter (`filter`, asked only then) says.
pub fn revalidated(no_store: bool, filter: impl FnOnce() -> RespCacheable) -> RespCacheable {
    if no_store {
        RespCacheable::Uncacheable(NoCacheReason::Custom("RequestNoStore"))
    } else {
        filter()
    }
}

/// What the proxy knows about an upstream response it may store.
#[derive(Debug, Clone, Copy)]
pub struct StoreFacts<'a> {
    /// The cache's phase when the response arrived.
    pub phase: CachePhase,
    /// The client's method.
    pub method: &'a Method,
    /// The response's status.
    pub status: StatusCode,
    /// The response's header fields (for its `Content-Length`).
    pub headers: &'a HeaderMap,
    /// The request says `no-store`.
    pub no_store: bool,
    /// The largest body stored, if limited.
    pub max_file_size: Option<usize>,
}

/// Whether and how an upstream response is stored.
#[derive(Debug)]
pub enum Store {
    /// Store it with `meta`: set the meta and variance, then the miss handler. `from_bypass`:
    /// the cache was bypassed (a predicted-uncacheable key) and leaves that phase first
    /// (`response_became_cacheable`, `cache_miss`).
    Write {
        /// The stored response's meta.
        meta: CacheMeta,
        /// The cache leaves `Bypass` first.
        from_bypass: bool,
    },
    /// Do not store it, for `reason`; `action` says what happens to the cache and the lock.
    Refuse {
        /// Why (the `Cache-Status` detail and the metrics' reason).
        reason: NoCacheReason,
        /// What to do with the cache.
        action: Refusal,
    },
}

/// What a refusal to store does to the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `release_write_lock(UpstreamError)`, then `disable(reason)`: a server error is a
    /// failure that may not repeat, so a waiting request takes the lock and tries again
    /// (instead of the whole herd going upstream at once), and the key is not remembered as
    /// uncacheable.
    RetryUnderLock,
    /// `response_became_uncacheable(reason)` (the predictor remembers the key and waiting
    /// requests give up on the lock), then `disable(reason)`.
    Remember,
    /// `disable(reason)` only (a bypassed request: nothing to remember).
    Disable,
    /// Nothing: the cache was already disabled (`reason` is its own).
    AlreadyDisabled,
}

/// Whether and how the upstream response is stored. `filter` is the response filter
/// (RFC 9111 §3 and §4.2), asked only when nothing else already refused.
pub fn store(facts: StoreFacts<'_>, filter: impl FnOnce() -> RespCacheable) -> Store {
    let phase = facts.phase;
    if !matches!(
        phase,
        CachePhase::Miss | CachePhase::Stale | CachePhase::Bypass
    ) {
        let reason = match phase {
            CachePhase::Disabled(r) => r,
            _ => NoCacheReason::NeverEnabled,
        };
        return Store::Refuse {
            reason,
            action: Refusal::AlreadyDisabled,
        };
    }
    let decision = if facts.status == StatusCode::NOT_MODIFIED {
        // A 304 to an unconditional request (or a bypassed conditional one).
        RespCacheable::Uncacheable(NoCacheReason::Custom("NotModifiedOnMiss"))
    } else if facts.no_store {
        RespCacheable::Uncacheable(NoCacheReason::Custom("RequestNoStore"))
    } else {
        filter()
    };
    let decision = match decision {
        RespCacheable::Cacheable(_)
            if phase == CachePhase::Bypass
                && (*facts.method != Method::GET || facts.status != StatusCode::OK) =>
        {
            // A bypassed request went upstream as sent (a HEAD, conditional or ranged
            // request), so its answer may not be the whole representation: the next plain GET
            // fills the cache.
            RespCacheable::Uncacheable(NoCacheReason::Deferred)
        }
        other => other,
    };
    match decision {
        RespCacheable::Cacheable(meta) => {
            let too_large = facts
                .max_file_size
                .is_some_and(|max| content_length_exceeds(facts.headers, max));
            if too_large {
                Store::Refuse {
                    reason: NoCacheReason::ResponseTooLarge,
                    action: Refusal::Remember,
                }
            } else {
                Store::Write {
                    meta,
                    from_bypass: phase == CachePhase::Bypass,
                }
            }
        }
        RespCacheable::Uncacheable(r) => {
            let action = if facts.status.is_server_error() && r.is_origin_not_cache() {
                Refusal::RetryUnderLock
            } else if phase != CachePhase::Bypass {
                Refusal::Remember
            } else {
                Refusal::Disable
            };
            Store::Refuse { reason: r, action }
        }
    }
}

mod answer;

pub use answer::{
    Downstream, HitKind, downstream, downstream_with, forwarded_status, hit_status,
    range_needs_length, ttl,
};

#[cfg(test)]
mod tests;
