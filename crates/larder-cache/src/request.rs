//! Request directives (RFC 9111 §5.2.1) and `Pragma: no-cache` (§5.4): what the client
//! accepts from the cache.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use http::{HeaderMap, HeaderValue, StatusCode, header};
//! use larder_cache::request::{RequestDirectives, Reuse};
//! use larder_cache::{CacheMeta, HitStatus, ResponseHeader};
//!
//! let now = SystemTime::now();
//! // Stored 100 s ago, fresh for 60 s: 40 s stale.
//! let meta = CacheMeta::new(now - Duration::from_secs(40), now - Duration::from_secs(100),
//!     0, 0, ResponseHeader::new(StatusCode::OK));
//! let mut headers = HeaderMap::new();
//! headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("max-stale=60"));
//! let reuse = RequestDirectives::from_headers(&headers).reuse(&meta, &[], now);
//! assert_eq!(reuse, Reuse::StaleAllowed);
//! assert_eq!(reuse.hit_status(), Some(HitStatus::ForceFresh));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::time::{Duration, SystemTime};

use http::header::{CACHE_CONTROL, PRAGMA};
use http::{HeaderMap, HeaderName};
use larder_cache_control::{CacheControl, MaxStale};
use larder_storage::CacheMeta;

use crate::filters::forbids_stale;
use crate::phase::HitStatus;

/// How a stored response may be used for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reuse {
    /// Fresh and acceptable to the client: serve it.
    Fresh,
    /// Stale, but the client accepts that much staleness (`max-stale`) and the response does
    /// not forbid it: serve it without revalidation.
    StaleAllowed,
    /// Stale: revalidate (the response's stale-while-revalidate / stale-if-error windows apply).
    Stale,
    /// The client demands validation (`no-cache`, `max-age`, `min-fresh`): revalidate, and do
    /// not serve it stale.
    MustRevalidate,
    /// `only-if-cached` and the stored response cannot be used without contacting the origin:
    /// answer 504 (Gateway Timeout), RFC 9111 §5.2.1.7.
    Unusable,
}

impl Reuse {
    /// The [`HitStatus`] to pass to `HttpCache::cache_found`; `None` for
    /// [`Reuse::Unusable`] (answer 504 instead).
    pub fn hit_status(self) -> Option<HitStatus> {
        match self {
            Reuse::Fresh => Some(HitStatus::Fresh),
            Reuse::StaleAllowed => Some(HitStatus::ForceFresh),
            Reuse::Stale => Some(HitStatus::Expired),
            Reuse::MustRevalidate => Some(HitStatus::ForceExpired),
            Reuse::Unusable => None,
        }
    }
}

/// The request's cache directives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestDirectives {
    no_cache: bool,
    no_store: bool,
    only_if_cached: bool,
    /// Seconds; an invalid value reads as 0 (the conservative choice).
    max_age: Option<u32>,
    max_stale: Option<MaxStale>,
    /// Seconds; an invalid value is ignored.
    min_fresh: Option<u32>,
    /// Seconds (RFC 5861 §4 request form); an invalid value is ignored.
    stale_if_error: Option<u32>,
}

impl RequestDirectives {
    /// Reads `Cache-Control`, or `Pragma: no-cache` when there is no `Cache-Control`
    /// (RFC 9111 §5.4).
    pub fn from_headers(headers: &HeaderMap) -> Self {
        if !headers.contains_key(CACHE_CONTROL) {
            let pragma_no_cache = headers.get_all(PRAGMA).iter().any(|v| {
                v.as_bytes()
                    .split(|b| *b == b',')
                    .any(|d| crate::age::trim_ows(d).eq_ignore_ascii_case(b"no-cache"))
            });
            return Self {
                no_cache: pragma_no_cache,
                ..Self::default()
            };
        }
        let cc = CacheControl::from_headers(headers);
        Self {
            no_cache: cc.no_cache(),
            no_store: cc.no_store(),
            only_if_cached: cc.only_if_cached(),
            max_age: cc.max_age().map(|v| v.unwrap_or(0)),
            max_stale: cc.max_stale(),
            min_fresh: cc.min_fresh().and_then(Result::ok),
            stale_if_error: cc.stale_if_error().and_then(Result::ok),
        }
    }

