//! Integration tests of larder-cache: the proxy flows over `MemCache` and the phase guards.

mod driver;
mod flaky;
mod flows;
mod model;
mod phases;
mod put;
mod tables;
