//! [`RedisConfig`]: where the cache lives in Redis and how long to wait for it.

use std::time::Duration;

use crate::{Error, Result};

/// Settings of a [`RedisStorage`](crate::RedisStorage).
///
/// Start from [`RedisConfig::new`] and change the fields that matter:
///
/// ```
/// use std::time::Duration;
/// use larder_storage_redis::RedisConfig;
///
/// let mut config = RedisConfig::new("redis://127.0.0.1:6379");
/// config.prefix = "edge-cache:".into();
/// config.timeout = Duration::from_millis(100);
/// assert_eq!(config.chunk_size, 64 * 1024);
/// assert!(config.validate().is_ok());
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RedisConfig {
    /// The server, as a `redis://host:port/db` URL (`rediss://` needs a TLS build of the
    /// `redis` crate, which this crate does not enable).
    pub url: String,
    /// Prepended to every key, so several caches (or other data) can share one Redis.
    /// Default `"larder:"`.
    pub prefix: String,
    /// The size of the body chunks, each stored under its own key. Bodies stream in and out
    /// one chunk at a time. Default 64 KiB.
    pub chunk_size: usize,
    /// The longest any one Redis call may take (each pipeline or script counts as one call).
    /// A call that takes longer fails with [`Error::Timeout`]: lookups become misses, writes
    /// are dropped. Default 250 ms.
    pub timeout: Duration,
    /// The longest one connection attempt may take. Default 1 s.
    pub connect_timeout: Duration,
    /// How long the body chunks of an unfinished write live. A write must finish within this
    /// time (it is dropped otherwise), and the chunks of an abandoned write vanish after it.
    /// Also how long an invalidation is remembered to stop writes that started before it.
    /// Default 5 minutes.
    pub part_ttl: Duration,
    /// The least time a stored entry lives, however stale it is already. Responses that are
    /// stored stale on purpose (`no-cache` with validators) stay revalidatable this long.
    /// Default 60 s.
    pub min_ttl: Duration,
    /// How long an entry is kept past `fresh_until` plus its largest stale window (for
    /// conditional revalidation). Default 0.
    pub stale_retention: Duration,
    /// How long the chunks of a replaced entry stay readable, so hits that are streaming
    /// them when a newer version is published can finish. Default 60 s.
    pub replace_grace: Duration,
    /// How many chunks a hit fetches per round trip. Default 4.
    pub read_ahead: usize,
    /// After this many calls in a row that could not reach Redis or timed out, Redis is
    /// skipped (calls fail at once) for [`breaker_cooldown`](Self::breaker_cooldown). 0 never
    /// skips. Default 5.
    pub breaker_threshold: u32,
    /// How long Redis is skipped once the breaker opens; then one call probes it. Default 1 s.
    pub breaker_cooldown: Duration,
}

impl RedisConfig {
    /// The defaults, for the server at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        RedisConfig {
            url: url.into(),
            prefix: "larder:".to_owned(),
            chunk_size: 64 * 1024,
            timeout: Duration::from_millis(250),
            connect_timeout: Duration::from_secs(1),
            part_ttl: Duration::from_mins(5),
            min_ttl: Duration::from_mins(1),
            stale_retention: Duration::ZERO,
            replace_grace: Duration::from_mins(1),
            read_ahead: 4,
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(1),
        }
    }

    /// Checks the settings, the URL's syntax included (whether a server answers there is
    /// only known when connecting).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for a URL that does not parse (or asks for TLS, which this
    /// build lacks), a zero chunk size, read-ahead, timeout or part TTL, or a chunk size above
    /// Redis' 512 MiB string limit.
    pub fn validate(&self) -> Result<()> {
        let fail = |reason: &str| {
            Err(Error::InvalidConfig {
                reason: reason.to_owned(),
            })
        };
        if let Err(e) = redis::Client::open(self.url.as_str()) {
            return Err(Error::InvalidConfig {
                reason: format!("redis url {:?}: {e}", self.url),
            });
        }
        if self.chunk_size == 0 {
            return fail("chunk_size must not be zero");
        }
        if self.chunk_size > MAX_CHUNK_SIZE {
            return fail("chunk_size must be at most 512 MiB");
        }
        if self.read_ahead == 0 {
            return fail("read_ahead must not be zero");
        }
        if self.timeout.is_zero() || self.connect_timeout.is_zero() {
            return fail("timeouts must not be zero");
        }
        if self.part_ttl < Duration::from_millis(1) {
            return fail("part_ttl must be at least 1 ms");
        }
        Ok(())
    }
}

/// The most chunks one body may have. Scripts loop over the chunks of an entry, so a corrupt
/// chunk count must not make them run for long; the Lua scripts use the same number.
pub(crate) const MAX_CHUNKS: usize = 100_000;

/// Redis' limit on the size of one string value.
pub(crate) const MAX_CHUNK_SIZE: usize = 512 * 1024 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    fn check(url: &str, ok: bool) {
        let result = RedisConfig::new(url).validate();
        assert_eq!(result.is_ok(), ok, "{url}: {result:?}");
        if let Err(e) = result {
            assert!(e.to_string().contains("redis url"), "{e}");
        }
    }

    #[test]
    fn urls_are_checked_without_connecting() {
        check("redis://127.0.0.1:6379", true);
        check("redis://10.0.0.5:6379/2", true);
        check("redis://:secret@cache.internal", true);
        check("redis://", false);
        check("127.0.0.1:6379", false);
        check("redis://host:notaport", false);
        check("rediss://127.0.0.1:6379", false);
    }
}
