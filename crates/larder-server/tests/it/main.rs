//! Integration tests of the `larder` binary: a real origin, the binary started as a process,
//! real HTTP on 127.0.0.1; and fleets of binaries sharing a throwaway `redis-server`.

// A failed unwrap in a test helper is a failed test, which is what it should be.
#![allow(clippy::unwrap_used)]

mod binary;
// The origin, client and `/metrics` reader of larder-proxy's integration tests.
#[path = "../../../larder-proxy/tests/it/harness.rs"]
#[allow(dead_code)]
mod harness;
mod redis_fleet;
// The redis-server harness of larder-storage-redis (installs and starts a throwaway server).
#[path = "../../../larder-storage-redis/tests/it/server.rs"]
#[allow(dead_code)]
mod redis_server;
mod tiered_fleet;
