//! `demo`: the anycast lab with nsbeacon running in it and a live view, for an operator to watch and break.
//!
//! `sudo scripts/demo [--frr] [--dns knot|nsd|bind]` builds this binary and runs it. It builds the same lab
//! the end-to-end tests use ([`Lab`]: an upstream BIRD router, the node's BIRD or FRR from the shipped
//! templates, a real Knot/NSD/BIND), writes nsbeacon's config into the lab dir, runs nsbeacon in the node's
//! namespace and, every 500 ms, shows what nsbeacon thinks (`/status`: state, reason, targets desired vs
//! actual) next to what the upstream router really has for the anycast prefixes (present or not, AS path,
//! communities). The commands to break the node from a second terminal are printed with the real PIDs.
//!
//! SIGINT (Ctrl-C), SIGTERM and SIGHUP only set a flag: the loop ends, `main` returns, and the lab's guards
//! stop nsbeacon and every daemon by PID and delete the namespaces and the lab dir. The demo then checks
//! that nothing is left and says so (exit code 1 if something is).
//!
//! `--fleet N` runs N nodes with the fleet guard instead (the e2e tests' `FleetLab`; see `demo/fleet.rs`).
//!
//! On a terminal the view is redrawn in place; otherwise (or with `--plain`) each change is printed as one
//! timestamped line, then a final snapshot of the view: that is what `tests/tests/demo.rs` asserts on.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use serde_json::Value;

use nsbeacon_e2e::lab::{
    ANYCAST_V4, ANYCAST_V6, NODE_AS, UPSTREAM_AS, UPSTREAM_PROTOCOL_V4, UPSTREAM_PROTOCOL_V6,
};
use nsbeacon_e2e::nsbeacon::lab_config;
use nsbeacon_e2e::route::parse_show_route_all;
use nsbeacon_e2e::{DnsServerKind, Lab, LabOptions, NodeBgp, NodeBgpKind, RouteInfo};
use nsbeacon_testkit::bird::bird_command;
use nsbeacon_testkit::frr::FrrDaemon;
use nsbeacon_testkit::process::{is_alive, signal};
use nsbeacon_testkit::{DaemonGuard, Signal};

#[path = "demo/fleet.rs"]
mod fleet;

/// How often the view is refreshed.
const REFRESH: Duration = Duration::from_millis(500);
/// How long one `/status` request may take before the view says nsbeacon did not answer.
const STATUS_TIMEOUT: Duration = Duration::from_secs(1);
/// Where nsbeacon's HTTP listener is, inside the node's namespace (so it never collides with the host).
const DEFAULT_HTTP: &str = "127.0.0.1:9753";
/// How long the teardown waits for the upstream to lose the prefixes after nsbeacon stopped.
const WITHDRAW_WAIT: Duration = Duration::from_secs(5);
/// How many recent events the terminal view keeps on screen.
const EVENTS_SHOWN: usize = 12;

/// The one-command nsbeacon demo: a real anycast lab (upstream BIRD, node BIRD or FRR, a real DNS server)
/// with nsbeacon running and a live view of what it decides and what the upstream router sees.
///
/// Needs root (network namespaces). Ctrl-C or SIGTERM stops everything and removes the lab.
#[derive(Debug, Parser)]
#[command(name = "demo")]
struct Args {
    /// Run FRR (zebra, staticd, bgpd) on the node instead of BIRD 2.
    #[arg(long)]
    frr: bool,
    /// The node's authoritative DNS server.
    #[arg(long, value_enum, default_value_t = DnsArg::Knot)]
    dns: DnsArg,
    /// Stop after this many seconds (counted from nsbeacon's start) and clean up; default: until Ctrl-C.
    #[arg(long, value_name = "SECONDS", value_parser = seconds)]
    duration: Option<f64>,
    /// Scripted failure: SIGKILL the DNS server this many seconds after nsbeacon's start.
    #[arg(long, value_name = "SECONDS", value_parser = seconds)]
    dns_kill_after: Option<f64>,
    /// Scripted recovery: start the DNS server again this many seconds after nsbeacon's start.
    #[arg(long, value_name = "SECONDS", value_parser = seconds)]
    dns_restart_after: Option<f64>,
    /// The nsbeacon binary (default: `nsbeacon` next to this binary, as `cargo build` puts it).
    #[arg(long, value_name = "PATH")]
    nsbeacon: Option<PathBuf>,
    /// nsbeacon's HTTP listener inside the node's namespace.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_HTTP)]
    http: SocketAddr,
    /// Print one line per change instead of redrawing the view (the default when stdout is no terminal).
    #[arg(long)]
    plain: bool,
    /// A fleet instead of one node: N nodes (each its own namespace, BIRD 2 and nsbeacon) behind one
    /// upstream, sharing one Knot and a 3-member etcd, with the fleet guard on.
    #[arg(
        long,
        value_name = "N",
        value_parser = clap::value_parser!(u8).range(2..=20),
        conflicts_with_all = ["frr", "dns", "dns_kill_after", "dns_restart_after", "http"]
    )]
    fleet: Option<u8>,
    /// With --fleet: how many other nodes must still announce before one may withdraw (default: N / 2).
    #[arg(long, value_name = "K", requires = "fleet")]
    min_announcing: Option<u8>,
    /// With --fleet, scripted failure: SIGSTOP the Knot every node probes this many seconds after the
    /// nodes' start (every node's DNS hangs at the same instant).
    #[arg(long, value_name = "SECONDS", value_parser = seconds, requires = "fleet")]
    dns_stop_after: Option<f64>,
    /// With --fleet, scripted recovery: SIGCONT the shared Knot this many seconds after the nodes' start.
    #[arg(long, value_name = "SECONDS", value_parser = seconds, requires = "fleet")]
    dns_cont_after: Option<f64>,
}

