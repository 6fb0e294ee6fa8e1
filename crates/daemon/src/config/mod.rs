//! Configuration: TOML -> serde structs -> one validation pass -> typed, checked [`Config`].
//!
//! Parsing happens in two stages:
//!
//! 1. TOML syntax and structure (`deny_unknown_fields`): a typo in a key name, a value of the wrong type or
//!    broken TOML stops here with the line, column, key path and a hint ([`ConfigError::Syntax`]). The
//!    TOML parser stops at the first such error, so these are reported one at a time (and say so).
//! 2. One validation pass over the raw values (durations, addresses, names, route targets, cross-references)
//!    that collects *all* problems, each with its key path and a hint ([`ConfigError::Invalid`]), e.g.
//!    `service[1].check[0].timeout: 2s is longer than service[1].interval 1s`.
//!
//! Files are read through [`crate::file`]: regular files only, at most [`MAX_CONFIG_BYTES`] (zones files
//! [`MAX_ZONES_FILE_BYTES`]), UTF-8, within [`LOAD_DEADLINE`].
//!
//! Values that need interpretation (durations such as `"500ms"`, socket addresses, route targets) are read
//! as plain strings in stage 1 and converted in stage 2 for exactly that reason: a bad duration in one
//! service must not hide a bad target in another.
//!
//! The defaults are chosen for an anycast authoritative DNS node and documented on the constants below and
//! in `deploy/nsbeacon.example.toml`.

// A ConfigError is returned once per load (start-up, check-config, SIGHUP), so its size costs nothing;
// plain fields keep it easy to match and to print.
#![allow(clippy::result_large_err)]

mod explain;
mod locate;
mod raw;
mod validate;

pub(crate) use validate::fmt_duration;

#[cfg(test)]
mod tests;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nsbeacon_prober::proto::rr::{Name, RecordType};
use nsbeacon_prober::{ProbeSpec, Transport};
use nsbeacon_routing::RouteTarget;
use nsbeacon_routing::frr::{FrrAnnounce, FrrTransport};

use crate::file::{self, FileError};

/// Where `nsbeacon` looks for its configuration when `-c PATH` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/nsbeacon/nsbeacon.toml";

/// TCP port of the HTTP endpoint (`/metrics`, `/status`, `/healthz`). 9753 is not assigned by IANA and
/// is not in the Prometheus default-port allocation list, so it does not collide with common exporters.
pub const DEFAULT_HTTP_PORT: u16 = 9753;

/// Default HTTP listen address: loopback only, because `/status` reveals the node's routing decisions.
pub const DEFAULT_HTTP_LISTEN: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
    DEFAULT_HTTP_PORT,
);

/// Default state directory (drain state survives restarts here).
pub const DEFAULT_STATE_DIR: &str = "/var/lib/nsbeacon";

/// Default BIRD 2 control socket of the Debian/Ubuntu packages.
pub const DEFAULT_BIRD_SOCKET: &str = "/run/bird/bird.ctl";

/// Default `vtysh` binary of the FRR packages (used with `via = "vtysh"`).
pub const DEFAULT_VTYSH: &str = "/usr/bin/vtysh";

/// Default bgpd vty socket of the FRR packages (used with `via = "socket"`, the default).
pub const DEFAULT_BGPD_VTY_SOCKET: &str = nsbeacon_routing::frr::DEFAULT_BGPD_VTY_SOCKET;

/// Default shortest IPv4 prefix an FRR target may have (`[backend] min_prefix_length_v4`): nobody announces
/// a block larger than a /8 for anycast DNS, so a shorter one is a typo (`10.0.0.0/1` for `/31`).
pub const DEFAULT_MIN_PREFIX_LENGTH_V4: u8 = 8;

/// Default shortest IPv6 prefix an FRR target may have (`[backend] min_prefix_length_v6`); RIR allocations
/// start around /32, so a prefix shorter than /16 is a typo.
pub const DEFAULT_MIN_PREFIX_LENGTH_V6: u8 = 16;

/// Default bound on one BIRD control-socket command. BIRD answers in well under a millisecond; a BIRD busy
/// reconfiguring a large table may take longer, and the reconciler retries anyway.
pub const DEFAULT_BIRD_TIMEOUT: Duration = Duration::from_secs(2);

/// Default bound on one FRR operation (over the vty socket a command takes about a millisecond, one vtysh
/// call 30-40 ms; a vtysh still running is killed, a vty connection still waiting is dropped).
pub const DEFAULT_FRR_TIMEOUT: Duration = Duration::from_secs(5);

/// Default reconcile interval: how often desired route states are re-compared with what the BGP daemon
/// really does. Short, because a restarted BIRD re-enables a withdrawn protocol from its own config and
/// attracts traffic to a broken node until nsbeacon notices; a read-back is cheap (one socket round-trip).
pub const DEFAULT_RECONCILE_INTERVAL: Duration = Duration::from_secs(2);

/// Default probe interval of a service's query checks. With rise = fall = 3 a dead server is withdrawn
/// about 3 s after it stops answering, and a recovered one is announced again about 3 s later.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);

/// Upper bound of the default per-exchange timeout of query checks. The default is half the check's
/// interval (a quarter with a CHAOS TXT identity, which sends a second query), at most this: a local authoritative server answers in well under a millisecond, so half a
/// second without an answer is a failure, and the probe always ends before the next one is due.
pub const DEFAULT_TIMEOUT_CAP: Duration = Duration::from_millis(500);

