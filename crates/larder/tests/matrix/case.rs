//! One cell of the matrix: a transport, a storage, and the proxy built on them.

use std::time::Duration;

use http::Method;
use larder::proxy::CacheConfig;
use larder::storage_redis::{RedisConfig, RedisStorage, TieredStorage};
use larder_testkit::{Got, HttpClient, Member, Origin, Proxy, RedisServer, Transport};

/// Where the proxy stores responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Store {
    /// In process memory (the default).
    Memory,
    /// A Redis server alone.
    Redis,
    /// Memory in front of a Redis server.
    Tiered,
}

/// A transport and a storage, with the `redis-server` the storage needs.
pub(crate) struct Case {
    transport: Transport,
    store: Store,
    client: HttpClient,
    redis: Option<RedisServer>,
}

impl Case {
    /// The case, or `None` (saying why) when the storage needs Redis and `redis-server` is
    /// missing.
    pub(crate) async fn new(transport: Transport, store: Store) -> Option<Self> {
        let redis = if store == Store::Memory {
            None
        } else if let Err(why) = RedisServer::available() {
            println!("skipped: {store:?} storage needs Redis: {why}");
            return None;
        } else {
            // Starting the server blocks; keep it off the runtime's workers.
            Some(
                tokio::task::spawn_blocking(RedisServer::start)
                    .await
                    .unwrap(),
            )
        };
        Some(Self {
            transport,
            store,
            client: transport.client(),
            redis,
        })
    }

    /// `config` with this case's storage in place of its memory storage.
    fn with_store(&self, mut config: CacheConfig) -> CacheConfig {
        let Some(redis) = &self.redis else {
            return config;
        };
        let back: &'static RedisStorage = Box::leak(Box::new(
            RedisStorage::new(RedisConfig::new(redis.url())).unwrap(),
        ));
        match self.store {
            Store::Memory => {}
            Store::Redis => {
                // Redis bounds itself.
                config.storage = Some(back);
                config.eviction = None;
            }
            Store::Tiered => {
                let (Some(front), Some(eviction)) = (config.storage, config.eviction) else {
                    panic!("a tiered case needs a memory storage to put in front");
                };
                // The tiered storage keeps the memory tier within its size itself.
                let tiered = TieredStorage::new(front, back)
                    .with_eviction(eviction)
                    .with_max_promote_size(config.max_file_size.unwrap_or(1 << 20));
                config.storage = Some(Box::leak(Box::new(tiered)));
                config.eviction = None;
            }
        }
        config
    }

    /// A proxy with `config` (an in-memory one, whose storage this case replaces) in front of
    /// `origin`, served for this case's transport (over TLS for the TLS ones).
    pub(crate) async fn proxy(&self, origin: &Origin, config: CacheConfig) -> Proxy {
        Proxy::start_over(self.transport, origin, self.with_store(config)).await
    }

    /// Sends a request over this case's transport; checks the answer came in its version.
    pub(crate) async fn send(&self, method: Method, url: &str, headers: &[(&str, &str)]) -> Got {
        assert_eq!(
            url.starts_with("https://"),
            self.transport.is_tls(),
            "{self}: {url}"
        );
        let got = larder_testkit::send_with(&self.client, method, url, headers).await;
        assert_eq!(got.version, self.transport.version(), "{self}");
        got
    }

    /// A plain GET over this case's transport.
    pub(crate) async fn get(&self, url: &str) -> Got {
        self.send(Method::GET, url, &[]).await
    }

    /// Waits until `proxy` has stored `fills` responses in all. A proxy may answer a fill
    /// before it finishes storing it (a Redis write is published after the last byte goes out),
    /// so a scenario that asserts a hit next waits for the entry first.
    pub(crate) async fn settled(&self, proxy: &Proxy, fills: u64) {
        for _ in 0..250 {
            if proxy.layer.metrics().stored.get() >= fills {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{self}: the proxy never stored {fills} responses");
    }
}

impl std::fmt::Display for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} over {:?} storage",
            self.transport.as_str(),
            self.store
        )
    }
}

/// The proxy's own member of a response's `Cache-Status`.
pub(crate) fn ours(got: &Got) -> Member {
    let cache = got.cache();
    let member = cache.last().cloned();
    member.unwrap_or_else(|| panic!("no Cache-Status member: {:?}", got.headers))
}
