//! The [`Storage`] contract as a generic suite: any backend runs [`run_all`] (or the single
//! checks) against a `&'static` instance. Each check uses its own keys under its namespace, so
//! one backend instance can run them all, even concurrently. [`meta`], [`store`] and
//! [`read_all`] help a backend's own tests write and read entries the same way.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::StatusCode;
use larder_storage::{
    CacheKey, CacheMeta, Error, HitHandler, MissFinishType, PurgeType, ResponseHeader, Storage,
};
use tracing::Span;

/// A backend under test.
pub type Backend = &'static (dyn Storage + Sync);

/// Runs every check of the contract.
pub async fn run_all(storage: Backend, namespace: &str) {
    absent_key_is_a_miss(storage, namespace).await;
    finished_write_is_found_with_its_meta_and_body(storage, namespace).await;
    newer_finished_write_replaces_older(storage, namespace).await;
    purge_removes_entry_and_reports_it(storage, namespace).await;
    update_meta_replaces_meta_and_keeps_body(storage, namespace).await;
    update_meta_of_absent_entry_is_false(storage, namespace).await;
    dropped_writer_stores_nothing(storage, namespace).await;
    variance_keys_are_separate_entries(storage, namespace).await;
    seek_reads_ranges(storage, namespace).await;
    empty_body_round_trips(storage, namespace).await;
    user_tag_is_not_part_of_the_key(storage, namespace).await;
    if storage.support_streaming_partial_write() {
        streaming_write_is_readable_while_written(storage, namespace).await;
        abandoned_streaming_write_errors_readers(storage, namespace).await;
    }
}

fn key(namespace: &str, name: &str) -> CacheKey {
    CacheKey::new(namespace, name, "")
}

/// A meta with a distinctive header so checks can tell metas apart.
pub fn meta(tag: &str) -> CacheMeta {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let mut header = ResponseHeader::new(StatusCode::OK);
    header.append_header("x-tag", tag).unwrap();
    header.append_header("cache-control", "max-age=60").unwrap();
    CacheMeta::new(now + Duration::from_mins(1), now, 5, 10, header)
}

fn tag_of(meta: &CacheMeta) -> &str {
    meta.headers()["x-tag"].to_str().unwrap()
}

/// Writes `chunks` as one entry and finishes it.
pub async fn store(storage: Backend, key: &CacheKey, meta: &CacheMeta, chunks: &[&[u8]]) {
    let span = Span::none();
    let mut miss = storage.get_miss_handler(key, meta, &span).await.unwrap();
    for (i, chunk) in chunks.iter().enumerate() {
        miss.write_body(Bytes::copy_from_slice(chunk), i + 1 == chunks.len())
            .await
            .unwrap();
    }
    match miss.finish().await.unwrap() {
        MissFinishType::Created(size) => {
            let body: usize = chunks.iter().map(|c| c.len()).sum();
            assert!(size >= body, "size {size} covers the body {body}");
        }
        MissFinishType::Appended(..) => panic!("a new entry reports Created"),
    }
}

