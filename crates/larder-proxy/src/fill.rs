//! An upstream response that may fill the cache (a miss, a replaced stale entry, or a bypassed
//! request whose answer turns out cacheable): the response filters, the decision whether and
//! how to store it ([`decide::store`]), its `Cache-Status`, and the client's body, read back
//! from the fill ([`pump::serve_upstream`]).

use http::header;
use http::{Response, response};
use larder_cache::age::ResponseTimes;
use larder_cache::decide::{self, Downstream, Refusal, Store, StoreFacts};
use larder_cache::range::RangeBodyFilter;
use larder_cache::{CacheMeta, CachePhase, HttpCache, NoCacheReason, ResponseHeader};

use crate::body::ProxyBody;
use crate::callbacks;
use crate::hit::downstream;
use crate::hooks::CacheHooks;
use crate::pump;
use crate::shared::{Answer, Ctx, age_value, new_status, storage_failed};

/// Answers with the upstream's response (`parts`, `upstream_body`), storing it when the rules
/// allow. `mutated`: the request sent upstream was the cache's own (preconditions and ranges
/// removed, `HEAD` as `GET`), so the client's are applied to the answer here.
pub(crate) async fn answer<H: CacheHooks>(
    ctx: &Ctx<'_, H>,
    mut cache: HttpCache,
    mut parts: response::Parts,
    upstream_body: ProxyBody,
    times: ResponseTimes,
    mutated: bool,
) -> Answer {
    let hooks = &ctx.shared.hooks;
    let config = &ctx.shared.config;
    let phase = cache.phase();
    match phase {
        CachePhase::Stale => ctx.metrics().expired.inc(),
        CachePhase::Miss => ctx.metrics().misses.inc(),
        _ => ctx.metrics().bypass.inc(),
    }
    if let Err(e) = hooks.upstream_response_filter(ctx.req, &mut parts) {
        let reason = callbacks::filter_failed(&e, "upstream_response_filter", Some(&mut cache));
        let status = new_status(ctx.shared).fwd(ctx.fwd);
        return callbacks::declined_answer(reason, status, Some(ctx.metrics()));
    }

    // Store it?
    let facts = StoreFacts {
        phase,
        method: &ctx.req.method,
        status: parts.status,
        headers: &parts.headers,
        no_store: ctx.directives.no_store(),
        max_file_size: config.max_file_size,
    };
    let decision = decide::store(facts, || {
        hooks
            .response_cache_filter(ctx.req, &ResponseHeader::from(&parts), config, times)
            .unwrap_or_else(callbacks::uncacheable_on_error)
    });
    let stored = match decision {
        Store::Write { meta, from_bypass } => start_write(ctx, &mut cache, meta, from_bypass).await,
        Store::Refuse { reason, action } => {
            match action {
                Refusal::RetryUnderLock => cache.release_write_lock(NoCacheReason::UpstreamError),
                Refusal::Remember => cache.response_became_uncacheable(reason),
                Refusal::Disable | Refusal::AlreadyDisabled => {}
            }
            if action != Refusal::AlreadyDisabled {
                cache.disable(reason);
            }
            Err(reason)
        }
    };

    let stored_ttl = match &stored {
        Ok(()) => Ok(cache.maybe_cache_meta().map(|meta| {
            let now = std::time::SystemTime::now();
            // The age the cache computed (upstream Age, Date and the fetch's delay,
            // RFC 9111 §4.2.3) replaces the upstream's Age, as it would on a hit.
            let age = meta.age(now).as_secs();
            if age > 0 {
                parts.headers.insert(header::AGE, age_value(age));
            }
            decide::ttl(meta, now)
        })),
        Err(reason) => {
            ctx.metrics().not_stored(reason.as_str());
            Err(*reason)
        }
    };
    let status = decide::forwarded_status(
        new_status(ctx.shared),
        ctx.fwd,
        parts.status,
        ctx.collapsed,
        stored_ttl,
    );

    // The client's own preconditions, ranges and HEAD, when the cache replaced them
    // upstream (inventory §3.7).
    let mut header = ResponseHeader::from(&parts);
    let downstream = if mutated {
        downstream(ctx, &mut header)
    } else {
        Downstream::default()
    };
    parts.status = header.status;
    parts.headers = header.headers;
    let filter = downstream.range.as_deref().map(RangeBodyFilter::new);
    let client_body = pump::serve_upstream(
        stored.is_ok().then_some(cache),
        upstream_body,
        downstream.header_only,
        filter,
        &ctx.shared.metrics,
        &ctx.shared.tasks,
    );
    (Response::from_parts(parts, client_body), status)
}

/// Starts writing a storable response (`meta`) into the cache: `Err` with the reason when it
/// is not written after all (a bypassed request whose `cache_miss` declines the miss, or a
/// storage that cannot start the write).
async fn start_write<H: CacheHooks>(
    ctx: &Ctx<'_, H>,
    cache: &mut HttpCache,
    meta: CacheMeta,
    from_bypass: bool,
) -> Result<(), NoCacheReason> {
    let hooks = &ctx.shared.hooks;
    // A bypassed request whose answer is cacheable becomes a miss, unless `cache_miss`
    // declines it.
    if from_bypass && let Some(reason) = callbacks::bypass_to_miss(hooks, ctx.req, cache) {
        return Err(reason);
    }
    let variance = hooks.cache_vary_filter(&meta, ctx.req);
    cache.set_cache_meta(meta);
    cache.update_variance(variance);
    match cache.set_miss_handler().await {
        Ok(()) => {
            cache.response_became_cacheable();
            Ok(())
        }
        Err(e) => {
            storage_failed(&e, "could not start the cache write");
            cache.disable(NoCacheReason::StorageError);
            Err(NoCacheReason::StorageError)
        }
    }
}
