//! `CachePutCtx`: a response pushed into the cache without a client request.

// Unwraps are the assertions of these tests: a failure names the step in its panic.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::StatusCode;
use larder_cache::age::ResponseTimes;
use larder_cache::eviction::{EvictionManager, lru};
use larder_cache::filters::{self, RespCacheable};
use larder_cache::lock::{CacheKeyLock, CacheKeyLockImpl, CacheLock, LockStatus, Locked};
use larder_cache::put::{CachePut, CachePutCtx};
use larder_cache::{
    CacheKey, CacheMetaDefaults, CachePhase, Error, HitStatus, HttpCache, MemCache, NoCacheReason,
    ResponseHeader, Storage,
};
use tracing::Span;

static DEFAULTS: CacheMetaDefaults = CacheMetaDefaults::STRICT;

struct Prefetch;

impl CachePut for Prefetch {
    fn cache_defaults() -> &'static CacheMetaDefaults {
        &DEFAULTS
    }
}

fn new_storage() -> &'static MemCache {
    Box::leak(Box::new(MemCache::new()))
}

fn header(fields: &[(&str, &str)]) -> ResponseHeader {
    let mut header = ResponseHeader::new(StatusCode::OK);
    for (name, value) in fields {
        header.append_header(*name, *value).unwrap();
    }
    header
}

fn put_ctx(storage: &'static MemCache, key: &CacheKey) -> CachePutCtx<Prefetch> {
    CachePutCtx::new(Prefetch, key.clone(), storage, None, Span::none())
}

/// What a request for `key` gets through `HttpCache`: the phase and body of a hit, or `None`.
async fn request(storage: &'static MemCache, key: &CacheKey) -> Option<(CachePhase, Vec<u8>)> {
    let mut cache = HttpCache::new();
    cache.enable(storage, None, None, None, None);
    cache.set_cache_key(key.clone());
    let (meta, hit) = cache.cache_lookup().await.unwrap()?;
    let status = if meta.is_fresh(SystemTime::now()) {
        HitStatus::Fresh
    } else {
        HitStatus::Expired
    };
    cache.cache_found(meta, hit, status);
    let mut body = Vec::new();
    while let Some(chunk) = cache.hit_handler().read_body().await.unwrap() {
        body.extend_from_slice(&chunk);
    }
    cache.finish_hit_handler().await.unwrap();
    Some((cache.phase(), body))
}

#[tokio::test]
async fn a_put_entry_is_a_fresh_hit_through_http_cache() {
    let storage = new_storage();
    let key = CacheKey::new("", "https://example.com/warm.css", "");
    let mut put = put_ctx(storage, &key);
    let refused = put
        .cache_put(
            header(&[
                ("cache-control", "max-age=60"),
                ("content-type", "text/css"),
            ]),
            [Bytes::from_static(b"body{"), Bytes::from_static(b"}")],
        )
        .await
        .unwrap();
    assert_eq!(refused, None);
    assert_eq!(put.refused(), None);
    let (phase, body) = request(storage, &key).await.expect("stored by the put");
    assert_eq!(phase, CachePhase::Hit);
    assert_eq!(body, b"body{}");
    let (meta, _) = storage.lookup(&key, &Span::none()).await.unwrap().unwrap();
    assert_eq!(meta.headers()["content-type"], "text/css");
    let lifetime = meta.fresh_until().duration_since(meta.created()).unwrap();
    assert_eq!(lifetime, Duration::from_mins(1));
}

#[tokio::test]
async fn a_streamed_put_is_stored_chunk_by_chunk_and_the_cdn_field_counts() {
    let storage = new_storage();
    let key = CacheKey::new("", "https://example.com/stream", "");
    let mut put = put_ctx(storage, &key);
    // The targeted field replaces `Cache-Control` as it does for a proxied response.
    let response = header(&[
        ("cache-control", "no-store"),
        ("cdn-cache-control", "max-age=30"),
    ]);
    assert_eq!(put.put_header(response).await.unwrap(), None);
    for chunk in [&b"one "[..], b"two "] {
        put.put_body(Bytes::copy_from_slice(chunk), false)
            .await
            .unwrap();
    }
    put.put_body(Bytes::from_static(b"three"), true)
        .await
        .unwrap();
    put.finish().await.unwrap();
    put.finish().await.unwrap(); // idempotent
    let (_, body) = request(storage, &key).await.expect("stored");
    assert_eq!(body, b"one two three");
}

