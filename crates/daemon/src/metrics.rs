//! Every Prometheus metric nsbeacon exports, defined in one place.
//!
//! All metrics live in nsbeacon's own [`Registry`] (not the process-global one), so tests can build as many
//! independent instances as they like and the scrape contains only what this module defines. Names follow
//! the Prometheus conventions: `nsbeacon_` prefix, base units in the name (`_seconds`), `_total` on counters.
//!
//! Serial sweeps over thousands of zones are exported as aggregates per check (zones per verdict, largest
//! lag); per-zone serial series are kept only for checks with at most [`PER_ZONE_SERIES_LIMIT`] zones, so a
//! 10,000-zone node does not emit 30,000 series. DNSSEC sweeps likewise: the earliest expiry per check,
//! zones per verdict and a distribution of the remaining validity
//! (`nsbeacon_dnssec_zones_expiring_within_seconds`) for any size, one expiry series per zone only up to
//! [`PER_ZONE_SERIES_LIMIT`] zones.

use prometheus::{
    CounterVec, Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Serial checks with more zones than this export only per-check aggregates, not one series per zone.
pub const PER_ZONE_SERIES_LIMIT: usize = 10;

/// Buckets for DNS probe latency: local authoritative answers take well under a millisecond, a timeout
/// takes seconds.
const PROBE_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Buckets for backend operations: a BIRD socket command or an FRR operation over bgpd's vty socket takes
/// 0.3-1 ms, one through vtysh 30-100 ms.
const BACKEND_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Buckets for the fleet guard's etcd transaction: a local 3-member etcd commits in about a millisecond;
/// the guard gives up at `guard_timeout` (200 ms by default).
const FLEET_GUARD_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5,
];

/// The labels of every metric family, for documentation and the scrape test.
pub const METRIC_LABELS: &[(&str, &[&str])] = &[
    ("nsbeacon_build_info", &["version"]),
    (
        "nsbeacon_probe_duration_seconds",
        &["service", "check", "transport"],
    ),
    (
        "nsbeacon_probe_results_total",
        &["service", "check", "transport", "result"],
    ),
    ("nsbeacon_check_up", &["service", "check"]),
    ("nsbeacon_service_state", &["service", "state"]),
    (
        "nsbeacon_service_transitions_total",
        &["service", "from", "to"],
    ),
    ("nsbeacon_route_desired_announced", &["kind", "target"]),
    ("nsbeacon_route_actual_announced", &["kind", "target"]),
    ("nsbeacon_route_drift_total", &["kind", "target"]),
    ("nsbeacon_route_target_missing", &["kind", "target"]),
    ("nsbeacon_route_exported", &["kind", "target", "peer"]),
    ("nsbeacon_route_exported_peers", &["kind", "target"]),
    ("nsbeacon_route_export_peers", &["kind", "target"]),
    ("nsbeacon_backend_up", &["backend"]),
    (
        "nsbeacon_backend_operation_duration_seconds",
        &["backend", "operation"],
    ),
    ("nsbeacon_backend_errors_total", &["backend", "operation"]),
    (
        "nsbeacon_zone_serial",
        &["service", "check", "zone", "server"],
    ),
    ("nsbeacon_zone_serial_lag", &["service", "check", "zone"]),
    ("nsbeacon_serial_zones", &["service", "check", "verdict"]),
    ("nsbeacon_serial_max_lag", &["service", "check"]),
    (
        "nsbeacon_dnssec_expiry_seconds",
        &["service", "check", "zone"],
    ),
    ("nsbeacon_dnssec_min_expiry_seconds", &["service", "check"]),
    ("nsbeacon_dnssec_zones", &["service", "check", "verdict"]),
    (
        "nsbeacon_dnssec_zones_expiring_within_seconds",
        &["service", "check", "within"],
    ),
    ("nsbeacon_damping_penalty", &["service"]),
    ("nsbeacon_damping_suppressed", &["service"]),
    ("nsbeacon_service_drained", &["service"]),
    ("nsbeacon_config_reloads_total", &["result"]),
    ("nsbeacon_fleet_backend_up", &[]),
    ("nsbeacon_fleet_nodes", &["service", "state"]),
    ("nsbeacon_fleet_min_announcing", &["service"]),
    ("nsbeacon_fleet_guard_holds_total", &["service"]),
    (
        "nsbeacon_fleet_guard_duration_seconds",
        &["service", "outcome"],
    ),
    ("nsbeacon_dns_queries_per_second", &["service", "source"]),
    (
        "nsbeacon_dns_queries_baseline_per_second",
        &["service", "source"],
    ),
    ("nsbeacon_udp_receive_errors_total", &["service", "counter"]),
    ("nsbeacon_load_read_errors_total", &["service", "source"]),
    ("nsbeacon_load_overloaded", &["service"]),
    ("nsbeacon_overload_absorbing", &["service"]),
    ("nsbeacon_overload_absorbs_total", &["service"]),
    ("nsbeacon_overload_absorb_seconds_total", &["service"]),
];

