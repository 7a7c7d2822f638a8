//! The `larder` binary with `--storage disk:<dir>` (and `memory+disk:`): the cache survives a
//! graceful restart and `kill -9`, never serves a corrupt or truncated body as complete, rides
//! out a full disk, streams objects far larger than its memory, and answers at once on a start
//! over many stored objects.
//!
//! Sizes scale with environment variables so `cargo xtask disk-soak` runs the long forms:
//! `LARDER_DISK_KILL_ROUNDS`, `LARDER_DISK_BIG_BYTES`, `LARDER_DISK_STARTUP_OBJECTS`.

mod content;
mod corrupt;
mod crash;
mod enospc;
mod large;
mod restart;
mod startup;

use std::path::Path;
use std::time::Duration;

use larder_testkit::{HttpClient, LarderProcess, Origin, free_port, respond, sample};

use content::{Content, Read};

/// A number from the environment variable `name`, else `default`.
pub(crate) fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// An origin whose every path `/<speed>/<name>/<size>` answers `size` bytes of the path's
/// [`Content`], cacheable for an hour, with `Content-Length`; `slow` paths send a 64 KiB block
/// every 20 ms so a kill lands mid-body, `paced` ones pause 1 ms a MiB so a second reader joins
/// a fill in progress. A path without a size answers 1 KiB.
pub(crate) async fn content_origin() -> Origin {
    Origin::start(|parts, _| async move {
        let path = parts.uri.path().to_owned();
        let mut segs = path.trim_start_matches('/').split('/');
        let speed = segs.next().unwrap_or("");
        let size: u64 = path
            .rsplit('/')
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1024);
        let (delay, every) = match speed {
            "slow" => (Duration::from_millis(20), 1),
            "paced" => (Duration::from_millis(1), 16),
            _ => (Duration::ZERO, 1),
        };
        let mut resp = respond(200, &[("cache-control", "public, max-age=3600")], "");
        resp.headers_mut()
            .insert("content-length", size.to_string().parse().unwrap());
        *resp.body_mut() = Content::for_path(&path).body(size, delay, every);
        resp
    })
    .await
}

/// One `larder` process on a cache directory, with its own listener and admin ports.
pub(crate) struct Node {
    pub(crate) listen: String,
    pub(crate) admin: String,
    pub(crate) process: LarderProcess,
}

impl Node {
    /// Starts the binary in front of `origin` with `--storage <storage>` and `extra` flags.
    pub(crate) fn start(origin: &Origin, storage: &str, extra: &[&str]) -> Self {
        let mut args = vec!["--storage", storage];
        args.extend_from_slice(extra);
        Self::spawn(origin, &args)
    }

    /// Starts the binary in front of `origin` with `args` (after its upstream and listeners).
    pub(crate) fn spawn(origin: &Origin, args: &[&str]) -> Self {
        let listen = format!("127.0.0.1:{}", free_port());
        let admin = format!("127.0.0.1:{}", free_port());
        let upstream = origin.uri();
        let mut all = vec![
            "--upstream",
            &upstream,
            "--listen",
            &listen,
            "--admin",
            &admin,
        ];
        all.extend_from_slice(args);
        let process = LarderProcess::start(env!("CARGO_BIN_EXE_larder"), &all);
        Node {
            listen,
            admin,
            process,
        }
    }

    /// The proxy's URL for `path`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.listen)
    }

    /// GETs `path` through `client`, checking the body against the origin's on the fly.
    pub(crate) async fn read(&self, client: &HttpClient, path: &str) -> Read {
        content::read(client, &self.url(path), &[], &Content::for_path(path), 0).await
    }

    /// `/metrics` as text.
    pub(crate) async fn metrics(&self) -> String {
        larder_testkit::get(&format!("http://{}/metrics", self.admin))
            .await
            .text()
    }

    /// The sample `name` from `/metrics`.
    ///
    /// # Panics
    ///
    /// When it is missing; the message shows the whole text.
    pub(crate) async fn metric(&self, name: &str) -> u64 {
        let text = self.metrics().await;
        sample(&text, name).unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
    }

    /// Waits up to `within` until the sample `name` is at least `value`; returns its last value.
    pub(crate) async fn wait_metric(&self, name: &str, value: u64, within: Duration) -> u64 {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let got = sample(&self.metrics().await, name).unwrap_or(0);
            if got >= value || tokio::time::Instant::now() >= deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the process gracefully (SIGTERM), which saves the disk's eviction state.
    pub(crate) fn stop(mut self) {
        let status = self.process.terminate(Duration::from_secs(15));
        let log = self.process.log();
        assert!(status.success(), "exit {status}: {log:?}");
        assert!(
            log.iter().any(|l| l.contains("disk cache state saved")),
            "a graceful stop saves the disk's eviction state: {log:?}"
        );
    }
}

/// The `disk:<dir>` storage argument.
pub(crate) fn disk(dir: &Path) -> String {
    format!("disk:{}", dir.display())
}

/// The regular files under `dir`, recursively, with their sizes, sorted by path.
pub(crate) fn files(dir: &Path) -> Vec<(std::path::PathBuf, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_dir() {
                stack.push(e.path());
            } else if meta.is_file() {
                out.push((e.path(), meta.len()));
            }
        }
    }
    out.sort();
    out
}
