//! A body that is read while it is written: the chunks of a write in progress, shared by its
//! writer and any number of readers, each reading at its own pace.
//!
//! [`MemCache`](crate::MemCache) keeps every write in progress in one, so lookups of the key
//! stream it; a caller can also keep one beside a storage that cannot stream its own writes
//! (a spool), so that a reader need not wait for the write to be complete.
//!
//! Readers are woken by each chunk (no polling). A reader ends cleanly only after
//! [`PartialWriter::end`]; when the writer is dropped before that, a reader gets the bytes
//! written so far and then [`Error::WriteAbandoned`], never a clean short body.
//!
//! [`Follower`] is that reading protocol alone, for a storage whose writes in progress live
//! elsewhere (a file being written): it says which bytes to read next, waits for the writer,
//! and checks seeks, while the storage reads the bytes from where it keeps them.

use std::any::Any;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::RwLock;
use tokio::sync::watch;
use tracing::Span;

use crate::{CacheKey, Error, HandleHit, HitHandler, Result, Storage};

/// The chunks of a body being written; read them through [`reader`](Self::reader).
pub struct PartialBody {
    chunks: RwLock<Chunks>,
    progress: watch::Receiver<Progress>,
}

impl std::fmt::Debug for PartialBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let progress = *self.progress.borrow();
        f.debug_struct("PartialBody")
            .field("len", &progress.len)
            .field("done", &progress.done)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Chunks {
    data: Vec<Bytes>,
    /// `ends[i]` is the body offset just past `data[i]`.
    ends: Vec<usize>,
}

/// How far a write in progress got, as its writer publishes it (in a
/// [`watch`] channel) to a [`Follower`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Bytes written so far.
    pub len: usize,
    /// Whether the body is complete. A channel whose sender is dropped before this is set
    /// means the write was abandoned.
    pub done: bool,
}

/// A reader's place in a write in progress: where it reads, where its range stops, and a seek
/// still to check against the final length. It waits for the writer through the progress
/// channel; the bytes themselves are the storage's to read.
///
/// ```
/// use larder_storage::partial::{Follower, Progress};
/// use tokio::sync::watch;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let (tx, rx) = watch::channel(Progress::default());
/// let mut follower = Follower::new(rx);
/// tx.send_replace(Progress { len: 4, done: false });
/// assert_eq!(follower.next().await.unwrap(), Some(0..4));
/// follower.advance(4);
/// tx.send_replace(Progress { len: 4, done: true });
/// assert_eq!(follower.next().await.unwrap(), None);
/// # });
/// ```
#[derive(Debug)]
pub struct Follower {
    progress: watch::Receiver<Progress>,
    /// The next body offset to read.
    pos: usize,
    /// Exclusive end of the range to read, `None` = to the end of the body.
    end: Option<usize>,
    /// Start of a seek that has not yet been checked against the final body length.
    seek_start: Option<usize>,
}

impl Follower {
    /// A reader at the start of the body whose writer publishes `progress`.
    pub fn new(progress: watch::Receiver<Progress>) -> Self {
        Follower {
            progress,
            pos: 0,
            end: None,
            seek_start: None,
        }
    }

    /// The next offset to read.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// The bytes written and not yet read (`pos..limit`, never empty), waiting for the writer
    /// until there are some; `None` at the end of the body or of the sought range. Read any
    /// prefix of the range, then [`advance`](Self::advance) by its length.
    ///
    /// # Errors
    ///
    /// [`Error::WriteAbandoned`] when the writer was dropped before finishing (after the bytes
    /// it wrote were read); [`Error::SeekOutOfRange`] when a seek went past the final length.
    pub async fn next(&mut self) -> Result<Option<Range<usize>>> {
        loop {
            let progress = *self.progress.borrow_and_update();
            let limit = self.end.map_or(progress.len, |end| end.min(progress.len));
            if self.pos < limit {
                self.seek_start = None;
                return Ok(Some(self.pos..limit));
            }
            if progress.done {
                if let Some(start) = self.seek_start.take()
                    && start >= progress.len
                {
                    return Err(Error::SeekOutOfRange {
                        start,
                        len: progress.len,
                    });
                }
                return Ok(None);
            }
            if self.end.is_some_and(|end| self.pos >= end) {
                return Ok(None);
            }
            if self.progress.changed().await.is_err() && !self.progress.borrow().done {
                // The sender is gone: the writer was dropped without finishing.
                return Err(Error::WriteAbandoned);
            }
        }
    }

    /// Records that `n` bytes from [`pos`](Self::pos) were read.
    pub fn advance(&mut self, n: usize) {
        self.pos += n;
    }

    /// Restricts the following reads to `start..end` (see [`HandleHit::seek`]); reads wait
    /// until the bytes arrive.
    ///
    /// # Errors
    ///
    /// [`Error::SeekOutOfRange`] at once when the write is done and `start` is past its end
    /// (otherwise at the next read if it ends short of `start`), and
    /// [`Error::InvalidSeekRange`] when `end` is not after `start`.
    pub fn seek(&mut self, start: usize, end: Option<usize>) -> Result<()> {
        let progress = *self.progress.borrow();
        if progress.done && start >= progress.len {
            return Err(Error::SeekOutOfRange {
                start,
                len: progress.len,
            });
        }
        if let Some(end) = end
            && end <= start
        {
            return Err(Error::InvalidSeekRange { start, end });
        }
        self.pos = start;
        self.end = end;
        self.seek_start = Some(start);
        Ok(())
    }
}

