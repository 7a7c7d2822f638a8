//! Tests of the parent module.

use larder_storage::Storage;

use super::*;

/// Whether the layer's storage is `storage` (the same object, not a copy).
fn is_layer_storage(config: &CacheConfig, storage: &'static (dyn Storage + Sync)) -> bool {
    config
        .storage
        .is_some_and(|s| std::ptr::addr_eq(std::ptr::from_ref(s), std::ptr::from_ref(storage)))
}

#[tokio::test]
async fn tiered_storage_puts_the_sized_memory_tier_in_front_of_redis() {
    let mut settings = CacheSettings {
        size: 1 << 20,
        max_object_size: Some(0),
        storage: "memory+redis://127.0.0.1:1".parse().unwrap(),
        local_ttl_secs: 5,
        ..CacheSettings::default()
    };
    // Nothing listens on port 1: the storage connects lazily, so building works.
    let (config, wired) = settings.wire().unwrap();
    let Wired::Tiered {
        tiered,
        disk: None,
        redis: Some(redis),
    } = wired
    else {
        panic!("a tiered storage: {wired:?}");
    };
    assert!(is_layer_storage(&config, tiered));
    assert!(std::ptr::addr_eq(
        std::ptr::from_ref(tiered.back()),
        std::ptr::from_ref(redis)
    ));
    assert!(
        config.eviction.is_none(),
        "the tiered storage evicts itself"
    );
    let front = tiered.eviction().expect("the memory tier is bounded");
    for i in 0..4 {
        let key = larder_storage::CacheKey::new("", format!("object-{i}"), "");
        front.admit(key.to_compact(), 600 << 10, std::time::SystemTime::now());
    }
    assert!(front.total_size() <= 1 << 20, "{}", front.total_size());
    assert_eq!(
        config.max_file_size,
        Some(1 << 20),
        "no object larger than memory"
    );
    assert_eq!(redis.config().url, "redis://127.0.0.1:1");
    assert_eq!(redis.config().timeout, Duration::from_millis(250));

    settings.max_object_size = Some(1000);
    settings.redis_prefix = "edge:".into();
    let (config, wired) = settings.wire().unwrap();
    assert_eq!(config.max_file_size, Some(1000));
    let Wired::Tiered {
        redis: Some(redis), ..
    } = wired
    else {
        panic!("a tiered storage: {wired:?}");
    };
    assert_eq!(redis.config().prefix, "edge:");

    settings.storage = "redis://127.0.0.1:1".parse().unwrap();
    settings.local_ttl_secs = 0;
    let (config, wired) = settings.wire().unwrap();
    let Wired::Redis(redis) = wired else {
        panic!("a redis storage: {wired:?}");
    };
    assert!(is_layer_storage(&config, redis));
    assert!(config.eviction.is_none());
    assert_eq!(config.max_file_size, Some(1000));

    settings.storage = StorageBackend::Memory;
    let (config, wired) = settings.wire().unwrap();
    assert!(matches!(wired, Wired::Memory));
    assert!(config.storage.is_some() && config.eviction.is_some());
}

/// The proxy asks `larder_cache::Error::is_unavailable` of a failed storage call (to log an
/// outage quietly): a Redis that cannot be reached answers yes, through both storages the
/// binary wires; an error about the data answers no.
#[tokio::test]
async fn a_redis_outage_reaches_the_proxy_as_unavailable() {
    let span = tracing::Span::none();
    let key = larder_storage::CacheKey::new("", "/down", "");
    for storage in ["redis://127.0.0.1:1", "memory+redis://127.0.0.1:1"] {
        let settings = CacheSettings {
            storage: storage.parse().unwrap(),
            ..CacheSettings::default()
        };
        let (config, wired) = settings.wire().unwrap();
        let (Wired::Redis(redis)
        | Wired::Tiered {
            redis: Some(redis), ..
        }) = wired
        else {
            panic!("{storage}: a redis storage")
        };
        let e = redis.lookup(&key, &span).await.map(|_| ()).unwrap_err();
        assert!(e.is_unavailable(), "{storage}: {e}");
        assert!(larder_cache::Error::from(e).is_unavailable(), "{storage}");
        // What the layer sees: a tiered storage turns the outage into a plain miss.
        let layer_storage = config.storage.unwrap();
        let found = layer_storage.lookup(&key, &span).await;
        match storage {
            "redis://127.0.0.1:1" => {
                let e = found.map(|_| ()).unwrap_err();
                assert!(larder_cache::Error::from(e).is_unavailable(), "{storage}");
            }
            _ => assert!(found.unwrap().is_none(), "{storage}: a miss"),
        }
    }
    let corrupt = larder_storage::Error::from(larder_storage_redis::Error::CorruptEntry {
        reason: "meta does not decode",
    });
    assert!(!larder_cache::Error::from(corrupt).is_unavailable());
}

