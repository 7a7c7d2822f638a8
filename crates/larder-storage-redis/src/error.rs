//! The crate's error type.

use std::time::Duration;

/// A `Result` whose error is this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong talking to Redis or reading an entry back from it.
///
/// The [`Storage`](larder_storage::Storage) methods return these wrapped in a
/// [`larder_storage::Error`]: [`Unavailable`](larder_storage::Error::Unavailable) when Redis
/// could not be reached, was too slow or is being skipped ([`Error::is_unavailable`]), so
/// callers ask [`larder_storage::Error::is_unavailable`] without knowing this type;
/// [`Backend`](larder_storage::Error::Backend) otherwise. The wrapped error is its
/// [`source`](std::error::Error::source).
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

impl From<redis::RedisError> for Error {
    fn from(e: redis::RedisError) -> Self {
        Error::Redis(e)
    }
}

/// An outage becomes [`larder_storage::Error::Unavailable`], any other error
/// [`larder_storage::Error::Backend`].
///
/// ```
/// use larder_storage_redis::Error;
///
/// let down = larder_storage::Error::from(Error::Unavailable);
/// assert!(down.is_unavailable());
/// let corrupt = larder_storage::Error::from(Error::CorruptEntry { reason: "bad" });
/// assert!(!corrupt.is_unavailable());
/// ```
impl From<Error> for larder_storage::Error {
    fn from(e: Error) -> Self {
        if e.is_unavailable() {
            larder_storage::Error::Unavailable(Box::new(e))
        } else {
            larder_storage::Error::Backend(Box::new(e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storage_error(e: Error) -> larder_storage::Error {
        e.into()
    }

    #[test]
    fn outages_become_the_unavailable_kind() {
        let refused =
            redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        let reset =
            redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        for e in [
            Error::Timeout(Duration::from_millis(250)),
            Error::Unavailable,
            Error::Redis(refused),
            Error::Redis(reset),
        ] {
            let text = e.to_string();
            let wrapped = storage_error(e);
            assert!(wrapped.is_unavailable(), "{text}");
            assert!(
                matches!(wrapped, larder_storage::Error::Unavailable(_)),
                "{text}"
            );
            // The cause stays reachable for logs.
            let source = std::error::Error::source(&wrapped).map(ToString::to_string);
            assert_eq!(source.as_deref(), Some(text.as_str()));
        }
    }

    #[test]
    fn answers_about_the_data_are_backend_errors() {
        let wrong_type = redis::RedisError::from((
            redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError),
            "WRONGTYPE",
        ));
        for e in [
            Error::Redis(wrong_type),
            Error::CorruptEntry { reason: "bad" },
            Error::MissingChunk { index: 3 },
            Error::PartsExpired,
            Error::BodyTooLarge { max: 10 },
        ] {
            let text = e.to_string();
            let wrapped = storage_error(e);
            assert!(!wrapped.is_unavailable(), "{text}");
            assert!(
                matches!(wrapped, larder_storage::Error::Backend(_)),
                "{text}"
            );
        }
    }
}
