//! Tests of the parent module.

use super::*;

#[test]
fn parses_a_full_file() {
    let c = ProxyConfig::from_toml(
        "listen = \"127.0.0.1:1\"\nupstream = \"http://127.0.0.1:2\"\n[cache]\nsize = 1000\n\
         max_object_size = 10\neviction = \"lru\"\npurge_token = \"t\"\n",
    )
    .unwrap();
    assert_eq!(c.listen.port(), 1);
    assert_eq!(c.cache.eviction, EvictionPolicy::Lru);
    assert_eq!(c.cache.size, 1000);
    c.validate().unwrap();
}

#[test]
fn errors_name_the_line() {
    let e =
        ProxyConfig::from_toml("listen = \"127.0.0.1:1\"\n[cache]\nsize = \"big\"\n").unwrap_err();
    assert!(e.to_string().contains("line 3"), "{e}");
    let e = ProxyConfig::from_toml("bogus = 1\n").unwrap_err();
    assert!(e.to_string().contains("bogus"), "{e}");
}

#[test]
fn validation_names_the_field() {
    let mut c = ProxyConfig::default();
    assert!(c.validate().unwrap_err().to_string().contains("upstream"));
    c.upstream = Some("ftp://x".into());
    assert!(matches!(
        c.validate(),
        Err(Error::Proxy(larder_proxy::Error::UpstreamUri(_)))
    ));
    c.upstream = Some("http://127.0.0.1:9".into());
    c.cache.size = 0;
    assert!(c.validate().unwrap_err().to_string().contains("cache.size"));
    c.cache.size = 1;
    c.cache.cache_status_name = "a b".into();
    assert!(
        c.validate()
            .unwrap_err()
            .to_string()
            .contains("cache_status_name")
    );
}

#[test]
fn storage_is_memory_or_a_redis_url() {
    let c = ProxyConfig::from_toml(
        "upstream = \"http://127.0.0.1:2\"\n[cache]\nstorage = \"redis://10.0.0.5:6379/2\"\n\
         redis_prefix = \"edge:\"\nredis_timeout_ms = 100\n",
    )
    .unwrap();
    assert_eq!(
        c.cache.storage,
        StorageBackend::Redis("redis://10.0.0.5:6379/2".into())
    );
    assert_eq!(
        (c.cache.redis_prefix.as_str(), c.cache.redis_timeout_ms),
        ("edge:", 100)
    );
    c.validate().unwrap();
    assert_eq!(
        "memory".parse::<StorageBackend>().unwrap(),
        StorageBackend::Memory
    );
    let e = ProxyConfig::from_toml("[cache]\nstorage = \"disk\"\n").unwrap_err();
    assert!(e.to_string().contains("disk:PATH"), "{e}");
    let mut c = c;
    c.cache.redis_timeout_ms = 0;
    assert!(
        c.validate()
            .unwrap_err()
            .to_string()
            .contains("redis_timeout_ms")
    );
}

/// Parses `[cache] storage = <value>` (after an unrelated first line, so errors name line 3).
fn storage(value: &str) -> Result<StorageBackend, String> {
    ProxyConfig::from_toml(&format!(
        "listen = \"127.0.0.1:1\"\n[cache]\nstorage = {value:?}\n"
    ))
    .map(|c| c.cache.storage)
    .map_err(|e| e.to_string())
}