/// Errors building the metrics registry. Only a programming error (duplicate or invalid metric name) can
/// cause one.
#[derive(Debug, thiserror::Error)]
#[error("building the metrics registry failed (a bug in nsbeacon's metric definitions): {0}")]
pub struct MetricsError(#[from] prometheus::Error);

/// Every metric nsbeacon exports, plus the registry they are registered in.
///
/// Fields are public so each task updates its own metrics directly; label values are documented per field.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Names of every registered family, including label vectors with no series yet.
    families: Vec<String>,
    /// Always 1; `version` = crate version. Lets dashboards see which version runs where.
    pub build_info: IntGaugeVec,
    /// Latency of each probe exchange, per transport (`udp`, `tcp`, `sweep` for serial sweeps).
    pub probe_duration_seconds: HistogramVec,
    /// Probe outcomes; `result` is `pass`, `slow` or the failure reason (`timeout`, `refused`, ...).
    pub probe_results_total: IntCounterVec,
    /// 1 while the check is up by its rise/fall counters, else 0.
    pub check_up: IntGaugeVec,
    /// One series per state, 1 for the current state and 0 for the others.
    pub service_state: IntGaugeVec,
    /// Service state changes.
    pub service_transitions_total: IntCounterVec,
    /// 1 when nsbeacon wants the target announced, 0 withdrawn.
    pub route_desired_announced: IntGaugeVec,
    /// 1 when the BGP daemon really announces the target, 0 withdrawn; absent while unknown.
    pub route_actual_announced: IntGaugeVec,
    /// Times the reconciler found the daemon's state differing from the desired one and re-asserted it.
    pub route_drift_total: IntCounterVec,
    /// 1 while the BGP daemon says the target does not exist (a misspelled name), else 0.
    pub route_target_missing: IntGaugeVec,
    /// For an announced target, per BGP peer that could receive it: 1 while the BGP daemon exports the
    /// target's route to that peer, 0 when not (filter, session down); absent while unknown (the backend
    /// cannot tell, the read failed) and for withdrawn targets.
    pub route_exported: IntGaugeVec,
    /// For an announced target: how many BGP peers the daemon exports its route to; absent while unknown.
    pub route_exported_peers: IntGaugeVec,
    /// For an announced target: how many BGP peers could receive its route (sessions of its address family,
    /// established or not); absent while unknown.
    pub route_export_peers: IntGaugeVec,
    /// 1 while the BGP daemon answers, else 0.
    pub backend_up: IntGaugeVec,
    /// Duration of backend operations (`set`, `read`, `health`).
    pub backend_operation_duration_seconds: HistogramVec,
    /// Failed backend operations.
    pub backend_errors_total: IntCounterVec,
    /// SOA serial per zone, `server` = `local` or `reference` (small checks only, see module docs).
    pub zone_serial: IntGaugeVec,
    /// Serial lag (reference minus local, RFC 1982) per zone (small checks only).
    pub zone_serial_lag: IntGaugeVec,
    /// Zones per serial verdict (`in_sync`, `lagging`, `behind`, `local_failed`, `reference_unreachable`).
    pub serial_zones: IntGaugeVec,
    /// The largest serial lag among a check's zones.
    pub serial_max_lag: IntGaugeVec,
    /// Seconds of validity left of a zone's earliest-expiring RRSIG, negative once expired (DNSSEC
    /// checks with at most [`PER_ZONE_SERIES_LIMIT`] zones).
    pub dnssec_expiry_seconds: IntGaugeVec,
    /// The smallest validity left among every zone of a DNSSEC check (any size): what alerts watch.
    pub dnssec_min_expiry_seconds: IntGaugeVec,
    /// Zones per DNSSEC verdict (`valid`, `expiring`, `critical`, `expired`, `not_yet_valid`,
    /// `missing_signature`, `unsigned`, `local_failed`) in the latest sweep.
    pub dnssec_zones: IntGaugeVec,
    /// The latest sweep's distribution of the remaining validity: zones whose earliest signature expires
    /// within `within` seconds (cumulative, like histogram buckets; `+Inf` = every zone with a signature). A
    /// snapshot per sweep rather than a Prometheus histogram, which would add up every sweep's zones.
    pub dnssec_zones_expiring_within_seconds: IntGaugeVec,
    /// Current flap-damping penalty of the service.
    pub damping_penalty: GaugeVec,
    /// 1 while damping holds the service withdrawn.
    pub damping_suppressed: IntGaugeVec,
    /// 1 while the service is drained by an operator.
    pub service_drained: IntGaugeVec,
    /// Config reloads (SIGHUP), `result` = `success` or `failure`.
    pub config_reloads_total: IntCounterVec,
    /// 1 while this node's fleet member holds an etcd lease and its last etcd call succeeded, else 0
    /// (only with `[fleet]`).
    pub fleet_backend_up: IntGaugeVec,
    /// Nodes of the fleet per service and state, as this node last read etcd (every node of the fleet
    /// exports the same view).
    pub fleet_nodes: IntGaugeVec,
    /// How many nodes must announce the service for the fleet guard to allow one more withdrawal (the
    /// `min_announcing` of the service, resolved against the nodes registered now).
    pub fleet_min_announcing: IntGaugeVec,
    /// Times the fleet guard held this node's service announced instead of withdrawing it.
    pub fleet_guard_holds_total: IntCounterVec,
    /// Duration of the fleet guard's decision (`outcome` = `allowed`, `held`, `unavailable`).
    pub fleet_guard_duration_seconds: HistogramVec,
    /// Queries per second the DNS server counted over the last load interval (`source` = `knot`, `nsd`,
    /// `bind`); absent while unknown (no read yet, a failed read, a counter reset).
    pub dns_queries_per_second: GaugeVec,
    /// The moving baseline of that rate; frozen while the service is overloaded, so a flood never
    /// becomes the normal. Absent until the first rate.
    pub dns_queries_baseline_per_second: GaugeVec,
    /// The kernel's UDP receive errors (`/proc/net/snmp` `Udp:` `InErrors` and `RcvbufErrors`, `counter`
    /// label) in nsbeacon's network namespace, counted from nsbeacon's first read: datagrams dropped because
    /// the server could not keep up. Host- (namespace-) wide, repeated per service that reads it.
    pub udp_receive_errors_total: IntCounterVec,
    /// Failed load reads (the server's statistics or the kernel counters): no load signal for that interval.
    pub load_read_errors_total: IntCounterVec,
    /// 1 while the load signals say the service's server receives far more than its baseline, else 0.
    pub load_overloaded: IntGaugeVec,
    /// 1 while failing probes are overridden because of an overload (degraded instead of down), else 0.
    pub overload_absorbing: IntGaugeVec,
    /// Overload episodes absorbed (each start of an absorption).
    pub overload_absorbs_total: IntCounterVec,
    /// Time spent absorbing an overload, in seconds.
    pub overload_absorb_seconds_total: CounterVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help)
}

