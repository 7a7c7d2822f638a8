//! Benchmark placeholder; filled in by its crate's work.
fn main() {}
