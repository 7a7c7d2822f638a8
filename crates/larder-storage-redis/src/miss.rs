//! [`RedisMiss`]: writes a body into Redis chunk by chunk and publishes it when finished.

use std::time::Instant;

use bytes::{Bytes, BytesMut};
use larder_storage::{HandleMiss, MissFinishType};

use crate::client::{Client, EntryKeys};
use crate::config::MAX_CHUNKS;
use crate::error::{Error, Result};
use crate::stats::inc;

/// The miss handler of a [`RedisStorage`](crate::RedisStorage): full chunks go out as they fill up, the meta (and
/// the last chunk, or the whole body when it fits in one) is published by
/// [`finish`](HandleMiss::finish). Dropping it unfinished deletes the chunks
/// sent so far (best effort; they expire anyway).
pub(crate) struct RedisMiss {
    client: &'static Client,
    keys: EntryKeys,
    version: String,
    meta: Vec<u8>,
    expire_at_ms: u64,
    /// The invalidation marker seen when the write started (empty for none).
    marker: Vec<u8>,
    /// The start of a chunk not yet full.
    partial: BytesMut,
    /// Chunks sent so far.
    sent: usize,
    /// Body bytes written so far.
    len: usize,
    eof: bool,
    /// Set once `finish` runs: `Drop` then leaves the parts alone.
    done: bool,
    started: Instant,
}

/// The most chunks sent in one pipeline (1 MiB with the default chunk size).
const PIPELINE_CHUNKS: usize = 16;

impl RedisMiss {
    pub(crate) fn new(
        client: &'static Client,
        keys: EntryKeys,
        version: String,
        meta: Vec<u8>,
        expire_at_ms: u64,
        marker: Vec<u8>,
    ) -> Self {
        RedisMiss {
            client,
            keys,
            version,
            meta,
            expire_at_ms,
            marker,
            partial: BytesMut::new(),
            sent: 0,
            len: 0,
            eof: false,
            done: false,
            started: Instant::now(),
        }
    }

    fn chunk_size(&self) -> usize {
        self.client.config().chunk_size
    }

    /// Cuts `data` into full chunks (without copying where it can), keeping the rest. A full
    /// chunk goes out only once a byte follows it, so a body of at most one chunk is still
    /// whole in `partial` at the end and is stored in the meta hash.
    fn full_chunks(&mut self, mut data: Bytes) -> Vec<Bytes> {
        let size = self.chunk_size();
        let mut ready = Vec::new();
        if !self.partial.is_empty() {
            let take = (size - self.partial.len()).min(data.len());
            self.partial.extend_from_slice(&data.split_to(take));
            if data.is_empty() {
                return ready;
            }
            ready.push(self.partial.split().freeze());
        }
        while data.len() > size {
            ready.push(data.split_to(size));
        }
        self.partial.extend_from_slice(&data);
        ready
    }

    /// Sends `chunks`, with the short expiry of unfinished parts, in pipelines of at most
    /// [`PIPELINE_CHUNKS`] so each call stays small enough for the timeout.
    async fn send(&mut self, chunks: Vec<Bytes>) -> Result<()> {
        let ttl_ms = u64::try_from(self.client.config().part_ttl.as_millis()).unwrap_or(u64::MAX);
        for batch in chunks.chunks(PIPELINE_CHUNKS) {
            let mut pipe = redis::pipe();
            for (i, chunk) in batch.iter().enumerate() {
                pipe.cmd("SET")
                    .arg(self.keys.chunk(&self.version, self.sent + i))
                    .arg(chunk.as_ref())
                    .arg("PX")
                    .arg(ttl_ms)
                    .ignore();
            }
            let mut conn = self.client.connection();
            // Count the chunks as sent before the answer: if the call fails midway, `Drop`
            // still deletes whatever made it.
            self.sent += batch.len();
            self.client
                .call(async move { pipe.query_async::<()>(&mut conn).await })
                .await?;
        }
        Ok(())
    }

    /// Sends the last chunk (or keeps a one-chunk body for the meta hash) and runs the
    /// publish script; returns its status (1 published, -1 invalidated meanwhile, -2 a chunk
    /// is missing).
    async fn publish(&mut self) -> Result<i64> {
        // An invalidation is remembered for `part_ttl`: a write older than that could miss
        // one, so it is not published (its chunks would be expiring anyway).
        if self.started.elapsed() >= self.client.config().part_ttl {
            return Err(Error::PartsExpired);
        }
        let rest = self.partial.split().freeze();
        let inline = if self.sent == 0 {
            rest
        } else {
            self.send(vec![rest]).await?;
            Bytes::new()
        };
        let grace_ms =
            u64::try_from(self.client.config().replace_grace.as_millis()).unwrap_or(u64::MAX);
        let mut invocation = self.client.scripts().publish.prepare_invoke();
        invocation
            .key(self.keys.meta())
            .key(self.keys.marker())
            .arg(&self.keys.base)
            .arg(&self.version)
            .arg(&self.meta)
            .arg(self.len)
            .arg(self.chunk_size())
            .arg(self.sent)
            .arg(self.expire_at_ms)
            .arg(&self.marker)
            .arg(grace_ms)
            .arg(inline.as_ref());
        let mut conn = self.client.connection();
        self.client
            .call(async move { invocation.invoke_async(&mut conn).await })
            .await
    }
}

#[async_trait::async_trait]
impl HandleMiss for RedisMiss {
    async fn write_body(&mut self, data: Bytes, eof: bool) -> larder_storage::Result<()> {
        if self.eof && !data.is_empty() {
            return Err(larder_storage::Error::WriteAfterEnd);
        }
        self.len += data.len();
        if self.len.div_ceil(self.chunk_size()) > MAX_CHUNKS {
            return Err(Error::BodyTooLarge {
                max: MAX_CHUNKS * self.chunk_size(),
            }
            .into());
        }
        self.eof |= eof;
        let chunks = self.full_chunks(data);
        self.send(chunks).await.map_err(|e| {
            tracing::debug!(error = %e, key = %self.keys.base, "redis cache write failed");
            e.into()
        })
    }

    async fn finish(mut self: Box<Self>) -> larder_storage::Result<MissFinishType> {
        self.done = true;
        let result = match self.publish().await {
            Ok(1) => {
                inc(&self.client.counters().writes_stored);
                return Ok(MissFinishType::Created(self.len + self.meta.len()));
            }
            Ok(-1) => larder_storage::Error::WritePurged,
            Ok(-2) => Error::PartsExpired.into(),
            Ok(_) => Error::CorruptEntry {
                reason: "publish script returned an unknown status",
            }
            .into(),
            Err(e) => e.into(),
        };
        inc(&self.client.counters().writes_dropped);
        tracing::debug!(error = %result, key = %self.keys.base, "redis cache write not stored");
        Err(result)
    }
}

impl Drop for RedisMiss {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        inc(&self.client.counters().writes_dropped);
        if self.sent == 0 {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut cmd = redis::cmd("DEL");
        for index in 0..self.sent {
            cmd.arg(self.keys.chunk(&self.version, index));
        }
        let client = self.client;
        let mut conn = client.connection();
        runtime.spawn(async move {
            // Best effort: the parts expire by themselves if this fails.
            let _ = client
                .call(async move { cmd.query_async::<()>(&mut conn).await })
                .await;
        });
    }
}
