use std::fs;
use std::path::Path;

use super::*;

fn flip(path: &Path, at: usize) {
    let mut bytes = fs::read(path).unwrap();
    let at = at.min(bytes.len() - 1);
    bytes[at] ^= 0x5a;
    fs::write(path, bytes).unwrap();
}

fn truncate(path: &Path, by: u64) {
    let file = fs::OpenOptions::new().write(true).open(path).unwrap();
    let len = file.metadata().unwrap().len();
    file.set_len(len - by).unwrap();
}

/// Stores one entry of `size` bytes, spoils its files with `spoil`, and checks that a fresh
/// storage on the directory does not serve it, counts it and removes its files.
async fn check_not_served(size: usize, spoil: impl FnOnce(&Path, Option<&Path>)) {
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path(), 64 << 20);
    put(first, "x", &body(size, 9)).await;
    let (meta, body_file) = files_of_only_entry(dir.path());
    spoil(&meta, body_file.as_deref());
    // Lookups read the files: the second storage checks them at lookup, the first after a
    // restart of the same directory too.
    let second = open(dir.path(), 64 << 20);
    let served = get(second, "x").await;
    match served {
        None => {}
        Some(Err(_)) => assert!(size > 1 << 20, "only a large body is cut mid-stream"),
        Some(Ok(got)) => panic!("a spoiled entry was served ({} bytes)", got.len()),
    }
    assert!(second.stats().corrupt >= 1, "{:?}", second.stats());
    assert!(get(second, "x").await.is_none(), "removed after detection");
    assert_eq!(second.len(), 0);
}

#[tokio::test]
async fn a_flipped_byte_in_a_meta_file_is_not_served() {
    check_not_served(100, |meta, _| flip(meta, 50)).await;
}

#[tokio::test]
async fn a_flipped_byte_in_an_inline_body_is_not_served() {
    // The inline body is the end of the meta file, before its checksum.
    check_not_served(4000, |meta, _| {
        let len = fs::metadata(meta).unwrap().len() as usize;
        flip(meta, len - 100);
    })
    .await;
}

#[tokio::test]
async fn a_flipped_byte_in_a_body_file_is_not_served() {
    check_not_served(300 << 10, |_, body| flip(body.unwrap(), 200 << 10)).await;
}

#[tokio::test]
async fn a_flipped_byte_in_a_large_body_cuts_the_response() {
    check_not_served(3 << 20, |_, body| flip(body.unwrap(), (2 << 20) + 5)).await;
}

#[tokio::test]
async fn a_torn_body_file_is_not_served() {
    check_not_served(300 << 10, |_, body| truncate(body.unwrap(), 1000)).await;
}

#[tokio::test]
async fn a_torn_meta_file_is_not_served() {
    check_not_served(100, |meta, _| truncate(meta, 10)).await;
}

#[tokio::test]
async fn a_missing_body_file_is_not_served() {
    check_not_served(300 << 10, |_, body| fs::remove_file(body.unwrap()).unwrap()).await;
}

#[tokio::test]
async fn corruption_found_by_a_running_storage_is_counted_and_purged() {
    let dir = tempfile::tempdir().unwrap();
    let disk = open(dir.path(), 64 << 20);
    put(disk, "y", &body(3 << 20, 1)).await;
    let (meta, body_file) = files_of_only_entry(dir.path());
    flip(body_file.as_ref().unwrap(), 10);
    let mut hit = hit(disk, "y").await;
    assert!(
        hit.read_body().await.is_err(),
        "the first chunk fails its checksum"
    );
    assert_eq!(disk.stats().corrupt, 1);
    assert!(!meta.exists());
    assert!(!body_file.unwrap().exists());
    assert_eq!(disk.len(), 0);
    let mut samples = Vec::new();
    disk.metrics(&mut samples);
    let corrupt = samples
        .iter()
        .find(|s| s.name == "larder_disk_corrupt_total")
        .unwrap();
    assert_eq!(corrupt.value, 1);
}

#[tokio::test]
async fn a_meta_file_whose_header_does_not_decode_is_removed_by_a_running_storage() {
    let dir = tempfile::tempdir().unwrap();
    let disk = open(dir.path(), 64 << 20);
    put(disk, "z", b"small").await;
    let (meta, _) = files_of_only_entry(dir.path());
    flip(&meta, 0);
    assert!(get(disk, "z").await.is_none());
    assert_eq!(disk.stats().corrupt, 1);
    assert!(!meta.exists());
    assert_eq!(disk.len(), 0);
}
