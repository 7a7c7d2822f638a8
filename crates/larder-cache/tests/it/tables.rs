//! Cacheability and freshness tables (RFC 9111 §3, §4.2; RFC 9213; RFC 5861), one case a line.

use std::time::{Duration, SystemTime};

use http::{HeaderName, HeaderValue, StatusCode};
use larder_cache::age::ResponseTimes;
use larder_cache::cache_control::CacheControl;
use larder_cache::filters::{
    RespCacheable, resp_cacheable_at, resp_cacheable_targeted, serve_stale_durations,
};
use larder_cache::{CacheMetaDefaults, DefaultTtlScope, ResponseHeader};

const NOW: u64 = 1_700_000_000;

fn t(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

fn date(secs: u64) -> String {
    httpdate::fmt_http_date(t(secs))
}

/// Response fields from `(name, value)` pairs.
fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
}

/// `Cache-Control: value` alone.
fn cc(value: &str) -> Vec<(String, String)> {
    fields(&[("cache-control", value)])
}

fn header(status: u16, fields: &[(String, String)]) -> ResponseHeader {
    let mut h = ResponseHeader::new(StatusCode::from_u16(status).expect("valid status"));
    for (n, v) in fields {
        h.headers.append(
            HeaderName::from_bytes(n.as_bytes()).expect("valid name"),
            HeaderValue::from_str(v).expect("valid value"),
        );
    }
    h
}

static STRICT: CacheMetaDefaults = CacheMetaDefaults::STRICT;
static DEFAULTS: CacheMetaDefaults = CacheMetaDefaults::new(
    |s| (s == StatusCode::OK).then_some(Duration::from_secs(7)),
    3,
    5,
);

/// Seconds of freshness left at NOW (negative: already stale), or `None` when not stored.
fn ttl(status: u16, fields: &[(String, String)], auth: bool, d: &CacheMetaDefaults) -> Option<i64> {
    let h = header(status, fields);
    let cc = CacheControl::from_headers(&h.headers);
    match resp_cacheable_at(Some(&cc), h.clone(), auth, d, ResponseTimes::at(t(NOW))) {
        RespCacheable::Cacheable(meta) => {
            let until = meta
                .fresh_until()
                .duration_since(t(0))
                .expect("after 1970")
                .as_secs();
            Some(until.cast_signed() - NOW.cast_signed())
        }
        RespCacheable::Uncacheable(_) => None,
    }
}

/// Response header fields as `(name, value)`.
type Fields = Vec<(String, String)>;

/// Checks `(status, fields, expected ttl)` cases for a request without `Authorization`.
fn check(defaults: &CacheMetaDefaults, cases: &[(u16, Fields, Option<i64>)]) {
    for (status, fields, expect) in cases {
        let got = ttl(*status, fields, false, defaults);
        assert_eq!(got, *expect, "{status} {fields:?}");
    }
}

#[test]
fn storing_responses_rfc9111_section_3() {
    check(
        &STRICT,
        &[
            // Explicit freshness makes any final status storable.
            (200, cc("max-age=60"), Some(60)),
            (200, cc("s-maxage=30, max-age=60"), Some(30)),
            (302, cc("max-age=60"), Some(60)),
            (500, cc("max-age=60"), Some(60)),
            (299, cc("max-age=60"), Some(60)),
            // Nothing gives a lifetime: not stored (the cache does not invent freshness).
            (200, vec![], None),
            (302, vec![], None),
            // no-store, private, must-understand (§5.2.2.3).
            (200, cc("max-age=60, no-store"), None),
            (200, cc("max-age=60, NO-STORE"), None),
            (200, cc("max-age=60, private"), None),
            (200, cc("max-age=60, private=\"set-cookie\""), Some(60)),
            (200, cc("max-age=60, no-store, must-understand"), Some(60)),
            (299, cc("max-age=60, no-store, must-understand"), None),
            // Partial, not-modified and interim responses are never stored as such.
            (206, cc("max-age=60"), None),
            (304, cc("max-age=60"), None),
            (103, cc("max-age=60"), None),
            // Vary: * never matches (§4.1).
            (
                200,
                fields(&[("cache-control", "max-age=60"), ("vary", "*")]),
                None,
            ),
            (
                200,
                fields(&[("cache-control", "max-age=60"), ("vary", "a, *")]),
                None,
            ),
            (
                200,
                fields(&[("cache-control", "max-age=60"), ("vary", "accept")]),
                Some(60),
            ),
            // Bare no-cache: stored already stale; without freshness only with a validator.
            (200, cc("no-cache, max-age=60"), Some(0)),
            (
                200,
                fields(&[("cache-control", "no-cache"), ("etag", "\"a\"")]),
                Some(0),
            ),
            (200, cc("no-cache"), None),
            (
                302,
                fields(&[("cache-control", "no-cache"), ("etag", "\"a\"")]),
                None,
            ),
        ],
    );
}

