//! Wiring the storage a `[cache]` table names (memory, Redis, or memory in front of Redis)
//! into the layer's [`CacheConfig`].

use std::time::Duration;

use larder_proxy::CacheConfig;
use larder_storage_redis::{RedisConfig, RedisStorage, TieredStorage};

use crate::Error;
use crate::config::{CacheSettings, StorageBackend};

/// The storage built for a configuration, with its concrete parts, before the layer sees it
/// only as a `Storage`.
#[derive(Debug, Clone, Copy)]
enum Wired {
    /// The layer's own bounded `MemCache`.
    Memory,
    /// One Redis shared by a fleet.
    Redis(&'static RedisStorage),
    /// The memory tier in front of Redis.
    Tiered {
        tiered: &'static TieredStorage,
        /// The back tier, as built (the tiered storage holds it as a `Storage`).
        #[cfg_attr(not(test), allow(dead_code))]
        redis: &'static RedisStorage,
    },
}

impl CacheSettings {
    /// The [`CacheConfig`] these settings describe: the storage (see the module docs), its
    /// eviction manager, lock timeouts, object size limit, freshness defaults, purge token,
    /// `Cache-Status` name and Set-Cookie policy. [`crate::build_layer`] wraps it in a layer.
    ///
    /// The storage and its parts are leaked so they are `'static`; call this once per
    /// process (or per test).
    ///
    /// # Errors
    ///
    /// [`Error::ConfigInvalid`] for an unusable Redis URL or setting, or when called outside
    /// a Tokio runtime with Redis storage.
    pub fn cache_config(&self) -> Result<CacheConfig, Error> {
        self.wire().map(|(config, _)| config)
    }

    /// [`cache_config`](Self::cache_config), and the storage it built.
    fn wire(&self) -> Result<(CacheConfig, Wired), Error> {
        let size = usize::try_from(self.size).unwrap_or(usize::MAX);
        let mut config = CacheConfig::in_memory(size, self.eviction)
            .with_lock_timeouts(self.lock_age(), self.lock_timeout());
        let max = usize::try_from(self.max_object_size).unwrap_or(usize::MAX);
        // Memory holds a response whole while it is written: never more than its size.
        let max_in_memory = if max == 0 { size } else { max.min(size) };
        config.max_file_size = Some(max_in_memory);
        let wired = match &self.storage {
            StorageBackend::Memory => Wired::Memory,
            StorageBackend::Redis(url) => Wired::Redis(self.redis_storage(url)?),
            StorageBackend::Tiered(url) => {
                let redis = self.redis_storage(url)?;
                let (Some(memory), Some(eviction)) = (config.storage, config.eviction) else {
                    return Err(Error::ConfigInvalid(
                        "memory+redis storage: no memory tier to put in front".to_owned(),
                    ));
                };
                let mut tiered = TieredStorage::new(memory, redis)
                    .with_eviction(eviction)
                    .with_max_promote_size(max_in_memory);
                if self.local_ttl_secs != 0 {
                    tiered = tiered.with_front_ttl(Duration::from_secs(self.local_ttl_secs));
                }
                let tiered: &'static TieredStorage = Box::leak(Box::new(tiered));
                Wired::Tiered { tiered, redis }
            }
        };
        match wired {
            Wired::Memory => {}
            Wired::Redis(redis) => {
                config.storage = Some(redis);
                // Redis bounds itself.
                config.eviction = None;
                config.max_file_size = (max != 0).then_some(max);
            }
            Wired::Tiered { tiered, .. } => {
                config.storage = Some(tiered);
                // The tiered storage keeps the memory tier within `size` itself (promotions
                // from Redis included), so the layer gets no eviction manager of its own.
                config.eviction = None;
            }
        }
        config.defaults = self.meta_defaults();
        config.cache_status_name.clone_from(&self.cache_status_name);
        config.purge_token.clone_from(&self.purge_token);
        config.set_cookie = self.set_cookie;
        Ok((config, wired))
    }

    /// A leaked [`RedisStorage`] for `url` with the `redis_*` settings.
    fn redis_storage(&self, url: &str) -> Result<&'static RedisStorage, Error> {
        let mut redis = RedisConfig::new(url);
        redis.prefix.clone_from(&self.redis_prefix);
        redis.timeout = Duration::from_millis(self.redis_timeout_ms);
        let storage = RedisStorage::new(redis)
            .map_err(|e| Error::ConfigInvalid(format!("redis storage: {e}")))?;
        Ok(Box::leak(Box::new(storage)))
    }
}

#[cfg(test)]
mod tests {
    use larder_storage::Storage;

    use super::*;

    /// Whether the layer's storage is `storage` (the same object, not a copy).
    fn is_layer_storage(config: &CacheConfig, storage: &'static (dyn Storage + Sync)) -> bool {
        config
            .storage
            .is_some_and(|s| std::ptr::addr_eq(std::ptr::from_ref(s), std::ptr::from_ref(storage)))
    }

