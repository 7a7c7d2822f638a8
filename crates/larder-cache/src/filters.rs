//! Cacheability and freshness rules for a shared cache (RFC 9111 §3, §4.2).
//!
//! - [`request_cacheable`]: which request methods the cache serves (GET and HEAD).
//! - [`resp_cacheable`] and friends: whether a response may be stored and, if so, its
//!   [`CacheMeta`] with freshness, age and stale windows folded in.
//! - [`freshness_lifetime`]: the freshness lifetime alone (§4.2.1, §4.2.2).
//! - A response that sets a cookie is stored only as its [`SetCookiePolicy`] allows
//!   ([`set_cookie`]), and never with the cookie.
//! - [`request`](crate::request) holds the request directives (max-age, max-stale, ...).
//!
//! The age a response already had upstream (`Age`, `Date`, the request's round trip; §4.2.3)
//! is folded into the meta as its epoch (`CacheMeta::epoch_override`), so `meta.age(now)` is
//! the RFC's `current_age` and `meta.is_fresh(now)` compares it with the freshness lifetime.

use std::time::{Duration, SystemTime};

use http::header::{AUTHORIZATION, EXPIRES, LAST_MODIFIED};
use http::{HeaderMap, HeaderName, Method, StatusCode};
use larder_cache_control::{CacheControl, Source};
use larder_storage::{CacheMeta, ResponseHeader};

use crate::age::{self, ResponseTimes};
use crate::defaults::{CacheMetaDefaults, DefaultTtlScope};
use crate::phase::NoCacheReason;
use crate::revalidate::strip_unstorable;
use crate::set_cookie::{self, SetCookiePolicy, Verdict};
use crate::variance::vary_is_any;

/// The outcome of [`resp_cacheable`].
#[derive(Debug)]
pub enum RespCacheable {
    /// Store the response with this meta.
    Cacheable(CacheMeta),
    /// Do not store it, for this reason.
    Uncacheable(NoCacheReason),
}

impl RespCacheable {
    /// Whether the response may be stored.
    pub fn is_cacheable(&self) -> bool {
        matches!(self, Self::Cacheable(_))
    }

    /// The meta of a cacheable response.
    ///
    /// # Panics
    ///
    /// If the response is uncacheable.
    pub fn unwrap_meta(self) -> CacheMeta {
        match self {
            Self::Cacheable(meta) => meta,
            Self::Uncacheable(reason) => panic!("unwrap_meta: uncacheable ({reason})"),
        }
    }
}

/// Whether the cache serves requests with this method: GET and HEAD (a HEAD is answered from a
/// stored GET response; RFC 9110 §9.3.2). Other methods are forwarded; unsafe ones invalidate
/// (RFC 9111 §4.4).
pub fn request_cacheable(method: &Method) -> bool {
    method == Method::GET || method == Method::HEAD
}

/// Whether the request carries `Authorization` (RFC 9111 §3.5).
pub fn authorization_present(request_headers: &HeaderMap) -> bool {
    request_headers.contains_key(AUTHORIZATION)
}

/// Status codes defined as heuristically cacheable (RFC 9110 §15.1).
pub fn is_heuristically_cacheable(status: StatusCode) -> bool {
    crate::defaults::heuristically_cacheable(status)
}

/// Status codes whose caching requirements this cache implements, for `must-understand`
/// (RFC 9111 §5.2.2.3): the final codes of RFC 9110 §15 except 206 (partial content is not
/// stored) and 304 (handled as a revalidation).
pub fn is_understood_status(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200..=205 | 300..=303 | 305 | 307 | 308 | 400..=417 | 421 | 422 | 426 | 500..=505
    )
}

/// Where a response's freshness lifetime came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// `s-maxage`, `max-age` or `Expires` (§4.2.1); invalid values give zero (stale).
    Explicit(Duration),
    /// The `Last-Modified` heuristic (§4.2.2).
    Heuristic(Duration),
    /// The operator's per-status default TTL.
    Default(Duration),
}

impl Lifetime {
    /// The lifetime itself.
    pub fn duration(self) -> Duration {
        match self {
            Self::Explicit(d) | Self::Heuristic(d) | Self::Default(d) => d,
        }
    }
}

