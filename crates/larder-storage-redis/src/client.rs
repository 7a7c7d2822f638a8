//! [`Client`]: the connection to Redis, every call bounded by the timeout and the circuit
//! breaker, and the key layout of an entry. What the storage and its hit and miss handlers
//! share; it imports none of them.

use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use larder_storage::{CacheMeta, HashBinary};
use redis::Script;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::breaker::Breaker;
use crate::config::RedisConfig;
use crate::error::{Error, Result};
use crate::scripts;
use crate::stats::{Counters, inc};

/// The connection, settings, counters and breaker of one [`RedisStorage`](crate::RedisStorage).
pub(crate) struct Client {
    conn: ConnectionManager,
    config: RedisConfig,
    counters: Counters,
    scripts: Scripts,
    ids: IdSource,
    breaker: Breaker,
    /// Whether the last call found Redis unreachable (for logging outages once).
    down: AtomicBool,
}

/// The Lua scripts, hashed once and sent by hash (`EVALSHA`).
pub(crate) struct Scripts {
    pub(crate) publish: Script,
    pub(crate) purge: Script,
    pub(crate) update_meta: Script,
}

/// Random, process-unique ids for body versions and invalidation markers.
struct IdSource {
    hasher: RandomState,
    counter: AtomicU64,
}

impl IdSource {
    fn next(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let id = self.hasher.hash_one((n, nanos, std::process::id()));
        format!("{id:016x}")
    }
}

/// The keys of one entry: `base` is `<prefix>{<hash hex>}:`.
#[derive(Debug, Clone)]
pub(crate) struct EntryKeys {
    pub(crate) base: String,
}

impl EntryKeys {
    fn new(prefix: &str, hash: HashBinary) -> Self {
        use std::fmt::Write;
        let mut base = String::with_capacity(prefix.len() + 2 * hash.len() + 3);
        base.push_str(prefix);
        base.push('{');
        for b in hash {
            let _ = write!(base, "{b:02x}");
        }
        base.push_str("}:");
        EntryKeys { base }
    }

    pub(crate) fn meta(&self) -> String {
        format!("{}m", self.base)
    }

    pub(crate) fn marker(&self) -> String {
        format!("{}p", self.base)
    }

    pub(crate) fn chunk(&self, version: &str, index: usize) -> String {
        format!("{}{version}:{index}", self.base)
    }
}

/// `url` without the password of its user info (`redis://user:***@host`), for logs.
fn redacted(url: &str) -> std::borrow::Cow<'_, str> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.into();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.into();
    };
    let user = rest[..at]
        .split_once(':')
        .map_or(&rest[..at], |(user, _)| user);
    format!("{scheme}://{user}:***{}", &rest[at..]).into()
}

/// The latest expiry Redis is given (the end of year 9999), so far-future freshness does not
/// overflow anything.
const MAX_EXPIRE_MS: u64 = 253_402_300_799_000;

