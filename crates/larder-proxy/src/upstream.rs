//! The upstream: a pooled hyper-util client that sends every request to one origin.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, Uri, Version};
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
/// `Host` field the client sent is kept, so the origin sees the name the client asked for.
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

impl Upstream {
    /// A client for the origin at `uri` (`http://host[:port]`; a path is ignored).
    ///
    /// # Errors
    ///
    /// [`Error::UpstreamUri`] when `uri` is not an absolute `http` URI.
    pub fn new(uri: &str) -> Result<Self, Error> {
        let bad = || Error::UpstreamUri(uri.to_owned());
        let parsed: Uri = uri.parse().map_err(|_| bad())?;
        let scheme = parsed.scheme().cloned().ok_or_else(bad)?;
        if scheme != Scheme::HTTP {
            return Err(bad());
        }
        let authority = parsed.authority().cloned().ok_or_else(bad)?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(10)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_mins(1))
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
            Ok(resp)
        })
    }
}
