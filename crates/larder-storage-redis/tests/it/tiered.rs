//! `TieredStorage`: memory in front of Redis.

use std::time::{Duration, SystemTime};

use http::StatusCode;
use larder_storage::eviction::simple_lru;
use larder_storage::{CacheKey, CacheMeta, MemCache, PurgeType, ResponseHeader, Storage};
use larder_storage_redis::{RedisConfig, RedisStorage, TieredStorage};
use tracing::Span;

use larder_testkit::RedisServer;
use larder_testkit::storage_contract::{self as contract, read_all, store};

struct Tiers {
    memory: &'static MemCache,
    redis: &'static RedisStorage,
    tiered: &'static TieredStorage,
}

fn tiers(server: &RedisServer, tune: impl FnOnce(TieredStorage) -> TieredStorage) -> Tiers {
    let mut config = RedisConfig::new(server.url());
    config.timeout = Duration::from_millis(200);
    let redis: &'static RedisStorage = Box::leak(Box::new(RedisStorage::new(config).unwrap()));
    let memory: &'static MemCache = Box::leak(Box::new(MemCache::new()));
    let tiered = Box::leak(Box::new(tune(TieredStorage::new(memory, redis))));
    Tiers {
        memory,
        redis,
        tiered,
    }
}

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

async fn body_of(storage: &'static (dyn Storage + Sync), key: &CacheKey) -> Option<Vec<u8>> {
    let (_, mut hit) = storage.lookup(key, &Span::none()).await.unwrap()?;
    Some(read_all(&mut hit).await.unwrap())
}

#[tokio::test]
async fn storage_contract_holds_on_memory_over_redis() {
    let server = RedisServer::start();
    let t = tiers(&server, |t| t);
    contract::run_all(t.tiered, "tiered").await;
}

#[tokio::test]
async fn hits_from_redis_are_promoted_into_memory() {
    let server = RedisServer::start();
    let t = tiers(&server, |t| t);
    let key = CacheKey::new("", "promoted", "");
    // Stored by another proxy: only in Redis.
    store(t.redis, &key, &meta(), &[b"shared ", b"body"]).await;
    assert!(t.memory.is_empty());

    assert_eq!(body_of(t.tiered, &key).await.unwrap(), b"shared body");
    assert_eq!(t.memory.len(), 1, "the hit was copied into memory");
    assert_eq!(body_of(t.memory, &key).await.unwrap(), b"shared body");
    assert_eq!(body_of(t.tiered, &key).await.unwrap(), b"shared body");
    let stats = t.tiered.stats();
    assert_eq!(
        (stats.back_hits, stats.front_hits, stats.promotions),
        (1, 1, 1)
    );
    assert_eq!(t.redis.stats().hits, 1, "the second hit stayed in memory");
}

#[tokio::test]
async fn ranges_and_large_bodies_are_not_promoted() {
    let server = RedisServer::start();
    let t = tiers(&server, |t| t.with_max_promote_size(100));
    let span = Span::none();
    let small = CacheKey::new("", "small", "");
    let large = CacheKey::new("", "large", "");
    store(t.redis, &small, &meta(), &[b"0123456789"]).await;
    store(t.redis, &large, &meta(), &[&[7u8; 200][..]]).await;

    let (_, mut hit) = t.tiered.lookup(&small, &span).await.unwrap().unwrap();
    hit.seek(2, Some(4)).unwrap();
    assert_eq!(read_all(&mut hit).await.unwrap(), b"23");
    assert_eq!(body_of(t.tiered, &large).await.unwrap().len(), 200);
    assert!(t.memory.is_empty());
    assert_eq!(t.tiered.stats().promotions, 0);
}

#[tokio::test]
async fn writes_reach_both_tiers_and_other_proxies() {
    let server = RedisServer::start();
    let a = tiers(&server, |t| t);
    let b = tiers(&server, |t| t);
    let key = CacheKey::new("", "written", "");
    store(a.tiered, &key, &meta(), &[b"from a"]).await;
    assert_eq!(body_of(a.memory, &key).await.unwrap(), b"from a");
    assert_eq!(body_of(a.redis, &key).await.unwrap(), b"from a");
    // Proxy B has its own memory tier but shares Redis.
    assert_eq!(body_of(b.tiered, &key).await.unwrap(), b"from a");
    assert_eq!(b.tiered.stats().back_hits, 1);
}

