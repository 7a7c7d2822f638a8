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

/// A `Result` whose error is this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
