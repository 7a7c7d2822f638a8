//! Serving a tower service with hyper: HTTP/1.1 and cleartext HTTP/2 on one port, or HTTP/1.1
//! and HTTP/2 over TLS (ALPN), request header limits, graceful shutdown, the client's
//! connection in every request's extensions ([`ClientInfo`]), and interim (1xx) responses
//! from the origin forwarded to HTTP/1.1 clients.
//!
//! [`serve_with`] accepts connections and hands each to its own task, which does the TLS
//! handshake (bounded by [`TLS_HANDSHAKE_TIMEOUT`]) and then serves the connection with the
//! protocols configured in one place, so a slow or broken client never holds up the accept
//! loop. [`serve`] is [`serve_with`] over plain TCP with one service; [`serve_admin`] serves
//! the metrics and health endpoints.

mod admin;
mod conn;
mod listen;

pub use admin::serve_admin;
pub use conn::{ClientInfo, MAX_HEADERS, MAX_REQUEST_HEAD, TLS_HANDSHAKE_TIMEOUT};
pub use listen::{SHUTDOWN_GRACE, TlsSource, serve, serve_with};
