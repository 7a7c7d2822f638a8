//! The caching layer, or any tower service, served on a 127.0.0.1 port by the proxy's own server.

use std::net::SocketAddr;
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

/// A caching proxy: a [`CacheLayer`] over an inner service, served on a 127.0.0.1 port.
pub struct Proxy<H = DefaultHooks> {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// The layer, for its metrics and configuration.
    pub layer: CacheLayer<H>,
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
        let layer = CacheLayer::new(config, hooks);
        let addr = serve(layer.layer(inner)).await;
        Self { addr, layer }
    }

    /// The URL of `path` (with its query) on this proxy.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
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
