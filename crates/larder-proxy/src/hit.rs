//! Serving a stored response: a fresh hit, a stale one (stale-while-revalidate,
//! stale-if-error, disconnected) or a revalidated one, with `Age`, the client's preconditions,
//! `HEAD` and ranges; a small body is read at once, a large one streamed by a task.

use bytes::{Bytes, BytesMut};
use http::StatusCode;
use http::header::{self, HeaderValue};
use larder_cache::decide::{self, Downstream, HitKind};
use larder_cache::max_file_size::content_length;
use larder_cache::range::{RangeBody, RangeBodyFilter};
use larder_cache::{CachePhase, HttpCache, NoCacheReason, ResponseHeader};

use crate::body::{self, CHANNEL_CHUNKS, ChannelBody, canned};
use crate::callbacks;
use crate::hooks::CacheHooks;
use crate::pump::{finish_hit, pump_hit, read_hit};
use crate::shared::{Answer, Ctx, age_value, new_status};
use crate::tasks::TaskKind;

/// A hit whose body fits in this many bytes is read before the response is returned, saving
/// the task that would otherwise stream it.
const INLINE_HIT_BYTES: usize = 64 * 1024;

/// The client's preconditions, `HEAD` and `Range`, applied to a response the cache answers
/// with (the hooks evaluate the preconditions and choose the range, [`decide::downstream_with`]
/// the rest).
pub(crate) fn downstream<H: CacheHooks>(
    ctx: &Ctx<'_, H>,
    header: &mut ResponseHeader,
) -> Downstream {
    let hooks = &ctx.shared.hooks;
    let precondition = callbacks::not_modified(hooks, ctx.req, header);
    decide::downstream_with(&ctx.req.method, precondition, header, |header| {
        hooks.range_header_filter(ctx.req, header, &ctx.shared.config)
    })
}

/// Serves the found entry (inventory §3.2): `Age`, then the client's preconditions, HEAD
/// and ranges.
// One step of the flow kept in one place, in the order pingora's proxy runs it.
#[allow(clippy::too_many_lines)]
pub(crate) async fn serve_hit<H: CacheHooks>(
    ctx: &Ctx<'_, H>,
    cache: &mut HttpCache,
    kind: HitKind,
) -> Answer {
    let now = std::time::SystemTime::now();
    let meta = cache.cache_meta();
    let ttl = decide::ttl(meta, now);
    let mut header = meta.response_header_copy();
    header
        .headers
        .insert(header::AGE, age_value(meta.age(now).as_secs()));
    match kind {
        HitKind::Fresh => ctx.metrics().hits.inc(),
        HitKind::Revalidated { .. } => {}
        _ => ctx.metrics().stale.inc(),
    }
    let not_refreshed = match (kind, cache.phase()) {
        (HitKind::Revalidated { .. }, CachePhase::RevalidatedNoCache(reason)) => Some(reason),
        _ => None,
    };
    let status = decide::hit_status(
        new_status(ctx.shared),
        kind,
        ttl,
        ctx.fwd,
        ctx.collapsed,
        not_refreshed,
    );

    // Ranges need the length; a stored body without Content-Length is read first.
    let mut prefix: Vec<Bytes> = Vec::new();
    let mut complete = false;
    if decide::range_needs_length(
        &ctx.req.method,
        &ctx.req.headers,
        header.status,
        &header.headers,
    ) {
        let mut len = 0usize;
        loop {
            match read_hit(cache).await {
                Ok(Some(chunk)) => {
                    len += chunk.len();
                    prefix.push(chunk);
                }
                Ok(None) => break,
                Err(e) => return hit_failed(ctx, &e),
            }
        }
        complete = true;
        header
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    let downstream = downstream(ctx, &mut header);
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
        while len < INLINE_HIT_BYTES || content_length(&header.headers) == u64::try_from(len).ok() {
            match read_hit(cache).await {
                Ok(Some(chunk)) => {
                    len += chunk.len();
                    prefix.push(chunk);
                }
                Ok(None) => {
                    complete = true;
                    break;
                }
                Err(e) => return hit_failed(ctx, &e),
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
                    return hit_failed(ctx, &"stored body shorter than its Content-Length");
                }
            }
        }
        return (header.into_response(body::full(out.freeze())), status);
    }
    let (tx, rx) = ChannelBody::new(CHANNEL_CHUNKS, None);
    ctx.shared.tasks.spawn(
        TaskKind::Stream,
        pump_hit(std::mem::take(cache), prefix, tx, filter.map(|f| *f)),
    );
    (header.into_response(body::boxed(rx)), status)
}

/// `502` for a stored body that could not be read.
fn hit_failed<H>(ctx: &Ctx<'_, H>, error: &dyn std::fmt::Display) -> Answer {
    tracing::warn!(%error, "reading a cached body failed");
    let status = new_status(ctx.shared)
        .fwd(ctx.fwd)
        .detail(NoCacheReason::StorageError.as_str());
    (canned(StatusCode::BAD_GATEWAY), status)
}
