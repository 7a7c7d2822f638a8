//! [`PromotingHit`]: a hit from a later tier that copies the body into earlier tiers as it
//! is read.

use std::any::Any;

use async_trait::async_trait;
use bytes::Bytes;
use tracing::Span;

use super::tier::{Backend, TierState};
use crate::{CacheKey, CacheMeta, HandleHit, HitHandler, Result, Storage};

/// A body being collected for promotion.
struct Promotion {
    key: CacheKey,
    meta: CacheMeta,
    body: Vec<Bytes>,
    len: usize,
}

/// A hit from a later tier that copies the body, when read to its end, into the earlier
/// tiers that take promotions of its size.
pub(crate) struct PromotingHit {
    /// The tiers to promote into, earliest first.
    targets: Vec<&'static TierState>,
    /// The largest body any target takes.
    max_len: usize,
    /// The tier the hit comes from.
    source: Backend,
    inner: HitHandler,
    /// `None` once promotion is off (a seek, a too large body or a read error).
    promotion: Option<Promotion>,
}

impl PromotingHit {
    /// A hit of `key` from `source` that will be promoted into `targets` (not empty) if read
    /// to its end.
    pub(crate) fn new(
        targets: Vec<&'static TierState>,
        source: Backend,
        inner: HitHandler,
        key: CacheKey,
        meta: CacheMeta,
    ) -> Self {
        let max_len = targets
            .iter()
            .map(|t| t.tier.max_promote_size)
            .max()
            .unwrap_or(0);
        PromotingHit {
            targets,
            max_len,
            source,
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
                    if p.len > self.max_len {
                        self.promotion = None;
                    }
                }
            }
            Ok(None) => {
                if let Some(p) = self.promotion.take() {
                    for target in &self.targets {
                        if p.len <= target.tier.max_promote_size {
                            target.promote(&p.key, &p.meta, &p.body).await;
                        }
                    }
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
        self.inner.finish(self.source, key, trace).await
    }

    fn can_seek(&self) -> bool {
        self.inner.can_seek()
    }

    fn seek(&mut self, start: usize, end: Option<usize>) -> Result<()> {
        // A range is not the whole body: no promotion from this hit.
        self.promotion = None;
        self.inner.seek(start, end)
    }

    fn can_seek_multipart(&self) -> bool {
        self.inner.can_seek_multipart()
    }

    fn seek_multipart(&mut self, start: usize, end: Option<usize>) -> Result<()> {
        self.promotion = None;
        self.inner.seek_multipart(start, end)
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
