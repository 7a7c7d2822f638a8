//! Background tasks with an owner: the layer never spawns on its own (as hyper's
//! `rt::Executor`), it hands each task to the [`Spawn`] it was given, counts it while it runs
//! (`larder_background_tasks` in `/metrics`) and drains it on shutdown
//! ([`CacheLayer::drain`](crate::CacheLayer::drain)), cancelling what outlives the grace period
//! with a logged reason.
//!
//! The tasks are the fills of cacheable misses (writing the body into storage whether or not
//! the client still reads), stale-while-revalidate refreshes, and the streams feeding a large
//! stored body or a range of an upstream body to a client, and the tunnels of upgraded
//! connections (WebSocket).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};

use crate::metrics::Metrics;

/// A task handed to a [`Spawn`].
pub type BoxTask = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Runs the layer's background tasks (in the spirit of hyper's `rt::Executor`).
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use larder_proxy::tasks::{BoxTask, Spawn};
///
/// /// Counts the tasks, then runs them on Tokio.
/// #[derive(Default)]
/// struct Counting(AtomicUsize);
///
/// impl Spawn for Counting {
///     fn spawn(&self, task: BoxTask) {
///         self.0.fetch_add(1, Ordering::Relaxed);
///         tokio::spawn(task);
///     }
/// }
/// let spawner: Arc<dyn Spawn> = Arc::new(Counting::default());
/// # let _ = spawner;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Spawn: Send + Sync + 'static {
    /// Runs `task` to completion in the background.
    fn spawn(&self, task: BoxTask);
}

/// The default [`Spawn`]: `tokio::spawn` on the current runtime.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioSpawner;

impl Spawn for TokioSpawner {
    fn spawn(&self, task: BoxTask) {
        drop(tokio::spawn(task));
    }
}

/// What a background task does (for logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TaskKind {
    /// Writes a cacheable upstream body into storage.
    Fill,
    /// Refreshes a stale entry (stale-while-revalidate).
    Refresh,
    /// Streams a body to a client.
    Stream,
    /// Joins a client's upgraded connection with the origin's (WebSocket and other upgrades).
    Tunnel,
}

impl TaskKind {
    /// The name in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fill => "fill",
            Self::Refresh => "refresh",
            Self::Stream => "stream",
            Self::Tunnel => "tunnel",
        }
    }
}

/// What [`CacheLayer::drain`](crate::CacheLayer::drain) found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DrainReport {
    /// Tasks running when the drain began.
    pub in_flight: u64,
    /// Tasks cancelled because the grace period ran out.
    pub cancelled: u64,
    /// Tasks still running when the drain gave up waiting for the cancelled ones (a spawner
    /// that does not poll them).
    pub left: u64,
}

/// How long a drain waits for cancelled tasks to notice.
const CANCEL_WAIT: Duration = Duration::from_secs(1);

/// The layer's background tasks: its spawner, the count in flight and the cancel signal.
pub(crate) struct Tasks {
    spawner: Arc<dyn Spawn>,
    metrics: Arc<Metrics>,
    /// Notified whenever a task ends.
    ended: Arc<Notify>,
    cancel: watch::Sender<bool>,
}

impl Tasks {
    pub(crate) fn new(spawner: Arc<dyn Spawn>, metrics: Arc<Metrics>) -> Self {
        Self {
            spawner,
            metrics,
            ended: Arc::new(Notify::new()),
            cancel: watch::Sender::new(false),
        }
    }

    /// Runs `task` on the spawner, counted until it ends or is cancelled by a drain.
    pub(crate) fn spawn(&self, kind: TaskKind, task: impl Future<Output = ()> + Send + 'static) {
        let guard = Running {
            metrics: Arc::clone(&self.metrics),
            ended: Arc::clone(&self.ended),
        };
        guard.metrics.background_tasks.inc();
        let mut cancel = self.cancel.subscribe();
        let cancelled = async move {
            if cancel.wait_for(|cancelled| *cancelled).await.is_err() {
                // The layer is gone without a drain: nothing can cancel the task any more.
                std::future::pending::<()>().await;
            }
        };
        self.spawner.spawn(Box::pin(async move {
            let running = guard;
            tokio::select! {
                biased;
                () = task => {}
                () = cancelled => {
                    running.metrics.background_tasks_cancelled.inc();
                    tracing::warn!(task = kind.as_str(), reason = "shutdown grace period over", "background task cancelled");
                }
            }
        }));
    }

    /// Waits for the tasks in flight to end, at most `grace`; then cancels the rest.
    pub(crate) async fn drain(&self, grace: Duration) -> DrainReport {
        let in_flight = self.metrics.background_tasks.get();
        let cancelled_before = self.metrics.background_tasks_cancelled.get();
        if tokio::time::timeout(grace, self.idle()).await.is_ok() {
            return DrainReport {
                in_flight,
                ..DrainReport::default()
            };
        }
        tracing::warn!(
            tasks = self.metrics.background_tasks.get(),
            ?grace,
            "background tasks outlived the shutdown grace period: cancelling them"
        );
        self.cancel.send_replace(true);
        let _ = tokio::time::timeout(CANCEL_WAIT, self.idle()).await;
        DrainReport {
            in_flight,
            cancelled: self
                .metrics
                .background_tasks_cancelled
                .get()
                .saturating_sub(cancelled_before),
            left: self.metrics.background_tasks.get(),
        }
    }

    /// Returns once no task is in flight.
    async fn idle(&self) {
        loop {
            let ended = self.ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            if self.metrics.background_tasks.get() == 0 {
                return;
            }
            ended.await;
        }
    }
}

/// Counts a task in flight until dropped (when the task ends, is cancelled or is dropped by
/// its spawner).
struct Running {
    metrics: Arc<Metrics>,
    ended: Arc<Notify>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.metrics.background_tasks.dec();
        self.ended.notify_waiters();
    }
}

#[cfg(test)]
mod tests;
