//! `RedisStorage` against a real server: the contract, the layout, expiry and failures.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::StatusCode;
use larder_storage::{CacheKey, CacheMeta, PurgeType, ResponseHeader, Storage};
use larder_storage_redis::{RedisConfig, RedisStorage};
use redis::AsyncCommands;
use tracing::Span;

use larder_testkit::RedisServer;
use larder_testkit::storage_contract::{self as contract, read_all, store};

const KIB: usize = 1024;

async fn storage_with(
    server: &RedisServer,
    tune: impl FnOnce(&mut RedisConfig),
) -> &'static RedisStorage {
    let mut config = RedisConfig::new(server.url());
    tune(&mut config);
    let storage = RedisStorage::new(config).unwrap();
    storage.ping().await.unwrap();
    Box::leak(Box::new(storage))
}

async fn storage(server: &RedisServer) -> &'static RedisStorage {
    storage_with(server, |_| {}).await
}

/// A direct connection for looking at the keys.
async fn raw(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn all_keys(conn: &mut redis::aio::MultiplexedConnection) -> Vec<String> {
    let mut keys: Vec<String> = conn.keys("*").await.unwrap();
    keys.sort();
    keys
}

fn fresh_meta(fresh_for: Duration, swr: u32, sie: u32) -> CacheMeta {
    let now = SystemTime::now();
    CacheMeta::new(
        now + fresh_for,
        now,
        swr,
        sie,
        ResponseHeader::new(StatusCode::OK),
    )
}

/// A body whose bytes tell their offset apart.
fn body(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| u8::try_from((i * 7 + i / 251) % 256).unwrap())
        .collect()
}

/// Writes `data` in pieces of `piece` bytes (not aligned with chunks) and finishes.
async fn store_in_pieces(
    storage: &'static RedisStorage,
    key: &CacheKey,
    meta: &CacheMeta,
    data: &[u8],
    piece: usize,
) {
    let span = Span::none();
    let mut miss = storage.get_miss_handler(key, meta, &span).await.unwrap();
    for part in data.chunks(piece) {
        miss.write_body(Bytes::copy_from_slice(part), false)
            .await
            .unwrap();
    }
    miss.write_body(Bytes::new(), true).await.unwrap();
    miss.finish().await.unwrap();
}

#[tokio::test]
async fn storage_contract_holds_on_redis() {
    let server = RedisServer::start();
    let storage = storage(&server).await;
    contract::run_all(storage, "contract").await;
}

#[tokio::test]
async fn storage_contract_holds_with_tiny_chunks() {
    // Three-byte chunks make every contract body span several chunks.
    let server = RedisServer::start();
    let storage = storage_with(&server, |c| {
        c.chunk_size = 3;
        c.read_ahead = 2;
    })
    .await;
    contract::run_all(storage, "tiny").await;
}

#[tokio::test]
async fn multi_chunk_body_is_stored_in_chunks_and_streams_back() {
    let server = RedisServer::start();
    let storage = storage(&server).await;
    let key = CacheKey::new("", "big", "");
    let data = body(300 * KIB);
    store_in_pieces(
        storage,
        &key,
        &fresh_meta(Duration::from_mins(1), 0, 0),
        &data,
        10_000,
    )
    .await;

    // One meta key plus ceil(300 / 64) = 5 chunks, the last one 300 - 4 * 64 = 44 KiB.
    let keys = storage.entry_keys(&key.to_compact()).await.unwrap();
    assert_eq!(keys.len(), 6, "{keys:?}");
    let mut conn = raw(&server).await;
    let last: Vec<u8> = conn.get(&keys[5]).await.unwrap();
    assert_eq!(last.len(), 44 * KIB);
    assert_eq!(all_keys(&mut conn).await.len(), 6);

    let (_, mut hit) = storage.lookup(&key, &Span::none()).await.unwrap().unwrap();
    let mut got = Vec::new();
    while let Some(chunk) = hit.read_body().await.unwrap() {
        assert!(chunk.len() <= 64 * KIB, "reads come a chunk at a time");
        got.extend_from_slice(&chunk);
    }
    assert_eq!(got, data);
    assert_eq!(
        hit.get_eviction_weight(),
        data.len() + weight_of_meta(storage, &key).await
    );
}

