//! The upstream: a pooled hyper-util client that sends every request to one origin, over
//! plain HTTP/1.1 or over TLS (HTTP/2 when the origin's ALPN picks it), with connect and
//! response-head timeouts and the forwarding fields.

mod connector;
mod forwarded;
mod options;
mod timeout;
mod tls;

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use parking_lot::Mutex;
use rustls_pki_types::ServerName;

use self::connector::OriginConnector;
use crate::body::ProxyBody;
use crate::error::{BoxError, Error};
use crate::interim;
use crate::server::ClientInfo;

pub use self::options::{ForwardedHeaders, UpstreamOptions};
pub use self::timeout::Timeout;

/// A tower service forwarding requests to one `http://` or `https://` origin over a connection
/// pool.
///
/// The request's path and query are kept; the scheme and authority become the origin's. The
/// origin is asked for the name the client asked for, the one the default cache key is made of
/// ([`default_cache_key`](crate::default_cache_key)): the authority of an absolute-form target
/// (or HTTP/2 `:authority`), which replaces any `Host` field (RFC 9112 §3.2.2), else the first
/// `Host` field, sent alone. So a `Host` that disagrees with the target, or a second `Host`,
/// can never make the origin answer for another host than the one the answer is stored under.
/// [`UpstreamOptions::host`] replaces that name in what the origin gets (the cache key keeps
/// the client's).
///
/// An `https://` origin's certificate is verified (see [`UpstreamOptions`]). When its ALPN
/// picks `h2` the requests go over HTTP/2, with that name as `:authority` (RFC 9113 §8.3.1)
/// and without connection-specific fields; otherwise, and always for `http://`, over
/// HTTP/1.1. Every connection goes to the configured origin. For an `https://` origin with
/// [`UpstreamOptions::http2`] on, the pool keeps connections apart per name sent (an HTTP/2
/// connection carries one name's requests), so clients asking for many names would make as
/// many connections: the first [`MAX_H2_NAMES`] names get their own, and requests for any
/// other name go over HTTP/1.1 connections shared by all (`Host` carries the name), so a
/// client inventing names cannot multiply the origin's connections;
/// [`UpstreamOptions::host`] pins one name (and one set of connections).
///
/// A connection that is not up (TCP and TLS) within [`UpstreamOptions::connect_timeout`] fails
/// the request with [`Timeout::Connect`]; a response head that does not come within
/// [`UpstreamOptions::response_timeout`] fails it with [`Timeout::Response`] (the cache layer
/// answers `502` and `504`, or serves a stale entry inside stale-if-error).
///
/// A `101 Switching Protocols` answering a request without `Upgrade` is an error (RFC 9110
/// §15.2.2: a server switches only to a protocol the client asked for): the proxy forwards
/// `Upgrade` only for an upgrade request, so such an answer is a broken origin, not a response
/// to pass on. An upgrade request always goes over HTTP/1.1 (a connection of its own that
/// offers only `http/1.1` in ALPN), since HTTP/2 has no `Upgrade`.
///
/// Interim responses (`102`, `103 Early Hints`, …) the origin sends before the final one are
/// forwarded to the client when the request came through [`crate::server::serve`] over
/// HTTP/1.1; `100 Continue` is not (the client's `Expect` is answered by the server itself).
/// They are never stored.
#[derive(Clone, Debug)]
pub struct Upstream {
    client: Client<OriginConnector, ProxyBody>,
    /// For upgrade requests to an `https://` origin that may pick `h2`: connections that offer
    /// only `http/1.1`.
    http1_client: Option<Client<OriginConnector, ProxyBody>>,
    scheme: Scheme,
    authority: Authority,
    /// Whether the request's name goes in the URI (`:authority` over HTTP/2): an `https://`
    /// origin that may pick `h2`.
    name_in_uri: bool,
    /// The names that have connections of their own (at most [`MAX_H2_NAMES`]).
    h2_names: Arc<Mutex<HashSet<HeaderValue>>>,
    host: Option<HeaderValue>,
    forwarded: ForwardedHeaders,
    response_timeout: Duration,
}

