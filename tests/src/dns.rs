//! The node's authoritative DNS server inside a lab namespace: Knot, NSD or BIND (and a Knot hidden primary).
//!
//! The testkit's servers run in the test's own namespace on loopback; a lab needs the server inside the
//! node's namespace, answering on the anycast addresses (port 53) and on a local listener, so this runs the
//! daemon in the foreground under `ip netns exec` (owned by a [`DaemonGuard`]) and checks readiness with
//! `kdig` from inside the same namespace. Zone contents come from the testkit's [`Zone`]. NSD forks server
//! processes, so signals (kill, pause, resume) go to the daemon's whole process tree.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nsbeacon_testkit::knot::Zone;
use nsbeacon_testkit::netns::exec_in;
use nsbeacon_testkit::process::{is_alive, signal};
use nsbeacon_testkit::{DaemonGuard, Signal, require_binary, wait_until};

/// BIND's statistics channel in the lab: loopback of the node namespace, which nothing else there uses.
const BIND_STATISTICS_ADDR: &str = "127.0.0.1:8053";
/// The same, as `statistics-channels` writes it.
const BIND_STATISTICS: &str = "127.0.0.1 port 8053 allow { 127.0.0.1; }";

/// How long the server gets to load its zone and answer.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Which authoritative server runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsServerKind {
    /// Knot DNS (`knotd`); reload with `knotc`.
    Knot,
    /// NSD (`nsd -d`); reload with SIGHUP.
    Nsd,
    /// BIND 9 (`named -g`); reload with SIGHUP.
    Bind,
}

impl DnsServerKind {
    /// All kinds, for test matrices.
    pub const ALL: [DnsServerKind; 3] =
        [DnsServerKind::Knot, DnsServerKind::Nsd, DnsServerKind::Bind];

    /// The daemon's binary.
    pub fn binary(self) -> &'static str {
        match self {
            DnsServerKind::Knot => "knotd",
            DnsServerKind::Nsd => "nsd",
            DnsServerKind::Bind => "named",
        }
    }
}

/// How a [`LabDns`] gets its zone (only Knot supports the primary/secondary roles here).
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

/// An authoritative DNS server in a lab namespace. Dropping it kills it (its whole process tree) by PID.
#[derive(Debug)]
pub struct LabDns {
    kind: DnsServerKind,
    guard: Option<DaemonGuard>,
    netns: String,
    dir: PathBuf,
    zone: Zone,
    listen: Vec<SocketAddr>,
    role: KnotRole,
}

