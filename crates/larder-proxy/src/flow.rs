//! The per-request cache flow: pingora's proxy cache flow with RFC 9111 defaults.
//!
//! request filter → key → predictor → lookup loop (vary re-lookup, lock waits) → hit / stale
//! (revalidate, stale-while-revalidate, stale-if-error) / miss (fill while streaming).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode};
use larder_cache::age::ResponseTimes;
use larder_cache::cache_status::{CacheStatus, ForwardReason};
use larder_cache::conditional::{self, Precondition};
use larder_cache::filters::{self, RespCacheable};
use larder_cache::lock::{LockStatus, WritePermit};
use larder_cache::max_file_size::{content_length, content_length_exceeds};
use larder_cache::range::{self, RangeBody, RangeBodyFilter, RangeSpec};
use larder_cache::request::{RequestDirectives, Reuse};
use larder_cache::{
    CacheKey, CacheOptionOverrides, CachePhase, HitStatus, HttpCache, NoCacheReason,
    ResponseHeader, revalidate, set_cookie,
};
use tower::ServiceExt;

use crate::body::{self, CHANNEL_CHUNKS, ChannelBody, ProxyBody, canned};
use crate::callbacks;
use crate::error::BoxError;
use crate::headers;
use crate::hooks::{CacheHooks, StaleCause};
use crate::invalidate::{invalidate, is_unsafe, store_post};
use crate::layer::Shared;
use crate::metrics::Metrics;
use crate::pump::{finish_hit, pump_hit, read_hit, serve_upstream};
use crate::purge::{PurgeAuth, PurgeStatus};

/// How many lookups one request may make (vary re-lookups and lock waits) before it gives up
/// on the cache and goes upstream.
const MAX_LOOKUPS: usize = 8;
/// A hit whose body fits in this many bytes is read before the response is returned, saving
/// the task that would otherwise stream it.
const INLINE_HIT_BYTES: usize = 64 * 1024;

/// A boxed future, as the inner service is called through [`Inner`].
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The inner service, with its body and error types erased.
pub(crate) trait Inner: Clone + Send + Sync + 'static {
    /// Sends one request.
    fn send(&self, req: Request<ProxyBody>) -> BoxFuture<Result<Response<ProxyBody>, BoxError>>;
}

impl<S, ResB> Inner for Arc<S>
where
    S: tower_service::Service<Request<ProxyBody>, Response = Response<ResB>>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    ResB: http_body::Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    fn send(&self, req: Request<ProxyBody>) -> BoxFuture<Result<Response<ProxyBody>, BoxError>> {
        let svc = S::clone(self);
        Box::pin(async move {
            let resp = svc.oneshot(req).await.map_err(Into::into)?;
            Ok(resp.map(body::boxed))
        })
    }
}

pub(crate) type Answer = (Response<ProxyBody>, CacheStatus);

/// Handles one request: purge, pass-through or the cache flow. Adds `Cache-Status` and `Via`.
/// Handles one request: purge, pass-through or the cache flow. Adds `Cache-Status` and `Via`.
/// The caller has removed the request's hop-by-hop fields
/// ([`headers::remove_hop_by_hop`]).
///
/// The request and the inner service are borrowed: the request's future is boxed for every
/// request, and each by-value argument of an `async fn` takes its size twice in that future.
pub(crate) async fn handle<H: CacheHooks, I: Inner>(
    shared: &Arc<Shared<H>>,
    inner: &I,
    parts: &Parts,
    body: ProxyBody,
) -> Response<ProxyBody> {
    // Tunnels, authority-form and stray `*` targets end here (`target.rs`), so nothing below
    // meets a target without a path.
    if let Some(resp) = crate::target::reject(shared, parts) {
        return resp;
    }
    let purging = shared.hooks.is_purge(parts);
    let (mut resp, status) = if purging {
        // The cold arms are boxed so that the request's future stays small: only the hit path
        // lives in it.
        Box::pin(purge(shared, parts)).await
    } else {
        run(shared, inner, parts, body).await
    };
    tracing::debug!(method = %parts.method, uri = %parts.uri, status = resp.status().as_u16(), cache_status = %status, "request");
    decorate(shared, parts, &mut resp, &status);
    if purging {
        return resp;
    }
    if let Err(e) = callbacks::filter_response(&shared.hooks, parts, &mut resp).await {
        resp = filter_failed(shared, parts, &status, &e);
    }
    resp
}

/// The `500` that replaces an answer whose response filter failed.
#[cold]
#[inline(never)]
fn filter_failed<H>(
    shared: &Shared<H>,
    req: &Parts,
    status: &CacheStatus,
    error: &BoxError,
) -> Response<ProxyBody> {
    tracing::warn!(%error, "response_filter failed");
    let mut resp = canned(StatusCode::INTERNAL_SERVER_ERROR);
    decorate(shared, req, &mut resp, status);
    resp
}

/// Adds `Cache-Status` and `Via` to the answer to `req`.
fn decorate<H>(
    shared: &Shared<H>,
    req: &Parts,
    resp: &mut Response<ProxyBody>,
    status: &CacheStatus,
) {
    status.append_to(resp.headers_mut());
    let version = resp.version();
    shared.via.append(resp.headers_mut(), version);
    // The response travels on the client's connection: speak the client's HTTP version, not
    // the upstream's (an HTTP/1.0 origin must not turn the client's HTTP/1.1 answer into 1.0,
    // which would also end keep-alive). `Via` above keeps the version received (RFC 9110 §7.6.3).
    *resp.version_mut() = req.version;
}