#[test]
fn storage_values_parse_or_name_the_line() {
    let good = [
        ("memory", StorageBackend::Memory),
        (
            "redis://10.0.0.5:6379",
            StorageBackend::Redis("redis://10.0.0.5:6379".into()),
        ),
        (
            "memory+redis://10.0.0.5:6379/1",
            StorageBackend::Tiered("redis://10.0.0.5:6379/1".into()),
        ),
        (
            "memory+redis://:pw@cache.internal",
            StorageBackend::Tiered("redis://:pw@cache.internal".into()),
        ),
        (
            "memory+disk:/var/cache/larder+redis://10.0.0.5:6379",
            StorageBackend::Disk {
                memory: true,
                path: "/var/cache/larder".into(),
                redis: Some("redis://10.0.0.5:6379".into()),
            },
        ),
    ];
    for (value, want) in good {
        let got = storage(value).unwrap();
        assert_eq!(got, want, "{value}");
        assert_eq!(got.to_string(), value, "displays as written");
        assert_eq!(value.parse::<StorageBackend>().unwrap(), want, "as a flag");
    }
    let bad = [
        ("disk", "memory+redis://"),
        ("disk:", "needs a directory"),
        ("redis://h:1+disk:/c", "redis must be the last tier"),
        ("Memory", "expected memory"),
        ("", "unknown storage backend"),
        ("memory+", "only redis:// or disk:PATH can follow memory+"),
        (
            "memory+disk",
            "only redis:// or disk:PATH can follow memory+",
        ),
        (
            "memory+memory",
            "only redis:// or disk:PATH can follow memory+",
        ),
        ("redis+memory://h:1", "unknown storage backend"),
        ("memory+rediss://h:6379", "use redis://"),
        ("redis://", "redis url"),
        ("memory+redis://", "redis url"),
        ("redis://h:port", "redis url"),
        ("memory+redis://h:99999", "redis url"),
    ];
    for (value, says) in bad {
        let e = storage(value).unwrap_err();
        assert!(e.contains("line 3") && e.contains(says), "{value}: {e}");
        let flag = value.parse::<StorageBackend>().unwrap_err().to_string();
        assert!(flag.contains(says), "{value}: {flag}");
    }
}

