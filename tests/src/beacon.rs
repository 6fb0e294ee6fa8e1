//! nsbeacon in a lab, the way the scenarios drive it: its config ([`BeaconConfig`]), the process
//! ([`Beacon`]: start, SIGHUP, SIGTERM, SIGKILL, the CLI), what it says about itself (`/status`, `/metrics`),
//! and a continuous watch of the upstream's RIB ([`RouteWatch`]) for "never blinked" / "never leaked" /
//! "changed at most N times" assertions.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nsbeacon_testkit::bird::bird_command;
use nsbeacon_testkit::{DaemonGuard, Signal, wait_until};

use crate::lab::{
    ANYCAST_V4, ANYCAST_V4_ADDR, ANYCAST_V6, ANYCAST_V6_ADDR, LAB_ZONE, Lab, NodeBgp,
};
use crate::nsbeacon::{lab_backend, lab_targets, nsbeacon_binary};
use crate::route::{RouteInfo, parse_show_route_all};

/// Where nsbeacon's HTTP server listens inside the node namespace (each lab has its own namespace).
pub const BEACON_HTTP: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9753);

/// How long one `/status` or `/metrics` request may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);

/// One `[[service.check]]`.
#[derive(Debug, Clone)]
pub enum CheckSpec {
    /// A query check: the lab zone's SOA, authoritative, at `target`.
    Query {
        /// Check name.
        name: String,
        /// The server probed.
        target: SocketAddr,
        /// A correct answer slower than this is a soft signal (degraded).
        slow_after: Option<Duration>,
        /// Per-exchange timeout (default: the service's).
        timeout: Option<Duration>,
    },
    /// A serial check: the lab zone at `local` against `reference` (the hidden primary).
    Serial {
        /// Check name.
        name: String,
        /// The node's DNS server.
        local: SocketAddr,
        /// The hidden primary.
        reference: SocketAddr,
        /// Lag (RFC 1982 distance) above which the check fails; within it the service is degraded.
        max_lag: u32,
        /// Sweep interval.
        interval: Duration,
        /// Per-query timeout.
        timeout: Duration,
    },
}

impl CheckSpec {
    /// The lab zone's SOA at `target`, no latency limit.
    pub fn soa(name: &str, target: SocketAddr) -> CheckSpec {
        CheckSpec::Query {
            name: name.to_owned(),
            target,
            slow_after: None,
            timeout: None,
        }
    }

    /// The lab zone's SOA on the anycast IPv4 address.
    pub fn soa_v4() -> CheckSpec {
        CheckSpec::soa("soa-v4", SocketAddr::new(ANYCAST_V4_ADDR.into(), 53))
    }

    /// The lab zone's SOA on the anycast IPv6 address.
    pub fn soa_v6() -> CheckSpec {
        CheckSpec::soa("soa-v6", SocketAddr::new(ANYCAST_V6_ADDR.into(), 53))
    }

    fn render(&self) -> String {
        match self {
            CheckSpec::Query {
                name,
                target,
                slow_after,
                timeout,
            } => {
                let mut s = format!(
                    "[[service.check]]\nname = \"{name}\"\ntarget = \"{target}\"\nqname = \"{LAB_ZONE}\"\n"
                );
                if let Some(slow) = slow_after {
                    s += &format!("slow_after = \"{}ms\"\n", slow.as_millis());
                }
                if let Some(t) = timeout {
                    s += &format!("timeout = \"{}ms\"\n", t.as_millis());
                }
                s
            }
            CheckSpec::Serial {
                name,
                local,
                reference,
                max_lag,
                interval,
                timeout,
            } => format!(
                "[[service.check]]\nname = \"{name}\"\ntype = \"serial\"\nlocal = \"{local}\"\n\
                 reference = \"{reference}\"\nzones = [\"{LAB_ZONE}\"]\nmax_lag = {max_lag}\n\
                 interval = \"{}ms\"\ntimeout = \"{}ms\"\n",
                interval.as_millis(),
                timeout.as_millis()
            ),
        }
    }
}

