use std::time::{Duration, SystemTime};

use http::header::HeaderValue;
use larder_storage::ResponseHeader;

use super::*;
use crate::cache_status::CacheStatus;
use crate::conditional::Precondition;
use crate::range::RangeBody;
use crate::request::RequestDirectives;

const NOW: u64 = 1_000_000;

fn t(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

/// A response stored `age` seconds ago, fresh for `lifetime` seconds, with `headers`.
fn meta(age: u64, lifetime: u64, headers: &[(&str, &str)]) -> CacheMeta {
    let mut h = ResponseHeader::new(StatusCode::OK);
    for (n, v) in headers {
        h.append_header(
            HeaderName::from_bytes(n.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        )
        .unwrap();
    }
    CacheMeta::new(t(NOW - age + lifetime), t(NOW - age), 0, 0, h)
}

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
fn bypass_reasons_in_order() {
    assert_eq!(Bypass::check(true, false, true), None);
    assert_eq!(Bypass::check(false, true, false), Some(Bypass::Method));
    assert_eq!(Bypass::check(true, true, false), Some(Bypass::RequestBody));
    assert_eq!(Bypass::check(true, false, false), Some(Bypass::Disabled));
    assert_eq!(Bypass::Method.forward_reason(), ForwardReason::Method);
    assert_eq!(Bypass::NoKey.forward_reason(), ForwardReason::Bypass);
    assert_eq!(Bypass::NoKey.reason().as_str(), "NoCacheKey");
    assert_eq!(Bypass::RequestBody.reason().as_str(), "RequestBody");
    assert_eq!(Bypass::Disabled.reason(), NoCacheReason::NeverEnabled);
}

#[test]
fn unsafe_methods_invalidate_on_success_and_redirects() {
    for m in ["POST", "PUT", "DELETE", "PATCH", "FOO"] {
        let m = Method::from_bytes(m.as_bytes()).unwrap();
        assert!(is_unsafe(&m), "{m}");
        assert!(invalidates(&m, StatusCode::NO_CONTENT));
        assert!(invalidates(&m, StatusCode::SEE_OTHER));
        assert!(!invalidates(&m, StatusCode::NOT_FOUND));
        assert!(!invalidates(&m, StatusCode::BAD_GATEWAY));
    }
    for m in [Method::GET, Method::HEAD, Method::OPTIONS, Method::TRACE] {
        assert!(!is_unsafe(&m), "{m}");
        assert!(!invalidates(&m, StatusCode::OK));
    }
    assert!(body_without_meaning(&Method::DELETE));
    assert!(!body_without_meaning(&Method::POST));
}

#[test]
fn entry_follows_the_directives_then_the_hit_filter() {
    let fresh = entry(Reuse::Fresh, || None).unwrap();
    assert_eq!(fresh.hit_status, HitStatus::Fresh);
    assert!(!fresh.must_revalidate && !fresh.disable_serve_stale);
    let must = entry(Reuse::MustRevalidate, || None).unwrap();
    assert_eq!(must.hit_status, HitStatus::ForceExpired);
    assert!(must.must_revalidate && !must.disable_serve_stale);
    let forced = entry(Reuse::Fresh, || Some(ForcedFreshness::ForceExpired)).unwrap();
    assert_eq!(forced.hit_status, HitStatus::ForceExpired);
    assert!(forced.must_revalidate && forced.disable_serve_stale);
    let miss = entry(Reuse::Stale, || Some(ForcedFreshness::ForceMiss)).unwrap();
    assert_eq!(miss.hit_status, HitStatus::ForceMiss);
    // only-if-cached and an entry that needs the origin: 504, and the hit filter is not asked.
    assert_eq!(entry(Reuse::Unusable, || panic!("asked")), None);
}

/// The directives of a request and the entry's age decide through [`entry`] exactly as
/// `RequestDirectives::reuse` says.
#[test]
fn entry_from_request_directives() {
    let check = |cc: &str, age, expect: HitStatus, must: bool| {
        let d = RequestDirectives::from_headers(&headers(&[("cache-control", cc)]));
        let reuse = d.reuse(&meta(age, 60, &[]), &[], t(NOW));
        let e = entry(reuse, || None).unwrap();
        assert_eq!(
            (e.hit_status, e.must_revalidate),
            (expect, must),
            "{cc} {age}"
        );
    };
    check("x", 10, HitStatus::Fresh, false);
    check("x", 70, HitStatus::Expired, false);
    check("no-cache", 10, HitStatus::ForceExpired, true);
    check("max-stale=20", 70, HitStatus::ForceFresh, false);
}

fn facts(phase: CachePhase) -> FoundFacts {
    FoundFacts {
        phase,
        must_revalidate: false,
        locked: false,
        lock_writer: true,
        can_serve_stale_updating: true,
        no_store: false,
    }
}

#[test]
fn found_actions() {
    use FoundAction as A;
    assert_eq!(found(facts(CachePhase::Hit), || panic!("asked")), A::Serve);
    let stale = facts(CachePhase::Stale);
    assert_eq!(found(stale, || true), A::ServeStaleAndRefresh);
    assert_eq!(found(stale, || false), A::Revalidate);
    let no_store = FoundFacts {
        no_store: true,
        ..stale
    };
    assert_eq!(found(no_store, || true), A::ServeStaleWithoutRefresh);
    let locked = FoundFacts {
        locked: true,
        lock_writer: false,
        ..stale
    };
    assert_eq!(found(locked, || true), A::ServeStale);
    assert_eq!(found(locked, || false), A::Wait);
    let must = FoundFacts {
        must_revalidate: true,
        ..stale
    };
    assert_eq!(found(must, || panic!("asked")), A::Revalidate);
    let outside = FoundFacts {
        can_serve_stale_updating: false,
        ..stale
    };
    assert_eq!(found(outside, || panic!("asked")), A::Revalidate);
    let missed = facts(CachePhase::Miss);
    assert_eq!(found(missed, || panic!("asked")), A::Miss);
    assert_eq!(
        found(
            FoundFacts {
                locked: true,
                ..missed
            },
            || panic!("asked")
        ),
        A::Wait
    );
    assert_eq!(not_found(false), A::Miss);
    assert_eq!(
        found_forward_reason(CachePhase::Stale, false),
        ForwardReason::Stale
    );
    assert_eq!(
        found_forward_reason(CachePhase::Stale, true),
        ForwardReason::Request
    );
    assert_eq!(
        found_forward_reason(CachePhase::Miss, false),
        ForwardReason::Request
    );
}

#[test]
fn lock_wait_outcomes() {
    assert_eq!(after_wait(LockStatus::Done), Ok(()));
    assert_eq!(after_wait(LockStatus::TransientError), Ok(()));
    assert_eq!(after_wait(LockStatus::AgeTimeout), Ok(()));
    assert_eq!(
        after_wait(LockStatus::GiveUp),
        Err(NoCacheReason::CacheLockGiveUp)
    );
    assert_eq!(
        after_wait(LockStatus::WaitTimeout),
        Err(NoCacheReason::CacheLockTimeout)
    );
}

#[test]
fn upstream_request_for_the_cache_and_for_the_client() {
    let stored = headers(&[
        ("etag", "\"v1\""),
        ("last-modified", "Mon, 01 Jan 2001 00:00:00 GMT"),
    ]);
    let client = headers(&[
        ("range", "bytes=0-1"),
        ("if-none-match", "\"c\""),
        ("accept", "*/*"),
    ]);
    // A revalidation: HEAD as GET, the client's conditions gone, the stored validators added.
    let (mut m, mut h) = (Method::HEAD, client.clone());
    upstream_request(CachePhase::Stale, &mut m, &mut h, Some(&stored));
    assert_eq!(m, Method::GET);
    assert_eq!(h["if-none-match"], "\"v1\"");
    assert_eq!(h["if-modified-since"], "Mon, 01 Jan 2001 00:00:00 GMT");
    assert!(h.get("range").is_none());
    assert_eq!(h["accept"], "*/*");
    // A miss: no validators even if some were passed.
    let (mut m, mut h) = (Method::GET, client.clone());
    upstream_request(CachePhase::Miss, &mut m, &mut h, Some(&stored));
    assert!(h.get("if-none-match").is_none() && h.get("range").is_none());
    // Bypassed or disabled: the client's request as it is.
    for phase in [
        CachePhase::Bypass,
        CachePhase::Disabled(NoCacheReason::UpstreamError),
    ] {
        let (mut m, mut h) = (Method::HEAD, client.clone());
        upstream_request(phase, &mut m, &mut h, Some(&stored));
        assert_eq!((m, h), (Method::HEAD, client.clone()));
    }
    let (mut m, mut h) = (
        Method::POST,
        headers(&[("content-length", "3"), ("accept", "a")]),
    );
    refresh_request(&mut m, &mut h);
    assert_eq!(m, Method::GET);
    assert_eq!(h, headers(&[("accept", "a")]));
}

#[test]
fn upstream_error_fallbacks() {
    let stale = CachePhase::Stale;
    assert_eq!(
        on_upstream_error(stale, true, true, || true),
        Some(HitKind::StaleIfError(None))
    );
    assert_eq!(
        on_upstream_error(stale, false, true, || true),
        Some(HitKind::StaleOnDisconnect)
    );
    assert_eq!(on_upstream_error(stale, true, false, || false), None);
    assert_eq!(
        on_upstream_error(stale, false, false, || panic!("asked")),
        None
    );
    assert_eq!(
        on_upstream_error(CachePhase::Miss, true, true, || panic!("asked")),
        None
    );
    // Disconnected: only when configured, not demanded validation, and not forbidden.
    let plain = meta(100, 60, &[]);
    assert!(stale_on_disconnect(true, false, Some(&plain), &[]));
    assert!(!stale_on_disconnect(false, false, Some(&plain), &[]));
    assert!(!stale_on_disconnect(true, true, Some(&plain), &[]));
    assert!(!stale_on_disconnect(true, false, None, &[]));
    let strict = meta(100, 60, &[("cache-control", "max-age=60, must-revalidate")]);
    assert!(!stale_on_disconnect(true, false, Some(&strict), &[]));
    // A targeted field replaces Cache-Control (RFC 9213).
    let cdn = HeaderName::from_static("cdn-cache-control");
    let targeted = meta(
        100,
        60,
        &[("cdn-cache-control", "max-age=60, proxy-revalidate")],
    );
    assert!(!stale_on_disconnect(
        true,
        false,
        Some(&targeted),
        std::slice::from_ref(&cdn)
    ));
    assert!(stale_on_disconnect(true, false, Some(&targeted), &[]));
}

#[test]
fn stale_responses() {
    assert_eq!(
        on_stale_response(StatusCode::NOT_MODIFIED, true, || panic!("asked")),
        StaleAnswer::NotModified
    );
    assert_eq!(
        on_stale_response(StatusCode::BAD_GATEWAY, true, || true),
        StaleAnswer::ServeStale
    );
    assert_eq!(
        on_stale_response(StatusCode::BAD_GATEWAY, true, || false),
        StaleAnswer::Replace
    );
    assert_eq!(
        on_stale_response(StatusCode::BAD_GATEWAY, false, || panic!("asked")),
        StaleAnswer::Replace
    );
    assert_eq!(
        on_stale_response(StatusCode::NOT_FOUND, true, || panic!("asked")),
        StaleAnswer::Replace
    );
    assert!(matches!(
        revalidated(true, || panic!("asked")),
        RespCacheable::Uncacheable(NoCacheReason::Custom("RequestNoStore"))
    ));
    assert!(revalidated(false, || RespCacheable::Cacheable(meta(0, 60, &[]))).is_cacheable());
}

fn store_facts<'a>(
    phase: CachePhase,
    method: &'a Method,
    status: u16,
    h: &'a HeaderMap,
) -> StoreFacts<'a> {
    StoreFacts {
        phase,
        method,
        status: StatusCode::from_u16(status).unwrap(),
        headers: h,
        no_store: false,
        max_file_size: Some(10),
    }
}

