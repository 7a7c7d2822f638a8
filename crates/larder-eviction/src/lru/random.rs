//! The cheap per-thread random numbers behind power-of-two-choices shard picking.

use std::cell::Cell;
use std::hash::BuildHasher;

thread_local! {
    /// Per-thread state of the generator behind power-of-two-choices shard picking.
    static RNG: Cell<u64> = const { Cell::new(0) };
}

/// A fast per-thread pseudo-random number (wyrand); quality only needs to be good enough to pick
/// shards, so a cryptographic generator would be wasted work on the eviction path.
pub(super) fn next_random() -> u64 {
    RNG.with(|state| {
        let mut s = state.get();
        if s == 0 {
            s = std::collections::hash_map::RandomState::new().hash_one(0u8) | 1;
        }
        s = s.wrapping_add(0xA076_1D64_78BD_642F);
        state.set(s);
        let t = u128::from(s) * u128::from(s ^ 0xE703_7ED1_A0B4_28DB);
        #[allow(clippy::cast_possible_truncation)] // folding both halves on purpose
        let r = (t as u64) ^ ((t >> 64) as u64);
        r
    })
}