fn new_status<H>(shared: &Shared<H>) -> CacheStatus {
    CacheStatus::with_shared_name(Arc::clone(&shared.status_name))
}

pub(crate) fn enable<H>(shared: &Shared<H>, cache: &mut HttpCache, with_lock: bool) {
    let c = &shared.config;
    let Some(storage) = c.storage else {
        return;
    };
    let overrides = CacheOptionOverrides::default().with_wait_timeout(c.lock_wait_timeout);
    let lock = if with_lock { c.cache_lock } else { None };
    let predictor = if with_lock { c.predictor } else { None };
    cache.enable(storage, c.eviction, predictor, lock, Some(overrides));
    if with_lock && let Some(max) = c.max_file_size {
        cache.set_max_file_size_bytes(max);
    }
}

// ------------------------------------------------------------------------- purge

async fn purge<H: CacheHooks>(shared: &Shared<H>, req: &Parts) -> Answer {
    let status = new_status(shared).detail("purge");
    let auth = shared
        .hooks
        .purge_authorization(req, shared.config.purge_token.as_deref());
    let failure;
    let outcome = match auth {
        PurgeAuth::Disabled => PurgeStatus::NoCache,
        PurgeAuth::Unauthorized => PurgeStatus::Unauthorized,
        PurgeAuth::Allowed => {
            let mut target = req.clone();
            target.method = Method::GET;
            match shared.hooks.cache_key_callback(&target) {
                Some(key) if shared.config.storage.is_some() => {
                    let mut cache = HttpCache::new();
                    enable(shared, &mut cache, false);
                    cache.set_cache_key(key);
                    match cache.purge().await {
                        Ok(true) => {
                            shared.metrics.purges.inc();
                            PurgeStatus::Found
                        }
                        Ok(false) => PurgeStatus::NotFound,
                        Err(e) => {
                            tracing::warn!(error = %e, "purge failed");
                            failure = e;
                            PurgeStatus::Error(&failure)
                        }
                    }
                }
                _ => PurgeStatus::NotFound,
            }
        }
    };
    (
        callbacks::purge_answer(&shared.hooks, req, &outcome),
        status,
    )
}

// ------------------------------------------------------------------------- pass-through

/// The request head sent upstream, with `Via` added and the body fields gone when the body is
/// not the client's; `Err` when [`CacheHooks::upstream_request_filter`] failed.
fn upstream_head<H: CacheHooks>(
    shared: &Shared<H>,
    req: &Parts,
    mutate: impl FnOnce(&mut Parts),
) -> Result<Parts, BoxError> {
    let mut up = req.clone();
    mutate(&mut up);
    shared.hooks.upstream_request_filter(req, &mut up)?;
    shared.via.append(&mut up.headers, req.version);
    Ok(up)
}

async fn run<H: CacheHooks, I: Inner>(
    shared: &Arc<Shared<H>>,
    inner: &I,
    req: &Parts,
    body: ProxyBody,
) -> Answer {
    let cache = cache_for(shared, req, !http_body::Body::is_end_stream(&body));
    let mut cache = match cache {
        Ok(cache) => cache,
        Err(why) => {
            return Box::pin(pass_through(shared, inner, req, body, why)).await;
        }
    };
    let mut flow = Flow {
        shared,
        inner,
        directives: RequestDirectives::from_headers(&req.headers),
        req,
        fwd: ForwardReason::UriMiss,
        collapsed: false,
        must_revalidate: false,
    };
    flow.lookup(&mut cache, body).await
}

/// Why the cache does not handle a request.
#[derive(Clone, Copy)]
enum Bypass {
    /// The method is not cacheable.
    Method,
    /// Caching is off.
    Disabled,
    /// The hooks gave no key.
    NoKey,
    /// A cacheable method with a request body.
    RequestBody,
}

/// The request's cache, with its key set, or why the cache does not handle the request (`has_body`:
/// the request has a body). Not `async`, so the key never takes room in the request's future.
fn cache_for<H: CacheHooks>(
    shared: &Shared<H>,
    req: &Parts,
    has_body: bool,
) -> Result<HttpCache, Bypass> {
    if !shared.hooks.request_cache_filter(req) {
        return Err(Bypass::Method);
    }
    if has_body {
        // A GET or HEAD with a body is never answered from, or stored into, the cache: the
        // key does not cover the body, so an origin that reads it would let one client choose
        // what every other client gets (docs/security.md, "fat GET").
        return Err(Bypass::RequestBody);
    }
    if shared.config.storage.is_none() {
        return Err(Bypass::Disabled);
    }
    let key = shared.hooks.cache_key_callback(req);
    let Some(mut key) = key else {
        return Err(Bypass::NoKey);
    };
    // Hot keys come back again and again: their Blake2b is remembered, not recomputed.
    shared.key_hashes.fill(&mut key);
    let mut cache = HttpCache::new();
    enable(shared, &mut cache, true);
    cache.set_cache_key(key);
    Ok(cache)
}

