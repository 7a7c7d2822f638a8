//! Data-driven cases: RFC examples, the HTTP caching test suite's parsing cases, tricky input.

use http::header::CACHE_CONTROL;
use http::{HeaderMap, HeaderValue};
use larder_cache_control::{CacheControl, DELTA_SECONDS_MAX, Error, InvalidValue, MaxStale};

/// Parses `input` and checks `max_age()`.
fn check_max_age(input: &str, expect: Option<Result<u32, InvalidValue>>) {
    let cc = CacheControl::parse(input.as_bytes());
    assert_eq!(cc.max_age(), expect, "max-age of {input:?}");
    // The round trip keeps the answer.
    let hv = cc.to_header_value();
    assert_eq!(
        CacheControl::parse(hv.as_bytes()).max_age(),
        expect,
        "round trip of {input:?}"
    );
}

/// Serialising and parsing again gives the same directives: same names, same values, and a
/// malformed argument stays malformed. A second round trip changes nothing.
pub(crate) fn assert_round_trip(cc: &CacheControl<'_>) {
    let hv = cc.to_header_value();
    let again = CacheControl::parse(hv.as_bytes());
    assert_eq!(again.len(), cc.len(), "{hv:?}");
    for (a, b) in again.iter().zip(cc.iter()) {
        assert_eq!(a.name(), b.name(), "{hv:?}");
        assert_eq!(a.is_malformed(), b.is_malformed(), "{hv:?}");
        if !b.is_malformed() {
            assert_eq!(a, b, "{hv:?}");
        }
    }
    assert_eq!(again.to_header_value(), hv);
}

fn headers(lines: &[&[u8]]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for line in lines {
        map.append(
            CACHE_CONTROL,
            HeaderValue::from_bytes(line).expect("valid test header"),
        );
    }
    map
}

#[test]
fn max_age_values_follow_delta_seconds_rules() {
    use InvalidValue::{Malformed, Missing, Negative, NotDeltaSeconds};
    check_max_age("max-age=3600", Some(Ok(3600)));
    check_max_age("MaX-aGe=3600", Some(Ok(3600)));
    check_max_age("max-age=0", Some(Ok(0)));
    check_max_age("max-age=003600", Some(Ok(3600)));
    check_max_age("max-age=2147483647", Some(Ok(2_147_483_647)));
    check_max_age("max-age=2147483648", Some(Ok(DELTA_SECONDS_MAX)));
    check_max_age("max-age=2147483649", Some(Ok(DELTA_SECONDS_MAX)));
    check_max_age("max-age=99999999999", Some(Ok(DELTA_SECONDS_MAX)));
    check_max_age(
        &format!("max-age={}", "9".repeat(5000)),
        Some(Ok(DELTA_SECONDS_MAX)),
    );
    check_max_age("max-age=\"3600\"", Some(Ok(3600)));
    check_max_age("max-age=\"36\\00\"", Some(Ok(3600)));
    check_max_age("max-age=-3600", Some(Err(Negative)));
    check_max_age("max-age=3600.0", Some(Err(NotDeltaSeconds)));
    check_max_age("max-age=3600.5", Some(Err(NotDeltaSeconds)));
    check_max_age("max-age=a3600", Some(Err(NotDeltaSeconds)));
    check_max_age("max-age=3600a", Some(Err(NotDeltaSeconds)));
    check_max_age("max-age='3600'", Some(Err(NotDeltaSeconds)));
    check_max_age("max-age=\"\"", Some(Err(NotDeltaSeconds)));
    check_max_age("max-age", Some(Err(Missing)));
    check_max_age("max-age=", Some(Err(Malformed)));
    check_max_age("max-age =3600", Some(Err(Malformed)));
    check_max_age("max-age= 3600", Some(Err(Malformed)));
    check_max_age("max-age=36 00", Some(Err(Malformed)));
    check_max_age("max-age=\"3600", Some(Err(Malformed)));
    check_max_age("max-age=3600\"", Some(Err(Malformed)));
    check_max_age("", None);
    check_max_age("s-maxage=60", None);
    check_max_age("max-ages=60", None);
    check_max_age("  ,, , max-age=7 ,,", Some(Ok(7)));
    check_max_age("\tmax-age=7\t", Some(Ok(7)));
}

