//! [`RedisHit`]: reads the body chunks of an entry lazily.

use std::any::Any;
use std::collections::VecDeque;

use async_trait::async_trait;
use bytes::Bytes;
use larder_storage::{CacheKey, HandleHit, Storage};
use tracing::Span;

use crate::client::{Client, EntryKeys};
use crate::error::{Error, Result};
use crate::stats::inc;

/// The body reader of a Redis hit. Chunks are fetched when the reader gets to them,
/// [`read_ahead`](crate::RedisConfig::read_ahead) per round trip; at most that many are held.
pub(crate) struct RedisHit {
    client: &'static Client,
    keys: EntryKeys,
    version: String,
    len: usize,
    chunk_size: usize,
    /// The next body offset to return.
    pos: usize,
    /// The end (exclusive) of the range being read.
    end: usize,
    /// The whole body, when it is stored in the meta hash.
    inline: Option<Bytes>,
    /// Fetched chunks by index, ascending.
    fetched: VecDeque<(usize, Bytes)>,
    weight: usize,
}

impl RedisHit {
    pub(crate) fn new(
        client: &'static Client,
        keys: EntryKeys,
        version: String,
        len: usize,
        chunk_size: usize,
        inline: Option<Bytes>,
        weight: usize,
    ) -> Self {
        RedisHit {
            client,
            keys,
            version,
            len,
            chunk_size,
            pos: 0,
            end: len,
            inline,
            fetched: VecDeque::new(),
            weight,
        }
    }

    /// The length chunk `index` must have.
    fn chunk_len(&self, index: usize) -> usize {
        self.chunk_size.min(self.len - index * self.chunk_size)
    }

    /// Fetches chunks from `first` on, as many as read-ahead allows within the range.
    async fn fetch(&mut self, first: usize) -> Result<()> {
        let last_needed = (self.end - 1) / self.chunk_size;
        let count = (last_needed + 1 - first).min(self.client.config().read_ahead);
        let mut pipe = redis::pipe();
        for index in first..first + count {
            pipe.cmd("GET").arg(self.keys.chunk(&self.version, index));
        }
        let mut conn = self.client.connection();
        let chunks: Vec<Option<Bytes>> = self
            .client
            .call(async move { pipe.query_async(&mut conn).await })
            .await?;
        if chunks.len() != count {
            return Err(Error::CorruptEntry {
                reason: "pipeline reply has the wrong length",
            });
        }
        self.fetched.clear();
        for (index, chunk) in (first..).zip(chunks) {
            let chunk = chunk.ok_or(Error::MissingChunk { index })?;
            if chunk.len() != self.chunk_len(index) {
                return Err(Error::CorruptEntry {
                    reason: "body chunk has the wrong length",
                });
            }
            self.fetched.push_back((index, chunk));
        }
        Ok(())
    }

    async fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        if self.pos >= self.end {
            return Ok(None);
        }
        if let Some(body) = &self.inline {
            let out = body.slice(self.pos..self.end);
            self.pos = self.end;
            return Ok(Some(out));
        }
        let index = self.pos / self.chunk_size;
        while self.fetched.front().is_some_and(|(i, _)| *i < index) {
            self.fetched.pop_front();
        }
        if self.fetched.front().is_none_or(|(i, _)| *i != index) {
            self.fetch(index).await?;
        }
        let Some((_, chunk)) = self.fetched.front() else {
            return Err(Error::MissingChunk { index });
        };
        let start = index * self.chunk_size;
        let from = self.pos - start;
        let to = (self.end - start).min(chunk.len());
        let out = chunk.slice(from..to);
        self.pos += out.len();
        if to == chunk.len() {
            self.fetched.pop_front();
        }
        Ok(Some(out))
    }
}

#[async_trait]
impl HandleHit for RedisHit {
    async fn read_body(&mut self) -> larder_storage::Result<Option<Bytes>> {
        match self.next_chunk().await {
            Ok(chunk) => Ok(chunk),
            Err(e) => {
                inc(&self.client.counters().read_errors);
                tracing::debug!(error = %e, key = %self.keys.base, "redis cache body read failed");
                Err(e.into())
            }
        }
    }

    async fn finish(
        self: Box<Self>,
        _storage: &'static (dyn Storage + Sync),
        _key: &CacheKey,
        _trace: &Span,
    ) -> larder_storage::Result<()> {
        Ok(())
    }

    fn can_seek(&self) -> bool {
        true
    }

    fn seek(&mut self, start: usize, end: Option<usize>) -> larder_storage::Result<()> {
        let end = larder_storage::storage::seek_end(start, end, self.len)?;
        self.pos = start;
        self.end = end;
        // Chunks already fetched stay if the new range still needs them.
        let first = start / self.chunk_size;
        self.fetched.retain(|(i, _)| *i >= first);
        Ok(())
    }

    fn get_eviction_weight(&self) -> usize {
        self.weight
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }

    fn as_any_mut(&mut self) -> &mut (dyn Any + Send + Sync) {
        self
    }
}