impl Upstream {
    /// A client for the origin at `uri` (`http://host[:port]` or `https://host[:port]`; a path
    /// is ignored), with [`UpstreamOptions::default`].
    ///
    /// # Errors
    ///
    /// [`Error::UpstreamUri`] when `uri` is not an absolute `http` or `https` URI;
    /// [`Error::ConfigInvalid`] when an `https` URI's host is not a valid TLS server name.
    pub fn new(uri: &str) -> Result<Self, Error> {
        Self::with_options(uri, &UpstreamOptions::default())
    }

    /// A client for the origin at `uri` reached as `options` say.
    ///
    /// # Errors
    ///
    /// [`Error::UpstreamUri`] when `uri` is not an absolute `http` or `https` URI;
    /// [`Error::ConfigInvalid`] when `options.ca_file` cannot be read or holds no certificate,
    /// or `options.sni` or `options.host` is not a valid name.
    pub fn with_options(uri: &str, options: &UpstreamOptions) -> Result<Self, Error> {
        let bad = || Error::UpstreamUri(uri.to_owned());
        let parsed: Uri = uri.parse().map_err(|_| bad())?;
        let scheme = parsed.scheme().cloned().ok_or_else(bad)?;
        let authority = parsed.authority().cloned().ok_or_else(bad)?;
        let https = scheme == Scheme::HTTPS;
        if scheme != Scheme::HTTP && !https {
            return Err(bad());
        }
        let tls = |options: &UpstreamOptions| -> Result<_, Error> {
            if !https {
                return Ok(None);
            }
            let name = options
                .sni
                .as_deref()
                .unwrap_or_else(|| authority.host())
                .trim_start_matches('[')
                .trim_end_matches(']');
            let name = ServerName::try_from(name.to_owned())
                .map_err(|e| Error::ConfigInvalid(format!("upstream server name {name:?}: {e}")))?;
            let config = tls::client_config(options)?;
            Ok(Some((
                tokio_rustls::TlsConnector::from(Arc::new(config)),
                name,
            )))
        };
        let host = match &options.host {
            Some(host) => Some(
                HeaderValue::from_str(host)
                    .ok()
                    .filter(|_| host.parse::<Authority>().is_ok())
                    .ok_or_else(|| {
                        Error::ConfigInvalid(format!("upstream host {host:?} is not a host name"))
                    })?,
            ),
            None => None,
        };
        let mut tcp = HttpConnector::new();
        tcp.set_nodelay(true);
        // Per address (so a next address gets its turn); the connector's own covers TCP and
        // TLS together. Either one fails with `Timeout::Connect`, which `Cache-Status` names.
        tcp.set_connect_timeout(Some(options.connect_timeout));
        // The connector is given `https://` URIs too; TLS is its own business.
        tcp.enforce_http(false);
        let origin = Uri::builder()
            .scheme(scheme.clone())
            .authority(authority.clone())
            .path_and_query("/")
            .build()
            .map_err(|_| bad())?;
        let client = |tls| {
            let connector = OriginConnector {
                tcp: tcp.clone(),
                origin: origin.clone(),
                tls,
                timeout: options.connect_timeout,
            };
            // With a timer the pool closes idle connections when their time is up, rather
            // than finding them expired at the next checkout (which may never come).
            Client::builder(TokioExecutor::new())
                .pool_timer(TokioTimer::new())
                .timer(TokioTimer::new())
                .pool_idle_timeout(options.pool_idle_timeout)
                .pool_max_idle_per_host(options.pool_max_idle)
                .build(connector)
        };
        let http1_client = if https && options.http2 {
            let mut http1 = options.clone();
            http1.http2 = false;
            Some(client(tls(&http1)?))
        } else {
            None
        };
        Ok(Self {
            client: client(tls(options)?),
            http1_client,
            scheme,
            authority,
            name_in_uri: https && options.http2,
            h2_names: Arc::default(),
            host,
            forwarded: options.forwarded,
            response_timeout: options.response_timeout,
        })
    }

