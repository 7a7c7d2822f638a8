//! Conditional requests: arbitrary bytes split into request precondition lines and stored
//! validators, evaluated for several methods, plus the entity-tag comparisons.
#![no_main]

use http::header::{
    DATE, ETAG, IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_UNMODIFIED_SINCE, LAST_MODIFIED,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use larder_cache::conditional::{Precondition, evaluate, strong_etag_match, weak_etag_match};
use libfuzzer_sys::fuzz_target;

const REQUEST: [HeaderName; 4] = [
    IF_MATCH,
    IF_NONE_MATCH,
    IF_MODIFIED_SINCE,
    IF_UNMODIFIED_SINCE,
];
const STORED: [HeaderName; 3] = [ETAG, LAST_MODIFIED, DATE];

fuzz_target!(|data: &[u8]| {
    let mut req = HeaderMap::new();
    let mut stored = HeaderMap::new();
    let lines: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    for (i, line) in lines.iter().enumerate() {
        let Ok(value) = HeaderValue::from_bytes(line) else {
            continue;
        };
        // Line i goes to a request precondition or a stored validator, chosen by its first byte.
        let pick = usize::from(line.first().copied().unwrap_or(0)) + i;
        if pick % 7 < 4 {
            req.append(REQUEST[pick % 7].clone(), value);
        } else {
            stored.append(STORED[pick % 7 - 4].clone(), value);
        }
    }
    for method in [Method::GET, Method::HEAD, Method::PUT, Method::OPTIONS] {
        let result = evaluate(&method, &req, StatusCode::OK, &stored);
        if result == Precondition::NotModified {
            assert!(method == Method::GET || method == Method::HEAD);
        }
        if req.is_empty() || method == Method::OPTIONS {
            assert_eq!(result, Precondition::Proceed);
        }
        assert_eq!(
            evaluate(&method, &req, StatusCode::NOT_FOUND, &stored),
            Precondition::Proceed
        );
    }
    if let [a, b, ..] = lines[..] {
        let (strong, weak) = (strong_etag_match(a, b), weak_etag_match(a, b));
        assert!(!strong || weak, "a strong match is a weak match");
        assert_eq!(strong, strong_etag_match(b, a));
        assert_eq!(weak, weak_etag_match(b, a));
    }
});