#[tokio::test]
async fn invalidation_purges_both_tiers_and_eviction_only_memory() {
    let server = RedisServer::start();
    let t = tiers(&server, |t| t);
    let span = Span::none();
    let key = CacheKey::new("", "purged", "");
    store(t.tiered, &key, &meta(), &[b"x"]).await;

    assert!(
        t.tiered
            .purge(&key.to_compact(), PurgeType::Eviction, &span)
            .await
            .unwrap()
    );
    assert!(t.memory.is_empty());
    assert!(
        body_of(t.redis, &key).await.is_some(),
        "eviction leaves redis alone"
    );

    assert!(
        t.tiered
            .purge(&key.to_compact(), PurgeType::Invalidation, &span)
            .await
            .unwrap()
    );
    assert!(body_of(t.redis, &key).await.is_none());
    assert!(body_of(t.tiered, &key).await.is_none());
}

#[tokio::test]
async fn memory_tier_keeps_serving_while_redis_is_down() {
    let mut server = RedisServer::start();
    let t = tiers(&server, |t| t);
    let span = Span::none();
    let cached = CacheKey::new("", "in-memory", "");
    let other = CacheKey::new("", "only-upstream", "");
    store(t.tiered, &cached, &meta(), &[b"local"]).await;

    server.stop();
    assert_eq!(body_of(t.tiered, &cached).await.unwrap(), b"local");
    assert!(
        t.tiered.lookup(&other, &span).await.unwrap().is_none(),
        "a memory miss asks redis, which cannot answer: a plain miss"
    );
    assert_eq!(t.tiered.stats().back_unavailable, 1);
    // Writes land in memory; the redis half is dropped.
    store(t.tiered, &other, &meta(), &[b"fetched"]).await;
    assert_eq!(body_of(t.tiered, &other).await.unwrap(), b"fetched");
    assert!(t.tiered.stats().back_write_errors >= 1);
    // A purge cannot reach redis: it fails (after dropping the local copy), so the caller
    // knows the other proxies may still have the object.
    assert!(
        t.tiered
            .purge(&cached.to_compact(), PurgeType::Invalidation, &span)
            .await
            .is_err()
    );
    assert!(t.memory.lookup(&cached, &span).await.unwrap().is_none());
}

#[tokio::test]
async fn open_breaker_turns_lookups_into_plain_misses_without_calls() {
    let mut server = RedisServer::start();
    let mut config = RedisConfig::new(server.url());
    config.timeout = Duration::from_millis(200);
    config.breaker_threshold = 2;
    config.breaker_cooldown = Duration::from_mins(1);
    let redis: &'static RedisStorage = Box::leak(Box::new(RedisStorage::new(config).unwrap()));
    let memory: &'static MemCache = Box::leak(Box::new(MemCache::new()));
    let tiered: &'static TieredStorage = Box::leak(Box::new(TieredStorage::new(memory, redis)));
    let span = Span::none();
    server.stop();

    for i in 0..20 {
        let key = CacheKey::new("", format!("down-{i}"), "");
        assert!(tiered.lookup(&key, &span).await.unwrap().is_none());
        store(tiered, &key, &meta(), &[b"origin"]).await;
        assert_eq!(body_of(tiered, &key).await.unwrap(), b"origin");
    }
    assert!(redis.is_marked_down());
    assert_eq!(
        tiered
            .tier_as::<RedisStorage>()
            .map(RedisStorage::is_marked_down),
        Some(true)
    );
    let stats = redis.stats();
    // Two calls failed and opened the breaker; every later one was skipped unsent.
    assert_eq!(stats.errors, 2, "{stats:?}");
    assert!(stats.skipped >= 38, "{stats:?}");
    let tiered_stats = tiered.stats();
    assert_eq!(tiered_stats.back_unavailable, 20);
    assert_eq!(tiered_stats.back_write_errors, 20);
    assert_eq!(tiered_stats.front_hits, 20);
    let text = tiered.render_prometheus();
    assert!(
        text.contains("\nlarder_tiered_back_unavailable_total 20\n"),
        "{text}"
    );
    assert!(text.contains("\nlarder_redis_errors_total 2\n"), "{text}");
}

