//! Range requests (RFC 9110 §14): parse `Range`, evaluate `If-Range`, build 206/416 headers and
//! frame `multipart/byteranges` bodies.
//!
//! The flow for a cached (or streaming) full `200` response of known length:
//! 1. [`range_for_request`] decides, from the request and the response, whether the `Range` header
//!    applies and parses it into a [`RangeSpec`];
//! 2. [`range_response_headers`] turns the response headers into those of the `200`, `206` or
//!    `416` response and says which body to send ([`RangeBody`]);
//! 3. [`RangeBodyFilter`] cuts the full body, chunk by chunk, into that body (or a seekable storage
//!    serves each range with the part headers of [`MultipartByteranges`]).
//!
//! # Policy
//!
//! - Only `GET` requests of `200` responses with a valid `Content-Length` get ranges
//!   (RFC 9110 §14.2: GET is the only method range handling is defined for).
//! - An unknown range unit, a malformed ranges-specifier (including `last-pos < first-pos`), or a
//!   zero-length representation: the header is ignored and the full `200` is sent (RFC 9110 §14.2
//!   allows ignoring all of these).
//! - Unsatisfiable range-specs (a first-pos at or past the end, a zero suffix) are skipped; if none
//!   is left the answer is `416` with `Content-Range: bytes */len`.
//! - More than `max_ranges` range-specs, or satisfiable ranges that overlap or are not in ascending
//!   order: the header is ignored and the full `200` is sent. RFC 9110 §14.2 names both as signs of
//!   a broken client or a denial-of-service attempt (§17.15) and allows ignoring them. This is what
//!   nginx does; it bounds a multipart response to at most the representation's bytes plus
//!   `max_ranges` part headers, so a small request cannot ask for many copies of a large body.
//!   Adjacent ranges (`0-9,10-19`) are neither overlapping nor coalesced.
//!
//! ```
//! use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
//! use larder_cache::range::{RangeBody, RangeSpec, range_for_request, range_response_headers};
//!
//! let mut req = HeaderMap::new();
//! req.insert(header::RANGE, HeaderValue::from_static("bytes=0-3"));
//! let mut resp = HeaderMap::new();
//! resp.insert(header::CONTENT_LENGTH, HeaderValue::from_static("10"));
//!
//! let spec = range_for_request(&Method::GET, &req, StatusCode::OK, &resp, 200);
//! assert_eq!(spec, RangeSpec::Single(0..4));
//! let plan = range_response_headers(&mut resp, &spec, 10);
//! assert_eq!(plan.status, StatusCode::PARTIAL_CONTENT);
//! assert_eq!(resp[header::CONTENT_RANGE], "bytes 0-3/10");
//! assert_eq!(resp[header::CONTENT_LENGTH], "4");
//! assert!(matches!(plan.body, RangeBody::Single(ref r) if *r == (0..4)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::ops::Range;
use std::time::{Duration, SystemTime};

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{
    ACCEPT_RANGES, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, DATE, ETAG,
    IF_RANGE, LAST_MODIFIED, RANGE, TRANSFER_ENCODING,
};
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
/// Never fails: see the [module docs](self) for what is ignored (`None`), skipped, or
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

/// The body to send after [`range_response_headers`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeBody {
    /// The whole representation.
    Full,
    /// This byte range of the representation.
    Single(Range<u64>),
    /// These ranges, framed as `multipart/byteranges`.
    Multipart(MultipartByteranges),
    /// No body (the `416`).
    Empty,
}

/// The status and body [`range_response_headers`] chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeResponse {
    /// `200`, `206` or `416`.
    pub status: StatusCode,
    /// What to send as the body.
    pub body: RangeBody,
}

