//! A tower caching layer and the larder caching reverse proxy.
//!
//! [`CacheLayer`] wraps any tower service that answers `http::Request`s (a hyper client to an
//! origin such as [`Upstream`], or an application) with a shared HTTP cache that follows
//! RFC 9111, driving one `larder_cache::HttpCache` per request through the phases pingora-cache
//! users know. [`CacheHooks`] carries the cache callbacks (pingora's `ProxyHttp` cache
//! callbacks), each with an RFC 9111 default. The `larder` binary (crate `larder-server`) runs
//! the layer in front of an origin: `larder --upstream http://127.0.0.1:8000 --listen
//! 127.0.0.1:6188`. This crate knows storage only through the `Storage` trait; the binary
//! wires in the backends (memory, Redis, memory in front of Redis).
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response};
//! use http_body_util::{BodyExt, Full};
//! use larder_proxy::config::EvictionPolicy;
//! use larder_proxy::{CacheConfig, CacheLayer, DefaultHooks, ProxyBody};
//! use tower::{Layer, ServiceExt};
//!
//! // Any service can sit behind the cache; this one is an origin in memory.
//! let origin = tower::service_fn(|_req: Request<ProxyBody>| async {
//!     Ok::<_, Infallible>(
//!         Response::builder()
//!             .header("cache-control", "max-age=60")
//!             .body(Full::new(bytes::Bytes::from_static(b"hello")))
//!             .expect("valid response"),
//!     )
//! });
//! let layer = CacheLayer::new(CacheConfig::in_memory(1 << 20, EvictionPolicy::Tinyufo), DefaultHooks);
//! let cached = layer.layer(origin);
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
//! for expect in ["larder; fwd=uri-miss", "larder; hit"] {
//!     let req = Request::get("/greeting").header("host", "example.com").body(Full::default())?;
//!     let resp = cached.clone().oneshot(req).await?;
//!     assert!(resp.headers()["cache-status"].to_str()?.starts_with(expect));
//!     assert_eq!(resp.into_body().collect().await?.to_bytes(), "hello");
//! }
//! # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
//! # }).map_err(|e| e as Box<dyn std::error::Error>)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # What the layer does
//!
//! - **Hits** carry `Age` (RFC 9111 §4.2.3) and a `Cache-Status` member (RFC 9211) — every
//!   response does, and its `detail` names the `NoCacheReason` when a response was not stored.
//!   The client's `If-None-Match` / `If-Modified-Since` get `304`, failed `If-Match` gets `412`,
//!   `HEAD` is answered from a stored `GET`, and `Range` gets single or multipart `206` / `416`.
//! - **Misses** go upstream without the client's preconditions and ranges (and as `GET` for a
//!   `HEAD`); the body streams to the client and into storage at once, with back-pressure. With
//!   a cache lock, one request per key goes upstream; the others stream its partial write. An
//!   upstream that fails mid-body ends the client's body in an error and leaves no entry.
//!   **If the client disconnects while a cacheable response is being stored, the fill continues
//!   to completion** so the next request finds a whole entry; an uncacheable response stops
//!   being read.
//! - **Stale** entries are revalidated with their validators; a `304` merges its header fields
//!   into the stored response. Within `stale-while-revalidate` the stale response is served at
//!   once while one background refresh holds the write lock; within `stale-if-error` (or when
//!   the origin is unreachable and the response does not forbid it, RFC 9111 §4.2.4) it
//!   replaces a failed upstream answer.
//! - **Unsafe methods** are forwarded; a non-error answer invalidates the target URI and
//!   same-host `Location` / `Content-Location` (RFC 9111 §4.4). `PURGE` with the configured
//!   bearer token removes an entry.
//! - **Interim responses** (`103 Early Hints`, `102`) the origin sends before its answer are
//!   forwarded to HTTP/1.1 clients of [`server::serve`] (and [`server::serve_with`], over TLS
//!   too) as they arrive, and never stored: a later hit carries none.
//! - **Serving**: [`server::serve`] runs a service on a listener (HTTP/1.1 and cleartext HTTP/2
//!   on one port, graceful shutdown); [`server::serve_with`] takes a service and TLS settings
//!   per connection (so a reload reaches new connections only), terminates TLS with the
//!   configuration [`tls::server_config`] builds (certificates chosen by SNI, ALPN `h2` and
//!   `http/1.1`, TLS 1.2 and 1.3), and puts the connection's [`server::ClientInfo`] in every
//!   request.
//! - **Request targets** (RFC 9112 §3.2): origin-form and absolute-form are served, `*` only
//!   for `OPTIONS` (forwarded, never cached). The proxy does not tunnel arbitrary connections:
//!   `CONNECT` gets `405` with `Allow` (HTTP/2 extended CONNECT for an upgrade aside), and an
//!   authority-form target on any other method gets `400`, before the cache or the origin see
//!   the request.
//! - **Upgrades** (WebSocket; RFC 9110 §7.8): an HTTP/1.1 `GET` with `Connection: upgrade`
//!   and `Upgrade: websocket`, or an HTTP/2 extended CONNECT with `:protocol` `websocket` (RFC 8441, sent to the origin as an HTTP/1.1
//!   WebSocket `GET`), bypasses the cache (`Cache-Status: …; fwd=bypass; detail=Upgrade`) and
//!   goes to the origin with `Upgrade` and `Connection: upgrade`. When the origin answers
//!   `101`, the client gets it (`200` over HTTP/2) and the two upgraded connections are joined
//!   by a task on the layer's spawner until either side closes (`larder_upgrades_total`,
//!   `larder_tunnels`); any other answer is passed through uncached. The server must hand
//!   over connections ([`server::serve`] does); without that, for HTTP/1.0, and for any other
//!   protocol (`h2c` included, which would hand the client a raw HTTP/2 connection to the
//!   origin), `Upgrade` is dropped as a hop-by-hop field and the request takes the cache's
//!   path.
//! - **Hop-by-hop** fields (RFC 9110 §7.6.1) are removed both ways (save an upgrade's
//!   `Upgrade` and `Connection: upgrade`) and `Via` is added.
//! - **Origins** ([`Upstream`]) are `http://` (HTTP/1.1) or `https://`: the certificate is
//!   verified against the system store and the bundled roots, or a private CA
//!   ([`UpstreamOptions::ca_file`]), with an optional SNI override; HTTP/2 is spoken when the
//!   origin's ALPN picks it. A connection not up within the connect timeout is `502`, a
//!   response head not in within the response timeout `504` (both with `Cache-Status`, and
//!   stale-if-error still applies); connections are pooled with a bound on idle ones.
//!   `X-Forwarded-For`, `Forwarded` and `X-Forwarded-Proto` can be added from the
//!   [`server::ClientInfo`] of the request, and `Host` replaced.
//! - No freshness is invented: without explicit freshness or `Last-Modified`, nothing is stored
//!   unless [`CacheConfig::defaults`] says so.
//! - **Callbacks** ([`CacheHooks`]) steer each step as pingora's `ProxyHttp` cache callbacks
//!   do: besides the cache decisions (key, storability, `Vary`, hit filter, stale serving),
//!   `cache_miss` runs on every miss, `proxy_upstream_filter` may keep a request from the
//!   upstream (`502`, `DeclinedToUpstream`), `range_header_filter` chooses how a range is
//!   answered, `response_filter` and `response_body_filter` see every answer (hits included),
//!   `purge_response_filter` the PURGE answer, and `fail_to_proxy` builds the error page when
//!   the origin fails. Callbacks that can fail return [`BoxError`]. The defaults cost a hit
//!   nothing: no boxed future, and bodies are not wrapped unless a hook asks for them.
//! - **Cookies are never replayed**: a response with `Set-Cookie` is stored only when the origin
//!   opts in for shared caches (`public`, `s-maxage`, `CDN-Cache-Control`), and the stored copy
//!   has no `Set-Cookie`, so hits, revalidated hits and stale answers never carry one; only the
//!   client whose request filled the cache gets it ([`CacheConfig::set_cookie`],
//!   [`CacheHooks::set_cookie_policy`]).

mod auth;
pub mod body;
mod callbacks;
pub mod config;
mod error;
mod fill;
mod flow;
pub mod headers;
mod hit;
mod hooks;
mod interim;
mod invalidate;
mod layer;
pub mod metrics;
mod pass;
mod pump;
pub mod purge;
mod revalidate;
pub mod server;
mod shared;
mod target;
pub mod tasks;
pub mod tls;
mod upgrade;
pub mod upstream;

pub use body::ProxyBody;
pub use error::{BoxError, Error};
pub use hooks::{CacheHooks, DefaultHooks, StaleCause, default_cache_key, default_variance};
pub use larder_cache::SetCookiePolicy;
pub use layer::{CacheLayer, CacheService};
pub use shared::CacheConfig;
pub use tasks::{DrainReport, Spawn, TokioSpawner};
pub use upstream::{ForwardedHeaders, Upstream, UpstreamOptions};
