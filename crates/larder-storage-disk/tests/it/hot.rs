//! The hot-entry cache: hits go through it, and every change of an entry's files drops it, so
//! a hit never serves a replaced, purged, evicted or damaged entry.

use std::fs;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::Path;

use larder_storage::PurgeType;

use super::*;

/// Flips the byte at `at` in place: the same inode, which a cached descriptor reads.
fn flip_in_place(path: &Path, at: u64) {
    let mut f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8];
    f.seek(SeekFrom::Start(at)).unwrap();
    f.read_exact(&mut b).unwrap();
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(&[!b[0]]).unwrap();
}

/// The sizes of the three ways a body is read: inline, a body file read whole, a large body
/// file read chunk by chunk.
const SIZES: [usize; 3] = [1000, 300 << 10, 3 << 20];

/// Stores `name` and hits it twice, so the second hit goes through the hot cache.
async fn stored_and_hot(disk: &'static DiskStorage, name: &str, data: &[u8]) {
    put(disk, name, data).await;
    assert_eq!(get(disk, name).await.unwrap().unwrap(), data);
    assert!(disk.stats().open_files >= 1, "{:?}", disk.stats());
    assert_eq!(get(disk, name).await.unwrap().unwrap(), data);
}

#[tokio::test]
async fn a_replaced_entry_is_never_served_from_the_hot_cache() {
    let dir = tempfile::tempdir().unwrap();
    let disk = open(dir.path(), 64 << 20);
    for (i, size) in SIZES.into_iter().enumerate() {
        let name = format!("r{i}");
        stored_and_hot(disk, &name, &body(size, 1)).await;
        // Replaced by a body of another size and content, then by one of the same size.
        put(disk, &name, &body(size / 2 + 7, 2)).await;
        assert_eq!(
            get(disk, &name).await.unwrap().unwrap(),
            body(size / 2 + 7, 2)
        );
        put(disk, &name, &body(size, 3)).await;
        assert_eq!(get(disk, &name).await.unwrap().unwrap(), body(size, 3));
        assert_eq!(get(disk, &name).await.unwrap().unwrap(), body(size, 3));
    }
}

#[tokio::test]
async fn update_meta_is_seen_by_the_next_hit() {
    let dir = tempfile::tempdir().unwrap();
    let disk = open(dir.path(), 64 << 20);
    for (i, size) in SIZES.into_iter().enumerate() {
        let name = format!("u{i}");
        stored_and_hot(disk, &name, &body(size, 4)).await;
        let new_meta = contract::meta("updated");
        assert!(
            disk.update_meta(&key(&name), &new_meta, &Span::none())
                .await
                .unwrap()
        );
        let (meta, mut hit) = disk
            .lookup(&key(&name), &Span::none())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(meta, new_meta);
        assert_eq!(contract::read_all(&mut hit).await.unwrap(), body(size, 4));
    }
}

#[tokio::test]
async fn purged_entries_leave_the_hot_cache() {
    let dir = tempfile::tempdir().unwrap();
    let disk = open(dir.path(), 64 << 20);
    for purge_type in [PurgeType::Eviction, PurgeType::Invalidation] {
        stored_and_hot(disk, "p", b"purge me").await;
        let compact = key("p").to_compact();
        assert!(
            disk.purge(&compact, purge_type, &Span::none())
                .await
                .unwrap()
        );
        assert_eq!(disk.stats().open_files, 0, "{purge_type:?}");
        assert!(get(disk, "p").await.is_none(), "{purge_type:?}");
    }
}

#[tokio::test]
async fn evicted_entries_leave_the_hot_cache() {
    let dir = tempfile::tempdir().unwrap();
    // Room for about three 100 KiB entries. The sharded LRU picks its victims among shards
    // at random, so which entries go is not fixed: the test checks every one.
    let disk = open(dir.path(), 330 << 10);
    let names: Vec<String> = (0..9).map(|i| format!("e{i}")).collect();
    for name in &names {
        // Each entry is hot (its descriptor cached) before the next ones evict it.
        stored_and_hot(disk, name, &body(100 << 10, 5)).await;
    }
    assert!(disk.stats().evictions >= 6, "{:?}", disk.stats());
    // An entry the hot cache kept after its eviction would still be found: every name found
    // must be one the storage still holds.
    let mut found = 0;
    for name in &names {
        if let Some(read) = get(disk, name).await {
            assert_eq!(read.unwrap(), body(100 << 10, 5), "{name}");
            found += 1;
        }
    }
    assert_eq!(found, disk.len(), "{:?}", disk.stats());
    assert!(found <= 3, "{found} found");
    assert!(
        disk.stats().open_files as usize <= found,
        "{:?}",
        disk.stats()
    );
}

#[tokio::test]
async fn damage_under_a_cached_descriptor_is_detected_counted_and_dropped() {
    for (i, size) in SIZES.into_iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        // No inline body kept in memory: every hit reads and checks the file.
        let mut config = DiskConfig::new(dir.path(), 64 << 20);
        config.kept_bodies = 0;
        let disk = open_with(config);
        assert!(disk.wait_loaded(Duration::from_secs(10)));
        let name = format!("c{i}");
        stored_and_hot(disk, &name, &body(size, 7)).await;
        let (meta, body_file) = files_of_only_entry(dir.path());
        match &body_file {
            // The byte before the meta file's trailing checksum is the inline body's last.
            None => flip_in_place(&meta, fs::metadata(&meta).unwrap().len() - 5),
            Some(body_file) => flip_in_place(body_file, size as u64 - 3),
        }
        match get(disk, &name).await {
            None => {}
            Some(Err(_)) => assert!(size > 1 << 20, "only a large body is cut mid-stream"),
            Some(Ok(got)) => panic!("a damaged entry was served whole ({} bytes)", got.len()),
        }
        let stats = disk.stats();
        assert_eq!(stats.corrupt, 1, "{stats:?}");
        assert_eq!(stats.open_files, 0, "{stats:?}");
        assert!(!meta.exists());
        assert!(get(disk, &name).await.is_none(), "removed after detection");
    }
}

