//! The status model: what `/status` serves and `nsbeacon status` reads back, typed end to end.
//!
//! Every stage publishes its part: the probe stage fills a [`CheckReport`] per check, the service task a
//! [`ServiceReport`], the reconciler a [`RoutingReport`]. [`StatusDocument::assemble`] joins them by
//! [`TargetId`], the HTTP layer serves the result, and the CLI deserializes the same types, so the JSON
//! has one definition and a renamed field breaks the build instead of the table.

use std::collections::{BTreeMap, HashMap};

use nsbeacon_routing::{PeerExport, RouteState};
use serde::{Deserialize, Serialize};

use crate::config::{CheckKind, OnShutdown};
use crate::health::{CheckSignal, ServiceState};
use crate::routes::TargetId;

/// One target as the reconciler sees it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TargetReport {
    /// Kind and name (`bird_protocol` / `anycast_dns`).
    #[serde(flatten)]
    pub id: TargetId,
    /// Services that list this target.
    pub services: Vec<String>,
    /// The merged desired state (withdrawn wins).
    pub desired: RouteState,
    /// What the daemon reported at the last read-back; `None` while unknown.
    pub actual: Option<RouteState>,
    /// The daemon's own words for the target's state (e.g. BIRD's `up`/`down`).
    pub detail: String,
    /// The last error for this target, cleared on success.
    pub last_error: Option<String>,
    /// Whether desired and actual agree.
    pub in_sync: bool,
    /// The BGP daemon answered that this target does not exist (a misspelled name).
    #[serde(default)]
    pub missing: bool,
    /// Which BGP peers receive the target's route, while it is announced (`None` while withdrawn or not
    /// read yet): the proof that an announcement left the node.
    #[serde(default)]
    pub exports: Option<ExportsReport>,
}

/// What the BGP daemon exports of one announced target to its peers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ExportsReport {
    /// The daemon said, per BGP peer of the target's address family, whether the route goes out.
    Known {
        /// Each peer: its session (state, BFD) and whether the route is exported to it.
        peers: Vec<PeerExport>,
        /// Peers the route is exported to.
        exported_to: u32,
        /// Peers listed (sessions of the target's address family, established or not).
        peers_total: u32,
        /// When it was read (seconds since the Unix epoch).
        at_unix: f64,
    },
    /// Not known: the backend cannot read its exports (say "unknown", never "0 peers"), or reading failed.
    Unknown {
        /// Why.
        reason: String,
        /// When it was tried (seconds since the Unix epoch).
        at_unix: f64,
    },
}

impl ExportsReport {
    /// The report for `peers` read at `at_unix`.
    pub fn known(peers: Vec<PeerExport>, at_unix: f64) -> ExportsReport {
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        ExportsReport::Known {
            exported_to: count(peers.iter().filter(|p| p.exported).count()),
            peers_total: count(peers.len()),
            peers,
            at_unix,
        }
    }

    /// For people: `announced to 2/2 peers (upstream1, upstream2)`, or why it is unknown. Peers not
    /// established show their session state, and BFD its state where it runs.
    pub fn summary(&self) -> String {
        match self {
            ExportsReport::Known {
                peers,
                exported_to,
                peers_total,
                ..
            } => {
                let names: Vec<String> = peers
                    .iter()
                    .map(|p| {
                        let mut s = p.session.peer.clone();
                        if !p.session.established {
                            s.push_str(&format!(" {}", p.session.state));
                        }
                        if let Some(bfd) = &p.session.bfd {
                            s.push_str(&format!(" bfd {bfd}"));
                        }
                        if p.session.established && !p.exported {
                            s.push_str(" not exported");
                        }
                        s
                    })
                    .collect();
                let mut s = format!("announced to {exported_to}/{peers_total} peers");
                if !names.is_empty() {
                    s.push_str(&format!(" ({})", names.join(", ")));
                }
                if *exported_to == 0 {
                    s.push_str(": NO PEER RECEIVES IT");
                }
                s
            }
            ExportsReport::Unknown { reason, .. } => format!("exports unknown: {reason}"),
        }
    }
}

