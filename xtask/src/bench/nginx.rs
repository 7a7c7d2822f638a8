//! nginx `proxy_cache`, the disk-hit peer: a configuration as a careful operator would write it
//! for a caching reverse proxy, started by the bench in a temporary directory and stopped by its
//! process id.
//!
//! nginx runs in the foreground (`daemon off`) with a master and one worker process, both pinned
//! to the measured server's core like `larder`; its pid file, error log, temporary files and
//! cache all live in the run's directory, so nothing of the system's nginx (its configuration,
//! `/var/log/nginx`, `/var/lib/nginx`) is read or written.

use std::path::Path;
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::load::{Runner, SERVER_CORE};
use super::process::{self, Server};

/// The cache zone's name in the configuration.
const ZONE: &str = "larder_bench";

/// A running nginx.
pub(super) struct Nginx {
    /// The master process (the `timeout` wrapper's child), stopped when dropped.
    pub(super) server: Server,
    pub(super) port: u16,
}

/// The configuration: `dir` is the run's directory, `listen` and `origin` are `host:port`.
///
/// The choices beyond nginx's defaults, and why:
/// - `keepalive_requests 100000`: nginx closes a client connection after 1 000 requests by
///   default, larder never does; the default would add reconnections to nginx's figures only.
/// - `open_file_cache`: keeps the cache files' descriptors open between hits (the cache file is
///   opened through it), as an operator serving hot objects from disk sets it.
/// - `sendfile on` and `tcp_nodelay on`: a hit's body goes from the page cache to the socket
///   without a copy through user space, and a response's last segment leaves at once.
/// - `tcp_nopush off` (nginx's default, though Debian's packaged configuration turns it on): with
///   it on, a 64 KiB hit waited about 40 ms for a delayed acknowledgement on loopback (1.6 k
///   against 12.3 k requests per second with it off, on the same machine and minute), a
///   stall an operator measuring would remove.
/// - the upstream `keepalive` pool with `proxy_http_version 1.1` and an empty `Connection`:
///   misses reuse connections to the origin, as larder's pool does.
/// - `proxy_cache_lock on`: one fill per object, as larder's cache lock.
/// - `use_temp_path=off`: a response is written beside its final place and renamed, not copied
///   across directories.
pub(super) fn config(dir: &str, listen: &str, origin: &str) -> String {
    config_with(dir, listen, origin, None)
}

/// A TLS listener beside the plain one: its `host:port` and the PEM files.
pub(super) struct TlsListen<'a> {
    pub(super) listen: &'a str,
    pub(super) cert: &'a str,
    pub(super) key: &'a str,
}

/// [`config`] with, when `tls` is given, a second listener serving the same cache over TLS
/// with HTTP/2 offered in ALPN, set up as an operator terminating TLS on nginx would:
/// - `ssl_protocols TLSv1.2 TLSv1.3` (larder's set) and nginx's default ciphers;
/// - `ssl_session_cache shared:SSL:10m` with a one-hour timeout: resumed sessions, though wrk
///   and h2load keep their connections for the whole run, so handshakes are not what is
///   measured;
/// - `listen … ssl http2`: the spelling nginx 1.22 (Debian 12) understands; later versions
///   still accept it with a warning.
pub(super) fn config_with(
    dir: &str,
    listen: &str,
    origin: &str,
    tls: Option<&TlsListen<'_>>,
) -> String {
    let tls = tls.map_or_else(String::new, |t| {
        format!(
            "
        listen {} ssl http2;
        ssl_certificate {};
        ssl_certificate_key {};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:SSL:10m;
        ssl_session_timeout 1h;",
            t.listen, t.cert, t.key
        )
    });
    format!(
        "\
daemon off;
master_process on;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;

events {{
    worker_connections 1024;
}}

http {{
    access_log off;
    sendfile on;
    tcp_nopush off;
    tcp_nodelay on;
    keepalive_timeout 65s;
    keepalive_requests 100000;

    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy_temp;
    fastcgi_temp_path {dir}/fastcgi_temp;
    uwsgi_temp_path {dir}/uwsgi_temp;
    scgi_temp_path {dir}/scgi_temp;

    open_file_cache max=10000 inactive=60s;
    open_file_cache_valid 60s;
    open_file_cache_min_uses 1;
    open_file_cache_errors on;

    proxy_cache_path {dir}/nginx-cache levels=1:2 keys_zone={ZONE}:16m
                     max_size=1g inactive=1h use_temp_path=off;

    upstream origin {{
        server {origin};
        keepalive 32;
    }}

    server {{
        listen {listen};{tls}

        location / {{
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_cache {ZONE};
            proxy_cache_valid 200 10m;
            proxy_cache_lock on;
            add_header X-Cache-Status $upstream_cache_status always;
        }}
    }}
}}
"
    )
}

/// `nginx -v`'s version (`nginx/1.22.1`), if it answers.
pub(super) fn version(binary: &Path) -> Option<String> {
    let out = Command::new(binary).arg("-v").output().ok()?;
    // nginx prints its version on stderr.
    let text = String::from_utf8_lossy(&out.stderr);
    text.lines()
        .find_map(|l| l.trim().strip_prefix("nginx version: "))
        .map(str::to_owned)
}

