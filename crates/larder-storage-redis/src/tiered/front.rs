//! [`FrontTier`]: the local tier of a tiered storage with what it keeps about its entries
//! (when they entered, their eviction), what the tiered storage and its handlers share.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use larder_storage::eviction::EvictionManager;
use larder_storage::{
    CacheKey, CacheMeta, CompactCacheKey, HashBinary, MissFinishType, PurgeType, Storage,
};
use parking_lot::Mutex;
use tracing::Span;

use super::stats::TieredCounters;
use crate::stats::inc;

/// One tier: a storage that lives for the whole process.
pub(crate) type Tier = &'static (dyn Storage + Sync);

/// The front tier, its eviction manager, promotion limit and TTL, and the tiered storage's
/// counters.
pub(crate) struct FrontTier {
    pub(crate) storage: Tier,
    pub(crate) eviction: Option<&'static (dyn EvictionManager + Sync)>,
    pub(crate) max_promote_size: usize,
    pub(crate) ttl: Option<Duration>,
    /// When each front-tier entry entered it, kept only with a TTL.
    entered: Mutex<HashMap<HashBinary, Instant>>,
    pub(crate) counters: TieredCounters,
}

impl FrontTier {
    /// `storage` with no eviction manager, no TTL and promotion up to 1 MiB.
    pub(crate) fn new(storage: Tier) -> Self {
        FrontTier {
            storage,
            eviction: None,
            max_promote_size: 1024 * 1024,
            ttl: None,
            entered: Mutex::new(HashMap::new()),
            counters: TieredCounters::default(),
        }
    }

    /// Notes that the entry for `key` entered the front tier now.
    pub(crate) fn entered(&self, key: &CompactCacheKey) {
        if self.ttl.is_some() {
            self.entered
                .lock()
                .insert(key.combined_bin(), Instant::now());
        }
    }

    /// Forgets the front-tier entry for `key`.
    pub(crate) fn left(&self, key: &CompactCacheKey) {
        if self.ttl.is_some() {
            self.entered.lock().remove(&key.combined_bin());
        }
    }

    /// Whether the front-tier entry for `key` is too old to serve.
    pub(crate) fn is_expired(&self, key: &CompactCacheKey) -> bool {
        let Some(ttl) = self.ttl else {
            return false;
        };
        self.entered
            .lock()
            .get(&key.combined_bin())
            .is_none_or(|at| at.elapsed() >= ttl)
    }

    /// Admits a new front-tier entry into the eviction manager and purges its victims from
    /// the front tier.
    pub(crate) async fn admit(&self, key: CompactCacheKey, size: usize, fresh_until: SystemTime) {
        self.entered(&key);
        let Some(manager) = self.eviction else {
            return;
        };
        for victim in manager.admit(key, size, fresh_until) {
            self.left(&victim);
            if let Err(e) = self
                .storage
                .purge(&victim, PurgeType::Eviction, &Span::none())
                .await
            {
                tracing::debug!(error = %e, "front tier eviction failed");
            }
        }
    }

    /// Copies a fully read back-tier body into the front tier.
    pub(crate) async fn promote(&self, key: &CacheKey, meta: &CacheMeta, body: Vec<Bytes>) {
        let span = Span::none();
        let result = async {
            let mut miss = self.storage.get_miss_handler(key, meta, &span).await?;
            for part in body {
                miss.write_body(part, false).await?;
            }
            miss.write_body(Bytes::new(), true).await?;
            miss.finish().await
        }
        .await;
        match result {
            Ok(MissFinishType::Created(size)) => {
                inc(&self.counters.promotions);
                self.admit(key.to_compact(), size, meta.fresh_until()).await;
            }
            Ok(MissFinishType::Appended(..)) => {
                inc(&self.counters.promotions);
                self.entered(&key.to_compact());
            }
            Err(e) => tracing::debug!(error = %e, "promotion into the front tier failed"),
        }
    }
}