/// The explicit freshness lifetime (RFC 9111 §4.2.1, shared cache): `s-maxage`, else
/// `max-age`, else `Expires − Date` (`Date` defaulting to `response_time`), unless
/// `ignore_expires` (RFC 9213 §2.2: a targeted field replaces `Expires` too). An invalid
/// `s-maxage` or `max-age`, an invalid or repeated `Expires` all give zero: the response is
/// stale. `None` when there is no explicit freshness.
pub fn explicit_lifetime(
    cc: &CacheControl<'_>,
    ignore_expires: bool,
    headers: &HeaderMap,
    response_time: SystemTime,
) -> Option<Duration> {
    let secs = |v: Result<u32, _>| Duration::from_secs(v.map_or(0, u64::from));
    if let Some(v) = cc.s_maxage() {
        return Some(secs(v));
    }
    if let Some(v) = cc.max_age() {
        return Some(secs(v));
    }
    if ignore_expires || !headers.contains_key(EXPIRES) {
        return None;
    }
    // §5.3: an invalid date, "0" included, means already expired. Several lines are invalid.
    let Some(expires) = age::single_http_date(headers, &EXPIRES) else {
        return Some(Duration::ZERO);
    };
    let date = age::date_value(headers).unwrap_or(response_time);
    Some(expires.duration_since(date).unwrap_or_default())
}

/// The freshness lifetime of a response, or `None` when it has none and none may be given to
/// it (then it is not stored). Explicit freshness first; then, for heuristically cacheable
/// statuses or `public` responses only (§4.2.2), the `Last-Modified` heuristic and then the
/// per-status default. With [`DefaultTtlScope::Always`] the default replaces any lifetime.
pub fn freshness_lifetime(
    cc: &CacheControl<'_>,
    ignore_expires: bool,
    header: &ResponseHeader,
    defaults: &CacheMetaDefaults,
    response_time: SystemTime,
) -> Option<Lifetime> {
    let status = effective_status(header.status);
    if defaults.ttl_scope() == DefaultTtlScope::Always
        && let Some(ttl) = defaults.fresh_sec(status)
    {
        return Some(Lifetime::Default(ttl));
    }
    if let Some(explicit) = explicit_lifetime(cc, ignore_expires, &header.headers, response_time) {
        return Some(Lifetime::Explicit(explicit));
    }
    if !(is_heuristically_cacheable(status) || cc.public()) {
        return None;
    }
    if let Some(heuristic) = defaults.heuristic()
        && let Some(last_modified) = age::single_http_date(&header.headers, &LAST_MODIFIED)
    {
        let date = age::date_value(&header.headers).unwrap_or(response_time);
        if let Ok(since) = date.duration_since(last_modified) {
            return Some(Lifetime::Heuristic(heuristic.lifetime(since)));
        }
    }
    defaults.fresh_sec(status).map(Lifetime::Default)
}

/// A 304 is judged as the 200 it revalidates.
fn effective_status(status: StatusCode) -> StatusCode {
    if status == StatusCode::NOT_MODIFIED {
        StatusCode::OK
    } else {
        status
    }
}

/// Whether `cc` forbids serving the response stale (RFC 9111 §4.2.4): `must-revalidate`,
/// `proxy-revalidate`, `s-maxage` (which implies proxy-revalidate, §5.2.2.10) or a bare
/// `no-cache`.
pub fn forbids_stale(cc: &CacheControl<'_>) -> bool {
    cc.must_revalidate()
        || cc.proxy_revalidate()
        || cc.s_maxage().is_some()
        || (cc.no_cache() && cc.no_cache_field_names().is_none())
}

/// The stale-while-revalidate and stale-if-error windows in seconds (RFC 5861): zero when
/// stale serving is forbidden, else the directive (an invalid value gives zero), else the
/// defaults.
pub fn serve_stale_durations(cc: &CacheControl<'_>, defaults: &CacheMetaDefaults) -> (u32, u32) {
    if forbids_stale(cc) {
        return (0, 0);
    }
    let pick = |v: Option<Result<u32, _>>, default| v.map_or(default, |v| v.unwrap_or(0));
    (
        pick(
            cc.stale_while_revalidate(),
            defaults.serve_stale_while_revalidate_sec(),
        ),
        pick(cc.stale_if_error(), defaults.serve_stale_if_error_sec()),
    )
}

/// pingora-cache's name for [`serve_stale_durations`]: the stale windows of a response
/// (`None` Cache-Control reads as empty).
pub fn calculate_serve_stale_durations(
    cache_control: Option<&CacheControl<'_>>,
    defaults: &CacheMetaDefaults,
) -> (u32, u32) {
    let empty = CacheControl::parse(b"");
    serve_stale_durations(cache_control.unwrap_or(&empty), defaults)
}