/// Writes the configuration into `dir` (made anew) and starts nginx on a free port of
/// 127.0.0.1, in front of the origin on `origin`, on the measured server's core.
pub(super) fn start(
    run: &Runner<'_>,
    binary: &Path,
    origin: u16,
    dir: &Path,
) -> Result<Nginx, String> {
    start_with(run, binary, origin, dir, None).map(|(nginx, _)| nginx)
}

/// [`start`], and with `tls` (certificate and key files) a TLS listener too, on a free port
/// returned beside the server.
pub(super) fn start_with(
    run: &Runner<'_>,
    binary: &Path,
    origin: u16,
    dir: &Path,
    tls: Option<(&Path, &Path)>,
) -> Result<(Nginx, Option<u16>), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {dir:?}: {e}"))?;
    // When run as root, nginx's worker drops to an unprivileged user: it must reach the cache.
    set_mode(dir, 0o755)?;
    let port = crate::util::free_port()?;
    let tls_port = tls.map(|_| crate::util::free_port()).transpose()?;
    let tls_listen = tls_port.map(|p| format!("127.0.0.1:{p}"));
    let files = tls.map(|(c, k)| (c.display().to_string(), k.display().to_string()));
    let tls_config = match (&tls_listen, &files) {
        (Some(listen), Some((cert, key))) => Some(TlsListen { listen, cert, key }),
        _ => None,
    };
    let text = config_with(
        &dir.display().to_string(),
        &format!("127.0.0.1:{port}"),
        &format!("127.0.0.1:{origin}"),
        tls_config.as_ref(),
    );
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, text).map_err(|e| format!("cannot write {conf:?}: {e}"))?;
    let args = [
        "-p".to_owned(),
        dir.display().to_string(),
        // The error log before the configuration is read, instead of the system's.
        "-e".to_owned(),
        dir.join("error.log").display().to_string(),
        "-c".to_owned(),
        conf.display().to_string(),
    ];
    let cmd = run
        .launcher
        .command(binary, &args, Some(SERVER_CORE), run.limit());
    let mut server = Server::spawn("nginx", cmd, &run.plan.work.join("nginx.log"))?;
    server.wait_for_port(port, Duration::from_secs(20))?;
    if let Some(p) = tls_port {
        server.wait_for_port(p, Duration::from_secs(5))?;
    }
    Ok((Nginx { server, port }, tls_port))
}

fn set_mode(path: &Path, mode: u32) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("cannot set the mode of {path:?}: {e}"))
}

/// Requests `path` until nginx answers it from its cache (`X-Cache-Status: HIT`), for up to
/// five seconds: the first request is a miss, stored once the whole body has arrived.
pub(super) fn warm_hit(port: u16, path: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let first = process::get(port, path, &[])?;
    if first.status != 200 {
        return Err(format!("warming {path}: nginx answered {}", first.status));
    }
    loop {
        let answer = process::get(port, path, &[])?;
        let status = answer
            .header("x-cache-status")
            .unwrap_or_default()
            .to_owned();
        if answer.status == 200 && status.eq_ignore_ascii_case("hit") {
            if answer.body.len() != first.body.len() {
                return Err(format!("warming {path}: nginx's hit differs in length"));
            }
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "warming {path}: nginx did not answer from its cache (status {}, \
                 X-Cache-Status {status:?})",
                answer.status
            ));
        }
        sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configuration_keeps_everything_in_the_run_directory() {
        let text = config("/tmp/run", "127.0.0.1:8080", "127.0.0.1:9090");
        assert!(text.contains("listen 127.0.0.1:8080;"), "{text}");
        assert!(text.contains("server 127.0.0.1:9090;"), "{text}");
        assert!(
            text.contains("proxy_cache_path /tmp/run/nginx-cache levels=1:2"),
            "{text}"
        );
        // Every path nginx writes is under the run's directory.
        for line in text
            .lines()
            .filter(|l| l.contains("_path ") || l.contains("pid "))
        {
            assert!(line.contains("/tmp/run/"), "{line}");
        }
        // Braces balance, so nginx can parse the blocks.
        let open = text.matches('{').count();
        assert_eq!(open, text.matches('}').count(), "{text}");
        assert!(text.contains("proxy_set_header Connection \"\";"), "{text}");
        assert!(!text.contains("ssl"), "{text}");

        let tls = TlsListen {
            listen: "127.0.0.1:8443",
            cert: "/tmp/run/cert.pem",
            key: "/tmp/run/key.pem",
        };
        let text = config_with("/tmp/run", "127.0.0.1:8080", "127.0.0.1:9090", Some(&tls));
        assert!(text.contains("listen 127.0.0.1:8080;"), "{text}");
        assert!(text.contains("listen 127.0.0.1:8443 ssl http2;"), "{text}");
        assert!(
            text.contains("ssl_certificate /tmp/run/cert.pem;"),
            "{text}"
        );
        assert!(text.contains("ssl_protocols TLSv1.2 TLSv1.3;"), "{text}");
        assert_eq!(text.matches('{').count(), text.matches('}').count());
    }
}
