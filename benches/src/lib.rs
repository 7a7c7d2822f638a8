//! Shared workload generators for the side-by-side benchmarks, so every peer sees the same keys.

use rand::SeedableRng;
use rand::rngs::SmallRng;
use rand_distr::{Distribution, Zipf};

/// A reproducible sequence of `len` keys drawn from a Zipf distribution with exponent `s`
/// over `n_keys` distinct keys (1-based ranks turned into well-spread `u64` keys).
///
/// # Panics
/// Panics if `n_keys` is 0 or `s` is not a valid Zipf exponent (benchmark set-up bug).
#[must_use]
pub fn zipf_keys(n_keys: u64, s: f64, len: usize, seed: u64) -> Vec<u64> {
    #[allow(clippy::cast_precision_loss)] // key counts in benches are far below 2^52
    let dist = Zipf::new(n_keys as f64, s).expect("valid zipf parameters");
    let mut rng = SmallRng::seed_from_u64(seed);
    (0..len)
        .map(|_| {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let rank = dist.sample(&mut rng) as u64;
            // Spread ranks over the u64 space so shard selection is not trivially sequential.
            rank.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        })
        .collect()
}