/// Default `rise`: consecutive passing probes before a check counts as up (and before anything is announced
/// at start-up).
pub const DEFAULT_RISE: u32 = 3;

/// Default `fall`: consecutive failing probes before a check counts as down. One lost UDP packet must not
/// withdraw a route.
pub const DEFAULT_FALL: u32 = 3;

/// Default `confirm_interval`: after a failing probe, the check is probed again this soon (instead of
/// at the next interval) until `fall` is reached or a probe passes. A crashed server (its port refused
/// at once) is withdrawn after `fall` probes 20 ms apart, about 45 ms after the first refused probe,
/// rather than `fall` intervals; a single lost packet costs one extra probe.
pub const DEFAULT_CONFIRM_INTERVAL: Duration = Duration::from_millis(20);

/// Shortest "auto" `confirm_timeout`. A local authoritative server answers in well under a
/// millisecond, so a confirmation that waited 50 ms has waited about 100 times its normal answer time:
/// the server is not merely slow, it is not answering.
pub const CONFIRM_TIMEOUT_FLOOR: Duration = Duration::from_millis(50);

/// The "auto" `confirm_timeout` is this many times the slowest recent answer (at least
/// [`CONFIRM_TIMEOUT_FLOOR`], at most the check's timeout): wide enough that ordinary variation in
/// answer times never fails a confirmation, while a server that normally answers slowly keeps (up to)
/// its full timeout.
pub const CONFIRM_TIMEOUT_FACTOR: u32 = 8;

/// How many of a check's most recent passing probes the "auto" `confirm_timeout` looks at.
pub const CONFIRM_TIMEOUT_HISTORY: usize = 10;

/// Shortest accepted `confirm_interval` (other than `"0s"`, which turns fast confirmation off).
pub const MIN_CONFIRM_INTERVAL: Duration = Duration::from_millis(10);

/// Default jitter as a fraction of the service interval (10 %): spreads probes so that checks do not fire
/// in lock-step.
pub const DEFAULT_JITTER_FRACTION: f64 = 0.1;

/// Default interval of serial (SOA freshness) checks, or the service interval if that is longer. Zone
/// serials move slowly and a sweep over thousands of zones takes seconds.
pub const DEFAULT_SERIAL_INTERVAL: Duration = Duration::from_secs(10);

/// Upper bound of the default per-SOA-exchange timeout of serial checks (half the interval, at most 1 s).
pub const DEFAULT_SERIAL_TIMEOUT_CAP: Duration = Duration::from_secs(1);

/// Default number of SOA queries a serial sweep keeps in flight.
pub const DEFAULT_SERIAL_CONCURRENCY: usize = 64;

/// Default EDNS UDP payload size (DNS Flag Day 2020: avoids IP fragmentation).
pub const DEFAULT_EDNS_PAYLOAD: u16 = 1232;

/// Shortest accepted probe interval.
pub const MIN_INTERVAL: Duration = Duration::from_millis(50);

/// Longest accepted probe interval.
pub const MAX_INTERVAL: Duration = Duration::from_secs(3600);

/// Longest accepted probe/backend timeout (the prober rejects longer ones too).
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);

/// Largest accepted `rise`/`fall`.
pub const MAX_RISE_FALL: u32 = 1000;

/// Largest accepted serial sweep concurrency.
pub const MAX_SERIAL_CONCURRENCY: usize = 10_000;

/// Default `[fleet] prefix`: every fleet's keys live under `/nsbeacon/<name>/` in etcd.
pub const DEFAULT_FLEET_PREFIX: &str = "/nsbeacon";

/// Default `[fleet] lease_ttl`: a node that dies leaves the fleet view (and stops counting as announcing)
/// after 10 s. Shorter reacts faster but costs more keep-alives and risks expiry on a slow etcd.
pub const DEFAULT_FLEET_LEASE_TTL: Duration = Duration::from_secs(10);

/// Default `[fleet] timeout`: the bound on one etcd call outside the guard (connect, lease, record writes).
pub const DEFAULT_FLEET_TIMEOUT: Duration = Duration::from_secs(1);

/// Default `[fleet] guard_timeout`: a withdrawal waits at most this long for etcd, then follows
/// `on_unavailable`. etcd on a LAN decides in a few milliseconds.
pub const DEFAULT_FLEET_GUARD_TIMEOUT: Duration = Duration::from_millis(200);

/// Default per-service `min_announcing` with `[fleet]`: one other node must still announce, so health
/// checks alone can never withdraw the last announcing node of a fleet. `min_announcing = 0` turns the
/// guard off for a service.
pub const DEFAULT_MIN_ANNOUNCING: MinAnnouncing = MinAnnouncing::Count(1);

/// Largest `min_announcing` count: the guard compares that many records in one etcd transaction, and
/// etcd's `--max-txn-ops` is 128 by default.
pub const MAX_MIN_ANNOUNCING: u32 = 120;

