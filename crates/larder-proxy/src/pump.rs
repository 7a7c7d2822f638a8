//! The tasks that stream bodies: a stored body to the client, and an upstream body to the
//! client (and, with a storage that cannot stream partial writes, into storage at once).

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;
use larder_cache::range::RangeBodyFilter;
use larder_cache::{HttpCache, NoCacheReason};

use crate::body::{CHANNEL_CHUNKS, ChannelBody, Chunk, ProxyBody};
use crate::fill::{self, Filling};
use crate::metrics::Metrics;

/// The next chunk of the hit's body, without a boxed future when the storage has it at once.
pub(crate) async fn read_hit(cache: &mut HttpCache) -> larder_storage::Result<Option<Bytes>> {
    let handler = cache.hit_handler();
    match handler.read_body_now() {
        Some(chunk) => chunk,
        None => handler.read_body().await,
    }
}

pub(crate) async fn finish_hit(cache: &mut HttpCache) {
    if let Err(e) = cache.finish_hit_handler().await {
        tracing::debug!(error = %e, "finishing a hit failed");
    }
}

/// Streams a stored body to the client.
pub(crate) async fn pump_hit(
    mut cache: HttpCache,
    prefix: Vec<Bytes>,
    tx: tokio::sync::mpsc::Sender<Chunk>,
    mut filter: Option<RangeBodyFilter>,
) {
    let send = async |chunk: Bytes, filter: &mut Option<RangeBodyFilter>| -> bool {
        let out = match filter {
            Some(f) => f.filter_body(chunk),
            None => chunk,
        };
        out.is_empty() || tx.send(Chunk::Data(out)).await.is_ok()
    };
    for chunk in prefix {
        if !send(chunk, &mut filter).await {
            return;
        }
    }
    loop {
        match read_hit(&mut cache).await {
            Ok(Some(chunk)) => {
                if !send(chunk, &mut filter).await {
                    return;
                }
            }
            Ok(None) => break,
            Err(e) => {
                let _ = tx.send(Chunk::Error(Box::new(e))).await;
                return;
            }
        }
    }
    finish_hit(&mut cache).await;
    end_client_body(
        &tx,
        filter.as_mut(),
        "stored body shorter than its Content-Length",
    )
    .await;
}

/// Ends the client's body: the range filter's last bytes and the end, or an error saying
/// `short` when the body ended before the range (or declared length) did.
async fn end_client_body(
    tx: &tokio::sync::mpsc::Sender<Chunk>,
    filter: Option<&mut RangeBodyFilter>,
    short: &'static str,
) {
    match filter.map_or_else(|| Some(Bytes::new()), RangeBodyFilter::finish) {
        Some(tail) => {
            if !tail.is_empty() && tx.send(Chunk::Data(tail)).await.is_err() {
                return;
            }
            let _ = tx.send(Chunk::End).await;
        }
        None => {
            let _ = tx.send(Chunk::Error(short.into())).await;
        }
    }
}

/// The client's body for an upstream response, stored into `cache` when it is set (its miss
/// handler set): with a storage that streams partial writes, a fill task writes it at the
/// origin's pace and the client reads the write back at its own ([`fill`](crate::fill));
/// otherwise a task streams it to the client and into the storage at once
/// ([`pump_upstream`]). A response that is not stored goes through as it is, or through a task
/// when only a range of it, or only its header, is sent.
pub(crate) fn serve_upstream(
    mut cache: Option<HttpCache>,
    upstream: ProxyBody,
    header_only: bool,
    filter: Option<RangeBodyFilter>,
    metrics: &Arc<Metrics>,
) -> ProxyBody {
    let reader = cache.as_mut().and_then(HttpCache::take_miss_body_reader);
    if let Some(reader) = reader
        && let Some(cache) = cache.take()
    {
        let filling = Filling::new(cache, Arc::clone(metrics));
        if header_only {
            tokio::spawn(fill::fill(filling, upstream, None));
            return crate::body::empty();
        }
        let (handoff, handoff_rx) = fill::handoff_channel();
        tokio::spawn(fill::fill(filling, upstream, Some(handoff)));
        return fill::client_body(reader, handoff_rx, filter);
    }
    if cache.is_none() && !header_only && filter.is_none() {
        return upstream;
    }
    let (tx, client_body) = if header_only {
        (None, crate::body::empty())
    } else {
        let (tx, rx) = ChannelBody::new(CHANNEL_CHUNKS, None);
        (Some(tx), crate::body::boxed(rx))
    };
    let filling = cache.map(|c| Filling::new(c, Arc::clone(metrics)));
    tokio::spawn(pump_upstream(
        filling,
        upstream,
        tx,
        filter,
        Arc::clone(metrics),
    ));
    client_body
}

/// Streams an upstream body to the client and, when `filling` is set, into storage at the same
/// time. The channel to the client is bounded, so a slow client slows the upstream read: this
/// serves responses that are not stored, and stored ones only when the storage cannot stream
/// partial writes (otherwise [`fill`](crate::fill::fill) decouples the two).
///
/// If the client goes away while the response is being stored, the fill continues so the
/// entry completes (inventory checklist 86); an uncacheable response stops being read. If the
/// upstream fails mid-body, the unfinished write is dropped (storage discards it, no entry is
/// left) and the client's body ends in an error, never a clean short body.
async fn pump_upstream(
    mut filling: Option<Filling>,
    mut body: ProxyBody,
    mut tx: Option<tokio::sync::mpsc::Sender<Chunk>>,
    mut filter: Option<RangeBodyFilter>,
    metrics: Arc<Metrics>,
) {
    loop {
        match body.frame().await {
            None => break,
            Some(Err(e)) => {
                metrics.upstream_errors.inc();
                tracing::warn!(error = %e, "upstream body failed");
                if let Some(f) = filling.take() {
                    f.abandon(NoCacheReason::UpstreamError);
                }
                if let Some(tx) = tx {
                    let _ = tx.send(Chunk::Error(e)).await;
                }
                return;
            }
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else {
                    // Trailers are not stored or forwarded.
                    continue;
                };
                if let Some(f) = filling.as_mut()
                    && let Err(reason) = f.write(&data).await
                    && let Some(f) = filling.take()
                {
                    f.abandon(reason);
                }
                if let Some(t) = &tx {
                    let out = match &mut filter {
                        Some(f) => f.filter_body(data),
                        None => data,
                    };
                    if !out.is_empty() && t.send(Chunk::Data(out)).await.is_err() {
                        // The client left.
                        tx = None;
                    }
                }
                if filling.is_none() && tx.is_none() {
                    return;
                }
            }
        }
    }
    if let Some(f) = filling {
        f.finish().await;
    }
    if let Some(tx) = tx {
        end_client_body(
            &tx,
            filter.as_mut(),
            "upstream body shorter than the requested range",
        )
        .await;
    }
}
