//! Flipped bytes and truncated files in the cache directory: detected, counted, never served
//! as a complete body; the object is fetched again from the origin.

use std::collections::BTreeSet;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Node, content_origin, disk, files};

fn size(path: &str) -> u64 {
    path.rsplit('/').next().unwrap().parse().unwrap()
}

/// Fills `paths` one at a time and returns, for each, the files that appeared in `dir` for it
/// (the engine keeps a file per object: a meta file, and a body file unless the body is kept
/// inline), largest first.
async fn fill_one_by_one(node: &Node, dir: &Path, paths: &[&str]) -> Vec<Vec<(PathBuf, u64)>> {
    let client = larder_testkit::client();
    let mut out = Vec::new();
    for (n, path) in paths.iter().enumerate() {
        let before: BTreeSet<PathBuf> = files(dir).into_iter().map(|(p, _)| p).collect();
        let got = node.read(&client, path).await;
        assert!(got.complete(size(path)), "{path}: {got:?}");
        let entries = node
            .wait_metric("larder_disk_entries", n as u64 + 1, Duration::from_secs(5))
            .await;
        assert_eq!(entries, n as u64 + 1, "{path} not stored");
        let mut new: Vec<(PathBuf, u64)> = files(dir)
            .into_iter()
            .filter(|(p, _)| !before.contains(p))
            .collect();
        assert!(
            !new.is_empty(),
            "no file appeared for {path} (a file per object expected): {:?}",
            files(dir)
        );
        new.sort_by_key(|(_, len)| std::cmp::Reverse(*len));
        out.push(new);
    }
    out
}

/// Flips every bit of the byte at `at` in `file`.
fn flip(file: &Path, at: u64) {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(file)
        .unwrap();
    let mut b = [0u8];
    f.seek(SeekFrom::Start(at)).unwrap();
    f.read_exact(&mut b).unwrap();
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(&[!b[0]]).unwrap();
    f.sync_all().unwrap();
}

/// What a request for a damaged object may get: a complete, correct body (fetched again), or
/// a body cut by an error whose bytes so far are correct; never a complete wrong body.
fn assert_not_wrong(what: &str, got: &super::Read, want: u64) {
    assert_eq!(got.status, 200, "{what}: {got:?}");
    assert!(got.intact, "{what}: wrong bytes served: {got:?}");
    if got.error.is_none() {
        assert_eq!(
            got.len, want,
            "{what}: a short body served as complete: {got:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_files_are_detected_and_refetched() {
    let dir = tempfile::tempdir().unwrap();
    let storage = disk(dir.path());
    let origin = content_origin().await;
    let paths = [
        "/fast/inline/1024",    // 0: flip a byte near the end of its only (largest) file
        "/fast/meta/102400",    // 1: flip a byte in the middle of its smallest file (meta)
        "/fast/middle/3145728", // 2: flip a byte in the middle of its body file
        "/fast/cut/3145728",    // 3: truncate its body file to half
        "/fast/intact/102400",  // 4: untouched
    ];
    let node = Node::start(&origin, &storage, &["--disk-size", "67108864"]);
    let stored = fill_one_by_one(&node, dir.path(), &paths).await;
    node.stop();

    let (inline, len) = &stored[0][0];
    flip(inline, len.saturating_sub(100));
    let (meta, len) = stored[1].last().unwrap();
    flip(meta, len / 2);
    let (body, len) = &stored[2][0];
    assert!(
        *len >= 3_145_728,
        "{body:?} is not the body file: {stored:?}"
    );
    flip(body, len / 2);
    let (body, len) = &stored[3][0];
    std::fs::OpenOptions::new()
        .write(true)
        .open(body)
        .unwrap()
        .set_len(len / 2)
        .unwrap();

    let node = Node::start(&origin, &storage, &["--disk-size", "67108864"]);
    let client = larder_testkit::client();
    for path in &paths[..4] {
        let before = origin.hits_for(path);
        let first = node.read(&client, path).await;
        assert_not_wrong(path, &first, size(path));
        if first.error.is_none() {
            assert!(
                !first.hit(),
                "{path}: the damaged copy was a hit: {first:?}"
            );
        }
        // Whatever the first request got, the damaged copy is gone: the next one is whole.
        let second = node.read(&client, path).await;
        assert!(second.complete(size(path)), "{path} again: {second:?}");
        assert!(
            origin.hits_for(path) > before,
            "{path}: the damaged copy was not refetched"
        );
    }
    let intact = node.read(&client, paths[4]).await;
    assert!(
        intact.complete(size(paths[4])) && intact.hit(),
        "{intact:?}"
    );
    assert_eq!(origin.hits_for(paths[4]), 1);
    let corrupt = node.metric("larder_disk_corrupt_total").await;
    assert!(corrupt > 0, "{}", node.metrics().await);
    eprintln!("corrupt files: larder_disk_corrupt_total {corrupt}");
    node.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_byte_flipped_under_a_running_process_is_not_served() {
    let dir = tempfile::tempdir().unwrap();
    let origin = content_origin().await;
    let path = "/fast/live/3145728";
    let node = Node::start(&origin, &disk(dir.path()), &["--disk-size", "67108864"]);
    let stored = fill_one_by_one(&node, dir.path(), &[path]).await;
    let (body, len) = &stored[0][0];
    assert!(
        *len >= 3_145_728,
        "{body:?} is not the body file: {stored:?}"
    );
    flip(body, len / 2);

    let client = larder_testkit::client();
    let first = node.read(&client, path).await;
    assert_not_wrong("after the flip", &first, size(path));
    let second = node.read(&client, path).await;
    assert!(second.complete(size(path)), "again: {second:?}");
    // Cut or not, the damaged copy was dropped and the object fetched again.
    assert_eq!(origin.hits_for(path), 2, "{first:?} then {second:?}");
    assert!(node.metric("larder_disk_corrupt_total").await > 0);
    node.stop();
}
