//! One accepted connection: its TLS handshake, the protocols it is served with, and the
//! [`ClientInfo`] its requests carry.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::Watcher;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::error::BoxError;
use crate::interim::InterimIo;

/// The largest request head accepted on HTTP/1.1; a larger one gets `431` from hyper.
pub const MAX_REQUEST_HEAD: usize = 64 * 1024;
/// The most header fields accepted on one HTTP/1.1 request.
pub const MAX_HEADERS: usize = 128;
/// How long a client gets to finish its TLS handshake before the connection is closed.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an HTTP/1.1 client gets to send a request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// What the server knows of the connection a request came on, put in every request's
/// extensions by [`serve_with`](crate::server::serve_with) (read by
/// [`Upstream`](crate::Upstream) for the forwarding fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientInfo {
    /// The client's address.
    pub peer: std::net::SocketAddr,
    /// The local address the client connected to.
    pub local: std::net::SocketAddr,
    /// Whether the connection is TLS.
    pub tls: bool,
}

/// The protocols every connection is served with: HTTP/1.1 and HTTP/2 (by prior knowledge on
/// plain TCP, by ALPN on TLS, both detected from the client's first bytes), with the request
/// head limits and timeouts. The one place to change how connections speak HTTP.
pub(super) fn builder() -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .max_buf_size(MAX_REQUEST_HEAD)
        .max_headers(MAX_HEADERS)
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    b.http2()
        // RFC 8441 extended CONNECT: WebSocket over HTTP/2 (`upgrade.rs`).
        .enable_connect_protocol()
        .max_header_list_size(u32::try_from(MAX_REQUEST_HEAD).unwrap_or(u32::MAX))
        .timer(TokioTimer::new());
    b
}

/// An accepted connection with everything its task needs.
pub(super) struct Accepted {
    pub(super) stream: TcpStream,
    pub(super) info: ClientInfo,
    /// The TLS settings to handshake with; `None` for plain TCP.
    pub(super) tls: Option<Arc<rustls::ServerConfig>>,
    pub(super) builder: Arc<auto::Builder<TokioExecutor>>,
    /// Keeps graceful shutdown waiting for this connection.
    pub(super) watcher: Watcher,
    /// Becomes `true` when the server shuts down.
    pub(super) stop: watch::Receiver<bool>,
}

impl Accepted {
    /// Does the TLS handshake, if any, then serves the connection with `service` until it
    /// closes; run in the connection's own task.
    pub(super) async fn run<S, B>(self, service: S)
    where
        S: tower_service::Service<Request<Incoming>, Response = Response<B>>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let Self {
            stream,
            info,
            tls,
            builder,
            watcher,
            mut stop,
        } = self;
        let Some(config) = tls else {
            serve_connection(stream, info, service, &builder, watcher).await;
            return;
        };
        let peer = info.peer;
        let handshake = tokio::time::timeout(
            TLS_HANDSHAKE_TIMEOUT,
            tokio_rustls::TlsAcceptor::from(config).accept(stream),
        );
        let stream = tokio::select! {
            done = handshake => match done {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            },
            // Shutting down (or the server is gone): no new connection starts now.
            _ = stop.wait_for(|stopping| *stopping) => return,
        };
        serve_connection(stream, info, service, &builder, watcher).await;
    }
}

/// Serves one connection (plain or after its TLS handshake) until it closes or graceful
/// shutdown ends it: the one place a connection is served.
async fn serve_connection<I, S, B>(
    io: I,
    info: ClientInfo,
    service: S,
    builder: &auto::Builder<TokioExecutor>,
    watcher: Watcher,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: tower_service::Service<Request<Incoming>, Response = Response<B>>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let service = TowerToHyperService::new(WithClientInfo {
        inner: service,
        info,
    });
    let (io, service) = InterimIo::new(io, service);
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!(peer = %info.peer, error = %e, "connection ended with an error");
    }
}

/// Puts the connection's [`ClientInfo`] in each request's extensions.
#[derive(Debug, Clone)]
struct WithClientInfo<S> {
    inner: S,
    info: ClientInfo,
}

impl<S, T> tower_service::Service<Request<T>> for WithClientInfo<S>
where
    S: tower_service::Service<Request<T>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<T>) -> Self::Future {
        req.extensions_mut().insert(self.info);
        self.inner.call(req)
    }
}