#[tokio::test]
async fn a_kept_inline_body_was_verified_and_damage_under_it_is_found_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = body(1000, 7);
    {
        let disk = open(dir.path(), 64 << 20);
        stored_and_hot(disk, "k", &data).await;
        assert_eq!(disk.stats().kept_body_bytes, 1000, "{:?}", disk.stats());
        let (meta, _) = files_of_only_entry(dir.path());
        flip_in_place(&meta, fs::metadata(&meta).unwrap().len() - 5);
        // The hot entry hands out the bytes it verified: never the damaged ones.
        assert_eq!(get(disk, "k").await.unwrap().unwrap(), data);
        assert_eq!(disk.stats().corrupt, 0);
    }
    // Read again from the file (a new storage has no hot entry): detected, not served.
    let disk = open(dir.path(), 64 << 20);
    assert!(get(disk, "k").await.is_none());
    assert_eq!(disk.stats().corrupt, 1, "{:?}", disk.stats());
    assert_eq!(disk.stats().kept_body_bytes, 0);
}

#[tokio::test]
async fn a_damaged_inline_body_is_never_kept() {
    let dir = tempfile::tempdir().unwrap();
    let disk = open(dir.path(), 64 << 20);
    put(disk, "d", &body(1000, 6)).await;
    let (meta, _) = files_of_only_entry(dir.path());
    // Damaged before the first read: that read finds it, and nothing is kept.
    flip_in_place(&meta, fs::metadata(&meta).unwrap().len() - 5);
    assert!(get(disk, "d").await.is_none());
    let stats = disk.stats();
    assert_eq!(stats.corrupt, 1, "{stats:?}");
    assert_eq!(
        (stats.open_files, stats.kept_body_bytes),
        (0, 0),
        "{stats:?}"
    );
    assert!(get(disk, "d").await.is_none());
}

#[tokio::test]
async fn kept_bodies_follow_their_entries_and_their_budget() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = DiskConfig::new(dir.path(), 64 << 20);
    config.kept_bodies = 2500;
    let disk = open_with(config);
    assert!(disk.wait_loaded(Duration::from_secs(10)));
    stored_and_hot(disk, "a", &body(1000, 1)).await;
    assert_eq!(disk.stats().kept_body_bytes, 1000);
    // Replaced: the old bytes go with the old entry, the new ones are kept on the next hit.
    put(disk, "a", &body(1200, 2)).await;
    assert_eq!(disk.stats().kept_body_bytes, 0);
    for _ in 0..2 {
        assert_eq!(get(disk, "a").await.unwrap().unwrap(), body(1200, 2));
    }
    assert_eq!(disk.stats().kept_body_bytes, 1200);
    // A meta update replaces the meta file (and the inline body in it): nothing stale kept.
    let new_meta = contract::meta("updated");
    assert!(
        disk.update_meta(&key("a"), &new_meta, &Span::none())
            .await
            .unwrap()
    );
    assert_eq!(disk.stats().kept_body_bytes, 0);
    let (meta, mut hit) = disk
        .lookup(&key("a"), &Span::none())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(meta, new_meta);
    assert_eq!(contract::read_all(&mut hit).await.unwrap(), body(1200, 2));
    // The budget: a second body fits, a third does not and is read from the file each hit.
    stored_and_hot(disk, "b", &body(1000, 3)).await;
    stored_and_hot(disk, "c", &body(1000, 4)).await;
    assert_eq!(disk.stats().kept_body_bytes, 2200, "{:?}", disk.stats());
    assert_eq!(get(disk, "c").await.unwrap().unwrap(), body(1000, 4));
    // Purged: gone, and its bytes released.
    disk.purge(
        &key("b").to_compact(),
        PurgeType::Invalidation,
        &Span::none(),
    )
    .await
    .unwrap();
    assert_eq!(disk.stats().kept_body_bytes, 1200);
    assert!(get(disk, "b").await.is_none());
}

#[tokio::test]
async fn a_file_torn_under_a_cached_descriptor_is_not_served() {
    let dir = tempfile::tempdir().unwrap();
    let disk = open(dir.path(), 64 << 20);
    stored_and_hot(disk, "t", &body(300 << 10, 8)).await;
    let (_, body_file) = files_of_only_entry(dir.path());
    let file = fs::OpenOptions::new()
        .write(true)
        .open(body_file.unwrap())
        .unwrap();
    file.set_len(1000).unwrap();
    assert!(get(disk, "t").await.is_none());
    assert_eq!(disk.stats().corrupt, 1);
    assert_eq!(disk.stats().open_files, 0);
}

#[tokio::test]
async fn the_hot_cache_is_bounded_and_can_be_off() {
    for open_files in [0, 4] {
        let dir = tempfile::tempdir().unwrap();
        let mut config = DiskConfig::new(dir.path(), 64 << 20);
        config.open_files = open_files;
        let disk = open_with(config);
        assert!(disk.wait_loaded(Duration::from_secs(10)));
        for i in 0..40 {
            let name = format!("b{i}");
            put(disk, &name, &body(100 + i, 9)).await;
            for _ in 0..2 {
                assert_eq!(get(disk, &name).await.unwrap().unwrap(), body(100 + i, 9));
            }
        }
        let cached = disk.stats().open_files;
        assert!(cached <= open_files as u64, "{cached} > {open_files}");
        if open_files > 0 {
            assert!(cached > 0);
        }
    }
}