async fn weight_of_meta(storage: &'static RedisStorage, key: &CacheKey) -> usize {
    let (meta, _) = storage.lookup(key, &Span::none()).await.unwrap().unwrap();
    meta.serialize().unwrap().len()
}

#[tokio::test]
async fn seek_reads_ranges_across_chunk_boundaries() {
    let server = RedisServer::start();
    let storage = storage(&server).await;
    let key = CacheKey::new("", "ranges", "");
    let data = body(300 * KIB);
    store_in_pieces(
        storage,
        &key,
        &fresh_meta(Duration::from_mins(1), 0, 0),
        &data,
        64 * KIB + 1,
    )
    .await;

    let (_, mut hit) = storage.lookup(&key, &Span::none()).await.unwrap().unwrap();
    assert!(hit.can_seek());
    for (start, end) in [
        (65_000, Some(140_000)),
        (64 * KIB, Some(128 * KIB)),
        (0, Some(1)),
        (300 * KIB - 1, None),
        (10, Some(400 * KIB)),
        (200 * KIB, None),
        (5, Some(6)),
    ] {
        hit.seek(start, end).unwrap();
        let want = &data[start..end.unwrap_or(data.len()).min(data.len())];
        assert_eq!(
            read_all(&mut hit).await.unwrap(),
            want,
            "range {start}..{end:?}"
        );
    }
    assert!(hit.seek(300 * KIB, None).is_err());
    assert!(hit.seek(7, Some(7)).is_err());
}

#[tokio::test]
async fn unfinished_write_is_invisible_and_its_parts_expire() {
    let server = RedisServer::start();
    let storage = storage_with(&server, |c| {
        c.chunk_size = 4;
        c.part_ttl = Duration::from_millis(300);
    })
    .await;
    let span = Span::none();
    let key = CacheKey::new("", "unfinished", "");
    let mut miss = storage
        .get_miss_handler(&key, &fresh_meta(Duration::from_mins(1), 0, 0), &span)
        .await
        .unwrap();
    miss.write_body(Bytes::from_static(b"0123456789"), false)
        .await
        .unwrap();
    assert!(storage.lookup(&key, &span).await.unwrap().is_none());

    let mut conn = raw(&server).await;
    let parts = all_keys(&mut conn).await;
    assert_eq!(parts.len(), 2, "two full chunks were sent: {parts:?}");
    for part in &parts {
        let ttl: i64 = redis::cmd("PTTL")
            .arg(part)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(
            ttl > 0 && ttl <= 300,
            "unfinished part {part} expires soon, ttl {ttl}"
        );
    }

    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(all_keys(&mut conn).await.is_empty(), "the parts expired");
    // Finishing now fails: nothing of the write is left to publish.
    assert!(miss.finish().await.is_err());
    assert!(storage.lookup(&key, &span).await.unwrap().is_none());
    assert!(all_keys(&mut conn).await.is_empty());
    assert_eq!(storage.stats().writes_dropped, 1);
    assert_eq!(storage.stats().writes_stored, 0);
}

#[tokio::test]
async fn dropped_write_deletes_its_parts() {
    let server = RedisServer::start();
    let storage = storage_with(&server, |c| c.chunk_size = 4).await;
    let span = Span::none();
    let key = CacheKey::new("", "dropped", "");
    let mut miss = storage
        .get_miss_handler(&key, &fresh_meta(Duration::from_mins(1), 0, 0), &span)
        .await
        .unwrap();
    miss.write_body(Bytes::from_static(b"0123456789abcdef"), false)
        .await
        .unwrap();
    let mut conn = raw(&server).await;
    // The last full chunk waits for a following byte or the finish.
    assert_eq!(all_keys(&mut conn).await.len(), 3);
    drop(miss);
    let mut left = all_keys(&mut conn).await;
    for _ in 0..100 {
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        left = all_keys(&mut conn).await;
    }
    assert!(
        left.is_empty(),
        "parts of the dropped write remain: {left:?}"
    );
    assert!(storage.lookup(&key, &span).await.unwrap().is_none());
}

