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
        let (max_in_memory, max_on_disk) = self.max_object_sizes();
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
                // Redis bounds itself; unset, objects up to 8 MiB, and 0 lifts the limit.
                config.max_file_size = match self.max_object_size {
                    None => Some(8 << 20),
                    Some(0) => None,
                    Some(max) => Some(usize::try_from(max).unwrap_or(usize::MAX)),
                };
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
                // With a disk, a response too large for memory goes to the disk alone (the
                // memory tier's write limit); without one, memory holds every response whole
                // while it is written.
                config.max_file_size = Some(if self.storage.disk_path().is_some() {
                    max_on_disk
                } else {
                    max_in_memory
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
            let mut tier = Tier::new(storage)
                .with_name("memory")
                .with_eviction(eviction)
                .with_max_promote_size(max);
            if disk.is_some() {
                // What does not fit memory still goes to the disk.
                tier = tier.with_max_write_size(max);
            }
            tiers.push(local(tier));
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
            let mut tier = Tier::new(redis).with_name("redis");
            if disk.is_some() {
                // Behind a disk, Redis takes what it takes behind memory alone.
                tier = tier.with_max_write_size(memory_config.max_file_size.unwrap_or(usize::MAX));
            }
            tiers.push(tier);
        }
        let tiered: &'static TieredStorage = Box::leak(Box::new(TieredStorage::from_tiers(tiers)));
        Ok(Wired::Tiered {
            tiered,
            disk,
            redis,
        })
    }

    /// The largest object the memory tier and the disk store: `max_object_size` capped by
    /// each one's size (0: the size alone); unset, 8 MiB in memory and an eighth of
    /// `disk_size` on disk, so that one object never empties either.
    pub fn max_object_sizes(&self) -> (usize, usize) {
        let bytes = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        let (size, disk_size) = (bytes(self.size), bytes(self.disk_size));
        let cap = |limit: usize, default: usize| match self.max_object_size {
            None => default.min(limit),
            Some(0) => limit,
            Some(max) => bytes(max).min(limit),
        };
        (cap(size, 8 << 20), cap(disk_size, disk_size / 8))
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
        disk.eviction = if self.disk_eviction == EvictionPolicy::Lru {
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
mod tests;
