//! The whole request flow: a short script of client requests, each with the upstream response
//! it gets, driven through `CacheService` over an in-memory cache, in-process.
//!
//! Each step is a request (method — the usual ones, `CONNECT`, `TRACE`, `PATCH`, `PURGE` and
//! made-up extension tokens —, a request target in every form of RFC 9112 §3.2: origin-form and
//! absolute-form from a small set so cache keys collide, authority-form `host:port`, `*`, an
//! empty target or raw bytes; `Host` and other fields from small dictionaries or raw bytes, how
//! much of the body the client reads before it disconnects) and the answer the upstream gives to every upstream call the request
//! causes, background refreshes included (status, fields such as `Cache-Control`, `Vary`,
//! `ETag`, `Location` and `Content-Location` as absolute, relative, scheme-relative,
//! query-only, fragment-only, empty or odd references, `Content-Length`, a body, and optionally a truncation: the body stream ends in an
//! error part way, or the call fails outright). A step may go together with the next one: the
//! requests of a round are in flight at once (cache lock, reads of a write in progress).
//!
//! Invariants checked after every round (the key is the method-independent
//! `scheme://authority/path?query` of `default_cache_key`):
//!
//! - request targets (RFC 9112 §3.2): `CONNECT` is answered `405` and never reaches the
//!   upstream; an authority-form target on any other method, `*` on anything but `OPTIONS`,
//!   and an empty, relative or otherwise unserved target are answered `400` and never reach
//!   the upstream; each refusal is a canned answer.
//! - no panic, and no request waits on a timer (the clock is paused and only moves when every
//!   task is blocked, so a request that waits means a cache lock was left held or a fill
//!   stalled); after the script every task has finished, no cache lock is held and no write is
//!   in progress.
//! - a `HEAD` answer has an empty body.
//! - a body the client receives completely is one the upstream sent completely for the same
//!   key, or, for a `206`, the `Content-Range` slice or the `multipart/byteranges` parts of
//!   bytes the upstream sent for the key with a matching complete length (a range may be served
//!   from a write in progress that fails later: its bytes are still the origin's), or empty
//!   where the proxy legitimately answers without a body: `304`, `412`, `416`, `1xx`,
//!   `204`, and the proxy's own bodiless answers (`Content-Length: 0` with
//!   `Cache-Control: private, no-store`: 401/404/405 for PURGE, 502, 504).
//! - a body not sent by the upstream during this very round came from storage, so some upstream
//!   response for the key with that body was storable: no bare `private`, no `no-store`
//!   (unless `must-understand`), not `no-store` requested, and not answering a request with
//!   `Authorization` unless `public`, `s-maxage` or `must-revalidate` (RFC 9111 §3, §3.5),
//!   and not carrying `Set-Cookie` without a shared opt-in (the default Set-Cookie policy:
//!   a targeted field, `public`, `s-maxage`, or the cookie named in `private=`/`no-cache=`);
//!   and, while no `304` has been answered for the key (a `304` may merge a new `Vary` into the
//!   stored response), its variance under that response's `Vary` equals the client's.
//! - a truncated upstream body is only ever a source of `206` slices, so a later complete
//!   answer carrying only its bytes fails the check above; and while no upstream body has been
//!   truncated or failed, no client body ends in an error.
//! - a complete body has the length its `Content-Length` declares (except `HEAD`, `204`, `304`).
//!
//! Not asserted: which of several legitimate bodies is served (freshness decisions, stale
//! serving, revalidation outcomes, invalidation and PURGE effects), header contents other than
//! `Content-Length`/`Content-Range`/`Content-Type` boundary, `Age`, `Cache-Status`, `Via`,
//! hop-by-hop stripping (the proxy's integration tests cover these), eviction and the
//! predictor (left out: they would carry state from one input to the next; the storage is
//! emptied after each input), a body the client stopped reading, and time-dependent freshness
//! (lifetimes are 0 or 100000 s, so the wall clock never decides).
#![no_main]

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full, StreamBody};
use larder_cache::lock::{CacheKeyLockImpl, CacheLock};
use larder_cache::{
    CacheKey, CacheMeta, CompactCacheKey, HashBinary, HitHandler, MemCache, MissHandler, PurgeType,
    Storage,
};
use larder_proxy::{BoxError, CacheConfig, CacheLayer, CacheService, DefaultHooks, ProxyBody};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use tower::{Layer, ServiceExt};

// ------------------------------------------------------------------------- the script

const MAX_STEPS: usize = 8;
const MAX_FIELDS: usize = 6;
const PURGE_TOKEN: &str = "fuzz-token";

#[derive(Arbitrary, Debug)]
struct Script {
    steps: Vec<Step>,
}

