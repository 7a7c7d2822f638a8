use larder_storage::{Error, PurgeType};
use proptest::prelude::*;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_64_mib_object_streams_to_a_reader_following_the_write() {
    const LEN: usize = 64 << 20;
    let dir = tempfile::tempdir().unwrap();
    let disk = open(dir.path(), 256 << 20);
    let span = Span::none();
    let k = key("big");
    let mut miss = disk
        .get_miss_handler(&k, &contract::meta("big"), &span)
        .await
        .unwrap();
    let (_, mut reader) = disk
        .lookup(&k, &span)
        .await
        .unwrap()
        .expect("the write in progress");
    let follower = tokio::spawn(async move {
        let mut hasher = crc32fast::Hasher::new();
        let mut len = 0;
        while let Some(chunk) = reader.read_body().await.unwrap() {
            hasher.update(&chunk);
            len += chunk.len();
        }
        (len, hasher.finalize())
    });
    let piece = body(1 << 20, 0);
    let mut expected = crc32fast::Hasher::new();
    for i in 0..64 {
        expected.update(&piece);
        miss.write_body(bytes(&piece), i == 63).await.unwrap();
        tokio::task::yield_now().await;
    }
    miss.finish().await.unwrap();
    let (len, crc) = follower.await.unwrap();
    assert_eq!(len, LEN);
    assert_eq!(crc, expected.finalize());
    // The complete entry reads the same, chunk by chunk.
    let mut hit = hit(disk, "big").await;
    let mut hasher = crc32fast::Hasher::new();
    let mut total = 0;
    while let Some(chunk) = hit.read_body().await.unwrap() {
        assert!(chunk.len() <= 64 << 10);
        hasher.update(&chunk);
        total += chunk.len();
    }
    assert_eq!((total, hasher.finalize()), (LEN, crc));
}

#[tokio::test]
async fn concurrent_writers_of_one_key_do_not_mix() {
    let dir = tempfile::tempdir().unwrap();
    let disk = open(dir.path(), 64 << 20);
    let span = Span::none();
    let k = key("shared");
    let mut a = disk
        .get_miss_handler(&k, &contract::meta("a"), &span)
        .await
        .unwrap();
    let mut b = disk
        .get_miss_handler(&k, &contract::meta("b"), &span)
        .await
        .unwrap();
    let (_, mut read_a) = disk
        .lookup_streaming_write(&k, a.streaming_write_tag(), &span)
        .await
        .unwrap()
        .unwrap();
    a.write_body(bytes(&body(300 << 10, 1)), false)
        .await
        .unwrap();
    b.write_body(bytes(&body(100 << 10, 2)), true)
        .await
        .unwrap();
    a.write_body(bytes(&body(300 << 10, 3)), true)
        .await
        .unwrap();
    b.finish().await.unwrap();
    // While `a` is in progress, lookups read it (newer data), as MemCache does.
    let (meta, _) = disk.lookup(&k, &span).await.unwrap().unwrap();
    assert_eq!(meta, contract::meta("a"));
    a.finish().await.unwrap();
    let mut want = body(300 << 10, 1);
    want.extend(body(300 << 10, 3));
    assert_eq!(contract::read_all(&mut read_a).await.unwrap(), want);
    // The write that finished last is the entry, and only its files are left.
    assert_eq!(get(disk, "shared").await.unwrap().unwrap(), want);
    assert_eq!(object_files(dir.path()).len(), 2);
    assert_eq!(disk.len(), 1);
}

#[tokio::test]
async fn a_purge_during_a_write_makes_its_finish_write_purged() {
    let dir = tempfile::tempdir().unwrap();
    let disk = open(dir.path(), 64 << 20);
    let span = Span::none();
    let k = key("purged");
    put(disk, "purged", b"old").await;
    let mut miss = disk
        .get_miss_handler(&k, &contract::meta("new"), &span)
        .await
        .unwrap();
    let (_, mut reader) = disk.lookup(&k, &span).await.unwrap().unwrap();
    miss.write_body(bytes(b"new body"), true).await.unwrap();
    assert!(
        disk.purge(&k.to_compact(), PurgeType::Invalidation, &span)
            .await
            .unwrap()
    );
    assert!(matches!(miss.finish().await, Err(Error::WritePurged)));
    // Its reader still gets the whole body; nothing is stored.
    assert_eq!(contract::read_all(&mut reader).await.unwrap(), b"new body");
    assert!(get(disk, "purged").await.is_none());
    assert!(object_files(dir.path()).is_empty());
}

#[tokio::test]
async fn an_eviction_purge_keeps_a_write_in_progress() {
    let dir = tempfile::tempdir().unwrap();
    let disk = open(dir.path(), 64 << 20);
    let span = Span::none();
    let k = key("evicted");
    put(disk, "evicted", b"old").await;
    let mut miss = disk
        .get_miss_handler(&k, &contract::meta("new"), &span)
        .await
        .unwrap();
    assert!(
        disk.purge(&k.to_compact(), PurgeType::Eviction, &span)
            .await
            .unwrap()
    );
    miss.write_body(bytes(b"new"), true).await.unwrap();
    miss.finish().await.unwrap();
    assert_eq!(get(disk, "evicted").await.unwrap().unwrap(), b"new");
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Ranges of a body file larger than the whole-verify bound (read chunk by chunk) and of a
    /// small inline body.
    #[test]
    fn seek_reads_the_right_bytes(ranges in proptest::collection::vec((0usize..(3 << 20), 1usize..(300 << 10)), 1..6)) {
        type Fixture = (tempfile::TempDir, &'static DiskStorage, Vec<u8>, Vec<u8>);
        static DISK: std::sync::OnceLock<Fixture> = std::sync::OnceLock::new();
        let rt = runtime();
        let (_, disk, large, small) = DISK.get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let disk = open(dir.path(), 64 << 20);
            rt.block_on(async {
                put(disk, "large", &body(3 << 20, 5)).await;
                put(disk, "small", &body(1000, 6)).await;
            });
            (dir, disk, body(3 << 20, 5), body(1000, 6))
        });
        rt.block_on(async {
            let mut h_large = hit(disk, "large").await;
            let mut h_small = hit(disk, "small").await;
            for (start, len) in ranges {
                h_large.seek(start, Some(start + len)).unwrap();
                let got = contract::read_all(&mut h_large).await.unwrap();
                assert_eq!(got, &large[start..(start + len).min(large.len())]);
                let s = start % small.len();
                h_small.seek(s, Some(s + len)).unwrap();
                let got = contract::read_all(&mut h_small).await.unwrap();
                assert_eq!(got, &small[s..(s + len).min(small.len())]);
            }
            assert!(h_large.seek(3 << 20, None).is_err());
        });
    }
}
