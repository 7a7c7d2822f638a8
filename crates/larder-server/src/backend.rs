//! [`StorageBackend`]: the `storage` setting (`--storage`), its grammar and its checks; and
//! [`DiskSync`], the `disk_sync` setting.
//!
//! ```text
//! storage  = "memory" | redis | tiers
//! tiers    = ["memory+"] "disk:" PATH ["+" redis] | "memory+" redis
//! redis    = "redis://" host [":" port] ["/" db]
//! ```
//!
//! Tiers are joined by `+`, fastest first: `memory` (when present) comes first, a redis URL
//! last; `disk:PATH`'s path runs to the next `+redis://` (or `+rediss://`) or to the end, so
//! it may itself hold a `+`.

use std::path::PathBuf;

use serde::Deserialize;

use crate::Error;

/// Where responses are stored: `memory`, `redis://host:port[/db]`,
/// `memory+redis://host:port[/db]`, or tiers with a disk: `disk:PATH`, `memory+disk:PATH`,
/// `disk:PATH+redis://…`, `memory+disk:PATH+redis://…`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(try_from = "String")]
#[non_exhaustive]
pub enum StorageBackend {
    /// `memory`: in process memory, bounded by `cache.size`.
    #[default]
    Memory,
    /// `redis://host:port[/db]`: a Redis (or Valkey) server at this URL, shared by every proxy
    /// pointing at it. Redis bounds its own memory (`maxmemory`); `cache.size` does not apply.
    Redis(String),
    /// `memory+redis://host:port[/db]`: each proxy's own memory tier of `cache.size` bytes in
    /// front of the Redis server at this URL (held without the `memory+`), shared by the
    /// fleet. Hot objects are served from memory, misses are filled from Redis before going
    /// upstream.
    Tiered(String),
    /// `[memory+]disk:PATH[+redis://…]`: a directory of at most `cache.disk_size` bytes that
    /// survives restarts, optionally behind a memory tier of `cache.size` bytes and in front
    /// of a Redis server shared by a fleet.
    Disk {
        /// Whether a memory tier comes first (`memory+disk:…`).
        memory: bool,
        /// The cache directory.
        path: PathBuf,
        /// The Redis URL of a last, shared tier (`…+redis://…`).
        redis: Option<String>,
    },
}

impl StorageBackend {
    /// The Redis URL of the backends that have a Redis tier.
    pub fn redis_url(&self) -> Option<&str> {
        match self {
            Self::Memory | Self::Disk { redis: None, .. } => None,
            Self::Redis(url)
            | Self::Tiered(url)
            | Self::Disk {
                redis: Some(url), ..
            } => Some(url),
        }
    }

    /// The cache directory of the backends that have a disk tier.
    pub fn disk_path(&self) -> Option<&std::path::Path> {
        match self {
            Self::Disk { path, .. } => Some(path),
            _ => None,
        }
    }

    /// Whether a memory tier comes first: `memory`, `memory+redis://…`, `memory+disk:…`.
    pub fn has_memory(&self) -> bool {
        match self {
            Self::Memory | Self::Tiered(_) => true,
            Self::Redis(_) => false,
            Self::Disk { memory, .. } => *memory,
        }
    }

    /// Whether local tiers (memory, disk) are in front of a shared Redis: what
    /// `local_ttl_secs` bounds.
    pub fn has_local_tier_before_redis(&self) -> bool {
        matches!(self, Self::Tiered(_) | Self::Disk { redis: Some(_), .. })
    }
}

impl std::fmt::Display for StorageBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Memory => f.write_str("memory"),
            Self::Redis(url) => f.write_str(url),
            Self::Tiered(url) => write!(f, "memory+{url}"),
            Self::Disk {
                memory,
                path,
                redis,
            } => {
                if *memory {
                    f.write_str("memory+")?;
                }
                write!(f, "disk:{}", path.display())?;
                if let Some(url) = redis {
                    write!(f, "+{url}")?;
                }
                Ok(())
            }
        }
    }
}

