//! The per-request cache flow: pingora's proxy cache flow with RFC 9111 defaults, executing
//! the decisions of `larder_cache::decide`.
//!
//! request target check → purge or key → predictor → lookup loop (vary re-lookup, lock waits)
//! → one outcome: [`hit`](crate::hit), [`fill`](crate::fill) (a miss, a replaced entry),
//! [`revalidate`](crate::revalidate) (304, stale-if-error), [`pass`](crate::pass) (not
//! cached), [`purge`](crate::purge); and stale-while-revalidate refreshes, run on the layer's
//! spawner.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use http::request::Parts;
use http::{Request, Response, StatusCode};
use larder_cache::age::ResponseTimes;
use larder_cache::cache_status::{CacheStatus, ForwardReason};
use larder_cache::decide::{self, Bypass, FoundAction, FoundFacts, HitKind, StaleAnswer};
use larder_cache::lock::{LockStatus, WritePermit};
use larder_cache::request::RequestDirectives;
use larder_cache::{CacheKey, CachePhase, HitStatus, HttpCache, NoCacheReason};

use crate::body::{self, ProxyBody, canned};
use crate::callbacks;
use crate::error::BoxError;
use crate::headers;
use crate::hit::serve_hit;
use crate::hooks::{CacheHooks, StaleCause};
use crate::pass::{pass_through, upstream_head};
use crate::server::ClientInfo;
use crate::shared::{Answer, Ctx, Inner, Shared, enable, new_status};
use crate::tasks::TaskKind;
use crate::upgrade::{self, Requested};
use crate::upstream::Timeout;
use crate::{fill, purge, revalidate, target};

/// How many lookups one request may make (vary re-lookups and lock waits) before it gives up
/// on the cache and goes upstream.
const MAX_LOOKUPS: usize = 8;

/// Handles one request: purge, upgrade, pass-through or the cache flow. Adds `Cache-Status`
/// and `Via`.
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
    if let Some(resp) = target::reject(shared, parts) {
        return resp;
    }
    let purging = shared.hooks.is_purge(parts);
    let (mut resp, status) = if purging {
        // The cold arms are boxed so that the request's future stays small: only the hit path
        // lives in it.
        Box::pin(purge::purge(shared, parts)).await
    } else if let Some(requested) = parts.extensions.get::<Requested>() {
        // An upgrade (WebSocket) bypasses the cache: forwarded, then tunnelled.
        Box::pin(upgrade::forward(
            shared,
            inner,
            parts,
            body,
            requested.clone(),
        ))
        .await
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
        ctx: Ctx {
            shared,
            directives: RequestDirectives::from_headers(&req.headers),
            req,
            fwd: ForwardReason::UriMiss,
            collapsed: false,
            must_revalidate: false,
        },
        inner,
    };
    flow.lookup(&mut cache, body).await
}

