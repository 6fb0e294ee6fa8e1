//! Real FRR (zebra, staticd, bgpd) for tests, inside a network namespace the test created.
//!
//! Each daemon runs in the FOREGROUND (no `-d`) under `ip netns exec NS` (which execs, so the PID the
//! [`DaemonGuard`] owns is the daemon's), with its own config file, pid file, zserv socket and vty socket
//! directory in one temp dir owned by `frr:frr` (the daemons drop privileges to user `frr`). Nothing is
//! read from or written to `/etc/frr` or `/run/frr`. Talk to it with [`FrrInstance::vtysh`], or hand
//! [`FrrInstance::vtysh_args`] (`--vty_socket DIR`) to the code under test.
//!
//! ```no_run
//! # use nsbeacon_testkit::frr::{FrrInstance, FrrConfigFiles};
//! let frr = FrrInstance::start("ns-under-test", FrrConfigFiles::bgpd("router bgp 65001\n"));
//! let out = frr.vtysh_ok(&["show bgp summary json"]);
//! # drop(out);
//! ```
//!
//! bgpd listens on port 179 inside the namespace, so a namespace is mandatory: FRR never runs in the
//! test host's own namespace (zebra would manage the host's interfaces and routes).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::{DaemonGuard, require_binary, wait_until};

/// How long the daemons get to come up (vty sockets present and bgpd answering).
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// Grace period between SIGTERM and SIGKILL when stopping a daemon.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// One of the FRR daemons an [`FrrInstance`] runs, in start order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrrDaemon {
    /// The RIB and kernel interface manager (owns the zserv socket the others connect to).
    Zebra,
    /// Static routes.
    Staticd,
    /// BGP.
    Bgpd,
}

impl FrrDaemon {
    /// All daemons, in the order they are started.
    pub const ALL: [FrrDaemon; 3] = [FrrDaemon::Zebra, FrrDaemon::Staticd, FrrDaemon::Bgpd];

    /// The binary name under `/usr/lib/frr`, also the stem of its files in the state dir.
    pub fn name(self) -> &'static str {
        match self {
            FrrDaemon::Zebra => "zebra",
            FrrDaemon::Staticd => "staticd",
            FrrDaemon::Bgpd => "bgpd",
        }
    }

    fn index(self) -> usize {
        match self {
            FrrDaemon::Zebra => 0,
            FrrDaemon::Staticd => 1,
            FrrDaemon::Bgpd => 2,
        }
    }
}

/// The startup config of each daemon (FRR's per-daemon config file syntax).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FrrConfigFiles {
    /// `zebra.conf` (interfaces, `ip forwarding`, ...).
    pub zebra: String,
    /// `staticd.conf` (`ip route ...`).
    pub staticd: String,
    /// `bgpd.conf` (`router bgp ...`).
    pub bgpd: String,
}

impl FrrConfigFiles {
    /// Only a bgpd config; zebra and staticd start with empty configs.
    pub fn bgpd(bgpd: &str) -> FrrConfigFiles {
        FrrConfigFiles {
            bgpd: bgpd.to_owned(),
            ..FrrConfigFiles::default()
        }
    }
}

/// What vtysh returned: exit status and both streams, for assertions on failures.
#[derive(Debug, Clone)]
pub struct VtyshOutput {
    /// Whether vtysh exited 0.
    pub success: bool,
    /// vtysh's exit code.
    pub code: Option<i32>,
    /// Standard output (command output and `%` error messages).
    pub stdout: String,
    /// Standard error (connection errors such as `bgpd is not running`).
    pub stderr: String,
}

/// A running FRR (zebra + staticd + bgpd) in a network namespace, killed by PID on drop.
#[derive(Debug)]
pub struct FrrInstance {
    netns: String,
    files: FrrConfigFiles,
    daemons: [Option<DaemonGuard>; 3],
    // Declared last: dropped after the daemons are dead.
    dir: tempfile::TempDir,
}

/// Looks up the uid/gid of user and group `frr` (created by the Debian package).
fn frr_ids() -> (nix::unistd::Uid, nix::unistd::Gid) {
    let user = nix::unistd::User::from_name("frr")
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("user `frr` missing: run `scripts/install-deps` to install FRR"));
    let group = nix::unistd::Group::from_name("frr")
        .ok()
        .flatten()
        .unwrap_or_else(|| {
            panic!("group `frr` missing: run `scripts/install-deps` to install FRR")
        });
    (user.uid, group.gid)
}

