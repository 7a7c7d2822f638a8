//! `bare_server`: the physical limit for the HTTP load runs of `cargo xtask bench`, and the
//! origin behind the proxy in those runs.
//!
//! A bare hyper 1.x HTTP/1.1 server answering fixed bytes from memory, with no routing
//! framework, no logging and no copying: every body is a slice of one buffer made at start.
//!
//! ```text
//! bare_server [--listen 127.0.0.1:0]
//! ```
//!
//! It prints `listening on <addr>` on stdout once it accepts connections. Paths:
//!
//! - `GET /<size>[/<anything>]`: `<size>` bytes (`1024`, `1k`, `64k`, `1m`; at most 8 MiB) with
//!   `Cache-Control: max-age=3600` and the strong validator `ETag: "<size>"`; `<anything>` makes
//!   distinct URLs for the same body (cache churn and misses).
//! - `GET /nostore/<size>[/<anything>]`: the same with `Cache-Control: no-store`.
//! - A request whose `If-None-Match` lists the body's `ETag` gets `304 Not Modified` without a body
//!   (RFC 9110 §13.1.2).
//!
//! Anything else gets `404`.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, HeaderValue, IF_NONE_MATCH};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The largest body served.
const MAX_BODY: usize = 8 * 1024 * 1024;

/// Parses `1024`, `1k`, `64k`, `1m` into a byte count no larger than [`MAX_BODY`].
fn parse_size(s: &str) -> Option<usize> {
    let (digits, unit) = match s.as_bytes().last()? {
        b'k' | b'K' => (&s[..s.len() - 1], 1024),
        b'm' | b'M' => (&s[..s.len() - 1], 1024 * 1024),
        _ => (s, 1),
    };
    let n: usize = digits.parse().ok()?;
    n.checked_mul(unit).filter(|n| *n <= MAX_BODY)
}

/// Whether an `If-None-Match` value lists `etag` (weak comparison, RFC 9110 §13.1.2).
fn none_match(value: &HeaderValue, etag: &str) -> bool {
    value.to_str().is_ok_and(|v| {
        v.split(',')
            .map(str::trim)
            .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
    })
}

fn respond(req: &Request<Incoming>, buf: &Bytes) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    let (path, cache_control) = match path.strip_prefix("/nostore") {
        Some(rest) => (rest, "no-store"),
        None => (path, "max-age=3600"),
    };
    let size = path
        .strip_prefix('/')
        .and_then(|p| p.split('/').next())
        .and_then(parse_size);
    let Some(size) = size else {
        let mut res = Response::new(Full::new(Bytes::from_static(b"not found\n")));
        *res.status_mut() = StatusCode::NOT_FOUND;
        return res;
    };
    let etag = format!("\"{size}\"");
    let not_modified = req
        .headers()
        .get(IF_NONE_MATCH)
        .is_some_and(|v| none_match(v, &etag));
    let mut res = if not_modified {
        let mut res = Response::new(Full::new(Bytes::new()));
        *res.status_mut() = StatusCode::NOT_MODIFIED;
        res
    } else {
        let mut res = Response::new(Full::new(buf.slice(..size)));
        res.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        res
    };
    let headers = res.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static(cache_control));
    if let Ok(etag) = HeaderValue::from_str(&etag) {
        headers.insert(ETAG, etag);
    }
    res
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut listen = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => {
                listen = args.next().ok_or("--listen needs an address")?.parse()?;
            }
            other => {
                return Err(format!(
                    "unknown argument {other:?}; usage: bare_server [--listen ADDR]"
                )
                .into());
            }
        }
    }
    // Printable bytes, so a body seen in a terminal by mistake stays readable.
    let buf: Bytes = (0..MAX_BODY)
        .map(|i| b"abcdefghijklmnopqrstuvwxyz0123456789\n"[i % 37])
        .collect::<Vec<u8>>()
        .into();
    let listener = TcpListener::bind(listen).await?;
    println!("listening on {}", listener.local_addr()?);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors and similar: let the client retry.
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let buf = buf.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let res = respond(&req, &buf);
                async move { Ok::<_, Infallible>(res) }
            });
            // A client closing mid-request is routine under load; nothing to report.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units_and_a_limit() {
        assert_eq!(parse_size("1024"), Some(1024));
        assert_eq!(parse_size("1k"), Some(1024));
        assert_eq!(parse_size("64K"), Some(65536));
        assert_eq!(parse_size("1m"), Some(1 << 20));
        assert_eq!(parse_size("9m"), None);
        assert_eq!(parse_size("k"), None);
        assert_eq!(parse_size(""), None);
    }

    #[test]
    fn if_none_match_lists() {
        let v = HeaderValue::from_static("\"1\", W/\"1024\"");
        assert!(none_match(&v, "\"1024\""));
        assert!(!none_match(&v, "\"2048\""));
        assert!(none_match(&HeaderValue::from_static("*"), "\"5\""));
    }
}
