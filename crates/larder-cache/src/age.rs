//! Age calculation (RFC 9111 §4.2.3).
//!
//! ```text
//! apparent_age          = max(0, response_time - date_value)
//! response_delay        = response_time - request_time
//! corrected_age_value   = age_value + response_delay
//! corrected_initial_age = max(apparent_age, corrected_age_value)
//! resident_time         = now - response_time
//! current_age           = corrected_initial_age + resident_time
//! ```
//!
//! Every step saturates: clocks that disagree never produce a negative age or an overflow.
//! [`filters::resp_cacheable_at`](crate::filters::resp_cacheable_at) folds the corrected initial
//! age into the stored meta by setting `created = response_time − corrected_initial_age`, so
//! `CacheMeta::age(now)` is the RFC's `current_age`.

use std::time::{Duration, SystemTime};

use http::HeaderMap;
use http::header::{AGE, DATE};

/// When the request was sent upstream and when its response arrived (RFC 9111 §4.2.3
/// `request_time` and `response_time`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseTimes {
    /// The local time the request that produced the response was sent.
    pub request_time: SystemTime,
    /// The local time the response was received.
    pub response_time: SystemTime,
}

impl ResponseTimes {
    /// Both times set to `now` (no measured delay).
    pub fn at(now: SystemTime) -> Self {
        Self {
            request_time: now,
            response_time: now,
        }
    }
}

/// The `Age` header as a duration (RFC 9111 §5.1). Only the first value counts: the first
/// member of the first line (so `Age: 7200, 0` is 7200, as the public cache test suite
/// expects), with any `;parameters` ignored. A missing or invalid value (negative, fractional,
/// not a number) gives `None` and is ignored; an overflowing value is capped at 2^31 seconds
/// (§1.2.2).
pub fn age_value(headers: &HeaderMap) -> Option<Duration> {
    let line = headers.get(AGE)?.as_bytes();
    let first = line.split(|b| *b == b',').next().unwrap_or_default();
    let value = first.split(|b| *b == b';').next().unwrap_or_default();
    parse_delta_seconds(value).map(Duration::from_secs)
}

/// Parses delta-seconds (RFC 9111 §1.2.2): one or more digits, capped at 2^31.
pub(crate) fn parse_delta_seconds(bytes: &[u8]) -> Option<u64> {
    const CAP: u64 = 1 << 31;
    let bytes = trim_ows(bytes);
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut value: u64 = 0;
    for digit in bytes {
        value = value * 10 + u64::from(digit - b'0');
        if value >= CAP {
            return Some(CAP);
        }
    }
    Some(value)
}

pub(crate) fn trim_ows(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = bytes {
        bytes = rest;
    }
    bytes
}

/// The `Date` header as a time, if present exactly once and valid (RFC 9110 §6.6.1).
pub fn date_value(headers: &HeaderMap) -> Option<SystemTime> {
    single_http_date(headers, &DATE)
}

/// Parses a header that must appear once and hold an HTTP-date.
pub(crate) fn single_http_date(headers: &HeaderMap, name: &http::HeaderName) -> Option<SystemTime> {
    let mut values = headers.get_all(name).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    parse_http_date_lenient(value.to_str().ok()?.trim())
}

const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const LONG_WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Parses an HTTP-date (RFC 9110 §5.6.7: IMF-fixdate, rfc850-date or asctime-date). Beyond the
/// strict grammar it accepts, as many caches do, day, month and `GMT` names in any letter case
/// and a day name that does not match the date; every other deviation (another time zone, a
/// two-digit year in IMF-fixdate, missing commas, extra spaces, ...) is still invalid.
pub fn parse_http_date_lenient(value: &str) -> Option<SystemTime> {
    if let Ok(t) = httpdate::parse_http_date(value) {
        return Some(t);
    }
    // Canonical letter case for the known names; other words are left alone.
    let mut canonical = String::with_capacity(value.len());
    let mut rest = value;
    while !rest.is_empty() {
        let word_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        if word_len == 0 {
            let c = rest.chars().next()?;
            canonical.push(c);
            rest = &rest[c.len_utf8()..];
            continue;
        }
        let word = &rest[..word_len];
        let known = WEEKDAYS
            .iter()
            .chain(&LONG_WEEKDAYS)
            .chain(&MONTHS)
            .chain(&["GMT"])
            .find(|name| name.eq_ignore_ascii_case(word));
        canonical.push_str(known.map_or(word, |name| name));
        rest = &rest[word_len..];
    }
    if let Ok(t) = httpdate::parse_http_date(&canonical) {
        return Some(t);
    }
    // A day name that disagrees with the date: try the others.
    let day_len = canonical
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(canonical.len());
    let names: &[&str] = if day_len > 3 {
        &LONG_WEEKDAYS
    } else {
        &WEEKDAYS
    };
    names
        .iter()
        .find_map(|day| httpdate::parse_http_date(&format!("{day}{}", &canonical[day_len..])).ok())
}

