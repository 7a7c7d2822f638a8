//! `CacheLayer` and `CacheService`: the tower integration.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body::Body;
use tower::ServiceExt;

use crate::body::{self, ProxyBody};
use crate::error::BoxError;
use crate::headers;
use crate::hooks::{CacheHooks, DefaultHooks};
use crate::metrics::Metrics;
use crate::purge::PurgeAuth;

/// Settings of a [`CacheLayer`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct CacheConfig {
    /// The cache name in `Cache-Status` (RFC 9211 §2); `larder` by default.
    pub cache_status_name: String,
    /// The pseudonym in `Via` (RFC 9110 §7.6.3); `larder` by default.
    pub via_pseudonym: String,
    /// The bearer token PURGE needs; PURGE is refused with 405 when `None`.
    pub purge_token: Option<String>,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            cache_status_name: "larder".to_owned(),
            via_pseudonym: "larder".to_owned(),
            purge_token: None,
        }
    }
}

struct Shared<H> {
    config: CacheConfig,
    hooks: H,
    metrics: Arc<Metrics>,
    cache_status_name: HeaderValue,
}

/// A tower layer that puts an HTTP cache in front of an inner service.
pub struct CacheLayer<H = DefaultHooks> {
    shared: Arc<Shared<H>>,
}

impl<H> Clone for CacheLayer<H> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<H> std::fmt::Debug for CacheLayer<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheLayer")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl<H: CacheHooks> CacheLayer<H> {
    /// A layer with `config` and `hooks`.
    pub fn new(config: CacheConfig, hooks: H) -> Self {
        let cache_status_name = HeaderValue::from_str(&config.cache_status_name)
            .unwrap_or_else(|_| HeaderValue::from_static("larder"));
        Self {
            shared: Arc::new(Shared {
                config,
                hooks,
                metrics: Arc::new(Metrics::default()),
                cache_status_name,
            }),
        }
    }

    /// The counters shared by every service this layer made.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.shared.metrics
    }

    /// The `/metrics` text.
    pub fn render_metrics(&self) -> String {
        self.shared.metrics.render(None)
    }
}

impl<S, H> tower_layer::Layer<S> for CacheLayer<H> {
    type Service = CacheService<S, H>;

    fn layer(&self, inner: S) -> Self::Service {
        CacheService {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The service a [`CacheLayer`] wraps around an inner service.
pub struct CacheService<S, H = DefaultHooks> {
    inner: S,
    shared: Arc<Shared<H>>,
}

impl<S: Clone, H> Clone for CacheService<S, H> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S: std::fmt::Debug, H> std::fmt::Debug for CacheService<S, H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, H, B, ResB> tower_service::Service<Request<B>> for CacheService<S, H>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    S: tower_service::Service<Request<ProxyBody>, Response = Response<ResB>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    ResB: Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
    H: CacheHooks,
{
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ProxyBody>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The inner service is cloned per request and driven to readiness in the future.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let inner = self.inner.clone();
        let shared = Arc::clone(&self.shared);
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let mut resp = handle(&shared, inner, parts, body::boxed(body)).await;
            finish_response(&shared, &mut resp);
            shared.metrics.requests.inc();
            Ok(resp)
        })
    }
}

/// Headers every response gets on its way out.
fn finish_response<H>(shared: &Shared<H>, resp: &mut Response<ProxyBody>) {
    let version = resp.version();
    headers::add_via(resp.headers_mut(), version, &shared.config.via_pseudonym);
    if !resp
        .headers()
        .contains_key(header::HeaderName::from_static("cache-status"))
    {
        let mut v = shared.cache_status_name.as_bytes().to_vec();
        v.extend_from_slice(b"; fwd=uri-miss");
        if let Ok(v) = HeaderValue::from_bytes(&v) {
            resp.headers_mut().insert("cache-status", v);
        }
    }
}

async fn handle<S, H, ResB>(
    shared: &Shared<H>,
    inner: S,
    mut parts: http::request::Parts,
    body: ProxyBody,
) -> Response<ProxyBody>
where
    S: tower_service::Service<Request<ProxyBody>, Response = Response<ResB>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    ResB: Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
    H: CacheHooks,
{
    if shared.hooks.is_purge(&parts) {
        let status = match shared
            .hooks
            .purge_authorization(&parts, shared.config.purge_token.as_deref())
        {
            PurgeAuth::Disabled => StatusCode::METHOD_NOT_ALLOWED,
            PurgeAuth::Unauthorized => StatusCode::UNAUTHORIZED,
            // No storage yet: nothing is ever cached.
            PurgeAuth::Allowed => StatusCode::NOT_FOUND,
        };
        return canned(status);
    }
    headers::remove_hop_by_hop(&mut parts.headers);
    headers::add_via(
        &mut parts.headers,
        parts.version,
        &shared.config.via_pseudonym,
    );
    let req = Request::from_parts(parts, body);
    match inner.oneshot(req).await {
        Ok(resp) => {
            let (mut parts, body) = resp.into_parts();
            headers::remove_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, body::boxed(body))
        }
        Err(e) => {
            let e: BoxError = e.into();
            shared.metrics.upstream_errors.inc();
            tracing::warn!(error = %e, "upstream failed");
            canned(StatusCode::BAD_GATEWAY)
        }
    }
}

/// A bodiless response the proxy makes itself; never stored by anyone.
pub(crate) fn canned(status: StatusCode) -> Response<ProxyBody> {
    let mut resp = Response::new(body::empty());
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    resp
}
