//! The binary's TLS listener: two certificates chosen by SNI in front of two sites, and
//! certificates replaced by a reload.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use larder_testkit::tls::{TestCa, TestCert};
use larder_testkit::{LarderProcess, Origin, free_port, respond};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};

use crate::binary::spawn;

/// What a TLS GET saw: the status, the body, the `Cache-Status` and the server's leaf
/// certificate.
struct TlsGot {
    status: u16,
    body: String,
    cache_status: String,
    leaf: CertificateDer<'static>,
}

/// A GET of `path` for `host` over TLS (HTTP/1.1, SNI `host`) to `addr`, trusting `ca` only.
async fn tls_get(addr: &str, host: &str, ca: &TestCa, path: &str) -> TlsGot {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.cert_pem().as_bytes()).unwrap())
        .unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = connector
        .connect(ServerName::try_from(host.to_owned()).unwrap(), tcp)
        .await
        .unwrap();
    let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get(path)
        .header("host", host)
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let cache_status = resp
        .headers()
        .get("cache-status")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    TlsGot {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
        cache_status,
        leaf,
    }
}

fn der(cert: &TestCert) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(cert.cert_pem.as_bytes()).unwrap()
}

/// A TLS listener with `a` (the default) and `b`, and two sites.
fn config(listen: &str, a: &TestCert, b: &TestCert, oa: &Origin, ob: &Origin) -> String {
    let p = |path: &Path| path.display().to_string();
    format!(
        "[[listener]]\naddress = \"{listen}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n\
         certificates = [{{ cert = \"{}\", key = \"{}\" }}]\n\
         [[site]]\nhosts = [\"a.example\"]\nupstream = \"{}\"\n\
         [[site]]\nhosts = [\"b.example\"]\nupstream = \"{}\"\ncache_status_name = \"edge-b\"\n",
        p(&a.cert_file),
        p(&a.key_file),
        p(&b.cert_file),
        p(&b.key_file),
        oa.uri(),
        ob.uri()
    )
}

async fn origin(body: &'static str) -> Origin {
    Origin::start(move |_, _| async move { respond(200, &[("cache-control", "max-age=60")], body) })
        .await
}

fn hangup_and_wait(child: &LarderProcess, text: &str) {
    let before = child.log().len();
    let pid = child.pid().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if child.log().iter().skip(before).any(|l| l.contains(text)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("no {text:?} in {:?}", child.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_listener_picks_the_certificate_by_sni_and_reloads_it() {
    let ca = TestCa::new("larder test CA");
    let (a, b) = (ca.leaf(&["a.example"]), ca.leaf(&["b.example"]));
    let (oa, ob) = (origin("from a").await, origin("from b").await);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("larder.toml");
    let listen = format!("127.0.0.1:{}", free_port());
    std::fs::write(&path, config(&listen, &a, &b, &oa, &ob)).unwrap();
    let child = spawn(&["--config", path.to_str().unwrap()]);

    let got = tls_get(&listen, "a.example", &ca, "/x").await;
    assert_eq!((got.status, got.body.as_str()), (200, "from a"));
    assert_eq!(got.leaf, der(&a));
    let got = tls_get(&listen, "b.example", &ca, "/x").await;
    assert_eq!((got.status, got.body.as_str()), (200, "from b"));
    assert_eq!(got.leaf, der(&b));
    assert!(
        got.cache_status.starts_with("edge-b"),
        "{}",
        got.cache_status
    );
    let hit = tls_get(&listen, "b.example", &ca, "/x").await;
    assert!(hit.cache_status.contains("hit"), "{}", hit.cache_status);

    // A new certificate for b.example, loaded by a reload, for new handshakes.
    let b2 = ca.leaf(&["b.example", "www.b.example"]);
    std::fs::write(&path, config(&listen, &a, &b2, &oa, &ob)).unwrap();
    hangup_and_wait(&child, "configuration reloaded");
    let got = tls_get(&listen, "b.example", &ca, "/x").await;
    assert_eq!(got.leaf, der(&b2));
    assert!(
        got.cache_status.contains("hit"),
        "the cache survives: {}",
        got.cache_status
    );

    // A key file that does not load is refused; the running certificates stay.
    let broken = dir.path().join("broken.key");
    std::fs::write(&broken, "not a key").unwrap();
    let mut bad = b2.clone();
    bad.key_file = broken;
    std::fs::write(&path, config(&listen, &a, &bad, &oa, &ob)).unwrap();
    hangup_and_wait(&child, "configuration rejected");
    let got = tls_get(&listen, "b.example", &ca, "/x").await;
    assert_eq!(got.leaf, der(&b2));
    assert_eq!(got.status, 200);
}

/// `--check` loads what a start would (the file, the certificates, the CA files) without
/// binding or building storage, and says what is wrong.
#[test]
fn check_flag_loads_certificates_and_ca_files() {
    let ca = TestCa::new("check CA");
    let a = ca.leaf(&["a.example"]);
    let dir = tempfile::tempdir().unwrap();
    let run = |text: String| {
        let path = dir.path().join("larder.toml");
        std::fs::write(&path, text).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_larder"))
            .arg("--config")
            .arg(&path)
            .arg("--check")
            .output()
            .unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), said)
    };
    // The listener address is in use by nothing, yet nothing is bound: a live proxy's own
    // address works too.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listener = |cert: &std::path::Path| {
        format!(
            "[[listener]]\naddress = \"{}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
            busy.local_addr().unwrap(),
            cert.display(),
            a.key_file.display()
        )
    };
    let site = |ca_file: &std::path::Path| {
        format!(
            "[[site]]\nhosts = [\"a.example\"]\nupstream = \"https://127.0.0.1:1\"\nca_file = \"{}\"\n",
            ca_file.display()
        )
    };
    let (ok, said) = run(listener(&a.cert_file) + &site(&ca.cert_file()));
    assert!(ok, "{said}");
    assert!(said.contains("configuration ok"), "{said}");

    let missing = dir.path().join("missing.pem");
    let (ok, said) = run(listener(&missing) + &site(&ca.cert_file()));
    assert!(!ok && said.contains("missing.pem"), "{said}");

    let (ok, said) = run(listener(&a.cert_file) + &site(&missing));
    assert!(!ok && said.contains("missing.pem"), "{said}");
}
