//! A start over many stored objects: the proxy answers at once, serves its first hit within
//! 2 s of listening, and reports when the index has loaded (`larder_disk_loaded`).

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use larder_storage::{CacheMeta, ResponseHeader, Storage};
use larder_storage_disk::{DiskConfig, DiskStorage, Eviction};

use super::{Node, content_origin, disk, env_u64};

/// Objects stored before the start: 10 000 in CI, `LARDER_DISK_STARTUP_OBJECTS` (100 000 in
/// `cargo xtask disk-soak`) otherwise.
const DEFAULT_OBJECTS: u64 = 10_000;

/// How soon after the listener is up the first hit must be served.
const FIRST_HIT_WITHIN: Duration = Duration::from_secs(2);

/// Threads writing the objects at once: the engine's calls are blocking file system calls.
const WRITERS: u64 = 4;

/// The disk's bound: room for every object.
const DISK_BYTES: u64 = 2 << 30;

const FLAGS: &[&str] = &["--disk-size", "2147483648"];

/// Object `i`'s body size: 200 bytes to 2 KB.
fn size(i: u64) -> u64 {
    200 + i % 1800
}

fn path(i: u64) -> String {
    format!("/fast/s-{i}/{}", size(i))
}

/// Writes objects `0..n` into a cache directory in process, with the engine the binary uses,
/// under the key the proxy computes for the same request and with the meta its response filter
/// builds for the origin's answer (fresh for an hour): far faster than filling through the
/// binary, and the start then proves the binary finds them.
fn prefill(dir: &Path, n: u64) {
    let mut config = DiskConfig::new(dir, DISK_BYTES);
    config.eviction = Eviction::Lru;
    // No background saver: its thread would hold the test's runtime open at the end.
    config.save_interval = Duration::ZERO;
    let disk: &'static DiskStorage = Box::leak(Box::new(DiskStorage::open(config).unwrap()));
    let now = SystemTime::now();
    std::thread::scope(|scope| {
        for w in 0..WRITERS {
            scope.spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    for i in (w..n).step_by(usize::try_from(WRITERS).unwrap()) {
                        write_entry(disk, i, now).await;
                    }
                });
            });
        }
    });
    assert_eq!(disk.len() as u64, n);
    disk.save_state().unwrap();
}

/// Writes object `i` as the proxy would store the origin's answer.
async fn write_entry(disk: &'static DiskStorage, i: u64, now: SystemTime) {
    let p = path(i);
    let req = http::Request::get(p.as_str())
        .header("host", super::content::HOST)
        .body(())
        .unwrap();
    let key = larder_proxy::default_cache_key(&req.into_parts().0).unwrap();
    let len = usize::try_from(size(i)).unwrap();
    let mut header = ResponseHeader::new(http::StatusCode::OK);
    header
        .insert_header("cache-control", "public, max-age=3600")
        .unwrap();
    header.insert_header("content-length", len).unwrap();
    let meta = CacheMeta::new(now + Duration::from_hours(1), now, 0, 0, header);
    let span = tracing::Span::none();
    let mut miss = disk.get_miss_handler(&key, &meta, &span).await.unwrap();
    let body = super::Content::for_path(&p).range(0, len);
    miss.write_body(Bytes::from(body), true).await.unwrap();
    miss.finish().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_over_many_objects_serves_hits_at_once() {
    let n = env_u64("LARDER_DISK_STARTUP_OBJECTS", DEFAULT_OBJECTS);
    let dir = tempfile::tempdir().unwrap();
    let origin = content_origin().await;
    let t = Instant::now();
    prefill(dir.path(), n);
    eprintln!(
        "start-up: {n} objects written in process in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    let fetched = origin.hits();

    let spawned = Instant::now();
    let node = Node::start(&origin, &disk(dir.path()), FLAGS);
    let listening = spawned.elapsed();
    // The first request, at once: answered (hit or miss, correct) rather than held until the
    // index is loaded.
    let loaded_before = node.metric("larder_disk_loaded").await;
    let client = larder_testkit::client();
    let t = Instant::now();
    let early = tokio::time::timeout(FIRST_HIT_WITHIN, node.read(&client, &path(n - 1)))
        .await
        .expect("the first request after the start is answered within 2 s");
    let early_took = t.elapsed();
    assert!(early.complete(size(n - 1)), "{early:?}");

    // Then distinct stored objects until one is a hit.
    let mut first_hit = None;
    for i in 0..n {
        let got = node.read(&client, &path(i)).await;
        assert!(got.complete(size(i)), "{got:?}");
        if got.hit() {
            first_hit = Some(spawned.elapsed());
            break;
        }
        if spawned.elapsed() > listening + FIRST_HIT_WITHIN * 5 {
            break;
        }
    }
    let first_hit = first_hit.expect("no stored object was a hit");
    let mut loaded = None;
    let deadline = Instant::now() + Duration::from_mins(2);
    while Instant::now() < deadline {
        if node.metric("larder_disk_loaded").await == 1 {
            loaded = Some(spawned.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let loaded = loaded.expect("larder_disk_loaded never became 1");
    let refetched = origin.hits() - fetched;
    eprintln!(
        "start-up over {n} objects: listening {:.0} ms after spawn; first request answered \
         in {:.0} ms ({}, index loaded before it: {}); first hit {:.0} ms after spawn; index \
         loaded {:.0} ms after spawn ({:.0} ms per 100k objects); {refetched} refetched",
        listening.as_secs_f64() * 1e3,
        early_took.as_secs_f64() * 1e3,
        if early.hit() { "a hit" } else { "a miss" },
        loaded_before == 1,
        first_hit.as_secs_f64() * 1e3,
        loaded.as_secs_f64() * 1e3,
        loaded.as_secs_f64() * 1e3 * 100_000.0 / f64::from(u32::try_from(n).unwrap()),
    );
    assert!(
        first_hit < listening + FIRST_HIT_WITHIN,
        "first hit {first_hit:?} after spawn, listening at {listening:?}"
    );
    assert_eq!(node.metric("larder_disk_entries").await, n);
    node.stop();
}