/// The backend as the reconciler sees it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct BackendReport {
    /// `bird` or `frr`.
    pub kind: String,
    /// Whether the daemon answered the last health check.
    pub reachable: bool,
    /// Daemon name and version, when known.
    pub daemon_version: Option<String>,
    /// BGP sessions established.
    pub sessions_up: u32,
    /// BGP sessions configured.
    pub sessions_total: u32,
    /// Why the backend is unreachable, when it is.
    pub error: Option<String>,
    /// Consecutive failed passes in the current outage episode.
    pub consecutive_failures: u32,
}

/// Everything the reconciler publishes about routing.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct RoutingReport {
    /// Backend health.
    pub backend: BackendReport,
    /// Every known target, sorted by kind and name.
    pub targets: Vec<TargetReport>,
    /// When the last complete pass ended (seconds since the Unix epoch).
    pub last_reconcile_unix: Option<f64>,
    /// Whether the first pass has run (the daemon reports ready to systemd after it).
    pub first_pass_done: bool,
}

impl RoutingReport {
    /// The reconciler's view of one target, if it manages it.
    pub fn target(&self, id: &TargetId) -> Option<&TargetReport> {
        self.targets.iter().find(|t| &t.id == id)
    }
}

/// Which kind of check a report is about; the `kind` key of a check in `/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckType {
    /// A DNS query probe.
    Query,
    /// A zone serial sweep.
    Serial,
    /// A DNSSEC signature expiry sweep.
    Dnssec,
}

impl CheckType {
    /// The type of a configured check.
    pub fn of(kind: &CheckKind) -> CheckType {
        match kind {
            CheckKind::Query(_) => CheckType::Query,
            CheckKind::Serial(_) => CheckType::Serial,
            CheckKind::Dnssec(_) => CheckType::Dnssec,
        }
    }
}

/// The health signal of a check's last run, as `/status` spells it (`pass`, `soft`, `hard`).
///
/// Only the kind: the text that goes with a soft or hard signal is the report's `detail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignalKind {
    /// Everything as expected.
    Pass,
    /// Answering, but something is off: at most degrades.
    Soft,
    /// Not serving correctly.
    Hard,
}

impl SignalKind {
    /// The kind of `signal`, without its text.
    pub fn of(signal: &CheckSignal) -> SignalKind {
        match signal {
            CheckSignal::Pass => SignalKind::Pass,
            CheckSignal::Soft(_) => SignalKind::Soft,
            CheckSignal::Hard(_) | CheckSignal::Refused(_) | CheckSignal::TimedOut(_) => {
                SignalKind::Hard
            }
        }
    }
}

/// Which list of its service a target comes from; decides when the service wants it announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetRole {
    /// Announced while the service is up.
    Announce,
    /// Announced while the service is degraded.
    Degrade,
}

/// Serial sweep counts for `/status`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SerialSummaryReport {
    /// Zones checked.
    pub zones: usize,
    /// Zones in sync (or ahead).
    pub in_sync: usize,
    /// Zones behind within the allowed lag.
    pub lagging: usize,
    /// Zones behind beyond the allowed lag.
    pub behind: usize,
    /// Zones the local server did not answer for.
    pub local_failed: usize,
    /// Zones the reference did not answer for.
    pub reference_unreachable: usize,
    /// The zone furthest behind and its lag.
    pub worst_zone: Option<String>,
    /// Its lag.
    pub max_lag: u32,
    /// Local serial, when the check has exactly one zone.
    pub local_serial: Option<u32>,
    /// Reference serial, when the check has exactly one zone.
    pub reference_serial: Option<u32>,
}

/// DNSSEC sweep counts and the worst zones for `/status`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DnssecSummaryReport {
    /// Zones checked.
    pub zones: usize,
    /// Zones per verdict (`valid`, `expiring`, `critical`, `expired`, `not_yet_valid`,
    /// `missing_signature`, `unsigned`, `local_failed`); verdicts with no zone are left out.
    pub verdicts: BTreeMap<String, usize>,
    /// The zones whose earliest signature expires first, earliest first (at most 10).
    pub worst: Vec<ZoneExpiryReport>,
}

