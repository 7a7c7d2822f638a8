//! Conditional requests against a stored response (RFC 9110 §13, RFC 9111 §4.3.2).
//!
//! [`evaluate`] answers a downstream request's preconditions from the stored response's
//! validators, in the order of RFC 9110 §13.2.2: `If-Match`, `If-Unmodified-Since`,
//! `If-None-Match`, `If-Modified-Since`. (`If-Range` is step 5, see
//! [`crate::range::if_range_matches`].) [`to_304`] turns the stored response's headers into those
//! of a `304 Not Modified`.
//!
//! RFC 9111 §4.3.2 says `If-Match` and `If-Unmodified-Since` are meant for the origin server and
//! a cache may forward them instead. [`evaluate`] answers them from the stored response, which is
//! right when that response is the current representation (a fresh hit); a proxy that prefers to
//! let the origin decide can check [`has_origin_preconditions`] and forward such requests.
//!
//! Entity tags are parsed leniently: lists may span several field lines, and unquoted tags (which
//! some clients and servers send) compare by their text.
//!
//! ```
//! use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
//! use larder_cache::conditional::{Precondition, evaluate, to_304};
//!
//! let mut stored = HeaderMap::new();
//! stored.insert(header::ETAG, HeaderValue::from_static("W/\"v1\""));
//! stored.insert(header::CONTENT_LENGTH, HeaderValue::from_static("1234"));
//!
//! let mut req = HeaderMap::new();
//! req.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"v0\", \"v1\""));
//! assert_eq!(evaluate(&Method::GET, &req, StatusCode::OK, &stored), Precondition::NotModified);
//!
//! to_304(&mut stored);
//! assert!(stored.contains_key(header::ETAG));
//! assert!(!stored.contains_key(header::CONTENT_LENGTH));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::time::SystemTime;

use http::header::{
    ACCEPT_RANGES, CONTENT_ENCODING, CONTENT_LANGUAGE, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE,
    DATE, ETAG, IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_UNMODIFIED_SINCE, LAST_MODIFIED,
    TRANSFER_ENCODING,
};
use http::{HeaderMap, HeaderName, Method, StatusCode};

/// The outcome of evaluating a request's preconditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Precondition {
    /// No precondition stops the request: send the response as usual (ranges may still apply).
    Proceed,
    /// Answer `304 Not Modified` (see [`to_304`]).
    NotModified,
    /// Answer `412 Precondition Failed`.
    PreconditionFailed,
}

impl Precondition {
    /// The status code this outcome answers with, if it replaces the response.
    pub fn status(self) -> Option<StatusCode> {
        match self {
            Self::Proceed => None,
            Self::NotModified => Some(StatusCode::NOT_MODIFIED),
            Self::PreconditionFailed => Some(StatusCode::PRECONDITION_FAILED),
        }
    }
}

