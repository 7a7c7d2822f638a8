//! Filling the cache from an upstream body, decoupled from the clients that read it.
//!
//! A cacheable miss is written into storage by a fill task that no client owns, at the
//! origin's pace. With a storage that streams partial writes, every client, the one whose
//! request caused the fill included, reads the stored (partial) entry at its own pace: a client
//! that stops reading costs only its own socket buffers and never slows the fill or the other
//! readers, and a client that leaves does not stop the fill.
//!
//! With a storage that cannot stream its own writes (Redis alone), the fill keeps a spool of the
//! body beside the write, a [`PartialBody`](larder_storage::partial::PartialBody), for the first client to read at its pace; other
//! requests wait for the entry as before.
//!
//! Memory stays bounded by what the storage admits: the fill writes at most the maximum file
//! size into storage. When the write is abandoned midway (the body outgrew the maximum file
//! size, or the storage failed), the fill hands the rest of the body to the first client through
//! a bounded channel, so from there on that one client paces the upstream read, as a plain
//! pass-through would; the other readers of the abandoned write get an error, never a clean
//! short body. Each chunk handed over carries its body offset, so the first client continues
//! exactly where its read of the stored bytes stopped.

use std::sync::Arc;

use bytes::Bytes;
use http_body::Frame;
use http_body_util::BodyExt;
use larder_cache::range::RangeBodyFilter;
use larder_cache::{HttpCache, NoCacheReason};
use larder_storage::HitHandler;
use larder_storage::partial::PartialWriter;
use tokio::sync::mpsc;

use crate::body::{self, CHANNEL_CHUNKS, ProducerGone, ProxyBody};
use crate::error::BoxError;
use crate::metrics::Metrics;

/// One message of the hand-over from the fill to the first client, sent only once the write
/// was abandoned.
#[derive(Debug)]
pub(crate) enum Handoff {
    /// Body bytes starting at `offset` in the upstream body.
    Data { offset: u64, data: Bytes },
    /// The upstream body ended cleanly.
    End,
    /// The upstream body failed.
    Error(BoxError),
}

/// A cache being filled: writes chunks into its miss handler (and the spool, if any),
/// enforcing the maximum file size, and finishes or abandons the write, counting each outcome.
pub(crate) struct Filling {
    cache: HttpCache,
    /// A copy of the body for the first client, when the storage cannot stream the write.
    spool: Option<PartialWriter>,
    written: u64,
    metrics: Arc<Metrics>,
}

impl Filling {
    /// Fills `cache`, whose miss handler is set, and returns a reader of the write for the
    /// first client: the storage's own, or a spool's.
    pub(crate) fn new(mut cache: HttpCache, metrics: Arc<Metrics>) -> (Self, HitHandler) {
        let (reader, spool) = if let Some(reader) = cache.take_miss_body_reader() {
            (reader, None)
        } else {
            let spool = PartialWriter::new();
            (spool.body().reader(), Some(spool))
        };
        let filling = Self {
            cache,
            spool,
            written: 0,
            metrics,
        };
        (filling, reader)
    }

    /// Writes the next chunk. On `Err` the write must be [abandoned](Self::abandon).
    pub(crate) async fn write(&mut self, data: &Bytes) -> Result<(), NoCacheReason> {
        let c = &mut self.cache;
        if !c.track_body_bytes_for_max_file_size(data.len()) {
            c.response_became_uncacheable(NoCacheReason::ResponseTooLarge);
            return Err(NoCacheReason::ResponseTooLarge);
        }
        if let Some(h) = c.miss_handler()
            && let Err(e) = h.write_body(data.clone(), false).await
        {
            crate::flow::storage_failed(&e.into(), "cache write failed");
            return Err(NoCacheReason::StorageError);
        }
        if let Some(spool) = &self.spool {
            spool.push(data.clone());
        }
        self.written += data.len() as u64;
        Ok(())
    }

    /// Drops the unfinished write: nothing is stored, and its readers get an error.
    pub(crate) fn abandon(mut self, reason: NoCacheReason) {
        self.cache.disable(reason);
        self.metrics.not_stored(reason.as_str());
    }

    /// Ends the write after the last chunk: the entry becomes visible.
    pub(crate) async fn finish(mut self) {
        // The spool has every byte whatever the storage does now.
        if let Some(spool) = self.spool.take() {
            spool.end();
        }
        let c = &mut self.cache;
        let finished = match c.miss_handler() {
            Some(h) => h.write_body(Bytes::new(), true).await,
            None => Ok(()),
        };
        let finished = match finished {
            Ok(()) => c.finish_miss_handler().await,
            Err(e) => Err(e.into()),
        };
        match finished {
            Ok(()) => {
                self.metrics.stored.inc();
                self.metrics.stored_bytes.add(self.written);
            }
            Err(e) => {
                crate::flow::storage_failed(&e, "finishing the cache write failed");
                self.abandon(NoCacheReason::StorageError);
            }
        }
    }
}

