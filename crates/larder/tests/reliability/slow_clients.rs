//! Scenario 6: slow and stalled clients. A client that stops reading costs only its own socket
//! buffers: it never holds back the fill of the object it asked for, nor the other clients of
//! that object, and memory stays bounded by what the storage admits.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http::Response;
use http_body_util::BodyExt;
use larder::proxy::config::EvictionPolicy;
use larder::proxy::{CacheConfig, ProxyBody};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use larder_testkit::{Origin, Proxy, client, rss_bytes};

use crate::HEAVY;

/// Upper bound of any one step; a step that would hang fails the test instead.
const STEP: Duration = Duration::from_mins(2);
/// Origin chunk size.
const CHUNK: usize = 64 * 1024;
/// Allowed on top of what the cache holds: allocator slack, socket and runtime buffers.
const SLACK: usize = 48 << 20;

/// Byte `i` of a body: differs per `seed` and shifts with the offset, so a missing, repeated
/// or misplaced chunk shows.
fn byte_at(seed: u8, i: usize) -> u8 {
    seed.wrapping_add(u8::try_from(i % 251).unwrap())
}

/// `len` bytes of the `seed` body from `offset`.
fn pattern_at(seed: u8, offset: usize, len: usize) -> Bytes {
    (offset..offset + len)
        .map(|i| byte_at(seed, i))
        .collect::<Vec<u8>>()
        .into()
}

/// A body of `total` bytes made chunk by chunk as it is read (so the origin holds none of it),
/// with `Content-Length` when `with_length` is set.
fn lazy_response(
    seed: u8,
    total: usize,
    cache_control: &'static str,
    with_length: bool,
) -> Response<ProxyBody> {
    let chunks = futures_util::stream::iter((0..total).step_by(CHUNK)).map(move |offset| {
        Ok::<_, std::io::Error>(http_body::Frame::data(pattern_at(
            seed,
            offset,
            CHUNK.min(total - offset),
        )))
    });
    let mut resp = Response::builder()
        .status(200)
        .header("cache-control", cache_control);
    if with_length {
        resp = resp.header("content-length", total);
    }
    resp.body(larder::proxy::body::boxed(http_body_util::StreamBody::new(
        chunks,
    )))
    .unwrap()
}

/// An origin answering every path with a lazily made body of `total` bytes.
async fn origin(total: usize, cache_control: &'static str, with_length: bool) -> Origin {
    Origin::per_path(move |_, _| async move { lazy_response(7, total, cache_control, with_length) })
        .await
}

/// A proxy with an in-memory cache of `size` bytes (objects up to that size are stored).
async fn proxy(origin: &Origin, size: usize) -> Proxy {
    let config = CacheConfig::in_memory(size, EvictionPolicy::Lru)
        .with_lock_timeouts(Duration::from_secs(30), Duration::from_secs(30));
    Proxy::start(origin, config).await
}

async fn step<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(STEP, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no progress in {STEP:?}"))
}

/// A client on a raw socket with a small receive buffer that reads a response's head (and
/// whatever body bytes came with it), then reads only when told to.
struct SlowClient {
    stream: TcpStream,
    head: String,
    /// Body bytes read so far.
    body: Vec<u8>,
}

impl SlowClient {
    async fn get(addr: SocketAddr, path: &str) -> Self {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut stream = socket.connect(addr).await.unwrap();
        // The same Host as the URL the other clients use: the same cache key.
        let request = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        let end = loop {
            if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            let n = step("reading the head", stream.read(&mut buf))
                .await
                .unwrap();
            assert_ne!(n, 0, "the proxy closed before the head ended");
            got.extend_from_slice(&buf[..n]);
        };
        let head = String::from_utf8_lossy(&got[..end]).into_owned();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        Self {
            stream,
            head,
            body: got[end..].to_vec(),
        }
    }

