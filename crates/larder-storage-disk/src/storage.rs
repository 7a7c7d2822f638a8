//! [`DiskStorage`]: opening a cache directory, and the [`Storage`] implementation.

use std::any::Any;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, mpsc};
use std::time::Duration;

use async_trait::async_trait;
use larder_storage::metrics::MetricSample;
use larder_storage::storage::streaming_write::U64WriteId;
use larder_storage::{
    CacheKey, CacheMeta, CompactCacheKey, HitHandler, MissHandler, PurgeType, Result, Storage,
};
use tracing::Span;

use crate::DiskConfig;
use crate::error::DiskError;
use crate::inner::Inner;
use crate::layout::Name;
use crate::stats::{DiskStats, inc};

/// A [`Storage`] on a directory: see the [crate docs](crate).
pub struct DiskStorage {
    pub(crate) inner: Arc<Inner>,
    /// Dropped with the storage, which stops the saving thread.
    _stop: mpsc::Sender<()>,
}

impl std::fmt::Debug for DiskStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskStorage")
            .field("dir", &self.inner.layout.root)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl DiskStorage {
    /// Opens (or creates) the cache directory. Returns at once; the index of what is stored is
    /// loaded in the background (lookups work meanwhile, by reading the files).
    ///
    /// # Errors
    ///
    /// The directory cannot be created or read, or it holds files that are not a cache's
    /// ([`DiskError::NotACache`]), or a cache of another format ([`DiskError::OtherVersion`]),
    /// inside [`larder_storage::Error::Backend`] or, for I/O,
    /// [`larder_storage::Error::Unavailable`].
    pub fn open(config: DiskConfig) -> Result<Self> {
        let inner = Arc::new(Inner::new(config)?);
        let loader = Arc::clone(&inner);
        std::thread::Builder::new()
            .name("larder-disk-load".into())
            .spawn(move || crate::load::run(&loader))
            .map_err(DiskError::io(&inner.layout.root))?;
        let (stop, stopped) = mpsc::channel();
        let interval = inner.config.save_interval;
        if !interval.is_zero() {
            let weak = Arc::downgrade(&inner);
            std::thread::Builder::new()
                .name("larder-disk-save".into())
                .spawn(move || {
                    while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(interval)
                    {
                        let Some(inner) = weak.upgrade() else { break };
                        if let Err(e) = inner.save_state() {
                            tracing::warn!(error = %e, "cannot save the disk cache eviction state");
                        }
                    }
                })
                .map_err(DiskError::io(&inner.layout.root))?;
        }
        Ok(DiskStorage { inner, _stop: stop })
    }

    /// Whether the start-up load of the index has finished.
    pub fn is_loaded(&self) -> bool {
        self.inner.loaded.load(Ordering::Acquire)
    }

    /// Blocks until the start-up load has finished or `timeout` passed; returns
    /// [`is_loaded`](Self::is_loaded).
    pub fn wait_loaded(&self, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        while !self.is_loaded() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        self.is_loaded()
    }

    /// Saves the eviction state now (call on graceful shutdown). Does nothing while the saved
    /// state is still being loaded at start-up.
    ///
    /// # Errors
    ///
    /// The state file cannot be written.
    pub fn save_state(&self) -> Result<()> {
        self.inner.save_state()
    }

    /// Bytes held by complete entries.
    pub fn stored_bytes(&self) -> u64 {
        self.inner.index.manager().total_size() as u64
    }

    /// Number of complete entries.
    pub fn len(&self) -> usize {
        self.inner.index.manager().total_items()
    }

    /// Whether no entry is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The storage's figures now.
    pub fn stats(&self) -> DiskStats {
        let c = &self.inner.counters;
        let m = self.inner.index.manager();
        DiskStats {
            bytes: m.total_size() as u64,
            entries: m.total_items() as u64,
            max_bytes: self.inner.config.max_size,
            hits: c.hits.load(Ordering::Relaxed),
            misses: c.misses.load(Ordering::Relaxed),
            writes_stored: c.writes_stored.load(Ordering::Relaxed),
            evictions: m.evicted_items() as u64,
            corrupt: c.corrupt.load(Ordering::Relaxed),
            io_errors: c.io_errors.load(Ordering::Relaxed),
            loaded: self.is_loaded(),
            open_files: self.inner.hot.len() as u64,
            kept_body_bytes: self.inner.hot.kept_bytes() as u64,
        }
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.inner.layout.root
    }
}

#[async_trait]
impl Storage for DiskStorage {
    async fn lookup(
        &'static self,
        key: &CacheKey,
        _trace: &Span,
    ) -> Result<Option<(CacheMeta, HitHandler)>> {
        Ok(self.lookup_counted(key))
    }

    fn lookup_now(
        &'static self,
        key: &CacheKey,
        _trace: &Span,
    ) -> Option<Result<Option<(CacheMeta, HitHandler)>>> {
        Some(Ok(self.lookup_counted(key)))
    }

    async fn lookup_streaming_write(
        &'static self,
        key: &CacheKey,
        streaming_write_tag: Option<&[u8]>,
        trace: &Span,
    ) -> Result<Option<(CacheMeta, HitHandler)>> {
        let Some(tag) = streaming_write_tag else {
            return self.lookup(key, trace).await;
        };
        let Ok(id) = U64WriteId::try_from(tag).map(u64::from) else {
            return Ok(None);
        };
        let name = Name(key.combined_bin());
        let write = self
            .inner
            .writes(&name)
            .get(&name)
            .and_then(|w| w.iter().find(|w| w.id == id))
            .cloned();
        Ok(write.map(|w| w.reader()))
    }

    async fn get_miss_handler(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &Span,
    ) -> Result<MissHandler> {
        crate::write::start(&self.inner, key, meta)
    }

    async fn purge(
        &'static self,
        key: &CompactCacheKey,
        purge_type: PurgeType,
        _trace: &Span,
    ) -> Result<bool> {
        Ok(self.inner.purge_sync(key, purge_type))
    }

    async fn update_meta(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &Span,
    ) -> Result<bool> {
        self.inner.update_meta_sync(key, meta)
    }

    fn support_streaming_partial_write(&self) -> bool {
        true
    }

    fn metrics(&self, out: &mut Vec<MetricSample>) {
        out.extend(self.stats().samples());
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync + 'static) {
        self
    }
}

impl DiskStorage {
    fn lookup_counted(&self, key: &CacheKey) -> Option<(CacheMeta, HitHandler)> {
        let found = self.inner.lookup_sync(key);
        inc(if found.is_some() {
            &self.inner.counters.hits
        } else {
            &self.inner.counters.misses
        });
        found
    }
}
