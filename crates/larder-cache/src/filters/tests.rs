//! Tests of the `filters` module.

use super::*;
use http::HeaderValue;

const NOW: u64 = 1_700_000_000;

fn t(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

fn date(secs: u64) -> String {
    httpdate::fmt_http_date(t(secs))
}

fn header(status: u16, fields: &[(&str, &str)]) -> ResponseHeader {
    let mut h = ResponseHeader::new(StatusCode::from_u16(status).unwrap());
    for (n, v) in fields {
        h.headers.append(
            HeaderName::from_bytes(n.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

static DEFAULTS: CacheMetaDefaults = CacheMetaDefaults::new(
    |s| (s == StatusCode::OK).then_some(Duration::from_secs(7)),
    3,
    5,
);

#[test]
fn stored_header_is_cleaned() {
    let h = header(
        200,
        &[
            (
                "cache-control",
                "max-age=60, private=\"x-secret\", no-cache=\"set-cookie\"",
            ),
            ("x-secret", "1"),
            ("set-cookie", "a=b"),
            ("connection", "x-hop"),
            ("x-hop", "1"),
            ("age", "5"),
            ("x-kept", "1"),
        ],
    );
    let cc_headers = h.headers.clone();
    let cc = CacheControl::from_headers(&cc_headers);
    let meta = resp_cacheable(Some(&cc), h, false, &CacheMetaDefaults::STRICT).unwrap_meta();
    let stored = meta.headers();
    for gone in ["x-secret", "set-cookie", "connection", "x-hop", "age"] {
        assert!(stored.get(gone).is_none(), "{gone}");
    }
    assert_eq!(stored["x-kept"], "1");
}

/// One row of the Set-Cookie rule table: `fields` of a 200 decided under `policy` give
/// `expect`: `"stored"`, or the `NoCacheReason` name. A stored copy never has a cookie.
fn check_cookie(policy: SetCookiePolicy, fields: &[(&str, &str)], expect: &str) {
    let targets = [HeaderName::from_static("cdn-cache-control")];
    let times = ResponseTimes::at(t(NOW));
    let got = match resp_cacheable_targeted_with(
        header(200, fields),
        false,
        &targets,
        &DEFAULTS,
        times,
        policy,
    ) {
        RespCacheable::Cacheable(meta) => {
            let stored = meta.headers();
            assert!(stored.get("set-cookie").is_none(), "{policy} {fields:?}");
            assert!(stored.get("set-cookie2").is_none(), "{policy} {fields:?}");
            "stored"
        }
        RespCacheable::Uncacheable(reason) => reason.as_str(),
    };
    assert_eq!(got, expect, "{policy} {fields:?}");
}

#[test]
fn set_cookie_rule_table() {
    use SetCookiePolicy::{Never, OptIn, Strip};
    const COOKIE: (&str, &str) = ("set-cookie", "session=alice");
    const COOKIE2: (&str, &str) = ("set-cookie2", "session=alice");
    let cc = |v| ("cache-control", v);
    let cdn = |v| ("cdn-cache-control", v);
    // Without a cookie the policy changes nothing.
    for policy in SetCookiePolicy::ALL {
        check_cookie(policy, &[cc("max-age=60")], "stored");
        check_cookie(policy, &[cc("no-store")], "NoStore");
    }
    // The default: only an opt-in for shared caches stores, and without the cookie.
    check_cookie(OptIn, &[cc("max-age=60"), COOKIE], "SetCookie");
    check_cookie(OptIn, &[cc("max-age=60"), COOKIE2], "SetCookie");
    check_cookie(
        OptIn,
        &[cc("max-age=60, must-revalidate"), COOKIE],
        "SetCookie",
    );
    check_cookie(OptIn, &[("expires", &date(NOW + 60)), COOKIE], "SetCookie");
    check_cookie(
        OptIn,
        &[cc("no-cache=\"x-other\", max-age=60"), COOKIE],
        "SetCookie",
    );
    check_cookie(OptIn, &[cc("public, max-age=60"), COOKIE], "stored");
    check_cookie(OptIn, &[cc("s-maxage=60"), COOKIE, COOKIE2], "stored");
    check_cookie(
        OptIn,
        &[cc("max-age=60, private=\"Set-Cookie\""), COOKIE],
        "stored",
    );
    check_cookie(
        OptIn,
        &[cc("max-age=60, no-cache=\"set-cookie2\""), COOKIE2],
        "stored",
    );
    check_cookie(OptIn, &[cdn("max-age=60"), COOKIE], "stored");
    check_cookie(
        OptIn,
        &[cc("public, max-age=60"), cdn("max-age=60"), COOKIE],
        "stored",
    );
    // A targeted field replaces Cache-Control: its `public` no longer counts, nor its
    // lifetime; an invalid targeted field is ignored.
    check_cookie(
        OptIn,
        &[cc("public, max-age=60"), cdn("no-store"), COOKIE],
        "NoStore",
    );
    check_cookie(
        OptIn,
        &[cc("max-age=60"), cdn("max-age=\"x"), COOKIE],
        "SetCookie",
    );
    // The cookie is the reason only when the response was otherwise storable.
    check_cookie(OptIn, &[cc("private, max-age=60"), COOKIE], "Private");
    check_cookie(OptIn, &[cc("no-store"), COOKIE], "NoStore");
    check_cookie(OptIn, &[("vary", "*"), cc("max-age=60"), COOKIE], "VaryAny");
    // Strict: never stored with a cookie.
    check_cookie(Never, &[cc("public, max-age=60"), COOKIE], "SetCookie");
    check_cookie(Never, &[cdn("max-age=60"), COOKIE2], "SetCookie");
    check_cookie(
        Never,
        &[cc("max-age=60, private=\"set-cookie\""), COOKIE],
        "SetCookie",
    );
    // Strip: stored as RFC 9111 allows, without the cookie.
    check_cookie(Strip, &[cc("max-age=60"), COOKIE, COOKIE2], "stored");
    check_cookie(Strip, &[cc("private, max-age=60"), COOKIE], "Private");
}

#[test]
fn pingora_named_filters_follow_the_default_set_cookie_policy() {
    let cookie = |cache_control| {
        header(
            200,
            &[("cache-control", cache_control), ("set-cookie", "a=b")],
        )
    };
    let h = cookie("max-age=60");
    let cc = CacheControl::from_headers(&h.headers);
    assert_eq!(
        calculate_fresh_until(t(NOW), Some(&cc), &h, false, &DEFAULTS),
        None
    );
    assert!(!resp_cacheable(Some(&cc), h.clone(), false, &DEFAULTS).is_cacheable());
    let h = cookie("public, max-age=60");
    let cc = CacheControl::from_headers(&h.headers);
    let meta = resp_cacheable(Some(&cc), h.clone(), false, &DEFAULTS).unwrap_meta();
    assert!(meta.headers().get("set-cookie").is_none());
}

#[test]
fn age_folds_into_meta_age() {
    let h = header(200, &[("cache-control", "max-age=60"), ("age", "20")]);
    let cc_headers = h.headers.clone();
    let cc = CacheControl::from_headers(&cc_headers);
    let times = ResponseTimes {
        request_time: t(NOW - 2),
        response_time: t(NOW),
    };
    let meta =
        resp_cacheable_at(Some(&cc), h, false, &CacheMetaDefaults::STRICT, times).unwrap_meta();
    // corrected_initial_age = 20 + 2 (response delay).
    assert_eq!(meta.age(t(NOW)), Duration::from_secs(22));
    assert_eq!(meta.age(t(NOW + 8)), Duration::from_secs(30));
    assert_eq!(meta.created(), t(NOW));
    assert!(meta.is_fresh(t(NOW + 37)));
    assert!(!meta.is_fresh(t(NOW + 39)));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    /// Whatever the origin sends, the filters decide without panicking, a stored
    /// response's freshness never starts before its epoch, and it never keeps a cookie.
    #[test]
    fn arbitrary_responses_never_panic(
        status in 100u16..600,
        cc in "[ -~]{0,40}",
        cdn in "[ -~]{0,20}",
        expires in "[ -~]{0,30}",
        age in "[ -~]{0,12}",
        last_modified in proptest::option::of(0u64..4_000_000_000),
        vary in "[ -~]{0,16}",
        cookie in "[ -~]{0,8}",
        auth: bool,
        policy in proptest::sample::select(SetCookiePolicy::ALL.to_vec()),
    ) {
        let mut h = ResponseHeader::new(StatusCode::from_u16(status).unwrap());
        for (name, value) in [
            ("cache-control", cc.as_str()),
            ("cdn-cache-control", cdn.as_str()),
            ("expires", expires.as_str()),
            ("age", age.as_str()),
            ("vary", vary.as_str()),
            ("set-cookie", cookie.as_str()),
        ] {
            if let Ok(v) = HeaderValue::from_str(value) {
                h.headers.append(HeaderName::from_static(name), v);
            }
        }
        if let Some(lm) = last_modified {
            h.headers.append(LAST_MODIFIED, HeaderValue::from_str(&date(lm)).unwrap());
        }
        let targets = [HeaderName::from_static("cdn-cache-control")];
        let times = ResponseTimes::at(t(NOW));
        if let RespCacheable::Cacheable(meta) =
            resp_cacheable_targeted_with(h, auth, &targets, &DEFAULTS, times, policy)
        {
            proptest::prop_assert!(meta.fresh_until() >= meta.epoch());
            proptest::prop_assert!(meta.epoch() <= t(NOW));
            proptest::prop_assert!(meta.headers().get("age").is_none());
            proptest::prop_assert!(meta.headers().get("set-cookie").is_none());
        }
    }
}

#[test]
fn pingora_named_helpers() {
    let h = header(200, &[("cache-control", "max-age=60, stale-if-error=9")]);
    let cc = CacheControl::from_headers(&h.headers);
    assert_eq!(
        calculate_fresh_until(t(NOW), Some(&cc), &h, false, &DEFAULTS),
        Some(t(NOW + 60))
    );
    assert_eq!(
        calculate_fresh_until(t(NOW), Some(&cc), &h, true, &DEFAULTS),
        None
    );
    assert_eq!(
        calculate_serve_stale_durations(Some(&cc), &DEFAULTS),
        (3, 9)
    );
    assert_eq!(calculate_serve_stale_durations(None, &DEFAULTS), (3, 5));

    let (mut parts, ()) = http::Request::head("/")
        .header("range", "bytes=0-1")
        .body(())
        .unwrap()
        .into_parts();
    let stored = header(200, &[("etag", "\"e\"")]);
    let meta = CacheMeta::new(t(NOW), t(NOW), 0, 0, stored);
    upstream::request_filter(&mut parts, Some(&meta));
    assert_eq!(parts.method, Method::GET);
    assert!(parts.headers.get("range").is_none());
    assert_eq!(parts.headers["if-none-match"], "\"e\"");
}

/// Each RFC 9111 §3 rule that refuses storage names itself, checked in the documented
/// order (an earlier rule wins when several apply).
#[test]
fn each_refusal_names_its_rule() {
    let decide_with = |status: u16, fields: &[(&str, &str)], authorization: bool| {
        let h = header(status, fields);
        let cc = CacheControl::from_headers(&h.headers);
        match resp_cacheable_at(
            Some(&cc),
            h.clone(),
            authorization,
            &CacheMetaDefaults::STRICT,
            ResponseTimes::at(t(NOW)),
        ) {
            RespCacheable::Cacheable(_) => "stored",
            RespCacheable::Uncacheable(reason) => {
                assert!(reason.is_origin_not_cache(), "{reason}");
                reason.as_str()
            }
        }
    };
    let decide = |status, fields: &[(&str, &str)]| decide_with(status, fields, false);
    let cc = |v| ("cache-control", v);
    assert_eq!(decide(200, &[cc("max-age=60")]), "stored");
    for status in [103, 206, 304] {
        assert_eq!(decide(status, &[cc("max-age=60")]), "StatusNotStorable");
    }
    assert_eq!(
        decide(599, &[cc("must-understand, no-store, max-age=60")]),
        "StatusNotUnderstood"
    );
    assert_eq!(
        decide(200, &[cc("must-understand, no-store, max-age=60")]),
        "stored"
    );
    assert_eq!(decide(200, &[cc("no-store, max-age=60")]), "NoStore");
    assert_eq!(decide(200, &[cc("no-store, private")]), "NoStore");
    assert_eq!(decide(200, &[cc("private, max-age=60")]), "Private");
    assert_eq!(decide_with(200, &[cc("max-age=60")], true), "Authorization");
    assert_eq!(decide_with(200, &[cc("s-maxage=60")], true), "stored");
    assert_eq!(decide_with(200, &[cc("private")], true), "Private");
    assert_eq!(
        decide(200, &[cc("max-age=60"), ("vary", "accept, *")]),
        "VaryAny"
    );
    // STRICT has no heuristic lifetimes: a 200 without explicit freshness is not stored.
    assert_eq!(decide(200, &[]), "NoFreshness");
    assert_eq!(decide(200, &[cc("no-cache")]), "NoFreshness");
    assert_eq!(decide(200, &[cc("no-cache"), ("etag", "\"e\"")]), "stored");
    let heuristic = |fields: &[(&str, &str)]| {
        let h = header(200, fields);
        resp_cacheable(None, h, false, &DEFAULTS).is_cacheable()
    };
    assert!(heuristic(&[]), "DEFAULTS give a 200 a heuristic lifetime");
}

#[test]
fn methods() {
    assert!(request_cacheable(&Method::GET));
    assert!(request_cacheable(&Method::HEAD));
    assert!(!request_cacheable(&Method::POST));
    assert!(!request_cacheable(&Method::OPTIONS));
}
