//! Scenario 1: a thundering herd on one cold key.

use std::time::Duration;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http::{Method, Request};
use larder::proxy::{ProxyBody, Upstream};
use tokio::sync::Notify;
use tower::ServiceExt;

use larder_testkit::{Got, Origin, Proxy, client, pattern, respond, send_with};

use crate::config;

const HERD: usize = 1000;

/// Sends `HERD` concurrent GETs for `path` (over as many connections as the pool opens).
async fn herd(proxy: &Proxy, path: &str) -> Vec<Got> {
    let client = client();
    let url = proxy.url(path);
    let tasks: Vec<_> = (0..HERD)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move { send_with(&client, Method::GET, &url, &[]).await })
        })
        .collect();
    let mut out = Vec::with_capacity(HERD);
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// Opens `gate` once `HERD - 1` requests wait on the cache lock (or after 20 s), so the first
/// fetch answers only when the whole herd is queued behind it, however loaded the machine.
fn open_when_herd_waits(proxy: &Proxy, gate: Arc<Notify>) {
    let metrics = Arc::clone(proxy.layer.metrics());
    tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while metrics.lock_waits.get() < (HERD - 1) as u64 && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        gate.notify_one();
    });
}

fn body() -> Bytes {
    pattern(7, 32 * 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn herd_on_a_cold_key_makes_one_upstream_fetch() {
    let origin = Origin::per_path(|_, _| async {
        // Slow enough that the whole herd arrives while the first fetch is in flight.
        tokio::time::sleep(Duration::from_millis(300)).await;
        respond(200, &[("cache-control", "max-age=60")], body())
    })
    .await;
    let proxy = Proxy::start(&origin, config(Duration::from_secs(5))).await;
    let got = herd(&proxy, "/cold").await;
    let fetches = origin.hits_for("/cold");
    println!("herd: {HERD} requests, {fetches} upstream fetch(es)");
    assert_eq!(fetches, 1, "one upstream fetch for the whole herd");
    assert_eq!(got.len(), HERD);
    for g in &got {
        assert_eq!(g.status, 200);
        assert_eq!(g.bytes(), &body(), "every client gets the same full body");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn herd_on_a_slow_upstream_is_bounded() {
    // The origin answers after 1.5 s; the lock's age and wait timeouts are 300 ms, so waiters
    // give up on the first fill and go upstream themselves.
    let origin = Origin::per_path(|_, n| async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        respond(
            200,
            &[("cache-control", "max-age=60"), ("x-fetch", &n.to_string())],
            body(),
        )
    })
    .await;
    let proxy = Proxy::start(&origin, config(Duration::from_millis(300))).await;
    let started = std::time::Instant::now();
    let got = herd(&proxy, "/slow").await;
    let fetches = origin.hits_for("/slow");
    println!(
        "slow herd: {HERD} requests, {fetches} upstream fetches, {:?}",
        started.elapsed()
    );
    assert_eq!(got.len(), HERD);
    for g in &got {
        assert_eq!(g.status, 200, "{:?}", g.headers);
        assert_eq!(g.bytes(), &body());
    }
    assert!((1..=HERD).contains(&fetches), "{fetches}");
    // Once stored, the key is a hit.
    let after = send_with(&client(), Method::GET, &proxy.url("/slow"), &[]).await;
    assert!(after.ours().hit, "{}", after.cache_status());
    assert_eq!(origin.hits_for("/slow"), fetches);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn herd_after_a_server_error_takes_turns() {
    // The first fetch answers 503 without freshness (not storable) once the whole herd waits
    // on it; later fetches succeed after 300 ms.
    let gate = Arc::new(Notify::new());
    let g = Arc::clone(&gate);
    let origin = Origin::per_path(move |_, n| {
        let gate = Arc::clone(&g);
        async move {
            if n == 0 {
                gate.notified().await;
                respond(503, &[], "down")
            } else {
                tokio::time::sleep(Duration::from_millis(300)).await;
                respond(200, &[("cache-control", "max-age=60")], body())
            }
        }
    })
    .await;
    let proxy = Proxy::start(&origin, config(Duration::from_secs(30))).await;
    open_when_herd_waits(&proxy, gate);
    let got = herd(&proxy, "/flaky").await;
    let fetches = origin.hits_for("/flaky");
    let failed = got.iter().filter(|g| g.status == 503).count();
    println!(
        "uncacheable-first herd: {HERD} requests, {fetches} upstream fetches, {failed} saw 503"
    );
    assert_eq!(got.len(), HERD);
    for g in got.iter().filter(|g| g.status != 503) {
        assert_eq!(g.status, 200);
        assert_eq!(g.bytes(), &body());
    }
    assert_eq!(failed, 1, "only the lock holder sees the origin's 503");
    // The 503 releases the lock as a transient error: one waiter takes it and fetches again,
    // and the rest of the herd is served from what that second fetch stored.
    assert_eq!(
        fetches, 2,
        "the herd reaches the origin twice, not once per waiter"
    );
}

/// An inner service whose first call fails once `gate` opens (a transport error before any
/// response head); later calls go to the origin.
#[derive(Clone)]
struct FailFirst {
    upstream: Upstream,
    calls: Arc<AtomicUsize>,
    gate: Arc<Notify>,
}

impl tower::Service<Request<ProxyBody>> for FailFirst {
    type Response = http::Response<hyper::body::Incoming>;
    type Error = larder::proxy::BoxError;
    type Future =
        std::pin::Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<ProxyBody>) -> Self::Future {
        let first = self.calls.fetch_add(1, Ordering::SeqCst) == 0;
        let (upstream, gate) = (self.upstream.clone(), Arc::clone(&self.gate));
        Box::pin(async move {
            if first {
                gate.notified().await;
                return Err("connection reset before the response head".into());
            }
            upstream.oneshot(req).await
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn herd_after_a_failed_first_fetch_does_not_stampede() {
    let origin = Origin::per_path(|_, _| async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        respond(200, &[("cache-control", "max-age=60")], body())
    })
    .await;
    let inner = FailFirst {
        upstream: Upstream::new(&origin.uri()).unwrap(),
        calls: Arc::new(AtomicUsize::new(0)),
        gate: Arc::new(Notify::new()),
    };
    let gate = Arc::clone(&inner.gate);
    let proxy = Proxy::with_inner(inner, config(Duration::from_secs(30))).await;
    open_when_herd_waits(&proxy, gate);
    let got = herd(&proxy, "/flaky").await;
    let fetches = origin.hits_for("/flaky");
    let failed = got.iter().filter(|g| g.status == 502).count();
    println!(
        "failing-first herd: {HERD} requests, 1 failed fetch + {fetches} upstream fetches, \
         {failed} saw 502"
    );
    assert_eq!(got.len(), HERD);
    for g in got.iter().filter(|g| g.status != 502) {
        assert_eq!(g.status, 200);
        assert_eq!(g.bytes(), &body());
    }
    assert_eq!(failed, 1, "only the lock holder sees the failure");
    assert!(
        fetches < HERD / 10,
        "{fetches} fetches: the waiters stampeded the origin"
    );
}