#[derive(Arbitrary, Debug)]
struct Step {
    /// Sent at the same time as the next step's request (both in flight together).
    with_next: bool,
    method: MethodChoice,
    host: HostChoice,
    target: TargetChoice,
    fields: Vec<(ReqField, Value)>,
    read: ClientRead,
    upstream: Upstream,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum MethodChoice {
    Get,
    Get2,
    Head,
    Post,
    Put,
    Delete,
    Options,
    Purge,
    Connect,
    Trace,
    Patch,
    /// An extension method (RFC 9110 §9.1) from [`EXTENSION_METHODS`].
    Extension(u8),
}

/// Made-up and rarely seen method tokens: all unsafe to the proxy (RFC 9110 §9.2.1).
const EXTENSION_METHODS: &[&str] = &["FOO", "PROPFIND", "M-SEARCH", "get", "X", "LINK"];

/// The request target (RFC 9112 §3.2), in every form.
#[derive(Arbitrary, Debug)]
enum TargetChoice {
    /// Origin-form and absolute-form, from [`PATHS`].
    Path(u8),
    /// Authority-form (only `CONNECT` may use it), from [`AUTHORITIES`].
    Authority(u8),
    /// Asterisk-form (only `OPTIONS` may use it).
    Asterisk,
    /// No target at all: a `Uri` with an empty path, no scheme and no authority.
    Empty,
    /// Raw bytes, when they parse as a `Uri`.
    Raw(Vec<u8>),
}

const AUTHORITIES: &[&str] = &["a.test:80", "a.test", "A.Test:443", "b.test:1", "[::1]:80"];

#[derive(Arbitrary, Debug)]
enum HostChoice {
    A,
    AUpper,
    B,
    None,
    Raw(Vec<u8>),
}

const PATHS: &[&str] = &[
    "/",
    "/a",
    "/a",
    "/a?x=1",
    "/b",
    "http://a.test/a",
    "http://b.test/a",
    "/a/b",
    "http://a.test",
    "http://a.test?x=1",
    "https://a.test/a",
    "//a.test/a",
    "http://u@a.test/a",
];

#[derive(Arbitrary, Debug, Clone, Copy)]
enum ReqField {
    Range,
    IfNoneMatch,
    IfMatch,
    IfModifiedSince,
    IfUnmodifiedSince,
    IfRange,
    CacheControl,
    Pragma,
    Authorization,
    AcceptEncoding,
    XV,
    Connection,
    Raw(u8),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum RespField {
    CacheControl,
    CdnCacheControl,
    Vary,
    ETag,
    LastModified,
    Date,
    Expires,
    Age,
    ContentRange,
    ContentType,
    Location,
    ContentLocation,
    SetCookie,
    Connection,
}

#[derive(Arbitrary, Debug)]
enum Value {
    Dict(u8),
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum ClientRead {
    Whole,
    Whole2,
    /// Reads this many frames, then drops the body (the client disconnects).
    Frames(u8),
}

#[derive(Arbitrary, Debug)]
struct Upstream {
    /// The call fails before answering (connection refused or reset).
    fail: bool,
    status: StatusChoice,
    fields: Vec<(RespField, Value)>,
    body: BodyChoice,
    content_length: bool,
    /// The body stream fails after this many bytes (only when fewer than the body's length).
    truncate: Option<u16>,
    chunks: u8,
}

#[derive(Arbitrary, Debug)]
enum StatusChoice {
    Ok,
    Ok2,
    Ok3,
    Set(u8),
    Raw(u16),
}

const STATUSES: &[u16] = &[
    200, 203, 204, 206, 300, 301, 304, 308, 404, 405, 410, 414, 500, 501, 502, 503, 504,
];

#[derive(Arbitrary, Debug)]
enum BodyChoice {
    Small(Vec<u8>),
    Dict(u8),
    /// Larger than the proxy reads inline for a hit (64 KiB), so hits stream from a task.
    Large(u8, u16),
}

fn dict(field: ReqField) -> &'static [&'static str] {
    match field {
        ReqField::Range => &[
            "bytes=0-0",
            "bytes=0-3",
            "bytes=2-",
            "bytes=-3",
            "bytes=0-1,3-4",
            "bytes=0-0,2-2,4-",
            "bytes=100-200",
            "bytes=5-2",
            "items=0-1",
            "bytes=0-65600",
            "bytes=65530-",
        ],
        ReqField::IfNoneMatch | ReqField::IfMatch => {
            &["\"v1\"", "W/\"v1\"", "\"v2\"", "*", "\"v1\", \"v2\""]
        }
        ReqField::IfModifiedSince | ReqField::IfUnmodifiedSince => &[
            "Wed, 21 Oct 2015 07:28:00 GMT",
            "Thu, 01 Jan 1970 00:00:00 GMT",
            "Fri, 01 Jan 2100 00:00:00 GMT",
        ],
        ReqField::IfRange => &["\"v1\"", "W/\"v1\"", "Wed, 21 Oct 2015 07:28:00 GMT"],
        ReqField::CacheControl => &[
            "no-cache",
            "no-store",
            "max-age=0",
            "max-stale",
            "max-stale=100",
            "min-fresh=1000000",
            "only-if-cached",
            "max-age=100000",
        ],
        ReqField::Pragma => &["no-cache"],
        ReqField::Authorization => &["Bearer fuzz-token", "Basic eDp5", "Bearer other"],
        ReqField::AcceptEncoding => &["gzip", "br", "gzip, br", "BR ,gzip", ""],
        ReqField::XV => &["1", "2"],
        ReqField::Connection => &["x-v", "close", "keep-alive", "cache-control"],
        ReqField::Raw(_) => &["1"],
    }
}

fn resp_dict(field: RespField) -> &'static [&'static str] {
    match field {
        RespField::CacheControl => &[
            "max-age=100000",
            "max-age=0",
            "no-cache",
            "no-store",
            "private",
            "public, max-age=100000",
            "s-maxage=100000",
            "max-age=100000, must-revalidate",
            "max-age=0, stale-while-revalidate=100000",
            "max-age=0, stale-if-error=100000",
            "no-cache, max-age=100000",
            "private=\"set-cookie\", max-age=100000",
            "no-store, must-understand, max-age=100000",
            "max-age=100000, immutable",
        ],
        RespField::CdnCacheControl => &["max-age=100000", "no-store", "private", "max-age=0"],
        RespField::Vary => &[
            "accept-encoding",
            "x-v",
            "*",
            "accept-encoding, x-v",
            "accept-language",
        ],
        RespField::ETag => &["\"v1\"", "W/\"v1\"", "\"v2\""],
        RespField::LastModified => &[
            "Wed, 21 Oct 2015 07:28:00 GMT",
            "Thu, 01 Jan 1970 00:00:00 GMT",
        ],
        RespField::Date => &["Sat, 01 Jan 2000 00:00:00 GMT", "garbage"],
        RespField::Expires => &[
            "Fri, 01 Jan 2100 00:00:00 GMT",
            "Sat, 01 Jan 2000 00:00:00 GMT",
            "0",
        ],
        RespField::Age => &["0", "100", "999999999", "-1"],
        RespField::ContentRange => &["bytes 0-1/5", "bytes */5", "bytes 0-0/1"],
        RespField::ContentType => &["text/plain", "multipart/byteranges; boundary=x"],
        // Absolute, path-absolute, relative, scheme-relative, query-only, fragment-only, empty
        // and odd references (RFC 3986 §4.1), resolved against every target form.
        RespField::Location | RespField::ContentLocation => &[
            "/a",
            "http://a.test/b",
            "http://b.test/a",
            "http://a.test/a?x=1",
            "a",
            "b",
            "../a",
            "./a?x=1",
            "a/..",
            "?x=1",
            "#f",
            "",
            "/a#f",
            "//a.test/a",
            "//b.test/a",
            "//",
            "http://a.test",
            "http://a.test?x=1",
            "https://a.test/a",
            "HTTP://A.TEST/b",
            "a.test:80",
            "*",
            "http:",
            "x:/a",
            "/../../a",
            "../../../../../../../../../../../../../../../../../../../../a",
        ],
        RespField::SetCookie => &["a=b"],
        RespField::Connection => &["etag", "close", "cache-control"],
    }
}

const BODIES: &[&[u8]] = &[b"", b"hello", b"world!", b"0123456789"];

fn value_bytes<'a>(choices: &'a [&'static str], v: &'a Value) -> &'a [u8] {
    match v {
        Value::Dict(i) => choices[usize::from(*i) % choices.len()].as_bytes(),
        Value::Raw(raw) => raw,
    }
}

