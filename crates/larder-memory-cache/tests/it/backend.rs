//! A scripted backend for the read-through tests: passed as the `extra` argument, it counts
//! lookups and decides, per call number, how long to take and whether to succeed, fail or panic.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use larder_memory_cache::{BoxError, Lookup, MultiLookup};

/// What the backend does on one call.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Step {
    /// Sleep, then return `"{key}#{call}"`.
    Value(Duration),
    /// Sleep, then fail.
    Fail(Duration),
    /// Sleep, then panic.
    Panic(Duration),
}

/// Clones share the call counter (a background refresh works on a clone).
#[derive(Clone)]
pub(crate) struct Backend {
    calls: Arc<AtomicUsize>,
    script: fn(usize) -> Step,
    ttl: Option<Duration>,
}

impl Backend {
    pub(crate) fn new(script: fn(usize) -> Step) -> Self {
        Self {
            calls: Arc::new(AtomicUsize::new(0)),
            script,
            ttl: None,
        }
    }

    /// Every lookup returns this TTL (overriding the one passed to `get`).
    pub(crate) fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    pub(crate) fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    async fn fetch(&self, key: &str) -> Result<(String, Option<Duration>), BoxError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        match (self.script)(call) {
            Step::Value(d) => {
                tokio::time::sleep(d).await;
                Ok((format!("{key}#{call}"), self.ttl))
            }
            Step::Fail(d) => {
                tokio::time::sleep(d).await;
                Err(format!("backend down (call {call})").into())
            }
            Step::Panic(d) => {
                tokio::time::sleep(d).await;
                panic!("lookup panicked (call {call})");
            }
        }
    }
}

/// The lookup marker type: forwards to the [`Backend`] given as `extra`.
pub(crate) struct Via;

impl Lookup<String, String, Backend> for Via {
    async fn lookup(
        key: &String,
        extra: Option<&Backend>,
    ) -> Result<(String, Option<Duration>), BoxError> {
        extra.expect("tests pass a backend").fetch(key).await
    }
}

impl MultiLookup<String, String, Backend> for Via {
    async fn multi_lookup(
        keys: &[&String],
        extra: Option<&Backend>,
    ) -> Result<Vec<(String, Option<Duration>)>, BoxError> {
        let backend = extra.expect("tests pass a backend");
        let call = backend.calls.fetch_add(1, Ordering::SeqCst);
        match (backend.script)(call) {
            Step::Value(_) => Ok(keys
                .iter()
                .map(|k| (format!("{k}#{call}"), backend.ttl))
                .collect()),
            // A buggy batch backend: one value short.
            Step::Panic(_) => Ok(keys
                .iter()
                .skip(1)
                .map(|k| (format!("{k}#{call}"), backend.ttl))
                .collect()),
            Step::Fail(_) => Err("batch backend down".into()),
        }
    }
}

pub(crate) const FAST: Step = Step::Value(Duration::ZERO);