/// A number of seconds on the command line: finite and not negative.
fn seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!(
            "{text:?} is not a number of seconds (expected e.g. 25 or 2.5)"
        )),
    }
}

/// `--dns`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DnsArg {
    /// Knot DNS.
    Knot,
    /// NSD.
    Nsd,
    /// BIND 9.
    Bind,
}

impl DnsArg {
    fn kind(self) -> DnsServerKind {
        match self {
            DnsArg::Knot => DnsServerKind::Knot,
            DnsArg::Nsd => DnsServerKind::Nsd,
            DnsArg::Bind => DnsServerKind::Bind,
        }
    }
}

/// Why the demo could not run (or could not clean up).
#[derive(Debug, thiserror::Error)]
enum DemoError {
    /// Namespaces and daemons need root.
    #[error(
        "the demo needs root (it creates network namespaces and runs BGP and DNS daemons): run `sudo scripts/demo`"
    )]
    NotRoot,
    /// The signal handlers could not be installed.
    #[error("installing the handler for signal {signal}: {source}")]
    SignalHandler {
        /// The signal number.
        signal: i32,
        /// The OS error.
        source: std::io::Error,
    },
    /// No nsbeacon binary where expected.
    #[error(
        "no nsbeacon binary at {0}: build it (`cargo build --release -p nsbeacon`) or pass --nsbeacon PATH"
    )]
    NsbeaconMissing(PathBuf),
    /// The lab config could not be written.
    #[error("writing nsbeacon's config {path}: {source}")]
    WriteConfig {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// nsbeacon rejected the config the lab generated (a bug in the demo or the harness).
    #[error("`nsbeacon check-config -c {path}` rejected the lab config:\n{output}")]
    ConfigRejected {
        /// The config file.
        path: PathBuf,
        /// What nsbeacon said.
        output: String,
    },
    /// `nsbeacon check-config` could not be run at all.
    #[error("running {binary} check-config: {source}")]
    RunCheckConfig {
        /// The binary.
        binary: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Something survived the teardown.
    #[error("cleanup left things behind: {0}")]
    LeftBehind(String),
}

/// The flags the signal handlers set; the main loop polls them.
struct SignalFlags {
    /// SIGINT, SIGTERM or SIGHUP arrived: stop and clean up.
    stop: Arc<AtomicBool>,
    /// SIGUSR1 arrived: start the DNS server again.
    restart_dns: Arc<AtomicBool>,
}

impl SignalFlags {
    /// Installs flag-setting handlers (async-signal-safe: an atomic store, nothing else). The children the
    /// lab spawns exec fresh programs, which resets these handlers to the default there.
    fn install() -> Result<SignalFlags, DemoError> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
        let flags = SignalFlags {
            stop: Arc::new(AtomicBool::new(false)),
            restart_dns: Arc::new(AtomicBool::new(false)),
        };
        for (sig, flag) in [
            (SIGINT, &flags.stop),
            (SIGTERM, &flags.stop),
            (SIGHUP, &flags.stop),
            (SIGUSR1, &flags.restart_dns),
        ] {
            signal_hook::flag::register(sig, Arc::clone(flag)).map_err(|source| {
                DemoError::SignalHandler {
                    signal: sig,
                    source,
                }
            })?;
        }
        Ok(flags)
    }

    fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Whether this process runs as root (effective UID 0), from `/proc/self/status`.
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status.lines().any(|l| {
            l.strip_prefix("Uid:")
                .and_then(|ids| ids.split_whitespace().nth(1))
                == Some("0")
        })
    })
}

/// `--nsbeacon`, or `nsbeacon` beside this binary.
fn nsbeacon_path(args: &Args) -> Result<PathBuf, DemoError> {
    let path = match &args.nsbeacon {
        Some(p) => p.clone(),
        None => std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|dir| dir.join("nsbeacon")))
            .unwrap_or_else(|| PathBuf::from("nsbeacon")),
    };
    if path.is_file() {
        Ok(std::fs::canonicalize(&path).unwrap_or(path))
    } else {
        Err(DemoError::NsbeaconMissing(path))
    }
}