fn req_name(field: ReqField) -> HeaderName {
    match field {
        ReqField::Range => header::RANGE,
        ReqField::IfNoneMatch => header::IF_NONE_MATCH,
        ReqField::IfMatch => header::IF_MATCH,
        ReqField::IfModifiedSince => header::IF_MODIFIED_SINCE,
        ReqField::IfUnmodifiedSince => header::IF_UNMODIFIED_SINCE,
        ReqField::IfRange => header::IF_RANGE,
        ReqField::CacheControl => header::CACHE_CONTROL,
        ReqField::Pragma => header::PRAGMA,
        ReqField::Authorization => header::AUTHORIZATION,
        ReqField::AcceptEncoding => header::ACCEPT_ENCODING,
        ReqField::XV => HeaderName::from_static("x-v"),
        ReqField::Connection => header::CONNECTION,
        ReqField::Raw(i) => {
            const OTHER: &[&str] = &[
                "accept-language",
                "te",
                "upgrade",
                "transfer-encoding",
                "content-length",
                "x-unkeyed",
                "via",
            ];
            HeaderName::from_static(OTHER[usize::from(i) % OTHER.len()])
        }
    }
}

fn resp_name(field: RespField) -> HeaderName {
    match field {
        RespField::CacheControl => header::CACHE_CONTROL,
        RespField::CdnCacheControl => cdn_name(),
        RespField::Vary => header::VARY,
        RespField::ETag => header::ETAG,
        RespField::LastModified => header::LAST_MODIFIED,
        RespField::Date => header::DATE,
        RespField::Expires => header::EXPIRES,
        RespField::Age => header::AGE,
        RespField::ContentRange => header::CONTENT_RANGE,
        RespField::ContentType => header::CONTENT_TYPE,
        RespField::Location => header::LOCATION,
        RespField::ContentLocation => header::CONTENT_LOCATION,
        RespField::SetCookie => header::SET_COOKIE,
        RespField::Connection => header::CONNECTION,
    }
}

fn cdn_name() -> HeaderName {
    HeaderName::from_static("cdn-cache-control")
}

impl MethodChoice {
    fn method(self) -> Method {
        match self {
            MethodChoice::Get | MethodChoice::Get2 => Method::GET,
            MethodChoice::Head => Method::HEAD,
            MethodChoice::Post => Method::POST,
            MethodChoice::Put => Method::PUT,
            MethodChoice::Delete => Method::DELETE,
            MethodChoice::Options => Method::OPTIONS,
            MethodChoice::Purge => Method::from_bytes(b"PURGE").expect("a valid token"),
            MethodChoice::Connect => Method::CONNECT,
            MethodChoice::Trace => Method::TRACE,
            MethodChoice::Patch => Method::PATCH,
            MethodChoice::Extension(i) => {
                let token = EXTENSION_METHODS[usize::from(i) % EXTENSION_METHODS.len()];
                Method::from_bytes(token.as_bytes()).expect("a valid token")
            }
        }
    }
}

