//! Writing an entry: the body streams into `tmp/` as it arrives (readable by readers of the
//! write in progress), and `finish` commits it by renames.
//!
//! The commit, under the name's lock: write the meta file to `tmp/` (fsync body and meta
//! under [`SyncPolicy::Always`](crate::SyncPolicy::Always)), rename the body file into
//! `objects/`, rename the meta file into place (the entry is now visible), fsync the
//! directory (`Always`), then delete the body file the replaced meta file pointed to. A crash
//! between any two steps leaves the old entry or the new one, plus files the start-up scan
//! deletes.

use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use larder_storage::storage::streaming_write::U64WriteId;
use larder_storage::{
    CacheKey, CacheMeta, CompactCacheKey, Error, HandleMiss, MissFinishType, MissHandler, Result,
};
use tokio::sync::watch;

use crate::SyncPolicy;
use crate::error::DiskError;
use crate::format;
use crate::inner::{CHUNK_SIZE, Header, INLINE_MAX, Inner, index_key, read_header};
use crate::layout::{Name, sync_dir};
use larder_storage::partial::Progress;

use crate::read::Inflight;
use crate::stats::{Op, inc};

/// Starts a write: creates its body file in `tmp/` and registers it for lookups.
pub(crate) fn start(inner: &Arc<Inner>, key: &CacheKey, meta: &CacheMeta) -> Result<MissHandler> {
    let meta_bytes = meta.serialize()?;
    // Readers of the write get the meta exactly as stored (no extensions, say).
    let decoded = CacheMeta::deserialize(&meta_bytes)?;
    let id = inner.next_id();
    let tmp_body = inner.layout.tmp_path(id, "body");
    let file = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&tmp_body)
        .map_err(DiskError::io(&tmp_body));
    let file = match file {
        Ok(file) => Arc::new(file),
        Err(e) => {
            inner.counters.io_failed(Op::Write, &e);
            return Err(e.into());
        }
    };
    let (tx, rx) = watch::channel(Progress::default());
    let name = Name(key.combined_bin());
    let inflight = Arc::new(Inflight {
        id,
        meta: decoded,
        file: Arc::clone(&file),
        progress: rx,
    });
    inner.writes(&name).entry(name).or_default().push(inflight);
    Ok(Box::new(DiskMiss {
        inner: Arc::clone(inner),
        name,
        key: key.to_compact(),
        id,
        tag: U64WriteId::from(id),
        meta_bytes,
        fresh_until: meta.fresh_until(),
        file,
        tmp_body,
        tx,
        written: 0,
        crcs: Vec::new(),
        hasher: crc32fast::Hasher::new(),
        in_chunk: 0,
        inline: Some(Vec::new()),
        eof: false,
        failed: false,
    }))
}

/// The writer of one entry.
struct DiskMiss {
    inner: Arc<Inner>,
    name: Name,
    key: CompactCacheKey,
    id: u64,
    tag: U64WriteId,
    meta_bytes: Vec<u8>,
    fresh_until: SystemTime,
    file: Arc<File>,
    tmp_body: PathBuf,
    tx: watch::Sender<Progress>,
    written: u64,
    /// CRC-32s of the complete chunks so far, and the hasher of the current one.
    crcs: Vec<u32>,
    hasher: crc32fast::Hasher,
    in_chunk: u32,
    /// A copy of the body while it is small enough to be stored inline.
    inline: Option<Vec<u8>>,
    eof: bool,
    failed: bool,
}

impl DiskMiss {
    fn checksum(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let room = (CHUNK_SIZE - self.in_chunk) as usize;
            let (now, rest) = data.split_at(room.min(data.len()));
            self.hasher.update(now);
            // `now` is at most one chunk, which fits u32.
            self.in_chunk += u32::try_from(now.len()).unwrap_or(CHUNK_SIZE);
            if self.in_chunk == CHUNK_SIZE {
                let hasher = std::mem::take(&mut self.hasher);
                self.crcs.push(hasher.finalize());
                self.in_chunk = 0;
            }
            data = rest;
        }
    }

    fn fail(&mut self, e: DiskError) -> Error {
        self.failed = true;
        if matches!(e, DiskError::Io { .. }) {
            self.inner.counters.io_failed(Op::Write, &e);
        }
        e.into()
    }

    /// Commits the write; `Ok(None)` when it was purged meanwhile.
    fn commit(&mut self) -> std::result::Result<Option<u64>, DiskError> {
        if self.in_chunk > 0 {
            let hasher = std::mem::take(&mut self.hasher);
            self.crcs.push(hasher.finalize());
            self.in_chunk = 0;
        }
        let inner = Arc::clone(&self.inner);
        let layout = &inner.layout;
        let always = inner.config.sync == SyncPolicy::Always;
        let inline = self
            .inline
            .as_deref()
            .filter(|b| b.len() as u64 <= INLINE_MAX);
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let meta_file = format::encode(
            self.id,
            created,
            self.written,
            if self.written == 0 { 0 } else { CHUNK_SIZE },
            &self.key,
            &self.meta_bytes,
            &self.crcs,
            inline,
        );
        let tmp_meta = layout.tmp_path(self.id, "meta");
        inner.write_new_file(&tmp_meta, &meta_file)?;
        let cleanup = |e: DiskError| {
            let _ = fs::remove_file(&tmp_meta);
            e
        };
        if always && inline.is_none() {
            self.file
                .sync_all()
                .map_err(DiskError::io(&self.tmp_body))
                .map_err(cleanup)?;
        }
        let meta_path = layout.meta_path(&self.name);
        let body_path = layout.body_path(&self.name, self.id);
        let _guard = inner.lock(&self.name);
        let registered = inner
            .writes(&self.name)
            .get(&self.name)
            .is_some_and(|w| w.iter().any(|w| w.id == self.id));
        if !registered {
            let _ = fs::remove_file(&tmp_meta);
            return Ok(None);
        }
        let old = read_header(&meta_path).unwrap_or(Header::Invalid);
        if inline.is_none() {
            rename_creating_dir(&self.tmp_body, &body_path).map_err(cleanup)?;
        }
        if let Err(e) = rename_creating_dir(&tmp_meta, &meta_path) {
            let _ = fs::remove_file(&body_path);
            return Err(cleanup(e));
        }
        // The name's files changed: its hot entry (if any) describes the replaced ones.
        inner.hot.remove(&self.name);
        if always {
            let dir = layout.leaf_dir(&self.name);
            // The entry is visible and complete already: a failed directory sync only weakens
            // its durability, so it is counted and the commit goes on.
            if let Err(e) = sync_dir(&dir).map_err(DiskError::io(dir)) {
                inner.counters.io_failed(Op::Write, &e);
            }
        }
        if let Header::Valid {
            id: old_id,
            inline: false,
        } = old
            && old_id != self.id
        {
            let _ = fs::remove_file(layout.body_path(&self.name, old_id));
        }
        remove_inflight(&inner, self.name, self.id);
        let body = if inline.is_some() { 0 } else { self.written };
        Ok(Some(meta_file.len() as u64 + body))
    }
}

