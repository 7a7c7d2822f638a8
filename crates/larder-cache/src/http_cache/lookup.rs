//! `HttpCache` lookups and the hit side: `cache_lookup`, `cache_found`, Vary, hit handlers.

use std::time::Instant;

use larder_storage::{CacheKey, CacheMeta, HashBinary, HitHandler};

use super::{EnabledCtx, Found, HttpCache, MissState, State, add_duration, wrong_phase};
use crate::error::Result;
use crate::lock::{LockStatus, Locked};
use crate::phase::HitStatus;

impl HttpCache {
    /// Looks the key up in storage. Entries created before a varied primary entry are
    /// ignored. On a miss, takes the cache lock if one is configured: the first request becomes
    /// the writer, the others readers ([`is_cache_locked`](Self::is_cache_locked)).
    ///
    /// # Errors
    ///
    /// The storage failed. Treat this as a miss (the new response overwrites a bad entry); the
    /// lock is taken as for a miss, so check [`is_cache_locked`](Self::is_cache_locked) and
    /// wait rather than sending every request for a broken entry upstream at once.
    ///
    /// # Panics
    ///
    /// Unless the phase is `CacheKey` or `Stale`.
    pub async fn cache_lookup(&mut self) -> Result<Option<(CacheMeta, HitHandler)>> {
        if !matches!(self.state, State::CacheKey | State::Stale(_)) {
            wrong_phase("cache_lookup", self.phase());
        }
        let (key, ctx) = self.key_and_ctx("cache_lookup");
        let start = Instant::now();
        // An in-memory storage answers at once, without the boxed future of `lookup`.
        let result = match ctx.storage.lookup_now(key, &ctx.span) {
            Some(result) => result,
            None => ctx.storage.lookup(key, &ctx.span).await,
        };
        add_duration(&mut self.digest.lookup_duration, start.elapsed());
        let (key, ctx) = self.key_and_ctx("cache_lookup");
        let found = match result {
            Ok(found) => found,
            Err(error) => {
                // A failed lookup is treated as a miss by the caller, so it locks like one:
                // otherwise every request for a broken entry would go to the origin at once.
                Self::take_lock(key, ctx, false);
                return Err(error.into());
            }
        };
        let found = found.filter(|(meta, _)| {
            let valid = ctx.valid_after.is_none_or(|after| meta.created() >= after);
            if !valid {
                tracing::debug!("ignoring an entry older than its primary");
            }
            valid
        });
        if found.is_none() {
            Self::take_lock(key, ctx, false);
        }
        Ok(found)
    }

    /// Takes the cache lock unless this request already writes.
    fn take_lock(key: &CacheKey, ctx: &mut EnabledCtx, stale_writer: bool) {
        if let Some(lock_ctx) = ctx.lock_ctx.as_mut()
            && !matches!(lock_ctx.lock, Some(Locked::Write(_)))
        {
            lock_ctx.lock = Some(lock_ctx.cache_lock.lock(key, stale_writer));
        }
    }

    /// Records what the lookup found and how to treat it:
    ///
    /// - `Fresh`/`ForceFresh` → `Hit`. The hit counts as an access for the eviction manager and
    ///   ends any lock this request held (a write permit is released with `Done`).
    /// - `Expired`/`ForceExpired` → `Stale`, taking the lock as a stale writer so one request
    ///   revalidates. `ForceExpired` also disables stale serving for this request, since the
    ///   entry must be validated first.
    /// - `ForceMiss`/`FailedHitFilter` → the entry is dropped, the lock taken and the phase goes
    ///   back to `CacheKey` (call [`cache_miss`](Self::cache_miss) next).
    ///
    /// # Panics
    ///
    /// Unless the phase is `CacheKey` or `Stale`.
    pub fn cache_found(&mut self, meta: CacheMeta, hit_handler: HitHandler, hit_status: HitStatus) {
        if !matches!(self.state, State::CacheKey | State::Stale(_)) {
            wrong_phase("cache_found", self.phase());
        }
        let (key, ctx) = self.key_and_ctx("cache_found");
        let mut found = Found {
            meta,
            hit_handler: Some(hit_handler),
        };
        if hit_status == HitStatus::ForceExpired {
            found.meta.disable_serve_stale();
        }
        match hit_status {
            HitStatus::Fresh | HitStatus::ForceFresh => {
                // A hit needs no lock: stop waiting, or let waiters look up again.
                if let Some(lock_ctx) = ctx.lock_ctx.as_mut() {
                    match lock_ctx.lock.take() {
                        Some(Locked::Write(permit)) => {
                            lock_ctx.cache_lock.release(key, permit, LockStatus::Done);
                        }
                        Some(Locked::Read(_)) | None => {}
                    }
                }
                if let Some(eviction) = ctx.eviction
                    && let Some(handler) = &found.hit_handler
                    && handler.should_count_access()
                {
                    eviction.access(
                        &key.to_compact(),
                        handler.get_eviction_weight(),
                        found.meta.fresh_until(),
                    );
                }
                self.state = State::Hit(found);
            }
            HitStatus::Expired | HitStatus::ForceExpired => {
                Self::take_lock(key, ctx, true);
                self.state = State::Stale(found);
            }
            HitStatus::ForceMiss | HitStatus::FailedHitFilter => {
                Self::take_lock(key, ctx, false);
                self.state = State::CacheKey;
            }
        }
    }