impl PartialBody {
    /// A reader of the body from its start, which waits for bytes not written yet.
    pub fn reader(self: &Arc<Self>) -> HitHandler {
        Box::new(PartialHit {
            body: Arc::clone(self),
            follower: Follower::new(self.progress.clone()),
            chunk_hint: 0,
        })
    }

    /// The bytes written so far.
    pub fn len(&self) -> usize {
        self.progress.borrow().len
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The one writer of a [`PartialBody`]. Dropping it before [`end`](Self::end) abandons the
/// body: its readers fail once they have read what was written.
pub struct PartialWriter {
    body: Arc<PartialBody>,
    tx: watch::Sender<Progress>,
}

impl std::fmt::Debug for PartialWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartialWriter")
            .field("body", &self.body)
            .finish_non_exhaustive()
    }
}

impl Default for PartialWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl PartialWriter {
    /// A writer of a new, empty body.
    pub fn new() -> Self {
        let (tx, rx) = watch::channel(Progress::default());
        Self {
            body: Arc::new(PartialBody {
                chunks: RwLock::new(Chunks::default()),
                progress: rx,
            }),
            tx,
        }
    }

    /// The body written, to hand out readers of it.
    pub fn body(&self) -> &Arc<PartialBody> {
        &self.body
    }

    /// Appends `data` (nothing when empty) and wakes every reader waiting for more.
    pub fn push(&self, data: Bytes) {
        if data.is_empty() {
            return;
        }
        let len = data.len();
        let new_len = {
            let mut chunks = self.body.chunks.write();
            let new_len = chunks.ends.last().copied().unwrap_or(0) + len;
            chunks.data.push(data);
            chunks.ends.push(new_len);
            new_len
        };
        self.tx.send_modify(|p| p.len = new_len);
    }

    /// Marks the body complete: readers end cleanly once they have read it all.
    pub fn end(&self) {
        self.tx.send_modify(|p| p.done = true);
    }

    /// Calls `f` with the chunks written so far, in order.
    pub fn with_chunks<R>(&self, f: impl FnOnce(&[Bytes]) -> R) -> R {
        f(&self.body.chunks.read().data)
    }
}

/// A reader of a write in progress.
struct PartialHit {
    body: Arc<PartialBody>,
    follower: Follower,
    chunk_hint: usize,
}

impl PartialHit {
    /// Returns the bytes from `pos` up to `limit` that sit in one stored chunk.
    fn read_chunk(&mut self, limit: usize) -> Bytes {
        let chunks = self.body.chunks.read();
        let pos = self.follower.pos();
        let hinted = self.chunk_hint < chunks.ends.len()
            && pos < chunks.ends[self.chunk_hint]
            && (self.chunk_hint == 0 || chunks.ends[self.chunk_hint - 1] <= pos);
        let i = if hinted {
            self.chunk_hint
        } else {
            chunks.ends.partition_point(|&end| end <= pos)
        };
        let chunk_start = if i == 0 { 0 } else { chunks.ends[i - 1] };
        let chunk_end = chunks.ends[i].min(limit);
        let out = chunks.data[i].slice(pos - chunk_start..chunk_end - chunk_start);
        self.follower.advance(chunk_end - pos);
        self.chunk_hint = if chunk_end == chunks.ends[i] {
            i + 1
        } else {
            i
        };
        out
    }
}

#[async_trait]
impl HandleHit for PartialHit {
    async fn read_body(&mut self) -> Result<Option<Bytes>> {
        let Some(range) = self.follower.next().await? else {
            return Ok(None);
        };
        Ok(Some(self.read_chunk(range.end)))
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

#[cfg(test)]
mod tests {
    use super::*;

    async fn read_all(reader: &mut HitHandler) -> (Vec<u8>, Result<()>) {
        let mut out = Vec::new();
        loop {
            match reader.read_body().await {
                Ok(Some(chunk)) => out.extend_from_slice(&chunk),
                Ok(None) => return (out, Ok(())),
                Err(e) => return (out, Err(e)),
            }
        }
    }

    #[tokio::test]
    async fn readers_follow_the_writer_and_end_with_it() {
        let writer = PartialWriter::new();
        let mut early = writer.body().reader();
        writer.push(Bytes::from_static(b"ab"));
        writer.push(Bytes::new());
        let mut late = writer.body().reader();
        let reading = tokio::spawn(async move { read_all(&mut early).await });
        writer.push(Bytes::from_static(b"cd"));
        assert_eq!(writer.body().len(), 4);
        writer.end();
        let (body, end) = reading.await.unwrap();
        assert_eq!((body.as_slice(), end.is_ok()), (&b"abcd"[..], true));
        let (body, end) = read_all(&mut late).await;
        assert_eq!((body.as_slice(), end.is_ok()), (&b"abcd"[..], true));
        writer.with_chunks(|chunks| assert_eq!(chunks.len(), 2));
    }

    #[tokio::test]
    async fn a_dropped_writer_is_an_error_after_the_bytes_written() {
        let writer = PartialWriter::new();
        let mut reader = writer.body().reader();
        writer.push(Bytes::from_static(b"xyz"));
        drop(writer);
        let (body, end) = read_all(&mut reader).await;
        assert_eq!(body, b"xyz");
        assert!(matches!(end, Err(Error::WriteAbandoned)));
    }
}