impl FrrInstance {
    /// Writes the config files into a fresh state dir owned by `frr:frr`, starts zebra, staticd and bgpd in
    /// `netns` (which the caller created and deletes) and waits until bgpd answers on its vty socket.
    /// Panics with the daemons' logs if they do not come up.
    pub fn start(netns: &str, files: FrrConfigFiles) -> FrrInstance {
        for daemon in FrrDaemon::ALL {
            require_binary(daemon.name());
        }
        require_binary("vtysh");
        require_binary("ip");
        let dir = tempfile::Builder::new()
            .prefix("nsbeacon-frr-")
            .tempdir()
            .unwrap_or_else(|e| panic!("create FRR state dir: {e}"));
        let (uid, gid) = frr_ids();
        nix::unistd::chown(dir.path(), Some(uid), Some(gid))
            .unwrap_or_else(|e| panic!("chown {} to frr:frr: {e}", dir.path().display()));
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o750))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", dir.path().display()));
        let mut frr = FrrInstance {
            netns: netns.to_owned(),
            files,
            daemons: [None, None, None],
            dir,
        };
        frr.write_configs();
        frr.start_daemons();
        frr
    }

    fn write_configs(&self) {
        let (uid, gid) = frr_ids();
        for daemon in FrrDaemon::ALL {
            let text = match daemon {
                FrrDaemon::Zebra => &self.files.zebra,
                FrrDaemon::Staticd => &self.files.staticd,
                FrrDaemon::Bgpd => &self.files.bgpd,
            };
            let path = self.config_path(daemon);
            std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
            nix::unistd::chown(&path, Some(uid), Some(gid))
                .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
        }
    }

    fn start_daemon(&mut self, daemon: FrrDaemon) {
        let dir = self.dir.path();
        let binary = require_binary(daemon.name());
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.netns])
            .arg(binary)
            .arg("-f")
            .arg(self.config_path(daemon))
            .arg("-i")
            .arg(dir.join(format!("{}.pid", daemon.name())))
            .arg("-z")
            .arg(self.zserv_path())
            .arg("--vty_socket")
            .arg(dir)
            .args(["-P", "0"]);
        let log = dir.join(format!("{}.log", daemon.name()));
        self.daemons[daemon.index()] = Some(DaemonGuard::spawn(daemon.name(), cmd, Some(&log)));
    }

    fn start_daemons(&mut self) {
        self.start_daemon(FrrDaemon::Zebra);
        let zserv = self.zserv_path();
        let zebra_up = wait_until(START_TIMEOUT, || zserv.exists());
        if !zebra_up {
            panic!(
                "zebra did not create {} in time; log:\n{}",
                zserv.display(),
                self.log(FrrDaemon::Zebra)
            );
        }
        self.start_daemon(FrrDaemon::Staticd);
        self.start_daemon(FrrDaemon::Bgpd);
        let ready = wait_until(START_TIMEOUT, || {
            FrrDaemon::ALL
                .iter()
                .all(|d| self.dir.path().join(format!("{}.vty", d.name())).exists())
                && self.vtysh(&["show bgp summary json"]).success
        });
        if !ready {
            panic!("FRR did not come up in time:\n{}", self.all_logs());
        }
    }

    /// The network namespace the daemons run in.
    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// The state dir: configs, pid files, logs, `zserv.api` and the `*.vty` sockets.
    pub fn state_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The config file of `daemon`.
    pub fn config_path(&self, daemon: FrrDaemon) -> PathBuf {
        self.dir.path().join(format!("{}.conf", daemon.name()))
    }

    /// `frr-reload.py --reload` of this instance's bgpd with its own config file: what an operator's
    /// `systemctl reload frr` applies. Returns what the script printed (stdout, then stderr); panics with
    /// it if the script failed.
    pub fn reload_bgpd_from_file(&self) -> String {
        let out = Command::new(require_binary("python3"))
            .arg(require_binary("/usr/lib/frr/frr-reload.py"))
            .args(["--reload", "--stdout", "--daemon", "bgpd", "--bindir"])
            .arg(require_binary("vtysh").parent().expect("vtysh dir"))
            .arg("--confdir")
            .arg(self.state_dir())
            .arg("--rundir")
            .arg(self.state_dir())
            .arg("--vty_socket")
            .arg(self.state_dir())
            .arg(self.config_path(FrrDaemon::Bgpd))
            .output()
            .expect("run frr-reload.py");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "frr-reload.py failed: {text}");
        text
    }

    fn zserv_path(&self) -> PathBuf {
        self.dir.path().join("zserv.api")
    }

    /// The vtysh options that reach this instance: `["--vty_socket", STATE_DIR]`.
    pub fn vtysh_args(&self) -> Vec<String> {
        vec![
            "--vty_socket".to_owned(),
            self.dir.path().display().to_string(),
        ]
    }

    /// bgpd's vty socket, `STATE_DIR/bgpd.vty`: what nsbeacon's default FRR transport connects to.
    pub fn bgpd_vty_socket(&self) -> PathBuf {
        self.dir.path().join("bgpd.vty")
    }

    /// Runs `vtysh --vty_socket DIR -c C1 -c C2 ...` (from the test's own namespace; the vty sockets are
    /// files, reachable from any namespace) and returns what it printed. Never panics on vtysh failure.
    pub fn vtysh(&self, commands: &[&str]) -> VtyshOutput {
        let mut cmd = Command::new("vtysh");
        cmd.args(self.vtysh_args());
        for c in commands {
            cmd.arg("-c").arg(c);
        }
        let Output {
            status,
            stdout,
            stderr,
        } = cmd.output().unwrap_or_else(|e| panic!("run vtysh: {e}"));
        VtyshOutput {
            success: status.success(),
            code: status.code(),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }

    /// Like [`FrrInstance::vtysh`], but panics (with the output) unless vtysh exits 0; returns stdout.
    pub fn vtysh_ok(&self, commands: &[&str]) -> String {
        let out = self.vtysh(commands);
        if !out.success {
            panic!(
                "vtysh {commands:?} failed ({:?}): {}{}",
                out.code, out.stdout, out.stderr
            );
        }
        out.stdout
    }

    /// The PID of `daemon`, if it is running under this instance.
    pub fn pid(&self, daemon: FrrDaemon) -> Option<u32> {
        self.daemons[daemon.index()].as_ref().map(DaemonGuard::pid)
    }

    /// What `daemon` has logged so far (stdout/stderr of the foreground process).
    pub fn log(&self, daemon: FrrDaemon) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{}.log", daemon.name())))
            .unwrap_or_default()
    }

    fn all_logs(&self) -> String {
        FrrDaemon::ALL
            .iter()
            .map(|d| format!("--- {}:\n{}", d.name(), self.log(*d)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Stops one daemon (SIGTERM, then SIGKILL after a grace period) and waits until it is reaped and its
    /// vty socket is gone, so vtysh reports it as not running.
    pub fn stop_daemon(&mut self, daemon: FrrDaemon) {
        if let Some(mut guard) = self.daemons[daemon.index()].take() {
            guard.stop(STOP_GRACE);
        }
        let _ = std::fs::remove_file(self.dir.path().join(format!("{}.vty", daemon.name())));
    }

    /// Kills one daemon with SIGKILL (a crash) and reaps it. Its vty socket file stays behind, as after a
    /// real crash.
    pub fn kill_daemon(&mut self, daemon: FrrDaemon) {
        if let Some(mut guard) = self.daemons[daemon.index()].take() {
            guard.kill();
        }
    }

    /// Stops all daemons (bgpd first). The state dir and config files stay, for [`FrrInstance::restart`].
    pub fn stop(&mut self) {
        for daemon in FrrDaemon::ALL.iter().rev() {
            self.stop_daemon(*daemon);
        }
        let _ = std::fs::remove_file(self.zserv_path());
    }

    /// Kills all daemons with SIGKILL at once.
    pub fn kill(&mut self) {
        for daemon in FrrDaemon::ALL.iter().rev() {
            self.kill_daemon(*daemon);
        }
    }

    /// Starts the daemons again after [`FrrInstance::stop`] (or [`FrrInstance::kill`]), from the config
    /// files, and waits until bgpd answers: lets a test change the world in between (e.g. remove kernel
    /// routes, as a reboot does).
    pub fn start_again(&mut self) {
        self.stop();
        self.start_daemons();
    }

    /// Starts one daemon again after [`FrrInstance::stop_daemon`] or [`FrrInstance::kill_daemon`] (a no-op
    /// while it runs) and returns at once: the caller waits for what it needs (vty socket, session).
    pub fn start_daemon_again(&mut self, daemon: FrrDaemon) {
        if self.daemons[daemon.index()].is_some() {
            return;
        }
        let _ = std::fs::remove_file(self.dir.path().join(format!("{}.vty", daemon.name())));
        self.start_daemon(daemon);
    }

    /// Stops everything and starts it again from the config files: the running config is lost, exactly
    /// as with a real FRR restart when nobody ran `write memory`.
    pub fn restart(&mut self) {
        self.stop();
        self.start_daemons();
    }

    /// Whether every daemon is still running.
    pub fn is_running(&mut self) -> bool {
        self.daemons
            .iter_mut()
            .all(|d| d.as_mut().is_some_and(DaemonGuard::is_running))
    }
}

impl Drop for FrrInstance {
    fn drop(&mut self) {
        // bgpd first, so it does not log zebra's disappearance; each guard kills by PID.
        for daemon in FrrDaemon::ALL.iter().rev() {
            self.daemons[daemon.index()] = None;
        }
    }
}