/// `max(0, response_time − date_value)`; zero without a `Date`.
pub fn apparent_age(date_value: Option<SystemTime>, response_time: SystemTime) -> Duration {
    date_value
        .and_then(|date| response_time.duration_since(date).ok())
        .unwrap_or_default()
}

/// The corrected initial age of a response (RFC 9111 §4.2.3).
pub fn corrected_initial_age(
    age_value: Option<Duration>,
    date_value: Option<SystemTime>,
    times: ResponseTimes,
) -> Duration {
    let response_delay = times
        .response_time
        .duration_since(times.request_time)
        .unwrap_or_default();
    let corrected_age_value = age_value.unwrap_or_default().saturating_add(response_delay);
    apparent_age(date_value, times.response_time).max(corrected_age_value)
}

/// The corrected initial age computed from a response's `Age` and `Date` headers.
pub fn corrected_initial_age_of(headers: &HeaderMap, times: ResponseTimes) -> Duration {
    corrected_initial_age(age_value(headers), date_value(headers), times)
}

/// `current_age = corrected_initial_age + (now − response_time)`, never negative.
pub fn current_age(
    corrected_initial_age: Duration,
    response_time: SystemTime,
    now: SystemTime,
) -> Duration {
    let resident_time = now.duration_since(response_time).unwrap_or_default();
    corrected_initial_age.saturating_add(resident_time)
}

