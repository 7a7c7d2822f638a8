//! The storage traits: [`Storage`] files entries, [`HandleHit`] reads one back and
//! [`HandleMiss`] writes one.

use std::any::Any;

use async_trait::async_trait;
use bytes::Bytes;
use tracing::Span;

use crate::{CacheKey, CacheMeta, CompactCacheKey, Error, Result};

/// Why an entry is being purged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PurgeType {
    /// The eviction manager chose the entry to make room.
    Eviction,
    /// The entry was invalidated (a purge request, or an unsafe method per RFC 9111 §4.4).
    Invalidation,
}

impl PurgeType {
    /// A short name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            PurgeType::Eviction => "eviction",
            PurgeType::Invalidation => "invalidation",
        }
    }
}

/// What [`HandleMiss::finish`] stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissFinishType {
    /// A new entry of this size (the weight to admit into an eviction manager).
    Created(usize),
    /// This many bytes were appended to an existing entry, with an optional hint of the
    /// entry's maximum size.
    Appended(usize, Option<usize>),
}

/// A cache storage backend.
///
/// Every method takes `&'static self`: storages live for the whole process (typically in a
/// `static` or a leaked box) so handlers can keep a reference to them.
///
/// The contract:
/// - `lookup` returns the meta and a body reader of an entry, or `None`. A storage that
///   supports streaming partial writes may return an entry that is still being written; its
///   reader yields the bytes as they arrive and fails if the writer gives up.
/// - An entry written through a [`MissHandler`] becomes visible as complete only once
///   [`HandleMiss::finish`] succeeds, and then replaces any older entry under the key.
/// - `purge` removes the entry and reports whether there was one.
/// - `update_meta` replaces the meta of a stored entry (after revalidation) and reports
///   whether there was one.
#[async_trait]
pub trait Storage: Send + Sync {
    /// Looks up the entry for `key`.
    ///
    /// # Errors
    ///
    /// A backend failure, or a stored meta that does not decode.
    async fn lookup(
        &'static self,
        key: &CacheKey,
        trace: &Span,
    ) -> Result<Option<(CacheMeta, HitHandler)>>;

    /// [`lookup`](Self::lookup) without waiting, for a storage that can answer at once (an
    /// in-memory one): the caller skips the boxed future of `lookup`. `None`, the default,
    /// means "call `lookup`". When it returns `Some`, it is the answer `lookup` would give.
    fn lookup_now(
        &'static self,
        key: &CacheKey,
        trace: &Span,
    ) -> Option<Result<Option<(CacheMeta, HitHandler)>>> {
        let _ = (key, trace);
        None
    }

    /// Looks up the entry being written by the miss handler whose
    /// [`streaming_write_tag`](HandleMiss::streaming_write_tag) is `streaming_write_tag`, so
    /// the writing request can read back its own write. The default calls
    /// [`lookup`](Self::lookup).
    ///
    /// # Errors
    ///
    /// As [`lookup`](Self::lookup).
    async fn lookup_streaming_write(
        &'static self,
        key: &CacheKey,
        streaming_write_tag: Option<&[u8]>,
        trace: &Span,
    ) -> Result<Option<(CacheMeta, HitHandler)>> {
        let _ = streaming_write_tag;
        self.lookup(key, trace).await
    }

    /// Starts writing an entry for `key` with `meta`; the body follows through the handler.
    ///
    /// # Errors
    ///
    /// A backend failure, or a meta that cannot be encoded.
    async fn get_miss_handler(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        trace: &Span,
    ) -> Result<MissHandler>;

    /// Removes the entry for `key`. Returns whether something was removed.
    ///
    /// # Errors
    ///
    /// A backend failure.
    async fn purge(
        &'static self,
        key: &CompactCacheKey,
        purge_type: PurgeType,
        trace: &Span,
    ) -> Result<bool>;

    /// Replaces the meta of the stored entry for `key`. Returns `Ok(false)` if there is no
    /// such entry.
    ///
    /// # Errors
    ///
    /// A backend failure, or a meta that cannot be encoded.
    async fn update_meta(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        trace: &Span,
    ) -> Result<bool>;

    /// Whether readers may read a body while it is being written. This decides when a cache
    /// lock can be released. Default `false`.
    fn support_streaming_partial_write(&self) -> bool {
        false
    }

