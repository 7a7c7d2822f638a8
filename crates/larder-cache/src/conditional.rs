//! Conditional requests against a stored response (RFC 9110 §13, RFC 9111 §4.3.2).
//!
//! [`evaluate`] answers a downstream request's preconditions from the stored response's
//! validators, in the order of RFC 9110 §13.2.2: `If-Match`, `If-Unmodified-Since`,
//! `If-None-Match`, `If-Modified-Since`. (`If-Range` is step 5, see
//! [`crate::range::if_range_matches`].) [`to_304`] turns the stored response's headers into those
//! of a `304 Not Modified`.
//!
//! RFC 9111 §4.3.2 says `If-Match` and `If-Unmodified-Since` are meant for the origin server and
//! a cache may forward them instead. [`evaluate`] answers them from the stored response, which is
//! right when that response is the current representation (a fresh hit); a proxy that prefers to
//! let the origin decide can check [`has_origin_preconditions`] and forward such requests.
//!
//! Entity tags are parsed leniently: lists may span several field lines, and unquoted tags (which
//! some clients and servers send) compare by their text.
//!
//! ```
//! use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
//! use larder_cache::conditional::{Precondition, evaluate, to_304};
//!
//! let mut stored = HeaderMap::new();
//! stored.insert(header::ETAG, HeaderValue::from_static("W/\"v1\""));
//! stored.insert(header::CONTENT_LENGTH, HeaderValue::from_static("1234"));
//!
//! let mut req = HeaderMap::new();
//! req.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"v0\", \"v1\""));
//! assert_eq!(evaluate(&Method::GET, &req, StatusCode::OK, &stored), Precondition::NotModified);
//!
//! to_304(&mut stored);
//! assert!(stored.contains_key(header::ETAG));
//! assert!(!stored.contains_key(header::CONTENT_LENGTH));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::time::SystemTime;

use http::header::{
    ACCEPT_RANGES, CONTENT_ENCODING, CONTENT_LANGUAGE, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE,
    DATE, ETAG, IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_UNMODIFIED_SINCE, LAST_MODIFIED,
    TRANSFER_ENCODING,
};
use http::{HeaderMap, HeaderName, Method, StatusCode};

/// The outcome of evaluating a request's preconditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Precondition {
    /// No precondition stops the request: send the response as usual (ranges may still apply).
    Proceed,
    /// Answer `304 Not Modified` (see [`to_304`]).
    NotModified,
    /// Answer `412 Precondition Failed`.
    PreconditionFailed,
}

impl Precondition {
    /// The status code this outcome answers with, if it replaces the response.
    pub fn status(self) -> Option<StatusCode> {
        match self {
            Self::Proceed => None,
            Self::NotModified => Some(StatusCode::NOT_MODIFIED),
            Self::PreconditionFailed => Some(StatusCode::PRECONDITION_FAILED),
        }
    }
}

/// Evaluate the preconditions of a request with `method` and `req_headers` against a stored
/// response with `stored_status` and `stored_headers` (RFC 9110 §13.2.2).
///
/// - Preconditions are ignored (`Proceed`) for CONNECT, OPTIONS and TRACE and when the stored
///   status is not 2xx (RFC 9110 §13.2.1).
/// - `If-Match` (strong comparison; `*` matches): false → `PreconditionFailed`.
/// - Else `If-Unmodified-Since` (ignored if not a single valid HTTP-date or if there is no
///   `Last-Modified`): modified after the date → `PreconditionFailed`.
/// - `If-None-Match` (weak comparison; `*` matches): a match → `NotModified` for GET and HEAD,
///   `PreconditionFailed` otherwise.
/// - Else, for GET and HEAD, `If-Modified-Since` (ignored if not a single valid HTTP-date): not
///   modified since the date → `NotModified`. The stored `Last-Modified` is used, or the stored
///   `Date` without it (RFC 9111 §4.3.2).
pub fn evaluate(
    method: &Method,
    req_headers: &HeaderMap,
    stored_status: StatusCode,
    stored_headers: &HeaderMap,
) -> Precondition {
    if !stored_status.is_success()
        || *method == Method::CONNECT
        || *method == Method::OPTIONS
        || *method == Method::TRACE
    {
        return Precondition::Proceed;
    }
    let get_or_head = *method == Method::GET || *method == Method::HEAD;
    let stored_etag = stored_headers
        .get(ETAG)
        .and_then(|v| EntityTag::parse(v.as_bytes()));
    let last_modified = single_date(stored_headers, &LAST_MODIFIED);

    // Step 1 and 2: If-Match, else If-Unmodified-Since.
    if req_headers.contains_key(IF_MATCH) {
        if !list_matches(req_headers, &IF_MATCH, stored_etag, Comparison::Strong) {
            return Precondition::PreconditionFailed;
        }
    } else if let (Some(date), Some(last_modified)) = (
        single_date(req_headers, &IF_UNMODIFIED_SINCE),
        last_modified,
    ) && last_modified > date
    {
        return Precondition::PreconditionFailed;
    }

    // Step 3 and 4: If-None-Match, else If-Modified-Since.
    if req_headers.contains_key(IF_NONE_MATCH) {
        if list_matches(req_headers, &IF_NONE_MATCH, stored_etag, Comparison::Weak) {
            return if get_or_head {
                Precondition::NotModified
            } else {
                Precondition::PreconditionFailed
            };
        }
    } else if get_or_head
        && let Some(date) = single_date(req_headers, &IF_MODIFIED_SINCE)
        && let Some(modified) = last_modified.or_else(|| single_date(stored_headers, &DATE))
        && modified <= date
    {
        return Precondition::NotModified;
    }
    Precondition::Proceed
}

