//! Child processes of the HTTP runs, bounded in time: the origin, the proxy and wrk.
//!
//! A [`Server`] is stopped (SIGTERM, then SIGKILL) when dropped, so every return path, errors
//! included, cleans up. Every child also runs under coreutils `timeout` where it exists, so it
//! ends at its deadline even if xtask itself is killed outright. `taskset` pins a child to one
//! core where it exists and the machine has more than one.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::util::{has_command, tail};

/// How often a wait loop looks again.
const POLL: Duration = Duration::from_millis(50);

/// How children are wrapped: a time limit and, where possible, a core.
#[derive(Debug, Clone, Copy)]
pub(super) struct Launcher {
    timeout: bool,
    taskset: bool,
}

impl Launcher {
    /// Looks for `timeout` and `taskset` (the latter only matters on two cores or more).
    pub(super) fn detect(cores: usize) -> Self {
        Self {
            timeout: has_command("timeout", &["--version"]),
            taskset: cores >= 2 && has_command("taskset", &["-c", "0", "true"]),
        }
    }

    /// Whether children are pinned to cores.
    pub(super) fn pins(self) -> bool {
        self.taskset
    }

    /// `program args..` limited to `limit` and pinned to `core` (when the tools exist).
    pub(super) fn command(
        self,
        program: &Path,
        args: &[String],
        core: Option<usize>,
        limit: Duration,
    ) -> Command {
        let mut words: Vec<String> = Vec::new();
        if self.timeout {
            words.extend([
                "timeout".into(),
                "--foreground".into(),
                "-k".into(),
                "5".into(),
                format!("{}s", limit.as_secs().max(1)),
            ]);
        }
        if let (true, Some(core)) = (self.taskset, core) {
            words.extend(["taskset".into(), "-c".into(), core.to_string()]);
        }
        words.push(program.display().to_string());
        words.extend(args.iter().cloned());
        let mut cmd = Command::new(&words[0]);
        cmd.args(&words[1..]);
        cmd
    }
}

/// A long-running child (the origin or the proxy), stopped when dropped.
pub(super) struct Server {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Server {
    /// Starts `cmd` with stdin closed and stdout and stderr to `log`.
    pub(super) fn spawn(name: &str, mut cmd: Command, log: &Path) -> Result<Self, String> {
        let out = File::create(log).map_err(|e| format!("{name}: cannot create {log:?}: {e}"))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("{name}: cannot share {log:?}: {e}"))?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        eprintln!("==> {name}: {cmd:?}");
        let child = cmd
            .spawn()
            .map_err(|e| format!("{name}: cannot start {cmd:?}: {e}"))?;
        Ok(Self {
            name: name.to_owned(),
            child,
            log: log.to_owned(),
        })
    }

    /// The child's process id (the `timeout` wrapper's, when there is one).
    pub(super) fn id(&self) -> u32 {
        self.child.id()
    }

    /// Waits until something accepts connections on `port` of 127.0.0.1.
    pub(super) fn wait_for_port(&mut self, port: u16, limit: Duration) -> Result<(), String> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + limit;
        loop {
            self.check_running()?;
            if TcpStream::connect_timeout(&addr, POLL).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} did not listen on {addr} within {}s; its log {:?} ends:\n{}",
                    self.name,
                    limit.as_secs(),
                    self.log,
                    tail(&self.log)
                ));
            }
            sleep(POLL);
        }
    }

    /// Fails when the child has exited, quoting the end of its log.
    pub(super) fn check_running(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!(
                "{} exited ({status}); its log {:?} ends:\n{}",
                self.name,
                self.log,
                tail(&self.log)
            )),
            Err(e) => Err(format!("{}: cannot wait: {e}", self.name)),
        }
    }

    /// SIGTERM (so `timeout` passes it on and the proxy shuts down), then SIGKILL; and if the
    /// server outlived its `timeout` wrapper (killed before it could pass a signal on), SIGKILL
    /// for the server too, so that no run leaves a process behind.
    fn stop(&mut self) {
        let worker = worker_pid(self.child.id());
        crate::util::stop_child(&mut self.child);
        if worker != self.child.id() && is_running(worker) {
            eprintln!(
                "xtask bench: {} outlived its wrapper; killing {worker}",
                self.name
            );
            let _ = Command::new("kill")
                .args(["-KILL", &worker.to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs a short-lived command (already bounded by [`Launcher::command`]) to completion.
pub(super) fn output(name: &str, mut cmd: Command) -> Result<Output, String> {
    eprintln!("==> {name}: {cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{name}: cannot start {cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "{name} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The answer to a plain HTTP/1.1 request: status, head (lowercase) and body length.
pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) head: String,
    pub(super) body: Vec<u8>,
}

impl Answer {
    /// The value of header `name` (lowercase), if present.
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            (n.trim() == name).then(|| v.trim())
        })
    }
}

/// `GET path` on 127.0.0.1:`port` with `Connection: close`, for warming caches and reading
/// `/metrics`. Bodies are read to the end of the connection.
pub(super) fn get(port: u16, path: &str, extra: &[(&str, &str)]) -> Result<Answer, String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let fail = |e: std::io::Error| format!("GET http://{addr}{path}: {e}");
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(fail)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(fail)?;
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (name, value) in extra {
        let _ = write!(req, "{name}: {value}\r\n");
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).map_err(fail)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(fail)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("GET http://{addr}{path}: no complete response head"))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("GET http://{addr}{path}: bad status line"))?;
    Ok(Answer {
        status,
        head,
        body: raw[split + 4..].to_vec(),
    })
}

/// The process doing the work under `pid`: the first child of any `timeout` or `taskset`
/// wrapper in between.
pub(super) fn worker_pid(mut pid: u32) -> u32 {
    for _ in 0..4 {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if !matches!(comm.trim(), "timeout" | "taskset") {
            break;
        }
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        match children
            .split_whitespace()
            .next()
            .and_then(|c| c.parse().ok())
        {
            Some(child) => pid = child,
            None => break,
        }
    }
    pid
}

/// Whether `pid` is a live process (not gone, not a zombie awaiting its parent).
fn is_running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // The state follows the parenthesised command name, which may itself hold spaces.
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}

/// The resident set size of `pid` in bytes (`VmRSS` of `/proc/<pid>/status`).
pub(super) fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
