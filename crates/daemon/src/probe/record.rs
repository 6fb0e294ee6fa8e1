//! Recording a check's run: into its `/status` [`CheckReport`] and into the probe metrics.
//!
//! The service task calls [`record_run`] for every result before health sees the signal, so `/status`
//! and `/metrics` show the run that led to a decision. The report keeps only the last run; the metrics
//! keep the history (counters and histograms per transport, gauges per serial verdict and zone).

use std::collections::BTreeMap;

use nsbeacon_prober::{
    DnssecReport, ExpiryVerdict, FailReason, ProbeOutcome, ProbeStatus, SweepReport, SweepSummary,
};

use crate::clock::unix_now;
use crate::config::CheckConfig;
use crate::health::CheckSignal;
use crate::metrics::{DNSSEC_EXPIRY_BUCKETS, Metrics, PER_ZONE_SERIES_LIMIT, SERIAL_VERDICTS};
use crate::probe::{CheckRun, check_target};
use crate::status::{
    CheckReport, CheckType, DnssecSummaryReport, SerialSummaryReport, SignalKind, ZoneExpiryReport,
};

/// The report of a check that has not run yet: every service lists all of its checks in `/status` from
/// the start, so an operator sees what will be probed before the first result.
pub fn new_report(check: &CheckConfig) -> CheckReport {
    CheckReport {
        name: check.name.clone(),
        kind: CheckType::of(&check.kind),
        target: check_target(check),
        up: None,
        signal: None,
        result: None,
        detail: "not run yet".to_owned(),
        latency_ms: Default::default(),
        identity: None,
        serial: None,
        dnssec: None,
        at_unix: None,
        runs: 0,
    }
}

/// The reports for a reloaded service's `checks`: a check keeps its report (last run, run count) by
/// name, as its health counters do, with its kind and target updated; a new check starts empty.
pub fn carry_over(checks: &[CheckConfig], mut old: Vec<CheckReport>) -> Vec<CheckReport> {
    checks
        .iter()
        .map(|c| match old.iter().position(|r| r.name == c.name) {
            Some(i) => {
                let mut report = old.swap_remove(i);
                report.kind = CheckType::of(&c.kind);
                report.target = check_target(c);
                report
            }
            None => new_report(c),
        })
        .collect()
}

/// Fills `report` from a run of `check` (of `service`) and exports the probe metrics.
pub fn record_run(
    metrics: &Metrics,
    service: &str,
    check: &CheckConfig,
    run: &CheckRun,
    signal: &CheckSignal,
    report: &mut CheckReport,
) {
    let labels = CheckLabels {
        metrics,
        service,
        check: &check.name,
    };
    begin_run(report, signal);
    match run {
        CheckRun::Query(Ok(outcome)) => {
            report_query(report, outcome);
            labels.export_query(outcome);
        }
        CheckRun::Serial(Ok(sweep)) => {
            report_sweep(report, sweep);
            labels.export_sweep(sweep, signal);
        }
        CheckRun::Dnssec(Ok(sweep)) => {
            report_dnssec(report, sweep);
            labels.export_dnssec(sweep, signal);
        }
        CheckRun::Query(Err(_)) | CheckRun::Serial(Err(_)) | CheckRun::Dnssec(Err(_)) => {
            report.result = Some("invalid".to_owned());
        }
        CheckRun::Hung(_) => {
            report.result = Some("hung".to_owned());
            labels.export_hung();
        }
    }
}

/// What every run sets, whatever it saw.
fn begin_run(report: &mut CheckReport, signal: &CheckSignal) {
    report.signal = Some(SignalKind::of(signal));
    report.detail = signal.detail().to_owned();
    report.at_unix = Some(unix_now());
    report.runs += 1;
    report.latency_ms.clear();
}

/// `pass`, `slow`, or the failure kind (`timeout`, `refused`, ...) of a probe or of one transport.
fn outcome_result(status: &ProbeStatus, reason: Option<&FailReason>) -> String {
    match (status, reason) {
        (ProbeStatus::Fail, Some(reason)) => reason.kind().to_owned(),
        (status, _) => status.to_string(),
    }
}

