//! Integration tests of larder-storage.

mod contract;
mod fixture;
mod memcache;
