//! The hooks trait: the cache callbacks of a proxy (pingora's `ProxyHttp` cache callbacks), each
//! with a default that gives standard shared-cache behaviour (RFC 9111).

use std::future::Future;

use bytes::Bytes;
use http::request::Parts;
use http::{Response, StatusCode, response};
use larder_cache::age::ResponseTimes;
use larder_cache::conditional::{self, Precondition};
use larder_cache::filters::{self, RespCacheable};
use larder_cache::range::{self, RangeSpec};
use larder_cache::set_cookie::{self, SetCookiePolicy};
use larder_cache::variance::{VarianceBuilder, VaryNames, normalized_value, vary_names};
use larder_cache::{CacheKey, CacheMeta, ForcedFreshness, HashBinary, HttpCache, ResponseHeader};

use crate::auth::{self, PurgeAuth, PurgeStatus};
use crate::body::{ProxyBody, canned};
use crate::error::BoxError;
use crate::server::ClientInfo;
use crate::shared::CacheConfig;
use crate::upstream::Timeout;

/// Why a stale response could be served instead of the upstream's answer.
#[derive(Debug)]
#[non_exhaustive]
pub enum StaleCause<'a> {
    /// The upstream answered with this server error status.
    UpstreamStatus(StatusCode),
    /// The upstream could not be reached or failed before answering.
    UpstreamError(&'a BoxError),
}

