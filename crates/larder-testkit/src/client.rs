//! An HTTP client over HTTP/1.1 or HTTP/2, cleartext or TLS, reading whole responses.

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::cache_status::{CacheStatus, Member};

/// The client type of the kit: hyper's pooled client over plain TCP (`http://` URLs) or TLS
/// (`https://` URLs, trusting [`tls::local`](crate::tls::local)'s CA only).
pub type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The protocol a client speaks to the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// HTTP/1.1.
    Http1,
    /// HTTP/2 over cleartext TCP with prior knowledge (h2c), which the proxy's server accepts on
    /// the same port as HTTP/1.1.
    H2c,
    /// HTTP/1.1 over TLS, ALPN `http/1.1`.
    Http1Tls,
    /// HTTP/2 over TLS, ALPN `h2`.
    H2Tls,
}

impl Transport {
    /// The cleartext transports, HTTP/1.1 first.
    pub const ALL: [Transport; 2] = [Transport::Http1, Transport::H2c];
    /// The TLS transports, HTTP/1.1 first.
    pub const TLS: [Transport; 2] = [Transport::Http1Tls, Transport::H2Tls];

    /// A new client speaking this transport; over TLS it trusts
    /// [`tls::local`](crate::tls::local)'s CA only.
    pub fn client(self) -> HttpClient {
        let alpn: &[&[u8]] = match self {
            Transport::Http1 | Transport::H2c => &[],
            Transport::Http1Tls => &[b"http/1.1"],
            Transport::H2Tls => &[b"h2"],
        };
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        let connector = HttpsConnector::from((http, crate::tls::local().client_config(alpn)));
        let mut builder = Client::builder(TokioExecutor::new());
        if self.version() == Version::HTTP_2 {
            builder.http2_only(true);
        }
        builder.build(connector)
    }

    /// Whether this transport is TLS.
    pub fn is_tls(self) -> bool {
        matches!(self, Transport::Http1Tls | Transport::H2Tls)
    }

    /// The URL scheme a server for this transport is reached with: `http` or `https`.
    pub fn scheme(self) -> &'static str {
        if self.is_tls() { "https" } else { "http" }
    }

    /// The HTTP version responses arrive in over this transport.
    pub fn version(self) -> Version {
        match self {
            Transport::Http1 | Transport::Http1Tls => Version::HTTP_11,
            Transport::H2c | Transport::H2Tls => Version::HTTP_2,
        }
    }

    /// A short name for test output: `http1`, `h2c`, `http1-tls` or `h2-tls`.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Http1 => "http1",
            Transport::H2c => "h2c",
            Transport::Http1Tls => "http1-tls",
            Transport::H2Tls => "h2-tls",
        }
    }
}

/// A response as the client saw it: the head and the whole body, or the body's error.
#[derive(Debug)]
pub struct Got {
    /// The status code.
    pub status: StatusCode,
    /// The HTTP version it came in.
    pub version: Version,
    /// The header fields.
    pub headers: HeaderMap,
    /// The whole body, or the error that ended it.
    pub body: Result<Bytes, String>,
}

impl Got {
    /// The field `name` as text, when present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The first `Cache-Status` field line as text, empty when absent.
    pub fn cache_status(&self) -> &str {
        self.header("cache-status").unwrap_or("")
    }

    /// Every `Cache-Status` field line, parsed as one list (RFC 9211).
    ///
    /// # Panics
    ///
    /// When the field is not a valid list; the message shows it.
    pub fn cache(&self) -> CacheStatus {
        let lines: Vec<&str> = self
            .headers
            .get_all("cache-status")
            .iter()
            .map(|v| v.to_str().unwrap_or("<not visible ASCII>"))
            .collect();
        let joined = lines.join(", ");
        CacheStatus::parse(&joined)
            .unwrap_or_else(|e| panic!("invalid Cache-Status {joined:?}: {e}"))
    }

    /// The last member of the parsed `Cache-Status`: the one the proxy nearest the client added.
    ///
    /// # Panics
    ///
    /// When the field is absent or not a valid list.
    pub fn ours(&self) -> Member {
        let cache = self.cache();
        let ours = cache.last().cloned();
        ours.unwrap_or_else(|| panic!("no Cache-Status member in {:?}", self.headers))
    }

    /// The whole body.
    ///
    /// # Panics
    ///
    /// When the body ended in an error.
    pub fn bytes(&self) -> &Bytes {
        self.body.as_ref().expect("body ended in an error")
    }

    /// The whole body as text (lossy).
    ///
    /// # Panics
    ///
    /// When the body ended in an error.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(self.bytes()).into_owned()
    }
}

/// A new HTTP/1.1 client (over TLS too, for `https://` URLs).
pub fn client() -> HttpClient {
    Transport::Http1.client()
}

/// Sends a request with `headers` (name, value pairs) and `body` through `client` and reads the
/// whole response.
pub async fn send_body_with(
    client: &HttpClient,
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Got {
    let mut req = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = client
        .request(req.body(Full::new(body)).unwrap())
        .await
        .unwrap();
    let (parts, body) = resp.into_parts();
    let body = body
        .collect()
        .await
        .map(http_body_util::Collected::to_bytes)
        .map_err(|e| e.to_string());
    Got {
        status: parts.status,
        version: parts.version,
        headers: parts.headers,
        body,
    }
}

/// Sends a request with `headers` and no body through `client` and reads the whole response.
pub async fn send_with(
    client: &HttpClient,
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
) -> Got {
    send_body_with(client, method, url, headers, Bytes::new()).await
}

/// Sends a request with `headers` and `body` on a new HTTP/1.1 client.
pub async fn send_body(method: Method, url: &str, headers: &[(&str, &str)], body: Bytes) -> Got {
    send_body_with(&client(), method, url, headers, body).await
}

/// Sends a request with `headers` and no body on a new HTTP/1.1 client.
pub async fn send(method: Method, url: &str, headers: &[(&str, &str)]) -> Got {
    send_with(&client(), method, url, headers).await
}

/// A plain GET on a new HTTP/1.1 client.
pub async fn get(url: &str) -> Got {
    send(Method::GET, url, &[]).await
}