#[tokio::test]
async fn an_uncacheable_response_is_refused_with_the_filters_reason() {
    let storage = new_storage();
    for (i, fields) in [
        &[("cache-control", "no-store")][..],
        &[("cache-control", "private, max-age=60")],
        &[("vary", "*"), ("cache-control", "max-age=60")],
        &[("content-type", "text/plain")], // no freshness under STRICT defaults
    ]
    .into_iter()
    .enumerate()
    {
        let key = CacheKey::new("", format!("https://example.com/no/{i}"), "");
        let RespCacheable::Uncacheable(expected) = filters::resp_cacheable_targeted(
            header(fields),
            false,
            Prefetch.targeted_cache_control(),
            &DEFAULTS,
            ResponseTimes::at(SystemTime::now()),
        ) else {
            panic!("{fields:?} is not storable by a proxy either")
        };
        let mut put = put_ctx(storage, &key);
        assert_eq!(
            put.put_header(header(fields)).await.unwrap(),
            Some(expected)
        );
        // The body of a refused response is drained, not stored.
        put.put_body(Bytes::from_static(b"ignored"), true)
            .await
            .unwrap();
        put.finish().await.unwrap();
        assert_eq!(put.refused(), Some(expected));
        assert!(
            request(storage, &key).await.is_none(),
            "{fields:?} was stored"
        );
    }
}

#[tokio::test]
async fn a_cookie_without_opt_in_is_refused_as_the_proxy_refuses_it() {
    let storage = new_storage();
    let key = CacheKey::new("", "https://example.com/login", "");
    let response = header(&[("cache-control", "max-age=60"), ("set-cookie", "s=1")]);
    let refused = put_ctx(storage, &key)
        .cache_put(response, [Bytes::from_static(b"hi")])
        .await
        .unwrap();
    assert_eq!(refused, Some(NoCacheReason::SetCookie));
    assert!(request(storage, &key).await.is_none());
}

