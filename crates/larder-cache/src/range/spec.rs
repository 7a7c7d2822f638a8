//! What a `Range` header asks for (RFC 9110 §14.1–14.2, `If-Range` §13.1.5) and how a range
//! is written back (`Content-Range`, §14.4).

use std::ops::Range;
use std::time::{Duration, SystemTime};

use http::header::{CONTENT_RANGE, DATE, ETAG, IF_RANGE, LAST_MODIFIED, RANGE};
use http::{HeaderMap, HeaderValue, Method, StatusCode};

use crate::max_file_size::content_length;

/// The default limit on the number of range-specs in one `Range` header.
pub const DEFAULT_MAX_RANGES: usize = 200;

/// What a `Range` header asks of a representation of known length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeSpec {
    /// No range applies: send the full representation (`200`).
    None,
    /// One satisfiable range: a single-part `206`.
    Single(Range<u64>),
    /// Several satisfiable ranges, ascending and non-overlapping: a `multipart/byteranges` `206`.
    Multi(Vec<Range<u64>>),
    /// A valid header with no satisfiable range: `416`.
    Invalid,
}

/// Parse a `Range` field value against a representation of `content_length` bytes.
///
/// Never fails: see the [module docs](super) for what is ignored (`None`), skipped, or
/// unsatisfiable (`Invalid`). Numbers of any size are accepted (they saturate, RFC 9110 §14.1.2).
/// A `max_ranges` of 0 turns range support off.
pub fn parse_range_header(value: &[u8], content_length: u64, max_ranges: usize) -> RangeSpec {
    let value = value.trim_ascii();
    let Some(eq) = value.iter().position(|&b| b == b'=') else {
        return RangeSpec::None;
    };
    let (unit, set) = (value[..eq].trim_ascii(), &value[eq + 1..]);
    if !unit.eq_ignore_ascii_case(b"bytes") || content_length == 0 {
        return RangeSpec::None;
    }
    let mut ranges: Vec<Range<u64>> = Vec::new();
    let mut specs = 0usize;
    // RFC 9110 §5.6.1: empty list elements are allowed and ignored.
    for spec in set.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
        if spec.is_empty() {
            continue;
        }
        specs += 1;
        if specs > max_ranges {
            return RangeSpec::None;
        }
        let Some(parsed) = parse_range_spec(spec) else {
            return RangeSpec::None;
        };
        let Some(range) = parsed.resolve(content_length) else {
            continue; // unsatisfiable
        };
        if ranges.last().is_some_and(|prev| range.start < prev.end) {
            // Overlapping or descending (see the module docs).
            return RangeSpec::None;
        }
        ranges.push(range);
    }
    if specs == 0 {
        // `bytes=` with no range-spec is not a valid ranges-specifier.
        return RangeSpec::None;
    }
    match ranges.len() {
        0 => RangeSpec::Invalid,
        1 => RangeSpec::Single(ranges.swap_remove(0)),
        _ => RangeSpec::Multi(ranges),
    }
}

/// One syntactically valid byte range-spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ByteRangeSpec {
    /// `first-` or `first-last`.
    Int { first: u64, last: Option<u64> },
    /// `-suffix`.
    Suffix(u64),
}

impl ByteRangeSpec {
    /// The satisfiable range within `len` bytes (RFC 9110 §14.1.2), or `None` if unsatisfiable.
    fn resolve(self, len: u64) -> Option<Range<u64>> {
        match self {
            Self::Int { first, last } => {
                if first >= len {
                    return None;
                }
                let end = last.map_or(len, |last| last.saturating_add(1).min(len));
                Some(first..end)
            }
            Self::Suffix(0) => None,
            Self::Suffix(n) => Some(len.saturating_sub(n)..len),
        }
    }
}

/// Parse `first-[last]` or `-suffix`; `None` if malformed or `last < first`.
fn parse_range_spec(spec: &[u8]) -> Option<ByteRangeSpec> {
    let dash = spec.iter().position(|&b| b == b'-')?;
    let (first, last) = (&spec[..dash], &spec[dash + 1..]);
    if first.is_empty() {
        return Some(ByteRangeSpec::Suffix(parse_digits(last)?));
    }
    let first = parse_digits(first)?;
    let last = if last.is_empty() {
        None
    } else {
        Some(parse_digits(last)?)
    };
    if last.is_some_and(|last| last < first) {
        return None;
    }
    Some(ByteRangeSpec::Int { first, last })
}

