//! The accept loop and graceful shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use hyper::body::Incoming;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::error::BoxError;
use crate::server::conn::{self, ClientInfo};

/// How long connections get to finish after [`serve`] is told to shut down.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Where [`serve_with`] gets the TLS settings of each new connection (so a reload can swap
/// certificates for new connections while old ones keep theirs). Called once per accepted
/// connection; [`tls::server_config`](crate::tls::server_config) builds what it returns.
pub type TlsSource = Arc<dyn Fn() -> Arc<rustls::ServerConfig> + Send + Sync>;

/// Serves `service` on `listener` (HTTP/1.1 and cleartext HTTP/2 with prior knowledge on the
/// same port) until `shutdown` completes, then waits (at most [`SHUTDOWN_GRACE`]) for open
/// connections to finish their requests: [`serve_with`] with one service and no TLS.
///
/// While `service` answers an HTTP/1.1 request, an [`Upstream`](crate::Upstream) it calls
/// (from the request's own future, not a task it spawns) forwards the origin's interim
/// responses (`102`, `103 Early Hints`, …) to the client ahead of the final response.
/// HTTP/1.0 clients (RFC 9110 §15.2) and HTTP/2 clients get none: hyper's HTTP/2 server cannot
/// send them.
pub async fn serve<S, B>(listener: TcpListener, service: S, shutdown: impl Future<Output = ()>)
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
    serve_with(
        listener,
        move || service.clone(),
        None,
        SHUTDOWN_GRACE,
        shutdown,
    )
    .await;
}

/// Serves the services `make_service` returns on `listener`, over TLS when `tls` is given,
/// until `shutdown` completes; then stops accepting, abandons unfinished TLS handshakes and
/// waits at most `grace` for open connections to finish their requests.
///
/// For each accepted connection, `make_service` is called once and `tls` (when given) once,
/// so a reload that changes what they return takes effect for new connections while open ones
/// keep what they started with. Each connection runs in its own task: the TLS handshake
/// (at most [`TLS_HANDSHAKE_TIMEOUT`](crate::server::TLS_HANDSHAKE_TIMEOUT); a failed one is
/// logged at debug level and the connection closed), then HTTP/1.1 or HTTP/2 — on TLS as ALPN
/// chose (`h2` or `http/1.1`), on plain TCP HTTP/2 with prior knowledge or HTTP/1.1. Every
/// request carries the connection's [`ClientInfo`] in its extensions. Interim responses reach
/// HTTP/1.1 clients as with [`serve`], over TLS too.
pub async fn serve_with<M, S, B>(
    listener: TcpListener,
    make_service: M,
    tls: Option<TlsSource>,
    grace: Duration,
    shutdown: impl Future<Output = ()>,
) where
    M: Fn() -> S + Send + Sync + 'static,
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
    let builder = Arc::new(conn::builder());
    let graceful = GracefulShutdown::new();
    // Tells connections still in their TLS handshake that the server is shutting down.
    let (stopping, stop) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and similar: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let local = match stream.local_addr() {
                    Ok(local) => local,
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "accepted a connection already gone");
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let tls = tls.as_ref().map(|source| source());
                let info = ClientInfo { peer, local, tls: tls.is_some() };
                let accepted = conn::Accepted {
                    stream,
                    info,
                    tls,
                    builder: Arc::clone(&builder),
                    watcher: graceful.watcher(),
                    stop: stop.clone(),
                };
                tokio::spawn(accepted.run(make_service()));
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    let _ = stopping.send(true);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(grace) => {
            tracing::warn!("connections still open after the shutdown grace period");
        }
    }
}