impl LabDns {
    /// Writes config (and, unless a secondary, the zone file) under `dir` (created), starts the `kind` of
    /// server in namespace `netns` listening on every address of `listen` (UDP and TCP), and waits until
    /// each answers the zone's SOA with `zone.serial` (a secondary: once it has transferred that serial).
    /// Panics with the server's log when it does not come up.
    pub fn start(
        kind: DnsServerKind,
        netns: &str,
        dir: &Path,
        zone: Zone,
        listen: &[SocketAddr],
        role: KnotRole,
    ) -> LabDns {
        require_binary(kind.binary());
        require_binary("kdig");
        assert!(
            !listen.is_empty(),
            "LabDns needs at least one listen address"
        );
        assert!(
            kind == DnsServerKind::Knot || role == KnotRole::Standalone,
            "only Knot runs as a lab primary/secondary ({kind:?} was asked to be {role:?})"
        );
        for sub in ["run", "storage", "zones"] {
            std::fs::create_dir_all(dir.join(sub))
                .unwrap_or_else(|e| panic!("create {}: {e}", dir.join(sub).display()));
        }
        let mut knot = LabDns {
            kind,
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
        match self.kind {
            DnsServerKind::Knot => self.write_knot_config(),
            DnsServerKind::Nsd => self.write_nsd_config(),
            DnsServerKind::Bind => self.write_bind_config(),
        }
        if !matches!(self.role, KnotRole::Secondary { .. }) {
            self.write_zone_file();
        }
    }

    fn write_config(&self, text: &str) {
        let path = self.config_path();
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    fn write_nsd_config(&self) {
        let d = self.dir.display();
        let mut conf = String::from("server:\n");
        for addr in &self.listen {
            conf.push_str(&format!("    ip-address: {}@{}\n", addr.ip(), addr.port()));
        }
        conf.push_str(&format!(
            "    username: \"\"\n    chroot: \"\"\n    zonesdir: \"{d}/zones\"\n    pidfile: \"{d}/run/nsd.pid\"\n    \
             database: \"\"\n    xfrdfile: \"{d}/run/xfrd.state\"\n    zonelistfile: \"{d}/run/zone.list\"\n    \
             xfrdir: \"{d}/run\"\n    identity: \"lab-node\"\n    nsid: \"ascii_lab-node\"\n    server-count: 1\n    \
             verbosity: 1\nremote-control:\n    control-enable: yes\n    control-interface: \"{d}/run/nsd.ctl\"\nzone:\n    name: {zone}\n    zonefile: \"{zone}zone\"\n",
            zone = self.zone.name
        ));
        self.write_config(&conf);
    }

    fn write_bind_config(&self) {
        let d = self.dir.display();
        let mut conf = format!(
            "options {{\n  directory \"{d}/run\";\n  pid-file \"{d}/run/named.pid\";\n  \
             session-keyfile \"{d}/run/session.key\";\n  managed-keys-directory \"{d}/run\";\n  \
             recursion no;\n  dnssec-validation no;\n  server-id \"lab-node\";\n"
        );
        let v4: Vec<&SocketAddr> = self.listen.iter().filter(|a| a.is_ipv4()).collect();
        let v6: Vec<&SocketAddr> = self.listen.iter().filter(|a| a.is_ipv6()).collect();
        // BIND listens on every address of every `listen-on` clause; one clause per address and port.
        if v4.is_empty() {
            conf.push_str("  listen-on { none; };\n");
        }
        for a in v4 {
            conf.push_str(&format!(
                "  listen-on port {} {{ {}; }};\n",
                a.port(),
                a.ip()
            ));
        }
        if v6.is_empty() {
            conf.push_str("  listen-on-v6 { none; };\n");
        }
        for a in v6 {
            conf.push_str(&format!(
                "  listen-on-v6 port {} {{ {}; }};\n",
                a.port(),
                a.ip()
            ));
        }
        conf.push_str(&format!(
            "}};\ncontrols {{ }};\nstatistics-channels {{ inet {BIND_STATISTICS}; }};\nzone \"{zone}\" {{ type primary; file \"{d}/zones/{zone}zone\"; }};\n",
            zone = self.zone.name
        ));
        self.write_config(&conf);
    }

    fn write_knot_config(&self) {
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
        self.write_config(&conf);
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
        let mut cmd = exec_in(&self.netns, require_binary(self.kind.binary()));
        match self.kind {
            DnsServerKind::Knot => cmd.arg("-c").arg(self.config_path()),
            DnsServerKind::Nsd => cmd.arg("-d").arg("-c").arg(self.config_path()),
            DnsServerKind::Bind => cmd.args(["-g", "-n", "1", "-c"]).arg(self.config_path()),
        };
        let mut guard = DaemonGuard::spawn(self.kind.binary(), cmd, Some(&self.log_path()));
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
                "{} in netns {} did not serve {} serial {serial} on {:?} within {READY_TIMEOUT:?}; log:\n{}",
                self.kind.binary(),
                self.netns,
                self.zone.name,
                self.listen,
                self.log()
            );
        }
        self.guard = Some(guard);
    }

    /// NSD's unix control socket (`control-interface:`), where `nsd-control` and nsbeacon's NSD load
    /// reader connect.
    pub fn nsd_control_socket(&self) -> PathBuf {
        self.dir.join("run").join("nsd.ctl")
    }

    /// BIND's statistics channel (JSON at `/json/v1/server`), inside the server's namespace.
    pub fn bind_statistics_url(&self) -> String {
        format!("http://{BIND_STATISTICS_ADDR}/json/v1/server")
    }

    /// Which server this is.
    pub fn kind(&self) -> DnsServerKind {
        self.kind
    }

