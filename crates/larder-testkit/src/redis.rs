//! A throwaway `redis-server` on a free port of 127.0.0.1, for tests and benches.
//!
//! The server binary comes from the Debian package `redis-server`; when it is missing and we
//! are root, [`RedisServer::start`] installs it with apt-get; without it that fails loudly, so
//! the Redis tests never pass by skipping. Suites that also run without Redis ask
//! [`RedisServer::available`] first and skip, saying why, only when the binary is missing.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A running `redis-server`, killed on drop.
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server on a free port and waits until it answers PING.
    ///
    /// # Panics
    ///
    /// When `redis-server` is missing and cannot be installed, or does not start.
    pub fn start() -> Self {
        ensure_installed();
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            let mut server = RedisServer { port, child: None };
            match server.spawn() {
                Ok(()) => return server,
                Err(e) => last = e,
            }
        }
        panic!("could not start redis-server: {last}");
    }

    /// Whether a `redis-server` binary is on the `PATH` (nothing is installed); the error says
    /// what is missing.
    ///
    /// # Errors
    ///
    /// When `redis-server --version` does not run.
    pub fn available() -> Result<(), String> {
        if has_redis_server() {
            Ok(())
        } else {
            Err("no redis-server on the PATH (apt-get install -y redis-server)".to_owned())
        }
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The number of keys matching `pattern` (`KEYS pattern`), asked over a plain socket.
    ///
    /// # Panics
    ///
    /// When the server does not answer with an array within 2 s.
    pub fn count_keys(&self, pattern: &str) -> usize {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        stream
            .write_all(format!("KEYS {pattern}\r\n").as_bytes())
            .unwrap();
        let mut reply = Vec::new();
        let mut buf = [0u8; 4096];
        while !reply.windows(2).any(|w| w == b"\r\n") {
            let n = stream.read(&mut buf).unwrap();
            assert!(n > 0, "redis closed the connection");
            reply.extend_from_slice(&buf[..n]);
        }
        let reply = String::from_utf8_lossy(&reply);
        let header = reply.split("\r\n").next().unwrap();
        header
            .strip_prefix('*')
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unexpected KEYS reply {reply:?}"))
    }

    /// The server's URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server is running").id()
    }

    /// Kills the server (its data is gone: nothing is persisted).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match self.spawn() {
                Ok(()) => return,
                Err(e) if Instant::now() > deadline => {
                    panic!("could not restart redis-server: {e}")
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    fn spawn(&mut self) -> Result<(), String> {
        let port = self.port.to_string();
        let mut child = Command::new("redis-server")
            .args([
                "--port",
                &port,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawning redis-server: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if ping(self.port) {
                // Another test may have been given the same free port: make sure the server
                // answering is this one.
                if serves_pid(self.port, child.id()) {
                    self.child = Some(child);
                    return Ok(());
                }
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("port {} is taken by another server", self.port));
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("redis-server exited early with {status}"));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err("redis-server did not answer PING within 5 s".to_owned());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

fn ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
}

/// Whether the server on `port` is the process `pid` (from `INFO server`).
fn serves_pid(port: u16, pid: u32) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"INFO server\r\n").is_err() {
        return false;
    }
    let want = format!("process_id:{pid}\r\n");
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n @ 1..) = stream.read(&mut buf) {
        reply.extend_from_slice(&buf[..n]);
        if String::from_utf8_lossy(&reply).contains(&want) {
            return true;
        }
    }
    false
}

fn has_redis_server() -> bool {
    Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// Installs the Debian package `redis-server` once per process when the binary is missing.
fn ensure_installed() {
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    let result = INSTALLED.get_or_init(|| {
        if has_redis_server() {
            return Ok(());
        }
        if !is_root() {
            return Err(
                "redis-server is not installed and we are not root to install it; \
                        run `apt-get install -y redis-server`"
                    .to_owned(),
            );
        }
        for args in [&["update"][..], &["install", "-y", "redis-server"][..]] {
            let status = Command::new("apt-get")
                .args(args)
                .env("DEBIAN_FRONTEND", "noninteractive")
                .stdout(Stdio::null())
                .status()
                .map_err(|e| format!("running apt-get {args:?}: {e}"))?;
            if !status.success() {
                return Err(format!("apt-get {args:?} failed with {status}"));
            }
        }
        if has_redis_server() {
            Ok(())
        } else {
            Err("redis-server is still missing after apt-get install redis-server".to_owned())
        }
    });
    if let Err(e) = result {
        panic!("the redis tests need a redis-server binary: {e}");
    }
}