/// What every storage error message ends with.
const FORMS: &str = "expected memory, redis://host:port, memory+redis://host:port, disk:PATH, \
                     memory+disk:PATH, disk:PATH+redis://host:port or \
                     memory+disk:PATH+redis://host:port";

fn invalid(message: String) -> Error {
    Error::ConfigInvalid(message)
}

/// Checks the syntax of a Redis URL (nothing is contacted).
fn check_redis_url(url: &str) -> Result<String, Error> {
    if url.starts_with("rediss://") {
        return Err(invalid(format!(
            "storage: {url:?}: TLS to Redis (rediss://) is not supported; use redis://"
        )));
    }
    larder_storage_redis::RedisConfig::new(url)
        .validate()
        .map_err(|e| invalid(format!("storage: {e}")))?;
    Ok(url.to_owned())
}

/// Parses what follows `disk:` (and an optional `+redis://…`).
fn parse_disk(s: &str, memory: bool, rest: &str) -> Result<StorageBackend, Error> {
    let redis_at = ["+redis://", "+rediss://"]
        .iter()
        .filter_map(|tag| rest.find(tag))
        .min();
    let (path, redis) = match redis_at {
        Some(at) => (&rest[..at], Some(&rest[at + 1..])),
        None => (rest, None),
    };
    if path.is_empty() {
        return Err(invalid(format!(
            "storage {s:?}: disk: needs a directory (disk:/var/cache/larder)"
        )));
    }
    if path.ends_with("+memory") || path.contains("+memory+") || path.contains("+disk:") {
        return Err(invalid(format!(
            "storage {s:?}: tiers go memory, then disk:PATH, then redis://…, each at most once"
        )));
    }
    let redis = redis.map(check_redis_url).transpose()?;
    Ok(StorageBackend::Disk {
        memory,
        path: PathBuf::from(path),
        redis,
    })
}

impl std::str::FromStr for StorageBackend {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        if s == "memory" {
            Ok(Self::Memory)
        } else if let Some(rest) = s.strip_prefix("memory+") {
            if let Some(disk) = rest.strip_prefix("disk:") {
                parse_disk(s, true, disk)
            } else if rest.starts_with("redis://") {
                if rest.contains("+disk:") || rest.contains("+memory") {
                    return Err(invalid(format!(
                        "storage {s:?}: redis must be the last tier (memory+disk:PATH+redis://…)"
                    )));
                }
                check_redis_url(rest).map(Self::Tiered)
            } else if rest.starts_with("rediss://") {
                check_redis_url(rest).map(Self::Tiered)
            } else {
                Err(invalid(format!(
                    "unknown storage backend {s:?}: only redis:// or disk:PATH can follow \
                     memory+ (memory+redis://host:port, memory+disk:/var/cache/larder)"
                )))
            }
        } else if let Some(disk) = s.strip_prefix("disk:") {
            parse_disk(s, false, disk)
        } else if s.starts_with("redis://") || s.starts_with("rediss://") {
            if s.contains("+disk:") || s.contains("+memory") {
                return Err(invalid(format!(
                    "storage {s:?}: redis must be the last tier (disk:PATH+redis://…)"
                )));
            }
            check_redis_url(s).map(Self::Redis)
        } else {
            Err(invalid(format!("unknown storage backend {s:?} ({FORMS})")))
        }
    }
}

impl TryFrom<String> for StorageBackend {
    type Error = Error;

    fn try_from(s: String) -> Result<Self, Error> {
        s.parse()
    }
}

/// When the disk tier flushes what it writes to the device: `never` (the default) or
/// `always`; see `larder_storage_disk::SyncPolicy`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
#[non_exhaustive]
pub enum DiskSync {
    /// Never fsync: an entry survives a crash of the process (the kernel has the data); a
    /// power loss may lose recent entries, which the checksums then turn into misses.
    #[default]
    Never,
    /// fsync each entry (body, meta and directory) before it becomes visible.
    Always,
}

