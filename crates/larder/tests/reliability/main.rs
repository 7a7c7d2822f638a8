//! Reliability and security scenarios: a controllable origin and the caching proxy, both served
//! by hyper on 127.0.0.1, driven by herds, faults, memory pressure, many connections and hostile
//! requests. Each scenario prints the figure docs/reliability.md records.

// A failed unwrap in a test helper is a failed test, which is what it should be.
#![allow(clippy::unwrap_used)]

mod faults;
mod framing;
mod harness;
mod herd;
mod load;
mod memory;
mod poisoning;
mod security;
mod slow_clients;