fn labels(name: &str) -> &'static [&'static str] {
    METRIC_LABELS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, l)| *l)
        .unwrap_or(&[])
}

impl Metrics {
    /// Creates and registers every metric; sets `nsbeacon_build_info`.
    pub fn new() -> Result<Self, MetricsError> {
        let registry = Registry::new();
        let families = std::cell::RefCell::new(Vec::new());
        let int_gauge = |name: &str, help: &str| -> Result<IntGaugeVec, prometheus::Error> {
            let m = IntGaugeVec::new(opts(name, help), labels(name))?;
            families.borrow_mut().push(name.to_owned());
            registry.register(Box::new(m.clone()))?;
            Ok(m)
        };
        let counter = |name: &str, help: &str| -> Result<IntCounterVec, prometheus::Error> {
            let m = IntCounterVec::new(opts(name, help), labels(name))?;
            families.borrow_mut().push(name.to_owned());
            registry.register(Box::new(m.clone()))?;
            Ok(m)
        };
        let histogram =
            |name: &str, help: &str, buckets: &[f64]| -> Result<HistogramVec, prometheus::Error> {
                let m = HistogramVec::new(
                    HistogramOpts::new(name, help).buckets(buckets.to_vec()),
                    labels(name),
                )?;
                families.borrow_mut().push(name.to_owned());
                registry.register(Box::new(m.clone()))?;
                Ok(m)
            };
        let float_counter = |name: &str, help: &str| -> Result<CounterVec, prometheus::Error> {
            let m = CounterVec::new(opts(name, help), labels(name))?;
            families.borrow_mut().push(name.to_owned());
            registry.register(Box::new(m.clone()))?;
            Ok(m)
        };
        let gauge = |name: &str, help: &str| -> Result<GaugeVec, prometheus::Error> {
            let m = GaugeVec::new(opts(name, help), labels(name))?;
            families.borrow_mut().push(name.to_owned());
            registry.register(Box::new(m.clone()))?;
            Ok(m)
        };
        let metrics = Metrics {
            build_info: int_gauge(
                "nsbeacon_build_info",
                "Always 1; the version label says which nsbeacon build is running.",
            )?,
            probe_duration_seconds: histogram(
                "nsbeacon_probe_duration_seconds",
                "Duration of DNS probe exchanges in seconds, per transport (sweep = a whole serial sweep).",
                PROBE_BUCKETS,
            )?,
            probe_results_total: counter(
                "nsbeacon_probe_results_total",
                "DNS probe outcomes by result (pass, slow, or the failure reason).",
            )?,
            check_up: int_gauge(
                "nsbeacon_check_up",
                "1 while the check is up according to its rise/fall counters, else 0.",
            )?,
            service_state: int_gauge(
                "nsbeacon_service_state",
                "1 for the service's current state (starting, up, degraded, down, drained), 0 for the others.",
            )?,
            service_transitions_total: counter(
                "nsbeacon_service_transitions_total",
                "Service state changes, by previous and new state.",
            )?,
            route_desired_announced: int_gauge(
                "nsbeacon_route_desired_announced",
                "1 when nsbeacon wants the route target announced, 0 when it wants it withdrawn.",
            )?,
            route_actual_announced: int_gauge(
                "nsbeacon_route_actual_announced",
                "1 when the BGP daemon announces the route target, 0 when withdrawn (read back); absent while unknown.",
            )?,
            route_drift_total: counter(
                "nsbeacon_route_drift_total",
                "Times the BGP daemon's state of a target differed from the desired one and was re-asserted.",
            )?,
            route_target_missing: int_gauge(
                "nsbeacon_route_target_missing",
                "1 while the BGP daemon answers that the route target does not exist (misspelled protocol or neighbor), else 0.",
            )?,
            route_exported: int_gauge(
                "nsbeacon_route_exported",
                "For an announced route target and one BGP peer: 1 while the BGP daemon exports the route to the peer, 0 when not (filter, session down); absent while unknown.",
            )?,
            route_exported_peers: int_gauge(
                "nsbeacon_route_exported_peers",
                "For an announced route target: BGP peers the daemon exports its route to; absent while unknown. 0 while announced is an announcement nobody receives.",
            )?,
            route_export_peers: int_gauge(
                "nsbeacon_route_export_peers",
                "For an announced route target: BGP peers that could receive its route (sessions of its address family, up or not); absent while unknown.",
            )?,
            backend_up: int_gauge(
                "nsbeacon_backend_up",
                "1 while the BGP daemon (routing backend) answers, else 0.",
            )?,
            backend_operation_duration_seconds: histogram(
                "nsbeacon_backend_operation_duration_seconds",
                "Duration of routing backend operations in seconds (set, read, health).",
                BACKEND_BUCKETS,
            )?,
            backend_errors_total: counter(
                "nsbeacon_backend_errors_total",
                "Failed routing backend operations.",
            )?,
            zone_serial: int_gauge(
                "nsbeacon_zone_serial",
                "SOA serial of a zone on the local or reference server (only for checks with few zones).",
            )?,
            zone_serial_lag: int_gauge(
                "nsbeacon_zone_serial_lag",
                "Serial lag of a zone, reference minus local in RFC 1982 arithmetic (only for checks with few zones).",
            )?,
            serial_zones: int_gauge(
                "nsbeacon_serial_zones",
                "Zones of a serial check per verdict in its latest sweep.",
            )?,
            serial_max_lag: int_gauge(
                "nsbeacon_serial_max_lag",
                "Largest serial lag among the zones of a serial check in its latest sweep.",
            )?,
            dnssec_expiry_seconds: int_gauge(
                "nsbeacon_dnssec_expiry_seconds",
                "Seconds of validity left of the zone's earliest-expiring RRSIG, negative once expired (only for DNSSEC checks with few zones).",
            )?,
            dnssec_min_expiry_seconds: int_gauge(
                "nsbeacon_dnssec_min_expiry_seconds",
                "Smallest validity left, in seconds, among the earliest-expiring RRSIGs of every zone of a DNSSEC check.",
            )?,
            dnssec_zones: int_gauge(
                "nsbeacon_dnssec_zones",
                "Zones of a DNSSEC check per verdict in its latest sweep.",
            )?,
            dnssec_zones_expiring_within_seconds: int_gauge(
                "nsbeacon_dnssec_zones_expiring_within_seconds",
                "Zones of a DNSSEC check whose earliest RRSIG expires within `within` seconds, in its latest sweep (cumulative).",
            )?,
            damping_penalty: gauge(
                "nsbeacon_damping_penalty",
                "Current flap-damping penalty of the service (decays with the configured half-life).",
            )?,
            damping_suppressed: int_gauge(
                "nsbeacon_damping_suppressed",
                "1 while flap damping holds the service withdrawn, else 0.",
            )?,
            service_drained: int_gauge(
                "nsbeacon_service_drained",
                "1 while an operator has drained the service, else 0.",
            )?,
            config_reloads_total: counter(
                "nsbeacon_config_reloads_total",
                "Configuration reloads (SIGHUP) by result (success, failure).",
            )?,
            fleet_backend_up: int_gauge(
                "nsbeacon_fleet_backend_up",
                "1 while this node holds its etcd lease and etcd answers, else 0 (only with [fleet]).",
            )?,
            fleet_nodes: int_gauge(
                "nsbeacon_fleet_nodes",
                "Nodes of the fleet per service and state (starting, up, degraded, held, down, drained), as read from etcd.",
            )?,
            fleet_min_announcing: int_gauge(
                "nsbeacon_fleet_min_announcing",
                "Nodes that must keep announcing the service: the fleet guard holds a withdrawal that would leave fewer.",
            )?,
            fleet_guard_holds_total: counter(
                "nsbeacon_fleet_guard_holds_total",
                "Times the fleet guard held this node's service announced instead of withdrawing it.",
            )?,
            fleet_guard_duration_seconds: histogram(
                "nsbeacon_fleet_guard_duration_seconds",
                "Duration of the fleet guard's etcd decision in seconds, by outcome (allowed, held, unavailable).",
                FLEET_GUARD_BUCKETS,
            )?,
            dns_queries_per_second: gauge(
                "nsbeacon_dns_queries_per_second",
                "Queries per second the DNS server counted over the last load interval (knot, nsd, bind statistics); absent while unknown.",
            )?,
            dns_queries_baseline_per_second: gauge(
                "nsbeacon_dns_queries_baseline_per_second",
                "Moving baseline of the DNS server's query rate (frozen while overloaded).",
            )?,
            udp_receive_errors_total: counter(
                "nsbeacon_udp_receive_errors_total",
                "Kernel UDP receive errors (InErrors, RcvbufErrors) in nsbeacon's network namespace since nsbeacon's first read.",
            )?,
            load_read_errors_total: counter(
                "nsbeacon_load_read_errors_total",
                "Failed reads of the DNS server's statistics or the kernel counters (no load signal for that interval).",
            )?,
            load_overloaded: int_gauge(
                "nsbeacon_load_overloaded",
                "1 while the load signals say the service's DNS server receives far more than its baseline, else 0.",
            )?,
            overload_absorbing: int_gauge(
                "nsbeacon_overload_absorbing",
                "1 while the service absorbs an overload: failing probes keep it degraded (announced) instead of down.",
            )?,
            overload_absorbs_total: counter(
                "nsbeacon_overload_absorbs_total",
                "Overload absorptions started (failing probes under overload kept the service announced).",
            )?,
            overload_absorb_seconds_total: float_counter(
                "nsbeacon_overload_absorb_seconds_total",
                "Time spent absorbing overloads, in seconds.",
            )?,
            registry,
            families: families.take(),
        };
        metrics
            .build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        for result in ["success", "failure"] {
            metrics.config_reloads_total.with_label_values(&[result]);
        }
        Ok(metrics)
    }