/// pingora-cache's `calculate_fresh_until`: until when a response received at `now` is fresh,
/// or `None` when it is not to be stored. Applies every rule of [`resp_cacheable_at`]
/// (authorization, `no-store`, `private`, status, `Vary: *`, age, the default
/// [`SetCookiePolicy`]) with `now` as both request and response time.
pub fn calculate_fresh_until(
    now: SystemTime,
    cache_control: Option<&CacheControl<'_>>,
    resp_header: &ResponseHeader,
    authorization_present: bool,
    defaults: &CacheMetaDefaults,
) -> Option<SystemTime> {
    let empty = CacheControl::parse(b"");
    let cc = cache_control.unwrap_or(&empty);
    decide(
        cc,
        false,
        resp_header,
        authorization_present,
        defaults,
        ResponseTimes::at(now),
        SetCookiePolicy::default(),
    )
    .ok()
    .map(|d| d.fresh_until)
}

/// The upstream side of a cache-enabled request, under pingora-cache's module name.
pub mod upstream {
    use larder_storage::CacheMeta;

    /// Prepares the request a cache sends upstream (pingora-cache's
    /// `filters::upstream::request_filter`): HEAD becomes GET, the client's preconditions and
    /// ranges go, and the stale entry's validators (when revalidating `meta`) are added. See
    /// [`revalidate::request_filter`](crate::revalidate::request_filter).
    pub fn request_filter(request: &mut http::request::Parts, meta: Option<&CacheMeta>) {
        crate::revalidate::request_filter(
            &mut request.method,
            &mut request.headers,
            meta.map(CacheMeta::headers),
        );
    }
}

/// Decides whether a response may be stored by a shared cache and builds its meta, with the
/// current time as both request and response time. `cache_control` is the response's
/// `Cache-Control` (`None` if absent); `Expires` is honoured. See [`resp_cacheable_at`].
pub fn resp_cacheable(
    cache_control: Option<&CacheControl<'_>>,
    resp_header: ResponseHeader,
    authorization_present: bool,
    defaults: &CacheMetaDefaults,
) -> RespCacheable {
    resp_cacheable_at(
        cache_control,
        resp_header,
        authorization_present,
        defaults,
        ResponseTimes::at(SystemTime::now()),
    )
}

/// [`resp_cacheable`] with measured request and response times (RFC 9111 §4.2.3).
///
/// The response is not stored (`Uncacheable`, with the [`NoCacheReason`] naming the rule, in
/// this order) when (§3): its status is not final, or is 206 or 304 (`StatusNotStorable`; a
/// 304 updates a stored response: pass the merged header); `no-store` is present (`NoStore`,
/// unless `must-understand` is present and the status is understood, §5.2.2.3;
/// `must-understand` with a status not understood is `StatusNotUnderstood`); a bare `private`
/// is present (`Private`); the request had `Authorization` and none of `public`, `s-maxage`,
/// `must-revalidate` allows it (`Authorization`, §3.5); it has `Vary: *` (`VaryAny`); or it
/// has no freshness lifetime ([`freshness_lifetime`]) and is not a bare `no-cache` response
/// with a validator (`NoFreshness`); or, otherwise storable, it sets a cookie (`Set-Cookie`,
/// `Set-Cookie2`) without opting in for shared caches (`Uncacheable(SetCookie)`: the default
/// [`SetCookiePolicy`], see [`set_cookie::is_shared_opt_in`]).
///
/// Otherwise the meta has: `created` = response time; an epoch of `response_time −
/// corrected_initial_age` so `meta.age(now)` is the current age; `fresh_until` = epoch +
/// lifetime; the stale windows of [`serve_stale_durations`]. A response with a bare `no-cache`
/// needs no lifetime: it is stored already stale when it has a validator (`ETag` or
/// `Last-Modified`), so every use revalidates it (§5.2.2.4). The stored header loses the fields
/// named by `private="..."` and `no-cache="..."`, hop-by-hop fields (§3.1), `Age`, and
/// `Set-Cookie` / `Set-Cookie2` (a deliberate deviation from §3.1: the cookie was meant for the
/// client whose request filled the cache, not for the next one).
pub fn resp_cacheable_at(
    cache_control: Option<&CacheControl<'_>>,
    resp_header: ResponseHeader,
    authorization_present: bool,
    defaults: &CacheMetaDefaults,
    times: ResponseTimes,
) -> RespCacheable {
    let empty = CacheControl::parse(b"");
    let cc = cache_control.unwrap_or(&empty);
    let decision = decide(
        cc,
        false,
        &resp_header,
        authorization_present,
        defaults,
        times,
        SetCookiePolicy::default(),
    );
    apply(decision, resp_header)
}

