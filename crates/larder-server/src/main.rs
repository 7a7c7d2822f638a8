//! `larder`: a caching reverse proxy in front of one origin, or of several sites by host name.
//!
//! ```text
//! larder --upstream http://127.0.0.1:8000 --listen 127.0.0.1:6188
//! larder --config larder.toml            # flags given too override the file
//! kill -HUP <pid>                         # reload the file (and certificates)
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use larder_proxy::config::EvictionPolicy;
use larder_proxy::{SetCookiePolicy, server};
use larder_server::config::{
    DiskSync, ProxyConfig, StorageBackend, parse_ms, parse_secs, parse_secs_duration,
    parse_secs_u32, parse_size,
};
use larder_server::reload::Running;
use larder_server::signals::{Hangup, hangup_signal, shutdown_signal};
use tokio::net::TcpListener;

/// A caching reverse proxy (RFC 9111) in front of one or several HTTP origins.
#[derive(Debug, Parser)]
#[command(name = "larder", version, about)]
struct Args {
    /// A TOML configuration file; flags override its values.
    #[arg(long, short = 'c', env = "LARDER_CONFIG")]
    config: Option<PathBuf>,
    /// The origin, for example `http://127.0.0.1:8000`.
    #[arg(long)]
    upstream: Option<String>,
    /// The address to listen on (default 127.0.0.1:6188).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// The admin address serving /metrics and /healthz.
    #[arg(long)]
    admin: Option<SocketAddr>,
    /// Bytes the cache (with tiers: the memory tier) may hold: bytes or a size with a unit
    /// (256MiB, 2GiB, 500MB).
    #[arg(long, value_parser = parse_size)]
    cache_size: Option<u64>,
    /// Responses larger than this are not stored (0 = no limit); bytes or with a unit.
    /// Default: 8MiB in memory, an eighth of --disk-size on disk.
    #[arg(long, value_parser = parse_size)]
    max_object_size: Option<u64>,
    /// Eviction policy of the memory storage or tier: lru or tinyufo.
    #[arg(long)]
    eviction: Option<EvictionPolicy>,
    /// Eviction policy of the disk: lru (default) or tinyufo.
    #[arg(long)]
    disk_eviction: Option<EvictionPolicy>,
    /// Storage backend: memory; redis://host:port, one Redis shared by a fleet of proxies;
    /// disk:PATH, a directory kept across restarts; or tiers joined by +, fastest first:
    /// memory+redis://host:port, memory+disk:PATH, [memory+]disk:PATH+redis://host:port.
    #[arg(long)]
    storage: Option<StorageBackend>,
    /// (disk) The most the cache directory holds: bytes or with a unit (default 1GiB).
    #[arg(long, value_parser = parse_size)]
    disk_size: Option<u64>,
    /// (disk) When entries are flushed to the device: never (the default) or always.
    #[arg(long, value_name = "never|always")]
    disk_sync: Option<DiskSync>,
    /// (redis) The prefix of every Redis key (default larder:).
    #[arg(long)]
    redis_prefix: Option<String>,
    /// (redis) The longest one Redis call may take, in milliseconds (default 250).
    #[arg(long, visible_alias = "redis-timeout", value_parser = parse_ms)]
    redis_timeout_ms: Option<u64>,
    /// (memory+redis) Seconds a local copy is served before Redis is asked again (0 = until
    /// evicted or stale).
    #[arg(long, visible_alias = "local-ttl", value_parser = parse_secs)]
    local_ttl_secs: Option<u64>,
    /// Milliseconds a cache fill may hold the lock before others stop waiting for it.
    #[arg(long, visible_alias = "lock-age", value_parser = parse_ms)]
    lock_age_ms: Option<u64>,
    /// The longest, in milliseconds, a request waits on another request's fill.
    #[arg(long, visible_alias = "lock-timeout", value_parser = parse_ms)]
    lock_timeout_ms: Option<u64>,
    /// The bearer token PURGE requests need (PURGE is refused without one).
    #[arg(long, env = "LARDER_PURGE_TOKEN")]
    purge_token: Option<String>,
    /// The cache name in Cache-Status.
    #[arg(long)]
    cache_status_name: Option<String>,
    /// A lifetime for responses without explicit freshness or Last-Modified (off by default).
    #[arg(long, visible_alias = "default-ttl", value_parser = parse_secs_u32)]
    default_ttl_secs: Option<u32>,
    /// The stale-while-revalidate window when the origin gives none.
    #[arg(long, visible_alias = "stale-while-revalidate", value_parser = parse_secs_u32)]
    stale_while_revalidate_secs: Option<u32>,
    /// The stale-if-error window when the origin gives none.
    #[arg(long, visible_alias = "stale-if-error", value_parser = parse_secs_u32)]
    stale_if_error_secs: Option<u32>,
    /// Which responses with Set-Cookie are stored, always without the cookie: opt-in (only
    /// those marked public, s-maxage or CDN-Cache-Control; the default), never, or strip (any
    /// RFC 9111 allows).
    #[arg(long, value_name = "never|opt-in|strip")]
    set_cookie: Option<SetCookiePolicy>,
    /// How long open connections and background fills get to finish on shutdown (default
    /// 10s): seconds, or with a unit (30s, 2m).
    #[arg(long, value_parser = parse_secs_duration)]
    shutdown_grace: Option<Duration>,
    /// Check the configuration (the file, flags, certificates and CA files) and exit: 0 when
    /// it would start, 1 with the reason when not. Binds nothing, builds no storage.
    #[arg(long)]
    check: bool,
}