/// The upstream's answer for one step, ready to be replayed for every call during the step.
struct Scripted {
    fail: bool,
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    truncate: Option<usize>,
    chunks: usize,
}

impl Scripted {
    fn new(up: &Upstream) -> Self {
        let code = match up.status {
            StatusChoice::Ok | StatusChoice::Ok2 | StatusChoice::Ok3 => 200,
            StatusChoice::Set(i) => STATUSES[usize::from(i) % STATUSES.len()],
            StatusChoice::Raw(n) => 200 + n % 400,
        };
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
        let mut headers = HeaderMap::new();
        for (field, value) in up.fields.iter().take(MAX_FIELDS) {
            // `Vary` names only fields the proxy forwards unchanged, so the variance the
            // upstream request gives is the client's (see `check_body`).
            let bytes = match (field, value) {
                (RespField::Vary, Value::Raw(raw)) => {
                    let names = resp_dict(RespField::Vary);
                    names[raw.len() % names.len()].as_bytes()
                }
                _ => value_bytes(resp_dict(*field), value),
            };
            if let Ok(v) = HeaderValue::from_bytes(bytes) {
                headers.append(resp_name(*field), v);
            }
        }
        let body = if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
            Bytes::new()
        } else {
            match &up.body {
                BodyChoice::Small(b) => Bytes::copy_from_slice(&b[..b.len().min(64)]),
                BodyChoice::Dict(i) => Bytes::from_static(BODIES[usize::from(*i) % BODIES.len()]),
                BodyChoice::Large(fill, extra) => {
                    let len = 64 * 1024 + usize::from(*extra % 4096);
                    Bytes::from((0..len).map(|i| (i as u8) ^ fill).collect::<Vec<u8>>())
                }
            }
        };
        if up.content_length {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        }
        let truncate = up
            .truncate
            .map(usize::from)
            .filter(|&t| t < body.len())
            // A large body is cut near its end as often as near its start.
            .map(|t| {
                if body.len() > 1024 {
                    body.len() - 1 - t % 1024
                } else {
                    t
                }
            });
        Self {
            fail: up.fail,
            status,
            headers,
            body,
            truncate,
            chunks: 1 + usize::from(up.chunks % 4),
        }
    }

    /// The response for an upstream request of `method` (no body for `HEAD`, as a client of a
    /// real connection would see).
    fn response(&self, method: &Method) -> Result<Response<ProxyBody>, BoxError> {
        if self.fail {
            return Err("scripted upstream failure".into());
        }
        let mut resp = Response::new(larder_proxy::body::empty());
        *resp.status_mut() = self.status;
        *resp.headers_mut() = self.headers.clone();
        if method == Method::HEAD {
            return Ok(resp);
        }
        let sent = self
            .truncate
            .map_or(self.body.clone(), |t| self.body.slice(..t));
        let step = sent.len().div_ceil(self.chunks).max(1);
        let mut frames: Vec<Result<http_body::Frame<Bytes>, BoxError>> = Vec::new();
        let mut at = 0;
        while at < sent.len() {
            let end = (at + step).min(sent.len());
            frames.push(Ok(http_body::Frame::data(sent.slice(at..end))));
            at = end;
        }
        if self.truncate.is_some() {
            frames.push(Err("scripted truncation".into()));
        }
        let body = StreamBody::new(futures_util::stream::iter(frames));
        *resp.body_mut() = larder_proxy::body::boxed(body);
        Ok(resp)
    }
}

// ------------------------------------------------------------------------- the model

/// A body the upstream sent, completely or (truncated) in part.
struct Sent {
    key: String,
    step: usize,
    round: usize,
    /// The bytes sent: the whole body, or the part before the stream failed.
    body: Bytes,
    /// The stream ended without an error.
    complete: bool,
    /// The length of the whole body, as the client can know it: the body's length when
    /// complete, the declared `Content-Length` when truncated.
    len: Option<usize>,
    headers: HeaderMap,
    /// The variance of the upstream request under this response's `Vary`.
    variance: Option<HashBinary>,
    /// RFC 9111 §3 lets a shared cache store it (as far as the fields decide).
    storable: bool,
}

#[derive(Default)]
struct State {
    /// The upstream's answer per step.
    scripts: Vec<Scripted>,
    /// The first step of the round running (for requests that lost their step field).
    step: usize,
    /// Requests sent together form a round.
    round: usize,
    sent: Vec<Sent>,
    /// Keys a `304` was answered for.
    not_modified: Vec<String>,
    /// An upstream body was truncated or a call failed during this input.
    any_failure: bool,
}

/// The request field that tells the upstream which step a request (or a background refresh
/// started by it) belongs to. Unkeyed and forwarded as is.
const STEP_FIELD: &str = "x-fuzz-step";

static STATE: Mutex<Option<State>> = Mutex::new(None);

fn with_state<T>(f: impl FnOnce(&mut State) -> T) -> T {
    let mut guard = STATE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    f(guard.get_or_insert_with(State::default))
}

