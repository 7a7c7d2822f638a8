//! A persistent, crash-safe disk [`Storage`](larder_storage::Storage): a file per object on
//! the OS page cache, checksummed, bounded by a byte size through an eviction manager whose
//! state survives restarts.
//!
//! # Example
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use bytes::Bytes;
//! use http::StatusCode;
//! use larder_storage::{CacheKey, CacheMeta, ResponseHeader, Storage};
//! use larder_storage_disk::{DiskConfig, DiskStorage};
//!
//! # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
//! let dir = tempfile::tempdir()?;
//! let disk = DiskStorage::open(DiskConfig::new(dir.path(), 64 << 20))?;
//! let disk: &'static DiskStorage = Box::leak(Box::new(disk));
//! let span = tracing::Span::none();
//! let key = CacheKey::new("", "https://example.com/", "");
//! let now = SystemTime::now();
//! let meta = CacheMeta::new(now + Duration::from_secs(60), now, 0, 0,
//!     ResponseHeader::new(StatusCode::OK));
//!
//! let mut miss = disk.get_miss_handler(&key, &meta, &span).await?;
//! miss.write_body(Bytes::from_static(b"hello"), true).await?;
//! miss.finish().await?;
//!
//! let (meta, mut hit) = disk.lookup(&key, &span).await?.expect("stored");
//! assert_eq!(meta.response_header().status, StatusCode::OK);
//! assert_eq!(hit.read_body().await?.as_deref(), Some(&b"hello"[..]));
//! assert_eq!(hit.read_body().await?, None);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Why a file per object
//!
//! The engine is nginx's `proxy_cache` design: each entry is a meta file (key, checksums,
//! the serialized `CacheMeta`, and the body itself when it is at most 64 KiB) plus, for
//! larger bodies, a body file; reads go through the OS page cache. It gives what the cache
//! needs and a block engine does not:
//!
//! - **Streaming writes readable while in progress**: a body is written to its file as it
//!   arrives, and readers of the write read that file up to the written length.
//! - **Objects of any size**, far larger than memory: a body is never held whole in memory,
//!   neither when written nor when read (reads go chunk by chunk).
//! - **Crash safety by rename**: an entry becomes visible by one `rename` of its meta file,
//!   so a crash leaves the old entry or the new one, never a mix; per-chunk CRC-32s turn a
//!   torn or corrupted file into a miss.
//!
//! foyer's block engine stores whole values bounded by its block (region) size and has no
//! reader of a value in progress, so it would need a second store for large objects and a
//! memory spool for streaming. Measured figures comparing the two are in the benchmarks
//! document, section "disk engine choice" (`docs/benchmarks.md#disk-engine-choice`).
//!
//! Reads and writes are plain blocking syscalls on the calling thread, as nginx does without
//! `aio threads`: with the data in the page cache they take microseconds, less than handing
//! them to a thread pool would.
//!
//! # Hot entries
//!
//! Like nginx's `open_file_cache`, up to [`DiskConfig::open_files`] recently hit entries keep
//! their decoded `CacheMeta`, body place, chunk CRC-32s and an open descriptor of the file
//! holding the body (one descriptor each; at most a quarter of the soft `RLIMIT_NOFILE`), so
//! their hits are one positional read and a CRC check of the body. Up to
//! [`DiskConfig::kept_bodies`] bytes of their inline bodies (≤ 64 KiB each), verified when
//! the meta file was decoded, are kept with them, so a hit of those reads nothing and checks
//! nothing. Stored files are never
//! written once renamed into place, and every change of a name's files (commit, meta update,
//! purge, eviction, corruption found, start-up removal) drops its hot entry under the name's
//! lock (its kept body with it), so a hot entry is never stale. `docs/disk.md` has the details.
//!
//! # Layout, format and crash safety
//!
//! The layout is below, the meta file format in [`format`](mod@format), and `docs/disk.md` has
//! the commit protocol, the crash-safety policy ([`SyncPolicy`]), start-up and errors.
//!
//! ## Layout
//!
//! ```text
//! <dir>/larder-disk-cache            marker with the format version
//! <dir>/objects/ab/cd/<32 hex>       meta file (the body inline when ≤ 64 KiB)
//! <dir>/objects/ab/cd/<32 hex>.<id>  body file of a larger body
//! <dir>/tmp/                         writes in progress (emptied at open)
//! <dir>/eviction/                    saved eviction state
//! ```
//!
//! A directory that is not empty and has no marker is refused (it is someone's files), as is
//! a cache of another format version.

mod error;
pub mod format;
mod hot;
mod inner;
mod layout;
mod load;
mod lookup;
mod read;
mod stats;
mod storage;
mod write;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub use error::DiskError;
pub use stats::DiskStats;
pub use storage::DiskStorage;

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
    /// How many recently hit entries keep their decoded meta and an open descriptor of the
    /// file holding their body (nginx's `open_file_cache`), so a hit is one positional read.
    /// Each costs one file descriptor and its decoded headers in memory; at most a quarter
    /// of the process's soft `RLIMIT_NOFILE` are kept. Zero: every lookup reads the files.
    pub open_files: usize,
    /// The most bytes of inline bodies (those of at most 64 KiB, stored in the meta file)
    /// the hot entries keep in memory, verified when first read, so a hit of them reads
    /// nothing and checks nothing. Memory held: at most this, and at most
    /// `open_files` × 64 KiB. Zero: every hit reads the body and checks its CRC-32.
    pub kept_bodies: usize,
    /// Injected failures, for tests.
    #[doc(hidden)]
    pub faults: Faults,
}

impl DiskConfig {
    /// A directory bounded to `max_size` bytes, LRU eviction, no fsync, state saved every 30 s,
    /// 1024 hot entries kept open, up to 64 MiB of their inline bodies kept in memory.
    pub fn new(dir: impl Into<PathBuf>, max_size: u64) -> Self {
        DiskConfig {
            dir: dir.into(),
            max_size,
            eviction: Eviction::Lru,
            sync: SyncPolicy::Never,
            save_interval: Duration::from_secs(30),
            open_files: 1024,
            kept_bodies: 64 << 20,
            faults: Faults::default(),
        }
    }
}

/// Test-only failure injection: a budget of bytes the storage may still write; once spent,
/// every write fails with `ENOSPC` (`ErrorKind::StorageFull`). Clones share the budget.
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct Faults(Arc<AtomicU64>);

impl Default for Faults {
    fn default() -> Self {
        Faults(Arc::new(AtomicU64::new(u64::MAX)))
    }
}

impl Faults {
    /// Lets `bytes` more bytes be written, then fails writes (`u64::MAX`: no limit).
    pub fn set_write_budget(&self, bytes: u64) {
        self.0.store(bytes, Ordering::Relaxed);
    }

    /// Spends `n` bytes of the budget, or fails as a full device would.
    pub(crate) fn write(&self, n: usize) -> std::io::Result<()> {
        let n = n as u64;
        let spent = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                if left == u64::MAX {
                    Some(left)
                } else {
                    left.checked_sub(n)
                }
            });
        match spent {
            Ok(_) => Ok(()),
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                "injected: no space left on device",
            )),
        }
    }
}
