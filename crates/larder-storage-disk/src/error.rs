//! The crate's own errors, carried inside [`larder_storage::Error`].

use std::path::PathBuf;

/// What went wrong opening or using a cache directory. Reaches callers inside
/// [`larder_storage::Error::Backend`] (opening) or [`larder_storage::Error::Unavailable`]
/// (reads and writes that failed on the device).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiskError {
    /// The directory holds files but no cache marker: it is refused rather than emptied.
    #[error("{} is not empty and not a larder disk cache; refusing to use it", path.display())]
    NotACache {
        /// The directory.
        path: PathBuf,
    },
    /// The directory is a cache of another format version.
    #[error("{} is a larder disk cache of format {found}, this build reads format {expected}", path.display())]
    OtherVersion {
        /// The directory.
        path: PathBuf,
        /// The version its marker names.
        found: String,
        /// The version this build reads.
        expected: u32,
    },
    /// A file operation failed.
    #[error("disk cache i/o failed at {}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An object is larger than the whole cache.
    #[error("object of at least {size} bytes exceeds the disk cache size {max}")]
    TooLarge {
        /// The bytes written so far.
        size: u64,
        /// The cache's size bound.
        max: u64,
    },
    /// A stored body does not match its checksum: the entry was removed.
    #[error("stored body of {} failed its checksum", path.display())]
    Corrupt {
        /// The body file.
        path: PathBuf,
    },
}

impl DiskError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> DiskError {
        let path = path.into();
        move |source| DiskError::Io { path, source }
    }
}

impl From<DiskError> for larder_storage::Error {
    /// I/O failures are outages of the device ([`larder_storage::Error::Unavailable`]); the
    /// rest are [`larder_storage::Error::Backend`].
    fn from(e: DiskError) -> Self {
        match e {
            DiskError::Io { .. } => larder_storage::Error::Unavailable(Box::new(e)),
            _ => larder_storage::Error::Backend(Box::new(e)),
        }
    }
}