    /// The config file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join(match self.kind {
            DnsServerKind::Knot => "knot.conf",
            DnsServerKind::Nsd => "nsd.conf",
            DnsServerKind::Bind => "named.conf",
        })
    }

    /// Knot's control socket (for `knotc -s`; Knot only).
    pub fn control_socket(&self) -> PathBuf {
        self.dir.join("run").join("knot.sock")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join(format!("{}.log", self.kind.binary()))
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The addresses the server listens on.
    pub fn listen(&self) -> &[SocketAddr] {
        &self.listen
    }

    /// The zone it serves (with the serial last written).
    pub fn zone(&self) -> &Zone {
        &self.zone
    }

    /// The daemon's (main) PID while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.guard.as_ref().map(DaemonGuard::pid)
    }

    /// Whether the daemon runs (a SIGSTOPped one still runs).
    pub fn is_running(&mut self) -> bool {
        self.guard.as_mut().is_some_and(DaemonGuard::is_running)
    }

    /// The live processes of the server: the daemon and every process it forked (NSD serves from child
    /// processes). Empty when the daemon is not running.
    pub fn process_tree(&self) -> Vec<u32> {
        self.pid()
            .filter(|pid| is_alive(*pid))
            .map(process_tree)
            .unwrap_or_default()
    }

    /// SIGKILL to the whole process tree (a crash). Queries are then refused (ICMP port unreachable).
    pub fn kill(&mut self) {
        let tree = self.process_tree();
        for pid in &tree {
            signal(*pid, Signal::SIGKILL);
        }
        if let Some(mut guard) = self.guard.take() {
            guard.kill();
        }
        wait_until(Duration::from_secs(5), || {
            tree.iter().all(|p| !is_alive(*p))
        });
    }

    /// SIGTERM (SIGKILL after 5 s), waits until the whole process tree is gone.
    pub fn stop(&mut self) {
        let tree = self.process_tree();
        if let Some(mut guard) = self.guard.take() {
            guard.stop(Duration::from_secs(5));
        }
        for pid in &tree {
            if is_alive(*pid) {
                signal(*pid, Signal::SIGKILL);
            }
        }
        wait_until(Duration::from_secs(5), || {
            tree.iter().all(|p| !is_alive(*p))
        });
    }

    /// SIGSTOP to the whole process tree: the server hangs, queries time out. Returns once every thread
    /// is stopped (the signal alone returns before a busy worker thread has stopped), false if it could
    /// not be stopped.
    pub fn pause(&self) -> bool {
        let tree = self.process_tree();
        !tree.is_empty()
            && tree.iter().all(|pid| signal(*pid, Signal::SIGSTOP))
            && wait_until(Duration::from_secs(5), || {
                tree.iter().all(|pid| all_threads_stopped(*pid))
            })
    }

    /// SIGCONT to the whole process tree after [`pause`](Self::pause).
    pub fn resume(&self) -> bool {
        let tree = self.process_tree();
        !tree.is_empty() && tree.iter().all(|pid| signal(*pid, Signal::SIGCONT))
    }

    /// Stops the server if it runs and starts it again on the same files; waits until it answers.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// Sets the zone's SOA serial: rewrites the zone file, reloads (`knotc zone-reload`, SIGHUP for NSD
    /// and BIND), waits until served.
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
        match self.kind {
            DnsServerKind::Knot => {
                let out = self.knotc(&["zone-reload", &self.zone.name]);
                assert!(
                    out.status.success(),
                    "knotc zone-reload failed: {}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            DnsServerKind::Nsd | DnsServerKind::Bind => {
                assert!(
                    self.pid().is_some_and(|pid| signal(pid, Signal::SIGHUP)),
                    "SIGHUP to {} failed: not running",
                    self.kind.binary()
                );
            }
        }
        let addr = self.listen[0];
        assert!(
            wait_until(Duration::from_secs(10), || self
                .soa_serial(addr, Duration::from_millis(300))
                == Some(serial)),
            "{} did not serve serial {serial} after reload; log:\n{}",
            self.kind.binary(),
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
    /// Panics unless this is Knot.
    pub fn knotc(&self, args: &[&str]) -> std::process::Output {
        assert_eq!(
            self.kind,
            DnsServerKind::Knot,
            "knotc on a {:?} server",
            self.kind
        );
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

/// `pid` and all its live descendants (from `/proc/*/stat` parent links).
fn process_tree(pid: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(child) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            // The 4th field of /proc/PID/stat, after the `(comm)` that may contain spaces, is the PPID.
            let ppid = std::fs::read_to_string(entry.path().join("stat"))
                .ok()
                .and_then(|stat| {
                    let after = stat.rsplit_once(')')?.1.to_owned();
                    after.split_whitespace().nth(1)?.parse::<u32>().ok()
                });
            if let Some(ppid) = ppid {
                parents.push((child, ppid));
            }
        }
    }
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(
            parents
                .iter()
                .filter(|(_, p)| *p == parent)
                .map(|(c, _)| *c),
        );
        i += 1;
    }
    tree.retain(|p| is_alive(*p));
    tree
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
