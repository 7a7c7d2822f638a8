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
use crate::hooks::CacheHooks;
use crate::pump::serve_upstream;
use crate::shared::{Answer, Shared, enable};

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
    let Ok(RespCacheable::Cacheable(meta)) =
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
    let body = serve_upstream(
        Some(cache),
        body,
        false,
        None,
        &shared.metrics,
        &shared.tasks,
    );
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
/// host (RFC 9111 §4.4 forbids invalidating other hosts' responses). Relative references are
/// resolved against the request's target (RFC 3986 §5.2, fragments dropped, dot segments
/// removed), so every value, however odd, either names a path on the request's host or nothing.
fn same_host_target(req: &Parts, value: &str) -> Option<Uri> {
    let value = value.trim();
    // The fragment never reaches a server or a cache key (RFC 9110 §4.2.5).
    let value = value.split_once('#').map_or(value, |(v, _)| v);
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
    let same_host = |authority: &str| authority.eq_ignore_ascii_case(req_authority.trim());
    let path_and_query = if has_scheme(value) {
        let uri: Uri = value.parse().ok()?;
        let http = matches!(uri.scheme_str(), Some("http" | "https"));
        if !http || !uri.authority().is_some_and(|a| same_host(a.as_str())) {
            return None;
        }
        let path = remove_dot_segments(uri.path());
        match uri.query() {
            Some(q) => format!("{path}?{q}"),
            None => path,
        }
    } else if let Some(rest) = value.strip_prefix("//") {
        // A network-path reference names a host; only the request's own counts.
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, rest) = rest.split_at(end);
        if !same_host(authority) {
            return None;
        }
        // With an authority the reference's path stands alone (RFC 3986 §5.2.2).
        let (path, query) = rest
            .split_once('?')
            .map_or((rest, None), |(p, q)| (p, Some(q)));
        let path = remove_dot_segments(path);
        match query {
            Some(q) => format!("{path}?{q}"),
            None => path,
        }
    } else {
        resolve(req, value)
    };
    let mut builder = Uri::builder().path_and_query(path_and_query);
    if let (Some(scheme), Some(authority)) = (req.uri.scheme(), req.uri.authority()) {
        builder = builder.scheme(scheme.clone()).authority(authority.clone());
    }
    builder.build().ok()
}

/// Whether a URI reference starts with a scheme (RFC 3986 §3.1: a letter, then letters,
/// digits, `+`, `-` or `.`, then `:`, all before any `/`, `?` or `#`).
fn has_scheme(value: &str) -> bool {
    let Some(colon) = value.find(':') else {
        return false;
    };
    let scheme = value.get(..colon).unwrap_or_default();
    scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// A path-absolute, path-relative or empty reference with an optional query, resolved against
/// the request's target (RFC 3986 §5.2.2); the result starts with `/`.
fn resolve(req: &Parts, reference: &str) -> String {
    let (path, query) = match reference.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (reference, None),
    };
    let base = req.uri.path();
    let path = if path.is_empty() {
        // Same document: the request's path, and its query unless the reference has one.
        let base = if base.starts_with('/') { base } else { "/" };
        let query = query.or_else(|| req.uri.query());
        return match query {
            Some(q) => format!("{base}?{q}"),
            None => base.to_owned(),
        };
    } else if path.starts_with('/') {
        remove_dot_segments(path)
    } else {
        // Merge with the base path's directory (RFC 3986 §5.2.3); a base without a `/` (not
        // origin-form) counts as the root.
        let dir = base.rfind('/').map_or("/", |i| &base[..=i]);
        remove_dot_segments(&format!("{dir}{path}"))
    };
    match query {
        Some(q) => format!("{path}?{q}"),
        None => path,
    }
}

