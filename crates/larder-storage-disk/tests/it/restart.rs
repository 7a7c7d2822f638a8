use super::*;

const SIZES: [usize; 5] = [0, 1000, 64 << 10, 300 << 10, 3 << 20];

#[tokio::test]
async fn entries_survive_a_restart_with_their_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path(), 64 << 20);
    for (i, size) in SIZES.iter().enumerate() {
        put(first, &format!("k{i}"), &body(*size, i as u8)).await;
    }
    let bytes_before = first.stored_bytes();
    first.save_state().unwrap();

    // A second storage on the same directory: hits at once, before its load completes, and
    // after it.
    let second = open_with(DiskConfig::new(dir.path(), 64 << 20));
    for (i, size) in SIZES.iter().enumerate() {
        let got = get(second, &format!("k{i}")).await.expect("a hit").unwrap();
        assert_eq!(got, body(*size, i as u8), "entry {i}");
    }
    assert!(second.wait_loaded(Duration::from_secs(10)));
    assert_eq!(second.len(), SIZES.len());
    assert_eq!(second.stored_bytes(), bytes_before);
    let (meta, _) = second
        .lookup(&key("k1"), &Span::none())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(meta, contract::meta("k1"));
}

#[tokio::test]
async fn a_restart_without_saved_state_rebuilds_the_index_from_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path(), 64 << 20);
    put(first, "a", b"alpha").await;
    put(first, "b", &body(200 << 10, 1)).await;
    let second = open(dir.path(), 64 << 20);
    assert_eq!(second.len(), 2);
    assert_eq!(second.stored_bytes(), first.stored_bytes());
    assert_eq!(get(second, "a").await.unwrap().unwrap(), b"alpha");
}

#[tokio::test]
async fn a_write_dropped_mid_body_leaves_nothing_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path(), 64 << 20);
    let span = Span::none();
    let mut miss = first
        .get_miss_handler(&key("dropped"), &contract::meta("d"), &span)
        .await
        .unwrap();
    miss.write_body(bytes(&body(200 << 10, 3)), false)
        .await
        .unwrap();
    // A crash is simulated by leaking the writer: its files stay where they are.
    std::mem::forget(miss);
    assert!(
        std::fs::read_dir(dir.path().join("tmp"))
            .unwrap()
            .next()
            .is_some()
    );
    let second = open(dir.path(), 64 << 20);
    assert!(get(second, "dropped").await.is_none());
    assert!(object_files(dir.path()).is_empty());
    assert!(
        std::fs::read_dir(dir.path().join("tmp"))
            .unwrap()
            .next()
            .is_none()
    );
    assert_eq!(second.len(), 0);
}

#[tokio::test]
async fn orphans_a_crash_leaves_are_removed_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path(), 64 << 20);
    put(first, "kept", &body(100 << 10, 1)).await;
    let (meta, body_file) = files_of_only_entry(dir.path());
    let body_file = body_file.unwrap();
    // A body renamed into place whose meta file never followed, and a meta file whose body
    // is gone.
    let orphan = body_file.with_extension("ffff");
    std::fs::copy(&body_file, &orphan).unwrap();
    let leaf = meta.parent().unwrap();
    let stray = leaf.join("0".repeat(32));
    let mut stray_meta = std::fs::read(&meta).unwrap();
    stray_meta.truncate(40);
    std::fs::write(&stray, stray_meta).unwrap();
    let second = open(dir.path(), 64 << 20);
    assert!(!orphan.exists());
    assert!(!stray.exists());
    assert_eq!(second.len(), 1);
    assert_eq!(
        get(second, "kept").await.unwrap().unwrap(),
        body(100 << 10, 1)
    );
}

/// Five names the LRU files in one shard, so their order is one list.
fn same_shard_names() -> Vec<String> {
    use larder_storage::eviction::lru::Manager;
    let lru: Manager<16> = Manager::with_capacity(1, 1);
    let shard = |n: &str| lru.get_shard_for_key(&key(n).to_compact());
    let first = shard("s0");
    (0..)
        .map(|i| format!("s{i}"))
        .filter(|n| shard(n) == first)
        .take(5)
        .collect()
}

#[tokio::test]
async fn the_saved_eviction_order_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let n = same_shard_names();
    let first = open(dir.path(), 1 << 20);
    for name in &n[..3] {
        put(first, name, &body(200 << 10, 0)).await;
    }
    // The oldest becomes the most recently used; the second is now the least.
    assert!(get(first, &n[0]).await.is_some());
    first.save_state().unwrap();
    let second = open(dir.path(), 1 << 20);
    assert_eq!(second.len(), 3);
    put(second, &n[3], &body(200 << 10, 0)).await;
    put(second, &n[4], &body(300 << 10, 0)).await;
    assert!(
        get(second, &n[1]).await.is_none(),
        "the least recently used went first"
    );
    assert!(get(second, &n[0]).await.is_some());
    assert!(get(second, &n[4]).await.is_some());
    assert!(second.stored_bytes() <= 1 << 20);
    assert_eq!(second.stats().evictions, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_start_up_scan_of_ten_thousand_entries_completes() {
    use larder_storage_disk::format;
    // On a tmpfs where there is one: creating 10 000 files on a busy disk takes seconds.
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    };
    // A storage creates the directory; the entries are then written as files directly (what
    // a previous run would have left), which is much quicker than 10 000 commits.
    open(dir.path(), 1 << 30);
    let meta = contract::meta("scan").serialize().unwrap();
    for i in 0..10_000u64 {
        let k = key(&format!("n{i}"));
        let hex = k.combined();
        let leaf = dir.path().join("objects").join(&hex[..2]).join(&hex[2..4]);
        std::fs::create_dir_all(&leaf).unwrap();
        let body = format!("body {i}");
        let crcs = format::chunk_crcs(body.as_bytes(), 64 << 10);
        let file = format::encode(
            i + 1,
            0,
            body.len() as u64,
            64 << 10,
            &k.to_compact(),
            &meta,
            &crcs,
            Some(body.as_bytes()),
        );
        std::fs::write(leaf.join(&hex), file).unwrap();
    }
    let started = std::time::Instant::now();
    let second = open_with(DiskConfig::new(dir.path(), 1 << 30));
    // Hits are served while the scan runs.
    assert_eq!(get(second, "n42").await.unwrap().unwrap(), b"body 42");
    assert!(second.wait_loaded(Duration::from_secs(30)));
    eprintln!("scan of 10 000 entries: {:?}", started.elapsed());
    assert_eq!(second.len(), 10_000);
    assert!(second.stats().loaded);
    assert_eq!(get(second, "n9999").await.unwrap().unwrap(), b"body 9999");
    assert!(get(second, "absent").await.is_none());
}
