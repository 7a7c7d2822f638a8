//! The cache lock: request coalescing for cache misses (thundering-herd protection).
//!
//! When many requests miss the same key at once, only one of them (the *writer*) should go to the
//! origin; the others (*readers*) wait for it and then look the key up again. [`CacheLock`] hands out
//! one [`WritePermit`] per key and a [`ReadLock`] to everyone else until the writer releases.
//!
//! The lock key is the full combined hash of the [`CacheKey`] (`combined_bin()`), so each variant of
//! a `Vary`-ing response locks on its own.
//!
//! Two timeouts bound the wait:
//! - the *age timeout* (per lock, from [`CacheLock::new`]): a writer holding the lock longer than this
//!   is considered dead. [`ReadLock::wait`] returns when it passes, the readers see
//!   [`LockStatus::AgeTimeout`] and compete to become the next writer. The old writer may still finish;
//!   its release does not disturb the new writer.
//! - the *wait timeout* (per request): how long one reader is willing to wait in total. The caller
//!   enforces it with `tokio::time::timeout` around [`ReadLock::wait`] and reports
//!   [`LockStatus::WaitTimeout`] itself; that status is never stored in a lock.
//!
//! Readers are woken by the writer's release (a [`tokio::sync::Notify`]); nothing polls or sleeps.
//! A [`WritePermit`] dropped without being released (a cancelled or panicking writer) marks the lock
//! [`LockStatus::Dangling`], wakes its readers and removes itself from the table, so no reader is
//! left waiting for a writer that is gone.
//!
//! ```
//! use std::time::Duration;
//! use larder_cache::lock::{CacheKeyLock, CacheLock, Locked, LockStatus};
//! use larder_storage::CacheKey;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build()?.block_on(async {
//! let lock = CacheLock::new(Duration::from_secs(10));
//! let key = CacheKey::new("", "/index.html", "");
//!
//! let Locked::Write(permit) = lock.lock(&key, false) else { unreachable!("first locker writes") };
//! let Locked::Read(reader) = lock.lock(&key, false) else { unreachable!("second locker reads") };
//!
//! // The writer fetched and stored the response.
//! lock.release(&key, permit, LockStatus::Done);
//! reader.wait().await;
//! assert_eq!(reader.lock_status(), LockStatus::Done); // look the key up again: it is a hit now
//! # });
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use larder_storage::CacheKey;
use parking_lot::RwLock;
use tokio::sync::Notify;
use tokio::time::Instant;

/// The lock implementation `HttpCache::enable` takes.
pub type CacheKeyLockImpl = dyn CacheKeyLock + Send + Sync;

/// A per-key lock that elects one writer among concurrent cache misses.
pub trait CacheKeyLock {
    /// Try to become the writer for `key`.
    ///
    /// Returns [`Locked::Write`] if no live writer holds the key, otherwise [`Locked::Read`] to wait
    /// on. `stale_writer` says the writer will revalidate a stale entry (readers may serve stale
    /// meanwhile).
    fn lock(&self, key: &CacheKey, stale_writer: bool) -> Locked;

    /// Release the write lock on `key` with `reason`, waking every reader.
    fn release(&self, key: &CacheKey, permit: WritePermit, reason: LockStatus);

    /// The status to release the lock with when the response was not cached for the custom
    /// reason `custom_no_cache`. By default the readers give up on caching ([`LockStatus::GiveUp`]).
    fn custom_lock_status(&self, _custom_no_cache: &'static str) -> LockStatus {
        LockStatus::GiveUp
    }

    /// Record the outcome of a lock wait on a tracing span. By default records the status under the
    /// field `status` (if the span declares it).
    fn trace_lock_wait(
        &self,
        span: &tracing::Span,
        _read_lock: &ReadLock,
        lock_status: LockStatus,
    ) {
        span.record("status", lock_status.as_str());
    }
}

