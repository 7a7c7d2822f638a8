//! `TieredStorage` as an ordered list: three `MemCache` tiers, and a middle tier that fails.

// Test helpers: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, Ordering};

use larder_storage::eviction::simple_lru;
use larder_storage::metrics::{MetricSample, write_prometheus};
use larder_storage::tiered::{Tier, TieredStorage};
use larder_storage::{
    CacheKey, CacheMeta, CompactCacheKey, Error, HitHandler, MemCache, MissHandler, PurgeType,
    Result, Storage,
};
use larder_testkit::storage_contract::{self as contract, meta, read_all, store};
use tracing::Span;

fn memory() -> &'static MemCache {
    Box::leak(Box::new(MemCache::new()))
}

/// Three memory tiers named hot, warm and cold.
struct Three {
    hot: &'static MemCache,
    warm: &'static MemCache,
    cold: &'static MemCache,
    tiered: &'static TieredStorage,
}

fn three(tune: impl Fn(usize, Tier) -> Tier) -> Three {
    let (hot, warm, cold) = (memory(), memory(), memory());
    let tiers = [("hot", hot), ("warm", warm), ("cold", cold)]
        .into_iter()
        .enumerate()
        .map(|(i, (name, storage))| tune(i, Tier::new(storage).with_name(name)));
    let tiered = Box::leak(Box::new(TieredStorage::from_tiers(tiers)));
    Three {
        hot,
        warm,
        cold,
        tiered,
    }
}

async fn body_of(storage: &'static (dyn Storage + Sync), key: &CacheKey) -> Option<Vec<u8>> {
    let (_, mut hit) = storage.lookup(key, &Span::none()).await.unwrap()?;
    Some(read_all(&mut hit).await.unwrap())
}

fn hits(t: &Three) -> [u64; 3] {
    [0, 1, 2].map(|i| t.tiered.tier_stats(i).unwrap().hits)
}

#[tokio::test]
async fn storage_contract_holds_on_three_memory_tiers() {
    let t = three(|_, tier| tier);
    contract::run_all(t.tiered, "three").await;
}

#[tokio::test]
async fn a_hit_in_the_last_tier_is_promoted_into_both_earlier_tiers() {
    let t = three(|_, tier| tier);
    let key = CacheKey::new("", "cold-only", "");
    store(t.cold, &key, &meta("a"), &[b"from ", b"the cold tier"]).await;

    assert_eq!(
        body_of(t.tiered, &key).await.unwrap(),
        b"from the cold tier"
    );
    assert_eq!(body_of(t.hot, &key).await.unwrap(), b"from the cold tier");
    assert_eq!(body_of(t.warm, &key).await.unwrap(), b"from the cold tier");
    assert_eq!(hits(&t), [0, 0, 1]);
    // The next lookup stays in the first tier.
    assert_eq!(
        body_of(t.tiered, &key).await.unwrap(),
        b"from the cold tier"
    );
    assert_eq!(hits(&t), [1, 0, 1]);
    let promotions = [0, 1, 2].map(|i| t.tiered.tier_stats(i).unwrap().promotions);
    assert_eq!(promotions, [1, 1, 0]);
    let stats = t.tiered.stats();
    assert_eq!(
        (stats.front_hits, stats.back_hits, stats.promotions),
        (1, 1, 2)
    );
}

#[tokio::test]
async fn a_hit_in_the_middle_tier_is_promoted_only_into_the_first() {
    let t = three(|_, tier| tier);
    let key = CacheKey::new("", "warm-only", "");
    store(t.warm, &key, &meta("a"), &[b"warm"]).await;
    assert_eq!(body_of(t.tiered, &key).await.unwrap(), b"warm");
    assert_eq!((t.hot.len(), t.warm.len(), t.cold.len()), (1, 1, 0));
    assert_eq!(hits(&t), [0, 1, 0]);
}

#[tokio::test]
async fn each_tier_takes_promotions_up_to_its_own_size() {
    // The first tier takes nothing over 64 bytes (meta included), the second up to 1 MiB.
    let t = three(|i, tier| {
        if i == 0 {
            tier.with_max_promote_size(64)
        } else {
            tier
        }
    });
    let key = CacheKey::new("", "mid-sized", "");
    store(t.cold, &key, &meta("a"), &[&[7u8; 500][..]]).await;
    assert_eq!(body_of(t.tiered, &key).await.unwrap().len(), 500);
    assert!(t.hot.is_empty(), "too large for the first tier");
    assert_eq!(t.warm.len(), 1);
    assert_eq!(body_of(t.tiered, &key).await.unwrap().len(), 500);
    assert_eq!(hits(&t), [0, 1, 1]);
}

