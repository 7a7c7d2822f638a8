//! Integration tests: a real origin, the real proxy, real HTTP on 127.0.0.1.

// A failed unwrap in a test helper is a failed test, which is what it should be.
#![allow(clippy::unwrap_used)]

mod cache;
mod cookie;
mod forwarded;
mod hook_errors;
mod hooks;
mod https_origin;
mod interim;
mod proxy;
mod target;
mod tls_listener;
mod upgrade;
