//! Protocol upgrades (RFC 9110 §7.8, `101 Switching Protocols`), WebSocket above all: forwarded
//! to the origin uncached and, once it switches, joined byte for byte with the client.
//!
//! Two kinds of request ask for an upgrade:
//!
//! - HTTP/1.1 with `Connection: upgrade` and `Upgrade: …`. `Upgrade` and `Connection: upgrade`
//!   go to the origin (every other hop-by-hop field is still removed), and the origin's `101`
//!   reaches the client with its `Upgrade` and `Connection` fields.
//! - HTTP/2 extended CONNECT (RFC 8441, a `CONNECT` with `:protocol`). The origin is asked, over
//!   HTTP/1.1, for a `GET` with `Upgrade: <protocol>` and `Connection: upgrade` (for WebSocket
//!   also a fresh `Sec-WebSocket-Key`; the client's `Sec-WebSocket-Version`, `-Protocol` and
//!   `-Extensions` are kept); its `101` becomes the `200` that opens the HTTP/2 stream.
//!
//! Either way the request is never looked up nor stored (`Cache-Status: …; fwd=bypass;
//! detail=Upgrade`). The upgraded connections are joined in a task on the layer's spawner (so a
//! drain cancels a tunnel still open after the grace period) that ends when either side
//! closes; the origin connection of a tunnel is never pooled, so it serves that client alone.
//! An origin that answers anything else than `101` is passed through uncached; to an HTTP/2
//! client a success that did not switch is a `502`, since a `2xx` would open a tunnel to
//! nowhere.
//!
//! A request is only treated as an upgrade when its server can hand over the client's
//! connection ([`server::serve`](crate::server::serve), or any hyper server with upgrades
//! on); otherwise, as for HTTP/1.0 and for `Upgrade` without `Connection: upgrade`, `Upgrade` is
//! a hop-by-hop field like the others and is dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::header::{self, HeaderName, HeaderValue};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode, Version};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use larder_cache::cache_status::ForwardReason;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::body::{self, ProxyBody, canned};
use crate::callbacks;
use crate::headers;
use crate::hooks::CacheHooks;
use crate::metrics::Metrics;
use crate::pass::upstream_head;
use crate::shared::{Answer, Inner, Shared, new_status};
use crate::tasks::TaskKind;

/// The `Cache-Status` detail and not-stored reason of an upgrade request.
const DETAIL: &str = "Upgrade";

/// How long the other side of a tunnel may stay open once one side closed.
const LINGER: Duration = Duration::from_secs(10);

/// The `Sec-WebSocket-Key` field (RFC 6455 §11.3.1).
const SEC_WEBSOCKET_KEY: HeaderName = HeaderName::from_static("sec-websocket-key");
/// The `Sec-WebSocket-Accept` field (RFC 6455 §11.3.3).
const SEC_WEBSOCKET_ACCEPT: HeaderName = HeaderName::from_static("sec-websocket-accept");

/// An upgrade the client asked for, put in the request's extensions by
/// [`Requested::take`] before the hop-by-hop fields are removed.
#[derive(Clone, Debug)]
pub(crate) struct Requested {
    /// The protocol(s) asked for: the `Upgrade` value, or HTTP/2's `:protocol`.
    protocol: HeaderValue,
    /// The client's connection (HTTP/1.1) or stream (HTTP/2), once the answer is sent.
    client: OnUpgrade,
    /// HTTP/2 extended CONNECT rather than an HTTP/1.1 `Upgrade`.
    extended_connect: bool,
}

impl Requested {
    /// Whether `req` asks for an upgrade the proxy forwards: an HTTP/1.1 `GET` with `Upgrade:
    /// websocket` and `upgrade` among the `Connection` options, or an HTTP/2 `CONNECT` with
    /// `:protocol` `websocket`, and in both cases a server able to hand over the connection.
    /// Takes what the upgrade needs out of `req` (the `Upgrade` field stays, to be removed with
    /// the other hop-by-hop fields).
    ///
    /// WebSocket is the one protocol tunnelled. Any other `Upgrade` is dropped as the
    /// hop-by-hop field it is and the request takes the cache's path: so `Upgrade: h2c` never
    /// hands a client a raw HTTP/2 connection to the origin (past the proxy's routing, `Host`
    /// and forwarding fields), and an `Upgrade` on an ordinary `GET` cannot force it past the
    /// cache.
    pub(crate) fn take(req: &mut Parts) -> Option<Self> {
        let (protocol, extended_connect) = match req.version {
            Version::HTTP_11 => {
                let asked = req
                    .headers
                    .get_all(header::CONNECTION)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .flat_map(|v| v.split(','))
                    .any(|option| option.trim().eq_ignore_ascii_case("upgrade"));
                if !asked || req.method != Method::GET {
                    return None;
                }
                let upgrade = req.headers.get(header::UPGRADE)?;
                if !is_websocket(upgrade.as_bytes()) {
                    return None;
                }
                (upgrade.clone(), false)
            }
            Version::HTTP_2 if req.method == Method::CONNECT => {
                let protocol = req.extensions.get::<hyper::ext::Protocol>()?;
                if !is_websocket(protocol.as_ref()) {
                    return None;
                }
                (HeaderValue::from_bytes(protocol.as_ref()).ok()?, true)
            }
            _ => return None,
        };
        let client = req.extensions.remove::<OnUpgrade>()?;
        Some(Self {
            protocol,
            client,
            extended_connect,
        })
    }

