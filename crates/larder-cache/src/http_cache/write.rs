//! `HttpCache` writes and revalidation: the miss handler, `update_variance`, 304s, stale serving.

use std::time::SystemTime;

use larder_storage::{
    CacheMeta, HashBinary, HitHandler, MissFinishType, MissHandler, PurgeType, ResponseHeader,
};

use super::{Found, HttpCache, Inner, MissState, State, wrong_phase};
use crate::error::{Error, Result};
use crate::lock::{LockStatus, Locked};
use crate::phase::NoCacheReason;

impl HttpCache {
    /// Sets the meta of the response about to be stored. From `Stale`, the new response
    /// replaces the stale entry and the phase becomes `Expired`.
    ///
    /// # Panics
    ///
    /// Unless the phase is `Miss`, `Expired` or `Stale`.
    pub fn set_cache_meta(&mut self, meta: CacheMeta) {
        match &mut self.state {
            State::Miss(m) | State::Expired(m) => m.meta = Some(meta),
            State::Stale(_) => {
                self.state = State::Expired(MissState {
                    meta: Some(meta),
                    ..MissState::default()
                });
            }
            _ => wrong_phase("set_cache_meta", self.phase()),
        }
    }

    /// Sets (or removes) the variance of the response about to be stored. If the lookup
    /// assumed a different variant, the response goes to the primary slot instead, which makes
    /// every older variant invalid, and the variant's lock is released.
    ///
    /// # Panics
    ///
    /// Unless the phase is `Miss` or `Expired` with a meta set.
    pub fn update_variance(&mut self, variance: Option<HashBinary>) {
        let phase = self.phase();
        let Some(MissState {
            meta: Some(meta), ..
        }) = self.state.miss_mut()
        else {
            wrong_phase("update_variance", phase);
        };
        match variance {
            Some(v) => meta.set_variance_key(v),
            None => meta.remove_variance(),
        }
        let (key, ctx) = self.key_and_ctx("update_variance");
        if let Some(old) = key.get_variance_key().copied()
            && Some(old) != variance
        {
            if let Some(lock_ctx) = ctx.lock_ctx.as_mut()
                && let Some(Locked::Write(permit)) = lock_ctx.lock.take()
            {
                lock_ctx.cache_lock.release(key, permit, LockStatus::Done);
            }
            key.remove_variance_key();
        }
    }

    /// Starts writing the response (its meta must be set) into storage. With a storage that
    /// streams partial writes, the write lock is released right away (waiting requests read
    /// the body as it is written) and [`miss_body_reader`](Self::miss_body_reader) becomes
    /// available.
    ///
    /// # Errors
    ///
    /// The storage failed; the proxy should [`disable`](Self::disable) with `StorageError`.
    ///
    /// # Panics
    ///
    /// Unless the phase is `Miss` or `Expired` with a meta set, or if called twice.
    pub async fn set_miss_handler(&mut self) -> Result<()> {
        let phase = self.phase();
        // The phase data and the enabled context are separate fields, borrowed together.
        let (
            Some(miss),
            Some(Inner {
                key: Some(key),
                enabled: Some(ctx),
                ..
            }),
        ) = (self.state.miss_mut(), self.inner.as_deref_mut())
        else {
            wrong_phase("set_miss_handler", phase);
        };
        let (Some(meta), false) = (miss.meta.as_ref(), miss.miss_handler_set) else {
            wrong_phase("set_miss_handler", phase);
        };
        let storage = ctx.storage;
        let handler = storage.get_miss_handler(key, meta, &ctx.span).await?;
        let mut body_reader = None;
        if storage.support_streaming_partial_write() {
            let tag = handler.streaming_write_tag().map(<[u8]>::to_vec);
            if let Some(lock_ctx) = ctx.lock_ctx.as_mut()
                && let Some(Locked::Write(permit)) = lock_ctx.lock.take()
            {
                lock_ctx.cache_lock.release(key, permit, LockStatus::Done);
            }
            match storage
                .lookup_streaming_write(key, tag.as_deref(), &ctx.span)
                .await?
            {
                Some((_, reader)) => body_reader = Some(reader),
                None => return Err(Error::MissingStreamingWrite),
            }
        }
        miss.miss_handler = Some(handler);
        miss.miss_handler_set = true;
        miss.body_reader = body_reader;
        Ok(())
    }

