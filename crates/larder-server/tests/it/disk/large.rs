//! An object far larger than the proxy's memory through `--storage disk:`: streamed to two
//! clients while it fills, then served whole and by range from disk, with the process's peak
//! resident memory bounded.

use std::time::{Duration, Instant};

use super::content::{self, Content};
use super::{Node, content_origin, disk, env_u64};

/// The object's size: 256 MiB in CI, `LARDER_DISK_BIG_BYTES` (1 GiB in `cargo xtask
/// disk-soak`) otherwise.
const DEFAULT_BYTES: u64 = 256 << 20;

/// The bound on the proxy's peak RSS, whatever the object's size: the body is never held
/// whole, only the chunks in flight between the origin, the disk and the clients.
const PEAK_RSS_BOUND: u64 = 150 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_object_streams_through_disk_in_bounded_memory() {
    let size = env_u64("LARDER_DISK_BIG_BYTES", DEFAULT_BYTES);
    let dir = tempfile::tempdir().unwrap();
    let origin = content_origin().await;
    let disk_size = format!("{}", size * 2 + (64 << 20));
    // No object size limit: unset, the disk keeps objects up to an eighth of its size. The
    // disk evicts by LRU (its default), which keeps an object this large.
    let node = Node::start(
        &origin,
        &disk(dir.path()),
        &["--disk-size", &disk_size, "--max-object-size", "0"],
    );
    let path = format!("/paced/big/{size}");
    let url = node.url(&path);

    let started = Instant::now();
    let first = {
        let url = url.clone();
        let path = path.clone();
        tokio::spawn(async move {
            let c = Content::for_path(&path);
            let got = content::read(&larder_testkit::client(), &url, &[], &c, 0).await;
            (got, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let joined = started.elapsed();
    let c = Content::for_path(&path);
    let second = content::read(&larder_testkit::client(), &url, &[], &c, 0).await;
    let second_took = started.elapsed();
    let (first, first_took) = first.await.unwrap();
    assert!(first.complete(size), "first reader: {first:?}");
    assert!(second.complete(size), "second reader: {second:?}");
    assert!(
        joined < first_took,
        "the second reader joined after the fill ended ({joined:?} >= {first_took:?})"
    );
    assert_eq!(
        origin.hits(),
        1,
        "the second reader did not join the fill: {:?}",
        second.headers
    );
    let secs = first_took.as_secs_f64();
    eprintln!(
        "large object: {size} bytes filled in {secs:.1}s ({:.0} MiB/s), second reader done \
         at {:.1}s",
        f64::from(u32::try_from(size >> 20).unwrap()) / secs,
        second_took.as_secs_f64()
    );
    let stored = node
        .wait_metric("larder_disk_entries", 1, Duration::from_secs(10))
        .await;
    assert_eq!(
        stored,
        1,
        "not stored: {}\n{:#?}",
        node.metrics().await,
        node.process.log()
    );

    hit_and_range(&node, &url, size).await;
    assert_eq!(origin.hits(), 1);
    node.stop();
}

/// A hit of the whole object at `url`, then a 1 MiB range from its middle (fast: the engine
/// seeks); checks both and the process's peak RSS.
async fn hit_and_range(node: &Node, url: &str, size: u64) {
    let c = Content::for_path(&url[url.find("/paced").unwrap()..]);
    let t = Instant::now();
    let hit = content::read(&larder_testkit::client(), url, &[], &c, 0).await;
    let hit_took = t.elapsed();
    assert!(hit.complete(size) && hit.hit(), "{hit:?}");

    let from = size / 2 + 12_345;
    let len = 1u64 << 20;
    let range = format!("bytes={from}-{}", from + len - 1);
    let t = Instant::now();
    let part = content::read(
        &larder_testkit::client(),
        url,
        &[("range", &range)],
        &c,
        from,
    )
    .await;
    let range_took = t.elapsed();
    assert_eq!(part.status, 206, "{part:?}");
    assert!(part.complete(len), "{part:?}");
    assert_eq!(
        part.headers
            .get("content-range")
            .and_then(|v| v.to_str().ok()),
        Some(format!("bytes {from}-{}/{size}", from + len - 1).as_str())
    );
    let peak = node.process.peak_rss_bytes();
    eprintln!(
        "large object: full hit {:.1}s, 1 MiB range from the middle {:.0} ms, peak RSS {} MiB",
        hit_took.as_secs_f64(),
        range_took.as_secs_f64() * 1e3,
        peak >> 20
    );
    // A range read seeks: it costs a small fraction of reading the whole object.
    assert!(
        range_took < Duration::from_secs(1)
            && range_took * 4 < hit_took.max(Duration::from_secs(1)),
        "range {range_took:?} vs whole {hit_took:?}"
    );
    assert!(
        peak < PEAK_RSS_BOUND,
        "peak RSS {} MiB over the {} MiB bound",
        peak >> 20,
        PEAK_RSS_BOUND >> 20
    );
}
