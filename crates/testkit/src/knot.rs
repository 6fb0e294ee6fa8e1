//! A real Knot DNS (`knotd`) for tests: own config, zone files, rundir, storage and control socket in a
//! temp dir, listening on 127.0.0.1 (or another loopback address) and a free port, run in the foreground
//! and owned by a [`DaemonGuard`] so it dies with the test.
//!
//! ```no_run
//! use nsbeacon_testkit::knot::{KnotConfig, KnotServer, Zone};
//!
//! let mut knot = KnotServer::start(
//!     KnotConfig::new()
//!         .with_nsid("node-a")
//!         .with_zone(Zone::new("example.com.", 2024010101).with_record("health IN TXT \"ok\"")),
//! );
//! let addr = knot.addr(); // 127.0.0.1:<free port>, every zone loaded
//! knot.set_serial("example.com.", 2024010102); // rewrites the zone file, reloads, waits for the serial
//! knot.stop(); // now refused
//! knot.restart(); // same port again
//! # let _ = addr;
//! ```
//!
//! `start` returns only once every configured zone answers its SOA authoritatively with the configured
//! serial, so tests need no sleeps. Failures panic with the daemon's log (this is test support).

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use crate::net::free_port;
use crate::process::{DaemonGuard, Signal, require_binary};

/// One zone and its zone file contents. Names are absolute (trailing dot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    /// The apex, e.g. `example.com.`.
    pub name: String,
    /// SOA serial written into the zone file.
    pub serial: u32,
    /// Extra records in zone-file syntax, relative to the apex (e.g. `health IN TXT "ok"`).
    pub records: Vec<String>,
}

impl Zone {
    /// A minimal valid zone: SOA with `serial`, `NS ns1`, `ns1 A 192.0.2.53` and an apex `A 192.0.2.1`.
    pub fn new(name: &str, serial: u32) -> Zone {
        let name = if name.ends_with('.') {
            name.to_owned()
        } else {
            format!("{name}.")
        };
        Zone {
            name,
            serial,
            records: Vec::new(),
        }
    }

    /// Adds one record line (zone-file syntax, names relative to the apex).
    pub fn with_record(mut self, record: &str) -> Zone {
        self.records.push(record.to_owned());
        self
    }

    /// Sets the serial (write it with [`KnotServer::write_zone`] to make Knot serve it).
    pub fn with_serial(mut self, serial: u32) -> Zone {
        self.serial = serial;
        self
    }

    /// The zone file text.
    pub fn render(&self) -> String {
        let mut text = String::with_capacity(256);
        let _ = write!(
            text,
            "$ORIGIN {name}\n$TTL 300\n@ IN SOA ns1.{name} hostmaster.{name} {serial} 3600 600 86400 300\n\
             @ IN NS ns1\nns1 IN A 192.0.2.53\n@ IN A 192.0.2.1\n",
            name = self.name,
            serial = self.serial
        );
        for record in &self.records {
            text.push_str(record);
            text.push('\n');
        }
        text
    }

    fn file_name(&self) -> String {
        format!("{}.zone", self.name.trim_end_matches('.'))
    }
}

/// `count` minimal zones named `z00000.<suffix>`, `z00001.<suffix>`, ... all with `serial`.
/// `suffix` is given without dots at either end, e.g. `bulk.test`.
pub fn bulk_zones(count: usize, suffix: &str, serial: u32) -> Vec<Zone> {
    (0..count)
        .map(|i| Zone::new(&format!("z{i:05}.{suffix}."), serial))
        .collect()
}

/// Starts, in parallel, the two servers of a serial sweep: a local Knot serving `count` [`bulk_zones`]
/// at serial 1, and a reference Knot serving the same zones with every 10th zone one serial ahead, so
/// that the sweep has real lag to report. Returns `(local, reference)`.
pub fn start_sweep_pair(count: usize, suffix: &str) -> (KnotServer, KnotServer) {
    let local_zones = bulk_zones(count, suffix, 1);
    let reference_zones: Vec<Zone> = local_zones
        .iter()
        .enumerate()
        .map(|(i, z)| {
            if i % 10 == 0 {
                z.clone().with_serial(2)
            } else {
                z.clone()
            }
        })
        .collect();
    std::thread::scope(|s| {
        let local = s.spawn(|| KnotServer::start(KnotConfig::new().with_zones(local_zones)));
        let reference =
            s.spawn(|| KnotServer::start(KnotConfig::new().with_zones(reference_zones)));
        (
            local
                .join()
                .unwrap_or_else(|e| std::panic::resume_unwind(e)),
            reference
                .join()
                .unwrap_or_else(|e| std::panic::resume_unwind(e)),
        )
    })
}

