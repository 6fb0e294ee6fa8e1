//! Knot DNS inside a lab namespace: the node's authoritative server (or a hidden primary).
//!
//! The testkit's `KnotServer` runs in the test's own namespace on loopback; a lab needs Knot inside the
//! node's namespace, answering on the anycast addresses (port 53) and on a local listener, so this runs
//! `knotd` (foreground, owned by a [`DaemonGuard`]) under `ip netns exec` and checks readiness with `kdig`
//! from inside the same namespace. Zone contents come from the testkit's [`Zone`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nsbeacon_testkit::knot::Zone;
use nsbeacon_testkit::netns::exec_in;
use nsbeacon_testkit::{DaemonGuard, Signal, require_binary, wait_until};

/// How long Knot gets to load its zones and answer.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How a [`LabKnot`] gets its zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KnotRole {
    /// Loads the zone from its own zone file.
    Standalone,
    /// The hidden primary: loads the zone from its file, allows zone transfers from anyone that can reach
    /// it (only the lab's node can), and sends NOTIFY to `notify` on every change.
    Primary {
        /// The secondaries to notify.
        notify: Vec<SocketAddr>,
    },
    /// A secondary: no zone file; transfers the zone from `primary` at start, on NOTIFY and on SOA refresh.
    Secondary {
        /// The primary to transfer from (and to accept NOTIFY from).
        primary: SocketAddr,
    },
}

/// A `knotd` in a lab namespace. Dropping it kills it by PID.
#[derive(Debug)]
pub struct LabKnot {
    guard: Option<DaemonGuard>,
    netns: String,
    dir: PathBuf,
    zone: Zone,
    listen: Vec<SocketAddr>,
    role: KnotRole,
}

impl LabKnot {
    /// Writes config (and, unless a secondary, the zone file) under `dir` (created), starts `knotd` in
    /// namespace `netns` listening on every address of `listen` (UDP and TCP), and waits until each answers
    /// the zone's SOA with `zone.serial` (a secondary: once it has transferred that serial). Panics with
    /// Knot's log when it does not come up.
    pub fn start(
        netns: &str,
        dir: &Path,
        zone: Zone,
        listen: &[SocketAddr],
        role: KnotRole,
    ) -> LabKnot {
        require_binary("knotd");
        require_binary("kdig");
        assert!(
            !listen.is_empty(),
            "LabKnot needs at least one listen address"
        );
        for sub in ["run", "storage", "zones"] {
            std::fs::create_dir_all(dir.join(sub))
                .unwrap_or_else(|e| panic!("create {}: {e}", dir.join(sub).display()));
        }
        let mut knot = LabKnot {
            guard: None,
            netns: netns.to_owned(),
            dir: dir.to_path_buf(),
            zone,
            listen: listen.to_vec(),
            role,
        };
        knot.write_files();
        knot.launch();
        knot
    }