    /// The writer of the response body; `None` once finished.
    ///
    /// # Panics
    ///
    /// Unless the phase is `Miss` or `Expired`.
    pub fn miss_handler(&mut self) -> Option<&mut MissHandler> {
        let phase = self.phase();
        match self.state.miss_mut() {
            Some(miss) => miss.miss_handler.as_mut(),
            None => wrong_phase("miss_handler", phase),
        }
    }

    /// A reader of the body being written, when the storage streams partial writes, so the
    /// client can be served through the cache.
    ///
    /// # Panics
    ///
    /// Unless the phase is `Miss` or `Expired`.
    pub fn miss_body_reader(&mut self) -> Option<&mut HitHandler> {
        let phase = self.phase();
        match self.state.miss_mut() {
            Some(miss) => miss.body_reader.as_mut(),
            None => wrong_phase("miss_body_reader", phase),
        }
    }

    /// Takes the reader of the body being written (see
    /// [`miss_body_reader`](Self::miss_body_reader)), so that the client reads the write at its
    /// own pace while whoever owns this cache fills it at the origin's pace: a slow client
    /// then never slows the fill, nor the other readers of the write.
    ///
    /// # Panics
    ///
    /// Unless the phase is `Miss` or `Expired`.
    pub fn take_miss_body_reader(&mut self) -> Option<HitHandler> {
        let phase = self.phase();
        match self.state.miss_mut() {
            Some(miss) => miss.body_reader.take(),
            None => wrong_phase("take_miss_body_reader", phase),
        }
    }

    /// Completes the write: the entry becomes visible, the write lock is released with
    /// `Done`, the entry is admitted into the eviction manager and any victims it names are
    /// purged in a spawned task. Idempotent.
    ///
    /// # Errors
    ///
    /// The storage failed to complete the write (nothing was stored).
    ///
    /// # Panics
    ///
    /// Unless the phase is `Miss` or `Expired`.
    pub async fn finish_miss_handler(&mut self) -> Result<()> {
        let phase = self.phase();
        let Some(miss) = self.state.miss_mut() else {
            wrong_phase("finish_miss_handler", phase);
        };
        let Some(handler) = miss.miss_handler.take() else {
            return Ok(());
        };
        let fresh_until = miss.meta.as_ref().map(CacheMeta::fresh_until);
        let finished = handler.finish().await?;
        let (key, ctx) = self.key_and_ctx("finish_miss_handler");
        if let Some(lock_ctx) = ctx.lock_ctx.as_mut()
            && let Some(Locked::Write(permit)) = lock_ctx.lock.take()
        {
            lock_ctx.cache_lock.release(key, permit, LockStatus::Done);
        }
        if let Some(eviction) = ctx.eviction {
            let compact = key.to_compact();
            let victims = match finished {
                MissFinishType::Created(size) => {
                    eviction.admit(compact, size, fresh_until.unwrap_or_else(SystemTime::now))
                }
                MissFinishType::Appended(delta, max) => {
                    eviction.increment_weight(&compact, delta, max)
                }
            };
            if !victims.is_empty() {
                let storage = ctx.storage;
                let span = ctx.span.clone();
                tokio::spawn(async move {
                    for victim in victims {
                        if let Err(error) = storage.purge(&victim, PurgeType::Eviction, &span).await
                        {
                            tracing::warn!(%victim, %error, "failed to purge an evicted entry");
                        }
                    }
                });
            }
        }
        Ok(())
    }

    // ---------------------------------------------------------------- revalidation

