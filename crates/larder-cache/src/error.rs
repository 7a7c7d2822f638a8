//! The crate's error type.

/// What went wrong while driving an [`HttpCache`](crate::HttpCache).
///
/// Calling a method in the wrong phase is not an error but a caller bug, and panics.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The storage backend failed (internal: the cache's own storage).
    #[error("cache storage failed")]
    Storage(#[from] larder_storage::Error),
    /// A storage that claims to support streaming partial writes did not return a reader for
    /// the write just started (internal: a storage bug).
    #[error("storage returned no reader for its own streaming write")]
    MissingStreamingWrite,
    /// The response body grew past the configured maximum size (upstream: the origin's
    /// response is too large to cache).
    #[error("response too large to cache")]
    ResponseTooLarge,
}

impl Error {
    /// Whether this is a storage error saying the backend could not be reached
    /// ([`larder_storage::Error::is_unavailable`]): the call is a miss, and the outage is the
    /// backend's to report.
    ///
    /// ```
    /// use larder_cache::Error;
    ///
    /// let down = larder_storage::Error::Unavailable("connection refused".into());
    /// assert!(Error::from(down).is_unavailable());
    /// let corrupt = larder_storage::Error::Backend("corrupt entry".into());
    /// assert!(!Error::from(corrupt).is_unavailable());
    /// assert!(!Error::ResponseTooLarge.is_unavailable());
    /// ```
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Storage(e) if e.is_unavailable())
    }
}

/// A `Result` whose error is this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
