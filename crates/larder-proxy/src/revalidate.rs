//! A stale entry's upstream answer: a `304` refreshes the stored header (RFC 9111 §4.3.4) and
//! the stored body is served; a failure within the entry's stale-if-error window, or while
//! the upstream is unreachable, serves the stale entry instead (RFC 5861 §4, RFC 9111 §4.2.4).

use http::response;
use larder_cache::age::ResponseTimes;
use larder_cache::decide::{self, HitKind};
use larder_cache::filters::RespCacheable;
use larder_cache::{HttpCache, NoCacheReason, ResponseHeader, set_cookie};

use crate::callbacks;
use crate::hit::serve_hit;
use crate::hooks::CacheHooks;
use crate::shared::{Answer, Ctx};

/// The upstream answered the revalidation with `304` (`parts`): merge its header into the
/// stored one, store the merge if the filters allow, and serve the stored body.
pub(crate) async fn not_modified<H: CacheHooks>(
    ctx: &Ctx<'_, H>,
    mut cache: HttpCache,
    mut parts: response::Parts,
    times: ResponseTimes,
) -> Answer {
    let hooks = &ctx.shared.hooks;
    let filtered = hooks.upstream_response_filter(ctx.req, &mut parts);
    let merged = cache.revalidate_merge_header(&ResponseHeader::from(&parts));
    let decision = if let Err(e) = filtered {
        // The stored response is still served, unchanged (as pingora does).
        callbacks::uncacheable_on_error(e)
    } else {
        decide::revalidated(ctx.directives.no_store(), || {
            hooks
                .response_cache_filter(ctx.req, &merged, &ctx.shared.config, times)
                .unwrap_or_else(callbacks::uncacheable_on_error)
        })
    };
    let stored = match decision {
        RespCacheable::Cacheable(meta) => {
            if let Err(e) = cache.revalidate_cache_meta(meta).await {
                tracing::warn!(error = %e, "could not update the revalidated entry");
            }
            true
        }
        RespCacheable::Uncacheable(reason) => {
            ctx.metrics().not_stored(reason.as_str());
            cache.revalidate_uncacheable(merged, reason);
            false
        }
    };
    ctx.metrics().revalidated.inc();
    let (mut resp, status) = serve_hit(ctx, &mut cache, HitKind::Revalidated { stored }).await;
    // The stored copy never has a cookie: the 304's is for this client alone.
    set_cookie::copy_set_cookie(&parts.headers, resp.headers_mut());
    (resp, status)
}

/// Serves the stale entry in place of a failed upstream (`kind` says why), releasing the lock
/// so that a waiting request tries the upstream again.
pub(crate) async fn serve_stale<H: CacheHooks>(
    ctx: &Ctx<'_, H>,
    mut cache: HttpCache,
    kind: HitKind,
) -> Answer {
    cache.release_write_lock(NoCacheReason::UpstreamError);
    serve_hit(ctx, &mut cache, kind).await
}
