//! [`Tier`]: one storage of a tiered storage with how it is used (its eviction manager,
//! promotion limit, TTL and name), and [`TierState`]: that plus what the tiered storage keeps
//! about the tier's entries and counts, shared by the storage and its handlers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use parking_lot::Mutex;
use tracing::Span;

use crate::eviction::EvictionManager;
use crate::{CacheKey, CacheMeta, CompactCacheKey, HashBinary, MissFinishType, PurgeType, Storage};

/// A storage that lives for the whole process.
pub(crate) type Backend = &'static (dyn Storage + Sync);

/// The default [`Tier::with_max_promote_size`]: 1 MiB.
pub const DEFAULT_MAX_PROMOTE_SIZE: usize = 1024 * 1024;

/// One tier of a [`TieredStorage`](super::TieredStorage): a storage and how the tiered
/// storage uses it.
///
/// ```
/// use std::time::Duration;
/// use larder_storage::MemCache;
/// use larder_storage::tiered::Tier;
///
/// let memory: &'static MemCache = Box::leak(Box::new(MemCache::new()));
/// let tier = Tier::new(memory)
///     .with_name("memory")
///     .with_max_promote_size(64 * 1024)
///     .with_ttl(Duration::from_secs(30));
/// assert_eq!(tier.name(), Some("memory"));
/// ```
#[derive(Clone, Copy)]
pub struct Tier {
    pub(crate) storage: Backend,
    pub(crate) eviction: Option<&'static (dyn EvictionManager + Sync)>,
    pub(crate) max_promote_size: usize,
    pub(crate) ttl: Option<Duration>,
    pub(crate) name: Option<&'static str>,
}

impl std::fmt::Debug for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tier")
            .field("name", &self.name)
            .field("max_promote_size", &self.max_promote_size)
            .field("ttl", &self.ttl)
            .field("eviction", &self.eviction.is_some())
            .finish_non_exhaustive()
    }
}

impl Tier {
    /// `storage` with no eviction manager, no TTL, promotions up to 1 MiB and no name (it is
    /// then named by its position, `"0"`, `"1"`, ...).
    pub fn new(storage: &'static (dyn Storage + Sync)) -> Self {
        Tier {
            storage,
            eviction: None,
            max_promote_size: DEFAULT_MAX_PROMOTE_SIZE,
            ttl: None,
            name: None,
        }
    }

    /// Bounds this tier with `manager`: every entry entering it (writes and promotions) is
    /// admitted there, and the victims are purged from this tier only. Leave it out for a
    /// storage that bounds itself (Redis, a disk storage).
    #[must_use]
    pub fn with_eviction(mut self, manager: &'static (dyn EvictionManager + Sync)) -> Self {
        self.eviction = Some(manager);
        self
    }

    /// The largest body (plus serialized meta, as hits report their weight) promoted into
    /// this tier from a tier after it. 0 turns promotion into this tier off. Meaningless for
    /// the last tier, which nothing is after.
    #[must_use]
    pub fn with_max_promote_size(mut self, bytes: usize) -> Self {
        self.max_promote_size = bytes;
        self
    }

    /// Serves an entry of this tier only while it is younger than `ttl` (since it was written
    /// or promoted); an older one is dropped from this tier and looked up in the tiers after
    /// it. For a local tier in front of a shared one: bounds how long a proxy serves an object
    /// purged through another proxy.
    #[must_use]
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// The tier's name, the `tier` label of its figures in [`Storage::metrics`]
    /// (`"memory"`, `"disk"`, `"redis"`).
    #[must_use]
    pub fn with_name(mut self, name: &'static str) -> Self {
        self.name = Some(name);
        self
    }

    /// The name given with [`with_name`](Self::with_name).
    pub fn name(&self) -> Option<&'static str> {
        self.name
    }

    /// The storage.
    pub fn storage(&self) -> &'static (dyn Storage + Sync) {
        self.storage
    }

    /// The eviction manager bounding the tier, if one was given.
    pub fn eviction(&self) -> Option<&'static (dyn EvictionManager + Sync)> {
        self.eviction
    }

    /// The promotion limit.
    pub fn max_promote_size(&self) -> usize {
        self.max_promote_size
    }

    /// The TTL, if one was given.
    pub fn ttl(&self) -> Option<Duration> {
        self.ttl
    }
}

