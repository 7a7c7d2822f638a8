//! A running configuration and its reload: [`Running`] holds the [`Stores`] built once and the
//! current [`Snapshot`] (sites, listeners' certificates), which [`Running::reload`] replaces
//! for new requests and handshakes while the ones under way finish on the old.

use std::sync::Arc;

use larder_proxy::server::TlsSource;
use larder_proxy::tls::server_config;

use crate::Error;
use crate::config::{ListenerSettings, ProxyConfig};
use crate::sites::{Current, Router, Sites, Stores};

/// One configuration, as requests and handshakes see it.
#[derive(Debug)]
pub struct Snapshot {
    /// The configuration it was built from.
    pub config: ProxyConfig,
    /// Its sites.
    pub sites: Sites,
    /// Each listener's TLS settings (`None`: plain), in the order of
    /// [`ProxyConfig::listener_list`] when the process started.
    pub tls: Vec<Option<Arc<rustls::ServerConfig>>>,
}

impl Snapshot {
    /// Builds `config`'s sites over `stores`, with `tls`.
    ///
    /// # Errors
    ///
    /// What [`Sites::build`] reports.
    fn build(
        config: ProxyConfig,
        stores: &Stores,
        tls: Vec<Option<Arc<rustls::ServerConfig>>>,
    ) -> Result<Self, Error> {
        let sites = Sites::build(&config, stores)?;
        Ok(Self { config, sites, tls })
    }

    fn sites(&self) -> &Sites {
        &self.sites
    }
}

/// The running proxy's state: what a reload keeps (the storage and the listeners) and what it
/// swaps (the [`Snapshot`]).
#[derive(Debug)]
pub struct Running {
    stores: Stores,
    /// The listeners bound at start; a reload cannot move them.
    listeners: Vec<ListenerSettings>,
    /// The admin address and shutdown grace at start, which a reload does not change.
    admin: Option<std::net::SocketAddr>,
    grace: std::time::Duration,
    current: Arc<Current<Snapshot>>,
}

impl Running {
    /// Builds the storage, the sites and the certificates of `config` (already validated).
    ///
    /// # Errors
    ///
    /// As [`Stores::new`], [`Sites::build`] and [`server_config`].
    pub fn start(config: ProxyConfig) -> Result<Self, Error> {
        let stores = Stores::new(&config.cache)?;
        let listeners = config.listener_list();
        let (admin, grace) = (config.admin, config.shutdown_grace);
        let tls = load_certificates(&listeners)?;
        let snapshot = Snapshot::build(config, &stores, tls)?;
        Ok(Self {
            stores,
            listeners,
            admin,
            grace,
            current: Arc::new(Current::new(snapshot)),
        })
    }

    /// The storage and counters every configuration shares.
    pub fn stores(&self) -> &Stores {
        &self.stores
    }

    /// The listeners bound at start.
    pub fn listeners(&self) -> &[ListenerSettings] {
        &self.listeners
    }

    /// The shutdown grace period at start.
    pub fn shutdown_grace(&self) -> std::time::Duration {
        self.grace
    }

    /// The current configuration.
    pub fn current(&self) -> Arc<Snapshot> {
        self.current.load()
    }

    /// The service routing each request by the configuration current when it arrives.
    pub fn router(&self) -> Router<Snapshot> {
        Router::new(Arc::clone(&self.current), Snapshot::sites)
    }

    /// The TLS settings of listener `index` for each new connection, the current
    /// configuration's; `None` for a plain listener.
    pub fn tls_source(&self, index: usize) -> Option<TlsSource> {
        let first = self.current.load().tls.get(index).cloned().flatten()?;
        let current = Arc::clone(&self.current);
        Some(Arc::new(move || {
            current
                .load()
                .tls
                .get(index)
                .cloned()
                .flatten()
                .unwrap_or_else(|| Arc::clone(&first))
        }))
    }

    /// Makes `config` (already validated) current for new requests and handshakes, keeping
    /// the cache. Settings only a restart applies (the storage, listener addresses, a
    /// listener turning TLS on or off) are logged and otherwise ignored.
    ///
    /// # Errors
    ///
    /// As [`Sites::build`] and [`server_config`]; the old configuration then stays.
    pub fn reload(&self, config: ProxyConfig) -> Result<(), Error> {
        let changed = self.stores.restart_needed(&config.cache);
        if !changed.is_empty() {
            tracing::warn!(
                keys = %changed.join(", "),
                "these settings need a restart; they keep their values until then"
            );
        }
        let wanted = config.listener_list();
        let same_shape = wanted.len() == self.listeners.len()
            && wanted
                .iter()
                .zip(&self.listeners)
                .all(|(a, b)| a.address == b.address && a.is_tls() == b.is_tls());
        // Certificates are reloaded for the listeners as bound; with another shape, the
        // listeners keep their current certificates.
        let tls = if same_shape {
            load_certificates(&wanted)?
        } else {
            tracing::warn!(
                "the listeners (addresses, TLS on or off) need a restart; they stay as they are"
            );
            self.current.load().tls.clone()
        };
        if config.admin != self.admin || config.shutdown_grace != self.grace {
            tracing::warn!(
                "admin and shutdown_grace need a restart; they keep their values until then"
            );
        }
        let snapshot = Snapshot::build(config, &self.stores, tls)?;
        self.current.store(snapshot);
        Ok(())
    }
}

/// Checks what [`ProxyConfig::validate`] cannot see without touching files: every listener's
/// certificates load and every site's origin client builds (its `ca_file` is read). Builds no
/// storage and binds nothing, so it can run beside a live proxy (`larder --check`).
///
/// # Errors
///
/// The first certificate or origin that cannot be loaded.
pub fn check(config: &ProxyConfig) -> Result<(), Error> {
    load_certificates(&config.listener_list())?;
    for site in config.site_list() {
        let options = site.upstream_options(config.forwarding);
        larder_proxy::Upstream::with_options(&site.upstream, &options)?;
    }
    Ok(())
}

/// The TLS settings of each of `listeners` (`None` for a plain one).
///
/// # Errors
///
/// What [`server_config`] reports for a certificate that cannot be loaded.
fn load_certificates(
    listeners: &[ListenerSettings],
) -> Result<Vec<Option<Arc<rustls::ServerConfig>>>, Error> {
    Ok(listeners
        .iter()
        .map(|l| {
            l.is_tls()
                .then(|| server_config(&l.cert_pairs()))
                .transpose()
        })
        .collect::<Result<Vec<_>, _>>()?)
}