fn refusal(s: &Store) -> Option<(NoCacheReason, Refusal)> {
    match s {
        Store::Write { .. } => None,
        Store::Refuse { reason, action } => Some((*reason, *action)),
    }
}

#[test]
fn store_decisions() {
    let get = Method::GET;
    let head = Method::HEAD;
    let small = headers(&[("content-length", "5")]);
    let large = headers(&[("content-length", "11")]);
    let ok = || RespCacheable::Cacheable(meta(0, 60, &[]));
    let no = || RespCacheable::Uncacheable(NoCacheReason::OriginNotCache);
    let miss = CachePhase::Miss;
    assert!(matches!(
        store(store_facts(miss, &get, 200, &small), ok),
        Store::Write {
            from_bypass: false,
            ..
        }
    ));
    assert!(matches!(
        store(store_facts(CachePhase::Bypass, &get, 200, &small), ok),
        Store::Write {
            from_bypass: true,
            ..
        }
    ));
    let check = |facts, filter: &dyn Fn() -> RespCacheable, expect| {
        assert_eq!(refusal(&store(facts, filter)), Some(expect), "{facts:?}");
    };
    check(
        store_facts(miss, &get, 200, &large),
        &ok,
        (NoCacheReason::ResponseTooLarge, Refusal::Remember),
    );
    check(
        store_facts(miss, &get, 200, &small),
        &no,
        (NoCacheReason::OriginNotCache, Refusal::Remember),
    );
    check(
        store_facts(miss, &get, 503, &small),
        &no,
        (NoCacheReason::OriginNotCache, Refusal::RetryUnderLock),
    );
    check(
        store_facts(CachePhase::Bypass, &get, 200, &small),
        &no,
        (NoCacheReason::OriginNotCache, Refusal::Disable),
    );
    check(
        store_facts(CachePhase::Bypass, &head, 200, &small),
        &ok,
        (NoCacheReason::Deferred, Refusal::Disable),
    );
    check(
        store_facts(CachePhase::Bypass, &get, 206, &small),
        &ok,
        (NoCacheReason::Deferred, Refusal::Disable),
    );
    let asked = || panic!("asked");
    check(
        store_facts(miss, &get, 304, &small),
        &asked,
        (
            NoCacheReason::Custom("NotModifiedOnMiss"),
            Refusal::Remember,
        ),
    );
    let no_store = StoreFacts {
        no_store: true,
        ..store_facts(miss, &get, 200, &small)
    };
    check(
        no_store,
        &asked,
        (NoCacheReason::Custom("RequestNoStore"), Refusal::Remember),
    );
    let disabled = CachePhase::Disabled(NoCacheReason::CacheLockTimeout);
    check(
        store_facts(disabled, &get, 200, &small),
        &asked,
        (NoCacheReason::CacheLockTimeout, Refusal::AlreadyDisabled),
    );
}