/// The whole, validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The BGP daemon nsbeacon drives.
    pub backend: BackendConfig,
    /// The services, in file order. Names are unique; each route target belongs to one service only.
    pub services: Vec<ServiceConfig>,
    /// The HTTP endpoint.
    pub http: HttpConfig,
    /// Logging.
    pub log: LogConfig,
    /// Where persistent state (drains) lives. Default [`DEFAULT_STATE_DIR`].
    pub state_dir: PathBuf,
    /// If set, the existence of this file drains every service (for scripts and config management).
    pub drain_file: Option<PathBuf>,
    /// What to do with this node's routes on SIGTERM/SIGINT. Default [`OnShutdown::Withdraw`].
    pub on_shutdown: OnShutdown,
    /// How often desired and actual route states are compared. Default [`DEFAULT_RECONCILE_INTERVAL`].
    pub reconcile_interval: Duration,
    /// The fleet guard on etcd (`[fleet]`); `None` without the section: every node decides alone.
    pub fleet: Option<FleetConfig>,
}

impl Config {
    /// The service with this name.
    pub fn service(&self, name: &str) -> Option<&ServiceConfig> {
        self.services.iter().find(|s| s.name == name)
    }

    /// Every route target once (announce and degrade, in config order), with the services listing it.
    pub fn route_targets(&self) -> Vec<(&RouteTarget, Vec<&str>)> {
        let mut targets: Vec<(&RouteTarget, Vec<&str>)> = Vec::new();
        for service in &self.services {
            for target in service.announce.iter().chain(service.degrade.iter()) {
                match targets.iter_mut().find(|(t, _)| *t == target) {
                    Some((_, services)) => services.push(&service.name),
                    None => targets.push((target, vec![&service.name])),
                }
            }
        }
        targets
    }
}

/// Which BGP daemon to drive, and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendConfig {
    /// BIRD 2 over its control socket. Route targets are BIRD protocol names (enable/disable).
    Bird {
        /// Control socket path. Default [`DEFAULT_BIRD_SOCKET`].
        socket: PathBuf,
        /// Bound on one command. Default [`DEFAULT_BIRD_TIMEOUT`].
        timeout: Duration,
        /// Where nsbeacon writes its decision per protocol for the templates to include (`decision_dir`),
        /// so `birdc configure` and BIRD restarts keep it; `None` (unset): no files, the old behaviour.
        decision_dir: Option<PathBuf>,
    },
    /// FRR, over bgpd's vty socket or through `vtysh`. Route targets are prefixes (`network`) or neighbors
    /// (`neighbor X shutdown`).
    Frr {
        /// `via = "socket"` (default, bgpd's vty socket, default [`DEFAULT_BGPD_VTY_SOCKET`]) or
        /// `via = "vtysh"` (binary, default [`DEFAULT_VTYSH`], and extra arguments such as
        /// `["--vty_socket", "/run/frr"]`).
        transport: FrrTransport,
        /// Local ASN; discovered from `show bgp summary json` when unset.
        asn: Option<u32>,
        /// VRF of the `router bgp` instance; the default VRF when unset.
        vrf: Option<String>,
        /// Bound on one operation. Default [`DEFAULT_FRR_TIMEOUT`].
        timeout: Duration,
        /// `announce_via = "kernel-route"` (the default in the default VRF: `network` statements kept in
        /// frr.conf, gated by nsbeacon's kernel route, `kernel_protocol`), `"kernel-metric"` (frr.conf
        /// redistributes nsbeacon's kernel route, whose metric is the variant) or `"network"` (the default
        /// with a `vrf`: nsbeacon adds and removes the statements).
        announce: FrrAnnounce,
    },
}

impl BackendConfig {
    /// `"bird"` or `"frr"`, as written in the config.
    pub fn kind(&self) -> &'static str {
        match self {
            BackendConfig::Bird { .. } => "bird",
            BackendConfig::Frr { .. } => "frr",
        }
    }

    /// The bound on one backend operation.
    pub fn timeout(&self) -> Duration {
        match self {
            BackendConfig::Bird { timeout, .. } | BackendConfig::Frr { timeout, .. } => *timeout,
        }
    }
}

/// Where nsbeacon will talk to the BGP daemon, as `check-config` prints it: the operator sees at once
/// which socket or binary the file resolves to, defaults included.
impl fmt::Display for BackendConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendConfig::Bird {
                socket,
                decision_dir,
                ..
            } => {
                write!(f, "bird over its control socket {}", socket.display())?;
                match decision_dir {
                    Some(dir) => write!(f, ", decision files in {}", dir.display()),
                    None => write!(f, ", no decision files (birdc configure re-disables)"),
                }
            }
            BackendConfig::Frr {
                transport,
                announce,
                ..
            } => {
                match transport {
                    FrrTransport::VtySocket { socket } => {
                        write!(f, "frr over bgpd's vty socket {}", socket.display())?;
                    }
                    FrrTransport::Vtysh { vtysh, extra_args } => {
                        write!(f, "frr through {}", vtysh.display())?;
                        for arg in extra_args {
                            write!(f, " {arg}")?;
                        }
                    }
                }
                match announce {
                    FrrAnnounce::Network => write!(f, ", announcing with network statements"),
                    FrrAnnounce::KernelRoute(gate) => write!(
                        f,
                        ", announcing through the kernel-route gate (proto {})",
                        gate.protocol
                    ),
                    FrrAnnounce::KernelMetric(gate, metrics) => write!(
                        f,
                        ", announcing through redistributed kernel routes (proto {}; {})",
                        gate.protocol,
                        metrics.describe()
                    ),
                }
            }
        }
    }
}