impl Args {
    fn to_config(&self) -> anyhow::Result<ProxyConfig> {
        let mut c = match &self.config {
            Some(path) => ProxyConfig::from_file(path)?,
            None => ProxyConfig::default(),
        };
        macro_rules! set {
            ($($flag:ident => $($field:ident).+),* $(,)?) => {
                $(if let Some(v) = &self.$flag { c.$($field).+ = v.clone(); })*
            };
        }
        set!(
            shutdown_grace => shutdown_grace,
            cache_size => cache.size,
            eviction => cache.eviction,
            storage => cache.storage,
            disk_size => cache.disk_size,
            disk_sync => cache.disk_sync,
            disk_eviction => cache.disk_eviction,
            redis_prefix => cache.redis_prefix,
            redis_timeout_ms => cache.redis_timeout_ms,
            local_ttl_secs => cache.local_ttl_secs,
            lock_age_ms => cache.lock_age_ms,
            lock_timeout_ms => cache.lock_timeout_ms,
            cache_status_name => cache.cache_status_name,
            stale_while_revalidate_secs => cache.stale_while_revalidate_secs,
            stale_if_error_secs => cache.stale_if_error_secs,
            set_cookie => cache.set_cookie,
        );
        if self.max_object_size.is_some() {
            c.cache.max_object_size = self.max_object_size;
        }
        if let Some(listen) = self.listen {
            // A flag replaces the file's listeners with one plain listener.
            c.listen = listen;
            c.listeners.clear();
        }
        if self.upstream.is_some() {
            c.upstream.clone_from(&self.upstream);
        }
        if self.admin.is_some() {
            c.admin = self.admin;
        }
        if self.purge_token.is_some() {
            c.cache.purge_token.clone_from(&self.purge_token);
        }
        if self.default_ttl_secs.is_some() {
            c.cache.default_ttl_secs = self.default_ttl_secs;
        }
        c.validate()?;
        Ok(c)
    }
}

