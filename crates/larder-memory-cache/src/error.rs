//! The crate's [`Error`].

use std::sync::Arc;

/// A boxed error returned by a [`Lookup`](crate::Lookup) or [`MultiLookup`](crate::MultiLookup).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why an [`RTCache`](crate::RTCache) read could not produce a value.
///
/// The error is cheap to clone: one failed lookup hands the same error to every caller that
/// waited on it.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The lookup (the backend behind the cache) returned an error. Errors are never cached: the
    /// next read runs the lookup again.
    #[error("rtcache lookup error")]
    Lookup(#[source] Arc<dyn std::error::Error + Send + Sync>),
    /// The lookup panicked in the caller that held the key's lock. Callers waiting on that lock
    /// get this error instead of being left waiting; the next read runs the lookup again.
    #[error("rtcache lookup panicked in the caller holding the lock")]
    LookupPanicked,
    /// A [`MultiLookup`](crate::MultiLookup) returned a different number of values than it was
    /// given keys (a bug in the lookup).
    #[error("rtcache multi lookup returned {got} values for {expected} keys")]
    MultiLookupCount {
        /// How many keys were looked up.
        expected: usize,
        /// How many values came back.
        got: usize,
    },
}

impl Error {
    pub(crate) fn lookup(e: BoxError) -> Self {
        Self::Lookup(Arc::from(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn lookup_error_keeps_its_cause() {
        let e = Error::lookup("backend down".into());
        assert_eq!(e.to_string(), "rtcache lookup error");
        assert_eq!(
            e.source().map(ToString::to_string).as_deref(),
            Some("backend down")
        );
        let shared = e.clone();
        assert_eq!(
            shared.source().map(ToString::to_string).as_deref(),
            Some("backend down")
        );
    }
}
