//! The tables of the file beyond `[cache]`: `[[site]]`, `[[listener]]`, `[forwarding]`, and
//! the `unknown_host` answer.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use larder_proxy::tls::CertPair;
use larder_proxy::{ForwardedHeaders, UpstreamOptions};
use serde::Deserialize;

use crate::Error;
use crate::duration::{deserialize_some_duration, deserialize_some_secs_u32};
use crate::size::deserialize_some_size;

/// A `[[site]]` table: the host names it answers for, its origin and how it is reached, and
/// the cache settings it overrides (unset ones come from `[cache]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SiteSettings {
    /// Exact names (`a.example`), wildcards matching one or more labels (`*.example.com`
    /// matches `www.example.com` and `a.b.example.com`, not `example.com`), or `*` for every
    /// host. Case-insensitive; the request's port is ignored.
    pub hosts: Vec<String>,
    /// The origin, `http://host[:port]` or `https://host[:port]`.
    pub upstream: String,
    /// (https) PEM certificates of the CAs the origin's certificate must chain to.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// (https) The name sent in SNI and checked against the certificate.
    #[serde(default)]
    pub sni: Option<String>,
    /// (https) Accept any certificate (logged as a warning).
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// (https) Offer HTTP/2 to the origin (default on).
    #[serde(default)]
    pub http2: Option<bool>,
    /// The longest a connect (and TLS handshake) may take (default 10s).
    #[serde(default, deserialize_with = "deserialize_some_duration")]
    pub connect_timeout: Option<Duration>,
    /// The longest from sending a request to the response head (default 60s).
    #[serde(default, deserialize_with = "deserialize_some_duration")]
    pub response_timeout: Option<Duration>,
    /// The `Host` sent to the origin instead of the one the client asked for.
    #[serde(default)]
    pub host: Option<String>,
    /// The forwarding fields of this site, instead of the top-level `[forwarding]`.
    #[serde(default)]
    pub forwarding: Option<ForwardingSettings>,
    /// As `cache.default_ttl`, for this site.
    #[serde(
        default,
        alias = "default_ttl_secs",
        deserialize_with = "deserialize_some_secs_u32"
    )]
    pub default_ttl: Option<u32>,
    /// As `cache.stale_while_revalidate`, for this site.
    #[serde(
        default,
        alias = "stale_while_revalidate_secs",
        deserialize_with = "deserialize_some_secs_u32"
    )]
    pub stale_while_revalidate: Option<u32>,
    /// As `cache.stale_if_error`, for this site.
    #[serde(
        default,
        alias = "stale_if_error_secs",
        deserialize_with = "deserialize_some_secs_u32"
    )]
    pub stale_if_error: Option<u32>,
    /// As `cache.purge_token`, for this site.
    #[serde(default)]
    pub purge_token: Option<String>,
    /// Responses larger than this are not stored for this site; at most what the storage
    /// takes (`[cache]`'s limits still apply; 0 means no limit of the site's own).
    #[serde(default, deserialize_with = "deserialize_some_size")]
    pub max_object_size: Option<u64>,
    /// As `cache.cache_status_name`, for this site.
    #[serde(default)]
    pub cache_status_name: Option<String>,
}

impl SiteSettings {
    /// The one site of a configuration without `[[site]]`: every host, to `upstream`.
    pub fn catch_all(upstream: &str) -> Self {
        Self {
            hosts: vec!["*".to_owned()],
            upstream: upstream.to_owned(),
            ca_file: None,
            sni: None,
            insecure_skip_verify: false,
            http2: None,
            connect_timeout: None,
            response_timeout: None,
            host: None,
            forwarding: None,
            default_ttl: None,
            stale_while_revalidate: None,
            stale_if_error: None,
            purge_token: None,
            max_object_size: None,
            cache_status_name: None,
        }
    }

    /// How [`Upstream`](larder_proxy::Upstream) reaches this site's origin, the forwarding
    /// fields from `forwarding` unless the site has its own.
    pub fn upstream_options(&self, forwarding: ForwardingSettings) -> UpstreamOptions {
        let mut o = UpstreamOptions::default();
        o.ca_file.clone_from(&self.ca_file);
        o.sni.clone_from(&self.sni);
        o.insecure_skip_verify = self.insecure_skip_verify;
        if let Some(http2) = self.http2 {
            o.http2 = http2;
        }
        if let Some(t) = self.connect_timeout {
            o.connect_timeout = t;
        }
        if let Some(t) = self.response_timeout {
            o.response_timeout = t;
        }
        o.host.clone_from(&self.host);
        o.forwarded = self.forwarding.unwrap_or(forwarding).headers();
        o
    }

    /// Checks what TOML types cannot: host patterns, the upstream URI, tokens.
    ///
    /// # Errors
    ///
    /// [`Error::ConfigInvalid`] naming the site (by its first host) and the field.
    pub fn validate(&self) -> Result<(), Error> {
        let name = self.hosts.first().map_or("", String::as_str);
        let bad = |what: String| Err(Error::ConfigInvalid(format!("site {name:?}: {what}")));
        if self.hosts.is_empty() {
            return Err(Error::ConfigInvalid(format!(
                "site with upstream {:?}: hosts must name at least one host",
                self.upstream
            )));
        }
        for host in &self.hosts {
            check_host_pattern(host).map_err(|e| Error::ConfigInvalid(format!("site: {e}")))?;
        }
        if let Err(e) = check_upstream_uri(&self.upstream) {
            return bad(e);
        }
        if self.upstream.starts_with("http://")
            && (self.ca_file.is_some() || self.sni.is_some() || self.insecure_skip_verify)
        {
            return bad("ca_file, sni and insecure_skip_verify need an https:// upstream".into());
        }
        if let Some(host) = &self.host
            && http::HeaderValue::from_str(host).is_err()
        {
            return bad(format!("host {host:?} is not a valid Host value"));
        }
        if self.purge_token.as_deref() == Some("") {
            return bad("purge_token must not be empty".into());
        }
        if let Some(n) = &self.cache_status_name
            && !is_token(n)
        {
            return bad(format!(
                "cache_status_name {n:?} must be a token (letters, digits, - _ .)"
            ));
        }
        if self.connect_timeout == Some(Duration::ZERO)
            || self.response_timeout == Some(Duration::ZERO)
        {
            return bad("connect_timeout and response_timeout must be above 0".into());
        }
        Ok(())
    }
}