/// The HTTP endpoint (`/metrics`, `/status`, `/healthz`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// Listen address. Default [`DEFAULT_HTTP_LISTEN`] (127.0.0.1:9753).
    pub listen: SocketAddr,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_HTTP_LISTEN,
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines (default).
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Logging settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// A `tracing` filter directive: `info` (default), `debug`, or e.g. `info,nsbeacon=debug`.
    pub level: String,
    /// Output format. Default [`LogFormat::Text`].
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".to_owned(),
            format: LogFormat::Text,
        }
    }
}

/// `[fleet]`: coordination with the other nodes of the anycast fleet through etcd v3, so that a failure all
/// nodes share cannot withdraw them all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetConfig {
    /// etcd client URLs, all `http://` or all `https://` (then with `tls.ca_file`).
    pub endpoints: Vec<String>,
    /// The fleet's name: the nodes that count each other. A key segment (`[A-Za-z0-9_.-]`).
    pub name: String,
    /// This node's name in the fleet. Default: the host name.
    pub node: String,
    /// The etcd key prefix. Default [`DEFAULT_FLEET_PREFIX`].
    pub prefix: String,
    /// Lease TTL (whole seconds). Default [`DEFAULT_FLEET_LEASE_TTL`].
    pub lease_ttl: Duration,
    /// Bound on one etcd call. Default [`DEFAULT_FLEET_TIMEOUT`].
    pub timeout: Duration,
    /// Bound on one guard decision. Default [`DEFAULT_FLEET_GUARD_TIMEOUT`].
    pub guard_timeout: Duration,
    /// What a withdrawal does when etcd cannot answer in time. Default [`OnUnavailable::Local`].
    pub on_unavailable: OnUnavailable,
    /// Whether the guard also holds withdrawals caused by failures only this node can have (connection
    /// refused: its DNS server is not running). Default false: those withdraw as without a fleet.
    pub guard_all_failures: bool,
    /// TLS to etcd (`[fleet.tls]`).
    pub tls: Option<FleetTlsConfig>,
    /// etcd authentication (`user` with `password_file`).
    pub auth: Option<FleetAuthConfig>,
}

impl FleetConfig {
    /// The `min_announcing` that applies to `service`: its own, or [`DEFAULT_MIN_ANNOUNCING`].
    pub fn min_announcing(&self, service: &ServiceConfig) -> MinAnnouncing {
        service.min_announcing.unwrap_or(DEFAULT_MIN_ANNOUNCING)
    }
}

/// `[fleet.tls]`: PEM files, checked readable when the config is loaded (and read again when used).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetTlsConfig {
    /// The CA that signed etcd's server certificate (required for `https://` endpoints).
    pub ca_file: Option<PathBuf>,
    /// This node's client certificate (etcd `--client-cert-auth`); together with `key_file`.
    pub cert_file: Option<PathBuf>,
    /// The client certificate's private key.
    pub key_file: Option<PathBuf>,
}

/// etcd's user/password authentication. The password lives in a file, never in the TOML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetAuthConfig {
    /// The etcd user.
    pub user: String,
    /// The file holding the password (its first line), checked readable at load.
    pub password_file: PathBuf,
}

/// What a withdrawal does when etcd cannot answer within `guard_timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnUnavailable {
    /// Decide locally, as without a fleet (default): etcd being down never keeps a broken node announced,
    /// and never withdraws a healthy one either.
    #[default]
    Local,
    /// Keep the current routes until etcd answers again.
    Hold,
}

/// How many other nodes must still announce a service after this node withdraws it (`min_announcing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MinAnnouncing {
    /// A number of other nodes (`min_announcing = 2`).
    Count(u32),
    /// A fraction of the nodes registered for the service, rounded up (`"50%"` or `0.5`), in parts per
    /// million so the rounding is exact.
    Fraction {
        /// The fraction x 1,000,000, below 1,000,000.
        ppm: u32,
    },
}

/// What happens to this node's routes when nsbeacon is asked to stop. `/status` spells it as the config
/// does (`withdraw`, `keep`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnShutdown {
    /// Withdraw every target before exiting (default): without nsbeacon nobody watches the DNS server, so
    /// the node must not keep attracting traffic.
    #[default]
    Withdraw,
    /// Leave the routes as they are (e.g. for an nsbeacon upgrade without a traffic shift).
    Keep,
}

/// How the verdicts of a service's checks combine into the service's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Combine {
    /// Every check must be up (default).
    #[default]
    All,
    /// One check up is enough.
    Any,
    /// At least this many checks must be up (1 ..= number of checks).
    AtLeast(usize),
}

impl Combine {
    /// How many of `checks` checks must be up.
    pub fn required(self, checks: usize) -> usize {
        match self {
            Combine::All => checks,
            Combine::Any => 1.min(checks),
            Combine::AtLeast(n) => n.min(checks),
        }
    }
}

impl fmt::Display for Combine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Combine::All => f.write_str("all"),
            Combine::Any => f.write_str("any"),
            Combine::AtLeast(n) => write!(f, "at least {n}"),
        }
    }
}

