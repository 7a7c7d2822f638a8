//! Integration tests of larder-storage-redis, against a real `redis-server` started on a free
//! port for each test.

// Test code: a failed unwrap or expect is a failed test.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

// The Storage contract checks, written once in larder-storage and run here on Redis.
#[path = "../../../larder-storage/tests/it/contract.rs"]
mod contract;
mod server;
mod storage;
mod tiered;
