//! Moving bytes: the tasks that stream bodies to the client (a stored body, and the range of an
//! upstream body that is not stored), the choice of how an upstream body reaches the client,
//! and the fill of the cache ([`filling`]).

pub(crate) mod filling;

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;
use larder_cache::HttpCache;
use larder_cache::range::RangeBodyFilter;

use crate::body::{CHANNEL_CHUNKS, ChannelBody, Chunk, ProxyBody};
use crate::metrics::Metrics;
use crate::tasks::{TaskKind, Tasks};
use filling::Filling;

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
/// handler set): a fill task writes it at the origin's pace and the client reads the write
/// back at its own ([`filling`]). A response that is not stored goes through as it
/// is, or through [`pump_upstream`] when only a range of it, or only its header, is sent.
pub(crate) fn serve_upstream(
    cache: Option<HttpCache>,
    upstream: ProxyBody,
    header_only: bool,
    filter: Option<RangeBodyFilter>,
    metrics: &Arc<Metrics>,
    tasks: &Tasks,
) -> ProxyBody {
    if let Some(cache) = cache {
        let (filling, reader) = Filling::new(cache, Arc::clone(metrics));
        if header_only {
            tasks.spawn(TaskKind::Fill, filling::fill(filling, upstream, None));
            return crate::body::empty();
        }
        let (handoff, handoff_rx) = filling::handoff_channel();
        tasks.spawn(
            TaskKind::Fill,
            filling::fill(filling, upstream, Some(handoff)),
        );
        return filling::client_body(reader, handoff_rx, filter);
    }
    if header_only {
        // Nobody reads the body: dropping it stops the upstream read.
        return crate::body::empty();
    }
    let Some(filter) = filter else {
        return upstream;
    };
    let (tx, rx) = ChannelBody::new(CHANNEL_CHUNKS, None);
    tasks.spawn(
        TaskKind::Stream,
        pump_upstream(upstream, tx, filter, Arc::clone(metrics)),
    );
    crate::body::boxed(rx)
}

/// Streams the range of a response that is not stored to the client. The channel to the client
/// is bounded, so a slow client slows the upstream read. If the upstream fails mid-body, the
/// client's body ends in an error, never a clean short body.
async fn pump_upstream(
    mut body: ProxyBody,
    tx: tokio::sync::mpsc::Sender<Chunk>,
    mut filter: RangeBodyFilter,
    metrics: Arc<Metrics>,
) {
    loop {
        match body.frame().await {
            None => break,
            Some(Err(e)) => {
                metrics.upstream_errors.inc();
                tracing::warn!(error = %e, "upstream body failed");
                let _ = tx.send(Chunk::Error(e)).await;
                return;
            }
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else {
                    // Trailers are not forwarded.
                    continue;
                };
                let out = filter.filter_body(data);
                if !out.is_empty() && tx.send(Chunk::Data(out)).await.is_err() {
                    // The client left.
                    return;
                }
            }
        }
    }
    end_client_body(
        &tx,
        Some(&mut filter),
        "upstream body shorter than the requested range",
    )
    .await;
}
