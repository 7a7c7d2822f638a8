//! What is stored with a response: [`CacheMeta`] and the defaults filters build it with
//! ([`CacheMetaDefaults`]), under pingora-cache's module path `meta`.
//!
//! larder stores the meta as one versioned binary blob ([`CacheMeta::serialize`]), with no
//! header compression, so pingora-cache's `set_compression_dict_path` and
//! `set_compression_dict_content` have no counterpart.

pub use crate::defaults::{
    CacheMetaDefaults, DefaultTtlScope, FreshDurationByStatusFn, HeuristicFreshness,
};
pub use larder_storage::CacheMeta;
