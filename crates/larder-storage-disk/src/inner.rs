//! The state a storage shares with its handlers and background threads: the index, the
//! per-name locks, the writes in progress, and the file operations on complete entries
//! (lookup, purge, meta update, removal of corrupt entries).

use std::collections::HashMap;
use std::fs;
use std::io::{ErrorKind, Read};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use larder_storage::eviction::{EvictionManager, lru, tinyufo};
use larder_storage::{CacheKey, CacheMeta, CompactCacheKey, PurgeType, Result};
use parking_lot::Mutex;

use crate::error::DiskError;
use crate::format;
use crate::hot::Hot;
use crate::layout::{Layout, Name};
use crate::read::{Inflight, Spoiled};
use crate::stats::{Counters, Op};
use crate::{DiskConfig, Eviction};

/// Bodies up to this many bytes are stored inside the meta file.
pub(crate) const INLINE_MAX: u64 = 64 << 10;
/// The size of a checksummed body chunk.
pub(crate) const CHUNK_SIZE: u32 = 64 << 10;
/// Body files up to this size are read and verified whole at lookup, so a corrupt one is a
/// miss rather than a cut response.
pub(crate) const VERIFY_WHOLE_MAX: u64 = 1 << 20;
const STRIPES: usize = 256;
const WRITE_SHARDS: usize = 16;

/// The writes in progress of the names of one shard.
pub(crate) type Writes = HashMap<Name, Vec<Arc<Inflight>>>;

/// The eviction manager, used as the index of complete entries.
pub(crate) enum Index {
    // Both boxed: each is large, and there is one per storage.
    Lru(Box<lru::Manager<16>>),
    TinyUfo(Box<tinyufo::Manager>),
}

impl Index {
    pub(crate) fn manager(&self) -> &dyn EvictionManager {
        match self {
            Index::Lru(m) => &**m,
            Index::TinyUfo(m) => &**m,
        }
    }

    /// Every tracked key.
    pub(crate) fn entries(&self) -> Vec<(CompactCacheKey, usize)> {
        match self {
            Index::Lru(m) => (0..m.shards()).flat_map(|s| m.shard_entries(s)).collect(),
            Index::TinyUfo(m) => m.entries(),
        }
    }
}

/// The key the index tracks an entry under: the user tag does not select an entry, so it is
/// left out.
pub(crate) fn index_key(key: &CompactCacheKey) -> CompactCacheKey {
    CompactCacheKey {
        primary: key.primary,
        variance: key.variance.clone(),
        user_tag: "".into(),
    }
}

/// Everything a storage shares with its handlers and background threads.
pub(crate) struct Inner {
    pub(crate) config: DiskConfig,
    pub(crate) layout: Layout,
    pub(crate) index: Index,
    pub(crate) counters: Counters,
    /// The saved eviction state was loaded (saving before would lose it).
    pub(crate) state_loaded: AtomicBool,
    /// The start-up scan finished: the index knows every entry.
    pub(crate) loaded: AtomicBool,
    /// Serialises the file changes of one name: commit, purge, meta update, orphan removal.
    locks: Box<[Mutex<()>]>,
    /// Writes in progress per name, oldest first, in shards (every lookup looks here).
    write_shards: Box<[Mutex<Writes>]>,
    next_id: AtomicU64,
    /// The hot entries: decoded metas and open descriptors of recently hit entries.
    pub(crate) hot: Hot,
}

/// Reads a file that may be missing: `Ok(None)` when it is.
pub(crate) fn read_optional(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The first bytes of the meta file at `path` (enough for its header and key) and the
/// file's length; `Ok(None)` when it is missing.
pub(crate) fn read_prefix(path: &Path) -> std::io::Result<Option<(Vec<u8>, u64)>> {
    let mut file = match fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    let mut buf = Vec::with_capacity(512);
    file.by_ref().take(512).read_to_end(&mut buf)?;
    if len > 512 && format::decode_header(&buf) == Err(format::FormatError("truncated")) {
        // A long user tag: the key can take up to 64 KiB more.
        file.take(format::FIXED_LEN as u64 + 16 + 65_536)
            .read_to_end(&mut buf)?;
    }
    Ok(Some((buf, len)))
}

/// What the first bytes of a meta file say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Header {
    /// There is no meta file.
    Missing,
    /// There is one, but its header does not decode.
    Invalid,
    /// The entry id and whether the body is inline.
    Valid { id: u64, inline: bool },
}

