//! HttpCache: the phase-gated HTTP cache state machine and RFC 9111 semantics.

pub mod cache_status;
pub mod conditional;
pub mod lock;
pub mod max_file_size;
mod phase;
pub mod predictor;
pub mod range;

pub use phase::{CachePhase, NoCacheReason};