#[tokio::test]
async fn a_too_large_body_is_not_stored() {
    let storage = new_storage();
    let lock: &'static CacheLock = Box::leak(CacheLock::new_boxed(Duration::from_secs(5)));

    // Announced by Content-Length: refused before anything is written.
    let key = CacheKey::new("", "https://example.com/big-announced", "");
    let mut put = put_ctx(storage, &key);
    put.set_max_file_size_bytes(4);
    let response = header(&[("cache-control", "max-age=60"), ("content-length", "5")]);
    assert_eq!(
        put.put_header(response).await.unwrap(),
        Some(NoCacheReason::ResponseTooLarge)
    );
    put.put_body(Bytes::from_static(b"12345"), true)
        .await
        .unwrap();
    put.finish().await.unwrap();
    assert!(request(storage, &key).await.is_none());

    // Found while streaming: the write is abandoned and the lock handed on.
    let key = CacheKey::new("", "https://example.com/big-streamed", "");
    let mut put = put_ctx(storage, &key);
    put.set_max_file_size_bytes(4);
    put.set_cache_lock(Some(lock as &'static CacheKeyLockImpl));
    let result = put
        .cache_put(
            header(&[("cache-control", "max-age=60")]),
            [Bytes::from_static(b"123"), Bytes::from_static(b"45")],
        )
        .await;
    assert!(matches!(result, Err(Error::ResponseTooLarge)), "{result:?}");
    assert_eq!(put.refused(), Some(NoCacheReason::ResponseTooLarge));
    assert!(request(storage, &key).await.is_none());
    assert!(lock.is_empty(), "the put released its lock");

    // Exactly at the limit is stored.
    let key = CacheKey::new("", "https://example.com/fits", "");
    let mut put = put_ctx(storage, &key);
    put.set_max_file_size_bytes(4);
    let refused = put
        .cache_put(
            header(&[("cache-control", "max-age=60")]),
            [Bytes::from_static(b"1234")],
        )
        .await
        .unwrap();
    assert_eq!(refused, None);
    assert_eq!(
        request(storage, &key).await.map(|(_, b)| b),
        Some(b"1234".to_vec())
    );
}

#[tokio::test]
async fn a_put_waits_for_the_writer_holding_the_lock_then_stores() {
    let storage = new_storage();
    let lock: &'static CacheLock = Box::leak(CacheLock::new_boxed(Duration::from_secs(5)));
    let key = CacheKey::new("", "https://example.com/locked", "");
    // A proxied miss of the key is filling it.
    let Locked::Write(permit) = lock.lock(&key, false) else {
        panic!("the first locker writes")
    };
    let put_key = key.clone();
    let put = tokio::spawn(async move {
        let mut put = put_ctx(storage, &put_key);
        put.set_cache_lock(Some(lock as &'static CacheKeyLockImpl));
        put.cache_put(
            header(&[("cache-control", "max-age=60")]),
            [Bytes::from_static(b"pushed")],
        )
        .await
    });
    tokio::task::yield_now().await;
    assert!(!put.is_finished(), "the put waits for the writer");
    assert!(request(storage, &key).await.is_none());
    lock.release(&key, permit, LockStatus::TransientError);
    assert_eq!(put.await.unwrap().unwrap(), None);
    assert_eq!(
        request(storage, &key).await.map(|(_, b)| b),
        Some(b"pushed".to_vec())
    );
    assert!(lock.is_empty());
}

#[tokio::test]
async fn a_request_during_a_put_reads_the_body_as_it_is_written() {
    let storage = new_storage();
    let lock: &'static CacheLock = Box::leak(CacheLock::new_boxed(Duration::from_secs(5)));
    let key = CacheKey::new("", "https://example.com/pushing", "");
    let mut put = put_ctx(storage, &key);
    put.set_cache_lock(Some(lock as &'static CacheKeyLockImpl));
    let response = header(&[("cache-control", "max-age=60")]);
    assert_eq!(put.put_header(response).await.unwrap(), None);

    // MemCache streams partial writes: the put released the lock with its header, and a
    // request reads the body as it arrives.
    let mut cache = HttpCache::new();
    cache.enable(
        storage,
        None,
        None,
        Some(lock as &'static CacheKeyLockImpl),
        None,
    );
    cache.set_cache_key(key.clone());
    let (meta, hit) = cache.cache_lookup().await.unwrap().expect("partial entry");
    assert!(!cache.is_cache_locked());
    cache.cache_found(meta, hit, HitStatus::Fresh);
    let reader = tokio::spawn(async move {
        let mut body = Vec::new();
        while let Some(chunk) = cache.hit_handler().read_body().await.unwrap() {
            body.extend_from_slice(&chunk);
        }
        body
    });
    put.put_body(Bytes::from_static(b"live "), false)
        .await
        .unwrap();
    put.put_body(Bytes::from_static(b"update"), true)
        .await
        .unwrap();
    put.finish().await.unwrap();
    assert_eq!(reader.await.unwrap(), b"live update");
}

#[tokio::test]
async fn the_eviction_manager_admits_puts_and_purges_their_victims() {
    let storage = new_storage();
    let body = Bytes::from(vec![b'x'; 100]);
    let first = CacheKey::new("", "https://example.com/first", "");
    let second = CacheKey::new("", "https://example.com/second", "");

    // Measure one entry's weight, then allow one and a half.
    let probe: &'static lru::Manager<1> =
        Box::leak(Box::new(lru::Manager::with_capacity(1 << 20, 8)));
    let mut put = CachePutCtx::new(
        Prefetch,
        first.clone(),
        new_storage(),
        Some(probe),
        Span::none(),
    );
    let response = header(&[("cache-control", "max-age=60")]);
    assert_eq!(
        put.cache_put(response.clone(), [body.clone()])
            .await
            .unwrap(),
        None
    );
    let weight = probe.total_size();
    assert!(weight >= body.len());

    let eviction: &'static lru::Manager<1> =
        Box::leak(Box::new(lru::Manager::with_capacity(weight * 3 / 2, 8)));
    for key in [&first, &second] {
        let mut put =
            CachePutCtx::new(Prefetch, key.clone(), storage, Some(eviction), Span::none());
        assert_eq!(
            put.cache_put(response.clone(), [body.clone()])
                .await
                .unwrap(),
            None
        );
    }
    assert_eq!(eviction.total_items(), 1);
    assert!(eviction.peek(&second.to_compact()));
    assert!(
        request(storage, &first).await.is_none(),
        "the victim was purged"
    );
    assert!(request(storage, &second).await.is_some());
}
