//! The built `larder` binary, started by path, and free ports for it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

/// A free TCP port on 127.0.0.1 (free when asked: another process may take it before use).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `larder` binary with everything it wrote to stderr, killed on drop so a failed
/// assertion leaves no process behind.
///
/// Tests pass the binary's path, `env!("CARGO_BIN_EXE_larder")`, which Cargo sets for the tests
/// of the package that builds it.
pub struct LarderProcess {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    /// The thread reading stderr into `log`; joined once the process has ended, so the log
    /// then holds every line it wrote.
    reader: Option<std::thread::JoinHandle<()>>,
}

impl LarderProcess {
    /// Starts `bin` with `args` (and `RUST_LOG=info`) and waits up to 10 s for its
    /// `listening on` line (the proxy's, not the admin listener's).
    ///
    /// # Panics
    ///
    /// When the binary cannot start or never says it is listening; the message shows its log.
    pub fn start(bin: impl AsRef<Path>, args: &[&str]) -> Self {
        let mut child = Command::new(bin.as_ref())
            .args(args)
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.as_ref().display()));
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let lines = Arc::clone(&log);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("listening on") && !line.contains("admin") {
                    let _ = tx.send(());
                }
                lines.lock().push(line);
            }
        });
        let process = Self {
            child,
            log,
            reader: Some(reader),
        };
        assert!(
            rx.recv_timeout(Duration::from_secs(10)).is_ok(),
            "no `listening on` line: {:?}",
            process.log.lock()
        );
        process
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status, when the process has ended.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// Every stderr line so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().clone()
    }

    /// The stderr lines at WARN or ERROR level so far.
    pub fn warnings(&self) -> Vec<String> {
        self.log
            .lock()
            .iter()
            .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
            .cloned()
            .collect()
    }

    /// Sends SIGTERM (a graceful shutdown) and waits up to `within` for the process to exit;
    /// the log then holds every line it wrote.
    ///
    /// # Panics
    ///
    /// When the signal cannot be sent or the process is still running after `within`; the
    /// message shows its log.
    pub fn terminate(&mut self, within: Duration) -> ExitStatus {
        let pid = self.pid().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success(), "kill -TERM {pid} failed");
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.try_wait() {
                self.read_to_end();
                return status;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!(
            "still running {within:?} after SIGTERM: {:?}",
            self.log.lock()
        );
    }

    /// Sends SIGKILL (a crash: no shutdown code runs) and reaps the process.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.read_to_end();
    }

    /// Waits for the stderr reader to take the last lines of a process that has ended (its
    /// end of the pipe is closed, so the reader finishes).
    fn read_to_end(&mut self) {
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }

    /// The process's peak resident set size in bytes (`VmHWM` in `/proc/<pid>/status`, Linux),
    /// while it runs.
    ///
    /// # Panics
    ///
    /// When the status file cannot be read (the process has ended, or not Linux).
    pub fn peak_rss_bytes(&self) -> u64 {
        let path = format!("/proc/{}/status", self.pid());
        let status = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
        let kib: u64 = line
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .unwrap();
        kib * 1024
    }

    /// Whether the process is still running and its log has no panic.
    pub fn is_healthy(&mut self) -> bool {
        let running = self.child.try_wait().unwrap().is_none();
        running && !self.log.lock().iter().any(|l| l.contains("panicked"))
    }
}

impl Drop for LarderProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