/// How to run a Knot instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnotConfig {
    /// Zones to serve.
    pub zones: Vec<Zone>,
    /// EDNS NSID value (`server.nsid`), if any.
    pub nsid: Option<String>,
    /// CHAOS `id.server`/`hostname.bind` value (`server.identity`), if any.
    pub identity: Option<String>,
    /// Address to listen on (default 127.0.0.1).
    pub ip: IpAddr,
    /// Port to listen on (default: a free one, retried on a bind race).
    pub port: Option<u16>,
    /// How long [`KnotServer::start`] waits for every zone to load.
    pub ready_timeout: Duration,
    /// Load `mod-stats` as a global module, so `knotc stats` (and nsbeacon's Knot load reader) count
    /// requests.
    pub stats: bool,
    /// Load `mod-rrl` as a global module with this `rate-limit` (responses per second per source /24 and
    /// name) and `slip: 0` (everything over the limit dropped): a deliberately small server, whose answers
    /// to a client sharing the flood's source are lost while the flood lasts, as on a saturated server.
    pub rate_limit: Option<u32>,
}

impl Default for KnotConfig {
    fn default() -> Self {
        KnotConfig {
            zones: Vec::new(),
            nsid: None,
            identity: None,
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: None,
            ready_timeout: Duration::from_secs(120),
            stats: false,
            rate_limit: None,
        }
    }
}

impl KnotConfig {
    /// No zones, no NSID, 127.0.0.1 and a free port.
    pub fn new() -> KnotConfig {
        KnotConfig::default()
    }

    /// Adds one zone.
    pub fn with_zone(mut self, zone: Zone) -> KnotConfig {
        self.zones.push(zone);
        self
    }

    /// Adds many zones.
    pub fn with_zones(mut self, zones: impl IntoIterator<Item = Zone>) -> KnotConfig {
        self.zones.extend(zones);
        self
    }

    /// Sets the NSID.
    pub fn with_nsid(mut self, nsid: &str) -> KnotConfig {
        self.nsid = Some(nsid.to_owned());
        self
    }

    /// Sets the CHAOS identity.
    pub fn with_identity(mut self, identity: &str) -> KnotConfig {
        self.identity = Some(identity.to_owned());
        self
    }

    /// Sets the listen address.
    pub fn with_ip(mut self, ip: IpAddr) -> KnotConfig {
        self.ip = ip;
        self
    }

    /// Sets a fixed port.
    pub fn with_port(mut self, port: u16) -> KnotConfig {
        self.port = Some(port);
        self
    }

    /// Loads `mod-stats` (request counters over the control socket).
    pub fn with_stats(mut self) -> KnotConfig {
        self.stats = true;
        self
    }

    /// Loads `mod-rrl` with `rate-limit` responses per second and `slip: 0` (see [`KnotConfig::rate_limit`]).
    pub fn with_rate_limit(mut self, rate_limit: u32) -> KnotConfig {
        self.rate_limit = Some(rate_limit);
        self
    }
}

/// A running (or stopped) Knot instance. Dropping it kills the daemon and deletes its directory.
#[derive(Debug)]
pub struct KnotServer {
    config: KnotConfig,
    addr: SocketAddr,
    guard: Option<DaemonGuard>,
    // Declared last so it is deleted after the daemon is gone.
    dir: tempfile::TempDir,
}

impl KnotServer {
    /// Writes the config and zone files, starts `knotd` in the foreground and waits until every zone
    /// answers its SOA with AA and the configured serial. Panics (with the daemon log) on failure.
    pub fn start(config: KnotConfig) -> KnotServer {
        require_binary("knotd");
        require_binary("knotc");
        let attempts = if config.port.is_some() { 1 } else { 3 };
        let mut last_error = String::new();
        for _ in 0..attempts {
            let port = config.port.unwrap_or_else(free_port);
            let dir = tempfile::Builder::new()
                .prefix("nsbeacon-knot-")
                .tempdir()
                .unwrap_or_else(|e| panic!("create a temp dir for knotd: {e}"));
            let mut server = KnotServer {
                config: config.clone(),
                addr: SocketAddr::new(config.ip, port),
                guard: None,
                dir,
            };
            server.write_files();
            match server.launch() {
                Ok(()) => return server,
                Err(e) => last_error = e,
            }
        }
        panic!("knotd did not start: {last_error}");
    }