impl Client {
    /// A client for the server in `config`, connecting lazily (see
    /// [`RedisStorage::new`](crate::RedisStorage::new)).
    pub(crate) fn new(config: RedisConfig) -> Result<Self> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::NoRuntime);
        }
        config.validate()?;
        let client =
            redis::Client::open(config.url.as_str()).map_err(|e| Error::InvalidConfig {
                reason: format!("redis url {:?}: {e}", config.url),
            })?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.timeout))
            // Retry a failed connect a couple of times, quickly; after that every call that
            // finds no connection starts a new attempt, so a returning server is found on the
            // next call rather than after a long back-off.
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(Duration::from_millis(100));
        let conn = ConnectionManager::new_lazy_with_config(client, manager_config)?;
        Ok(Client {
            conn,
            counters: Counters::default(),
            scripts: Scripts {
                publish: Script::new(scripts::PUBLISH),
                purge: Script::new(scripts::PURGE),
                update_meta: Script::new(scripts::UPDATE_META),
            },
            ids: IdSource {
                hasher: RandomState::new(),
                counter: AtomicU64::new(0),
            },
            breaker: Breaker::new(config.breaker_threshold, config.breaker_cooldown),
            down: AtomicBool::new(false),
            config,
        })
    }

    /// The settings.
    pub(crate) fn config(&self) -> &RedisConfig {
        &self.config
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.counters
    }

    pub(crate) fn scripts(&self) -> &Scripts {
        &self.scripts
    }

    pub(crate) fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    pub(crate) fn keys(&self, hash: HashBinary) -> EntryKeys {
        EntryKeys::new(&self.config.prefix, hash)
    }

    /// Whether calls are being refused after repeated failures.
    pub(crate) fn is_marked_down(&self) -> bool {
        self.breaker.is_open()
    }

    /// Runs one Redis call with the configured timeout, counting failures; refuses it at once
    /// while the circuit breaker is open.
    pub(crate) async fn call<T>(
        &self,
        fut: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T> {
        if !self.breaker.allow() {
            inc(&self.counters.skipped);
            return Err(Error::Unavailable);
        }
        let result = match tokio::time::timeout(self.config.timeout, fut).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) if !e.is_timeout() => Err(Error::Redis(e)),
            // The connection's own response timeout (the same duration) or ours.
            Ok(Err(_)) | Err(_) => {
                inc(&self.counters.timeouts);
                Err(Error::Timeout(self.config.timeout))
            }
        };
        match &result {
            Err(e) if e.is_unavailable() => {
                inc(&self.counters.errors);
                self.breaker.failure();
                // One line per outage, not one per request.
                if !self.down.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        error = %e,
                        url = %redacted(&self.config.url),
                        "redis cache tier unreachable: lookups are misses and writes are dropped until it returns"
                    );
                }
            }
            // Redis answered (perhaps with an error about the data): it is reachable.
            _ => {
                if result.is_err() {
                    inc(&self.counters.errors);
                }
                self.breaker.success();
                if self.down.swap(false, Ordering::Relaxed) {
                    tracing::info!(url = %redacted(&self.config.url), "redis cache tier reachable again");
                }
            }
        }
        result
    }

    /// When every part of an entry with `meta` expires, in ms since the epoch.
    pub(crate) fn expire_at_ms(&self, meta: &CacheMeta, now: SystemTime) -> u64 {
        let stale = Duration::from_secs(u64::from(
            meta.stale_while_revalidate_sec()
                .max(meta.stale_if_error_sec()),
        ));
        let floor = now.checked_add(self.config.min_ttl).unwrap_or(now);
        let by_meta = meta
            .fresh_until()
            .checked_add(stale)
            .and_then(|t| t.checked_add(self.config.stale_retention))
            // Too far away to represent: as late as Redis is told.
            .unwrap_or(SystemTime::UNIX_EPOCH + Duration::from_millis(MAX_EXPIRE_MS));
        let at = by_meta.max(floor);
        let ms = at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
            .min(u128::from(MAX_EXPIRE_MS));
        u64::try_from(ms).unwrap_or(MAX_EXPIRE_MS)
    }

    pub(crate) fn new_id(&self) -> String {
        self.ids.next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logged_urls_hide_the_password() {
        for (url, logged) in [
            ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
            ("redis://:secret@h:1/2", "redis://:***@h:1/2"),
            ("redis://user:secret@h:1", "redis://user:***@h:1"),
            ("redis://user@h", "redis://user:***@h"),
            ("redis://h/0?x=a@b", "redis://h/0?x=a@b"),
            ("not a url", "not a url"),
        ] {
            assert_eq!(redacted(url), logged, "{url}");
        }
    }

    #[test]
    fn keys_share_one_hash_tag() {
        let keys = EntryKeys::new("p:", [0xab; 16]);
        let tag = format!("{{{}}}", "ab".repeat(16));
        assert_eq!(keys.meta(), format!("p:{tag}:m"));
        assert_eq!(keys.marker(), format!("p:{tag}:p"));
        assert_eq!(keys.chunk("v9", 3), format!("p:{tag}:v9:3"));
    }
}
