//! Integration tests: a real origin, the real proxy, real HTTP on 127.0.0.1.

// A failed unwrap in a test helper is a failed test, which is what it should be.
#![allow(clippy::unwrap_used)]

mod binary;
mod cache;
mod cookie;
mod harness;
mod hook_errors;
mod hooks;
mod interim;
mod proxy;
mod redis_fleet;
mod target;
mod tiered_fleet;
// The redis-server harness of larder-storage-redis (installs and starts a throwaway server).
#[path = "../../../larder-storage-redis/tests/it/server.rs"]
#[allow(dead_code)]
mod redis_server;
