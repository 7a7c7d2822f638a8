//! The crate's error type.

use std::path::PathBuf;

/// What can go wrong reading the configuration and wiring the proxy.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration file could not be read.
    #[error("cannot read config file {path}")]
    ConfigRead {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The configuration file is not valid TOML or has a wrong field (the source names the line).
    #[error("invalid config file {path}")]
    ConfigParse {
        /// The file.
        path: PathBuf,
        /// The parse error, with line and column.
        #[source]
        source: Box<toml::de::Error>,
    },
    /// A configuration value is out of range or missing, or names a storage that cannot be
    /// set up.
    #[error("invalid config: {0}")]
    ConfigInvalid(String),
    /// An error of the proxy library (an unusable upstream URI, a listener that cannot be
    /// bound, ...).
    #[error(transparent)]
    Proxy(#[from] larder_proxy::Error),
}