/// Forwards a request the cache does not handle (no cacheable method, caching off or no key),
/// invalidating on unsafe methods and storing a cacheable POST answer.
async fn pass_through<H: CacheHooks, I: Inner>(
    shared: &Arc<Shared<H>>,
    inner: &I,
    req: &Parts,
    body: ProxyBody,
    why: Bypass,
) -> Answer {
    let metrics = &shared.metrics;
    // Not cached: forward as is.
    metrics.bypass.inc();
    let (fwd, reason) = match why {
        Bypass::Method => (ForwardReason::Method, NoCacheReason::NeverEnabled),
        Bypass::Disabled => (ForwardReason::Bypass, NoCacheReason::NeverEnabled),
        Bypass::NoKey => (ForwardReason::Bypass, NoCacheReason::Custom("NoCacheKey")),
        Bypass::RequestBody => (ForwardReason::Bypass, NoCacheReason::Custom("RequestBody")),
    };
    metrics.not_stored(reason.as_str());
    let status = new_status(shared).fwd(fwd).detail(reason.as_str());
    if let Some(reason) = callbacks::upstream_declined(&shared.hooks, req, None).await {
        return callbacks::declined_answer(reason, status, None);
    }
    let close = body_without_meaning(&req.method) && !http_body::Body::is_end_stream(&body);
    let up = upstream_head(shared, req, |up| {
        if close {
            // An origin that ignores this body (as many do for these methods) would read it
            // as the start of the next request on a reused connection: a client could then
            // choose the answer another client gets, and the cache could store it. The
            // connection carrying it is not reused.
            up.headers
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
    });
    let up = match up {
        Ok(up) => up,
        Err(e) => {
            let reason = callbacks::filter_failed(&e, "upstream_request_filter", None);
            return callbacks::declined_answer(reason, status, None);
        }
    };
    match inner.send(Request::from_parts(up, body)).await {
        Ok(resp) => {
            let (mut parts, body) = resp.into_parts();
            headers::remove_hop_by_hop(&mut parts.headers);
            if is_unsafe(&req.method)
                && (parts.status.is_success() || parts.status.is_redirection())
            {
                invalidate(shared, req, &parts.headers).await;
            }
            let status = status.fwd_status(parts.status);
            if req.method == Method::POST {
                return store_post(shared, req, parts, body, status).await;
            }
            (Response::from_parts(parts, body), status)
        }
        Err(e) => {
            metrics.upstream_errors.inc();
            tracing::warn!(error = %e, "upstream failed");
            (shared.hooks.fail_to_proxy(req, &e).await, status)
        }
    }
}

/// Whether content in a request with `method` has no generally defined semantics (RFC 9110
/// §9.3.1, §9.3.2, §9.3.5, §9.3.7, §9.3.8), so that many origins never read it.
fn body_without_meaning(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::DELETE | Method::OPTIONS | Method::TRACE
    )
}

// ------------------------------------------------------------------------- the cache flow

/// What to do after waiting on a cache lock.
enum AfterWait {
    LookAgain,
    GoUpstream,
}

/// How a response served from storage came about (for `Cache-Status` and metrics).
#[derive(Clone, Copy)]
enum HitKind {
    Fresh,
    StaleWhileRevalidate,
    StaleIfError(Option<StatusCode>),
    /// Stale past any stale-if-error window because the upstream cannot be reached
    /// (RFC 9111 §4.2.4, `CacheConfig::serve_stale_on_disconnect`).
    StaleOnDisconnect,
    Revalidated {
        stored: bool,
    },
}

struct Flow<'a, H, I> {
    shared: &'a Arc<Shared<H>>,
    inner: &'a I,
    req: &'a Parts,
    directives: RequestDirectives,
    fwd: ForwardReason,
    collapsed: bool,
    must_revalidate: bool,
}

