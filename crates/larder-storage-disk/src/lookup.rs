//! Lookups of complete entries: through the hot-entry cache (one positional read of the body
//! and its CRC check), or from the files (the meta file read and decoded, the body opened),
//! after which the entry is cached hot.

use std::fs::File;
use std::io::{ErrorKind, Read as _};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use larder_storage::{CacheKey, CacheMeta, CompactCacheKey, HitHandler};

use crate::format;
use crate::hot::{self, HotEntry, Probe};
use crate::inner::{Inner, VERIFY_WHOLE_MAX, index_key};
use crate::layout::Name;
use crate::read::{self, BytesHit, FileHit, Spoiled};
use crate::stats::Op;

/// The parts of a decoded meta file a hit needs, owned.
struct Entry {
    id: u64,
    body_len: u64,
    chunk_size: u32,
    crcs: Arc<[u32]>,
    /// Where the inline body starts in the meta file, if the body is inline.
    inline_at: Option<usize>,
}

impl Inner {
    pub(crate) fn lookup_sync(self: &Arc<Self>, key: &CacheKey) -> Option<(CacheMeta, HitHandler)> {
        let name = Name(key.combined_bin());
        if let Some(write) = self
            .writes(&name)
            .get(&name)
            .and_then(|w| w.last())
            .cloned()
        {
            return Some(write.reader());
        }
        let ikey = index_key(&key.to_compact());
        let generation = match self.hot.get(&name) {
            Probe::Hit(entry) => {
                let hit = self.hot_hit(&name, &ikey, &entry)?;
                self.index
                    .manager()
                    .access(&ikey, entry.weight, entry.fresh_until);
                return Some((entry.meta.clone(), hit));
            }
            Probe::Miss(generation) => generation,
        };
        if self.loaded.load(Ordering::Acquire) && !self.index.manager().peek(&ikey) {
            return None;
        }
        let meta_path = self.layout.meta_path(&name);
        let (meta_file, bytes) = match read_meta_file(&meta_path) {
            Ok(Some(read)) => {
                self.counters.io_ok(Op::Read);
                read
            }
            Ok(None) => {
                // Tracked but gone (removed by hand, or a purge raced a commit): forget it.
                self.index.manager().remove(&ikey);
                return None;
            }
            Err(e) => {
                self.counters.io_failed(Op::Read, &e);
                return None;
            }
        };
        let (entry, meta) = match format::decode(&bytes) {
            Ok(file) => {
                let Ok(meta) = CacheMeta::deserialize(file.meta) else {
                    self.corrupt(
                        &ikey,
                        Some(file.id),
                        &meta_path,
                        "cache meta does not decode",
                    );
                    return None;
                };
                let entry = Entry {
                    id: file.id,
                    body_len: file.body_len,
                    chunk_size: file.chunk_size,
                    crcs: (0..file.chunk_count())
                        .filter_map(|i| file.chunk_crc(i))
                        .collect(),
                    inline_at: file
                        .inline_body
                        .map(|body| body.as_ptr() as usize - bytes.as_ptr() as usize),
                };
                (entry, meta)
            }
            Err(e) => {
                self.corrupt(&ikey, None, &meta_path, e.0);
                return None;
            }
        };
        let fresh_until = meta.fresh_until();
        let meta_len = bytes.len() as u64;
        // An inline body was verified by `format::decode`: kept, later hits read nothing.
        let kept = entry.inline_at.and_then(|at| {
            let end = at.checked_add(usize::try_from(entry.body_len).ok()?)?;
            self.hot.keep(bytes.get(at..end)?)
        });
        let (hit, file, weight) =
            self.open_body(&name, &ikey, &entry, meta_file, bytes, meta_len)?;
        self.index.manager().access(&ikey, weight, fresh_until);
        let hot = HotEntry {
            id: entry.id,
            meta: meta.clone(),
            fresh_until,
            file,
            inline: entry.inline_at.is_some(),
            offset: entry.inline_at.unwrap_or(0) as u64,
            len: entry.body_len,
            chunk_size: entry.chunk_size,
            crcs: entry.crcs,
            weight,
            kept,
        };
        self.hot.insert(name, generation, hot);
        Some((meta, hit))
    }

