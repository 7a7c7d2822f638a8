//! RFC 9213 targeted fields, following the HTTP caching test suite's `cdn-cache-control` cases.

use http::header::CACHE_CONTROL;
use http::{HeaderMap, HeaderName, HeaderValue};
use larder_cache_control::{Source, targeted, targeted_with_source};

fn cdn() -> HeaderName {
    HeaderName::from_static("cdn-cache-control")
}

fn example() -> HeaderName {
    HeaderName::from_static("examplecdn-cache-control")
}

fn map(fields: &[(&HeaderName, &str)]) -> HeaderMap {
    let mut m = HeaderMap::new();
    for (name, value) in fields {
        m.append(
            (*name).clone(),
            HeaderValue::from_str(value).expect("valid test header"),
        );
    }
    m
}

#[test]
fn valid_targeted_field_wins_over_cache_control() {
    let m = map(&[(&CACHE_CONTROL, "no-store"), (&cdn(), "max-age=10000")]);
    let (cc, source) = targeted_with_source(&m, &[cdn()]);
    assert_eq!(source, Source::Targeted(0));
    assert_eq!(cc.max_age(), Some(Ok(10000)));
    assert!(!cc.no_store());
}

#[test]
fn most_specific_field_first() {
    let m = map(&[
        (&CACHE_CONTROL, "max-age=1"),
        (&cdn(), "max-age=2"),
        (&example(), "max-age=3"),
    ]);
    let (cc, source) = targeted_with_source(&m, &[example(), cdn()]);
    assert_eq!((cc.max_age(), source), (Some(Ok(3)), Source::Targeted(0)));
    let (cc, source) = targeted_with_source(&m, &[HeaderName::from_static("absent"), cdn()]);
    assert_eq!((cc.max_age(), source), (Some(Ok(2)), Source::Targeted(1)));
}

#[test]
fn invalid_or_empty_targeted_field_falls_back() {
    for bad in [
        "max-age=10000, &&&&&",
        "max-age=\"10000\"",
        "max-age =100",
        "max-age= 100",
        "max-age=1.5",
        "MaX-aGe=3600",
        "",
        "  ",
    ] {
        let m = map(&[(&cdn(), bad), (&CACHE_CONTROL, "no-store")]);
        let (cc, source) = targeted_with_source(&m, &[cdn()]);
        assert_eq!(source, Source::CacheControl, "{bad:?}");
        assert!(cc.no_store(), "{bad:?}");
    }
    // One invalid line spoils the whole field.
    let m = map(&[
        (&cdn(), "max-age=5"),
        (&cdn(), "@"),
        (&CACHE_CONTROL, "max-age=1"),
    ]);
    assert_eq!(targeted(&m, &[cdn()]).max_age(), Some(Ok(1)));
    // No targeted field and no Cache-Control: empty.
    assert!(targeted(&HeaderMap::new(), &[cdn()]).is_empty());
}

#[test]
fn targeted_field_uses_last_duplicate_and_ignores_parameters() {
    let m = map(&[
        (&cdn(), "max-age=5;a=1, private=\"x\";q"),
        (&cdn(), "max-age=7"),
    ]);
    let cc = targeted(&m, &[cdn()]);
    assert_eq!(cc.max_age(), Some(Ok(7)));
    assert_eq!(
        cc.private_field_names().map(Iterator::collect::<Vec<_>>),
        Some(vec!["x"])
    );
    let m = map(&[(&cdn(), "foo=1, foo=2")]);
    assert_eq!(
        targeted(&m, &[cdn()])
            .get("foo")
            .and_then(|d| d.value())
            .as_deref(),
        Some("2")
    );
}

#[test]
fn targeted_extension_only_field_still_wins() {
    // cache-tests cdn-remove-header: `CDN-Cache-Control: foo` is valid and non-empty.
    let m = map(&[(&CACHE_CONTROL, "max-age=10000"), (&cdn(), "foo")]);
    let (cc, source) = targeted_with_source(&m, &[cdn()]);
    assert_eq!(source, Source::Targeted(0));
    assert_eq!(cc.max_age(), None);
}
