//! The upstream: a pooled hyper-util client that sends every request to one origin.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::body::ProxyBody;
use crate::error::{BoxError, Error};
use crate::interim;

/// A tower service forwarding requests to one `http://` origin over a connection pool.
///
/// The request's path and query are kept; the scheme and authority become the origin's. The
/// origin is asked for the name the client asked for, the one the default cache key is made of
/// ([`default_cache_key`](crate::default_cache_key)): the authority of an absolute-form target
/// (or HTTP/2 `:authority`), which replaces any `Host` field (RFC 9112 §3.2.2), else the first
/// `Host` field, sent alone. So a `Host` that disagrees with the target, or a second `Host`,
/// can never make the origin answer for another host than the one the answer is stored under.
///
/// A `101 Switching Protocols` answering a request without `Upgrade` is an error (RFC 9110
/// §15.2.2: a server switches only to a protocol the client asked for): the proxy never
/// forwards `Upgrade`, so such an answer is a broken origin, not a response to pass on.
///
/// Interim responses (`102`, `103 Early Hints`, …) the origin sends before the final one are
/// forwarded to the client when the request came through [`crate::server::serve`] over
/// HTTP/1.1; `100 Continue` is not (the client's `Expect` is answered by the server itself).
/// They are never stored.
#[derive(Clone, Debug)]
pub struct Upstream {
    client: Client<HttpConnector, ProxyBody>,
    scheme: Scheme,
    authority: Authority,
}

/// How [`Upstream`] reaches its origin: TLS, HTTP/2, timeouts, pooling and the fields it adds.
///
/// `Default` is what `Upstream::new` uses: certificates verified against the system store and
/// the bundled roots, HTTP/2 when the origin's ALPN offers it, 10 s to connect, 60 s for the
/// response head, at most 32 idle connections kept for 60 s, the client's `Host` kept, and no
/// forwarding fields added.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UpstreamOptions {
    /// (https) PEM certificates of the CAs the origin's certificate must chain to, instead of
    /// the system store and bundled roots (a private CA).
    pub ca_file: Option<PathBuf>,
    /// (https) The server name sent in SNI and checked against the certificate; the upstream
    /// URI's host when `None`.
    pub sni: Option<String>,
    /// (https) Accept any certificate. Logged as a warning when the client is built.
    pub insecure_skip_verify: bool,
    /// (https) Offer `h2` in ALPN and speak HTTP/2 when the origin picks it.
    pub http2: bool,
    /// The longest a TCP connect (and TLS handshake) may take.
    pub connect_timeout: Duration,
    /// The longest from sending a request to receiving the response head; then the client gets
    /// 504 (or a stale response inside stale-if-error).
    pub response_timeout: Duration,
    /// The most idle connections kept open to the origin.
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

/// The forwarding fields [`Upstream`] adds from the request's
/// [`ClientInfo`](crate::server::ClientInfo); all off by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ForwardedHeaders {
    /// Append the client's address to `X-Forwarded-For`.
    pub x_forwarded_for: bool,
    /// Append `for=…;proto=…;host=…` to `Forwarded` (RFC 7239).
    pub forwarded: bool,
    /// Set `X-Forwarded-Proto` to `https` or `http`, as the client connected.
    pub x_forwarded_proto: bool,
}

impl Upstream {
    /// A client for the origin at `uri` (`http://host[:port]`; a path is ignored), with
    /// [`UpstreamOptions::default`].
    ///
    /// # Errors
    ///
    /// [`Error::UpstreamUri`] when `uri` is not an absolute `http` URI.
    pub fn new(uri: &str) -> Result<Self, Error> {
        Self::with_options(uri, &UpstreamOptions::default())
    }

    /// A client for the origin at `uri` reached as `options` say.
    ///
    /// # Errors
    ///
    /// [`Error::UpstreamUri`] when `uri` is not an absolute `http` URI.
    pub fn with_options(uri: &str, options: &UpstreamOptions) -> Result<Self, Error> {
        let bad = || Error::UpstreamUri(uri.to_owned());
        let parsed: Uri = uri.parse().map_err(|_| bad())?;
        let scheme = parsed.scheme().cloned().ok_or_else(bad)?;
        if scheme != Scheme::HTTP {
            return Err(bad());
        }
        let authority = parsed.authority().cloned().ok_or_else(bad)?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(options.connect_timeout));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(options.pool_idle_timeout)
            .pool_max_idle_per_host(options.pool_max_idle)
            .build(connector);
        Ok(Self {
            client,
            scheme,
            authority,
        })
    }

    /// The origin's URI for a request whose target is `uri`.
    fn target(&self, uri: &Uri) -> Result<Uri, http::Error> {
        let pq = uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(pq)
            .build()
    }
}

impl tower_service::Service<Request<ProxyBody>> for Upstream {
    type Response = Response<Incoming>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<ProxyBody>) -> Self::Future {
        let target = self.target(req.uri());
        set_host(&mut req);
        let asked_upgrade = req.headers().contains_key(header::UPGRADE);
        // Called from the service future of the client's request (see `interim`), so the
        // handle is current here; a background refresh runs in a task of its own and has none.
        if let Some(interim) = interim::current() {
            hyper::ext::on_informational(&mut req, move |res| {
                interim.push(res.status(), res.headers());
            });
        }
        let client = self.client.clone();
        Box::pin(async move {
            *req.uri_mut() = target?;
            // The origin is spoken to over HTTP/1.1 whatever the client used.
            *req.version_mut() = Version::HTTP_11;
            let resp = client.request(req).await?;
            if resp.status() == StatusCode::SWITCHING_PROTOCOLS && !asked_upgrade {
                return Err("the origin switched protocols unasked".into());
            }
            Ok(resp)
        })
    }
}

/// Makes `Host` the one name the request is for: the target's authority when it has one
/// (absolute form, HTTP/2 `:authority`), else the first `Host` field.
fn set_host(req: &mut Request<ProxyBody>) {
    let host = match req.uri().authority() {
        Some(authority) => HeaderValue::from_str(authority.as_str()).ok(),
        None => req.headers().get(header::HOST).cloned(),
    };
    if let Some(host) = host {
        req.headers_mut().insert(header::HOST, host);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host_sent(uri: &str, hosts: &[&'static str]) -> Vec<HeaderValue> {
        let mut req = Request::builder().uri(uri);
        for h in hosts {
            req = req.header(header::HOST, *h);
        }
        let mut req = req.body(crate::body::empty()).unwrap();
        set_host(&mut req);
        req.headers()
            .get_all(header::HOST)
            .iter()
            .cloned()
            .collect()
    }

    #[test]
    fn host_is_the_keyed_authority() {
        assert_eq!(host_sent("/a", &["a.example"]), ["a.example"]);
        assert_eq!(host_sent("/a", &["a.example", "b.example"]), ["a.example"]);
        assert_eq!(
            host_sent("http://v.example:81/a", &["e.example"]),
            ["v.example:81"]
        );
        assert_eq!(host_sent("http://v.example/a", &[]), ["v.example"]);
        assert!(host_sent("/a", &[]).is_empty());
    }
}
