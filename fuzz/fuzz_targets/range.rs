//! Range requests: arbitrary bytes as a `Range` value against an arbitrary length, then the
//! 200/206/416 headers and the body filter, checking every accepted range is in bounds and the
//! declared Content-Length equals the bytes produced.
#![no_main]

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, ETAG, LAST_MODIFIED};
use http::{HeaderMap, HeaderValue, StatusCode};
use larder_cache::range::{
    RangeBody, RangeBodyFilter, RangeSpec, if_range_matches, parse_range_header,
    range_response_headers,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    // Two bytes of length (kept small so the body can be materialised), one of range limit.
    let len = u64::from(u16::from_le_bytes([data[0], data[1]]) % 4096);
    let max_ranges = usize::from(data[2] % 16);
    let value = &data[3..];

    let spec = parse_range_header(value, len, max_ranges);
    let ranges: &[std::ops::Range<u64>] = match &spec {
        RangeSpec::Single(r) => std::slice::from_ref(r),
        RangeSpec::Multi(rs) => {
            assert!(rs.len() >= 2 && rs.len() <= max_ranges);
            rs
        }
        RangeSpec::None | RangeSpec::Invalid => &[],
    };
    let mut prev_end = 0;
    for r in ranges {
        assert!(r.start < r.end && r.end <= len, "{r:?} of {len}");
        assert!(r.start >= prev_end, "ranges ascend without overlap");
        prev_end = r.end;
    }

    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    let plan = range_response_headers(&mut headers, &spec, len);
    let body: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    let mut filter = RangeBodyFilter::new(&plan.body);
    let mut out = Vec::new();
    // Feed the body in chunks whose sizes come from the input.
    let mut at = 0usize;
    let mut steps = value.iter().cycle();
    while at < body.len() {
        let step = steps.next().map_or(64, |&b| usize::from(b));
        let end = (at + step + 1).min(body.len());
        out.extend_from_slice(&filter.filter_body(Bytes::copy_from_slice(&body[at..end])));
        at = end;
    }
    out.extend_from_slice(&filter.finish().expect("the whole body was fed"));
    let declared: u64 = headers[CONTENT_LENGTH]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("a number");
    match (&spec, &plan.body) {
        (RangeSpec::None, RangeBody::Full) => assert_eq!(plan.status, StatusCode::OK),
        (RangeSpec::Single(r), RangeBody::Single(_)) => {
            assert_eq!(out, body[r.start as usize..r.end as usize]);
        }
        (RangeSpec::Multi(_), RangeBody::Multipart(m)) => {
            assert_eq!(m.frame(&body).expect("complete"), out);
        }
        (RangeSpec::Invalid, RangeBody::Empty) => assert!(out.is_empty()),
        other => panic!("spec and body disagree: {other:?}"),
    }
    assert_eq!(declared, out.len() as u64);

    // If-Range against arbitrary validators.
    let mut resp = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_bytes(value) {
        resp.insert(ETAG, v.clone());
        resp.insert(LAST_MODIFIED, v);
    }
    let _ = if_range_matches(value, &resp);
});
