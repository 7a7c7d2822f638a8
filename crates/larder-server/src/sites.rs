//! Several sites over one cache: [`Stores`] (the storage, eviction manager, lock and
//! predictor every site shares, and one set of counters), [`Sites`] (each site's
//! [`CacheLayer`] over its [`Upstream`], and the host routes to them) and [`Router`] (the
//! service the listeners run: each request to its site, or `421`/`404` for an unknown host).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, header};
use http_body::Body;
use larder_proxy::metrics::Metrics;
use larder_proxy::{
    BoxError, CacheConfig, CacheLayer, CacheService, DefaultHooks, DrainReport, ProxyBody,
    TokioSpawner, Upstream,
};
use larder_storage_disk::DiskStorage;
use tower::Layer;

use crate::Error;
use crate::config::{CacheSettings, ProxyConfig, SiteSettings, UnknownHost};
use crate::hosts::{HostRoutes, request_host};

/// What every site shares, built once when the process starts: the storage and its eviction
/// manager, lock and predictor (in a base [`CacheConfig`]) and one set of counters.
pub struct Stores {
    base: CacheConfig,
    started: CacheSettings,
    metrics: Arc<Metrics>,
    metrics_layer: CacheLayer<DefaultHooks>,
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stores")
            .field("started", &self.started)
            .finish_non_exhaustive()
    }
}

impl Stores {
    /// The storage `settings` name (see [`CacheSettings::cache_config`]).
    ///
    /// # Errors
    ///
    /// As [`CacheSettings::cache_config`].
    pub fn new(settings: &CacheSettings) -> Result<Self, Error> {
        let base = settings.cache_config()?;
        let metrics = Arc::new(Metrics::default());
        let metrics_layer = CacheLayer::with_metrics(
            base.clone(),
            DefaultHooks,
            Arc::new(TokioSpawner),
            Arc::clone(&metrics),
        );
        Ok(Self {
            base,
            started: settings.clone(),
            metrics,
            metrics_layer,
        })
    }

    /// The `/metrics` text: the counters of every site together, the eviction manager's size
    /// figures and the storage's own.
    pub fn render_metrics(&self) -> String {
        self.metrics_layer.render_metrics()
    }

    /// The disk storage, if the storage has one.
    pub fn disk(&self) -> Option<&'static DiskStorage> {
        self.base.storage.and_then(crate::disk_storage)
    }

    /// The `[cache]` keys of `new` that differ from those the storage was built with and that
    /// only a restart applies (the storage, its sizes and tiers, the lock age).
    pub fn restart_needed(&self, new: &CacheSettings) -> Vec<&'static str> {
        let (a, b) = (&self.started, new);
        let mut changed = Vec::new();
        let mut check = |name, differs: bool| {
            if differs {
                changed.push(name);
            }
        };
        check("cache.storage", a.storage != b.storage);
        check("cache.size", a.size != b.size);
        check(
            "cache.max_object_size",
            a.max_object_size != b.max_object_size,
        );
        check("cache.eviction", a.eviction != b.eviction);
        check("cache.disk_eviction", a.disk_eviction != b.disk_eviction);
        check("cache.disk_size", a.disk_size != b.disk_size);
        check("cache.disk_sync", a.disk_sync != b.disk_sync);
        check("cache.redis_prefix", a.redis_prefix != b.redis_prefix);
        check(
            "cache.redis_timeout",
            a.redis_timeout_ms != b.redis_timeout_ms,
        );
        check("cache.local_ttl", a.local_ttl_secs != b.local_ttl_secs);
        check("cache.lock_age", a.lock_age_ms != b.lock_age_ms);
        changed
    }

    /// The layer settings of `site`: the shared storage, the site's cache settings, else
    /// `cache`'s.
    fn site_config(&self, cache: &CacheSettings, site: &SiteSettings) -> CacheConfig {
        let mut c = self.base.clone();
        c.defaults = larder_proxy::config::meta_defaults(
            site.default_ttl.or(cache.default_ttl_secs),
            site.stale_while_revalidate
                .unwrap_or(cache.stale_while_revalidate_secs),
            site.stale_if_error.unwrap_or(cache.stale_if_error_secs),
        );
        c.cache_status_name = site
            .cache_status_name
            .clone()
            .unwrap_or_else(|| cache.cache_status_name.clone());
        c.purge_token = site
            .purge_token
            .clone()
            .or_else(|| cache.purge_token.clone());
        c.set_cookie = cache.set_cookie;
        c.lock_wait_timeout = Some(cache.lock_timeout());
        if let Some(max) = site.max_object_size.filter(|m| *m > 0) {
            let max = usize::try_from(max).unwrap_or(usize::MAX);
            c.max_file_size = Some(c.max_file_size.map_or(max, |storage| storage.min(max)));
        }
        c
    }

    /// A layer for `site`, counted in the shared counters.
    fn layer(&self, cache: &CacheSettings, site: &SiteSettings) -> CacheLayer<DefaultHooks> {
        CacheLayer::with_metrics(
            self.site_config(cache, site),
            DefaultHooks,
            Arc::new(TokioSpawner),
            Arc::clone(&self.metrics),
        )
    }
}