/// Rewrite the headers of a full `200` response of `content_length` bytes for `spec`
/// (RFC 9110 §14.4, §15.3.7, §15.5.17), and say which status and body to send.
///
/// - [`RangeSpec::None`]: `200`, adds `Accept-Ranges: bytes`.
/// - [`RangeSpec::Single`]: `206` with `Content-Range: bytes first-last/len` and the part's
///   `Content-Length`.
/// - [`RangeSpec::Multi`]: `206` with `Content-Type: multipart/byteranges; boundary=...` (a random
///   boundary) and the exact `Content-Length` of the framed body; no `Content-Range`.
/// - [`RangeSpec::Invalid`]: `416` with `Content-Range: bytes */len`, `Content-Length: 0`, and no
///   content headers.
///
/// `Transfer-Encoding` is removed whenever a `Content-Length` is set.
pub fn range_response_headers(
    headers: &mut HeaderMap,
    spec: &RangeSpec,
    content_length: u64,
) -> RangeResponse {
    match spec {
        RangeSpec::None => {
            headers.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            RangeResponse {
                status: StatusCode::OK,
                body: RangeBody::Full,
            }
        }
        RangeSpec::Single(range) => {
            headers.insert(CONTENT_RANGE, content_range(range, content_length));
            headers.insert(CONTENT_LENGTH, HeaderValue::from(range.end - range.start));
            headers.remove(ACCEPT_RANGES);
            headers.remove(TRANSFER_ENCODING);
            RangeResponse {
                status: StatusCode::PARTIAL_CONTENT,
                body: RangeBody::Single(range.clone()),
            }
        }
        RangeSpec::Multi(ranges) => {
            let multipart = MultipartByteranges::new(
                ranges.clone(),
                content_length,
                headers.get(CONTENT_TYPE),
                MultipartByteranges::random_boundary(),
            );
            headers.insert(CONTENT_TYPE, multipart.content_type());
            headers.insert(
                CONTENT_LENGTH,
                HeaderValue::from(multipart.content_length()),
            );
            headers.remove(CONTENT_RANGE);
            headers.remove(ACCEPT_RANGES);
            headers.remove(TRANSFER_ENCODING);
            RangeResponse {
                status: StatusCode::PARTIAL_CONTENT,
                body: RangeBody::Multipart(multipart),
            }
        }
        RangeSpec::Invalid => {
            headers.insert(CONTENT_RANGE, unsatisfied_content_range(content_length));
            headers.insert(CONTENT_LENGTH, HeaderValue::from(0u64));
            for name in [
                CONTENT_TYPE,
                CONTENT_ENCODING,
                TRANSFER_ENCODING,
                ACCEPT_RANGES,
            ] {
                headers.remove(name);
            }
            RangeResponse {
                status: StatusCode::RANGE_NOT_SATISFIABLE,
                body: RangeBody::Empty,
            }
        }
    }
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

fn content_range_string(range: &Range<u64>, complete_length: u64) -> String {
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

/// The framing of a `multipart/byteranges` body (RFC 9110 §14.6, RFC 2046 §5.1.1).
///
/// The body is, for each part, its [`part header`](Self::part_header) followed by the part's bytes
/// of the representation, then the [`closing delimiter`](Self::closing):
///
/// ```text
/// --BOUNDARY\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-3/10\r\n\r\n<4 bytes>
/// \r\n--BOUNDARY\r\nContent-Type: text/plain\r\nContent-Range: bytes 6-9/10\r\n\r\n<4 bytes>
/// \r\n--BOUNDARY--\r\n
/// ```
/// (line breaks added). [`content_length`](Self::content_length) is exact and known up front.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultipartByteranges {
    ranges: Vec<Range<u64>>,
    complete_length: u64,
    part_content_type: Option<Vec<u8>>,
    boundary: String,
    content_length: u64,
}

impl MultipartByteranges {
    /// Frame `ranges` (non-empty ranges within `complete_length`, as [`parse_range_header`] gives)
    /// of a representation whose `Content-Type` is `content_type` (repeated in each part; omitted
    /// if `None`), separated by `boundary`.
    ///
    /// The boundary should be 1 to 70 characters that cannot occur in the data; a random one
    /// ([`random_boundary`](Self::random_boundary)) makes a collision practically impossible.
    pub fn new(
        ranges: Vec<Range<u64>>,
        complete_length: u64,
        content_type: Option<&HeaderValue>,
        boundary: String,
    ) -> Self {
        let mut framing = Self {
            ranges,
            complete_length,
            part_content_type: content_type.map(|v| v.as_bytes().to_vec()),
            boundary,
            content_length: 0,
        };
        let headers: u64 = (0..framing.ranges.len())
            .map(|i| framing.part_header_len(i))
            .sum();
        let data: u64 = framing.ranges.iter().map(|r| r.end - r.start).sum();
        framing.content_length = headers + data + framing.closing_len();
        framing
    }

    /// A random 16-hex-digit boundary.
    pub fn random_boundary() -> String {
        format!("{:016x}", rand::random::<u64>())
    }

    /// The boundary string.
    pub fn boundary(&self) -> &str {
        &self.boundary
    }

    /// The ranges, in the order they are sent.
    pub fn ranges(&self) -> &[Range<u64>] {
        &self.ranges
    }

    /// `multipart/byteranges; boundary=...`, the response's `Content-Type`.
    ///
    /// # Panics
    ///
    /// If the boundary contains bytes not allowed in a header value (a caller-chosen boundary
    /// should use RFC 2046 `bchars`).
    pub fn content_type(&self) -> HeaderValue {
        HeaderValue::from_str(&format!("multipart/byteranges; boundary={}", self.boundary))
            .expect("the boundary is made of header-safe characters")
    }

    /// The exact length of the whole framed body.
    pub fn content_length(&self) -> u64 {
        self.content_length
    }

    /// The delimiter and headers that precede part `index`'s bytes.
    ///
    /// # Panics
    ///
    /// If `index` is not below `ranges().len()`.
    pub fn part_header(&self, index: usize) -> Bytes {
        let mut out =
            BytesMut::with_capacity(usize::try_from(self.part_header_len(index)).unwrap_or(0));
        if index > 0 {
            out.put_slice(b"\r\n");
        }
        out.put_slice(b"--");
        out.put_slice(self.boundary.as_bytes());
        out.put_slice(b"\r\n");
        if let Some(ct) = &self.part_content_type {
            out.put_slice(b"Content-Type: ");
            out.put_slice(ct);
            out.put_slice(b"\r\n");
        }
        out.put_slice(b"Content-Range: ");
        out.put_slice(content_range_string(&self.ranges[index], self.complete_length).as_bytes());
        out.put_slice(b"\r\n\r\n");
        out.freeze()
    }

    /// The closing delimiter, sent after the last part.
    pub fn closing(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.boundary.len() + 8);
        out.put_slice(b"\r\n--");
        out.put_slice(self.boundary.as_bytes());
        out.put_slice(b"--\r\n");
        out.freeze()
    }

    /// The whole framed body, from the whole representation in memory.
    ///
    /// Returns `None` if `representation` is shorter than the ranges need.
    pub fn frame(&self, representation: &[u8]) -> Option<Bytes> {
        let mut filter = RangeBodyFilter::new(&RangeBody::Multipart(self.clone()));
        let mut out = BytesMut::new();
        out.put(filter.filter_body(Bytes::copy_from_slice(representation)));
        out.put(filter.finish()?);
        Some(out.freeze())
    }

    fn part_header_len(&self, index: usize) -> u64 {
        let delimiter = if index > 0 { 2 } else { 0 } + 2 + self.boundary.len() + 2;
        let content_type = self
            .part_content_type
            .as_ref()
            .map_or(0, |ct| "Content-Type: ".len() + ct.len() + 2);
        let content_range = "Content-Range: ".len()
            + content_range_string(&self.ranges[index], self.complete_length).len()
            + 4;
        (delimiter + content_type + content_range) as u64
    }

    fn closing_len(&self) -> u64 {
        (2 + 2 + self.boundary.len() + 2 + 2) as u64
    }
}

