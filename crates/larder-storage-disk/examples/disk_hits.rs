//! Measures the disk storage in-process: hits per second (page cache warm) at 1 KiB, 64 KiB
//! and 1 MiB, and the start-up scan time of 100 000 small entries.
//!
//! `cargo run --release -p larder-storage-disk --example disk_hits [dir]` (a temporary
//! directory under the system's by default).

// A measuring tool: a failed unwrap is a failed run, and rates need no exact integers.
#![allow(clippy::unwrap_used, clippy::cast_precision_loss)]

use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::StatusCode;
use larder_storage::{CacheKey, CacheMeta, ResponseHeader, Storage};
use larder_storage_disk::{DiskConfig, DiskStorage};
use tracing::Span;

fn meta() -> CacheMeta {
    let now = SystemTime::now();
    CacheMeta::new(
        now + Duration::from_hours(1),
        now,
        0,
        0,
        ResponseHeader::new(StatusCode::OK),
    )
}

async fn put(disk: &'static DiskStorage, key: &CacheKey, size: usize) {
    let mut miss = disk
        .get_miss_handler(key, &meta(), &Span::none())
        .await
        .unwrap();
    miss.write_body(Bytes::from(vec![7u8; size]), true)
        .await
        .unwrap();
    miss.finish().await.unwrap();
}

fn main() {
    let base = std::env::args()
        .nth(1)
        .map_or_else(std::env::temp_dir, Into::into);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        for (label, size) in [
            ("1 KiB", 1 << 10),
            ("64 KiB (inline)", 64 << 10),
            ("64 KiB + 1 (body file)", (64 << 10) + 1),
            ("1 MiB", 1 << 20),
        ] {
            let dir = tempfile::tempdir_in(&base).unwrap();
            let disk: &'static DiskStorage =
                Box::leak(Box::new(DiskStorage::open(DiskConfig::new(dir.path(), 4 << 30)).unwrap()));
            let keys: Vec<CacheKey> = (0..100).map(|i| CacheKey::new("", format!("k{i}"), "")).collect();
            for key in &keys {
                put(disk, key, size).await;
            }
            let span = Span::none();
            let started = Instant::now();
            let mut n = 0u64;
            let mut bytes = 0usize;
            while started.elapsed() < Duration::from_secs(2) {
                for key in &keys {
                    let (_, mut hit) = disk.lookup(key, &span).await.unwrap().unwrap();
                    while let Some(chunk) = hit.read_body().await.unwrap() {
                        bytes += chunk.len();
                    }
                    n += 1;
                }
            }
            let secs = started.elapsed().as_secs_f64();
            assert_eq!(bytes, usize::try_from(n).unwrap() * size);
            println!("hits {label}: {:.0}/s on one thread ({:.0} MB/s)", n as f64 / secs, bytes as f64 / secs / 1e6);
        }

        let dir = tempfile::tempdir_in(&base).unwrap();
        let disk: &'static DiskStorage =
            Box::leak(Box::new(DiskStorage::open(DiskConfig::new(dir.path(), 4 << 30)).unwrap()));
        for i in 0..100_000 {
            put(disk, &CacheKey::new("", format!("s{i}"), ""), 512).await;
        }
        let mut config = DiskConfig::new(dir.path(), 4 << 30);
        config.save_interval = Duration::ZERO;
        let started = Instant::now();
        let again = DiskStorage::open(config).unwrap();
        let opened = started.elapsed();
        assert!(again.wait_loaded(Duration::from_mins(2)));
        println!(
            "start-up of 100 000 entries (no saved state, page cache warm): open {opened:?}, scan done {:?}, {} entries",
            started.elapsed(),
            again.len()
        );
        disk.save_state().unwrap();
        let started = Instant::now();
        let third = DiskStorage::open(DiskConfig::new(dir.path(), 4 << 30)).unwrap();
        assert!(third.wait_loaded(Duration::from_mins(2)));
        println!("start-up of 100 000 entries with saved state: scan done {:?}", started.elapsed());
    });
}
