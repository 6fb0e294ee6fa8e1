//! Starting daemons in the foreground and stopping them, by PID, on every exit path.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `scripts/deps/programs`: every external program the project uses, with its Debian package.
const PROGRAMS: &str = include_str!("../../../scripts/deps/programs");

/// Whether `name` is listed in `scripts/deps/programs` as a dependency (first field; `-` marks non-dependencies).
pub fn listed_program(name: &str) -> bool {
    PROGRAMS
        .lines()
        .map(|line| line.split('#').next().unwrap_or(""))
        .filter_map(|line| {
            let (program, package) = line.split_once('\t')?;
            (package.trim() != "-").then_some(program)
        })
        .any(|program| program == name)
}

/// Panics with an actionable message when `name` is not on `PATH` (or under the usual sbin dirs), or is not
/// listed in `scripts/deps/programs` (so every program a test needs is one `scripts/install-deps` installs).
///
/// Tests never skip: a missing daemon means the environment is wrong, and `scripts/install-deps` fixes it.
pub fn require_binary(name: &str) -> PathBuf {
    assert!(
        listed_program(name),
        "`{name}` is not listed in scripts/deps/programs: add `{name}<TAB>debian-package` there and the package \
         to scripts/deps/packages (scripts/check-programs checks both)"
    );
    let dirs = std::env::var("PATH").unwrap_or_default();
    let extra = ["/usr/sbin", "/sbin", "/usr/lib/frr"];
    for dir in dirs.split(':').chain(extra) {
        let candidate = Path::new(dir).join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "`{name}` not found: run `scripts/install-deps` (as root) to install the Debian packages the tests need"
    );
}

/// Polls `cond` every 10 ms until it returns true or `timeout` passes. Returns whether it became true.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub use nix::sys::signal::Signal;

/// Sends `sig` to `pid`. Returns false if the process does not exist.
pub fn signal(pid: u32, sig: Signal) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), sig).is_ok()
}

/// True if `pid` exists and is not a zombie (`kill -0` succeeds on zombies, so read `/proc`).
pub fn is_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/status")) {
        Ok(status) => !status
            .lines()
            .any(|l| l.starts_with("State:") && (l.contains('Z') || l.contains('X'))),
        Err(_) => false,
    }
}

/// A daemon started in the foreground by a test. Dropping it kills it (SIGTERM, then SIGKILL) and reaps it.
#[derive(Debug)]
pub struct DaemonGuard {
    name: String,
    child: Option<Child>,
    log: Option<PathBuf>,
}

impl DaemonGuard {
    /// Spawns `cmd` with stdout/stderr appended to `log` (when given) and returns its guard.
    pub fn spawn(name: &str, mut cmd: Command, log: Option<&Path>) -> DaemonGuard {
        match log {
            Some(path) => {
                let out = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .unwrap_or_else(|e| panic!("open log {}: {e}", path.display()));
                let err = out.try_clone().unwrap_or_else(|e| panic!("dup log: {e}"));
                cmd.stdout(out).stderr(err);
            }
            None => {
                cmd.stdout(Stdio::null()).stderr(Stdio::null());
            }
        }
        cmd.stdin(Stdio::null());
        // A process group of its own: a Ctrl-C in the terminal reaches the test or demo, which then stops
        // its daemons in order, instead of killing them all at once behind its back.
        cmd.process_group(0);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("failed to start {name} ({cmd:?}): {e}"));
        DaemonGuard {
            name: name.to_owned(),
            child: Some(child),
            log: log.map(Path::to_path_buf),
        }
    }

    /// The daemon's PID.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// The log file's contents so far (for assertion messages).
    pub fn log(&self) -> String {
        self.log
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
    }

    /// Whether the process is still running (reaps it if it has exited).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Sends a signal (e.g. `Signal::SIGSTOP`, `Signal::SIGHUP`) to the daemon.
    pub fn signal(&self, sig: Signal) -> bool {
        signal(self.pid(), sig)
    }

    /// Sends a signal to the daemon's whole process group (it leads one, see [`DaemonGuard::spawn`]): also
    /// reaches the children it forked, e.g. the per-connection processes of `socat ... fork`.
    pub fn signal_group(&self, sig: Signal) -> bool {
        let Ok(raw) = i32::try_from(self.pid()) else {
            return false;
        };
        nix::sys::signal::killpg(nix::unistd::Pid::from_raw(raw), sig).is_ok()
    }

    /// Stops the daemon: SIGTERM, up to `grace`, then SIGKILL; waits until it is reaped.
    /// Returns the exit status if the process could be waited for.
    pub fn stop(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        signal(child.id(), Signal::SIGCONT);
        signal(child.id(), Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        child.wait().ok()
    }

    /// Kills the daemon with SIGKILL at once (a crash) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Name given at spawn time.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for DaemonGuard {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(3));
    }
}

