//! The `Cache-Status` response header field (RFC 9211).
//!
//! [`CacheStatus`] builds this cache's member of the field: its name, then `hit` or
//! `fwd=<reason>` with `fwd-status`, `ttl`, `stored`, `collapsed`, `key` and `detail`. It renders
//! as a valid Structured Fields list member (RFC 8941): the name and `detail` become Tokens when
//! they fit the Token syntax and Strings otherwise, Strings are escaped, and integers are clamped
//! to the Structured Fields range.
//!
//! RFC 9211 §2: the list runs from the cache closest to the origin to the one closest to the user,
//! and a cache SHOULD preserve the existing value. So this cache's member goes at the **end**, after
//! whatever the upstream sent ([`CacheStatus::append_to`]).
//!
//! ```
//! use http::{HeaderMap, HeaderValue, StatusCode};
//! use larder_cache::cache_status::{CACHE_STATUS, CacheStatus, ForwardReason};
//!
//! let hit = CacheStatus::new("larder").hit().ttl(376);
//! assert_eq!(hit.to_string(), "larder; hit; ttl=376");
//!
//! let mut headers = HeaderMap::new();
//! headers.insert(CACHE_STATUS, HeaderValue::from_static("OriginCache; hit; ttl=1100"));
//! CacheStatus::new("Example CDN")
//!     .fwd(ForwardReason::Stale)
//!     .fwd_status(StatusCode::NOT_MODIFIED)
//!     .stored(true)
//!     .append_to(&mut headers);
//! let lines: Vec<_> = headers.get_all(CACHE_STATUS).iter().collect();
//! assert_eq!(lines[0], "OriginCache; hit; ttl=1100");
//! assert_eq!(lines[1], "\"Example CDN\"; fwd=stale; fwd-status=304; stored");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

/// The `Cache-Status` header name.
pub const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

/// Why the request went forward towards the origin (RFC 9211 §2.2), most specific first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ForwardReason {
    /// The cache was configured not to handle this request.
    Bypass,
    /// The request method's semantics require forwarding.
    Method,
    /// Nothing was stored for the request URI.
    UriMiss,
    /// Responses were stored for the URI, but none matched the request's `Vary`-ed headers.
    VaryMiss,
    /// Nothing stored could satisfy the request (when uri-miss and vary-miss can't be told apart).
    Miss,
    /// A fresh response was stored, but the request's directives did not allow using it.
    Request,
    /// The stored response was stale.
    Stale,
    /// The stored response was partial and did not cover the request.
    Partial,
}

impl ForwardReason {
    /// The Token RFC 9211 §2.2 defines for this reason.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Bypass => "bypass",
            Self::Method => "method",
            Self::UriMiss => "uri-miss",
            Self::VaryMiss => "vary-miss",
            Self::Miss => "miss",
            Self::Request => "request",
            Self::Stale => "stale",
            Self::Partial => "partial",
        }
    }
}

impl fmt::Display for ForwardReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The largest magnitude of a Structured Fields Integer (RFC 8941 §3.3.1).
const SF_INTEGER_MAX: i64 = 999_999_999_999_999;

/// This cache's member of the `Cache-Status` list (RFC 9211 §2).
///
/// `hit` and `fwd` are exclusive: setting one clears the other. `fwd-status`, `stored` and
/// `collapsed` are only meaningful with `fwd` (RFC 9211 §2.3, §2.5, §2.6) and are only rendered
/// with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheStatus {
    name: Name,
    hit: bool,
    fwd: Option<ForwardReason>,
    fwd_status: Option<u16>,
    ttl: Option<i64>,
    stored: Option<bool>,
    collapsed: Option<bool>,
    // Boxed strings: a member lives in every request's future, so it is kept small.
    key: Option<Box<str>>,
    detail: Option<Box<str>>,
}

