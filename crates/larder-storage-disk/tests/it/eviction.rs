use super::*;

#[tokio::test]
async fn stored_bytes_stay_within_max_size() {
    let dir = tempfile::tempdir().unwrap();
    let max = 2 << 20;
    let disk = open(dir.path(), max);
    for i in 0..40 {
        put(
            disk,
            &format!("e{i}"),
            &body((100 << 10) + (i % 3) * (50 << 10), i as u8),
        )
        .await;
        assert!(
            disk.stored_bytes() <= max,
            "after {i}: {}",
            disk.stored_bytes()
        );
    }
    let stats = disk.stats();
    assert!(stats.evictions > 0);
    assert_eq!(stats.entries, disk.len() as u64);
    // What is on disk is what the index holds.
    let on_disk: u64 = object_files(dir.path())
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert_eq!(on_disk, disk.stored_bytes());
    assert!(get(disk, "e39").await.is_some());
}

#[tokio::test]
async fn an_object_larger_than_the_cache_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let disk = open(dir.path(), 100 << 10);
    let span = Span::none();
    let mut miss = disk
        .get_miss_handler(&key("huge"), &contract::meta("h"), &span)
        .await
        .unwrap();
    miss.write_body(bytes(&body(60 << 10, 0)), false)
        .await
        .unwrap();
    assert!(
        miss.write_body(bytes(&body(60 << 10, 0)), true)
            .await
            .is_err()
    );
    drop(miss);
    assert!(get(disk, "huge").await.is_none());
    assert!(object_files(dir.path()).is_empty());
    assert_eq!(disk.stored_bytes(), 0);
}

#[tokio::test]
async fn update_meta_keeps_the_body_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let disk = open(dir.path(), 64 << 20);
    put(disk, "u", &body(500 << 10, 4)).await;
    let new_meta = contract::meta("updated");
    assert!(
        disk.update_meta(&key("u"), &new_meta, &Span::none())
            .await
            .unwrap()
    );
    let again = open(dir.path(), 64 << 20);
    let (meta, mut hit) = again
        .lookup(&key("u"), &Span::none())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(meta, new_meta);
    assert_eq!(
        contract::read_all(&mut hit).await.unwrap(),
        body(500 << 10, 4)
    );
    assert_eq!(again.stored_bytes(), disk.stored_bytes());
}
