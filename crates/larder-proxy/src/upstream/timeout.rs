//! The error of an upstream that did not answer in time.

use http::StatusCode;

/// The upstream did not answer in time: the error [`Upstream`](super::Upstream) fails a request with, found in
/// the cache layer's upstream errors with [`Timeout::find`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Timeout {
    /// The connection (TCP connect and TLS handshake) took longer than
    /// [`UpstreamOptions::connect_timeout`](super::UpstreamOptions::connect_timeout).
    #[error("upstream connect timed out")]
    Connect,
    /// The response head took longer than [`UpstreamOptions::response_timeout`](super::UpstreamOptions::response_timeout).
    #[error("upstream response head timed out")]
    Response,
}

impl Timeout {
    /// The timeout in `error` or any of its sources.
    #[must_use]
    pub fn find(error: &(dyn std::error::Error + 'static)) -> Option<Self> {
        let mut current = Some(error);
        while let Some(e) = current {
            if let Some(timeout) = e.downcast_ref::<Self>() {
                return Some(*timeout);
            }
            current = e.source();
        }
        None
    }

    /// The status the client gets: `502 Bad Gateway` when the origin could not be reached,
    /// `504 Gateway Timeout` when it did not answer (RFC 9110 §15.6.3, §15.6.5).
    #[must_use]
    pub fn status(self) -> StatusCode {
        match self {
            Self::Connect => StatusCode::BAD_GATEWAY,
            Self::Response => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The name used in `Cache-Status` details and logs.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "UpstreamConnectTimeout",
            Self::Response => "UpstreamResponseTimeout",
        }
    }
}