    /// The name of every metric family nsbeacon registers, whether or not it has a series yet (a label
    /// vector has none until its first label values are used, so a scrape alone does not list it).
    pub fn family_names(&self) -> &[String] {
        &self.families
    }

    /// The registry, for callers that want to gather directly.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The scrape in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        // Encoding into a Vec cannot fail for I/O reasons; a failure would mean an invalid metric, which
        // `new` already ruled out. Render what was encoded either way.
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        String::from_utf8_lossy(&buf).into_owned()
    }

    /// Sets the service-state series: 1 for `current`, 0 for every other state in `all`.
    pub fn set_service_state(&self, service: &str, all: &[&str], current: &str) {
        for state in all {
            self.service_state
                .with_label_values(&[service, state])
                .set(i64::from(*state == current));
        }
    }

    /// Removes every per-service series of `service` (after a reload removed or changed it): its checks
    /// (with the zones of small serial checks) and the states it exported. Probe series are removed for
    /// every transport and result label nsbeacon writes.
    pub fn forget_service(&self, service: &str, checks: &[CheckSeries], states: &[&str]) {
        for state in states {
            let _ = self.service_state.remove_label_values(&[service, state]);
            for to in states {
                let _ = self
                    .service_transitions_total
                    .remove_label_values(&[service, state, to]);
            }
        }
        for check in checks {
            let name = check.name.as_str();
            let _ = self.check_up.remove_label_values(&[service, name]);
            let _ = self.serial_max_lag.remove_label_values(&[service, name]);
            for verdict in SERIAL_VERDICTS {
                let _ = self
                    .serial_zones
                    .remove_label_values(&[service, name, verdict]);
            }
            for transport in PROBE_TRANSPORTS {
                let _ = self
                    .probe_duration_seconds
                    .remove_label_values(&[service, name, transport]);
                for result in PROBE_RESULTS {
                    let _ = self
                        .probe_results_total
                        .remove_label_values(&[service, name, transport, result]);
                }
            }
            let _ = self
                .dnssec_min_expiry_seconds
                .remove_label_values(&[service, name]);
            for verdict in DNSSEC_VERDICTS {
                let _ = self
                    .dnssec_zones
                    .remove_label_values(&[service, name, verdict]);
            }
            for le in DNSSEC_EXPIRY_BUCKETS.iter().map(|(_, le)| le) {
                let _ = self
                    .dnssec_zones_expiring_within_seconds
                    .remove_label_values(&[service, name, le]);
            }
            for zone in &check.zones {
                let _ = self
                    .dnssec_expiry_seconds
                    .remove_label_values(&[service, name, zone]);
                for server in ["local", "reference"] {
                    let _ = self
                        .zone_serial
                        .remove_label_values(&[service, name, zone, server]);
                }
                let _ = self
                    .zone_serial_lag
                    .remove_label_values(&[service, name, zone]);
            }
        }
        let _ = self.damping_penalty.remove_label_values(&[service]);
        let _ = self.damping_suppressed.remove_label_values(&[service]);
        let _ = self.service_drained.remove_label_values(&[service]);
    }
}

