//! Two `larder` binaries sharing one Redis (`--storage redis://…`): what one fetches the other
//! hits, a PURGE through one reaches both, both keep answering from the origin while Redis is
//! down, and hits resume when it is back.

use std::time::Duration;

use http::Method;

use larder_testkit::{Got, LarderProcess, Origin, RedisServer, free_port, respond, send};

use crate::binary::spawn;

/// One proxy of the fleet: its listen and admin addresses.
struct Member {
    listen: String,
    admin: String,
    _child: LarderProcess,
}

impl Member {
    fn start(origin: &Origin, redis: &RedisServer) -> Self {
        let listen = format!("127.0.0.1:{}", free_port());
        let admin = format!("127.0.0.1:{}", free_port());
        let child = spawn(&[
            "--upstream",
            &origin.uri(),
            "--listen",
            &listen,
            "--admin",
            &admin,
            "--storage",
            &redis.url(),
            "--purge-token",
            "t",
        ]);
        Member {
            listen,
            admin,
            _child: child,
        }
    }

    /// A request for `/object` as a load balancer in front of the fleet sends it: the same
    /// `Host` whichever member gets it (the cache key includes the host).
    async fn request(&self, method: Method) -> Got {
        let url = format!("http://{}/object", self.listen);
        send(
            method,
            &url,
            &[("host", "fleet.test"), ("authorization", "Bearer t")],
        )
        .await
    }

    async fn get(&self) -> Got {
        // No credentials on GET: a request with Authorization is not stored (RFC 9111 §3.5).
        let url = format!("http://{}/object", self.listen);
        send(Method::GET, &url, &[("host", "fleet.test")]).await
    }

    /// A `larder_redis_*_total` counter from `/metrics`.
    async fn counter(&self, name: &str) -> u64 {
        larder_testkit::metric(&self.admin, &format!("larder_redis_{name}_total")).await
    }

    /// Waits until this member has published `n` entries to Redis (the client can have the
    /// whole body before the proxy finishes storing it).
    async fn wait_stored(&self, n: u64) {
        for _ in 0..250 {
            if self.counter("writes_stored").await >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("member did not store {n} entries");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binaries_share_one_redis() {
    let mut redis = RedisServer::start();
    let origin =
        Origin::start(|_, _| async { respond(200, &[("cache-control", "max-age=60")], "shared") })
            .await;
    let a = Member::start(&origin, &redis);
    let b = Member::start(&origin, &redis);

    // Fetched through A, a hit on B: one origin fetch.
    let first = a.get().await;
    assert_eq!(
        (first.status.as_u16(), first.text().as_str()),
        (200, "shared")
    );
    a.wait_stored(1).await;
    let on_b = b.get().await;
    assert!(on_b.ours().hit, "{}", on_b.cache_status());
    assert_eq!(on_b.text(), "shared");
    assert_eq!(origin.hits(), 1);

    // PURGE through A removes the object for B.
    let purge = Method::from_bytes(b"PURGE").unwrap();
    assert_eq!(a.request(purge).await.status.as_u16(), 200);
    assert!(!b.get().await.ours().hit);
    assert_eq!(origin.hits(), 2);

    // Redis down: both keep answering from the origin, and count the failures.
    redis.stop();
    for member in [&a, &b] {
        let got = member.get().await;
        assert_eq!((got.status.as_u16(), got.text().as_str()), (200, "shared"));
        assert!(!got.ours().hit);
        assert!(member.counter("lookup_errors").await >= 1);
    }
    assert_eq!(origin.hits(), 4);

    // Redis back (empty): A stores again and B hits it.
    redis.restart();
    let stored_before = a.counter("writes_stored").await;
    let mut stored = false;
    for _ in 0..100 {
        a.get().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        if a.counter("writes_stored").await > stored_before {
            stored = true;
            break;
        }
    }
    assert!(stored, "caching did not resume after redis came back");
    // B finds Redis again on its own schedule (its breaker probes once per cooldown, its
    // connection reconnects): until then its lookups skip Redis and go to the origin. Once it
    // is back, it hits what A stored, without a fetch.
    let mut hit = false;
    for _ in 0..250 {
        let fetches = origin.hits();
        if b.get().await.ours().hit {
            assert_eq!(origin.hits(), fetches, "a hit fetched from the origin");
            hit = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        hit,
        "B did not hit the entry A stored after redis came back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_first_client_does_not_hold_back_a_fill_into_redis() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Above what the socket buffers between proxy and client can absorb, below the default
    // maximum object size.
    const TOTAL: usize = 8_000_000;
    let redis = RedisServer::start();
    let body = bytes::Bytes::from(
        (0..TOTAL)
            .map(|i| u8::try_from(i % 251).unwrap())
            .collect::<Vec<u8>>(),
    );
    let served = body.clone();
    let origin = Origin::start(move |_, _| {
        let body = served.clone();
        async move { respond(200, &[("cache-control", "max-age=60")], body) }
    })
    .await;
    let a = Member::start(&origin, &redis);

    // The client that causes the fill reads the head, then nothing.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stalled = socket.connect(a.listen.parse().unwrap()).await.unwrap();
    stalled
        .write_all(b"GET /object HTTP/1.1\r\nhost: fleet.test\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let head_end = loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        let n = stalled.read(&mut buf).await.unwrap();
        assert_ne!(n, 0);
        got.extend_from_slice(&buf[..n]);
    };
    // The fill reaches Redis at the origin's pace while that client still reads nothing.
    a.wait_stored(1).await;
    let hit = a.get().await;
    assert!(hit.ours().hit, "{}", hit.cache_status());
    assert_eq!(hit.body.as_ref().map(bytes::Bytes::len), Ok(TOTAL));
    assert_eq!(origin.hits(), 1);

    // The stalled client then gets the whole body, byte for byte.
    let mut received = got.split_off(head_end);
    while received.len() < TOTAL {
        let n = tokio::time::timeout(Duration::from_mins(1), stalled.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_ne!(n, 0, "the body ended after {} bytes", received.len());
        received.extend_from_slice(&buf[..n]);
    }
    assert!(received == body, "the stalled client's body differs");
}
