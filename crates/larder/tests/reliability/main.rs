//! Reliability and security scenarios: a controllable origin and the caching proxy, both served
//! by hyper on 127.0.0.1, driven by herds, faults, memory pressure, many connections and hostile
//! requests. Each scenario prints the figure docs/reliability.md records.

// A failed unwrap in a test helper is a failed test, which is what it should be.
#![allow(clippy::unwrap_used)]

mod faults;
mod framing;
mod herd;
mod load;
mod memory;
mod poisoning;
mod security;
mod slow_clients;

use std::time::Duration;

use larder::proxy::CacheConfig;
use larder::proxy::config::EvictionPolicy;

/// Heavy scenarios (memory, load) take this lock so that, when the whole binary runs in one
/// process (`cargo test`), they do not measure each other. Under nextest each test is its own
/// process anyway.
static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The suite's cache: 8 MiB in memory under LRU, with `lock` as both lock timeouts.
fn config(lock: Duration) -> CacheConfig {
    larder_testkit::memory_config(8 << 20, EvictionPolicy::Lru, lock)
}