/// Cuts a full representation, fed chunk by chunk in order, into the body a [`RangeBody`] asks for.
///
/// ```
/// use bytes::Bytes;
/// use larder_cache::range::{RangeBody, RangeBodyFilter};
///
/// let mut filter = RangeBodyFilter::new(&RangeBody::Single(3..7));
/// let mut out = Vec::new();
/// for chunk in ["01234", "56789"] {
///     out.extend_from_slice(&filter.filter_body(Bytes::from(chunk)));
/// }
/// out.extend_from_slice(&filter.finish().expect("the body was complete"));
/// assert_eq!(out, b"3456");
/// ```
#[derive(Debug, Clone)]
pub struct RangeBodyFilter {
    body: RangeBody,
    /// Offset in the representation of the next byte fed in.
    cursor: u64,
    /// The multipart part being sent (the first one not complete).
    part: usize,
    /// Whether that part's header was sent.
    header_sent: bool,
}

impl RangeBodyFilter {
    /// A filter producing `body`.
    pub fn new(body: &RangeBody) -> Self {
        Self {
            body: body.clone(),
            cursor: 0,
            part: 0,
            header_sent: false,
        }
    }

    /// Feed the next chunk of the representation; returns the bytes to send for it (possibly
    /// empty).
    pub fn filter_body(&mut self, chunk: Bytes) -> Bytes {
        let start = self.cursor;
        let end = start.saturating_add(chunk.len() as u64);
        self.cursor = end;
        match &self.body {
            RangeBody::Full => chunk,
            RangeBody::Empty => Bytes::new(),
            RangeBody::Single(range) => slice(&chunk, start, range).unwrap_or_default(),
            RangeBody::Multipart(multipart) => {
                let mut out = BytesMut::new();
                while let Some(range) = multipart.ranges.get(self.part) {
                    if range.start >= end {
                        break;
                    }
                    if let Some(data) = slice(&chunk, start, range) {
                        if !self.header_sent {
                            out.put(multipart.part_header(self.part));
                            self.header_sent = true;
                        }
                        out.put(data);
                    }
                    if range.end > end {
                        break;
                    }
                    // This part is complete.
                    self.part += 1;
                    self.header_sent = false;
                }
                out.freeze()
            }
        }
    }

    /// Call once the whole representation was fed in: returns the final bytes to send (the
    /// closing delimiter of a multipart body), or `None` if the representation ended before the
    /// last requested byte (the response must then be aborted, not ended cleanly).
    pub fn finish(&mut self) -> Option<Bytes> {
        match &self.body {
            RangeBody::Full | RangeBody::Empty => Some(Bytes::new()),
            RangeBody::Single(range) => (self.cursor >= range.end).then(Bytes::new),
            RangeBody::Multipart(multipart) => {
                (self.part == multipart.ranges.len()).then(|| multipart.closing())
            }
        }
    }
}

/// The part of `chunk` (which starts at offset `start` of the representation) inside `range`.
fn slice(chunk: &Bytes, start: u64, range: &Range<u64>) -> Option<Bytes> {
    let end = start.saturating_add(chunk.len() as u64);
    let from = range.start.max(start);
    let to = range.end.min(end);
    if from >= to {
        return None;
    }
    // Both offsets are within the chunk, whose length is a usize.
    let (from, to) = (
        usize::try_from(from - start).ok()?,
        usize::try_from(to - start).ok()?,
    );
    Some(chunk.slice(from..to))
}

#[cfg(test)]
mod tests {
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
}