    /// Appends the storage's own figures (hits, errors, bytes held, ...) to `out`, for a
    /// metrics page; the default reports nothing. A storage built on others adds theirs.
    /// Samples rather than text: see [`metrics`](crate::metrics) for why.
    fn metrics(&self, out: &mut Vec<crate::metrics::MetricSample>) {
        let _ = out;
    }

    /// The storage as `Any`, so callers can check its concrete type.
    fn as_any(&self) -> &(dyn Any + Send + Sync + 'static);
}

/// Reads the body of a cache hit.
#[async_trait]
pub trait HandleHit: Send + Sync {
    /// The next chunk of the body, or `None` at its end.
    ///
    /// # Errors
    ///
    /// A backend failure, or (for a body still being written)
    /// [`Error::WriteAbandoned`] when the writer gave up: the body is truncated.
    async fn read_body(&mut self) -> Result<Option<Bytes>>;

    /// [`read_body`](Self::read_body) without waiting, when the handler can answer at once
    /// (a body in memory): the caller skips the boxed future of `read_body`. `None`, the
    /// default, means "call `read_body`"; `Some` is what `read_body` would return.
    fn read_body_now(&mut self) -> Option<Result<Option<Bytes>>> {
        None
    }

    /// [`finish`](Self::finish) without waiting, when finishing needs no storage call (a body
    /// in memory): `Some` is the result, and the caller then drops the handler instead of
    /// calling `finish`. `None`, the default, means "call `finish`".
    fn finish_now(&mut self) -> Option<Result<()>> {
        None
    }

    /// Ends the hit, releasing whatever the handler holds.
    ///
    /// # Errors
    ///
    /// A backend failure.
    async fn finish(
        self: Box<Self>,
        storage: &'static (dyn Storage + Sync),
        key: &CacheKey,
        trace: &Span,
    ) -> Result<()>;

    /// Whether [`seek`](Self::seek) is supported. Default `false`.
    fn can_seek(&self) -> bool {
        false
    }

    /// Restricts the following reads to `start..end` (`end` exclusive, `None` = to the end of
    /// the body). May be called again to read another range with the same handler.
    ///
    /// # Errors
    ///
    /// [`Error::SeekUnsupported`] by default; [`Error::SeekOutOfRange`] when `start` is not
    /// within the body.
    fn seek(&mut self, start: usize, end: Option<usize>) -> Result<()> {
        let _ = (start, end);
        Err(Error::SeekUnsupported)
    }

    /// Whether [`seek_multipart`](Self::seek_multipart) is supported, for the parts of a
    /// `multipart/byteranges` response. Default: [`can_seek`](Self::can_seek).
    fn can_seek_multipart(&self) -> bool {
        self.can_seek()
    }

    /// Restricts the following reads to the next part `start..end` of a multi-range response
    /// (same bounds as [`seek`](Self::seek)). A storage that reads parts differently from a
    /// single range (say, one request per part) overrides it. Default: [`seek`](Self::seek).
    ///
    /// # Errors
    ///
    /// As [`seek`](Self::seek).
    fn seek_multipart(&mut self, start: usize, end: Option<usize>) -> Result<()> {
        self.seek(start, end)
    }

    /// Whether reading this hit counts as an access for the eviction manager. Default `true`.
    fn should_count_access(&self) -> bool {
        true
    }

    /// The weight to report to the eviction manager on access. Default 0.
    fn get_eviction_weight(&self) -> usize {
        0
    }

    /// The handler as `Any`.
    fn as_any(&self) -> &(dyn Any + Send + Sync);