    /// Where it listens (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The instance's directory (config, zones, rundir, storage, log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The config file path.
    pub fn config_path(&self) -> PathBuf {
        self.dir().join("knot.conf")
    }

    /// The control socket path.
    pub fn control_socket(&self) -> PathBuf {
        self.dir().join("run").join("knot.sock")
    }

    /// The zones as configured (serials updated by [`KnotServer::set_serial`]/[`KnotServer::write_zone`]).
    pub fn zones(&self) -> &[Zone] {
        &self.config.zones
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir().join("knotd.log")).unwrap_or_default()
    }

    /// The daemon's PID (0 when stopped).
    pub fn pid(&self) -> u32 {
        self.guard.as_ref().map(DaemonGuard::pid).unwrap_or(0)
    }

    /// Whether the daemon process is running.
    pub fn is_running(&mut self) -> bool {
        self.guard.as_mut().is_some_and(DaemonGuard::is_running)
    }

    /// Sends a signal, e.g. `Signal::SIGSTOP` to freeze it (queries then time out) and `SIGCONT` to thaw.
    pub fn signal(&self, sig: Signal) -> bool {
        self.guard.as_ref().is_some_and(|g| g.signal(sig))
    }

    /// Freezes the daemon with SIGSTOP and waits until every one of its threads is stopped, so that no
    /// worker answers afterwards (SIGSTOP is delivered asynchronously). Queries then time out.
    pub fn freeze(&self) {
        assert!(self.signal(Signal::SIGSTOP), "knotd is not running");
        let pid = self.pid();
        let all_stopped = || {
            let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
                return false;
            };
            tasks.flatten().all(|task| {
                std::fs::read_to_string(task.path().join("stat")).is_ok_and(|stat| {
                    // The state follows the parenthesised command name.
                    stat.rsplit_once(") ")
                        .is_some_and(|(_, rest)| rest.starts_with('T') || rest.starts_with('t'))
                })
            })
        };
        assert!(
            crate::wait_until(Duration::from_secs(5), all_stopped),
            "knotd (pid {pid}) did not stop after SIGSTOP"
        );
    }

    /// Resumes a daemon frozen by [`KnotServer::freeze`].
    pub fn thaw(&self) {
        assert!(self.signal(Signal::SIGCONT), "knotd is not running");
    }

    /// Stops the daemon gracefully (SIGTERM, SIGKILL after 5 s) and waits until it is gone. The port is
    /// then closed: UDP queries get ICMP port unreachable, TCP connects are refused.
    pub fn stop(&mut self) {
        if let Some(mut guard) = self.guard.take() {
            guard.stop(Duration::from_secs(5));
        }
    }

    /// Kills the daemon with SIGKILL at once (a crash).
    pub fn kill(&mut self) {
        if let Some(mut guard) = self.guard.take() {
            guard.kill();
        }
    }

    /// Stops the daemon if running and starts it again on the same address and port, with the current
    /// zone files; waits until every zone is loaded.
    pub fn restart(&mut self) {
        self.stop();
        if let Err(e) = self.launch() {
            panic!("knotd did not restart: {e}");
        }
    }

    /// Runs `knotc -s <control socket> ARGS...` and returns its output.
    pub fn knotc(&self, args: &[&str]) -> Output {
        Command::new(require_binary("knotc"))
            .arg("-s")
            .arg(self.control_socket())
            .arg("-t")
            .arg("10")
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("run knotc: {e}"))
    }

    /// Rewrites `zone`'s file (the zone must already be configured), reloads it, and waits until Knot
    /// serves the new serial.
    pub fn write_zone(&mut self, zone: Zone) {
        let Some(slot) = self.config.zones.iter_mut().find(|z| z.name == zone.name) else {
            panic!("zone {} is not configured in this Knot instance", zone.name);
        };
        *slot = zone.clone();
        self.write_zone_file(&zone);
        let out = self.knotc(&["zone-reload", &zone.name]);
        assert!(
            out.status.success(),
            "knotc zone-reload {} failed: {}{}",
            zone.name,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if soa_query(self.addr, &zone.name, Duration::from_millis(500))
                .is_some_and(|r| r.authoritative && r.serial == Some(zone.serial))
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!(
            "knotd did not serve serial {} for {} after reload; log:\n{}",
            zone.serial,
            zone.name,
            self.log()
        );
    }

    /// Sets `zone`'s SOA serial: rewrites the zone file, reloads, waits until served.
    pub fn set_serial(&mut self, zone: &str, serial: u32) {
        let zone = Zone::new(zone, 0);
        let Some(current) = self.config.zones.iter().find(|z| z.name == zone.name) else {
            panic!("zone {} is not configured in this Knot instance", zone.name);
        };
        let updated = current.clone().with_serial(serial);
        self.write_zone(updated);
    }

    /// The SOA serial Knot serves for `zone` right now (`None` if no authoritative SOA answer).
    pub fn serial(&self, zone: &str) -> Option<u32> {
        let zone = Zone::new(zone, 0);
        soa_query(self.addr, &zone.name, Duration::from_secs(1))
            .filter(|r| r.authoritative)
            .and_then(|r| r.serial)
    }

    fn write_zone_file(&self, zone: &Zone) {
        let path = self.dir().join("zones").join(zone.file_name());
        std::fs::write(&path, zone.render())
            .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    fn write_files(&self) {
        let dir = self.dir();
        for sub in ["run", "storage", "zones"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap_or_else(|e| panic!("create {sub}: {e}"));
        }
        let listen = match self.addr {
            SocketAddr::V4(a) => format!("{}@{}", a.ip(), a.port()),
            SocketAddr::V6(a) => format!("{}@{}", a.ip(), a.port()),
        };
        let d = dir.display();
        let mut conf = format!(
            "server:\n    rundir: \"{d}/run\"\n    pidfile: \"{d}/run/knot.pid\"\n    listen: {listen}\n    \
             background-workers: 1\n"
        );
        if let Some(nsid) = &self.config.nsid {
            let _ = writeln!(conf, "    nsid: \"{nsid}\"");
        }
        if let Some(identity) = &self.config.identity {
            let _ = writeln!(conf, "    identity: \"{identity}\"");
        }
        let _ = write!(
            conf,
            "log:\n  - target: stderr\n    any: info\ncontrol:\n    listen: \"{d}/run/knot.sock\"\n\
             database:\n    storage: \"{d}/storage\"\n"
        );
        let mut modules = Vec::new();
        if self.config.stats {
            conf.push_str("mod-stats:\n  - id: default\n");
            modules.push("mod-stats/default");
        }
        if let Some(rate) = self.config.rate_limit {
            let _ = write!(
                conf,
                "mod-rrl:\n  - id: default\n    rate-limit: {rate}\n    slip: 0\n"
            );
            modules.push("mod-rrl/default");
        }
        let _ = write!(
            conf,
            "template:\n  - id: default\n    storage: \"{d}/zones\"\n    \
             file: \"%s.zone\"\n    zonefile-sync: -1\n    zonefile-load: whole\n    journal-content: none\n"
        );
        if !modules.is_empty() {
            let _ = writeln!(conf, "    global-module: [ {} ]", modules.join(", "));
        }
        if !self.config.zones.is_empty() {
            conf.push_str("zone:\n");
        }
        for zone in &self.config.zones {
            let _ = writeln!(conf, "  - domain: {}", zone.name);
            self.write_zone_file(zone);
        }
        let path = self.config_path();
        std::fs::write(&path, conf).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    fn launch(&mut self) -> Result<(), String> {
        let log = self.dir().join("knotd.log");
        let mut cmd = Command::new(require_binary("knotd"));
        cmd.arg("-c").arg(self.config_path());
        let mut guard = DaemonGuard::spawn("knotd", cmd, Some(&log));
        let deadline = Instant::now() + self.config.ready_timeout;
        let mut pending = self.config.zones.iter();
        let mut current = pending.next();
        loop {
            if !guard.is_running() {
                return Err(format!("knotd exited during startup; log:\n{}", self.log()));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "knotd not ready after {:?} (waiting for {:?}); log:\n{}",
                    self.config.ready_timeout,
                    current.map(|z| &z.name),
                    self.log()
                ));
            }
            if !self.control_socket().exists() {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            match current {
                None => break,
                Some(zone) => {
                    let ready = soa_query(self.addr, &zone.name, Duration::from_millis(200))
                        .is_some_and(|r| r.authoritative && r.serial == Some(zone.serial));
                    if ready {
                        current = pending.next();
                    } else {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
            }
        }
        self.guard = Some(guard);
        Ok(())
    }
}

/// What [`soa_query`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SoaReply {
    /// The reply's rcode (low 4 bits).
    pub rcode: u8,
    /// The AA flag.
    pub authoritative: bool,
    /// The serial of the first SOA in the answer section, if any.
    pub serial: Option<u32>,
}

/// A dependency-free SOA query over UDP (used to wait for Knot; tests should use the prober).
/// `None` on timeout, I/O error, or a reply that is not ours.
pub fn soa_query(addr: SocketAddr, zone: &str, timeout: Duration) -> Option<SoaReply> {
    let bind: SocketAddr = if addr.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(bind).ok()?;
    socket.connect(addr).ok()?;
    socket.set_read_timeout(Some(timeout)).ok()?;
    static NEXT_ID: AtomicU16 = AtomicU16::new(1);
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed) ^ (std::process::id() as u16);
    let mut query = Vec::with_capacity(64);
    query.extend_from_slice(&id.to_be_bytes());
    query.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in zone
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        query.push(u8::try_from(label.len()).ok()?);
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 6, 0, 1]);
    socket.send(&query).ok()?;
    let mut buf = [0u8; 4096];
    let len = socket.recv(&mut buf).ok()?;
    parse_soa_reply(&buf[..len], id)
}