/// `[service.damping]`.
#[derive(Debug, Clone)]
pub struct DampingSpec {
    /// `false` turns damping off (the other fields are then not written).
    pub enabled: bool,
    /// Added per change between announced and withdrawn.
    pub penalty: u32,
    /// Above this the service stays withdrawn.
    pub suppress_threshold: u32,
    /// Released below this.
    pub reuse_threshold: u32,
    /// Penalty half-life.
    pub half_life: Duration,
    /// Longest suppression.
    pub max_hold_down: Duration,
}

/// One `[[service]]`.
#[derive(Debug, Clone)]
pub struct ServiceSpec {
    /// Service name.
    pub name: String,
    /// Announce targets.
    pub announce: Vec<String>,
    /// Degrade targets.
    pub degrade: Vec<String>,
    /// Probe interval.
    pub interval: Duration,
    /// Service-wide timeout (default: nsbeacon's).
    pub timeout: Option<Duration>,
    /// Passes before up.
    pub rise: u32,
    /// Failures before down.
    pub fall: u32,
    /// Flap damping; `None` keeps nsbeacon's defaults.
    pub damping: Option<DampingSpec>,
    /// Graceful drain: announce the degrade targets this long on a drain, then withdraw.
    pub graceful_drain: Option<Duration>,
    /// The checks, combined with `all`.
    pub checks: Vec<CheckSpec>,
    /// The body of `[service.load]` (TOML lines), if any.
    pub load: Option<String>,
}

impl DampingSpec {
    /// No damping: scenarios that break and repair a node several times in a row, where nsbeacon's
    /// default damping would (rightly) hold the route down, and that test something else.
    pub fn off() -> DampingSpec {
        DampingSpec {
            enabled: false,
            penalty: 0,
            suppress_threshold: 0,
            reuse_threshold: 0,
            half_life: Duration::ZERO,
            max_hold_down: Duration::ZERO,
        }
    }
}

impl ServiceSpec {
    /// A service with fast lab timers (300 ms interval, 250 ms timeout, rise 3, fall 3) and no checks
    /// yet. The timeout is deliberately generous: on a loaded 2-core CI machine three 100 ms timeouts in a
    /// row happen, and a scenario asserting "never withdrawn" must fail only for nsbeacon's reasons.
    pub fn new(name: &str, announce: Vec<String>, degrade: Vec<String>) -> ServiceSpec {
        ServiceSpec {
            name: name.to_owned(),
            announce,
            degrade,
            interval: Duration::from_millis(300),
            timeout: Some(Duration::from_millis(250)),
            rise: 3,
            fall: 3,
            damping: None,
            graceful_drain: None,
            checks: Vec::new(),
            load: None,
        }
    }

    /// Adds a check.
    pub fn check(mut self, check: CheckSpec) -> ServiceSpec {
        self.checks.push(check);
        self
    }