#[test]
fn redis_storage_outside_a_runtime_is_an_error() {
    let settings = CacheSettings {
        storage: "memory+redis://127.0.0.1:1".parse().unwrap(),
        ..CacheSettings::default()
    };
    let e = settings.cache_config().map(|_| ()).unwrap_err().to_string();
    assert!(e.contains("tokio runtime"), "{e}");
}

/// The names of a tiered storage's tiers, in order.
fn tier_names(tiered: &TieredStorage) -> Vec<&'static str> {
    tiered.tiers().map(|t| t.name().unwrap()).collect()
}

fn settings(storage: &str) -> CacheSettings {
    CacheSettings {
        size: 1 << 20,
        disk_size: 64 << 20,
        max_object_size: Some(0),
        storage: storage.parse().unwrap(),
        ..CacheSettings::default()
    }
}

#[tokio::test]
async fn disk_alone_bounds_itself_and_objects_by_its_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache");
    let mut settings = settings(&format!("disk:{}", path.display()));
    let (config, wired) = settings.wire().unwrap();
    let Wired::Disk(disk) = wired else {
        panic!("a disk storage: {wired:?}");
    };
    assert!(is_layer_storage(&config, disk));
    assert!(config.eviction.is_none(), "the disk evicts itself");
    assert_eq!(
        config.max_file_size,
        Some(64 << 20),
        "the disk's size bounds an object, not memory's"
    );
    assert!(std::ptr::eq(
        disk_storage(config.storage.unwrap()).unwrap(),
        disk
    ));

    settings.max_object_size = Some(10 << 20);
    let (config, _) = settings.wire().unwrap();
    assert_eq!(config.max_file_size, Some(10 << 20));
    settings.max_object_size = Some(1 << 30);
    let (config, _) = settings.wire().unwrap();
    assert_eq!(config.max_file_size, Some(64 << 20));
}

#[test]
fn unset_object_limits_are_8_mib_in_memory_and_an_eighth_of_the_disk() {
    let mut settings = settings("memory+disk:/c");
    settings.size = 256 << 20;
    settings.disk_size = 20 << 30;
    settings.max_object_size = None;
    assert_eq!(settings.max_object_sizes(), (8 << 20, 20 << 27));
    settings.size = 1 << 20;
    assert_eq!(
        settings.max_object_sizes(),
        (1 << 20, 20 << 27),
        "capped by size"
    );
    settings.max_object_size = Some(0);
    assert_eq!(
        settings.max_object_sizes(),
        (1 << 20, 20 << 30),
        "0: each size"
    );
    settings.max_object_size = Some(100 << 20);
    assert_eq!(settings.max_object_sizes(), (1 << 20, 100 << 20));
}

#[test]
fn the_disk_gets_its_size_path_sync_and_eviction_policy() {
    let mut settings = settings("disk:/var/cache/larder");
    settings.eviction = EvictionPolicy::Tinyufo;
    settings.disk_eviction = EvictionPolicy::Lru;
    settings.disk_sync = DiskSync::Always;
    let disk = settings.disk_config(Path::new("/var/cache/larder"));
    assert_eq!(disk.dir, Path::new("/var/cache/larder"));
    assert_eq!(disk.max_size, 64 << 20);
    assert_eq!(
        (disk.eviction, disk.sync),
        (Eviction::Lru, SyncPolicy::Always)
    );
    settings.disk_eviction = EvictionPolicy::Tinyufo;
    settings.disk_sync = DiskSync::Never;
    let disk = settings.disk_config(Path::new("/c"));
    assert_eq!(
        (disk.eviction, disk.sync),
        (Eviction::TinyUfo, SyncPolicy::Never)
    );
}

