//! One behaviour, every way in: each scenario runs over HTTP/1.1 and cleartext HTTP/2 (prior
//! knowledge) and over each storage (memory; Redis alone and memory in front of Redis when a
//! `redis-server` binary is installed), and over TLS (HTTP/1.1 and HTTP/2 by ALPN, with the
//! memory storage: TLS and storage do not meet), asserting on the parsed `Cache-Status`.
//!
//! [`matrix!`] turns `async fn name(case: &Case) { … }` into a module `name` with one test per
//! transport and storage (`name::h2c_tiered`, `name::h2_tls_memory`, …), each with its own
//! proxy and, for the Redis storages, its own throwaway `redis-server`. A storage that needs
//! Redis is skipped, with the reason printed, only when the binary is missing.

// A failed unwrap in a test is a failed test, which is what it should be.
#![allow(clippy::unwrap_used)]

mod case;
mod scenarios;

pub(crate) use case::{Case, Store};

/// Defines each scenario `async fn name(case: &Case)` and, in a module of the same name, one
/// test per transport and storage running it.
macro_rules! matrix {
    ($($(#[$meta:meta])* async fn $name:ident($case:ident: &Case) $body:block)*) => {$(
        $(#[$meta])*
        async fn $name($case: &$crate::Case) $body

        mod $name {
            $crate::matrix!(@test $name, http1_memory, Http1, Memory);
            $crate::matrix!(@test $name, http1_redis, Http1, Redis);
            $crate::matrix!(@test $name, http1_tiered, Http1, Tiered);
            $crate::matrix!(@test $name, h2c_memory, H2c, Memory);
            $crate::matrix!(@test $name, h2c_redis, H2c, Redis);
            $crate::matrix!(@test $name, h2c_tiered, H2c, Tiered);
            $crate::matrix!(@test $name, http1_tls_memory, Http1Tls, Memory);
            $crate::matrix!(@test $name, h2_tls_memory, H2Tls, Memory);
        }
    )*};
    (@test $name:ident, $test:ident, $transport:ident, $store:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $test() {
            let transport = larder_testkit::Transport::$transport;
            if let Some(case) = $crate::Case::new(transport, $crate::Store::$store).await {
                super::$name(&case).await;
            }
        }
    };
}
pub(crate) use matrix;
