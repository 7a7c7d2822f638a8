//! TLS for the listener: certificates loaded from PEM files, chosen by SNI.

use std::path::PathBuf;
use std::sync::Arc;

use crate::error::Error;

/// One certificate chain and its private key, PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPair {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// A server configuration serving `pairs`, the certificate for each handshake chosen by SNI
/// (the first pair when the client sends no name or a name no certificate covers), ALPN `h2`
/// and `http/1.1`, TLS 1.2 and 1.3 only.
///
/// # Errors
///
/// [`Error::ConfigInvalid`] naming the file that cannot be read or parsed.
pub fn server_config(pairs: &[CertPair]) -> Result<Arc<rustls::ServerConfig>, Error> {
    // Contract stub: the listener work implements it.
    Err(Error::ConfigInvalid(format!(
        "TLS listeners are not implemented yet ({} certificates)",
        pairs.len()
    )))
}