/// One configuration's sites: each a [`CacheService`] over its [`Upstream`], and the host
/// routes to them.
pub struct Sites {
    routes: HostRoutes<usize>,
    services: Vec<CacheService<Upstream, DefaultHooks>>,
    layers: Vec<CacheLayer<DefaultHooks>>,
    unknown: UnknownHost,
}

impl std::fmt::Debug for Sites {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sites")
            .field("sites", &self.services.len())
            .field("unknown", &self.unknown)
            .finish_non_exhaustive()
    }
}

impl Sites {
    /// The sites of `config` (its [`site_list`](ProxyConfig::site_list)) over `stores`.
    ///
    /// # Errors
    ///
    /// [`Error::Proxy`] when a site's upstream client cannot be built (its URI, its CA file).
    pub fn build(config: &ProxyConfig, stores: &Stores) -> Result<Self, Error> {
        let mut routes = HostRoutes::default();
        let (mut services, mut layers) = (Vec::new(), Vec::new());
        for (i, site) in config.site_list().iter().enumerate() {
            let options = site.upstream_options(config.forwarding);
            let upstream = Upstream::with_options(&site.upstream, &options)?;
            let layer = stores.layer(&config.cache, site);
            services.push(layer.layer(upstream));
            layers.push(layer);
            for host in &site.hosts {
                routes.add(host, i);
            }
        }
        Ok(Self {
            routes,
            services,
            layers,
            unknown: config.unknown_host,
        })
    }

    /// Waits, at most `grace`, for the background tasks in flight (of these sites, and of the
    /// layers of configurations reloaded away from: they count into the same counters); then
    /// cancels these sites' tasks. The figures are of every layer together.
    pub async fn drain(&self, grace: Duration) -> DrainReport {
        let mut set = tokio::task::JoinSet::new();
        for layer in &self.layers {
            let layer = layer.clone();
            set.spawn(async move { layer.drain(grace).await });
        }
        let mut total = DrainReport::default();
        while let Some(report) = set.join_next().await {
            if let Ok(r) = report {
                // Every report counts the shared tasks: the largest is the whole.
                total.in_flight = total.in_flight.max(r.in_flight);
                total.cancelled = total.cancelled.max(r.cancelled);
                total.left = total.left.max(r.left);
            }
        }
        total
    }

    /// The service of the site for `host` (`None`: a request without a host, which only a
    /// `*` site takes).
    fn route(&self, host: Option<&str>) -> Option<&CacheService<Upstream, DefaultHooks>> {
        let i = match host {
            Some(h) => self.routes.get(h),
            None => self.routes.get(""),
        }?;
        self.services.get(*i)
    }
}

/// A value swapped whole: readers get the current `Arc`, a reload stores a new one; those who
/// hold the old one finish with it.
#[derive(Debug)]
pub struct Current<T>(RwLock<Arc<T>>);

impl<T> Current<T> {
    /// Holds `value`.
    pub fn new(value: T) -> Self {
        Self(RwLock::new(Arc::new(value)))
    }

