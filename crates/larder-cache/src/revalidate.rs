//! Revalidation: the upstream request a cache sends (RFC 9111 §4.3.1) and the header update a
//! 304 brings (§3.2, §4.3.4).

use http::header::{
    self, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE, ETAG, IF_MATCH, IF_MODIFIED_SINCE,
    IF_NONE_MATCH, IF_RANGE, IF_UNMODIFIED_SINCE, LAST_MODIFIED, RANGE, TRANSFER_ENCODING, VARY,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method};

/// Prepares a request that will go upstream on behalf of the cache.
///
/// - `HEAD` becomes `GET`, so the full response can be stored (RFC 9111 §4.3.5 leaves HEAD for
///   metadata updates; a cache fill needs the body).
/// - The client's preconditions and ranges (`If-Match`, `If-None-Match`, `If-Modified-Since`,
///   `If-Unmodified-Since`, `If-Range`, `Range`) are removed: the cache asks for the whole
///   representation and answers the client's conditions itself (RFC 9111 §4.3.2).
/// - When a stored response is being revalidated (`stored` is its header map), its validators are
///   sent: `If-None-Match` with every `ETag` (a MUST in §4.3.1) and `If-Modified-Since` with its
///   `Last-Modified` (a SHOULD).
///
/// ```
/// use http::{HeaderMap, HeaderValue, Method, header};
/// use larder_cache::revalidate::request_filter;
///
/// let mut method = Method::HEAD;
/// let mut req = HeaderMap::new();
/// req.insert(header::RANGE, HeaderValue::from_static("bytes=0-1"));
/// let mut stored = HeaderMap::new();
/// stored.insert(header::ETAG, HeaderValue::from_static("\"v1\""));
/// request_filter(&mut method, &mut req, Some(&stored));
/// assert_eq!(method, Method::GET);
/// assert!(req.get(header::RANGE).is_none());
/// assert_eq!(req[header::IF_NONE_MATCH], "\"v1\"");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn request_filter(method: &mut Method, headers: &mut HeaderMap, stored: Option<&HeaderMap>) {
    if *method == Method::HEAD {
        *method = Method::GET;
    }
    for name in [
        IF_MATCH,
        IF_NONE_MATCH,
        IF_MODIFIED_SINCE,
        IF_UNMODIFIED_SINCE,
        IF_RANGE,
        RANGE,
    ] {
        headers.remove(name);
    }
    let Some(stored) = stored else {
        return;
    };
    for etag in stored.get_all(ETAG) {
        headers.append(IF_NONE_MATCH, quote_entity_tag(etag));
    }
    if let Some(last_modified) = stored.get(LAST_MODIFIED) {
        headers.insert(IF_MODIFIED_SINCE, last_modified.clone());
    }
}

/// An `ETag` value as a valid entity-tag (RFC 9110 §8.8.3): a value sent without the required
/// quotes (`abc`) is quoted (`"abc"`) so the origin can compare it; anything else is kept.
fn quote_entity_tag(etag: &HeaderValue) -> HeaderValue {
    let bytes = etag.as_bytes();
    if bytes.starts_with(b"\"") || bytes.starts_with(b"W/\"") || bytes.contains(&b'"') {
        return etag.clone();
    }
    let mut quoted = Vec::with_capacity(bytes.len() + 2);
    quoted.push(b'"');
    quoted.extend_from_slice(bytes);
    quoted.push(b'"');
    HeaderValue::from_bytes(&quoted).unwrap_or_else(|_| etag.clone())
}

/// Header fields a 304 never changes in the stored response (RFC 9111 §3.2):
/// `Content-Length`; fields the stored body depends on (`Content-Encoding`, `Transfer-Encoding`,
/// and `Vary`, which the stored variance was computed from); fields processed and removed on
/// receipt (`Content-Range`); and the fields §3.1 excludes from storage.
pub fn is_excluded_from_update(name: &HeaderName) -> bool {
    name == CONTENT_LENGTH
        || name == CONTENT_ENCODING
        || name == TRANSFER_ENCODING
        || name == CONTENT_RANGE
        || name == VARY
        || is_excluded_from_storage(name)
}

/// Header fields never stored (RFC 9111 §3.1, RFC 9110 §7.6.1): hop-by-hop fields and the
/// proxy-specific authentication fields.
pub fn is_excluded_from_storage(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "upgrade"
            | "proxy-authenticate"
            | "proxy-authentication-info"
            | "proxy-authorization"
    )
}

/// Removes the fields [`is_excluded_from_storage`] names, plus every field the `Connection`
/// header lists (RFC 9110 §7.6.1).
pub fn strip_unstorable(headers: &mut HeaderMap) {
    // The common case has nothing to strip: check before allocating.
    if !headers.keys().any(is_excluded_from_storage) {
        return;
    }
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .filter_map(|n| HeaderName::from_bytes(crate::age::trim_ows(n)).ok())
        .collect();
    for name in listed {
        headers.remove(name);
    }
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|n| is_excluded_from_storage(n))
        .cloned()
        .collect();
    for name in names {
        headers.remove(name);
    }
}