/// The method-independent key of a request: `scheme://authority/path?query`, or empty when the
/// request has none (it is never cached).
fn key_of(parts: &http::request::Parts) -> String {
    larder_proxy::default_cache_key(parts)
        .and_then(|k| k.primary_key_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Whether a shared cache may store `resp`, the answer to `req` (RFC 9111 §3, §3.5, §5.2.1.5).
/// Applies to the proxy's own stale-while-revalidate refreshes too: a refresh is a copy of the
/// request that started it, and a `no-store` request starts none.
fn storable(req: &HeaderMap, resp: &HeaderMap) -> bool {
    use larder_cache::cache_control::{FieldNames, Source, targeted_with_source};
    let (cc, source) = targeted_with_source(resp, &[cdn_name()]);
    let req_cc = larder_cache::cache_control::CacheControl::from_headers(req);
    let authorized = req.contains_key(header::AUTHORIZATION);
    // The default Set-Cookie policy: stored only on a shared opt-in (a targeted field,
    // `public`, `s-maxage`, or naming the cookie field in `private=` / `no-cache=`).
    let sets_cookie = resp.contains_key(header::SET_COOKIE) || resp.contains_key("set-cookie2");
    let names_cookie = |names: Option<FieldNames<'_>>| {
        names.is_some_and(|mut names| {
            names.any(|n| {
                n.eq_ignore_ascii_case("set-cookie") || n.eq_ignore_ascii_case("set-cookie2")
            })
        })
    };
    let cookie_opt_in = matches!(source, Source::Targeted(_))
        || cc.public()
        || cc.s_maxage().is_some()
        || names_cookie(cc.private_field_names())
        || names_cookie(cc.no_cache_field_names());
    !(cc.no_store() && !cc.must_understand())
        && !(cc.private() && cc.private_field_names().is_none())
        && !(authorized && !(cc.public() || cc.s_maxage().is_some() || cc.must_revalidate()))
        && !(sets_cookie && !cookie_opt_in)
        && !req_cc.no_store()
}

/// The upstream: answers with the current step's script and records what it sent.
async fn upstream(req: Request<ProxyBody>) -> Result<Response<ProxyBody>, BoxError> {
    let (parts, _body) = req.into_parts();
    // The proxy does not tunnel, and refuses targets without a path before the cache.
    assert_ne!(parts.method, Method::CONNECT, "CONNECT reached the origin");
    let form = form_of(&parts.uri);
    assert!(
        form == Form::Served || (form == Form::Asterisk && parts.method == Method::OPTIONS),
        "{} {} ({form:?}) reached the origin",
        parts.method,
        parts.uri
    );
    let key = key_of(&parts);
    let step = parts
        .headers
        .get(STEP_FIELD)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    with_state(|s| {
        let step = step.filter(|&i| i < s.scripts.len()).unwrap_or(s.step);
        let script = &s.scripts[step];
        let resp = script.response(&parts.method);
        if script.fail || script.truncate.is_some() {
            s.any_failure = true;
        }
        if script.status == StatusCode::NOT_MODIFIED {
            s.not_modified.push(key.clone());
        }
        if resp.is_ok() && parts.method != Method::HEAD && script.status != StatusCode::NOT_MODIFIED
        {
            // The proxy judges the response without its hop-by-hop fields.
            let mut headers = script.headers.clone();
            larder_proxy::headers::remove_hop_by_hop(&mut headers);
            let variance = larder_proxy::default_variance(&headers, &parts.headers);
            let complete = script.truncate.is_none();
            let sent = Sent {
                key,
                step,
                round: s.round,
                body: script
                    .truncate
                    .map_or(script.body.clone(), |t| script.body.slice(..t)),
                complete,
                len: if complete {
                    Some(script.body.len())
                } else {
                    headers
                        .get(header::CONTENT_LENGTH)
                        .map(|_| script.body.len())
                },
                storable: storable(&parts.headers, &headers),
                headers,
                variance,
            };
            s.sent.push(sent);
        }
        resp
    })
}

// ------------------------------------------------------------------------- the harness

/// A storage that records every key written, so each input ends by purging them all.
struct Tracked {
    inner: &'static MemCache,
    keys: Mutex<Vec<CompactCacheKey>>,
}

#[async_trait::async_trait]
impl Storage for Tracked {
    async fn lookup(
        &'static self,
        key: &CacheKey,
        trace: &tracing::Span,
    ) -> larder_storage::Result<Option<(CacheMeta, HitHandler)>> {
        self.inner.lookup(key, trace).await
    }

    async fn lookup_streaming_write(
        &'static self,
        key: &CacheKey,
        tag: Option<&[u8]>,
        trace: &tracing::Span,
    ) -> larder_storage::Result<Option<(CacheMeta, HitHandler)>> {
        self.inner.lookup_streaming_write(key, tag, trace).await
    }

    async fn get_miss_handler(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        trace: &tracing::Span,
    ) -> larder_storage::Result<MissHandler> {
        self.keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(key.to_compact());
        self.inner.get_miss_handler(key, meta, trace).await
    }

    async fn purge(
        &'static self,
        key: &CompactCacheKey,
        purge_type: PurgeType,
        trace: &tracing::Span,
    ) -> larder_storage::Result<bool> {
        self.inner.purge(key, purge_type, trace).await
    }

    async fn update_meta(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        trace: &tracing::Span,
    ) -> larder_storage::Result<bool> {
        self.inner.update_meta(key, meta, trace).await
    }

    fn support_streaming_partial_write(&self) -> bool {
        self.inner.support_streaming_partial_write()
    }

    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync + 'static) {
        self
    }
}