#[tokio::test]
async fn memory_in_front_of_the_disk_takes_what_fits_memory_and_the_disk_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let settings = settings(&format!("memory+disk:{}", dir.path().display()));
    let (config, wired) = settings.wire().unwrap();
    let Wired::Tiered {
        tiered,
        disk: Some(disk),
        redis: None,
    } = wired
    else {
        panic!("memory and disk tiers: {wired:?}");
    };
    assert!(is_layer_storage(&config, tiered));
    assert_eq!(tier_names(tiered), ["memory", "disk"]);
    assert!(config.eviction.is_none(), "the tiers bound themselves");
    assert_eq!(
        config.max_file_size,
        Some(64 << 20),
        "a response too large for memory still goes to the disk"
    );
    let memory = tiered.tier(0).unwrap();
    assert_eq!(
        memory.max_write_size(),
        Some(1 << 20),
        "memory takes what fits"
    );
    let front = memory.eviction().expect("the memory tier is bounded");
    for i in 0..4 {
        let key = larder_storage::CacheKey::new("", format!("object-{i}"), "");
        front.admit(key.to_compact(), 600 << 10, std::time::SystemTime::now());
    }
    assert!(front.total_size() <= 1 << 20, "{}", front.total_size());
    assert_eq!(memory.max_promote_size(), 1 << 20, "disk hits are promoted");
    let disk_tier = tiered.tier(1).unwrap();
    assert!(disk_tier.eviction().is_none(), "the disk bounds itself");
    assert!(std::ptr::addr_eq(
        std::ptr::from_ref(disk_tier.storage()),
        std::ptr::from_ref(disk)
    ));
    assert!(memory.ttl().is_none() && disk_tier.ttl().is_none());
    assert!(std::ptr::eq(disk_storage(tiered).unwrap(), disk));
}

#[tokio::test]
async fn memory_disk_and_redis_make_three_tiers_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = settings(&format!(
        "memory+disk:{}+redis://127.0.0.1:1",
        dir.path().display()
    ));
    settings.local_ttl_secs = 7;
    let (config, wired) = settings.wire().unwrap();
    let Wired::Tiered {
        tiered,
        disk: Some(disk),
        redis: Some(redis),
    } = wired
    else {
        panic!("three tiers: {wired:?}");
    };
    assert!(is_layer_storage(&config, tiered));
    assert_eq!(tier_names(tiered), ["memory", "disk", "redis"]);
    let ttls: Vec<_> = tiered.tiers().map(Tier::ttl).collect();
    let seven = Some(Duration::from_secs(7));
    assert_eq!(ttls, [seven, seven, None], "local tiers only");
    assert!(std::ptr::eq(
        tiered.tier_as::<RedisStorage>().unwrap(),
        redis
    ));
    assert!(std::ptr::eq(disk_storage(tiered).unwrap(), disk));
    assert_eq!(redis.config().url, "redis://127.0.0.1:1");
    assert!(config.eviction.is_none());
    assert_eq!(config.max_file_size, Some(64 << 20), "the disk's limit");
    let limits: Vec<_> = tiered.tiers().map(Tier::max_write_size).collect();
    assert_eq!(limits, [Some(1 << 20), None, Some(1 << 20)]);
    assert_eq!(
        tiered.tier(1).unwrap().max_promote_size(),
        1 << 20,
        "a promotion is collected in memory: bounded by its size"
    );

    let settings = CacheSettings {
        storage: format!("disk:{}+redis://127.0.0.1:1", dir.path().display())
            .parse()
            .unwrap(),
        ..settings
    };
    let (config, wired) = settings.wire().unwrap();
    let Wired::Tiered { tiered, .. } = wired else {
        panic!("two tiers: {wired:?}");
    };
    assert_eq!(tier_names(tiered), ["disk", "redis"]);
    assert!(config.eviction.is_none());
    assert_eq!(
        config.max_file_size,
        Some(64 << 20),
        "the disk is first: its size bounds an object"
    );
}

#[tokio::test]
async fn memory_and_redis_storages_have_no_disk() {
    for storage in [
        "memory",
        "redis://127.0.0.1:1",
        "memory+redis://127.0.0.1:1",
    ] {
        let (config, _) = settings(storage).wire().unwrap();
        assert!(disk_storage(config.storage.unwrap()).is_none(), "{storage}");
    }
}

/// Passes once the disk storage checks its directory at open (the engine's job).
#[tokio::test]
async fn a_cache_directory_that_cannot_be_opened_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-directory");
    std::fs::write(&file, b"x").unwrap();
    for storage in [
        format!("disk:{}", file.display()),
        format!("memory+disk:{}", file.display()),
    ] {
        let e = settings(&storage)
            .cache_config()
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("disk storage") && e.contains("not-a-directory"),
            "{storage}: {e}"
        );
    }
}
