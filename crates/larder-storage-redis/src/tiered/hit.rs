//! [`PromotingHit`]: a back-tier hit that copies the body into the front tier as it is read.

use std::any::Any;

use async_trait::async_trait;
use bytes::Bytes;
use larder_storage::{CacheKey, CacheMeta, HandleHit, HitHandler, Result, Storage};
use tracing::Span;

use super::front::{FrontTier, Tier};

/// A back-tier body being collected for promotion.
struct Promotion {
    key: CacheKey,
    meta: CacheMeta,
    body: Vec<Bytes>,
    len: usize,
}

/// A back-tier hit that copies the body into the front tier when read to its end.
pub(crate) struct PromotingHit {
    front: &'static FrontTier,
    back: Tier,
    inner: HitHandler,
    /// `None` once promotion is off (a seek, a too large body or a read error).
    promotion: Option<Promotion>,
}

impl PromotingHit {
    /// A back-tier hit of `key` that will be promoted into `front` if read to its end.
    pub(crate) fn new(
        front: &'static FrontTier,
        back: Tier,
        inner: HitHandler,
        key: CacheKey,
        meta: CacheMeta,
    ) -> Self {
        PromotingHit {
            front,
            back,
            inner,
            promotion: Some(Promotion {
                key,
                meta,
                body: Vec::new(),
                len: 0,
            }),
        }
    }
}

#[async_trait]
impl HandleHit for PromotingHit {
    async fn read_body(&mut self) -> Result<Option<Bytes>> {
        let read = self.inner.read_body().await;
        match &read {
            Ok(Some(chunk)) => {
                if let Some(p) = &mut self.promotion {
                    p.len += chunk.len();
                    p.body.push(chunk.clone());
                    if p.len > self.front.max_promote_size {
                        self.promotion = None;
                    }
                }
            }
            Ok(None) => {
                if let Some(p) = self.promotion.take() {
                    self.front.promote(&p.key, &p.meta, p.body).await;
                }
            }
            Err(_) => self.promotion = None,
        }
        read
    }

    async fn finish(
        self: Box<Self>,
        _storage: &'static (dyn Storage + Sync),
        key: &CacheKey,
        trace: &Span,
    ) -> Result<()> {
        self.inner.finish(self.back, key, trace).await
    }

    fn can_seek(&self) -> bool {
        self.inner.can_seek()
    }

    fn seek(&mut self, start: usize, end: Option<usize>) -> Result<()> {
        // A range is not the whole body: no promotion from this hit.
        self.promotion = None;
        self.inner.seek(start, end)
    }

    fn should_count_access(&self) -> bool {
        self.inner.should_count_access()
    }

    fn get_eviction_weight(&self) -> usize {
        self.inner.get_eviction_weight()
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }

    fn as_any_mut(&mut self) -> &mut (dyn Any + Send + Sync) {
        self
    }
}