#[test]
fn downstream_applies_preconditions_head_and_ranges() {
    let full = || {
        let mut h = ResponseHeader::new(StatusCode::OK);
        h.append_header("content-length", "10").unwrap();
        h.append_header("etag", "\"a\"").unwrap();
        h
    };
    let mut h = full();
    let d = downstream(
        &Method::GET,
        &HeaderMap::new(),
        Precondition::Proceed,
        &mut h,
        10,
    );
    assert!(!d.header_only && d.range.is_none());
    assert_eq!(h.status, StatusCode::OK);
    let mut h = full();
    let d = downstream(
        &Method::HEAD,
        &HeaderMap::new(),
        Precondition::Proceed,
        &mut h,
        10,
    );
    assert!(d.header_only);
    let mut h = full();
    let d = downstream(
        &Method::GET,
        &HeaderMap::new(),
        Precondition::NotModified,
        &mut h,
        10,
    );
    assert!(d.header_only);
    assert_eq!(h.status, StatusCode::NOT_MODIFIED);
    assert!(h.headers.get("content-length").is_none());
    let mut h = full();
    let d = downstream(
        &Method::GET,
        &HeaderMap::new(),
        Precondition::PreconditionFailed,
        &mut h,
        10,
    );
    assert!(d.header_only);
    assert_eq!(h.status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(h.headers["content-length"], "0");
    let range = headers(&[("range", "bytes=2-4")]);
    let mut h = full();
    let d = downstream(&Method::GET, &range, Precondition::Proceed, &mut h, 10);
    assert_eq!(h.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(d.range.as_deref(), Some(&RangeBody::Single(2..5)));
    let mut h = full();
    let bad = headers(&[("range", "bytes=20-30")]);
    let d = downstream(&Method::GET, &bad, Precondition::Proceed, &mut h, 10);
    assert_eq!(h.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert!(d.header_only);
    assert!(range_needs_length(
        &Method::GET,
        &range,
        StatusCode::OK,
        &HeaderMap::new()
    ));
    assert!(!range_needs_length(
        &Method::GET,
        &range,
        StatusCode::OK,
        &full().headers
    ));
    assert!(!range_needs_length(
        &Method::HEAD,
        &range,
        StatusCode::OK,
        &HeaderMap::new()
    ));
}

#[test]
fn cache_status_of_each_outcome() {
    let base = || CacheStatus::new("larder");
    let text = |s: CacheStatus| s.to_header_value().to_str().unwrap().to_owned();
    let fwd = ForwardReason::Stale;
    assert_eq!(
        text(hit_status(base(), HitKind::Fresh, 5, fwd, true, None)),
        "larder; hit; ttl=5"
    );
    assert_eq!(
        text(hit_status(
            base(),
            HitKind::StaleWhileRevalidate,
            -2,
            fwd,
            false,
            None
        )),
        "larder; hit; ttl=-2; detail=stale-while-revalidate"
    );
    assert_eq!(
        text(hit_status(
            base(),
            HitKind::StaleIfError(Some(StatusCode::BAD_GATEWAY)),
            -2,
            fwd,
            false,
            None
        )),
        "larder; fwd=stale; fwd-status=502; ttl=-2; detail=stale-if-error"
    );
    assert_eq!(
        text(hit_status(
            base(),
            HitKind::Revalidated { stored: false },
            0,
            ForwardReason::Request,
            true,
            Some(NoCacheReason::OriginNotCache)
        )),
        "larder; fwd=request; fwd-status=304; ttl=0; stored=?0; collapsed; detail=OriginNotCache"
    );
    assert_eq!(
        text(forwarded_status(
            base(),
            ForwardReason::UriMiss,
            StatusCode::OK,
            false,
            Ok(Some(60))
        )),
        "larder; fwd=uri-miss; fwd-status=200; ttl=60; stored"
    );
    assert_eq!(
        text(forwarded_status(
            base(),
            ForwardReason::UriMiss,
            StatusCode::OK,
            true,
            Err(NoCacheReason::OriginNotCache)
        )),
        "larder; fwd=uri-miss; fwd-status=200; stored=?0; collapsed; detail=OriginNotCache"
    );
    assert_eq!(ttl(&meta(70, 60, &[]), t(NOW)), -10);
    assert_eq!(ttl(&meta(10, 60, &[]), t(NOW)), 50);
}

/// Properties over many generated facts.
mod props;
