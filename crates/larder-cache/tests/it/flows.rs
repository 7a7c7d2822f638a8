//! End-to-end flows driven as a proxy drives them.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use larder_cache::eviction::EvictionManager;
use larder_cache::lock::LockStatus;
use larder_cache::{CacheKey, CachePhase, HitStatus, HttpCache, NoCacheReason, Storage};

use crate::driver::{Answer, Env, Origin, get, header_map, not_modified, ok};

fn no_headers() -> HeaderMap {
    HeaderMap::new()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn miss_then_hit() {
    let env = Env::new();
    let origin = Origin::new(vec![ok(&[("cache-control", "max-age=60")], b"hello")]);
    let first = get(env, "/a", &no_headers(), &origin).await;
    assert_eq!(first.phase, CachePhase::Miss);
    assert_eq!(first.body, b"hello");
    let second = get(env, "/a", &no_headers(), &origin).await;
    assert_eq!(second.phase, CachePhase::Hit);
    assert_eq!(second.body, b"hello");
    assert_eq!(second.headers["age"], "0");
    assert_eq!(origin.calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_age_counts_in_served_age() {
    let env = Env::new();
    let origin = Origin::new(vec![ok(
        &[("cache-control", "max-age=60"), ("age", "30")],
        b"x",
    )]);
    get(env, "/a", &no_headers(), &origin).await;
    let hit = get(env, "/a", &no_headers(), &origin).await;
    assert_eq!(hit.phase, CachePhase::Hit);
    let age: u64 = hit.headers["age"].to_str().unwrap().parse().unwrap();
    assert!((30..32).contains(&age), "age {age}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uncacheable_response_is_not_stored() {
    let env = Env::new();
    let origin = Origin::new(vec![ok(&[("cache-control", "no-store")], b"x")]);
    let first = get(env, "/a", &no_headers(), &origin).await;
    assert_eq!(first.phase, CachePhase::Disabled(NoCacheReason::NoStore));
    get(env, "/a", &no_headers(), &origin).await;
    assert_eq!(origin.calls(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_blocks_storage_unless_public() {
    let env = Env::new();
    let auth = header_map(&[("authorization", "Bearer x")]);
    let origin = Origin::new(vec![ok(&[("cache-control", "max-age=60")], b"x")]);
    let served = get(env, "/a", &auth, &origin).await;
    assert_eq!(
        served.phase,
        CachePhase::Disabled(NoCacheReason::Authorization)
    );
    origin.set(vec![ok(&[("cache-control", "max-age=60, public")], b"x")]);
    assert_eq!(get(env, "/b", &auth, &origin).await.phase, CachePhase::Miss);
    assert_eq!(get(env, "/b", &auth, &origin).await.phase, CachePhase::Hit);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_then_304_revalidates_and_merges_headers() {
    let env = Env::new().with_lock(Duration::from_secs(5));
    let origin = Origin::new(vec![
        ok(
            &[
                ("cache-control", "max-age=0"),
                ("etag", "\"v1\""),
                ("x-old", "1"),
                ("content-type", "text/plain"),
            ],
            b"body",
        ),
        not_modified(&[
            ("cache-control", "max-age=60"),
            ("x-old", "2"),
            ("x-new", "yes"),
            ("age", "10"),
            ("content-length", "0"),
        ]),
    ]);
    get(env, "/a", &no_headers(), &origin).await;
    let revalidated = get(env, "/a", &no_headers(), &origin).await;
    assert_eq!(revalidated.phase, CachePhase::Revalidated);
    assert_eq!(revalidated.body, b"body");
    assert_eq!(origin.last_request()["if-none-match"], "\"v1\"");
    assert_eq!(revalidated.headers["x-old"], "2");
    assert_eq!(revalidated.headers["x-new"], "yes");
    assert_eq!(revalidated.headers["content-type"], "text/plain");
    // The stored entry was updated: a fresh hit with the merged headers, whose age restarted
    // from the 304's Age.
    let hit = get(env, "/a", &no_headers(), &origin).await;
    assert_eq!(hit.phase, CachePhase::Hit);
    assert_eq!(hit.headers["x-new"], "yes");
    assert_eq!(hit.body, b"body");
    let age: u64 = hit.headers["age"].to_str().unwrap().parse().unwrap();
    assert!((10..12).contains(&age), "age {age}");
    assert_eq!(origin.calls(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_304_that_forbids_storage_is_served_uncached() {
    let env = Env::new();
    let origin = Origin::new(vec![
        ok(
            &[("cache-control", "max-age=0"), ("etag", "\"v1\"")],
            b"body",
        ),
        not_modified(&[("cache-control", "no-store")]),
    ]);
    get(env, "/a", &no_headers(), &origin).await;
    let served = get(env, "/a", &no_headers(), &origin).await;
    assert_eq!(
        served.phase,
        CachePhase::RevalidatedNoCache(NoCacheReason::NoStore)
    );
    assert_eq!(served.body, b"body");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_then_200_replaces_entry() {
    let env = Env::new();
    let origin = Origin::new(vec![
        ok(
            &[
                ("cache-control", "max-age=0"),
                ("last-modified", "Mon, 01 Jan 2001 00:00:00 GMT"),
            ],
            b"old",
        ),
        ok(&[("cache-control", "max-age=60")], b"new"),
    ]);
    get(env, "/a", &no_headers(), &origin).await;
    let replaced = get(env, "/a", &no_headers(), &origin).await;
    assert_eq!(replaced.phase, CachePhase::Expired);
    assert_eq!(replaced.body, b"new");
    assert_eq!(
        origin.last_request()["if-modified-since"],
        "Mon, 01 Jan 2001 00:00:00 GMT"
    );
    let hit = get(env, "/a", &no_headers(), &origin).await;
    assert_eq!(hit.phase, CachePhase::Hit);
    assert_eq!(hit.body, b"new");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_while_revalidate_serves_stale_and_refreshes_once() {
    let env = Env::new().with_lock(Duration::from_secs(5));
    let origin = Origin::new(vec![
        ok(
            &[("cache-control", "max-age=0, stale-while-revalidate=60")],
            b"old",
        ),
        ok(&[("cache-control", "max-age=60")], b"new"),
    ]);
    get(env, "/a", &no_headers(), &origin).await;
    let mut stale = get(env, "/a", &no_headers(), &origin).await;
    assert_eq!(stale.phase, CachePhase::StaleUpdating);
    assert_eq!(stale.body, b"old");
    let refresh = stale
        .background
        .take()
        .expect("a background refresh was started")
        .await
        .expect("refresh task");
    assert_eq!(refresh.phase, CachePhase::Expired);
    let hit = get(env, "/a", &no_headers(), &origin).await;
    assert_eq!(hit.phase, CachePhase::Hit);
    assert_eq!(hit.body, b"new");
    assert_eq!(origin.calls(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_while_revalidate_readers_serve_stale_during_refresh() {
    let env = Env::new().with_lock(Duration::from_secs(5));
    let origin = Origin::new(vec![ok(
        &[("cache-control", "max-age=0, stale-while-revalidate=60")],
        b"old",
    )]);
    get(env, "/a", &no_headers(), &origin).await;
    // A request holds the stale write permit (it is revalidating)...
    let mut writer = env.cache("/a");
    let (meta, hit) = writer.cache_lookup().await.unwrap().unwrap();
    writer.cache_found(meta, hit, HitStatus::Expired);
    assert!(writer.is_cache_lock_writer());
    // ...so another request serves stale instead of waiting.
    let reader = get(env, "/a", &no_headers(), &origin).await;
    assert_eq!(reader.phase, CachePhase::StaleUpdating);
    assert_eq!(reader.body, b"old");
    assert_eq!(origin.calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_if_error_serves_stale_on_upstream_error() {
    let env = Env::new().with_lock(Duration::from_secs(5));
    let origin = Origin::new(vec![
        ok(&[("cache-control", "max-age=0, stale-if-error=60")], b"old"),
        Answer::Error,
    ]);
    get(env, "/a", &no_headers(), &origin).await;
    let served = get(env, "/a", &no_headers(), &origin).await;
    assert_eq!(served.status, StatusCode::OK);
    assert_eq!(served.phase, CachePhase::Stale);
    assert_eq!(served.body, b"old");
    // The write lock was released, so the next request is not stuck behind it.
    let again = get(env, "/a", &no_headers(), &origin).await;
    assert_eq!(again.body, b"old");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_if_error_refused_after_window() {
    let env = Env::new();
    // Already 100 s old with a 5 s error window: the window closed long ago.
    let origin = Origin::new(vec![
        ok(
            &[
                ("cache-control", "max-age=0, stale-if-error=5"),
                ("age", "100"),
            ],
            b"old",
        ),
        Answer::Error,
    ]);
    get(env, "/a", &no_headers(), &origin).await;
    let served = get(env, "/a", &no_headers(), &origin).await;
    assert_eq!(served.status, StatusCode::BAD_GATEWAY);
    assert_eq!(
        served.phase,
        CachePhase::Disabled(NoCacheReason::UpstreamError)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn must_revalidate_forbids_stale_if_error() {
    let env = Env::new();
    let origin = Origin::new(vec![
        ok(
            &[(
                "cache-control",
                "max-age=0, must-revalidate, stale-if-error=60",
            )],
            b"old",
        ),
        Answer::Error,
    ]);
    get(env, "/a", &no_headers(), &origin).await;
    let served = get(env, "/a", &no_headers(), &origin).await;
    assert_eq!(served.status, StatusCode::BAD_GATEWAY);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_elect_one_writer() {
    let env = Env::new().with_lock(Duration::from_secs(5));
    let origin = Origin::new(vec![ok(&[("cache-control", "max-age=60")], b"shared")])
        .with_delay(Duration::from_millis(50));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let origin = origin.clone();
        tasks.push(tokio::spawn(async move {
            get(env, "/a", &HeaderMap::new(), &origin).await
        }));
    }
    let mut misses = 0;
    for task in tasks {
        let served = task.await.unwrap();
        assert_eq!(served.body, b"shared");
        if served.phase == CachePhase::Miss {
            misses += 1;
        } else {
            assert_eq!(served.phase, CachePhase::Hit);
        }
    }
    assert_eq!(misses, 1);
    assert_eq!(origin.calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uncacheable_writer_releases_waiters_uncached() {
    let env = Env::new().with_lock(Duration::from_secs(5));
    let origin = Origin::new(vec![ok(&[("cache-control", "private")], b"mine")])
        .with_delay(Duration::from_millis(50));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let origin = origin.clone();
        tasks.push(tokio::spawn(async move {
            get(env, "/a", &HeaderMap::new(), &origin).await
        }));
    }
    let mut gave_up = 0;
    for task in tasks {
        let served = task.await.unwrap();
        assert_eq!(served.body, b"mine");
        if served.phase == CachePhase::Disabled(NoCacheReason::CacheLockGiveUp) {
            gave_up += 1;
        }
    }
    assert_eq!(origin.calls(), 4);
    assert!(gave_up >= 1, "waiters were released with GiveUp");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_wait_timeout_goes_upstream_uncached() {
    let mut env = Env::new().with_lock(Duration::from_secs(30));
    env.wait_timeout = Some(Duration::from_millis(30));
    // A writer that never finishes.
    let mut writer = env.cache("/a");
    assert!(writer.cache_lookup().await.unwrap().is_none());
    assert!(writer.is_cache_lock_writer());

    let mut reader = env.cache("/a");
    assert!(reader.cache_lookup().await.unwrap().is_none());
    assert!(reader.is_cache_locked());
    assert_eq!(reader.cache_lock_wait().await, LockStatus::WaitTimeout);
    assert!(reader.lock_duration().is_some());
    // The budget is spent: a second wait times out at once.
    assert_eq!(reader.cache_lock_wait().await, LockStatus::WaitTimeout);

    let origin = Origin::new(vec![ok(&[("cache-control", "max-age=60")], b"x")]);
    let served = get(env, "/a", &HeaderMap::new(), &origin).await;
    assert_eq!(
        served.phase,
        CachePhase::Disabled(NoCacheReason::CacheLockTimeout)
    );
    assert_eq!(served.body, b"x");
    drop(writer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_writer_lets_a_waiter_take_over() {
    let env = Env::new().with_lock(Duration::from_secs(30));
    let mut writer = env.cache("/a");
    assert!(writer.cache_lookup().await.unwrap().is_none());
    let origin = Origin::new(vec![ok(&[("cache-control", "max-age=60")], b"x")]);
    let waiter = {
        let origin = origin.clone();
        tokio::spawn(async move { get(env, "/a", &HeaderMap::new(), &origin).await })
    };
    tokio::task::yield_now().await;
    drop(writer);
    let served = waiter.await.unwrap();
    assert_eq!(served.phase, CachePhase::Miss);
    assert_eq!(
        get(env, "/a", &HeaderMap::new(), &origin).await.phase,
        CachePhase::Hit
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_file_size_exceeded_mid_body_is_not_stored() {
    let mut env = Env::new();
    env.max_file_size = Some(10);
    let origin = Origin::new(vec![Answer::Response {
        status: 200,
        headers: vec![("cache-control", "max-age=60".to_owned())],
        chunks: vec![b"12345678", b"12345678", b"1234"],
    }]);
    let served = get(env, "/a", &HeaderMap::new(), &origin).await;
    assert_eq!(served.body.len(), 20);
    assert_eq!(
        served.phase,
        CachePhase::Disabled(NoCacheReason::ResponseTooLarge)
    );
    let mut cache = env.cache("/a");
    assert!(cache.cache_lookup().await.unwrap().is_none());
    let again = get(env, "/a", &HeaderMap::new(), &origin).await;
    assert_ne!(again.phase, CachePhase::Hit);
    assert_eq!(origin.calls(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_miss_handler_leaves_nothing() {
    let env = Env::new();
    let mut cache = env.cache("/a");
    assert!(cache.cache_lookup().await.unwrap().is_none());
    cache.cache_miss();
    let origin = Origin::new(vec![ok(&[("cache-control", "max-age=60")], b"x")]);
    let now = SystemTime::now();
    let mut header = larder_cache::ResponseHeader::new(StatusCode::OK);
    header.append_header("cache-control", "max-age=60").unwrap();
    let meta = larder_cache::CacheMeta::new(now + Duration::from_mins(1), now, 0, 0, header);
    cache.set_cache_meta(meta);
    cache.set_miss_handler().await.unwrap();
    cache
        .miss_handler()
        .unwrap()
        .write_body(Bytes::from_static(b"partial"), false)
        .await
        .unwrap();
    drop(cache);
    let served = get(env, "/a", &HeaderMap::new(), &origin).await;
    assert_eq!(served.phase, CachePhase::Miss);
    assert_eq!(served.body, b"x");
    assert_eq!(env.storage.writes_in_progress(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vary_stores_variants_separately() {
    let env = Env::new();
    let gzip = header_map(&[("accept-encoding", "gzip")]);
    let br = header_map(&[("accept-encoding", "br")]);
    let gzip_two_lines = header_map(&[("accept-encoding", "gzip"), ("accept-encoding", "")]);
    let origin = Origin::new(vec![
        ok(
            &[("cache-control", "max-age=60"), ("vary", "Accept-Encoding")],
            b"gz",
        ),
        ok(
            &[("cache-control", "max-age=60"), ("vary", "accept-encoding")],
            b"br",
        ),
    ]);
    assert_eq!(get(env, "/a", &gzip, &origin).await.phase, CachePhase::Miss);
    let second = get(env, "/a", &br, &origin).await;
    assert_eq!(second.phase, CachePhase::Miss);
    assert_eq!(second.body, b"br");
    let hit_gzip = get(env, "/a", &gzip, &origin).await;
    assert_eq!(
        (hit_gzip.phase, hit_gzip.body.as_slice()),
        (CachePhase::Hit, &b"gz"[..])
    );
    let hit_br = get(env, "/a", &br, &origin).await;
    assert_eq!(
        (hit_br.phase, hit_br.body.as_slice()),
        (CachePhase::Hit, &b"br"[..])
    );
    // An empty extra line adds nothing after normalisation.
    assert_eq!(
        get(env, "/a", &gzip_two_lines, &origin).await.phase,
        CachePhase::Hit
    );
    assert_eq!(origin.calls(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_removes_entry_and_primary_purge_hides_variants() {
    let env = Env::new();
    let gzip = header_map(&[("accept-encoding", "gzip")]);
    let br = header_map(&[("accept-encoding", "br")]);
    let origin = Origin::new(vec![ok(
        &[("cache-control", "max-age=60"), ("vary", "accept-encoding")],
        b"v",
    )]);
    get(env, "/a", &gzip, &origin).await;
    get(env, "/a", &br, &origin).await;
    let mut purger = env.cache("/a");
    assert!(purger.purge().await.unwrap());
    let mut purger = env.cache("/a");
    assert!(!purger.purge().await.unwrap());
    assert_eq!(get(env, "/a", &br, &origin).await.phase, CachePhase::Miss);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eviction_purges_victims() {
    use larder_cache::eviction::simple_lru::Manager;
    let origin = Origin::new(vec![ok(&[("cache-control", "max-age=60")], b"12345678")]);
    // Measure the weight the storage reports for one entry.
    let mut probe_env = Env::new();
    let probe: &'static Manager = Box::leak(Box::new(Manager::new(1 << 20)));
    probe_env.eviction = Some(probe);
    get(probe_env, "/a", &HeaderMap::new(), &origin).await;
    let one = probe.total_size();
    assert!(one >= 8, "the weight covers at least the body");

    let mut env = Env::new();
    let limit = one + one / 2;
    let eviction: &'static Manager = Box::leak(Box::new(Manager::new(limit)));
    env.eviction = Some(eviction);
    get(env, "/a", &HeaderMap::new(), &origin).await;
    get(env, "/b", &HeaderMap::new(), &origin).await;
    // Both entries do not fit: the manager chose a victim, which is purged from
    // storage in a spawned task.
    let stored = || async {
        let mut n = 0;
        for key in ["/a", "/b"] {
            let key = CacheKey::new("", key, "");
            if env
                .storage
                .lookup(&key, &tracing::Span::none())
                .await
                .unwrap()
                .is_some()
            {
                n += 1;
            }
        }
        n
    };
    let mut remaining = stored().await;
    for _ in 0..200 {
        if remaining == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
        remaining = stored().await;
    }
    assert_eq!(remaining, 1, "one entry was evicted and purged");
    assert!(eviction.total_size() <= limit);
    assert_eq!(eviction.total_items(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taken_miss_reader_reads_a_fill_owned_elsewhere_at_its_own_pace() {
    let env = Env::new().with_lock(Duration::from_secs(5));
    let mut writer = env.cache("/fill");
    assert!(writer.cache_lookup().await.unwrap().is_none());
    writer.cache_miss();
    let now = SystemTime::now();
    writer.set_cache_meta(larder_cache::CacheMeta::new(
        now + Duration::from_mins(1),
        now,
        0,
        0,
        larder_cache::ResponseHeader::new(StatusCode::OK),
    ));
    writer.set_miss_handler().await.unwrap();
    let mut reader = writer
        .take_miss_body_reader()
        .expect("MemCache streams partial writes");
    assert!(writer.take_miss_body_reader().is_none(), "taken once");
    // The fill runs to its end in a task of its own before the reader reads a byte.
    tokio::spawn(async move {
        for part in [&b"ab"[..], b"cd", b"ef"] {
            let handler = writer.miss_handler().unwrap();
            handler
                .write_body(Bytes::from_static(part), false)
                .await
                .unwrap();
        }
        writer
            .miss_handler()
            .unwrap()
            .write_body(Bytes::new(), true)
            .await
            .unwrap();
        writer.finish_miss_handler().await.unwrap();
    })
    .await
    .unwrap();
    let mut body = Vec::new();
    while let Some(chunk) = reader.read_body().await.unwrap() {
        body.extend_from_slice(&chunk);
    }
    assert_eq!(body, b"abcdef");
    let mut hit = env.cache("/fill");
    assert!(
        hit.cache_lookup().await.unwrap().is_some(),
        "the fill stored the entry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reader_of_abandoned_streaming_write_sees_an_error() {
    let env = Env::new().with_lock(Duration::from_secs(5));
    let mut writer = env.cache("/a");
    assert!(writer.cache_lookup().await.unwrap().is_none());
    writer.cache_miss();
    let now = SystemTime::now();
    let meta = larder_cache::CacheMeta::new(
        now + Duration::from_mins(1),
        now,
        0,
        0,
        larder_cache::ResponseHeader::new(StatusCode::OK),
    );
    writer.set_cache_meta(meta);
    writer.set_miss_handler().await.unwrap();
    // With streaming partial writes the lock is released once the write starts.
    assert!(!writer.is_cache_lock_writer());
    assert!(writer.miss_body_reader().is_some());
    writer
        .miss_handler()
        .unwrap()
        .write_body(Bytes::from_static(b"part"), false)
        .await
        .unwrap();

    let mut reader = env.cache("/a");
    let (meta, hit) = reader
        .cache_lookup()
        .await
        .unwrap()
        .expect("the write in progress is visible");
    reader.cache_found(meta, hit, HitStatus::Fresh);
    assert_eq!(
        reader.hit_handler().read_body().await.unwrap().as_deref(),
        Some(&b"part"[..])
    );
    drop(writer);
    assert!(
        reader.hit_handler().read_body().await.is_err(),
        "a truncated body is an error, not a clean end"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewritten_primary_invalidates_older_variants() {
    let env = Env::new();
    let gzip = header_map(&[("accept-encoding", "gzip")]);
    let br = header_map(&[("accept-encoding", "br")]);
    let origin = Origin::new(vec![
        ok(
            &[("cache-control", "max-age=0"), ("vary", "accept-encoding")],
            b"gz1",
        ),
        ok(
            &[("cache-control", "max-age=60"), ("vary", "accept-encoding")],
            b"br1",
        ),
        ok(
            &[("cache-control", "max-age=60"), ("vary", "accept-encoding")],
            b"gz2",
        ),
        ok(
            &[("cache-control", "max-age=60"), ("vary", "accept-encoding")],
            b"br2",
        ),
    ]);
    get(env, "/a", &gzip, &origin).await; // primary slot: gz1 (stale at once)
    get(env, "/a", &br, &origin).await; // secondary slot: br1
    assert_eq!(get(env, "/a", &br, &origin).await.phase, CachePhase::Hit);
    // The stale primary is replaced (Expired), which makes br1 older than the primary.
    let replaced = get(env, "/a", &gzip, &origin).await;
    assert_eq!(
        (replaced.phase, replaced.body.as_slice()),
        (CachePhase::Expired, &b"gz2"[..])
    );
    let refetched = get(env, "/a", &br, &origin).await;
    assert_eq!(
        (refetched.phase, refetched.body.as_slice()),
        (CachePhase::Miss, &b"br2"[..])
    );
    assert_eq!(origin.calls(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_and_lock_waits_are_timed() {
    let env = Env::new().with_lock(Duration::from_secs(5));
    let mut writer = env.cache("/a");
    assert!(writer.lookup_duration().is_none());
    assert!(writer.cache_lookup().await.unwrap().is_none());
    assert!(writer.lookup_duration().is_some());
    let mut reader = env.cache("/a");
    assert!(reader.cache_lookup().await.unwrap().is_none());
    let waiting = tokio::spawn(async move {
        let status = reader.cache_lock_wait().await;
        (status, reader)
    });
    writer.disable(NoCacheReason::UpstreamError);
    let (status, mut reader) = waiting.await.unwrap();
    assert_eq!(status, LockStatus::TransientError);
    assert!(reader.lock_duration().is_some());
    // Looking up again, the reader becomes the new writer.
    assert!(reader.cache_lookup().await.unwrap().is_none());
    assert!(reader.is_cache_lock_writer());
    reader.disable(NoCacheReason::InternalError);
    assert!(
        reader.lookup_duration().is_some(),
        "timings survive disable"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writer_past_lock_age_is_replaced_by_a_waiter() {
    let env = Env::new().with_lock(Duration::from_millis(30));
    // A writer that stalls longer than the lock's age timeout.
    let mut stalled = env.cache("/a");
    assert!(stalled.cache_lookup().await.unwrap().is_none());
    assert!(stalled.is_cache_lock_writer());
    let origin = Origin::new(vec![ok(&[("cache-control", "max-age=60")], b"x")]);
    let served = get(env, "/a", &HeaderMap::new(), &origin).await;
    // The waiter saw AgeTimeout, looked up again and became the new writer.
    assert_eq!(served.phase, CachePhase::Miss);
    assert_eq!(
        get(env, "/a", &HeaderMap::new(), &origin).await.phase,
        CachePhase::Hit
    );
    assert!(stalled.lock_duration().is_none());
    drop(stalled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_expired_revalidates_without_stale_serving() {
    let env = Env::new();
    let origin = Origin::new(vec![ok(
        &[(
            "cache-control",
            "max-age=0, stale-if-error=600, stale-while-revalidate=600",
        )],
        b"x",
    )]);
    get(env, "/a", &no_headers(), &origin).await;
    let mut expired = env.cache("/a");
    let (meta, hit) = expired.cache_lookup().await.unwrap().unwrap();
    expired.cache_found(meta, hit, HitStatus::Expired);
    assert!(expired.can_serve_stale_error());
    assert!(expired.can_serve_stale_updating());
    let mut forced = env.cache("/a");
    let (meta, hit) = forced.cache_lookup().await.unwrap().unwrap();
    forced.cache_found(meta, hit, HitStatus::ForceExpired);
    assert_eq!(forced.phase(), CachePhase::Stale);
    assert!(!forced.can_serve_stale_error());
    assert!(!forced.can_serve_stale_updating());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_miss_drops_the_entry_and_fills_again() {
    let env = Env::new().with_lock(Duration::from_secs(5));
    let origin = Origin::new(vec![ok(&[("cache-control", "max-age=60")], b"x")]);
    get(env, "/a", &no_headers(), &origin).await;
    let mut cache = env.cache("/a");
    // A hit filter may swap the lock before deciding.
    cache.set_cache_lock(env.lock, None);
    let (meta, hit) = cache.cache_lookup().await.unwrap().unwrap();
    cache.cache_found(meta, hit, HitStatus::ForceMiss);
    assert_eq!(cache.phase(), CachePhase::CacheKey);
    assert!(cache.is_cache_lock_writer());
    cache.cache_miss();
    assert_eq!(cache.phase(), CachePhase::Miss);
    assert!(cache.upstream_used());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vary_header_omitted_by_either_request_does_not_match() {
    let env = Env::new();
    let with = header_map(&[("x-variant", "1")]);
    let origin = Origin::new(vec![ok(
        &[("cache-control", "max-age=60"), ("vary", "x-variant")],
        b"v",
    )]);
    // Stored for a request that had the header; a request without it must not reuse it.
    get(env, "/a", &with, &origin).await;
    assert_eq!(
        get(env, "/a", &no_headers(), &origin).await.phase,
        CachePhase::Miss
    );
    assert_eq!(
        get(env, "/a", &no_headers(), &origin).await.phase,
        CachePhase::Hit
    );
    // Stored for a request without it; a request with it must not reuse that one.
    get(env, "/b", &no_headers(), &origin).await;
    assert_eq!(get(env, "/b", &with, &origin).await.phase, CachePhase::Miss);
    assert_eq!(get(env, "/b", &with, &origin).await.phase, CachePhase::Hit);
    assert_eq!(origin.calls(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiter_that_finds_a_hit_holds_no_lock() {
    let env = Env::new().with_lock(Duration::from_secs(5));
    let origin = Origin::new(vec![ok(&[("cache-control", "max-age=60")], b"x")]);
    let mut writer = env.cache("/a");
    assert!(writer.cache_lookup().await.unwrap().is_none());
    let mut reader = env.cache("/a");
    assert!(reader.cache_lookup().await.unwrap().is_none());
    assert!(reader.is_cache_locked());
    let waiting = tokio::spawn(async move {
        let status = reader.cache_lock_wait().await;
        (status, reader)
    });
    // The writer (still the lock writer, so it looks up and misses again) stores the response.
    let served = crate::driver::run(writer, &no_headers(), &origin, env, false).await;
    assert_eq!(served.phase, CachePhase::Miss);
    let (status, mut reader) = waiting.await.unwrap();
    assert_eq!(status, LockStatus::Done);
    let (meta, hit) = reader.cache_lookup().await.unwrap().expect("stored");
    reader.cache_found(meta, hit, HitStatus::Fresh);
    assert!(!reader.is_cache_locked());
    assert!(!reader.is_cache_lock_writer());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_lookups_do_not_stampede_the_origin() {
    let mut env = Env::new().with_lock(Duration::from_secs(5));
    let flaky: &'static crate::flaky::FailingUntilWritten =
        Box::leak(Box::new(crate::flaky::FailingUntilWritten {
            inner: env.storage,
            healthy: std::sync::atomic::AtomicBool::new(false),
        }));
    env.storage_override = Some(flaky);
    let origin = Origin::new(vec![ok(&[("cache-control", "max-age=60")], b"fixed")])
        .with_delay(Duration::from_millis(50));
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let origin = origin.clone();
        tasks.push(tokio::spawn(async move {
            get(env, "/a", &HeaderMap::new(), &origin).await
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap().body, b"fixed");
    }
    assert_eq!(origin.calls(), 1);
    assert!(
        env.storage_override
            .is_some_and(|s| s.as_any().is::<crate::flaky::FailingUntilWritten>())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_whose_vary_changed_goes_to_the_primary_slot() {
    let env = Env::new();
    let a1 = header_map(&[("x-a", "1")]);
    let a2 = header_map(&[("x-a", "2")]);
    let origin = Origin::new(vec![
        ok(&[("cache-control", "max-age=60"), ("vary", "x-a")], b"a1"),
        ok(&[("cache-control", "max-age=60"), ("vary", "x-b")], b"by-b"),
    ]);
    get(env, "/a", &a1, &origin).await;
    // a2 misses its variant slot, but the origin now varies on x-b: the response is written
    // to the primary slot and replaces the x-a variants.
    let second = get(env, "/a", &a2, &origin).await;
    assert_eq!(second.phase, CachePhase::Miss);
    let again = get(env, "/a", &a1, &origin).await;
    assert_eq!(
        (again.phase, again.body.as_slice()),
        (CachePhase::Hit, &b"by-b"[..])
    );
    assert_eq!(origin.calls(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predictor_remembers_uncacheable_keys() {
    let env = Env::new();
    let predictor: &'static larder_cache::predictor::Predictor<4> =
        Box::leak(Box::new(larder_cache::predictor::Predictor::new(16, None)));
    let mut cache = HttpCache::new();
    cache.enable(env.storage, None, Some(predictor), None, None);
    cache.set_cache_key(CacheKey::new("", "/p", ""));
    assert!(cache.cacheable_prediction());
    cache.response_became_uncacheable(NoCacheReason::OriginNotCache);
    assert!(!cache.cacheable_prediction());
    // The next request for the key bypasses, and the response turned out cacheable after all.
    let mut next = HttpCache::new();
    next.enable(env.storage, None, Some(predictor), None, None);
    next.set_cache_key(CacheKey::new("", "/p", ""));
    assert!(!next.cacheable_prediction());
    next.bypass();
    assert!(next.bypassing() && !next.enabled());
    next.response_became_cacheable();
    next.cache_miss();
    assert_eq!(next.phase(), CachePhase::Miss);
    assert!(next.cacheable_prediction());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accessors_report_the_configuration() {
    let mut env = Env::new();
    env.max_file_size = Some(100);
    let mut cache = env.cache("/a");
    assert!(cache.storage_type_is::<larder_cache::MemCache>());
    assert!(!cache.storage_type_is::<String>());
    assert_eq!(cache.support_streaming_partial_write(), Some(true));
    assert_eq!(cache.max_file_size_bytes(), Some(100));
    assert!(cache.track_body_bytes_for_max_file_size(60));
    assert!(!cache.exceeded_max_file_size());
    assert!(!cache.track_body_bytes_for_max_file_size(60));
    assert!(cache.exceeded_max_file_size());
    // Tracking keeps working after disable (PredictedResponseTooLarge re-marking).
    cache.disable(NoCacheReason::PredictedResponseTooLarge);
    assert!(!cache.track_body_bytes_for_max_file_size(1));
    assert_eq!(cache.max_file_size_bytes(), Some(100));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_purge_removes_the_entry() {
    let env = Env::new();
    let origin = Origin::new(vec![ok(&[("cache-control", "max-age=60")], b"x")]);
    get(env, "/a", &no_headers(), &origin).await;
    let mut hit = env.cache("/a");
    let (meta, handler) = hit.cache_lookup().await.unwrap().unwrap();
    hit.cache_found(meta, handler, HitStatus::Fresh);
    // Usable from any enabled phase, e.g. after an unsafe method's response.
    assert!(hit.spawn_async_purge("test").await.unwrap().unwrap());
    assert_eq!(
        get(env, "/a", &no_headers(), &origin).await.phase,
        CachePhase::Miss
    );
}
