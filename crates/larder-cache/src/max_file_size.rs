//! The maximum cacheable object size: a body byte counter and a prediction from `Content-Length`.
//!
//! A response whose `Content-Length` is over the limit is not cached at all
//! ([`content_length_exceeds`]); a response of unknown length (chunked, or read to the end) is
//! counted while it streams ([`MaxFileSizeTracker`]) and its write abandoned once it grows past the
//! limit.
//!
//! ```
//! use http::{HeaderMap, HeaderValue, header::CONTENT_LENGTH};
//! use larder_cache::max_file_size::{MaxFileSizeTracker, content_length_exceeds};
//!
//! let mut headers = HeaderMap::new();
//! headers.insert(CONTENT_LENGTH, HeaderValue::from_static("2048"));
//! assert!(content_length_exceeds(&headers, 1024));
//!
//! let mut tracker = MaxFileSizeTracker::new(1024);
//! assert!(tracker.add_body_bytes(1000));
//! assert!(tracker.add_body_bytes(24)); // exactly at the limit is allowed
//! assert!(!tracker.add_body_bytes(1));
//! assert!(tracker.exceeded());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use http::HeaderMap;
use http::header::CONTENT_LENGTH;

use crate::error::Error;

/// The error of a body that grew past the maximum size, under pingora-cache's name (there an
/// `ErrorType`). Return it as `Err(ERR_RESPONSE_TOO_LARGE)`; recognise it with
/// `matches!(error, Error::ResponseTooLarge)`.
///
/// ```
/// use larder_cache::Error;
/// use larder_cache::max_file_size::ERR_RESPONSE_TOO_LARGE;
///
/// let error = ERR_RESPONSE_TOO_LARGE;
/// assert!(matches!(error, Error::ResponseTooLarge));
/// ```
pub const ERR_RESPONSE_TOO_LARGE: Error = Error::ResponseTooLarge;

/// Counts body bytes against a maximum size. Bodies of exactly `max` bytes are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxFileSizeTracker {
    body_bytes: usize,
    max: usize,
}

impl MaxFileSizeTracker {
    /// A tracker allowing bodies of at most `max` bytes.
    pub fn new(max: usize) -> Self {
        Self { body_bytes: 0, max }
    }

    /// Count `len` more body bytes. Returns `false` once the total is over the maximum (and on
    /// every later call).
    pub fn add_body_bytes(&mut self, len: usize) -> bool {
        self.body_bytes = self.body_bytes.saturating_add(len);
        self.allowed()
    }

    /// Whether the bytes counted so far are over the maximum.
    pub fn exceeded(&self) -> bool {
        !self.allowed()
    }

    /// The maximum body size in bytes.
    pub fn max(&self) -> usize {
        self.max
    }

    /// The body bytes counted so far (saturating at `usize::MAX`).
    pub fn body_bytes(&self) -> usize {
        self.body_bytes
    }

    fn allowed(&self) -> bool {
        self.body_bytes <= self.max
    }
}

/// The response's `Content-Length`, if it is present and valid.
///
/// RFC 9110 §8.6: the value is one or more digits. Several field lines or a comma-separated list of
/// the *same* value are accepted (a recipient may treat them as one); differing values, an empty
/// value or anything that is not a decimal number give `None` (the length is unknown).
pub fn content_length(headers: &HeaderMap) -> Option<u64> {
    let mut length = None;
    for value in headers.get_all(CONTENT_LENGTH) {
        for member in value.as_bytes().split(|&b| b == b',') {
            let n = parse_decimal(member.trim_ascii())?;
            match length {
                Some(l) if l != n => return None,
                _ => length = Some(n),
            }
        }
    }
    length
}

fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    digits.iter().try_fold(0u64, |n, d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// Whether the response's `Content-Length` says its body is larger than `max` bytes.
///
/// An absent or invalid `Content-Length` gives `false`: the size is unknown, so the body has to be
/// counted while it streams ([`MaxFileSizeTracker`]).
pub fn content_length_exceeds(headers: &HeaderMap, max: usize) -> bool {
    content_length(headers).is_some_and(|len| u128::from(len) > max as u128)
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;
    use proptest::prelude::*;

    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(CONTENT_LENGTH, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn tracker_allows_up_to_max() {
        let mut t = MaxFileSizeTracker::new(10);
        assert_eq!(t.max(), 10);
        assert!(!t.exceeded());
        assert!(t.add_body_bytes(0));
        assert!(t.add_body_bytes(10));
        assert!(!t.exceeded());
        assert!(!t.add_body_bytes(1));
        assert!(t.exceeded());
        assert!(!t.add_body_bytes(0));
        assert_eq!(t.body_bytes(), 11);
    }

    #[test]
    fn tracker_saturates() {
        let mut t = MaxFileSizeTracker::new(usize::MAX);
        assert!(t.add_body_bytes(usize::MAX));
        assert!(t.add_body_bytes(usize::MAX));
        assert_eq!(t.body_bytes(), usize::MAX);
        let mut zero = MaxFileSizeTracker::new(0);
        assert!(zero.add_body_bytes(0));
        assert!(!zero.add_body_bytes(1));
    }

    #[test]
    fn content_length_cases() {
        let check = |values: &[&str], expect: Option<u64>| {
            assert_eq!(content_length(&headers(values)), expect, "{values:?}");
        };
        check(&[], None);
        check(&["0"], Some(0));
        check(&["42"], Some(42));
        check(&[" 42 "], Some(42));
        check(&["42, 42"], Some(42));
        check(&["42", "42"], Some(42));
        check(&["42", "43"], None);
        check(&["42, 43"], None);
        check(&[""], None);
        check(&["-1"], None);
        check(&["+1"], None);
        check(&["1e3"], None);
        check(&["0x10"], None);
        check(&["18446744073709551615"], Some(u64::MAX));
        check(&["18446744073709551616"], None);
    }

    #[test]
    fn exceeds_only_when_known_and_larger() {
        assert!(!content_length_exceeds(&headers(&[]), 0));
        assert!(!content_length_exceeds(&headers(&["100"]), 100));
        assert!(content_length_exceeds(&headers(&["101"]), 100));
        assert!(!content_length_exceeds(&headers(&["bogus"]), 0));
        assert!(content_length_exceeds(
            &headers(&["18446744073709551615"]),
            usize::MAX - 1
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn content_length_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..40)) {
            if let Ok(v) = HeaderValue::from_bytes(&bytes) {
                let mut h = HeaderMap::new();
                h.insert(CONTENT_LENGTH, v);
                let _ = content_length_exceeds(&h, 1000);
            }
        }

        #[test]
        fn content_length_round_trips(n in any::<u64>()) {
            prop_assert_eq!(content_length(&headers(&[&n.to_string()])), Some(n));
        }
    }
}