/// Reads a hit to its end.
///
/// # Errors
///
/// The error the hit handler reads.
pub async fn read_all(hit: &mut HitHandler) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    while let Some(chunk) = hit.read_body().await? {
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

async fn lookup_body(storage: Backend, key: &CacheKey) -> Option<(CacheMeta, Vec<u8>)> {
    let span = Span::none();
    let (meta, mut hit) = storage.lookup(key, &span).await.unwrap()?;
    let body = read_all(&mut hit).await.unwrap();
    hit.finish(storage, key, &span).await.unwrap();
    Some((meta, body))
}

/// A key never written is a miss.
pub async fn absent_key_is_a_miss(storage: Backend, ns: &str) {
    assert!(lookup_body(storage, &key(ns, "absent")).await.is_none());
}

/// A finished write is found with the meta and body written.
pub async fn finished_write_is_found_with_its_meta_and_body(storage: Backend, ns: &str) {
    let k = key(ns, "found");
    let m = meta("one");
    store(storage, &k, &m, &[b"hello ", b"world"]).await;
    let (got, body) = lookup_body(storage, &k)
        .await
        .expect("stored entry is found");
    assert_eq!(got, m);
    assert_eq!(body, b"hello world");
}

/// A second finished write of a key replaces the first.
pub async fn newer_finished_write_replaces_older(storage: Backend, ns: &str) {
    let k = key(ns, "replace");
    store(storage, &k, &meta("old"), &[b"old body"]).await;
    store(storage, &k, &meta("new"), &[b"new"]).await;
    let (got, body) = lookup_body(storage, &k).await.unwrap();
    assert_eq!(tag_of(&got), "new");
    assert_eq!(body, b"new");
}

/// A purge removes the entry and says whether there was one.
pub async fn purge_removes_entry_and_reports_it(storage: Backend, ns: &str) {
    let span = Span::none();
    let k = key(ns, "purge");
    store(storage, &k, &meta("p"), &[b"x"]).await;
    let compact = k.to_compact();
    assert!(
        storage
            .purge(&compact, PurgeType::Invalidation, &span)
            .await
            .unwrap()
    );
    assert!(lookup_body(storage, &k).await.is_none());
    assert!(
        !storage
            .purge(&compact, PurgeType::Eviction, &span)
            .await
            .unwrap()
    );
}

/// Updating the meta of an entry replaces its meta and keeps its body.
pub async fn update_meta_replaces_meta_and_keeps_body(storage: Backend, ns: &str) {
    let span = Span::none();
    let k = key(ns, "update");
    store(storage, &k, &meta("before"), &[b"body"]).await;
    let mut updated = meta("after");
    updated.set_updated(updated.created() + Duration::from_secs(30));
    assert!(storage.update_meta(&k, &updated, &span).await.unwrap());
    let (got, body) = lookup_body(storage, &k).await.unwrap();
    assert_eq!(got, updated);
    assert_eq!(body, b"body");
}

/// Updating the meta of an absent entry reports `false`.
pub async fn update_meta_of_absent_entry_is_false(storage: Backend, ns: &str) {
    let span = Span::none();
    let k = key(ns, "update-absent");
    assert!(!storage.update_meta(&k, &meta("x"), &span).await.unwrap());
    assert!(lookup_body(storage, &k).await.is_none());
}

/// A writer dropped before it finishes stores nothing.
pub async fn dropped_writer_stores_nothing(storage: Backend, ns: &str) {
    let span = Span::none();
    let k = key(ns, "dropped");
    store(storage, &k, &meta("kept"), &[b"complete"]).await;
    let mut miss = storage
        .get_miss_handler(&k, &meta("lost"), &span)
        .await
        .unwrap();
    miss.write_body(Bytes::from_static(b"trunc"), false)
        .await
        .unwrap();
    drop(miss);
    let (got, body) = lookup_body(storage, &k)
        .await
        .expect("older entry survives");
    assert_eq!(tag_of(&got), "kept");
    assert_eq!(body, b"complete");
}

/// Keys differing only in variance are separate entries.
pub async fn variance_keys_are_separate_entries(storage: Backend, ns: &str) {
    let primary = key(ns, "vary");
    let mut gzip = primary.clone();
    gzip.set_variance_key(larder_storage::hash_key("gzip"));
    store(storage, &primary, &meta("primary"), &[b"p"]).await;
    store(storage, &gzip, &meta("gzip"), &[b"g"]).await;
    assert_eq!(lookup_body(storage, &primary).await.unwrap().1, b"p");
    assert_eq!(lookup_body(storage, &gzip).await.unwrap().1, b"g");
}

/// Seeking a hit reads byte ranges of the body.
pub async fn seek_reads_ranges(storage: Backend, ns: &str) {
    let span = Span::none();
    let k = key(ns, "seek");
    store(storage, &k, &meta("s"), &[b"0123", b"456789"]).await;
    let (_, mut hit) = storage.lookup(&k, &span).await.unwrap().unwrap();
    if !hit.can_seek() {
        assert!(hit.seek(0, None).is_err());
        return;
    }
    hit.seek(2, Some(6)).unwrap();
    assert_eq!(read_all(&mut hit).await.unwrap(), b"2345");
    // Seeking again reuses the handler for another range; `end` is clamped to the body.
    hit.seek(7, Some(100)).unwrap();
    assert_eq!(read_all(&mut hit).await.unwrap(), b"789");
    hit.seek(0, None).unwrap();
    assert_eq!(read_all(&mut hit).await.unwrap(), b"0123456789");
    assert!(matches!(
        hit.seek(10, None),
        Err(Error::SeekOutOfRange { start: 10, len: 10 })
    ));
    assert!(hit.seek(5, Some(5)).is_err());
}

/// An entry with an empty body round-trips.
pub async fn empty_body_round_trips(storage: Backend, ns: &str) {
    let k = key(ns, "empty");
    store(storage, &k, &meta("e"), &[]).await;
    let (got, body) = lookup_body(storage, &k).await.unwrap();
    assert_eq!(tag_of(&got), "e");
    assert!(body.is_empty());
}

/// For storages that support streaming partial writes: the writer's own reader (found by its
/// tag) yields the bytes written so far, then the rest, then a clean end after `finish`.
pub async fn streaming_write_is_readable_while_written(storage: Backend, ns: &str) {
    let span = Span::none();
    let k = key(ns, "streaming");
    let mut miss = storage
        .get_miss_handler(&k, &meta("s"), &span)
        .await
        .unwrap();
    let (got, mut hit) = storage
        .lookup_streaming_write(&k, miss.streaming_write_tag(), &span)
        .await
        .unwrap()
        .expect("the write in progress is found by its tag");
    assert_eq!(tag_of(&got), "s");
    miss.write_body(Bytes::from_static(b"abc"), false)
        .await
        .unwrap();
    assert_eq!(hit.read_body().await.unwrap().as_deref(), Some(&b"abc"[..]));
    miss.write_body(Bytes::from_static(b"def"), true)
        .await
        .unwrap();
    miss.finish().await.unwrap();
    assert_eq!(read_all(&mut hit).await.unwrap(), b"def");
    assert_eq!(lookup_body(storage, &k).await.unwrap().1, b"abcdef");
}

/// For storages that support streaming partial writes: a reader of a write whose handler is
/// dropped unfinished gets an error, never a clean (truncated) end.
pub async fn abandoned_streaming_write_errors_readers(storage: Backend, ns: &str) {
    let span = Span::none();
    let k = key(ns, "streaming-abandoned");
    let mut miss = storage
        .get_miss_handler(&k, &meta("a"), &span)
        .await
        .unwrap();
    miss.write_body(Bytes::from_static(b"partial"), false)
        .await
        .unwrap();
    let (_, mut hit) = storage
        .lookup_streaming_write(&k, miss.streaming_write_tag(), &span)
        .await
        .unwrap()
        .unwrap();
    drop(miss);
    assert!(read_all(&mut hit).await.is_err());
    assert!(lookup_body(storage, &k).await.is_none());
}

/// The user tag travels with a key but does not select the entry.
pub async fn user_tag_is_not_part_of_the_key(storage: Backend, ns: &str) {
    let span = Span::none();
    let alice = CacheKey::new(ns, "tagged", "alice");
    let bob = CacheKey::new(ns, "tagged", "bob");
    store(storage, &alice, &meta("t"), &[b"shared"]).await;
    assert_eq!(lookup_body(storage, &bob).await.unwrap().1, b"shared");
    assert!(
        storage
            .purge(&bob.to_compact(), PurgeType::Invalidation, &span)
            .await
            .unwrap()
    );
    assert!(lookup_body(storage, &alice).await.is_none());
}

/// Writes a fresh (for an hour) `200` entry of `size` bytes under `key` in one chunk and
/// finishes it: the fill of the storage benches.
pub async fn fill(storage: Backend, key: &CacheKey, size: usize) {
    let span = Span::none();
    let now = SystemTime::now();
    let meta = CacheMeta::new(
        now + Duration::from_hours(1),
        now,
        0,
        0,
        ResponseHeader::new(StatusCode::OK),
    );
    let mut miss = storage.get_miss_handler(key, &meta, &span).await.unwrap();
    miss.write_body(Bytes::from(vec![7u8; size]), true)
        .await
        .unwrap();
    miss.finish().await.unwrap();
}