#[tokio::test]
async fn eviction_manager_bounds_the_memory_tier() {
    let server = RedisServer::start();
    let manager: &'static simple_lru::Manager =
        Box::leak(Box::new(simple_lru::Manager::new(3_000)));
    let t = tiers(&server, |t| t.with_eviction(manager));
    for i in 0..20 {
        let key = CacheKey::new("", format!("object-{i}"), "");
        store(t.redis, &key, &meta(), &[&[1u8; 500][..]]).await;
        assert_eq!(body_of(t.tiered, &key).await.unwrap().len(), 500);
    }
    assert_eq!(t.tiered.stats().promotions, 20);
    assert!(
        t.memory.stored_bytes() <= 3_000,
        "memory tier holds {}",
        t.memory.stored_bytes()
    );
    assert!(t.memory.len() >= 2);
    // Every object is still a hit through redis.
    let first = CacheKey::new("", "object-0", "");
    assert_eq!(body_of(t.tiered, &first).await.unwrap().len(), 500);
}

#[tokio::test]
async fn front_ttl_bounds_serving_an_object_purged_elsewhere() {
    let server = RedisServer::start();
    let t = tiers(&server, |t| t.with_front_ttl(Duration::from_millis(150)));
    let span = Span::none();
    let key = CacheKey::new("", "purged-elsewhere", "");
    store(t.tiered, &key, &meta(), &[b"copy"]).await;
    // Another proxy purges it: only Redis and that proxy's own memory lose it.
    assert!(
        t.redis
            .purge(&key.to_compact(), PurgeType::Invalidation, &span)
            .await
            .unwrap()
    );
    assert_eq!(body_of(t.tiered, &key).await.unwrap(), b"copy");

    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        body_of(t.tiered, &key).await.is_none(),
        "the old copy is no longer served"
    );
    assert!(t.memory.is_empty());

    // A fresh write is served from memory again until it is that old.
    store(t.tiered, &key, &meta(), &[b"new"]).await;
    assert_eq!(body_of(t.tiered, &key).await.unwrap(), b"new");
    assert_eq!(t.tiered.stats().front_hits, 2);
}

#[tokio::test]
async fn redis_dying_mid_body_is_an_error_and_promotes_nothing() {
    let mut server = RedisServer::start();
    let mut config = RedisConfig::new(server.url());
    config.timeout = Duration::from_millis(200);
    config.chunk_size = 4;
    config.read_ahead = 1;
    let redis: &'static RedisStorage = Box::leak(Box::new(RedisStorage::new(config).unwrap()));
    let memory: &'static MemCache = Box::leak(Box::new(MemCache::new()));
    let tiered: &'static TieredStorage = Box::leak(Box::new(TieredStorage::new(memory, redis)));
    let span = Span::none();
    let key = CacheKey::new("", "chunked", "");
    store(redis, &key, &meta(), &[b"0123", b"4567", b"89ab"]).await;

    let (_, mut hit) = tiered.lookup(&key, &span).await.unwrap().unwrap();
    let first = hit.read_body().await.unwrap().unwrap();
    assert_eq!(&first[..], b"0123");
    server.stop();
    // The rest of the body cannot be read: an error, never a clean end after 4 bytes.
    let mut rest = Vec::new();
    let ended = loop {
        match hit.read_body().await {
            Ok(Some(chunk)) => rest.extend_from_slice(&chunk),
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    assert!(ended.is_err(), "read {rest:?} and ended cleanly");
    assert!(rest.len() < 8);
    assert!(memory.is_empty(), "a body read in part is not promoted");
    assert_eq!(tiered.stats().promotions, 0);
    // Later lookups are plain misses: nothing partial is served.
    assert!(tiered.lookup(&key, &span).await.unwrap().is_none());
}
