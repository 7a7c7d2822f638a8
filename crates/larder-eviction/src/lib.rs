//! Eviction core for larder: a sharded weighted LRU and a TinyUFO-backed policy.