    /// `no-store`: the response to this request must not be stored (§5.2.1.5). A stored
    /// response may still answer it.
    pub fn no_store(&self) -> bool {
        self.no_store
    }

    /// `no-cache` (or `Pragma: no-cache`): a stored response must be validated first.
    pub fn no_cache(&self) -> bool {
        self.no_cache
    }

    /// `only-if-cached`: answer from the cache or with 504, never from the origin.
    pub fn only_if_cached(&self) -> bool {
        self.only_if_cached
    }

    /// The request's `stale-if-error=N` (RFC 5861 §4): the client accepts a response up to `N`
    /// seconds stale when the origin fails.
    pub fn stale_if_error(&self) -> Option<u32> {
        self.stale_if_error
    }

    /// Whether the client's `stale-if-error` lets `meta` be served at `now` because the origin
    /// failed: within `N` seconds after it became stale, and only if the stored response does not
    /// forbid stale serving (`must-revalidate`, `proxy-revalidate`, `s-maxage`, `no-cache`).
    /// The response's own window is `HttpCache::can_serve_stale_error`.
    pub fn allows_stale_if_error(
        &self,
        meta: &CacheMeta,
        targeted_names: &[HeaderName],
        now: SystemTime,
    ) -> bool {
        let Some(window) = self.stale_if_error else {
            return false;
        };
        let staleness = now.duration_since(meta.fresh_until()).unwrap_or_default();
        staleness <= Duration::from_secs(u64::from(window))
            && !forbids_stale(&larder_cache_control::targeted(
                meta.headers(),
                targeted_names,
            ))
    }