impl<H: CacheHooks, I: Inner> Flow<'_, H, I> {
    fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// The lookup loop (inventory §3.1).
    // One step of the flow kept in one place, in the order pingora's proxy runs it.
    #[allow(clippy::too_many_lines)]
    async fn lookup(&mut self, cache: &mut HttpCache, body: ProxyBody) -> Answer {
        if !cache.cacheable_prediction() {
            cache.bypass();
            self.fwd = ForwardReason::Bypass;
            return self.fetch_boxed(std::mem::take(cache), body).await;
        }
        for _ in 0..MAX_LOOKUPS {
            let found = match cache.cache_lookup().await {
                Ok(found) => found,
                Err(e) => {
                    // A failed lookup is a miss, so a bad entry can be overwritten.
                    storage_failed(&e, "cache lookup failed");
                    callbacks::cache_miss(&self.shared.hooks, self.req, cache);
                    return self.fetch_boxed(std::mem::take(cache), body).await;
                }
            };
            let Some((mut meta, hit)) = found else {
                if cache.is_cache_locked() {
                    match Box::pin(self.wait_lock(cache)).await {
                        AfterWait::LookAgain => continue,
                        AfterWait::GoUpstream => {
                            return self.fetch_boxed(std::mem::take(cache), body).await;
                        }
                    }
                }
                callbacks::cache_miss(&self.shared.hooks, self.req, cache);
                return self.fetch_boxed(std::mem::take(cache), body).await;
            };
            // Vary (RFC 9111 §4.1).
            if let Some(variance) = cache.cache_key().get_variance_key().copied() {
                if meta.variance() != Some(variance) {
                    cache.disable(NoCacheReason::InternalError);
                    return self.fetch_boxed(std::mem::take(cache), body).await;
                }
            } else if let Some(variance) = self.shared.hooks.cache_vary_filter(&meta, self.req)
                && !cache.cache_vary_lookup(variance, &meta)
            {
                self.fwd = ForwardReason::VaryMiss;
                continue;
            }
            let now = SystemTime::now();
            let reuse =
                self.directives
                    .reuse(&meta, &self.shared.config.targeted_cache_control, now);
            let Some(mut hit_status) = reuse.hit_status() else {
                // only-if-cached and the entry needs the origin (RFC 9111 §5.2.1.7).
                return self.gateway_timeout(std::mem::take(cache));
            };
            if reuse == Reuse::MustRevalidate {
                self.must_revalidate = true;
                self.fwd = ForwardReason::Request;
            }
            if let Some(forced) =
                callbacks::hit_filter(&self.shared.hooks, self.req, &meta, meta.is_fresh(now))
            {
                hit_status = forced;
                if hit_status == HitStatus::ForceExpired {
                    meta.disable_serve_stale();
                    self.must_revalidate = true;
                }
            }
            cache.cache_found(meta, hit, hit_status);
            match cache.phase() {
                CachePhase::Hit => return self.serve_hit(cache, HitKind::Fresh).await,
                CachePhase::Stale => {
                    self.fwd = if self.must_revalidate {
                        ForwardReason::Request
                    } else {
                        ForwardReason::Stale
                    };
                    let swr = !self.must_revalidate
                        && cache.can_serve_stale_updating()
                        && self.shared.hooks.should_serve_stale(self.req, None);
                    if cache.is_cache_locked() {
                        // Another request revalidates.
                        if swr {
                            cache.set_stale_updating();
                            return self.serve_hit(cache, HitKind::StaleWhileRevalidate).await;
                        }
                        match Box::pin(self.wait_lock(cache)).await {
                            AfterWait::LookAgain => continue,
                            AfterWait::GoUpstream => {
                                return self.fetch_boxed(std::mem::take(cache), body).await;
                            }
                        }
                    }
                    if swr {
                        if self.directives.no_store() {
                            // Nothing fetched for a no-store request may be stored (RFC 9111
                            // §5.2.1.5), so it starts no refresh: it is answered stale and the
                            // next request without no-store refreshes.
                            cache.release_write_lock(NoCacheReason::Deferred);
                        } else {
                            let permit = cache
                                .is_cache_lock_writer()
                                .then(|| cache.take_write_lock().0);
                            self.spawn_refresh(cache.cache_key().clone(), permit);
                        }
                        cache.set_stale_updating();
                        return self.serve_hit(cache, HitKind::StaleWhileRevalidate).await;
                    }
                    return self.fetch_boxed(std::mem::take(cache), body).await;
                }
                _ => {
                    // Treated as a miss by the hit filter.
                    self.fwd = ForwardReason::Request;
                    if cache.is_cache_locked() {
                        match Box::pin(self.wait_lock(cache)).await {
                            AfterWait::LookAgain => continue,
                            AfterWait::GoUpstream => {
                                return self.fetch_boxed(std::mem::take(cache), body).await;
                            }
                        }
                    }
                    callbacks::cache_miss(&self.shared.hooks, self.req, cache);
                    return self.fetch_boxed(std::mem::take(cache), body).await;
                }
            }
        }
        cache.disable(NoCacheReason::InternalError);
        self.fetch_boxed(std::mem::take(cache), body).await
    }

    /// Waits for the request filling this key (inventory §3.9).
    async fn wait_lock(&mut self, cache: &mut HttpCache) -> AfterWait {
        self.metrics().lock_waits.inc();
        self.collapsed = true;
        match cache.cache_lock_wait().await {
            LockStatus::GiveUp => {
                cache.disable(NoCacheReason::CacheLockGiveUp);
                AfterWait::GoUpstream
            }
            LockStatus::WaitTimeout => {
                self.metrics().lock_timeouts.inc();
                cache.disable(NoCacheReason::CacheLockTimeout);
                AfterWait::GoUpstream
            }
            _ => AfterWait::LookAgain,
        }
    }

    /// Whether the stale entry may be served because the upstream is unreachable
    /// (RFC 9111 §4.2.4 "disconnected"), outside any stale-if-error window.
    fn stale_on_disconnect(&self, cache: &HttpCache) -> bool {
        let config = &self.shared.config;
        if !config.serve_stale_on_disconnect || self.must_revalidate {
            return false;
        }
        let Some(meta) = cache.maybe_cache_meta() else {
            return false;
        };
        let cc =
            larder_cache::cache_control::targeted(meta.headers(), &config.targeted_cache_control);
        !filters::forbids_stale(&cc)
    }

    /// `504` for `only-if-cached` requests the cache cannot answer (RFC 9111 §5.2.1.7).
    fn gateway_timeout(&self, mut cache: HttpCache) -> Answer {
        let reason = NoCacheReason::Custom("OnlyIfCached");
        if !matches!(cache.phase(), CachePhase::Disabled(_)) {
            cache.disable(NoCacheReason::DeclinedToUpstream);
        }
        let status = new_status(self.shared)
            .fwd(ForwardReason::Miss)
            .detail(reason.as_str());
        (canned(StatusCode::GATEWAY_TIMEOUT), status)
    }

    /// Starts exactly one background revalidation holding `permit` (stale-while-revalidate).
    fn spawn_refresh(&self, key: CacheKey, permit: Option<WritePermit>) {
        self.metrics().background_refreshes.inc();
        let shared = Arc::clone(self.shared);
        let inner = I::clone(self.inner);
        let mut req = Parts::clone(self.req);
        req.method = Method::GET;
        for name in [
            header::CONTENT_LENGTH,
            header::TRANSFER_ENCODING,
            header::CONTENT_TYPE,
        ] {
            req.headers.remove(name);
        }
        tokio::spawn(async move {
            let mut cache = HttpCache::new();
            enable(&shared, &mut cache, true);
            cache.set_cache_key(key);
            if let Some(permit) = permit {
                cache.set_write_lock(permit);
            }
            if let Ok(Some((meta, hit))) = cache.cache_lookup().await {
                cache.cache_found(meta, hit, HitStatus::ForceExpired);
            }
            if cache.phase() == CachePhase::CacheKey {
                callbacks::cache_miss(&shared.hooks, &req, &mut cache);
            }
            let flow = Flow {
                shared: &shared,
                inner: &inner,
                directives: RequestDirectives::default(),
                req: &req,
                fwd: ForwardReason::Stale,
                collapsed: false,
                must_revalidate: true,
            };
            // Nobody reads the answer: dropping it leaves the fill running to completion.
            let (resp, status) = flow.fetch(cache, body::empty()).await;
            tracing::debug!(status = %resp.status(), cache_status = %status, "background refresh done");
        });
    }

    /// [`fetch`](Self::fetch) in a box of its own, so that the lookup's future (which every
    /// hit pays to create and move) holds only a pointer for it.
    fn fetch_boxed(
        &self,
        cache: HttpCache,
        body: ProxyBody,
    ) -> Pin<Box<impl Future<Output = Answer>>> {
        Box::pin(self.fetch(cache, body))
    }

    /// Goes upstream (miss, revalidation, bypass or uncached) and answers.
    async fn fetch(&self, mut cache: HttpCache, body: ProxyBody) -> Answer {
        let phase = cache.phase();
        if self.directives.only_if_cached() {
            return self.gateway_timeout(cache);
        }
        let for_cache = matches!(phase, CachePhase::Miss | CachePhase::Stale);
        if let Some(reason) =
            callbacks::upstream_declined(&self.shared.hooks, self.req, Some(&mut cache)).await
        {
            return callbacks::declined_answer(
                reason,
                new_status(self.shared).fwd(self.fwd),
                Some(self.metrics()),
            );
        }
        let stored = (phase == CachePhase::Stale).then(|| cache.cache_meta().headers().clone());
        let up = upstream_head(self.shared, self.req, |up| {
            if for_cache {
                revalidate::request_filter(&mut up.method, &mut up.headers, stored.as_ref());
            }
        });
        let up = match up {
            Ok(up) => up,
            Err(e) => {
                let reason =
                    callbacks::filter_failed(&e, "upstream_request_filter", Some(&mut cache));
                return callbacks::declined_answer(
                    reason,
                    new_status(self.shared).fwd(self.fwd),
                    Some(self.metrics()),
                );
            }
        };
        let request_time = SystemTime::now();
        let result = self.inner.send(Request::from_parts(up, body)).await;
        let times = ResponseTimes {
            request_time,
            response_time: SystemTime::now(),
        };
        match result {
            Ok(resp) => self.upstream_response(cache, resp, times, for_cache).await,
            Err(e) => {
                self.metrics().upstream_errors.inc();
                tracing::warn!(error = %e, "upstream failed");
                if phase == CachePhase::Stale
                    && (cache.can_serve_stale_error() || self.stale_on_disconnect(&cache))
                    && self
                        .shared
                        .hooks
                        .should_serve_stale(self.req, Some(&StaleCause::UpstreamError(&e)))
                {
                    cache.release_write_lock(NoCacheReason::UpstreamError);
                    let kind = if cache.can_serve_stale_error() {
                        HitKind::StaleIfError(None)
                    } else {
                        HitKind::StaleOnDisconnect
                    };
                    return self.serve_hit(&mut cache, kind).await;
                }
                if !matches!(phase, CachePhase::Disabled(_)) {
                    cache.disable(NoCacheReason::UpstreamError);
                }
                self.metrics()
                    .not_stored(NoCacheReason::UpstreamError.as_str());
                let status = new_status(self.shared)
                    .fwd(self.fwd)
                    .detail(NoCacheReason::UpstreamError.as_str());
                (self.shared.hooks.fail_to_proxy(self.req, &e).await, status)
            }
        }
    }

    /// The upstream answered (inventory §3.4, §3.5).
    // One step of the flow kept in one place, in the order pingora's proxy runs it.
    #[allow(clippy::too_many_lines)]
    async fn upstream_response(
        &self,
        mut cache: HttpCache,
        resp: Response<ProxyBody>,
        times: ResponseTimes,
        mutated: bool,
    ) -> Answer {
        let (mut parts, upstream_body) = resp.into_parts();
        headers::remove_hop_by_hop(&mut parts.headers);
        let hooks = &self.shared.hooks;
        let config = &self.shared.config;
        let phase = cache.phase();
        if phase == CachePhase::Stale {
            if parts.status == StatusCode::NOT_MODIFIED {
                let filtered = hooks.upstream_response_filter(self.req, &mut parts);
                let merged = cache.revalidate_merge_header(&ResponseHeader::from(&parts));
                let decision = if let Err(e) = filtered {
                    // The stored response is still served, unchanged (as pingora does).
                    callbacks::uncacheable_on_error(e)
                } else if self.directives.no_store() {
                    // The 304 answers a no-store request: it refreshes nothing (RFC 9111
                    // §5.2.1.5); the client still gets the stored body.
                    RespCacheable::Uncacheable(NoCacheReason::Custom("RequestNoStore"))
                } else {
                    hooks
                        .response_cache_filter(self.req, &merged, config, times)
                        .unwrap_or_else(callbacks::uncacheable_on_error)
                };
                let stored = match decision {
                    RespCacheable::Cacheable(meta) => {
                        if let Err(e) = cache.revalidate_cache_meta(meta).await {
                            tracing::warn!(error = %e, "could not update the revalidated entry");
                        }
                        true
                    }
                    RespCacheable::Uncacheable(reason) => {
                        self.metrics().not_stored(reason.as_str());
                        cache.revalidate_uncacheable(merged, reason);
                        false
                    }
                };
                self.metrics().revalidated.inc();
                let (mut resp, status) = self
                    .serve_hit(&mut cache, HitKind::Revalidated { stored })
                    .await;
                // The stored copy never has a cookie: the 304's is for this client alone.
                set_cookie::copy_set_cookie(&parts.headers, resp.headers_mut());
                return (resp, status);
            }
            if parts.status.is_server_error()
                && cache.can_serve_stale_error()
                && hooks
                    .should_serve_stale(self.req, Some(&StaleCause::UpstreamStatus(parts.status)))
            {
                cache.release_write_lock(NoCacheReason::UpstreamError);
                return self
                    .serve_hit(&mut cache, HitKind::StaleIfError(Some(parts.status)))
                    .await;
            }
            self.metrics().expired.inc();
        } else if phase == CachePhase::Miss {
            self.metrics().misses.inc();
        } else {
            self.metrics().bypass.inc();
        }
        if let Err(e) = hooks.upstream_response_filter(self.req, &mut parts) {
            let reason = callbacks::filter_failed(&e, "upstream_response_filter", Some(&mut cache));
            return callbacks::declined_answer(
                reason,
                new_status(self.shared).fwd(self.fwd),
                Some(self.metrics()),
            );
        }

        // Store it?
        let mut reason = None;
        let mut stored = false;
        if matches!(
            phase,
            CachePhase::Miss | CachePhase::Stale | CachePhase::Bypass
        ) {
            let decision = if parts.status == StatusCode::NOT_MODIFIED {
                // A 304 to an unconditional request (or a bypassed conditional one).
                RespCacheable::Uncacheable(NoCacheReason::Custom("NotModifiedOnMiss"))
            } else if self.directives.no_store() {
                RespCacheable::Uncacheable(NoCacheReason::Custom("RequestNoStore"))
            } else {
                hooks
                    .response_cache_filter(self.req, &ResponseHeader::from(&parts), config, times)
                    .unwrap_or_else(callbacks::uncacheable_on_error)
            };
            let decision = match decision {
                RespCacheable::Cacheable(_)
                    if phase == CachePhase::Bypass
                        && (self.req.method != Method::GET || parts.status != StatusCode::OK) =>
                {
                    // A bypassed request went upstream as sent (a HEAD, conditional or ranged
                    // request), so its answer may not be the whole representation: the next
                    // plain GET fills the cache.
                    RespCacheable::Uncacheable(NoCacheReason::Deferred)
                }
                other => other,
            };
            match decision {
                RespCacheable::Cacheable(meta) => {
                    let too_large = config
                        .max_file_size
                        .is_some_and(|max| content_length_exceeds(&parts.headers, max));
                    if too_large {
                        cache.response_became_uncacheable(NoCacheReason::ResponseTooLarge);
                        reason = Some(NoCacheReason::ResponseTooLarge);
                    } else if phase == CachePhase::Bypass
                        && let Some(r) = callbacks::bypass_to_miss(hooks, self.req, &mut cache)
                    {
                        reason = Some(r);
                    } else {
                        let variance = hooks.cache_vary_filter(&meta, self.req);
                        cache.set_cache_meta(meta);
                        cache.update_variance(variance);
                        match cache.set_miss_handler().await {
                            Ok(()) => {
                                cache.response_became_cacheable();
                                stored = true;
                            }
                            Err(e) => {
                                storage_failed(&e, "could not start the cache write");
                                reason = Some(NoCacheReason::StorageError);
                            }
                        }
                    }
                }
                RespCacheable::Uncacheable(r) => {
                    if parts.status.is_server_error() && r.is_origin_not_cache() {
                        // A server error is a failure that may not repeat: a waiting request
                        // takes the lock and tries again (instead of the whole herd going
                        // upstream at once), and the key is not remembered as uncacheable.
                        cache.release_write_lock(NoCacheReason::UpstreamError);
                    } else if phase != CachePhase::Bypass {
                        cache.response_became_uncacheable(r);
                    }
                    reason = Some(r);
                }
            }
            if let Some(r) = reason {
                cache.disable(r);
            }
        } else if let CachePhase::Disabled(r) = phase {
            reason = Some(r);
        }

        let mut status = new_status(self.shared)
            .fwd(self.fwd)
            .fwd_status(parts.status);
        if self.collapsed {
            status = status.collapsed(true);
        }
        if stored {
            status = status.stored(true);
            if let Some(meta) = cache.maybe_cache_meta() {
                let now = SystemTime::now();
                status = status.ttl(ttl(meta, now));
                // The age the cache computed (upstream Age, Date and the fetch's delay,
                // RFC 9111 §4.2.3) replaces the upstream's Age, as it would on a hit.
                let age = meta.age(now).as_secs();
                if age > 0 {
                    parts.headers.insert(header::AGE, age_value(age));
                }
            }
        } else {
            let r = reason.unwrap_or(NoCacheReason::NeverEnabled);
            self.metrics().not_stored(r.as_str());
            status = status.stored(false).detail(r.as_str());
        }

        // The client's own preconditions, ranges and HEAD, when the cache replaced them
        // upstream (inventory §3.7).
        let mut header = ResponseHeader::from(&parts);
        let downstream = if mutated {
            self.downstream_filter(&mut header)
        } else {
            Downstream::default()
        };
        parts.status = header.status;
        parts.headers = header.headers;
        let filter = downstream.range.as_deref().map(RangeBodyFilter::new);
        let client_body = serve_upstream(
            stored.then_some(cache),
            upstream_body,
            downstream.header_only,
            filter,
            &self.shared.metrics,
        );
        (Response::from_parts(parts, client_body), status)
    }

    /// The client's preconditions, HEAD and `Range`, applied to a response the cache answers
    /// with.
    fn downstream_filter(&self, header: &mut ResponseHeader) -> Downstream {
        let mut out = Downstream {
            header_only: self.req.method == Method::HEAD,
            range: None,
        };
        match callbacks::not_modified(&self.shared.hooks, self.req, header) {
            Precondition::NotModified => {
                header.status = StatusCode::NOT_MODIFIED;
                conditional::to_304(&mut header.headers);
                out.header_only = true;
                return out;
            }
            Precondition::PreconditionFailed => {
                header.status = StatusCode::PRECONDITION_FAILED;
                conditional::to_304(&mut header.headers);
                header
                    .headers
                    .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
                out.header_only = true;
                return out;
            }
            Precondition::Proceed => {}
        }
        let spec = self
            .shared
            .hooks
            .range_header_filter(self.req, header, &self.shared.config);
        if matches!(
            spec,
            RangeSpec::Single(_) | RangeSpec::Multi(_) | RangeSpec::Invalid
        ) && let Some(len) = content_length(&header.headers)
        {
            let chosen = range::range_response_headers(&mut header.headers, &spec, len);
            header.status = chosen.status;
            if chosen.body == RangeBody::Empty {
                out.header_only = true;
            } else {
                out.range = Some(Box::new(chosen.body));
            }
        }
        out
    }

    /// Serves the found entry (inventory §3.2): `Age`, then the client's preconditions, HEAD
    /// and ranges.
    // One step of the flow kept in one place, in the order pingora's proxy runs it.
    #[allow(clippy::too_many_lines)]
    async fn serve_hit(&self, cache: &mut HttpCache, kind: HitKind) -> Answer {
        let now = SystemTime::now();
        let meta = cache.cache_meta();
        let ttl = ttl(meta, now);
        let mut header = meta.response_header_copy();
        header
            .headers
            .insert(header::AGE, age_value(meta.age(now).as_secs()));
        let mut status = new_status(self.shared);
        match kind {
            HitKind::Fresh => {
                self.metrics().hits.inc();
                status = status.hit().ttl(ttl);
            }
            HitKind::StaleWhileRevalidate => {
                self.metrics().stale.inc();
                status = status.hit().ttl(ttl).detail("stale-while-revalidate");
            }
            HitKind::StaleIfError(upstream) => {
                self.metrics().stale.inc();
                status = status
                    .fwd(ForwardReason::Stale)
                    .ttl(ttl)
                    .detail("stale-if-error");
                if let Some(s) = upstream {
                    status = status.fwd_status(s);
                }
            }
            HitKind::StaleOnDisconnect => {
                self.metrics().stale.inc();
                status = status
                    .fwd(ForwardReason::Stale)
                    .ttl(ttl)
                    .detail("stale-on-disconnect");
            }
            HitKind::Revalidated { stored } => {
                status = status
                    .fwd(self.fwd)
                    .fwd_status(StatusCode::NOT_MODIFIED)
                    .stored(stored)
                    .ttl(ttl);
                if self.collapsed {
                    status = status.collapsed(true);
                }
                if let CachePhase::RevalidatedNoCache(reason) = cache.phase() {
                    status = status.detail(reason.as_str());
                }
            }
        }

        // Ranges need the length; a stored body without Content-Length is read first.
        let mut prefix: Vec<Bytes> = Vec::new();
        let mut complete = false;
        if self.req.method == Method::GET
            && self.req.headers.contains_key(header::RANGE)
            && header.status == StatusCode::OK
            && content_length(&header.headers).is_none()
        {
            let mut len = 0usize;
            loop {
                match read_hit(cache).await {
                    Ok(Some(chunk)) => {
                        len += chunk.len();
                        prefix.push(chunk);
                    }
                    Ok(None) => break,
                    Err(e) => return self.hit_failed(&e),
                }
            }
            complete = true;
            header
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        }
        let downstream = self.downstream_filter(&mut header);
        if downstream.header_only {
            finish_hit(cache).await;
            return (header.into_response(body::empty()), status);
        }
        // Boxed, as the range: both are rare and would otherwise take room in every hit's
        // future.
        let mut filter = downstream
            .range
            .as_deref()
            .map(|r| Box::new(RangeBodyFilter::new(r)));
        if let Some(RangeBody::Single(r)) = downstream.range.as_deref()
            && prefix.is_empty()
            && cache.hit_handler().can_seek()
            && let (Ok(start), Ok(end)) = (usize::try_from(r.start), usize::try_from(r.end))
            && cache.hit_handler().seek(start, Some(end)).is_ok()
        {
            filter = None;
        }
        // Read a small body at once; stream a large one from a task. A body already read up to
        // its Content-Length (a complete stored entry arrives as one chunk) is finished by one
        // more read, which returns at once: no task or channel for a large complete hit.
        if !complete {
            let mut len = prefix.iter().map(Bytes::len).sum::<usize>();
            // `Content-Length` is parsed only for a body past the inline size (rare).
            while len < INLINE_HIT_BYTES
                || content_length(&header.headers) == u64::try_from(len).ok()
            {
                match read_hit(cache).await {
                    Ok(Some(chunk)) => {
                        len += chunk.len();
                        prefix.push(chunk);
                    }
                    Ok(None) => {
                        complete = true;
                        break;
                    }
                    Err(e) => return self.hit_failed(&e),
                }
            }
        }
        if complete {
            finish_hit(cache).await;
            if filter.is_none() && prefix.len() <= 1 {
                // The common case: one stored chunk, sent without a copy.
                let whole = prefix.pop().unwrap_or_default();
                return (header.into_response(body::full(whole)), status);
            }
            let mut out = BytesMut::new();
            for chunk in prefix {
                match &mut filter {
                    Some(f) => out.extend_from_slice(&f.filter_body(chunk)),
                    None => out.extend_from_slice(&chunk),
                }
            }
            if let Some(f) = &mut filter {
                match f.finish() {
                    Some(tail) => out.extend_from_slice(&tail),
                    None => {
                        return self.hit_failed(&"stored body shorter than its Content-Length");
                    }
                }
            }
            return (header.into_response(body::full(out.freeze())), status);
        }
        let (tx, rx) = ChannelBody::new(CHANNEL_CHUNKS, None);
        tokio::spawn(pump_hit(
            std::mem::take(cache),
            prefix,
            tx,
            filter.map(|f| *f),
        ));
        (header.into_response(body::boxed(rx)), status)
    }

    fn hit_failed(&self, error: &dyn std::fmt::Display) -> Answer {
        tracing::warn!(%error, "reading a cached body failed");
        let status = new_status(self.shared)
            .fwd(self.fwd)
            .detail(NoCacheReason::StorageError.as_str());
        (canned(StatusCode::BAD_GATEWAY), status)
    }
}

