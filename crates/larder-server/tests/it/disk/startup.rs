//! A start over many stored objects: the proxy answers at once, serves its first hit within
//! 2 s of listening, and reports when the index has loaded (`larder_disk_loaded`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::{Node, content_origin, disk, env_u64};

/// Objects stored before the start: 10 000 in CI, `LARDER_DISK_STARTUP_OBJECTS` (100 000 in
/// `cargo xtask disk-soak`) otherwise.
const DEFAULT_OBJECTS: u64 = 10_000;

/// How soon after the listener is up the first hit must be served.
const FIRST_HIT_WITHIN: Duration = Duration::from_secs(2);

const FLAGS: &[&str] = &["--disk-size", "2147483648"];

fn path(i: u64) -> String {
    format!("/fast/s-{i}/{}", 200 + i % 1800)
}

/// Fills objects `0..n` through `node` with 16 concurrent clients.
async fn fill(node: &Node, n: u64) {
    let base = node.url("");
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (base, next) = (base.clone(), Arc::clone(&next));
        tasks.push(tokio::spawn(async move {
            let client = larder_testkit::client();
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst) as u64;
                if i >= n {
                    return;
                }
                let p = path(i);
                let c = super::Content::for_path(&p);
                let got = super::content::read(&client, &format!("{base}{p}"), &[], &c, 0).await;
                assert!(got.complete(200 + i % 1800), "{p}: {got:?}");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_over_many_objects_serves_hits_at_once() {
    let n = env_u64("LARDER_DISK_STARTUP_OBJECTS", DEFAULT_OBJECTS);
    let dir = tempfile::tempdir().unwrap();
    let origin = content_origin().await;
    let node = Node::start(&origin, &disk(dir.path()), FLAGS);
    let t = Instant::now();
    fill(&node, n).await;
    let stored = node
        .wait_metric("larder_disk_entries", n, Duration::from_secs(30))
        .await;
    assert_eq!(stored, n);
    eprintln!(
        "start-up: {n} objects filled through the binary in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    node.stop();
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
    assert!(early.complete(200 + (n - 1) % 1800), "{early:?}");

    // Then distinct stored objects until one is a hit.
    let mut first_hit = None;
    for i in 0..n {
        let got = node.read(&client, &path(i)).await;
        assert!(got.complete(200 + i % 1800), "{got:?}");
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
