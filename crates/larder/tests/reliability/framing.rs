//! Message framing and limits (docs/security.md): request smuggling, response splitting,
//! pipelining, HTTP/1.0, interim responses, range amplification, size limits, and what the
//! proxy tells a client about the cache.

use std::time::Duration;

use http::Method;
use larder::proxy::Upstream;

use larder_testkit::raw::{responses, statuses};
use larder_testkit::{Origin, Proxy, get, raw, raw_origin, respond, send};

use crate::config;

/// An origin answering every request with `public, max-age=60` and a body naming the target,
/// the request's `Content-Length` / `Transfer-Encoding` and its body.
async fn framing_origin() -> Origin {
    Origin::per_path_with_body(|parts, body, _| async move {
        let field = |name: &str| larder_testkit::field(&parts, name);
        let text = format!(
            "{} {} cl={} body={}",
            parts.method,
            parts.uri.path(),
            field("content-length"),
            String::from_utf8_lossy(&body)
        );
        respond(200, &[("cache-control", "public, max-age=60")], text)
    })
    .await
}

const SMUGGLED: &str = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_framing_cannot_smuggle_a_request() {
    let origin = framing_origin().await;
    let proxy = Proxy::start(&origin, config(Duration::from_secs(2))).await;
    // CL.TE and TE.CL: hyper frames the body by Transfer-Encoding, drops Content-Length and
    // closes the connection after the answer, so nothing after the chunked body is read as a
    // request; upstream the body is re-framed by the proxy's own client.
    let cl_te = format!(
        "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n\
         3\r\nabc\r\n0\r\n\r\n{SMUGGLED}"
    );
    let te_cl = format!(
        "POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n\
         3\r\nabc\r\n0\r\n\r\n{SMUGGLED}"
    );
    for req in [cl_te, te_cl] {
        let out = raw::exchange(proxy.addr, req.as_bytes()).await;
        println!("{:?} -> {:?}", &req[..7], statuses(&out));
        assert_eq!(statuses(&out), [200], "{out}");
        assert_eq!(origin.last_body(), "abc");
    }
    assert_eq!(origin.targets(), ["/a", "/b"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambiguous_framing_is_refused() {
    let origin = framing_origin().await;
    let proxy = Proxy::start(&origin, config(Duration::from_secs(2))).await;
    let head = "POST /r HTTP/1.1\r\nHost: x\r\n";
    let cases: Vec<(&str, String)> = vec![
        (
            "two different Content-Length",
            format!("{head}Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"),
        ),
        (
            "Content-Length list",
            format!("{head}Content-Length: 3, 3\r\n\r\nabc"),
        ),
        ("signed Content-Length", format!("{head}Content-Length: +3\r\n\r\nabc")),
        ("hex Content-Length", format!("{head}Content-Length: 0x3\r\n\r\nabc")),
        (
            "chunked not last",
            format!("{head}Transfer-Encoding: chunked, identity\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
        ),
        (
            "unknown coding",
            format!("{head}Transfer-Encoding: xchunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
        ),
        (
            "Transfer-Encoding in HTTP/1.0",
            "POST /r HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
                .to_owned(),
        ),
        (
            "space before colon",
            format!("{head}Transfer-Encoding : chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
        ),
        (
            "obs-fold",
            format!("{head}X-A: a\r\n b\r\nContent-Length: 3\r\n\r\nabc"),
        ),
        (
            "obs-fold on Transfer-Encoding",
            format!("{head}Transfer-Encoding:\r\n chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
        ),
        (
            "bad chunk size",
            format!("{head}Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"),
        ),
        ("CR in a value", format!("{head}X-A: a\rb\r\n\r\n")),
        ("NUL in a value", format!("{head}X-A: a\0b\r\n\r\n")),
    ];
    for (what, req) in cases {
        let out = raw::exchange(proxy.addr, req.as_bytes()).await;
        let codes = statuses(&out);
        println!("{what}: {codes:?}");
        // A refusal is a 400. A bad chunk is found only once the head was forwarded and the
        // body streams: the upstream request fails (502) and the connection closes.
        let expect: &[u16] = if what == "bad chunk size" {
            &[502]
        } else {
            &[400]
        };
        assert_eq!(codes, expect, "{what}: {out}");
    }
    // Nothing was forwarded but the head whose chunked body turned out to be broken.
    assert!(origin.hits() <= 1, "forwarded: {:?}", origin.targets());
    assert_eq!(get(&proxy.url("/ok")).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_in_order() {
    let origin = framing_origin().await;
    let proxy = Proxy::start(&origin, config(Duration::from_secs(2))).await;
    let req = "GET /p1 HTTP/1.1\r\nHost: x\r\n\r\n\
               POST /p2 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi\
               GET /p1 HTTP/1.1\r\nHost: x\r\n\r\n\
               GET /p3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let out = raw::exchange(proxy.addr, req.as_bytes()).await;
    let bodies: Vec<String> = responses(&out).into_iter().map(|r| r.body).collect();
    assert_eq!(
        bodies,
        [
            "GET /p1 cl=- body=",
            "POST /p2 cl=2 body=hi",
            "GET /p1 cl=- body=",
            "GET /p3 cl=- body="
        ],
        "{out}"
    );
    // The second /p1 is a hit; the POST body went to the POST only.
    assert_eq!(origin.targets(), ["/p1", "/p2", "/p3"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_10_clients_get_no_chunked_coding_and_one_answer_per_connection() {
    // A chunked answer upstream (no Content-Length) for /c, a sized one elsewhere.
    let origin = Origin::per_path(|parts, _| async move {
        let mut resp = respond(200, &[("cache-control", "no-store")], "abcd");
        if parts.uri.path() == "/c" {
            *resp.body_mut() = larder_testkit::chunked_body(
                vec!["ab".into(), "cd".into()],
                Duration::from_millis(1),
                false,
            );
        }
        resp
    })
    .await;
    let proxy = Proxy::start(&origin, config(Duration::from_secs(2))).await;
    let out = raw::exchange(proxy.addr, b"GET /c HTTP/1.0\r\nHost: x\r\n\r\n").await;
    assert!(out.starts_with("HTTP/1.0 200"), "{out}");
    assert!(
        !out.to_ascii_lowercase().contains("transfer-encoding"),
        "{out}"
    );
    assert!(out.ends_with("abcd"), "{out}");
    // HTTP/1.0 keep-alive is not honoured: the proxy sends no `Connection: keep-alive` (hyper
    // needs the service to), so the connection closes after one answer and a pipelined second
    // request is never read. Safe (nothing is left to desynchronise), one connection per
    // request.
    for first in ["Connection: keep-alive\r\n", ""] {
        let req =
            format!("GET /k HTTP/1.0\r\nHost: x\r\n{first}\r\nGET /k2 HTTP/1.0\r\nHost: x\r\n\r\n");
        let out = raw::exchange(proxy.addr, req.as_bytes()).await;
        assert_eq!(statuses(&out), [200], "{out}");
    }
    assert!(!origin.targets().iter().any(|t| t == "/k2"));
    // The origin was spoken to over HTTP/1.1, without the client's Connection.
    let up = origin.last_request();
    assert_eq!(up.version, http::Version::HTTP_11);
    assert!(!up.headers.contains_key("connection"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_on_a_get_is_never_read_as_a_request() {
    let origin = framing_origin().await;
    let proxy = Proxy::start(&origin, config(Duration::from_secs(2))).await;
    let prime = b"GET /hit HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    assert_eq!(statuses(&raw::exchange(proxy.addr, prime).await), [200]);
    // A GET with a body bypasses the cache even when its key is stored (the key does not cover
    // the body): the body goes to the origin as a body, and neither hyper nor the upstream
    // connection parses it as the next request.
    let req = format!(
        "GET /hit HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{SMUGGLED}\
         GET /after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        SMUGGLED.len()
    );
    let out = raw::exchange(proxy.addr, req.as_bytes()).await;
    let got = responses(&out);
    println!("body on a GET: {:?}", statuses(&out));
    assert_eq!(statuses(&out), [200, 200], "{out}");
    assert!(
        got[0]
            .head
            .to_ascii_lowercase()
            .contains("detail=requestbody"),
        "{out}"
    );
    assert_eq!(
        got[0].body,
        format!("GET /hit cl={} body={SMUGGLED}", SMUGGLED.len())
    );
    assert!(got[1].body.starts_with("GET /after "), "{out}");
    assert!(
        !origin.targets().iter().any(|t| t == "/smuggled"),
        "{:?}",
        origin.targets()
    );
}

/// The status a client gets through a proxy in front of an origin answering `response`, and
/// how many times the origin was asked after two requests.
async fn through_raw_origin(response: &'static [u8]) -> (Vec<u16>, String, usize) {
    let (addr, count) = raw_origin(response).await;
    let upstream = Upstream::new(&format!("http://{addr}")).unwrap();
    let proxy = Proxy::with_inner(upstream, config(Duration::from_secs(2))).await;
    let req = b"GET /r HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let first = raw::exchange(proxy.addr, req).await;
    let _ = raw::exchange(proxy.addr, req).await;
    (
        statuses(&first),
        first,
        count.load(std::sync::atomic::Ordering::SeqCst),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_header_injection_is_refused_and_never_stored() {
    // Response splitting from upstream: a folded or CR-carrying field that would smuggle a
    // Set-Cookie or a second response is a parse error in the proxy's client: 502, nothing
    // stored (the second request goes upstream again).
    let cases: [(&str, &'static [u8]); 3] = [
        (
            "obs-fold in Location",
            b"HTTP/1.1 302 Found\r\nCache-Control: max-age=60\r\nLocation: /x\r\n Set-Cookie: a=1\r\nContent-Length: 0\r\n\r\n",
        ),
        (
            "bare CR in Location",
            b"HTTP/1.1 302 Found\r\nCache-Control: max-age=60\r\nLocation: /x\rSet-Cookie: a=1\r\nContent-Length: 0\r\n\r\n",
        ),
        (
            "NUL in a field",
            b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nX-A: a\0b\r\nContent-Length: 2\r\n\r\nok",
        ),
    ];
    for (what, response) in cases {
        let (codes, out, fetches) = through_raw_origin(response).await;
        println!("{what}: {codes:?}, {fetches} fetches");
        assert_eq!(codes, [502], "{what}: {out}");
        assert!(
            !out.to_ascii_lowercase().contains("set-cookie"),
            "{what}: {out}"
        );
        assert_eq!(fetches, 2, "{what}");
    }
    // A well-formed Location is passed on as it is, and stored.
    let (codes, out, fetches) = through_raw_origin(
        b"HTTP/1.1 301 Moved Permanently\r\nCache-Control: max-age=60\r\nLocation: /x%0d%0aSet-Cookie:%20a=1\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    assert_eq!(codes, [301]);
    assert!(
        out.contains("location: /x%0d%0aSet-Cookie:%20a=1\r\n"),
        "{out}"
    );
    assert_eq!(fetches, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unasked_switching_protocols_from_the_origin_is_a_bad_gateway() {
    // The proxy never forwards Upgrade, so a 101 from the origin answers a request that did
    // not ask for it (RFC 9110 §15.2.2): the client gets 502, not a 101 it did not ask for.
    let (codes, out, fetches) = through_raw_origin(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nraw bytes",
    )
    .await;
    println!("101 from the origin: {codes:?}, {fetches} fetches");
    assert_eq!(codes, [502], "{out}");
    assert!(!out.contains("raw bytes"), "{out}");
    assert_eq!(fetches, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_or_overlapping_ranges_get_the_body_once() {
    let body = larder_testkit::pattern(7, 1000);
    let b = body.clone();
    let origin = Origin::per_path(move |_, _| {
        let b = b.clone();
        async move { respond(200, &[("cache-control", "public, max-age=60")], b) }
    })
    .await;
    let proxy = Proxy::start(&origin, config(Duration::from_secs(2))).await;
    let url = proxy.url("/big");
    let _ = get(&url).await;
    let overlapping = vec!["0-999"; 50].join(",");
    let many: Vec<String> = (0..201)
        .map(|i| format!("{}-{}", i * 4, i * 4 + 1))
        .collect();
    let many = many.join(",");
    let descending = "500-599,0-99";
    for (what, ranges) in [
        ("overlapping", overlapping.as_str()),
        ("201 ranges", many.as_str()),
        ("descending", descending),
    ] {
        let r = send(Method::GET, &url, &[("range", &format!("bytes={ranges}"))]).await;
        println!("{what}: {} {} bytes", r.status, r.bytes().len());
        assert_eq!(r.status, 200, "{what}");
        assert_eq!(r.bytes(), &body, "{what}");
    }
    // 200 small ranges are honoured: the answer is bounded by the body plus the part headers.
    let ok: Vec<String> = (0..200)
        .map(|i| format!("{}-{}", i * 4, i * 4 + 1))
        .collect();
    let r = send(
        Method::GET,
        &url,
        &[("range", &format!("bytes={}", ok.join(",")))],
    )
    .await;
    assert_eq!(r.status, 206);
    assert!(
        r.bytes().len() < body.len() + 200 * 128,
        "{}",
        r.bytes().len()
    );
    assert_eq!(origin.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_over_the_size_limit_are_served_but_not_stored() {
    let origin = Origin::per_path(|parts, _| async move {
        let len = if parts.uri.path() == "/small" {
            512
        } else {
            8192
        };
        let chunks = if parts.uri.path() == "/chunked" {
            vec![
                larder_testkit::pattern(1, 4096),
                larder_testkit::pattern(2, 4096),
            ]
        } else {
            vec![larder_testkit::pattern(1, len)]
        };
        let mut resp = respond(200, &[("cache-control", "public, max-age=60")], "");
        *resp.body_mut() = larder_testkit::chunked_body(chunks, Duration::ZERO, false);
        if parts.uri.path() != "/chunked" {
            resp.headers_mut()
                .insert("content-length", http::HeaderValue::from(len));
        }
        resp
    })
    .await;
    let mut cfg = config(Duration::from_secs(2));
    cfg.max_file_size = Some(1024);
    let proxy = Proxy::start(&origin, cfg).await;
    for (path, stored) in [("/small", true), ("/large", false), ("/chunked", false)] {
        let a = get(&proxy.url(path)).await;
        let b = get(&proxy.url(path)).await;
        println!("{path}: {} / {}", a.cache_status(), b.cache_status());
        assert_eq!(a.bytes(), b.bytes(), "{path}");
        assert_eq!(b.ours().hit, stored, "{path}");
        assert_eq!(origin.hits_for(path), if stored { 1 } else { 2 }, "{path}");
    }
    // A request target past hyper's limit is refused before the proxy sees it.
    let long = format!(
        "GET /{} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "a".repeat(70 * 1024)
    );
    let out = raw::exchange(proxy.addr, long.as_bytes()).await;
    println!("70 KiB target: {:?}", statuses(&out));
    assert_eq!(statuses(&out), [431], "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_refusal_does_not_tell_whether_a_url_is_cached() {
    let origin = framing_origin().await;
    let mut cfg = config(Duration::from_secs(2));
    cfg.purge_token = Some("s3cret".to_owned());
    let proxy = Proxy::start(&origin, cfg).await;
    let _ = get(&proxy.url("/cached")).await;
    let purge = Method::from_bytes(b"PURGE").unwrap();
    let mut seen = Vec::new();
    for path in ["/cached", "/never"] {
        for auth in [None, Some("Bearer s3cre"), Some("Bearer s3cret0")] {
            let headers: Vec<(&str, &str)> =
                auth.map(|a| ("authorization", a)).into_iter().collect();
            let r = send(purge.clone(), &proxy.url(path), &headers).await;
            assert_eq!(r.status, 401);
            let mut h: Vec<String> = r
                .headers
                .iter()
                .filter(|(n, _)| *n != "date")
                .map(|(n, v)| format!("{n}: {v:?}"))
                .collect();
            h.sort();
            seen.push((h, r.bytes().clone()));
        }
    }
    // Every refusal is the same response, byte for byte (Date aside).
    assert!(seen.windows(2).all(|w| w[0] == w[1]), "{seen:?}");
    assert!(
        get(&proxy.url("/cached"))
            .await
            .cache_status()
            .contains("hit")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_status_tells_any_client_what_is_cached() {
    // Documented limitation: Cache-Status (RFC 9211) is on every response, so any client can
    // tell whether a URL was fetched by someone else within its freshness lifetime, and why a
    // response was not stored.
    let origin = Origin::per_path(|parts, _| async move {
        let cc = if parts.uri.path() == "/private" {
            "private"
        } else {
            "public, max-age=60"
        };
        respond(200, &[("cache-control", cc)], "x")
    })
    .await;
    let proxy = Proxy::start(&origin, config(Duration::from_secs(2))).await;
    let probe = get(&proxy.url("/visited")).await;
    assert!(probe.ours().is_fwd("uri-miss"));
    let probe = get(&proxy.url("/visited")).await;
    assert!(
        probe.ours().hit && probe.ours().ttl.is_some(),
        "{}",
        probe.cache_status()
    );
    assert!(probe.header("age").is_some());
    let private = get(&proxy.url("/private")).await;
    assert!(
        private.ours().detail.is_some(),
        "{}",
        private.cache_status()
    );
    assert!(private.header("via").is_some_and(|v| v.contains("larder")));
}

/// One HTTP/2 frame: type, flags, stream and payload (RFC 9113 §4.1).
fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap();
    let mut f = len.to_be_bytes()[1..].to_vec();
    f.extend_from_slice(&[kind, flags]);
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// A header block of literal fields without indexing, no Huffman coding (RFC 7541 §6.2.2).
fn hpack(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        out.push(0);
        out.push(u8::try_from(name.len()).unwrap());
        out.extend_from_slice(name.as_bytes());
        out.push(u8::try_from(value.len()).unwrap());
        out.extend_from_slice(value.as_bytes());
    }
    out
}

/// Sends one HTTP/2 request as raw frames (`extra` header fields, then `data` with
/// `END_STREAM`) and returns the types of the frames the server sent on stream 1.
async fn raw_h2(addr: std::net::SocketAddr, extra: &[(&str, &str)], data: &[u8]) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut fields = vec![
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/h2"),
        (":authority", "x"),
    ];
    fields.extend_from_slice(extra);
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(h2_frame(4, 0, 0, &[]));
    out.extend(h2_frame(1, 0x4, 1, &hpack(&fields)));
    out.extend(h2_frame(0, 0x1, 1, data));
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(&out).await.unwrap();
    let mut kinds = Vec::new();
    let mut buf = Vec::new();
    let read = async {
        let mut chunk = [0u8; 4096];
        loop {
            while buf.len() >= 9 {
                let len = usize::try_from(u32::from_be_bytes([0, buf[0], buf[1], buf[2]])).unwrap();
                if buf.len() < 9 + len {
                    break;
                }
                let stream = u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) & 0x7fff_ffff;
                if stream == 1 {
                    kinds.push(buf[3]);
                    // RST_STREAM, or a frame that ends the stream.
                    if buf[3] == 3 || buf[4] & 0x1 != 0 {
                        return;
                    }
                }
                if buf[3] == 7 {
                    // GOAWAY
                    kinds.push(7);
                    return;
                }
                buf.drain(..9 + len);
            }
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), read).await;
    kinds
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_framing_cannot_smuggle_into_http1() {
    let origin = framing_origin().await;
    let proxy = Proxy::start(&origin, config(Duration::from_secs(2))).await;
    // The proxy speaks HTTP/1.1 to the origin, so an HTTP/2 request whose length fields
    // disagree with its DATA, or that carries HTTP/1 framing fields, must not turn into two
    // HTTP/1.1 requests (H2.CL, H2.TE).
    let cases: [(&str, &[(&str, &str)]); 4] = [
        ("content-length 0", &[("content-length", "0")]),
        ("content-length too long", &[("content-length", "99")]),
        ("transfer-encoding", &[("transfer-encoding", "chunked")]),
        (
            "CRLF in a value",
            &[("x-a", "a\r\nTransfer-Encoding: chunked")],
        ),
    ];
    for (what, extra) in cases {
        let kinds = raw_h2(proxy.addr, extra, SMUGGLED.as_bytes()).await;
        println!(
            "{what}: frames {kinds:?}, origin saw {:?}",
            origin.targets()
        );
        // Refused with RST_STREAM (3) or GOAWAY (7), never answered with HEADERS (1).
        assert!(
            kinds.last().is_some_and(|k| *k == 3 || *k == 7),
            "{what}: {kinds:?}"
        );
    }
    // A well-formed request gets an answer, with the DATA as its body upstream.
    let len = SMUGGLED.len().to_string();
    let kinds = raw_h2(proxy.addr, &[("content-length", &len)], SMUGGLED.as_bytes()).await;
    assert_eq!(kinds.first(), Some(&1), "{kinds:?}");
    // Whatever reached the origin was the one request, never the one inside its DATA.
    assert!(
        origin.targets().iter().all(|t| t == "/h2"),
        "{:?}",
        origin.targets()
    );
    assert_eq!(origin.last_body(), SMUGGLED);
}

/// A keep-alive origin that never reads request bodies (as many frameworks do for `GET`): it
/// parses each request head from what is left on the connection, answers with the path it
/// parsed (`public, max-age=60`), and closes only when the request says `Connection: close`.
async fn body_ignoring_origin() -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut pending = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => pending.extend_from_slice(&buf[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&pending[..end]).to_ascii_lowercase();
                    pending.drain(..end + 4);
                    let path = head.split(' ').nth(1).unwrap_or("?").to_owned();
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncache-control: public, max-age=60\r\n\
                         content-length: {}\r\n\r\n{path}",
                        path.len()
                    );
                    if s.write_all(answer.as_bytes()).await.is_err()
                        || head.contains("\r\nconnection: close")
                    {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_body_the_origin_ignores_cannot_answer_another_client() {
    let origin = body_ignoring_origin().await;
    let upstream = larder::proxy::Upstream::new(&format!("http://{origin}")).unwrap();
    let proxy = Proxy::with_inner(upstream, config(Duration::from_secs(2))).await;
    // The body is the start of a request that would swallow the next one on the connection.
    let body = "GET /evil HTTP/1.1\r\nX-Ignore: ";
    let fat = format!(
        "GET /fat HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let first = raw::exchange(proxy.addr, fat.as_bytes()).await;
    assert_eq!(statuses(&first), [200], "{first}");
    let client = larder_testkit::client();
    for path in ["/victim", "/victim", "/other"] {
        let got = larder_testkit::send_with(&client, Method::GET, &proxy.url(path), &[]).await;
        assert_eq!(got.text(), path, "{}", got.cache_status());
    }
}