    /// The stale entry was revalidated (304): `meta` (computed from the merged headers)
    /// replaces the stored meta, keeping the original `created` and variance, and the write
    /// lock is released. The phase becomes `Revalidated` whatever the storage says.
    /// Returns whether the storage had the entry.
    ///
    /// # Errors
    ///
    /// The storage failed to update the meta (the response is still served).
    ///
    /// # Panics
    ///
    /// Unless the phase is `Stale`.
    pub async fn revalidate_cache_meta(&mut self, mut meta: CacheMeta) -> Result<bool> {
        if !matches!(self.state, State::Stale(_)) {
            wrong_phase("revalidate_cache_meta", self.phase());
        }
        let State::Stale(found) = std::mem::replace(&mut self.state, State::Uninit) else {
            unreachable!("checked above");
        };
        let old = &found.meta;
        meta.set_created(old.created());
        match old.variance() {
            Some(v) => meta.set_variance(v),
            None => meta.remove_variance(),
        }
        let mut extensions = old.extensions().clone();
        extensions.extend(std::mem::take(meta.extensions_mut()));
        *meta.extensions_mut() = extensions;
        self.state = State::Revalidated(Found {
            meta: meta.clone(),
            hit_handler: found.hit_handler,
        });
        let (key, ctx) = self.key_and_ctx("revalidate_cache_meta");
        let result = ctx.storage.update_meta(key, &meta, &ctx.span).await;
        let (key, ctx) = self.key_and_ctx("revalidate_cache_meta");
        if let Some(lock_ctx) = ctx.lock_ctx.as_mut()
            && let Some(Locked::Write(permit)) = lock_ctx.lock.take()
        {
            lock_ctx.cache_lock.release(key, permit, LockStatus::Done);
        }
        Ok(result?)
    }

    /// The stored response header updated by a 304's header fields (RFC 9111 §3.2, §4.3.4;
    /// see [`merge_not_modified`](crate::revalidate::merge_not_modified)). The status and
    /// version stay those of the stored response. Feed the result to the cacheability filters,
    /// then call [`revalidate_cache_meta`](Self::revalidate_cache_meta) or
    /// [`revalidate_uncacheable`](Self::revalidate_uncacheable).
    ///
    /// # Panics
    ///
    /// Unless the phase is `Stale`.
    pub fn revalidate_merge_header(&self, not_modified: &ResponseHeader) -> ResponseHeader {
        let State::Stale(found) = &self.state else {
            wrong_phase("revalidate_merge_header", self.phase());
        };
        let stored = found.meta.response_header();
        ResponseHeader {
            status: stored.status,
            version: stored.version,
            headers: crate::revalidate::merge_not_modified(&stored.headers, &not_modified.headers),
        }
    }

    /// The stale entry was revalidated, but the merged response is not cacheable: the stored
    /// response is served with `header`, the cache is not updated and the write lock is
    /// released.
    ///
    /// # Panics
    ///
    /// Unless the phase is `Stale`.
    pub fn revalidate_uncacheable(&mut self, header: ResponseHeader, reason: NoCacheReason) {
        if !matches!(self.state, State::Stale(_)) {
            wrong_phase("revalidate_uncacheable", self.phase());
        }
        let State::Stale(mut found) = std::mem::replace(&mut self.state, State::Uninit) else {
            unreachable!("checked above");
        };
        *found.meta.response_header_mut() = header;
        self.state = State::RevalidatedNoCache(reason, found);
        self.release_write_lock(reason);
    }

    /// A stale entry is served while another request (or a background task holding the write
    /// permit) revalidates it.
    ///
    /// # Panics
    ///
    /// Unless the phase is `Stale`.
    pub fn set_stale_updating(&mut self) {
        if !matches!(self.state, State::Stale(_)) {
            wrong_phase("set_stale_updating", self.phase());
        }
        if let State::Stale(found) = std::mem::replace(&mut self.state, State::Uninit) {
            self.state = State::StaleUpdating(found);
        }
    }

    /// Whether the stale entry may be served because upstream failed (RFC 5861
    /// stale-if-error window). False outside `Stale` and `StaleUpdating`.
    pub fn can_serve_stale_error(&self) -> bool {
        match &self.state {
            State::Stale(f) | State::StaleUpdating(f) => {
                f.meta.serve_stale_if_error(SystemTime::now())
            }
            _ => false,
        }
    }

    /// Whether the stale entry may be served while it is revalidated (RFC 5861
    /// stale-while-revalidate window). False outside `Stale` and `StaleUpdating`.
    pub fn can_serve_stale_updating(&self) -> bool {
        match &self.state {
            State::Stale(f) | State::StaleUpdating(f) => {
                f.meta.serve_stale_while_revalidate(SystemTime::now())
            }
            _ => false,
        }
    }
}
