//! Tests of the `conditional` module.

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
