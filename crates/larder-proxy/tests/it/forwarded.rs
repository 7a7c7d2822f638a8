//! The forwarding fields, from a real client through the proxy's server to the origin.

use http::Method;
use larder_proxy::{ForwardedHeaders, Upstream, UpstreamOptions};
use larder_testkit::{Origin, Proxy, Transport, cache_config, respond, send_with};

fn all_fields() -> UpstreamOptions {
    let mut forwarded = ForwardedHeaders::default();
    forwarded.x_forwarded_for = true;
    forwarded.forwarded = true;
    forwarded.x_forwarded_proto = true;
    let mut options = UpstreamOptions::default();
    options.forwarded = forwarded;
    options
}

#[tokio::test]
async fn forwarding_fields_name_the_client_and_how_it_connected() {
    for (transport, proto) in [(Transport::Http1, "http"), (Transport::H2Tls, "https")] {
        let origin =
            Origin::start(|_, _| async { respond(200, &[("cache-control", "no-store")], "") })
                .await;
        let upstream = Upstream::with_options(&origin.uri(), &all_fields()).unwrap();
        let proxy = Proxy::with_hooks_over(
            transport,
            upstream,
            cache_config(),
            larder_proxy::DefaultHooks,
        )
        .await;
        let got = send_with(
            &transport.client(),
            Method::GET,
            &proxy.url("/f"),
            &[
                ("x-forwarded-for", "203.0.113.9"),
                ("x-forwarded-proto", "gopher"),
            ],
        )
        .await;
        assert_eq!(got.status, 200, "{transport:?}");
        let seen = origin.request(0).headers;
        let name = proxy.addr.to_string();
        // The proxy is the edge: what the client claimed is gone.
        assert_eq!(seen["x-forwarded-for"], "127.0.0.1", "{transport:?}");
        assert_eq!(
            seen["forwarded"],
            format!("for=127.0.0.1;proto={proto};host=\"{name}\""),
            "{transport:?}"
        );
        assert_eq!(seen["x-forwarded-proto"], proto, "{transport:?}");
    }
}

#[tokio::test]
async fn forwarding_fields_are_off_by_default() {
    let origin = Origin::start(|_, _| async { respond(200, &[], "") }).await;
    let proxy = Proxy::with_inner(Upstream::new(&origin.uri()).unwrap(), cache_config()).await;
    send_with(
        &Transport::Http1.client(),
        Method::GET,
        &proxy.url("/f"),
        &[("x-forwarded-for", "203.0.113.9")],
    )
    .await;
    let seen = origin.request(0).headers;
    assert_eq!(seen["x-forwarded-for"], "203.0.113.9");
    assert!(seen.get("forwarded").is_none() && seen.get("x-forwarded-proto").is_none());
}
