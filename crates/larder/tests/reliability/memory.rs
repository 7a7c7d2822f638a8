//! Scenario 3: many distinct objects through a 64 MiB cache, in process.

use std::convert::Infallible;

use bytes::Bytes;
use futures_util::StreamExt;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use larder::cache::MemCache;
use larder::proxy::config::EvictionPolicy;
use larder::proxy::{CacheConfig, CacheLayer, DefaultHooks, ProxyBody};
use tower::{Layer, ServiceExt};

use larder_testkit::rss_bytes;

use crate::HEAVY;

const LIMIT: usize = 64 << 20;
const OBJECTS: usize = 20_000;
const OBJECT_SIZE: usize = 16 * 1024;
/// Allowed on top of 1.3 × the limit: allocator slack, the eviction manager's and the cache
/// lock's per-key bookkeeping, and the runtime's buffers. Measured well below this.
/// Requests driven at once.
const IN_FLIGHT: usize = 16;
const FIXED_OVERHEAD: usize = 32 << 20;

#[test]
fn memory_stays_bounded_under_many_distinct_objects() {
    let _heavy = HEAVY
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let baseline = rss_bytes();
        let config = CacheConfig::in_memory(LIMIT, EvictionPolicy::Lru);
        let storage = config
            .storage
            .unwrap()
            .as_any()
            .downcast_ref::<MemCache>()
            .unwrap();
        let eviction = config.eviction.unwrap();
        // The origin makes a fresh allocation per object, as a network read would.
        let origin = tower::service_fn(|req: Request<ProxyBody>| async move {
            let seed = req.uri().path().bytes().last().unwrap_or(0);
            Ok::<_, Infallible>(
                Response::builder()
                    .header("cache-control", "max-age=600")
                    .body(Full::new(Bytes::from(vec![seed; OBJECT_SIZE])))
                    .unwrap(),
            )
        });
        let service = CacheLayer::new(config, DefaultHooks).layer(origin);
        let started = std::time::Instant::now();
        let mut max_stored = 0;
        let mut max_rss = baseline;
        let mut done = 0;
        let mut requests = futures_util::stream::iter(0..OBJECTS)
            .map(|i| {
                let service = service.clone();
                async move {
                    let req = Request::get(format!("http://mem.test/obj/{i}"))
                        .body(larder::proxy::body::empty())
                        .unwrap();
                    let resp = service.oneshot(req).await.unwrap();
                    assert_eq!(resp.status(), 200);
                    resp.into_body().collect().await.unwrap().to_bytes().len()
                }
            })
            .buffer_unordered(IN_FLIGHT);
        while let Some(len) = requests.next().await {
            assert_eq!(len, OBJECT_SIZE);
            done += 1;
            max_stored = max_stored.max(storage.stored_bytes());
            // An entry is admitted to the eviction manager after it is stored and the victims
            // are purged after that, so the storage may briefly hold the in-flight objects on
            // top of the limit.
            assert!(
                storage.stored_bytes() <= LIMIT + IN_FLIGHT * (OBJECT_SIZE + 1024),
                "stored {} bytes, limit {LIMIT}",
                storage.stored_bytes()
            );
            if done % 1000 == 0 {
                max_rss = max_rss.max(rss_bytes());
            }
        }
        let elapsed = started.elapsed();
        let rss = rss_bytes();
        max_rss = max_rss.max(rss);
        let (items, evicted) = (eviction.total_items(), eviction.evicted_items());
        println!(
            "memory: {OBJECTS} x {OBJECT_SIZE} B through {LIMIT} B in {elapsed:?}; baseline RSS \
             {baseline}, final {rss}, peak {max_rss} (+{} MiB); stored max {max_stored}, now {} \
             in {} entries; eviction manager: {items} items {} B, evicted {evicted} items {} B",
            (max_rss - baseline) >> 20,
            storage.stored_bytes(),
            storage.len(),
            eviction.total_size(),
            eviction.evicted_size(),
        );
        // Every object was stored once: it is either still held or was evicted.
        assert_eq!(items + evicted, OBJECTS, "eviction counters add up");
        assert_eq!(
            storage.len(),
            items,
            "the storage holds what the manager tracks"
        );
        assert_eq!(storage.stored_bytes(), eviction.total_size());
        assert!(eviction.total_size() <= LIMIT);
        assert!(
            storage.stored_bytes() <= LIMIT,
            "at rest the storage is within its limit"
        );
        assert!(evicted > 0, "the cache had to evict");
        let bound = LIMIT * 13 / 10 + FIXED_OVERHEAD;
        assert!(
            max_rss - baseline <= bound,
            "RSS grew by {} bytes, bound {bound}",
            max_rss - baseline
        );
    });
}
