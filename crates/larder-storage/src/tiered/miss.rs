//! [`TieredMiss`]: writes a body to every tier.

use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;

use super::tier::{TierState, inc};
use crate::{CompactCacheKey, HandleMiss, MissFinishType, MissHandler, Result};

/// A write to one tier after the first, dropped when it fails.
pub(crate) struct LaterWrite {
    pub(crate) tier: &'static TierState,
    pub(crate) handler: Option<MissHandler>,
}

impl LaterWrite {
    fn failed(&mut self, e: &crate::Error) {
        inc(&self.tier.counters.write_errors);
        tracing::debug!(tier = self.tier.name, error = %e, "tier write dropped");
        self.handler = None;
    }
}

/// Writes to every tier. The first tier's write is the one readers stream from, so its
/// failure is the write's; a later tier's failure drops that tier's write (counted), and the
/// others continue.
pub(crate) struct TieredMiss {
    pub(crate) key: CompactCacheKey,
    pub(crate) fresh_until: SystemTime,
    pub(crate) first_tier: &'static TierState,
    pub(crate) first: MissHandler,
    pub(crate) later: Vec<LaterWrite>,
}

#[async_trait]
impl HandleMiss for TieredMiss {
    async fn write_body(&mut self, data: Bytes, eof: bool) -> Result<()> {
        for write in &mut self.later {
            if let Some(handler) = &mut write.handler
                && let Err(e) = handler.write_body(data.clone(), eof).await
            {
                write.failed(&e);
            }
        }
        self.first.write_body(data, eof).await
    }

    async fn finish(self: Box<Self>) -> Result<MissFinishType> {
        let TieredMiss {
            key,
            fresh_until,
            first_tier,
            first,
            later,
        } = *self;
        // The later tiers first: the first tier's entry, the one this proxy serves, becomes
        // visible last, when the others hold it too.
        for mut write in later {
            let Some(handler) = write.handler.take() else {
                continue;
            };
            match handler.finish().await {
                Ok(finished) => {
                    write
                        .tier
                        .finished(key.clone(), finished, fresh_until)
                        .await;
                }
                Err(e) => write.failed(&e),
            }
        }
        let finished = first.finish().await?;
        first_tier.finished(key, finished, fresh_until).await;
        Ok(finished)
    }

    fn streaming_write_tag(&self) -> Option<&[u8]> {
        self.first.streaming_write_tag()
    }
}
