//! Cache keys, cache metadata, the Storage traits, MemCache and eviction managers.
