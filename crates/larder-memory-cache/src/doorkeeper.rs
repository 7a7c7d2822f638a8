//! The doorkeeper of `TinyLFU`: a small Bloom filter in front of admission, so that a key must be
//! offered twice within a window before it may displace anything.
//!
//! `TinyUFO` runs `TinyLFU` admission with a count-min sketch only (its own comment says "no
//! doorkeeper for now"): every admission attempt hashes the key once per sketch row (14 rows for
//! a 10 k item cache) and touches as many cache lines, even for keys offered only once, which
//! under a skewed workload are most of the misses. The doorkeeper answers "seen before?" from
//! one 64-bit word, and only repeat offers go on to the sketch. This is the doorkeeper of the
//! `TinyLFU` paper (Einziger, Friedman, Manes: "`TinyLFU`: A Highly Efficient Cache Admission
//! Policy"), cleared periodically like its sketch is aged.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

pub(crate) struct Doorkeeper {
    words: Box<[AtomicU64]>,
    /// `words.len() - 1` (a power of two minus one).
    mask: u64,
    /// Keys recorded since the last clear (estimated from a sample of one in eight).
    recorded: AtomicUsize,
    /// Clear after this many keys: at 1 key per 8 bits, 2 bits per key, about 5 % false positives.
    clear_after: usize,
}

/// Bits per expected cache item.
const BITS_PER_ITEM: usize = 16;

impl Doorkeeper {
    pub(crate) fn new(items: usize) -> Self {
        let bits = items
            .saturating_mul(BITS_PER_ITEM)
            .clamp(1 << 10, 1 << 30)
            .next_power_of_two();
        let words = bits / 64;
        Self {
            words: (0..words).map(|_| AtomicU64::new(0)).collect(),
            mask: words as u64 - 1,
            recorded: AtomicUsize::new(0),
            clear_after: bits / 8,
        }
    }

    /// Records `hash` and returns whether it had been recorded already (since the last clear,
    /// give or take a false positive).
    pub(crate) fn check_and_record(&self, hash: u64) -> bool {
        let (word, bits) = self.slot(hash);
        if word.load(Relaxed) & bits == bits {
            return true;
        }
        word.fetch_or(bits, Relaxed);
        // Count one key in eight (by hash bits unused above), so that threads recording keys
        // rarely write the shared counter.
        if hash >> 61 == 0 && self.recorded.fetch_add(8, Relaxed) + 8 >= self.clear_after {
            self.clear();
        }
        false
    }

    fn slot(&self, hash: u64) -> (&AtomicU64, u64) {
        #[allow(clippy::cast_possible_truncation)] // masked to the table size
        let word = &self.words[(hash & self.mask) as usize];
        (
            word,
            (1u64 << ((hash >> 32) & 63)) | (1u64 << ((hash >> 48) & 63)),
        )
    }

    #[cfg(test)]
    fn contains(&self, hash: u64) -> bool {
        let (word, bits) = self.slot(hash);
        word.load(Relaxed) & bits == bits
    }

    fn clear(&self) {
        self.recorded.store(0, Relaxed);
        for w in &self.words {
            w.store(0, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_offer_passes() {
        let d = Doorkeeper::new(100);
        assert!(!d.check_and_record(0x1234_5678_9abc_def0));
        assert!(d.check_and_record(0x1234_5678_9abc_def0));
    }

    #[test]
    fn clears_after_its_window() {
        let d = Doorkeeper::new(100);
        let key = 0xdead_beef_0000_0001;
        d.check_and_record(key);
        assert!(d.contains(key));
        // Other keys until the filter clears.
        for i in 1u64.. {
            let before = d.recorded.load(Relaxed);
            d.check_and_record(i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            if d.recorded.load(Relaxed) < before {
                break;
            }
        }
        assert!(!d.contains(key));
    }

    #[test]
    fn false_positives_are_rare_before_a_clear() {
        let d = Doorkeeper::new(10_000);
        let n = (d.clear_after - 1) as u64;
        for i in 0..n {
            d.check_and_record(i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5555);
        }
        let fp = (n..2 * n)
            .filter(|i| d.contains(i.wrapping_mul(0xC2B2_AE3D_27D4_EB4F)))
            .count();
        assert!((fp as u64) * 10 < n, "{fp} false positives in {n}");
    }
}
