//! The `larder` binary itself.

use std::process::Command;
use std::time::Duration;

use larder_testkit::{LarderProcess, Origin, free_port, get, respond};

const BIN: &str = env!("CARGO_BIN_EXE_larder");

/// Starts the binary with `args` and waits for its `listening on` line.
pub(crate) fn spawn(args: &[&str]) -> LarderProcess {
    LarderProcess::start(BIN, args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_proxies_and_serves_admin_endpoints() {
    let origin =
        Origin::start(|_, _| async { respond(200, &[("cache-control", "max-age=60")], "hello") })
            .await;
    let (port, admin) = (free_port(), free_port());
    let listen = format!("127.0.0.1:{port}");
    let admin_addr = format!("127.0.0.1:{admin}");
    let _child = spawn(&[
        "--upstream",
        &origin.uri(),
        "--listen",
        &listen,
        "--admin",
        &admin_addr,
    ]);

    let got = get(&format!("http://{listen}/x")).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.text(), "hello");
    assert!(got.ours().name == "larder");

    let health = get(&format!("http://{admin_addr}/healthz")).await;
    assert_eq!(
        (health.status.as_u16(), health.text().as_str()),
        (200, "ok\n")
    );
    let metrics = get(&format!("http://{admin_addr}/metrics")).await;
    assert!(
        metrics.text().contains("larder_requests_total 1\n"),
        "{}",
        metrics.text()
    );
}

#[test]
fn bad_config_file_error_names_path_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("larder.toml");
    std::fs::write(
        &path,
        "upstream = \"http://127.0.0.1:1\"\n[cache]\nsize = \"lots\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("larder.toml"), "{err}");
    assert!(err.contains("line 3"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn missing_upstream_is_a_clear_error() {
    let out = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no upstream"), "{err}");
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_shuts_down_gracefully_on_sigterm() {
    let origin = Origin::start(|_, _| async { respond(200, &[], "x") }).await;
    let listen = format!("127.0.0.1:{}", free_port());
    let mut child = spawn(&["--upstream", &origin.uri(), "--listen", &listen]);
    assert_eq!(get(&format!("http://{listen}/")).await.text(), "x");
    let pid = child.pid().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let mut status = None;
    for _ in 0..100 {
        if let Some(s) = child.try_wait() {
            status = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(status.expect("still running after SIGTERM").success());
}

/// The binary with `args` in front of an origin setting a new cookie on every
/// `cache_control` response; returns what the second of two clients got and `/metrics`.
async fn second_cookie_client(cache_control: &'static str, args: &[&str]) -> (String, String) {
    let origin = Origin::start(move |_, n| async move {
        let mut resp = respond(200, &[("cache-control", cache_control)], "page");
        let cookie = format!("session={n}");
        resp.headers_mut()
            .insert("set-cookie", cookie.parse().unwrap());
        resp
    })
    .await;
    let (listen, admin) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let upstream = origin.uri();
    let mut all = vec![
        "--upstream",
        &upstream,
        "--listen",
        &listen,
        "--admin",
        &admin,
    ];
    all.extend_from_slice(args);
    let _child = spawn(&all);
    let url = format!("http://{listen}/login");
    let first = get(&url).await;
    assert_eq!(first.header("set-cookie"), Some("session=0"));
    let second = get(&url).await;
    let seen = format!(
        "{} set-cookie={:?}",
        second.cache_status(),
        second.header("set-cookie")
    );
    let metrics = get(&format!("http://{admin}/metrics")).await.text();
    (seen, metrics)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_cookie_policy_comes_from_the_flag_or_the_file() {
    // The default: no opt-in, not stored, counted under its reason.
    let (seen, metrics) = second_cookie_client("max-age=60", &[]).await;
    assert!(
        seen.contains("detail=SetCookie") && seen.ends_with("Some(\"session=1\")"),
        "{seen}"
    );
    assert!(
        metrics.contains("larder_cache_not_stored_total{reason=\"SetCookie\"} 2\n"),
        "{metrics}"
    );
    let (seen, _) = second_cookie_client("max-age=60", &["--set-cookie", "strip"]).await;
    assert!(
        seen.starts_with("larder; hit") && seen.ends_with("None"),
        "{seen}"
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("larder.toml");
    std::fs::write(&path, "[cache]\nset_cookie = \"never\"\n").unwrap();
    let path = path.to_str().unwrap();
    let (seen, _) = second_cookie_client("public, max-age=60", &["--config", path]).await;
    assert!(seen.contains("detail=SetCookie"), "{seen}");
    // A flag overrides the file.
    let (seen, _) = second_cookie_client(
        "public, max-age=60",
        &["--config", path, "--set-cookie", "opt-in"],
    )
    .await;
    assert!(
        seen.starts_with("larder; hit") && seen.ends_with("None"),
        "{seen}"
    );

    let out = Command::new(BIN)
        .args(["--upstream", "http://127.0.0.1:1", "--set-cookie", "replay"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("never, opt-in or strip"), "{err}");
}