#[tokio::test]
async fn a_range_read_promotes_nothing() {
    let t = three(|_, tier| tier);
    let key = CacheKey::new("", "ranged", "");
    store(t.cold, &key, &meta("a"), &[b"0123456789"]).await;
    let (_, mut hit) = t.tiered.lookup(&key, &Span::none()).await.unwrap().unwrap();
    hit.seek(2, Some(5)).unwrap();
    assert_eq!(read_all(&mut hit).await.unwrap(), b"234");
    assert!(t.hot.is_empty() && t.warm.is_empty());
}

#[tokio::test]
async fn writes_reach_every_tier() {
    let t = three(|_, tier| tier);
    let key = CacheKey::new("", "written", "");
    store(t.tiered, &key, &meta("a"), &[b"every", b"where"]).await;
    for tier in [t.hot, t.warm, t.cold] {
        assert_eq!(body_of(tier, &key).await.unwrap(), b"everywhere");
    }
}

#[tokio::test]
async fn invalidation_purges_every_tier_and_eviction_only_the_first() {
    let t = three(|_, tier| tier);
    let span = Span::none();
    let key = CacheKey::new("", "purged", "");
    store(t.tiered, &key, &meta("a"), &[b"x"]).await;

    let compact = key.to_compact();
    assert!(
        t.tiered
            .purge(&compact, PurgeType::Eviction, &span)
            .await
            .unwrap()
    );
    assert_eq!((t.hot.len(), t.warm.len(), t.cold.len()), (0, 1, 1));

    // Promoted back into the first tier by the next read.
    assert_eq!(body_of(t.tiered, &key).await.unwrap(), b"x");
    assert_eq!(t.hot.len(), 1);
    assert!(
        t.tiered
            .purge(&compact, PurgeType::Invalidation, &span)
            .await
            .unwrap()
    );
    assert_eq!((t.hot.len(), t.warm.len(), t.cold.len()), (0, 0, 0));
    assert!(body_of(t.tiered, &key).await.is_none());
    assert!(
        !t.tiered
            .purge(&compact, PurgeType::Invalidation, &span)
            .await
            .unwrap(),
        "nothing left to purge"
    );
}

#[tokio::test]
async fn update_meta_reaches_every_tier() {
    let t = three(|_, tier| tier);
    let span = Span::none();
    let key = CacheKey::new("", "revalidated", "");
    store(t.tiered, &key, &meta("old"), &[b"body"]).await;
    assert!(
        t.tiered
            .update_meta(&key, &meta("new"), &span)
            .await
            .unwrap()
    );
    for tier in [t.hot, t.warm, t.cold] {
        let (found, _) = tier.lookup(&key, &span).await.unwrap().unwrap();
        assert_eq!(found.headers()["x-tag"], "new");
    }
}

#[tokio::test]
async fn eviction_managers_bound_their_own_tier() {
    let manager: &'static simple_lru::Manager =
        Box::leak(Box::new(simple_lru::Manager::new(3_000)));
    let t = three(|i, tier| {
        if i == 1 {
            tier.with_eviction(manager)
        } else {
            tier
        }
    });
    for i in 0..20 {
        let key = CacheKey::new("", format!("object-{i}"), "");
        store(t.tiered, &key, &meta("a"), &[&[1u8; 500][..]]).await;
    }
    assert!(t.warm.stored_bytes() <= 3_000, "{}", t.warm.stored_bytes());
    assert_eq!(
        (t.hot.len(), t.cold.len()),
        (20, 20),
        "unbounded tiers keep all"
    );
    let text = t.tiered.render_prometheus();
    assert!(
        text.contains("\nlarder_tiered_tier_entries{tier=\"warm\"} "),
        "{text}"
    );
    assert!(
        !text.contains("larder_tiered_front_bytes"),
        "the first tier has no manager"
    );
}

/// A memory tier that can be switched off: while down, every call fails as unreachable.
struct Flaky {
    inner: MemCache,
    down: AtomicBool,
}

