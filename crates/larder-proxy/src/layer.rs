//! `CacheLayer` and `CacheService`: the tower integration.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use larder_storage::key::PrimaryHashMemo;

use crate::body::{self, ProxyBody};
use crate::error::BoxError;
use crate::headers::{self, Via};
use crate::hooks::{CacheHooks, DefaultHooks};
use crate::metrics::{Metrics, StorageGauges};
use crate::shared::{CacheConfig, KEY_HASH_MEMO, Shared};
use crate::tasks::{DrainReport, Spawn, Tasks, TokioSpawner};
use crate::upgrade::Requested;

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
    /// A layer with `config` and `hooks`, running its background tasks on Tokio
    /// ([`TokioSpawner`]).
    pub fn new(config: CacheConfig, hooks: H) -> Self {
        Self::with_spawner(config, hooks, Arc::new(TokioSpawner))
    }

    /// A layer with `config` and `hooks` that runs its background tasks (cache fills,
    /// stale-while-revalidate refreshes, body streams) on `spawner`.
    pub fn with_spawner(config: CacheConfig, hooks: H, spawner: Arc<dyn Spawn>) -> Self {
        let metrics = Arc::new(Metrics::default());
        Self {
            shared: Arc::new(Shared {
                via: Via::new(&config.via_pseudonym),
                status_name: Arc::from(config.cache_status_name.as_str()),
                key_hashes: PrimaryHashMemo::new(KEY_HASH_MEMO),
                config,
                hooks: Arc::new(hooks),
                tasks: Tasks::new(spawner, Arc::clone(&metrics)),
                metrics,
            }),
        }
    }

    /// Waits for the layer's background tasks in flight (cache fills, refreshes, body
    /// streams) to end, at most `grace`; then cancels the rest, logging why, and waits briefly
    /// for them to stop. Call it on graceful shutdown, after the server stopped taking
    /// requests: a fill cut short leaves no entry, so draining keeps the work already paid
    /// for. Tasks started while or after it runs are cancelled once the grace period is over.
    pub async fn drain(&self, grace: Duration) -> DrainReport {
        self.shared.tasks.drain(grace).await
    }

    /// The counters shared by every service this layer made.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.shared.metrics
    }

    /// The `/metrics` text: the counters plus the eviction manager's size figures, and what
    /// the storage reports through `Storage::metrics` (a Redis storage its `larder_redis_*`
    /// counters, a tiered one `larder_tiered_*` and its tiers').
    pub fn render_metrics(&self) -> String {
        let gauges = self.shared.config.eviction.map(|e| StorageGauges {
            bytes: e.total_size() as u64,
            entries: e.total_items() as u64,
            evicted_entries: e.evicted_items() as u64,
            evicted_bytes: e.evicted_size() as u64,
        });
        let mut text = self.shared.metrics.render(gauges);
        if let Some(storage) = self.shared.config.storage {
            crate::metrics::render_storage(storage, &mut text);
        }
        text
    }
}

impl<S, H> tower_layer::Layer<S> for CacheLayer<H> {
    type Service = CacheService<S, H>;

    fn layer(&self, inner: S) -> Self::Service {
        CacheService {
            inner: Arc::new(inner),
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The service a [`CacheLayer`] wraps around an inner service.
///
/// The inner service receives requests with a [`ProxyBody`] and may answer with any body of
/// [`Bytes`]. Its errors become `502 Bad Gateway` (or a stale response, RFC 5861), so this
/// service never fails.
pub struct CacheService<S, H = DefaultHooks> {
    /// Shared by the requests' futures: one reference count per request instead of a copy
    /// (a client with its pool is a few hundred bytes) moved through the request's future.
    inner: Arc<S>,
    shared: Arc<Shared<H>>,
}

impl<S: Clone, H> Clone for CacheService<S, H> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
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
        + Sync
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
        let inner = Arc::clone(&self.inner);
        let shared = Arc::clone(&self.shared);
        let (mut parts, body) = req.into_parts();
        // An upgrade keeps its `Upgrade` field, which goes with the other hop-by-hop fields.
        let upgrade = Requested::take(&mut parts);
        headers::remove_hop_by_hop(&mut parts.headers);
        if let Some(upgrade) = upgrade {
            parts.extensions.insert(upgrade);
        }
        // A request without a body (most of them) needs no boxed body.
        let body = if body.is_end_stream() {
            body::empty()
        } else {
            body::boxed(body)
        };
        // The future owns the request head once and lends it to the flow (see `flow::handle`).
        Box::pin(async move {
            let resp = crate::flow::handle(&shared, &inner, &parts, body).await;
            shared.metrics.requests.inc();
            Ok(resp)
        })
    }
}