/// Evaluate the preconditions of a request with `method` and `req_headers` against a stored
/// response with `stored_status` and `stored_headers` (RFC 9110 §13.2.2).
///
/// - Preconditions are ignored (`Proceed`) for CONNECT, OPTIONS and TRACE and when the stored
///   status is not 2xx (RFC 9110 §13.2.1).
/// - `If-Match` (strong comparison; `*` matches): false → `PreconditionFailed`.
/// - Else `If-Unmodified-Since` (ignored if not a single valid HTTP-date or if there is no
///   `Last-Modified`): modified after the date → `PreconditionFailed`.
/// - `If-None-Match` (weak comparison; `*` matches): a match → `NotModified` for GET and HEAD,
///   `PreconditionFailed` otherwise.
/// - Else, for GET and HEAD, `If-Modified-Since` (ignored if not a single valid HTTP-date): not
///   modified since the date → `NotModified`. The stored `Last-Modified` is used, or the stored
///   `Date` without it (RFC 9111 §4.3.2).
pub fn evaluate(
    method: &Method,
    req_headers: &HeaderMap,
    stored_status: StatusCode,
    stored_headers: &HeaderMap,
) -> Precondition {
    if !stored_status.is_success()
        || *method == Method::CONNECT
        || *method == Method::OPTIONS
        || *method == Method::TRACE
    {
        return Precondition::Proceed;
    }
    let get_or_head = *method == Method::GET || *method == Method::HEAD;
    let stored_etag = stored_headers
        .get(ETAG)
        .and_then(|v| EntityTag::parse(v.as_bytes()));
    let last_modified = single_date(stored_headers, &LAST_MODIFIED);

    // Step 1 and 2: If-Match, else If-Unmodified-Since.
    if req_headers.contains_key(IF_MATCH) {
        if !list_matches(req_headers, &IF_MATCH, stored_etag, Comparison::Strong) {
            return Precondition::PreconditionFailed;
        }
    } else if let (Some(date), Some(last_modified)) = (
        single_date(req_headers, &IF_UNMODIFIED_SINCE),
        last_modified,
    ) && last_modified > date
    {
        return Precondition::PreconditionFailed;
    }

    // Step 3 and 4: If-None-Match, else If-Modified-Since.
    if req_headers.contains_key(IF_NONE_MATCH) {
        if list_matches(req_headers, &IF_NONE_MATCH, stored_etag, Comparison::Weak) {
            return if get_or_head {
                Precondition::NotModified
            } else {
                Precondition::PreconditionFailed
            };
        }
    } else if get_or_head
        && let Some(date) = single_date(req_headers, &IF_MODIFIED_SINCE)
        && let Some(modified) = last_modified.or_else(|| single_date(stored_headers, &DATE))
        && modified <= date
    {
        return Precondition::NotModified;
    }
    Precondition::Proceed
}

/// Whether the request carries preconditions meant for the origin server (`If-Match`,
/// `If-Unmodified-Since`; RFC 9111 §4.3.2).
pub fn has_origin_preconditions(req_headers: &HeaderMap) -> bool {
    req_headers.contains_key(IF_MATCH) || req_headers.contains_key(IF_UNMODIFIED_SINCE)
}

/// The header fields a `304` must not carry: content-specific representation metadata and
/// framing (RFC 9110 §15.4.5).
const NOT_IN_304: [HeaderName; 7] = [
    CONTENT_LENGTH,
    CONTENT_TYPE,
    CONTENT_ENCODING,
    CONTENT_LANGUAGE,
    CONTENT_RANGE,
    TRANSFER_ENCODING,
    ACCEPT_RANGES,
];

/// Turn the headers of a stored `200` into those of a `304 Not Modified` (the caller sets the
/// status and sends no body).
///
/// Keeps what RFC 9110 §15.4.5 requires (`Cache-Control`, `Content-Location`, `Date`, `ETag`,
/// `Expires`, `Vary`) and everything else except content-specific metadata and framing:
/// `Content-Length`, `Content-Type`, `Content-Encoding`, `Content-Language`, `Content-Range`,
/// `Transfer-Encoding` and `Accept-Ranges` are removed. `Last-Modified` stays (useful to caches
/// when there is no `ETag`).
pub fn to_304(headers: &mut HeaderMap) {
    for name in NOT_IN_304 {
        headers.remove(name);
    }
}

/// Whether two entity tags match by the weak comparison (RFC 9110 §8.8.3.2): same opaque tag,
/// weakness ignored. Invalid values never match.
pub fn weak_etag_match(a: &[u8], b: &[u8]) -> bool {
    match (EntityTag::parse(a), EntityTag::parse(b)) {
        (Some(a), Some(b)) => a.weak_eq(b),
        _ => false,
    }
}

/// Whether two entity tags match by the strong comparison (RFC 9110 §8.8.3.2): both strong and
/// the same opaque tag. Invalid values never match.
pub fn strong_etag_match(a: &[u8], b: &[u8]) -> bool {
    match (EntityTag::parse(a), EntityTag::parse(b)) {
        (Some(a), Some(b)) => a.strong_eq(b),
        _ => false,
    }
}