/// One zone's earliest-expiring signature, for `/status`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ZoneExpiryReport {
    /// The zone apex.
    pub zone: String,
    /// The RRset the signature covers (`SOA`, `DNSKEY`, ...).
    pub covered: String,
    /// Its expiration (seconds since the Unix epoch).
    pub expires_unix: i64,
    /// Seconds of validity left when checked; negative once expired.
    pub remaining_seconds: i64,
}

/// The last run of one check, for `/status`; filled by the probe stage (`crate::probe`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CheckReport {
    /// Check name.
    pub name: String,
    /// `query`, `serial` or `dnssec`.
    pub kind: CheckType,
    /// What the check talks to.
    pub target: String,
    /// Whether the check is up by its rise/fall counters; `None` before the first run.
    pub up: Option<bool>,
    /// `pass`, `soft` or `hard`; `None` before the first run.
    pub signal: Option<SignalKind>,
    /// `pass`, `slow`, a failure kind (`timeout`, `refused`, ...) or a serial verdict.
    pub result: Option<String>,
    /// Human-readable detail of the last run.
    pub detail: String,
    /// Latency per transport in milliseconds (`udp`, `tcp`, `sweep`).
    pub latency_ms: BTreeMap<String, f64>,
    /// The identity the server reported (NSID or CHAOS TXT).
    pub identity: Option<String>,
    /// Serial sweep counts, for serial checks.
    pub serial: Option<SerialSummaryReport>,
    /// DNSSEC sweep counts and worst zones, for dnssec checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dnssec: Option<DnssecSummaryReport>,
    /// When the last run ended (seconds since the Unix epoch).
    pub at_unix: Option<f64>,
    /// Runs since the service started.
    pub runs: u64,
}

/// One route target of a service with the state the service wants.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ServiceTarget {
    /// Kind and name.
    #[serde(flatten)]
    pub id: TargetId,
    /// `announce` or `degrade`.
    pub role: TargetRole,
    /// The state this service wants.
    pub desired: RouteState,
}

/// One service as its service task publishes it: the service's half of [`ServiceStatus`], before the
/// join with the reconciler's view of its targets.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ServiceReport {
    /// Service name.
    pub name: String,
    /// `starting`, `up`, `degraded`, `down` or `drained`.
    pub state: ServiceState,
    /// Why it is in that state.
    pub reason: String,
    /// When it entered that state (seconds since the Unix epoch).
    pub since_unix: f64,
    /// Every check's last run.
    pub checks: Vec<CheckReport>,
    /// Every target with the state this service wants for it.
    pub targets: Vec<ServiceTarget>,
    /// Whether an operator drained the service.
    pub drained: bool,
    /// Current flap-damping penalty.
    pub damping_penalty: f64,
    /// Whether damping holds the service withdrawn.
    pub suppressed: bool,
    /// State changes since the service started.
    pub transitions: u64,
    /// Load signals and the overload policy, with `[service.load]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<LoadReport>,
}

/// A service's load signals (`[service.load]`) and whether it absorbs an overload, for `/status` and
/// `nsbeacon status`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LoadReport {
    /// `knot`, `nsd`, `bind` or `none` (kernel counters only).
    pub source: String,
    /// Queries per second over the last interval; `None` while unknown.
    pub qps: Option<f64>,
    /// The moving baseline (frozen while overloaded).
    pub baseline_qps: Option<f64>,
    /// The server's request counter at the last good read.
    pub queries_total: Option<u64>,
    /// Kernel UDP receive errors (`InErrors`) per second; `None` while unknown or not read.
    pub udp_errors_per_second: Option<f64>,
    /// The kernel's UDP `InErrors` and `RcvbufErrors` counters at the last good read.
    pub udp_in_errors_total: Option<u64>,
    /// See `udp_in_errors_total`.
    pub udp_rcvbuf_errors_total: Option<u64>,
    /// Whether the load signals say "overloaded".
    pub overloaded: bool,
    /// The detector's words: the rate against the baseline and thresholds, or why there is no rate.
    pub detail: String,
    /// The last read's error, if any: no load signal for that interval.
    pub error: Option<String>,
    /// `absorb` or `withdraw`.
    pub policy: String,
    /// `absorb_for` in seconds, with `absorb`.
    pub absorb_for_secs: Option<f64>,
    /// Whether the service is degraded because it absorbs an overload.
    pub absorbing: bool,
    /// When the current overload episode's absorption started (seconds since the Unix epoch).
    pub absorbing_since_unix: Option<f64>,
    /// Readings taken since the service (or its load task) started.
    pub readings: u64,
}

