//! [`RedisStorage`]: the [`Storage`] implementation.

use std::any::Any;
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use larder_storage::{
    CacheKey, CacheMeta, CompactCacheKey, HashBinary, HitHandler, MissHandler, PurgeType, Storage,
};
use redis::Script;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tracing::Span;

use crate::breaker::Breaker;
use crate::config::{MAX_CHUNK_SIZE, MAX_CHUNKS};
use crate::hit::RedisHit;
use crate::miss::RedisMiss;
use crate::stats::{Counters, inc};
use crate::{Error, RedisConfig, RedisStats, Result, scripts};

/// A [`Storage`] on a Redis (or Valkey) server, shared by every proxy that points at it.
///
/// **Layout.** An entry is a meta hash plus, for a body longer than one chunk, the body in
/// chunks of [`chunk_size`](RedisConfig::chunk_size) bytes, each under its own key (a body of
/// at most one chunk lives in the meta hash). All keys are derived from
/// the hex [combined hash](CacheKey::combined_bin) of the cache key behind the configured
/// [`prefix`](RedisConfig::prefix): `larder:{<hash>}:m` for the meta and
/// `larder:{<hash>}:<version>:<i>` for the chunks. The braces are a Redis Cluster hash tag:
/// all keys of an entry live in one slot.
///
/// **Writes.** A [`MissHandler`] sends each full chunk once a byte follows it (one pipeline
/// per [`write_body`](larder_storage::HandleMiss::write_body) call, which is the write's
/// back-pressure), under a fresh version id and with a short expiry
/// ([`part_ttl`](RedisConfig::part_ttl)), so it never holds more than one chunk of the body.
/// [`finish`](larder_storage::HandleMiss::finish) publishes the meta (with the last chunk, or
/// the whole body when it fits in one) with one Lua script that checks that every chunk is
/// there, swaps the meta and sets the expiry of all parts:
/// an entry becomes visible only complete, and an unfinished write leaves nothing readable
/// (its chunks are deleted when the handler is dropped, and expire anyway). A replaced
/// version's chunks stay readable for [`replace_grace`](RedisConfig::replace_grace) so hits
/// streaming them can finish. Streaming partial writes are not supported
/// ([`support_streaming_partial_write`](Storage::support_streaming_partial_write) is
/// `false`): readers of a key being written wait for the cache lock or go upstream.
///
/// **Expiry.** Every key of an entry expires (`PEXPIREAT`) at `fresh_until` plus the larger
/// of its `stale-while-revalidate` and `stale-if-error` windows plus
/// [`stale_retention`](RedisConfig::stale_retention), and no sooner than
/// [`min_ttl`](RedisConfig::min_ttl) from the write. [`update_meta`](Storage::update_meta)
/// moves the expiry of all parts along with the new meta. Redis' own `maxmemory` policy can
/// still evict keys; a hit that finds a chunk gone fails with [`Error::MissingChunk`], never
/// ends a body short.
///
/// **Reads.** [`lookup`](Storage::lookup) is one `HMGET` of the meta hash, which also holds
/// the body when it fits in one chunk, so a small object costs one round trip. Larger bodies
/// are read lazily, [`read_ahead`](RedisConfig::read_ahead) chunks per round trip, and hits
/// seek (a range fetches only the chunks it covers).
///
/// **Invalidation.** [`purge`](Storage::purge) deletes every part at once. An
/// [invalidation](PurgeType::Invalidation) also leaves a marker so a write that started before
/// it is not published after it ([`finish`](larder_storage::HandleMiss::finish) fails with
/// [`WritePurged`](larder_storage::Error::WritePurged)).
///
/// **Failures.** Every Redis call is bounded by [`timeout`](RedisConfig::timeout). With Redis
/// down or slow, lookups fail quickly (a proxy treats that as a miss and serves from
/// upstream), writes fail and store nothing, and the connection manager reconnects by itself
/// so caching resumes when Redis is back. After
/// [`breaker_threshold`](RedisConfig::breaker_threshold) unreachable or timed-out calls in a
/// row, calls fail at once with [`Error::Unavailable`] for
/// [`breaker_cooldown`](RedisConfig::breaker_cooldown), then one call probes the server, so a
/// hung Redis does not cost every request a timeout. [`stats`](Self::stats) counts all of it.
pub struct RedisStorage {
    conn: ConnectionManager,
    config: RedisConfig,
    counters: Counters,
    scripts: Scripts,
    ids: IdSource,
    breaker: Breaker,
    /// Whether the last call found Redis unreachable (for logging outages once).
    down: AtomicBool,
}

