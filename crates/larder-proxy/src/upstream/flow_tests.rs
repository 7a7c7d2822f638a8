//! The forwarding fields through the whole cache flow: the server's [`ClientInfo`] must reach
//! [`Upstream`] on the client's requests, and not on a background refresh.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tower::{Layer, ServiceExt};

use super::{ForwardedHeaders, Upstream, UpstreamOptions};
use crate::config::EvictionPolicy;
use crate::server::ClientInfo;
use crate::{CacheConfig, CacheLayer, DefaultHooks};

/// A plain HTTP origin recording the fields of each request; its first answer is stale at once
/// with a stale-while-revalidate window, later ones fresh.
async fn recording_origin() -> (SocketAddr, Arc<Mutex<Vec<HeaderMap>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let log = Arc::clone(&log);
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let n = {
                    let mut log = log.lock();
                    log.push(req.headers().clone());
                    log.len()
                };
                let cache_control = if n == 1 {
                    "max-age=1, stale-while-revalidate=60"
                } else {
                    "max-age=60"
                };
                let resp = Response::builder()
                    .header("cache-control", cache_control)
                    .header("age", if n == 1 { "30" } else { "0" })
                    .body(Full::new(Bytes::from_static(b"ok")))
                    .unwrap();
                async move { Ok::<_, Infallible>(resp) }
            });
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    (addr, seen)
}

fn request(client: ClientInfo) -> Request<Full<Bytes>> {
    let mut req = Request::get("/f")
        .header("host", "site.example")
        .header("x-forwarded-for", "203.0.113.9")
        .body(Full::default())
        .unwrap();
    req.extensions_mut().insert(client);
    req
}

#[tokio::test]
async fn forwarding_fields_reach_the_origin_but_not_on_a_refresh() {
    let (origin, seen) = recording_origin().await;
    let options = UpstreamOptions {
        forwarded: ForwardedHeaders {
            x_forwarded_for: true,
            forwarded: true,
            x_forwarded_proto: true,
            trust_incoming: false,
        },
        host: Some("backend.internal".into()),
        ..UpstreamOptions::default()
    };
    let upstream = Upstream::with_options(&format!("http://{origin}"), &options).unwrap();
    let config = CacheConfig::in_memory(1 << 20, EvictionPolicy::Tinyufo);
    let cached = CacheLayer::new(config, DefaultHooks).layer(upstream);
    let client = ClientInfo {
        peer: "[2001:db8::7]:40000".parse().unwrap(),
        local: "[::1]:443".parse().unwrap(),
        tls: true,
    };

    let first = cached.clone().oneshot(request(client)).await.unwrap();
    assert_eq!(first.status(), 200);
    {
        let seen = seen.lock();
        let fields = &seen[0];
        // The proxy is the edge: the client's own field is replaced.
        assert_eq!(fields["x-forwarded-for"], "2001:db8::7");
        assert_eq!(
            fields["forwarded"],
            "for=\"[2001:db8::7]\";proto=https;host=site.example"
        );
        assert_eq!(fields["x-forwarded-proto"], "https");
        assert_eq!(fields["host"], "backend.internal");
    }

    // Stale inside stale-while-revalidate: served at once, refreshed in the background.
    let second = cached.clone().oneshot(request(client)).await.unwrap();
    assert_eq!(second.status(), 200);
    for _ in 0..200 {
        if seen.lock().len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let seen = seen.lock();
    assert_eq!(seen.len(), 2, "the refresh went upstream");
    let refresh = &seen[1];
    // The refresh starts from the head of the request that found the entry stale: that
    // client's own field is removed as on any request, and nothing is added.
    for name in ["x-forwarded-proto", "forwarded", "x-forwarded-for"] {
        assert!(refresh.get(name).is_none(), "{name} on a refresh");
    }
    assert_eq!(refresh["host"], "backend.internal");
}