/// The labels one check exported, for [`Metrics::forget_service`].
#[derive(Debug, Clone, Default)]
pub struct CheckSeries {
    /// Check name.
    pub name: String,
    /// Zone names with per-zone serial or DNSSEC expiry series (small serial and dnssec checks only).
    pub zones: Vec<String>,
}

/// `transport` label values of the probe metrics.
pub const PROBE_TRANSPORTS: &[&str] = &["udp", "tcp", "sweep", "any"];

/// `result` label values of `nsbeacon_probe_results_total`: statuses, serial signals, and the prober's
/// failure kinds.
pub const PROBE_RESULTS: &[&str] = &[
    "pass",
    "slow",
    "soft",
    "hard",
    "hung",
    "timeout",
    "refused",
    "io",
    "rcode",
    "not_authoritative",
    "empty_answer",
    "answer_mismatch",
    "identity_mismatch",
    "serial_behind",
    "malformed",
    "truncated",
    "id_mismatch",
    "question_mismatch",
    "unexpected_source",
    "partial_reply",
];

/// Label values of `nsbeacon_serial_zones{verdict}`.
pub const SERIAL_VERDICTS: &[&str] = &[
    "in_sync",
    "lagging",
    "behind",
    "local_failed",
    "reference_unreachable",
];

/// Label values of `nsbeacon_dnssec_zones{verdict}`.
pub const DNSSEC_VERDICTS: &[&str] = nsbeacon_prober::ExpiryVerdict::ALL;

