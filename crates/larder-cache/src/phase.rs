//! The phases of `HttpCache` and the reasons a response is not cached.

/// Why a request or response is not cached. Kept in every `Disabled` phase and reported in
/// `Cache-Status` details and metrics through [`NoCacheReason::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NoCacheReason {
    /// The cache was never enabled for this request.
    NeverEnabled,
    /// The origin's response is not cacheable (RFC 9111 §3), for a reason not named by one of
    /// the variants below. The filters of this crate name the rule instead (`NoStore`,
    /// `Private`, ...); ask [`is_origin_not_cache`](Self::is_origin_not_cache) for "did the
    /// origin's rules refuse it?".
    OriginNotCache,
    /// The response's status is never stored on its own: interim (1xx), 206 or 304 (RFC 9111
    /// §3; a 304 only updates a stored response).
    StatusNotStorable,
    /// `must-understand` is present and the cache does not understand the status
    /// (RFC 9111 §5.2.2.3).
    StatusNotUnderstood,
    /// The response has `no-store` (RFC 9111 §5.2.2.5).
    NoStore,
    /// The response has a bare `private` (RFC 9111 §5.2.2.7).
    Private,
    /// The request had `Authorization` and the response does not allow a shared cache to store
    /// it (none of `public`, `s-maxage`, `must-revalidate`; RFC 9111 §3.5).
    Authorization,
    /// The response has `Vary: *` (RFC 9111 §4.1: no later request can match it).
    VaryAny,
    /// The response has no freshness lifetime, explicit or heuristic, and is not a bare
    /// `no-cache` response with a validator (RFC 9111 §3, §4.2).
    NoFreshness,
    /// The request method is not one the cache serves (only GET and HEAD are).
    MethodNotCacheable,
    /// The response body grew past the configured maximum object size.
    ResponseTooLarge,
    /// The response was predicted to be too large (no Content-Length while a size limit is set).
    PredictedResponseTooLarge,
    /// The storage failed to read or write.
    StorageError,
    /// An internal error (an integration or logic failure, not the network's fault).
    InternalError,
    /// Cacheable, but admission was deferred (the predictor had marked the key uncacheable).
    Deferred,
    /// The embedding code declined to go upstream.
    DeclinedToUpstream,
    /// The upstream failed.
    UpstreamError,
    /// Another request holding the cache lock found the response uncacheable.
    CacheLockGiveUp,
    /// Waiting on the cache lock took longer than the configured timeout.
    CacheLockTimeout,
    /// The response sets a cookie (`Set-Cookie`) and the
    /// [`SetCookiePolicy`](crate::set_cookie::SetCookiePolicy) refuses to store it; it was
    /// otherwise storable.
    SetCookie,
    /// A reason given by the embedding code.
    Custom(&'static str),
}

impl NoCacheReason {
    /// A stable name for logs, metrics and `Cache-Status` details.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::NeverEnabled => "NeverEnabled",
            Self::OriginNotCache => "OriginNotCache",
            Self::StatusNotStorable => "StatusNotStorable",
            Self::StatusNotUnderstood => "StatusNotUnderstood",
            Self::NoStore => "NoStore",
            Self::Private => "Private",
            Self::Authorization => "Authorization",
            Self::VaryAny => "VaryAny",
            Self::NoFreshness => "NoFreshness",
            Self::MethodNotCacheable => "MethodNotCacheable",
            Self::ResponseTooLarge => "ResponseTooLarge",
            Self::PredictedResponseTooLarge => "PredictedResponseTooLarge",
            Self::StorageError => "StorageError",
            Self::InternalError => "InternalError",
            Self::Deferred => "Deferred",
            Self::DeclinedToUpstream => "DeclinedToUpstream",
            Self::UpstreamError => "UpstreamError",
            Self::CacheLockGiveUp => "CacheLockGiveUp",
            Self::CacheLockTimeout => "CacheLockTimeout",
            Self::SetCookie => "SetCookie",
            Self::Custom(s) => s,
        }
    }

    /// Whether the origin's response itself was refused by the storage rules of RFC 9111 §3:
    /// [`OriginNotCache`](Self::OriginNotCache) or one of the variants naming a rule
    /// (`StatusNotStorable`, `StatusNotUnderstood`, `NoStore`, `Private`, `Authorization`,
    /// `VaryAny`, `NoFreshness`). Not the cookie policy ([`SetCookie`](Self::SetCookie)), size
    /// limits, failures or the request's method.
    ///
    /// ```
    /// use larder_cache::NoCacheReason;
    ///
    /// assert!(NoCacheReason::Private.is_origin_not_cache());
    /// assert!(NoCacheReason::OriginNotCache.is_origin_not_cache());
    /// assert!(!NoCacheReason::SetCookie.is_origin_not_cache());
    /// assert!(!NoCacheReason::StorageError.is_origin_not_cache());
    /// ```
    pub fn is_origin_not_cache(&self) -> bool {
        matches!(
            self,
            Self::OriginNotCache
                | Self::StatusNotStorable
                | Self::StatusNotUnderstood
                | Self::NoStore
                | Self::Private
                | Self::Authorization
                | Self::VaryAny
                | Self::NoFreshness
        )
    }
}