/// The upstream's future, boxed so the service has a nameable type.
type UpstreamFuture =
    std::pin::Pin<Box<dyn Future<Output = Result<Response<ProxyBody>, BoxError>> + Send>>;

/// The upstream as a tower service.
type UpstreamFn = tower::util::ServiceFn<fn(Request<ProxyBody>) -> UpstreamFuture>;

/// What every input shares: the runtime, the storage and lock (emptied after each input) and
/// the service.
struct Harness {
    rt: tokio::runtime::Runtime,
    storage: &'static Tracked,
    lock: &'static CacheLock,
    service: CacheService<UpstreamFn, DefaultHooks>,
}

fn boxed_upstream(req: Request<ProxyBody>) -> UpstreamFuture {
    Box::pin(upstream(req))
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        // The clock is paused: it moves only when every task waits on a timer.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("a runtime");
        let storage: &'static Tracked = Box::leak(Box::new(Tracked {
            inner: Box::leak(Box::new(MemCache::new())),
            keys: Mutex::new(Vec::new()),
        }));
        let lock: &'static CacheLock = Box::leak(CacheLock::new_boxed(Duration::from_secs(5)));
        let mut config = CacheConfig::default();
        config.storage = Some(storage as &'static (dyn Storage + Sync));
        config.cache_lock = Some(lock as &'static CacheKeyLockImpl);
        config.lock_wait_timeout = Some(Duration::from_secs(5));
        config.max_file_size = Some(1 << 20);
        config.purge_token = Some(PURGE_TOKEN.to_owned());
        // No eviction manager and no predictor: both would carry state between inputs.
        let layer = CacheLayer::new(config, DefaultHooks);
        let inner: UpstreamFn = tower::service_fn(boxed_upstream as _);
        Harness {
            rt,
            storage,
            lock,
            service: layer.layer(inner),
        }
    })
}

/// How the client's body ended.
enum Received {
    Complete(Bytes),
    Error,
    Dropped,
}

impl TargetChoice {
    fn uri(&self) -> Option<Uri> {
        match self {
            TargetChoice::Path(i) => PATHS[usize::from(*i) % PATHS.len()].parse().ok(),
            TargetChoice::Authority(i) => AUTHORITIES[usize::from(*i) % AUTHORITIES.len()]
                .parse()
                .ok(),
            TargetChoice::Asterisk => Some(Uri::from_static("*")),
            // No scheme, authority or path: `path()` is empty.
            TargetChoice::Empty => Uri::from_parts(http::uri::Parts::default()).ok(),
            TargetChoice::Raw(raw) => Uri::try_from(raw.as_slice()).ok(),
        }
    }
}

/// The request-target form (RFC 9112 §3.2) of `uri`, as the proxy must judge it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// A path starting with `/` (origin-form) or a valid absolute-form target.
    Served,
    /// `host:port`: refused with `400` unless the method is `CONNECT`.
    Authority,
    /// `*`: forwarded for `OPTIONS`, refused with `400` otherwise.
    Asterisk,
    /// Anything else (empty, relative, absolute with userinfo or another scheme): `400`.
    Bad,
}

fn form_of(uri: &Uri) -> Form {
    match (uri.scheme_str(), uri.authority()) {
        (Some("http" | "https"), Some(a)) if !a.host().is_empty() && !a.as_str().contains('@') => {
            Form::Served
        }
        (None, Some(_)) => Form::Authority,
        (None, None) if uri.path() == "*" => Form::Asterisk,
        (None, None) if uri.path().starts_with('/') => Form::Served,
        _ => Form::Bad,
    }
}

fn build_request(i: usize, step: &Step) -> Option<Request<Full<Bytes>>> {
    let method = step.method.method();
    let uri = step.target.uri()?;
    let mut req = Request::builder().method(method.clone()).uri(uri);
    let host: Option<&[u8]> = match &step.host {
        HostChoice::A => Some(b"a.test"),
        HostChoice::AUpper => Some(b"A.Test"),
        HostChoice::B => Some(b"b.test"),
        HostChoice::None => None,
        HostChoice::Raw(raw) => Some(raw),
    };
    if let Some(h) = host.and_then(|h| HeaderValue::from_bytes(h).ok()) {
        req = req.header(header::HOST, h);
    }
    for (field, value) in step.fields.iter().take(MAX_FIELDS) {
        if let Ok(v) = HeaderValue::from_bytes(value_bytes(dict(*field), value)) {
            req = req.header(req_name(*field), v);
        }
    }
    req = req.header(STEP_FIELD, i);
    let body = if method == Method::POST || method == Method::PUT || method == Method::PATCH {
        Bytes::from_static(b"request body")
    } else {
        Bytes::new()
    };
    req.body(Full::new(body)).ok()
}

/// One request of a round, and what the client got.
struct Exchange {
    step: usize,
    method: Method,
    form: Form,
    key: String,
    client_headers: HeaderMap,
    resp: http::response::Parts,
    received: Received,
    waited: Duration,
}

