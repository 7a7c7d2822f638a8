//! [`RedisStorage`]: the [`Storage`] implementation.

use std::any::Any;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use larder_storage::{
    CacheKey, CacheMeta, CompactCacheKey, HitHandler, MissHandler, PurgeType, Storage,
};
use tracing::Span;

use crate::client::Client;
use crate::config::{MAX_CHUNKS, RedisConfig};
use crate::entry::Found;
use crate::error::{Error, Result};
use crate::hit::RedisHit;
use crate::miss::RedisMiss;
use crate::stats::{RedisStats, inc};

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
    client: Client,
}

impl std::fmt::Debug for RedisStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStorage")
            .field("config", self.config())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

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
        Ok(RedisStorage {
            client: Client::new(config)?,
        })
    }

    /// Checks that Redis answers, within the configured timeout.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] or [`Error::Timeout`] when it does not.
    pub async fn ping(&self) -> Result<()> {
        let mut conn = self.client.connection();
        self.client
            .call(async move { redis::cmd("PING").query_async::<()>(&mut conn).await })
            .await
    }

    /// The settings.
    pub fn config(&self) -> &RedisConfig {
        self.client.config()
    }

    /// The counters of hits, misses, failures and writes since the storage was created.
    pub fn stats(&self) -> RedisStats {
        self.client.counters().snapshot()
    }

    /// The names of every Redis key holding part of the entry for `key` (the meta and the
    /// body chunks), for inspection and tests. Empty if there is no entry.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] or [`Error::Timeout`].
    pub async fn entry_keys(&self, key: &CompactCacheKey) -> Result<Vec<String>> {
        let keys = self.client.keys(key.combined_bin());
        let meta_key = keys.meta();
        let mut conn = self.client.connection();
        let fields: Vec<Option<String>> = self
            .client
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

    /// Whether Redis is being skipped after repeated failures (see
    /// [`RedisConfig::breaker_threshold`]).
    pub fn is_marked_down(&self) -> bool {
        self.client.is_marked_down()
    }

    async fn lookup_entry(&'static self, key: &CacheKey) -> Result<Option<(CacheMeta, RedisHit)>> {
        let keys = self.client.keys(key.combined_bin());
        let meta_key = keys.meta();
        let mut conn = self.client.connection();
        let found: Vec<Option<Bytes>> = self
            .client
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
            &self.client,
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

#[async_trait]
impl Storage for RedisStorage {
    async fn lookup(
        &'static self,
        key: &CacheKey,
        _trace: &Span,
    ) -> larder_storage::Result<Option<(CacheMeta, HitHandler)>> {
        match self.lookup_entry(key).await {
            Ok(Some((meta, hit))) => {
                inc(&self.client.counters().hits);
                Ok(Some((meta, Box::new(hit))))
            }
            Ok(None) => {
                inc(&self.client.counters().misses);
                Ok(None)
            }
            Err(e) => {
                inc(&self.client.counters().lookup_errors);
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
        let expire_at_ms = self.client.expire_at_ms(meta, SystemTime::now());
        let keys = self.client.keys(key.combined_bin());
        let marker_key = keys.marker();
        let mut conn = self.client.connection();
        let marker: Option<Vec<u8>> = match self
            .client
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
                inc(&self.client.counters().writes_dropped);
                tracing::debug!(error = %e, "redis cache write not started");
                return Err(e.into());
            }
        };
        let version = self.client.new_id();
        Ok(Box::new(RedisMiss::new(
            &self.client,
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
        let keys = self.client.keys(key.combined_bin());
        let invalidate = if purge_type == PurgeType::Invalidation {
            "1"
        } else {
            "0"
        };
        let marker_ms =
            u64::try_from(self.client.config().part_ttl.as_millis()).unwrap_or(u64::MAX);
        let mut invocation = self.client.scripts().purge.prepare_invoke();
        invocation
            .key(keys.meta())
            .key(keys.marker())
            .arg(&keys.base)
            .arg(invalidate)
            .arg(self.client.new_id())
            .arg(marker_ms);
        let mut conn = self.client.connection();
        let removed: i64 = self
            .client
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
        let expire_at_ms = self.client.expire_at_ms(meta, SystemTime::now());
        let keys = self.client.keys(key.combined_bin());
        let mut invocation = self.client.scripts().update_meta.prepare_invoke();
        invocation
            .key(keys.meta())
            .arg(&keys.base)
            .arg(serialized)
            .arg(expire_at_ms);
        let mut conn = self.client.connection();
        let updated: i64 = self
            .client
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
