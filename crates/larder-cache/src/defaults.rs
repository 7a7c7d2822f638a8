//! `CacheMetaDefaults`: the freshness policy for responses that carry no explicit freshness.
//!
//! RFC 9111 §4.2.1 gives explicit freshness (`s-maxage`, `max-age`, `Expires`) precedence over
//! anything a cache invents. What a cache may do when a response has none is a matter of policy:
//! the heuristic of §4.2.2 (a fraction of the time since `Last-Modified`) and, as in pingora-cache,
//! a per-status default TTL chosen by the operator. [`CacheMetaDefaults`] holds that policy.

use std::time::Duration;

use http::StatusCode;

/// A function giving the default freshness lifetime of a status code, or `None` when responses
/// with that status are not to be given a default lifetime.
pub type FreshDurationByStatusFn = fn(StatusCode) -> Option<Duration>;

/// When the operator's per-status default TTL (`fresh_sec_fn`) applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DefaultTtlScope {
    /// Only for a response WITHOUT explicit freshness (RFC 9111 §4.2.1) and without a heuristic
    /// lifetime from `Last-Modified` (§4.2.2). The origin's freshness always wins. This is the
    /// default, and the behaviour of pingora-cache.
    WithoutExplicitFreshness,
    /// Replace the origin's freshness for every storable response, as an "edge TTL" override
    /// under an out-of-band contract with the origin. The origin's `no-store`, `private` and
    /// `Authorization` rules still apply; only the lifetime is replaced.
    Always,
}

/// The heuristic freshness of RFC 9111 §4.2.2: a fraction of the time since `Last-Modified`,
/// capped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeuristicFreshness {
    /// The fraction of `Date − Last-Modified`, in percent (RFC 9111 suggests 10).
    pub percent: u32,
    /// The largest lifetime the heuristic may give.
    pub max: Duration,
}

impl HeuristicFreshness {
    /// 10% of the time since `Last-Modified`, at most one day.
    pub const DEFAULT: Self = Self {
        percent: 10,
        max: Duration::from_hours(24),
    };

    /// The heuristic lifetime of a response last modified `since_modified` before its `Date`.
    pub fn lifetime(&self, since_modified: Duration) -> Duration {
        // At nanosecond precision, so a resource modified 5 s ago is fresh for 0.5 s.
        let nanos = since_modified
            .as_nanos()
            .saturating_mul(u128::from(self.percent))
            / 100;
        let lifetime = u64::try_from(nanos).map_or(self.max, Duration::from_nanos);
        lifetime.min(self.max)
    }
}

/// The freshness policy for responses without explicit freshness, plus the default
/// stale-while-revalidate and stale-if-error windows (RFC 5861).
///
/// `new` is a `const fn`, so a policy can live in a `static`:
///
/// ```
/// use std::time::Duration;
/// use larder_cache::CacheMetaDefaults;
/// use http::StatusCode;
///
/// static DEFAULTS: CacheMetaDefaults = CacheMetaDefaults::new(
///     |status| match status.as_u16() {
///         200 | 203 | 301 => Some(Duration::from_secs(60)),
///         _ => None,
///     },
///     30,  // stale-while-revalidate when the origin gives none
///     300, // stale-if-error when the origin gives none
/// );
/// // A 304 uses the lifetime of a 200.
/// assert_eq!(DEFAULTS.fresh_sec(StatusCode::NOT_MODIFIED), Some(Duration::from_secs(60)));
/// assert_eq!(DEFAULTS.fresh_sec(StatusCode::NOT_FOUND), None);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Responses with neither explicit freshness nor `Last-Modified` get a lifetime only from
/// `fresh_sec_fn`; [`CacheMetaDefaults::STRICT`] never invents one, so such responses are not
/// stored at all.
#[derive(Debug, Clone, Copy)]
pub struct CacheMetaDefaults {
    fresh_sec_fn: FreshDurationByStatusFn,
    stale_while_revalidate_sec: u32,
    stale_if_error_sec: u32,
    heuristic: Option<HeuristicFreshness>,
    ttl_scope: DefaultTtlScope,
    default_ttl: Option<Duration>,
}

