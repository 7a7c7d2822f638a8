//! What [`Upstream`](super::Upstream) is configured with.

use std::path::PathBuf;
use std::time::Duration;

/// How [`Upstream`](super::Upstream) reaches its origin: TLS, HTTP/2, timeouts, pooling and the fields it adds.
///
/// `Default` is what `Upstream::new` uses: certificates verified against the system store and
/// the bundled roots, HTTP/2 when the origin's ALPN offers it, 10 s to connect, 60 s for the
/// response head, at most 32 idle connections kept for 60 s, the client's `Host` kept, and no
/// forwarding fields added.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UpstreamOptions {
    /// (https) PEM certificates of the CAs the origin's certificate must chain to, instead of
    /// the system store and bundled roots (a private CA). The file may hold several; one that
    /// cannot be read or holds none is [`Error::ConfigInvalid`](crate::Error::ConfigInvalid).
    pub ca_file: Option<PathBuf>,
    /// (https) The server name sent in SNI and checked against the certificate; the upstream
    /// URI's host when `None`.
    pub sni: Option<String>,
    /// (https) Accept any certificate. Logged as a warning when the client is built.
    pub insecure_skip_verify: bool,
    /// (https) Offer `h2` in ALPN (then `http/1.1`) and speak HTTP/2 when the origin picks it;
    /// `false` offers `http/1.1` alone. A plain `http://` origin is always spoken to over
    /// HTTP/1.1.
    pub http2: bool,
    /// The longest a TCP connect and TLS handshake may take together; then the request fails
    /// with [`Timeout::Connect`](super::Timeout::Connect) (the client gets 502).
    pub connect_timeout: Duration,
    /// The longest from sending a request to receiving the response head; then the request
    /// fails with [`Timeout::Response`](super::Timeout::Response) and the client gets 504 (or a stale response inside
    /// stale-if-error). It counts from when the request is handed to the pool, so a new
    /// connection's setup counts too: keep it longer than `connect_timeout`.
    pub response_timeout: Duration,
    /// The most idle connections kept open to the origin, per name asked for.
    pub pool_max_idle: usize,
    /// How long an idle pooled connection is kept.
    pub pool_idle_timeout: Duration,
    /// `Host` sent to the origin: `None` keeps the name the client asked for; `Some` replaces it.
    pub host: Option<String>,
    /// Which forwarding fields are added to requests sent to the origin.
    pub forwarded: ForwardedHeaders,
}

impl Default for UpstreamOptions {
    fn default() -> Self {
        Self {
            ca_file: None,
            sni: None,
            insecure_skip_verify: false,
            http2: true,
            connect_timeout: Duration::from_secs(10),
            response_timeout: Duration::from_mins(1),
            pool_max_idle: 32,
            pool_idle_timeout: Duration::from_mins(1),
            host: None,
            forwarded: ForwardedHeaders::default(),
        }
    }
}

/// The forwarding fields [`Upstream`](super::Upstream) adds from the request's
/// [`ClientInfo`](crate::server::ClientInfo); all off by default. A request without
/// `ClientInfo` (a background refresh, or a server that does not insert it) gets none of them.
// Four independent switches, each a field the operator sets by name.
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ForwardedHeaders {
    /// Append the client's address to `X-Forwarded-For`, after the values the client sent
    /// (as nginx's `$proxy_add_x_forwarded_for`); an IPv4-mapped IPv6 address is shown as IPv4.
    pub x_forwarded_for: bool,
    /// Append the element `for=…;proto=…;host=…` to `Forwarded` (RFC 7239 §4; an IPv6
    /// address bracketed and quoted, §6), after the elements the client sent; `host` is the
    /// name the client asked for, before [`UpstreamOptions::host`] replaces it.
    pub forwarded: bool,
    /// Set `X-Forwarded-Proto` to `https` or `http`, as the client connected.
    pub x_forwarded_proto: bool,
    /// Keep the forwarding fields the client sent (`Forwarded`, `X-Forwarded-For`,
    /// `-Proto`, `-Host`, `-Port`) when one of the above is on: for a proxy behind another
    /// that sets them (a load balancer, a TLS terminator). Off by default: with any field on,
    /// the proxy is the edge, so the client's own are removed first and the origin reads only
    /// what the proxy saw (a client's `Forwarded: host=evil.example` would otherwise be the
    /// first element, the one frameworks build absolute links from, and those links would be
    /// cached for everyone). With every field off, the client's fields pass as received.
    pub trust_incoming: bool,
}