fn report_query(report: &mut CheckReport, outcome: &ProbeOutcome) {
    report.identity.clone_from(&outcome.identity);
    report.result = Some(outcome_result(&outcome.status, outcome.reason.as_ref()));
    for t in &outcome.transports {
        report.latency_ms.insert(
            t.transport.as_str().to_owned(),
            t.latency.as_secs_f64() * 1000.0,
        );
    }
}

fn report_sweep(report: &mut CheckReport, sweep: &SweepReport) {
    report
        .latency_ms
        .insert("sweep".to_owned(), sweep.elapsed.as_secs_f64() * 1000.0);
    report.result = Some(sweep_result(&sweep.summary).to_owned());
    report.serial = Some(serial_summary(sweep));
}

/// The sweep's overall verdict: the worst kind of zone present, in order of how much it matters.
fn sweep_result(s: &SweepSummary) -> &'static str {
    if s.behind > 0 {
        "behind"
    } else if s.local_failed > 0 {
        "local_failed"
    } else if s.reference_unreachable > 0 {
        "reference_unreachable"
    } else if s.lagging > 0 {
        "lagging"
    } else {
        "in_sync"
    }
}

fn serial_summary(sweep: &SweepReport) -> SerialSummaryReport {
    let s = &sweep.summary;
    let single = match sweep.zones.as_slice() {
        [only] => Some(&only.outcome),
        _ => None,
    };
    SerialSummaryReport {
        zones: s.zones,
        in_sync: s.in_sync,
        lagging: s.lagging,
        behind: s.behind,
        local_failed: s.local_failed,
        reference_unreachable: s.reference_unreachable,
        worst_zone: s.worst_lag.as_ref().map(|w| w.zone.to_string()),
        max_lag: max_lag(s),
        local_serial: single.and_then(|o| o.local_serial),
        reference_serial: single.and_then(|o| o.reference_serial),
    }
}

fn max_lag(s: &SweepSummary) -> u32 {
    s.worst_lag.as_ref().map(|w| w.lag).unwrap_or(0)
}

fn report_dnssec(report: &mut CheckReport, sweep: &DnssecReport) {
    report
        .latency_ms
        .insert("sweep".to_owned(), sweep.elapsed.as_secs_f64() * 1000.0);
    let s = &sweep.summary;
    // The worst verdict present, in the order of ExpiryVerdict::ALL from the back (local_failed first).
    let worst = ExpiryVerdict::ALL
        .iter()
        .rev()
        .find(|v| s.count(v) > 0)
        .copied()
        .unwrap_or("valid");
    report.result = Some(worst.to_owned());
    report.dnssec = Some(DnssecSummaryReport {
        zones: s.zones,
        verdicts: ExpiryVerdict::ALL
            .iter()
            .filter(|v| s.count(v) > 0)
            .map(|v| ((*v).to_owned(), s.count(v)))
            .collect::<BTreeMap<_, _>>(),
        worst: s
            .worst
            .iter()
            .map(|(zone, e)| ZoneExpiryReport {
                zone: zone.to_string(),
                covered: e.covered.to_string(),
                expires_unix: e.expires_unix,
                remaining_seconds: e.remaining,
            })
            .collect(),
    });
}

/// The registry and the (`service`, `check`) labels every probe metric of one check starts with.
struct CheckLabels<'a> {
    metrics: &'a Metrics,
    service: &'a str,
    check: &'a str,
}

