//! Per-key lookup locks: the first caller to miss a key becomes its *leader* and runs the lookup;
//! later callers become *waiters* and are woken (no polling) when the leader finishes.
//!
//! How a lock ends, and what its waiters see:
//! * the leader finishes: every waiter gets the leader's result, value or error;
//! * the leader panics: every waiter gets [`Error::LookupPanicked`];
//! * the leader is cancelled (its future dropped): the waiters are released without a result and
//!   race to become the next leader, so exactly one of them runs the lookup;
//! * the lock outlives `lock_age`: it counts as abandoned; the next caller (or a waiter whose wait
//!   reaches that age) replaces it and leads a fresh lookup.
//!
//! A lock is one allocation: the outcome, set once, and a [`Notify`] that wakes the waiters
//! registered before it was set (a waiter registers, then checks the outcome, then sleeps).

use std::collections::HashMap;
use std::pin::pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::Error;
use crate::memory::KeyHash;

/// How a lock ended.
enum Outcome<T> {
    /// The leader finished with this result.
    Done(Result<T, Error>),
    /// The leader went away without a result.
    Abandoned,
}

struct State<T> {
    outcome: OnceLock<Outcome<T>>,
    notify: Notify,
}

struct Entry<T> {
    state: Arc<State<T>>,
    /// When the lock was taken; only tracked when locks can age.
    started: Option<Instant>,
}

const SHARDS: usize = 16;

type Shard<T> = Mutex<HashMap<KeyHash, Entry<T>, ahash::RandomState>>;

pub(crate) struct LockTable<T> {
    shards: Box<[Shard<T>]>,
}

pub(crate) enum Acquired<'a, T> {
    Leader(Leader<'a, T>),
    Waiter(Waiter<T>),
}

impl<T> LockTable<T> {
    fn shard(&self, hash: KeyHash) -> &Shard<T> {
        // The hash is uniformly distributed; the low bits pick the shard.
        #[allow(clippy::cast_possible_truncation)] // only the low bits matter
        &self.shards[hash.key as usize % SHARDS]
    }

    /// Removes the lock of `hash` if it is still `state` (an aged lock may have been replaced).
    fn release(&self, hash: KeyHash, state: &Arc<State<T>>) {
        let mut map = self.shard(hash).lock();
        if map.get(&hash).is_some_and(|e| Arc::ptr_eq(&e.state, state)) {
            map.remove(&hash);
        }
    }

    /// Number of live locks (for tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }
}

impl<T: Clone> LockTable<T> {
    pub(crate) fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    /// Becomes the leader for `hash`, or a waiter on its live lock.
    pub(crate) fn acquire(&self, hash: KeyHash, lock_age: Option<Duration>) -> Acquired<'_, T> {
        let now = lock_age.map(|_| Instant::now());
        let mut map = self.shard(hash).lock();
        if let Some(entry) = map.get(&hash)
            && !is_too_old(entry.started, lock_age, now)
        {
            return Acquired::Waiter(Waiter {
                state: entry.state.clone(),
                abandoned_at: entry
                    .started
                    .zip(lock_age)
                    .and_then(|(s, a)| s.checked_add(a)),
            });
        }
        Acquired::Leader(self.install(&mut map, hash, now))
    }

    /// Becomes the leader for `hash` unless a live lock exists.
    pub(crate) fn try_lead(
        &self,
        hash: KeyHash,
        lock_age: Option<Duration>,
    ) -> Option<Leader<'_, T>> {
        let now = lock_age.map(|_| Instant::now());
        let mut map = self.shard(hash).lock();
        if let Some(entry) = map.get(&hash)
            && !is_too_old(entry.started, lock_age, now)
        {
            return None;
        }
        Some(self.install(&mut map, hash, now))
    }

    fn install(
        &self,
        map: &mut HashMap<KeyHash, Entry<T>, ahash::RandomState>,
        hash: KeyHash,
        now: Option<Instant>,
    ) -> Leader<'_, T> {
        let state = Arc::new(State {
            outcome: OnceLock::new(),
            notify: Notify::new(),
        });
        // Replaces an abandoned entry, if any; its leader will not remove ours.
        map.insert(
            hash,
            Entry {
                state: state.clone(),
                started: now,
            },
        );
        Leader {
            table: self,
            hash,
            state: Some(state),
        }
    }
}

fn is_too_old(started: Option<Instant>, lock_age: Option<Duration>, now: Option<Instant>) -> bool {
    match (started, lock_age, now) {
        (Some(started), Some(age), Some(now)) => now.saturating_duration_since(started) >= age,
        _ => false,
    }
}

/// The caller that runs the lookup for a key. Dropping it without [`Leader::finish`] releases
/// the waiters: with [`Error::LookupPanicked`] while panicking, otherwise with no result (so one
/// of them takes over).
pub(crate) struct Leader<'a, T> {
    table: &'a LockTable<T>,
    hash: KeyHash,
    /// `None` once finished.
    state: Option<Arc<State<T>>>,
}