#[tokio::test]
async fn purge_removes_all_parts() {
    let server = RedisServer::start();
    let storage = storage(&server).await;
    let span = Span::none();
    let key = CacheKey::new("", "purged", "");
    let other = CacheKey::new("", "kept", "");
    let meta = fresh_meta(Duration::from_mins(1), 0, 0);
    store_in_pieces(storage, &key, &meta, &body(200 * KIB), 50 * KIB).await;
    store(storage, &other, &meta, &[b"other"]).await;
    let mut conn = raw(&server).await;
    let other_keys = storage.entry_keys(&other.to_compact()).await.unwrap();
    assert_eq!(all_keys(&mut conn).await.len(), 4 + 1 + other_keys.len());

    assert!(
        storage
            .purge(&key.to_compact(), PurgeType::Eviction, &span)
            .await
            .unwrap()
    );
    let mut left = all_keys(&mut conn).await;
    let mut want = other_keys.clone();
    want.sort();
    assert_eq!(left, want, "only the other entry is left");

    // An invalidation leaves only its short-lived marker behind.
    assert!(
        storage
            .purge(&other.to_compact(), PurgeType::Invalidation, &span)
            .await
            .unwrap()
    );
    left = all_keys(&mut conn).await;
    assert_eq!(left.len(), 1);
    assert!(left[0].ends_with(":p"), "{left:?}");
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&left[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ttl > 0);
}

#[tokio::test]
async fn invalidation_during_a_write_stops_its_publication() {
    let server = RedisServer::start();
    let storage = storage(&server).await;
    let span = Span::none();
    let key = CacheKey::new("", "raced", "");
    let meta = fresh_meta(Duration::from_mins(1), 0, 0);
    let mut miss = storage.get_miss_handler(&key, &meta, &span).await.unwrap();
    miss.write_body(Bytes::from_static(b"fetched before the purge"), true)
        .await
        .unwrap();
    assert!(
        !storage
            .purge(&key.to_compact(), PurgeType::Invalidation, &span)
            .await
            .unwrap()
    );
    assert!(matches!(
        miss.finish().await,
        Err(larder_storage::Error::WritePurged)
    ));
    assert!(storage.lookup(&key, &span).await.unwrap().is_none());
    // A write that starts after the invalidation is stored.
    store(storage, &key, &meta, &[b"fresh"]).await;
    let (_, mut hit) = storage.lookup(&key, &span).await.unwrap().unwrap();
    assert_eq!(read_all(&mut hit).await.unwrap(), b"fresh");
}