#[test]
fn set_cookie_policy_is_a_word_or_names_the_line() {
    let parse = |text: &str| ProxyConfig::from_toml(text).map(|c| c.cache.set_cookie);
    assert_eq!(parse("").unwrap(), SetCookiePolicy::OptIn, "the default");
    for policy in SetCookiePolicy::ALL {
        let text = format!("listen = \"127.0.0.1:1\"\n[cache]\nset_cookie = \"{policy}\"\n");
        assert_eq!(parse(&text).unwrap(), policy);
    }
    for bad in ["\"replay\"", "\"Never\"", "true"] {
        let e = parse(&format!(
            "listen = \"127.0.0.1:1\"\n[cache]\nset_cookie = {bad}\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("line 3"), "{bad}: {e}");
    }
    let e = parse("[cache]\nset_cookie = \"replay\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("never, opt-in or strip"), "{e}");
    let settings = CacheSettings {
        set_cookie: SetCookiePolicy::Never,
        ..CacheSettings::default()
    };
    assert_eq!(
        settings.cache_config().unwrap().set_cookie,
        SetCookiePolicy::Never
    );
}

#[test]
fn local_ttl_needs_tiered_storage() {
    let text = "upstream = \"http://127.0.0.1:2\"\n[cache]\nstorage = \"memory+redis://127.0.0.1:1\"\n\
                local_ttl_secs = 30\n";
    let mut c = ProxyConfig::from_toml(text).unwrap();
    assert_eq!(c.cache.local_ttl_secs, 30);
    c.validate().unwrap();
    for local_then_redis in ["disk:/c+redis://h:1", "memory+disk:/c+redis://h:1"] {
        c.cache.storage = local_then_redis.parse().unwrap();
        c.validate().unwrap();
    }
    for other in [
        StorageBackend::Memory,
        StorageBackend::Redis("redis://127.0.0.1:1".into()),
        "memory+disk:/c".parse().unwrap(),
    ] {
        c.cache.storage = other;
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("cache.local_ttl_secs") && e.contains("memory+redis"),
            "{e}"
        );
    }
    c.cache.storage = StorageBackend::Tiered("redis://127.0.0.1:1".into());
    c.cache.local_ttl_secs = 0;
    c.cache.redis_timeout_ms = 0;
    assert!(
        c.validate()
            .unwrap_err()
            .to_string()
            .contains("redis_timeout_ms")
    );
    let e = ProxyConfig::from_toml("[cache]\nlocal_ttl_secs = -1\n").unwrap_err();
    assert!(e.to_string().contains("line 2"), "{e}");
}

#[test]
fn disk_settings_read_sizes_with_units_and_sync_words() {
    let c = ProxyConfig::from_toml(
        "upstream = \"http://127.0.0.1:2\"\n[cache]\nstorage = \"memory+disk:/var/cache/larder\"\n\
         size = \"64MiB\"\ndisk_size = \"20GiB\"\ndisk_sync = \"always\"\n\
         max_object_size = \"1GB\"\neviction = \"lru\"\n",
    )
    .unwrap();
    c.validate().unwrap();
    assert_eq!(c.cache.size, 64 << 20);
    assert_eq!(c.cache.disk_size, 20 << 30);
    assert_eq!(c.cache.max_object_size, Some(1_000_000_000));
    assert_eq!(c.cache.disk_sync, DiskSync::Always);
    assert_eq!(
        c.cache.storage.disk_path(),
        Some(Path::new("/var/cache/larder"))
    );
    let defaults = CacheSettings::default();
    assert_eq!(
        (defaults.disk_size, defaults.disk_sync),
        (1 << 30, DiskSync::Never)
    );
    assert_eq!(
        ProxyConfig::from_toml("[cache]\ndisk_size = 4096\n")
            .unwrap()
            .cache
            .disk_size,
        4096
    );

    let error = |text: &str| ProxyConfig::from_toml(text).unwrap_err().to_string();
    let e = error("listen = \"127.0.0.1:1\"\n[cache]\ndisk_size = \"20 parsecs\"\n");
    assert!(e.contains("line 3") && e.contains("unknown unit"), "{e}");
    let e = error("[cache]\ndisk_sync = \"sometimes\"\n");
    assert!(e.contains("never or always"), "{e}");
    let e = error("[cache]\nsize = -5\n");
    assert!(e.contains("line 2"), "{e}");

    let mut c = c;
    c.cache.disk_size = 0;
    let e = c.validate().unwrap_err().to_string();
    assert!(e.contains("cache.disk_size"), "{e}");
    c.cache.storage = StorageBackend::Memory;
    c.validate().unwrap();
}

#[test]
fn durations_take_units_under_old_and_new_names() {
    let c = ProxyConfig::from_toml(
        "shutdown_grace = \"30s\"\n[cache]\nlock_timeout = \"2s\"\nlock_age_ms = 750\n\
         redis_timeout = \"1s\"\ndefault_ttl = \"2m\"\nstale_while_revalidate_secs = \"1h\"\n\
         stale_if_error = 30\n",
    )
    .unwrap();
    assert_eq!(c.shutdown_grace, std::time::Duration::from_secs(30));
    assert_eq!(
        (
            c.cache.lock_timeout_ms,
            c.cache.lock_age_ms,
            c.cache.redis_timeout_ms
        ),
        (2000, 750, 1000)
    );
    assert_eq!(
        (
            c.cache.default_ttl_secs,
            c.cache.stale_while_revalidate_secs,
            c.cache.stale_if_error_secs
        ),
        (Some(120), 3600, 30),
        "bare numbers keep the key's unit"
    );
    let error = |text: &str| ProxyConfig::from_toml(text).unwrap_err().to_string();
    let e = error("[cache]\nlock_timeout = \"5 fortnights\"\n");
    assert!(e.contains("line 2") && e.contains("unknown unit"), "{e}");
    let e = error("[cache]\nlocal_ttl = \"500ms\"\n");
    assert!(e.contains("whole number of seconds"), "{e}");
    let e = error("[cache]\nlock_timeout = \"1s\"\nlock_timeout_ms = 5\n");
    assert!(e.contains("duplicate"), "{e}");
    assert_eq!(
        ProxyConfig::default().shutdown_grace,
        std::time::Duration::from_secs(10)
    );
}

#[test]
fn sites_listeners_and_forwarding_parse() {
    let c = ProxyConfig::from_toml(
        "unknown_host = 404\n[forwarding]\nx_forwarded_for = true\n\
         [[listener]]\naddress = \"0.0.0.0:443\"\ntls_cert = \"/c/a.pem\"\ntls_key = \"/c/a.key\"\n\
         certificates = [{ cert = \"/c/b.pem\", key = \"/c/b.key\" }]\n\
         [[listener]]\naddress = \"0.0.0.0:80\"\n\
         [[site]]\nhosts = [\"a.example\", \"*.a.example\"]\nupstream = \"https://origin-a:8443\"\n\
         sni = \"origin-a.internal\"\nconnect_timeout = \"3s\"\nresponse_timeout = 20\n\
         default_ttl = \"5m\"\nmax_object_size = \"32MiB\"\ncache_status_name = \"edge-a\"\n\
         [[site]]\nhosts = [\"b.example\"]\nupstream = \"http://127.0.0.1:8001\"\n\
         forwarding = { forwarded = true }\nhost = \"b.internal\"\n",
    )
    .unwrap();
    c.validate().unwrap();
    assert_eq!(c.unknown_host, UnknownHost::NotFound);
    let listeners = c.listener_list();
    assert_eq!(listeners.len(), 2);
    assert_eq!(listeners[0].cert_pairs().len(), 2);
    assert!(listeners[0].is_tls() && !listeners[1].is_tls());
    let sites = c.site_list();
    assert_eq!(sites.len(), 2);
    assert_eq!(sites[0].default_ttl, Some(300));
    assert_eq!(sites[0].max_object_size, Some(32 << 20));
    let a = sites[0].upstream_options(c.forwarding);
    assert_eq!(a.sni.as_deref(), Some("origin-a.internal"));
    assert_eq!(a.connect_timeout, std::time::Duration::from_secs(3));
    assert_eq!(a.response_timeout, std::time::Duration::from_secs(20));
    assert!(a.forwarded.x_forwarded_for && !a.forwarded.forwarded);
    let b = sites[1].upstream_options(c.forwarding);
    assert!(
        b.forwarded.forwarded && !b.forwarded.x_forwarded_for,
        "a site's own"
    );
    assert_eq!(b.host.as_deref(), Some("b.internal"));

    // Without [[site]] and [[listener]]: one site for every host, one plain listener.
    let c = ProxyConfig::from_toml("upstream = \"http://127.0.0.1:1\"\n").unwrap();
    c.validate().unwrap();
    assert_eq!(c.site_list()[0].hosts, ["*"]);
    assert_eq!(c.listener_list()[0].address, c.listen);
    assert_eq!(c.unknown_host, UnknownHost::Misdirected);
}

#[test]
fn bad_sites_and_listeners_are_clear_errors() {
    let site = |extra: &str| format!("[[site]]\nhosts = [\"a.example\"]\n{extra}");
    for (text, says) in [
        (
            format!(
                "upstream = \"http://127.0.0.1:1\"\n{}",
                site("upstream = \"http://h\"\n")
            ),
            "cannot both be set",
        ),
        (site("upstream = \"ftp://h\"\n"), "must be http://host"),
        (
            site("upstream = \"http://h\"\nca_file = \"/ca.pem\"\n"),
            "need an https:// upstream",
        ),
        (
            site("upstream = \"http://h\"\ncache_status_name = \"a b\"\n"),
            "token",
        ),
        (
            site("upstream = \"http://h\"\npurge_token = \"\"\n"),
            "purge_token",
        ),
        (
            site("upstream = \"http://h\"\nconnect_timeout = 0\n"),
            "above 0",
        ),
        (
            "[[site]]\nhosts = [\"a.example:80\"]\nupstream = \"http://h\"\n".to_owned(),
            "without a port",
        ),
        (
            "[[site]]\nhosts = []\nupstream = \"http://h\"\n".to_owned(),
            "at least one host",
        ),
        (
            format!(
                "{}{}",
                site("upstream = \"http://h\"\n"),
                "[[site]]\nhosts = [\"A.example\"]\nupstream = \"http://i\"\n"
            ),
            "named by two sites",
        ),
        (
            format!(
                "{}[[listener]]\naddress = \"127.0.0.1:1\"\ntls_cert = \"/a.pem\"\n",
                site("upstream = \"http://h\"\n")
            ),
            "tls_cert and tls_key go together",
        ),
        (
            format!(
                "{}[[listener]]\naddress = \"127.0.0.1:1\"\n[[listener]]\naddress = \"127.0.0.1:1\"\n",
                site("upstream = \"http://h\"\n")
            ),
            "two listeners",
        ),
    ] {
        let c = ProxyConfig::from_toml(&text).unwrap();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains(says), "{text}: {e}");
    }
    let e = ProxyConfig::from_toml("unknown_host = 500\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("421 or 404"), "{e}");
    let e = ProxyConfig::from_toml("[[site]]\nhosts = [\"a\"]\nupstream = \"http://h\"\nttl = 5\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown field"), "{e}");
}