fn skip_name(buf: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        let len = *buf.get(pos)?;
        if len == 0 {
            return Some(pos + 1);
        }
        if len & 0xC0 == 0xC0 {
            return Some(pos + 2);
        }
        pos += 1 + usize::from(len);
    }
}

fn parse_soa_reply(buf: &[u8], id: u16) -> Option<SoaReply> {
    if buf.len() < 12 || u16::from_be_bytes([buf[0], buf[1]]) != id || buf[2] & 0x80 == 0 {
        return None;
    }
    let authoritative = buf[2] & 0x04 != 0;
    let rcode = buf[3] & 0x0F;
    let questions = u16::from_be_bytes([buf[4], buf[5]]);
    let answers = u16::from_be_bytes([buf[6], buf[7]]);
    let mut pos = 12;
    for _ in 0..questions {
        pos = skip_name(buf, pos)? + 4;
    }
    let mut serial = None;
    for _ in 0..answers {
        pos = skip_name(buf, pos)?;
        let rtype = u16::from_be_bytes([*buf.get(pos)?, *buf.get(pos + 1)?]);
        let rdlen = usize::from(u16::from_be_bytes([*buf.get(pos + 8)?, *buf.get(pos + 9)?]));
        let rdata = pos + 10;
        if rtype == 6 {
            let after_names = skip_name(buf, skip_name(buf, rdata)?)?;
            let bytes = buf.get(after_names..after_names + 4)?;
            serial = Some(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]));
            break;
        }
        pos = rdata + rdlen;
    }
    Some(SoaReply {
        rcode,
        authoritative,
        serial,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_file_and_bulk_names() {
        let zone = Zone::new("example.com", 42).with_record("www IN A 192.0.2.80");
        assert_eq!(zone.name, "example.com.");
        let text = zone.render();
        assert!(text.contains("hostmaster.example.com. 42 3600"), "{text}");
        assert!(text.ends_with("www IN A 192.0.2.80\n"));
        let bulk = bulk_zones(10_000, "bulk.test", 1);
        assert_eq!(bulk.len(), 10_000);
        assert_eq!(bulk[0].name, "z00000.bulk.test.");
        assert_eq!(bulk[9_999].name, "z09999.bulk.test.");
    }

    #[test]
    fn knot_without_zones_refuses_and_serial_changes_are_served() {
        let empty = KnotServer::start(KnotConfig::new());
        let reply =
            soa_query(empty.addr(), "example.com.", Duration::from_secs(1)).expect("a reply");
        assert_eq!(reply.rcode, 5, "REFUSED");
        assert!(!reply.authoritative);

        let mut knot = KnotServer::start(KnotConfig::new().with_zone(Zone::new("example.com.", 1)));
        assert_eq!(knot.serial("example.com."), Some(1));
        knot.set_serial("example.com.", 2);
        assert_eq!(knot.serial("example.com."), Some(2));
        knot.kill();
        assert_eq!(knot.serial("example.com."), None);
        knot.restart();
        assert_eq!(
            knot.serial("example.com."),
            Some(2),
            "the rewritten zone file survives a restart"
        );
    }
}
