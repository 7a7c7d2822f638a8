//! The tasks that stream bodies: a stored body to the client, and an upstream body to the
//! client and into storage at once.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;
use larder_cache::range::RangeBodyFilter;
use larder_cache::{HttpCache, NoCacheReason};

use crate::body::{Chunk, ProxyBody};
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

/// Streams an upstream body to the client and, when `cache` is set, into storage at the same
/// time. The channel to the client is bounded, so a slow client slows the upstream read.
///
/// If the client goes away while the response is being stored, the fill continues so the
/// entry completes (inventory checklist 86); an uncacheable response stops being read. If the
/// upstream fails mid-body, the unfinished write is dropped (storage discards it, no entry is
/// left) and the client's body ends in an error, never a clean short body.
// One loop with every outcome of the body side by side reads better than split helpers.
#[allow(clippy::too_many_lines)]
pub(crate) async fn pump_upstream(
    mut cache: Option<HttpCache>,
    mut body: ProxyBody,
    mut tx: Option<tokio::sync::mpsc::Sender<Chunk>>,
    mut filter: Option<RangeBodyFilter>,
    metrics: Arc<Metrics>,
) {
    let mut written = 0u64;
    loop {
        match body.frame().await {
            None => break,
            Some(Err(e)) => {
                metrics.upstream_errors.inc();
                tracing::warn!(error = %e, "upstream body failed");
                if let Some(mut c) = cache.take() {
                    c.disable(NoCacheReason::UpstreamError);
                    metrics.not_stored(NoCacheReason::UpstreamError.as_str());
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
                if let Some(c) = cache.as_mut() {
                    let failure = if c.track_body_bytes_for_max_file_size(data.len()) {
                        match c.miss_handler() {
                            Some(h) => h.write_body(data.clone(), false).await.err().map(|e| {
                                crate::flow::storage_failed(&e, "cache write failed");
                                NoCacheReason::StorageError
                            }),
                            None => None,
                        }
                    } else {
                        c.response_became_uncacheable(NoCacheReason::ResponseTooLarge);
                        Some(NoCacheReason::ResponseTooLarge)
                    };
                    if let Some(reason) = failure {
                        c.disable(reason);
                        metrics.not_stored(reason.as_str());
                        cache = None;
                    } else {
                        written += data.len() as u64;
                    }
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
                if cache.is_none() && tx.is_none() {
                    return;
                }
            }
        }
    }
    if let Some(mut c) = cache {
        let finished = match c.miss_handler() {
            Some(h) => h.write_body(Bytes::new(), true).await,
            None => Ok(()),
        };
        match finished {
            Ok(()) => match c.finish_miss_handler().await {
                Ok(()) => {
                    metrics.stored.inc();
                    metrics.stored_bytes.add(written);
                }
                Err(e) => {
                    crate::flow::storage_failed(&e, "finishing the cache write failed");
                    c.disable(NoCacheReason::StorageError);
                    metrics.not_stored(NoCacheReason::StorageError.as_str());
                }
            },
            Err(e) => {
                crate::flow::storage_failed(&e, "cache write failed");
                c.disable(NoCacheReason::StorageError);
                metrics.not_stored(NoCacheReason::StorageError.as_str());
            }
        }
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