/// Callbacks that customise the cache. Every method has a default giving standard shared-cache
/// behaviour (RFC 9111); implement only the ones to change. `req` is always the client's request
/// head (hop-by-hop fields removed).
///
/// The callbacks pingora runs as `async fn` (`proxy_upstream_filter`, `response_filter`,
/// `fail_to_proxy`) return `impl Future + Send`; implement them with `async fn`. Their
/// defaults are ready at once and are not boxed, so a default costs a hit nothing. A callback
/// that can fail returns [`BoxError`]; each says what its error leads to.
pub trait CacheHooks: Send + Sync + 'static {
    /// Whether the request may use the cache at all. Default: `GET` and `HEAD` (other methods
    /// are forwarded; unsafe ones invalidate, RFC 9111 §4.4).
    fn request_cache_filter(&self, req: &Parts) -> bool {
        filters::request_cacheable(&req.method)
    }

    /// The key the response is stored under; `None` leaves the request uncached. Default:
    /// [`default_cache_key`] (scheme + authority + path + query).
    fn cache_key_callback(&self, req: &Parts) -> Option<CacheKey> {
        default_cache_key(req)
    }

    /// The variance of `req` for a stored response with `meta`, or for a response about to be
    /// stored (RFC 9111 §4.1). Default: [`default_variance`] over the response's `Vary`.
    fn cache_vary_filter(&self, meta: &CacheMeta, req: &Parts) -> Option<HashBinary> {
        default_variance(meta.headers(), &req.headers)
    }

    /// Whether and how long to store an upstream response (also run on the header merged from
    /// a 304). Default: RFC 9111 §3 and §4.2 via
    /// [`resp_cacheable_targeted_with`](filters::resp_cacheable_targeted_with), with the
    /// configured defaults and targeted fields (`CDN-Cache-Control`, RFC 9213), and, for a
    /// response that sets a cookie, the policy [`set_cookie_policy`](Self::set_cookie_policy)
    /// chooses. The stored header never carries `Set-Cookie`: the client whose request filled
    /// the cache gets the upstream's fields, every later one the stored copy. An override that
    /// does not call the default should keep both rules.
    ///
    /// # Errors
    ///
    /// An error stores nothing, as `Uncacheable(InternalError)` would (a 304 still serves the
    /// stored response, without updating it).
    fn response_cache_filter(
        &self,
        req: &Parts,
        resp: &ResponseHeader,
        config: &CacheConfig,
        times: ResponseTimes,
    ) -> Result<RespCacheable, BoxError> {
        let set_cookie = if set_cookie::has_set_cookie(&resp.headers) {
            self.set_cookie_policy(req, resp, config)
        } else {
            // Not consulted: without a cookie every policy decides alike.
            config.set_cookie
        };
        Ok(filters::resp_cacheable_targeted_with(
            resp.clone(),
            filters::authorization_present(&req.headers),
            &config.targeted_cache_control,
            &config.defaults,
            times,
            set_cookie,
        ))
    }

    /// The policy for `resp`, an upstream response (or the header merged from a 304) that
    /// sets a cookie (`Set-Cookie` or `Set-Cookie2`); asked by the default
    /// [`response_cache_filter`](Self::response_cache_filter) only for such responses.
    /// Default: [`CacheConfig::set_cookie`], [`SetCookiePolicy::OptIn`] unless configured:
    /// stored only when the origin opts in for shared caches (`public`, `s-maxage`, a targeted
    /// field such as `CDN-Cache-Control`, or `private` / `no-cache` naming `Set-Cookie`),
    /// otherwise not stored (`Cache-Status` detail and `/metrics` reason `SetCookie`). Override
    /// it to choose per request, e.g. [`SetCookiePolicy::Never`] under `/account/`.
    fn set_cookie_policy(
        &self,
        req: &Parts,
        resp: &ResponseHeader,
        config: &CacheConfig,
    ) -> SetCookiePolicy {
        let _ = (req, resp);
        config.set_cookie
    }

    /// Runs on every found entry (fresh or stale) and may force a miss, an expiry or a fresh
    /// hit. Default: `Ok(None)` (the request directives and freshness decide).
    ///
    /// # Errors
    ///
    /// An error treats the entry as absent (a miss, as pingora's `FailedHitFilter`; the hit
    /// status recorded is `ForceMiss`).
    fn cache_hit_filter(
        &self,
        req: &Parts,
        meta: &CacheMeta,
        is_fresh: bool,
    ) -> Result<Option<ForcedFreshness>, BoxError> {
        let _ = (req, meta, is_fresh);
        Ok(None)
    }

    /// Runs where the flow turns a lookup into a miss: nothing usable was found (and no other
    /// request holds the key's cache lock), the lookup failed,
    /// [`cache_hit_filter`](Self::cache_hit_filter) forced a miss, a background refresh found
    /// the entry gone, or the response to a bypassed request (predicted uncacheable) turned out
    /// storable. Not run for hits, revalidations or requests the cache does not handle.
    /// Default: [`HttpCache::cache_miss`], which starts the miss (the response is stored if
    /// storable). An override that neither calls it nor [disables](HttpCache::disable) the
    /// cache leaves the request uncached (`Cache-Status` detail `CacheMissSkipped`).
    fn cache_miss(&self, req: &Parts, cache: &mut HttpCache) {
        let _ = req;
        cache.cache_miss();
    }

    /// Runs after the cache decided to go upstream (a miss, a revalidation or refetch of a
    /// stale entry, a background refresh, or a request the cache does not handle), just before
    /// the request is sent. `Ok(false)` declines: nothing is sent, the cache is disabled with
    /// `DeclinedToUpstream` (its lock released, so a waiting request looks again and may go
    /// upstream itself), and the client gets `502` with that reason in `Cache-Status`.
    /// Default: `Ok(true)`.
    ///
    /// # Errors
    ///
    /// An error does what declining does, with reason `InternalError` and `500`.
    fn proxy_upstream_filter(
        &self,
        req: &Parts,
    ) -> impl Future<Output = Result<bool, BoxError>> + Send {
        let _ = req;
        std::future::ready(Ok(true))
    }

    /// Changes the request sent upstream, after the cache removed the client's preconditions
    /// and ranges and added its own validators (and after
    /// [`proxy_upstream_filter`](Self::proxy_upstream_filter) let it go). Default: nothing.
    ///
    /// # Errors
    ///
    /// An error sends nothing: the cache is disabled with `InternalError` and the client gets
    /// `500`.
    fn upstream_request_filter(&self, req: &Parts, upstream: &mut Parts) -> Result<(), BoxError> {
        let _ = (req, upstream);
        Ok(())
    }

    /// Changes the upstream response before it is considered for storage (changes are
    /// stored). Not run for hits. Default: nothing.
    ///
    /// # Errors
    ///
    /// On a 304 that revalidates a stored response, an error keeps the stored response
    /// unchanged and still serves it; on any other response, the cache is disabled with
    /// `InternalError` and the client gets `500`.
    fn upstream_response_filter(
        &self,
        req: &Parts,
        resp: &mut response::Parts,
    ) -> Result<(), BoxError> {
        let _ = (req, resp);
        Ok(())
    }

    /// Whether a stale response may be served: `cause` is `None` for stale-while-revalidate and
    /// the upstream failure for stale-if-error. Only asked when the stored response's
    /// windows (RFC 5861) allow it. Default: `true`.
    fn should_serve_stale(&self, req: &Parts, cause: Option<&StaleCause<'_>>) -> bool {
        let _ = (req, cause);
        true
    }

    /// The client's preconditions evaluated against a response the cache answers with
    /// (RFC 9110 §13.2.2). Default: [`conditional::evaluate`].
    ///
    /// # Errors
    ///
    /// An error fails open: the response is sent as if the preconditions held
    /// ([`Precondition::Proceed`]).
    fn cache_not_modified_filter(
        &self,
        req: &Parts,
        resp: &ResponseHeader,
    ) -> Result<Precondition, BoxError> {
        if !has_preconditions(&req.headers) {
            // Nothing to evaluate: skip parsing the stored validators.
            return Ok(Precondition::Proceed);
        }
        Ok(conditional::evaluate(
            &req.method,
            &req.headers,
            resp.status,
            &resp.headers,
        ))
    }

    /// How a `Range` request is answered from a response the cache serves: on a hit (also a
    /// revalidated or stale one), and on a miss whose upstream request the cache changed (it
    /// asked for the whole representation). Runs after the client's preconditions, for a
    /// response that is not `304` / `412`; may change `resp`. The layer then writes the
    /// `206` / `416` header for the answer when `resp` has a `Content-Length`:
    /// [`RangeSpec::None`] sends the whole `200`, [`RangeSpec::Invalid`] a `416`. Default:
    /// [`range::range_for_request`] with [`CacheConfig::max_ranges`] (RFC 9110 §14).
    fn range_header_filter(
        &self,
        req: &Parts,
        resp: &mut ResponseHeader,
        config: &CacheConfig,
    ) -> RangeSpec {
        range::range_for_request(
            &req.method,
            &req.headers,
            resp.status,
            &resp.headers,
            config.max_ranges,
        )
    }

    /// Runs on every answer of the cache flow (hits, revalidated and stale answers, misses,
    /// requests the cache does not handle, and error pages such as
    /// [`fail_to_proxy`](Self::fail_to_proxy)'s), after `Cache-Status` and `Via` were added;
    /// not on PURGE answers ([`purge_response_filter`](Self::purge_response_filter)) or on
    /// requests refused for their target. Changes are not stored. Default: nothing.
    ///
    /// # Errors
    ///
    /// An error replaces the answer with `500` (with the same `Cache-Status`).
    fn response_filter(
        &self,
        req: &Parts,
        resp: &mut Response<ProxyBody>,
    ) -> impl Future<Output = Result<(), BoxError>> + Send {
        let _ = (req, resp);
        std::future::ready(Ok(()))
    }

    /// Whether [`response_body_filter`](Self::response_body_filter) sees the body of `resp`,
    /// asked after [`response_filter`](Self::response_filter). Default: `false`, so bodies
    /// pass untouched with no per-chunk cost; override it with `response_body_filter`.
    fn wants_response_body(&self, req: &Parts, resp: &Response<ProxyBody>) -> bool {
        let _ = (req, resp);
        false
    }

    /// Runs on every chunk of a body [`wants_response_body`](Self::wants_response_body) picked,
    /// hits included, and once more with `None` and `end_of_stream` after the last chunk
    /// (where it may set a tail). It may change or empty the chunk; a filter that changes the
    /// length should remove `Content-Length` in [`response_filter`](Self::response_filter).
    /// Changes are not stored. Default: nothing.
    ///
    /// # Errors
    ///
    /// An error ends the client's body in that error (never a clean short body).
    fn response_body_filter(
        &self,
        req: &Parts,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
    ) -> Result<(), BoxError> {
        let _ = (req, body, end_of_stream);
        Ok(())
    }

    /// The answer when the upstream cannot be reached or fails before answering and no stale
    /// response replaces it (stale-if-error and the disconnected case are tried first), for a
    /// cached or an uncached request. The cache is already disabled with `UpstreamError`;
    /// `Cache-Status`, `Via` and [`response_filter`](Self::response_filter) still apply to the
    /// answer. Default: an empty body with `504 Gateway Timeout` when the origin did not send
    /// its response head in time ([`Timeout::Response`](crate::upstream::Timeout)), else
    /// `502 Bad Gateway`.
    fn fail_to_proxy(
        &self,
        req: &Parts,
        error: &BoxError,
    ) -> impl Future<Output = Response<ProxyBody>> + Send {
        let _ = req;
        let status = Timeout::find(&**error).map_or(StatusCode::BAD_GATEWAY, Timeout::status);
        std::future::ready(canned(status))
    }

    /// Whether the request purges its cache entry instead of being proxied. Default: the
    /// method is `PURGE`.
    fn is_purge(&self, req: &Parts) -> bool {
        req.method.as_str() == "PURGE"
    }

    /// Whether a PURGE request may purge. Default: `Authorization: Bearer <token>` matching the
    /// configured token, compared in constant time; [`PurgeAuth::Disabled`] without a token.
    fn purge_authorization(&self, req: &Parts, token: Option<&str>) -> PurgeAuth {
        auth::check_bearer(&req.headers, token)
    }

    /// May change or replace the canned answer to a PURGE request that ended in `status`
    /// (`200`, `404`, `405`, `401` or `500`, each with `Content-Length: 0` and
    /// `Cache-Control: private, no-store`); runs for every PURGE request. Default: nothing.
    ///
    /// # Errors
    ///
    /// An error answers `500` instead.
    fn purge_response_filter(
        &self,
        req: &Parts,
        status: &PurgeStatus<'_>,
        resp: &mut Response<ProxyBody>,
    ) -> Result<(), BoxError> {
        let _ = (req, status, resp);
        Ok(())
    }
}