fn rename_creating_dir(
    from: &std::path::Path,
    to: &std::path::Path,
) -> std::result::Result<(), DiskError> {
    match fs::rename(from, to) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = to.parent() {
                fs::create_dir_all(dir).map_err(DiskError::io(dir))?;
            }
            fs::rename(from, to).map_err(DiskError::io(to))
        }
        other => other.map_err(DiskError::io(to)),
    }
}

fn remove_inflight(inner: &Inner, name: Name, id: u64) {
    let mut writes = inner.writes(&name);
    if let Some(list) = writes.get_mut(&name) {
        list.retain(|w| w.id != id);
        if list.is_empty() {
            writes.remove(&name);
        }
    }
}

#[async_trait]
impl HandleMiss for DiskMiss {
    async fn write_body(&mut self, data: Bytes, eof: bool) -> Result<()> {
        if self.eof && !data.is_empty() {
            return Err(Error::WriteAfterEnd);
        }
        if self.failed {
            return Err(Error::Unavailable("disk cache write already failed".into()));
        }
        self.eof |= eof;
        if data.is_empty() {
            return Ok(());
        }
        let new_len = self.written + data.len() as u64;
        let max = self.inner.config.max_size;
        if new_len > max {
            return Err(self.fail(DiskError::TooLarge { size: new_len, max }));
        }
        let written = self
            .inner
            .config
            .faults
            .write(data.len())
            .and_then(|()| self.file.write_all_at(&data, self.written));
        if let Err(e) = written {
            return Err(self.fail(DiskError::io(&self.tmp_body)(e)));
        }
        self.inner.counters.io_ok(Op::Write);
        self.checksum(&data);
        if let Some(inline) = &mut self.inline {
            if new_len <= INLINE_MAX {
                inline.extend_from_slice(&data);
            } else {
                self.inline = None;
            }
        }
        self.written = new_len;
        // Wakes every reader waiting for more bytes.
        self.tx
            .send_modify(|p| p.len = usize::try_from(new_len).unwrap_or(usize::MAX));
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<MissFinishType> {
        if self.failed {
            return Err(Error::Unavailable("disk cache write failed".into()));
        }
        let committed = self.commit();
        // Readers have every byte either way (in the tmp file they hold open).
        self.tx.send_modify(|p| p.done = true);
        let inner = Arc::clone(&self.inner);
        match committed {
            Ok(Some(size)) => {
                inner.counters.io_ok(Op::Write);
                inc(&inner.counters.writes_stored);
                let weight = usize::try_from(size).unwrap_or(usize::MAX);
                let victims =
                    inner
                        .index
                        .manager()
                        .admit(index_key(&self.key), weight, self.fresh_until);
                inner.purge_victims(victims);
                Ok(MissFinishType::Created(weight))
            }
            Ok(None) => {
                tracing::debug!("disk cache write purged before it finished; not stored");
                Err(Error::WritePurged)
            }
            Err(e) => {
                inner.counters.io_failed(Op::Write, &e);
                Err(e.into())
            }
        }
    }

    fn streaming_write_tag(&self) -> Option<&[u8]> {
        Some(self.tag.as_bytes())
    }
}

impl Drop for DiskMiss {
    fn drop(&mut self) {
        // A committed body was renamed away; anything else goes (readers keep their fd).
        let _ = fs::remove_file(&self.tmp_body);
        // Gone already after a commit; an unfinished write is abandoned here, and dropping
        // `tx` right after tells its readers so.
        remove_inflight(&self.inner, self.name, self.id);
    }
}
