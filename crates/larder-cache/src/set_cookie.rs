//! What a shared cache does with a response that sets a cookie (`Set-Cookie`, or the obsolete
//! `Set-Cookie2`).
//!
//! RFC 9111 §7.3 lets a cache store such a response and §3.1 asks it to keep every field, so a
//! literal shared cache replays one user's session cookie to every later user of the entry.
//! larder does not: by default ([`SetCookiePolicy::OptIn`]) a response carrying a cookie is
//! stored only when the origin addresses shared caches explicitly, and the stored copy never
//! carries the cookie: only the client whose request filled the cache receives it. Not storing
//! is always allowed (RFC 9111 §3 says when a cache MUST NOT store, never that it must);
//! storing without the cookie fields is a deliberate deviation from §3.1.
//!
//! The rules are applied by [`filters`](crate::filters) after every other storage rule, so a
//! refusal because of the cookie is reported as [`NoCacheReason::SetCookie`] only when the
//! response was otherwise storable.
//!
//! [`NoCacheReason::SetCookie`]: crate::NoCacheReason::SetCookie

use http::HeaderMap;
use http::header::{HeaderName, SET_COOKIE};
use larder_cache_control::CacheControl;

/// The obsolete `Set-Cookie2` field (RFC 2965, obsoleted by RFC 6265), treated as `Set-Cookie`.
pub const SET_COOKIE2: HeaderName = HeaderName::from_static("set-cookie2");

/// What a shared cache does with a response carrying `Set-Cookie` or `Set-Cookie2`.
///
/// Every policy removes the cookie fields from the stored copy; none replays a cookie to
/// another client.
///
/// ```
/// use larder_cache::set_cookie::SetCookiePolicy;
///
/// assert_eq!(SetCookiePolicy::default(), SetCookiePolicy::OptIn);
/// assert_eq!("never".parse::<SetCookiePolicy>()?, SetCookiePolicy::Never);
/// assert_eq!(SetCookiePolicy::Strip.as_str(), "strip");
/// assert!("replay".parse::<SetCookiePolicy>().is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum SetCookiePolicy {
    /// `never`: a response carrying a cookie is never stored, whatever its directives say. For
    /// sites where any response that sets a cookie may be personalised.
    Never,
    /// `opt-in` (the default): stored only when the origin opts in for shared caches (see
    /// [`is_shared_opt_in`]), without its cookie fields. Otherwise not stored.
    #[default]
    OptIn,
    /// `strip`: stored whenever the other rules of RFC 9111 allow, without its cookie fields.
    /// For origins that add cookies (tracking, load-balancer affinity) to responses that are
    /// the same for every user, when the origin cannot be changed to say `public`.
    Strip,
}

impl SetCookiePolicy {
    /// Every policy, in the order of the documentation.
    pub const ALL: [Self; 3] = [Self::Never, Self::OptIn, Self::Strip];

    /// The policy's name in configuration: `never`, `opt-in` or `strip`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Never => "never",
            Self::OptIn => "opt-in",
            Self::Strip => "strip",
        }
    }
}

impl std::fmt::Display for SetCookiePolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not a [`SetCookiePolicy`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown Set-Cookie policy {0:?} (expected never, opt-in or strip)")]
pub struct UnknownSetCookiePolicy(pub String);

impl std::str::FromStr for SetCookiePolicy {
    type Err = UnknownSetCookiePolicy;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| UnknownSetCookiePolicy(s.to_owned()))
    }
}

/// Whether the response sets a cookie: it has a `Set-Cookie` or `Set-Cookie2` field.
pub fn has_set_cookie(headers: &HeaderMap) -> bool {
    headers.contains_key(SET_COOKIE) || headers.contains_key(SET_COOKIE2)
}

/// Removes `Set-Cookie` and `Set-Cookie2`.
pub fn strip_set_cookie(headers: &mut HeaderMap) {
    headers.remove(SET_COOKIE);
    headers.remove(SET_COOKIE2);
}

