//! The crate's error type.

use std::path::PathBuf;

/// A `Result` whose error is this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong in a storage, a hit or miss handler, the meta encoding or an eviction manager.
///
/// Bytes read back from storage never cause a panic: a meta blob that is truncated, garbage or
/// from an unknown format version becomes [`Error::InvalidMeta`] or
/// [`Error::UnsupportedMetaVersion`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A serialized [`CacheMeta`](crate::CacheMeta) could not be decoded (truncated, corrupt
    /// or not a meta blob at all). Caused by the storage contents.
    #[error("invalid cache meta: {reason}")]
    InvalidMeta {
        /// What the decoder found wrong.
        reason: &'static str,
    },
    /// A serialized meta carries a format version this build cannot read.
    #[error("unsupported cache meta version {0}")]
    UnsupportedMetaVersion(u8),
    /// A meta could not be encoded (a time that does not fit the format).
    #[error("cannot encode cache meta: {reason}")]
    EncodeMeta {
        /// What could not be represented.
        reason: &'static str,
    },
    /// The writer of a body that was being streamed went away before finishing it; the bytes
    /// read so far are a truncated body and must not be served as complete.
    #[error("cache write was abandoned before it finished")]
    WriteAbandoned,
    /// The entry was purged while it was being written, so the write was not stored.
    #[error("cache write was purged before it finished")]
    WritePurged,
    /// Body data was written after the end of the body was announced (a caller bug).
    #[error("body written after end of body")]
    WriteAfterEnd,
    /// A seek asked for a range that starts at or beyond the end of the body.
    #[error("seek out of range: start {start}, body length {len}")]
    SeekOutOfRange {
        /// Requested start offset.
        start: usize,
        /// Length of the body.
        len: usize,
    },
    /// A seek asked for an empty or reversed range.
    #[error("invalid seek range: start {start}, end {end}")]
    InvalidSeekRange {
        /// Requested start offset.
        start: usize,
        /// Requested (exclusive) end offset.
        end: usize,
    },
    /// This hit handler cannot seek.
    #[error("hit handler does not support seeking")]
    SeekUnsupported,
    /// Reading or writing saved eviction state failed.
    #[error("eviction state i/o failed at {}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A saved eviction-state file could not be decoded.
    #[error("corrupt eviction state in {}: {reason}", path.display())]
    CorruptEvictionState {
        /// The file that failed to decode.
        path: PathBuf,
        /// What the decoder found wrong.
        reason: &'static str,
    },
    /// An error from a storage backend (for implementations outside this crate, such as a
    /// networked store): an answer about the data or the request, not an outage.
    #[error("storage backend failed")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The storage backend could not be reached: it is down, did not answer in time, or is
    /// being skipped after repeated failures. The source is the backend's own error. A caller
    /// can treat the call as a miss and log the outage quietly (a backend reports an outage
    /// once itself); ask with [`Error::is_unavailable`].
    #[error("storage backend unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// Whether the backend could not be reached ([`Error::Unavailable`]), as opposed to an
    /// error about the data or the call. Callers ask this instead of inspecting the source.
    ///
    /// ```
    /// use larder_storage::Error;
    ///
    /// let timeout = std::io::Error::from(std::io::ErrorKind::TimedOut);
    /// assert!(Error::Unavailable(Box::new(timeout)).is_unavailable());
    /// assert!(!Error::Backend("bad entry".into()).is_unavailable());
    /// assert!(!Error::WriteAbandoned.is_unavailable());
    /// ```
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Unavailable(_))
    }

    pub(crate) fn invalid_meta(reason: &'static str) -> Self {
        Error::InvalidMeta { reason }
    }
}
