//! Reading bodies back: a verified body in memory ([`BytesHit`]: inline bodies and body files
//! up to 1 MiB), a large body file chunk by chunk ([`FileHit`]: each chunk's CRC-32 checked
//! before its bytes are handed out), and a write in progress ([`PartialHit`]).

use std::any::Any;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use larder_storage::partial::{Follower, Progress};
use larder_storage::storage::seek_end;
use larder_storage::{
    CacheKey, CacheMeta, CompactCacheKey, Error, HandleHit, HitHandler, Result, Storage,
};
use tokio::sync::watch;
use tracing::Span;

use crate::error::DiskError;

/// A write in progress, as lookups see it.
pub(crate) struct Inflight {
    pub(crate) id: u64,
    pub(crate) meta: CacheMeta,
    pub(crate) file: Arc<File>,
    pub(crate) progress: watch::Receiver<Progress>,
}

impl Inflight {
    /// A reader of the write from its start.
    pub(crate) fn reader(&self) -> (CacheMeta, HitHandler) {
        let hit = PartialHit::new(Arc::clone(&self.file), self.progress.clone());
        (self.meta.clone(), Box::new(hit))
    }
}

/// Where a reader reports a body that failed its checks or a read that failed.
pub(crate) trait Spoiled: Send + Sync {
    /// The entry of `key` (entry `id`) failed a check: count it and remove it.
    fn corrupt(&self, key: &CompactCacheKey, id: Option<u64>, path: &Path, reason: &str);
    /// A read failed.
    fn read_failed(&self, error: &DiskError);
}

/// `len` bytes of `file` from `offset`, read into a buffer that is never zero-filled first
/// (`pread` into the vector's spare capacity). A file that ends before them is an
/// `UnexpectedEof` error, as `read_exact_at` gives.
pub(crate) fn read_exact_at(file: &File, len: usize, offset: u64) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(len);
    while buf.len() < len {
        let at = offset + buf.len() as u64;
        match rustix::io::pread(file, rustix::buffer::spare_capacity(&mut buf), at) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            // Read some, or interrupted before reading: read on.
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    // The capacity may exceed `len`, and a read fill it: keep only what was asked for.
    buf.truncate(len);
    Ok(buf)
}

/// The most bytes a reader of a write in progress hands out at once.
const READ_PIECE: u64 = 64 << 10;

/// A complete body already read and verified.
pub(crate) struct BytesHit {
    body: Bytes,
    start: usize,
    end: usize,
    done: bool,
    weight: usize,
}

impl BytesHit {
    pub(crate) fn new(body: Bytes, weight: usize) -> Self {
        BytesHit {
            start: 0,
            end: body.len(),
            body,
            done: false,
            weight,
        }
    }

    fn next_chunk(&mut self) -> Option<Bytes> {
        if self.done || self.start >= self.end {
            return None;
        }
        self.done = true;
        Some(self.body.slice(self.start..self.end))
    }
}

#[async_trait]
impl HandleHit for BytesHit {
    async fn read_body(&mut self) -> Result<Option<Bytes>> {
        Ok(self.next_chunk())
    }

    fn read_body_now(&mut self) -> Option<Result<Option<Bytes>>> {
        Some(Ok(self.next_chunk()))
    }

    fn finish_now(&mut self) -> Option<Result<()>> {
        Some(Ok(()))
    }

    async fn finish(
        self: Box<Self>,
        _storage: &'static (dyn Storage + Sync),
        _key: &CacheKey,
        _trace: &Span,
    ) -> Result<()> {
        Ok(())
    }

    fn can_seek(&self) -> bool {
        true
    }

