//! SKELETON (issue 15): the public API the disk tier's helpers agreed on. The engine fills it in;
//! nothing here lands on main as it is.

use std::path::PathBuf;
use std::time::Duration;

/// Which eviction manager bounds the directory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Eviction {
    /// `larder_storage::eviction::lru::Manager`.
    #[default]
    Lru,
    /// `larder_storage::eviction::tinyufo::Manager`.
    TinyUfo,
}

/// When written files are flushed to the device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SyncPolicy {
    /// Never fsync: an entry is visible once complete and renamed into place; a process crash
    /// keeps it (the kernel has the data), a power loss may lose it, and the checksums turn
    /// what was lost into a miss.
    #[default]
    Never,
    /// fsync the body, the meta file and the directory before the entry becomes visible.
    Always,
}

/// How a [`DiskStorage`] is opened.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DiskConfig {
    /// The cache directory (created if missing; refused if it holds something else).
    pub dir: PathBuf,
    /// The most bytes the stored entries (meta files plus bodies) may take.
    pub max_size: u64,
    /// The eviction manager's policy.
    pub eviction: Eviction,
    /// When files are fsynced.
    pub sync: SyncPolicy,
    /// How often the eviction state is saved in the background (also saved by
    /// [`DiskStorage::save_state`]). Zero: only when asked.
    pub save_interval: Duration,
}

impl DiskConfig {
    /// A directory bounded to `max_size` bytes, LRU eviction, no fsync, state saved every 30 s.
    pub fn new(dir: impl Into<PathBuf>, max_size: u64) -> Self {
        DiskConfig {
            dir: dir.into(),
            max_size,
            eviction: Eviction::Lru,
            sync: SyncPolicy::Never,
            save_interval: Duration::from_secs(30),
        }
    }
}

/// A `Storage` on a directory.
#[derive(Debug)]
pub struct DiskStorage {
    _config: DiskConfig,
}

impl DiskStorage {
    /// Opens (or creates) the cache directory. Returns at once; the index of what is stored is
    /// loaded in the background (lookups work meanwhile, by reading the files).
    ///
    /// # Errors
    ///
    /// The directory cannot be created or read, or it holds files that are not a cache's.
    pub fn open(config: DiskConfig) -> larder_storage::Result<Self> {
        Ok(DiskStorage { _config: config })
    }

    /// Whether the start-up load of the index has finished.
    pub fn is_loaded(&self) -> bool {
        unimplemented!("skeleton")
    }

    /// Saves the eviction state now (call on graceful shutdown).
    ///
    /// # Errors
    ///
    /// The state file cannot be written.
    pub fn save_state(&self) -> larder_storage::Result<()> {
        unimplemented!("skeleton")
    }

    /// Bytes held by complete entries.
    pub fn stored_bytes(&self) -> u64 {
        unimplemented!("skeleton")
    }

    /// Number of complete entries.
    pub fn len(&self) -> usize {
        unimplemented!("skeleton")
    }

    /// Whether no entry is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait::async_trait]
impl larder_storage::Storage for DiskStorage {
    async fn lookup(
        &'static self,
        _key: &larder_storage::CacheKey,
        _trace: &tracing::Span,
    ) -> larder_storage::Result<Option<(larder_storage::CacheMeta, larder_storage::HitHandler)>>
    {
        unimplemented!("skeleton")
    }
    async fn get_miss_handler(
        &'static self,
        _key: &larder_storage::CacheKey,
        _meta: &larder_storage::CacheMeta,
        _trace: &tracing::Span,
    ) -> larder_storage::Result<larder_storage::MissHandler> {
        unimplemented!("skeleton")
    }
    async fn purge(
        &'static self,
        _key: &larder_storage::CompactCacheKey,
        _purge_type: larder_storage::PurgeType,
        _trace: &tracing::Span,
    ) -> larder_storage::Result<bool> {
        unimplemented!("skeleton")
    }
    async fn update_meta(
        &'static self,
        _key: &larder_storage::CacheKey,
        _meta: &larder_storage::CacheMeta,
        _trace: &tracing::Span,
    ) -> larder_storage::Result<bool> {
        unimplemented!("skeleton")
    }
    fn support_streaming_partial_write(&self) -> bool {
        true
    }
    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync + 'static) {
        self
    }
}
