//! The binary on a disk cache: a graceful restart keeps what was stored.
//!
//! These tests need the disk engine (`larder-storage-disk`); they fail against its API
//! skeleton.

use std::process::Command;
use std::time::Duration;

use larder_testkit::{LarderProcess, Origin, free_port, get, respond, sample};

use crate::binary::spawn;

/// Stops `child` with SIGTERM and waits for a clean exit.
async fn stop_gracefully(mut child: LarderProcess) -> Vec<String> {
    let pid = child.pid().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    for _ in 0..250 {
        if let Some(status) = child.try_wait() {
            assert!(status.success(), "{status}: {:?}", child.log());
            return child.log();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("still running after SIGTERM: {:?}", child.log());
}

/// Starts the binary on `storage` in front of `origin` with an admin listener; returns it
/// with its proxy and admin addresses.
fn start(origin: &Origin, storage: &str) -> (LarderProcess, String, String) {
    let listen = format!("127.0.0.1:{}", free_port());
    let admin = format!("127.0.0.1:{}", free_port());
    let child = spawn(&[
        "--upstream",
        &origin.uri(),
        "--listen",
        &listen,
        "--admin",
        &admin,
        "--storage",
        storage,
        "--disk-size",
        "64MiB",
    ]);
    (child, listen, admin)
}

/// Requests `/page` through `listen`: whether it was a hit, and the body.
async fn fetch(listen: &str) -> (bool, String) {
    let got = get(&format!("http://{listen}/page")).await;
    assert_eq!(got.status, 200);
    (got.ours().hit, got.text())
}

/// Fills `/page` through the binary on the storage `storage_of(cache directory)`, restarts it
/// gracefully and checks that `/page` is a hit the origin never saw again. Returns the second
/// process and its admin address.
async fn restart_keeps_the_cache(
    storage_of: impl Fn(&str) -> String,
) -> (LarderProcess, String, tempfile::TempDir) {
    let origin =
        Origin::start(|_, _| async { respond(200, &[("cache-control", "max-age=600")], "kept") })
            .await;
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let storage = storage_of(cache.to_str().unwrap());

    let (child, listen, _) = start(&origin, &storage);
    assert_eq!(fetch(&listen).await, (false, "kept".to_owned()), "a miss");
    assert_eq!(fetch(&listen).await, (true, "kept".to_owned()), "a hit");
    let log = stop_gracefully(child).await;
    assert!(
        log.iter().any(|l| l.contains("disk cache state saved")),
        "{log:?}"
    );

    let (child, listen, admin) = start(&origin, &storage);
    assert_eq!(
        fetch(&listen).await,
        (true, "kept".to_owned()),
        "a hit after the restart"
    );
    assert_eq!(origin.hits_for("/page"), 1, "the origin saw one fetch");
    (child, admin, dir)
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_cache_survives_a_graceful_restart() {
    restart_keeps_the_cache(|path| format!("disk:{path}")).await;
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_in_front_of_a_disk_is_refilled_from_it_after_a_restart() {
    let (_child, admin, _dir) = restart_keeps_the_cache(|path| format!("memory+disk:{path}")).await;
    // The memory tier starts empty: the hit came from the disk and was promoted.
    let promotions = "larder_tiered_tier_promotions_total{tier=\"memory\"}";
    let mut text = String::new();
    for _ in 0..100 {
        text = get(&format!("http://{admin}/metrics")).await.text();
        if sample(&text, promotions) == Some(1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(sample(&text, promotions), Some(1), "{text}");
    assert_eq!(
        sample(&text, "larder_tiered_tier_hits_total{tier=\"disk\"}"),
        Some(1),
        "{text}"
    );
}