    fn render(&self) -> String {
        let list = |v: &[String]| {
            v.iter()
                .map(|t| format!("\"{t}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut s = format!(
            "[[service]]\nname = \"{}\"\nannounce = [{}]\ndegrade = [{}]\ninterval = \"{}ms\"\nrise = {}\nfall = {}\n",
            self.name,
            list(&self.announce),
            list(&self.degrade),
            self.interval.as_millis(),
            self.rise,
            self.fall
        );
        if let Some(t) = self.timeout {
            s += &format!("timeout = \"{}ms\"\n", t.as_millis());
        }
        if let Some(g) = self.graceful_drain {
            s += &format!("graceful_drain = \"{}ms\"\n", g.as_millis());
        }
        match &self.damping {
            None => {}
            Some(d) if !d.enabled => s += "\n[service.damping]\nenabled = false\n",
            Some(d) => {
                s += &format!(
                    "\n[service.damping]\npenalty = {}\nsuppress_threshold = {}\nreuse_threshold = {}\n\
                 half_life = \"{}ms\"\nmax_hold_down = \"{}ms\"\n",
                    d.penalty,
                    d.suppress_threshold,
                    d.reuse_threshold,
                    d.half_life.as_millis(),
                    d.max_hold_down.as_millis()
                )
            }
        }
        if let Some(load) = &self.load {
            s += "\n[service.load]\n";
            s += load;
            s += "\n";
        }
        for check in &self.checks {
            s += "\n";
            s += &check.render();
        }
        s
    }
}

/// The lab's graceful-shutdown variants of both anycast prefixes, as `degrade` targets for a graceful
/// drain: the BIRD template's `anycast_dns_gshut`/`anycast_dns6_gshut`, or FRR's `network P route-map
/// NSBEACON-GSHUT`. Both carry GRACEFUL_SHUTDOWN (65535:0) and the large community `(NODE_AS, 0, 2)`.
pub fn graceful_shutdown_targets(lab: &Lab) -> Vec<String> {
    match lab.node_bgp_ref() {
        NodeBgp::Bird(_) => vec![
            "anycast_dns_gshut".to_owned(),
            "anycast_dns6_gshut".to_owned(),
        ],
        NodeBgp::Frr(_) => [ANYCAST_V4, ANYCAST_V6]
            .iter()
            .map(|p| format!("{p} route-map NSBEACON-GSHUT"))
            .collect(),
    }
}

/// A whole nsbeacon config for a lab.
#[derive(Debug, Clone)]
pub struct BeaconConfig {
    /// The services.
    pub services: Vec<ServiceSpec>,
    /// How often desired and actual routes are compared.
    pub reconcile_interval: Duration,
}

impl BeaconConfig {
    /// The lab's standard service `dns`: both anycast prefixes ([`lab_targets`]: announce and degrade),
    /// SOA checks on both anycast addresses, [`ServiceSpec::new`]'s timers.
    pub fn for_lab(lab: &Lab) -> BeaconConfig {
        let (announce, degrade) = lab_targets(lab);
        BeaconConfig {
            services: vec![
                ServiceSpec::new("dns", announce, degrade)
                    .check(CheckSpec::soa_v4())
                    .check(CheckSpec::soa_v6()),
            ],
            reconcile_interval: Duration::from_secs(1),
        }
    }

    /// The service called `name`, to adjust it. Panics if there is none.
    pub fn service_mut(&mut self, name: &str) -> &mut ServiceSpec {
        self.services
            .iter_mut()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no service {name} in the config"))
    }

    /// The TOML text: state under the lab dir, HTTP on [`BEACON_HTTP`] in the node namespace.
    pub fn render(&self, lab: &Lab) -> String {
        let mut s = format!(
            "state_dir = \"{}\"\nreconcile_interval = \"{}ms\"\n\n[backend]\n{}\n[http]\nlisten = \"{BEACON_HTTP}\"\n\n\
             [log]\nlevel = \"info\"\n",
            lab.dir().join("nsbeacon-state").display(),
            self.reconcile_interval.as_millis(),
            lab_backend(lab)
        );
        for service in &self.services {
            s += "\n";
            s += &service.render();
        }
        s
    }
}

/// A running (or stopped) nsbeacon in a lab's node namespace. Dropping it kills the process by PID.
#[derive(Debug)]
pub struct Beacon {
    config_path: PathBuf,
    log_path: PathBuf,
    guard: Option<DaemonGuard>,
}

impl Beacon {
    /// Writes `config` (after `nsbeacon check-config` accepted it) and starts `nsbeacon run` in the node
    /// namespace. Returns at once: nothing is announced before the checks have passed `rise` times.
    pub fn start(lab: &Lab, config: &BeaconConfig) -> Beacon {
        let mut beacon = Beacon {
            config_path: lab.dir().join("nsbeacon.toml"),
            log_path: lab.dir().join("nsbeacon.log"),
            guard: None,
        };
        beacon.write_config(lab, config);
        beacon.spawn(lab);
        beacon
    }

    /// The config file path.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// Writes `config` to the config file, after `nsbeacon check-config` accepted it (panics otherwise).
    /// A running nsbeacon picks it up on [`reload`](Self::reload).
    pub fn write_config(&self, lab: &Lab, config: &BeaconConfig) {
        let text = config.render(lab);
        std::fs::write(&self.config_path, &text)
            .unwrap_or_else(|e| panic!("write {}: {e}", self.config_path.display()));
        let out = self.cli(&["check-config"]);
        assert!(
            out.status.success(),
            "nsbeacon check-config rejected the scenario's config:\n{text}\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Writes `text` to the config file as is, unchecked: for reloads of a broken file.
    pub fn write_config_unchecked(&self, text: &str) {
        std::fs::write(&self.config_path, text)
            .unwrap_or_else(|e| panic!("write {}: {e}", self.config_path.display()));
    }

    /// Starts `nsbeacon run` (again) on the config file; its output is appended to the same log.
    /// Panics if one is still running.
    pub fn spawn(&mut self, lab: &Lab) {
        assert!(
            self.guard.as_mut().is_none_or(|g| !g.is_running()),
            "nsbeacon is still running"
        );
        let config = self.config_path.to_string_lossy().into_owned();
        let mut cmd = lab.node_netns().exec(nsbeacon_binary());
        cmd.args(["run", "-c", &config]);
        self.guard = Some(DaemonGuard::spawn("nsbeacon", cmd, Some(&self.log_path)));
    }

    /// The PID of the running nsbeacon.
    pub fn pid(&self) -> Option<u32> {
        self.guard.as_ref().map(DaemonGuard::pid)
    }

    /// Whether nsbeacon still runs.
    pub fn is_running(&mut self) -> bool {
        self.guard.as_mut().is_some_and(DaemonGuard::is_running)
    }

    /// SIGHUP: re-read the config file.
    pub fn reload(&self) {
        assert!(
            self.guard
                .as_ref()
                .is_some_and(|g| g.signal(Signal::SIGHUP)),
            "SIGHUP to nsbeacon failed: not running"
        );
    }

    /// SIGTERM, and waits (up to 10 s, then SIGKILL) for the exit; returns the exit status.
    pub fn terminate(&mut self) -> Option<ExitStatus> {
        self.guard
            .take()
            .and_then(|mut g| g.stop(Duration::from_secs(10)))
    }

    /// SIGKILL (a crash): nsbeacon gets no chance to withdraw anything.
    pub fn kill(&mut self) {
        if let Some(mut guard) = self.guard.take() {
            guard.kill();
        }
    }

    /// Everything nsbeacon logged so far (all runs), for assertion messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Runs `nsbeacon ARGS... -c CONFIG` (e.g. `drain --reason x`) to completion and returns its output.
    /// Drains go through the state dir, so the CLI needs no namespace.
    pub fn cli(&self, args: &[&str]) -> Output {
        std::process::Command::new(nsbeacon_binary())
            .args(args)
            .arg("-c")
            .arg(&self.config_path)
            .output()
            .unwrap_or_else(|e| panic!("run nsbeacon {args:?}: {e}"))
    }

    /// `/status` as JSON, or `None` when nsbeacon does not answer (yet).
    pub fn try_status(&self, lab: &Lab) -> Option<serde_json::Value> {
        let (code, body) = lab.node_http_get(BEACON_HTTP, "/status", HTTP_TIMEOUT)?;
        if code != 200 {
            return None;
        }
        serde_json::from_str(&body).ok()
    }

    /// `/status` as JSON; panics with nsbeacon's log when it does not answer.
    pub fn status(&self, lab: &Lab) -> serde_json::Value {
        self.try_status(lab)
            .unwrap_or_else(|| panic!("nsbeacon /status did not answer; log:\n{}", self.log()))
    }

    /// The `/status` entry of service `name`; panics when absent.
    pub fn service_status(&self, lab: &Lab, name: &str) -> serde_json::Value {
        let status = self.status(lab);
        service_entry(&status, name)
            .unwrap_or_else(|| panic!("no service {name} in /status: {status:#}"))
    }

    /// Waits until service `name` is in `state` (`up`, `degraded`, `down`, `drained`, `starting`) according
    /// to `/status`; returns that entry. Panics with the last status and the log on timeout.
    pub fn wait_state(
        &self,
        lab: &Lab,
        name: &str,
        state: &str,
        timeout: Duration,
    ) -> serde_json::Value {
        let mut last = None;
        let reached = wait_until(timeout, || {
            last = self.try_status(lab).and_then(|s| service_entry(&s, name));
            last.as_ref().is_some_and(|s| s["state"] == state)
        });
        match last {
            Some(entry) if reached => entry,
            _ => panic!(
                "service {name} not {state} within {timeout:?}; last /status entry: {last:#?}\nnsbeacon log:\n{}",
                self.log()
            ),
        }
    }

    /// Waits until nsbeacon's read-back of every target from the BGP daemon
    /// (`nsbeacon_route_actual_announced`) says `announced`; it lags the upstream by up to a reconcile
    /// interval. Panics with the last values and the log on timeout.
    pub fn wait_actual(&self, lab: &Lab, targets: &[String], announced: bool, timeout: Duration) {
        let want = if announced { 1.0 } else { 0.0 };
        let mut last = String::new();
        let ok = wait_until(timeout, || {
            let m = self.metrics(lab);
            last = targets
                .iter()
                .map(|t| {
                    format!(
                        "{t}={:?}",
                        m.value("nsbeacon_route_actual_announced", &[("target", t)])
                    )
                })
                .collect::<Vec<_>>()
                .join(" ");
            targets.iter().all(|t| m.actual_announced(t) == want)
        });
        assert!(
            ok,
            "nsbeacon_route_actual_announced not {want} for all of {targets:?} within {timeout:?}: {last}; \
             log:\n{}",
            self.log()
        );
    }

    /// `/metrics`, parsed; panics with the log when nsbeacon does not answer.
    pub fn metrics(&self, lab: &Lab) -> Scrape {
        match lab.node_http_get(BEACON_HTTP, "/metrics", HTTP_TIMEOUT) {
            Some((200, body)) => Scrape(body),
            other => panic!("nsbeacon /metrics: {other:?}; log:\n{}", self.log()),
        }
    }
}

/// The `/status` entry of service `name` in `status`.
pub fn service_entry(status: &serde_json::Value, name: &str) -> Option<serde_json::Value> {
    status["services"]
        .as_array()?
        .iter()
        .find(|s| s["name"] == name)
        .cloned()
}

/// A Prometheus text scrape.
#[derive(Debug, Clone)]
pub struct Scrape(pub String);

impl Scrape {
    /// The value of the sample `name{labels...}` whose labels include all of `labels`, if any.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.0.lines().find_map(|line| {
            if line.starts_with('#') {
                return None;
            }
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, label_text) = match series.split_once('{') {
                Some((m, rest)) => (m, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            if metric != name {
                return None;
            }
            let all = labels
                .iter()
                .all(|(k, v)| label_text.split(',').any(|kv| kv == format!("{k}=\"{v}\"")));
            if all { value.parse().ok() } else { None }
        })
    }

    /// Like [`value`](Self::value), panicking with the scrape when the series is missing.
    pub fn expect(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels)
            .unwrap_or_else(|| panic!("no series {name}{labels:?} in the scrape:\n{}", self.0))
    }

    /// `nsbeacon_service_state{service, state}` is 1 for `state` (and so 0 for the others).
    pub fn assert_state(&self, service: &str, state: &str) {
        assert_eq!(
            self.expect(
                "nsbeacon_service_state",
                &[("service", service), ("state", state)]
            ),
            1.0,
            "nsbeacon_service_state for {service} is not {state}:\n{}",
            self.states(service)
        );
    }

    /// The actual announcement of a route target as nsbeacon reads it back from the BGP daemon (1/0).
    pub fn actual_announced(&self, target: &str) -> f64 {
        self.expect("nsbeacon_route_actual_announced", &[("target", target)])
    }

    /// The announcement of a route target that nsbeacon wants (1/0).
    pub fn desired_announced(&self, target: &str) -> f64 {
        self.expect("nsbeacon_route_desired_announced", &[("target", target)])
    }

    fn states(&self, service: &str) -> String {
        self.0
            .lines()
            .filter(|l| {
                l.starts_with("nsbeacon_service_state{") && l.contains(&format!("\"{service}\""))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// What the upstream's route for a prefix looks like, for change counting: `None` is no route.
pub type RouteKey = Option<(Vec<u32>, Vec<(u32, u32)>, Vec<(u32, u32, u32)>)>;

fn route_key(route: Option<&RouteInfo>) -> RouteKey {
    route.map(|r| {
        (
            r.as_path.clone(),
            r.communities.clone(),
            r.large_communities.clone(),
        )
    })
}

/// One change of the upstream's route for a prefix.
#[derive(Debug, Clone)]
pub struct RouteEvent {
    /// When it was seen.
    pub at: Instant,
    /// The prefix.
    pub prefix: String,
    /// The route from then on (`None`: withdrawn).
    pub route: RouteKey,
}

/// Polls the upstream's RIB for some prefixes in a background thread (every ~10 ms) and records every
/// change, so a scenario can assert what happened *between* its steps: no blink, no leak, at most N
/// changes.
#[derive(Debug)]
pub struct RouteWatch {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<RouteEvent>>>,
}

impl RouteWatch {
    /// Starts watching `prefixes`; the first event per prefix is the route at the start.
    pub fn start(lab: &Lab, prefixes: &[&str]) -> RouteWatch {
        let socket = lab.upstream_bird().socket();
        let prefixes: Vec<String> = prefixes.iter().map(|p| (*p).to_owned()).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let stop_thread = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut events: Vec<RouteEvent> = Vec::new();
            let mut last: Vec<Option<RouteKey>> = vec![None; prefixes.len()];
            loop {
                let stopping = stop_thread.load(Ordering::SeqCst);
                for (i, prefix) in prefixes.iter().enumerate() {
                    let Ok(reply) = bird_command(&socket, &format!("show route {prefix} all"))
                    else {
                        continue;
                    };
                    let key = route_key(parse_show_route_all(&reply).as_ref());
                    if last[i].as_ref() != Some(&key) {
                        events.push(RouteEvent {
                            at: Instant::now(),
                            prefix: prefix.clone(),
                            route: key.clone(),
                        });
                        last[i] = Some(key);
                    }
                }
                if stopping {
                    return events;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        RouteWatch {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops watching (after one last look) and returns everything seen.
    pub fn finish(mut self) -> RouteHistory {
        self.stop.store(true, Ordering::SeqCst);
        let events = self
            .thread
            .take()
            .map(|t| {
                t.join()
                    .unwrap_or_else(|_| panic!("the route watch thread panicked"))
            })
            .unwrap_or_default();
        RouteHistory { events }
    }
}

impl Drop for RouteWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What a [`RouteWatch`] saw.
#[derive(Debug, Clone)]
pub struct RouteHistory {
    /// Every change, in order (the first per prefix is the state at the start).
    pub events: Vec<RouteEvent>,
}

impl RouteHistory {
    /// The routes seen for `prefix`, in order, the first being the one at the start.
    pub fn routes(&self, prefix: &str) -> Vec<RouteKey> {
        self.events
            .iter()
            .filter(|e| e.prefix == prefix)
            .map(|e| e.route.clone())
            .collect()
    }

    /// How many times the route for `prefix` changed after the start (announce, withdraw, new path).
    pub fn changes(&self, prefix: &str) -> usize {
        self.routes(prefix).len().saturating_sub(1)
    }

    /// Whether `prefix` was announced at any moment of the watch.
    pub fn ever_announced(&self, prefix: &str) -> bool {
        self.routes(prefix).iter().any(Option::is_some)
    }

    /// Whether `prefix` was missing at any moment of the watch.
    pub fn ever_withdrawn(&self, prefix: &str) -> bool {
        self.routes(prefix).iter().any(Option::is_none)
    }

    /// A readable account, for assertion messages.
    pub fn describe(&self) -> String {
        let Some(start) = self.events.first().map(|e| e.at) else {
            return "no observations".to_owned();
        };
        self.events
            .iter()
            .map(|e| {
                let route = match &e.route {
                    None => "withdrawn".to_owned(),
                    Some((path, comms, large)) => {
                        format!("as_path {path:?} communities {comms:?} large {large:?}")
                    }
                };
                format!(
                    "+{:>6} ms {}: {route}",
                    e.at.duration_since(start).as_millis(),
                    e.prefix
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}
