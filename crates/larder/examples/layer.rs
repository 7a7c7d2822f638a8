//! CacheLayer around a plain hyper service (being written).

fn main() {}
