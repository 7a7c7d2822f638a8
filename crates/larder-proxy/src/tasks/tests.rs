use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody};
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tower::{Layer, ServiceExt};

use super::*;
use crate::config::EvictionPolicy;
use crate::{CacheConfig, CacheLayer, DefaultHooks, ProxyBody};

/// Counts the tasks it is handed, then runs them on Tokio.
#[derive(Default)]
struct Counting(AtomicUsize);

impl Spawn for Counting {
    fn spawn(&self, task: BoxTask) {
        self.0.fetch_add(1, Ordering::SeqCst);
        drop(tokio::spawn(task));
    }
}

type Chunks = Arc<Mutex<Option<mpsc::Receiver<Bytes>>>>;

/// An origin whose first answer's body is whatever is sent on the returned channel (ending
/// when it is dropped); later answers have an empty body. Every answer is cacheable with
/// `cache_control`.
fn origin(
    cache_control: &'static str,
) -> (
    impl tower::Service<
        Request<ProxyBody>,
        Response = Response<ProxyBody>,
        Error = Infallible,
        Future: Send,
    > + Clone
    + Send
    + Sync
    + 'static,
    mpsc::Sender<Bytes>,
) {
    let (tx, rx) = mpsc::channel(4);
    let chunks: Chunks = Arc::new(Mutex::new(Some(rx)));
    let svc = tower::service_fn(move |_req: Request<ProxyBody>| {
        let rx = chunks.lock().take();
        async move {
            let body = match rx {
                Some(rx) => {
                    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                        let data = rx.recv().await?;
                        Some((Ok::<_, Infallible>(Frame::data(data)), rx))
                    });
                    crate::body::boxed(StreamBody::new(stream))
                }
                None => crate::body::boxed(Full::new(Bytes::from_static(b"later"))),
            };
            Ok::<_, Infallible>(
                Response::builder()
                    .header("cache-control", cache_control)
                    .body(body)
                    .expect("valid response"),
            )
        }
    });
    (svc, tx)
}

fn get() -> Request<Full<Bytes>> {
    Request::get("/slow")
        .header("host", "example.com")
        .body(Full::default())
        .expect("valid request")
}

fn cache_status(resp: &Response<ProxyBody>) -> String {
    resp.headers()["cache-status"]
        .to_str()
        .expect("ascii")
        .to_owned()
}

fn layer(spawner: Arc<dyn Spawn>) -> CacheLayer {
    CacheLayer::with_spawner(
        CacheConfig::in_memory(1 << 20, EvictionPolicy::Lru),
        DefaultHooks,
        spawner,
    )
}

#[tokio::test]
async fn drain_waits_for_a_running_fill() {
    let spawner = Arc::new(Counting::default());
    let layer = layer(spawner.clone());
    let (origin, body_tx) = origin("max-age=60");
    let svc = layer.layer(origin);
    let resp = svc.clone().oneshot(get()).await.expect("infallible");
    assert!(cache_status(&resp).contains("fwd=uri-miss"));
    // The client leaves at once; the fill goes on without it.
    drop(resp);
    body_tx
        .send(Bytes::from_static(b"part "))
        .await
        .expect("fill reads");
    assert_eq!(layer.metrics().background_tasks.get(), 1);
    assert!(
        layer
            .render_metrics()
            .contains("\nlarder_background_tasks 1\n")
    );

    let drain = tokio::spawn({
        let layer = layer.clone();
        async move { layer.drain(Duration::from_secs(30)).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!drain.is_finished(), "the drain waits for the fill");
    body_tx
        .send(Bytes::from_static(b"whole"))
        .await
        .expect("fill reads");
    drop(body_tx);
    let report = drain.await.expect("drain ran");
    assert_eq!(
        report,
        DrainReport {
            in_flight: 1,
            cancelled: 0,
            left: 0
        }
    );
    assert_eq!(layer.metrics().background_tasks.get(), 0);
    assert_eq!(
        spawner.0.load(Ordering::SeqCst),
        1,
        "the fill ran on the spawner"
    );
    // The drained fill stored the whole body.
    let resp = svc.oneshot(get()).await.expect("infallible");
    assert!(
        cache_status(&resp).contains("hit"),
        "{}",
        cache_status(&resp)
    );
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(body, "part whole");
}

#[tokio::test]
async fn drain_cancels_a_fill_past_the_grace_period() {
    let layer = layer(Arc::new(TokioSpawner));
    let (origin, body_tx) = origin("max-age=60");
    let svc = layer.layer(origin);
    drop(svc.clone().oneshot(get()).await.expect("infallible"));
    body_tx
        .send(Bytes::from_static(b"part"))
        .await
        .expect("fill reads");
    let report = layer.drain(Duration::from_millis(20)).await;
    assert_eq!(
        report,
        DrainReport {
            in_flight: 1,
            cancelled: 1,
            left: 0
        }
    );
    assert_eq!(layer.metrics().background_tasks.get(), 0);
    assert_eq!(layer.metrics().background_tasks_cancelled.get(), 1);
    assert!(
        layer
            .render_metrics()
            .contains("\nlarder_background_tasks_cancelled_total 1\n")
    );
    // The cancelled fill stored nothing: the next request goes upstream.
    let resp = svc.oneshot(get()).await.expect("infallible");
    assert!(
        cache_status(&resp).contains("fwd="),
        "{}",
        cache_status(&resp)
    );
}

#[tokio::test]
async fn a_custom_spawner_sees_fills_and_refreshes() {
    let spawner = Arc::new(Counting::default());
    let layer = layer(spawner.clone());
    let (origin, body_tx) = origin("max-age=0, stale-while-revalidate=60");
    drop(body_tx);
    let svc = layer.layer(origin);
    let first = svc.clone().oneshot(get()).await.expect("infallible");
    first.into_body().collect().await.expect("body");
    assert_eq!(layer.drain(Duration::from_secs(5)).await.cancelled, 0);
    assert_eq!(spawner.0.load(Ordering::SeqCst), 1, "one fill");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Stale within stale-while-revalidate: served at once, refreshed in the background.
    let stale = svc.oneshot(get()).await.expect("infallible");
    assert!(
        cache_status(&stale).contains("stale-while-revalidate"),
        "{}",
        cache_status(&stale)
    );
    let report = layer.drain(Duration::from_secs(5)).await;
    assert_eq!(report.cancelled, 0);
    // The refresh, and the fill it started.
    assert_eq!(spawner.0.load(Ordering::SeqCst), 3);
    assert_eq!(layer.metrics().background_refreshes.get(), 1);
    assert_eq!(layer.metrics().background_tasks.get(), 0);
}