/// Gives `to` exactly the cookie fields of `from`, when `from` has any: the answer to the
/// client whose request brought `from` (e.g. a 304 merged into a stored response that, being
/// stored, has no cookie). Without cookie fields in `from`, `to` is left as it is.
///
/// ```
/// use http::{HeaderMap, HeaderValue, header::SET_COOKIE};
/// use larder_cache::set_cookie::copy_set_cookie;
///
/// let mut upstream = HeaderMap::new();
/// upstream.append(SET_COOKIE, HeaderValue::from_static("a=1"));
/// upstream.append(SET_COOKIE, HeaderValue::from_static("b=2"));
/// let mut answer = HeaderMap::new();
/// answer.append(SET_COOKIE, HeaderValue::from_static("a=1"));
/// copy_set_cookie(&upstream, &mut answer);
/// assert_eq!(answer.get_all(SET_COOKIE).iter().count(), 2);
/// copy_set_cookie(&HeaderMap::new(), &mut answer);
/// assert_eq!(answer.get_all(SET_COOKIE).iter().count(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn copy_set_cookie(from: &HeaderMap, to: &mut HeaderMap) {
    for name in [SET_COOKIE, SET_COOKIE2] {
        let mut values = from.get_all(&name).iter().peekable();
        if values.peek().is_none() {
            continue;
        }
        to.remove(&name);
        for value in values {
            to.append(name.clone(), value.clone());
        }
    }
}

/// Whether the origin says a response that sets a cookie may be shared, in the directives
/// that govern the response (`cc`, from a targeted field when `targeted`):
///
/// - the directives come from a targeted field such as `CDN-Cache-Control` (RFC 9213), which
///   only shared caches read;
/// - `public` (RFC 9111 §5.2.2.9) or `s-maxage` (§5.2.2.10), which address shared caches;
/// - `private` or `no-cache` naming `Set-Cookie` or `Set-Cookie2` (§5.2.2.7, §5.2.2.4): the
///   origin withholds the cookie and nothing else.
pub fn is_shared_opt_in(cc: &CacheControl<'_>, targeted: bool) -> bool {
    let names_cookie = |names: Option<larder_cache_control::FieldNames<'_>>| {
        names.is_some_and(|mut names| {
            names.any(|n| {
                n.eq_ignore_ascii_case(SET_COOKIE.as_str())
                    || n.eq_ignore_ascii_case(SET_COOKIE2.as_str())
            })
        })
    };
    targeted
        || cc.public()
        || cc.s_maxage().is_some()
        || names_cookie(cc.private_field_names())
        || names_cookie(cc.no_cache_field_names())
}

/// The outcome of [`decide`] for one otherwise storable response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Store it (its cookie fields, if any, are removed from the stored copy).
    Store,
    /// Do not store it: it sets a cookie and the policy refuses it.
    Refuse,
}

/// Applies `policy` to a response the other storage rules allow: `headers` are its fields,
/// `cc` the directives that govern it (from a targeted field when `targeted`).
///
/// ```
/// use http::{HeaderMap, HeaderValue, header};
/// use larder_cache::cache_control::CacheControl;
/// use larder_cache::set_cookie::{SetCookiePolicy, Verdict, decide};
///
/// let mut headers = HeaderMap::new();
/// headers.insert(header::SET_COOKIE, HeaderValue::from_static("session=alice"));
/// let cc = CacheControl::parse(b"max-age=60");
/// assert_eq!(decide(SetCookiePolicy::OptIn, &cc, false, &headers), Verdict::Refuse);
/// assert_eq!(decide(SetCookiePolicy::Strip, &cc, false, &headers), Verdict::Store);
/// let public = CacheControl::parse(b"public, max-age=60");
/// assert_eq!(decide(SetCookiePolicy::OptIn, &public, false, &headers), Verdict::Store);
/// assert_eq!(decide(SetCookiePolicy::Never, &public, false, &headers), Verdict::Refuse);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn decide(
    policy: SetCookiePolicy,
    cc: &CacheControl<'_>,
    targeted: bool,
    headers: &HeaderMap,
) -> Verdict {
    if !has_set_cookie(headers) {
        return Verdict::Store;
    }
    let store = match policy {
        SetCookiePolicy::Never => false,
        SetCookiePolicy::OptIn => is_shared_opt_in(cc, targeted),
        SetCookiePolicy::Strip => true,
    };
    if store {
        Verdict::Store
    } else {
        Verdict::Refuse
    }
}
