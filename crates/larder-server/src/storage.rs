//! Wiring the storage a `[cache]` table names (memory, Redis, a disk, or tiers of them) into
//! the layer's [`CacheConfig`].

use std::path::Path;
use std::time::Duration;

use larder_proxy::CacheConfig;
use larder_proxy::config::EvictionPolicy;
use larder_storage::Storage;
use larder_storage::tiered::{Tier, TieredStorage};
use larder_storage_disk::{DiskConfig, DiskStorage, Eviction, SyncPolicy};
use larder_storage_redis::{RedisConfig, RedisStorage};

use crate::Error;
use crate::config::{CacheSettings, DiskSync, StorageBackend};

/// The storage built for a configuration, with its concrete parts, before the layer sees it
/// only as a `Storage`.
#[derive(Debug, Clone, Copy)]
enum Wired {
    /// The layer's own bounded `MemCache`.
    Memory,
    /// One Redis shared by a fleet.
    Redis(&'static RedisStorage),
    /// A disk alone.
    Disk(&'static DiskStorage),
    /// Tiers: memory, disk and Redis, in that order, at least two of them.
    Tiered {
        tiered: &'static TieredStorage,
        /// The disk tier, as built (the tiered storage holds it as a `Storage`).
        #[cfg_attr(not(test), allow(dead_code))]
        disk: Option<&'static DiskStorage>,
        /// The Redis tier, as built.
        #[cfg_attr(not(test), allow(dead_code))]
        redis: Option<&'static RedisStorage>,
    },
}

/// The disk storage of a layer's `storage` (a [`DiskStorage`] alone or a tier of a
/// [`TieredStorage`]), if it has one: what the binary asks to
/// [`save_state`](DiskStorage::save_state) on a graceful shutdown.
pub fn disk_storage(storage: &'static (dyn Storage + Sync)) -> Option<&'static DiskStorage> {
    let any = storage.as_any();
    if let Some(disk) = any.downcast_ref::<DiskStorage>() {
        return Some(disk);
    }
    any.downcast_ref::<TieredStorage>()
        .and_then(TieredStorage::tier_as::<DiskStorage>)
}

impl CacheSettings {
    /// The [`CacheConfig`] these settings describe: the storage (see the module docs), its
    /// eviction manager, lock timeouts, object size limit, freshness defaults, purge token,
    /// `Cache-Status` name and Set-Cookie policy. [`crate::build_layer`] wraps it in a layer.
    ///
    /// The storage and its parts are leaked so they are `'static`; call this once per
    /// process (or per test). Find a disk tier in it with [`crate::disk_storage`].
    ///
    /// # Errors
    ///
    /// [`Error::ConfigInvalid`] for an unusable Redis URL or setting, a cache directory that
    /// cannot be opened, or when called outside a Tokio runtime with Redis storage.
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
        // Nor does the disk hold more than its size.
        let disk_size = usize::try_from(self.disk_size).unwrap_or(usize::MAX);
        let max_on_disk = if max == 0 {
            disk_size
        } else {
            max.min(disk_size)
        };
        config.max_file_size = Some(max_in_memory);
        let wired = match &self.storage {
            StorageBackend::Memory => Wired::Memory,
            StorageBackend::Redis(url) => Wired::Redis(self.redis_storage(url)?),
            StorageBackend::Disk {
                memory: false,
                path,
                redis: None,
            } => Wired::Disk(self.disk_storage(path)?),
            StorageBackend::Tiered(url) => {
                self.tiers(&config, true, None, Some(url), max_in_memory)?
            }
            // A promotion is collected in memory until the body ends: promotions into the disk
            // are bounded by the memory size too.
            StorageBackend::Disk {
                memory,
                path,
                redis,
            } => self.tiers(
                &config,
                *memory,
                Some(path),
                redis.as_deref(),
                max_in_memory.min(max_on_disk),
            )?,
        };
        match wired {
            Wired::Memory => {}
            Wired::Redis(redis) => {
                config.storage = Some(redis);
                // Redis bounds itself.
                config.eviction = None;
                config.max_file_size = (max != 0).then_some(max);
            }
            Wired::Disk(disk) => {
                config.storage = Some(disk);
                // The disk bounds itself, and its size (not memory's) bounds an object.
                config.eviction = None;
                config.max_file_size = Some(max_on_disk);
            }
            Wired::Tiered { tiered, .. } => {
                config.storage = Some(tiered);
                // The tiered storage keeps the memory tier within `size` itself (promotions
                // included), and the disk and Redis bound themselves, so the layer gets no
                // eviction manager of its own.
                config.eviction = None;
                // The first tier holds what readers stream: with memory first, a response is
                // held in memory whole; with the disk first, on disk.
                config.max_file_size = Some(if self.storage.has_memory() {
                    max_in_memory
                } else {
                    max_on_disk
                });
            }
        }
        config.defaults = self.meta_defaults();
        config.cache_status_name.clone_from(&self.cache_status_name);
        config.purge_token.clone_from(&self.purge_token);
        config.set_cookie = self.set_cookie;
        Ok((config, wired))
    }

    /// A [`TieredStorage`] of the memory tier of `memory_config` (when `memory`), the disk at
    /// `disk` and the Redis at `redis`, in that order. Local tiers in front of Redis get
    /// `local_ttl_secs`; the disk takes promotions from Redis up to `max_promote_to_disk`.
    fn tiers(
        &self,
        memory_config: &CacheConfig,
        memory: bool,
        disk: Option<&Path>,
        redis: Option<&str>,
        max_promote_to_disk: usize,
    ) -> Result<Wired, Error> {
        let ttl = (redis.is_some() && self.local_ttl_secs != 0)
            .then(|| Duration::from_secs(self.local_ttl_secs));
        let local = |tier: Tier| match ttl {
            Some(ttl) => tier.with_ttl(ttl),
            None => tier,
        };
        let mut tiers = Vec::with_capacity(3);
        if memory {
            let (Some(storage), Some(eviction), Some(max)) = (
                memory_config.storage,
                memory_config.eviction,
                memory_config.max_file_size,
            ) else {
                return Err(Error::ConfigInvalid(
                    "tiered storage: no memory tier to put in front".to_owned(),
                ));
            };
            tiers.push(local(
                Tier::new(storage)
                    .with_name("memory")
                    .with_eviction(eviction)
                    .with_max_promote_size(max),
            ));
        }
        let disk = disk.map(|path| self.disk_storage(path)).transpose()?;
        if let Some(disk) = disk {
            tiers.push(local(
                Tier::new(disk)
                    .with_name("disk")
                    .with_max_promote_size(max_promote_to_disk),
            ));
        }
        let redis = redis.map(|url| self.redis_storage(url)).transpose()?;
        if let Some(redis) = redis {
            tiers.push(Tier::new(redis).with_name("redis"));
        }
        let tiered: &'static TieredStorage = Box::leak(Box::new(TieredStorage::from_tiers(tiers)));
        Ok(Wired::Tiered {
            tiered,
            disk,
            redis,
        })
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

    /// The [`DiskConfig`] for the directory `path` with the `disk_*` settings and the
    /// `eviction` policy.
    fn disk_config(&self, path: &Path) -> DiskConfig {
        let mut disk = DiskConfig::new(path, self.disk_size);
        disk.eviction = if self.eviction == EvictionPolicy::Lru {
            Eviction::Lru
        } else {
            Eviction::TinyUfo
        };
        disk.sync = match self.disk_sync {
            DiskSync::Never => SyncPolicy::Never,
            DiskSync::Always => SyncPolicy::Always,
        };
        disk
    }

    /// A leaked [`DiskStorage`] on `path`.
    fn disk_storage(&self, path: &Path) -> Result<&'static DiskStorage, Error> {
        let storage = DiskStorage::open(self.disk_config(path))
            .map_err(|e| Error::ConfigInvalid(format!("disk storage {}: {e}", path.display())))?;
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
        let Wired::Tiered {
            tiered,
            disk: None,
            redis: Some(redis),
        } = wired
        else {
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
        let Wired::Tiered {
            redis: Some(redis), ..
        } = wired
        else {
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
            let (Wired::Redis(redis)
            | Wired::Tiered {
                redis: Some(redis), ..
            }) = wired
            else {
                panic!("{storage}: a redis storage")
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

    /// The names of a tiered storage's tiers, in order.
    fn tier_names(tiered: &TieredStorage) -> Vec<&'static str> {
        tiered.tiers().map(|t| t.name().unwrap()).collect()
    }

    fn settings(storage: &str) -> CacheSettings {
        CacheSettings {
            size: 1 << 20,
            disk_size: 64 << 20,
            max_object_size: 0,
            storage: storage.parse().unwrap(),
            ..CacheSettings::default()
        }
    }

    #[tokio::test]
    async fn disk_alone_bounds_itself_and_objects_by_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache");
        let mut settings = settings(&format!("disk:{}", path.display()));
        let (config, wired) = settings.wire().unwrap();
        let Wired::Disk(disk) = wired else {
            panic!("a disk storage: {wired:?}");
        };
        assert!(is_layer_storage(&config, disk));
        assert!(config.eviction.is_none(), "the disk evicts itself");
        assert_eq!(
            config.max_file_size,
            Some(64 << 20),
            "the disk's size bounds an object, not memory's"
        );
        assert!(std::ptr::eq(
            disk_storage(config.storage.unwrap()).unwrap(),
            disk
        ));

        settings.max_object_size = 10 << 20;
        let (config, _) = settings.wire().unwrap();
        assert_eq!(config.max_file_size, Some(10 << 20));
        settings.max_object_size = 1 << 30;
        let (config, _) = settings.wire().unwrap();
        assert_eq!(config.max_file_size, Some(64 << 20));
    }

    #[test]
    fn the_disk_gets_its_size_path_sync_and_eviction_policy() {
        let mut settings = settings("disk:/var/cache/larder");
        settings.eviction = EvictionPolicy::Lru;
        settings.disk_sync = DiskSync::Always;
        let disk = settings.disk_config(Path::new("/var/cache/larder"));
        assert_eq!(disk.dir, Path::new("/var/cache/larder"));
        assert_eq!(disk.max_size, 64 << 20);
        assert_eq!(
            (disk.eviction, disk.sync),
            (Eviction::Lru, SyncPolicy::Always)
        );
        settings.eviction = EvictionPolicy::Tinyufo;
        settings.disk_sync = DiskSync::Never;
        let disk = settings.disk_config(Path::new("/c"));
        assert_eq!(
            (disk.eviction, disk.sync),
            (Eviction::TinyUfo, SyncPolicy::Never)
        );
    }

    #[tokio::test]
    async fn memory_in_front_of_the_disk_is_bounded_by_memory() {
        let dir = tempfile::tempdir().unwrap();
        let settings = settings(&format!("memory+disk:{}", dir.path().display()));
        let (config, wired) = settings.wire().unwrap();
        let Wired::Tiered {
            tiered,
            disk: Some(disk),
            redis: None,
        } = wired
        else {
            panic!("memory and disk tiers: {wired:?}");
        };
        assert!(is_layer_storage(&config, tiered));
        assert_eq!(tier_names(tiered), ["memory", "disk"]);
        assert!(config.eviction.is_none(), "the tiers bound themselves");
        assert_eq!(
            config.max_file_size,
            Some(1 << 20),
            "memory holds a response while it is written"
        );
        let memory = tiered.tier(0).unwrap();
        let front = memory.eviction().expect("the memory tier is bounded");
        for i in 0..4 {
            let key = larder_storage::CacheKey::new("", format!("object-{i}"), "");
            front.admit(key.to_compact(), 600 << 10, std::time::SystemTime::now());
        }
        assert!(front.total_size() <= 1 << 20, "{}", front.total_size());
        assert_eq!(memory.max_promote_size(), 1 << 20, "disk hits are promoted");
        let disk_tier = tiered.tier(1).unwrap();
        assert!(disk_tier.eviction().is_none(), "the disk bounds itself");
        assert!(std::ptr::addr_eq(
            std::ptr::from_ref(disk_tier.storage()),
            std::ptr::from_ref(disk)
        ));
        assert!(memory.ttl().is_none() && disk_tier.ttl().is_none());
        assert!(std::ptr::eq(disk_storage(tiered).unwrap(), disk));
    }

    #[tokio::test]
    async fn memory_disk_and_redis_make_three_tiers_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = settings(&format!(
            "memory+disk:{}+redis://127.0.0.1:1",
            dir.path().display()
        ));
        settings.local_ttl_secs = 7;
        let (config, wired) = settings.wire().unwrap();
        let Wired::Tiered {
            tiered,
            disk: Some(disk),
            redis: Some(redis),
        } = wired
        else {
            panic!("three tiers: {wired:?}");
        };
        assert!(is_layer_storage(&config, tiered));
        assert_eq!(tier_names(tiered), ["memory", "disk", "redis"]);
        let ttls: Vec<_> = tiered.tiers().map(Tier::ttl).collect();
        let seven = Some(Duration::from_secs(7));
        assert_eq!(ttls, [seven, seven, None], "local tiers only");
        assert!(std::ptr::eq(
            tiered.tier_as::<RedisStorage>().unwrap(),
            redis
        ));
        assert!(std::ptr::eq(disk_storage(tiered).unwrap(), disk));
        assert_eq!(redis.config().url, "redis://127.0.0.1:1");
        assert!(config.eviction.is_none());
        assert_eq!(config.max_file_size, Some(1 << 20));
        assert_eq!(
            tiered.tier(1).unwrap().max_promote_size(),
            1 << 20,
            "a promotion is collected in memory: bounded by its size"
        );

        let settings = CacheSettings {
            storage: format!("disk:{}+redis://127.0.0.1:1", dir.path().display())
                .parse()
                .unwrap(),
            ..settings
        };
        let (config, wired) = settings.wire().unwrap();
        let Wired::Tiered { tiered, .. } = wired else {
            panic!("two tiers: {wired:?}");
        };
        assert_eq!(tier_names(tiered), ["disk", "redis"]);
        assert!(config.eviction.is_none());
        assert_eq!(
            config.max_file_size,
            Some(64 << 20),
            "the disk is first: its size bounds an object"
        );
    }

    #[tokio::test]
    async fn memory_and_redis_storages_have_no_disk() {
        for storage in [
            "memory",
            "redis://127.0.0.1:1",
            "memory+redis://127.0.0.1:1",
        ] {
            let (config, _) = settings(storage).wire().unwrap();
            assert!(disk_storage(config.storage.unwrap()).is_none(), "{storage}");
        }
    }

    /// Passes once the disk storage checks its directory at open (the engine's job).
    #[tokio::test]
    async fn a_cache_directory_that_cannot_be_opened_is_a_config_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-directory");
        std::fs::write(&file, b"x").unwrap();
        for storage in [
            format!("disk:{}", file.display()),
            format!("memory+disk:{}", file.display()),
        ] {
            let e = settings(&storage)
                .cache_config()
                .map(|_| ())
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("disk storage") && e.contains("not-a-directory"),
                "{storage}: {e}"
            );
        }
    }
}
