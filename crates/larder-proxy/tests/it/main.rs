//! Integration tests: a real origin, the real proxy, real HTTP on 127.0.0.1.

// A failed unwrap in a test helper is a failed test, which is what it should be.
#![allow(clippy::unwrap_used)]

mod binary;
mod cache;
mod cookie;
mod harness;
mod interim;
mod proxy;
mod redis_fleet;
mod target;
mod tiered_fleet;
/// The test kit's throwaway `redis-server`, under the path the fleet tests import.
mod redis_server {
    pub(crate) use larder_testkit::RedisServer;
}