/// Re-reads the configuration (the file, then the same flags over it) on every SIGHUP and
/// makes it current for new requests and handshakes; a file that does not parse or validate,
/// or certificates that do not load, are logged and the old configuration stays.
async fn reload_on_hangup(hangup: Hangup, args: Arc<Args>, running: Arc<Running>) {
    #[cfg(unix)]
    {
        let Some(mut hup) = hangup else { return };
        while hup.recv().await.is_some() {
            if args.config.is_none() {
                tracing::warn!("SIGHUP: no configuration file to reload (start with --config)");
                continue;
            }
            // Reading files and building clients (certificate stores) blocks.
            let (args, running) = (Arc::clone(&args), Arc::clone(&running));
            let result = tokio::task::spawn_blocking(move || {
                let config = args.to_config()?;
                running.reload(config).map_err(anyhow::Error::from)
            })
            .await
            .map_err(anyhow::Error::from)
            .and_then(|r| r);
            match result {
                Ok(()) => tracing::info!("configuration reloaded"),
                Err(e) => tracing::error!(
                    error = format!("{e:#}"),
                    "configuration rejected; the running one stays"
                ),
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (hangup, args, running);
}

async fn run(args: Args, config: ProxyConfig) -> anyhow::Result<()> {
    // Before anything slow (opening a large disk cache, loading roots): a SIGHUP from a
    // `systemctl reload`, or a SIGTERM, during start-up must not end the process with the
    // default action.
    let shutdown = shutdown_signal();
    let hangup = hangup_signal();
    let grace = config.shutdown_grace;
    let admin = config.admin;
    let site_count = config.site_list().len();
    let running = Arc::new(Running::start(config)?);
    let mut bound = Vec::new();
    for settings in running.listeners() {
        let listener = TcpListener::bind(settings.address)
            .await
            .with_context(|| format!("cannot listen on {}", settings.address))?;
        bound.push(listener);
    }

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let wait_stop = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let reloader = tokio::spawn(reload_on_hangup(
        hangup,
        Arc::new(args),
        Arc::clone(&running),
    ));
    let mut admin_task = None;
    if let Some(admin) = admin {
        let admin_listener = TcpListener::bind(admin)
            .await
            .with_context(|| format!("cannot listen on {admin} (admin)"))?;
        tracing::info!("admin listening on {}", admin_listener.local_addr()?);
        let running = Arc::clone(&running);
        // One set of counters for every site, and what the storage reports (Redis or tiered
        // counters) too.
        let metrics: Arc<dyn Fn() -> String + Send + Sync> =
            Arc::new(move || running.stores().render_metrics());
        admin_task = Some(tokio::spawn(server::serve_admin(
            admin_listener,
            metrics,
            wait_stop(stop_rx.clone()),
        )));
    }
    let mut proxies = Vec::new();
    for (i, listener) in bound.into_iter().enumerate() {
        let local = listener.local_addr()?;
        let tls = running.tls_source(i);
        let scheme = if tls.is_some() { "https" } else { "http" };
        tracing::info!(sites = site_count, %scheme, "listening on {local}");
        let router = running.router();
        proxies.push(tokio::spawn(server::serve_with(
            listener,
            move || router.clone(),
            tls,
            grace,
            wait_stop(stop_rx.clone()),
        )));
    }
    drop(stop_rx);
    shutdown.await;
    let _ = stop_tx.send(true);
    reloader.abort();
    for proxy in proxies {
        proxy.await?;
    }
    // Fills and refreshes still running, of every configuration loaded, finish (or are
    // cancelled, logged) before exit.
    let drained = running.current().sites.drain(grace).await;
    tracing::info!(?drained, "background tasks drained");
    // The disk's eviction order survives a graceful restart.
    if let Some(disk) = running.stores().disk() {
        match disk.save_state() {
            Ok(()) => tracing::info!("disk cache state saved"),
            Err(e) => tracing::warn!(error = %e, "cannot save the disk cache state"),
        }
    }
    if let Some(t) = admin_task {
        t.await?;
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = Args::parse();
    let config = args.to_config()?;
    if args.check {
        larder_server::reload::check(&config)?;
        println!("configuration ok");
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(run(args, config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("larder.toml");
        std::fs::write(
            &path,
            "upstream = \"http://127.0.0.1:1\"\n[cache]\nsize = 5000\n",
        )
        .unwrap();
        let args = Args::parse_from([
            "larder",
            "--config",
            path.to_str().unwrap(),
            "--cache-size",
            "9000",
            "--upstream",
            "http://127.0.0.1:2",
        ]);
        let c = args.to_config().unwrap();
        assert_eq!(c.cache.size, 9000);
        assert_eq!(c.upstream.as_deref(), Some("http://127.0.0.1:2"));
    }

    #[test]
    fn bad_file_names_path_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "upstream = \"http://127.0.0.1:1\"\nlisten = 5\n").unwrap();
        let args = Args::parse_from(["larder", "--config", path.to_str().unwrap()]);
        let e = format!("{:#}", args.to_config().unwrap_err());
        assert!(e.contains("bad.toml") && e.contains("line 2"), "{e}");
    }

    #[test]
    fn storage_flags_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("larder.toml");
        std::fs::write(
            &path,
            "upstream = \"http://127.0.0.1:1\"\n[cache]\nstorage = \"redis://10.0.0.5:6379\"\n\
             redis_prefix = \"file:\"\n",
        )
        .unwrap();
        let args = Args::parse_from([
            "larder",
            "--config",
            path.to_str().unwrap(),
            "--storage",
            "memory+redis://10.0.0.6:6379/2",
            "--redis-timeout-ms",
            "100",
            "--local-ttl-secs",
            "30",
        ]);
        let c = args.to_config().unwrap();
        assert_eq!(
            c.cache.storage,
            StorageBackend::Tiered("redis://10.0.0.6:6379/2".into())
        );
        assert_eq!(
            (
                c.cache.redis_prefix.as_str(),
                c.cache.redis_timeout_ms,
                c.cache.local_ttl_secs
            ),
            ("file:", 100, 30)
        );
    }

    #[test]
    fn bad_storage_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fleet.toml");
        std::fs::write(
            &path,
            "upstream = \"http://127.0.0.1:1\"\n[cache]\nstorage = \"memory+redis://\"\n",
        )
        .unwrap();
        let args = Args::parse_from(["larder", "--config", path.to_str().unwrap()]);
        let e = format!("{:#}", args.to_config().unwrap_err());
        assert!(
            e.contains("fleet.toml") && e.contains("line 3") && e.contains("redis url"),
            "{e}"
        );

        let e = Args::try_parse_from(["larder", "--storage", "memory+disk"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--storage") && e.contains("memory+redis://"),
            "{e}"
        );

        let args = Args::parse_from([
            "larder",
            "--upstream",
            "http://127.0.0.1:1",
            "--local-ttl-secs",
            "5",
        ]);
        let e = format!("{:#}", args.to_config().unwrap_err());
        assert!(e.contains("local_ttl_secs"), "{e}");
    }

    #[test]
    fn disk_flags_set_the_disk_tiers() {
        let args = Args::parse_from([
            "larder",
            "--upstream",
            "http://127.0.0.1:1",
            "--storage",
            "memory+disk:/var/cache/larder",
            "--disk-size",
            "20GiB",
            "--cache-size",
            "256MiB",
            "--max-object-size",
            "8MB",
            "--disk-sync",
            "always",
        ]);
        let c = args.to_config().unwrap();
        assert_eq!(
            c.cache.storage,
            "memory+disk:/var/cache/larder"
                .parse::<StorageBackend>()
                .unwrap()
        );
        assert_eq!(
            (c.cache.disk_size, c.cache.size, c.cache.max_object_size),
            (20 << 30, 256 << 20, Some(8_000_000))
        );
        assert_eq!(c.cache.disk_sync, DiskSync::Always);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("larder.toml");
        std::fs::write(
            &path,
            "upstream = \"http://127.0.0.1:1\"\n[cache]\nstorage = \"disk:/srv/a\"\n\
             disk_size = \"1GiB\"\n",
        )
        .unwrap();
        let args = Args::parse_from([
            "larder",
            "--config",
            path.to_str().unwrap(),
            "--disk-size",
            "2147483648",
        ]);
        let c = args.to_config().unwrap();
        assert_eq!(c.cache.disk_size, 2 << 30, "the flag overrides the file");
        assert_eq!(c.cache.storage.to_string(), "disk:/srv/a");
    }

    #[test]
    fn bad_disk_flags_are_clear_errors() {
        for (flags, says) in [
            (&["--disk-size", "20 GiBs"][..], "unknown unit"),
            (&["--cache-size", "lots"][..], "invalid size"),
            (&["--disk-sync", "sometimes"][..], "never or always"),
            (&["--storage", "disk:"][..], "needs a directory"),
            (
                &["--storage", "redis://h:1+disk:/c"][..],
                "redis must be the last tier",
            ),
        ] {
            let e = Args::try_parse_from(["larder"].iter().chain(flags))
                .unwrap_err()
                .to_string();
            assert!(e.contains(flags[0]) && e.contains(says), "{flags:?}: {e}");
        }
        let args = Args::parse_from([
            "larder",
            "--upstream",
            "http://127.0.0.1:1",
            "--storage",
            "disk:/c",
            "--disk-size",
            "0",
        ]);
        let e = format!("{:#}", args.to_config().unwrap_err());
        assert!(e.contains("disk_size"), "{e}");
    }

    #[test]
    fn flags_take_units() {
        let args = Args::parse_from([
            "larder",
            "--upstream",
            "http://127.0.0.1:1",
            "--cache-size",
            "64MiB",
            "--lock-timeout",
            "5s",
            "--lock-age-ms",
            "750",
            "--default-ttl",
            "2m",
            "--stale-if-error-secs",
            "30",
            "--shutdown-grace",
            "1m",
        ]);
        let c = args.to_config().unwrap();
        assert_eq!(c.cache.size, 64 << 20);
        assert_eq!((c.cache.lock_timeout_ms, c.cache.lock_age_ms), (5000, 750));
        assert_eq!(
            (c.cache.default_ttl_secs, c.cache.stale_if_error_secs),
            (Some(120), 30)
        );
        assert_eq!(c.shutdown_grace, Duration::from_mins(1));
        let e = Args::try_parse_from(["larder", "--lock-timeout", "soon"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--lock-timeout") && e.contains("invalid duration"),
            "{e}"
        );
    }

    #[test]
    fn listen_flag_replaces_the_file_listeners() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("larder.toml");
        std::fs::write(
            &path,
            "upstream = \"http://127.0.0.1:1\"\n[[listener]]\naddress = \"127.0.0.1:7\"\n",
        )
        .unwrap();
        let args = Args::parse_from([
            "larder",
            "--config",
            path.to_str().unwrap(),
            "--listen",
            "127.0.0.1:9",
        ]);
        let c = args.to_config().unwrap();
        let listeners = c.listener_list();
        assert_eq!(listeners.len(), 1);
        assert_eq!(listeners[0].address.port(), 9);
    }
}
