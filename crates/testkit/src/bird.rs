//! A real BIRD 2 for tests: its own config, control socket, PID file and log in a temp dir, run in the
//! foreground (`bird -f`) so a [`DaemonGuard`] owns its PID, optionally inside a network namespace.
//!
//! ```no_run
//! use nsbeacon_testkit::bird::BirdDaemon;
//! let mut bird = BirdDaemon::start(
//!     "router id 192.0.2.1;\nprotocol static anycast_dns { ipv4; route 203.0.113.53/32 blackhole; }\n",
//!     None,
//! );
//! assert!(bird.command("disable anycast_dns").starts_with("0009-"));
//! bird.restart(); // SIGKILL, then the same BIRD again on the same socket path
//! ```

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::process::{DaemonGuard, require_binary, wait_until};

/// How long [`BirdDaemon::start`] waits for the control socket to greet.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on one [`BirdDaemon::command`] exchange.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// A running BIRD 2 owned by a test. Dropping it kills BIRD (by PID) and deletes its directory.
#[derive(Debug)]
pub struct BirdDaemon {
    // Declared first so it drops first: BIRD dies before its directory is deleted.
    guard: Option<DaemonGuard>,
    dir: tempfile::TempDir,
    netns: Option<String>,
}

impl BirdDaemon {
    /// Writes `config_text` to `bird.conf` in a fresh temp dir, checks it with `bird -p`, starts
    /// `bird -f -c bird.conf -s bird.ctl -P bird.pid` (inside `ip netns exec NETNS` when `netns` is given)
    /// and waits until the control socket answers with its greeting.
    ///
    /// Panics with BIRD's output when the config is invalid or BIRD does not come up: in a test that is the
    /// failure to report.
    pub fn start(config_text: &str, netns: Option<&str>) -> BirdDaemon {
        require_binary("bird");
        let dir = tempfile::Builder::new()
            .prefix("nsbeacon-bird-")
            .tempdir()
            .unwrap_or_else(|e| panic!("create a temp dir for BIRD: {e}"));
        let config = dir.path().join("bird.conf");
        std::fs::write(&config, config_text)
            .unwrap_or_else(|e| panic!("write {}: {e}", config.display()));
        let check = Command::new("bird")
            .arg("-p")
            .arg("-c")
            .arg(&config)
            .output()
            .unwrap_or_else(|e| panic!("run `bird -p`: {e}"));
        assert!(
            check.status.success(),
            "BIRD rejects the test config {}:\n{}{}\n--- config ---\n{config_text}",
            config.display(),
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr),
        );
        let mut bird = BirdDaemon {
            dir,
            netns: netns.map(str::to_owned),
            guard: None,
        };
        bird.launch();
        bird
    }

    /// Starts BIRD again on the same files after [`kill`](Self::kill) or [`stop`](Self::stop) (no-op when
    /// it is running), and waits for the greeting.
    pub fn start_again(&mut self) {
        if self.is_running() {
            return;
        }
        self.launch();
    }

    fn launch(&mut self) {
        let mut cmd = match &self.netns {
            Some(ns) => {
                // `ip netns exec` execs BIRD in place, so the guard's PID is BIRD's own.
                let mut cmd = Command::new(require_binary("ip"));
                cmd.args(["netns", "exec", ns, "bird"]);
                cmd
            }
            None => Command::new(require_binary("bird")),
        };
        cmd.arg("-f")
            .arg("-c")
            .arg(self.config_path())
            .arg("-s")
            .arg(self.socket())
            .arg("-P")
            .arg(self.pid_file());
        let mut guard = DaemonGuard::spawn("bird", cmd, Some(&self.log_path()));
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if greets(&self.socket()) {
                break;
            }
            if !guard.is_running() {
                panic!(
                    "BIRD exited during startup (socket {}); its output:\n{}",
                    self.socket().display(),
                    guard.log()
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "BIRD did not greet on {} within {READY_TIMEOUT:?}; its output:\n{}",
                    self.socket().display(),
                    guard.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.guard = Some(guard);
    }

    /// The control socket (`DIR/bird.ctl`).
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("bird.ctl")
    }

    /// The temp dir holding config, socket, PID file and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The config file (`DIR/bird.conf`); rewrite it and send `configure` to reconfigure.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("bird.conf")
    }

    /// The PID file BIRD writes (`DIR/bird.pid`).
    pub fn pid_file(&self) -> PathBuf {
        self.dir.path().join("bird.pid")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("bird.log")
    }

    /// BIRD's stdout/stderr so far, for assertion messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The network namespace BIRD runs in, if any.
    pub fn netns(&self) -> Option<&str> {
        self.netns.as_deref()
    }

    /// BIRD's PID while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.guard.as_ref().map(DaemonGuard::pid)
    }

    /// Whether BIRD is running.
    pub fn is_running(&mut self) -> bool {
        self.guard.as_mut().is_some_and(DaemonGuard::is_running)
    }

    /// Kills BIRD with SIGKILL (a crash) and reaps it. The socket file stays behind, as after a real crash.
    pub fn kill(&mut self) {
        if let Some(mut guard) = self.guard.take() {
            guard.kill();
        }
    }

    /// Stops BIRD with SIGTERM (SIGKILL after 3 s) and reaps it.
    pub fn stop(&mut self) {
        if let Some(mut guard) = self.guard.take() {
            guard.stop(Duration::from_secs(3));
        }
    }

    /// Kills BIRD (SIGKILL) and starts it again on the same config and socket path: a crash and restart.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    /// Sends one command like `birdc -s SOCKET CMD` does, on a fresh connection, and returns the raw
    /// reply lines (codes included, e.g. `"0009-anycast_dns: disabled\n0000 "`). Panics when BIRD cannot be
    /// reached: use [`try_command`](Self::try_command) to test failures.
    pub fn command(&self, command: &str) -> String {
        self.try_command(command).unwrap_or_else(|e| {
            panic!(
                "`{command}` on BIRD socket {}: {e}; BIRD's output:\n{}",
                self.socket().display(),
                self.log()
            )
        })
    }

    /// [`command`](Self::command) returning I/O errors instead of panicking.
    pub fn try_command(&self, command: &str) -> std::io::Result<String> {
        bird_command(&self.socket(), command)
    }

    /// The State column (`up`, `down`, `start`, ...) of `show protocols "NAME"`, if BIRD lists it.
    pub fn protocol_state(&self, name: &str) -> Option<String> {
        protocol_state(&self.socket(), name)
    }

    /// Waits until protocol `name` is in `state` (e.g. a BGP session `up`). Returns whether it got there.
    pub fn wait_protocol_state(&self, name: &str, state: &str, timeout: Duration) -> bool {
        wait_until(timeout, || {
            self.protocol_state(name).as_deref() == Some(state)
        })
    }
}

