//! The crate's error type.

use std::path::PathBuf;

/// A boxed error, the error type of bodies and inner services once they pass through the layer.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Everything that can go wrong in larder-proxy.
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
    /// A configuration value is out of range or missing.
    #[error("invalid config: {0}")]
    ConfigInvalid(String),
    /// The upstream URI is not an absolute `http://` URI.
    #[error("invalid upstream uri {0:?}: expected http://host[:port]")]
    UpstreamUri(String),
    /// The upstream could not be reached or failed while answering.
    #[error("upstream request failed")]
    Upstream(#[source] BoxError),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}
