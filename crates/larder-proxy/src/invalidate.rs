//! Invalidation after unsafe methods (RFC 9111 §4.4) and storing POST responses that name
//! their own URI (RFC 9110 §9.3.3).

use std::time::SystemTime;

use http::header::{self, HeaderMap};
use http::request::Parts;
use http::{Method, Response, StatusCode, Uri};
use larder_cache::age::ResponseTimes;
use larder_cache::cache_status::CacheStatus;
use larder_cache::filters::RespCacheable;
use larder_cache::{HttpCache, ResponseHeader};

use crate::body::ProxyBody;
use crate::flow::{Answer, enable};
use crate::hooks::CacheHooks;
use crate::layer::Shared;
use crate::pump::serve_upstream;

/// Whether a method is unsafe (RFC 9110 §9.2.1), so a success invalidates (RFC 9111 §4.4).
pub(crate) fn is_unsafe(method: &Method) -> bool {
    !matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// Stores a POST response for later GETs of the same URI when it says it is that URI's
/// representation (`Content-Location` naming the request target) and has explicit freshness
/// (RFC 9110 §9.3.3, RFC 9111 §3). Anything else passes through untouched.
pub(crate) async fn store_post<H: CacheHooks>(
    shared: &Shared<H>,
    req: &Parts,
    parts: http::response::Parts,
    body: ProxyBody,
    status: CacheStatus,
) -> Answer {
    let same_uri = parts
        .headers
        .get(header::CONTENT_LOCATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| same_host_target(req, v))
        .is_some_and(|uri| Some(uri.path_and_query()) == Some(req.uri.path_and_query()));
    let explicit = {
        let cc = larder_cache::cache_control::CacheControl::from_headers(&parts.headers);
        cc.max_age().is_some()
            || cc.s_maxage().is_some()
            || parts.headers.contains_key(header::EXPIRES)
    };
    if !same_uri || !explicit || parts.status != StatusCode::OK || shared.config.storage.is_none() {
        return (Response::from_parts(parts, body), status);
    }
    let mut target = req.clone();
    target.method = Method::GET;
    let Some(key) = shared.hooks.cache_key_callback(&target) else {
        return (Response::from_parts(parts, body), status);
    };
    let times = ResponseTimes::at(SystemTime::now());
    let header = ResponseHeader::from(&parts);
    let RespCacheable::Cacheable(meta) =
        shared
            .hooks
            .response_cache_filter(&target, &header, &shared.config, times)
    else {
        return (Response::from_parts(parts, body), status);
    };
    let mut cache = HttpCache::new();
    enable(shared, &mut cache, false);
    cache.set_cache_key(key);
    cache.cache_miss();
    let variance = shared.hooks.cache_vary_filter(&meta, &target);
    cache.set_cache_meta(meta);
    cache.update_variance(variance);
    if let Err(e) = cache.set_miss_handler().await {
        tracing::warn!(error = %e, "could not store a POST response");
        return (Response::from_parts(parts, body), status);
    }
    let body = serve_upstream(Some(cache), body, false, None, &shared.metrics);
    (Response::from_parts(parts, body), status.stored(true))
}

/// Removes the stored responses for the request's URI and for same-host `Location` and
/// `Content-Location` (RFC 9111 §4.4).
pub(crate) async fn invalidate<H: CacheHooks>(
    shared: &Shared<H>,
    req: &Parts,
    resp_headers: &HeaderMap,
) {
    if shared.config.storage.is_none() {
        return;
    }
    let mut targets = vec![req.uri.clone()];
    for name in [header::LOCATION, header::CONTENT_LOCATION] {
        if let Some(uri) = resp_headers
            .get(&name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| same_host_target(req, v))
        {
            targets.push(uri);
        }
    }
    for uri in targets {
        let mut target = req.clone();
        target.method = Method::GET;
        target.uri = uri;
        let Some(key) = shared.hooks.cache_key_callback(&target) else {
            continue;
        };
        let mut cache = HttpCache::new();
        enable(shared, &mut cache, false);
        cache.set_cache_key(key);
        match cache.purge().await {
            Ok(true) => shared.metrics.invalidations.inc(),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "invalidation failed"),
        }
    }
}

/// The request target a `Location` / `Content-Location` value names, if it is on the request's
/// host (RFC 9111 §4.4 forbids invalidating other hosts' responses).
fn same_host_target(req: &Parts, value: &str) -> Option<Uri> {
    let value = value.trim();
    let req_authority = req
        .uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            req.headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        })?;
    let path_and_query = if value.contains("://") {
        let uri: Uri = value.parse().ok()?;
        if !uri
            .authority()
            .is_some_and(|a| a.as_str().eq_ignore_ascii_case(&req_authority))
        {
            return None;
        }
        uri.path_and_query()?.as_str().to_owned()
    } else if value.starts_with("//") {
        // A network-path reference names a host; only the request's own counts.
        return None;
    } else if value.starts_with('/') {
        value.to_owned()
    } else {
        // A relative reference: resolve it against the request path's directory.
        let base = req.uri.path();
        let dir = &base[..=base.rfind('/').unwrap_or(0)];
        format!("{dir}{value}")
    };
    let mut builder = Uri::builder().path_and_query(path_and_query);
    if let (Some(scheme), Some(authority)) = (req.uri.scheme(), req.uri.authority()) {
        builder = builder.scheme(scheme.clone()).authority(authority.clone());
    }
    builder.build().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;

    fn parts(uri: &str, host: &str) -> Parts {
        Request::builder()
            .uri(uri)
            .header("host", host)
            .body(())
            .unwrap()
            .into_parts()
            .0
    }

    #[test]
    fn same_host_targets() {
        let req = parts("/a/b?x", "example.com");
        let check = |v: &str| same_host_target(&req, v).map(|u| u.to_string());
        assert_eq!(check("/c").as_deref(), Some("/c"));
        assert_eq!(check("http://EXAMPLE.com/d?e").as_deref(), Some("/d?e"));
        assert_eq!(check("http://other.com/d"), None);
        assert_eq!(check("c").as_deref(), Some("/a/c"));
        assert_eq!(check("bad uri with spaces"), None);
    }

    #[test]
    fn unsafe_methods() {
        for m in ["POST", "PUT", "DELETE", "PATCH", "FOO"] {
            assert!(is_unsafe(&Method::from_bytes(m.as_bytes()).unwrap()), "{m}");
        }
        for m in [Method::GET, Method::HEAD, Method::OPTIONS, Method::TRACE] {
            assert!(!is_unsafe(&m), "{m}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Any Location value: no panic, and a target is only ever on the request's host.
        #[test]
        fn location_targets_never_leave_the_host(v in "[ -~]{0,40}") {
            let req = parts("/dir/page", "example.com");
            if let Some(uri) = same_host_target(&req, &v) {
                proptest::prop_assert!(uri.authority().is_none(), "{uri}");
                proptest::prop_assert!(uri.path().starts_with('/'), "{uri}");
            }
        }
    }
}
