//! Cache-Control parsing: arbitrary bytes, as one value and as header lines (split at `\n`),
//! through every accessor, the targeted-field rules, and the serialise/parse round trip.
#![no_main]

use http::header::CACHE_CONTROL;
use http::{HeaderMap, HeaderName, HeaderValue};
use larder_cache_control::{CacheControl, Source, targeted_with_source};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let cc = CacheControl::parse(data);
    check(&cc, true);

    let cdn = HeaderName::from_static("cdn-cache-control");
    let mut headers = HeaderMap::new();
    for (i, line) in data.split(|&b| b == b'\n').enumerate() {
        if let Ok(value) = HeaderValue::from_bytes(line) {
            let name = if i % 3 == 2 {
                cdn.clone()
            } else {
                CACHE_CONTROL
            };
            headers.append(name, value);
        }
    }
    check(&CacheControl::from_headers(&headers), true);
    check(&CacheControl::from_headers_named(&cdn, &headers), true);
    let (targeted, source) = targeted_with_source(&headers, &[cdn]);
    check(&targeted, source == Source::CacheControl);
});

/// Calls every accessor and checks the round trip.
fn check(cc: &CacheControl<'_>, first_wins: bool) {
    let _ = (
        cc.max_age(),
        cc.s_maxage(),
        cc.stale_while_revalidate(),
        cc.stale_if_error(),
    );
    let _ = (cc.min_fresh(), cc.max_stale(), cc.is_empty());
    let _ = (
        cc.no_store(),
        cc.public(),
        cc.must_revalidate(),
        cc.proxy_revalidate(),
    );
    let _ = (
        cc.must_understand(),
        cc.no_transform(),
        cc.immutable(),
        cc.only_if_cached(),
    );
    assert!(cc.no_cache_field_names().is_none() || cc.no_cache());
    assert!(cc.private_field_names().is_none() || cc.private());
    let _ = cc.no_cache_field_names().map(Iterator::count);
    let _ = cc.private_field_names().map(Iterator::count);
    for d in cc.iter() {
        let _ = (d.value(), d.value_bytes(), d.raw_value(), d.delta_seconds());
        assert!(cc.get(d.name()).is_some(), "get finds every directive");
    }
    let _ = cc.errors().count();
    let _ = format!("{cc} {cc:?}");

    // Serialise, parse again: same directives (a malformed argument stays malformed), and a
    // second serialisation is byte-identical.
    let hv = cc.to_header_value();
    let again = CacheControl::parse(hv.as_bytes());
    assert_eq!(again.len(), cc.len());
    for (a, b) in again.iter().zip(cc.iter()) {
        assert_eq!(a.name(), b.name());
        assert_eq!(a.is_malformed(), b.is_malformed());
        if !b.is_malformed() {
            assert_eq!(a, b);
        }
    }
    assert_eq!(again.to_header_value(), hv);
    if first_wins {
        // Targeted fields count the last of repeated directives; the re-parse counts the first.
        assert_eq!(again.max_age(), cc.max_age());
        assert_eq!(again.max_stale(), cc.max_stale());
    }
    assert_eq!(again.no_store(), cc.no_store());
    assert_eq!(again.no_cache(), cc.no_cache());
    assert_eq!(again.private(), cc.private());
}
