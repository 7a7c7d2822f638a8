//! `MemCache`: the storage contract plus streaming partial writes under concurrency.

use std::sync::Arc;

use bytes::Bytes;
use larder_storage::{CacheKey, Error, MemCache, MissFinishType, PurgeType, Storage};
use tokio::sync::Barrier;
use tracing::Span;

use crate::contract::{self, meta, read_all, store};

fn leak() -> &'static MemCache {
    Box::leak(Box::new(MemCache::new()))
}

#[tokio::test]
async fn memcache_meets_storage_contract() {
    contract::run_all(leak(), "contract").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memcache_meets_storage_contract_concurrently() {
    let cache = leak();
    let runs: Vec<_> = (0..8)
        .map(|i| {
            tokio::spawn(contract::run_all(
                cache,
                Box::leak(format!("ns{i}").into_boxed_str()),
            ))
        })
        .collect();
    for run in runs {
        run.await.unwrap();
    }
    assert_eq!(cache.writes_in_progress(), 0);
}

#[test]
fn memcache_supports_streaming_partial_write() {
    assert!(leak().support_streaming_partial_write());
    let storage: &'static (dyn Storage + Sync) = leak();
    assert!(storage.as_any().downcast_ref::<MemCache>().is_some());
}

#[tokio::test]
async fn unfinished_write_is_streamed_not_complete() {
    let cache = leak();
    let span = Span::none();
    let key = CacheKey::new("", "partial", "");
    let mut miss = cache
        .get_miss_handler(&key, &meta("m"), &span)
        .await
        .unwrap();
    miss.write_body(Bytes::from_static(b"abc"), false)
        .await
        .unwrap();
    assert!(cache.is_empty(), "no complete entry before finish");

    let (got, mut hit) = cache
        .lookup(&key, &span)
        .await
        .unwrap()
        .expect("partial hit");
    assert_eq!(got, meta("m"));
    assert!(!hit.should_count_access());
    assert_eq!(hit.read_body().await.unwrap().as_deref(), Some(&b"abc"[..]));

    let reader = tokio::spawn(async move { read_all(&mut hit).await });
    tokio::task::yield_now().await;
    miss.write_body(Bytes::from_static(b"def"), true)
        .await
        .unwrap();
    assert_eq!(
        miss.finish().await.unwrap(),
        MissFinishType::Created(6 + meta("m").serialize().unwrap().len())
    );
    assert_eq!(reader.await.unwrap().unwrap(), b"def");
    assert_eq!(cache.len(), 1);
    assert_eq!(cache.writes_in_progress(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_readers_and_one_writer_see_exactly_the_written_bytes() {
    const READERS: usize = 16;
    const CHUNKS: usize = 200;
    let cache = leak();
    let span = Span::none();
    let key = CacheKey::new("", "concurrent", "");
    let mut miss = cache
        .get_miss_handler(&key, &meta("c"), &span)
        .await
        .unwrap();
    let expected: Vec<u8> = (0..CHUNKS)
        .flat_map(|i| std::iter::repeat_n(u8::try_from(i % 251).unwrap(), 1 + i % 37))
        .collect();

    let start = Arc::new(Barrier::new(READERS + 1));
    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let key = key.clone();
            let start = start.clone();
            tokio::spawn(async move {
                let span = Span::none();
                let (_, mut hit) = cache.lookup(&key, &span).await.unwrap().unwrap();
                start.wait().await;
                read_all(&mut hit).await.unwrap()
            })
        })
        .collect();
    start.wait().await;
    let mut offset = 0;
    for i in 0..CHUNKS {
        let len = 1 + i % 37;
        let chunk = Bytes::copy_from_slice(&expected[offset..offset + len]);
        offset += len;
        miss.write_body(chunk, i + 1 == CHUNKS).await.unwrap();
        if i % 16 == 0 {
            tokio::task::yield_now().await;
        }
    }
    miss.finish().await.unwrap();
    for reader in readers {
        assert_eq!(reader.await.unwrap(), expected);
    }
    // Late readers get the complete entry.
    let (_, mut hit) = cache.lookup(&key, &span).await.unwrap().unwrap();
    assert!(hit.should_count_access());
    assert_eq!(read_all(&mut hit).await.unwrap(), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_writer_surfaces_an_error_to_readers() {
    let cache = leak();
    let span = Span::none();
    let key = CacheKey::new("", "abandoned", "");
    let mut miss = cache
        .get_miss_handler(&key, &meta("a"), &span)
        .await
        .unwrap();
    miss.write_body(Bytes::from_static(b"half"), false)
        .await
        .unwrap();
    let (_, mut waiting) = cache.lookup(&key, &span).await.unwrap().unwrap();
    let (_, mut drained) = cache.lookup(&key, &span).await.unwrap().unwrap();
    assert_eq!(
        drained.read_body().await.unwrap().as_deref(),
        Some(&b"half"[..])
    );
    let waiter = tokio::spawn(async move { read_all(&mut waiting).await });
    let drained = tokio::spawn(async move { drained.read_body().await });
    tokio::task::yield_now().await;
    drop(miss);
    assert!(matches!(waiter.await.unwrap(), Err(Error::WriteAbandoned)));
    assert!(matches!(drained.await.unwrap(), Err(Error::WriteAbandoned)));
    assert!(cache.lookup(&key, &span).await.unwrap().is_none());
    assert_eq!(cache.writes_in_progress(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_during_read_does_not_break_readers() {
    let cache = leak();
    let span = Span::none();
    let key = CacheKey::new("", "purged", "");
    store(cache, &key, &meta("done"), &[b"complete body"]).await;
    let (_, mut complete) = cache.lookup(&key, &span).await.unwrap().unwrap();

    let mut miss = cache
        .get_miss_handler(&key, &meta("w"), &span)
        .await
        .unwrap();
    miss.write_body(Bytes::from_static(b"first "), false)
        .await
        .unwrap();
    let (_, mut partial) = cache.lookup(&key, &span).await.unwrap().unwrap();
    let partial_reader = tokio::spawn(async move { read_all(&mut partial).await });

    assert!(
        cache
            .purge(&key.to_compact(), PurgeType::Invalidation, &span)
            .await
            .unwrap()
    );
    assert!(cache.lookup(&key, &span).await.unwrap().is_none());

    // A reader of the complete entry keeps its bytes.
    assert_eq!(read_all(&mut complete).await.unwrap(), b"complete body");
    // The write goes on for its readers but is not stored.
    miss.write_body(Bytes::from_static(b"second"), true)
        .await
        .unwrap();
    assert!(matches!(miss.finish().await, Err(Error::WritePurged)));
    assert_eq!(partial_reader.await.unwrap().unwrap(), b"first second");
    assert!(cache.lookup(&key, &span).await.unwrap().is_none());
}

#[tokio::test]
async fn concurrent_writers_keep_their_own_slots() {
    let cache = leak();
    let span = Span::none();
    let key = CacheKey::new("", "two-writers", "");
    let mut first = cache
        .get_miss_handler(&key, &meta("first"), &span)
        .await
        .unwrap();
    let mut second = cache
        .get_miss_handler(&key, &meta("second"), &span)
        .await
        .unwrap();
    assert_ne!(first.streaming_write_tag(), second.streaming_write_tag());
    let (m1, mut r1) = cache
        .lookup_streaming_write(&key, first.streaming_write_tag(), &span)
        .await
        .unwrap()
        .unwrap();
    let (m2, mut r2) = cache
        .lookup_streaming_write(&key, second.streaming_write_tag(), &span)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m1, meta("first"));
    assert_eq!(m2, meta("second"));
    // A plain lookup prefers the newest write.
    let (newest, _) = cache.lookup(&key, &span).await.unwrap().unwrap();
    assert_eq!(newest, meta("second"));

    first
        .write_body(Bytes::from_static(b"1111"), true)
        .await
        .unwrap();
    second
        .write_body(Bytes::from_static(b"22"), true)
        .await
        .unwrap();
    first.finish().await.unwrap();
    assert_eq!(read_all(&mut r1).await.unwrap(), b"1111");
    drop(second);
    assert!(matches!(
        read_all(&mut r2).await,
        Err(Error::WriteAbandoned)
    ));
    let (got, mut hit) = cache.lookup(&key, &span).await.unwrap().unwrap();
    assert_eq!(got, meta("first"));
    assert_eq!(read_all(&mut hit).await.unwrap(), b"1111");
    // A tag that is not a write in progress finds nothing.
    assert!(
        cache
            .lookup_streaming_write(&key, Some(&[0u8; 8]), &span)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        cache
            .lookup_streaming_write(&key, Some(b"bad"), &span)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn write_after_eof_is_rejected() {
    let cache = leak();
    let span = Span::none();
    let key = CacheKey::new("", "eof", "");
    let mut miss = cache
        .get_miss_handler(&key, &meta("e"), &span)
        .await
        .unwrap();
    miss.write_body(Bytes::from_static(b"end"), true)
        .await
        .unwrap();
    assert!(matches!(
        miss.write_body(Bytes::from_static(b"more"), false).await,
        Err(Error::WriteAfterEnd)
    ));
    miss.write_body(Bytes::new(), true).await.unwrap();
}

#[tokio::test]
async fn update_meta_ignores_writes_in_progress() {
    let cache = leak();
    let span = Span::none();
    let key = CacheKey::new("", "update-partial", "");
    let _miss = cache
        .get_miss_handler(&key, &meta("w"), &span)
        .await
        .unwrap();
    assert!(!cache.update_meta(&key, &meta("u"), &span).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seek_on_partial_waits_for_the_bytes() {
    let cache = leak();
    let span = Span::none();
    let key = CacheKey::new("", "seek-partial", "");
    let mut miss = cache
        .get_miss_handler(&key, &meta("s"), &span)
        .await
        .unwrap();
    miss.write_body(Bytes::from_static(b"0123"), false)
        .await
        .unwrap();
    let (_, mut ranged) = cache.lookup(&key, &span).await.unwrap().unwrap();
    let (_, mut tail) = cache.lookup(&key, &span).await.unwrap().unwrap();
    let (_, mut beyond) = cache.lookup(&key, &span).await.unwrap().unwrap();
    assert!(ranged.can_seek());
    ranged.seek(2, Some(7)).unwrap();
    tail.seek(6, None).unwrap();
    beyond.seek(50, None).unwrap();
    assert!(ranged.seek(3, Some(3)).is_err());
    let ranged = tokio::spawn(async move { read_all(&mut ranged).await });
    let tail = tokio::spawn(async move { read_all(&mut tail).await });
    let beyond = tokio::spawn(async move { read_all(&mut beyond).await });
    tokio::task::yield_now().await;
    miss.write_body(Bytes::from_static(b"45"), false)
        .await
        .unwrap();
    miss.write_body(Bytes::from_static(b"6789"), true)
        .await
        .unwrap();
    miss.finish().await.unwrap();
    assert_eq!(ranged.await.unwrap().unwrap(), b"23456");
    assert_eq!(tail.await.unwrap().unwrap(), b"6789");
    assert!(matches!(
        beyond.await.unwrap(),
        Err(Error::SeekOutOfRange { start: 50, len: 10 })
    ));
}

#[tokio::test]
async fn seek_on_finished_partial_checks_the_length() {
    let cache = leak();
    let span = Span::none();
    let key = CacheKey::new("", "seek-finished-partial", "");
    let mut miss = cache
        .get_miss_handler(&key, &meta("s"), &span)
        .await
        .unwrap();
    let (_, mut hit) = cache
        .lookup_streaming_write(&key, miss.streaming_write_tag(), &span)
        .await
        .unwrap()
        .unwrap();
    miss.write_body(Bytes::from_static(b"abcdef"), true)
        .await
        .unwrap();
    miss.finish().await.unwrap();
    assert!(matches!(
        hit.seek(6, None),
        Err(Error::SeekOutOfRange { start: 6, len: 6 })
    ));
    hit.seek(4, None).unwrap();
    assert_eq!(read_all(&mut hit).await.unwrap(), b"ef");
    hit.seek(0, Some(2)).unwrap();
    assert_eq!(read_all(&mut hit).await.unwrap(), b"ab");
}

#[tokio::test]
async fn complete_hit_eviction_weight_counts_body_and_meta() {
    let cache = leak();
    let span = Span::none();
    let key = CacheKey::new("", "weight", "");
    store(cache, &key, &meta("w"), &[b"12345"]).await;
    let (_, hit) = cache.lookup(&key, &span).await.unwrap().unwrap();
    assert_eq!(
        hit.get_eviction_weight(),
        5 + meta("w").serialize().unwrap().len()
    );
}

#[tokio::test]
async fn stored_bytes_follow_writes_updates_and_purges() {
    let cache = leak();
    let span = Span::none();
    let key = CacheKey::new("", "bytes", "");
    let meta_len = |tag: &str| meta(tag).serialize().unwrap().len();
    assert_eq!(cache.stored_bytes(), 0);
    store(cache, &key, &meta("a"), &[b"12345"]).await;
    assert_eq!(cache.stored_bytes(), meta_len("a") + 5);
    store(cache, &key, &meta("a"), &[b"12"]).await;
    assert_eq!(
        cache.stored_bytes(),
        meta_len("a") + 2,
        "a replaced entry is not counted twice"
    );
    let other = CacheKey::new("", "bytes-2", "");
    store(cache, &other, &meta("b"), &[b"xyz"]).await;
    assert!(
        cache
            .update_meta(&key, &meta("longer tag"), &span)
            .await
            .unwrap()
    );
    assert_eq!(
        cache.stored_bytes(),
        meta_len("longer tag") + 2 + meta_len("b") + 3
    );
    cache
        .purge(&key.to_compact(), PurgeType::Eviction, &span)
        .await
        .unwrap();
    assert_eq!(cache.stored_bytes(), meta_len("b") + 3);
    cache
        .purge(&other.to_compact(), PurgeType::Eviction, &span)
        .await
        .unwrap();
    assert_eq!(cache.stored_bytes(), 0);
}

#[tokio::test]
async fn eviction_purge_spares_writes_in_progress() {
    let cache = leak();
    let span = Span::none();
    let key = CacheKey::new("", "evict-during-write", "");
    store(cache, &key, &meta("old"), &[b"old"]).await;
    let mut miss = cache
        .get_miss_handler(&key, &meta("new"), &span)
        .await
        .unwrap();
    miss.write_body(Bytes::from_static(b"new"), true)
        .await
        .unwrap();
    assert!(
        cache
            .purge(&key.to_compact(), PurgeType::Eviction, &span)
            .await
            .unwrap()
    );
    assert!(
        !cache
            .purge(&key.to_compact(), PurgeType::Eviction, &span)
            .await
            .unwrap()
    );
    assert!(matches!(
        miss.finish().await,
        Ok(MissFinishType::Created(_))
    ));
    let (got, mut hit) = cache.lookup(&key, &span).await.unwrap().unwrap();
    assert_eq!(got, meta("new"));
    assert_eq!(read_all(&mut hit).await.unwrap(), b"new");
}

#[tokio::test]
async fn repeated_hits_share_one_decoded_meta_without_its_changes() {
    let cache = leak();
    let span = Span::none();
    let key = CacheKey::new("", "hot", "");
    let mut stored = meta("hot");
    stored.extensions_mut().insert(7u32);
    store(cache, &key, &stored, &[b"body"]).await;
    // Read once (decoded), twice (decoded and kept), then from the kept copy.
    for _ in 0..4 {
        let (mut got, _) = cache.lookup(&key, &span).await.unwrap().expect("hit");
        assert_eq!(got, meta("hot"));
        assert!(got.extensions().get::<u32>().is_none(), "never persisted");
        // A reader's change stays its own.
        got.disable_serve_stale();
        got.response_header_mut()
            .insert_header("x-changed", "1")
            .unwrap();
    }
    let mut updated = meta("updated");
    updated.set_variance([1; 16]);
    assert!(cache.update_meta(&key, &updated, &span).await.unwrap());
    for _ in 0..3 {
        let (got, mut hit) = cache.lookup(&key, &span).await.unwrap().expect("hit");
        assert_eq!(got, updated);
        assert_eq!(read_all(&mut hit).await.unwrap(), b"body");
    }
}

#[tokio::test]
async fn seek_multipart_reads_each_part_with_one_handler() {
    let cache = leak();
    let span = Span::none();
    let key = CacheKey::new("", "seek-multipart", "");
    store(cache, &key, &meta("m"), &[b"0123", b"456789"]).await;
    let (_, mut hit) = cache.lookup(&key, &span).await.unwrap().unwrap();
    assert!(hit.can_seek_multipart());
    hit.seek_multipart(1, Some(3)).unwrap();
    assert_eq!(read_all(&mut hit).await.unwrap(), b"12");
    hit.seek_multipart(7, None).unwrap();
    assert_eq!(read_all(&mut hit).await.unwrap(), b"789");
    assert!(matches!(
        hit.seek_multipart(10, None),
        Err(Error::SeekOutOfRange { start: 10, len: 10 })
    ));
}
