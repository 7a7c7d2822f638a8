//! Serving a tower service with hyper: HTTP/1.1 and cleartext HTTP/2 on one port, request header
//! limits, graceful shutdown, and interim (1xx) responses from the origin forwarded to HTTP/1.1
//! clients.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

use crate::body::{self, ProxyBody};
use crate::error::BoxError;
use crate::interim::InterimIo;

/// The largest request head accepted on HTTP/1.1; a larger one gets `431` from hyper.
pub const MAX_REQUEST_HEAD: usize = 64 * 1024;
/// The most header fields accepted on one HTTP/1.1 request.
pub const MAX_HEADERS: usize = 128;
/// How long connections get to finish after shutdown starts.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

fn builder() -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .max_buf_size(MAX_REQUEST_HEAD)
        .max_headers(MAX_HEADERS)
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30));
    b.http2()
        .max_header_list_size(u32::try_from(MAX_REQUEST_HEAD).unwrap_or(u32::MAX))
        .enable_connect_protocol()
        .timer(TokioTimer::new());
    b
}

/// Serves `service` on `listener` until `shutdown` completes, then waits (at most
/// [`SHUTDOWN_GRACE`]) for open connections to finish their requests.
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
    let builder = builder();
    let graceful = GracefulShutdown::new();
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
                let _ = stream.set_nodelay(true);
                let (io, service) =
                    InterimIo::new(stream, TowerToHyperService::new(service.clone()));
                let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service).into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(SHUTDOWN_GRACE) => {
            tracing::warn!("connections still open after the shutdown grace period");
        }
    }
}

/// What the server knows of the connection a request came on, put in every request's
/// extensions by [`serve_with`] (read by [`Upstream`](crate::Upstream) for the forwarding fields).
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

/// Where [`serve_with`] gets the TLS settings of each new connection (so a reload can swap
/// certificates for new connections while old ones keep theirs).
pub type TlsSource = Arc<dyn Fn() -> Arc<rustls::ServerConfig> + Send + Sync>;

/// Serves the services `make_service` returns (called once per accepted connection, so a
/// reload takes effect for new connections while open ones keep theirs) on `listener`, over
/// TLS when `tls` is given, until `shutdown` completes; then waits at most `grace` for open
/// connections to finish their requests.
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
    // Contract stub: TLS and per-connection services land with the listener work.
    let _ = (tls, grace);
    serve(listener, make_service(), shutdown).await;
}

/// Serves the admin endpoints: `GET /metrics` (the text `metrics` returns, Prometheus format)
/// and `GET /healthz` (`ok`), until `shutdown` completes.
pub async fn serve_admin(
    listener: TcpListener,
    metrics: Arc<dyn Fn() -> String + Send + Sync>,
    shutdown: impl Future<Output = ()>,
) {
    let service = tower::service_fn(move |req: Request<Incoming>| {
        let metrics = Arc::clone(&metrics);
        async move { Ok::<_, Infallible>(admin_response(&req, &*metrics)) }
    });
    serve(listener, service, shutdown).await;
}

fn admin_response(
    req: &Request<Incoming>,
    metrics: &(dyn Fn() -> String + Send + Sync),
) -> Response<ProxyBody> {
    let text = |status: StatusCode, content_type: &'static str, body: String| {
        let mut resp = Response::new(body::full(body));
        *resp.status_mut() = status;
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static(content_type),
        );
        resp
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "method not allowed\n".into(),
        );
    }
    match req.uri().path() {
        "/metrics" => text(StatusCode::OK, "text/plain; version=0.0.4", metrics()),
        "/healthz" => text(StatusCode::OK, "text/plain", "ok\n".into()),
        _ => text(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
    }
}
