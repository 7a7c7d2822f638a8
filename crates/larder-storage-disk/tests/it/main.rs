//! Integration tests of the disk storage: the shared contract, restarts, corruption, streaming,
//! eviction and device errors.

// Test code: a failed unwrap or expect is a failed test, and sizes and seeds are small.
#![allow(
    clippy::unwrap_used,
    clippy::missing_panics_doc,
    clippy::cast_possible_truncation
)]

mod corruption;
mod errors;
mod eviction;
mod hot;
mod restart;
mod shared_contract;
mod streaming;

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use larder_storage::{CacheKey, HitHandler, Storage};
use larder_storage_disk::{DiskConfig, DiskStorage};
use larder_testkit::storage_contract as contract;
use tracing::Span;

/// Opens a storage on `dir` for the rest of the test process.
pub fn open_with(config: DiskConfig) -> &'static DiskStorage {
    Box::leak(Box::new(DiskStorage::open(config).unwrap()))
}

/// Opens a storage of `max` bytes on `dir` and waits for its start-up load.
pub fn open(dir: &Path, max: u64) -> &'static DiskStorage {
    let disk = open_with(DiskConfig::new(dir, max));
    assert!(disk.wait_loaded(Duration::from_secs(10)));
    disk
}

/// The key of test entry `name`.
pub fn key(name: &str) -> CacheKey {
    CacheKey::new("it", name, "")
}

/// A body of `len` bytes that differs at every position modulo 251.
pub fn body(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i % 251) as u8).wrapping_add(seed))
        .collect()
}

/// Writes `data` under `name` in pieces of 16 KiB and finishes.
pub async fn put(disk: &'static DiskStorage, name: &str, data: &[u8]) {
    let pieces: Vec<&[u8]> = if data.is_empty() {
        Vec::new()
    } else {
        data.chunks(16 << 10).collect()
    };
    contract::store(disk, &key(name), &contract::meta(name), &pieces).await;
}

/// Looks `name` up and reads the whole body; `None` on a miss.
pub async fn get(
    disk: &'static DiskStorage,
    name: &str,
) -> Option<Result<Vec<u8>, larder_storage::Error>> {
    let (_, mut hit) = disk.lookup(&key(name), &Span::none()).await.unwrap()?;
    Some(contract::read_all(&mut hit).await)
}

/// The hit handler of `name`, which must be stored.
pub async fn hit(disk: &'static DiskStorage, name: &str) -> HitHandler {
    disk.lookup(&key(name), &Span::none())
        .await
        .unwrap()
        .expect("a hit")
        .1
}

/// The files under `dir/objects` (meta and body files).
pub fn object_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.join("objects")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// The meta file and (if any) the body file of the only entry in `dir`.
pub fn files_of_only_entry(dir: &Path) -> (std::path::PathBuf, Option<std::path::PathBuf>) {
    let files = object_files(dir);
    let meta = files
        .iter()
        .find(|p| !p.file_name().unwrap().to_str().unwrap().contains('.'))
        .expect("a meta file")
        .clone();
    let body = files.into_iter().find(|p| *p != meta);
    (meta, body)
}

/// `b` as `Bytes`.
pub fn bytes(b: &[u8]) -> Bytes {
    Bytes::copy_from_slice(b)
}