/// What [`Flow::downstream_filter`] decided about the body.
#[derive(Default)]
struct Downstream {
    header_only: bool,
    range: Option<Box<RangeBody>>,
}

/// `000` to `999`, three digits each: the text of small `Age` values.
static AGE_DIGITS: [u8; 3000] = {
    let mut digits = [0u8; 3000];
    let mut n = 0;
    while n < 1000 {
        // Each is a single decimal digit: the casts cannot truncate.
        #[allow(clippy::cast_possible_truncation)]
        {
            digits[3 * n] = b'0' + (n / 100) as u8;
            digits[3 * n + 1] = b'0' + (n / 10 % 10) as u8;
            digits[3 * n + 2] = b'0' + (n % 10) as u8;
        }
        n += 1;
    }
    digits
};

/// The `Age` value for `secs`: below 1000 a slice of [`AGE_DIGITS`] (no allocation, as a hit of
/// a young entry sends one on every response), otherwise formatted.
fn age_value(secs: u64) -> HeaderValue {
    let Ok(n) = usize::try_from(secs) else {
        return HeaderValue::from(secs);
    };
    let skip = match n {
        0..=9 => 2,
        10..=99 => 1,
        100..=999 => 0,
        _ => return HeaderValue::from(secs),
    };
    match std::str::from_utf8(&AGE_DIGITS[3 * n + skip..3 * n + 3]) {
        Ok(text) => HeaderValue::from_static(text),
        Err(_) => HeaderValue::from(secs),
    }
}

/// Logs a failed storage call: a warning, or only a debug line when the error says the
/// storage backend is unreachable, which the backend reports once per outage itself, so an
/// outage does not log one warning per request.
pub(crate) fn storage_failed(e: &larder_cache::Error, what: &'static str) {
    if e.is_unavailable() {
        tracing::debug!(error = %e, "{what}");
    } else {
        tracing::warn!(error = %e, "{what}");
    }
}

/// The freshness left, in seconds, negative when stale (RFC 9211 §2.4 `ttl`).
fn ttl(meta: &larder_cache::CacheMeta, now: SystemTime) -> i64 {
    match meta.fresh_until().duration_since(now) {
        Ok(left) => i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_values_match_formatting() {
        for secs in (0..1100).chain([u64::from(u32::MAX), u64::MAX]) {
            assert_eq!(age_value(secs), HeaderValue::from(secs), "{secs}");
        }
    }
}