    fn seek(&mut self, start: usize, end: Option<usize>) -> Result<()> {
        self.end = seek_end(start, end, self.body.len())?;
        self.start = start;
        self.done = false;
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

/// A large body file, read one chunk at a time with positional reads.
pub(crate) struct FileHit {
    inner: Arc<dyn Spoiled>,
    key: CompactCacheKey,
    id: u64,
    path: PathBuf,
    file: Arc<File>,
    len: u64,
    chunk_size: u64,
    crcs: Arc<[u32]>,
    pos: u64,
    end: u64,
    weight: usize,
}

impl FileHit {
    #[allow(clippy::too_many_arguments)] // Built in one place, from a decoded meta file.
    pub(crate) fn new(
        inner: Arc<dyn Spoiled>,
        key: CompactCacheKey,
        id: u64,
        path: PathBuf,
        file: Arc<File>,
        len: u64,
        chunk_size: u32,
        crcs: Arc<[u32]>,
        weight: usize,
    ) -> Self {
        FileHit {
            inner,
            key,
            id,
            path,
            file,
            len,
            chunk_size: u64::from(chunk_size.max(1)),
            crcs,
            pos: 0,
            end: len,
            weight,
        }
    }

    /// Reads and verifies the chunk holding `pos`, and returns its part up to `end`.
    fn read_chunk(&mut self) -> Result<Bytes> {
        let index = self.pos / self.chunk_size;
        let chunk_start = index * self.chunk_size;
        let chunk_end = (chunk_start + self.chunk_size).min(self.len);
        let len = usize::try_from(chunk_end - chunk_start).unwrap_or(0);
        let buf = match read_exact_at(&self.file, len, chunk_start) {
            Ok(buf) => buf,
            Err(e) => {
                let e = DiskError::io(&self.path)(e);
                self.inner.read_failed(&e);
                return Err(e.into());
            }
        };
        let expected = usize::try_from(index)
            .ok()
            .and_then(|i| self.crcs.get(i).copied());
        if expected != Some(crc32fast::hash(&buf)) {
            self.inner.corrupt(
                &self.key,
                Some(self.id),
                &self.path,
                "body chunk checksum mismatch",
            );
            // The response is cut, never completed with wrong bytes.
            return Err(DiskError::Corrupt {
                path: self.path.clone(),
            }
            .into());
        }
        let from = usize::try_from(self.pos - chunk_start).unwrap_or(0);
        let to = usize::try_from(self.end.min(chunk_end) - chunk_start).unwrap_or(0);
        self.pos = self.end.min(chunk_end);
        Ok(Bytes::from(buf).slice(from..to))
    }
}

#[async_trait]
impl HandleHit for FileHit {
    async fn read_body(&mut self) -> Result<Option<Bytes>> {
        if self.pos >= self.end {
            return Ok(None);
        }
        self.read_chunk().map(Some)
    }

    async fn finish(
        self: Box<Self>,
        _storage: &'static (dyn Storage + Sync),
        _key: &CacheKey,
        _trace: &Span,
    ) -> Result<()> {
        Ok(())
    }

    fn can_seek(&self) -> bool {
        true
    }

    /// Reads from the chunk holding `start` on: nothing before it is read.
    fn seek(&mut self, start: usize, end: Option<usize>) -> Result<()> {
        let len = usize::try_from(self.len).unwrap_or(usize::MAX);
        let end = seek_end(start, end, len)?;
        self.pos = start as u64;
        self.end = end as u64;
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

/// A reader of a write in progress: reads the body file being written up to the written
/// length, woken by each write; its bytes were written by this process, so no checksum.
pub(crate) struct PartialHit {
    file: Arc<File>,
    follower: Follower,
}

impl PartialHit {
    pub(crate) fn new(file: Arc<File>, progress: watch::Receiver<Progress>) -> Self {
        PartialHit {
            file,
            follower: Follower::new(progress),
        }
    }
}

#[async_trait]
impl HandleHit for PartialHit {
    async fn read_body(&mut self) -> Result<Option<Bytes>> {
        let Some(range) = self.follower.next().await? else {
            return Ok(None);
        };
        let n = range
            .len()
            .min(usize::try_from(READ_PIECE).unwrap_or(usize::MAX));
        let buf = read_exact_at(&self.file, n, range.start as u64)
            .map_err(|e| Error::Unavailable(Box::new(e)))?;
        self.follower.advance(n);
        Ok(Some(Bytes::from(buf)))
    }

    async fn finish(
        self: Box<Self>,
        _storage: &'static (dyn Storage + Sync),
        _key: &CacheKey,
        _trace: &Span,
    ) -> Result<()> {
        Ok(())
    }

    fn can_seek(&self) -> bool {
        true
    }

    /// Seeks within the body being written: [`Follower::seek`].
    fn seek(&mut self, start: usize, end: Option<usize>) -> Result<()> {
        self.follower.seek(start, end)
    }

    fn should_count_access(&self) -> bool {
        // The writer admits the entry when it finishes; a read of the write is not an access.
        false
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }

    fn as_any_mut(&mut self) -> &mut (dyn Any + Send + Sync) {
        self
    }
}