impl LoadReport {
    /// One line for `nsbeacon status`: "knot 5000 qps, baseline 50 qps, OVERLOADED (...); absorbing".
    pub fn summary(&self) -> String {
        let rate = |x: f64| crate::load::detect::round(x);
        let mut text = self.source.clone();
        match self.qps {
            Some(qps) => text.push_str(&format!(" {} qps", rate(qps))),
            None => text.push_str(" qps unknown"),
        }
        if let Some(b) = self.baseline_qps {
            text.push_str(&format!(", baseline {} qps", rate(b)));
        }
        if let Some(u) = self.udp_errors_per_second {
            text.push_str(&format!(", UDP receive errors {}/s", rate(u)));
        }
        if self.overloaded {
            text.push_str(&format!(", OVERLOADED ({})", self.detail));
        }
        if self.absorbing {
            text.push_str("; ABSORBING (degraded instead of down)");
        } else {
            text.push_str(&format!("; overload policy {}", self.policy));
        }
        if let Some(e) = &self.error {
            text.push_str(&format!("; read error: {e}"));
        }
        text
    }
}

/// Facts about the process, for `/status`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DaemonInfo {
    /// nsbeacon version.
    pub version: String,
    /// Process id (for `kill -HUP`).
    pub pid: u32,
    /// The config file in use.
    pub config_path: String,
    /// When the daemon started (seconds since the Unix epoch).
    pub started_unix: f64,
    /// When the config in force was loaded.
    pub config_loaded_unix: f64,
    /// Successful reloads.
    pub reloads_ok: u64,
    /// Rejected reloads (the old config stays in force).
    pub reloads_failed: u64,
    /// The last reload error, if the last reload failed.
    pub last_reload_error: Option<String>,
    /// `withdraw` or `keep`.
    pub on_shutdown: OnShutdown,
    /// Drains in force: service (or `*` for all) -> reason.
    pub drains: BTreeMap<String, String>,
}

/// A target of a service joined with what the daemon really does.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ServiceTargetStatus {
    /// Kind and name.
    #[serde(flatten)]
    pub id: TargetId,
    /// `announce` or `degrade`.
    pub role: TargetRole,
    /// What this service wants.
    pub desired: RouteState,
    /// What the reconciler wants after merging services (withdrawn wins).
    pub reconciled: Option<RouteState>,
    /// What the BGP daemon reported at the last read-back.
    pub actual: Option<RouteState>,
    /// The BGP daemon's words.
    pub detail: String,
    /// Last backend error for the target.
    pub last_error: Option<String>,
    /// Which BGP peers receive the route, while announced.
    #[serde(default)]
    pub exports: Option<ExportsReport>,
}

impl ServiceTargetStatus {
    /// `target` as the service wants it, with the reconciler's view of the same target (`None` while the
    /// reconciler does not manage it yet, e.g. before its first pass).
    pub fn joined(target: ServiceTarget, known: Option<&TargetReport>) -> ServiceTargetStatus {
        ServiceTargetStatus {
            id: target.id,
            role: target.role,
            desired: target.desired,
            reconciled: known.map(|r| r.desired),
            actual: known.and_then(|r| r.actual),
            detail: known.map(|r| r.detail.clone()).unwrap_or_default(),
            last_error: known.and_then(|r| r.last_error.clone()),
            exports: known.and_then(|r| r.exports.clone()),
        }
    }
}