    fn write_files(&self) {
        let d = self.dir.display();
        let listen = self
            .listen
            .iter()
            .map(|a| format!("{}@{}", a.ip(), a.port()))
            .collect::<Vec<_>>()
            .join(", ");
        let zone = &self.zone.name;
        let (peers, zone_extra) = match &self.role {
            KnotRole::Standalone => (String::new(), String::new()),
            KnotRole::Primary { notify } => {
                let mut peers = "acl:\n  - id: transfer_out\n    action: transfer\n".to_owned();
                let mut ids = Vec::new();
                if !notify.is_empty() {
                    peers.push_str("remote:\n");
                    for (i, addr) in notify.iter().enumerate() {
                        peers.push_str(&format!(
                            "  - id: secondary{i}\n    address: {}@{}\n",
                            addr.ip(),
                            addr.port()
                        ));
                        ids.push(format!("secondary{i}"));
                    }
                }
                let notify_line = if ids.is_empty() {
                    String::new()
                } else {
                    format!("    notify: [ {} ]\n", ids.join(", "))
                };
                (peers, format!("    acl: transfer_out\n{notify_line}"))
            }
            KnotRole::Secondary { primary } => (
                format!(
                    "remote:\n  - id: primary\n    address: {ip}@{port}\n\
                     acl:\n  - id: notify_in\n    address: {ip}\n    action: notify\n",
                    ip = primary.ip(),
                    port = primary.port()
                ),
                "    master: primary\n    acl: notify_in\n".to_owned(),
            ),
        };
        let identity = if matches!(self.role, KnotRole::Primary { .. }) {
            "lab-primary"
        } else {
            "lab-node"
        };
        let conf = format!(
            "server:\n    rundir: \"{d}/run\"\n    pidfile: \"{d}/run/knot.pid\"\n    listen: [ {listen} ]\n    \
             identity: \"{identity}\"\n    nsid: \"{identity}\"\n    background-workers: 1\n\
             log:\n  - target: stderr\n    any: info\n\
             control:\n    listen: \"{d}/run/knot.sock\"\n\
             database:\n    storage: \"{d}/storage\"\n\
             {peers}\
             template:\n  - id: default\n    storage: \"{d}/zones\"\n    file: \"%s.zone\"\n    \
             zonefile-sync: -1\n    zonefile-load: whole\n    journal-content: none\n\
             zone:\n  - domain: {zone}\n{zone_extra}"
        );
        let conf_path = self.config_path();
        std::fs::write(&conf_path, conf)
            .unwrap_or_else(|e| panic!("write {}: {e}", conf_path.display()));
        if !matches!(self.role, KnotRole::Secondary { .. }) {
            self.write_zone_file();
        }
    }

    fn write_zone_file(&self) {
        let path = self
            .dir
            .join("zones")
            .join(format!("{}zone", self.zone.name));
        std::fs::write(&path, self.zone.render())
            .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    fn launch(&mut self) {
        let mut cmd = exec_in(&self.netns, require_binary("knotd"));
        cmd.arg("-c").arg(self.config_path());
        let mut guard = DaemonGuard::spawn("knotd", cmd, Some(&self.log_path()));
        let serial = self.zone.serial;
        let ready = wait_until(READY_TIMEOUT, || {
            guard.is_running()
                && self
                    .listen
                    .iter()
                    .all(|a| self.soa_serial(*a, Duration::from_millis(300)) == Some(serial))
        });
        if !ready {
            panic!(
                "knotd in netns {} did not serve {} serial {serial} on {:?} within {READY_TIMEOUT:?}; log:\n{}",
                self.netns,
                self.zone.name,
                self.listen,
                self.log()
            );
        }
        self.guard = Some(guard);
    }

    /// The config file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("knot.conf")
    }

    /// The control socket (for `knotc -s`).
    pub fn control_socket(&self) -> PathBuf {
        self.dir.join("run").join("knot.sock")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("knotd.log")
    }

    /// Knot's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The addresses Knot listens on.
    pub fn listen(&self) -> &[SocketAddr] {
        &self.listen
    }

    /// The zone it serves (with the serial last written).
    pub fn zone(&self) -> &Zone {
        &self.zone
    }