/// The State column of `show protocols "NAME"` asked on `socket` (fresh connection), if BIRD lists it.
/// A free function so that a watcher thread can poll without owning the [`BirdDaemon`].
pub fn protocol_state(socket: &Path, name: &str) -> Option<String> {
    let reply = bird_command(socket, &format!("show protocols \"{name}\"")).ok()?;
    reply.lines().find_map(|line| {
        let text = line
            .strip_prefix("1002-")
            .or_else(|| line.strip_prefix("1002 "))?;
        let mut columns = text.split_whitespace();
        (columns.next()? == name).then(|| columns.nth(2).map(str::to_owned))?
    })
}

/// Whether `socket` accepts a connection and sends BIRD's `0001` greeting.
fn greets(socket: &Path) -> bool {
    let Ok(stream) = UnixStream::connect(socket) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).is_ok() && line.starts_with("0001 ")
}

/// One `birdc`-like exchange: connect, read the greeting, send `command`, read up to the final `DDDD ` line.
/// Keeps the socket open until the reply is in (half-closing makes BIRD drop the command).
pub fn bird_command(socket: &Path, command: &str) -> std::io::Result<String> {
    use std::io::{Error, ErrorKind};
    let stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(COMMAND_TIMEOUT))?;
    stream.set_write_timeout(Some(COMMAND_TIMEOUT))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut greeting = String::new();
    reader.read_line(&mut greeting)?;
    if !greeting.starts_with("0001 ") {
        return Err(Error::new(
            ErrorKind::InvalidData,
            format!("not a BIRD greeting: {greeting:?}"),
        ));
    }
    (&stream).write_all(format!("{command}\n").as_bytes())?;
    let mut reply = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Err(Error::new(
                ErrorKind::UnexpectedEof,
                format!("BIRD closed the connection mid-reply; got so far: {reply:?}"),
            ));
        }
        let line = line.trim_end_matches('\n');
        if !reply.is_empty() {
            reply.push('\n');
        }
        reply.push_str(line);
        let bytes = line.as_bytes();
        if bytes.len() >= 5 && bytes[..4].iter().all(u8::is_ascii_digit) && bytes[4] == b' ' {
            return Ok(reply);
        }
    }
}