/// The request's cache, with its key set, or why the cache does not handle the request (`has_body`:
/// the request has a body). Not `async`, so the key never takes room in the request's future.
fn cache_for<H: CacheHooks>(
    shared: &Shared<H>,
    req: &Parts,
    has_body: bool,
) -> Result<HttpCache, Bypass> {
    let cacheable_method = shared.hooks.request_cache_filter(req);
    if let Some(why) = Bypass::check(cacheable_method, has_body, shared.config.storage.is_some()) {
        return Err(why);
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

/// One request in the cache flow: its state and the inner service.
struct Flow<'a, H, I> {
    ctx: Ctx<'a, H>,
    inner: &'a I,
}

impl<H: CacheHooks, I: Inner> Flow<'_, H, I> {
    /// The lookup loop (inventory §3.1).
    async fn lookup(&mut self, cache: &mut HttpCache, body: ProxyBody) -> Answer {
        if !cache.cacheable_prediction() {
            cache.bypass();
            self.ctx.fwd = ForwardReason::Bypass;
            return self.fetch_boxed(std::mem::take(cache), body).await;
        }
        for _ in 0..MAX_LOOKUPS {
            let found = match cache.cache_lookup().await {
                Ok(found) => found,
                Err(e) => {
                    // A failed lookup is a miss, so a bad entry can be overwritten.
                    crate::shared::storage_failed(&e, "cache lookup failed");
                    callbacks::cache_miss(&self.ctx.shared.hooks, self.ctx.req, cache);
                    return self.fetch_boxed(std::mem::take(cache), body).await;
                }
            };
            let action = if let Some((mut meta, hit)) = found {
                let ctx = &mut self.ctx;
                let hooks = &ctx.shared.hooks;
                // Vary (RFC 9111 §4.1).
                if let Some(variance) = cache.cache_key().get_variance_key().copied() {
                    if meta.variance() != Some(variance) {
                        cache.disable(NoCacheReason::InternalError);
                        return self.fetch_boxed(std::mem::take(cache), body).await;
                    }
                } else if let Some(variance) = hooks.cache_vary_filter(&meta, ctx.req)
                    && !cache.cache_vary_lookup(variance, &meta)
                {
                    ctx.fwd = ForwardReason::VaryMiss;
                    continue;
                }
                let now = SystemTime::now();
                let targeted = &ctx.shared.config.targeted_cache_control;
                let reuse = ctx.directives.reuse(&meta, targeted, now);
                let entry = decide::entry(reuse, || {
                    callbacks::hit_filter(hooks, ctx.req, &meta, meta.is_fresh(now))
                });
                let Some(entry) = entry else {
                    // only-if-cached and the entry needs the origin (RFC 9111 §5.2.1.7).
                    return self.gateway_timeout(std::mem::take(cache));
                };
                if entry.must_revalidate {
                    ctx.must_revalidate = true;
                    ctx.fwd = ForwardReason::Request;
                }
                if entry.disable_serve_stale {
                    meta.disable_serve_stale();
                }
                cache.cache_found(meta, hit, entry.hit_status);
                let phase = cache.phase();
                if phase != CachePhase::Hit {
                    ctx.fwd = decide::found_forward_reason(phase, ctx.must_revalidate);
                }
                // A fresh hit is served whatever the other facts say: they are not read for
                // it, which keeps the hit path short.
                let other = phase != CachePhase::Hit;
                let facts = FoundFacts {
                    phase,
                    must_revalidate: ctx.must_revalidate,
                    locked: other && cache.is_cache_locked(),
                    lock_writer: other && cache.is_cache_lock_writer(),
                    can_serve_stale_updating: other && cache.can_serve_stale_updating(),
                    no_store: ctx.directives.no_store(),
                };
                decide::found(facts, || hooks.should_serve_stale(ctx.req, None))
            } else {
                decide::not_found(cache.is_cache_locked())
            };
            match action {
                FoundAction::Serve => return serve_hit(&self.ctx, cache, HitKind::Fresh).await,
                FoundAction::ServeStale => {
                    cache.set_stale_updating();
                    return serve_hit(&self.ctx, cache, HitKind::StaleWhileRevalidate).await;
                }
                FoundAction::ServeStaleAndRefresh | FoundAction::ServeStaleWithoutRefresh => {
                    if action == FoundAction::ServeStaleAndRefresh {
                        let permit = cache
                            .is_cache_lock_writer()
                            .then(|| cache.take_write_lock().0);
                        self.spawn_refresh(cache.cache_key().clone(), permit);
                    } else {
                        cache.release_write_lock(NoCacheReason::Deferred);
                    }
                    cache.set_stale_updating();
                    return serve_hit(&self.ctx, cache, HitKind::StaleWhileRevalidate).await;
                }
                FoundAction::Wait => {
                    if Box::pin(self.wait_lock(cache)).await {
                        continue;
                    }
                    return self.fetch_boxed(std::mem::take(cache), body).await;
                }
                FoundAction::Revalidate => {
                    return self.fetch_boxed(std::mem::take(cache), body).await;
                }
                FoundAction::Miss => {
                    callbacks::cache_miss(&self.ctx.shared.hooks, self.ctx.req, cache);
                    return self.fetch_boxed(std::mem::take(cache), body).await;
                }
            }
        }
        cache.disable(NoCacheReason::InternalError);
        self.fetch_boxed(std::mem::take(cache), body).await
    }

    /// Waits for the request filling this key (inventory §3.9): `true` to look up again,
    /// `false` to go upstream with the cache disabled.
    async fn wait_lock(&mut self, cache: &mut HttpCache) -> bool {
        self.ctx.metrics().lock_waits.inc();
        self.ctx.collapsed = true;
        let status = cache.cache_lock_wait().await;
        if status == LockStatus::WaitTimeout {
            self.ctx.metrics().lock_timeouts.inc();
        }
        match decide::after_wait(status) {
            Ok(()) => true,
            Err(reason) => {
                cache.disable(reason);
                false
            }
        }
    }

    /// `504` for `only-if-cached` requests the cache cannot answer (RFC 9111 §5.2.1.7).
    fn gateway_timeout(&self, mut cache: HttpCache) -> Answer {
        let reason = NoCacheReason::Custom("OnlyIfCached");
        if !matches!(cache.phase(), CachePhase::Disabled(_)) {
            cache.disable(NoCacheReason::DeclinedToUpstream);
        }
        let status = new_status(self.ctx.shared)
            .fwd(ForwardReason::Miss)
            .detail(reason.as_str());
        (canned(StatusCode::GATEWAY_TIMEOUT), status)
    }

    /// Starts exactly one background revalidation holding `permit` (stale-while-revalidate),
    /// on the layer's spawner.
    fn spawn_refresh(&self, key: CacheKey, permit: Option<WritePermit>) {
        self.ctx.metrics().background_refreshes.inc();
        let shared = Arc::clone(self.ctx.shared);
        let inner = I::clone(self.inner);
        let mut req = Parts::clone(self.ctx.req);
        decide::refresh_request(&mut req.method, &mut req.headers);
        // The refresh is the cache's own request, not the client's: no forwarding fields.
        req.extensions.remove::<ClientInfo>();
        let tasks = &self.ctx.shared.tasks;
        tasks.spawn(TaskKind::Refresh, async move {
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
                ctx: Ctx {
                    shared: &shared,
                    directives: RequestDirectives::default(),
                    req: &req,
                    fwd: ForwardReason::Stale,
                    collapsed: false,
                    must_revalidate: true,
                },
                inner: &inner,
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

    /// Goes upstream (miss, revalidation, bypass or uncached) and hands the answer to its
    /// outcome.
    async fn fetch(&self, mut cache: HttpCache, body: ProxyBody) -> Answer {
        let ctx = &self.ctx;
        let phase = cache.phase();
        if ctx.directives.only_if_cached() {
            return self.gateway_timeout(cache);
        }
        let for_cache = decide::fetches_for_cache(phase);
        if let Some(reason) =
            callbacks::upstream_declined(&ctx.shared.hooks, ctx.req, Some(&mut cache)).await
        {
            let status = new_status(ctx.shared).fwd(ctx.fwd);
            return callbacks::declined_answer(reason, status, Some(ctx.metrics()));
        }
        let stored = (phase == CachePhase::Stale).then(|| cache.cache_meta().headers().clone());
        let up = upstream_head(ctx.shared, ctx.req, |up| {
            decide::upstream_request(phase, &mut up.method, &mut up.headers, stored.as_ref());
        });
        let up = match up {
            Ok(up) => up,
            Err(e) => {
                let reason =
                    callbacks::filter_failed(&e, "upstream_request_filter", Some(&mut cache));
                let status = new_status(ctx.shared).fwd(ctx.fwd);
                return callbacks::declined_answer(reason, status, Some(ctx.metrics()));
            }
        };
        let request_time = SystemTime::now();
        let result = self.inner.send(Request::from_parts(up, body)).await;
        let times = ResponseTimes {
            request_time,
            response_time: SystemTime::now(),
        };
        let hooks = &ctx.shared.hooks;
        match result {
            Ok(resp) => {
                let (mut parts, upstream_body) = resp.into_parts();
                headers::remove_hop_by_hop(&mut parts.headers);
                if phase == CachePhase::Stale {
                    let status = parts.status;
                    let answer =
                        decide::on_stale_response(status, cache.can_serve_stale_error(), || {
                            hooks.should_serve_stale(
                                ctx.req,
                                Some(&StaleCause::UpstreamStatus(status)),
                            )
                        });
                    match answer {
                        StaleAnswer::NotModified => {
                            return revalidate::not_modified(ctx, cache, parts, times).await;
                        }
                        StaleAnswer::ServeStale => {
                            let kind = HitKind::StaleIfError(Some(status));
                            return revalidate::serve_stale(ctx, cache, kind).await;
                        }
                        StaleAnswer::Replace => {}
                    }
                }
                fill::answer(ctx, cache, parts, upstream_body, times, for_cache).await
            }
            Err(e) => {
                ctx.metrics().upstream_errors.inc();
                tracing::warn!(error = %e, "upstream failed");
                let config = &ctx.shared.config;
                let on_disconnect = phase == CachePhase::Stale
                    && decide::stale_on_disconnect(
                        config.serve_stale_on_disconnect,
                        ctx.must_revalidate,
                        cache.maybe_cache_meta(),
                        &config.targeted_cache_control,
                    );
                let fallback = decide::on_upstream_error(
                    phase,
                    cache.can_serve_stale_error(),
                    on_disconnect,
                    || hooks.should_serve_stale(ctx.req, Some(&StaleCause::UpstreamError(&e))),
                );
                if let Some(kind) = fallback {
                    return revalidate::serve_stale(ctx, cache, kind).await;
                }
                let mut cache = cache;
                if !matches!(phase, CachePhase::Disabled(_)) {
                    cache.disable(NoCacheReason::UpstreamError);
                }
                ctx.metrics()
                    .not_stored(NoCacheReason::UpstreamError.as_str());
                // A timeout names itself, so a 504 says which wait ran out.
                let detail = Timeout::find(&*e)
                    .map_or(NoCacheReason::UpstreamError.as_str(), Timeout::as_str);
                let status = new_status(ctx.shared).fwd(ctx.fwd).detail(detail);
                (hooks.fail_to_proxy(ctx.req, &e).await, status)
            }
        }
    }
}