impl CheckLabels<'_> {
    /// One duration sample and one result count per transport the probe used.
    fn export_query(&self, outcome: &ProbeOutcome) {
        for t in &outcome.transports {
            let transport = t.transport.as_str();
            self.metrics
                .probe_duration_seconds
                .with_label_values(&[self.service, self.check, transport])
                .observe(t.latency.as_secs_f64());
            let result = outcome_result(&t.status, t.reason.as_ref());
            self.metrics
                .probe_results_total
                .with_label_values(&[self.service, self.check, transport, &result])
                .inc();
        }
    }

    /// A zone sweep's duration and signal (serial and DNSSEC sweeps alike, `transport="sweep"`).
    fn export_sweep_run(&self, elapsed: std::time::Duration, signal: &CheckSignal) {
        self.metrics
            .probe_duration_seconds
            .with_label_values(&[self.service, self.check, "sweep"])
            .observe(elapsed.as_secs_f64());
        self.metrics
            .probe_results_total
            .with_label_values(&[self.service, self.check, "sweep", signal.as_str()])
            .inc();
    }

    /// The sweep as a whole (duration, signal), its zone counts, and per-zone serials for small sweeps.
    fn export_sweep(&self, sweep: &SweepReport, signal: &CheckSignal) {
        self.export_sweep_run(sweep.elapsed, signal);
        self.export_serial_counts(&sweep.summary);
        if sweep.zones.len() <= PER_ZONE_SERIES_LIMIT {
            self.export_zone_serials(sweep);
        }
    }

    fn export_serial_counts(&self, s: &SweepSummary) {
        let counts = [
            s.in_sync,
            s.lagging,
            s.behind,
            s.local_failed,
            s.reference_unreachable,
        ];
        for (verdict, count) in SERIAL_VERDICTS.iter().zip(counts) {
            self.metrics
                .serial_zones
                .with_label_values(&[self.service, self.check, verdict])
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
        self.metrics
            .serial_max_lag
            .with_label_values(&[self.service, self.check])
            .set(i64::from(max_lag(s)));
    }

    /// Each zone's local and reference serial and its lag; a serial that was not learned leaves its
    /// gauge as it was.
    fn export_zone_serials(&self, sweep: &SweepReport) {
        for zone in &sweep.zones {
            let name = zone.zone.to_string();
            for (server, serial) in [
                ("local", zone.outcome.local_serial),
                ("reference", zone.outcome.reference_serial),
            ] {
                let gauge = self.metrics.zone_serial.with_label_values(&[
                    self.service,
                    self.check,
                    &name,
                    server,
                ]);
                if let Some(serial) = serial {
                    gauge.set(i64::from(serial));
                }
            }
            if let Some(lag) = zone.outcome.lag {
                self.metrics
                    .zone_serial_lag
                    .with_label_values(&[self.service, self.check, &name])
                    .set(i64::from(lag));
            }
        }
    }

    /// The DNSSEC sweep as a whole (duration, signal), zones per verdict, the earliest expiry, the
    /// distribution of remaining validity, and per-zone expiry for small sweeps.
    fn export_dnssec(&self, sweep: &DnssecReport, signal: &CheckSignal) {
        let labels = [self.service, self.check];
        self.export_sweep_run(sweep.elapsed, signal);
        let s = &sweep.summary;
        for verdict in ExpiryVerdict::ALL {
            self.metrics
                .dnssec_zones
                .with_label_values(&[self.service, self.check, verdict])
                .set(i64::try_from(s.count(verdict)).unwrap_or(i64::MAX));
        }
        set_or_remove(
            &self.metrics.dnssec_min_expiry_seconds,
            &labels,
            s.earliest().map(|(_, e)| e.remaining),
        );
        let mut within = vec![0i64; DNSSEC_EXPIRY_BUCKETS.len()];
        for remaining in sweep
            .zones
            .iter()
            .filter_map(|z| z.earliest.map(|e| e.remaining))
        {
            for (count, (limit, _)) in within.iter_mut().zip(DNSSEC_EXPIRY_BUCKETS) {
                if limit.is_none_or(|l| remaining <= l) {
                    *count += 1;
                }
            }
        }
        for (count, (_, le)) in within.into_iter().zip(DNSSEC_EXPIRY_BUCKETS) {
            self.metrics
                .dnssec_zones_expiring_within_seconds
                .with_label_values(&[self.service, self.check, le])
                .set(count);
        }
        if sweep.zones.len() <= PER_ZONE_SERIES_LIMIT {
            for zone in &sweep.zones {
                let name = zone.zone.to_string();
                set_or_remove(
                    &self.metrics.dnssec_expiry_seconds,
                    &[self.service, self.check, name.as_str()],
                    zone.earliest.map(|e| e.remaining),
                );
            }
        }
    }

    fn export_hung(&self) {
        self.metrics
            .probe_results_total
            .with_label_values(&[self.service, self.check, "any", "hung"])
            .inc();
    }
}

/// Sets the series of `labels` to `value`, or removes it when there is none (no signature was read): no
/// value is better than a stale one.
fn set_or_remove(gauge: &prometheus::IntGaugeVec, labels: &[&str], value: Option<i64>) {
    match value {
        Some(v) => gauge.with_label_values(labels).set(v),
        None => {
            let _ = gauge.remove_label_values(labels);
        }
    }
}