/// The cache's name, borrowed, owned or shared by every request of one cache. Two names are
/// equal when their text is, however they are held.
#[derive(Debug, Clone)]
enum Name {
    Cow(Cow<'static, str>),
    Shared(Arc<str>),
}

impl PartialEq for Name {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Name {}

impl Name {
    fn as_str(&self) -> &str {
        match self {
            Name::Cow(name) => name,
            Name::Shared(name) => name,
        }
    }
}

impl CacheStatus {
    /// A member for the cache called `name` (a product name, host name, ...), with no parameters.
    pub fn new(name: impl Into<Cow<'static, str>>) -> Self {
        Self::with_name(Name::Cow(name.into()))
    }

    /// Like [`new`](Self::new), with a name shared by every request of one cache (a reference
    /// count per request instead of a copy of the name).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use larder_cache::cache_status::CacheStatus;
    ///
    /// let name: Arc<str> = Arc::from("larder");
    /// let hit = CacheStatus::with_shared_name(Arc::clone(&name)).hit();
    /// assert_eq!(hit, CacheStatus::new("larder").hit());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_shared_name(name: Arc<str>) -> Self {
        Self::with_name(Name::Shared(name))
    }

    fn with_name(name: Name) -> Self {
        Self {
            name,
            hit: false,
            fwd: None,
            fwd_status: None,
            ttl: None,
            stored: None,
            collapsed: None,
            key: None,
            detail: None,
        }
    }

    /// The request was satisfied from the cache without going forward (RFC 9211 §2.1). A `304` or
    /// `206` made from a stored response, or a stale response served without contacting the
    /// origin, is a hit too.
    #[must_use]
    pub fn hit(mut self) -> Self {
        self.hit = true;
        self.fwd = None;
        self
    }

    /// The request went forward, for `reason` (RFC 9211 §2.2).
    #[must_use]
    pub fn fwd(mut self, reason: ForwardReason) -> Self {
        self.fwd = Some(reason);
        self.hit = false;
        self
    }

    /// The status the next hop answered the forwarded request with (RFC 9211 §2.3), when it
    /// differs from the one sent downstream (a `304` from revalidation, say).
    #[must_use]
    pub fn fwd_status(mut self, status: StatusCode) -> Self {
        self.fwd_status = Some(status.as_u16());
        self
    }

    /// The response's remaining freshness lifetime in seconds; negative when stale (RFC 9211 §2.4).
    #[must_use]
    pub fn ttl(mut self, seconds: i64) -> Self {
        self.ttl = Some(seconds);
        self
    }

    /// Whether the cache stored the forwarded response (RFC 9211 §2.5).
    #[must_use]
    pub fn stored(mut self, stored: bool) -> Self {
        self.stored = Some(stored);
        self
    }

    /// Whether the request was collapsed with others (`true`: it reused their response; `false`:
    /// collapsing was tried but a new request had to be made) (RFC 9211 §2.6).
    #[must_use]
    pub fn collapsed(mut self, collapsed: bool) -> Self {
        self.collapsed = Some(collapsed);
        self
    }

    /// A representation of the cache key (RFC 9211 §2.7).
    #[must_use]
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into().into_boxed_str());
        self
    }

    /// Implementation-specific detail (RFC 9211 §2.8), e.g. a [`crate::NoCacheReason`] name.
    #[must_use]
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into().into_boxed_str());
        self
    }

    /// The member as a header value.
    ///
    /// # Panics
    ///
    /// Never: the rendering escapes everything outside printable ASCII.
    pub fn to_header_value(&self) -> HeaderValue {
        HeaderValue::from_bytes(&self.render())
            .expect("the member is rendered in printable ASCII only")
    }

    /// Add this member at the end of the response's `Cache-Status` as a new field line, keeping
    /// the upstream's members before it (RFC 9211 §2).
    pub fn append_to(&self, headers: &mut HeaderMap) {
        headers.append(CACHE_STATUS, self.to_header_value());
    }

    /// `existing, <this member>`: the upstream's value with this member appended, as one field
    /// line. An absent or blank `existing` gives this member alone.
    ///
    /// # Panics
    ///
    /// Never: both parts are valid header values and `", "` is too.
    pub fn append_to_value(&self, existing: Option<&HeaderValue>) -> HeaderValue {
        let ours = self.render();
        let Some(existing) = existing.filter(|v| !v.as_bytes().trim_ascii().is_empty()) else {
            return self.to_header_value();
        };
        let mut combined = Vec::with_capacity(existing.len() + 2 + ours.len());
        combined.extend_from_slice(existing.as_bytes().trim_ascii_end());
        combined.extend_from_slice(b", ");
        combined.extend_from_slice(&ours);
        HeaderValue::from_bytes(&combined).expect("made of two valid header values and \", \"")
    }
}