/// Whether the request carries a precondition [`conditional::evaluate`] looks at, in one pass
/// over its fields (requests seldom carry any).
fn has_preconditions(headers: &http::HeaderMap) -> bool {
    use http::header::{IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_UNMODIFIED_SINCE};
    headers.keys().any(|name| {
        name == IF_MATCH
            || name == IF_NONE_MATCH
            || name == IF_MODIFIED_SINCE
            || name == IF_UNMODIFIED_SINCE
    })
}

/// The default hooks: every callback keeps its default.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultHooks;

impl CacheHooks for DefaultHooks {}

/// The default cache key: `scheme://authority/path?query` as the primary key, in an empty
/// namespace. The scheme is the connection's when the request came through
/// [`server::serve_with`](crate::server::serve_with) (`https` over TLS, `http` otherwise: its
/// [`ClientInfo`](crate::server::ClientInfo)), whatever the target or `:scheme` claims, so a
/// client cannot pick the other scheme's entries; without a `ClientInfo` it is the request
/// URI's, else `http`. The authority is the URI's, else the `Host` field's, lowercased. A
/// request with neither has no key (it is not cached).
pub fn default_cache_key(req: &Parts) -> Option<CacheKey> {
    let authority = if let Some(a) = req.uri.authority() {
        a.as_str()
    } else {
        let host = req.headers.get(http::header::HOST)?.to_str().ok()?.trim();
        if host.is_empty() {
            return None;
        }
        host
    };
    let scheme = match req.extensions.get::<ClientInfo>() {
        Some(client) if client.tls => "https",
        Some(_) => "http",
        None => req.uri.scheme_str().unwrap_or("http"),
    };
    let pq = req.uri.path_and_query().map_or("/", |pq| pq.as_str());
    // An absolute-form target without a path (`http://h?q`) means path `/` (RFC 9112 §3.2.2),
    // as its origin-form twin `/?q` says. `*` (OPTIONS, never cached) stays apart from `/*`.
    let slash: &[u8] = if pq.starts_with('/') || pq == "*" {
        b""
    } else {
        b"/"
    };
    // One allocation of the exact size: this runs on every request.
    let mut primary =
        Vec::with_capacity(scheme.len() + 3 + authority.len() + slash.len() + pq.len());
    primary.extend_from_slice(scheme.as_bytes());
    primary.extend_from_slice(b"://");
    let start = primary.len();
    primary.extend_from_slice(authority.as_bytes());
    primary[start..].make_ascii_lowercase();
    primary.extend_from_slice(slash);
    primary.extend_from_slice(pq.as_bytes());
    Some(CacheKey::new("", primary, ""))
}

