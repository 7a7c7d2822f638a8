//! The crate's error type.

use std::time::Duration;

/// A `Result` whose error is this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong talking to Redis or reading an entry back from it.
///
/// The [`Storage`](larder_storage::Storage) methods return these wrapped in
/// [`larder_storage::Error::Backend`]; find them again with
/// [`std::error::Error::source`] or `downcast_ref`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The Redis URL or another setting of [`RedisConfig`](crate::RedisConfig) is unusable.
    /// Caused by the configuration.
    #[error("invalid redis storage config: {reason}")]
    InvalidConfig {
        /// What is wrong with it.
        reason: String,
    },
    /// [`RedisStorage::new`](crate::RedisStorage::new) was called outside a Tokio runtime.
    /// Caused by the caller.
    #[error("redis storage must be created within a tokio runtime")]
    NoRuntime,
    /// Redis answered with an error or the connection failed. Caused by the server or the
    /// network.
    #[error("redis command failed")]
    Redis(#[source] redis::RedisError),
    /// Redis did not answer within the configured timeout. Caused by the server or the
    /// network.
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    /// Redis is skipped for a while after repeated failures (the circuit breaker of
    /// [`RedisConfig::breaker_threshold`](crate::RedisConfig::breaker_threshold) is open); the
    /// call was not sent.
    #[error("redis is marked down after repeated failures")]
    Unavailable,
    /// A body chunk of an entry being read is gone (the entry was purged, replaced a while
    /// ago, or evicted by Redis): the body read so far is truncated.
    #[error("chunk {index} of a cached body is missing")]
    MissingChunk {
        /// Which chunk.
        index: usize,
    },
    /// An entry in Redis does not have the layout this crate writes. Caused by the storage
    /// contents (another program writing under the prefix, or a corrupted entry).
    #[error("corrupt redis cache entry: {reason}")]
    CorruptEntry {
        /// What does not fit.
        reason: &'static str,
    },
    /// A body too large to store: more than 100 000 chunks (6.25 GiB with 64 KiB chunks). Raise
    /// [`RedisConfig::chunk_size`](crate::RedisConfig::chunk_size) to store larger bodies.
    #[error("body larger than {max} bytes cannot be stored")]
    BodyTooLarge {
        /// The largest body that can be stored with the configured chunk size.
        max: usize,
    },
    /// The write took longer than [`RedisConfig::part_ttl`](crate::RedisConfig::part_ttl)
    /// (its body chunks expire after that, and an invalidation meanwhile may be forgotten),
    /// or its chunks vanished, so nothing was stored.
    #[error("cache write parts expired before the write finished")]
    PartsExpired,
}

impl Error {
    /// Whether the error means Redis could not be reached, was too slow or is being skipped
    /// (rather than an answer about bad data).
    pub fn is_unavailable(&self) -> bool {
        match self {
            Error::Timeout(_) | Error::Unavailable => true,
            Error::Redis(e) => {
                e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal()
            }
            _ => false,
        }
    }
}

/// Whether `error` or one of its [sources](std::error::Error::source) is an [`Error`] saying
/// that Redis could not be reached, was too slow or is being skipped
/// ([`Error::is_unavailable`]).
///
/// Errors reach callers wrapped (in [`larder_storage::Error::Backend`], and that again in the
/// error of whatever called the storage); this finds the cause anywhere in the chain, so a
/// caller can log an outage, which the storage already reports once, more quietly than an
/// error about one request.
///
/// ```
/// use larder_storage_redis::{Error, is_unavailable};
///
/// let wrapped = larder_storage::Error::from(Error::Unavailable);
/// assert!(is_unavailable(&wrapped));
/// let corrupt = larder_storage::Error::from(Error::CorruptEntry { reason: "bad" });
/// assert!(!is_unavailable(&corrupt));
/// ```
pub fn is_unavailable(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(ours) = e.downcast_ref::<Error>() {
            return ours.is_unavailable();
        }
        next = e.source();
    }
    false
}

impl From<redis::RedisError> for Error {
    fn from(e: redis::RedisError) -> Self {
        Error::Redis(e)
    }
}

impl From<Error> for larder_storage::Error {
    fn from(e: Error) -> Self {
        larder_storage::Error::Backend(Box::new(e))
    }
}
