//! Integration tests of larder-storage.

mod contract;
mod eviction;
mod fixture;
mod memcache;
mod model;
