//! The admin endpoints: metrics and health, on their own plain-HTTP listener.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use http::{Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use tokio::net::TcpListener;

use crate::body::{self, ProxyBody};

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
    super::listen::serve(listener, service, shutdown).await;
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
