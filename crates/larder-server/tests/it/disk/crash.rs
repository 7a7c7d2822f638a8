//! `kill -9` in a loop during concurrent fills: after each restart every object is served
//! whole and exactly as the origin sent it, hit or miss, and what was complete before the
//! crash is still a hit.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::{Node, content_origin, disk, env_u64};

/// Body sizes, from a few bytes to a few MiB.
const SIZES: &[u64] = &[10, 1000, 20_000, 70_000, 300_000, 1_500_000, 3_000_000];

/// Concurrent clients during a fill.
const CLIENTS: usize = 8;

fn size(path: &str) -> u64 {
    path.rsplit('/').next().unwrap().parse().unwrap()
}

/// The paths a round fills: new ones, fast and slow, and the same shared ones every round
/// (some twice, so two clients fill one object).
fn round_paths(round: u64) -> Vec<String> {
    let mut out = Vec::new();
    for i in 0..24u64 {
        let speed = if i % 2 == 0 { "slow" } else { "fast" };
        let size = SIZES[usize::try_from((i + round) % SIZES.len() as u64).unwrap()];
        out.push(format!("/{speed}/r{round}-{i}/{size}"));
    }
    for i in 0..6u64 {
        let speed = if i % 2 == 0 { "slow" } else { "fast" };
        let size = SIZES[usize::try_from(i).unwrap()];
        let path = format!("/{speed}/shared-{i}/{size}");
        out.push(path.clone());
        out.push(path);
    }
    out
}

/// A small generator for the kill moment; its seed is printed so a failure can be replayed
/// with `LARDER_DISK_KILL_SEED`.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n
    }
}

/// Requests every path in `paths` once, through `CLIENTS` concurrent clients; every answer
/// must be complete and exactly the origin's body. Returns the number of hits.
async fn verify_all(node: &Node, paths: &[String], round: u64) -> usize {
    let node = Arc::new((node.url(""), paths.to_vec()));
    let next = Arc::new(AtomicUsize::new(0));
    let hits = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (node, next, hits) = (Arc::clone(&node), Arc::clone(&next), Arc::clone(&hits));
        tasks.push(tokio::spawn(async move {
            let client = larder_testkit::client();
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(path) = node.1.get(i) else { return };
                let url = format!("{}{path}", node.0);
                let content = super::Content::for_path(path);
                let got = super::content::read(&client, &url, &[], &content, 0).await;
                let want = size(path);
                assert_eq!(got.status, 200, "round {round} {path}: {got:?}");
                assert!(got.complete(want), "round {round} {path}: {got:?}");
                assert_eq!(got.content_length(), Some(want), "round {round} {path}");
                if got.hit() {
                    hits.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    hits.load(Ordering::SeqCst)
}

/// Fills `paths` concurrently until `kill_after`, then SIGKILLs the process. Every answer that
/// came whole before the kill must be correct; bodies cut by the kill must end in an error
/// (never a short body that looks complete). Returns how many completed.
async fn fill_and_kill(mut node: Node, paths: Vec<String>, kill_after: Duration) -> usize {
    let base = node.url("");
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let bad = Arc::new(Mutex::new(Vec::new()));
    let paths = Arc::new(paths);
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (base, next, done, bad, paths) = (
            base.clone(),
            Arc::clone(&next),
            Arc::clone(&done),
            Arc::clone(&bad),
            Arc::clone(&paths),
        );
        tasks.push(tokio::spawn(async move {
            let client = larder_testkit::client();
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(path) = paths.get(i) else { return };
                let content = super::Content::for_path(path);
                let got =
                    super::content::read(&client, &format!("{base}{path}"), &[], &content, 0).await;
                if got.status == 0 {
                    return; // the process is gone
                }
                let want = size(path);
                if got.error.is_none() {
                    if got.complete(want) && got.content_length() == Some(want) {
                        done.fetch_add(1, Ordering::SeqCst);
                    } else {
                        bad.lock().push(format!("{path}: {got:?}"));
                    }
                } else if !got.intact {
                    bad.lock()
                        .push(format!("{path} (cut): wrong bytes: {got:?}"));
                }
            }
        }));
    }
    tokio::time::sleep(kill_after).await;
    node.process.kill();
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(10), t)
            .await
            .expect("clients end once the process is gone")
            .unwrap();
    }
    let bad = bad.lock();
    assert!(bad.is_empty(), "wrong answers before the kill: {bad:#?}");
    done.load(Ordering::SeqCst)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_fills_never_serves_a_wrong_body() {
    let rounds = env_u64("LARDER_DISK_KILL_ROUNDS", 4);
    let seed = env_u64(
        "LARDER_DISK_KILL_SEED",
        u64::from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos(),
        ),
    );
    eprintln!("kill -9 loop: {rounds} rounds, LARDER_DISK_KILL_SEED={seed}");
    let mut rng = Rng(seed);
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let storage = disk(dir.path());
    let origin = content_origin().await;
    let mut known: Vec<String> = Vec::new();
    let mut hits_after_crash = 0;
    for round in 0..=rounds {
        // Room for every object of the long form: hits after a crash measure what survived,
        // not what eviction kept.
        let node = Node::start(&origin, &storage, &["--disk-size", "4294967296"]);
        let before = origin.hits();
        let hits = verify_all(&node, &known, round).await;
        let corrupt = larder_testkit::sample(&node.metrics().await, "larder_disk_corrupt_total");
        eprintln!(
            "round {round}: after restart {hits} of {} hits, {} refetched, \
             larder_disk_corrupt_total {corrupt:?}",
            known.len(),
            origin.hits() - before,
        );
        assert!(
            node.process
                .warnings()
                .iter()
                .all(|w| !w.contains("panicked"))
        );
        if round > 0 {
            hits_after_crash += hits;
        }
        if round == rounds {
            node.stop();
            break;
        }
        let mut paths = round_paths(round);
        let kill_after = Duration::from_millis(50 + rng.below(700));
        let done = fill_and_kill(node, paths.clone(), kill_after).await;
        eprintln!(
            "round {round}: killed after {kill_after:?}, {done} of {} answers complete",
            paths.len()
        );
        paths.dedup();
        for p in paths {
            if !known.contains(&p) {
                known.push(p);
            }
        }
    }
    assert!(
        hits_after_crash > 0,
        "no object survived any kill -9 as a hit"
    );
    eprintln!(
        "kill -9 loop: {rounds} rounds, {hits_after_crash} hits after crashes, {:.1}s",
        started.elapsed().as_secs_f64()
    );
}