/// One service in `/status`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ServiceStatus {
    /// Service name.
    pub name: String,
    /// State.
    pub state: ServiceState,
    /// Why.
    pub reason: String,
    /// Since when (seconds since the Unix epoch).
    pub since_unix: f64,
    /// Drained by an operator.
    pub drained: bool,
    /// Flap damping.
    pub damping: DampingStatus,
    /// State changes since start.
    pub transitions: u64,
    /// Checks.
    pub checks: Vec<CheckReport>,
    /// Targets, desired vs actual.
    pub targets: Vec<ServiceTargetStatus>,
    /// Load signals and the overload policy, with `[service.load]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<LoadReport>,
}

/// Damping of one service.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DampingStatus {
    /// Current penalty.
    pub penalty: f64,
    /// Whether the service is held withdrawn.
    pub suppressed: bool,
}

/// The `/status` document.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StatusDocument {
    /// Process facts.
    pub daemon: DaemonInfo,
    /// Whether the first reconcile pass has run.
    pub ready: bool,
    /// Routing backend health.
    pub backend: BackendReport,
    /// Every service.
    pub services: Vec<ServiceStatus>,
    /// Every target the reconciler manages.
    pub targets: Vec<TargetReport>,
    /// When the reconciler last finished a pass.
    pub last_reconcile_unix: Option<f64>,
}