    #[tokio::test]
    async fn tiered_storage_puts_the_sized_memory_tier_in_front_of_redis() {
        let mut settings = CacheSettings {
            size: 1 << 20,
            max_object_size: 0,
            storage: "memory+redis://127.0.0.1:1".parse().unwrap(),
            local_ttl_secs: 5,
            ..CacheSettings::default()
        };
        // Nothing listens on port 1: the storage connects lazily, so building works.
        let (config, wired) = settings.wire().unwrap();
        let Wired::Tiered { tiered, redis } = wired else {
            panic!("a tiered storage: {wired:?}");
        };
        assert!(is_layer_storage(&config, tiered));
        assert!(std::ptr::addr_eq(
            std::ptr::from_ref(tiered.back()),
            std::ptr::from_ref(redis)
        ));
        assert!(
            config.eviction.is_none(),
            "the tiered storage evicts itself"
        );
        let front = tiered.eviction().expect("the memory tier is bounded");
        for i in 0..4 {
            let key = larder_storage::CacheKey::new("", format!("object-{i}"), "");
            front.admit(key.to_compact(), 600 << 10, std::time::SystemTime::now());
        }
        assert!(front.total_size() <= 1 << 20, "{}", front.total_size());
        assert_eq!(
            config.max_file_size,
            Some(1 << 20),
            "no object larger than memory"
        );
        assert_eq!(redis.config().url, "redis://127.0.0.1:1");
        assert_eq!(redis.config().timeout, Duration::from_millis(250));

        settings.max_object_size = 1000;
        settings.redis_prefix = "edge:".into();
        let (config, wired) = settings.wire().unwrap();
        assert_eq!(config.max_file_size, Some(1000));
        let Wired::Tiered { redis, .. } = wired else {
            panic!("a tiered storage: {wired:?}");
        };
        assert_eq!(redis.config().prefix, "edge:");

        settings.storage = "redis://127.0.0.1:1".parse().unwrap();
        settings.local_ttl_secs = 0;
        let (config, wired) = settings.wire().unwrap();
        let Wired::Redis(redis) = wired else {
            panic!("a redis storage: {wired:?}");
        };
        assert!(is_layer_storage(&config, redis));
        assert!(config.eviction.is_none());
        assert_eq!(config.max_file_size, Some(1000));

        settings.storage = StorageBackend::Memory;
        let (config, wired) = settings.wire().unwrap();
        assert!(matches!(wired, Wired::Memory));
        assert!(config.storage.is_some() && config.eviction.is_some());
    }

    /// The proxy asks `larder_cache::Error::is_unavailable` of a failed storage call (to log an
    /// outage quietly): a Redis that cannot be reached answers yes, through both storages the
    /// binary wires; an error about the data answers no.
    #[tokio::test]
    async fn a_redis_outage_reaches_the_proxy_as_unavailable() {
        let span = tracing::Span::none();
        let key = larder_storage::CacheKey::new("", "/down", "");
        for storage in ["redis://127.0.0.1:1", "memory+redis://127.0.0.1:1"] {
            let settings = CacheSettings {
                storage: storage.parse().unwrap(),
                ..CacheSettings::default()
            };
            let (config, wired) = settings.wire().unwrap();
            let redis = match wired {
                Wired::Redis(redis) | Wired::Tiered { redis, .. } => redis,
                Wired::Memory => panic!("{storage}: a redis storage"),
            };
            let e = redis.lookup(&key, &span).await.map(|_| ()).unwrap_err();
            assert!(e.is_unavailable(), "{storage}: {e}");
            assert!(larder_cache::Error::from(e).is_unavailable(), "{storage}");
            // What the layer sees: a tiered storage turns the outage into a plain miss.
            let layer_storage = config.storage.unwrap();
            let found = layer_storage.lookup(&key, &span).await;
            match storage {
                "redis://127.0.0.1:1" => {
                    let e = found.map(|_| ()).unwrap_err();
                    assert!(larder_cache::Error::from(e).is_unavailable(), "{storage}");
                }
                _ => assert!(found.unwrap().is_none(), "{storage}: a miss"),
            }
        }
        let corrupt = larder_storage::Error::from(larder_storage_redis::Error::CorruptEntry {
            reason: "meta does not decode",
        });
        assert!(!larder_cache::Error::from(corrupt).is_unavailable());
    }

    #[test]
    fn redis_storage_outside_a_runtime_is_an_error() {
        let settings = CacheSettings {
            storage: "memory+redis://127.0.0.1:1".parse().unwrap(),
            ..CacheSettings::default()
        };
        let e = settings.cache_config().map(|_| ()).unwrap_err().to_string();
        assert!(e.contains("tokio runtime"), "{e}");
    }
}
