//! Tests of the range module.

use std::ops::Range;

use bytes::Bytes;
use http::header::{
    ACCEPT_RANGES, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG,
};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use proptest::prelude::*;

use super::*;

fn check(value: &str, len: u64, expect: &RangeSpec) {
    assert_eq!(
        &parse_range_header(value.as_bytes(), len, DEFAULT_MAX_RANGES),
        expect,
        "{value:?} of {len}"
    );
}

#[test]
fn parse_rfc_examples() {
    use RangeSpec::{Multi, None, Single};
    // RFC 9110 §14.1.2, with a representation of length 10000.
    check("bytes=0-499", 10000, &Single(0..500));
    check("bytes=500-999", 10000, &Single(500..1000));
    check("bytes=-500", 10000, &Single(9500..10000));
    check("bytes=9500-", 10000, &Single(9500..10000));
    check("bytes=0-0,-1", 10000, &Multi(vec![0..1, 9999..10000]));
    check(
        "bytes= 0-999, 4500-5499, -1000",
        10000,
        &Multi(vec![0..1000, 4500..5500, 9000..10000]),
    );
    check(
        "bytes=500-600,601-999",
        10000,
        &Multi(vec![500..601, 601..1000]),
    );
    // Overlapping: ignored (see the module docs).
    check("bytes=500-700,601-999", 10000, &None);
    check("bytes=0-1", 0, &None);
}

#[test]
fn parse_edge_cases() {
    use RangeSpec::{Invalid, Multi, None, Single};
    check("BYTES=0-1", 10, &Single(0..2));
    check("Bytes = 0-1", 10, &Single(0..2));
    check("  bytes=1-1  ", 10, &Single(1..2));
    check("bytes=0-100", 10, &Single(0..10));
    check("bytes=-100", 10, &Single(0..10));
    check("bytes=9-", 10, &Single(9..10));
    check("bytes=0-99999999999999999999999999", 10, &Single(0..10));
    check("bytes=-99999999999999999999999999", 10, &Single(0..10));
    // Unsatisfiable specs are skipped; none left is a 416.
    check("bytes=10-", 10, &Invalid);
    check("bytes=-0", 10, &Invalid);
    check("bytes=99999999999999999999999999-", 10, &Invalid);
    check("bytes=10-20,0-1", 10, &Single(0..2));
    check("bytes=0-1,10-20", 10, &Single(0..2));
    check("bytes=0-1,,3-4,", 10, &Multi(vec![0..2, 3..5]));
    // Malformed or unknown: ignored.
    check("bytes=", 10, &None);
    check("bytes=,", 10, &None);
    check("bytes=5-4", 10, &None);
    check("bytes=a-b", 10, &None);
    check("bytes=1", 10, &None);
    check("bytes=-", 10, &None);
    check("bytes=1-2-3", 10, &None);
    check("bytes=+1-2", 10, &None);
    check("bytes=0 - 1", 10, &None);
    check("items=0-1", 10, &None);
    check("bytes 0-1", 10, &None);
    check("", 10, &None);
    // Descending: ignored.
    check("bytes=5-6,0-1", 10, &None);
    check("bytes=-1,0-1", 10, &None);
}

#[test]
fn too_many_ranges_are_ignored() {
    let three = b"bytes=0-0,2-2,4-4";
    assert_eq!(parse_range_header(three, 10, 2), RangeSpec::None);
    assert_eq!(
        parse_range_header(three, 10, 3),
        RangeSpec::Multi(vec![0..1, 2..3, 4..5])
    );
    assert_eq!(parse_range_header(b"bytes=0-0", 10, 0), RangeSpec::None);
}