impl CacheStatus {
    /// The list member in printable ASCII, written straight into one buffer (this runs on
    /// every response, so it avoids the formatting machinery).
    fn render(&self) -> Buf {
        let mut out = Buf::new();
        write_token_or_string(&mut out, self.name.as_str());
        if self.hit {
            out.extend_from_slice(b"; hit");
        }
        if let Some(fwd) = self.fwd {
            out.extend_from_slice(b"; fwd=");
            out.extend_from_slice(fwd.as_str().as_bytes());
            if let Some(status) = self.fwd_status {
                out.extend_from_slice(b"; fwd-status=");
                write_int(&mut out, i64::from(status));
            }
        }
        if let Some(ttl) = self.ttl {
            out.extend_from_slice(b"; ttl=");
            write_int(&mut out, ttl.clamp(-SF_INTEGER_MAX, SF_INTEGER_MAX));
        }
        if self.fwd.is_some() {
            write_bool(&mut out, b"stored", self.stored);
            write_bool(&mut out, b"collapsed", self.collapsed);
        }
        if let Some(key) = &self.key {
            out.extend_from_slice(b"; key=");
            write_string(&mut out, key);
        }
        if let Some(detail) = &self.detail {
            out.extend_from_slice(b"; detail=");
            write_token_or_string(&mut out, detail);
        }
        out
    }
}

impl fmt::Display for CacheStatus {
    /// The list member, e.g. `larder; fwd=uri-miss; stored`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The rendering is ASCII, so nothing is lost.
        f.write_str(&String::from_utf8_lossy(&self.render()))
    }
}

/// A rendering buffer: a typical member fits on the stack, so making the header value takes
/// one allocation.
type Buf = smallvec::SmallVec<[u8; 96]>;

/// A Structured Fields Integer in decimal.
fn write_int(out: &mut Buf, n: i64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut rest = n.unsigned_abs();
    loop {
        i -= 1;
        // A single decimal digit: the cast cannot truncate.
        #[allow(clippy::cast_possible_truncation)]
        let digit = (rest % 10) as u8;
        digits[i] = b'0' + digit;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if n < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[i..]);
}

/// A Boolean parameter: bare key for true, `key=?0` for false (RFC 8941 §4.1.1.2).
fn write_bool(out: &mut Buf, key: &[u8], value: Option<bool>) {
    if let Some(value) = value {
        out.extend_from_slice(b"; ");
        out.extend_from_slice(key);
        if !value {
            out.extend_from_slice(b"=?0");
        }
    }
}

/// RFC 8941 §3.3.4: `( ALPHA / "*" ) *( tchar / ":" / "/" )`.
fn is_sf_token(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'*')
        && bytes.all(|b| is_tchar(b) || b == b':' || b == b'/')
}

/// RFC 9110 §5.6.2 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn write_token_or_string(out: &mut Buf, s: &str) {
    if is_sf_token(s) {
        out.extend_from_slice(s.as_bytes());
    } else {
        write_string(out, s);
    }
}

/// An RFC 8941 §3.3.3 String: printable ASCII, with `"` and `\` escaped. Other characters cannot be
/// represented, so their UTF-8 bytes are written as `%XX` (this is lossy: a literal `%` is kept as
/// is).
fn write_string(out: &mut Buf, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push(b'"');
    for b in s.bytes() {
        match b {
            b'"' | b'\\' => {
                out.push(b'\\');
                out.push(b);
            }
            0x20..=0x7e => out.push(b),
            _ => {
                out.push(b'%');
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests;
