//! `mem_overhead`: heap bytes per entry beyond the payload, measured with a counting allocator.
//!
//! ```text
//! mem_overhead [--entries N]
//! ```
//!
//! Fills each cache with `N` entries (default 100 000) and divides the heap growth, from before
//! the cache was made to after the last insert, by the number of entries held; the payload is
//! subtracted. So the figure includes what a structure allocates up front for its capacity
//! (sketches, shard tables), spread over a full cache.
//!
//! - `MemCache` (larder-storage): 1 KiB bodies under distinct keys with a bare `200` meta; the
//!   payload is the body.
//! - `MemoryCache<u64, u64>` (larder-memory-cache, and pingora-memory-cache beside it): the
//!   payload is the key and the value, 16 bytes.
//!
//! Prints `row<TAB>bytes_per_entry` lines and records them with
//! [`larder_benches::record_metric`] under the suite `memory`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::StatusCode;
use larder_storage::{CacheKey, CacheMeta, MemCache, ResponseHeader, Storage};

/// The system allocator, counting the bytes currently allocated.
struct Counting;

static ALLOCATED: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the counter is only a
// statistic and does not affect the memory handed out.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller upholds `alloc`'s contract, which we pass on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        ALLOCATED.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` was allocated by `System` with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATED.fetch_add(new_size, Ordering::Relaxed);
        ALLOCATED.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: as for `dealloc`, and the caller guarantees `new_size` is valid.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocated() -> usize {
    ALLOCATED.load(Ordering::Relaxed)
}

#[allow(clippy::cast_precision_loss)] // byte counts far below 2^52
fn per_entry(before: usize, after: usize, entries: usize, payload: usize) -> f64 {
    (after.saturating_sub(before) as f64 / entries.max(1) as f64) - payload as f64
}

fn report(row: &str, value: f64) {
    println!("{row}\t{value:.1}");
    larder_benches::record_metric("memory", row, "bytes_per_entry", value);
}

async fn mem_cache(entries: usize) -> Result<f64, Box<dyn std::error::Error>> {
    const BODY: usize = 1024;
    let span = tracing::Span::none();
    let now = SystemTime::now();
    let body = vec![b'x'; BODY];
    let before = allocated();
    let cache: &'static MemCache = Box::leak(Box::new(MemCache::new()));
    for i in 0..entries {
        let key = CacheKey::new("", format!("http://bench.test/{i}"), "");
        let meta = CacheMeta::new(
            now + Duration::from_hours(1),
            now,
            0,
            0,
            ResponseHeader::new(StatusCode::OK),
        );
        let mut miss = cache.get_miss_handler(&key, &meta, &span).await?;
        miss.write_body(Bytes::copy_from_slice(&body), true).await?;
        miss.finish().await?;
    }
    let after = allocated();
    if cache.len() != entries {
        return Err(format!("MemCache holds {} of {entries} entries", cache.len()).into());
    }
    Ok(per_entry(before, after, entries, BODY))
}

fn memory_cache(entries: usize) -> f64 {
    let before = allocated();
    let cache = larder_memory_cache::MemoryCache::<u64, u64>::new(entries);
    for i in 0..entries as u64 {
        cache.put(&i, i, None);
    }
    let after = allocated();
    let held = (0..entries as u64)
        .filter(|i| cache.get(i).0.is_some())
        .count();
    let value = per_entry(before, after, held, 16);
    drop(cache);
    value
}

fn pingora_memory_cache(entries: usize) -> f64 {
    let before = allocated();
    let cache = pingora_memory_cache::MemoryCache::<u64, u64>::new(entries);
    for i in 0..entries as u64 {
        cache.put(&i, i, None);
    }
    let after = allocated();
    let held = (0..entries as u64)
        .filter(|i| cache.get(i).0.is_some())
        .count();
    let value = per_entry(before, after, held, 16);
    drop(cache);
    value
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut entries = 100_000;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--entries" => entries = args.next().ok_or("--entries needs a number")?.parse()?,
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    report("MemCache/larder", runtime.block_on(mem_cache(entries))?);
    report("MemoryCache<u64,u64>/larder", memory_cache(entries));
    report(
        "MemoryCache<u64,u64>/pingora-memory-cache",
        pingora_memory_cache(entries),
    );
    Ok(())
}
