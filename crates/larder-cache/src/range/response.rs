//! The status and header fields of a range response (RFC 9110 §14.4, §15.3.7, §15.5.17).

use http::header::{
    ACCEPT_RANGES, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, TRANSFER_ENCODING,
};
use http::{HeaderMap, HeaderValue, StatusCode};

use super::body::{MultipartByteranges, RangeBody};
use super::spec::{RangeSpec, content_range, unsatisfied_content_range};

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
