//! Running the [`CacheHooks`] callbacks whose answers change what the flow does next: the
//! miss, the decision to go upstream, the response and body filters, the purge answer and the
//! error page. Each function here is called from one step of the request flow and returns what
//! that step acts on, so the step itself stays a line or two.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Response, StatusCode};
use http_body::Frame;
use larder_cache::cache_status::CacheStatus;
use larder_cache::conditional::Precondition;
use larder_cache::filters::RespCacheable;
use larder_cache::{
    CacheMeta, CachePhase, ForcedFreshness, HttpCache, NoCacheReason, ResponseHeader,
};

use crate::auth::PurgeStatus;
use crate::body::{self, ProxyBody, canned};
use crate::error::BoxError;
use crate::hooks::CacheHooks;
use crate::metrics::Metrics;

/// The `Cache-Status` detail of a request whose [`CacheHooks::cache_miss`] neither started the
/// miss nor disabled the cache: the request goes upstream uncached.
const CACHE_MISS_SKIPPED: NoCacheReason = NoCacheReason::Custom("CacheMissSkipped");

/// Runs [`CacheHooks::cache_hit_filter`] on a found entry: the freshness it forces, or
/// `ForceMiss` (the entry is treated as absent, pingora's `FailedHitFilter`) when it fails.
pub(crate) fn hit_filter<H: CacheHooks>(
    hooks: &Arc<H>,
    req: &Parts,
    meta: &CacheMeta,
    is_fresh: bool,
) -> Option<ForcedFreshness> {
    match hooks.cache_hit_filter(req, meta, is_fresh) {
        Ok(forced) => forced,
        Err(e) => {
            tracing::warn!(error = %e, "cache_hit_filter failed");
            Some(ForcedFreshness::ForceMiss)
        }
    }
}

/// Runs [`CacheHooks::cache_not_modified_filter`]; a failure fails open (the response is sent
/// as if the preconditions held), as in pingora.
pub(crate) fn not_modified<H: CacheHooks>(
    hooks: &Arc<H>,
    req: &Parts,
    resp: &ResponseHeader,
) -> Precondition {
    hooks
        .cache_not_modified_filter(req, resp)
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cache_not_modified_filter failed");
            Precondition::Proceed
        })
}

/// What a failed [`CacheHooks::response_cache_filter`] decides: nothing is stored.
// Taken by value to be passed as `unwrap_or_else(uncacheable_on_error)`.
#[allow(clippy::needless_pass_by_value)]
pub(crate) fn uncacheable_on_error(e: BoxError) -> RespCacheable {
    tracing::warn!(error = %e, "response_cache_filter failed");
    RespCacheable::Uncacheable(NoCacheReason::InternalError)
}

/// What a failed [`CacheHooks::upstream_request_filter`] or
/// [`CacheHooks::upstream_response_filter`] leads to: `cache` (if any) is disabled with
/// `InternalError`, which [`declined_answer`] answers with `500`.
pub(crate) fn filter_failed(
    e: &BoxError,
    what: &'static str,
    cache: Option<&mut HttpCache>,
) -> NoCacheReason {
    tracing::warn!(error = %e, "{what} failed");
    let reason = NoCacheReason::InternalError;
    if let Some(cache) = cache
        && !matches!(cache.phase(), CachePhase::Disabled(_))
    {
        cache.disable(reason);
    }
    reason
}

/// Runs [`CacheHooks::cache_miss`] where the flow turns a lookup into a miss; `None` when the
/// cache is in the miss phase afterwards, otherwise the reason it is disabled (the request
/// goes upstream uncached). An override that neither started the miss nor disabled the cache
/// leaves it disabled with `CacheMissSkipped`.
pub(crate) fn cache_miss<H: CacheHooks>(
    hooks: &Arc<H>,
    req: &Parts,
    cache: &mut HttpCache,
) -> Option<NoCacheReason> {
    hooks.cache_miss(req, cache);
    match cache.phase() {
        CachePhase::Miss => None,
        CachePhase::Disabled(reason) => Some(reason),
        _ => {
            cache.disable(CACHE_MISS_SKIPPED);
            Some(CACHE_MISS_SKIPPED)
        }
    }
}

/// A bypassed request (predicted uncacheable) whose response turned out storable becomes a
/// miss that fills the cache, through [`CacheHooks::cache_miss`] as in pingora; `Some` reason
/// when the hook did not start the miss.
pub(crate) fn bypass_to_miss<H: CacheHooks>(
    hooks: &Arc<H>,
    req: &Parts,
    cache: &mut HttpCache,
) -> Option<NoCacheReason> {
    cache.response_became_cacheable();
    cache_miss(hooks, req, cache)
}

