//! The caching layer, or any tower service, served on a 127.0.0.1 port by the proxy's own server,
//! in cleartext or over TLS.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use http_body::Body;
use hyper::body::Incoming;
use larder_proxy::config::EvictionPolicy;
use larder_proxy::{
    BoxError, CacheConfig, CacheHooks, CacheLayer, DefaultHooks, ProxyBody, Upstream,
};
use tokio::net::TcpListener;
use tower::Layer;

use crate::Transport;

/// Serves `service` with `larder_proxy::server::serve` (HTTP/1.1 and h2c on one port, as the
/// binary does) on a free 127.0.0.1 port until the runtime ends; returns the address.
pub async fn serve<S, B>(service: S) -> SocketAddr
where
    S: tower::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(larder_proxy::server::serve(
        listener,
        service,
        std::future::pending(),
    ));
    addr
}

/// Serves `service` for clients of `transport`: [`serve`] for the cleartext transports, and
/// `larder_proxy::server::serve_with` with [`tls::local`](crate::tls::local)'s certificate
/// (ALPN `h2` and `http/1.1`) for the TLS ones; returns the address.
pub async fn serve_over<S, B>(transport: Transport, service: S) -> SocketAddr
where
    S: tower::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    if !transport.is_tls() {
        return serve(service).await;
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = crate::tls::local().server_config();
    tokio::spawn(larder_proxy::server::serve_with(
        listener,
        move || service.clone(),
        Some(Arc::new(move || Arc::clone(&config))),
        larder_proxy::server::SHUTDOWN_GRACE,
        std::future::pending(),
    ));
    addr
}

/// A caching proxy: a [`CacheLayer`] over an inner service, served on a 127.0.0.1 port.
pub struct Proxy<H = DefaultHooks> {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// The layer, for its metrics and configuration.
    pub layer: CacheLayer<H>,
    /// What clients speak to it.
    pub transport: Transport,
}

impl Proxy {
    /// A proxy with `config` in front of the origin at `origin` (`http://host:port`).
    pub async fn start(origin: &crate::Origin, config: CacheConfig) -> Self {
        Self::to(&origin.uri(), config).await
    }

    /// A proxy with `config` in front of `upstream` (`http://host:port`).
    pub async fn to(upstream: &str, config: CacheConfig) -> Self {
        Self::with_inner(Upstream::new(upstream).unwrap(), config).await
    }

    /// A proxy with `config` in front of the origin at `origin`, served for clients of
    /// `transport` (over TLS for the TLS transports).
    pub async fn start_over(
        transport: Transport,
        origin: &crate::Origin,
        config: CacheConfig,
    ) -> Self {
        let upstream = Upstream::new(&origin.uri()).unwrap();
        Proxy::with_hooks_over(transport, upstream, config, DefaultHooks).await
    }

    /// A proxy with [`cache_config`] in front of `origin`.
    pub async fn cached(origin: &crate::Origin) -> Self {
        Self::start(origin, cache_config()).await
    }

    /// A proxy with `config` in front of any inner service.
    pub async fn with_inner<S>(inner: S, config: CacheConfig) -> Self
    where
        S: tower::Service<Request<ProxyBody>, Response = Response<Incoming>>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
    {
        Proxy::with_hooks(inner, config, DefaultHooks).await
    }
}

impl<H: CacheHooks> Proxy<H> {
    /// A proxy with `config` and `hooks` in front of any inner service.
    pub async fn with_hooks<S>(inner: S, config: CacheConfig, hooks: H) -> Self
    where
        S: tower::Service<Request<ProxyBody>, Response = Response<Incoming>>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
    {
        Self::with_hooks_over(Transport::Http1, inner, config, hooks).await
    }

    /// A proxy with `config` and `hooks` in front of any inner service, served for clients of
    /// `transport` (see [`serve_over`]).
    pub async fn with_hooks_over<S>(
        transport: Transport,
        inner: S,
        config: CacheConfig,
        hooks: H,
    ) -> Self
    where
        S: tower::Service<Request<ProxyBody>, Response = Response<Incoming>>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
    {
        let layer = CacheLayer::new(config, hooks);
        let addr = serve_over(transport, layer.layer(inner)).await;
        Self {
            addr,
            layer,
            transport,
        }
    }

    /// The URL of `path` (with its query) on this proxy: `https://` when it is served over
    /// TLS (the certificate covers `127.0.0.1`).
    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.transport.scheme(), self.addr)
    }
}

/// An in-memory cache of `size` bytes under `policy`, with `lock` as both lock timeouts.
pub fn memory_config(size: usize, policy: EvictionPolicy, lock: Duration) -> CacheConfig {
    CacheConfig::in_memory(size, policy).with_lock_timeouts(lock, lock)
}

/// A 1 MiB in-memory `TinyUFO` cache with 1 s lock timeouts.
pub fn cache_config() -> CacheConfig {
    memory_config(1 << 20, EvictionPolicy::Tinyufo, Duration::from_secs(1))
}