    /// A hit through a hot entry: its kept body, or its body read at its known place and
    /// checked.
    fn hot_hit(
        self: &Arc<Self>,
        name: &Name,
        ikey: &CompactCacheKey,
        entry: &HotEntry,
    ) -> Option<HitHandler> {
        if let Some(kept) = &entry.kept {
            return Some(Box::new(BytesHit::new(kept.body.clone(), entry.weight)));
        }
        let path = || {
            if entry.inline {
                self.layout.meta_path(name)
            } else {
                self.layout.body_path(name, entry.id)
            }
        };
        if !entry.inline && entry.len > VERIFY_WHOLE_MAX {
            return Some(Box::new(FileHit::new(
                Arc::clone(self) as Arc<dyn Spoiled>,
                ikey.clone(),
                entry.id,
                path(),
                Arc::clone(&entry.file),
                entry.len,
                entry.chunk_size,
                Arc::clone(&entry.crcs),
                entry.weight,
            )));
        }
        let body = match read::read_exact_at(
            &entry.file,
            usize::try_from(entry.len).ok()?,
            entry.offset,
        ) {
            Ok(body) => {
                self.counters.io_ok(Op::Read);
                body
            }
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => {
                self.corrupt(ikey, Some(entry.id), &path(), "file shorter than its entry");
                return None;
            }
            Err(e) => {
                self.counters.io_failed(Op::Read, &e);
                return None;
            }
        };
        if !hot::chunks_match(&body, entry.chunk_size, &entry.crcs) {
            self.corrupt(ikey, Some(entry.id), &path(), "body checksum mismatch");
            return None;
        }
        Some(Box::new(BytesHit::new(Bytes::from(body), entry.weight)))
    }

    /// The reader of a complete entry's body, the file holding the body, and the entry's
    /// weight. `bytes` is the meta file, `meta_file` it open.
    fn open_body(
        self: &Arc<Self>,
        name: &Name,
        ikey: &CompactCacheKey,
        entry: &Entry,
        meta_file: File,
        bytes: Vec<u8>,
        meta_len: u64,
    ) -> Option<(HitHandler, Arc<File>, usize)> {
        if let Some(at) = entry.inline_at {
            let weight = usize::try_from(meta_len).unwrap_or(usize::MAX);
            let len = usize::try_from(entry.body_len).ok()?;
            // The body is a slice of the buffer read: no second copy.
            let body = Bytes::from(bytes).slice(at..at + len);
            return Some((
                Box::new(BytesHit::new(body, weight)),
                Arc::new(meta_file),
                weight,
            ));
        }
        drop(meta_file);
        let path = self.layout.body_path(name, entry.id);
        let body = match File::open(&path) {
            Ok(body) => Arc::new(body),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                self.corrupt(ikey, Some(entry.id), &path, "body file missing");
                return None;
            }
            Err(e) => {
                self.counters.io_failed(Op::Read, &e);
                return None;
            }
        };
        let len = match body.metadata() {
            Ok(m) => m.len(),
            Err(e) => {
                self.counters.io_failed(Op::Read, &e);
                return None;
            }
        };
        if len != entry.body_len {
            self.corrupt(ikey, Some(entry.id), &path, "body file length differs");
            return None;
        }
        let weight = usize::try_from(meta_len + len).unwrap_or(usize::MAX);
        if len <= VERIFY_WHOLE_MAX {
            let whole = match read::read_exact_at(&body, usize::try_from(len).ok()?, 0) {
                Ok(whole) => whole,
                Err(e) => {
                    self.counters.io_failed(Op::Read, &e);
                    return None;
                }
            };
            if !hot::chunks_match(&whole, entry.chunk_size, &entry.crcs) {
                self.corrupt(ikey, Some(entry.id), &path, "body checksum mismatch");
                return None;
            }
            let hit = BytesHit::new(Bytes::from(whole), weight);
            return Some((Box::new(hit), body, weight));
        }
        let hit = FileHit::new(
            Arc::clone(self) as Arc<dyn Spoiled>,
            ikey.clone(),
            entry.id,
            path,
            Arc::clone(&body),
            entry.body_len,
            entry.chunk_size,
            Arc::clone(&entry.crcs),
            weight,
        );
        Some((Box::new(hit), body, weight))
    }
}

/// The meta file at `path`, open, and its bytes (one read sized by `fstat`, and the read
/// that finds its end); `Ok(None)` when it is missing.
fn read_meta_file(path: &std::path::Path) -> std::io::Result<Option<(File, Vec<u8>)>> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0).saturating_add(1));
    file.read_to_end(&mut bytes)?;
    Ok(Some((file, bytes)))
}