/// What a tiered storage counts of one tier.
#[derive(Debug, Default)]
pub(crate) struct TierCounters {
    pub(crate) hits: AtomicU64,
    pub(crate) promotions: AtomicU64,
    pub(crate) write_errors: AtomicU64,
    pub(crate) unavailable: AtomicU64,
}

/// Adds one to `counter`.
pub(crate) fn inc(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// A tier in use: its settings, when its entries entered it (with a TTL) and its counters.
pub(crate) struct TierState {
    pub(crate) tier: Tier,
    /// The tier's name, or its position.
    pub(crate) name: &'static str,
    /// When each entry entered the tier, kept only with a TTL.
    entered: Mutex<HashMap<HashBinary, Instant>>,
    pub(crate) counters: TierCounters,
}

impl TierState {
    /// `tier`, called `name`.
    pub(crate) fn new(tier: Tier, name: &'static str) -> Self {
        TierState {
            tier,
            name,
            entered: Mutex::new(HashMap::new()),
            counters: TierCounters::default(),
        }
    }

    /// The storage.
    pub(crate) fn storage(&self) -> Backend {
        self.tier.storage
    }

    /// Notes that the entry for `key` entered the tier now.
    pub(crate) fn entered(&self, key: &CompactCacheKey) {
        if self.tier.ttl.is_some() {
            self.entered
                .lock()
                .insert(key.combined_bin(), Instant::now());
        }
    }

    /// Forgets the entry for `key`.
    pub(crate) fn left(&self, key: &CompactCacheKey) {
        if self.tier.ttl.is_some() {
            self.entered.lock().remove(&key.combined_bin());
        }
    }

    /// Whether the entry for `key` is too old to serve.
    pub(crate) fn is_expired(&self, key: &CompactCacheKey) -> bool {
        let Some(ttl) = self.tier.ttl else {
            return false;
        };
        self.entered
            .lock()
            .get(&key.combined_bin())
            .is_none_or(|at| at.elapsed() >= ttl)
    }

    /// Drops the entry for `key` from this tier (and its eviction manager).
    pub(crate) async fn drop_entry(&self, key: &CompactCacheKey, trace: &Span) {
        self.left(key);
        if let Some(manager) = self.tier.eviction {
            manager.remove(key);
        }
        if let Err(e) = self.storage().purge(key, PurgeType::Eviction, trace).await {
            tracing::debug!(tier = self.name, error = %e, "dropping an old tier entry failed");
        }
    }

    /// Records what a finished write of `key` stored in this tier: admits a new entry into
    /// the eviction manager and purges its victims from this tier.
    pub(crate) async fn finished(
        &self,
        key: CompactCacheKey,
        finished: MissFinishType,
        fresh_until: SystemTime,
    ) {
        self.entered(&key);
        let (MissFinishType::Created(size), Some(manager)) = (finished, self.tier.eviction) else {
            return;
        };
        for victim in manager.admit(key, size, fresh_until) {
            self.left(&victim);
            if let Err(e) = self
                .storage()
                .purge(&victim, PurgeType::Eviction, &Span::none())
                .await
            {
                tracing::debug!(tier = self.name, error = %e, "tier eviction failed");
            }
        }
    }

    /// Copies a body read in full from a later tier into this one.
    pub(crate) async fn promote(&self, key: &CacheKey, meta: &CacheMeta, body: &[Bytes]) {
        let span = Span::none();
        let result = async {
            let mut miss = self.storage().get_miss_handler(key, meta, &span).await?;
            for part in body {
                miss.write_body(part.clone(), false).await?;
            }
            miss.write_body(Bytes::new(), true).await?;
            miss.finish().await
        }
        .await;
        match result {
            Ok(finished) => {
                inc(&self.counters.promotions);
                self.finished(key.to_compact(), finished, meta.fresh_until())
                    .await;
            }
            Err(e) => tracing::debug!(tier = self.name, error = %e, "promotion failed"),
        }
    }
}