/// The `within` buckets of `nsbeacon_dnssec_zones_expiring_within_seconds`: an hour (the default
/// `fail_before`), 6 h, a day, 3 days (the default `warn_before`), a week, two weeks, 30 days, and every
/// zone with a signature. `None` is `+Inf`.
pub const DNSSEC_EXPIRY_BUCKETS: &[(Option<i64>, &str)] = &[
    (Some(3600), "3600"),
    (Some(21_600), "21600"),
    (Some(86_400), "86400"),
    (Some(259_200), "259200"),
    (Some(604_800), "604800"),
    (Some(1_209_600), "1209600"),
    (Some(2_592_000), "2592000"),
    (None, "+Inf"),
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    /// Fills one series of every family so each appears in the scrape.
    fn populate(m: &Metrics) {
        m.dnssec_expiry_seconds
            .with_label_values(&["dns", "sigs", "example.com."])
            .set(86_400);
        m.dnssec_min_expiry_seconds
            .with_label_values(&["dns", "sigs"])
            .set(86_400);
        m.dnssec_zones
            .with_label_values(&["dns", "sigs", "valid"])
            .set(1);
        m.dnssec_zones_expiring_within_seconds
            .with_label_values(&["dns", "sigs", "86400"])
            .set(1);
        m.probe_duration_seconds
            .with_label_values(&["dns", "soa", "udp"])
            .observe(0.001);
        m.probe_results_total
            .with_label_values(&["dns", "soa", "udp", "pass"])
            .inc();
        m.check_up.with_label_values(&["dns", "soa"]).set(1);
        m.set_service_state("dns", &["starting", "up", "down"], "up");
        m.service_transitions_total
            .with_label_values(&["dns", "starting", "up"])
            .inc();
        m.route_desired_announced
            .with_label_values(&["bird_protocol", "anycast"])
            .set(1);
        m.route_actual_announced
            .with_label_values(&["bird_protocol", "anycast"])
            .set(1);
        m.route_drift_total
            .with_label_values(&["bird_protocol", "anycast"])
            .inc();
        m.route_target_missing
            .with_label_values(&["bird_protocol", "anycast"])
            .set(0);
        m.route_exported
            .with_label_values(&["bird_protocol", "anycast", "upstream1"])
            .set(1);
        m.route_exported_peers
            .with_label_values(&["bird_protocol", "anycast"])
            .set(1);
        m.route_export_peers
            .with_label_values(&["bird_protocol", "anycast"])
            .set(1);
        m.backend_up.with_label_values(&["bird"]).set(1);
        m.backend_operation_duration_seconds
            .with_label_values(&["bird", "set"])
            .observe(0.0004);
        m.backend_errors_total
            .with_label_values(&["bird", "read"])
            .inc();
        m.zone_serial
            .with_label_values(&["dns", "fresh", "example.", "local"])
            .set(7);
        m.zone_serial_lag
            .with_label_values(&["dns", "fresh", "example."])
            .set(0);
        m.serial_zones
            .with_label_values(&["dns", "fresh", "in_sync"])
            .set(1);
        m.serial_max_lag.with_label_values(&["dns", "fresh"]).set(0);
        m.fleet_backend_up.with_label_values::<&str>(&[]).set(1);
        m.fleet_nodes.with_label_values(&["dns", "held"]).set(2);
        m.fleet_min_announcing.with_label_values(&["dns"]).set(3);
        m.fleet_guard_holds_total.with_label_values(&["dns"]).inc();
        m.fleet_guard_duration_seconds
            .with_label_values(&["dns", "held"])
            .observe(0.002);
        m.damping_penalty.with_label_values(&["dns"]).set(0.5);
        m.damping_suppressed.with_label_values(&["dns"]).set(0);
        m.service_drained.with_label_values(&["dns"]).set(0);
        m.dns_queries_per_second
            .with_label_values(&["dns", "knot"])
            .set(1200.0);
        m.dns_queries_baseline_per_second
            .with_label_values(&["dns", "knot"])
            .set(12.0);
        m.udp_receive_errors_total
            .with_label_values(&["dns", "RcvbufErrors"])
            .inc();
        m.load_read_errors_total
            .with_label_values(&["dns", "knot"])
            .inc();
        m.load_overloaded.with_label_values(&["dns"]).set(1);
        m.overload_absorbing.with_label_values(&["dns"]).set(1);
        m.overload_absorbs_total.with_label_values(&["dns"]).inc();
        m.overload_absorb_seconds_total
            .with_label_values(&["dns"])
            .inc_by(1.5);
    }

    #[derive(Default, Debug)]
    struct Family {
        help: bool,
        kind: Option<String>,
        label_sets: BTreeSet<Vec<String>>,
    }

    /// A small parser for the text exposition format: enough to check HELP, TYPE and label names.
    fn parse(scrape: &str) -> BTreeMap<String, Family> {
        let mut families: BTreeMap<String, Family> = BTreeMap::new();
        for line in scrape.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').expect("HELP has text");
                assert!(!help.trim().is_empty(), "empty HELP for {name}");
                families.entry(name.to_owned()).or_default().help = true;
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("TYPE has a kind");
                families.entry(name.to_owned()).or_default().kind = Some(kind.to_owned());
            } else if !line.is_empty() {
                let (series, _value) = line.rsplit_once(' ').expect("sample has a value");
                let (name, label_text) = match series.split_once('{') {
                    Some((n, l)) => (n, l.trim_end_matches('}')),
                    None => (series, ""),
                };
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| {
                        name.strip_suffix(s)
                            .filter(|base| families.contains_key(*base))
                    })
                    .unwrap_or(name);
                let mut label_names: Vec<String> = label_text
                    .split(',')
                    .filter(|kv| !kv.is_empty())
                    .map(|kv| kv.split_once('=').expect("label=value").0.to_owned())
                    .filter(|k| k != "le")
                    .collect();
                label_names.sort();
                families
                    .get_mut(family)
                    .unwrap_or_else(|| panic!("sample {name} before its HELP/TYPE"))
                    .label_sets
                    .insert(label_names);
            }
        }
        families
    }

    #[test]
    fn every_metric_has_help_type_and_the_documented_labels() {
        let m = Metrics::new().expect("metrics build");
        populate(&m);
        let families = parse(&m.render());
        for (name, expected_labels) in METRIC_LABELS {
            let family = families
                .get(*name)
                .unwrap_or_else(|| panic!("{name} missing from the scrape"));
            assert!(family.help, "{name} has no HELP");
            assert!(family.kind.is_some(), "{name} has no TYPE");
            let mut expected: Vec<String> = expected_labels.iter().map(|s| s.to_string()).collect();
            expected.sort();
            assert_eq!(
                family.label_sets,
                BTreeSet::from([expected]),
                "{name} has unexpected labels"
            );
        }
        for (name, family) in &families {
            assert!(name.starts_with("nsbeacon_"), "{name} lacks the prefix");
            assert!(
                METRIC_LABELS.iter().any(|(n, _)| n == name),
                "{name} is not documented in METRIC_LABELS"
            );
            let kind = family.kind.as_deref().expect("TYPE");
            if kind == "counter" {
                assert!(
                    name.ends_with("_total"),
                    "counter {name} must end in _total"
                );
            }
            if kind == "histogram" {
                assert!(
                    name.ends_with("_seconds"),
                    "histogram {name} must carry its unit"
                );
            }
        }
    }

    #[test]
    fn service_state_has_one_series_per_state() {
        let m = Metrics::new().expect("metrics build");
        m.set_service_state("dns", &["starting", "up", "down"], "down");
        let scrape = m.render();
        assert!(scrape.contains("nsbeacon_service_state{service=\"dns\",state=\"down\"} 1"));
        assert!(scrape.contains("nsbeacon_service_state{service=\"dns\",state=\"up\"} 0"));
        assert!(scrape.contains("nsbeacon_service_state{service=\"dns\",state=\"starting\"} 0"));
        m.probe_results_total
            .with_label_values(&["dns", "soa", "udp", "timeout"])
            .inc();
        m.zone_serial
            .with_label_values(&["dns", "fresh", "example.", "local"])
            .set(1);
        m.forget_service(
            "dns",
            &[
                CheckSeries {
                    name: "soa".into(),
                    zones: vec![],
                },
                CheckSeries {
                    name: "fresh".into(),
                    zones: vec!["example.".into()],
                },
            ],
            &["starting", "up", "down"],
        );
        assert!(!m.render().contains("service=\"dns\""));
    }

    #[test]
    fn build_info_and_reload_counters_exist_from_the_start() {
        let m = Metrics::new().expect("metrics build");
        let scrape = m.render();
        assert!(scrape.contains(&format!(
            "nsbeacon_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )));
        assert!(scrape.contains("nsbeacon_config_reloads_total{result=\"failure\"} 0"));
    }
}
