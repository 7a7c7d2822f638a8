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

mod body;
mod response;
mod spec;
#[cfg(test)]
mod tests;

pub use body::{MultipartByteranges, RangeBody, RangeBodyFilter};
pub use response::{RangeResponse, range_response_headers};
pub use spec::{
    DEFAULT_MAX_RANGES, RangeSpec, content_range, if_range_matches, parse_range_header,
    range_for_request, unsatisfied_content_range,
};
