//! Tests of the `cache_status` module.

use proptest::prelude::*;

use super::*;

fn check(status: &CacheStatus, expect: &str) {
    assert_eq!(status.to_string(), expect);
    assert_eq!(status.to_header_value(), expect);
    validate_member(expect.as_bytes()).unwrap_or_else(|e| panic!("{expect:?}: {e}"));
}

#[test]
fn rfc_9211_examples() {
    check(&CacheStatus::new("ExampleCache").hit(), "ExampleCache; hit");
    check(
        &CacheStatus::new("ExampleCache").hit().ttl(376),
        "ExampleCache; hit; ttl=376",
    );
    check(
        &CacheStatus::new("ExampleCache").hit().ttl(-412),
        "ExampleCache; hit; ttl=-412",
    );
    check(
        &CacheStatus::new("ExampleCache").fwd(ForwardReason::UriMiss),
        "ExampleCache; fwd=uri-miss",
    );
    check(
        &CacheStatus::new("ExampleCache")
            .fwd(ForwardReason::Stale)
            .fwd_status(StatusCode::NOT_MODIFIED),
        "ExampleCache; fwd=stale; fwd-status=304",
    );
    check(
        &CacheStatus::new("ExampleCache")
            .fwd(ForwardReason::UriMiss)
            .collapsed(true),
        "ExampleCache; fwd=uri-miss; collapsed",
    );
    check(
        &CacheStatus::new("ExampleCache")
            .fwd(ForwardReason::UriMiss)
            .collapsed(false),
        "ExampleCache; fwd=uri-miss; collapsed=?0",
    );
    check(
        &CacheStatus::new("CDN Company Here").hit().ttl(545),
        "\"CDN Company Here\"; hit; ttl=545",
    );
    check(
        &CacheStatus::new("ForwardProxyCache")
            .fwd(ForwardReason::UriMiss)
            .collapsed(true)
            .stored(true),
        "ForwardProxyCache; fwd=uri-miss; stored; collapsed",
    );
    check(
        &CacheStatus::new("ExampleCache").hit().detail("MEMORY"),
        "ExampleCache; hit; detail=MEMORY",
    );
}

#[test]
fn every_forward_reason_renders() {
    for (reason, token) in [
        (ForwardReason::Bypass, "bypass"),
        (ForwardReason::Method, "method"),
        (ForwardReason::UriMiss, "uri-miss"),
        (ForwardReason::VaryMiss, "vary-miss"),
        (ForwardReason::Miss, "miss"),
        (ForwardReason::Request, "request"),
        (ForwardReason::Stale, "stale"),
        (ForwardReason::Partial, "partial"),
    ] {
        check(
            &CacheStatus::new("c").fwd(reason),
            &format!("c; fwd={token}"),
        );
    }
}

#[test]
fn hit_and_fwd_are_exclusive() {
    let s = CacheStatus::new("c")
        .fwd(ForwardReason::Miss)
        .stored(true)
        .hit();
    check(&s, "c; hit");
    let s = CacheStatus::new("c").hit().fwd(ForwardReason::Miss);
    check(&s, "c; fwd=miss");
    // fwd-only parameters are not rendered without fwd.
    check(
        &CacheStatus::new("c")
            .hit()
            .fwd_status(StatusCode::OK)
            .stored(false)
            .collapsed(true),
        "c; hit",
    );
}

#[test]
fn strings_are_escaped_and_integers_clamped() {
    check(
        &CacheStatus::new("a \"b\" \\c")
            .hit()
            .detail("too large; retry")
            .key("https://x/?q=\"1\""),
        r#""a \"b\" \\c"; hit; key="https://x/?q=\"1\""; detail="too large; retry""#,
    );
    check(&CacheStatus::new("caché").hit(), "\"cach%C3%A9\"; hit");
    check(&CacheStatus::new("").hit(), "\"\"; hit");
    check(&CacheStatus::new("1cache").hit(), "\"1cache\"; hit");
    check(&CacheStatus::new("*cache:3/a").hit(), "*cache:3/a; hit");
    check(
        &CacheStatus::new("c").detail("tab\there"),
        "c; detail=\"tab%09here\"",
    );
    check(
        &CacheStatus::new("c").hit().ttl(i64::MIN),
        "c; hit; ttl=-999999999999999",
    );
    check(
        &CacheStatus::new("c").hit().ttl(i64::MAX),
        "c; hit; ttl=999999999999999",
    );
    check(
        &CacheStatus::new("c")
            .fwd(ForwardReason::Bypass)
            .detail(crate::NoCacheReason::OriginNotCache.as_str()),
        "c; fwd=bypass; detail=OriginNotCache",
    );
}

