//! The crate's error type.

/// A boxed error, the error type of bodies and inner services once they pass through the layer.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Everything that can go wrong in larder-proxy.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is out of range or missing.
    #[error("invalid config: {0}")]
    ConfigInvalid(String),
    /// The upstream URI is not an absolute `http://` or `https://` URI.
    #[error("invalid upstream uri {0:?}: expected http://host[:port] or https://host[:port]")]
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
