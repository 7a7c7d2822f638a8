//! Integration tests of larder-storage.

mod eviction;
mod fixture;
mod memcache;
mod model;
mod tiered;
