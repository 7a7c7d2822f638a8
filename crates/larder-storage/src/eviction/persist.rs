//! Saved eviction state: the file format and atomic file writes.
//!
//! # Format (version 1)
//!
//! | field | encoding |
//! |---|---|
//! | magic | the 4 bytes `LRDE` |
//! | version | 1 byte, `1` |
//! | entry count | varint (unsigned LEB128) |
//! | each entry | 16-byte primary hash, flags byte (bit 0: a variance follows), 16-byte variance if flagged, varint length + UTF-8 user tag, varint weight |
//!
//! Entries are listed in eviction order where the manager has one (most recently used
//! first). The file must end right after the last entry.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::codec::{Malformed, Reader, put_bytes, put_varint};
use crate::{CompactCacheKey, Error, HashBinary, Result};

const MAGIC: &[u8; 4] = b"LRDE";
const VERSION: u8 = 1;
/// The smallest encoded entry: hash, flags, empty tag, weight.
const MIN_ENTRY: usize = 16 + 1 + 1 + 1;

pub(crate) fn encode(entries: &[(CompactCacheKey, usize)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + entries.len() * (MIN_ENTRY + 4));
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    put_varint(&mut out, entries.len() as u64);
    for (key, weight) in entries {
        out.extend_from_slice(&key.primary);
        match &key.variance {
            Some(variance) => {
                out.push(1);
                out.extend_from_slice(&**variance);
            }
            None => out.push(0),
        }
        put_bytes(&mut out, key.user_tag.as_bytes());
        put_varint(&mut out, *weight as u64);
    }
    out
}

pub(crate) fn decode(bytes: &[u8]) -> Result<Vec<(CompactCacheKey, usize)>, Malformed> {
    fn hash(r: &mut Reader<'_>) -> Result<HashBinary, Malformed> {
        r.take(16)?.try_into().map_err(|_| Malformed("truncated"))
    }
    let mut r = Reader::new(bytes);
    if r.take(MAGIC.len())? != MAGIC {
        return Err(Malformed("bad magic"));
    }
    if r.byte()? != VERSION {
        return Err(Malformed("unsupported version"));
    }
    let count = r.usize()?;
    // Checking the count against the input first keeps garbage from reserving memory.
    if count > r.remaining() / MIN_ENTRY {
        return Err(Malformed("bad entry count"));
    }
    let mut entries = Vec::with_capacity(count);
    for _ in 0..count {
        let primary = hash(&mut r)?;
        let variance = match r.byte()? {
            0 => None,
            1 => Some(Box::new(hash(&mut r)?)),
            _ => return Err(Malformed("bad flags")),
        };
        let tag = r.len_prefixed()?;
        let user_tag = std::str::from_utf8(r.slice(tag)).map_err(|_| Malformed("bad user tag"))?;
        let weight = r.usize()?;
        entries.push((
            CompactCacheKey {
                primary,
                variance,
                user_tag: user_tag.into(),
            },
            weight,
        ));
    }
    if r.remaining() != 0 {
        return Err(Malformed("trailing bytes"));
    }
    Ok(entries)
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

async fn blocking<T: Send + 'static>(
    path: &Path,
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(io_error(path)),
        Err(join) => Err(io_error(path)(std::io::Error::other(join))),
    }
}

/// Writes `data` to `path` atomically: into a uniquely named `.tmp` file beside it, synced,
/// then renamed over `path`. Creates the directory if needed.
pub(crate) async fn write_atomic(path: PathBuf, data: Vec<u8>) -> Result<()> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut tmp = path.clone().into_os_string();
    tmp.push(format!(".{}-{n}.tmp", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let target = path.clone();
    blocking(&path, move || {
        if let Some(dir) = target.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let result = (|| {
            let mut file = std::fs::File::create(&tmp)?;
            std::io::Write::write_all(&mut file, &data)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &target)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    })
    .await
}

/// Reads a whole file.
pub(crate) async fn read(path: PathBuf) -> Result<Vec<u8>> {
    let p = path.clone();
    blocking(&path, move || std::fs::read(p)).await
}

/// Reads and decodes a saved file.
pub(crate) async fn load_file(path: PathBuf) -> Result<Vec<(CompactCacheKey, usize)>> {
    let bytes = read(path.clone()).await?;
    decode(&bytes).map_err(|m| Error::CorruptEvictionState { path, reason: m.0 })
}

/// Removes leftover `<prefix>*.tmp` files (from a save that was interrupted) in `dir`.
pub(crate) async fn remove_tmp_files(dir: PathBuf, prefix: &'static str) {
    let d = dir.clone();
    let result = blocking(&dir, move || {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(prefix) && name.ends_with(".tmp") {
                std::fs::remove_file(entry.path())?;
            }
        }
        Ok(())
    })
    .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, "cannot clean up temporary eviction state files");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key() -> impl Strategy<Value = CompactCacheKey> {
        (
            any::<[u8; 16]>(),
            proptest::option::of(any::<[u8; 16]>()),
            ".{0,8}",
        )
            .prop_map(|(primary, variance, tag)| CompactCacheKey {
                primary,
                variance: variance.map(Box::new),
                user_tag: tag.into(),
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn round_trip(entries in proptest::collection::vec((key(), any::<usize>()), 0..20)) {
            let bytes = encode(&entries);
            prop_assert_eq!(decode(&bytes).unwrap(), entries);
            for len in 0..bytes.len() {
                prop_assert!(decode(&bytes[..len]).is_err());
            }
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&bytes);
            let mut prefixed = b"LRDE\x01".to_vec();
            prefixed.extend_from_slice(&bytes);
            let _ = decode(&prefixed);
        }
    }

    #[test]
    fn huge_count_is_rejected_before_allocating() {
        assert_eq!(
            decode(b"LRDE\x01\xff\xff\xff\xff\xff\xff\xff\xff\x7f"),
            Err(Malformed("bad entry count"))
        );
        assert_eq!(
            decode(b"LRDE\x02\x00"),
            Err(Malformed("unsupported version"))
        );
        assert_eq!(decode(b"XXXX\x01\x00"), Err(Malformed("bad magic")));
    }
}