/// Flap damping (after RFC 2439): each transition between announced and withdrawn adds `penalty`; the
/// penalty halves every `half_life`; when it exceeds `suppress` the service is held withdrawn until it
/// decays below `reuse`, but never longer than `max_hold_down`.
///
/// Defaults ([`DampingConfig::default`]) are conservative: enabled, penalty 1000, suppress 3000, reuse 750,
/// half-life 60 s, max hold-down 5 min. A single outage (down and back up = 2000) is never suppressed; a
/// server that flaps twice within about 20 s is held down for about 2 minutes. Upstream networks damp
/// flapping prefixes for much longer (often an hour), so holding a flapping node down briefly protects the
/// prefix for the whole fleet.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DampingConfig {
    /// Whether damping is active.
    pub enabled: bool,
    /// Penalty added per transition between announced and withdrawn.
    pub penalty: f64,
    /// Suppress (hold withdrawn) when the penalty exceeds this.
    pub suppress: f64,
    /// Release suppression when the penalty decays below this.
    pub reuse: f64,
    /// Time for the penalty to halve.
    pub half_life: Duration,
    /// Longest time one suppression lasts; also caps the penalty at `reuse * 2^(max_hold_down/half_life)`.
    pub max_hold_down: Duration,
}

impl DampingConfig {
    /// The largest penalty kept: decaying from it to `reuse` takes exactly `max_hold_down`.
    pub fn ceiling(&self) -> f64 {
        let half_lives =
            self.max_hold_down.as_secs_f64() / self.half_life.as_secs_f64().max(f64::MIN_POSITIVE);
        self.reuse * 2f64.powf(half_lives.min(1000.0))
    }
}

impl Default for DampingConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            penalty: 1000.0,
            suppress: 3000.0,
            reuse: 750.0,
            half_life: Duration::from_secs(60),
            max_hold_down: Duration::from_secs(300),
        }
    }
}

/// One service: a set of checks deciding over a set of route targets.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceConfig {
    /// Unique name (`[A-Za-z0-9_.-]`, used in metrics labels, logs and `nsbeacon drain NAME`).
    pub name: String,
    /// The checks, in file order (at least one; names unique within the service).
    pub checks: Vec<CheckConfig>,
    /// How check verdicts combine. Default [`Combine::All`].
    pub combine: Combine,
    /// Targets announced while the service is up (at least one).
    pub announce: Vec<RouteTarget>,
    /// Targets announced instead of `announce` while the service is degraded or gracefully draining. When
    /// empty, a degraded service keeps `announce` announced (soft signals never withdraw on their own).
    pub degrade: Vec<RouteTarget>,
    /// Default probe interval of the service's query checks. Default [`DEFAULT_INTERVAL`].
    pub interval: Duration,
    /// Consecutive passes before a check is up. Default [`DEFAULT_RISE`].
    pub rise: u32,
    /// Consecutive failures before a check is down. Default [`DEFAULT_FALL`].
    pub fall: u32,
    /// Probe times are spread by a random offset of up to +/- `jitter` (at most half the shortest check
    /// interval). Default 10 % of `interval` (or of the shortest check interval if that is shorter).
    pub jitter: Duration,
    /// Flap damping. Default [`DampingConfig::default`].
    pub damping: DampingConfig,
    /// If set, a drain first announces the degrade targets for this long, then withdraws. Requires degrade
    /// targets. Default: none (a drain withdraws at once).
    pub graceful_drain: Option<Duration>,
    /// Fast confirmation: after a failing probe of a check, probe it again after this long (measured from
    /// the end of the failing probe, so probes never overlap) until `fall` is reached or one passes.
    /// `None` (`confirm_interval = "0s"`) keeps the normal interval. Default
    /// [`DEFAULT_CONFIRM_INTERVAL`]; never longer than the check's interval.
    pub confirm_interval: Option<Duration>,
    /// The DNS server's process, watched so that its exit withdraws after one confirming probe and its
    /// restart is probed at once. Default: none.
    pub watch: Option<ProcessWatch>,
    /// Load signals and the overload policy (`[service.load]`). Default: none (no load signal, so a
    /// flood that times the probes out withdraws like any other failure).
    pub load: Option<LoadConfig>,
    /// `min_announcing` as written; only allowed with `[fleet]`. `None` means the default,
    /// [`DEFAULT_MIN_ANNOUNCING`] (see [`FleetConfig::min_announcing`]).
    pub min_announcing: Option<MinAnnouncing>,
}

impl ServiceConfig {
    /// Every target of the service: the announce targets, then the degrade targets.
    pub fn targets(&self) -> impl Iterator<Item = &RouteTarget> {
        self.announce.iter().chain(self.degrade.iter())
    }
}

/// `[service.watch]`: the DNS server's process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessWatch {
    /// The server's PID file (`/run/knot/knot.pid`, `/run/nsd/nsd.pid`, `/run/named/named.pid`): read
    /// when nsbeacon starts watching and again after the process exits, to find its successor.
    pub pid_file: PathBuf,
}

/// Default `[service.load] interval`: once a second, cheap enough to leave on (see BENCHMARKS.md).
pub const DEFAULT_LOAD_INTERVAL: Duration = Duration::from_secs(1);

/// Longest a single statistics read may take, by default (never longer than the interval).
pub const DEFAULT_LOAD_TIMEOUT_CAP: Duration = Duration::from_millis(500);