    /// Whether `req` is an HTTP/2 extended CONNECT whose upgrade is forwarded (for the target
    /// check, which refuses every other `CONNECT`).
    pub(crate) fn is_extended_connect(req: &Parts) -> bool {
        req.extensions
            .get::<Self>()
            .is_some_and(|r| r.extended_connect)
    }
}

/// Whether an `Upgrade` value or `:protocol` names WebSocket (RFC 6455 §4.1: `websocket`, any
/// case).
fn is_websocket(protocol: &[u8]) -> bool {
    protocol.trim_ascii().eq_ignore_ascii_case(b"websocket")
}

/// Forwards an upgrade request (the cache is bypassed) and, when the origin switches
/// protocols, starts the tunnel between the client and the origin.
pub(crate) async fn forward<H: CacheHooks, I: Inner>(
    shared: &Arc<Shared<H>>,
    inner: &I,
    req: &Parts,
    body: ProxyBody,
    requested: Requested,
) -> Answer {
    let metrics = &shared.metrics;
    metrics.bypass.inc();
    metrics.not_stored(DETAIL);
    let status = new_status(shared).fwd(ForwardReason::Bypass).detail(DETAIL);
    if let Some(reason) = callbacks::upstream_declined(&shared.hooks, req, None).await {
        return callbacks::declined_answer(reason, status, None);
    }
    let up = upstream_head(shared, req, |up| origin_request(up, &requested));
    let up = match up {
        Ok(up) => up,
        Err(e) => {
            let reason = callbacks::filter_failed(&e, "upstream_request_filter", None);
            return callbacks::declined_answer(reason, status, None);
        }
    };
    let resp = match inner.send(Request::from_parts(up, body)).await {
        Ok(resp) => resp,
        Err(e) => {
            metrics.upstream_errors.inc();
            tracing::warn!(error = %e, "upstream failed");
            return (shared.hooks.fail_to_proxy(req, &e).await, status);
        }
    };
    let (mut parts, body) = resp.into_parts();
    let status = status.fwd_status(parts.status);
    if parts.status != StatusCode::SWITCHING_PROTOCOLS {
        headers::remove_hop_by_hop(&mut parts.headers);
        if requested.extended_connect && parts.status.is_success() {
            // A 2xx to CONNECT opens the stream as a tunnel: an origin that answered without
            // switching must not look as if it had.
            tracing::debug!(status = %parts.status, "the origin did not switch protocols");
            return (
                canned(StatusCode::BAD_GATEWAY),
                status.detail("UpgradeRefused"),
            );
        }
        return (Response::from_parts(parts, body), status);
    }
    let Some(origin) = parts.extensions.remove::<OnUpgrade>() else {
        // The inner service is not a hyper client: there is no connection to join.
        tracing::warn!("the origin switched protocols but its connection cannot be taken over");
        metrics.upstream_errors.inc();
        return (canned(StatusCode::BAD_GATEWAY), status);
    };
    let mut resp = Response::new(body::empty());
    if requested.extended_connect {
        // RFC 8441 §5: the `200` that opens the stream; the switch itself is HTTP/1.1's.
        *resp.status_mut() = StatusCode::OK;
        headers::remove_hop_by_hop(&mut parts.headers);
        parts.headers.remove(SEC_WEBSOCKET_ACCEPT);
        parts.headers.remove(header::CONTENT_LENGTH);
        *resp.headers_mut() = parts.headers;
    } else {
        *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let switched = parts.headers.get(header::UPGRADE).cloned();
        headers::remove_hop_by_hop(&mut parts.headers);
        *resp.headers_mut() = parts.headers;
        let h = resp.headers_mut();
        h.insert(header::UPGRADE, switched.unwrap_or(requested.protocol));
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    spawn_tunnel(shared, requested.client, origin);
    (resp, status)
}

/// Turns the head sent to the origin into an HTTP/1.1 upgrade request: `Upgrade` and
/// `Connection: upgrade` back (the caller removed them with the other hop-by-hop fields), and
/// an extended CONNECT as the `GET` it stands for.
fn origin_request(up: &mut Parts, requested: &Requested) {
    up.extensions.remove::<Requested>();
    up.extensions.remove::<hyper::ext::Protocol>();
    up.headers
        .insert(header::UPGRADE, requested.protocol.clone());
    up.headers
        .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    if requested.extended_connect {
        up.method = Method::GET;
        up.version = Version::HTTP_11;
        if requested
            .protocol
            .as_bytes()
            .eq_ignore_ascii_case(b"websocket")
        {
            up.headers.insert(SEC_WEBSOCKET_KEY, websocket_key());
        }
    }
}

/// Runs the tunnel between the client's upgraded connection and the origin's on the layer's
/// spawner, counted in [`Metrics::upgrades`] and [`Metrics::tunnels`].
fn spawn_tunnel<H>(shared: &Shared<H>, client: OnUpgrade, origin: OnUpgrade) {
    shared.metrics.upgrades.inc();
    let open = Open::new(Arc::clone(&shared.metrics));
    shared.tasks.spawn(TaskKind::Tunnel, async move {
        let _open = open;
        let (client, origin) = match tokio::try_join!(client, origin) {
            Ok(both) => both,
            Err(e) => {
                tracing::debug!(error = %e, "upgrade failed");
                return;
            }
        };
        join(TokioIo::new(client), TokioIo::new(origin)).await;
    });
}

/// Copies bytes both ways between `client` and `origin` until both directions end. When one
/// side closes, the other is told (its write half is shut down) and gets [`LINGER`] to finish
/// and close too, so a peer that never closes cannot hold the tunnel open.
async fn join<C, O>(client: C, origin: O)
where
    C: AsyncRead + AsyncWrite + Unpin,
    O: AsyncRead + AsyncWrite + Unpin,
{
    let (mut client_rx, mut client_tx) = tokio::io::split(client);
    let (mut origin_rx, mut origin_tx) = tokio::io::split(origin);
    let up = async {
        let copied = tokio::io::copy(&mut client_rx, &mut origin_tx).await;
        let _ = origin_tx.shutdown().await;
        copied
    };
    let down = async {
        let copied = tokio::io::copy(&mut origin_rx, &mut client_tx).await;
        let _ = client_tx.shutdown().await;
        copied
    };
    tokio::pin!(up, down);
    let (first, side, rest) = tokio::select! {
        copied = &mut up => (copied, "client", tokio::time::timeout(LINGER, &mut down).await),
        copied = &mut down => (copied, "origin", tokio::time::timeout(LINGER, &mut up).await),
    };
    match (first, rest) {
        (Ok(first), Ok(Ok(rest))) => {
            tracing::debug!(closed_first = side, first, rest, "tunnel closed");
        }
        (first, rest) => {
            tracing::debug!(
                closed_first = side,
                ?first,
                ?rest,
                "tunnel ended with an error or a peer that stayed open"
            );
        }
    }
}

/// Counts an open tunnel until dropped (closed, failed or cancelled).
struct Open(Arc<Metrics>);

impl Open {
    fn new(metrics: Arc<Metrics>) -> Self {
        metrics.tunnels.inc();
        Self(metrics)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.tunnels.dec();
    }
}

/// A fresh `Sec-WebSocket-Key` (RFC 6455 §4.1): 16 random bytes in base64.
fn websocket_key() -> HeaderValue {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut bytes = [0u8; 16];
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        use std::hash::{BuildHasher, Hasher};
        // A randomly keyed SipHash of a counter: unpredictable, as the nonce should be, without
        // a random number generator of its own.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        h.write_usize(i);
        chunk.copy_from_slice(&h.finish().to_le_bytes());
    }
    let text = base64(&bytes);
    HeaderValue::from_str(&text)
        .unwrap_or_else(|_| HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="))
}

/// Standard base64 with padding (RFC 4648 §4).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> shift & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, expect) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), expect);
        }
    }

    #[test]
    fn websocket_keys_are_16_bytes_and_differ() {
        let a = websocket_key();
        let b = websocket_key();
        assert_eq!(a.len(), 24);
        assert!(a.as_bytes().ends_with(b"=="));
        assert_ne!(a, b);
    }

    #[tokio::test(start_paused = true)]
    async fn a_tunnel_carries_both_ways_and_ends_once_one_side_closed() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (client, mut client_peer) = tokio::io::duplex(64);
        let (origin, mut origin_peer) = tokio::io::duplex(64);
        let tunnel = tokio::spawn(join(client, origin));
        let mut buf = [0u8; 2];
        for _ in 0..3 {
            client_peer.write_all(b"up").await.unwrap();
            origin_peer.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"up");
            origin_peer.write_all(b"dn").await.unwrap();
            client_peer.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"dn");
        }
        // The client goes; the origin is told (end of stream) but stays open.
        drop(client_peer);
        let mut rest = Vec::new();
        origin_peer.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
        let started = tokio::time::Instant::now();
        tunnel.await.unwrap();
        assert!(started.elapsed() >= LINGER);
        drop(origin_peer);
    }

    #[tokio::test]
    async fn a_tunnel_ends_at_once_when_both_sides_close() {
        let (client, client_peer) = tokio::io::duplex(64);
        let (origin, origin_peer) = tokio::io::duplex(64);
        let tunnel = tokio::spawn(join(client, origin));
        drop(origin_peer);
        drop(client_peer);
        tokio::time::timeout(Duration::from_secs(1), tunnel)
            .await
            .expect("no linger when both sides are gone")
            .unwrap();
    }

    /// An `OnUpgrade` that never upgrades (what a server that upgrades would put in).
    fn no_upgrade() -> OnUpgrade {
        hyper::upgrade::on(Request::new(()))
    }

    fn parts(req: http::request::Builder) -> Parts {
        req.body(()).unwrap().into_parts().0
    }

    #[test]
    fn only_http11_with_connection_upgrade_and_a_server_that_upgrades() {
        let with = |version, connection: Option<&str>, upgrade: bool, on: bool| {
            let mut b = Request::get("/ws").version(version);
            if let Some(c) = connection {
                b = b.header(header::CONNECTION, c);
            }
            if upgrade {
                b = b.header(header::UPGRADE, "websocket");
            }
            let mut p = parts(b);
            if on {
                p.extensions.insert(no_upgrade());
            }
            Requested::take(&mut p).is_some()
        };
        let v11 = Version::HTTP_11;
        assert!(with(v11, Some("Upgrade"), true, true));
        assert!(with(v11, Some("keep-alive, upgrade"), true, true));
        assert!(!with(v11, Some("keep-alive"), true, true));
        assert!(!with(v11, None, true, true));
        assert!(!with(v11, Some("upgrade"), false, true));
        assert!(!with(v11, Some("upgrade"), true, false));
        assert!(!with(Version::HTTP_10, Some("upgrade"), true, true));
    }

    /// WebSocket alone is tunnelled: `h2c` (a raw HTTP/2 connection to the origin) and any
    /// other protocol, or an upgrade on another method, take the cache's path.
    #[test]
    fn only_websocket_on_get_is_tunnelled() {
        let with = |method: Method, upgrade: &str| {
            let mut p = parts(
                Request::builder()
                    .method(method)
                    .uri("/ws")
                    .header(header::CONNECTION, "upgrade")
                    .header(header::UPGRADE, upgrade),
            );
            p.extensions.insert(no_upgrade());
            Requested::take(&mut p).is_some()
        };
        assert!(with(Method::GET, "websocket"));
        assert!(with(Method::GET, "WebSocket"));
        assert!(!with(Method::GET, "h2c"));
        assert!(!with(Method::GET, "websocket, h2c"));
        assert!(!with(Method::GET, "TLS/1.2"));
        assert!(!with(Method::POST, "websocket"));
        let mut p = parts(Request::connect("https://a.test/x").version(Version::HTTP_2));
        p.extensions.insert(no_upgrade());
        p.extensions
            .insert(hyper::ext::Protocol::from_static("connect-udp"));
        assert!(Requested::take(&mut p).is_none());
    }

    #[test]
    fn extended_connect_becomes_a_get_with_upgrade() {
        let mut p = parts(
            Request::connect("https://a.test/chat")
                .version(Version::HTTP_2)
                .header("sec-websocket-version", "13"),
        );
        p.extensions.insert(no_upgrade());
        // Plain CONNECT: not an upgrade.
        assert!(Requested::take(&mut p.clone()).is_none());
        p.extensions
            .insert(hyper::ext::Protocol::from_static("websocket"));
        let requested = Requested::take(&mut p).unwrap();
        assert!(requested.extended_connect);
        let mut up = p.clone();
        origin_request(&mut up, &requested);
        assert_eq!(up.method, Method::GET);
        assert_eq!(up.version, Version::HTTP_11);
        assert_eq!(up.headers[header::UPGRADE], "websocket");
        assert_eq!(up.headers[header::CONNECTION], "upgrade");
        assert_eq!(up.headers["sec-websocket-version"], "13");
        assert_eq!(up.headers[SEC_WEBSOCKET_KEY].len(), 24);
        assert!(up.extensions.get::<hyper::ext::Protocol>().is_none());
    }
}