/// Runs one test of the current test binary again, in a child process as `nobody` (uid/gid 65534) with
/// only the supplementary group `group` (or none), and returns what it printed.
///
/// Root bypasses file permissions, so a test of "permission denied" needs an unprivileged process: a real
/// EACCES from connect(2). The child is this test binary, copied where nobody may run it; `env` tells the
/// child which part to play (the test checks for it first and returns early in the child). Panics unless
/// the child exits 0, with its output.
pub fn rerun_test_as_nobody(test: &str, group: Option<u32>, env: &[(&str, &Path)]) -> String {
    use std::os::unix::fs::PermissionsExt;
    let setpriv = require_binary("setpriv");
    let exe_dir = tempfile::tempdir().expect("tempdir for the test binary");
    std::fs::set_permissions(exe_dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod the test binary's dir");
    let exe = exe_dir.path().join("test-as-nobody");
    std::fs::copy(std::env::current_exe().expect("current exe"), &exe).expect("copy test binary");
    let groups = group.map_or_else(|| "--clear-groups".to_owned(), |g| format!("--groups={g}"));
    let mut cmd = Command::new(&setpriv);
    cmd.args(["--reuid=65534", "--regid=65534", &groups, "--"])
        .arg(&exe)
        .args(["--exact", test, "--nocapture"]);
    for (key, value) in env {
        cmd.env(key, value);
    }
    // A process that another test thread forks while the copy above still had the file open for writing
    // holds that descriptor until its own exec: executing the copy then fails with ETXTBSY for a moment.
    let mut output = cmd.output().expect("run the test as nobody");
    for _ in 0..50 {
        if !String::from_utf8_lossy(&output.stderr).contains("Text file busy") {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        output = cmd.output().expect("run the test as nobody");
    }
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "child ({groups}) failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The line of a child's output (see [`rerun_test_as_nobody`]) that starts with `prefix`, without it.
/// Panics with the whole output when there is none.
pub fn child_line<'a>(stdout: &'a str, prefix: &str) -> &'a str {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} line from the child:\n{stdout}"))
}

/// The numeric id of group `name`, from `/etc/group`. Panics when there is no such group.
pub fn group_id(name: &str) -> u32 {
    let groups = std::fs::read_to_string("/etc/group").expect("read /etc/group");
    groups
        .lines()
        .find_map(|line| {
            let mut fields = line.split(':');
            (fields.next() == Some(name))
                .then(|| fields.nth(1).and_then(|gid| gid.parse().ok()))
                .flatten()
        })
        .unwrap_or_else(|| panic!("no group {name} in /etc/group: is its package installed?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_list_names_the_daemons_and_tools_the_tests_use() {
        for name in [
            "bird", "birdc", "vtysh", "bgpd", "knotd", "kdig", "nsd", "named", "ip", "setpriv",
            "socat",
        ] {
            assert!(
                listed_program(name),
                "{name} should be listed in scripts/deps/programs"
            );
        }
        assert!(listed_program("/usr/lib/frr/frr-reload.py"));
        // Comments, the ignore marker and partial names are not entries.
        assert!(!listed_program("nsbeacon"));
        assert!(!listed_program("bir"));
        assert!(!listed_program("frr"));
        assert!(!listed_program(""));
    }

    #[test]
    #[should_panic(expected = "not listed in scripts/deps/programs")]
    fn require_binary_refuses_an_unlisted_program_even_when_installed() {
        // `sh` is on every machine, but no test may use a program that scripts/deps/programs does not list.
        // (Not a literal in the call, so scripts/check-programs does not take it for a real use.)
        let unlisted = String::from("sh");
        require_binary(&unlisted);
    }

    #[test]
    fn require_binary_finds_a_listed_program() {
        assert!(require_binary("ip").is_file());
    }
}