impl Flaky {
    fn check(&self) -> Result<()> {
        if self.down.load(Ordering::Relaxed) {
            let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
            return Err(Error::Unavailable(Box::new(refused)));
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Storage for Flaky {
    async fn lookup(
        &'static self,
        key: &CacheKey,
        trace: &Span,
    ) -> Result<Option<(CacheMeta, HitHandler)>> {
        self.check()?;
        self.inner.lookup(key, trace).await
    }
    async fn get_miss_handler(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        trace: &Span,
    ) -> Result<MissHandler> {
        self.check()?;
        self.inner.get_miss_handler(key, meta, trace).await
    }
    async fn purge(
        &'static self,
        key: &CompactCacheKey,
        purge_type: PurgeType,
        trace: &Span,
    ) -> Result<bool> {
        self.check()?;
        self.inner.purge(key, purge_type, trace).await
    }
    async fn update_meta(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        trace: &Span,
    ) -> Result<bool> {
        self.check()?;
        self.inner.update_meta(key, meta, trace).await
    }
    fn metrics(&self, out: &mut Vec<MetricSample>) {
        out.push(MetricSample::gauge(
            "flaky_up",
            "Whether the tier is up.",
            u64::from(!self.down.load(Ordering::Relaxed)),
        ));
    }
    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync + 'static) {
        self
    }
}

#[tokio::test]
async fn a_failing_middle_tier_is_skipped_and_counted() {
    let (hot, cold) = (memory(), memory());
    let warm: &'static Flaky = Box::leak(Box::new(Flaky {
        inner: MemCache::new(),
        down: AtomicBool::new(true),
    }));
    let tiered: &'static TieredStorage = Box::leak(Box::new(TieredStorage::from_tiers([
        Tier::new(hot),
        Tier::new(warm),
        Tier::new(cold),
    ])));
    let span = Span::none();

    // A write goes to the tiers that work.
    let written = CacheKey::new("", "written", "");
    store(tiered, &written, &meta("a"), &[b"kept"]).await;
    assert_eq!((hot.len(), warm.inner.len(), cold.len()), (1, 0, 1));
    assert_eq!(tiered.tier_stats(1).unwrap().write_errors, 1);

    // A lookup that misses the first tier passes the middle one as a miss and finds the last;
    // the promotion reaches the first tier, not the one that is down.
    let only_cold = CacheKey::new("", "only-cold", "");
    store(cold, &only_cold, &meta("a"), &[b"cold"]).await;
    assert_eq!(body_of(tiered, &only_cold).await.unwrap(), b"cold");
    assert_eq!(body_of(hot, &only_cold).await.unwrap(), b"cold");
    let middle = tiered.tier_stats(1).unwrap();
    assert_eq!((middle.unavailable, middle.promotions), (1, 0));
    assert_eq!(tiered.stats().back_unavailable, 1);
    assert!(
        tiered
            .lookup(&CacheKey::new("", "nowhere", ""), &span)
            .await
            .unwrap()
            .is_none()
    );

    // A purge cannot reach the middle tier: it fails, after the others dropped their copy.
    assert!(
        tiered
            .purge(&written.to_compact(), PurgeType::Invalidation, &span)
            .await
            .is_err()
    );
    assert_eq!((hot.len(), cold.len()), (1, 1), "only only-cold is left");
    assert!(body_of(tiered, &written).await.is_none());

    // Back up: the middle tier serves again and is counted by name.
    warm.down.store(false, Ordering::Relaxed);
    let later = CacheKey::new("", "later", "");
    store(tiered, &later, &meta("a"), &[b"all three"]).await;
    assert_eq!(body_of(warm, &later).await.unwrap(), b"all three");
    let mut samples = Vec::new();
    tiered.metrics(&mut samples);
    let mut text = String::new();
    write_prometheus(&samples, &mut text);
    assert!(
        text.contains("\nlarder_tiered_tier_write_errors_total{tier=\"1\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("\nlarder_tiered_tier_hits_total{tier=\"2\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("\nflaky_up 1\n"),
        "each tier's own figures follow: {text}"
    );
    assert_eq!(
        text.matches("# TYPE larder_tiered_tier_hits_total ")
            .count(),
        1,
        "{text}"
    );
    assert!(tiered.tier_as::<Flaky>().is_some());
    assert!(tiered.tier_as::<TieredStorage>().is_none());
}
