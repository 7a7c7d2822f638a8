use std::path::{Path, PathBuf};
use std::process::Command;

use larder_storage::Error;

use super::*;

/// Writes `len` bytes under `name`; the error of the first failing call, if any.
async fn try_put(disk: &'static DiskStorage, name: &str, len: usize) -> Result<(), Error> {
    let span = Span::none();
    let mut miss = disk
        .get_miss_handler(&key(name), &contract::meta(name), &span)
        .await?;
    for piece in body(len, 1).chunks(32 << 10) {
        miss.write_body(bytes(piece), false).await?;
    }
    miss.write_body(Bytes::new(), true).await?;
    miss.finish().await.map(|_| ())
}

/// Fills `disk` with 200 KiB entries until a write fails; checks what a full device must do:
/// the failure is an outage (a pass-through), counted; earlier entries are still served whole;
/// the failed one is not visible. Returns how many were stored.
async fn fill_until_full(disk: &'static DiskStorage) -> usize {
    let mut stored = 0;
    let err = loop {
        match try_put(disk, &format!("f{stored}"), 200 << 10).await {
            Ok(()) => stored += 1,
            Err(e) => break e,
        }
        assert!(stored < 1000, "the device never filled");
    };
    assert!(err.is_unavailable(), "a full device is an outage: {err:?}");
    assert!(disk.stats().io_errors >= 1);
    assert!(
        get(disk, &format!("f{stored}")).await.is_none(),
        "the failed write is not visible"
    );
    for i in 0..stored {
        assert_eq!(
            get(disk, &format!("f{i}")).await.unwrap().unwrap(),
            body(200 << 10, 1)
        );
    }
    stored
}

#[tokio::test]
async fn an_injected_enospc_is_an_outage_never_a_truncated_entry() {
    let dir = tempfile::tempdir().unwrap();
    let config = DiskConfig::new(dir.path(), 64 << 20);
    let faults = config.faults.clone();
    faults.set_write_budget(1 << 20);
    let disk = open_with(config);
    assert!(disk.wait_loaded(Duration::from_secs(10)));
    let stored = fill_until_full(disk).await;
    assert!((1..=5).contains(&stored), "{stored}");
    // A reader of a write that fails is told so, never given a clean short body.
    let span = Span::none();
    faults.set_write_budget(0);
    let mut miss = disk
        .get_miss_handler(&key("r"), &contract::meta("r"), &span)
        .await
        .unwrap();
    let (_, mut reader) = disk.lookup(&key("r"), &span).await.unwrap().unwrap();
    assert!(miss.write_body(bytes(&body(1000, 0)), false).await.is_err());
    drop(miss);
    assert!(contract::read_all(&mut reader).await.is_err());
    // Space comes back: writes succeed again.
    faults.set_write_budget(u64::MAX);
    try_put(disk, "after", 1000).await.unwrap();
    assert!(get(disk, "after").await.is_some());
}

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Result<Self, String> {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(Tmpfs(dir.to_owned()))
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test]
async fn a_full_tmpfs_is_an_outage_never_a_truncated_entry() {
    let dir = tempfile::tempdir().unwrap();
    match Tmpfs::mount(dir.path(), "1m") {
        Ok(mounted) => {
            let disk = open(&dir.path().join("cache"), 64 << 20);
            let stored = fill_until_full(disk).await;
            assert!(
                (1..=5).contains(&stored),
                "1 MiB holds a few 200 KiB entries: {stored}"
            );
            drop(mounted);
        }
        Err(why) => {
            eprintln!("cannot mount a tmpfs ({why}); testing with an injected ENOSPC instead");
            let config = DiskConfig::new(dir.path(), 64 << 20);
            config.faults.set_write_budget(1 << 20);
            let disk = open_with(config);
            assert!(fill_until_full(disk).await >= 1);
        }
    }
}