#[test]
fn authorization_rfc9111_section_3_5() {
    let cases = [
        ("max-age=60", None),
        ("max-age=60, public", Some(60)),
        ("s-maxage=60", Some(60)),
        ("max-age=60, must-revalidate", Some(60)),
        ("max-age=60, proxy-revalidate", None),
    ];
    for (value, expect) in cases {
        assert_eq!(ttl(200, &cc(value), true, &STRICT), expect, "{value}");
        assert_eq!(ttl(200, &cc(value), false, &STRICT), Some(60), "{value}");
    }
}

#[test]
fn freshness_lifetime_rfc9111_section_4_2_1() {
    check(
        &STRICT,
        &[
            // Invalid max-age or s-maxage: stale.
            (200, cc("max-age=-1"), Some(0)),
            (200, cc("max-age=1.5"), Some(0)),
            (200, cc("s-maxage=x, max-age=60"), Some(0)),
            // Expires − Date.
            (
                200,
                fields(&[("expires", &date(NOW + 100)), ("date", &date(NOW))]),
                Some(100),
            ),
            // Date 10 s behind: a 100 s lifetime of which 10 s are apparent age.
            (
                200,
                fields(&[("expires", &date(NOW + 90)), ("date", &date(NOW - 10))]),
                Some(90),
            ),
            // No Date: Expires − the time of receipt.
            (200, fields(&[("expires", &date(NOW + 100))]), Some(100)),
            // §5.3: an invalid Expires ("0" included) or several lines mean already expired.
            (200, fields(&[("expires", "0")]), Some(0)),
            (
                200,
                fields(&[("expires", "Thu, 18 Aug 2050 02:01:18 UTC")]),
                Some(0),
            ),
            (
                200,
                fields(&[("expires", &date(NOW + 100)), ("expires", &date(NOW + 200))]),
                Some(0),
            ),
            (
                200,
                fields(&[("expires", &date(NOW - 100)), ("date", &date(NOW))]),
                Some(0),
            ),
            // Lenient letter case in an otherwise valid date.
            (
                200,
                fields(&[("expires", "THU, 18 AUG 2050 02:01:18 gmt")]),
                Some(2_544_400_878 - 1_700_000_000),
            ),
            // max-age wins over Expires.
            (
                200,
                fields(&[
                    ("expires", &date(NOW + 100)),
                    ("cache-control", "max-age=5"),
                ]),
                Some(5),
            ),
            (
                200,
                fields(&[
                    ("expires", &date(NOW - 100)),
                    ("cache-control", "max-age=5"),
                ]),
                Some(5),
            ),
            // §4.2.3: the upstream Age counts.
            (
                200,
                fields(&[("cache-control", "max-age=60"), ("age", "50")]),
                Some(10),
            ),
            (
                200,
                fields(&[("cache-control", "max-age=60"), ("age", "100")]),
                Some(-40),
            ),
            (
                200,
                fields(&[("cache-control", "max-age=60"), ("age", "abc")]),
                Some(60),
            ),
            (
                200,
                fields(&[("cache-control", "max-age=60"), ("age", "7200, 0")]),
                Some(-7140),
            ),
        ],
    );
}

#[test]
fn heuristic_freshness_rfc9111_section_4_2_2() {
    let lm = |ago: u64| ("last-modified", date(NOW - ago));
    let with = |pairs: Vec<(&str, String)>| {
        pairs
            .into_iter()
            .map(|(n, v)| (n.to_owned(), v))
            .collect::<Vec<_>>()
    };
    check(
        &STRICT,
        &[
            // 10% of Date − Last-Modified, only for heuristically cacheable statuses.
            (200, with(vec![lm(1000), ("date", date(NOW))]), Some(100)),
            (404, with(vec![lm(1000)]), Some(100)),
            (302, with(vec![lm(1000)]), None),
            (503, with(vec![lm(1000)]), None),
            (
                302,
                with(vec![lm(1000), ("cache-control", "public".to_owned())]),
                Some(100),
            ),
            // Capped at a day.
            (200, with(vec![lm(100 * 86_400)]), Some(86_400)),
            // A Last-Modified in the future gives nothing.
            (200, with(vec![("last-modified", date(NOW + 1000))]), None),
        ],
    );
    // Per-status defaults apply only without explicit freshness (or heuristic).
    check(
        &DEFAULTS,
        &[
            (200, vec![], Some(7)),
            (404, vec![], None),
            (200, cc("max-age=60"), Some(60)),
            (200, with(vec![lm(1000)]), Some(100)),
        ],
    );
    check(
        &DEFAULTS.with_heuristic(None),
        &[(200, with(vec![lm(1000)]), Some(7))],
    );
    // An edge TTL override replaces the origin's lifetime but not its no-store.
    check(
        &DEFAULTS.with_ttl_scope(DefaultTtlScope::Always),
        &[
            (200, cc("max-age=60"), Some(7)),
            (200, cc("max-age=60, no-store"), None),
        ],
    );
}