/// One entity tag, borrowed from a field value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct EntityTag<'a> {
    weak: bool,
    /// The tag without `W/` and quotes.
    opaque: &'a [u8],
}

impl<'a> EntityTag<'a> {
    /// Parse one whole entity tag (surrounding whitespace allowed); `None` if empty or if more
    /// follows it.
    fn parse(v: &'a [u8]) -> Option<Self> {
        let v = v.trim_ascii();
        match next_member(v)? {
            (Member::Tag(tag), rest) if rest.trim_ascii().is_empty() => Some(tag),
            _ => None,
        }
    }

    fn weak_eq(self, other: Self) -> bool {
        self.opaque == other.opaque
    }

    fn strong_eq(self, other: Self) -> bool {
        !self.weak && !other.weak && self.opaque == other.opaque
    }
}

/// A member of an `If-Match` / `If-None-Match` list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Member<'a> {
    Any,
    Tag(EntityTag<'a>),
}

/// The next list member of `v` (which starts at a member, whitespace and commas skipped), and the
/// rest; `None` if `v` has no more members. A loop, not recursion: a list of 100k lone `W/`
/// members costs one pass and no stack.
fn next_member(mut v: &[u8]) -> Option<(Member<'_>, &[u8])> {
    loop {
        let start = v.iter().position(|&b| !matches!(b, b',' | b' ' | b'\t'))?;
        let member = &v[start..];
        if member.first() == Some(&b'*') {
            return Some((Member::Any, &member[1..]));
        }
        let (weak, member) = match strip_weak_prefix(member) {
            Some(rest) => (true, rest),
            None => (false, member),
        };
        if let Some(quoted) = member.strip_prefix(b"\"") {
            // RFC 9110 §8.8.3: etagc excludes DQUOTE, so the tag ends at the next one. An
            // unterminated tag runs to the end of its list member.
            if let Some(end) = quoted.iter().position(|&b| b == b'"') {
                let tag = EntityTag {
                    weak,
                    opaque: &quoted[..end],
                };
                return Some((Member::Tag(tag), &quoted[end + 1..]));
            }
            let end = quoted
                .iter()
                .position(|&b| b == b',')
                .unwrap_or(quoted.len());
            let tag = EntityTag {
                weak,
                opaque: quoted[..end].trim_ascii_end(),
            };
            return Some((Member::Tag(tag), &quoted[end..]));
        }
        // An unquoted tag (not valid syntax, but sent in the wild): up to a comma or whitespace.
        let end = member
            .iter()
            .position(|&b| matches!(b, b',' | b' ' | b'\t'))
            .unwrap_or(member.len());
        if end == 0 {
            // A lone `W/` (only then can the member be empty here): skip it.
            v = member;
            continue;
        }
        return Some((
            Member::Tag(EntityTag {
                weak,
                opaque: &member[..end],
            }),
            &member[end..],
        ));
    }
}

/// The entity-tag comparison function (RFC 9110 §8.8.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparison {
    Strong,
    Weak,
}

/// `v` without its weakness indicator, if it has one: `W/` (RFC 9110 §8.8.3), or, before a quoted
/// tag only, the misspellings `w/`, `W\`, `w\`, `W` and `w` seen in the wild.
fn strip_weak_prefix(v: &[u8]) -> Option<&[u8]> {
    if let Some(rest) = v.strip_prefix(b"W/") {
        return Some(rest);
    }
    let rest = v.strip_prefix(b"W").or_else(|| v.strip_prefix(b"w"))?;
    let rest = rest
        .strip_prefix(b"/")
        .or_else(|| rest.strip_prefix(b"\\"))
        .unwrap_or(rest);
    rest.starts_with(b"\"").then_some(rest)
}

