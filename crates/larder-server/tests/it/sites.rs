//! Several sites on one listener, forwarding fields, and reloads on SIGHUP.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http::Method;
use larder_testkit::{Got, LarderProcess, Origin, client, free_port, respond, send_with};

use crate::binary::spawn;

/// An origin answering every path with `body`, fresh for a minute.
async fn origin(body: &'static str) -> Origin {
    Origin::start(move |_, _| async move { respond(200, &[("cache-control", "max-age=60")], body) })
        .await
}

/// A GET of `path` on `listen` for `host`, on a new connection.
async fn get_for(listen: &str, host: &str, path: &str) -> Got {
    send_with(
        &client(),
        Method::GET,
        &format!("http://{listen}{path}"),
        &[("host", host)],
    )
    .await
}

/// Two sites to `a` and `b`; `a_name` is site a's Cache-Status name.
fn two_sites(listen: &str, a: &Origin, b: &Origin, a_name: &str, unknown: u16) -> String {
    format!(
        "listen = \"{listen}\"\nunknown_host = {unknown}\nshutdown_grace = \"2s\"\n\
         [cache]\nsize = \"16MiB\"\nlock_timeout = \"2s\"\n\
         [[site]]\nhosts = [\"a.example\", \"*.a.example\"]\nupstream = \"{}\"\n\
         cache_status_name = \"{a_name}\"\n\
         [[site]]\nhosts = [\"B.example\"]\nupstream = \"{}\"\n",
        a.uri(),
        b.uri()
    )
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

fn hangup(child: &LarderProcess) {
    let pid = child.pid().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
}

/// Waits up to 5 s for a log line containing `text`, counting from line `from`.
fn wait_for_log(child: &LarderProcess, from: usize, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if child.log().iter().skip(from).any(|l| l.contains(text)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("no {text:?} in {:?}", child.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sites_reach_their_own_origin_and_never_share_entries() {
    let (a, b) = (origin("from a").await, origin("from b").await);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("larder.toml");
    let listen = format!("127.0.0.1:{}", free_port());
    let admin = format!("127.0.0.1:{}", free_port());
    write(&path, &two_sites(&listen, &a, &b, "edge-a", 421));
    let _child = spawn(&["--config", path.to_str().unwrap(), "--admin", &admin]);

    let first_a = get_for(&listen, "a.example", "/same").await;
    assert_eq!(
        (first_a.status.as_u16(), first_a.text().as_str()),
        (200, "from a")
    );
    assert_eq!(first_a.ours().name, "edge-a");
    assert!(!first_a.ours().hit);
    // The same path on the other site is a miss that goes to b's origin.
    let first_b = get_for(&listen, "b.example:8080", "/same").await;
    assert_eq!(
        (first_b.status.as_u16(), first_b.text().as_str()),
        (200, "from b")
    );
    assert_eq!(first_b.ours().name, "larder");
    assert!(!first_b.ours().hit, "no cross-site hit");
    // Each is then a hit of its own site.
    let again_a = get_for(&listen, "A.EXAMPLE", "/same").await;
    assert_eq!(again_a.text(), "from a");
    assert!(again_a.ours().hit);
    // The port is ignored for routing, but the key keeps the host as asked.
    let again_b = get_for(&listen, "b.example:8080", "/same").await;
    assert_eq!(again_b.text(), "from b");
    assert!(again_b.ours().hit);
    // A wildcard name is site a's, and a name of its own in the cache.
    let wild = get_for(&listen, "www.a.example", "/same").await;
    assert_eq!(wild.text(), "from a");
    assert!(
        !wild.ours().hit,
        "www.a.example is another key than a.example"
    );
    assert_eq!((a.hits(), b.hits()), (2, 1));

    // An unknown host reaches no origin.
    let unknown = get_for(&listen, "c.example", "/same").await;
    assert_eq!(unknown.status.as_u16(), 421);
    let apex = get_for(&listen, "example", "/same").await;
    assert_eq!(apex.status.as_u16(), 421);
    assert_eq!((a.hits(), b.hits()), (2, 1));

    // One set of counters for both sites: the five requests that reached a site.
    let metrics = larder_testkit::get(&format!("http://{admin}/metrics"))
        .await
        .text();
    assert!(metrics.contains("larder_requests_total 5\n"), "{metrics}");
    assert_eq!(
        metrics.matches("\nlarder_requests_total ").count(),
        1,
        "one series, valid Prometheus text: {metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_host_can_be_404() {
    let (a, b) = (origin("from a").await, origin("from b").await);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("larder.toml");
    let listen = format!("127.0.0.1:{}", free_port());
    write(&path, &two_sites(&listen, &a, &b, "edge-a", 404));
    let _child = spawn(&["--config", path.to_str().unwrap()]);
    let got = get_for(&listen, "elsewhere.example", "/").await;
    assert_eq!(got.status.as_u16(), 404);
    assert_eq!(a.hits() + b.hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_fields_reach_the_origin() {
    let a =
        Origin::start(|_, _| async { respond(200, &[("cache-control", "no-store")], "a") }).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("larder.toml");
    let listen = format!("127.0.0.1:{}", free_port());
    write(
        &path,
        &format!(
            "listen = \"{listen}\"\n[forwarding]\nx_forwarded_for = true\nforwarded = true\n\
             x_forwarded_proto = true\n[[site]]\nhosts = [\"a.example\"]\nupstream = \"{}\"\n\
             host = \"origin.internal\"\n",
            a.uri()
        ),
    );
    let _child = spawn(&["--config", path.to_str().unwrap()]);
    let got = get_for(&listen, "a.example", "/f").await;
    assert_eq!(got.status.as_u16(), 200);
    let seen = a.last_request();
    let field = |name| larder_testkit::field(&seen, name);
    assert!(field("x-forwarded-for").contains("127.0.0.1"), "{seen:?}");
    assert_eq!(field("x-forwarded-proto"), "http");
    let forwarded = field("forwarded");
    assert!(
        forwarded.contains("127.0.0.1") && forwarded.contains("proto=http"),
        "{forwarded}"
    );
    assert_eq!(field("host"), "origin.internal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_load_fails_no_request_and_keeps_the_cache() {
    let (a, b) = (origin("from a").await, origin("from b").await);
    let a2 = origin("from a2").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("larder.toml");
    let listen = format!("127.0.0.1:{}", free_port());
    write(&path, &two_sites(&listen, &a, &b, "edge-a", 421));
    let child = spawn(&["--config", path.to_str().unwrap()]);

    // Cached before the reload: /kept on site b.
    assert!(!get_for(&listen, "b.example", "/kept").await.ours().hit);
    assert!(get_for(&listen, "b.example", "/kept").await.ours().hit);

    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let mut load = Vec::new();
    for task in 0..4 {
        let (stop, done, listen) = (Arc::clone(&stop), Arc::clone(&done), listen.clone());
        load.push(tokio::spawn(async move {
            let http = client();
            let mut failures = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let host = if n % 2 == 0 { "a.example" } else { "b.example" };
                let url = format!("http://{listen}/load/{task}/{}", n % 5);
                let got = send_with(&http, Method::GET, &url, &[("host", host)]).await;
                let ok = got.status.as_u16() == 200 && got.body.is_ok();
                if !ok {
                    failures.push(format!("{host}: {} {:?}", got.status, got.body));
                }
                done.fetch_add(1, Ordering::Relaxed);
                n += 1;
            }
            failures
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Site a moves to another origin under another Cache-Status name.
    let before = child.log().len();
    write(&path, &two_sites(&listen, &a2, &b, "edge-a2", 421));
    hangup(&child);
    wait_for_log(&child, before, "configuration reloaded");
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    for task in load {
        let failures = task.await.unwrap();
        assert!(failures.is_empty(), "{failures:?}");
    }
    assert!(done.load(Ordering::Relaxed) > 20, "the load ran");

    let moved = get_for(&listen, "a.example", "/new-path").await;
    assert_eq!(moved.text(), "from a2");
    assert_eq!(moved.ours().name, "edge-a2");
    let kept = get_for(&listen, "b.example", "/kept").await;
    assert!(kept.ours().hit, "the cache survives a reload");
    assert_eq!(b.hits_for("/kept"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_file_on_reload_keeps_the_running_config() {
    let (a, b) = (origin("from a").await, origin("from b").await);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("larder.toml");
    let listen = format!("127.0.0.1:{}", free_port());
    write(&path, &two_sites(&listen, &a, &b, "edge-a", 421));
    let child = spawn(&["--config", path.to_str().unwrap()]);

    for bad in [
        "[[site]]\nhosts = [\"a.example\"]\n",
        "[[site]]\nhosts = [\"a.example\"]\nupstream = \"ftp://x\"\n",
        "[cache]\nlock_timeout = \"5 fortnights\"\n",
    ] {
        let before = child.log().len();
        write(&path, bad);
        hangup(&child);
        wait_for_log(&child, before, "configuration rejected");
        let got = get_for(&listen, "a.example", "/x").await;
        assert_eq!((got.status.as_u16(), got.text().as_str()), (200, "from a"));
        assert_eq!(got.ours().name, "edge-a");
        assert_eq!(get_for(&listen, "b.example", "/x").await.text(), "from b");
    }
    assert!(
        child
            .log()
            .iter()
            .any(|l| l.contains(" ERROR ") && l.contains("rejected")),
        "{:?}",
        child.log()
    );
}
