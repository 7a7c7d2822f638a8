//! Integration tests of larder-storage-redis, against a real `redis-server` started on a free
//! port for each test.

// Test code: a failed unwrap or expect is a failed test.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

mod storage;
mod tiered;
