//! The body of a range response: the whole representation, one range, or a
//! `multipart/byteranges` body (RFC 9110 §14.6), cut from the full body as it streams.

use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};
use http::HeaderValue;

use super::spec::content_range_string;

/// The body to send after [`range_response_headers`](super::range_response_headers).
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
    /// Frame `ranges` (non-empty ranges within `complete_length`, as
    /// [`parse_range_header`](super::parse_range_header) gives) of a representation whose
    /// `Content-Type` is `content_type` (repeated in each part; omitted if `None`), separated by
    /// `boundary`.
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
