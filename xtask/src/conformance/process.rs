//! Child processes that never outlive the run: the origin server, the proxy and the client.
//!
//! Three layers keep them bounded. A [`Guard`] stops its child when dropped, so every return path
//! (errors included) cleans up. Where coreutils `timeout` exists, each child runs under
//! `timeout --foreground`, so even if xtask itself is killed outright the child ends at the run's
//! deadline. `--foreground` keeps the child in the terminal's process group, so Ctrl-C reaches it
//! directly, as it reaches xtask.

use std::fs::File;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::util::{has_command, tail};

/// How often a wait loop looks again.
const POLL: Duration = Duration::from_millis(100);

/// A running child process, stopped (SIGTERM, then SIGKILL) when dropped.
pub(super) struct Guard {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Guard {
    /// Starts `cmd` with stdin closed, stdout to `stdout` (or the log) and stderr to `log`. It is
    /// killed after `limit` even if this process dies first (when coreutils `timeout` exists).
    pub(super) fn spawn(
        name: &str,
        cmd: &Command,
        limit: Duration,
        log: &Path,
        stdout: Option<&Path>,
    ) -> Result<Self, String> {
        let mut wrapped = bounded(cmd, limit);
        let err = File::create(log).map_err(|e| format!("{name}: cannot create {log:?}: {e}"))?;
        let out = match stdout {
            Some(path) => {
                File::create(path).map_err(|e| format!("{name}: cannot create {path:?}: {e}"))?
            }
            None => err
                .try_clone()
                .map_err(|e| format!("{name}: cannot share {log:?}: {e}"))?,
        };
        wrapped
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        eprintln!("==> {name}: {cmd:?}");
        let child = wrapped
            .spawn()
            .map_err(|e| format!("{name}: cannot start {cmd:?}: {e}"))?;
        Ok(Self {
            name: name.to_owned(),
            child,
            log: log.to_owned(),
        })
    }

    /// Waits until something accepts connections on `port` of 127.0.0.1.
    pub(super) fn wait_for_port(&mut self, port: u16, limit: Duration) -> Result<(), String> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.exited()? {
                return Err(format!(
                    "{} exited before listening on {addr} ({status}); its log {:?} ends:\n{}",
                    self.name,
                    self.log,
                    tail(&self.log)
                ));
            }
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

    /// Waits for the child to exit by itself within `limit`; stops it and fails otherwise.
    pub(super) fn wait(mut self, limit: Duration) -> Result<ExitStatus, String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.exited()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                self.stop();
                return Err(format!(
                    "{} did not finish within {}s and was stopped; its log {:?} ends:\n{}",
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
        match self.exited()? {
            None => Ok(()),
            Some(status) => Err(format!(
                "{} exited during the run ({status}); its log {:?} ends:\n{}",
                self.name,
                self.log,
                tail(&self.log)
            )),
        }
    }

    fn exited(&mut self) -> Result<Option<ExitStatus>, String> {
        self.child
            .try_wait()
            .map_err(|e| format!("{}: cannot wait: {e}", self.name))
    }

    /// SIGTERM (so the proxy shuts down gracefully and `timeout` passes it on), then SIGKILL.
    fn stop(&mut self) {
        crate::util::stop_child(&mut self.child);
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `cmd` under `timeout --foreground -k 5 <limit>` when coreutils `timeout` exists.
fn bounded(cmd: &Command, limit: Duration) -> Command {
    let mut out = if has_command("timeout", &["--version"]) {
        let mut t = Command::new("timeout");
        t.args(["--foreground", "-k", "5"])
            .arg(format!("{}s", limit.as_secs().max(1)))
            .arg(cmd.get_program());
        t
    } else {
        Command::new(cmd.get_program())
    };
    out.args(cmd.get_args());
    for (key, value) in cmd.get_envs() {
        match value {
            Some(value) => out.env(key, value),
            None => out.env_remove(key),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        out.current_dir(dir);
    }
    out
}