/// Status codes defined as heuristically cacheable (RFC 9110 §15.1); public as
/// `filters::is_heuristically_cacheable`.
pub(crate) fn heuristically_cacheable(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 203 | 204 | 206 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

const fn no_default_ttl(_: StatusCode) -> Option<Duration> {
    None
}

impl CacheMetaDefaults {
    /// Never invent freshness: explicit freshness or the `Last-Modified` heuristic only, and no
    /// stale serving unless the origin allows it with `stale-while-revalidate` / `stale-if-error`.
    pub const STRICT: Self = Self::new(no_default_ttl, 0, 0);

    /// A policy with a per-status default TTL and default stale windows in seconds. The
    /// `Last-Modified` heuristic ([`HeuristicFreshness::DEFAULT`]) is on and the default TTL only
    /// applies to responses without explicit freshness.
    pub const fn new(
        fresh_sec_fn: FreshDurationByStatusFn,
        stale_while_revalidate_sec: u32,
        stale_if_error_sec: u32,
    ) -> Self {
        Self {
            fresh_sec_fn,
            stale_while_revalidate_sec,
            stale_if_error_sec,
            heuristic: Some(HeuristicFreshness::DEFAULT),
            ttl_scope: DefaultTtlScope::WithoutExplicitFreshness,
            default_ttl: None,
        }
    }

    /// Sets or removes (`None`) one lifetime for every status RFC 9110 §15.1 calls
    /// heuristically cacheable, used when `fresh_sec_fn` gives none for the status. Unlike the
    /// function pointer it is a value, so two policies in one process (two sites) can carry
    /// different lifetimes.
    ///
    /// ```
    /// use std::time::Duration;
    /// use http::StatusCode;
    /// use larder_cache::CacheMetaDefaults;
    ///
    /// let d = CacheMetaDefaults::STRICT.with_default_ttl(Some(Duration::from_secs(60)));
    /// assert_eq!(d.fresh_sec(StatusCode::NOT_FOUND), Some(Duration::from_secs(60)));
    /// assert_eq!(d.fresh_sec(StatusCode::INTERNAL_SERVER_ERROR), None);
    /// ```
    #[must_use]
    pub const fn with_default_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.default_ttl = ttl;
        self
    }

    /// The lifetime set by [`with_default_ttl`](Self::with_default_ttl).
    pub const fn default_ttl(&self) -> Option<Duration> {
        self.default_ttl
    }

    /// Sets or removes (`None`) the `Last-Modified` heuristic.
    #[must_use]
    pub const fn with_heuristic(mut self, heuristic: Option<HeuristicFreshness>) -> Self {
        self.heuristic = heuristic;
        self
    }

    /// Sets when the per-status default TTL applies.
    #[must_use]
    pub const fn with_ttl_scope(mut self, scope: DefaultTtlScope) -> Self {
        self.ttl_scope = scope;
        self
    }

    /// The default lifetime for `status`; a 304 uses the lifetime of a 200.
    pub fn fresh_sec(&self, status: StatusCode) -> Option<Duration> {
        let status = if status == StatusCode::NOT_MODIFIED {
            StatusCode::OK
        } else {
            status
        };
        (self.fresh_sec_fn)(status)
            .or_else(|| self.default_ttl.filter(|_| heuristically_cacheable(status)))
    }

    /// The default stale-while-revalidate window in seconds.
    pub const fn serve_stale_while_revalidate_sec(&self) -> u32 {
        self.stale_while_revalidate_sec
    }

    /// The default stale-if-error window in seconds.
    pub const fn serve_stale_if_error_sec(&self) -> u32 {
        self.stale_if_error_sec
    }

    /// The `Last-Modified` heuristic, if enabled.
    pub const fn heuristic(&self) -> Option<HeuristicFreshness> {
        self.heuristic
    }

    /// When the per-status default TTL applies.
    pub const fn ttl_scope(&self) -> DefaultTtlScope {
        self.ttl_scope
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static D: CacheMetaDefaults = CacheMetaDefaults::new(
        |s| (s == StatusCode::OK).then_some(Duration::from_secs(5)),
        1,
        2,
    );

    #[test]
    fn not_modified_uses_ok_ttl() {
        assert_eq!(
            D.fresh_sec(StatusCode::NOT_MODIFIED),
            Some(Duration::from_secs(5))
        );
        assert_eq!(D.fresh_sec(StatusCode::OK), Some(Duration::from_secs(5)));
        assert_eq!(D.fresh_sec(StatusCode::NOT_FOUND), None);
        assert_eq!(D.serve_stale_while_revalidate_sec(), 1);
        assert_eq!(D.serve_stale_if_error_sec(), 2);
    }

    #[test]
    fn strict_invents_nothing() {
        assert_eq!(CacheMetaDefaults::STRICT.fresh_sec(StatusCode::OK), None);
        assert_eq!(CacheMetaDefaults::STRICT.serve_stale_if_error_sec(), 0);
    }

    #[test]
    fn heuristic_is_a_capped_fraction() {
        let h = HeuristicFreshness::DEFAULT;
        assert_eq!(
            h.lifetime(Duration::from_secs(1000)),
            Duration::from_secs(100)
        );
        assert_eq!(
            h.lifetime(Duration::from_secs(u64::MAX)),
            Duration::from_hours(24)
        );
        assert_eq!(h.lifetime(Duration::ZERO), Duration::ZERO);
        assert_eq!(
            h.lifetime(Duration::from_secs(5)),
            Duration::from_millis(500)
        );
    }
}
