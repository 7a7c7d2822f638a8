//! Integration tests of the `larder` binary: a real origin, the binary started as a process,
//! real HTTP on 127.0.0.1; restarts on a disk cache; and fleets of binaries sharing a throwaway
//! `redis-server`.

// A failed unwrap in a test helper is a failed test, which is what it should be.
#![allow(clippy::unwrap_used)]

mod binary;
mod disk;
mod redis_fleet;
mod sites;
mod tiered_fleet;
mod tls;