/// The header of the meta file at `path`, from its first bytes.
pub(crate) fn read_header(path: &Path) -> std::io::Result<Header> {
    let Some((buf, _)) = read_prefix(path)? else {
        return Ok(Header::Missing);
    };
    Ok(match format::decode_header(&buf) {
        Ok((h, _)) => Header::Valid {
            id: h.id,
            inline: h.inline_body.is_some(),
        },
        Err(_) => Header::Invalid,
    })
}

impl Inner {
    /// Prepares the directory and builds an empty index.
    pub(crate) fn new(config: DiskConfig) -> Result<Self> {
        let layout = Layout::new(&config.dir);
        layout.prepare()?;
        let limit = usize::try_from(config.max_size).unwrap_or(usize::MAX);
        let index = match config.eviction {
            Eviction::Lru => Index::Lru(Box::new(lru::Manager::with_capacity(limit, 1024))),
            Eviction::TinyUfo => {
                let items = usize::try_from(config.max_size / (16 << 10))
                    .unwrap_or(usize::MAX)
                    .clamp(1024, 1 << 22);
                Index::TinyUfo(Box::new(tinyufo::Manager::new(limit, items)))
            }
        };
        let first_id = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX / 2));
        Ok(Inner {
            layout,
            index,
            counters: Counters::default(),
            state_loaded: AtomicBool::new(false),
            loaded: AtomicBool::new(false),
            locks: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            write_shards: (0..WRITE_SHARDS).map(|_| Mutex::default()).collect(),
            next_id: AtomicU64::new(first_id),
            hot: Hot::new(crate::hot::capacity(config.open_files), config.kept_bodies),
            config,
        })
    }

    /// The shard of the writes in progress that holds `name`'s.
    pub(crate) fn writes(&self, name: &Name) -> parking_lot::MutexGuard<'_, Writes> {
        self.write_shards[name.stripe(WRITE_SHARDS)].lock()
    }

    pub(crate) fn lock(&self, name: &Name) -> parking_lot::MutexGuard<'_, ()> {
        self.locks[name.stripe(STRIPES)].lock()
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn save_state(&self) -> Result<()> {
        if !self.state_loaded.load(Ordering::Acquire) {
            tracing::debug!("disk cache eviction state not loaded yet; not saving");
            return Ok(());
        }
        let dir = self.layout.eviction.to_string_lossy().into_owned();
        let manager = self.index.manager();
        run_async(|| manager.save(&dir))
    }

    /// Removes the files of `name` (meta, then body) if its meta file still names entry
    /// `only_id` (any entry when `None`). Returns whether a meta file was removed.
    pub(crate) fn remove_files(&self, name: &Name, only_id: Option<u64>) -> bool {
        let _guard = self.lock(name);
        self.remove_files_locked(name, only_id)
    }

    pub(crate) fn remove_files_locked(&self, name: &Name, only_id: Option<u64>) -> bool {
        let removed = self.remove_files_of(name, only_id);
        // After the files changed: a lookup that read them before cannot cache them now.
        self.hot.remove(name);
        removed
    }

    fn remove_files_of(&self, name: &Name, only_id: Option<u64>) -> bool {
        let meta_path = self.layout.meta_path(name);
        let header = match read_header(&meta_path) {
            Ok(Header::Missing) => return false,
            Ok(header) => header,
            Err(e) => {
                self.counters.io_failed(Op::Read, &e);
                Header::Invalid
            }
        };
        if let (Some(id), Header::Valid { id: found, .. }) = (only_id, header)
            && id != found
        {
            return false;
        }
        let removed = fs::remove_file(&meta_path).is_ok();
        if let Header::Valid { id, inline: false } = header {
            let _ = fs::remove_file(self.layout.body_path(name, id));
        }
        removed
    }

    /// Purges evicted entries' files.
    pub(crate) fn purge_victims(&self, victims: Vec<CompactCacheKey>) {
        for victim in victims {
            self.remove_files(&Name(victim.combined_bin()), None);
        }
    }

    /// A stored file failed its checks: count it and remove the entry.
    pub(crate) fn corrupt(
        &self,
        ikey: &CompactCacheKey,
        id: Option<u64>,
        path: &Path,
        reason: &str,
    ) {
        self.counters.corrupt(path, reason);
        let name = Name(ikey.combined_bin());
        if self.remove_files(&name, id) || id.is_none() {
            // A removed entry no longer takes room.
            self.index.manager().remove(ikey);
        }
    }

    pub(crate) fn purge_sync(&self, key: &CompactCacheKey, purge_type: PurgeType) -> bool {
        let name = Name(key.combined_bin());
        let (removed, detached) = {
            let _guard = self.lock(&name);
            let removed = self.remove_files_locked(&name, None);
            let detached = match purge_type {
                PurgeType::Invalidation => self.writes(&name).remove(&name).map_or(0, |w| w.len()),
                PurgeType::Eviction => 0,
            };
            (removed, detached)
        };
        self.index.manager().remove(&index_key(key));
        tracing::debug!(key = %key, purge_type = purge_type.as_str(), removed, detached, "disk cache purge");
        removed || detached > 0
    }

    pub(crate) fn update_meta_sync(&self, key: &CacheKey, meta: &CacheMeta) -> Result<bool> {
        let meta_bytes = meta.serialize()?;
        let name = Name(key.combined_bin());
        let meta_path = self.layout.meta_path(&name);
        let (weight, fresh_until) = {
            let _guard = self.lock(&name);
            let bytes = match read_optional(&meta_path) {
                Ok(Some(bytes)) => bytes,
                Ok(None) => return Ok(false),
                Err(e) => {
                    self.counters.io_failed(Op::Read, &e);
                    return Err(DiskError::io(&meta_path)(e).into());
                }
            };
            let Ok(old) = format::decode(&bytes) else {
                self.counters
                    .corrupt(&meta_path, "meta file does not decode");
                self.remove_files_locked(&name, None);
                return Ok(false);
            };
            let crcs: Vec<u32> = (0..old.chunk_count())
                .filter_map(|i| old.chunk_crc(i))
                .collect();
            let new = format::encode(
                old.id,
                old.created,
                old.body_len,
                old.chunk_size,
                &old.key,
                &meta_bytes,
                &crcs,
                old.inline_body,
            );
            let tmp = self.layout.tmp_path(self.next_id(), "meta");
            let written = self
                .write_new_file(&tmp, &new)
                .and_then(|()| fs::rename(&tmp, &meta_path).map_err(DiskError::io(&meta_path)));
            if let Err(e) = written {
                let _ = fs::remove_file(&tmp);
                self.counters.io_failed(Op::Write, &e);
                return Err(e.into());
            }
            self.hot.remove(&name);
            let body = if old.inline_body.is_some() {
                0
            } else {
                old.body_len
            };
            (new.len() as u64 + body, meta.fresh_until())
        };
        let weight = usize::try_from(weight).unwrap_or(usize::MAX);
        let victims = self
            .index
            .manager()
            .admit(index_key(&key.to_compact()), weight, fresh_until);
        self.purge_victims(victims);
        Ok(true)
    }

    /// Writes `data` into a new file at `path` (synced under [`SyncPolicy::Always`](crate::SyncPolicy::Always)).
    pub(crate) fn write_new_file(
        &self,
        path: &Path,
        data: &[u8],
    ) -> std::result::Result<(), DiskError> {
        use std::io::Write as _;
        let io = DiskError::io(path);
        self.config
            .faults
            .write(data.len())
            .map_err(DiskError::io(path))?;
        let result = (|| {
            let mut file = fs::File::create(path)?;
            file.write_all(data)?;
            if self.config.sync == crate::SyncPolicy::Always {
                file.sync_all()?;
            }
            Ok(())
        })();
        result.map_err(io)
    }
}

/// Runs an async eviction-manager call to completion from synchronous code, on a thread of
/// its own (so it works inside or outside a tokio runtime).
pub(crate) fn run_async<'a, F, Fut>(f: F) -> Result<()>
where
    F: FnOnce() -> Fut + Send + 'a,
    Fut: std::future::Future<Output = Result<()>>,
{
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| larder_storage::Error::Unavailable(Box::new(e)))?;
                rt.block_on(f())
            })
            .join()
            .unwrap_or_else(|_| {
                Err(larder_storage::Error::Backend(
                    "eviction state thread panicked".into(),
                ))
            })
    })
}

impl Spoiled for Inner {
    fn corrupt(&self, key: &CompactCacheKey, id: Option<u64>, path: &Path, reason: &str) {
        Inner::corrupt(self, key, id, path, reason);
    }

    fn read_failed(&self, error: &DiskError) {
        self.counters.io_failed(Op::Read, error);
    }
}