    /// Reads the rest of a `Content-Length` body of `total` bytes and checks every byte.
    async fn finish(mut self, seed: u8, total: usize) {
        assert!(
            self.head
                .to_ascii_lowercase()
                .contains(&format!("content-length: {total}\r\n")),
            "{}",
            self.head
        );
        let mut buf = vec![0u8; CHUNK];
        while self.body.len() < total {
            let n = step("reading the body", self.stream.read(&mut buf))
                .await
                .unwrap();
            assert_ne!(n, 0, "the body ended after {} bytes", self.body.len());
            self.body.extend_from_slice(&buf[..n]);
        }
        assert_eq!(self.body.len(), total);
        let wrong = self
            .body
            .iter()
            .enumerate()
            .position(|(i, &b)| b != byte_at(seed, i));
        assert_eq!(wrong, None, "the body differs from the origin's");
    }
}

/// Reads a whole response through hyper, checking each byte as it arrives without keeping
/// the body; returns the `Cache-Status` and the body length.
async fn fetch_checked(url: &str, seed: u8) -> (String, usize) {
    let resp = step("a response head", client().get(url.parse().unwrap()))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let status = resp
        .headers()
        .get("cache-status")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let mut body = resp.into_body();
    let mut len = 0;
    while let Some(frame) = step("a body frame", body.frame()).await {
        let Ok(data) = frame.unwrap().into_data() else {
            continue;
        };
        assert_eq!(data, pattern_at(seed, len, data.len()), "at offset {len}");
        len += data.len();
    }
    (status, len)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_reader_holds_back_neither_the_fill_nor_other_clients() {
    const TOTAL: usize = 32 << 20;
    let origin = origin(TOTAL, "max-age=600", true).await;
    let proxy = proxy(&origin, 256 << 20).await;

    // The first client causes the fill, reads the head and stops reading.
    let stalled = SlowClient::get(proxy.addr, "/big").await;
    // A second client of the same object gets all of it while the first still reads nothing.
    let (status, len) = fetch_checked(&proxy.url("/big"), 7).await;
    assert_eq!(len, TOTAL);
    assert!(status.contains("hit"), "{status}");
    assert_eq!(origin.hits(), 1, "one fill served both clients");
    // The fill ran to its end although its own client is still stalled: the entry is stored.
    let (status, len) = fetch_checked(&proxy.url("/big"), 7).await;
    assert_eq!(len, TOTAL);
    assert!(status.contains("hit"), "{status}");
    assert!(stalled.body.len() < TOTAL / 2, "the first client did stall");
    // The stalled client, reading again, gets the whole body, byte for byte.
    stalled.finish(7, TOTAL).await;
    assert_eq!(origin.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_does_not_stop_the_fill() {
    const TOTAL: usize = 8 << 20;
    let origin = origin(TOTAL, "max-age=600", true).await;
    let proxy = proxy(&origin, 64 << 20).await;
    drop(SlowClient::get(proxy.addr, "/left").await);
    // The next request is answered from the entry the fill completed (or is completing).
    let (status, len) = fetch_checked(&proxy.url("/left"), 7).await;
    assert_eq!(len, TOTAL);
    assert!(status.contains("hit"), "{status}");
    assert_eq!(origin.hits(), 1);
}

#[test]
fn ten_slow_readers_and_a_fast_one_keep_memory_to_the_object() {
    const TOTAL: usize = 50 << 20;
    let _heavy = HEAVY
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    runtime().block_on(async {
        let origin = origin(TOTAL, "max-age=600", true).await;
        let proxy = proxy(&origin, 256 << 20).await;
        let baseline = rss_bytes();
        let mut slow = Vec::new();
        for _ in 0..10 {
            slow.push(SlowClient::get(proxy.addr, "/fifty").await);
        }
        let (_, len) = fetch_checked(&proxy.url("/fifty"), 7).await;
        assert_eq!(len, TOTAL);
        let grown = rss_bytes().saturating_sub(baseline);
        println!(
            "10 stalled readers + 1 fast reader of a {} MiB object: RSS grew by {} MiB",
            TOTAL >> 20,
            grown >> 20
        );
        // The write in progress and the complete entry it becomes (the stalled readers keep
        // the former until they finish): twice the object, and no copy per reader.
        assert!(
            grown < 2 * TOTAL + SLACK,
            "RSS grew by {} MiB for a {} MiB object",
            grown >> 20,
            TOTAL >> 20
        );
        assert_eq!(origin.hits(), 1);
        // Two of the stalled readers finish: each still gets the whole body.
        for reader in slow.drain(..2) {
            reader.finish(7, TOTAL).await;
        }
    });
}

/// Reads a response's head through a stalled client, waits, and checks that the proxy's memory
/// grew by less than `SLACK`; then reads the body to its end and checks it.
async fn stalled_pass_through_stays_bounded(proxy: &Proxy, path: &str, total: usize) {
    let baseline = rss_bytes();
    let stalled = SlowClient::get(proxy.addr, path).await;
    // Give the proxy time to read ahead if it were going to.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let grown = rss_bytes().saturating_sub(baseline);
    println!(
        "a stalled reader of a {} MiB response ({path}): RSS grew by {} MiB",
        total >> 20,
        grown >> 20
    );
    assert!(grown < SLACK, "RSS grew by {} MiB", grown >> 20);
    let chunked = !stalled
        .head
        .to_ascii_lowercase()
        .contains(&format!("content-length: {total}\r\n"));
    let SlowClient {
        mut stream,
        body: mut tail,
        ..
    } = stalled;
    let mut read = tail.len();
    let mut buf = vec![0u8; CHUNK];
    // With a length, read that many bytes; chunked, read to the last chunk (the content is
    // checked separately).
    while if chunked {
        !tail.ends_with(b"\r\n0\r\n\r\n")
    } else {
        read < total
    } {
        let n = step("reading the body", stream.read(&mut buf))
            .await
            .unwrap();
        assert_ne!(n, 0, "the connection closed after {read} bytes");
        read += n;
        tail.extend_from_slice(&buf[..n]);
        let keep = tail.len().saturating_sub(16);
        tail.drain(..keep);
    }
}

#[test]
fn a_stalled_reader_of_an_uncacheable_response_keeps_memory_bounded() {
    const TOTAL: usize = 256 << 20;
    let _heavy = HEAVY
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    runtime().block_on(async {
        let origin = origin(TOTAL, "no-store", true).await;
        let proxy = proxy(&origin, 64 << 20).await;
        stalled_pass_through_stays_bounded(&proxy, "/private", TOTAL).await;
    });
}

#[test]
fn a_fill_that_outgrows_the_cache_is_handed_to_its_client_with_back_pressure() {
    // No Content-Length: the proxy learns the object is too large only while storing it.
    const TOTAL: usize = 128 << 20;
    let _heavy = HEAVY
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    runtime().block_on(async {
        let origin = origin(TOTAL, "max-age=600", false).await;
        let proxy = proxy(&origin, 4 << 20).await;
        stalled_pass_through_stays_bounded(&proxy, "/huge", TOTAL).await;
        // Every byte, in order, across the switch from the stored part to the handed-over rest.
        let (_, len) = fetch_checked(&proxy.url("/huge"), 7).await;
        assert_eq!(len, TOTAL);
        assert_eq!(origin.hits(), 2, "nothing was stored");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_head_sent_too_slowly_is_cut_off() {
    let origin = origin(1024, "max-age=600", true).await;
    let proxy = proxy(&origin, 1 << 20).await;
    // Slowloris: a request head that never ends. hyper's header read timeout (30 s) closes the
    // connection; the step limit bounds the wait.
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    stream
        .write_all(b"GET /slow HTTP/1.1\r\nhost: slow.test\r\nx-a: 1\r\n")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 1024];
    let mut answer = Vec::new();
    loop {
        match step("the connection to close", stream.read(&mut buf)).await {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    println!(
        "an unfinished request head was cut off after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    assert_eq!(origin.hits(), 0, "nothing reached the origin");
    let (_, len) = fetch_checked(&proxy.url("/after"), 7).await;
    assert_eq!(len, 1024, "the proxy still serves");
}
