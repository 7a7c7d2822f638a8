//! A graceful restart keeps the cache: the same requests are hits, byte for byte, and the
//! origin sees no new fetch.

use std::time::Duration;

use super::{Node, content_origin, disk};

/// Objects of 1 KiB, 100 KiB and 3 MiB.
const PATHS: &[&str] = &[
    "/fast/a/1024",
    "/fast/b/1024",
    "/fast/c/102400",
    "/fast/d/102400",
    "/fast/e/3145728",
    "/fast/f/3145728",
];

fn size(path: &str) -> u64 {
    path.rsplit('/').next().unwrap().parse().unwrap()
}

/// Fills every path (a miss each), waits until the disk holds them, stops gracefully.
async fn fill(node: Node) {
    let client = larder_testkit::client();
    for path in PATHS {
        let got = node.read(&client, path).await;
        assert!(got.complete(size(path)), "{path}: {got:?}");
        assert!(!got.hit(), "{path} was not stored before: {got:?}");
    }
    let entries = node
        .wait_metric(
            "larder_disk_entries",
            PATHS.len() as u64,
            Duration::from_secs(5),
        )
        .await;
    assert_eq!(entries, PATHS.len() as u64, "{}", node.metrics().await);
    node.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_cache_survives_a_graceful_restart() {
    let dir = tempfile::tempdir().unwrap();
    let origin = content_origin().await;
    fill(Node::start(
        &origin,
        &disk(dir.path()),
        &["--disk-size", "64MiB"],
    ))
    .await;
    assert_eq!(origin.hits(), PATHS.len());

    let node = Node::start(&origin, &disk(dir.path()), &["--disk-size", "64MiB"]);
    let client = larder_testkit::client();
    for path in PATHS {
        let got = node.read(&client, path).await;
        assert!(got.complete(size(path)), "{path}: {got:?}");
        assert!(got.hit(), "{path} after restart: {got:?}");
        assert_eq!(got.content_length(), Some(size(path)), "{path}");
    }
    assert_eq!(origin.hits(), PATHS.len(), "no new fetch after restart");
    assert_eq!(node.metric("larder_disk_entries").await, PATHS.len() as u64);
    let bytes = node.metric("larder_disk_bytes").await;
    let bodies: u64 = PATHS.iter().map(|p| size(p)).sum();
    assert!(
        bytes >= bodies,
        "larder_disk_bytes {bytes} < bodies {bodies}"
    );
    assert_eq!(node.metric("larder_disk_corrupt_total").await, 0);
    node.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_and_disk_restart_cold_in_memory_warm_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let origin = content_origin().await;
    let storage = format!("memory+disk:{}", dir.path().display());
    // Memory of 2 MiB: the 3 MiB objects go to the disk alone.
    let flags = ["--disk-size", "67108864", "--cache-size", "2097152"];
    fill(Node::start(&origin, &storage, &flags)).await;
    assert_eq!(origin.hits(), PATHS.len());

    let node = Node::start(&origin, &storage, &flags);
    let client = larder_testkit::client();
    // The memory tier is cold: the first round is served from disk (and what fits memory is
    // promoted), the second from memory but for the large objects; all are hits and none
    // reaches the origin.
    for round in 0..2 {
        for path in PATHS {
            let got = node.read(&client, path).await;
            assert!(got.complete(size(path)), "round {round} {path}: {got:?}");
            assert!(got.hit(), "round {round} {path}: {got:?}");
        }
    }
    assert_eq!(origin.hits(), PATHS.len(), "no new fetch after restart");
    let n = PATHS.len() as u64;
    let large = PATHS.iter().filter(|p| size(p) > 2 << 20).count() as u64;
    assert_eq!(large, 2);
    for (name, want) in [
        ("larder_tiered_tier_hits_total{tier=\"disk\"}", n + large),
        (
            "larder_tiered_tier_promotions_total{tier=\"memory\"}",
            n - large,
        ),
        ("larder_tiered_tier_hits_total{tier=\"memory\"}", n - large),
        ("larder_disk_entries", n),
    ] {
        assert_eq!(node.metric(name).await, want, "{name}");
    }
    node.stop();
}

/// The same from the configuration file: `storage = "disk:…"`, `disk_size` with a unit and
/// `disk_sync = "always"` (every entry flushed before it is visible).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_cache_from_the_config_file_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let config = dir.path().join("larder.toml");
    std::fs::write(
        &config,
        format!(
            "[cache]\nstorage = \"disk:{}\"\ndisk_size = \"64MiB\"\ndisk_sync = \"always\"\n",
            cache.display()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let origin = content_origin().await;
    fill(Node::spawn(&origin, &["--config", config])).await;
    let node = Node::spawn(&origin, &["--config", config]);
    let client = larder_testkit::client();
    for path in PATHS {
        let got = node.read(&client, path).await;
        assert!(got.complete(size(path)) && got.hit(), "{path}: {got:?}");
    }
    assert_eq!(origin.hits(), PATHS.len(), "no new fetch after restart");
    assert_eq!(
        node.metric("larder_disk_max_bytes").await,
        64 << 20,
        "disk_size from the file"
    );
    node.stop();
}
