//! Integration tests for larder-memory-cache.

mod backend;
mod memory;
mod model;
mod read_through;
