//! Variance computation (RFC 9111 §4.1): arbitrary `Vary` lines and request fields must never
//! panic, and the variance must depend only on the fields `Vary` names.
//!
//! Input: lines separated by `\n`. Lines before the first empty line are `Vary` values of the
//! response; the rest are request fields `name:value`.
#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue, header::VARY};
use larder_cache::VarianceBuilder;
use larder_cache::variance::{
    ABSENT_VALUE, VaryNames, normalized_value, variance_from_request, vary_is_any, vary_names,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut lines = data.split(|b| *b == b'\n');
    let mut resp = HeaderMap::new();
    for line in lines.by_ref() {
        if line.is_empty() {
            break;
        }
        if let Ok(v) = HeaderValue::from_bytes(line) {
            resp.append(VARY, v);
        }
    }
    let mut req = HeaderMap::new();
    for line in lines {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(&line[colon + 1..]),
        ) else {
            continue;
        };
        req.append(name, value);
    }

    let names = vary_names(&resp);
    assert_eq!(vary_is_any(&resp), names == VaryNames::Any);
    let variance = variance_from_request(&resp, &req);
    assert_eq!(
        variance,
        variance_from_request(&resp, &req),
        "deterministic"
    );
    match &names {
        VaryNames::Names(list) => {
            assert!(variance.is_some());
            assert!(
                list.windows(2).all(|w| w[0].as_str() < w[1].as_str()),
                "sorted, unique"
            );
            // Fields `Vary` does not name cannot change the variance.
            let mut extra = req.clone();
            let unnamed = HeaderName::from_static("x-fuzz-unnamed");
            if !list.contains(&unnamed) {
                extra.append(unnamed, HeaderValue::from_static("1"));
                assert_eq!(variance_from_request(&resp, &extra), variance);
            }
            // The same hash built by hand, in reverse order.
            let mut builder = VarianceBuilder::new();
            for name in list.iter().rev() {
                let value = normalized_value(&req, name).unwrap_or_else(|| ABSENT_VALUE.to_vec());
                builder.add_owned_name_value(name.as_str().to_owned(), value);
            }
            assert_eq!(builder.finalize(), variance);
        }
        VaryNames::None | VaryNames::Any => assert!(variance.is_none()),
    }
    // Normalisation is idempotent: a value rebuilt from its normalised form normalises the same.
    for name in req.keys() {
        if let Some(norm) = normalized_value(&req, name) {
            if let Ok(v) = HeaderValue::from_bytes(&norm) {
                let mut again = HeaderMap::new();
                again.insert(name.clone(), v);
                assert_eq!(normalized_value(&again, name), Some(norm));
            }
        }
    }
});
