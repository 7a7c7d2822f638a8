//! The fields of a [`CacheMeta`](super::CacheMeta), shared by the meta and its encoding
//! (so neither file imports the other).

use std::time::SystemTime;

use crate::{HashBinary, ResponseHeader};

/// The fields behind a `CacheMeta`'s reference count.
#[derive(Clone, Debug)]
pub(super) struct CacheMetaInner {
    pub(super) fresh_until: SystemTime,
    pub(super) created: SystemTime,
    pub(super) updated: SystemTime,
    pub(super) epoch_override: Option<SystemTime>,
    pub(super) stale_while_revalidate_sec: u32,
    pub(super) stale_if_error_sec: u32,
    pub(super) variance: Option<HashBinary>,
    pub(super) header: ResponseHeader,
    pub(super) extensions: http::Extensions,
}