impl StatusDocument {
    /// Joins what the stages published into one document: each service's targets are matched with the
    /// reconciler's by [`TargetId`] (kind and name, so a BIRD protocol and an FRR neighbor of the same name
    /// never mix). Pure, so the join is testable without a daemon.
    pub fn assemble(
        daemon: DaemonInfo,
        services: impl IntoIterator<Item = ServiceReport>,
        routing: RoutingReport,
    ) -> StatusDocument {
        let known: HashMap<&TargetId, &TargetReport> =
            routing.targets.iter().map(|t| (&t.id, t)).collect();
        let services = services
            .into_iter()
            .map(|s| ServiceStatus {
                name: s.name,
                state: s.state,
                reason: s.reason,
                since_unix: s.since_unix,
                drained: s.drained,
                damping: DampingStatus {
                    penalty: s.damping_penalty,
                    suppressed: s.suppressed,
                },
                transitions: s.transitions,
                load: s.load,
                checks: s.checks,
                targets: s
                    .targets
                    .into_iter()
                    .map(|t| {
                        let report = known.get(&t.id).copied();
                        ServiceTargetStatus::joined(t, report)
                    })
                    .collect(),
            })
            .collect();
        StatusDocument {
            daemon,
            ready: routing.first_pass_done,
            backend: routing.backend,
            services,
            targets: routing.targets,
            last_reconcile_unix: routing.last_reconcile_unix,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::TargetKind;

    fn id(kind: TargetKind, name: &str) -> TargetId {
        TargetId {
            kind,
            target: name.to_owned(),
        }
    }

    fn daemon() -> DaemonInfo {
        DaemonInfo {
            version: "1.2.3".to_owned(),
            pid: 4242,
            config_path: "/etc/nsbeacon/nsbeacon.toml".to_owned(),
            started_unix: 1000.5,
            config_loaded_unix: 1001.25,
            reloads_ok: 1,
            reloads_failed: 2,
            last_reload_error: Some("line 3: unknown key `intervall`".to_owned()),
            on_shutdown: OnShutdown::Keep,
            drains: BTreeMap::from([("*".to_owned(), "maintenance".to_owned())]),
        }
    }

    fn check() -> CheckReport {
        CheckReport {
            name: "soa".to_owned(),
            kind: CheckType::Serial,
            target: "1 zone(s) at 127.0.0.1:53 vs reference 192.0.2.1:53".to_owned(),
            up: Some(true),
            signal: Some(SignalKind::Soft),
            result: Some("lagging".to_owned()),
            detail: "example.: 3 behind".to_owned(),
            latency_ms: BTreeMap::from([("sweep".to_owned(), 1.5)]),
            identity: None,
            serial: Some(SerialSummaryReport {
                zones: 1,
                in_sync: 0,
                lagging: 1,
                behind: 0,
                local_failed: 0,
                reference_unreachable: 0,
                worst_zone: Some("example.".to_owned()),
                max_lag: 3,
                local_serial: Some(7),
                reference_serial: Some(10),
            }),
            dnssec: Some(DnssecSummaryReport {
                zones: 1,
                verdicts: BTreeMap::from([("expiring".to_owned(), 1)]),
                worst: vec![ZoneExpiryReport {
                    zone: "example.".to_owned(),
                    covered: "DNSKEY".to_owned(),
                    expires_unix: 1_800_086_400,
                    remaining_seconds: 86_400,
                }],
            }),
            at_unix: Some(1100.75),
            runs: 9,
        }
    }

    fn target_report(id: TargetId, actual: Option<RouteState>, detail: &str) -> TargetReport {
        TargetReport {
            id,
            services: vec!["dns".to_owned()],
            desired: RouteState::Announced,
            actual,
            detail: detail.to_owned(),
            last_error: None,
            in_sync: actual == Some(RouteState::Announced),
            missing: false,
            exports: None,
        }
    }

    fn service(targets: Vec<ServiceTarget>) -> ServiceReport {
        ServiceReport {
            name: "dns".to_owned(),
            state: ServiceState::Degraded,
            reason: "check soa: lagging".to_owned(),
            since_unix: 1050.0,
            checks: vec![check()],
            targets,
            drained: false,
            damping_penalty: 0.5,
            suppressed: false,
            transitions: 3,
            load: None,
        }
    }

    #[test]
    fn a_service_target_joins_the_reconciler_target_of_the_same_kind_and_name() {
        let shared_name = "anycast_dns";
        let routing = RoutingReport {
            backend: BackendReport {
                kind: "frr".to_owned(),
                reachable: true,
                ..BackendReport::default()
            },
            // Same name, other kind: must not be taken for the service's target.
            targets: vec![
                target_report(id(TargetKind::FrrNeighbor, shared_name), None, "neighbor"),
                target_report(
                    id(TargetKind::FrrNetwork, shared_name),
                    Some(RouteState::Announced),
                    "network",
                ),
            ],
            last_reconcile_unix: Some(1200.0),
            first_pass_done: true,
        };
        let wanted = ServiceTarget {
            id: id(TargetKind::FrrNetwork, shared_name),
            role: TargetRole::Degrade,
            desired: RouteState::Announced,
        };
        let unknown = ServiceTarget {
            id: id(TargetKind::BirdProtocol, shared_name),
            role: TargetRole::Announce,
            desired: RouteState::Withdrawn,
        };
        let doc = StatusDocument::assemble(daemon(), [service(vec![wanted, unknown])], routing);
        let targets = &doc.services[0].targets;
        assert_eq!(targets[0].detail, "network");
        assert_eq!(targets[0].actual, Some(RouteState::Announced));
        assert_eq!(targets[0].reconciled, Some(RouteState::Announced));
        assert_eq!(targets[1].actual, None);
        assert_eq!(targets[1].reconciled, None);
        assert_eq!(targets[1].detail, "");
        assert!(doc.ready);
        assert_eq!(doc.targets.len(), 2);
        assert_eq!(doc.last_reconcile_unix, Some(1200.0));
        assert_eq!(doc.services[0].damping.penalty, 0.5);
    }

    #[test]
    fn a_document_round_trips_through_json_with_the_wire_names() {
        let routing = RoutingReport {
            backend: BackendReport {
                kind: "bird".to_owned(),
                reachable: true,
                daemon_version: Some("BIRD 2.0.12".to_owned()),
                sessions_up: 1,
                sessions_total: 2,
                error: None,
                consecutive_failures: 0,
            },
            targets: vec![target_report(
                id(TargetKind::BirdProtocol, "anycast_dns"),
                Some(RouteState::Announced),
                "up",
            )],
            last_reconcile_unix: None,
            first_pass_done: false,
        };
        let targets = vec![ServiceTarget {
            id: id(TargetKind::BirdProtocol, "anycast_dns"),
            role: TargetRole::Announce,
            desired: RouteState::Announced,
        }];
        let doc = StatusDocument::assemble(daemon(), [service(targets)], routing);
        let json = serde_json::to_string(&doc).expect("serializes");
        let back: StatusDocument = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(back, doc);

        // The spellings scripts and the real-daemon tests read.
        let value: serde_json::Value = serde_json::from_str(&json).expect("JSON");
        assert_eq!(value["daemon"]["on_shutdown"], "keep");
        assert_eq!(value["daemon"]["drains"]["*"], "maintenance");
        let service = &value["services"][0];
        assert_eq!(service["state"], "degraded");
        assert_eq!(service["damping"]["suppressed"], false);
        assert_eq!(service["checks"][0]["kind"], "serial");
        assert_eq!(service["checks"][0]["signal"], "soft");
        assert_eq!(service["checks"][0]["serial"]["max_lag"], 3);
        let target = &service["targets"][0];
        assert_eq!(target["kind"], "bird_protocol");
        assert_eq!(target["target"], "anycast_dns");
        assert_eq!(target["role"], "announce");
        assert_eq!(target["desired"], "announced");
        assert_eq!(target["reconciled"], "announced");
        assert_eq!(target["actual"], "announced");
        assert_eq!(value["targets"][0]["in_sync"], true);
        assert!(value["last_reconcile_unix"].is_null());
        assert_eq!(value["ready"], false);
    }

    #[test]
    fn status_spellings_agree_with_the_metric_and_log_spellings() {
        let json = |v: serde_json::Value| v.as_str().map(str::to_owned);
        for state in ServiceState::ALL {
            let wire = serde_json::to_value(state).expect("serializes");
            assert_eq!(json(wire).as_deref(), Some(state.as_str()));
        }
        for signal in [
            CheckSignal::Pass,
            CheckSignal::Soft("slow".to_owned()),
            CheckSignal::Hard("timeout".to_owned()),
        ] {
            let wire = serde_json::to_value(SignalKind::of(&signal)).expect("serializes");
            assert_eq!(json(wire).as_deref(), Some(signal.as_str()));
        }
        for (shutdown, spelled) in [
            (OnShutdown::Withdraw, "withdraw"),
            (OnShutdown::Keep, "keep"),
        ] {
            let wire = serde_json::to_value(shutdown).expect("serializes");
            assert_eq!(json(wire).as_deref(), Some(spelled));
        }
    }
}

#[cfg(test)]
mod load_report_tests {
    use super::LoadReport;

    fn report() -> LoadReport {
        LoadReport {
            source: "knot".to_owned(),
            qps: Some(5012.4),
            baseline_qps: Some(48.7),
            queries_total: Some(123_456),
            udp_errors_per_second: Some(2.5),
            udp_in_errors_total: Some(10),
            udp_rcvbuf_errors_total: Some(10),
            overloaded: true,
            detail: "5012 qps vs baseline 49 qps".to_owned(),
            error: None,
            policy: "absorb".to_owned(),
            absorb_for_secs: Some(600.0),
            absorbing: true,
            absorbing_since_unix: Some(1.0),
            readings: 60,
        }
    }

    #[test]
    fn the_summary_says_rate_baseline_overload_and_absorption() {
        let r = report();
        assert_eq!(
            r.summary(),
            "knot 5012 qps, baseline 49 qps, UDP receive errors 2.5/s, OVERLOADED (5012 qps vs baseline 49 \
             qps); ABSORBING (degraded instead of down)"
        );
        let calm = LoadReport {
            qps: None,
            overloaded: false,
            absorbing: false,
            udp_errors_per_second: None,
            error: Some("knot stats: no complete reply within 500ms".to_owned()),
            ..report()
        };
        assert_eq!(
            calm.summary(),
            "knot qps unknown, baseline 49 qps; overload policy absorb; read error: knot stats: no complete \
             reply within 500ms"
        );
        // The JSON shape /status and `nsbeacon status` share.
        let json = serde_json::to_value(&r).expect("serialize");
        assert_eq!(json["absorbing"], true);
        let back: LoadReport = serde_json::from_value(json).expect("deserialize");
        assert_eq!(back, r);
    }
}
