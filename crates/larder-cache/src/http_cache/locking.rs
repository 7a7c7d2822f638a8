//! `HttpCache` and the cache lock, plus purges.

use std::time::Instant;

use larder_storage::PurgeType;

use super::{HttpCache, Inner, LockCtx, State, add_duration, wrong_phase};
use crate::error::Result;
use crate::lock::{CacheKeyLockImpl, LockStatus, Locked, WritePermit};
use crate::phase::NoCacheReason;

impl HttpCache {
    fn lock_ctx(&self) -> Option<&LockCtx> {
        self.inner()
            .and_then(|i| i.enabled.as_ref())
            .and_then(|c| c.lock_ctx.as_ref())
    }

    /// Whether this request waits on another request's write (holds a read lock).
    pub fn is_cache_locked(&self) -> bool {
        matches!(
            self.lock_ctx().and_then(|l| l.lock.as_ref()),
            Some(Locked::Read(_))
        )
    }

    /// Whether this request is the writer for its key (holds the write permit).
    pub fn is_cache_lock_writer(&self) -> bool {
        matches!(
            self.lock_ctx().and_then(|l| l.lock.as_ref()),
            Some(Locked::Write(_))
        )
    }

    /// Waits for the writer to release the lock, within what is left of this request's wait
    /// budget ([`CacheOptionOverrides::wait_timeout`](crate::CacheOptionOverrides::wait_timeout),
    /// shared by every wait). Returns the lock's status: look up again on `Done`,
    /// `TransientError`, `Dangling` or `AgeTimeout`; go upstream uncached on `GiveUp`
    /// (`disable(CacheLockGiveUp)`) or `WaitTimeout` (`disable(CacheLockTimeout)`).
    ///
    /// # Panics
    ///
    /// Unless this request holds a read lock.
    pub async fn cache_lock_wait(&mut self) -> LockStatus {
        let phase = self.phase();
        let Some(lock_ctx) = self.lock_ctx() else {
            wrong_phase("cache_lock_wait", phase);
        };
        let Some(Locked::Read(read_lock)) = lock_ctx.lock.as_ref() else {
            wrong_phase("cache_lock_wait", phase);
        };
        let start = Instant::now();
        let status = if let Some(budget) = lock_ctx.wait_timeout {
            let left = budget.saturating_sub(self.digest.lock_duration.unwrap_or_default());
            match tokio::time::timeout(left, read_lock.wait()).await {
                Ok(()) => read_lock.lock_status(),
                Err(_) => LockStatus::WaitTimeout,
            }
        } else {
            read_lock.wait().await;
            read_lock.lock_status()
        };
        add_duration(&mut self.digest.lock_duration, start.elapsed());
        status
    }

    /// Releases the write lock, if this request holds it, with the status `reason` implies:
    /// transient failures let a waiting request become the writer (`TransientError`);
    /// uncacheable responses send the waiters upstream uncached (`GiveUp`); a custom reason
    /// asks the lock. Used to keep serving stale while letting others proceed.
    pub fn release_write_lock(&mut self, reason: NoCacheReason) {
        let Some(Inner {
            key: Some(key),
            enabled: Some(ctx),
            ..
        }) = self.inner.as_deref_mut()
        else {
            return;
        };
        let Some(lock_ctx) = ctx.lock_ctx.as_mut() else {
            return;
        };
        if !matches!(lock_ctx.lock, Some(Locked::Write(_))) {
            return;
        }
        let Some(Locked::Write(permit)) = lock_ctx.lock.take() else {
            return;
        };
        let status = match reason {
            // The origin's rules refused it: the next response will most likely be refused too.
            NoCacheReason::OriginNotCache
            | NoCacheReason::StatusNotStorable
            | NoCacheReason::StatusNotUnderstood
            | NoCacheReason::NoStore
            | NoCacheReason::Private
            | NoCacheReason::Authorization
            | NoCacheReason::VaryAny
            | NoCacheReason::NoFreshness
            | NoCacheReason::ResponseTooLarge
            | NoCacheReason::PredictedResponseTooLarge
            // Each waiter gets its own answer (and cookie) from the origin, all at once rather
            // than one fill attempt after another.
            | NoCacheReason::SetCookie => LockStatus::GiveUp,
            NoCacheReason::Custom(custom) => lock_ctx.cache_lock.custom_lock_status(custom),
            // Transient: another request may succeed where this one failed.
            NoCacheReason::NeverEnabled
            | NoCacheReason::MethodNotCacheable
            | NoCacheReason::StorageError
            | NoCacheReason::InternalError
            | NoCacheReason::Deferred
            | NoCacheReason::DeclinedToUpstream
            | NoCacheReason::UpstreamError
            | NoCacheReason::CacheLockGiveUp
            | NoCacheReason::CacheLockTimeout => LockStatus::TransientError,
        };
        lock_ctx.cache_lock.release(key, permit, status);
    }

