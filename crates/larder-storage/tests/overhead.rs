//! Measures `MemCache`'s memory per entry beyond the body and header bytes, with a counting
//! global allocator (which is why this is a test binary of its own).
//!
//! Run `cargo test -p larder-storage --release --test overhead -- --nocapture` to print the
//! figures.

// A counting allocator has to implement `GlobalAlloc`, an unsafe trait; it only forwards to
// the system allocator and counts. Test code only.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::StatusCode;
use larder_storage::{CacheKey, CacheMeta, MemCache, ResponseHeader, Storage};
use tracing::Span;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

fn size_of_layout(layout: Layout) -> isize {
    isize::try_from(layout.size()).expect("allocation sizes fit in isize")
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so the
// `GlobalAlloc` contract holds exactly as it does for `System`; the counter is only arithmetic.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            LIVE.fetch_add(size_of_layout(layout), Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged; `ptr` came from this allocator with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(size_of_layout(layout), Ordering::Relaxed);
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            LIVE.fetch_add(size_of_layout(layout), Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded unchanged; the caller upholds `realloc`'s contract.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            LIVE.fetch_add(
                isize::try_from(new_size).expect("allocation sizes fit in isize")
                    - size_of_layout(layout),
                Ordering::Relaxed,
            );
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

const BODY: usize = 100;

fn meta() -> (CacheMeta, usize) {
    let now = SystemTime::now();
    let mut header = ResponseHeader::new(StatusCode::OK);
    let fields = [
        ("content-type", "text/html; charset=utf-8"),
        ("cache-control", "public, max-age=3600"),
        ("etag", "\"5d8c72a5edda8\""),
        ("last-modified", "Tue, 15 Nov 1994 12:45:26 GMT"),
        ("content-length", "100"),
    ];
    let mut header_bytes = 0;
    for (name, value) in fields {
        header.append_header(name, value).expect("valid field");
        header_bytes += name.len() + value.len();
    }
    let meta = CacheMeta::new(now + Duration::from_hours(1), now, 60, 300, header);
    (meta, header_bytes)
}

/// Stores `n` entries and returns (bytes per entry after writing, after one read of each).
async fn measure(n: usize) -> (f64, f64) {
    let cache: &'static MemCache = Box::leak(Box::new(MemCache::new()));
    let span = Span::none();
    let (meta, _) = meta();
    let before = live();
    for i in 0..n {
        let key = CacheKey::new("", format!("https://example.com/asset/{i}"), "");
        let mut miss = cache
            .get_miss_handler(&key, &meta, &span)
            .await
            .expect("miss");
        miss.write_body(Bytes::from(vec![b'x'; BODY]), true)
            .await
            .expect("write");
        miss.finish().await.expect("finish");
    }
    let after_write = live();
    for i in 0..n {
        let key = CacheKey::new("", format!("https://example.com/asset/{i}"), "");
        let (_, mut hit) = cache
            .lookup(&key, &span)
            .await
            .expect("lookup")
            .expect("hit");
        assert_eq!(
            hit.read_body().await.expect("read").map(|b| b.len()),
            Some(BODY)
        );
    }
    let after_read = live();
    assert_eq!(cache.len(), n);
    #[allow(clippy::cast_precision_loss)] // the figures are small
    let per = |bytes: isize| bytes as f64 / n as f64;
    (per(after_write - before), per(after_read - before))
}

#[test]
fn memcache_overhead_per_entry_is_small() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let (_, header_bytes) = meta();
    let payload = BODY + header_bytes;
    let mut worst = 0.0f64;
    for n in [1_000, 6_000, 20_000] {
        let (written, read) = rt.block_on(measure(n));
        #[allow(clippy::cast_precision_loss)]
        let payload = payload as f64;
        let (ow, or) = (written - payload, read - payload);
        println!(
            "MemCache, {n} entries of {BODY} B body + {header_bytes} B header fields: \
             {ow:.1} B overhead per entry after write, {or:.1} B after one read of each"
        );
        worst = worst.max(ow).max(or);
    }
    // The goal is 200 B; the bound is generous so allocator or hash-map growth details do not
    // make the test flaky.
    assert!(worst < 400.0, "overhead per entry {worst:.1} B");
    assert!(worst > 0.0, "the counter saw the entries");
}