/// [`resp_cacheable_at`] reading the directives itself, with RFC 9213 targeted fields: the
/// first of `targeted_names` (e.g. `CDN-Cache-Control`) that is present and valid replaces both
/// `Cache-Control` and `Expires`. A response that sets a cookie follows the default
/// [`SetCookiePolicy`] (a targeted field counts as the origin's opt-in); see
/// [`resp_cacheable_targeted_with`] to choose another.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use http::{HeaderName, StatusCode};
/// use larder_cache::filters::{RespCacheable, resp_cacheable_targeted};
/// use larder_cache::{CacheMetaDefaults, age::ResponseTimes};
/// use larder_storage::ResponseHeader;
///
/// let mut header = ResponseHeader::new(StatusCode::OK);
/// header.append_header("cache-control", "no-store")?;
/// header.append_header("cdn-cache-control", "max-age=60")?;
/// let now = SystemTime::now();
/// let targets = [HeaderName::from_static("cdn-cache-control")];
/// let RespCacheable::Cacheable(meta) = resp_cacheable_targeted(
///     header, false, &targets, &CacheMetaDefaults::STRICT, ResponseTimes::at(now),
/// ) else { panic!("cdn-cache-control allows it") };
/// assert_eq!(meta.fresh_until(), now + Duration::from_secs(60));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn resp_cacheable_targeted(
    resp_header: ResponseHeader,
    authorization_present: bool,
    targeted_names: &[HeaderName],
    defaults: &CacheMetaDefaults,
    times: ResponseTimes,
) -> RespCacheable {
    resp_cacheable_targeted_with(
        resp_header,
        authorization_present,
        targeted_names,
        defaults,
        times,
        SetCookiePolicy::default(),
    )
}

/// [`resp_cacheable_targeted`] with the [`SetCookiePolicy`] for a response that sets a cookie:
/// an otherwise storable response carrying `Set-Cookie` or `Set-Cookie2` that the policy
/// refuses is `Uncacheable(NoCacheReason::SetCookie)`; when stored, its stored header never has
/// those fields, whatever the policy.
///
/// ```
/// use std::time::SystemTime;
/// use http::{HeaderName, StatusCode};
/// use larder_cache::filters::{RespCacheable, resp_cacheable_targeted_with};
/// use larder_cache::{CacheMetaDefaults, NoCacheReason, SetCookiePolicy, age::ResponseTimes};
/// use larder_storage::ResponseHeader;
///
/// let targets = [HeaderName::from_static("cdn-cache-control")];
/// let decide = |cache_control: &str, policy| {
///     let mut header = ResponseHeader::new(StatusCode::OK);
///     header.append_header("cache-control", cache_control).unwrap();
///     header.append_header("set-cookie", "session=alice").unwrap();
///     let times = ResponseTimes::at(SystemTime::now());
///     resp_cacheable_targeted_with(
///         header, false, &targets, &CacheMetaDefaults::STRICT, times, policy,
///     )
/// };
/// let RespCacheable::Uncacheable(reason) = decide("max-age=60", SetCookiePolicy::OptIn) else {
///     panic!("no opt-in")
/// };
/// assert_eq!(reason, NoCacheReason::SetCookie);
/// let RespCacheable::Cacheable(meta) = decide("public, max-age=60", SetCookiePolicy::OptIn)
/// else { panic!("public opts in") };
/// assert!(meta.headers().get("set-cookie").is_none());
/// assert!(!decide("public, max-age=60", SetCookiePolicy::Never).is_cacheable());
/// assert!(decide("max-age=60", SetCookiePolicy::Strip).is_cacheable());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn resp_cacheable_targeted_with(
    resp_header: ResponseHeader,
    authorization_present: bool,
    targeted_names: &[HeaderName],
    defaults: &CacheMetaDefaults,
    times: ResponseTimes,
    set_cookie: SetCookiePolicy,
) -> RespCacheable {
    let (cc, source) =
        larder_cache_control::targeted_with_source(&resp_header.headers, targeted_names);
    let targeted = matches!(source, Source::Targeted(_));
    let decision = decide(
        &cc,
        targeted,
        &resp_header,
        authorization_present,
        defaults,
        times,
        set_cookie,
    );
    drop(cc);
    apply(decision, resp_header)
}