/// Whether the request carries preconditions meant for the origin server (`If-Match`,
/// `If-Unmodified-Since`; RFC 9111 §4.3.2).
pub fn has_origin_preconditions(req_headers: &HeaderMap) -> bool {
    req_headers.contains_key(IF_MATCH) || req_headers.contains_key(IF_UNMODIFIED_SINCE)
}

/// The header fields a `304` must not carry: content-specific representation metadata and
/// framing (RFC 9110 §15.4.5).
const NOT_IN_304: [HeaderName; 7] = [
    CONTENT_LENGTH,
    CONTENT_TYPE,
    CONTENT_ENCODING,
    CONTENT_LANGUAGE,
    CONTENT_RANGE,
    TRANSFER_ENCODING,
    ACCEPT_RANGES,
];

/// Turn the headers of a stored `200` into those of a `304 Not Modified` (the caller sets the
/// status and sends no body).
///
/// Keeps what RFC 9110 §15.4.5 requires (`Cache-Control`, `Content-Location`, `Date`, `ETag`,
/// `Expires`, `Vary`) and everything else except content-specific metadata and framing:
/// `Content-Length`, `Content-Type`, `Content-Encoding`, `Content-Language`, `Content-Range`,
/// `Transfer-Encoding` and `Accept-Ranges` are removed. `Last-Modified` stays (useful to caches
/// when there is no `ETag`).
pub fn to_304(headers: &mut HeaderMap) {
    for name in NOT_IN_304 {
        headers.remove(name);
    }
}

/// Whether two entity tags match by the weak comparison (RFC 9110 §8.8.3.2): same opaque tag,
/// weakness ignored. Invalid values never match.
pub fn weak_etag_match(a: &[u8], b: &[u8]) -> bool {
    match (EntityTag::parse(a), EntityTag::parse(b)) {
        (Some(a), Some(b)) => a.weak_eq(b),
        _ => false,
    }
}

/// Whether two entity tags match by the strong comparison (RFC 9110 §8.8.3.2): both strong and
/// the same opaque tag. Invalid values never match.
pub fn strong_etag_match(a: &[u8], b: &[u8]) -> bool {
    match (EntityTag::parse(a), EntityTag::parse(b)) {
        (Some(a), Some(b)) => a.strong_eq(b),
        _ => false,
    }
}

/// One entity tag, borrowed from a field value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct EntityTag<'a> {
    weak: bool,
    /// The tag without `W/` and quotes.
    opaque: &'a [u8],
}

impl<'a> EntityTag<'a> {
    /// Parse one whole entity tag (surrounding whitespace allowed); `None` if empty or if more
    /// follows it.
    fn parse(v: &'a [u8]) -> Option<Self> {
        let v = v.trim_ascii();
        match next_member(v)? {
            (Member::Tag(tag), rest) if rest.trim_ascii().is_empty() => Some(tag),
            _ => None,
        }
    }