impl<T> Leader<'_, T> {
    /// Whether any caller is waiting on this lock.
    pub(crate) fn has_waiters(&self) -> bool {
        // The lock table and the leader hold one reference each; waiters hold the others.
        self.state
            .as_ref()
            .is_some_and(|s| Arc::strong_count(s) > 2)
    }

    /// Removes the lock and hands `result` to every waiter (cloning it only if there are any).
    pub(crate) fn finish(mut self, result: &Result<T, Error>)
    where
        T: Clone,
    {
        self.end(|| Outcome::Done(result.clone()));
    }

    fn end(&mut self, outcome: impl FnOnce() -> Outcome<T>) {
        let Some(state) = self.state.take() else {
            return;
        };
        self.table.release(self.hash, &state);
        // Out of the table, the lock gains no new waiters: the references left besides ours
        // are waiters (registered, or about to register and then check the outcome).
        if Arc::strong_count(&state) > 1 {
            let _ = state.outcome.set(outcome());
            state.notify.notify_waiters();
        }
    }
}

impl<T> Drop for Leader<'_, T> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.end(|| Outcome::Done(Err(Error::LookupPanicked)));
        } else {
            self.end(|| Outcome::Abandoned);
        }
    }
}

/// A caller waiting for a key's leader.
pub(crate) struct Waiter<T> {
    state: Arc<State<T>>,
    /// When the lock counts as abandoned (`lock_age` after it started).
    abandoned_at: Option<Instant>,
}

pub(crate) enum Waited<T> {
    /// The leader finished with this result.
    Done(Result<T, Error>),
    /// The leader went away without a result, or the lock reached `lock_age`: try again.
    Abandoned,
    /// `lock_timeout` ran out first.
    TimedOut,
}

impl<T: Clone> Waiter<T> {
    /// Waits for the leader, at most `lock_timeout` from now (and no later than the lock's age
    /// limit).
    pub(crate) async fn wait(self, lock_timeout: Option<Duration>) -> Waited<T> {
        let timeout_at = lock_timeout.and_then(|t| Instant::now().checked_add(t));
        let (deadline, on_deadline) = match (timeout_at, self.abandoned_at) {
            (Some(t), Some(a)) if a < t => (Some(a), Waited::Abandoned),
            (Some(t), _) => (Some(t), Waited::TimedOut),
            (None, Some(a)) => (Some(a), Waited::Abandoned),
            (None, None) => (None, Waited::TimedOut),
        };
        let state = &self.state;
        let done = async {
            let mut notified = pin!(state.notify.notified());
            // Register first, then check: an outcome set after the check wakes us.
            notified.as_mut().enable();
            if state.outcome.get().is_none() {
                notified.await;
            }
            match state.outcome.get() {
                Some(Outcome::Done(result)) => Waited::Done(result.clone()),
                // Woken without an outcome cannot happen (the outcome is set before waking);
                // treat it as an abandoned lock, which retries.
                Some(Outcome::Abandoned) | None => Waited::Abandoned,
            }
        };
        match deadline {
            None => done.await,
            Some(deadline) => tokio::time::timeout_at(deadline, done)
                .await
                .unwrap_or(on_deadline),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: KeyHash = KeyHash { key: 7, check: 9 };

    fn leader(table: &LockTable<u32>, age: Option<Duration>) -> Leader<'_, u32> {
        match table.acquire(H, age) {
            Acquired::Leader(l) => l,
            Acquired::Waiter(_) => panic!("expected to lead"),
        }
    }

    #[tokio::test]
    async fn finished_lock_is_removed_and_waiters_get_the_result() {
        let table = LockTable::new();
        let l = leader(&table, None);
        let Acquired::Waiter(w) = table.acquire(H, None) else {
            panic!("expected to wait")
        };
        assert!(table.try_lead(H, None).is_none());
        l.finish(&Ok(5));
        assert_eq!(table.len(), 0);
        assert!(matches!(w.wait(None).await, Waited::Done(Ok(5))));
    }

    #[tokio::test]
    async fn dropped_leader_releases_waiters_without_a_result() {
        let table = LockTable::new();
        let l = leader(&table, None);
        let Acquired::Waiter(w) = table.acquire(H, None) else {
            panic!("expected to wait")
        };
        drop(l);
        assert_eq!(table.len(), 0);
        assert!(matches!(w.wait(None).await, Waited::Abandoned));
    }

    #[tokio::test(start_paused = true)]
    async fn aged_lock_is_replaced_and_the_old_leader_leaves_the_new_one() {
        let table = LockTable::new();
        let age = Some(Duration::from_secs(1));
        let old = leader(&table, age);
        tokio::time::advance(Duration::from_secs(1)).await;
        let new = leader(&table, age);
        old.finish(&Ok(1));
        assert_eq!(table.len(), 1, "the new lock survives the old leader");
        let Acquired::Waiter(w) = table.acquire(H, age) else {
            panic!("expected to wait")
        };
        new.finish(&Ok(2));
        assert!(matches!(w.wait(None).await, Waited::Done(Ok(2))));
        assert_eq!(table.len(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn waiter_times_out() {
        let table = LockTable::new();
        let _l = leader(&table, None);
        let Acquired::Waiter(w) = table.acquire(H, None) else {
            panic!("expected to wait")
        };
        let start = Instant::now();
        assert!(matches!(
            w.wait(Some(Duration::from_secs(2))).await,
            Waited::TimedOut
        ));
        assert_eq!(start.elapsed(), Duration::from_secs(2));
    }
}