/// Default `overload_factor`: ten times the moving baseline. The 2015 root attacks brought about 100 times
/// the normal load; a node at ten times its usual rate is being flooded, not having a busy hour.
pub const DEFAULT_OVERLOAD_FACTOR: f64 = 10.0;

/// Default `min_qps`: below this rate a node is never called overloaded by the factor alone, so an idle
/// node (a baseline of a few queries per second) is not "overloaded" by a burst of a few hundred.
pub const DEFAULT_MIN_QPS: f64 = 100.0;

/// Default `baseline_window`: the time constant of the moving baseline (an exponentially weighted mean).
pub const DEFAULT_BASELINE_WINDOW: Duration = Duration::from_secs(600);

/// Default `absorb_for`: how long an overloaded node keeps announcing (degraded) while its probes fail.
/// Long enough to ride out most attack waves (the 2015 events lasted about 2.5 h and 1 h, in waves);
/// bounded so that a node that is broken, not busy, withdraws in the end.
pub const DEFAULT_ABSORB_FOR: Duration = Duration::from_secs(600);

/// `[service.load]`: where the DNS server's load comes from and what an overload does.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadConfig {
    /// The server statistics to read.
    pub source: LoadSource,
    /// Also read the kernel's UDP receive errors (`/proc/net/snmp`, the namespace nsbeacon runs in):
    /// datagrams dropped because the server does not read them fast enough. Default true.
    pub kernel: bool,
    /// How often the statistics are read. Default [`DEFAULT_LOAD_INTERVAL`].
    pub interval: Duration,
    /// Bound on one read (connect, request, reply). Default the interval or
    /// [`DEFAULT_LOAD_TIMEOUT_CAP`], whichever is shorter.
    pub timeout: Duration,
    /// Overloaded when the query rate exceeds this multiple of the moving baseline (and `min_qps`).
    pub overload_factor: f64,
    /// The factor rule never fires below this query rate.
    pub min_qps: f64,
    /// Overloaded above this query rate, whatever the baseline says. Default: none.
    pub max_qps: Option<f64>,
    /// Overloaded when the kernel's UDP receive errors grow faster than this per second. Default: none
    /// (the counters are host-wide in a namespace shared with other UDP services).
    pub max_udp_errors: Option<f64>,
    /// The moving baseline's time constant. Default [`DEFAULT_BASELINE_WINDOW`].
    pub baseline_window: Duration,
    /// What failing probes do while the load signals say "overloaded".
    pub overload: OverloadPolicy,
}

/// Which DNS server's statistics `[service.load]` reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadSource {
    /// No server statistics (only the kernel counters, if `kernel`).
    None,
    /// Knot's control socket (`knotc stats`; needs `mod-stats` as a global module).
    Knot {
        /// The control socket, e.g. `/run/knot/knot.sock`.
        socket: PathBuf,
    },
    /// NSD's control socket (`nsd-control stats_noreset`; `control-interface:` a unix socket path).
    Nsd {
        /// The control socket, e.g. `/run/nsd/nsd.ctl`.
        socket: PathBuf,
    },
    /// BIND's statistics channel, JSON over HTTP.
    Bind {
        /// Where the channel listens (an IP literal and port).
        addr: SocketAddr,
        /// The request path, e.g. `/json/v1/server`.
        path: String,
    },
}

impl LoadSource {
    /// `"knot"`, `"nsd"`, `"bind"` or `"none"`: the `source` label of the load metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            LoadSource::None => "none",
            LoadSource::Knot { .. } => "knot",
            LoadSource::Nsd { .. } => "nsd",
            LoadSource::Bind { .. } => "bind",
        }
    }
}

/// What failing probes of an overloaded service do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverloadPolicy {
    /// Keep announcing (degraded, the degrade targets) for up to `absorb_for`, then the normal rules.
    Absorb {
        /// The longest absorption of one overload episode.
        absorb_for: Duration,
    },
    /// The normal rules: failing probes withdraw, overload or not.
    Withdraw,
}

/// How long a confirmation probe of a query check waits for its answer (`confirm_timeout`).
///
/// Confirmation probes are the ones fast confirmation schedules after a hard failure, before `fall` is
/// reached. They get their own, shorter timeout so that a hung server (one that accepts queries and never
/// answers) is confirmed in a fraction of the check's timeout per probe instead of the full timeout each.
/// The UDP resends inside a probe (after a third and two thirds of its timeout) scale with it, so a lost
/// datagram still costs a resend, not a failure. Zone sweeps (serial, dnssec checks) always keep their
/// full timeout: they are slow by nature and their confirmations are not on the detection path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfirmTimeout {
    /// `"auto"` (the default): [`CONFIRM_TIMEOUT_FACTOR`] x the slowest answer among the check's last
    /// [`CONFIRM_TIMEOUT_HISTORY`] passing probes, at least [`CONFIRM_TIMEOUT_FLOOR`], at most the
    /// check's timeout; the check's timeout before any probe has passed. A server that answers in well
    /// under a millisecond is confirmed dead after 50 ms of silence per probe; one that is merely slow
    /// (answers in 200 ms) keeps its full timeout, so slowness still only degrades, as before.
    Auto,
    /// An explicit bound, validated to be more than zero and at most the check's timeout.
    Fixed(Duration),
}