struct Scripts {
    publish: Script,
    purge: Script,
    update_meta: Script,
}

impl std::fmt::Debug for RedisStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStorage")
            .field("config", &self.config)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
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

impl RedisStorage {
    /// A storage for the server in `config`. It connects lazily on first use and reconnects
    /// by itself whenever the connection breaks, so a Redis that is down at start-up only
    /// makes the first calls fail. Call [`ping`](Self::ping) to check the server.
    ///
    /// Must be called within a Tokio runtime (the connection manager spawns its tasks
    /// there). Storage methods take `&'static self`: leak the storage or keep it in a
    /// `static`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for an unusable URL or setting, [`Error::NoRuntime`] outside
    /// a Tokio runtime.
    pub fn new(config: RedisConfig) -> Result<Self> {
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
        Ok(RedisStorage {
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

    /// Checks that Redis answers, within the configured timeout.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] or [`Error::Timeout`] when it does not.
    pub async fn ping(&self) -> Result<()> {
        let mut conn = self.conn.clone();
        self.call(async move { redis::cmd("PING").query_async::<()>(&mut conn).await })
            .await
    }

    /// The settings.
    pub fn config(&self) -> &RedisConfig {
        &self.config
    }

    /// The counters of hits, misses, failures and writes since the storage was created.
    pub fn stats(&self) -> RedisStats {
        self.counters.snapshot()
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.counters
    }

    pub(crate) fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    pub(crate) fn keys(&self, hash: HashBinary) -> EntryKeys {
        EntryKeys::new(&self.config.prefix, hash)
    }

    /// The names of every Redis key holding part of the entry for `key` (the meta and the
    /// body chunks), for inspection and tests. Empty if there is no entry.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] or [`Error::Timeout`].
    pub async fn entry_keys(&self, key: &CompactCacheKey) -> Result<Vec<String>> {
        let keys = self.keys(key.combined_bin());
        let meta_key = keys.meta();
        let mut conn = self.conn.clone();
        let fields: Vec<Option<String>> = self
            .call(async move {
                redis::cmd("HMGET")
                    .arg(&meta_key)
                    .arg("v")
                    .arg("n")
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        let (Some(Some(version)), Some(Some(count))) = (fields.first(), fields.get(1)) else {
            return Ok(Vec::new());
        };
        let count: usize =
            count
                .parse()
                .ok()
                .filter(|n| *n <= MAX_CHUNKS)
                .ok_or(Error::CorruptEntry {
                    reason: "chunk count is not a number of chunks",
                })?;
        let mut out = vec![keys.meta()];
        out.extend((0..count).map(|i| keys.chunk(version, i)));
        Ok(out)
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

    /// Whether Redis is being skipped after repeated failures (see
    /// [`RedisConfig::breaker_threshold`]).
    pub fn is_marked_down(&self) -> bool {
        self.breaker.is_open()
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

    pub(crate) fn publish_script(&self) -> &Script {
        &self.scripts.publish
    }

    async fn lookup_entry(&'static self, key: &CacheKey) -> Result<Option<(CacheMeta, RedisHit)>> {
        let keys = self.keys(key.combined_bin());
        let meta_key = keys.meta();
        let mut conn = self.conn.clone();
        let found: Vec<Option<Bytes>> = self
            .call(async move {
                redis::cmd("HMGET")
                    .arg(&meta_key)
                    .arg(&["v", "m", "l", "c", "n", "b"])
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        let Some(entry) = Found::parse(found)? else {
            return Ok(None);
        };
        let meta = CacheMeta::deserialize(&entry.meta).map_err(|e| {
            tracing::debug!(error = %e, "stored meta does not decode");
            Error::CorruptEntry {
                reason: "stored meta does not decode",
            }
        })?;
        let weight = entry.len + entry.meta.len();
        let hit = RedisHit::new(
            self,
            keys,
            entry.version,
            entry.len,
            entry.chunk_size,
            entry.inline,
            weight,
        );
        Ok(Some((meta, hit)))
    }
}

/// The meta hash of an entry, checked.
struct Found {
    version: String,
    meta: Bytes,
    len: usize,
    chunk_size: usize,
    /// The body, when it is stored in the meta hash.
    inline: Option<Bytes>,
}

impl Found {
    /// Checks the fields `v m l c n b` of a meta hash; `Ok(None)` when there is no entry.
    fn parse(fields: Vec<Option<Bytes>>) -> Result<Option<Found>> {
        let corrupt = |reason| Error::CorruptEntry { reason };
        let number = |field: &Option<Bytes>, what| -> Result<usize> {
            field
                .as_deref()
                .and_then(|b| std::str::from_utf8(b).ok())
                .and_then(|s| s.parse().ok())
                .ok_or(corrupt(what))
        };
        let [version, meta, len, chunk_size, count, body]: [Option<Bytes>; 6] =
            fields
                .try_into()
                .map_err(|_| corrupt("meta hash reply has the wrong shape"))?;
        let Some(version) = version else {
            return Ok(None);
        };
        let version = std::str::from_utf8(&version)
            .ok()
            .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_alphanumeric()))
            .ok_or(corrupt("version id is not alphanumeric"))?
            .to_owned();
        let meta = meta.ok_or(corrupt("meta is missing"))?;
        let len = number(&len, "body length is not a number")?;
        let chunk_size = number(&chunk_size, "chunk size is not a number")?;
        let count = number(&count, "chunk count is not a number")?;
        if chunk_size == 0 || chunk_size > MAX_CHUNK_SIZE {
            return Err(corrupt("chunk size out of range"));
        }
        if count > MAX_CHUNKS {
            return Err(corrupt("too many chunks"));
        }
        let inline = if count == 0 {
            // The body is in the meta hash (absent when empty).
            let body = body.unwrap_or_default();
            if body.len() != len || len > chunk_size {
                return Err(corrupt("inline body has the wrong length"));
            }
            Some(body)
        } else {
            if count != len.div_ceil(chunk_size) || len <= chunk_size {
                return Err(corrupt("chunk count does not match the body length"));
            }
            None
        };
        Ok(Some(Found {
            version,
            meta,
            len,
            chunk_size,
            inline,
        }))
    }
}

#[async_trait]
impl Storage for RedisStorage {
    async fn lookup(
        &'static self,
        key: &CacheKey,
        _trace: &Span,
    ) -> larder_storage::Result<Option<(CacheMeta, HitHandler)>> {
        match self.lookup_entry(key).await {
            Ok(Some((meta, hit))) => {
                inc(&self.counters.hits);
                Ok(Some((meta, Box::new(hit))))
            }
            Ok(None) => {
                inc(&self.counters.misses);
                Ok(None)
            }
            Err(e) => {
                inc(&self.counters.lookup_errors);
                tracing::debug!(error = %e, "redis cache lookup failed");
                Err(e.into())
            }
        }
    }

    async fn get_miss_handler(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &Span,
    ) -> larder_storage::Result<MissHandler> {
        let serialized = meta.serialize()?;
        let expire_at_ms = self.expire_at_ms(meta, SystemTime::now());
        let keys = self.keys(key.combined_bin());
        let marker_key = keys.marker();
        let mut conn = self.conn.clone();
        let marker: Option<Vec<u8>> = match self
            .call(async move {
                redis::cmd("GET")
                    .arg(&marker_key)
                    .query_async(&mut conn)
                    .await
            })
            .await
        {
            Ok(marker) => marker,
            Err(e) => {
                inc(&self.counters.writes_dropped);
                tracing::debug!(error = %e, "redis cache write not started");
                return Err(e.into());
            }
        };
        let version = self.new_id();
        Ok(Box::new(RedisMiss::new(
            self,
            keys,
            version,
            serialized,
            expire_at_ms,
            marker.unwrap_or_default(),
        )))
    }

    async fn purge(
        &'static self,
        key: &CompactCacheKey,
        purge_type: PurgeType,
        _trace: &Span,
    ) -> larder_storage::Result<bool> {
        let keys = self.keys(key.combined_bin());
        let invalidate = if purge_type == PurgeType::Invalidation {
            "1"
        } else {
            "0"
        };
        let marker_ms = u64::try_from(self.config.part_ttl.as_millis()).unwrap_or(u64::MAX);
        let mut invocation = self.scripts.purge.prepare_invoke();
        invocation
            .key(keys.meta())
            .key(keys.marker())
            .arg(&keys.base)
            .arg(invalidate)
            .arg(self.new_id())
            .arg(marker_ms);
        let mut conn = self.conn.clone();
        let removed: i64 = self
            .call(async move { invocation.invoke_async(&mut conn).await })
            .await?;
        tracing::debug!(key = %keys.base, purge_type = purge_type.as_str(), removed, "redis cache purge");
        Ok(removed == 1)
    }

    async fn update_meta(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &Span,
    ) -> larder_storage::Result<bool> {
        let serialized = meta.serialize()?;
        let expire_at_ms = self.expire_at_ms(meta, SystemTime::now());
        let keys = self.keys(key.combined_bin());
        let mut invocation = self.scripts.update_meta.prepare_invoke();
        invocation
            .key(keys.meta())
            .arg(&keys.base)
            .arg(serialized)
            .arg(expire_at_ms);
        let mut conn = self.conn.clone();
        let updated: i64 = self
            .call(async move { invocation.invoke_async(&mut conn).await })
            .await?;
        Ok(updated == 1)
    }

    fn support_streaming_partial_write(&self) -> bool {
        false
    }

    fn metrics(&self, out: &mut Vec<larder_storage::metrics::MetricSample>) {
        out.extend(self.stats().samples());
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync + 'static) {
        self
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn fields(values: [Option<&[u8]>; 6]) -> Vec<Option<Bytes>> {
        values
            .into_iter()
            .map(|v| v.map(Bytes::copy_from_slice))
            .collect()
    }

    #[test]
    fn consistent_replies_parse() {
        let inline = Found::parse(fields([
            Some(b"abc123"),
            Some(b"meta"),
            Some(b"4"),
            Some(b"4"),
            Some(b"0"),
            Some(b"0123"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!((inline.len, inline.chunk_size), (4, 4));
        assert_eq!(inline.inline.as_deref(), Some(&b"0123"[..]));
        let chunked = Found::parse(fields([
            Some(b"v"),
            Some(b"meta"),
            Some(b"10"),
            Some(b"4"),
            Some(b"3"),
            None,
        ]))
        .unwrap()
        .unwrap();
        assert!(chunked.inline.is_none());
        let empty = Found::parse(fields([
            Some(b"v"),
            Some(b"m"),
            Some(b"0"),
            Some(b"4"),
            Some(b"0"),
            None,
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(empty.inline.as_deref(), Some(&b""[..]));
        assert!(
            Found::parse(fields([None, None, None, None, None, None]))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn inconsistent_replies_are_errors() {
        let reply = |len: &'static [u8], n: &'static [u8], body: Option<&'static [u8]>| {
            Found::parse(fields([
                Some(b"v1"),
                Some(b"m"),
                Some(len),
                Some(b"4"),
                Some(n),
                body,
            ]))
        };
        assert!(reply(b"10", b"2", None).is_err());
        assert!(
            reply(b"4", b"1", None).is_err(),
            "one chunk is stored inline"
        );
        assert!(reply(b"3", b"0", Some(b"0123")).is_err());
        assert!(
            reply(b"5", b"0", Some(b"01234")).is_err(),
            "inline body over a chunk"
        );
        assert!(reply(b"2", b"0", None).is_err());
        assert!(
            Found::parse(fields([
                Some(b"v/1"),
                Some(b"m"),
                Some(b"0"),
                Some(b"4"),
                Some(b"0"),
                None
            ]))
            .is_err()
        );
        assert!(Found::parse(vec![None; 2]).is_err());
    }

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

    fn number() -> impl Strategy<Value = Option<Vec<u8>>> {
        prop_oneof![
            Just(None),
            (0usize..100_000).prop_map(|n| Some(n.to_string().into_bytes())),
            proptest::collection::vec(any::<u8>(), 0..8).prop_map(Some),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Whatever another writer left under the prefix, a meta hash decodes to an entry, a
        /// miss or an error, and never panics; an entry it accepts is self-consistent.
        #[test]
        fn any_reply_decodes_without_panicking(
            version in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..6)),
            len in number(),
            chunk_size in number(),
            count in number(),
            body in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)),
            extra in 0usize..2,
        ) {
            let mut reply: Vec<Option<Bytes>> = vec![
                version.map(Bytes::from),
                Some(Bytes::from_static(b"meta")),
                len.map(Bytes::from),
                chunk_size.map(Bytes::from),
                count.map(Bytes::from),
                body.map(Bytes::from),
            ];
            reply.extend(std::iter::repeat_n(None, extra));
            if let Ok(Some(found)) = Found::parse(reply) {
                prop_assert!(found.chunk_size > 0);
                match &found.inline {
                    Some(body) => prop_assert!(body.len() == found.len && found.len <= found.chunk_size),
                    None => prop_assert!(found.len > found.chunk_size),
                }
            }
        }
    }
}