fn run(args: &Args) -> Result<(), DemoError> {
    if !is_root() {
        return Err(DemoError::NotRoot);
    }
    let flags = SignalFlags::install()?;
    let binary = nsbeacon_path(args)?;
    let tty = !args.plain && std::io::stdout().is_terminal();
    if let Some(nodes) = args.fleet {
        return fleet::run(args, &flags, &binary, usize::from(nodes), tty);
    }
    let bgp = if args.frr {
        NodeBgpKind::Frr
    } else {
        NodeBgpKind::Bird
    };
    say(&format!(
        "demo: building the lab (upstream BIRD AS {UPSTREAM_AS}, node {} AS {NODE_AS}, {}) ...",
        bgp_name(bgp),
        args.dns.kind().binary()
    ));
    let mut lab = Lab::start(LabOptions::new(bgp).with_dns(args.dns.kind()));
    let inventory = Inventory::of(&mut lab);
    if flags.stop_requested() {
        return teardown(None, lab, inventory);
    }
    let config = lab.dir().join("nsbeacon.toml");
    std::fs::write(&config, lab_config(&lab, args.http)).map_err(|source| {
        DemoError::WriteConfig {
            path: config.clone(),
            source,
        }
    })?;
    check_config(&binary, &config)?;
    let config_str = config.to_string_lossy().into_owned();
    let nsbeacon = lab.spawn_in_node("nsbeacon", &binary, &["run", "-c", &config_str]);
    let setup = Setup {
        binary,
        config,
        log: lab.dir().join("nsbeacon.log"),
        http: args.http,
        bgp,
        started: Instant::now(),
    };
    let mut nsbeacon = nsbeacon;
    let inventory = inventory.with_nsbeacon(nsbeacon.pid());
    if !tty {
        say(&instructions(&setup, &mut lab, nsbeacon.pid()));
    }
    live(args, &flags, &setup, &mut lab, &mut nsbeacon, tty);
    teardown(Some(nsbeacon), lab, inventory)
}