/// The variance of a request for a response with `resp_headers` (RFC 9111 §4.1): a hash of the
/// normalised values of every field the response's `Vary` names. A field the request lacks
/// counts as absent, which differs from every value, so a response stored for a request that
/// had the field is never served to one that lacked it. `None` when the response has no `Vary`.
pub fn default_variance(
    resp_headers: &http::HeaderMap,
    req_headers: &http::HeaderMap,
) -> Option<HashBinary> {
    let VaryNames::Names(names) = vary_names(resp_headers) else {
        return None;
    };
    let mut builder = VarianceBuilder::new();
    for name in names {
        // A NUL never occurs in a field value, so this marker cannot collide with one.
        let value = normalized_value(req_headers, &name)
            .map_or_else(|| b"\0absent".to_vec(), |v| normalize_list(&name, v));
        builder.add_owned_name_value(name.as_str().to_owned(), value);
    }
    builder.finalize()
}

/// Fields whose members are case-insensitive and whose order carries no meaning (preference
/// comes from `q` weights, RFC 9110 §12.4.2, §12.5.3, §12.5.4): their members are lowercased,
/// stripped of whitespace and sorted, so equivalent requests share a variant (RFC 9111 §4.1
/// allows such normalisation).
fn normalize_list(name: &http::HeaderName, value: Vec<u8>) -> Vec<u8> {
    if name != http::header::ACCEPT_LANGUAGE && name != http::header::ACCEPT_ENCODING {
        return value;
    }
    let mut members: Vec<Vec<u8>> = value
        .split(|b| *b == b',')
        .map(|m| {
            m.iter()
                .filter(|b| !b.is_ascii_whitespace())
                .map(u8::to_ascii_lowercase)
                .collect::<Vec<u8>>()
        })
        .filter(|m| !m.is_empty())
        .collect();
    members.sort();
    members.dedup();
    members.join(&b',')
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue, Request};

    fn parts(uri: &str, host: Option<&str>) -> Parts {
        let mut b = Request::builder().uri(uri);
        if let Some(h) = host {
            b = b.header("host", h);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn default_key_uses_scheme_authority_path_and_query() {
        let key = |uri, host| default_cache_key(&parts(uri, host)).map(|k| k.primary());
        let expect = CacheKey::new("", "http://example.com/a?b=1", "").primary();
        assert_eq!(key("/a?b=1", Some("Example.COM")), Some(expect.clone()));
        assert_eq!(key("http://example.com/a?b=1", None), Some(expect));
        assert_eq!(key("/a", None), None);
        assert_eq!(key("/a", Some("")), None);
    }

    /// Through the proxy's server the scheme is the connection's: a plain client claiming
    /// `https://` (absolute form, or `:scheme` over h2c) gets the `http` entry, and a TLS
    /// client in origin form the `https` one.
    #[test]
    fn the_scheme_is_the_connections() {
        let key = |uri: &str, host: Option<&str>, tls: Option<bool>| {
            let mut p = parts(uri, host);
            if let Some(tls) = tls {
                p.extensions.insert(ClientInfo {
                    peer: ([127, 0, 0, 1], 1).into(),
                    local: ([127, 0, 0, 1], 2).into(),
                    tls,
                });
            }
            default_cache_key(&p).map(|k| k.primary())
        };
        let http = CacheKey::new("", "http://h.example/a", "").primary();
        let https = CacheKey::new("", "https://h.example/a", "").primary();
        assert_eq!(
            key("https://h.example/a", None, Some(false)),
            Some(http.clone())
        );
        assert_eq!(
            key("/a", Some("h.example"), Some(false)),
            Some(http.clone())
        );
        assert_eq!(
            key("/a", Some("h.example"), Some(true)),
            Some(https.clone())
        );
        assert_eq!(
            key("http://h.example/a", None, Some(true)),
            Some(https.clone())
        );
        // Without the server (the layer used alone) the URI says.
        assert_eq!(key("https://h.example/a", None, None), Some(https));
        assert_eq!(key("/a", Some("h.example"), None), Some(http));
    }

    /// `http://h?q` has no path: it keyed as `http://h?q`, apart from its origin-form twin
    /// `/?q` with `Host: h`.
    #[test]
    fn absolute_form_keys_like_origin_form_and_host() {
        let key = |uri, host| default_cache_key(&parts(uri, host)).map(|k| k.primary());
        for (absolute, origin) in [
            ("http://a.test?q=1", "/?q=1"),
            ("http://a.test", "/"),
            ("http://A.Test/p?q", "/p?q"),
            ("http://a.test/p#f", "/p"),
        ] {
            assert_eq!(
                key(absolute, None),
                key(origin, Some("a.test")),
                "{absolute}"
            );
            // Host is ignored for absolute-form (RFC 9112 §3.2.2).
            assert_eq!(key(absolute, Some("b.test")), key(origin, Some("a.test")));
        }
        assert_ne!(key("*", Some("a.test")), key("/*", Some("a.test")));
    }

    #[test]
    fn absent_vary_field_differs_from_every_value() {
        let mut resp = HeaderMap::new();
        resp.insert("vary", HeaderValue::from_static("accept-encoding"));
        let mut gzip = HeaderMap::new();
        gzip.insert("accept-encoding", HeaderValue::from_static("gzip"));
        let mut empty = HeaderMap::new();
        empty.insert("accept-encoding", HeaderValue::from_static(""));
        let none = default_variance(&resp, &HeaderMap::new());
        assert!(none.is_some());
        assert_ne!(none, default_variance(&resp, &gzip));
        assert_ne!(none, default_variance(&resp, &empty));
        assert_eq!(default_variance(&HeaderMap::new(), &gzip), None);
    }

    #[test]
    fn accept_language_order_case_and_spaces_do_not_split_variants() {
        let mut resp = HeaderMap::new();
        resp.insert("vary", HeaderValue::from_static("Accept-Language"));
        let variance = |v: &'static str| {
            let mut req = HeaderMap::new();
            req.insert("accept-language", HeaderValue::from_static(v));
            default_variance(&resp, &req)
        };
        assert_eq!(variance("en, de"), variance("De,EN"));
        assert_eq!(variance("en, de"), variance(" en ,   de"));
        assert_ne!(variance("en, de"), variance("en"));
        assert_ne!(variance("en;q=0.5, de"), variance("en, de"));
    }
}