/// The instant from which `CacheMeta::age` counts so that it equals `current_age`:
/// `response_time − corrected_initial_age`, clamped at the Unix epoch.
pub fn age_epoch(response_time: SystemTime, corrected_initial_age: Duration) -> SystemTime {
    response_time
        .checked_sub(corrected_initial_age)
        .unwrap_or(SystemTime::UNIX_EPOCH)
        .max(SystemTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use proptest::prelude::*;

    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn rfc_formula_takes_the_larger_estimate() {
        // Age says 10 s, the trip took 2 s, Date says 5 s ago: corrected_age_value = 12 wins.
        let times = ResponseTimes {
            request_time: t(1_000),
            response_time: t(1_002),
        };
        let age = corrected_initial_age(Some(Duration::from_secs(10)), Some(t(997)), times);
        assert_eq!(age, Duration::from_secs(12));
        // Date 30 s ago beats a small Age.
        let age = corrected_initial_age(Some(Duration::from_secs(1)), Some(t(972)), times);
        assert_eq!(age, Duration::from_secs(30));
        // A Date in the future counts as zero.
        let age = corrected_initial_age(None, Some(t(5_000)), times);
        assert_eq!(age, Duration::from_secs(2));
    }

    #[test]
    fn age_header_parsing() {
        let check = |values: &[&str], expect: Option<u64>| {
            let mut h = HeaderMap::new();
            for v in values {
                h.append(AGE, HeaderValue::from_str(v).unwrap());
            }
            assert_eq!(age_value(&h), expect.map(Duration::from_secs), "{values:?}");
        };
        check(&[], None);
        check(&["0"], Some(0));
        check(&["120"], Some(120));
        check(&[" 7 "], Some(7));
        check(&["-1"], None);
        check(&["1.5"], None);
        check(&["abc"], None);
        check(&["99999999999999999999999"], Some(1 << 31));
        check(&["5", "5"], Some(5));
        // The first value wins (cache-tests age-parse).
        check(&["7200", "0"], Some(7200));
        check(&["0", "7200"], Some(0));
        check(&["7200, 0"], Some(7200));
        check(&["0, 7200"], Some(0));
        check(&["7200;foo=bar"], Some(7200));
        check(&["2147483649"], Some(1 << 31));
        check(&["", "5"], None);
    }

    #[test]
    fn http_date_leniency() {
        let valid = |s: &str| parse_http_date_lenient(s).is_some();
        // cache-tests expires-parse: accepted.
        assert!(valid("Thu, 18 Aug 2050 02:01:18 GMT"));
        assert!(valid("THU, 18 Aug 2050 02:01:18 GMT"));
        assert!(valid("Thu, 18 AUG 2050 02:01:18 GMT"));
        assert!(valid("Thu, 18 Aug 2050 02:01:18 gMT"));
        assert!(valid("Thu Aug  8 02:01:18 2050"));
        assert!(valid("Thursday, 18-Aug-50 02:01:18 GMT"));
        assert_eq!(
            parse_http_date_lenient("Mon, 18 Aug 2050 02:01:18 GMT"),
            parse_http_date_lenient("Thu, 18 Aug 2050 02:01:18 GMT")
        );
        // Still invalid.
        for s in [
            "Thu, 18 Aug 2050 02:01:18 UTC",
            "Thu, 18 Aug 2050 02:01:18 AEST",
            "Thu, 18 Aug 50 02:01:18 GMT",
            "Thu 18 Aug 2050 02:01:18 GMT",
            "Thu, 18  Aug  2050 02:01:18 GMT",
            "Thu, 18-Aug-2050 02:01:18 GMT",
            "Thu, 18 Aug 2050 02.01.18 GMT",
            "Thu, 18 Aug 2050 2:01:18 GMT",
            "0",
            "",
            "Thü, 18 Aug 2050 02:01:18 GMT",
        ] {
            assert!(!valid(s), "{s}");
        }
    }

    #[test]
    fn epoch_makes_meta_age_equal_current_age() {
        let epoch = age_epoch(t(1_000), Duration::from_secs(30));
        assert_eq!(epoch, t(970));
        assert_eq!(
            age_epoch(t(10), Duration::from_secs(30)),
            SystemTime::UNIX_EPOCH
        );
        assert_eq!(
            current_age(Duration::from_secs(30), t(1_000), t(1_005)),
            Duration::from_secs(35)
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn ages_never_negative_or_panic(
            req in 0u64..4_000_000_000,
            delay in 0u64..100_000,
            date in proptest::option::of(0u64..4_000_000_000),
            age in proptest::option::of(0u64..(1 << 32)),
            resident in 0u64..1_000_000,
        ) {
            let times = ResponseTimes { request_time: t(req), response_time: t(req + delay) };
            let initial = corrected_initial_age(age.map(Duration::from_secs), date.map(t), times);
            // At least the measured delay and the Age header, at least the apparent age.
            prop_assert!(initial >= Duration::from_secs(delay));
            prop_assert!(initial >= Duration::from_secs(age.unwrap_or(0)));
            prop_assert!(initial >= apparent_age(date.map(t), times.response_time));
            let now = t(req + delay + resident);
            let current = current_age(initial, times.response_time, now);
            prop_assert_eq!(current, initial + Duration::from_secs(resident));
            // Folding into an epoch and reading it back gives the same age unless clamped.
            let epoch = age_epoch(times.response_time, initial);
            let back = now.duration_since(epoch).unwrap_or_default();
            if times.response_time.duration_since(SystemTime::UNIX_EPOCH).unwrap() >= initial {
                prop_assert_eq!(back, current);
            } else {
                prop_assert!(back <= current);
            }
        }

        #[test]
        fn delta_seconds_never_panics(s in "\\PC*") {
            let _ = parse_delta_seconds(s.as_bytes());
        }

        #[test]
        fn dates_never_panic(s in "\\PC{0,40}") {
            let _ = parse_http_date_lenient(&s);
        }

        #[test]
        fn formatted_dates_round_trip(secs in 0u64..8_000_000_000) {
            let time = t(secs);
            prop_assert_eq!(parse_http_date_lenient(&httpdate::fmt_http_date(time)), Some(time));
        }

        #[test]
        fn delta_seconds_roundtrip(n in 0u64..(1 << 31)) {
            prop_assert_eq!(parse_delta_seconds(n.to_string().as_bytes()), Some(n));
        }
    }
}
