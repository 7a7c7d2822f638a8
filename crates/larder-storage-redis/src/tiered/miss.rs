//! [`TieredMiss`]: writes a body to both tiers.

use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use larder_storage::{CompactCacheKey, HandleMiss, MissFinishType, MissHandler, Result};

use super::front::FrontTier;
use crate::stats::inc;

/// Writes to both tiers; the back tier is dropped (and the front kept) when it fails.
pub(crate) struct TieredMiss {
    pub(crate) tier: &'static FrontTier,
    pub(crate) key: CompactCacheKey,
    pub(crate) fresh_until: SystemTime,
    pub(crate) front: MissHandler,
    pub(crate) back: Option<MissHandler>,
}

impl TieredMiss {
    fn back_failed(&mut self, e: &larder_storage::Error) {
        inc(&self.tier.counters.back_write_errors);
        tracing::debug!(error = %e, "back tier write dropped");
        self.back = None;
    }
}

#[async_trait]
impl HandleMiss for TieredMiss {
    async fn write_body(&mut self, data: Bytes, eof: bool) -> Result<()> {
        if let Some(back) = &mut self.back
            && let Err(e) = back.write_body(data.clone(), eof).await
        {
            self.back_failed(&e);
        }
        self.front.write_body(data, eof).await
    }

    async fn finish(mut self: Box<Self>) -> Result<MissFinishType> {
        if let Some(back) = self.back.take() {
            match back.finish().await {
                Ok(_) => {}
                Err(e) => self.back_failed(&e),
            }
        }
        let TieredMiss {
            tier,
            key,
            fresh_until,
            front,
            ..
        } = *self;
        let finished = front.finish().await?;
        match finished {
            MissFinishType::Created(size) => tier.admit(key, size, fresh_until).await,
            MissFinishType::Appended(..) => tier.entered(&key),
        }
        Ok(finished)
    }

    fn streaming_write_tag(&self) -> Option<&[u8]> {
        self.front.streaming_write_tag()
    }
}