impl ConfirmTimeout {
    /// The timeout of a confirmation probe of a check with timeout `timeout`, given the slowest answer
    /// among its recent passing probes (`None` before any has passed). Never longer than `timeout`.
    pub fn resolve(self, timeout: Duration, slowest_recent_answer: Option<Duration>) -> Duration {
        match self {
            ConfirmTimeout::Fixed(fixed) => fixed.min(timeout),
            ConfirmTimeout::Auto => match slowest_recent_answer {
                None => timeout,
                Some(slowest) => slowest
                    .saturating_mul(CONFIRM_TIMEOUT_FACTOR)
                    .max(CONFIRM_TIMEOUT_FLOOR)
                    .min(timeout),
            },
        }
    }
}

impl fmt::Display for ConfirmTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfirmTimeout::Auto => f.write_str("auto"),
            ConfirmTimeout::Fixed(d) => f.write_str(&fmt_duration(*d)),
        }
    }
}

/// One check of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckConfig {
    /// Name, unique within the service.
    pub name: String,
    /// How often the check runs.
    pub interval: Duration,
    /// Bound on each exchange of the check; never longer than `interval` (a check's probes never overlap).
    pub timeout: Duration,
    /// Bound on each exchange of a confirmation probe (query checks only; sweeps ignore it): the
    /// check's own `confirm_timeout`, else the service's, else [`ConfirmTimeout::Auto`].
    pub confirm_timeout: ConfirmTimeout,
    /// What the check does.
    pub kind: CheckKind,
}

/// What a check does.
// Built once per config load and never moved in hot paths: boxing the larger variant buys nothing and
// would change the shape the runtime matches on.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckKind {
    /// One DNS query with expectations on the answer.
    Query(ProbeSpec),
    /// SOA serial freshness of a set of zones against a reference server.
    Serial(SerialCheck),
    /// DNSSEC signature expiry of a set of zones at the local server.
    Dnssec(DnssecCheck),
}

impl CheckKind {
    /// `"query"`, `"serial"` or `"dnssec"`, as written in the config.
    pub fn type_name(&self) -> &'static str {
        match self {
            CheckKind::Query(_) => "query",
            CheckKind::Serial(_) => "serial",
            CheckKind::Dnssec(_) => "dnssec",
        }
    }
}

/// A serial freshness sweep: every zone's SOA serial at `local` compared with `reference`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerialCheck {
    /// The zones (absolute names, deduplicated), from `zones` and/or `zones_file`.
    pub zones: Vec<Name>,
    /// The local server.
    pub local: SocketAddr,
    /// The reference server (hidden primary), reached by unicast.
    pub reference: SocketAddr,
    /// Transport of the SOA queries (`udp` or `tcp`).
    pub transport: Transport,
    /// Bound on each SOA exchange.
    pub timeout: Duration,
    /// Largest serial lag (RFC 1982 distance) that is only a soft signal; beyond it the zone is "behind"
    /// and the check fails hard.
    pub max_lag: u32,
    /// How many zones may be behind beyond `max_lag` before the check fails hard; within it they only
    /// degrade. 0 (default): any zone behind withdraws. Zones the local server fails to answer for are
    /// always hard.
    pub max_behind_zones: usize,
    /// SOA queries kept in flight.
    pub concurrency: usize,
}

/// A DNSSEC expiry sweep: the RRSIG validity of `types` at every zone's apex on `local`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnssecCheck {
    /// The zones (absolute names, deduplicated), from `zones` and/or `zones_file`.
    pub zones: Vec<Name>,
    /// The local server.
    pub local: SocketAddr,
    /// Transport (`udp`, with TC=1 asked again over TCP, or `tcp`).
    pub transport: Transport,
    /// Bound on each exchange.
    pub timeout: Duration,
    /// The apex RRsets whose signatures are read (default SOA and DNSKEY).
    pub types: Vec<RecordType>,
    /// Less validity left than this degrades (default 3 days).
    pub warn_before: Duration,
    /// Less validity left than this withdraws (default 1 hour); expired always does.
    pub fail_before: Duration,
    /// How far in the future an inception may be before the signature counts as not yet valid.
    pub clock_skew: Duration,
    /// Zones kept in flight.
    pub concurrency: usize,
}

/// One problem found by validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// Key path, e.g. `service[1].check[0].timeout`.
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: String,
    /// 1-based line of the key (or of the nearest enclosing table when the key is missing), if known.
    pub line: Option<usize>,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)?;
        if !self.hint.is_empty() {
            write!(f, " (hint: {})", self.hint)?;
        }
        Ok(())
    }
}

/// Why a configuration was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read: missing, not a regular file (FIFO, device, directory), larger than
    /// [`MAX_CONFIG_BYTES`], not UTF-8, or on a file system that does not answer within [`LOAD_DEADLINE`].
    #[error("the config file: {source} (hint: {})", source.hint())]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong, naming the file.
        source: FileError,
    },
    /// TOML syntax error, unknown key or value of the wrong type, with its position and key path. The TOML
    /// parser stops at the first one, so these are reported one at a time (the message says so), unlike
    /// [`ConfigError::Invalid`].
    #[error("{origin}: {}: {}{message}{}{ONE_AT_A_TIME}", position(*line, *column), path_prefix(path.as_deref()), hint_suffix(hint))]
    Syntax {
        /// File name (or another description of where the text came from).
        origin: String,
        /// 1-based line, if known.
        line: Option<usize>,
        /// 1-based column, if known.
        column: Option<usize>,
        /// Key path of the problem (`service[0].rise`), if it could be found.
        path: Option<String>,
        /// What is wrong.
        message: String,
        /// How to fix it.
        hint: String,
    },
    /// Validation found problems; every one is listed.
    #[error("{}", list_issues(.0))]
    Invalid(Vec<ConfigIssue>),
}