impl std::str::FromStr for DiskSync {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "never" => Ok(Self::Never),
            "always" => Ok(Self::Always),
            _ => Err(Error::ConfigInvalid(format!(
                "unknown disk sync policy {s:?} (expected never or always)"
            ))),
        }
    }
}

impl TryFrom<String> for DiskSync {
    type Error = Error;

    fn try_from(s: String) -> Result<Self, Error> {
        s.parse()
    }
}

impl std::fmt::Display for DiskSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Never => "never",
            Self::Always => "always",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk(memory: bool, path: &str, redis: Option<&str>) -> StorageBackend {
        StorageBackend::Disk {
            memory,
            path: path.into(),
            redis: redis.map(str::to_owned),
        }
    }

    #[test]
    fn every_form_parses_and_displays_as_written() {
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
                "disk:/var/cache/larder",
                disk(false, "/var/cache/larder", None),
            ),
            ("disk:./cache", disk(false, "./cache", None)),
            (
                "memory+disk:/var/cache/larder",
                disk(true, "/var/cache/larder", None),
            ),
            (
                "memory+disk:/srv/c+d+redis://h:6379/2",
                disk(true, "/srv/c+d", Some("redis://h:6379/2")),
            ),
            (
                "disk:/c+redis://:pw@cache.internal",
                disk(false, "/c", Some("redis://:pw@cache.internal")),
            ),
            ("disk:/a b/c", disk(false, "/a b/c", None)),
        ];
        for (value, want) in good {
            let got: StorageBackend = value.parse().unwrap();
            assert_eq!(got, want, "{value}");
            assert_eq!(got.to_string(), value, "displays as written");
        }
    }

    #[test]
    fn what_each_form_holds() {
        let parse = |s: &str| s.parse::<StorageBackend>().unwrap();
        let b = parse("memory+disk:/c+redis://h:1");
        assert_eq!(
            (b.has_memory(), b.disk_path(), b.redis_url()),
            (true, Some(std::path::Path::new("/c")), Some("redis://h:1"))
        );
        assert!(b.has_local_tier_before_redis());
        let b = parse("disk:/c");
        assert_eq!((b.has_memory(), b.redis_url()), (false, None));
        assert!(!b.has_local_tier_before_redis());
        assert!(parse("disk:/c+redis://h:1").has_local_tier_before_redis());
        assert!(parse("memory+redis://h:1").has_local_tier_before_redis());
        assert!(!parse("redis://h:1").has_local_tier_before_redis());
        assert_eq!(parse("memory").disk_path(), None);
    }

    #[test]
    fn bad_forms_say_what_is_wrong() {
        let bad = [
            ("disk:", "disk: needs a directory"),
            ("memory+disk:", "disk: needs a directory"),
            ("disk:+redis://h:1", "disk: needs a directory"),
            ("disk", "expected memory"),
            (
                "memory+disk",
                "only redis:// or disk:PATH can follow memory+",
            ),
            ("memory+", "only redis:// or disk:PATH can follow memory+"),
            (
                "memory+memory",
                "only redis:// or disk:PATH can follow memory+",
            ),
            ("disk:/c+memory", "tiers go memory, then disk:PATH"),
            ("disk:/c+disk:/d", "tiers go memory, then disk:PATH"),
            ("redis://h:1+disk:/c", "redis must be the last tier"),
            ("memory+redis://h:1+disk:/c", "redis must be the last tier"),
            ("redis://h:1+memory", "redis must be the last tier"),
            ("disk:/c+redis://", "redis url"),
            ("disk:/c+redis://h:port", "redis url"),
            (
                "memory+disk:/c+rediss://h:6379",
                "TLS to Redis (rediss://) is not supported",
            ),
            (
                "memory+rediss://h:6379",
                "TLS to Redis (rediss://) is not supported",
            ),
            ("Memory", "expected memory"),
            ("", "unknown storage backend"),
            ("file:/c", "disk:PATH"),
        ];
        for (value, says) in bad {
            let e = value.parse::<StorageBackend>().unwrap_err().to_string();
            assert!(e.contains(says), "{value}: {e}");
        }
    }
}