/// The state of a cache lock, as seen by its readers.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LockStatus {
    /// The writer still holds the lock.
    Waiting = 0,
    /// The writer finished: readers look the key up again (it should be a hit).
    Done = 1,
    /// The writer failed for a reason that may not repeat: a reader becomes the new writer.
    TransientError = 2,
    /// The response is not cacheable: readers fetch from the origin on their own, without caching.
    GiveUp = 3,
    /// The writer went away without releasing the lock: readers compete again.
    Dangling = 4,
    /// The reader's own wait budget ran out (reader side only, never stored in a lock).
    WaitTimeout = 5,
    /// The writer held the lock longer than the age timeout: readers compete again.
    AgeTimeout = 6,
}

impl LockStatus {
    /// A stable name for logs and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Waiting => "Waiting",
            Self::Done => "Done",
            Self::TransientError => "TransientError",
            Self::GiveUp => "GiveUp",
            Self::Dangling => "Dangling",
            Self::WaitTimeout => "WaitTimeout",
            Self::AgeTimeout => "AgeTimeout",
        }
    }
}

impl std::fmt::Display for LockStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<u8> for LockStatus {
    /// Unknown values map to [`LockStatus::GiveUp`], the safe choice (no caching, no waiting).
    fn from(v: u8) -> Self {
        match v {
            0 => Self::Waiting,
            1 => Self::Done,
            2 => Self::TransientError,
            4 => Self::Dangling,
            5 => Self::WaitTimeout,
            6 => Self::AgeTimeout,
            _ => Self::GiveUp,
        }
    }
}

impl From<LockStatus> for u8 {
    fn from(s: LockStatus) -> Self {
        s as u8
    }
}

/// The outcome of [`CacheKeyLock::lock`].
#[derive(Debug)]
pub enum Locked {
    /// This request is the writer: fetch from the origin, then release.
    Write(WritePermit),
    /// Another request is the writer: wait on this, then act on its status.
    Read(ReadLock),
}

impl Locked {
    /// Whether this request became the writer.
    pub fn is_write(&self) -> bool {
        matches!(self, Self::Write(_))
    }
}

/// The state one lock shares between its writer and its readers.
#[derive(Debug)]
struct LockCore {
    lock_start: Instant,
    age_timeout: Duration,
    status: AtomicU8,
    notify: Notify,
    stale_writer: bool,
}

impl LockCore {
    fn new(age_timeout: Duration, stale_writer: bool) -> Self {
        Self {
            lock_start: Instant::now(),
            age_timeout,
            status: AtomicU8::new(LockStatus::Waiting as u8),
            notify: Notify::new(),
            stale_writer,
        }
    }

    fn status(&self) -> LockStatus {
        LockStatus::from(self.status.load(Ordering::Acquire))
    }

    fn locked(&self) -> bool {
        self.status() == LockStatus::Waiting
    }

    fn expired(&self) -> bool {
        self.lock_start.elapsed() >= self.age_timeout
    }

    /// The status with an expired, still-held lock reported as [`LockStatus::AgeTimeout`].
    fn lock_status(&self) -> LockStatus {
        match self.status() {
            LockStatus::Waiting if self.expired() => LockStatus::AgeTimeout,
            s => s,
        }
    }

    /// Whether a new locker must wait on this lock (a live writer holds it).
    fn is_live(&self) -> bool {
        self.locked() && !self.expired()
    }

