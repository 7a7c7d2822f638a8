//! Every phase-guarded method panics with `"{method}: wrong phase {phase:?}"` when misused.

use std::time::{Duration, SystemTime};

use http::StatusCode;
use larder_cache::lock::{CacheKeyLock, CacheLock, Locked};
use larder_cache::{CacheKey, CacheMeta, HitStatus, HttpCache, NoCacheReason, ResponseHeader};

use crate::driver::Env;

fn meta() -> CacheMeta {
    let now = SystemTime::now();
    CacheMeta::new(
        now + Duration::from_mins(1),
        now,
        0,
        0,
        ResponseHeader::new(StatusCode::OK),
    )
}

/// A cache in the `Uninit` phase (enabled, no key).
fn uninit() -> HttpCache {
    let mut cache = HttpCache::new();
    cache.enable(Env::new().storage, None, None, None, None);
    cache
}

/// A cache in the `Miss` phase.
fn miss() -> HttpCache {
    let mut cache = Env::new().cache("/k");
    cache.cache_miss();
    cache
}

#[test]
#[should_panic(expected = "enable: wrong phase Uninit")]
fn enable_twice() {
    let mut cache = uninit();
    cache.enable(Env::new().storage, None, None, None, None);
}

#[test]
#[should_panic(expected = "enable_tracing: wrong phase Disabled(NeverEnabled)")]
fn enable_tracing_when_disabled() {
    HttpCache::new().enable_tracing(tracing::Span::none());
}

#[test]
#[should_panic(expected = "set_cache_lock: wrong phase Miss")]
fn set_cache_lock_in_miss() {
    miss().set_cache_lock(None, None);
}

#[test]
#[should_panic(expected = "bypass: wrong phase Uninit")]
fn bypass_without_key() {
    uninit().bypass();
}

#[test]
#[should_panic(expected = "set_cache_key: wrong phase Disabled(NeverEnabled)")]
fn set_cache_key_when_disabled() {
    HttpCache::new().set_cache_key(CacheKey::new("", "/k", ""));
}

#[test]
#[should_panic(expected = "set_cache_key: wrong phase Miss")]
fn set_cache_key_in_miss() {
    miss().set_cache_key(CacheKey::new("", "/k", ""));
}

#[test]
#[should_panic(expected = "cache_key: wrong phase Uninit")]
fn cache_key_without_key() {
    let _ = uninit().cache_key();
}

#[test]
#[should_panic(expected = "storage_type_is: wrong phase Disabled(NeverEnabled)")]
fn storage_type_when_disabled() {
    let _ = HttpCache::new().storage_type_is::<larder_cache::MemCache>();
}

#[test]
#[should_panic(expected = "set_max_file_size_bytes: wrong phase Disabled(NeverEnabled)")]
fn max_file_size_when_disabled() {
    HttpCache::new().set_max_file_size_bytes(1);
}

#[test]
#[should_panic(expected = "max_file_size_bytes: wrong phase Disabled(NeverEnabled)")]
fn max_file_size_bytes_never_enabled() {
    let _ = HttpCache::new().max_file_size_bytes();
}

#[tokio::test]
#[should_panic(expected = "cache_lookup: wrong phase Uninit")]
async fn cache_lookup_without_key() {
    let _ = uninit().cache_lookup().await;
}

#[tokio::test]
#[should_panic(expected = "cache_lookup: wrong phase Miss")]
async fn cache_lookup_in_miss() {
    let _ = miss().cache_lookup().await;
}

#[test]
#[should_panic(expected = "cache_found: wrong phase Miss")]
fn cache_found_in_miss() {
    let mut cache = miss();
    let handler = fake_hit_handler();
    cache.cache_found(meta(), handler, HitStatus::Fresh);
}

#[test]
#[should_panic(expected = "cache_vary_lookup: wrong phase Miss")]
fn cache_vary_lookup_in_miss() {
    miss().cache_vary_lookup([0; 16], &meta());
}

#[test]
#[should_panic(expected = "cache_miss: wrong phase Disabled(NeverEnabled)")]
fn cache_miss_when_disabled() {
    HttpCache::new().cache_miss();
}

#[test]
#[should_panic(expected = "cache_miss: wrong phase Miss")]
fn cache_miss_twice() {
    miss().cache_miss();
}

#[test]
#[should_panic(expected = "hit_handler: wrong phase Miss")]
fn hit_handler_in_miss() {
    let _ = miss().hit_handler();
}

#[tokio::test]
#[should_panic(expected = "finish_hit_handler: wrong phase Miss")]
async fn finish_hit_handler_in_miss() {
    let _ = miss().finish_hit_handler().await;
}

#[test]
#[should_panic(expected = "cache_meta: wrong phase Miss")]
fn cache_meta_before_set() {
    let _ = miss().cache_meta();
}

#[test]
#[should_panic(expected = "set_cache_meta: wrong phase CacheKey")]
fn set_cache_meta_before_miss() {
    Env::new().cache("/k").set_cache_meta(meta());
}