    /// knotd's PID while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.guard.as_ref().map(DaemonGuard::pid)
    }

    /// Whether knotd runs (a SIGSTOPped knotd still runs).
    pub fn is_running(&mut self) -> bool {
        self.guard.as_mut().is_some_and(DaemonGuard::is_running)
    }

    /// SIGKILL (a crash). Queries are then refused (ICMP port unreachable / TCP RST).
    pub fn kill(&mut self) {
        if let Some(mut guard) = self.guard.take() {
            guard.kill();
        }
    }

    /// SIGTERM (SIGKILL after 5 s), waits until it is gone.
    pub fn stop(&mut self) {
        if let Some(mut guard) = self.guard.take() {
            guard.stop(Duration::from_secs(5));
        }
    }

    /// SIGSTOP: knotd hangs, queries time out. Returns once every thread of knotd is stopped (the signal
    /// alone returns before a busy worker thread has stopped), false if it could not be stopped.
    pub fn pause(&self) -> bool {
        let Some(guard) = self.guard.as_ref() else {
            return false;
        };
        let pid = guard.pid();
        guard.signal(Signal::SIGSTOP)
            && wait_until(Duration::from_secs(5), || all_threads_stopped(pid))
    }

    /// SIGCONT after [`pause`](Self::pause).
    pub fn resume(&self) -> bool {
        self.guard
            .as_ref()
            .is_some_and(|g| g.signal(Signal::SIGCONT))
    }

    /// Stops knotd if it runs and starts it again on the same files; waits until it answers.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// Sets the zone's SOA serial: rewrites the zone file, `knotc zone-reload`, waits until served.
    ///
    /// Panics on a secondary (its zone comes from the primary): set the serial on the primary and use
    /// [`expect_serial`](Self::expect_serial) on the secondary.
    pub fn set_serial(&mut self, serial: u32) {
        assert!(
            !matches!(self.role, KnotRole::Secondary { .. }),
            "set_serial on a secondary Knot: change the primary's zone instead"
        );
        self.zone = self.zone.clone().with_serial(serial);
        self.write_zone_file();
        let out = Command::new(require_binary("knotc"))
            .arg("-s")
            .arg(self.control_socket())
            .args(["-t", "10", "zone-reload", &self.zone.name])
            .output()
            .unwrap_or_else(|e| panic!("run knotc: {e}"));
        assert!(
            out.status.success(),
            "knotc zone-reload failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let addr = self.listen[0];
        assert!(
            wait_until(Duration::from_secs(10), || self
                .soa_serial(addr, Duration::from_millis(300))
                == Some(serial)),
            "knotd did not serve serial {serial} after reload; log:\n{}",
            self.log()
        );
    }

    /// Records that the zone (a secondary's, after the primary changed) should now be at `serial`, so a
    /// later [`restart`](Self::restart) waits for that serial; returns whether Knot serves it within
    /// `timeout`.
    pub fn expect_serial(&mut self, serial: u32, timeout: Duration) -> bool {
        self.zone = self.zone.clone().with_serial(serial);
        let addr = self.listen[0];
        wait_until(timeout, || {
            self.soa_serial(addr, Duration::from_millis(300)) == Some(serial)
        })
    }

    /// Runs `knotc -s <control socket> ARGS...` (e.g. `zone-freeze`, `zone-refresh`, `zone-status`).
    pub fn knotc(&self, args: &[&str]) -> std::process::Output {
        Command::new(require_binary("knotc"))
            .arg("-s")
            .arg(self.control_socket())
            .args(["-t", "10"])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("run knotc: {e}"))
    }

    /// The SOA serial served at `server` for the zone, queried with `kdig` from inside Knot's namespace
    /// (`None`: no answer within `timeout`, or no SOA in it).
    pub fn soa_serial(&self, server: SocketAddr, timeout: Duration) -> Option<u32> {
        kdig_soa_serial(&self.netns, server, &self.zone.name, timeout)
    }
}

/// Whether every thread of `pid` is in state T (stopped).
fn all_threads_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().all(|task| {
        std::fs::read_to_string(task.path().join("status")).is_ok_and(|status| {
            status
                .lines()
                .any(|l| l.starts_with("State:") && l.contains('T'))
        })
    })
}

/// Queries `zone`'s SOA at `server` with `kdig` run inside namespace `netns` (UDP, one try) and returns the
/// serial of the answer, if an authoritative answer came back within `timeout` (rounded up to a second,
/// kdig's granularity).
pub fn kdig_soa_serial(
    netns: &str,
    server: SocketAddr,
    zone: &str,
    timeout: Duration,
) -> Option<u32> {
    let secs = timeout.as_secs().max(1);
    let out = exec_in(netns, require_binary("kdig"))
        .arg(format!("@{}", server.ip()))
        .arg("-p")
        .arg(server.port().to_string())
        .arg(format!("+timeout={secs}"))
        .arg("+retry=0")
        .arg("+norecurse")
        .arg(zone)
        .arg("SOA")
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    // kdig prints `;; Flags: qr aa; QUERY: 1; ...` for an authoritative answer.
    if !text.to_ascii_lowercase().contains("flags: qr aa") {
        return None;
    }
    text.lines().filter(|l| !l.starts_with(';')).find_map(|l| {
        let fields: Vec<&str> = l.split_whitespace().collect();
        let soa = fields.iter().position(|f| *f == "SOA")?;
        fields.get(soa + 3)?.parse().ok()
    })
}