fn epoch_ms(t: SystemTime) -> i64 {
    i64::try_from(
        t.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

async fn expire_times(conn: &mut redis::aio::MultiplexedConnection, keys: &[String]) -> Vec<i64> {
    let mut out = Vec::new();
    for key in keys {
        let at: i64 = redis::cmd("PEXPIRETIME")
            .arg(key)
            .query_async(conn)
            .await
            .unwrap();
        out.push(at);
    }
    out
}

#[tokio::test]
async fn every_key_expires_at_fresh_until_plus_the_largest_stale_window() {
    let server = RedisServer::start();
    let storage = storage(&server).await;
    let span = Span::none();
    let key = CacheKey::new("", "ttl", "");
    let meta = fresh_meta(Duration::from_secs(100), 20, 50);
    store_in_pieces(storage, &key, &meta, &body(130 * KIB), 30 * KIB).await;
    let keys = storage.entry_keys(&key.to_compact()).await.unwrap();
    assert_eq!(keys.len(), 4);
    let mut conn = raw(&server).await;
    let want = epoch_ms(meta.fresh_until() + Duration::from_secs(50));
    assert_eq!(expire_times(&mut conn, &keys).await, vec![want; 4]);

    // Revalidation moves the expiry of every part along with the meta.
    let mut updated = meta.clone();
    updated.set_fresh_until(meta.fresh_until() + Duration::from_secs(200));
    assert!(storage.update_meta(&key, &updated, &span).await.unwrap());
    let want = epoch_ms(updated.fresh_until() + Duration::from_secs(50));
    assert_eq!(expire_times(&mut conn, &keys).await, vec![want; 4]);
}

#[tokio::test]
async fn entry_stored_stale_lives_at_least_min_ttl() {
    let server = RedisServer::start();
    let storage = storage_with(&server, |c| c.min_ttl = Duration::from_secs(30)).await;
    let key = CacheKey::new("", "stale", "");
    let now = SystemTime::now();
    // Already stale when stored (as a `no-cache` response kept for revalidation is).
    let meta = CacheMeta::new(
        now - Duration::from_secs(10),
        now - Duration::from_secs(20),
        0,
        0,
        ResponseHeader::new(StatusCode::OK),
    );
    store(storage, &key, &meta, &[b"stale"]).await;
    let keys = storage.entry_keys(&key.to_compact()).await.unwrap();
    let mut conn = raw(&server).await;
    for key in &keys {
        let ttl: i64 = redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(ttl > 25_000 && ttl <= 30_000, "{key}: ttl {ttl}");
    }
}

#[tokio::test]
async fn reader_of_a_replaced_version_finishes_within_the_grace() {
    let server = RedisServer::start();
    let storage = storage_with(&server, |c| {
        c.chunk_size = 4;
        c.read_ahead = 1;
    })
    .await;
    let span = Span::none();
    let key = CacheKey::new("", "replaced", "");
    let meta = fresh_meta(Duration::from_mins(1), 0, 0);
    store(storage, &key, &meta, &[b"old version body"]).await;
    let (_, mut old) = storage.lookup(&key, &span).await.unwrap().unwrap();
    assert_eq!(
        old.read_body().await.unwrap().as_deref(),
        Some(&b"old "[..])
    );
    store(storage, &key, &meta, &[b"new body"]).await;
    assert_eq!(read_all(&mut old).await.unwrap(), b"version body");
    let (_, mut new) = storage.lookup(&key, &span).await.unwrap().unwrap();
    assert_eq!(read_all(&mut new).await.unwrap(), b"new body");
}

#[tokio::test]
async fn purge_while_reading_fails_the_reader_instead_of_truncating() {
    let server = RedisServer::start();
    let storage = storage_with(&server, |c| {
        c.chunk_size = 4;
        c.read_ahead = 1;
    })
    .await;
    let span = Span::none();
    let key = CacheKey::new("", "purged-while-read", "");
    store(
        storage,
        &key,
        &fresh_meta(Duration::from_mins(1), 0, 0),
        &[b"0123456789"],
    )
    .await;
    let (_, mut hit) = storage.lookup(&key, &span).await.unwrap().unwrap();
    assert_eq!(
        hit.read_body().await.unwrap().as_deref(),
        Some(&b"0123"[..])
    );
    assert!(
        storage
            .purge(&key.to_compact(), PurgeType::Invalidation, &span)
            .await
            .unwrap()
    );
    assert!(hit.read_body().await.is_err());
    assert_eq!(storage.stats().read_errors, 1);
}

#[tokio::test]
async fn corrupt_entries_are_errors_not_panics() {
    let server = RedisServer::start();
    let storage = storage(&server).await;
    let span = Span::none();
    let key = CacheKey::new("", "corrupt", "");
    store(
        storage,
        &key,
        &fresh_meta(Duration::from_mins(1), 0, 0),
        &[b"body"],
    )
    .await;
    let meta_key = storage
        .entry_keys(&key.to_compact())
        .await
        .unwrap()
        .remove(0);
    let mut conn = raw(&server).await;
    for (field, value) in [
        ("m", &b"not a meta"[..]),
        ("l", b"12"),
        ("l", b"-4"),
        ("c", b"0"),
        ("n", b"many"),
        ("v", b"../x"),
    ] {
        store(
            storage,
            &key,
            &fresh_meta(Duration::from_mins(1), 0, 0),
            &[b"body"],
        )
        .await;
        let () = conn.hset(&meta_key, field, value).await.unwrap();
        assert!(
            storage.lookup(&key, &span).await.is_err(),
            "{field} = {value:?}"
        );
    }
    // A meta key of the wrong type is an error too.
    let () = conn.del(&meta_key).await.unwrap();
    let () = conn.set(&meta_key, "string").await.unwrap();
    assert!(storage.lookup(&key, &span).await.is_err());
    assert!(storage.stats().lookup_errors >= 7);
}

#[tokio::test]
async fn lookups_fail_within_the_timeout_while_redis_is_down_and_caching_resumes() {
    let mut server = RedisServer::start();
    let storage = storage_with(&server, |c| c.timeout = Duration::from_millis(200)).await;
    let span = Span::none();
    let key = CacheKey::new("", "outage", "");
    let meta = fresh_meta(Duration::from_mins(1), 0, 0);
    store(storage, &key, &meta, &[b"before"]).await;

    server.stop();
    let bound = Duration::from_secs(5);
    let lookup = tokio::time::timeout(bound, storage.lookup(&key, &span)).await;
    assert!(lookup.expect("lookup does not hang").is_err());
    let write = tokio::time::timeout(bound, storage.get_miss_handler(&key, &meta, &span)).await;
    assert!(write.expect("write start does not hang").is_err());
    let purge = tokio::time::timeout(
        bound,
        storage.purge(&key.to_compact(), PurgeType::Invalidation, &span),
    )
    .await;
    assert!(purge.expect("purge does not hang").is_err());
    let stats = storage.stats();
    assert!(
        stats.lookup_errors >= 1 && stats.errors >= 3 && stats.writes_dropped >= 1,
        "{stats:?}"
    );

    server.restart();
    // The connection manager reconnects by itself: calls work again within a few tries.
    let mut back = false;
    for _ in 0..100 {
        if storage.lookup(&key, &span).await.is_ok() {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(back, "storage did not recover after redis came back");
    // The restarted server is empty: a miss, then a write and a hit.
    assert!(storage.lookup(&key, &span).await.unwrap().is_none());
    store(storage, &key, &meta, &[b"after"]).await;
    let (_, mut hit) = storage.lookup(&key, &span).await.unwrap().unwrap();
    assert_eq!(read_all(&mut hit).await.unwrap(), b"after");
}

#[tokio::test]
async fn a_hung_redis_times_out_and_recovers() {
    let server = RedisServer::start();
    let storage = storage_with(&server, |c| c.timeout = Duration::from_millis(200)).await;
    let span = Span::none();
    let key = CacheKey::new("", "hung", "");
    store(
        storage,
        &key,
        &fresh_meta(Duration::from_mins(1), 0, 0),
        &[b"body"],
    )
    .await;

    // A stopped process keeps its socket: connections hang instead of being refused.
    let pid = server.pid().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let lookup = tokio::time::timeout(Duration::from_secs(5), storage.lookup(&key, &span)).await;
    let resumed = std::process::Command::new("kill")
        .args(["-CONT", &pid])
        .status()
        .unwrap()
        .success();
    let Err(err) = lookup.expect("lookup does not hang") else {
        panic!("lookup of a hung redis succeeded");
    };
    assert!(resumed);
    let source = std::error::Error::source(&err)
        .and_then(|e| e.downcast_ref::<larder_storage_redis::Error>());
    assert!(
        matches!(source, Some(larder_storage_redis::Error::Timeout(_))),
        "{source:?}"
    );
    assert!(storage.stats().timeouts >= 1);

    let mut found = None;
    for _ in 0..100 {
        if let Ok(Some(hit)) = storage.lookup(&key, &span).await {
            found = Some(hit);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, mut hit) = found.expect("hits resume once redis answers again");
    assert_eq!(read_all(&mut hit).await.unwrap(), b"body");
}

#[tokio::test]
async fn stats_count_hits_misses_and_writes() {
    let server = RedisServer::start();
    let storage = storage(&server).await;
    let span = Span::none();
    let key = CacheKey::new("", "counted", "");
    assert!(storage.lookup(&key, &span).await.unwrap().is_none());
    store(
        storage,
        &key,
        &fresh_meta(Duration::from_mins(1), 0, 0),
        &[b"x"],
    )
    .await;
    for _ in 0..3 {
        assert!(storage.lookup(&key, &span).await.unwrap().is_some());
    }
    let stats = storage.stats();
    assert_eq!(
        (stats.hits, stats.misses, stats.writes_stored, stats.errors),
        (3, 1, 1, 0)
    );
}

#[tokio::test]
async fn prefixes_keep_caches_apart() {
    let server = RedisServer::start();
    let a = storage_with(&server, |c| c.prefix = "a:".into()).await;
    let b = storage_with(&server, |c| c.prefix = "b:".into()).await;
    let span = Span::none();
    let key = CacheKey::new("", "shared-name", "");
    store(a, &key, &fresh_meta(Duration::from_mins(1), 0, 0), &[b"a"]).await;
    assert!(b.lookup(&key, &span).await.unwrap().is_none());
    assert!(a.lookup(&key, &span).await.unwrap().is_some());
    let mut conn = raw(&server).await;
    assert!(
        all_keys(&mut conn)
            .await
            .iter()
            .all(|k| k.starts_with("a:{"))
    );
}

#[tokio::test]
async fn bad_config_is_rejected() {
    let mut config = RedisConfig::new("not a url");
    assert!(RedisStorage::new(config.clone()).is_err());
    config.url = "redis://127.0.0.1:1".into();
    config.chunk_size = 0;
    assert!(RedisStorage::new(config).is_err());
}

#[test]
fn storage_outside_a_runtime_is_an_error_not_a_panic() {
    let made = RedisStorage::new(RedisConfig::new("redis://127.0.0.1:1"));
    assert!(matches!(made, Err(larder_storage_redis::Error::NoRuntime)));
}

#[tokio::test]
async fn body_of_at_most_one_chunk_lives_in_the_meta_hash() {
    let server = RedisServer::start();
    let storage = storage_with(&server, |c| c.chunk_size = 8).await;
    let meta = fresh_meta(Duration::from_mins(1), 0, 0);
    let mut conn = raw(&server).await;
    for (name, len, keys) in [("exact", 8, 1), ("small", 3, 1), ("over", 9, 3)] {
        let key = CacheKey::new("", name, "");
        let data = body(len);
        // As a proxy writes: the data, then an empty end.
        store_in_pieces(storage, &key, &meta, &data, 8).await;
        let parts = storage.entry_keys(&key.to_compact()).await.unwrap();
        assert_eq!(parts.len(), keys, "{name}: {parts:?}");
        let (_, mut hit) = storage.lookup(&key, &Span::none()).await.unwrap().unwrap();
        assert_eq!(read_all(&mut hit).await.unwrap(), data);
        hit.seek(1, Some(3)).unwrap();
        assert_eq!(read_all(&mut hit).await.unwrap(), &data[1..3]);
    }
    assert_eq!(all_keys(&mut conn).await.len(), 5);
}

fn backend_error(err: &larder_storage::Error) -> Option<&larder_storage_redis::Error> {
    std::error::Error::source(err).and_then(|e| e.downcast_ref::<larder_storage_redis::Error>())
}

#[tokio::test]
async fn repeated_timeouts_mark_redis_down_until_a_probe_succeeds() {
    let server = RedisServer::start();
    let storage = storage_with(&server, |c| {
        c.timeout = Duration::from_millis(100);
        c.breaker_threshold = 2;
        c.breaker_cooldown = Duration::from_millis(200);
    })
    .await;
    let span = Span::none();
    let key = CacheKey::new("", "breaker", "");
    store(
        storage,
        &key,
        &fresh_meta(Duration::from_mins(1), 0, 0),
        &[b"body"],
    )
    .await;

    let pid = server.pid().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let mut errors = Vec::new();
    for _ in 0..4 {
        let Err(e) = storage.lookup(&key, &span).await else {
            panic!("lookup of a hung redis succeeded");
        };
        errors.push(backend_error(&e).map(ToString::to_string));
    }
    let marked_down = storage.is_marked_down();
    assert!(
        std::process::Command::new("kill")
            .args(["-CONT", &pid])
            .status()
            .unwrap()
            .success()
    );
    // Two timeouts open the breaker; the next calls are not sent at all.
    let timeout = larder_storage_redis::Error::Timeout(Duration::from_millis(100)).to_string();
    let skipped = larder_storage_redis::Error::Unavailable.to_string();
    assert_eq!(errors[..2], [Some(timeout.clone()), Some(timeout)]);
    assert_eq!(errors[2..], [Some(skipped.clone()), Some(skipped)]);
    assert!(marked_down);
    let stats = storage.stats();
    assert_eq!((stats.timeouts, stats.skipped), (2, 2));

    // After the cool-down a probe finds redis answering again.
    tokio::time::sleep(Duration::from_millis(250)).await;
    let mut found = None;
    for _ in 0..100 {
        if let Ok(Some(hit)) = storage.lookup(&key, &span).await {
            found = Some(hit);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, mut hit) = found.expect("hits resume after the cool-down");
    assert_eq!(read_all(&mut hit).await.unwrap(), b"body");
    assert!(!storage.is_marked_down());
}

#[tokio::test]
async fn data_errors_do_not_mark_redis_down() {
    let server = RedisServer::start();
    let storage = storage_with(&server, |c| c.breaker_threshold = 1).await;
    let span = Span::none();
    let key = CacheKey::new("", "wrong-type", "");
    store(
        storage,
        &key,
        &fresh_meta(Duration::from_mins(1), 0, 0),
        &[b"x"],
    )
    .await;
    let meta_key = storage
        .entry_keys(&key.to_compact())
        .await
        .unwrap()
        .remove(0);
    let mut conn = raw(&server).await;
    let () = conn.del(&meta_key).await.unwrap();
    let () = conn.set(&meta_key, "not a hash").await.unwrap();
    for _ in 0..3 {
        assert!(storage.lookup(&key, &span).await.is_err());
    }
    assert!(!storage.is_marked_down());
    assert_eq!(storage.stats().skipped, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_and_readers_never_see_a_mixed_body() {
    let server = RedisServer::start();
    let storage = storage_with(&server, |c| {
        c.chunk_size = 1024;
        c.read_ahead = 2;
        c.timeout = Duration::from_secs(2);
    })
    .await;
    let key = CacheKey::new("", "contended", "");
    let meta = fresh_meta(Duration::from_mins(1), 0, 0);
    // Each version is 10 KiB of its own byte, written in uneven pieces.
    store_in_pieces(storage, &key, &meta, &[1; 10 * KIB], 700).await;

    let mut tasks = Vec::new();
    for version in 2..=6u8 {
        let (key, meta, data) = (key.clone(), meta.clone(), vec![version; 10 * KIB]);
        tasks.push(tokio::spawn(async move {
            for _ in 0..5 {
                store_in_pieces(storage, &key, &meta, &data, 700).await;
            }
        }));
    }
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let key = key.clone();
            tokio::spawn(async move {
                let mut seen = 0;
                for _ in 0..30 {
                    let (_, mut hit) = storage.lookup(&key, &Span::none()).await.unwrap().unwrap();
                    let body = read_all(&mut hit).await.unwrap();
                    assert_eq!(body.len(), 10 * KIB);
                    assert!(body.iter().all(|b| *b == body[0]), "a body mixes versions");
                    seen += 1;
                }
                seen
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    for reader in readers {
        assert_eq!(reader.await.unwrap(), 30);
    }
    // Replaced versions expire after the grace; the live entry is whole.
    let parts = storage.entry_keys(&key.to_compact()).await.unwrap();
    assert_eq!(parts.len(), 11);
}

#[tokio::test]
async fn a_write_older_than_part_ttl_is_not_published_even_without_chunks() {
    // A body small enough for the meta hash has no chunk to expire; the age check still
    // stops it, since an invalidation during it may have been forgotten.
    let server = RedisServer::start();
    let storage = storage_with(&server, |c| c.part_ttl = Duration::from_millis(100)).await;
    let span = Span::none();
    let key = CacheKey::new("", "slow-small", "");
    let mut miss = storage
        .get_miss_handler(&key, &fresh_meta(Duration::from_mins(1), 0, 0), &span)
        .await
        .unwrap();
    miss.write_body(Bytes::from_static(b"tiny"), true)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(miss.finish().await.is_err());
    assert!(storage.lookup(&key, &span).await.unwrap().is_none());
}

#[tokio::test]
async fn one_large_write_is_sent_in_several_pipelines() {
    let server = RedisServer::start();
    let storage = storage_with(&server, |c| c.chunk_size = 1024).await;
    let key = CacheKey::new("", "one-big-write", "");
    let data = body(100 * KIB + 5);
    store_in_pieces(
        storage,
        &key,
        &fresh_meta(Duration::from_mins(1), 0, 0),
        &data,
        data.len(),
    )
    .await;
    assert_eq!(
        storage.entry_keys(&key.to_compact()).await.unwrap().len(),
        1 + 101
    );
    let (_, mut hit) = storage.lookup(&key, &Span::none()).await.unwrap().unwrap();
    assert_eq!(read_all(&mut hit).await.unwrap(), data);
}

#[tokio::test]
async fn a_corrupt_chunk_count_does_not_keep_redis_busy() {
    let server = RedisServer::start();
    // Generous: the scripts still touch 100 000 (absent) keys.
    let storage = storage_with(&server, |c| c.timeout = Duration::from_secs(5)).await;
    let span = Span::none();
    let key = CacheKey::new("", "huge-count", "");
    let meta = fresh_meta(Duration::from_mins(1), 0, 0);
    store(storage, &key, &meta, &[b"x"]).await;
    let meta_key = storage
        .entry_keys(&key.to_compact())
        .await
        .unwrap()
        .remove(0);
    let mut conn = raw(&server).await;
    let () = conn.hset(&meta_key, "n", "999999999999").await.unwrap();
    assert!(storage.lookup(&key, &span).await.is_err());
    assert!(storage.entry_keys(&key.to_compact()).await.is_err());
    // The scripts stop at 100 000 chunks instead of looping 10^12 times.
    assert!(storage.update_meta(&key, &meta, &span).await.unwrap());
    assert!(
        storage
            .purge(&key.to_compact(), PurgeType::Invalidation, &span)
            .await
            .unwrap()
    );
    assert!(all_keys(&mut conn).await.iter().all(|k| k.ends_with(":p")));
}

/// Any body written in any pieces reads back whole and in any range, with one key per chunk
/// beyond the first (a body of at most one chunk lives in the meta hash).
#[test]
fn chunked_bodies_round_trip_whatever_the_pieces() {
    use proptest::prelude::*;

    let server = RedisServer::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let storages: Vec<&'static RedisStorage> = [1, 7, 64, 1000]
        .into_iter()
        .map(|chunk_size| {
            rt.block_on(storage_with(&server, |c| {
                c.chunk_size = chunk_size;
                c.read_ahead = 3;
                c.prefix = format!("cs{chunk_size}:");
            }))
        })
        .collect();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(48));
    let strategy = (
        0usize..4,
        proptest::collection::vec(1usize..900, 0..8),
        proptest::collection::vec((0usize..4000, 0usize..4000), 0..4),
    );
    runner
        .run(&strategy, |(which, pieces, ranges)| {
            let storage = storages[which];
            let chunk_size = storage.config().chunk_size;
            let len: usize = pieces.iter().sum();
            let data = body(len);
            rt.block_on(async {
                let span = Span::none();
                let key = CacheKey::new("", format!("prop-{which}-{len}"), "");
                let mut miss = storage
                    .get_miss_handler(&key, &fresh_meta(Duration::from_mins(1), 0, 0), &span)
                    .await
                    .unwrap();
                let mut at = 0;
                for piece in &pieces {
                    miss.write_body(Bytes::copy_from_slice(&data[at..at + piece]), false)
                        .await
                        .unwrap();
                    at += piece;
                }
                miss.finish().await.unwrap();
                let chunks = if len <= chunk_size {
                    0
                } else {
                    len.div_ceil(chunk_size)
                };
                let parts = storage.entry_keys(&key.to_compact()).await.unwrap();
                prop_assert_eq!(parts.len(), 1 + chunks);
                let (_, mut hit) = storage.lookup(&key, &span).await.unwrap().unwrap();
                prop_assert_eq!(read_all(&mut hit).await.unwrap(), data.clone());
                for (start, end) in ranges {
                    let end = start + end % 1000 + 1;
                    if start >= len {
                        prop_assert!(hit.seek(start, Some(end)).is_err());
                        continue;
                    }
                    hit.seek(start, Some(end)).unwrap();
                    let got = read_all(&mut hit).await.unwrap();
                    prop_assert_eq!(&got[..], &data[start..end.min(len)]);
                }
                Ok(())
            })
        })
        .unwrap();
}
