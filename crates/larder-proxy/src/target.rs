//! Which request-target forms (RFC 9112 §3.2) the proxy serves, decided before anything else
//! looks at the request.
//!
//! A caching reverse proxy serves origin-form (`/p?q`) and absolute-form (`http://h/p`)
//! targets, and asterisk-form (`*`) for `OPTIONS` only. It does not tunnel arbitrary
//! connections: `CONNECT` is answered `405` (save HTTP/2 extended CONNECT for an upgrade, see
//! [`reject`]), and authority-form (`host:port`), which only `CONNECT` may use, is a `400` on
//! any other method. So nothing past [`check`] ever meets a target without a path or a key.

use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;
use http::{Method, Response, StatusCode, Uri, Version};
use larder_cache::cache_status::CacheStatus;

use crate::body::{self, ProxyBody};
use crate::shared::Shared;
use crate::upgrade::Requested;

/// The methods a `405` names in `Allow` (RFC 9110 §10.2.1): what the proxy forwards or serves.
/// `CONNECT` is not among them.
const ALLOW: &str = "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS, TRACE";

/// Why a request was refused before it reached the cache or the origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rejection {
    /// The status the client gets.
    pub(crate) status: StatusCode,
    /// The `Cache-Status` detail (RFC 9211 §2.8) naming the reason.
    pub(crate) detail: &'static str,
}

impl Rejection {
    const fn new(status: StatusCode, detail: &'static str) -> Self {
        Self { status, detail }
    }
}

/// Whether a request with `method` and target `uri` may proceed, or the status it is refused
/// with:
///
/// - `CONNECT` → `405`: the proxy does not tunnel (RFC 9110 §9.3.6 lets a server refuse it).
///   HTTP/2 extended CONNECT (RFC 8441, `:protocol`) is let through by [`reject`] when it is
///   forwarded as an upgrade.
/// - authority-form (`host:port`) with any other method → `400` (RFC 9112 §3.2.3: only for
///   `CONNECT`).
/// - asterisk-form (`*`) → proceeds for `OPTIONS`, `400` otherwise (RFC 9112 §3.2.4).
/// - absolute-form → proceeds when the scheme is `http` or `https`, the host is not empty
///   (RFC 9110 §4.2.1) and there is no userinfo (RFC 9110 §4.2.4); `400` otherwise.
/// - origin-form (a path starting with `/`) → proceeds; any other target → `400`.
pub(crate) fn check(method: &Method, uri: &Uri) -> Result<(), Rejection> {
    if method == Method::CONNECT {
        return Err(Rejection::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "connect-not-supported",
        ));
    }
    let bad = |detail| Err(Rejection::new(StatusCode::BAD_REQUEST, detail));
    match (uri.scheme_str(), uri.authority()) {
        (Some(scheme), Some(authority)) => {
            let host_empty = authority.host().is_empty();
            let userinfo = authority.as_str().contains('@');
            if !(scheme == "http" || scheme == "https") || host_empty || userinfo {
                return bad("bad-absolute-form");
            }
            Ok(())
        }
        (None, Some(_)) => bad("authority-form"),
        (Some(_), None) => bad("bad-request-target"),
        (None, None) => {
            let path = uri.path();
            if path == "*" {
                if method == Method::OPTIONS {
                    Ok(())
                } else {
                    bad("asterisk-form")
                }
            } else if path.starts_with('/') {
                Ok(())
            } else {
                bad("bad-request-target")
            }
        }
    }
}

/// Whether the request's `Host` fields fit its target (RFC 9112 §3.2): more than one `Host`
/// field (or one holding a list) is a `400` whatever the target, since the key and the origin
/// could each take another; an HTTP/1.1 request whose target carries no authority (origin-form,
/// `*`) needs exactly one `Host` that is a valid authority with a host, else `400`. An HTTP/1.0
/// request may omit it (it is then passed through uncached, having no key), and an
/// absolute-form target's authority replaces whatever `Host` says.
pub(crate) fn check_host(
    version: Version,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<(), Rejection> {
    let bad = |detail| Err(Rejection::new(StatusCode::BAD_REQUEST, detail));
    let mut hosts = headers.get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() || host.is_some_and(|h| h.as_bytes().contains(&b',')) {
        return bad("duplicate-host");
    }
    if uri.authority().is_some() || version < Version::HTTP_11 {
        return Ok(());
    }
    match host {
        None => bad("missing-host"),
        Some(h) if is_host_and_port(h.as_bytes()) => Ok(()),
        Some(_) => bad("bad-host"),
    }
}

/// Whether `value` is `host [ ":" port ]` (RFC 9110 §7.2, RFC 3986 §3.2.2) with a host that is
/// not empty: the bytes of a reg-name or an IP literal, no userinfo. Checked byte by byte on
/// every request, without parsing into an owned `Authority` (an allocation per hit).
fn is_host_and_port(value: &[u8]) -> bool {
    let allowed = |b: u8| {
        b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b';'
                    | b'='
                    | b':'
                    | b'%'
                    | b'['
                    | b']'
            )
    };
    !value.is_empty() && value[0] != b':' && value.iter().all(|&b| allowed(b))
}