    /// The URI a request whose target is `uri` is sent with, `host` being the `Host` it carries:
    /// the origin's scheme and the target's path and query, with the origin's authority or,
    /// when the connection may be HTTP/2, `host` (its `:authority`; connections go to the origin
    /// whatever the URI says).
    fn target(&self, uri: &Uri, host: Option<&HeaderValue>) -> Result<Uri, http::Error> {
        let host = host.filter(|_| self.name_in_uri);
        let pq = uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let authority = host
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.parse::<Authority>().ok())
            // RFC 9113 §8.3.1: `:authority` has no userinfo.
            .filter(|a| !a.as_str().contains('@'))
            .unwrap_or_else(|| self.authority.clone());
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(authority)
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
        set_host(&mut req);
        forwarded::strip_untrusted(req.headers_mut(), self.forwarded);
        // A background refresh has no client, so nothing is added to it.
        if let Some(client) = req.extensions().get::<ClientInfo>().copied() {
            let asked = req.headers().get(header::HOST).cloned();
            forwarded::add(req.headers_mut(), &client, asked.as_ref(), self.forwarded);
        }
        if let Some(host) = &self.host {
            req.headers_mut().insert(header::HOST, host.clone());
        }
        let asked_upgrade = req.headers().contains_key(header::UPGRADE);
        // An upgrade, or a name beyond those with connections of their own, goes over the
        // HTTP/1.1 connections to the origin's own authority.
        let shared = asked_upgrade
            || (self.http1_client.is_some()
                && !req
                    .headers()
                    .get(header::HOST)
                    .is_some_and(|h| self.has_own_connections(h)));
        let target = if shared {
            self.target(req.uri(), None)
        } else {
            self.target(req.uri(), req.headers().get(header::HOST))
        };
        // Called from the service future of the client's request (see `interim`), so the
        // handle is current here; a background refresh runs in a task of its own and has none.
        if let Some(interim) = interim::current() {
            hyper::ext::on_informational(&mut req, move |res| {
                interim.push(res.status(), res.headers());
            });
        }
        let client = match (&self.http1_client, shared) {
            (Some(http1), true) => http1.clone(),
            _ => self.client.clone(),
        };
        let limit = self.response_timeout;
        Box::pin(async move {
            *req.uri_mut() = target?;
            // Whatever the client used: HTTP/1.1 unless the connection's ALPN picks h2 (a
            // request marked HTTP/2 would demand h2 from every connection). Over h2, hyper
            // drops the connection-specific fields (RFC 9113 §8.2.2).
            *req.version_mut() = Version::HTTP_11;
            let resp = match tokio::time::timeout(limit, client.request(req)).await {
                Ok(resp) => resp?,
                Err(_) => return Err(Timeout::Response.into()),
            };
            if resp.status() == StatusCode::SWITCHING_PROTOCOLS && !asked_upgrade {
                return Err("the origin switched protocols unasked".into());
            }
            Ok(resp)
        })
    }
}

impl Upstream {
    /// Whether requests for `host` get connections of their own (their name as `:authority`):
    /// it is one of the first [`MAX_H2_NAMES`] names seen.
    fn has_own_connections(&self, host: &HeaderValue) -> bool {
        let mut names = self.h2_names.lock();
        if names.contains(host) {
            return true;
        }
        names.len() < MAX_H2_NAMES && names.insert(host.clone())
    }
}

/// How many names (`Host` values) an `https://` origin that may pick `h2` gets connections of
/// their own for; others share HTTP/1.1 connections.
pub const MAX_H2_NAMES: usize = 64;

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
mod flow_tests;

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
