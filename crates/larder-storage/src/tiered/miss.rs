//! [`TieredMiss`]: writes a body to every tier that takes it.

use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;

use super::tier::{TierState, inc};
use crate::{CacheMeta, CompactCacheKey, HandleMiss, MissFinishType, MissHandler, Result};

/// The body length a response announces (`Content-Length`), if any.
pub(crate) fn announced_len(meta: &CacheMeta) -> Option<usize> {
    meta.headers()
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// A write to a tier other than the streaming one, dropped when it fails (counted) or when
/// the body outgrows the tier's [write limit](super::Tier::with_max_write_size) (not an
/// error: the object is simply not for that tier).
pub(crate) struct LaterWrite {
    pub(crate) tier: &'static TierState,
    pub(crate) handler: Option<MissHandler>,
    /// Body bytes written so far.
    pub(crate) written: usize,
}

impl LaterWrite {
    fn failed(&mut self, e: &crate::Error) {
        inc(&self.tier.counters.write_errors);
        tracing::debug!(tier = self.tier.name, error = %e, "tier write dropped");
        self.handler = None;
    }

    async fn write_body(&mut self, data: &Bytes, eof: bool) {
        let Some(handler) = &mut self.handler else {
            return;
        };
        self.written = self.written.saturating_add(data.len());
        if self
            .tier
            .tier
            .max_write_size
            .is_some_and(|max| self.written > max)
        {
            tracing::debug!(
                tier = self.tier.name,
                "body outgrew the tier: its write dropped"
            );
            self.handler = None;
            return;
        }
        if let Err(e) = handler.write_body(data.clone(), eof).await {
            self.failed(&e);
        }
    }
}

/// Writes to every tier that takes the body. The streaming tier's write (the first tier that
/// takes the whole body) is the one readers stream from, so its failure is the write's;
/// another tier's failure drops that tier's write (counted), and the others continue.
pub(crate) struct TieredMiss {
    pub(crate) key: CompactCacheKey,
    pub(crate) fresh_until: SystemTime,
    pub(crate) first_tier: &'static TierState,
    pub(crate) first: MissHandler,
    pub(crate) later: Vec<LaterWrite>,
    /// The streaming tier's index, then its write's tag.
    pub(crate) tag: Option<Vec<u8>>,
}

#[async_trait]
impl HandleMiss for TieredMiss {
    async fn write_body(&mut self, data: Bytes, eof: bool) -> Result<()> {
        for write in &mut self.later {
            write.write_body(&data, eof).await;
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
            tag: _,
        } = *self;
        // The other tiers first: the streaming tier's entry becomes visible last, when the
        // others hold it too.
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
        self.tag.as_deref()
    }
}
