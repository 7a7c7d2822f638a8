//! The test kit of the larder workspace: the pieces every integration test, the reliability
//! suite and the benches share, kept once here instead of copied per crate.
//!
//! - [`Origin`]: a scripted origin on a 127.0.0.1 port that records what it receives, and
//!   [`respond`], [`chunked_body`], [`slow_body`], [`pattern`] to build its answers;
//!   [`raw_origin`] answers with fixed bytes.
//! - [`Proxy`], [`serve`] and [`serve_over`]: the caching layer (or any tower service) served by
//!   the proxy's own server on a 127.0.0.1 port, in cleartext or over TLS; [`cache_config`] and
//!   [`memory_config`] for its configuration.
//! - [`Got`], [`send`], [`get`] and [`Transport`]: an HTTP client over HTTP/1.1 or HTTP/2,
//!   cleartext (HTTP/2 by prior knowledge) or TLS (ALPN), reading whole responses.
//! - [`raw`]: writing bytes to a socket and reading back what the server sends, and splitting
//!   that into responses.
//! - [`CacheStatus`]: the `Cache-Status` field (RFC 9211) parsed into members and parameters,
//!   so tests assert on fields instead of substrings.
//! - [`metric`]: one sample from an admin listener's `/metrics`.
//! - [`LarderProcess`]: the built `larder` binary, started by path and killed on drop.
//! - [`RedisServer`]: a throwaway `redis-server` on a free port.
//! - [`tls`]: a throwaway CA and the leaf certificates it signs, for TLS tests, and the test
//!   process's own CA and server certificate that the TLS transports use.
//! - [`storage_contract`]: the [`Storage`](larder_storage::Storage) contract as a suite any
//!   backend runs.
//!
//! The kit is a dev-dependency only (`publish = false`). Its helpers panic on failure, which in a
//! test is a failed test.
//!
//! ```
//! use larder_testkit::{Origin, Proxy, cache_config, get, respond};
//!
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(async {
//! let origin =
//!     Origin::start(|_, _| async { respond(200, &[("cache-control", "max-age=60")], "hi") }).await;
//! let proxy = Proxy::start(&origin, cache_config()).await;
//! let first = get(&proxy.url("/greeting")).await;
//! assert!(first.ours().is_fwd("uri-miss") && first.ours().is_stored());
//! let second = get(&proxy.url("/greeting")).await;
//! assert!(second.ours().hit);
//! assert_eq!((second.text(), origin.hits()), ("hi".to_owned(), 1));
//! # });
//! # Ok::<(), std::io::Error>(())
//! ```

// Test code: a failed unwrap or expect is a failed test, and every helper may panic that way.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

mod cache_status;
mod client;
mod metrics;
mod origin;
mod process;
mod proxy;
pub mod raw;
mod redis;
pub mod storage_contract;
pub mod tls;

pub use cache_status::{CacheStatus, Member, ParseError, Value};
pub use client::{
    Got, HttpClient, Transport, client, get, send, send_body, send_body_with, send_with,
};
pub use metrics::{metric, rss_bytes, sample};
pub use origin::{Origin, chunked_body, field, pattern, raw_origin, respond, slow_body};
pub use process::{LarderProcess, free_port};
pub use proxy::{Proxy, cache_config, memory_config, serve, serve_over};
pub use redis::RedisServer;
