//! Scenario 4: many concurrent keep-alive connections.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
use tokio::sync::{Barrier, Semaphore};

use larder_testkit::{Origin, Proxy, respond};

use crate::{HEAVY, config};

/// Connections by default; `LARDER_RELIABILITY_CONNECTIONS` raises it (docs/reliability.md
/// records a 10,000 run). The default keeps the test within seconds on two debug-build cores.
const DEFAULT_CONNECTIONS: usize = 2_000;
/// Descriptors kept for everything but the test's connections.
const SPARE_FDS: u64 = 512;

/// Raises the soft descriptor limit to the hard one; returns how many connections fit (each
/// uses two descriptors in this process: the client's and the proxy's end).
fn raise_fd_limit() -> usize {
    let Rlimit { current, maximum } = getrlimit(Resource::Nofile);
    let wanted = maximum.unwrap_or(1 << 20);
    let set = setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(wanted),
            maximum,
        },
    );
    let limit = if set.is_ok() {
        wanted
    } else {
        current.unwrap_or(1024)
    };
    let fit = usize::try_from(limit.saturating_sub(SPARE_FDS) / 2).unwrap_or(usize::MAX);
    println!(
        "load: RLIMIT_NOFILE {current:?} -> {limit} (hard {maximum:?}); {fit} connections fit"
    );
    let target = std::env::var("LARDER_RELIABILITY_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CONNECTIONS);
    fit.min(target)
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

async fn request(sender: &mut Sender, path: &str, n: usize) -> Result<(), String> {
    sender
        .ready()
        .await
        .map_err(|e| format!("ready {n}: {e}"))?;
    let req = Request::get(path)
        .header("host", "load.test")
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("request {n}: {e}"))?;
    if resp.status() != 200 {
        return Err(format!("request {n}: status {}", resp.status()));
    }
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    if body.to_bytes() != format!("body of {path}") {
        return Err(format!("request {n}: wrong body"));
    }
    Ok(())
}

async fn open(
    addr: std::net::SocketAddr,
    path: &str,
    connect: &Semaphore,
) -> Result<Sender, String> {
    let permit = connect.acquire().await.map_err(|e| e.to_string())?;
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    drop(permit);
    tokio::spawn(conn);
    request(&mut sender, path, 1).await?;
    Ok(sender)
}

/// One connection: opens it and sends a request, waits until every connection is open (and
/// idle, kept alive), then sends two more requests on it.
async fn one_connection(
    addr: std::net::SocketAddr,
    i: usize,
    connect: Arc<Semaphore>,
    all_open: Arc<Barrier>,
) -> Result<(), String> {
    let path = format!("/k{}", i % 64);
    let opened = open(addr, &path, &connect).await;
    all_open.wait().await;
    let mut sender = opened?;
    request(&mut sender, &path, 2).await?;
    request(&mut sender, &path, 3).await
}

#[test]
fn many_keep_alive_connections_are_served() {
    let _heavy = HEAVY
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let n = raise_fd_limit();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let origin = Origin::per_path(|parts, _| async move {
            let body = format!("body of {}", parts.uri.path());
            respond(200, &[("cache-control", "max-age=60")], body)
        })
        .await;
        let proxy = Proxy::start(&origin, config(Duration::from_secs(5))).await;
        let connect = Arc::new(Semaphore::new(256));
        let all_open = Arc::new(Barrier::new(n));
        let failures = Arc::new(AtomicUsize::new(0));
        let started = std::time::Instant::now();
        let tasks: Vec<_> = (0..n)
            .map(|i| {
                let (connect, all_open) = (Arc::clone(&connect), Arc::clone(&all_open));
                let failures = Arc::clone(&failures);
                let addr = proxy.addr;
                tokio::spawn(async move {
                    let r = one_connection(addr, i, connect, Arc::clone(&all_open)).await;
                    if let Err(e) = r
                        && failures.fetch_add(1, Ordering::SeqCst) < 5
                    {
                        eprintln!("connection {i}: {e}");
                    }
                })
            })
            .collect();
        let all = async {
            for t in tasks {
                t.await.unwrap();
            }
        };
        tokio::time::timeout(Duration::from_mins(1), all)
            .await
            .expect("every connection finished within a minute");
        let failed = failures.load(Ordering::SeqCst);
        println!(
            "load: {n} concurrent keep-alive connections x 3 requests in {:?}, {failed} failed, \
             {} origin fetches",
            started.elapsed(),
            origin.hits()
        );
        assert_eq!(failed, 0);
        assert!(origin.hits() <= 64 * 2, "the proxy answered from its cache");
    });
}