#[test]
fn stale_windows_rfc9111_section_4_2_4_and_rfc5861() {
    let cases = [
        ("max-age=1", (3, 5)),
        ("max-age=1, stale-while-revalidate=10", (10, 5)),
        ("max-age=1, stale-if-error=20", (3, 20)),
        ("max-age=1, stale-if-error=x", (3, 0)),
        ("max-age=1, must-revalidate, stale-if-error=20", (0, 0)),
        ("max-age=1, proxy-revalidate", (0, 0)),
        ("s-maxage=1, stale-while-revalidate=10", (0, 0)),
        ("no-cache", (0, 0)),
        ("no-cache=\"set-cookie\"", (3, 5)),
    ];
    for (value, expect) in cases {
        let cc = CacheControl::parse(value.as_bytes());
        assert_eq!(serve_stale_durations(&cc, &DEFAULTS), expect, "{value}");
    }
}

/// `(fresh seconds, swr, sie)` for a CDN cache whose target list is `[CDN-Cache-Control]`.
fn cdn(pairs: &[(&str, &str)], defaults: &CacheMetaDefaults) -> Option<(u64, u32, u32)> {
    let targets = [HeaderName::from_static("cdn-cache-control")];
    let h = header(200, &fields(pairs));
    match resp_cacheable_targeted(h, false, &targets, defaults, ResponseTimes::at(t(NOW))) {
        RespCacheable::Cacheable(m) => Some((
            m.fresh_until()
                .duration_since(t(NOW))
                .unwrap_or_default()
                .as_secs(),
            m.stale_while_revalidate_sec(),
            m.stale_if_error_sec(),
        )),
        RespCacheable::Uncacheable(_) => None,
    }
}

#[test]
fn targeted_fields_rfc9213() {
    let s = &STRICT;
    // §3.1: fresh for 600 s at the CDN, 120 s for other shared caches.
    let both = [
        ("cache-control", "max-age=60, s-maxage=120"),
        ("cdn-cache-control", "max-age=600"),
    ];
    assert_eq!(cdn(&both, s), Some((600, 0, 0)));
    assert_eq!(cdn(&both[..1], s), Some((120, 0, 0)));
    // §3.1: only the CDN may store it.
    let only_cdn = [
        ("cdn-cache-control", "max-age=600"),
        ("cache-control", "no-store"),
    ];
    assert_eq!(cdn(&only_cdn, s), Some((600, 0, 0)));
    assert_eq!(cdn(&only_cdn[1..], s), None);
    // §3.1: `none` lifts no-store for the CDN; the lifetime comes from the cache's policy.
    let none = [("cache-control", "no-store"), ("cdn-cache-control", "none")];
    assert_eq!(cdn(&none, s), None);
    assert_eq!(cdn(&none, &DEFAULTS), Some((7, 3, 5)));
    // §2.2: the targeted field also replaces Expires.
    let expires = date(NOW + 100);
    assert_eq!(
        cdn(&[("expires", &expires), ("cdn-cache-control", "public")], s),
        None
    );
    assert_eq!(cdn(&[("expires", &expires)], s), Some((100, 0, 0)));
    assert_eq!(
        cdn(
            &[
                ("cache-control", "max-age=60"),
                ("cdn-cache-control", "no-store")
            ],
            s
        ),
        None
    );
    // §2.1: an invalid targeted field is ignored.
    assert_eq!(
        cdn(
            &[
                ("cache-control", "max-age=9"),
                ("cdn-cache-control", "max-age=\"x\"")
            ],
            s
        ),
        Some((9, 0, 0))
    );
    // RFC 5861 §3 and §4.
    assert_eq!(
        cdn(
            &[("cache-control", "max-age=600, stale-while-revalidate=30")],
            s
        ),
        Some((600, 30, 0))
    );
    assert_eq!(
        cdn(&[("cache-control", "max-age=600, stale-if-error=1200")], s),
        Some((600, 0, 1200))
    );
}
