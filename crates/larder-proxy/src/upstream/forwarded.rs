//! The forwarding fields sent to the origin: `X-Forwarded-For`, `Forwarded` (RFC 7239) and
//! `X-Forwarded-Proto`, from what the server knows of the client's connection.

use std::fmt::Write as _;
use std::net::IpAddr;

use http::HeaderMap;
use http::header::{self, HeaderName, HeaderValue};

use super::options::ForwardedHeaders;
use crate::server::ClientInfo;

/// `X-Forwarded-For`.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`.
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host`: never set by the proxy, removed with the others at the edge.
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// `X-Forwarded-Port`: never set by the proxy, removed with the others at the edge.
const X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");

/// Adds the fields `which` enables to `headers`, for a request from `client` asking for `host`
/// (the name the client asked for, before any rewrite of `Host`).
///
/// Removes the forwarding fields a client sent (`Forwarded`, `X-Forwarded-For`, `-Proto`,
/// `-Host`, `-Port`) when `which` turns any field on and does not trust them: the proxy is
/// the edge, and the origin reads only what the proxy saw. A request without a client (a
/// background refresh) is stripped too, and gets nothing added.
pub(super) fn strip_untrusted(headers: &mut HeaderMap, which: ForwardedHeaders) {
    let any = which.x_forwarded_for || which.forwarded || which.x_forwarded_proto;
    if any && !which.trust_incoming {
        for name in [
            &header::FORWARDED,
            &X_FORWARDED_FOR,
            &X_FORWARDED_PROTO,
            &X_FORWARDED_HOST,
            &X_FORWARDED_PORT,
        ] {
            headers.remove(name);
        }
    }
}

/// Adds the fields `which` enables to `headers`, for a request from `client` asking for `host`
/// (the name the client asked for, before any rewrite of `Host`), after
/// [`strip_untrusted`]: `X-Forwarded-For` and `Forwarded` keep what is left (trusted fields)
/// and get the client's address appended, as one field (like nginx's
/// `$proxy_add_x_forwarded_for`); `X-Forwarded-Proto` is replaced.
pub(super) fn add(
    headers: &mut HeaderMap,
    client: &ClientInfo,
    host: Option<&HeaderValue>,
    which: ForwardedHeaders,
) {
    let ip = client.peer.ip().to_canonical();
    let proto = if client.tls { "https" } else { "http" };
    if which.x_forwarded_for {
        append(headers, &X_FORWARDED_FOR, ip.to_string().as_bytes());
    }
    if which.forwarded {
        append(
            headers,
            &header::FORWARDED,
            &forwarded_element(ip, proto, host),
        );
    }
    if which.x_forwarded_proto {
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    }
}

/// One `Forwarded` element (RFC 7239 §4): `for=` the client's address (an IPv6 address in
/// brackets, quoted, §6), `proto=` and, when known, `host=` (quoted unless a token).
fn forwarded_element(ip: IpAddr, proto: &str, host: Option<&HeaderValue>) -> Vec<u8> {
    let mut out = String::new();
    match ip {
        IpAddr::V4(v4) => {
            let _ = write!(out, "for={v4}");
        }
        IpAddr::V6(v6) => {
            let _ = write!(out, "for=\"[{v6}]\"");
        }
    }
    let _ = write!(out, ";proto={proto}");
    let mut out = out.into_bytes();
    if let Some(host) = host {
        out.extend_from_slice(b";host=");
        token_or_quoted(&mut out, host.as_bytes());
    }
    out
}

/// `value` as an RFC 9110 token when it is one, else as a quoted-string (§5.6.4).
fn token_or_quoted(out: &mut Vec<u8>, value: &[u8]) {
    if !value.is_empty() && value.iter().all(|&b| is_tchar(b)) {
        out.extend_from_slice(value);
        return;
    }
    out.push(b'"');
    for &b in value {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
}

/// A `tchar` of RFC 9110 §5.6.2.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Makes `name` one field: the values the request had, joined by `, `, then `item`.
fn append(headers: &mut HeaderMap, name: &HeaderName, item: &[u8]) {
    let mut joined = Vec::new();
    for value in headers.get_all(name) {
        let value = value.as_bytes().trim_ascii();
        if !value.is_empty() {
            joined.extend_from_slice(value);
            joined.extend_from_slice(b", ");
        }
    }
    joined.extend_from_slice(item);
    // The parts are field values already and the separator is visible ASCII, so this holds;
    // should it not, the client's values are dropped rather than the new item.
    let value = HeaderValue::from_bytes(&joined)
        .or_else(|_| HeaderValue::from_bytes(item))
        .ok();
    headers.remove(name);
    if let Some(value) = value {
        headers.insert(name, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: ForwardedHeaders = ForwardedHeaders {
        x_forwarded_for: true,
        forwarded: true,
        x_forwarded_proto: true,
        trust_incoming: false,
    };

    /// [`ALL`] behind a proxy that sets the fields itself.
    const TRUSTING: ForwardedHeaders = ForwardedHeaders {
        trust_incoming: true,
        ..ALL
    };

    fn client(peer: &str, tls: bool) -> ClientInfo {
        ClientInfo {
            peer: peer.parse().unwrap(),
            local: "127.0.0.1:443".parse().unwrap(),
            tls,
        }
    }

    /// The fields after adding `which` for `peer` to a request with `fields` and `host`.
    fn check(
        fields: &[(&str, &str)],
        peer: &str,
        tls: bool,
        host: Option<&str>,
        which: ForwardedHeaders,
    ) -> Vec<(String, String)> {
        let mut headers = HeaderMap::new();
        for (name, value) in fields {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        let host = host.map(|h| HeaderValue::from_str(h).unwrap());
        strip_untrusted(&mut headers, which);
        add(&mut headers, &client(peer, tls), host.as_ref(), which);
        let mut out: Vec<_> = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        out.sort();
        out
    }

    fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut out: Vec<_> = pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect();
        out.sort();
        out
    }

    #[test]
    fn ipv4_client_gets_all_three() {
        assert_eq!(
            check(&[], "192.0.2.7:5000", true, Some("a.example"), ALL),
            fields(&[
                ("x-forwarded-for", "192.0.2.7"),
                ("forwarded", "for=192.0.2.7;proto=https;host=a.example"),
                ("x-forwarded-proto", "https"),
            ])
        );
    }

    #[test]
    fn ipv6_is_bracketed_and_quoted_in_forwarded() {
        assert_eq!(
            check(
                &[],
                "[2001:db8::1]:5000",
                false,
                Some("a.example:8080"),
                ALL
            ),
            fields(&[
                ("x-forwarded-for", "2001:db8::1"),
                (
                    "forwarded",
                    "for=\"[2001:db8::1]\";proto=http;host=\"a.example:8080\""
                ),
                ("x-forwarded-proto", "http"),
            ])
        );
    }

    #[test]
    fn ipv4_mapped_ipv6_is_shown_as_ipv4() {
        let which = ForwardedHeaders {
            x_forwarded_for: true,
            ..ForwardedHeaders::default()
        };
        assert_eq!(
            check(&[], "[::ffff:192.0.2.9]:1", false, None, which),
            fields(&[("x-forwarded-for", "192.0.2.9")])
        );
    }

    /// At the edge, what the client claims is dropped: the origin reads only what the proxy
    /// saw, `X-Forwarded-Host` and `-Port` included.
    #[test]
    fn clients_fields_are_dropped_at_the_edge() {
        let sent = [
            ("x-forwarded-for", "203.0.113.1"),
            ("forwarded", "for=1.1.1.1;proto=http;host=evil.example"),
            ("x-forwarded-proto", "ftp"),
            ("x-forwarded-host", "evil.example"),
            ("x-forwarded-port", "1"),
        ];
        assert_eq!(
            check(&sent, "192.0.2.7:1", true, Some("a.example"), ALL),
            fields(&[
                ("x-forwarded-for", "192.0.2.7"),
                ("forwarded", "for=192.0.2.7;proto=https;host=a.example"),
                ("x-forwarded-proto", "https"),
            ])
        );
    }

    #[test]
    fn trusted_fields_are_kept_and_appended_to() {
        let sent = [
            ("x-forwarded-for", "203.0.113.1"),
            ("x-forwarded-for", "198.51.100.2, 198.51.100.3"),
            ("forwarded", "for=203.0.113.1"),
            ("x-forwarded-proto", "ftp"),
        ];
        assert_eq!(
            check(&sent, "192.0.2.7:1", false, None, TRUSTING),
            fields(&[
                (
                    "x-forwarded-for",
                    "203.0.113.1, 198.51.100.2, 198.51.100.3, 192.0.2.7"
                ),
                ("forwarded", "for=203.0.113.1, for=192.0.2.7;proto=http"),
                ("x-forwarded-proto", "http"),
            ])
        );
    }

    #[test]
    fn nothing_added_when_off() {
        let sent = [("x-forwarded-for", "203.0.113.1")];
        assert_eq!(
            check(
                &sent,
                "192.0.2.7:1",
                true,
                Some("a"),
                ForwardedHeaders::default()
            ),
            fields(&sent)
        );
    }

    #[test]
    fn host_with_quote_is_escaped() {
        let mut out = Vec::new();
        token_or_quoted(&mut out, b"a\"b\\c");
        assert_eq!(out, b"\"a\\\"b\\\\c\"");
    }
}