#[test]
fn appends_after_upstream_members() {
    let ours = CacheStatus::new("larder").hit();
    let mut headers = HeaderMap::new();
    ours.append_to(&mut headers);
    assert_eq!(headers[CACHE_STATUS], "larder; hit");

    let upstream = HeaderValue::from_static("OriginCache; hit; ttl=1100  ");
    assert_eq!(
        ours.append_to_value(Some(&upstream)),
        "OriginCache; hit; ttl=1100, larder; hit"
    );
    assert_eq!(
        ours.append_to_value(Some(&HeaderValue::from_static(" "))),
        "larder; hit"
    );
    assert_eq!(ours.append_to_value(None), "larder; hit");
}

/// A validator for one RFC 8941 list member whose bare items are Tokens, Strings, Integers or
/// Booleans (what `Cache-Status` uses).
fn validate_member(v: &[u8]) -> Result<(), String> {
    let mut i = bare_item(v, 0)?;
    while i < v.len() {
        if v[i] != b';' {
            return Err(format!("expected ';' at {i}"));
        }
        i += 1;
        while v.get(i) == Some(&b' ') {
            i += 1;
        }
        let start = i;
        if !v
            .get(i)
            .is_some_and(|&b| b.is_ascii_lowercase() || b == b'*')
        {
            return Err(format!("bad key start at {i}"));
        }
        while v
            .get(i)
            .is_some_and(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.*".contains(&b))
        {
            i += 1;
        }
        assert!(i > start);
        if v.get(i) == Some(&b'=') {
            i = bare_item(v, i + 1)?;
        }
    }
    Ok(())
}

fn bare_item(v: &[u8], mut i: usize) -> Result<usize, String> {
    match v.get(i) {
        Some(b'"') => {
            i += 1;
            loop {
                match v.get(i) {
                    Some(b'\\') if matches!(v.get(i + 1), Some(b'"' | b'\\')) => i += 2,
                    Some(b'"') => return Ok(i + 1),
                    Some(0x20..=0x7e) if v[i] != b'\\' => i += 1,
                    _ => return Err(format!("bad string byte at {i}")),
                }
            }
        }
        Some(b'?') if matches!(v.get(i + 1), Some(b'0' | b'1')) => Ok(i + 2),
        Some(b) if b.is_ascii_digit() || *b == b'-' => {
            i += 1;
            let start = i;
            while v.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            if v[start - 1] == b'-' && i == start || i - start > 15 {
                return Err(format!("bad integer at {start}"));
            }
            Ok(i)
        }
        Some(b) if b.is_ascii_alphabetic() || *b == b'*' => {
            i += 1;
            while v
                .get(i)
                .is_some_and(|&b| is_tchar(b) || b == b':' || b == b'/')
            {
                i += 1;
            }
            Ok(i)
        }
        _ => Err(format!("bad bare item at {i}")),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_member_is_valid_structured_field(
        name in any::<String>(),
        detail in prop::option::of(any::<String>()),
        key in prop::option::of(any::<String>()),
        ttl in prop::option::of(any::<i64>()),
        hit in any::<bool>(),
        stored in prop::option::of(any::<bool>()),
    ) {
        let mut s = CacheStatus::new(name);
        s = if hit { s.hit() } else { s.fwd(ForwardReason::VaryMiss).fwd_status(StatusCode::OK) };
        if let Some(d) = detail { s = s.detail(d); }
        if let Some(k) = key { s = s.key(k); }
        if let Some(t) = ttl { s = s.ttl(t); }
        if let Some(st) = stored { s = s.stored(st); }
        let rendered = s.to_string();
        prop_assert!(validate_member(rendered.as_bytes()).is_ok(), "{}", rendered);
        let value = s.to_header_value();
        prop_assert_eq!(value.as_bytes(), rendered.as_bytes());
    }

    #[test]
    fn printable_strings_round_trip(text in "[ -~]{0,30}") {
        let rendered = CacheStatus::new(text.clone()).to_string();
        // Undo the String escaping (or take the Token as is).
        let unescaped = if let Some(inner) = rendered.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
            inner.replace("\\\"", "\"").replace("\\\\", "\\")
        } else {
            rendered.clone()
        };
        prop_assert_eq!(unescaped, text);
    }
}