impl ConfigError {
    /// The validation issues, if this is [`ConfigError::Invalid`].
    pub fn issues(&self) -> &[ConfigIssue] {
        match self {
            ConfigError::Invalid(issues) => issues,
            _ => &[],
        }
    }
}

/// Appended to every [`ConfigError::Syntax`]: the operator must know that more errors may follow.
const ONE_AT_A_TIME: &str = " [parsing stops at the first syntax, unknown-key or wrong-type error, so they are \
     reported one at a time: fix this one and check again; all validation errors are listed together]";

fn position(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!("line {l}, column {c}"),
        (Some(l), None) => format!("line {l}"),
        _ => "unknown position".to_owned(),
    }
}

fn path_prefix(path: Option<&str>) -> String {
    path.map(|p| format!("{p}: ")).unwrap_or_default()
}

fn hint_suffix(hint: &str) -> String {
    if hint.is_empty() {
        String::new()
    } else {
        format!(" (hint: {hint})")
    }
}

fn list_issues(issues: &[ConfigIssue]) -> String {
    let mut out = format!("{} problem(s) in the configuration:", issues.len());
    for issue in issues {
        out.push_str("\n  - ");
        if let Some(line) = issue.line {
            out.push_str(&format!("line {line}: "));
        }
        out.push_str(&issue.to_string());
    }
    out
}

/// Largest config file nsbeacon reads. A real config is a few KiB (zone lists belong in `zones_file`);
/// the cap keeps a wrong `-c` path (a log, a device) from exhausting memory.
pub const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;

/// Largest zones file nsbeacon reads: room for about 1,000,000 zone names of typical length (64 bytes a
/// line on average), far beyond what one serial check sweeps in an interval.
pub const MAX_ZONES_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// Longest a whole load (config file and zones files) may take before it is abandoned: local files load
/// in milliseconds, so only a hung network or FUSE file system reaches it.
pub const LOAD_DEADLINE: Duration = Duration::from_secs(20);

/// Reads and validates the configuration file at `path`, within [`LOAD_DEADLINE`]. Relative `zones_file`
/// paths are resolved against the directory of `path`. Every file is read through [`crate::file`]: a FIFO,
/// device or directory is refused at once, sizes are capped.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let owned = path.to_path_buf();
    file::run_with_deadline(
        LOAD_DEADLINE,
        || Err(load_timed_out(path)),
        move || load_now(&owned),
    )
}

/// [`load`] without blocking the calling task: the daemon awaits it in a `select!` with its shutdown
/// signals, so a slow file system can never delay SIGTERM.
pub async fn load_async(path: &Path) -> Result<Config, ConfigError> {
    let owned = path.to_path_buf();
    file::run_with_deadline_async(
        LOAD_DEADLINE,
        || Err(load_timed_out(path)),
        move || load_now(&owned),
    )
    .await
}

fn load_timed_out(path: &Path) -> ConfigError {
    ConfigError::Read {
        path: path.to_path_buf(),
        source: FileError::TimedOut {
            path: path.to_path_buf(),
            after: LOAD_DEADLINE,
        },
    }
}

fn load_now(path: &Path) -> Result<Config, ConfigError> {
    let text = file::read_text(path, MAX_CONFIG_BYTES, "a config file").map_err(|source| {
        ConfigError::Read {
            path: path.to_path_buf(),
            source,
        }
    })?;
    let base = path.parent().filter(|p| !p.as_os_str().is_empty());
    parse_with_base(&text, &path.display().to_string(), base)
}

/// Parses and validates configuration text. `origin` names the text in error messages (usually the file
/// path). Relative `zones_file` paths are resolved against the current directory.
pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
    parse_with_base(text, origin, None)
}

fn parse_with_base(text: &str, origin: &str, base: Option<&Path>) -> Result<Config, ConfigError> {
    let raw: raw::RawConfig = toml::from_str(text).map_err(|e| syntax_error(text, origin, &e))?;
    validate::validate(raw, base).map_err(|e| match e {
        ConfigError::Invalid(mut issues) => {
            locate::add_lines(text, &mut issues);
            ConfigError::Invalid(issues)
        }
        other => other,
    })
}

fn syntax_error(text: &str, origin: &str, error: &toml::de::Error) -> ConfigError {
    let offset = error.span().map(|span| span.start);
    let (line, column) = match offset {
        Some(offset) => {
            let (l, c) = line_column(text, offset);
            (Some(l), Some(c))
        }
        None => (None, None),
    };
    let explained = explain::explain(text, offset, error.message().trim());
    ConfigError::Syntax {
        origin: origin.to_owned(),
        line,
        column,
        path: explained.path,
        message: explained.message,
        hint: explained.hint,
    }
}

/// 1-based line and column (in characters) of byte offset `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}