/// Runs [`CacheHooks::proxy_upstream_filter`] before a request goes upstream: `None` to send
/// it, or the reason it is not sent. `cache` (`None` for a request the cache does not handle)
/// is disabled with that reason, which releases its lock so that a waiting request looks again.
pub(crate) async fn upstream_declined<H: CacheHooks>(
    hooks: &Arc<H>,
    req: &Parts,
    cache: Option<&mut HttpCache>,
) -> Option<NoCacheReason> {
    let reason = match hooks.proxy_upstream_filter(req).await {
        Ok(true) => return None,
        Ok(false) => NoCacheReason::DeclinedToUpstream,
        Err(e) => {
            tracing::warn!(error = %e, "proxy_upstream_filter failed");
            NoCacheReason::InternalError
        }
    };
    if let Some(cache) = cache
        && !matches!(cache.phase(), CachePhase::Disabled(_))
    {
        cache.disable(reason);
    }
    Some(reason)
}

/// The answer to a request that [`upstream_declined`] (or [`filter_failed`]) kept from the
/// upstream: `502` when the hook declined, `500` when it failed (as pingora answers), with the
/// reason in `status`, and counted as not stored in `metrics` (`None` when the request was
/// already counted).
pub(crate) fn declined_answer(
    reason: NoCacheReason,
    status: CacheStatus,
    metrics: Option<&Metrics>,
) -> (Response<ProxyBody>, CacheStatus) {
    if let Some(metrics) = metrics {
        metrics.not_stored(reason.as_str());
    }
    let code = if reason == NoCacheReason::DeclinedToUpstream {
        StatusCode::BAD_GATEWAY
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    (canned(code), status.detail(reason.as_str()))
}

/// Runs [`CacheHooks::response_filter`] on an answer of the cache flow, and wraps its body in
/// [`CacheHooks::response_body_filter`] when [`CacheHooks::wants_response_body`] says so.
///
/// # Errors
///
/// The response filter's error: the client gets `500` instead.
pub(crate) async fn filter_response<H: CacheHooks>(
    hooks: &Arc<H>,
    req: &Parts,
    resp: &mut Response<ProxyBody>,
) -> Result<(), BoxError> {
    hooks.response_filter(req, resp).await?;
    if hooks.wants_response_body(req, resp) {
        let inner = std::mem::take(resp.body_mut());
        *resp.body_mut() = body::boxed(FilteredBody {
            inner,
            hooks: Arc::clone(hooks),
            req: req.clone(),
            ended: false,
        });
    }
    Ok(())
}

/// A body passed chunk by chunk through [`CacheHooks::response_body_filter`], with one last
/// call (`None`, end of stream) after the last chunk, where the filter may add a tail. A filter
/// error ends the body in that error, so the client never takes a cut body for a whole one.
struct FilteredBody<H> {
    inner: ProxyBody,
    hooks: Arc<H>,
    req: Parts,
    ended: bool,
}

impl<H: CacheHooks> http_body::Body for FilteredBody<H> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        while !this.ended {
            let mut chunk = match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => Some(data),
                    // Trailers are not forwarded.
                    Err(_) => continue,
                },
                Some(Err(e)) => {
                    this.ended = true;
                    return Poll::Ready(Some(Err(e)));
                }
                None => {
                    this.ended = true;
                    None
                }
            };
            if let Err(e) = this
                .hooks
                .response_body_filter(&this.req, &mut chunk, this.ended)
            {
                this.ended = true;
                return Poll::Ready(Some(Err(e)));
            }
            if let Some(data) = chunk
                && !data.is_empty()
            {
                return Poll::Ready(Some(Ok(Frame::data(data))));
            }
        }
        Poll::Ready(None)
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }
}

/// The answer to a PURGE request that ended in `outcome`: the canned answer (`200`, `404`,
/// `405`, `401` with `WWW-Authenticate: Bearer`, or `500`) through
/// [`CacheHooks::purge_response_filter`]; `500` when that fails.
pub(crate) fn purge_answer<H: CacheHooks>(
    hooks: &Arc<H>,
    req: &Parts,
    outcome: &PurgeStatus<'_>,
) -> Response<ProxyBody> {
    let mut resp = canned(outcome.status_code());
    if matches!(outcome, PurgeStatus::Unauthorized) {
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    match hooks.purge_response_filter(req, outcome, &mut resp) {
        Ok(()) => resp,
        Err(e) => {
            tracing::warn!(error = %e, "purge_response_filter failed");
            canned(StatusCode::INTERNAL_SERVER_ERROR)
        }
    }
}