fn resp(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

#[test]
fn if_range_cases() {
    let h = resp(&[
        ("etag", "\"abc\""),
        ("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT"),
        ("date", "Sun, 06 Nov 1994 08:49:38 GMT"),
    ]);
    let check =
        |v: &str, expect: bool| assert_eq!(if_range_matches(v.as_bytes(), &h), expect, "{v}");
    check("\"abc\"", true);
    check(" \"abc\" ", true);
    check("\"abd\"", false);
    check("W/\"abc\"", false);
    check("abc", false);
    check("\"abc", false);
    check("Sun, 06 Nov 1994 08:49:37 GMT", true);
    check("Sunday, 06-Nov-94 08:49:37 GMT", true);
    check("Sun, 06 Nov 1994 08:49:36 GMT", false);
    check("Sun, 06 Nov 1994 08:49:38 GMT", false);
    check("yesterday", false);
    check("", false);

    // A weak response ETag never matches.
    let weak = resp(&[("etag", "W/\"abc\"")]);
    assert!(!if_range_matches(b"\"abc\"", &weak));
    assert!(!if_range_matches(b"W/\"abc\"", &weak));
    // Last-Modified equal to Date is a weak validator.
    let same_second = resp(&[
        ("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT"),
        ("date", "Sun, 06 Nov 1994 08:49:37 GMT"),
    ]);
    assert!(!if_range_matches(
        b"Sun, 06 Nov 1994 08:49:37 GMT",
        &same_second
    ));
    let no_date = resp(&[("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT")]);
    assert!(!if_range_matches(
        b"Sun, 06 Nov 1994 08:49:37 GMT",
        &no_date
    ));
}

#[test]
fn range_for_request_applies_only_where_defined() {
    let ok = resp(&[("content-length", "10"), ("etag", "\"v1\"")]);
    let req = resp(&[("range", "bytes=0-3")]);
    let get = |req: &HeaderMap, status, resp: &HeaderMap| {
        range_for_request(&Method::GET, req, status, resp, DEFAULT_MAX_RANGES)
    };
    assert_eq!(get(&req, StatusCode::OK, &ok), RangeSpec::Single(0..4));
    assert_eq!(
        range_for_request(&Method::HEAD, &req, StatusCode::OK, &ok, 200),
        RangeSpec::None
    );
    assert_eq!(get(&req, StatusCode::NOT_FOUND, &ok), RangeSpec::None);
    assert_eq!(get(&req, StatusCode::OK, &resp(&[])), RangeSpec::None);
    let partial = resp(&[("content-length", "10"), ("content-range", "bytes 0-9/20")]);
    assert_eq!(get(&req, StatusCode::OK, &partial), RangeSpec::None);
    assert_eq!(get(&resp(&[]), StatusCode::OK, &ok), RangeSpec::None);
    let two_lines = resp(&[("range", "bytes=0-3"), ("range", "bytes=5-6")]);
    assert_eq!(get(&two_lines, StatusCode::OK, &ok), RangeSpec::None);
    let if_range_ok = resp(&[("range", "bytes=0-3"), ("if-range", "\"v1\"")]);
    assert_eq!(
        get(&if_range_ok, StatusCode::OK, &ok),
        RangeSpec::Single(0..4)
    );
    let if_range_old = resp(&[("range", "bytes=0-3"), ("if-range", "\"v0\"")]);
    assert_eq!(get(&if_range_old, StatusCode::OK, &ok), RangeSpec::None);
    let unsatisfiable = resp(&[("range", "bytes=20-")]);
    assert_eq!(get(&unsatisfiable, StatusCode::OK, &ok), RangeSpec::Invalid);
}

#[test]
fn response_headers_for_each_spec() {
    let base = resp(&[
        ("content-length", "10"),
        ("content-type", "text/plain"),
        ("content-encoding", "gzip"),
        ("etag", "\"v1\""),
    ]);

    let mut h = base.clone();
    let plan = range_response_headers(&mut h, &RangeSpec::None, 10);
    assert_eq!((plan.status, plan.body), (StatusCode::OK, RangeBody::Full));
    assert_eq!(h[ACCEPT_RANGES], "bytes");

    let mut h = base.clone();
    let plan = range_response_headers(&mut h, &RangeSpec::Single(2..5), 10);
    assert_eq!(plan.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(h[CONTENT_RANGE], "bytes 2-4/10");
    assert_eq!(h[CONTENT_LENGTH], "3");
    assert_eq!(h[CONTENT_TYPE], "text/plain");
    assert_eq!(h[ETAG], "\"v1\"");

    let mut h = base.clone();
    let plan = range_response_headers(&mut h, &RangeSpec::Multi(vec![0..2, 5..10]), 10);
    assert_eq!(plan.status, StatusCode::PARTIAL_CONTENT);
    let RangeBody::Multipart(m) = plan.body else {
        panic!("expected a multipart body")
    };
    assert_eq!(m.boundary().len(), 16);
    assert_eq!(
        h[CONTENT_TYPE].to_str().unwrap(),
        format!("multipart/byteranges; boundary={}", m.boundary())
    );
    assert_eq!(h[CONTENT_LENGTH], m.content_length().to_string().as_str());
    assert!(!h.contains_key(CONTENT_RANGE));
    assert!(
        m.part_header(0)
            .ends_with(b"Content-Type: text/plain\r\nContent-Range: bytes 0-1/10\r\n\r\n")
    );

    let mut h = base.clone();
    let plan = range_response_headers(&mut h, &RangeSpec::Invalid, 10);
    assert_eq!(
        (plan.status, plan.body),
        (StatusCode::RANGE_NOT_SATISFIABLE, RangeBody::Empty)
    );
    assert_eq!(h[CONTENT_RANGE], "bytes */10");
    assert_eq!(h[CONTENT_LENGTH], "0");
    assert!(!h.contains_key(CONTENT_TYPE));
    assert!(!h.contains_key(CONTENT_ENCODING));
}

#[test]
fn multipart_framing_is_exact() {
    let ct = HeaderValue::from_static("application/pdf");
    let m = MultipartByteranges::new(vec![1..3, 7..10], 10, Some(&ct), "SEP".to_owned());
    let body = m.frame(b"0123456789").unwrap();
    let expect = "--SEP\r\nContent-Type: application/pdf\r\nContent-Range: bytes 1-2/10\r\n\r\n12\
                      \r\n--SEP\r\nContent-Type: application/pdf\r\nContent-Range: bytes 7-9/10\r\n\r\n789\
                      \r\n--SEP--\r\n";
    assert_eq!(std::str::from_utf8(&body).unwrap(), expect);
    assert_eq!(m.content_length(), expect.len() as u64);

    let bare = MultipartByteranges::new(vec![0..1, 2..3], 3, None, "B".to_owned());
    let body = bare.frame(b"abc").unwrap();
    assert_eq!(
        std::str::from_utf8(&body).unwrap(),
        "--B\r\nContent-Range: bytes 0-0/3\r\n\r\na\r\n--B\r\nContent-Range: bytes 2-2/3\r\n\r\nc\r\n--B--\r\n"
    );
    assert_eq!(bare.content_length(), body.len() as u64);
    // A representation shorter than the ranges is not framed as complete.
    assert!(bare.frame(b"ab").is_none());
}

#[test]
fn body_filter_single_and_truncation() {
    let mut f = RangeBodyFilter::new(&RangeBody::Single(2..4));
    assert_eq!(
        f.filter_body(Bytes::from_static(b"012")),
        Bytes::from_static(b"2")
    );
    assert!(f.finish().is_none());
    assert_eq!(
        f.filter_body(Bytes::from_static(b"345")),
        Bytes::from_static(b"3")
    );
    assert_eq!(f.finish(), Some(Bytes::new()));
    let mut full = RangeBodyFilter::new(&RangeBody::Full);
    assert_eq!(
        full.filter_body(Bytes::from_static(b"xy")),
        Bytes::from_static(b"xy")
    );
    let mut empty = RangeBodyFilter::new(&RangeBody::Empty);
    assert!(empty.filter_body(Bytes::from_static(b"xy")).is_empty());
}

fn arb_chunks(len: usize) -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(0..=len.max(1), 0..6).prop_map(move |mut cuts| {
        cuts.push(0);
        cuts.push(len);
        cuts.sort_unstable();
        cuts.dedup();
        cuts
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn parser_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64), len in any::<u64>(), max in 0usize..8) {
        let _ = parse_range_header(&bytes, len, max);
        let _ = if_range_matches(&bytes, &HeaderMap::new());
    }

    #[test]
    fn accepted_ranges_are_within_bounds(
        specs in prop::collection::vec((prop::option::of(0u64..40), prop::option::of(0u64..40)), 1..6),
        len in 0u64..30,
    ) {
        let value = format!("bytes={}", specs.iter().map(|(a, b)| format!(
            "{}-{}",
            a.map(|a| a.to_string()).unwrap_or_default(),
            b.map(|b| b.to_string()).unwrap_or_default(),
        )).collect::<Vec<_>>().join(","));
        let ranges = match parse_range_header(value.as_bytes(), len, DEFAULT_MAX_RANGES) {
            RangeSpec::Single(r) => vec![r],
            RangeSpec::Multi(rs) => { prop_assert!(rs.len() >= 2); rs }
            RangeSpec::None | RangeSpec::Invalid => vec![],
        };
        let mut prev_end = 0;
        for r in ranges {
            prop_assert!(r.start < r.end && r.end <= len, "{:?} of {}", r, len);
            prop_assert!(r.start >= prev_end);
            prev_end = r.end;
        }
    }

    /// Parsing a header and filtering the body chunk by chunk gives exactly the requested bytes,
    /// and the 206 headers describe them.
    #[test]
    fn single_range_end_to_end(
        len in 1u64..100,
        first in prop::option::of(0u64..120),
        last in prop::option::of(0u64..120),
        cut in 0usize..100,
    ) {
        let header = format!(
            "bytes={}-{}",
            first.map(|f| f.to_string()).unwrap_or_default(),
            last.map(|l| l.to_string()).unwrap_or_default()
        );
        let body: Vec<u8> = (0..len).map(|i| u8::try_from(i % 251).unwrap()).collect();
        let spec = parse_range_header(header.as_bytes(), len, DEFAULT_MAX_RANGES);
        let mut headers = HeaderMap::new();
        let plan = range_response_headers(&mut headers, &spec, len);
        let mut filter = RangeBodyFilter::new(&plan.body);
        let cut = cut.min(body.len());
        let mut out = Vec::new();
        out.extend_from_slice(&filter.filter_body(Bytes::copy_from_slice(&body[..cut])));
        out.extend_from_slice(&filter.filter_body(Bytes::copy_from_slice(&body[cut..])));
        out.extend_from_slice(&filter.finish().expect("complete"));
        let declared = || -> u64 { headers[CONTENT_LENGTH].to_str().unwrap().parse().unwrap() };
        match spec {
            RangeSpec::Single(r) => {
                prop_assert_eq!(plan.status, StatusCode::PARTIAL_CONTENT);
                let (s, e) = (usize::try_from(r.start).unwrap(), usize::try_from(r.end).unwrap());
                prop_assert_eq!(&out[..], &body[s..e]);
                prop_assert_eq!(declared(), out.len() as u64);
            }
            RangeSpec::Invalid => {
                prop_assert_eq!(plan.status, StatusCode::RANGE_NOT_SATISFIABLE);
                prop_assert!(out.is_empty());
                prop_assert_eq!(declared(), 0);
            }
            RangeSpec::None => {
                prop_assert_eq!(plan.status, StatusCode::OK);
                prop_assert_eq!(&out[..], &body[..]);
            }
            RangeSpec::Multi(_) => prop_assert!(false, "one spec gave several ranges"),
        }
    }

    #[test]
    fn framed_length_matches_bytes_produced(
        len in 1usize..200,
        raw in prop::collection::vec((0usize..200, 0usize..200), 1..6),
        with_ct in any::<bool>(),
        cuts_seed in arb_chunks(200),
    ) {
        // Ascending, non-overlapping, non-empty ranges within `len`.
        let mut points: Vec<u64> = raw.iter().flat_map(|&(a, b)| [a % len, b % len]).map(|p| p as u64).collect();
        points.sort_unstable();
        points.dedup();
        let ranges: Vec<Range<u64>> = points.chunks_exact(2).map(|p| p[0]..p[1] + 1).collect();
        let ranges: Vec<Range<u64>> = ranges.into_iter().fold(Vec::new(), |mut acc: Vec<Range<u64>>, r| {
            if acc.last().is_none_or(|p| r.start >= p.end) { acc.push(r); }
            acc
        });
        prop_assume!(!ranges.is_empty());
        let body: Vec<u8> = (0..len).map(|i| u8::try_from(i % 251).unwrap()).collect();
        let ct = HeaderValue::from_static("text/html; charset=utf-8");
        let m = MultipartByteranges::new(ranges.clone(), len as u64, with_ct.then_some(&ct), MultipartByteranges::random_boundary());

        // Fed in arbitrary chunks.
        let mut cuts: Vec<usize> = cuts_seed.into_iter().filter(|&c| c <= len).collect();
        cuts.push(len);
        cuts.sort_unstable();
        cuts.dedup();
        let mut filter = RangeBodyFilter::new(&RangeBody::Multipart(m.clone()));
        let mut out = Vec::new();
        let mut at = 0;
        for c in cuts {
            out.extend_from_slice(&filter.filter_body(Bytes::copy_from_slice(&body[at..c])));
            at = c;
        }
        out.extend_from_slice(&filter.finish().expect("complete"));
        prop_assert_eq!(out.len() as u64, m.content_length());
        prop_assert_eq!(&out[..], &m.frame(&body).unwrap()[..]);
        let data_len: u64 = ranges.iter().map(|r| r.end - r.start).sum();
        prop_assert!(m.content_length() > data_len);
    }
}