/// `1*DIGIT`, saturating at `u64::MAX` rather than overflowing.
fn parse_digits(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(digits.iter().fold(0u64, |n, d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

/// Evaluate an `If-Range` value against the response headers (RFC 9110 §13.1.5).
///
/// - An entity-tag matches only by the strong comparison: both strong and byte-identical. A weak
///   `W/"..."` value never matches.
/// - An HTTP-date matches only if it equals the `Last-Modified` date *and* that date is a strong
///   validator: the response's `Date` is at least one second later (RFC 9110 §8.8.2.2).
/// - Anything else (including an invalid value) does not match: the range is ignored and the
///   full representation sent, which is always a correct answer.
pub fn if_range_matches(if_range: &[u8], resp_headers: &HeaderMap) -> bool {
    let value = if_range.trim_ascii();
    // RFC 9110 §13.1.5: an entity-tag is told from a date by a DQUOTE in the first three chars.
    if value.iter().take(3).any(|&b| b == b'"') {
        if value.starts_with(b"W/") || !is_strong_entity_tag(value) {
            return false;
        }
        return resp_headers
            .get(ETAG)
            .is_some_and(|etag| etag.as_bytes().trim_ascii() == value);
    }
    let Some(date) = parse_http_date(value) else {
        return false;
    };
    let Some(last_modified) = resp_headers
        .get(LAST_MODIFIED)
        .and_then(|v| parse_http_date(v.as_bytes()))
    else {
        return false;
    };
    let strong = resp_headers
        .get(DATE)
        .and_then(|v| parse_http_date(v.as_bytes()))
        .and_then(|d| d.duration_since(last_modified).ok())
        .is_some_and(|gap| gap >= Duration::from_secs(1));
    strong && date == last_modified
}

/// `DQUOTE *etagc DQUOTE` (RFC 9110 §8.8.3).
fn is_strong_entity_tag(v: &[u8]) -> bool {
    v.len() >= 2
        && v[0] == b'"'
        && v[v.len() - 1] == b'"'
        && v[1..v.len() - 1]
            .iter()
            .all(|&b| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80)
}

fn parse_http_date(v: &[u8]) -> Option<SystemTime> {
    httpdate::parse_http_date(std::str::from_utf8(v).ok()?.trim()).ok()
}

/// Decide which ranges of a response to send for a request (RFC 9110 §13.2.2 step 5 and §14.2).
///
/// Ranges apply only to `GET`, a `200` response without `Content-Range`, a valid `Content-Length`
/// (the caller sets it when the length is known from storage), exactly one `Range` field line, and
/// a matching `If-Range` if one is present; otherwise the answer is [`RangeSpec::None`]. Evaluate
/// this after the other preconditions ([`crate::conditional::evaluate`]): a `304` takes precedence.
pub fn range_for_request(
    method: &Method,
    req_headers: &HeaderMap,
    resp_status: StatusCode,
    resp_headers: &HeaderMap,
    max_ranges: usize,
) -> RangeSpec {
    if method != Method::GET
        || resp_status != StatusCode::OK
        || resp_headers.contains_key(CONTENT_RANGE)
    {
        return RangeSpec::None;
    }
    let mut range_lines = req_headers.get_all(RANGE).iter();
    let (Some(range), None) = (range_lines.next(), range_lines.next()) else {
        return RangeSpec::None;
    };
    let Some(len) = content_length(resp_headers) else {
        return RangeSpec::None;
    };
    let mut if_range_lines = req_headers.get_all(IF_RANGE).iter();
    match (if_range_lines.next(), if_range_lines.next()) {
        (None, _) => {}
        (Some(if_range), None) if if_range_matches(if_range.as_bytes(), resp_headers) => {}
        _ => return RangeSpec::None,
    }
    parse_range_header(range.as_bytes(), len, max_ranges)
}

/// `bytes first-last/complete-length` for a non-empty `range` (RFC 9110 §14.4).
///
/// # Panics
///
/// Never: the value is made of digits, a space, `-` and `/`.
pub fn content_range(range: &Range<u64>, complete_length: u64) -> HeaderValue {
    HeaderValue::from_str(&content_range_string(range, complete_length))
        .expect("digits, a space, '-' and '/' are valid header value bytes")
}

pub(super) fn content_range_string(range: &Range<u64>, complete_length: u64) -> String {
    format!(
        "bytes {}-{}/{complete_length}",
        range.start,
        range.end.saturating_sub(1)
    )
}

/// `bytes */complete-length`, for a `416` (RFC 9110 §14.4).
///
/// # Panics
///
/// Never: the value is made of digits, a space, `*` and `/`.
pub fn unsatisfied_content_range(complete_length: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("bytes */{complete_length}"))
        .expect("digits and ASCII punctuation are valid header value bytes")
}