#[test]
#[should_panic(expected = "update_variance: wrong phase Miss")]
fn update_variance_without_meta() {
    miss().update_variance(None);
}

#[tokio::test]
#[should_panic(expected = "set_miss_handler: wrong phase Miss")]
async fn set_miss_handler_without_meta() {
    let _ = miss().set_miss_handler().await;
}

#[tokio::test]
#[should_panic(expected = "set_miss_handler: wrong phase Miss")]
async fn set_miss_handler_twice() {
    let mut cache = miss();
    cache.set_cache_meta(meta());
    cache.set_miss_handler().await.unwrap();
    let _ = cache.set_miss_handler().await;
}

#[test]
#[should_panic(expected = "miss_handler: wrong phase CacheKey")]
fn miss_handler_before_miss() {
    let _ = Env::new().cache("/k").miss_handler();
}

#[test]
#[should_panic(expected = "miss_body_reader: wrong phase CacheKey")]
fn miss_body_reader_before_miss() {
    let _ = Env::new().cache("/k").miss_body_reader();
}

#[tokio::test]
#[should_panic(expected = "finish_miss_handler: wrong phase CacheKey")]
async fn finish_miss_handler_before_miss() {
    let _ = Env::new().cache("/k").finish_miss_handler().await;
}

#[tokio::test]
#[should_panic(expected = "revalidate_cache_meta: wrong phase Miss")]
async fn revalidate_cache_meta_in_miss() {
    let _ = miss().revalidate_cache_meta(meta()).await;
}

#[test]
#[should_panic(expected = "revalidate_merge_header: wrong phase Miss")]
fn revalidate_merge_header_in_miss() {
    let _ = miss().revalidate_merge_header(&ResponseHeader::new(StatusCode::NOT_MODIFIED));
}

#[test]
#[should_panic(expected = "revalidate_uncacheable: wrong phase Miss")]
fn revalidate_uncacheable_in_miss() {
    miss().revalidate_uncacheable(
        ResponseHeader::new(StatusCode::OK),
        NoCacheReason::OriginNotCache,
    );
}

#[test]
#[should_panic(expected = "set_stale_updating: wrong phase Miss")]
fn set_stale_updating_in_miss() {
    miss().set_stale_updating();
}

#[tokio::test]
#[should_panic(expected = "cache_lock_wait: wrong phase Miss")]
async fn cache_lock_wait_without_read_lock() {
    let _ = miss().cache_lock_wait().await;
}

#[test]
#[should_panic(expected = "take_write_lock: wrong phase Miss")]
fn take_write_lock_without_lock() {
    let _ = miss().take_write_lock();
}

#[test]
#[should_panic(expected = "set_write_lock: wrong phase Miss")]
fn set_write_lock_without_cache_lock() {
    let lock = CacheLock::new(Duration::from_secs(1));
    let Locked::Write(permit) = lock.lock(&CacheKey::new("", "/k", ""), false) else {
        unreachable!("first locker writes")
    };
    miss().set_write_lock(permit);
}

#[tokio::test]
#[should_panic(expected = "purge: wrong phase Miss")]
async fn purge_in_miss() {
    let _ = miss().purge().await;
}

#[tokio::test]
#[should_panic(expected = "spawn_async_purge: wrong phase Disabled(NeverEnabled)")]
async fn spawn_async_purge_when_disabled() {
    drop(HttpCache::new().spawn_async_purge("test"));
}

#[test]
#[should_panic(expected = "disable: NeverEnabled is not a reason to disable")]
fn disable_with_never_enabled() {
    miss().disable(NoCacheReason::NeverEnabled);
}

#[test]
fn disable_keeps_never_enabled_and_replaces_other_reasons() {
    let mut cache = HttpCache::new();
    cache.disable(NoCacheReason::StorageError);
    assert_eq!(
        cache.phase(),
        larder_cache::CachePhase::Disabled(NoCacheReason::NeverEnabled)
    );
    let mut cache = miss();
    cache.disable(NoCacheReason::StorageError);
    cache.disable(NoCacheReason::UpstreamError);
    assert_eq!(
        cache.phase(),
        larder_cache::CachePhase::Disabled(NoCacheReason::UpstreamError)
    );
    // The key survives disable; the storage does not.
    assert!(cache.maybe_cache_key().is_some());
    assert_eq!(cache.support_streaming_partial_write(), None);
    assert!(cache.upstream_used());
}

/// A hit handler from a real `MemCache` entry.
fn fake_hit_handler() -> larder_cache::HitHandler {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let storage = Env::new().storage;
        let key = CacheKey::new("", "/k", "");
        let span = tracing::Span::none();
        let mut w = larder_cache::Storage::get_miss_handler(storage, &key, &meta(), &span)
            .await
            .expect("miss handler");
        w.write_body(bytes::Bytes::from_static(b"x"), true)
            .await
            .expect("write");
        w.finish().await.expect("finish");
        larder_cache::Storage::lookup(storage, &key, &span)
            .await
            .expect("lookup")
            .expect("stored")
            .1
    })
}