/// Sends the requests of `steps` together and reads their answers.
fn run_round(h: &Harness, round: usize, steps: &[(usize, &Step)]) {
    let mut requests = Vec::new();
    let mut futures = Vec::new();
    for &(i, step) in steps {
        let Some(req) = build_request(i, step) else {
            continue;
        };
        let (parts, body) = req.into_parts();
        let key = key_of(&parts);
        let form = form_of(&parts.uri);
        let mut client_headers = parts.headers.clone();
        larder_proxy::headers::remove_hop_by_hop(&mut client_headers);
        requests.push((i, parts.method.clone(), form, key, client_headers));
        futures.push(exchange(
            h.service.clone(),
            Request::from_parts(parts, body),
            step.read,
        ));
    }
    with_state(|s| {
        s.round = round;
        s.step = steps[0].0;
    });
    let results = h.rt.block_on(futures_util::future::join_all(futures));
    for ((step, method, form, key, client_headers), (resp, received, waited)) in
        requests.into_iter().zip(results)
    {
        check(&Exchange {
            step,
            method,
            form,
            key,
            client_headers,
            resp,
            received,
            waited,
        });
    }
}

/// One request: sends it, then reads the body as the step says.
async fn exchange(
    service: CacheService<UpstreamFn, DefaultHooks>,
    req: Request<Full<Bytes>>,
    read: ClientRead,
) -> (http::response::Parts, Received, Duration) {
    let t0 = tokio::time::Instant::now();
    let resp = match service.oneshot(req).await {
        Ok(r) => r,
        Err(e) => match e {},
    };
    let (parts, mut body) = resp.into_parts();
    let mut data = Vec::new();
    let mut frames = 0usize;
    let received = loop {
        if let ClientRead::Frames(n) = read
            && frames >= usize::from(n % 4)
        {
            break Received::Dropped;
        }
        match body.frame().await {
            None => break Received::Complete(Bytes::from(data)),
            Some(Err(_)) => break Received::Error,
            Some(Ok(frame)) => {
                frames += 1;
                if let Ok(chunk) = frame.into_data() {
                    data.extend_from_slice(&chunk);
                }
            }
        }
    };
    drop(body);
    (parts, received, t0.elapsed())
}

fn check(x: &Exchange) {
    let i = x.step;
    // RFC 9112 §3.2: no tunnels, authority-form only for CONNECT, `*` only for OPTIONS.
    let refused = if x.method == Method::CONNECT {
        Some(StatusCode::METHOD_NOT_ALLOWED)
    } else if x.form == Form::Asterisk && x.method == Method::OPTIONS {
        None
    } else if x.form != Form::Served {
        Some(StatusCode::BAD_REQUEST)
    } else {
        None
    };
    if let Some(expect) = refused {
        assert_eq!(
            x.resp.status, expect,
            "step {i}: {} with a {:?} target answered {}",
            x.method, x.form, x.resp.status
        );
        assert!(
            is_canned(&x.resp.headers),
            "step {i}: a refusal that is not canned"
        );
    }
    assert!(
        x.waited < Duration::from_secs(1),
        "step {i}: the request waited {:?} on a timer (a cache lock left held?)",
        x.waited
    );
    let body = match &x.received {
        Received::Complete(b) => b,
        Received::Dropped => return,
        Received::Error => {
            assert!(
                with_state(|s| s.any_failure),
                "step {i}: the client body failed though no upstream body did"
            );
            return;
        }
    };
    check_body(x, body);
}

fn is_canned(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_LENGTH)
        .is_some_and(|v| v == "0")
        && headers
            .get(header::CACHE_CONTROL)
            .is_some_and(|v| v == "private, no-store")
}

fn check_body(x: &Exchange, body: &Bytes) {
    let (i, method, key, resp) = (x.step, &x.method, x.key.as_str(), &x.resp);
    let range = x.client_headers.get(header::RANGE);
    let status = resp.status;
    if method == Method::HEAD {
        assert!(body.is_empty(), "step {i}: HEAD answered with a body");
        return;
    }
    if let Some(cl) = resp.headers.get(header::CONTENT_LENGTH)
        && status != StatusCode::NO_CONTENT
        && status != StatusCode::NOT_MODIFIED
    {
        let declared: Option<usize> = cl.to_str().ok().and_then(|s| s.parse().ok());
        assert_eq!(
            declared,
            Some(body.len()),
            "step {i}: {status} body of {} bytes, Content-Length {cl:?}",
            body.len()
        );
    }
    if body.is_empty()
        && (status.is_informational()
            || [304, 412, 416, 204].contains(&status.as_u16())
            || is_canned(&resp.headers))
    {
        return;
    }
    let ok = with_state(|s| {
        // A complete answer carries a whole body the upstream sent completely; a 206 carries
        // bytes the upstream sent (a range can be served from a write still in progress that
        // fails later: its bytes are still the origin's).
        let matches = |r: &Sent| {
            (r.complete && r.body == body)
                || (status == StatusCode::PARTIAL_CONTENT
                    && r.len
                        .is_some_and(|len| is_part_of(len, &r.body, body, resp)))
        };
        // Sent by the upstream during this round: passed through (or stored and served).
        if s.sent
            .iter()
            .any(|r| r.key == key && r.round == s.round && matches(r))
        {
            return Ok(());
        }
        // Otherwise it came from storage.
        let vary_checked = !s.not_modified.iter().any(|k| k == key);
        let candidates: Vec<&Sent> = s
            .sent
            .iter()
            .filter(|r| r.key == key && matches(r))
            .collect();
        if candidates.is_empty() {
            return Err(format!(
                "never sent by the upstream for {key:?} (sent for it: {:?})",
                s.sent
                    .iter()
                    .filter(|r| r.key == key)
                    .map(|r| (r.step, r.body.len(), r.complete))
                    .collect::<Vec<_>>()
            ));
        }
        let allowed = candidates.iter().any(|r| {
            r.storable
                && (!vary_checked
                    || larder_proxy::default_variance(&r.headers, &x.client_headers) == r.variance)
        });
        if allowed {
            Ok(())
        } else {
            Err(format!(
                "served from storage, but no response with this body was storable for this \
                 request (candidates from steps {:?}; storable {:?}; vary checked {vary_checked})",
                candidates.iter().map(|r| r.step).collect::<Vec<_>>(),
                candidates.iter().map(|r| r.storable).collect::<Vec<_>>(),
            ))
        }
    });
    if let Err(why) = ok {
        panic!(
            "step {i}: {method} {key} (range {range:?}) answered {status} with a body of {} \
             bytes: {why}",
            body.len()
        );
    }
}