/// Whether `s` can be a `Cache-Status` cache name.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// An origin URI: `http://` or `https://`, with a host, and nothing after the authority but
/// an optional `/`.
fn check_upstream_uri(uri: &str) -> Result<(), String> {
    let parsed: http::Uri = uri
        .parse()
        .map_err(|_| format!("upstream {uri:?} is not a URI"))?;
    let scheme_ok = matches!(parsed.scheme_str(), Some("http" | "https"));
    if !scheme_ok || parsed.host().is_none_or(str::is_empty) {
        return Err(format!(
            "upstream {uri:?} must be http://host[:port] or https://host[:port]"
        ));
    }
    Ok(())
}

/// A host pattern: `*`, `*.suffix` or a name (letters, digits, `-`, `.`; no port).
fn check_host_pattern(pattern: &str) -> Result<(), String> {
    if pattern == "*" {
        return Ok(());
    }
    let name = pattern.strip_prefix("*.").unwrap_or(pattern);
    let ok = !name.is_empty()
        && name
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "host {pattern:?} must be a name (a.example), a wildcard (*.example.com) or *, \
             without a port"
        ))
    }
}

/// The `[forwarding]` table (or a site's `forwarding`): which fields are added to requests
/// sent to the origin. All off by default.
// Four independent switches, each a field the operator sets by name.
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct ForwardingSettings {
    /// Append the client's address to `X-Forwarded-For`.
    pub x_forwarded_for: bool,
    /// Append `for=…;proto=…;host=…` to `Forwarded` (RFC 7239).
    pub forwarded: bool,
    /// Set `X-Forwarded-Proto` to `https` or `http`, as the client connected.
    pub x_forwarded_proto: bool,
    /// Keep the forwarding fields clients send (behind a load balancer or TLS terminator
    /// that sets them); off: with any field above on, clients' own are removed first.
    pub trust_incoming: bool,
}

impl ForwardingSettings {
    /// The proxy library's form.
    pub fn headers(self) -> ForwardedHeaders {
        let mut h = ForwardedHeaders::default();
        h.x_forwarded_for = self.x_forwarded_for;
        h.forwarded = self.forwarded;
        h.x_forwarded_proto = self.x_forwarded_proto;
        h.trust_incoming = self.trust_incoming;
        h
    }
}

/// A `[[listener]]` table: an address, plain or with TLS certificates.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ListenerSettings {
    /// Where to listen.
    pub address: SocketAddr,
    /// A PEM certificate chain (with `tls_key`): the listener speaks TLS.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of `tls_cert`.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// More certificates, each chosen when the client's SNI names it (`tls_cert` first, the
    /// one for clients that send no name or a name none covers).
    #[serde(default)]
    pub certificates: Vec<CertFiles>,
}

/// One certificate of a listener: `{ cert = "…", key = "…" }`, PEM files.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct CertFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
}

impl ListenerSettings {
    /// A plain listener on `address`.
    pub fn plain(address: SocketAddr) -> Self {
        Self {
            address,
            tls_cert: None,
            tls_key: None,
            certificates: Vec::new(),
        }
    }

    /// The listener's certificates, `tls_cert` first; empty for a plain listener.
    pub fn cert_pairs(&self) -> Vec<CertPair> {
        let first = self
            .tls_cert
            .clone()
            .zip(self.tls_key.clone())
            .map(|(cert, key)| CertPair { cert, key });
        first
            .into_iter()
            .chain(self.certificates.iter().map(|c| CertPair {
                cert: c.cert.clone(),
                key: c.key.clone(),
            }))
            .collect()
    }

    /// Whether the listener speaks TLS.
    pub fn is_tls(&self) -> bool {
        self.tls_cert.is_some() || !self.certificates.is_empty()
    }

    /// Checks that `tls_cert` and `tls_key` come together.
    ///
    /// # Errors
    ///
    /// [`Error::ConfigInvalid`] naming the listener.
    pub fn validate(&self) -> Result<(), Error> {
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(Error::ConfigInvalid(format!(
                "listener {}: tls_cert and tls_key go together",
                self.address
            )));
        }
        Ok(())
    }
}

/// What a request for a host no site names gets: `421` (Misdirected Request, the default)
/// or `404`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u16")]
#[non_exhaustive]
pub enum UnknownHost {
    /// `421 Misdirected Request`: this server does not answer for that name.
    #[default]
    Misdirected,
    /// `404 Not Found`.
    NotFound,
}

impl UnknownHost {
    /// The status sent.
    pub fn status(self) -> http::StatusCode {
        match self {
            Self::Misdirected => http::StatusCode::MISDIRECTED_REQUEST,
            Self::NotFound => http::StatusCode::NOT_FOUND,
        }
    }
}

impl TryFrom<u16> for UnknownHost {
    type Error = String;

    fn try_from(status: u16) -> Result<Self, String> {
        match status {
            421 => Ok(Self::Misdirected),
            404 => Ok(Self::NotFound),
            _ => Err(format!("unknown_host must be 421 or 404, not {status}")),
        }
    }
}