/// Updates stored header fields from a 304 (RFC 9111 §3.2, §4.3.4): every field of the 304
/// replaces all lines of the same field in the stored response, except the fields
/// [`is_excluded_from_update`] names and those the 304's `Connection` lists. Fields the 304
/// does not carry are kept.
///
/// ```
/// use http::{HeaderMap, HeaderValue, header};
/// use larder_cache::revalidate::merge_not_modified;
///
/// let mut stored = HeaderMap::new();
/// stored.insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=1"));
/// stored.insert(header::CONTENT_LENGTH, HeaderValue::from_static("5"));
/// stored.insert("x-kept", HeaderValue::from_static("yes"));
/// let mut not_modified = HeaderMap::new();
/// not_modified.insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=60"));
/// not_modified.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
/// not_modified.insert("x-new", HeaderValue::from_static("1"));
/// let merged = merge_not_modified(&stored, &not_modified);
/// assert_eq!(merged[header::CACHE_CONTROL], "max-age=60");
/// assert_eq!(merged[header::CONTENT_LENGTH], "5");
/// assert_eq!(merged["x-kept"], "yes");
/// assert_eq!(merged["x-new"], "1");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn merge_not_modified(stored: &HeaderMap, not_modified: &HeaderMap) -> HeaderMap {
    let mut update = not_modified.clone();
    strip_unstorable(&mut update);
    let mut merged = stored.clone();
    for name in update.keys() {
        if is_excluded_from_update(name) {
            continue;
        }
        merged.remove(name);
        for value in update.get_all(name) {
            merged.append(name.clone(), value.clone());
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn client_conditionals_are_replaced_by_stored_validators() {
        let mut method = Method::GET;
        let mut req = headers(&[
            ("if-none-match", "\"client\""),
            ("if-modified-since", "Mon, 01 Jan 2001 00:00:00 GMT"),
            ("if-match", "*"),
            ("if-unmodified-since", "Mon, 01 Jan 2001 00:00:00 GMT"),
            ("if-range", "\"x\""),
            ("accept", "*/*"),
        ]);
        let stored = headers(&[
            ("etag", "\"a\""),
            ("last-modified", "Tue, 02 Jan 2001 00:00:00 GMT"),
        ]);
        request_filter(&mut method, &mut req, Some(&stored));
        assert_eq!(req[IF_NONE_MATCH], "\"a\"");
        assert_eq!(req[IF_MODIFIED_SINCE], "Tue, 02 Jan 2001 00:00:00 GMT");
        assert!(req.get(IF_MATCH).is_none());
        assert!(req.get(IF_UNMODIFIED_SINCE).is_none());
        assert!(req.get(IF_RANGE).is_none());
        assert_eq!(req["accept"], "*/*");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// The merge keeps the stored body's framing and takes every other field of the 304.
        #[test]
        fn merge_keeps_framing(
            fields in proptest::collection::vec(("[a-z-]{1,12}", "[ -~]{0,12}"), 0..8),
        ) {
            let stored = headers(&[("content-length", "5"), ("etag", "\"a\"")]);
            let mut update = HeaderMap::new();
            for (n, v) in &fields {
                let name = HeaderName::from_bytes(n.as_bytes());
                if let (Ok(n), Ok(v)) = (name, HeaderValue::from_str(v)) {
                    update.append(n, v);
                }
            }
            let merged = merge_not_modified(&stored, &update);
            proptest::prop_assert_eq!(&merged["content-length"], "5");
            for name in update.keys() {
                if !is_excluded_from_update(name) && !update.contains_key(header::CONNECTION) {
                    let got: Vec<_> = merged.get_all(name).iter().collect();
                    let want: Vec<_> = update.get_all(name).iter().collect();
                    proptest::prop_assert_eq!(got, want);
                }
            }
        }
    }

    #[test]
    fn unquoted_etags_are_quoted_when_revalidating() {
        let check = |etag: &str, expect: &str| {
            let mut method = Method::GET;
            let mut req = HeaderMap::new();
            request_filter(&mut method, &mut req, Some(&headers(&[("etag", etag)])));
            assert_eq!(req[IF_NONE_MATCH], expect, "{etag}");
        };
        check("abcdef", "\"abcdef\"");
        check("\"abcdef\"", "\"abcdef\"");
        check("W/\"abcdef\"", "W/\"abcdef\"");
        check("ab\"cd", "ab\"cd");
    }

    #[test]
    fn miss_request_has_no_validators() {
        let mut method = Method::GET;
        let mut req = headers(&[("if-none-match", "\"client\"")]);
        request_filter(&mut method, &mut req, None);
        assert!(req.is_empty());
    }

    #[test]
    fn merge_replaces_every_line_and_keeps_body_fields() {
        let stored = headers(&[
            ("cache-control", "max-age=1"),
            ("cache-control", "public"),
            ("date", "Mon, 01 Jan 2001 00:00:00 GMT"),
            ("content-encoding", "gzip"),
            ("vary", "accept-encoding"),
            ("etag", "\"a\""),
        ]);
        let not_modified = headers(&[
            ("cache-control", "max-age=100"),
            ("date", "Mon, 01 Jan 2001 00:10:00 GMT"),
            ("content-encoding", "br"),
            ("vary", "*"),
            ("connection", "x-hop"),
            ("x-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("age", "3"),
            ("x-extra", "a"),
            ("x-extra", "b"),
        ]);
        let merged = merge_not_modified(&stored, &not_modified);
        let cc: Vec<_> = merged.get_all("cache-control").iter().collect();
        assert_eq!(cc, ["max-age=100"]);
        assert_eq!(merged["date"], "Mon, 01 Jan 2001 00:10:00 GMT");
        assert_eq!(merged["content-encoding"], "gzip");
        assert_eq!(merged["vary"], "accept-encoding");
        assert_eq!(merged["etag"], "\"a\"");
        assert!(merged.get("x-hop").is_none());
        assert!(merged.get("keep-alive").is_none());
        assert!(merged.get("connection").is_none());
        // Age is kept so the freshness filters see the 304's age (RFC 9111 §4.2.3); they strip
        // it from what is stored.
        assert_eq!(merged["age"], "3");
        assert_eq!(merged.get_all("x-extra").iter().count(), 2);
    }
}