/// Whether `body` (a 206 answer) is a `Content-Range` slice of a representation of `len` bytes
/// that starts with `sent`, or `multipart/byteranges` parts of it.
fn is_part_of(len: usize, sent: &Bytes, body: &Bytes, resp: &http::response::Parts) -> bool {
    if let Some(cr) = resp.headers.get(header::CONTENT_RANGE) {
        return match parse_content_range(cr.as_bytes()) {
            Some((start, end, complete)) => {
                complete == len && end < len && sent.get(start..=end) == Some(&body[..])
            }
            None => false,
        };
    }
    let Some(boundary) = resp
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("multipart/byteranges; boundary="))
    else {
        return false;
    };
    multipart_parts_match(len, sent, body, boundary)
}

/// `bytes a-b/len`.
fn parse_content_range(v: &[u8]) -> Option<(usize, usize, usize)> {
    let s = std::str::from_utf8(v).ok()?.strip_prefix("bytes ")?;
    let (range, len) = s.split_once('/')?;
    let (a, b) = range.split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()?, len.parse().ok()?))
}

fn multipart_parts_match(whole_len: usize, sent: &[u8], body: &[u8], boundary: &str) -> bool {
    let delimiter = format!("--{boundary}\r\n");
    let closing = format!("\r\n--{boundary}--\r\n");
    let mut rest = body;
    let mut parts = 0;
    loop {
        if parts > 0 {
            if rest == closing.as_bytes() {
                return parts >= 2;
            }
            let Some(r) = rest.strip_prefix(b"\r\n".as_slice()) else {
                return false;
            };
            rest = r;
        }
        let Some(r) = rest.strip_prefix(delimiter.as_bytes()) else {
            return false;
        };
        // Part headers up to the blank line.
        let Some(end) = r.windows(4).position(|w| w == b"\r\n\r\n") else {
            return false;
        };
        let head = &r[..end];
        let Some(cr) = head
            .split(|&b| b == b'\n')
            .find_map(|line| line.strip_prefix(b"Content-Range: ".as_slice()))
        else {
            return false;
        };
        let cr = cr.strip_suffix(b"\r").unwrap_or(cr);
        let Some((start, last, len)) = parse_content_range(cr) else {
            return false;
        };
        let data = &r[end + 4..];
        let n = last + 1 - start.min(last + 1);
        if len != whole_len || last >= len || start > last || data.len() < n {
            return false;
        }
        if sent.get(start..=last) != Some(&data[..n]) {
            return false;
        }
        rest = &data[n..];
        parts += 1;
    }
}

/// After the script: every task done, no lock held, no write in progress; then empties the
/// cache for the next input.
fn finish(h: &Harness) {
    h.rt.block_on(async {
        for _ in 0..64 {
            if tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks()
                == 0
            {
                break;
            }
            tokio::task::yield_now().await;
        }
    });
    let alive = h.rt.metrics().num_alive_tasks();
    let keys = std::mem::take(
        &mut *h
            .storage
            .keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    let writes = h.storage.inner.writes_in_progress();
    let locked = h.lock.len();
    h.rt.block_on(async {
        let span = tracing::Span::none();
        for key in &keys {
            let _ = h.storage.purge(key, PurgeType::Invalidation, &span).await;
        }
    });
    assert_eq!(alive, 0, "tasks still running after the script");
    assert_eq!(writes, 0, "cache writes still in progress after the script");
    assert_eq!(locked, 0, "cache locks still held after the script");
    assert!(
        h.storage.inner.is_empty(),
        "entries left after purging every written key"
    );
}

fuzz_target!(|script: Script| {
    static TRACE: OnceLock<bool> = OnceLock::new();
    if *TRACE.get_or_init(|| std::env::var_os("FUZZ_TRACE").is_some()) {
        // `FUZZ_TRACE=1 <binary> <crash file>` prints the script of a crash.
        eprintln!("{script:#?}");
    }
    let h = harness();
    let steps: Vec<(usize, &Step)> = script.steps.iter().take(MAX_STEPS).enumerate().collect();
    with_state(|s| {
        *s = State {
            scripts: steps
                .iter()
                .map(|(_, st)| Scripted::new(&st.upstream))
                .collect(),
            ..State::default()
        };
    });
    let mut round = 0;
    let mut at = 0;
    while at < steps.len() {
        // A round: this step, and the next ones while each asks to go with its successor.
        let mut end = at + 1;
        while end < steps.len() && steps[end - 1].1.with_next {
            end += 1;
        }
        run_round(h, round, &steps[at..end]);
        round += 1;
        at = end;
    }
    finish(h);
});