/// `path` without `.` and `..` segments (RFC 3986 §5.2.4), in one pass; the result starts with
/// `/`.
fn remove_dot_segments(path: &str) -> String {
    let path = path.strip_prefix('/').unwrap_or(path);
    let mut out: Vec<&str> = Vec::new();
    let mut segments = path.split('/').peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        match segment {
            "." => {}
            ".." => {
                out.pop();
            }
            s => {
                out.push(s);
                continue;
            }
        }
        if last {
            // `/a/.` and `/a/b/..` name the directory: keep the trailing slash.
            out.push("");
        }
    }
    let mut resolved = String::with_capacity(path.len() + 1);
    for segment in out {
        resolved.push('/');
        resolved.push_str(segment);
    }
    if resolved.is_empty() {
        resolved.push('/');
    }
    resolved
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

    /// `POST host:port` (authority-form, no path) answered with a relative `Location` sliced
    /// an empty path and panicked.
    #[test]
    fn relative_location_on_an_authority_form_request_does_not_panic() {
        let req = parts("a.test:80", "a.test");
        let check = |v: &str| same_host_target(&req, v).map(|u| u.to_string());
        assert_eq!(check("c").as_deref(), Some("/c"));
        assert_eq!(check("").as_deref(), Some("/"));
        assert_eq!(check("?q").as_deref(), Some("/?q"));
        let asterisk = parts("*", "a.test");
        assert_eq!(
            same_host_target(&asterisk, "c").map(|u| u.to_string()),
            Some("/c".to_owned())
        );
    }

    /// Every shape of reference resolves as RFC 3986 §5.2 says, or names nothing.
    #[test]
    fn references_resolve_against_the_request() {
        let req = parts("/a/b?x", "example.com");
        let check = |v: &str| same_host_target(&req, v).map(|u| u.to_string());
        let cases: &[(&str, Option<&str>)] = &[
            ("", Some("/a/b?x")),
            ("?q", Some("/a/b?q")),
            ("#frag", Some("/a/b?x")),
            ("c#frag", Some("/a/c")),
            ("./c", Some("/a/c")),
            ("../c", Some("/c")),
            ("../../../c", Some("/c")),
            ("c/..", Some("/a/")),
            (".", Some("/a/")),
            ("/c/./d/../e?f", Some("/c/e?f")),
            ("//example.com/d?e", Some("/d?e")),
            ("//EXAMPLE.COM", Some("/")),
            ("//other.com/d", None),
            ("//", None),
            ("http://example.com", Some("/")),
            ("http://example.com?q", Some("/?q")),
            ("http://example.com/a/../d#f", Some("/d")),
            ("ftp://example.com/d", None),
            ("http://user@example.com/d", None),
            (
                "/p?next=http://other.com/x",
                Some("/p?next=http://other.com/x"),
            ),
            ("c:d", None),
            ("   /c   ", Some("/c")),
        ];
        for &(value, expect) in cases {
            assert_eq!(check(value).as_deref(), expect, "{value:?}");
        }
        // Huge values resolve in linear time.
        let huge = "../".repeat(100_000) + "c";
        assert_eq!(check(&huge).as_deref(), Some("/c"));
        let long = "a/".repeat(10_000);
        assert_eq!(check(&long).map(|u| u.len()), Some(20_003));
        // Past the longest URI the http crate holds: nothing, not a panic.
        assert_eq!(check(&"a/".repeat(100_000)), None);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Any Location value: no panic, and a target is only ever on the request's host.
        #[test]
        fn location_targets_never_leave_the_host(
            target in proptest::sample::select(&["/dir/page", "/", "*", "a.test:80", "http://example.com/d/p", "http://example.com"][..]),
            v in "(//|/|\\.\\./|\\./|\\?|#|http://|example.com|other.com|[ -~]){0,12}",
        ) {
            let req = parts(target, "example.com");
            if let Some(uri) = same_host_target(&req, &v) {
                proptest::prop_assert!(uri.authority().is_none() || uri.authority() == req.uri.authority(), "{uri}");
                proptest::prop_assert!(uri.path().starts_with('/'), "{uri}");
                proptest::prop_assert!(!uri.path().split('/').any(|s| s == ".." || s == "."), "{uri}");
            }
        }
    }
}