impl std::fmt::Display for NoCacheReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The phase an `HttpCache` is in. Methods are only valid in some phases;
/// calling one in another phase is an integration bug and panics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CachePhase {
    /// Caching is off for this request, with the reason.
    Disabled(NoCacheReason),
    /// Enabled, but no cache key has been set yet.
    Uninit,
    /// Caching was skipped for this request (e.g. predicted uncacheable).
    Bypass,
    /// The cache key is set; the lookup has not happened yet.
    CacheKey,
    /// A fresh cached response was found.
    Hit,
    /// Nothing usable is cached; the response comes from upstream and may be stored.
    Miss,
    /// A stale cached response was found; it must be revalidated or served stale.
    Stale,
    /// A stale response is being served while another request revalidates it.
    StaleUpdating,
    /// The stale response is being replaced by a new upstream response.
    Expired,
    /// The stale response was revalidated (304) and is fresh again.
    Revalidated,
    /// The stale response was revalidated, but the new headers make it uncacheable.
    RevalidatedNoCache(NoCacheReason),
}

impl CachePhase {
    /// A stable name for logs and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Disabled(_) => "disabled",
            Self::Uninit => "uninitialized",
            Self::Bypass => "bypass",
            Self::CacheKey => "key",
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Stale => "stale",
            Self::StaleUpdating => "stale-updating",
            Self::Expired => "expired",
            Self::Revalidated => "revalidated",
            Self::RevalidatedNoCache(_) => "revalidated-nocache",
        }
    }
}

/// How a found entry is to be treated, decided by the proxy (freshness plus its hit filter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HitStatus {
    /// Stale: revalidate or serve stale.
    Expired,
    /// Fresh, but the embedding code forces revalidation.
    ForceExpired,
    /// The embedding code treats the entry as absent.
    ForceMiss,
    /// A hit filter failed; the entry is treated as absent.
    FailedHitFilter,
    /// Fresh: serve it.
    Fresh,
    /// Stale, but the embedding code serves it as fresh.
    ForceFresh,
}

impl HitStatus {
    /// A stable `snake_case` name for logs and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Expired => "expired",
            Self::ForceExpired => "force_expired",
            Self::ForceMiss => "force_miss",
            Self::FailedHitFilter => "failed_hit_filter",
            Self::Fresh => "fresh",
            Self::ForceFresh => "force_fresh",
        }
    }

    /// `Fresh` or `ForceFresh`: the entry is served as a hit.
    pub fn is_fresh(&self) -> bool {
        matches!(self, Self::Fresh | Self::ForceFresh)
    }

    /// `ForceMiss` or `FailedHitFilter`: the entry is treated as absent.
    pub fn is_treated_as_miss(&self) -> bool {
        matches!(self, Self::ForceMiss | Self::FailedHitFilter)
    }
}

/// What a hit filter may force on a found entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ForcedFreshness {
    /// Treat the entry as stale and revalidate it (stale serving is disabled for it).
    ForceExpired,
    /// Treat the entry as absent.
    ForceMiss,
    /// Serve the entry as fresh even if it is stale.
    ForceFresh,
}

impl From<ForcedFreshness> for HitStatus {
    fn from(forced: ForcedFreshness) -> Self {
        match forced {
            ForcedFreshness::ForceExpired => Self::ForceExpired,
            ForcedFreshness::ForceMiss => Self::ForceMiss,
            ForcedFreshness::ForceFresh => Self::ForceFresh,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable() {
        assert_eq!(CachePhase::StaleUpdating.as_str(), "stale-updating");
        assert_eq!(
            CachePhase::Disabled(NoCacheReason::OriginNotCache).as_str(),
            "disabled"
        );
        assert_eq!(NoCacheReason::Custom("policy").as_str(), "policy");
        assert_eq!(
            NoCacheReason::CacheLockTimeout.to_string(),
            "CacheLockTimeout"
        );
    }

    #[test]
    fn hit_status_predicates() {
        assert!(HitStatus::ForceFresh.is_fresh());
        assert!(!HitStatus::ForceExpired.is_fresh());
        assert!(HitStatus::FailedHitFilter.is_treated_as_miss());
        assert!(!HitStatus::Expired.is_treated_as_miss());
        assert_eq!(
            HitStatus::from(ForcedFreshness::ForceMiss).as_str(),
            "force_miss"
        );
    }
}