    /// How `meta` may answer this request at `now`. `targeted_names` are the RFC 9213 fields
    /// whose directives replace the stored response's `Cache-Control` (to see whether it
    /// forbids stale serving).
    pub fn reuse(&self, meta: &CacheMeta, targeted_names: &[HeaderName], now: SystemTime) -> Reuse {
        let age = meta.age(now);
        let origin_fresh = meta.is_fresh(now);
        // Compared at full precision, so `max-age=0` always asks for validation (the usual
        // meaning of a reload), not only once a whole second has passed.
        let too_old = self
            .max_age
            .is_some_and(|max| age > Duration::from_secs(u64::from(max)));
        let remaining = meta
            .fresh_until()
            .duration_since(now)
            .unwrap_or(Duration::ZERO);
        let not_fresh_enough = self
            .min_fresh
            .is_some_and(|min| remaining < Duration::from_secs(u64::from(min)));
        let revalidate = if self.only_if_cached {
            Reuse::Unusable
        } else {
            Reuse::MustRevalidate
        };
        if self.no_cache || too_old {
            return revalidate;
        }
        if origin_fresh {
            return if not_fresh_enough {
                revalidate
            } else {
                Reuse::Fresh
            };
        }
        let staleness = now.duration_since(meta.fresh_until()).unwrap_or_default();
        let stale_ok = match self.max_stale {
            Some(MaxStale::Any) => true,
            Some(MaxStale::Seconds(max)) => staleness <= Duration::from_secs(u64::from(max)),
            Some(MaxStale::Invalid) | None => false,
        };
        if stale_ok {
            let stored = larder_cache_control::targeted(meta.headers(), targeted_names);
            if !forbids_stale(&stored) {
                return Reuse::StaleAllowed;
            }
        }
        if self.only_if_cached {
            Reuse::Unusable
        } else if not_fresh_enough && self.min_fresh.is_some() {
            Reuse::MustRevalidate
        } else {
            Reuse::Stale
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderValue, StatusCode};
    use larder_storage::ResponseHeader;

    const NOW: u64 = 1_700_000_000;

    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    /// A response stored `age` seconds ago with a lifetime of `lifetime` seconds.
    fn meta(age: u64, lifetime: u64, cc: &str) -> CacheMeta {
        let mut h = ResponseHeader::new(StatusCode::OK);
        if !cc.is_empty() {
            h.headers
                .insert(CACHE_CONTROL, HeaderValue::from_str(cc).unwrap());
        }
        CacheMeta::new(t(NOW - age + lifetime), t(NOW - age), 0, 0, h)
    }

    fn check(request: &[(&str, &str)], age: u64, lifetime: u64, stored_cc: &str, expect: Reuse) {
        let mut headers = HeaderMap::new();
        for (n, v) in request {
            headers.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let got = RequestDirectives::from_headers(&headers).reuse(
            &meta(age, lifetime, stored_cc),
            &[],
            t(NOW),
        );
        assert_eq!(
            got, expect,
            "{request:?} age={age} lifetime={lifetime} {stored_cc}"
        );
    }

    #[test]
    fn reuse_table() {
        use Reuse::*;
        let cc = |v| [("cache-control", v)];
        check(&[], 10, 60, "", Fresh);
        check(&[], 70, 60, "", Stale);
        // §5.2.1.4 no-cache and §5.4 Pragma.
        check(&cc("no-cache"), 10, 60, "", MustRevalidate);
        check(&[("pragma", "no-cache")], 10, 60, "", MustRevalidate);
        check(
            &[("pragma", "no-cache"), ("cache-control", "max-stale")],
            10,
            60,
            "",
            Fresh,
        );
        // §5.2.1.1 max-age.
        check(&cc("max-age=5"), 10, 60, "", MustRevalidate);
        check(&cc("max-age=10"), 10, 60, "", Fresh);
        check(&cc("max-age=0"), 0, 60, "", Fresh);
        check(&cc("max-age=0"), 1, 60, "", MustRevalidate);
        check(&cc("max-age=x"), 1, 60, "", MustRevalidate);
        // §5.2.1.3 min-fresh.
        check(&cc("min-fresh=30"), 10, 60, "", Fresh);
        check(&cc("min-fresh=55"), 10, 60, "", MustRevalidate);
        // §5.2.1.2 max-stale.
        check(&cc("max-stale"), 1000, 60, "", StaleAllowed);
        check(&cc("max-stale=20"), 70, 60, "", StaleAllowed);
        check(&cc("max-stale=5"), 70, 60, "", Stale);
        check(&cc("max-stale=x"), 70, 60, "", Stale);
        check(&cc("max-stale"), 70, 60, "must-revalidate", Stale);
        check(&cc("max-stale"), 70, 60, "s-maxage=60", Stale);
        check(&cc("max-stale"), 70, 60, "no-cache", Stale);
        check(&cc("max-stale, max-age=5"), 70, 60, "", MustRevalidate);
        // §5.2.1.7 only-if-cached.
        check(&cc("only-if-cached"), 10, 60, "", Fresh);
        check(&cc("only-if-cached"), 70, 60, "", Unusable);
        check(&cc("only-if-cached, max-stale"), 70, 60, "", StaleAllowed);
        check(&cc("only-if-cached, no-cache"), 10, 60, "", Unusable);
    }

    #[test]
    fn request_stale_if_error() {
        let directives = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(CACHE_CONTROL, HeaderValue::from_str(v).unwrap());
            RequestDirectives::from_headers(&h)
        };
        // Stored 100 s ago, fresh for 60 s: 40 s stale.
        let stale = meta(100, 60, "");
        assert_eq!(directives("stale-if-error=50").stale_if_error(), Some(50));
        assert!(directives("stale-if-error=50").allows_stale_if_error(&stale, &[], t(NOW)));
        assert!(!directives("stale-if-error=30").allows_stale_if_error(&stale, &[], t(NOW)));
        assert!(!directives("max-age=5").allows_stale_if_error(&stale, &[], t(NOW)));
        let strict = meta(100, 60, "must-revalidate");
        assert!(!directives("stale-if-error=50").allows_stale_if_error(&strict, &[], t(NOW)));
    }

    #[test]
    fn no_store_is_reported() {
        let mut h = HeaderMap::new();
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        let d = RequestDirectives::from_headers(&h);
        assert!(d.no_store());
        assert!(!d.no_cache());
        assert_eq!(
            d.reuse(&meta(1, 60, ""), &[], t(NOW)).hit_status(),
            Some(HitStatus::Fresh)
        );
    }
}