    fn weak_eq(self, other: Self) -> bool {
        self.opaque == other.opaque
    }

    fn strong_eq(self, other: Self) -> bool {
        !self.weak && !other.weak && self.opaque == other.opaque
    }
}

/// A member of an `If-Match` / `If-None-Match` list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Member<'a> {
    Any,
    Tag(EntityTag<'a>),
}

/// The next list member of `v` (which starts at a member, whitespace and commas skipped), and the
/// rest; `None` if `v` has no more members. A loop, not recursion: a list of 100k lone `W/`
/// members costs one pass and no stack.
fn next_member(mut v: &[u8]) -> Option<(Member<'_>, &[u8])> {
    loop {
        let start = v.iter().position(|&b| !matches!(b, b',' | b' ' | b'\t'))?;
        let member = &v[start..];
        if member.first() == Some(&b'*') {
            return Some((Member::Any, &member[1..]));
        }
        let (weak, member) = match strip_weak_prefix(member) {
            Some(rest) => (true, rest),
            None => (false, member),
        };
        if let Some(quoted) = member.strip_prefix(b"\"") {
            // RFC 9110 §8.8.3: etagc excludes DQUOTE, so the tag ends at the next one. An
            // unterminated tag runs to the end of its list member.
            if let Some(end) = quoted.iter().position(|&b| b == b'"') {
                let tag = EntityTag {
                    weak,
                    opaque: &quoted[..end],
                };
                return Some((Member::Tag(tag), &quoted[end + 1..]));
            }
            let end = quoted
                .iter()
                .position(|&b| b == b',')
                .unwrap_or(quoted.len());
            let tag = EntityTag {
                weak,
                opaque: quoted[..end].trim_ascii_end(),
            };
            return Some((Member::Tag(tag), &quoted[end..]));
        }
        // An unquoted tag (not valid syntax, but sent in the wild): up to a comma or whitespace.
        let end = member
            .iter()
            .position(|&b| matches!(b, b',' | b' ' | b'\t'))
            .unwrap_or(member.len());
        if end == 0 {
            // A lone `W/` (only then can the member be empty here): skip it.
            v = member;
            continue;
        }
        return Some((
            Member::Tag(EntityTag {
                weak,
                opaque: &member[..end],
            }),
            &member[end..],
        ));
    }
}

/// The entity-tag comparison function (RFC 9110 §8.8.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparison {
    Strong,
    Weak,
}

/// `v` without its weakness indicator, if it has one: `W/` (RFC 9110 §8.8.3), or, before a quoted
/// tag only, the misspellings `w/`, `W\`, `w\`, `W` and `w` seen in the wild.
fn strip_weak_prefix(v: &[u8]) -> Option<&[u8]> {
    if let Some(rest) = v.strip_prefix(b"W/") {
        return Some(rest);
    }
    let rest = v.strip_prefix(b"W").or_else(|| v.strip_prefix(b"w"))?;
    let rest = rest
        .strip_prefix(b"/")
        .or_else(|| rest.strip_prefix(b"\\"))
        .unwrap_or(rest);
    rest.starts_with(b"\"").then_some(rest)
}

/// Whether any member of the list in every `name` field line matches `stored` (`*` matches any
/// stored response; a tag needs a stored entity tag that `eq` accepts).
fn list_matches(
    req_headers: &HeaderMap,
    name: &HeaderName,
    stored: Option<EntityTag<'_>>,
    comparison: Comparison,
) -> bool {
    for value in req_headers.get_all(name) {
        let mut rest = value.as_bytes();
        while let Some((member, next)) = next_member(rest) {
            match member {
                Member::Any => return true,
                Member::Tag(tag) => {
                    if stored.is_some_and(|stored| match comparison {
                        Comparison::Strong => tag.strong_eq(stored),
                        Comparison::Weak => tag.weak_eq(stored),
                    }) {
                        return true;
                    }
                }
            }
            rest = next;
        }
    }
    false
}

/// The date in the only `name` field line, if it is a valid HTTP-date (RFC 9110 §5.6.7).
fn single_date(headers: &HeaderMap, name: &HeaderName) -> Option<SystemTime> {
    let mut values = headers.get_all(name).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return None;
    };
    httpdate::parse_http_date(value.to_str().ok()?.trim()).ok()
}

#[cfg(test)]
mod tests;
