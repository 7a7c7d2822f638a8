//! The connector of [`Upstream`](super::Upstream)'s pool: TCP to the one origin, then TLS for
//! an `https://` origin, the whole within the connect timeout.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_rustls::MaybeHttpsStream;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::timeout::Timeout;
use crate::error::BoxError;

/// A connection to the origin: plain TCP, or TLS over TCP (its ALPN tells the pool whether it
/// speaks HTTP/2).
pub(super) type OriginStream = MaybeHttpsStream<TokioIo<TcpStream>>;

/// Connects to the origin, whatever URI the pool asks for: the pool keys connections by the
/// request's authority (which HTTP/2 sends as `:authority`), but every connection goes to the
/// configured origin and is verified against its name.
#[derive(Clone)]
pub(super) struct OriginConnector {
    /// TCP, with `TCP_NODELAY` and a per-address connect timeout.
    pub(super) tcp: HttpConnector,
    /// The origin's `scheme://authority`.
    pub(super) origin: Uri,
    /// For an `https://` origin: the TLS client and the server name it sends and verifies.
    pub(super) tls: Option<(TlsConnector, ServerName<'static>)>,
    /// The longest the TCP connect and TLS handshake may take together.
    pub(super) timeout: Duration,
}

impl fmt::Debug for OriginConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OriginConnector")
            .field("origin", &self.origin)
            .field("server_name", &self.tls.as_ref().map(|(_, name)| name))
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl tower_service::Service<Uri> for OriginConnector {
    type Response = OriginStream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<OriginStream, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.tcp.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, _pool_key: Uri) -> Self::Future {
        let tcp = self.tcp.call(self.origin.clone());
        let tls = self.tls.clone();
        let limit = self.timeout;
        Box::pin(async move {
            let connect = async move {
                let tcp = tcp.await.map_err(|e| -> BoxError {
                    // The TCP connector's own per-address timeout is the same timeout.
                    if timed_out(&e) {
                        Box::new(Timeout::Connect)
                    } else {
                        e.into()
                    }
                })?;
                let Some((connector, name)) = tls else {
                    return Ok::<_, BoxError>(MaybeHttpsStream::Http(tcp));
                };
                let tls = connector.connect(name, TokioIo::new(tcp)).await?;
                Ok(MaybeHttpsStream::Https(TokioIo::new(tls)))
            };
            match tokio::time::timeout(limit, connect).await {
                Ok(result) => result,
                Err(_) => Err(Box::new(Timeout::Connect) as BoxError),
            }
        })
    }
}

/// Whether `e` (or an error it wraps) is an I/O timeout.
fn timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(e) = next {
        if e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        next = e.source();
    }
    false
}