/// Writes `body` into the cache at the origin's pace (the fill task of a cacheable miss). When
/// the write is abandoned, the rest of the body goes to `handoff` (the first client) with
/// back-pressure, or is not read at all when nobody takes it.
pub(crate) async fn fill(
    mut filling: Filling,
    mut body: ProxyBody,
    handoff: Option<mpsc::Sender<Handoff>>,
) {
    let mut offset = 0u64;
    loop {
        let data = match body.frame().await {
            None => {
                filling.finish().await;
                // The readers end with the write; the first client needs this only if the
                // storage dropped a complete write while finishing it. The channel is empty
                // here, so this never waits.
                if let Some(tx) = handoff {
                    let _ = tx.try_send(Handoff::End);
                }
                return;
            }
            Some(Err(e)) => {
                filling.metrics.upstream_errors.inc();
                tracing::warn!(error = %e, "upstream body failed");
                filling.abandon(NoCacheReason::UpstreamError);
                if let Some(tx) = handoff {
                    let _ = tx.try_send(Handoff::Error(e));
                }
                return;
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => data,
                // Trailers are not stored or forwarded.
                Err(_) => continue,
            },
        };
        if let Err(reason) = filling.write(&data).await {
            let metrics = Arc::clone(&filling.metrics);
            filling.abandon(reason);
            if let Some(tx) = handoff {
                hand_over(&tx, offset, data, body, &metrics).await;
            }
            return;
        }
        offset += data.len() as u64;
    }
}

/// Sends `first` (at `offset`) and the rest of `body` to the first client, at its pace; stops
/// reading the upstream when that client leaves.
async fn hand_over(
    tx: &mpsc::Sender<Handoff>,
    mut offset: u64,
    first: Bytes,
    mut body: ProxyBody,
    metrics: &Metrics,
) {
    let mut next = Some(first);
    loop {
        if let Some(data) = next.take() {
            let len = data.len() as u64;
            if tx.send(Handoff::Data { offset, data }).await.is_err() {
                return;
            }
            offset += len;
        }
        match body.frame().await {
            None => {
                let _ = tx.send(Handoff::End).await;
                return;
            }
            Some(Err(e)) => {
                metrics.upstream_errors.inc();
                tracing::warn!(error = %e, "upstream body failed");
                let _ = tx.send(Handoff::Error(e)).await;
                return;
            }
            Some(Ok(frame)) => next = frame.into_data().ok(),
        }
    }
}

/// A channel for [`fill`]'s hand-over to the first client.
pub(crate) fn handoff_channel() -> (mpsc::Sender<Handoff>, mpsc::Receiver<Handoff>) {
    mpsc::channel(CHANNEL_CHUNKS)
}

/// The first client's body: the write read back through `reader` at the client's pace, then,
/// if the fill abandoned the write, the rest from `handoff`; through the range filter when the
/// client asked for a range.
pub(crate) fn client_body(
    reader: HitHandler,
    handoff: mpsc::Receiver<Handoff>,
    filter: Option<RangeBodyFilter>,
) -> ProxyBody {
    let read = ReadBack {
        reader: Some(reader),
        handoff,
        filter,
        read: 0,
        ended: false,
    };
    let stream = futures_util::stream::unfold(read, |mut read| async move {
        let frame = read.next().await?;
        Some((frame, read))
    });
    body::boxed(http_body_util::StreamBody::new(stream))
}

/// The state of [`client_body`].
struct ReadBack {
    /// The write's reader; `None` once the write was abandoned.
    reader: Option<HitHandler>,
    handoff: mpsc::Receiver<Handoff>,
    filter: Option<RangeBodyFilter>,
    /// Body bytes the client has been given (before the range filter).
    read: u64,
    ended: bool,
}

impl ReadBack {
    /// The next body bytes: `Ok(None)` at a clean end.
    async fn next_bytes(&mut self) -> Result<Option<Bytes>, BoxError> {
        loop {
            if let Some(reader) = &mut self.reader {
                let chunk = match reader.read_body_now() {
                    Some(chunk) => chunk,
                    None => reader.read_body().await,
                };
                match chunk {
                    Ok(Some(data)) => {
                        self.read += data.len() as u64;
                        return Ok(Some(data));
                    }
                    Ok(None) => return Ok(None),
                    Err(larder_storage::Error::WriteAbandoned) => {
                        // The fill gave up the write: the rest (if any) is handed over.
                        self.reader = None;
                    }
                    Err(e) => return Err(Box::new(e)),
                }
                continue;
            }
            match self.handoff.recv().await {
                Some(Handoff::Data { offset, data }) => {
                    let Some(skip) = self.read.checked_sub(offset) else {
                        return Err("a cache fill lost part of the body".into());
                    };
                    let Ok(skip) = usize::try_from(skip) else {
                        continue;
                    };
                    if skip >= data.len() {
                        continue;
                    }
                    let data = data.slice(skip..);
                    self.read += data.len() as u64;
                    return Ok(Some(data));
                }
                Some(Handoff::End) => return Ok(None),
                Some(Handoff::Error(e)) => return Err(e),
                None => return Err(Box::new(ProducerGone)),
            }
        }
    }

    /// The next frame for the client, through the range filter.
    async fn next(&mut self) -> Option<Result<Frame<Bytes>, BoxError>> {
        while !self.ended {
            match self.next_bytes().await {
                Ok(Some(data)) => {
                    let out = match &mut self.filter {
                        Some(f) => f.filter_body(data),
                        None => data,
                    };
                    if !out.is_empty() {
                        return Some(Ok(Frame::data(out)));
                    }
                }
                Ok(None) => {
                    self.ended = true;
                    return match self.filter.as_mut().map(RangeBodyFilter::finish) {
                        None => None,
                        Some(Some(tail)) if tail.is_empty() => None,
                        Some(Some(tail)) => Some(Ok(Frame::data(tail))),
                        Some(None) => {
                            Some(Err("upstream body shorter than the requested range".into()))
                        }
                    };
                }
                Err(e) => {
                    self.ended = true;
                    return Some(Err(e));
                }
            }
        }
        None
    }
}