/// Whether any member of the list in every `name` field line matches `stored` (`*` matches any
/// stored response; a tag needs a stored entity tag that `eq` accepts).
fn list_matches(
    req_headers: &HeaderMap,
    name: &HeaderName,
    stored: Option<EntityTag<'_>>,
    comparison: Comparison,
) -> bool {
    for value in req_headers.get_all(name) {
        let mut rest = value.as_bytes();
        while let Some((member, next)) = next_member(rest) {
            match member {
                Member::Any => return true,
                Member::Tag(tag) => {
                    if stored.is_some_and(|stored| match comparison {
                        Comparison::Strong => tag.strong_eq(stored),
                        Comparison::Weak => tag.weak_eq(stored),
                    }) {
                        return true;
                    }
                }
            }
            rest = next;
        }
    }
    false
}

/// The date in the only `name` field line, if it is a valid HTTP-date (RFC 9110 §5.6.7).
fn single_date(headers: &HeaderMap, name: &HeaderName) -> Option<SystemTime> {
    let mut values = headers.get_all(name).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return None;
    };
    httpdate::parse_http_date(value.to_str().ok()?.trim()).ok()
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;
    use http::header::{CACHE_CONTROL, CONTENT_LOCATION, EXPIRES, VARY};
    use proptest::prelude::*;

    use super::*;
    use Precondition::{NotModified, PreconditionFailed, Proceed};

    const LM: &str = "Sat, 29 Oct 1994 19:43:31 GMT";
    const BEFORE: &str = "Sat, 29 Oct 1994 19:43:30 GMT";
    const AFTER: &str = "Sat, 29 Oct 1994 19:43:32 GMT";

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn stored() -> HeaderMap {
        map(&[("etag", "\"xyzzy\""), ("last-modified", LM)])
    }

    fn check(method: &Method, req: &[(&str, &str)], stored: &HeaderMap, expect: Precondition) {
        assert_eq!(
            evaluate(method, &map(req), StatusCode::OK, stored),
            expect,
            "{method} {req:?} against {stored:?}"
        );
    }

    #[test]
    fn etag_comparison_table() {
        // RFC 9110 §8.8.3.2, Table 3.
        let cases: [(&str, &str, bool, bool); 4] = [
            ("W/\"1\"", "W/\"1\"", false, true),
            ("W/\"1\"", "W/\"2\"", false, false),
            ("W/\"1\"", "\"1\"", false, true),
            ("\"1\"", "\"1\"", true, true),
        ];
        for (a, b, strong, weak) in cases {
            assert_eq!(
                strong_etag_match(a.as_bytes(), b.as_bytes()),
                strong,
                "{a} {b}"
            );
            assert_eq!(
                strong_etag_match(b.as_bytes(), a.as_bytes()),
                strong,
                "{b} {a}"
            );
            assert_eq!(weak_etag_match(a.as_bytes(), b.as_bytes()), weak, "{a} {b}");
            assert_eq!(weak_etag_match(b.as_bytes(), a.as_bytes()), weak, "{b} {a}");
        }
        assert!(strong_etag_match(b"\"\"", b"\"\""));
        assert!(weak_etag_match(b"abc", b"\"abc\""));
        assert!(!weak_etag_match(b"", b""));
        assert!(!weak_etag_match(b"\"a\" \"b\"", b"\"a\""));
        assert!(!strong_etag_match(b"*", b"*"));
    }

    #[test]
    fn if_none_match_rfc_examples() {
        let s = stored();
        let get = &Method::GET;
        check(get, &[("if-none-match", "\"xyzzy\"")], &s, NotModified);
        check(get, &[("if-none-match", "W/\"xyzzy\"")], &s, NotModified);
        check(
            get,
            &[("if-none-match", "\"xyzzy\", \"r2d2xxxx\", \"c3piozzzz\"")],
            &s,
            NotModified,
        );
        check(
            get,
            &[("if-none-match", "W/\"r2d2xxxx\", W/\"xyzzy\"")],
            &s,
            NotModified,
        );
        check(get, &[("if-none-match", "*")], &s, NotModified);
        check(
            get,
            &[("if-none-match", "\"r2d2xxxx\", \"c3piozzzz\"")],
            &s,
            Proceed,
        );
        // Lists across field lines, and tags sent without quotes.
        check(
            get,
            &[("if-none-match", "\"a\""), ("if-none-match", "\"xyzzy\"")],
            &s,
            NotModified,
        );
        check(get, &[("if-none-match", "xyzzy")], &s, NotModified);
        check(get, &[("if-none-match", "a,,xyzzy")], &s, NotModified);
        check(get, &[("if-none-match", "\"xyzzy")], &s, NotModified);
        check(get, &[("if-none-match", "\"xyzz\"y\"")], &s, Proceed);
        // Misspelled weakness indicators are tolerated before a quoted tag.
        for misspelt in ["w/\"xyzzy\"", "W\\\"xyzzy\"", "W\"xyzzy\"", "w\"xyzzy\""] {
            check(get, &[("if-none-match", misspelt)], &s, NotModified);
            check(get, &[("if-match", misspelt)], &s, PreconditionFailed);
        }
        check(get, &[("if-none-match", "Wxyzzy")], &s, Proceed);
        // obs-text in an entity tag compares byte for byte.
        let obs = HeaderMap::from_iter([(ETAG, HeaderValue::from_bytes(b"\"abc\xfc\"").unwrap())]);
        let req = HeaderMap::from_iter([(
            IF_NONE_MATCH,
            HeaderValue::from_bytes(b"\"abc\xfc\"").unwrap(),
        )]);
        assert_eq!(evaluate(get, &req, StatusCode::OK, &obs), NotModified);
        check(
            &Method::HEAD,
            &[("if-none-match", "\"xyzzy\"")],
            &s,
            NotModified,
        );
        // Other methods get a 412.
        check(
            &Method::PUT,
            &[("if-none-match", "*")],
            &s,
            PreconditionFailed,
        );
        check(
            &Method::DELETE,
            &[("if-none-match", "\"xyzzy\"")],
            &s,
            PreconditionFailed,
        );
        // No stored ETag: only `*` matches.
        let no_etag = map(&[("last-modified", LM)]);
        check(get, &[("if-none-match", "\"xyzzy\"")], &no_etag, Proceed);
        check(get, &[("if-none-match", "*")], &no_etag, NotModified);
    }

    #[test]
    fn if_none_match_overrides_if_modified_since() {
        let s = stored();
        let get = &Method::GET;
        // RFC 9110 §13.1.3: If-Modified-Since is ignored when If-None-Match is present.
        check(
            get,
            &[("if-none-match", "\"other\""), ("if-modified-since", AFTER)],
            &s,
            Proceed,
        );
        check(
            get,
            &[
                ("if-none-match", "\"xyzzy\""),
                ("if-modified-since", BEFORE),
            ],
            &s,
            NotModified,
        );
    }

    /// `next_member` recursed once per lone `W/`, so a long enough list overflowed the stack.
    #[test]
    fn long_lists_of_lone_weak_prefixes_need_no_stack() {
        let s = stored();
        let many = "W/ ".repeat(100_000);
        check(&Method::GET, &[("if-none-match", &many)], &s, Proceed);
        check(&Method::GET, &[("if-match", &many)], &s, PreconditionFailed);
        let then_match = format!("{many}\"xyzzy\"");
        check(
            &Method::GET,
            &[("if-none-match", &then_match)],
            &s,
            NotModified,
        );
        // 100k members of every shape, one pass each.
        let mixed = "W/,\"a\", b, W/\"c, *x ,".repeat(20_000);
        check(&Method::GET, &[("if-none-match", &mixed)], &s, NotModified);
        check(&Method::GET, &[("if-match", &mixed)], &s, Proceed);
    }

    #[test]
    fn if_modified_since_cases() {
        let s = stored();
        let get = &Method::GET;
        check(get, &[("if-modified-since", LM)], &s, NotModified);
        check(get, &[("if-modified-since", AFTER)], &s, NotModified);
        check(get, &[("if-modified-since", BEFORE)], &s, Proceed);
        check(
            get,
            &[("if-modified-since", "Saturday, 29-Oct-94 19:43:31 GMT")],
            &s,
            NotModified,
        );
        check(
            get,
            &[("if-modified-since", "Sat Oct 29 19:43:31 1994")],
            &s,
            NotModified,
        );
        // Invalid, several lines, or a method other than GET/HEAD: ignored.
        check(get, &[("if-modified-since", "yesterday")], &s, Proceed);
        check(
            get,
            &[("if-modified-since", LM), ("if-modified-since", LM)],
            &s,
            Proceed,
        );
        check(&Method::POST, &[("if-modified-since", LM)], &s, Proceed);
        // No Last-Modified: the stored Date stands in (RFC 9111 §4.3.2); neither: ignored.
        let dated = map(&[("date", LM)]);
        check(get, &[("if-modified-since", LM)], &dated, NotModified);
        check(get, &[("if-modified-since", BEFORE)], &dated, Proceed);
        check(
            get,
            &[("if-modified-since", LM)],
            &HeaderMap::new(),
            Proceed,
        );
    }

    #[test]
    fn if_match_cases() {
        let s = stored();
        let get = &Method::GET;
        check(get, &[("if-match", "\"xyzzy\"")], &s, Proceed);
        check(get, &[("if-match", "\"a\", \"xyzzy\"")], &s, Proceed);
        check(get, &[("if-match", "*")], &s, Proceed);
        check(get, &[("if-match", "\"r2d2xxxx\"")], &s, PreconditionFailed);
        // Strong comparison: weak tags never match.
        check(get, &[("if-match", "W/\"xyzzy\"")], &s, PreconditionFailed);
        let weak = map(&[("etag", "W/\"xyzzy\"")]);
        check(get, &[("if-match", "\"xyzzy\"")], &weak, PreconditionFailed);
        check(
            get,
            &[("if-match", "\"xyzzy\"")],
            &HeaderMap::new(),
            PreconditionFailed,
        );
        check(&Method::PUT, &[("if-match", "\"xyzzy\"")], &s, Proceed);
        // If-Match passes, then If-None-Match decides.
        check(
            get,
            &[("if-match", "*"), ("if-none-match", "\"xyzzy\"")],
            &s,
            NotModified,
        );
        // If-Match failing wins over everything after it.
        check(
            get,
            &[("if-match", "\"no\""), ("if-none-match", "\"xyzzy\"")],
            &s,
            PreconditionFailed,
        );
    }

    #[test]
    fn if_unmodified_since_cases() {
        let s = stored();
        let put = &Method::PUT;
        check(put, &[("if-unmodified-since", LM)], &s, Proceed);
        check(put, &[("if-unmodified-since", AFTER)], &s, Proceed);
        check(
            put,
            &[("if-unmodified-since", BEFORE)],
            &s,
            PreconditionFailed,
        );
        check(
            &Method::GET,
            &[("if-unmodified-since", BEFORE)],
            &s,
            PreconditionFailed,
        );
        // Ignored: invalid date, with If-Match, or without Last-Modified.
        check(put, &[("if-unmodified-since", "soon")], &s, Proceed);
        check(
            put,
            &[("if-unmodified-since", BEFORE), ("if-match", "\"xyzzy\"")],
            &s,
            Proceed,
        );
        check(
            put,
            &[("if-unmodified-since", BEFORE)],
            &map(&[("date", LM)]),
            Proceed,
        );
    }

    #[test]
    fn preconditions_ignored_where_rfc_says() {
        let s = stored();
        let req = map(&[("if-none-match", "*"), ("if-match", "\"no\"")]);
        for method in [Method::OPTIONS, Method::TRACE, Method::CONNECT] {
            assert_eq!(evaluate(&method, &req, StatusCode::OK, &s), Proceed);
        }
        for status in [
            StatusCode::NOT_FOUND,
            StatusCode::MOVED_PERMANENTLY,
            StatusCode::INTERNAL_SERVER_ERROR,
        ] {
            assert_eq!(evaluate(&Method::GET, &req, status, &s), Proceed);
        }
        // No preconditions at all.
        assert_eq!(
            evaluate(&Method::GET, &HeaderMap::new(), StatusCode::OK, &s),
            Proceed
        );
        assert!(has_origin_preconditions(&req));
        assert!(!has_origin_preconditions(&map(&[("if-none-match", "*")])));
        assert_eq!(NotModified.status(), Some(StatusCode::NOT_MODIFIED));
        assert_eq!(
            PreconditionFailed.status(),
            Some(StatusCode::PRECONDITION_FAILED)
        );
        assert_eq!(Proceed.status(), None);
    }

    #[test]
    fn to_304_keeps_required_fields() {
        let mut h = map(&[
            ("cache-control", "max-age=60"),
            ("content-location", "/doc.en"),
            ("date", LM),
            ("etag", "\"xyzzy\""),
            ("expires", AFTER),
            ("vary", "accept-encoding"),
            ("last-modified", LM),
            ("content-length", "1234"),
            ("content-type", "text/html"),
            ("content-encoding", "gzip"),
            ("content-language", "en"),
            ("content-range", "bytes 0-1/1234"),
            ("transfer-encoding", "chunked"),
            ("accept-ranges", "bytes"),
            ("x-custom", "kept"),
        ]);
        to_304(&mut h);
        for kept in [
            CACHE_CONTROL,
            CONTENT_LOCATION,
            DATE,
            ETAG,
            EXPIRES,
            VARY,
            LAST_MODIFIED,
        ] {
            assert!(h.contains_key(&kept), "{kept}");
        }
        assert_eq!(h["x-custom"], "kept");
        for removed in NOT_IN_304 {
            assert!(!h.contains_key(&removed), "{removed}");
        }
    }

    fn header_bytes() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..40),
            prop::collection::vec(prop::sample::select(b"W/\"*, \tabc".to_vec()), 0..20),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn evaluate_never_panics(
            inm in header_bytes(),
            im in header_bytes(),
            ims in header_bytes(),
            ius in header_bytes(),
            etag in header_bytes(),
            lm in header_bytes(),
        ) {
            let mut req = HeaderMap::new();
            let mut stored = HeaderMap::new();
            for (in_request, name, v) in [
                (true, IF_NONE_MATCH, &inm),
                (true, IF_MATCH, &im),
                (true, IF_MODIFIED_SINCE, &ims),
                (true, IF_UNMODIFIED_SINCE, &ius),
                (false, ETAG, &etag),
                (false, LAST_MODIFIED, &lm),
            ] {
                if let Ok(v) = HeaderValue::from_bytes(v) {
                    if in_request { req.insert(name, v); } else { stored.insert(name, v); }
                }
            }
            let _ = evaluate(&Method::GET, &req, StatusCode::OK, &stored);
            let _ = weak_etag_match(&inm, &etag);
            let _ = strong_etag_match(&im, &etag);
        }

        /// A stored tag always matches itself in an If-None-Match list, wherever it appears.
        #[test]
        fn stored_tag_found_in_any_list_position(
            tags in prop::collection::vec("[a-z0-9]{0,8}", 1..5),
            pick in any::<prop::sample::Index>(),
            weak in any::<bool>(),
        ) {
            let chosen = pick.get(&tags);
            let stored = map(&[("etag", &format!("{}\"{chosen}\"", if weak { "W/" } else { "" }))]);
            let list = tags.iter().map(|t| format!("\"{t}\"")).collect::<Vec<_>>().join(", ");
            let req = map(&[("if-none-match", &list)]);
            prop_assert_eq!(evaluate(&Method::GET, &req, StatusCode::OK, &stored), NotModified);
        }
    }
}