    /// Records the variance of this request for a found entry whose response varies, and says
    /// whether the entry is the right variant. Entries older than `meta` (the primary entry)
    /// are ignored from now on. On `false`, look up again: the key now points at this
    /// request's variant.
    ///
    /// # Panics
    ///
    /// Unless the phase is `CacheKey` or `Stale`.
    pub fn cache_vary_lookup(&mut self, variance: HashBinary, meta: &CacheMeta) -> bool {
        if !matches!(self.state, State::CacheKey | State::Stale(_)) {
            wrong_phase("cache_vary_lookup", self.phase());
        }
        let (key, ctx) = self.key_and_ctx("cache_vary_lookup");
        ctx.valid_after = Some(meta.created());
        let matches = meta.variance() == Some(variance);
        if matches {
            // The primary entry is this variant: keep using the primary slot.
            key.remove_variance_key();
        } else {
            key.set_variance_key(variance);
        }
        matches
    }

    /// Nothing usable is cached: the response comes from upstream and may be stored.
    ///
    /// # Panics
    ///
    /// Unless the phase is `CacheKey`, `Bypass` or `Stale`.
    pub fn cache_miss(&mut self) {
        match self.state {
            State::CacheKey | State::Bypass | State::Stale(_) => {
                self.state = State::Miss(MissState::default());
            }
            _ => wrong_phase("cache_miss", self.phase()),
        }
    }

    // ---------------------------------------------------------------- hit side

    /// The body reader of the found entry.
    ///
    /// # Panics
    ///
    /// Unless the phase is `Hit`, `Stale`, `StaleUpdating`, `Revalidated` or
    /// `RevalidatedNoCache`, or
    /// after [`finish_hit_handler`](Self::finish_hit_handler).
    pub fn hit_handler(&mut self) -> &mut HitHandler {
        let phase = self.phase();
        match self.state.found_mut() {
            Some(Found {
                hit_handler: Some(handler),
                ..
            }) => handler,
            _ => wrong_phase("hit_handler", phase),
        }
    }

    /// Ends the hit, letting the storage release what the reader holds. Safe to call twice.
    ///
    /// # Errors
    ///
    /// The storage failed.
    ///
    /// # Panics
    ///
    /// Unless the phase has a found entry (see [`hit_handler`](Self::hit_handler)).
    pub async fn finish_hit_handler(&mut self) -> Result<()> {
        let phase = self.phase();
        let Some(found) = self.state.found_mut() else {
            wrong_phase("finish_hit_handler", phase);
        };
        let Some(mut handler) = found.hit_handler.take() else {
            return Ok(());
        };
        if let Some(result) = handler.finish_now() {
            return Ok(result?);
        }
        let inner = self.inner.as_deref();
        let (Some(key), Some(ctx)) = (
            inner.and_then(|i| i.key.as_ref()),
            inner.and_then(|i| i.enabled.as_ref()),
        ) else {
            wrong_phase("finish_hit_handler", phase);
        };
        handler.finish(ctx.storage, key, &ctx.span).await?;
        Ok(())
    }

    /// The meta of the found or fetched entry.
    ///
    /// # Panics
    ///
    /// When there is none (see [`maybe_cache_meta`](Self::maybe_cache_meta)).
    pub fn cache_meta(&self) -> &CacheMeta {
        match self.maybe_cache_meta() {
            Some(meta) => meta,
            None => wrong_phase("cache_meta", self.phase()),
        }
    }

    /// The meta of the found entry (`Hit`, `Stale`, `StaleUpdating`, `Revalidated`,
    /// `RevalidatedNoCache`) or of the response being written (`Miss`, `Expired`, after
    /// [`set_cache_meta`](Self::set_cache_meta)).
    pub fn maybe_cache_meta(&self) -> Option<&CacheMeta> {
        match &self.state {
            State::Miss(m) | State::Expired(m) => m.meta.as_ref(),
            state => state.found().map(|f| &f.meta),
        }
    }
}
