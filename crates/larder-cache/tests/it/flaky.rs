//! A storage whose lookups fail until something is written, as with a corrupt entry that a
//! fresh response overwrites.

use std::any::Any;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use larder_cache::{
    CacheKey, CacheMeta, CompactCacheKey, HitHandler, MemCache, MissHandler, PurgeType, Storage,
};
use tracing::Span;

pub(crate) struct FailingUntilWritten {
    pub(crate) inner: &'static MemCache,
    pub(crate) healthy: AtomicBool,
}

#[async_trait]
impl Storage for FailingUntilWritten {
    async fn lookup(
        &'static self,
        key: &CacheKey,
        trace: &Span,
    ) -> larder_storage::Result<Option<(CacheMeta, HitHandler)>> {
        if !self.healthy.load(Ordering::SeqCst) {
            return Err(larder_storage::Error::Backend("corrupt entry".into()));
        }
        self.inner.lookup(key, trace).await
    }

    async fn lookup_streaming_write(
        &'static self,
        key: &CacheKey,
        streaming_write_tag: Option<&[u8]>,
        trace: &Span,
    ) -> larder_storage::Result<Option<(CacheMeta, HitHandler)>> {
        self.inner
            .lookup_streaming_write(key, streaming_write_tag, trace)
            .await
    }

    async fn get_miss_handler(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        trace: &Span,
    ) -> larder_storage::Result<MissHandler> {
        let handler = self.inner.get_miss_handler(key, meta, trace).await;
        self.healthy.store(true, Ordering::SeqCst);
        handler
    }

    async fn purge(
        &'static self,
        key: &CompactCacheKey,
        purge_type: PurgeType,
        trace: &Span,
    ) -> larder_storage::Result<bool> {
        self.inner.purge(key, purge_type, trace).await
    }

    async fn update_meta(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        trace: &Span,
    ) -> larder_storage::Result<bool> {
        self.inner.update_meta(key, meta, trace).await
    }

    fn support_streaming_partial_write(&self) -> bool {
        self.inner.support_streaming_partial_write()
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync + 'static) {
        self
    }
}