struct Decision {
    created: SystemTime,
    epoch: SystemTime,
    fresh_until: SystemTime,
    swr: u32,
    sie: u32,
    strip: Vec<HeaderName>,
}

/// The storage rules of [`resp_cacheable_at`]. `targeted`: `cc` comes from a targeted field
/// (RFC 9213), which also replaces `Expires`.
fn decide(
    cc: &CacheControl<'_>,
    targeted: bool,
    header: &ResponseHeader,
    authorization_present: bool,
    defaults: &CacheMetaDefaults,
    times: ResponseTimes,
    set_cookie: SetCookiePolicy,
) -> Result<Decision, NoCacheReason> {
    // A 304 only updates a stored response (judge the merged header of
    // `HttpCache::revalidate_merge_header`); on its own it has no content to store.
    if header.status.is_informational()
        || header.status == StatusCode::PARTIAL_CONTENT
        || header.status == StatusCode::NOT_MODIFIED
    {
        return Err(NoCacheReason::StatusNotStorable);
    }
    let status = header.status;
    if cc.must_understand() {
        if !is_understood_status(status) {
            return Err(NoCacheReason::StatusNotUnderstood);
        }
    } else if cc.no_store() {
        return Err(NoCacheReason::NoStore);
    }
    if cc.private() && cc.private_field_names().is_none() {
        return Err(NoCacheReason::Private);
    }
    if authorization_present && !(cc.public() || cc.s_maxage().is_some() || cc.must_revalidate()) {
        return Err(NoCacheReason::Authorization);
    }
    if vary_is_any(&header.headers) {
        return Err(NoCacheReason::VaryAny);
    }
    let no_cache_bare = cc.no_cache() && cc.no_cache_field_names().is_none();
    let lifetime = freshness_lifetime(cc, targeted, header, defaults, times.response_time);
    // A bare no-cache response is always revalidated, so it needs no lifetime: store it when it
    // has a validator to revalidate with and §3 allows storing it at all.
    let storable_for_revalidation = no_cache_bare
        && (is_heuristically_cacheable(effective_status(header.status)) || cc.public())
        && (header.headers.contains_key(http::header::ETAG)
            || header.headers.contains_key(LAST_MODIFIED));
    let Some(lifetime) =
        lifetime.or(storable_for_revalidation.then_some(Lifetime::Explicit(Duration::ZERO)))
    else {
        return Err(NoCacheReason::NoFreshness);
    };
    // Last, so that the reason names the cookie only when nothing else forbids storing.
    if set_cookie::decide(set_cookie, cc, targeted, &header.headers) == Verdict::Refuse {
        return Err(NoCacheReason::SetCookie);
    }
    // A bare no-cache: store, but never reuse without revalidation (§5.2.2.4).
    let lifetime = if no_cache_bare {
        Duration::ZERO
    } else {
        lifetime.duration()
    };
    let initial_age = age::corrected_initial_age_of(&header.headers, times);
    let epoch = age::age_epoch(times.response_time, initial_age);
    let fresh_until = epoch
        .checked_add(lifetime)
        .unwrap_or(epoch + Duration::from_secs(u64::from(u32::MAX)));
    let (swr, sie) = serve_stale_durations(cc, defaults);
    let mut strip: Vec<HeaderName> = Vec::new();
    for names in [cc.private_field_names(), cc.no_cache_field_names()]
        .into_iter()
        .flatten()
    {
        strip.extend(names.filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok()));
    }
    Ok(Decision {
        created: times.response_time,
        epoch,
        fresh_until,
        swr,
        sie,
        strip,
    })
}

fn apply(decision: Result<Decision, NoCacheReason>, mut header: ResponseHeader) -> RespCacheable {
    let decision = match decision {
        Ok(d) => d,
        Err(reason) => return RespCacheable::Uncacheable(reason),
    };
    for name in &decision.strip {
        header.headers.remove(name);
    }
    strip_unstorable(&mut header.headers);
    header.headers.remove(http::header::AGE);
    // Whatever the policy, a cookie goes only to the client whose request filled the cache.
    set_cookie::strip_set_cookie(&mut header.headers);
    let mut meta = CacheMeta::new(
        decision.fresh_until,
        decision.created,
        decision.swr,
        decision.sie,
        header,
    );
    if decision.epoch != decision.created {
        meta.set_epoch_override(decision.epoch);
    }
    RespCacheable::Cacheable(meta)
}

#[cfg(test)]
mod tests;