    /// The handler as mutable `Any`.
    fn as_any_mut(&mut self) -> &mut (dyn Any + Send + Sync);
}

/// A boxed [`HandleHit`].
pub type HitHandler = Box<dyn HandleHit + Send + Sync>;

/// Where a [`HandleHit::seek`] to `start..end` stops in a complete body of `len` bytes: `end`
/// capped at `len`, or `len` when `None`. The bounds every storage's seek checks.
///
/// ```
/// use larder_storage::storage::seek_end;
///
/// assert_eq!(seek_end(2, Some(100), 10).ok(), Some(10));
/// assert_eq!(seek_end(2, None, 10).ok(), Some(10));
/// assert!(seek_end(10, None, 10).is_err());
/// assert!(seek_end(4, Some(4), 10).is_err());
/// ```
///
/// # Errors
///
/// [`Error::SeekOutOfRange`] when `start` is not within the body, and
/// [`Error::InvalidSeekRange`] when `end` is not after `start`.
pub fn seek_end(start: usize, end: Option<usize>, len: usize) -> Result<usize> {
    if start >= len {
        return Err(Error::SeekOutOfRange { start, len });
    }
    let end = end.map_or(len, |end| end.min(len));
    if end <= start {
        return Err(Error::InvalidSeekRange { start, end });
    }
    Ok(end)
}

/// Writes the body of a cache miss into storage.
///
/// Dropping the handler without calling [`finish`](Self::finish) abandons the write: nothing
/// is stored, and readers streaming it get [`Error::WriteAbandoned`].
#[async_trait]
pub trait HandleMiss: Send + Sync {
    /// Writes the next chunk of the body; `eof` marks the last one. A backend that cannot
    /// take data as fast as it comes applies back-pressure by completing the future only when
    /// it has room (an in-memory store completes at once).
    ///
    /// # Errors
    ///
    /// A backend failure, or [`Error::WriteAfterEnd`] for data after `eof`.
    async fn write_body(&mut self, data: Bytes, eof: bool) -> Result<()>;

    /// Completes the write, making the entry visible as complete.
    ///
    /// # Errors
    ///
    /// A backend failure, or [`Error::WritePurged`] if the entry was purged meanwhile (then
    /// nothing was stored).
    async fn finish(self: Box<Self>) -> Result<MissFinishType>;

    /// A tag identifying this write, for
    /// [`Storage::lookup_streaming_write`]. Default `None`.
    fn streaming_write_tag(&self) -> Option<&[u8]> {
        None
    }
}

/// A boxed [`HandleMiss`].
pub type MissHandler = Box<dyn HandleMiss + Send + Sync>;

/// Helpers for [`HandleMiss::streaming_write_tag`] values: write ids as big-endian bytes.
pub mod streaming_write {
    /// A `u64` write id as 8 big-endian bytes.
    ///
    /// ```
    /// use larder_storage::storage::streaming_write::U64WriteId;
    ///
    /// let id = U64WriteId::from(7u64);
    /// assert_eq!(id.as_bytes(), &[0, 0, 0, 0, 0, 0, 0, 7]);
    /// assert_eq!(U64WriteId::try_from(id.as_bytes()).map(u64::from).ok(), Some(7));
    /// assert!(U64WriteId::try_from(&b"short"[..]).is_err());
    /// ```
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct U64WriteId([u8; 8]);

    impl U64WriteId {
        /// The id's bytes.
        pub fn as_bytes(&self) -> &[u8] {
            &self.0
        }
    }

    impl From<u64> for U64WriteId {
        fn from(id: u64) -> Self {
            U64WriteId(id.to_be_bytes())
        }
    }

    impl From<U64WriteId> for u64 {
        fn from(id: U64WriteId) -> Self {
            u64::from_be_bytes(id.0)
        }
    }

    impl TryFrom<&[u8]> for U64WriteId {
        type Error = std::array::TryFromSliceError;
        fn try_from(bytes: &[u8]) -> Result<Self, Self::Error> {
            Ok(U64WriteId(bytes.try_into()?))
        }
    }

    /// A `u32` write id as 4 big-endian bytes.
    ///
    /// ```
    /// use larder_storage::storage::streaming_write::U32WriteId;
    ///
    /// let id = U32WriteId::from(258u32);
    /// assert_eq!(id.as_bytes(), &[0, 0, 1, 2]);
    /// assert_eq!(U32WriteId::try_from(id.as_bytes()).map(u32::from).ok(), Some(258));
    /// ```
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct U32WriteId([u8; 4]);

    impl U32WriteId {
        /// The id's bytes.
        pub fn as_bytes(&self) -> &[u8] {
            &self.0
        }
    }

    impl From<u32> for U32WriteId {
        fn from(id: u32) -> Self {
            U32WriteId(id.to_be_bytes())
        }
    }

    impl From<U32WriteId> for u32 {
        fn from(id: U32WriteId) -> Self {
            u32::from_be_bytes(id.0)
        }
    }

    impl TryFrom<&[u8]> for U32WriteId {
        type Error = std::array::TryFromSliceError;
        fn try_from(bytes: &[u8]) -> Result<Self, Self::Error> {
            Ok(U32WriteId(bytes.try_into()?))
        }
    }
}
