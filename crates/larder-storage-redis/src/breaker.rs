//! A circuit breaker: after a run of failed calls, Redis is skipped for a cool-down so a hung
//! server costs requests nothing instead of a timeout each.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Consecutive failures and, once they reach the threshold, when calls may try again.
///
/// Closed (calls go through) until `threshold` calls in a row fail; then open for
/// `cooldown`: calls are refused at once. After the cool-down one call goes through as a
/// probe (the others keep being refused); its success closes the breaker, its failure opens
/// it for another cool-down.
#[derive(Debug)]
pub(crate) struct Breaker {
    threshold: u32,
    cooldown_ms: u64,
    base: Instant,
    failures: AtomicU32,
    /// Milliseconds after `base` until which calls are refused; 0 = closed.
    open_until: AtomicU64,
}

impl Breaker {
    /// A breaker opening after `threshold` failures in a row (0 = never) for `cooldown`.
    pub(crate) fn new(threshold: u32, cooldown: Duration) -> Self {
        Breaker {
            threshold,
            cooldown_ms: u64::try_from(cooldown.as_millis())
                .unwrap_or(u64::MAX)
                .max(1),
            base: Instant::now(),
            failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        // At least 1, so 0 keeps meaning "closed".
        u64::try_from(self.base.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// Whether a call may go to Redis now.
    pub(crate) fn allow(&self) -> bool {
        let until = self.open_until.load(Ordering::Acquire);
        if until == 0 {
            return true;
        }
        let now = self.now_ms();
        if now < until {
            return false;
        }
        // Cool-down over: the one call that moves the deadline on is the probe.
        self.open_until
            .compare_exchange(
                until,
                now.saturating_add(self.cooldown_ms),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }

    /// A call reached Redis and got an answer.
    pub(crate) fn success(&self) {
        self.failures.store(0, Ordering::Relaxed);
        self.open_until.store(0, Ordering::Release);
    }

    /// A call could not reach Redis or timed out.
    pub(crate) fn failure(&self) {
        let failures = self
            .failures
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        if self.threshold > 0 && failures >= self.threshold {
            let until = self.now_ms().saturating_add(self.cooldown_ms);
            self.open_until.fetch_max(until, Ordering::AcqRel);
        }
    }

    /// Whether calls are being refused now.
    pub(crate) fn is_open(&self) -> bool {
        let until = self.open_until.load(Ordering::Acquire);
        until != 0 && self.now_ms() < until
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_and_probes_after_the_cooldown() {
        let breaker = Breaker::new(3, Duration::from_millis(30));
        for _ in 0..2 {
            assert!(breaker.allow());
            breaker.failure();
        }
        assert!(!breaker.is_open());
        breaker.failure();
        assert!(breaker.is_open());
        assert!(!breaker.allow());
        std::thread::sleep(Duration::from_millis(40));
        // One probe goes through; the next call waits for its outcome.
        assert!(breaker.allow());
        assert!(!breaker.allow());
        breaker.failure();
        assert!(!breaker.allow(), "a failed probe opens it again");
        std::thread::sleep(Duration::from_millis(40));
        assert!(breaker.allow());
        breaker.success();
        assert!(breaker.allow() && breaker.allow());
        assert!(!breaker.is_open());
    }

    #[test]
    fn success_resets_the_run_of_failures() {
        let breaker = Breaker::new(2, Duration::from_mins(1));
        breaker.failure();
        breaker.success();
        breaker.failure();
        assert!(breaker.allow());
        breaker.failure();
        assert!(!breaker.allow());
    }

    #[test]
    fn zero_threshold_never_opens() {
        let breaker = Breaker::new(0, Duration::from_mins(1));
        for _ in 0..100 {
            breaker.failure();
        }
        assert!(breaker.allow());
    }
}