    /// The current value.
    pub fn load(&self) -> Arc<T> {
        Arc::clone(&self.0.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Replaces the value for later [`load`](Self::load)s.
    pub fn store(&self, value: T) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(value);
    }
}

/// The service the listeners run: each request goes to the site its host names, in the
/// configuration current when the request arrived (a request keeps that configuration to its
/// end, however long it runs).
pub struct Router<T> {
    current: Arc<Current<T>>,
    sites: fn(&T) -> &Sites,
}

impl<T> Clone for Router<T> {
    fn clone(&self) -> Self {
        Self {
            current: Arc::clone(&self.current),
            sites: self.sites,
        }
    }
}

impl<T> Router<T> {
    /// Routes by the [`Sites`] that `sites` finds in the current value of `current`.
    pub fn new(current: Arc<Current<T>>, sites: fn(&T) -> &Sites) -> Self {
        Self { current, sites }
    }
}

type RouterFuture = Pin<Box<dyn Future<Output = Result<Response<ProxyBody>, Infallible>> + Send>>;

impl<T, B> tower::Service<Request<B>> for Router<T>
where
    T: Send + Sync + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = RouterFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> RouterFuture {
        let snapshot = self.current.load();
        let sites = (self.sites)(&snapshot);
        // One site for every host (no [[site]]): no need to read the host.
        if let Some(i) = sites.routes.only_any()
            && let Some(service) = sites.services.get(*i)
        {
            return tower::Service::call(&mut service.clone(), req);
        }
        let host = request_host(&req);
        if let Some(service) = sites.route(host.as_deref()) {
            return tower::Service::call(&mut service.clone(), req);
        }
        let status = sites.unknown.status();
        let mut resp = Response::new(larder_proxy::body::full(format!(
            "{status}: no site here for this host\n"
        )));
        *resp.status_mut() = status;
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("text/plain"),
        );
        Box::pin(std::future::ready(Ok(resp)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    fn site(toml: &str) -> SiteSettings {
        let c = ProxyConfig::from_toml(&format!(
            "[[site]]\nhosts = [\"a.example\"]\nupstream = \"http://127.0.0.1:1\"\n{toml}"
        ))
        .unwrap();
        c.sites[0].clone()
    }

    #[test]
    fn each_site_has_its_own_cache_settings_over_one_storage() {
        let cache = CacheSettings {
            default_ttl_secs: Some(10),
            purge_token: Some("shared".into()),
            max_object_size: Some(1 << 20),
            ..CacheSettings::default()
        };
        let stores = Stores::new(&cache).unwrap();
        let a = stores.site_config(
            &cache,
            &site("default_ttl = \"1m\"\ncache_status_name = \"edge-a\"\nmax_object_size = \"4MiB\"\n"),
        );
        let b = stores.site_config(
            &cache,
            &site("purge_token = \"b\"\nmax_object_size = 1000\n"),
        );
        assert_eq!(
            a.defaults.fresh_sec(StatusCode::OK),
            Some(Duration::from_mins(1))
        );
        assert_eq!(
            b.defaults.fresh_sec(StatusCode::OK),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            (a.cache_status_name.as_str(), b.cache_status_name.as_str()),
            ("edge-a", "larder")
        );
        assert_eq!(
            (a.purge_token.as_deref(), b.purge_token.as_deref()),
            (Some("shared"), Some("b"))
        );
        assert_eq!(
            a.max_file_size,
            Some(1 << 20),
            "a site cannot raise the storage's limit"
        );
        assert_eq!(b.max_file_size, Some(1000));
        assert!(
            std::ptr::addr_eq(a.storage.unwrap(), b.storage.unwrap()),
            "one storage"
        );
    }

    #[test]
    fn restart_needed_names_the_storage_keys() {
        let cache = CacheSettings::default();
        let stores = Stores::new(&cache).unwrap();
        let mut new = cache.clone();
        new.cache_status_name = "other".into();
        new.lock_timeout_ms = 1;
        assert!(stores.restart_needed(&new).is_empty());
        new.size *= 2;
        new.lock_age_ms = 1;
        assert_eq!(
            stores.restart_needed(&new),
            ["cache.size", "cache.lock_age"]
        );
    }
}