/// The finished answer to a request [`check`] or [`check_host`] refuses, like the proxy's other canned answers:
/// bodiless, `Cache-Control: private, no-store`, `Cache-Status` with the reason, `Via`, in the
/// client's HTTP version. `None` when the request may proceed.
///
/// An HTTP/2 extended CONNECT (RFC 8441) the proxy forwards as an upgrade (`upgrade.rs`) is
/// checked as the `GET` it becomes: its target has a scheme, an authority and a path.
pub(crate) fn reject<H>(shared: &Shared<H>, req: &Parts) -> Option<Response<ProxyBody>> {
    let method = if Requested::is_extended_connect(req) {
        &Method::GET
    } else {
        &req.method
    };
    let rejection = check(method, &req.uri)
        .and_then(|()| check_host(req.version, &req.uri, &req.headers))
        .err()?;
    tracing::debug!(method = %req.method, uri = %req.uri, status = rejection.status.as_u16(), reason = rejection.detail, "request target refused");
    let mut resp = body::canned(rejection.status);
    let h = resp.headers_mut();
    if rejection.status == StatusCode::METHOD_NOT_ALLOWED {
        h.insert(header::ALLOW, HeaderValue::from_static(ALLOW));
    }
    CacheStatus::with_shared_name(std::sync::Arc::clone(&shared.status_name))
        .detail(rejection.detail)
        .append_to(h);
    let version = resp.version();
    shared.via.append(resp.headers_mut(), version);
    *resp.version_mut() = req.version;
    Some(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_str(method: &str, target: &str) -> Option<u16> {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let uri: Uri = target.parse().unwrap();
        check(&method, &uri).err().map(|r| r.status.as_u16())
    }

    #[test]
    fn request_target_forms() {
        let cases: &[(&str, &str, Option<u16>)] = &[
            // origin-form
            ("GET", "/", None),
            ("GET", "/a?b=1", None),
            ("POST", "/a", None),
            ("GET", "//a/b", None),
            ("PURGE", "/a", None),
            // absolute-form
            ("GET", "http://a.test/a", None),
            ("GET", "https://a.test", None),
            ("DELETE", "http://a.test:8080/a?x", None),
            ("GET", "ftp://a.test/a", Some(400)),
            ("GET", "http://user@a.test/a", Some(400)),
            ("GET", "http://:80/a", Some(400)),
            // authority-form
            ("CONNECT", "a.test:443", Some(405)),
            ("CONNECT", "/a", Some(405)),
            ("CONNECT", "http://a.test/a", Some(405)),
            ("POST", "a.test:80", Some(400)),
            ("GET", "a.test", Some(400)),
            ("GET", "[::1]:80", Some(400)),
            ("FOO", "a.test:1", Some(400)),
            // asterisk-form
            ("OPTIONS", "*", None),
            ("GET", "*", Some(400)),
            ("POST", "*", Some(400)),
            ("CONNECT", "*", Some(405)),
        ];
        for &(method, target, expect) in cases {
            assert_eq!(check_str(method, target), expect, "{method} {target}");
        }
    }

    #[test]
    fn host_fields() {
        let check = |version, target: &str, hosts: &[&[u8]]| {
            let mut headers = HeaderMap::new();
            for h in hosts {
                headers.append(header::HOST, HeaderValue::from_bytes(h).unwrap());
            }
            check_host(version, &target.parse().unwrap(), &headers)
                .err()
                .map(|r| r.detail)
        };
        let v11 = Version::HTTP_11;
        assert_eq!(check(v11, "/a", &[b"a.test"]), None);
        assert_eq!(check(v11, "/a", &[b"a.test:8080"]), None);
        assert_eq!(check(v11, "/a", &[b"[::1]:80"]), None);
        assert_eq!(check(v11, "*", &[b"a.test"]), None);
        assert_eq!(check(v11, "/a", &[]), Some("missing-host"));
        assert_eq!(check(v11, "*", &[]), Some("missing-host"));
        assert_eq!(check(v11, "/a", &[b""]), Some("bad-host"));
        assert_eq!(check(v11, "/a", &[b"u@a.test"]), Some("bad-host"));
        assert_eq!(check(v11, "/a", &[b"b\xc3\xbccher.test"]), Some("bad-host"));
        assert_eq!(
            check(v11, "/a", &[b"a.test", b"b.test"]),
            Some("duplicate-host")
        );
        assert_eq!(
            check(v11, "/a", &[b"a.test, b.test"]),
            Some("duplicate-host")
        );
        assert_eq!(
            check(v11, "http://a.test/a", &[b"a.test", b"b.test"]),
            Some("duplicate-host")
        );
        // The target's authority decides; HTTP/1.0 may omit Host.
        assert_eq!(check(v11, "http://a.test/a", &[]), None);
        assert_eq!(check(v11, "http://a.test/a", &[b""]), None);
        assert_eq!(check(Version::HTTP_10, "/a", &[]), None);
        assert_eq!(check(Version::HTTP_2, "https://a.test/a", &[]), None);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        /// Whatever the target: CONNECT is refused with 405, and anything that proceeds has a
        /// path starting with `/` (or is `OPTIONS *`), so later code can slice it.
        #[test]
        fn only_targets_with_a_path_proceed(
            method in "(GET|HEAD|POST|PUT|DELETE|OPTIONS|CONNECT|TRACE|PATCH|PURGE|[A-Z]{1,8})",
            target in "(\\*|/[ -~]{0,20}|[a-z]{1,5}(:[0-9]{1,5})?|(http|https|ftp)://[a-z@:]{0,8}(/[ -~]{0,10})?|[ -~]{0,20})",
        ) {
            let Ok(uri) = target.parse::<Uri>() else { return Ok(()) };
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            match check(&method, &uri) {
                Ok(()) => {
                    proptest::prop_assert!(method != Method::CONNECT);
                    let asterisk = uri.path() == "*";
                    proptest::prop_assert!(uri.path().starts_with('/') || (asterisk && method == Method::OPTIONS), "{method} {uri}");
                    proptest::prop_assert!(uri.authority().is_none() || uri.scheme().is_some());
                }
                Err(r) => {
                    let expect = if method == Method::CONNECT { 405 } else { 400 };
                    proptest::prop_assert_eq!(r.status.as_u16(), expect);
                }
            }
        }
    }
}