    /// Set the final status (only the first unlock counts) and wake every reader.
    fn unlock(&self, reason: LockStatus) {
        // `Waiting` and `WaitTimeout` are not outcomes a writer can report; electing a new writer is
        // the choice that can neither strand readers nor give up caching for good.
        let reason = match reason {
            LockStatus::Waiting | LockStatus::WaitTimeout => LockStatus::TransientError,
            r => r,
        };
        // Only the first unlock sets the status; the wake-up is harmless to repeat.
        let _ = self.status.compare_exchange(
            LockStatus::Waiting as u8,
            reason as u8,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        self.notify.notify_waiters();
    }

    fn deadline(&self) -> Option<Instant> {
        self.lock_start.checked_add(self.age_timeout)
    }
}

/// What the lock table keeps per key; readers are made from it.
#[derive(Debug, Clone)]
pub struct LockStub(Arc<LockCore>);

impl LockStub {
    /// A new reader of this lock.
    pub fn read_lock(&self) -> ReadLock {
        ReadLock(self.0.clone())
    }
}

/// A reader's handle on a lock held by another request.
#[derive(Debug)]
pub struct ReadLock(Arc<LockCore>);

impl ReadLock {
    /// Wait until the writer releases the lock or the lock's age timeout passes, whichever comes
    /// first. Then act on [`ReadLock::lock_status`].
    ///
    /// The caller bounds its own total wait with `tokio::time::timeout` around this future (and
    /// reports [`LockStatus::WaitTimeout`] if that fires). Cancel-safe.
    pub async fn wait(&self) {
        let core = &*self.0;
        let deadline = core.deadline();
        loop {
            // Register interest before checking the status, so a release between the check and
            // the await still wakes us (see `Notify::notified`).
            let notified = core.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if !core.locked() {
                return;
            }
            match deadline {
                Some(deadline) => {
                    if tokio::time::timeout_at(deadline, notified).await.is_err() {
                        return;
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Whether the writer still holds the lock (it may have expired, see [`ReadLock::expired`]).
    pub fn locked(&self) -> bool {
        self.0.locked()
    }

    /// Whether the lock is older than its age timeout.
    pub fn expired(&self) -> bool {
        self.0.expired()
    }

    /// The lock's status; a lock still held past its age timeout reads as [`LockStatus::AgeTimeout`].
    pub fn lock_status(&self) -> LockStatus {
        self.0.lock_status()
    }

    /// Whether the writer is revalidating a stale entry (so readers may serve stale meanwhile).
    pub fn stale_writer(&self) -> bool {
        self.0.stale_writer
    }

    /// When the writer took the lock.
    pub fn lock_start(&self) -> std::time::Instant {
        self.0.lock_start.into_std()
    }
}

/// Where a [`CacheLock`] permit is registered, so it can remove itself when released or dropped.
#[derive(Debug)]
struct Registration {
    table: Weak<LockTable>,
    key: u128,
}

/// The writer's handle on a lock. Release it through [`CacheKeyLock::release`] (or
/// [`WritePermit::unlock`]); dropping it unreleased marks the lock [`LockStatus::Dangling`] and wakes
/// the readers.
#[derive(Debug)]
pub struct WritePermit {
    core: Arc<LockCore>,
    registration: Option<Registration>,
    finished: bool,
}

impl WritePermit {
    /// A permit not registered in any table, with the stub its readers are made from. For custom
    /// [`CacheKeyLock`] implementations.
    pub fn new(age_timeout: Duration, stale_writer: bool) -> (WritePermit, LockStub) {
        let core = Arc::new(LockCore::new(age_timeout, stale_writer));
        let stub = LockStub(core.clone());
        let permit = WritePermit {
            core,
            registration: None,
            finished: false,
        };
        (permit, stub)
    }

    /// Release the lock with `reason` and wake the readers. Only the first call counts.
    ///
    /// `reason` should be a writer outcome (`Done`, `TransientError`, `GiveUp`, ...); `Waiting` and
    /// `WaitTimeout` are recorded as `TransientError`.
    pub fn unlock(&mut self, reason: LockStatus) {
        if self.finished {
            return;
        }
        self.finished = true;
        // Leave the table first, so a woken reader that locks again never finds this lock.
        self.deregister();
        self.core.unlock(reason);
    }

    /// Whether this writer revalidates a stale entry.
    pub fn stale_writer(&self) -> bool {
        self.core.stale_writer
    }

    /// The lock's status as its readers see it.
    pub fn lock_status(&self) -> LockStatus {
        self.core.lock_status()
    }

    /// When this permit was granted.
    pub fn lock_start(&self) -> std::time::Instant {
        self.core.lock_start.into_std()
    }

    fn deregister(&mut self) {
        if let Some(Registration { table, key }) = self.registration.take()
            && let Some(table) = table.upgrade()
        {
            table.remove_if_same(key, &self.core);
        }
    }
}

impl Drop for WritePermit {
    fn drop(&mut self) {
        if !self.finished {
            tracing::debug!("cache lock write permit dropped without release");
            self.unlock(LockStatus::Dangling);
        }
    }
}

const N_SHARDS: usize = 16;

/// The lock table: [`N_SHARDS`] maps from the combined key hash to its live lock.
#[derive(Debug)]
struct LockTable {
    shards: [RwLock<HashMap<u128, Arc<LockCore>, ahash::RandomState>>; N_SHARDS],
}

impl LockTable {
    fn new() -> Self {
        Self {
            shards: std::array::from_fn(|_| RwLock::new(HashMap::default())),
        }
    }

    fn shard(&self, key: u128) -> &RwLock<HashMap<u128, Arc<LockCore>, ahash::RandomState>> {
        // The key is a cryptographic hash: its low bits are already uniform.
        #[allow(clippy::cast_possible_truncation)] // the modulus fits in usize
        &self.shards[(key % N_SHARDS as u128) as usize]
    }

    fn remove_if_same(&self, key: u128, core: &Arc<LockCore>) {
        let mut shard = self.shard(key).write();
        if shard.get(&key).is_some_and(|c| Arc::ptr_eq(c, core)) {
            shard.remove(&key);
        }
    }
}

/// The standard [`CacheKeyLock`]: a sharded table of per-key locks.
#[derive(Debug)]
pub struct CacheLock {
    table: Arc<LockTable>,
    age_timeout: Duration,
}

impl CacheLock {
    /// A lock whose writers are considered dead after holding a key for `age_timeout`.
    pub fn new(age_timeout: Duration) -> Self {
        Self {
            table: Arc::new(LockTable::new()),
            age_timeout,
        }
    }

    /// [`CacheLock::new`], boxed (to leak into the `&'static` that `HttpCache::enable` takes).
    pub fn new_boxed(age_timeout: Duration) -> Box<Self> {
        Box::new(Self::new(age_timeout))
    }

    /// The age timeout given at construction.
    pub fn age_timeout(&self) -> Duration {
        self.age_timeout
    }

    /// The number of keys currently locked (including expired locks not yet replaced).
    pub fn len(&self) -> usize {
        self.table.shards.iter().map(|s| s.read().len()).sum()
    }

    /// Whether no key is locked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl CacheKeyLock for CacheLock {
    fn lock(&self, key: &CacheKey, stale_writer: bool) -> Locked {
        let hash = u128::from_be_bytes(key.combined_bin());
        let shard = self.table.shard(hash);
        if let Some(core) = shard.read().get(&hash)
            && core.is_live()
        {
            return Locked::Read(ReadLock(core.clone()));
        }
        let mut map = shard.write();
        // Checked again: another locker may have won between the two locks.
        if let Some(core) = map.get(&hash)
            && core.is_live()
        {
            return Locked::Read(ReadLock(core.clone()));
        }
        // Empty, or the previous writer finished, dangled or aged out: this request writes.
        let core = Arc::new(LockCore::new(self.age_timeout, stale_writer));
        map.insert(hash, core.clone());
        Locked::Write(WritePermit {
            core,
            registration: Some(Registration {
                table: Arc::downgrade(&self.table),
                key: hash,
            }),
            finished: false,
        })
    }

    fn release(&self, _key: &CacheKey, mut permit: WritePermit, reason: LockStatus) {
        // The permit knows its own table entry; an aged-out writer's release leaves a newer
        // writer's entry alone.
        permit.unlock(reason);
    }
}

#[cfg(test)]
mod tests;