/// Runs `nsbeacon check-config` on the generated config, so a bad config is a clear error, not a daemon
/// that exits under the live view.
fn check_config(binary: &Path, config: &Path) -> Result<(), DemoError> {
    let out = std::process::Command::new(binary)
        .arg("check-config")
        .arg("-c")
        .arg(config)
        .output()
        .map_err(|source| DemoError::RunCheckConfig {
            binary: binary.to_path_buf(),
            source,
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(DemoError::ConfigRejected {
            path: config.to_path_buf(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        })
    }
}

/// Facts fixed once nsbeacon runs.
struct Setup {
    binary: PathBuf,
    config: PathBuf,
    log: PathBuf,
    http: SocketAddr,
    bgp: NodeBgpKind,
    started: Instant,
}

fn bgp_name(bgp: NodeBgpKind) -> &'static str {
    match bgp {
        NodeBgpKind::Bird => "BIRD 2",
        NodeBgpKind::Frr => "FRR",
    }
}

/// Prints a line and flushes (the view and the log lines go to stdout in order).
fn say(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

/// The refresh loop: poll, record changes, draw; scripted failures; until a stop signal or `--duration`.
fn live(
    args: &Args,
    flags: &SignalFlags,
    setup: &Setup,
    lab: &mut Lab,
    nsbeacon: &mut DaemonGuard,
    tty: bool,
) {
    let mut events = Events::new(setup.started, !tty);
    let mut killed = false;
    let mut restarted = false;
    let mut last = None;
    if tty {
        // Start the view on a clean screen; later frames overwrite it in place.
        draw_clear();
    }
    loop {
        let elapsed = setup.started.elapsed().as_secs_f64();
        if flags.stop_requested() {
            events.push("demo: stop signal received, cleaning up".to_owned());
            break;
        }
        if args.duration.is_some_and(|d| elapsed >= d) {
            events.push(format!(
                "demo: --duration {} s reached, cleaning up",
                secs(args.duration)
            ));
            break;
        }
        if !killed && args.dns_kill_after.is_some_and(|t| elapsed >= t) {
            killed = true;
            let pids = dns_pids(lab);
            events.push(format!(
                "demo: SIGKILL to the DNS server (pid {}) [--dns-kill-after {}]",
                join_pids(&pids),
                secs(args.dns_kill_after)
            ));
            lab.dns().kill();
        }
        let scripted_restart = !restarted && args.dns_restart_after.is_some_and(|t| elapsed >= t);
        if scripted_restart || flags.restart_dns.swap(false, Ordering::SeqCst) {
            restarted |= scripted_restart;
            let why = if scripted_restart {
                format!("[--dns-restart-after {}]", secs(args.dns_restart_after))
            } else {
                "[SIGUSR1]".to_owned()
            };
            events.push(format!("demo: starting the DNS server again {why}"));
            for pid in dns_pids(lab) {
                signal(pid, Signal::SIGCONT);
            }
            lab.dns().restart();
            events.push(format!(
                "demo: DNS server answers again (pid {})",
                join_pids(&dns_pids(lab))
            ));
        }
        let tick = Instant::now();
        let snapshot = Snapshot::take(setup, lab, nsbeacon);
        events.observe(&snapshot);
        if tty {
            draw(&render_view(
                setup,
                &snapshot,
                lab,
                nsbeacon.pid(),
                &events,
                true,
            ));
        }
        last = Some(snapshot);
        // Reading everything takes a while (a socat per /status); keep the refresh period, not the gap.
        sleep_unless_stopped(flags, REFRESH.saturating_sub(tick.elapsed()));
    }
    if !tty && let Some(snapshot) = last {
        say(&format!(
            "---- final view ----\n{}",
            render_snapshot(&snapshot, false)
        ));
    }
}

/// Sleeps `total`, waking early when a stop signal arrives.
fn sleep_unless_stopped(flags: &SignalFlags, total: Duration) {
    let deadline = Instant::now() + total;
    while !flags.stop_requested() {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        std::thread::sleep((deadline - now).min(Duration::from_millis(50)));
    }
}

fn secs(value: Option<f64>) -> String {
    value.map_or_else(String::new, |v| format!("{v}"))
}

/// Clears the terminal.
fn draw_clear() {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(b"\x1b[H\x1b[2J");
    let _ = out.flush();
}

/// Redraws the terminal in place: home, each line cleared to its end, the rest of the screen cleared.
fn draw(frame: &str) {
    let mut text = String::from("\x1b[H");
    for line in frame.lines() {
        text.push_str(line);
        text.push_str("\x1b[K\n");
    }
    text.push_str("\x1b[J");
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// What the upstream router has for one prefix.
#[derive(Debug, Clone)]
enum UpstreamRoute {
    /// A route, with its attributes.
    Present(RouteInfo),
    /// No route.
    Absent,
    /// The upstream BIRD did not answer.
    Unreadable(String),
}

impl UpstreamRoute {
    fn read(lab: &Lab, prefix: &str) -> UpstreamRoute {
        let socket = lab.upstream_bird().socket();
        match bird_command(&socket, &format!("show route {prefix} all")) {
            Ok(reply) => {
                parse_show_route_all(&reply).map_or(UpstreamRoute::Absent, UpstreamRoute::Present)
            }
            Err(e) => UpstreamRoute::Unreadable(format!("upstream BIRD {}: {e}", socket.display())),
        }
    }

    /// One line: `ANNOUNCED as-path 65001 ...` or `NO ROUTE`.
    fn describe(&self) -> String {
        match self {
            UpstreamRoute::Present(r) => {
                let path = r
                    .as_path
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(" ");
                let mut marks: Vec<String> = r
                    .communities
                    .iter()
                    .map(|(a, b)| match (a, b) {
                        (65535, 0) => "65535:0 (GRACEFUL_SHUTDOWN)".to_owned(),
                        _ => format!("{a}:{b}"),
                    })
                    .collect();
                marks.extend(
                    r.large_communities
                        .iter()
                        .map(|(a, b, c)| format!("{a}:{b}:{c}")),
                );
                let marks = if marks.is_empty() {
                    "-".to_owned()
                } else {
                    marks.join(" ")
                };
                let degraded = if r.as_path_count(NODE_AS) > 1 || r.has_graceful_shutdown() {
                    " (degraded)"
                } else {
                    ""
                };
                format!(
                    "ANNOUNCED{degraded}  as-path [{path}]  communities {marks}  next-hop {}",
                    r.next_hop.as_deref().unwrap_or("?")
                )
            }
            UpstreamRoute::Absent => "NO ROUTE (withdrawn)".to_owned(),
            UpstreamRoute::Unreadable(e) => format!("unknown: {e}"),
        }
    }
}

/// One check of a service, from `/status`.
#[derive(Debug, Clone)]
struct CheckView {
    name: String,
    result: String,
    latency: String,
}

/// One target of a service, from `/status`.
#[derive(Debug, Clone)]
struct TargetView {
    target: String,
    role: String,
    desired: String,
    actual: String,
}

/// One service, from `/status`.
#[derive(Debug, Clone)]
struct ServiceView {
    name: String,
    state: String,
    reason: String,
    drained: bool,
    transitions: u64,
    since_unix: Option<f64>,
    checks: Vec<CheckView>,
    targets: Vec<TargetView>,
}

fn text(value: &Value, key: &str) -> String {
    match &value[key] {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

impl ServiceView {
    fn from_json(service: &Value) -> ServiceView {
        let checks = service["checks"]
            .as_array()
            .map(|checks| {
                checks
                    .iter()
                    .map(|c| CheckView {
                        name: text(c, "name"),
                        result: text(c, "result"),
                        latency: c["latency_ms"]
                            .as_object()
                            .and_then(|l| l.get("udp").or_else(|| l.values().next()))
                            .and_then(Value::as_f64)
                            .map_or_else(String::new, |ms| format!(" {ms:.1} ms")),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let targets = service["targets"]
            .as_array()
            .map(|targets| {
                targets
                    .iter()
                    .map(|t| TargetView {
                        target: text(t, "target"),
                        role: text(t, "role"),
                        desired: text(t, "desired"),
                        actual: text(t, "actual"),
                    })
                    .collect()
            })
            .unwrap_or_default();
        ServiceView {
            name: text(service, "name"),
            state: text(service, "state"),
            reason: text(service, "reason"),
            drained: service["drained"].as_bool().unwrap_or(false),
            transitions: service["transitions"].as_u64().unwrap_or(0),
            since_unix: service["since_unix"].as_f64(),
            checks,
            targets,
        }
    }
}

/// nsbeacon's `/status`, as far as it answered.
#[derive(Debug, Clone)]
enum StatusView {
    /// The services.
    Services {
        /// Every service.
        services: Vec<ServiceView>,
        /// The backend's health line.
        backend: String,
    },
    /// No answer, or not the expected document.
    Unavailable(String),
}

impl StatusView {
    fn fetch(lab: &Lab, http: SocketAddr) -> StatusView {
        match lab.node_http_get(http, "/status", STATUS_TIMEOUT) {
            None => StatusView::Unavailable(format!("no answer from http://{http}/status")),
            Some((200, body)) => match serde_json::from_str::<Value>(&body) {
                Ok(doc) => StatusView::Services {
                    services: doc["services"]
                        .as_array()
                        .map(|s| s.iter().map(ServiceView::from_json).collect())
                        .unwrap_or_default(),
                    backend: backend_line(&doc["backend"]),
                },
                Err(e) => StatusView::Unavailable(format!("/status is not JSON ({e})")),
            },
            Some((code, _)) => StatusView::Unavailable(format!("/status answered HTTP {code}")),
        }
    }
}

/// The backend report as one line, whatever its exact fields are.
fn backend_line(backend: &Value) -> String {
    match backend {
        Value::Object(fields) => fields
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| match v {
                Value::String(s) => format!("{k}={s}"),
                other => format!("{k}={other}"),
            })
            .collect::<Vec<_>>()
            .join(" "),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

/// How a process is doing, from `/proc`.
fn process_state(pid: u32) -> &'static str {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return "gone";
    };
    let state = status
        .lines()
        .find_map(|l| l.strip_prefix("State:"))
        .map(str::trim)
        .unwrap_or("");
    match state.chars().next() {
        Some('T') => "STOPPED (SIGSTOP: hangs)",
        Some('Z' | 'X') => "gone",
        Some(_) => "running",
        None => "unknown",
    }
}

/// The DNS server's live processes: the daemon and whatever it forked (NSD serves from children).
fn dns_pids(lab: &mut Lab) -> Vec<u32> {
    lab.dns().process_tree()
}

fn join_pids(pids: &[u32]) -> String {
    if pids.is_empty() {
        "-".to_owned()
    } else {
        pids.iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Everything the view shows, read at one moment.
#[derive(Debug, Clone)]
struct Snapshot {
    /// Seconds since nsbeacon started.
    at: f64,
    nsbeacon: String,
    dns_name: &'static str,
    dns_pids: Vec<u32>,
    dns_state: String,
    node_bgp: String,
    sessions: Vec<(&'static str, String)>,
    status: StatusView,
    routes: Vec<(&'static str, UpstreamRoute)>,
}

impl Snapshot {
    fn take(setup: &Setup, lab: &mut Lab, nsbeacon: &mut DaemonGuard) -> Snapshot {
        let nsbeacon_state = if nsbeacon.is_running() {
            format!("pid {} {}", nsbeacon.pid(), process_state(nsbeacon.pid()))
        } else {
            format!(
                "pid {} EXITED (see {})",
                nsbeacon.pid(),
                setup.log.display()
            )
        };
        let dns_name = lab.dns().kind().binary();
        let dns_pids = dns_pids(lab);
        let dns_state = if dns_pids.is_empty() {
            "NOT RUNNING".to_owned()
        } else {
            let states: Vec<&str> = dns_pids.iter().map(|p| process_state(*p)).collect();
            if states.iter().all(|s| *s == states[0]) {
                states[0].to_owned()
            } else {
                format!("mixed: {}", states.join(", "))
            }
        };
        let node_bgp = match lab.node_bgp_ref() {
            NodeBgp::Bird(bird) => format!(
                "BIRD 2 pid {}",
                bird.pid().map_or_else(|| "-".to_owned(), |p| p.to_string())
            ),
            NodeBgp::Frr(frr) => format!(
                "FRR {}",
                FrrDaemon::ALL
                    .iter()
                    .map(|d| format!(
                        "{} {}",
                        d.name(),
                        frr.pid(*d)
                            .map_or_else(|| "-".to_owned(), |p| p.to_string())
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let sessions = [UPSTREAM_PROTOCOL_V4, UPSTREAM_PROTOCOL_V6]
            .into_iter()
            .map(|p| {
                (
                    p,
                    lab.upstream_bird()
                        .protocol_state(p)
                        .unwrap_or_else(|| "?".to_owned()),
                )
            })
            .collect();
        // The upstream first, nsbeacon's view second: a decision travels nsbeacon -> BGP daemon -> upstream,
        // so read in this order the view never shows the upstream ahead of the decision that caused it.
        let routes = [ANYCAST_V4, ANYCAST_V6]
            .into_iter()
            .map(|p| (p, UpstreamRoute::read(lab, p)))
            .collect();
        Snapshot {
            at: setup.started.elapsed().as_secs_f64(),
            nsbeacon: nsbeacon_state,
            dns_name,
            dns_pids,
            dns_state,
            node_bgp,
            sessions,
            status: StatusView::fetch(lab, setup.http),
            routes,
        }
    }

    /// The facts whose changes are events, keyed by what they are about, in the order they are told:
    /// processes, nsbeacon's decision, the BGP daemon's state, what the upstream sees.
    fn facts(&self) -> Vec<(String, String)> {
        let mut facts = vec![
            ("nsbeacon".to_owned(), self.nsbeacon.clone()),
            (
                format!("DNS server {}", self.dns_name),
                self.dns_state.clone(),
            ),
        ];
        for (p, state) in &self.sessions {
            facts.push((format!("upstream BGP session {p}"), state.clone()));
        }
        match &self.status {
            StatusView::Services { services, .. } => {
                facts.push(("nsbeacon /status".to_owned(), "answers".to_owned()));
                for s in services {
                    let drained = if s.drained && s.state != "drained" {
                        ", DRAINED"
                    } else {
                        ""
                    };
                    // The reason alone can change every probe (latency, counters): only state changes
                    // are events, and the reason in force is shown with them.
                    facts.push((
                        format!("service {}", s.name),
                        format!("{}{drained}", s.state),
                    ));
                }
                for s in services {
                    for t in &s.targets {
                        facts.push((
                            format!("nsbeacon target {} ({})", t.target, t.role),
                            format!("desired {}, actual {}", t.desired, t.actual),
                        ));
                    }
                }
            }
            StatusView::Unavailable(why) => {
                facts.push(("nsbeacon /status".to_owned(), why.clone()));
            }
        }
        for (prefix, route) in &self.routes {
            facts.push((format!("upstream sees {prefix}"), route.describe()));
        }
        facts
    }

    fn service_reason(&self, key: &str) -> Option<String> {
        let StatusView::Services { services, .. } = &self.status else {
            return None;
        };
        services
            .iter()
            .find(|s| format!("service {}", s.name) == key)
            .map(|s| s.reason.clone())
    }
}

/// The change log: one line per fact that changed, with the time since nsbeacon started.
struct Events {
    started: Instant,
    echo: bool,
    last: BTreeMap<String, String>,
    lines: Vec<String>,
}

impl Events {
    fn new(started: Instant, echo: bool) -> Events {
        Events {
            started,
            echo,
            last: BTreeMap::new(),
            lines: Vec::new(),
        }
    }

    fn push(&mut self, what: String) {
        let line = format!("[{:6.1}s] {what}", self.started.elapsed().as_secs_f64());
        if self.echo {
            say(&line);
        }
        self.lines.push(line);
    }

    fn observe(&mut self, snapshot: &Snapshot) {
        self.observe_facts(snapshot.facts(), |key| snapshot.service_reason(key));
    }

    /// Records one line per fact whose value changed (with `reason(key)` appended when it has one) and
    /// one per fact no longer reported.
    fn observe_facts(
        &mut self,
        facts: Vec<(String, String)>,
        reason: impl Fn(&str) -> Option<String>,
    ) {
        let changed: Vec<(String, String)> = facts
            .iter()
            .filter(|(k, v)| self.last.get(k) != Some(v))
            .cloned()
            .collect();
        let facts: BTreeMap<String, String> = facts.into_iter().collect();
        for (key, value) in changed {
            let reason = reason(&key).map_or_else(String::new, |r| format!(" ({r})"));
            self.push(format!("{key}: {value}{reason}"));
        }
        let gone: Vec<String> = self
            .last
            .keys()
            .filter(|k| !facts.contains_key(*k))
            .cloned()
            .collect();
        for key in gone {
            self.push(format!("{key}: no longer reported"));
        }
        self.last = facts;
    }
}

/// Colours a word on a terminal.
fn paint(word: &str, tty: bool) -> String {
    if !tty {
        return word.to_owned();
    }
    let colour = match word {
        w if w.starts_with("ANNOUNCED (degraded)")
            || w == "degraded"
            || w == "drained"
            || w == "held" =>
        {
            "33"
        }
        w if w.starts_with("ANNOUNCED") || w == "up" || w == "announced" || w == "running" => "32",
        w if w.starts_with("NO ROUTE")
            || w == "down"
            || w == "withdrawn"
            || w.starts_with("STOPPED")
            || w.starts_with("NOT RUNNING")
            || w.contains("EXITED") =>
        {
            "31"
        }
        _ => return word.to_owned(),
    };
    format!("\x1b[1;{colour}m{word}\x1b[0m")
}

/// The view without the instructions and events: processes, services, upstream.
fn render_snapshot(s: &Snapshot, tty: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "nsbeacon    {}", paint(&s.nsbeacon, tty));
    let _ = writeln!(
        out,
        "DNS server  {} pid {}: {}",
        s.dns_name,
        join_pids(&s.dns_pids),
        paint(&s.dns_state, tty)
    );
    let sessions = s
        .sessions
        .iter()
        .map(|(p, st)| format!("{p} {st}"))
        .collect::<Vec<_>>()
        .join(", ");
    let _ = writeln!(
        out,
        "node BGP    {}; upstream sessions: {sessions}",
        s.node_bgp
    );
    let _ = writeln!(out);
    match &s.status {
        StatusView::Unavailable(why) => {
            let _ = writeln!(out, "nsbeacon /status: {why}");
        }
        StatusView::Services { services, backend } => {
            let _ = writeln!(out, "nsbeacon backend: {backend}");
            for svc in services {
                let since = svc
                    .since_unix
                    .and_then(|since| {
                        let now = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .ok()?
                            .as_secs_f64();
                        Some(format!(", for {:.1}s", (now - since).max(0.0)))
                    })
                    .unwrap_or_default();
                let drained = if svc.drained && svc.state != "drained" {
                    "  DRAINED"
                } else {
                    ""
                };
                let _ = writeln!(
                    out,
                    "service {}: {}{drained}  ({} transitions{since})",
                    svc.name,
                    paint(&svc.state, tty),
                    svc.transitions
                );
                let _ = writeln!(out, "  reason:  {}", svc.reason);
                let checks = svc
                    .checks
                    .iter()
                    .map(|c| format!("{} {}{}", c.name, c.result, c.latency))
                    .collect::<Vec<_>>()
                    .join("   ");
                let _ = writeln!(out, "  checks:  {checks}");
                let width = svc
                    .targets
                    .iter()
                    .map(|t| t.target.len())
                    .max()
                    .unwrap_or(0)
                    .max("target".len());
                let _ = writeln!(
                    out,
                    "  {:<width$} {:<9} {:<10} actual (BGP daemon)",
                    "target", "role", "desired"
                );
                for t in &svc.targets {
                    let _ = writeln!(
                        out,
                        "  {:<width$} {:<9} {:<10} {}",
                        t.target,
                        t.role,
                        t.desired,
                        paint(&t.actual, tty)
                    );
                }
            }
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "upstream router (AS {UPSTREAM_AS}) sees:");
    for (prefix, route) in &s.routes {
        let _ = writeln!(out, "  {prefix:<18} {}", paint(&route.describe(), tty));
    }
    out
}

/// How to break the node from a second terminal, with the real PIDs and paths.
fn instructions(setup: &Setup, lab: &mut Lab, nsbeacon_pid: u32) -> String {
    let dns = dns_pids(lab);
    let bin = setup.binary.display();
    let cfg = setup.config.display();
    let node = lab.node_netns().name().to_owned();
    let upstream_socket = lab.upstream_bird().socket();
    let nsd_note = if lab.dns().kind() == DnsServerKind::Nsd {
        "   (NSD serves from child processes: signal all of them)"
    } else {
        ""
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Break it from a second terminal (as root) and watch the upstream:{nsd_note}"
    );
    if dns.is_empty() {
        let _ = writeln!(
            out,
            "  kill -USR1 {}         # the DNS server is not running: start it again",
            std::process::id()
        );
    } else {
        let dns = join_pids(&dns);
        let _ = writeln!(
            out,
            "  kill -STOP {dns}      # DNS server hangs: probes time out, route withdrawn"
        );
        let _ = writeln!(
            out,
            "  kill -CONT {dns}      # it answers again: re-announced after rise"
        );
        let _ = writeln!(
            out,
            "  kill {dns}            # DNS server stops: withdrawn; bring it back: kill -USR1 {}",
            std::process::id()
        );
    }
    let _ = writeln!(out, "  {bin} drain -c {cfg} --reason test");
    let _ = writeln!(out, "  {bin} undrain -c {cfg}");
    let _ = writeln!(
        out,
        "  kill {nsbeacon_pid}            # nsbeacon itself stops: it withdraws on the way out"
    );
    let _ = writeln!(out, "Look closer:");
    let _ = writeln!(out, "  ip netns exec {node} {bin} status -c {cfg}");
    let _ = writeln!(
        out,
        "  birdc -s {} show route {ANYCAST_V4} all",
        upstream_socket.display()
    );
    let _ = writeln!(out, "  tail -f {}", setup.log.display());
    let _ = write!(
        out,
        "Ctrl-C (or kill {}) stops the demo and removes the lab.",
        std::process::id()
    );
    out
}

fn render_view(
    setup: &Setup,
    s: &Snapshot,
    lab: &mut Lab,
    nsbeacon_pid: u32,
    events: &Events,
    tty: bool,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "nsbeacon demo: node {} + {}   t={:.1}s   config {}",
        bgp_name(setup.bgp),
        s.dns_name,
        s.at,
        setup.config.display()
    );
    let _ = writeln!(out);
    out.push_str(&render_snapshot(s, tty));
    let _ = writeln!(out);
    let _ = writeln!(out, "recent changes:");
    let start = events.lines.len().saturating_sub(EVENTS_SHOWN);
    for line in &events.lines[start..] {
        let _ = writeln!(out, "  {line}");
    }
    let _ = writeln!(out);
    out.push_str(&instructions(setup, lab, nsbeacon_pid));
    out
}

/// What the demo started, to check after the teardown that all of it is gone.
struct Inventory {
    namespaces: Vec<String>,
    pids: Vec<(String, u32)>,
    dir: PathBuf,
}

impl Inventory {
    fn of(lab: &mut Lab) -> Inventory {
        let mut namespaces = vec![
            lab.node_netns().name().to_owned(),
            lab.upstream_netns().name().to_owned(),
        ];
        if let Some(primary) = lab.primary_netns() {
            namespaces.push(primary.name().to_owned());
        }
        let mut pids: Vec<(String, u32)> = Vec::new();
        if let Some(pid) = lab.upstream_bird().pid() {
            pids.push(("upstream bird".to_owned(), pid));
        }
        match lab.node_bgp_ref() {
            NodeBgp::Bird(bird) => pids.extend(bird.pid().map(|p| ("node bird".to_owned(), p))),
            NodeBgp::Frr(frr) => pids.extend(
                FrrDaemon::ALL
                    .iter()
                    .filter_map(|d| frr.pid(*d).map(|p| (d.name().to_owned(), p))),
            ),
        }
        let dns = lab.dns().kind().binary();
        pids.extend(dns_pids(lab).into_iter().map(|p| (dns.to_owned(), p)));
        Inventory {
            namespaces,
            pids,
            dir: lab.dir().to_path_buf(),
        }
    }

    fn with_nsbeacon(mut self, pid: u32) -> Inventory {
        self.pids.push(("nsbeacon".to_owned(), pid));
        self
    }
}

/// Stops nsbeacon (SIGTERM: it withdraws), shows what the upstream sees then, drops the lab (every
/// daemon by PID, the namespaces, the lab dir) and checks that nothing it started is left.
fn teardown(
    nsbeacon: Option<DaemonGuard>,
    mut lab: Lab,
    mut inventory: Inventory,
) -> Result<(), DemoError> {
    // A DNS server restarted during the demo has new PIDs.
    let dns = lab.dns().kind().binary();
    for pid in dns_pids(&mut lab) {
        if !inventory.pids.iter().any(|(_, p)| *p == pid) {
            inventory.pids.push((dns.to_owned(), pid));
        }
    }
    if let Some(nsbeacon) = nsbeacon {
        say("demo: stopping nsbeacon (SIGTERM) ...");
        drop(nsbeacon);
        let stopped = Instant::now();
        for prefix in [ANYCAST_V4, ANYCAST_V6] {
            // The withdrawal takes a moment to travel BGP daemon -> upstream; wait for it, boundedly.
            let route = loop {
                let route = UpstreamRoute::read(&lab, prefix);
                if !matches!(route, UpstreamRoute::Present(_)) || stopped.elapsed() >= WITHDRAW_WAIT
                {
                    break route;
                }
                std::thread::sleep(Duration::from_millis(50));
            };
            match route {
                // Ctrl-C on a terminal reaches every process of the foreground group, the lab's daemons
                // too: then there is nobody left to ask.
                UpstreamRoute::Unreadable(_) => {
                    say(
                        "demo: the upstream BIRD has already stopped (Ctrl-C reaches the lab's daemons too)",
                    );
                    break;
                }
                route => say(&format!(
                    "demo: {:.1}s after nsbeacon stopped, upstream sees {prefix}: {}",
                    stopped.elapsed().as_secs_f64(),
                    route.describe()
                )),
            }
        }
    }
    say("demo: stopping the daemons and removing the lab ...");
    drop(lab);
    // Processes the lab forked (NSD's children, DNS servers restarted by the demo) are covered by the
    // namespace teardown; the ones recorded here are checked by PID.
    let mut left = Vec::new();
    for (name, pid) in &inventory.pids {
        if is_alive(*pid) {
            left.push(format!("{name} pid {pid} still runs"));
        }
    }
    for ns in &inventory.namespaces {
        if nsbeacon_testkit::netns::exists(ns) {
            left.push(format!("namespace {ns} still exists"));
        }
    }
    if inventory.dir.exists() {
        left.push(format!("lab dir {} still exists", inventory.dir.display()));
    }
    if left.is_empty() {
        say(&format!(
            "demo: clean: {} processes stopped, namespaces {} deleted, {} removed",
            inventory.pids.len(),
            inventory.namespaces.join(" "),
            inventory.dir.display()
        ));
        Ok(())
    } else {
        Err(DemoError::LeftBehind(left.join("; ")))
    }
}