    /// Moves the write permit out, e.g. to hand it to a background revalidation task, together
    /// with the lock it belongs to.
    ///
    /// # Panics
    ///
    /// Unless this request holds the write permit.
    pub fn take_write_lock(&mut self) -> (WritePermit, &'static CacheKeyLockImpl) {
        let phase = self.phase();
        let lock_ctx = self
            .inner_mut()
            .and_then(|i| i.enabled.as_mut())
            .and_then(|c| c.lock_ctx.as_mut());
        match lock_ctx {
            Some(lock_ctx) => match lock_ctx.lock.take() {
                Some(Locked::Write(permit)) => (permit, lock_ctx.cache_lock),
                other => {
                    lock_ctx.lock = other;
                    wrong_phase("take_write_lock", phase)
                }
            },
            None => wrong_phase("take_write_lock", phase),
        }
    }

    /// Puts a write permit taken from another request in (the background revalidation side).
    ///
    /// # Panics
    ///
    /// When the cache is not enabled with a cache lock.
    pub fn set_write_lock(&mut self, permit: WritePermit) {
        let phase = self.phase();
        match self
            .inner_mut()
            .and_then(|i| i.enabled.as_mut())
            .and_then(|c| c.lock_ctx.as_mut())
        {
            Some(lock_ctx) => lock_ctx.lock = Some(Locked::Write(permit)),
            None => wrong_phase("set_write_lock", phase),
        }
    }

    // ---------------------------------------------------------------- purge

    /// Removes the entry under the key from storage (and from the eviction manager if it was
    /// there). Purging the primary key makes every variant unreachable. Returns whether an
    /// entry was found.
    ///
    /// # Errors
    ///
    /// The storage failed.
    ///
    /// # Panics
    ///
    /// Unless the phase is `CacheKey`.
    pub async fn purge(&mut self) -> Result<bool> {
        if !matches!(self.state, State::CacheKey) {
            wrong_phase("purge", self.phase());
        }
        let (key, ctx) = self.key_and_ctx("purge");
        let compact = key.to_compact();
        let found = ctx
            .storage
            .purge(&compact, PurgeType::Invalidation, &ctx.span)
            .await?;
        if found && let Some(eviction) = ctx.eviction {
            eviction.remove(&compact);
        }
        Ok(found)
    }

    /// The same purge in a spawned task, usable in any enabled phase (e.g. after an unsafe
    /// method, RFC 9111 §4.4). `context` names the caller in logs.
    ///
    /// # Panics
    ///
    /// When the cache is disabled or has no key.
    pub fn spawn_async_purge(
        &mut self,
        context: &'static str,
    ) -> tokio::task::JoinHandle<Result<bool>> {
        let (key, ctx) = self.key_and_ctx("spawn_async_purge");
        let compact = key.to_compact();
        let storage = ctx.storage;
        let eviction = ctx.eviction;
        let span = ctx.span.clone();
        tokio::spawn(async move {
            let found = storage
                .purge(&compact, PurgeType::Invalidation, &span)
                .await?;
            if found && let Some(eviction) = eviction {
                eviction.remove(&compact);
            }
            tracing::debug!(context, found, "async purge done");
            Ok(found)
        })
    }
}