#[test]
fn max_age_inside_quoted_extension_is_ignored() {
    // cache-tests cc-parse: freshness-max-age-ignore-quoted and -rev (required).
    check_max_age("extension=\"max-age=3600\", max-age=1", Some(Ok(1)));
    check_max_age("max-age=1, extension=\"max-age=3600\"", Some(Ok(1)));
    check_max_age("extension=\"a, max-age=3600\", max-age=1", Some(Ok(1)));
    check_max_age(r#"extension="\", max-age=3600", max-age=1"#, Some(Ok(1)));
}

#[test]
fn first_occurrence_of_repeated_directive_counts() {
    check_max_age("max-age=1800, max-age=1", Some(Ok(1800)));
    check_max_age("max-age=1, max-age=1800", Some(Ok(1)));
    check_max_age(
        "max-age=abc, max-age=1800",
        Some(Err(InvalidValue::NotDeltaSeconds)),
    );
    let map = headers(&[b"max-age=1800", b"max-age=1"]);
    assert_eq!(CacheControl::from_headers(&map).max_age(), Some(Ok(1800)));
    let map = headers(&[b"max-age=1", b"max-age=1800"]);
    let cc = CacheControl::from_headers(&map);
    assert_eq!(cc.max_age(), Some(Ok(1)));
    assert_eq!(cc.iter().filter(|d| d.is("max-age")).count(), 2);
    assert_eq!(cc.get("max-age").map(|d| d.delta_seconds()), Some(Ok(1)));
}

#[test]
fn multiple_lines_form_one_list() {
    let map = headers(&[
        b"public",
        b"",
        b"max-age=60, s-maxage=120",
        b"stale-if-error=5",
    ]);
    let cc = CacheControl::from_headers(&map);
    assert!(cc.public());
    assert_eq!(cc.max_age(), Some(Ok(60)));
    assert_eq!(cc.s_maxage(), Some(Ok(120)));
    assert_eq!(cc.stale_if_error(), Some(Ok(5)));
    assert_eq!(cc.len(), 4);
    assert_eq!(
        cc.to_string(),
        "public, max-age=60, s-maxage=120, stale-if-error=5"
    );
    // A quote left open on one line does not reach into the next line.
    let map = headers(&[b"x=\"open", b"no-store, y=\"a\""]);
    let cc = CacheControl::from_headers(&map);
    assert!(cc.no_store());
    assert_eq!(cc.get("y").and_then(|d| d.value()).as_deref(), Some("a"));
    assert_round_trip(&cc);
}

#[test]
fn absent_and_empty_headers_are_empty() {
    let map = HeaderMap::new();
    let cc = CacheControl::from_headers(&map);
    assert!(cc.is_empty());
    assert_eq!(cc.max_age(), None);
    assert!(!cc.no_store());
    assert_eq!(cc.to_header_value(), "");
    for input in ["", " ", ",,,", " , \t, ", "=5", "\"x\""] {
        assert!(
            CacheControl::parse(input.as_bytes()).is_empty(),
            "{input:?}"
        );
    }
    assert!(!CacheControl::parse(b"x").is_empty());
}

#[test]
fn every_flag_directive_is_recognised() {
    let cc = CacheControl::parse(
        b"no-store, PUBLIC, must-revalidate, proxy-revalidate, must-understand, \
          no-transform, immutable, only-if-cached, private, no-cache",
    );
    assert!(cc.no_store());
    assert!(cc.public());
    assert!(cc.must_revalidate());
    assert!(cc.proxy_revalidate());
    assert!(cc.must_understand());
    assert!(cc.no_transform());
    assert!(cc.immutable());
    assert!(cc.only_if_cached());
    assert!(cc.private());
    assert!(cc.no_cache());
    assert!(cc.private_field_names().is_none());
    assert!(cc.no_cache_field_names().is_none());
    assert_eq!(cc.len(), 10);
    let none = CacheControl::parse(b"max-age=1, x-no-store, no-stores, public-ish");
    assert!(!none.no_store() && !none.public() && !none.private() && !none.no_cache());
}

#[test]
fn request_directives() {
    let cc = CacheControl::parse(b"max-stale, min-fresh=20, only-if-cached, max-age=5");
    assert_eq!(cc.max_stale(), Some(MaxStale::Any));
    assert_eq!(cc.min_fresh(), Some(Ok(20)));
    assert_eq!(cc.max_age(), Some(Ok(5)));
    assert!(cc.only_if_cached());
    assert_eq!(
        CacheControl::parse(b"max-stale=10").max_stale(),
        Some(MaxStale::Seconds(10))
    );
    assert_eq!(
        CacheControl::parse(b"max-stale=-1").max_stale(),
        Some(MaxStale::Invalid)
    );
    assert_eq!(
        CacheControl::parse(b"max-stale= 1").max_stale(),
        Some(MaxStale::Invalid)
    );
    assert_eq!(
        CacheControl::parse(b"max-stale=\"1\"").max_stale(),
        Some(MaxStale::Seconds(1))
    );
    assert_eq!(CacheControl::parse(b"no-cache").max_stale(), None);
    assert_eq!(
        CacheControl::parse(b"min-fresh").min_fresh(),
        Some(Err(InvalidValue::Missing))
    );
}

#[test]
fn rfc5861_stale_extensions() {
    // RFC 5861 §3 and §4 examples.
    let cc = CacheControl::parse(b"max-age=600, stale-while-revalidate=30");
    assert_eq!(cc.max_age(), Some(Ok(600)));
    assert_eq!(cc.stale_while_revalidate(), Some(Ok(30)));
    let cc = CacheControl::parse(b"max-age=600, stale-if-error=1200");
    assert_eq!(cc.stale_if_error(), Some(Ok(1200)));
    assert_eq!(cc.stale_while_revalidate(), None);
}

#[test]
fn rfc8246_immutable_example() {
    let cc = CacheControl::parse(b"max-age=31536000, immutable");
    assert!(cc.immutable());
    assert_eq!(cc.max_age(), Some(Ok(31_536_000)));
}

#[test]
fn qualified_no_cache_and_private_list_field_names() {
    let cc = CacheControl::parse(br#"no-cache="Set-Cookie, x-a ,, x-b", private="authorization""#);
    assert!(cc.no_cache());
    let names: Vec<_> = cc.no_cache_field_names().expect("qualified").collect();
    assert_eq!(names, ["Set-Cookie", "x-a", "x-b"]);
    let names: Vec<_> = cc.private_field_names().expect("qualified").collect();
    assert_eq!(names, ["authorization"]);
    // Token form is accepted too (RFC 9111 §5.2: recipients accept both forms).
    let cc = CacheControl::parse(b"private=set-cookie");
    assert_eq!(
        cc.private_field_names().map(Iterator::collect::<Vec<_>>),
        Some(vec!["set-cookie"])
    );
    // Several qualified occurrences contribute all their names.
    let cc = CacheControl::parse(br#"no-cache="a", max-age=1, no-cache="b, c""#);
    assert_eq!(
        cc.no_cache_field_names().map(Iterator::collect::<Vec<_>>),
        Some(vec!["a", "b", "c"])
    );
}

#[test]
fn unclean_field_name_lists_read_as_unqualified() {
    for input in [
        r#"no-cache="""#,
        r#"no-cache=" , ""#,
        r#"no-cache="a b""#,
        r#"no-cache="a\,b""#,
        r#"no-cache="a", no-cache"#,
        r#"no-cache, no-cache="a""#,
        r#"no-cache= "a""#,
        r#"no-cache="a"#,
    ] {
        let cc = CacheControl::parse(input.as_bytes());
        assert!(cc.no_cache(), "{input}");
        assert!(cc.no_cache_field_names().is_none(), "{input}");
    }
}

#[test]
fn extension_values_are_unquoted_and_unescaped() {
    let cc = CacheControl::parse(br#"community="UCI", a="x\"y\\z", b=tok, c, "#);
    assert_eq!(
        cc.get("COMMUNITY").and_then(|d| d.value()).as_deref(),
        Some("UCI")
    );
    let a = cc.get("a").expect("present");
    assert_eq!(a.value().as_deref(), Some(r#"x"y\z"#));
    assert!(a.is_quoted());
    assert_eq!(a.raw_value().as_deref(), Some(&br#"="x\"y\\z""#[..]));
    let b = cc.get("b").expect("present");
    assert_eq!(b.value().as_deref(), Some("tok"));
    assert!(!b.is_quoted());
    assert_eq!(cc.get("c").map(|d| d.value()), Some(None));
    assert!(cc.get("d").is_none());
    let names: Vec<_> = cc.iter().map(|d| d.name()).collect();
    assert_eq!(names, ["community", "a", "b", "c"]);
}

#[test]
fn malformed_elements_keep_their_neighbours() {
    let cc = CacheControl::parse(b"max-age=60, @@@, =x, no-store junk, \"q\", public");
    assert_eq!(cc.max_age(), Some(Ok(60)));
    assert!(cc.no_store(), "a malformed flag directive still counts");
    assert!(cc.get("no-store").is_some_and(|d| d.is_malformed()));
    assert!(cc.public());
    let errors: Vec<Error> = cc.errors().collect();
    assert_eq!(errors.len(), 4, "{errors:?}");
    assert!(matches!(&errors[0], Error::MalformedDirective { text } if text == "@@@"));
    assert!(matches!(
        &errors[2],
        Error::InvalidValue { directive, source: InvalidValue::Malformed } if directive == "no-store"
    ));
    assert_eq!(errors[0].to_string(), "malformed cache directive \"@@@\"");
    assert_eq!(cc.to_string(), "max-age=60, no-store junk, public");
}

#[test]
fn errors_report_invalid_delta_seconds() {
    let cc = CacheControl::parse(b"MAX-AGE=-1, s-maxage=1, max-stale, max-stale=x");
    let errors: Vec<_> = cc.errors().collect();
    assert_eq!(
        errors,
        [
            Error::InvalidValue {
                directive: "max-age".into(),
                source: InvalidValue::Negative
            },
            Error::InvalidValue {
                directive: "max-stale".into(),
                source: InvalidValue::NotDeltaSeconds
            },
        ]
    );
    assert!(
        CacheControl::parse(b"public, max-age=1")
            .errors()
            .next()
            .is_none()
    );
}

#[test]
fn bad_bytes_and_non_utf8_never_hide_valid_directives() {
    let line = b"x=\"caf\xe9\", \x00\x01, max-age=5, y=\xff\xfe, z=\"a\x7fb\", no-store".to_vec();
    let cc = CacheControl::parse(&line);
    assert_eq!(cc.max_age(), Some(Ok(5)));
    assert!(cc.no_store());
    assert_eq!(
        cc.get("x").and_then(|d| d.value()).as_deref(),
        Some("caf\u{fffd}")
    );
    assert_eq!(
        cc.get("x").and_then(|d| d.value_bytes()).as_deref(),
        Some(&b"caf\xe9"[..])
    );
    assert!(cc.get("y").is_some_and(|d| d.is_malformed()));
    assert!(
        cc.get("z").is_some_and(|d| d.is_malformed()),
        "control byte inside quotes"
    );
    // The serialised value is a valid header value and parses to the same directives.
    assert_round_trip(&cc);
    // obs-text is valid inside a header value too.
    let map = headers(&[b"a=\"\xe9\", max-age=9"]);
    assert_eq!(CacheControl::from_headers(&map).max_age(), Some(Ok(9)));
}

#[test]
fn from_headers_named_reads_other_fields() {
    let mut map = headers(&[b"max-age=1"]);
    map.append("cdn-cache-control", HeaderValue::from_static("max-age=100"));
    map.append("CDN-Cache-Control", HeaderValue::from_static("public"));
    let cc = CacheControl::from_headers_named("cdn-cache-control", &map);
    assert_eq!(cc.max_age(), Some(Ok(100)));
    assert!(cc.public());
    assert_eq!(CacheControl::from_headers(&map).max_age(), Some(Ok(1)));
}

#[test]
fn serialise_keeps_case_and_quoting() {
    let input = r#"Public, MAX-AGE=5, no-cache="a, b", x="\"q\"""#;
    let cc = CacheControl::parse(input.as_bytes());
    assert_eq!(cc.to_string(), input);
    assert_eq!(cc.to_header_value(), input);
    assert_eq!(format!("{cc:?}").matches("Directive").count(), 4);
}

#[test]
fn semicolon_does_not_separate_directives() {
    let cc = CacheControl::parse(b"public; max-age=60");
    assert!(cc.public());
    assert!(cc.get("public").is_some_and(|d| d.is_malformed()));
    assert_eq!(cc.max_age(), None);
    assert_eq!(cc.len(), 1);
}
