//! Probe tasks and service tasks: from DNS probes to desired route states.
//!
//! Each check runs in its own task (interval plus jitter) and sends its classified result to its
//! service's task over a channel. The service task owns the service's [`ServiceHealth`], so the state
//! machine stays synchronous and single-owner; it publishes the desired route steps into the reconciler's
//! watch channel, a [`ServiceReport`] for `/status`, and the service's metrics. Nothing here touches the
//! routing backend, so probing never waits on BIRD or FRR.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use nsbeacon_prober::{ProbeOutcome, ProbeStatus, SerialSweep, SpecError, SweepReport};
use nsbeacon_routing::{RouteState, RouteTarget};
use rand::Rng;
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::clock::unix_now;
use crate::config::{CheckConfig, CheckKind, ServiceConfig};
use crate::drain::DrainRequest;
use crate::health::{self, CheckSignal, ServiceHealth, ServiceState, Transition};
use crate::metrics::{Metrics, PER_ZONE_SERIES_LIMIT, SERIAL_VERDICTS};
use crate::routes::{DesiredTable, TargetId};

/// Extra time granted to a whole check beyond its per-exchange timeout before it counts as hung.
const CHECK_GRACE: Duration = Duration::from_secs(1);
/// Longest wait between two health ticks (damping decay, graceful-drain timer).
const MAX_TICK: Duration = Duration::from_secs(1);

/// The drains in force, as read from the drain store and the drain file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DrainView {
    /// Drains of single services.
    pub services: BTreeMap<String, DrainRequest>,
    /// A drain of every service (`nsbeacon drain` without a service, or the drain file).
    pub all: Option<DrainRequest>,
}

impl DrainView {
    /// The drain that applies to `service`, if any (a service's own drain wins over "all").
    pub fn get(&self, service: &str) -> Option<DrainRequest> {
        self.services.get(service).or(self.all.as_ref()).cloned()
    }
}

/// Everything a service task shares with the rest of the daemon.
#[derive(Clone, Debug)]
pub struct Shared {
    /// Metrics registry.
    pub metrics: Metrics,
    /// Desired route steps per service, read by the reconciler.
    pub desired: watch::Sender<DesiredTable>,
    /// Latest report per service, read by `/status`.
    pub services: Arc<RwLock<BTreeMap<String, ServiceReport>>>,
    /// Drains in force.
    pub drains: watch::Receiver<DrainView>,
    /// Targets the BGP daemon says do not exist (from the reconciler): a service listing one is down.
    pub missing_targets: watch::Receiver<std::collections::HashSet<RouteTarget>>,
}

/// What one run of a check produced, before classification.
#[derive(Debug, Clone)]
pub enum CheckRun {
    /// A query probe finished.
    Query(Result<ProbeOutcome, SpecError>),
    /// A serial sweep finished.
    Serial(Result<SweepReport, SpecError>),
    /// The check did not finish within its bound (should not happen: the prober bounds every exchange).
    Hung(Duration),
}

/// Runs one check once, bounded.
pub async fn run_check(check: &CheckConfig) -> CheckRun {
    match &check.kind {
        CheckKind::Query(spec) => {
            let exchanges = u32::try_from(spec.transport.expand().len() + 1).unwrap_or(3);
            let bound = spec.timeout * exchanges + CHECK_GRACE;
            match tokio::time::timeout(bound, nsbeacon_prober::probe(spec)).await {
                Ok(result) => CheckRun::Query(result),
                Err(_) => CheckRun::Hung(bound),
            }
        }
        CheckKind::Serial(serial) => {
            let sweep = SerialSweep {
                local: serial.local,
                reference: serial.reference,
                transport: serial.transport,
                timeout: serial.timeout,
                max_lag: serial.max_lag,
                concurrency: serial.concurrency,
            };
            let rounds = serial
                .zones
                .len()
                .div_ceil(serial.concurrency.max(1))
                .max(1);
            let bound =
                serial.timeout * 2 * u32::try_from(rounds).unwrap_or(u32::MAX / 4) + CHECK_GRACE;
            // The sweep spreads its zones over worker tasks of this runtime (one per core); dropping it
            // at the bound aborts them.
            match tokio::time::timeout(bound, sweep.run(&serial.zones)).await {
                Ok(result) => CheckRun::Serial(result),
                Err(_) => CheckRun::Hung(bound),
            }
        }
    }
}

/// The health signal of one run of `check`.
pub fn classify(check: &CheckConfig, run: &CheckRun) -> CheckSignal {
    match run {
        CheckRun::Query(Ok(outcome)) => health::classify_probe(outcome),
        CheckRun::Serial(Ok(report)) => {
            let max_behind_zones = match &check.kind {
                CheckKind::Serial(serial) => serial.max_behind_zones,
                CheckKind::Query(_) => 0,
            };
            health::classify_sweep(report, max_behind_zones)
        }
        CheckRun::Query(Err(e)) | CheckRun::Serial(Err(e)) => {
            CheckSignal::Hard(format!("the check is invalid: {e}"))
        }
        CheckRun::Hung(bound) => CheckSignal::Hard(format!(
            "the check did not finish within {}",
            humantime::format_duration(*bound)
        )),
    }
}

/// `pass`, `soft` or `hard`.
pub fn signal_str(signal: &CheckSignal) -> &'static str {
    match signal {
        CheckSignal::Pass => "pass",
        CheckSignal::Soft(_) => "soft",
        CheckSignal::Hard(_) => "hard",
    }
}

/// The human-readable text of a signal.
pub fn signal_text(signal: &CheckSignal) -> &str {
    match signal {
        CheckSignal::Pass => "ok",
        CheckSignal::Soft(text) | CheckSignal::Hard(text) => text,
    }
}

/// Serial sweep counts for `/status`.
#[derive(Debug, Clone, Serialize, PartialEq)]
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

/// The last run of one check, for `/status`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CheckReport {
    /// Check name.
    pub name: String,
    /// `query` or `serial`.
    pub kind: &'static str,
    /// What the check talks to.
    pub target: String,
    /// Whether the check is up by its rise/fall counters; `None` before the first run.
    pub up: Option<bool>,
    /// `pass`, `soft` or `hard`; `None` before the first run.
    pub signal: Option<&'static str>,
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
    /// When the last run ended (seconds since the Unix epoch).
    pub at_unix: Option<f64>,
    /// Runs since the service started.
    pub runs: u64,
}

/// One route target of a service with the state the service wants.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ServiceTarget {
    /// Kind and name.
    #[serde(flatten)]
    pub id: TargetId,
    /// `announce` or `degrade`.
    pub role: &'static str,
    /// The state this service wants.
    pub desired: RouteState,
}

/// One service, for `/status`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ServiceReport {
    /// Service name.
    pub name: String,
    /// `starting`, `up`, `degraded`, `down` or `drained`.
    pub state: &'static str,
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
}

/// What a check talks to, for humans.
pub fn check_target(check: &CheckConfig) -> String {
    match &check.kind {
        CheckKind::Query(spec) => format!(
            "{} {} {} over {}",
            spec.target,
            spec.query.name,
            spec.query.record_type,
            spec.transport.as_str()
        ),
        CheckKind::Serial(s) => format!(
            "{} zone(s) at {} vs reference {}",
            s.zones.len(),
            s.local,
            s.reference
        ),
    }
}

fn empty_check_report(check: &CheckConfig) -> CheckReport {
    CheckReport {
        name: check.name.clone(),
        kind: check.kind.type_name(),
        target: check_target(check),
        up: None,
        signal: None,
        result: None,
        detail: "not run yet".to_owned(),
        latency_ms: BTreeMap::new(),
        identity: None,
        serial: None,
        at_unix: None,
        runs: 0,
    }
}

/// Fills `report` from a run and exports the probe metrics.
fn record_run(
    metrics: &Metrics,
    service: &str,
    check: &CheckConfig,
    run: &CheckRun,
    signal: &CheckSignal,
    report: &mut CheckReport,
) {
    report.signal = Some(signal_str(signal));
    report.detail = signal_text(signal).to_owned();
    report.at_unix = Some(unix_now());
    report.runs += 1;
    report.latency_ms.clear();
    match run {
        CheckRun::Query(Ok(outcome)) => {
            report.identity.clone_from(&outcome.identity);
            report.result = Some(match (&outcome.status, &outcome.reason) {
                (ProbeStatus::Fail, Some(reason)) => reason.kind().to_owned(),
                (status, _) => status.to_string(),
            });
            for t in &outcome.transports {
                let transport = t.transport.as_str();
                report
                    .latency_ms
                    .insert(transport.to_owned(), t.latency.as_secs_f64() * 1000.0);
                metrics
                    .probe_duration_seconds
                    .with_label_values(&[service, &check.name, transport])
                    .observe(t.latency.as_secs_f64());
                let result = match (&t.status, &t.reason) {
                    (ProbeStatus::Fail, Some(reason)) => reason.kind().to_owned(),
                    (status, _) => status.to_string(),
                };
                metrics
                    .probe_results_total
                    .with_label_values(&[service, &check.name, transport, &result])
                    .inc();
            }
        }
        CheckRun::Serial(Ok(sweep)) => {
            let s = &sweep.summary;
            report
                .latency_ms
                .insert("sweep".to_owned(), sweep.elapsed.as_secs_f64() * 1000.0);
            metrics
                .probe_duration_seconds
                .with_label_values(&[service, &check.name, "sweep"])
                .observe(sweep.elapsed.as_secs_f64());
            metrics
                .probe_results_total
                .with_label_values(&[service, &check.name, "sweep", signal_str(signal)])
                .inc();
            let counts = [
                s.in_sync,
                s.lagging,
                s.behind,
                s.local_failed,
                s.reference_unreachable,
            ];
            for (verdict, count) in SERIAL_VERDICTS.iter().zip(counts) {
                metrics
                    .serial_zones
                    .with_label_values(&[service, &check.name, verdict])
                    .set(i64::try_from(count).unwrap_or(i64::MAX));
            }
            let max_lag = s.worst_lag.as_ref().map(|w| w.lag).unwrap_or(0);
            metrics
                .serial_max_lag
                .with_label_values(&[service, &check.name])
                .set(i64::from(max_lag));
            if sweep.zones.len() <= PER_ZONE_SERIES_LIMIT {
                for zone in &sweep.zones {
                    let name = zone.zone.to_string();
                    for (server, serial) in [
                        ("local", zone.outcome.local_serial),
                        ("reference", zone.outcome.reference_serial),
                    ] {
                        let gauge = metrics.zone_serial.with_label_values(&[
                            service,
                            &check.name,
                            &name,
                            server,
                        ]);
                        if let Some(serial) = serial {
                            gauge.set(i64::from(serial));
                        }
                    }
                    if let Some(lag) = zone.outcome.lag {
                        metrics
                            .zone_serial_lag
                            .with_label_values(&[service, &check.name, &name])
                            .set(i64::from(lag));
                    }
                }
            }
            let single = (sweep.zones.len() == 1).then(|| &sweep.zones[0].outcome);
            report.result = Some(
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
                .to_owned(),
            );
            report.serial = Some(SerialSummaryReport {
                zones: s.zones,
                in_sync: s.in_sync,
                lagging: s.lagging,
                behind: s.behind,
                local_failed: s.local_failed,
                reference_unreachable: s.reference_unreachable,
                worst_zone: s.worst_lag.as_ref().map(|w| w.zone.to_string()),
                max_lag,
                local_serial: single.and_then(|o| o.local_serial),
                reference_serial: single.and_then(|o| o.reference_serial),
            });
        }
        CheckRun::Query(Err(_)) | CheckRun::Serial(Err(_)) => {
            report.result = Some("invalid".to_owned());
        }
        CheckRun::Hung(_) => {
            report.result = Some("hung".to_owned());
            metrics
                .probe_results_total
                .with_label_values(&[service, &check.name, "any", "hung"])
                .inc();
        }
    }
}

/// A check's result on its way to the service task.
#[derive(Debug)]
struct CheckResult {
    /// Which set of probe tasks sent it: results of checks replaced by a reload are dropped.
    generation: u64,
    index: usize,
    run: CheckRun,
    signal: CheckSignal,
}

/// What the service task is told besides check results.
#[derive(Debug)]
enum ServiceCommand {
    /// A reload changed the service's config; probe tasks of `generation` run the new checks.
    Reconfigure {
        config: ServiceConfig,
        generation: u64,
    },
}

/// A running service: its config and the tasks that probe and decide for it.
#[derive(Debug)]
pub struct ServiceRuntime {
    /// The config it runs with (compared on reload).
    pub config: ServiceConfig,
    /// Stops the service task (and, through child tokens, every probe task).
    cancel: CancellationToken,
    /// Stops the current probe tasks only (replaced on reconfigure).
    probes_cancel: CancellationToken,
    generation: u64,
    results: mpsc::Sender<CheckResult>,
    commands: mpsc::Sender<ServiceCommand>,
    service_task: JoinHandle<()>,
    probe_tasks: Vec<JoinHandle<()>>,
    span: tracing::Span,
}

impl ServiceRuntime {
    /// Starts the service task and one probe task per check. The initial desired state (every target
    /// withdrawn while `starting`) is published before this returns, so the reconciler's first pass sees it.
    ///
    /// `warm_announced` lists targets a clean `keep` exit of the previous run left announced and the BGP
    /// daemon still announces (see [`crate::warm`]); those of this service stay announced while its first
    /// probes run, for at most [`warm_hold`]. Empty for a cold start and for services added by a reload.
    pub fn start(
        config: ServiceConfig,
        shared: &Shared,
        warm_announced: &[RouteTarget],
    ) -> ServiceRuntime {
        let cancel = CancellationToken::new();
        let (results, rx) = mpsc::channel(64);
        let (commands, commands_rx) = mpsc::channel(4);
        let now = Instant::now();
        let mut health = ServiceHealth::new(&config, now);
        let hold = warm_hold(&config);
        if health.warm_start(warm_announced, now + hold, now).is_some() {
            info!(service = %config.name, ?hold, "warm restart: keeping this service's announced routes while its first probes run");
        }
        let mut task = ServiceTask {
            report: ServiceReport {
                name: config.name.clone(),
                state: health.state().as_str(),
                reason: health.reason().to_owned(),
                since_unix: unix_now(),
                checks: config.checks.iter().map(empty_check_report).collect(),
                targets: Vec::new(),
                drained: false,
                damping_penalty: 0.0,
                suppressed: false,
                transitions: 0,
            },
            health,
            config: config.clone(),
            shared: shared.clone(),
            generation: 0,
        };
        let drain = shared.drains.borrow().get(&config.name);
        if drain.is_some() {
            let transition = task.health.set_drain(drain, now);
            task.after_transition(transition);
        }
        task.publish();
        let span = info_span!("service", service = %config.name);
        let service_task = tokio::spawn(
            task.run(rx, commands_rx, cancel.clone())
                .instrument(span.clone()),
        );
        let mut runtime = ServiceRuntime {
            probes_cancel: cancel.child_token(),
            config,
            cancel,
            generation: 0,
            results,
            commands,
            service_task,
            probe_tasks: Vec::new(),
            span,
        };
        runtime.spawn_probes();
        info!(service = %runtime.config.name, checks = runtime.config.checks.len(), "service started");
        runtime
    }

    fn spawn_probes(&mut self) {
        for (index, check) in self.config.checks.iter().enumerate() {
            let check_span = info_span!(parent: &self.span, "check", check = %check.name);
            self.probe_tasks.push(tokio::spawn(
                probe_loop(
                    self.generation,
                    index,
                    check.clone(),
                    self.config.jitter,
                    self.results.clone(),
                    self.probes_cancel.clone(),
                )
                .instrument(check_span),
            ));
        }
    }

    /// Applies a changed config (SIGHUP) without restarting the service: its health keeps what it knows
    /// (see [`ServiceHealth::reconfigure`]), the probe tasks are replaced by ones running the new checks.
    pub async fn reconfigure(&mut self, config: ServiceConfig) {
        self.probes_cancel.cancel();
        for task in self.probe_tasks.drain(..) {
            let _ = task.await;
        }
        self.generation += 1;
        self.probes_cancel = self.cancel.child_token();
        self.config = config.clone();
        let command = ServiceCommand::Reconfigure {
            config,
            generation: self.generation,
        };
        if self.commands.send(command).await.is_err() {
            warn!(service = %self.config.name, "the service task is gone; reconfigure ignored");
        }
        self.spawn_probes();
    }

    /// Stops probing and deciding for this service and waits for its tasks to end. Its desired entry and
    /// report stay until the caller removes or replaces them.
    pub async fn stop(self) {
        self.cancel.cancel();
        for task in self.probe_tasks {
            let _ = task.await;
        }
        let _ = self.service_task.await;
    }
}

/// How long a warm start may keep routes without a decision: long enough for `rise` passes at the
/// slowest check's interval plus its timeout, with two seconds of slack for a loaded machine.
pub fn warm_hold(config: &ServiceConfig) -> Duration {
    let slowest = config
        .checks
        .iter()
        .map(|c| c.interval + c.timeout)
        .max()
        .unwrap_or(config.interval);
    slowest.saturating_mul(config.rise.max(1)) + config.jitter + Duration::from_secs(2)
}

/// Runs one check forever: a random start offset within the jitter, then every interval +/- jitter.
async fn probe_loop(
    generation: u64,
    index: usize,
    check: CheckConfig,
    jitter: Duration,
    tx: mpsc::Sender<CheckResult>,
    cancel: CancellationToken,
) {
    let jitter = jitter.min(check.interval / 2);
    let mut delay = random_up_to(jitter);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        let started = Instant::now();
        let run = tokio::select! {
            _ = cancel.cancelled() => return,
            run = run_check(&check) => run,
        };
        let signal = classify(&check, &run);
        debug!(signal = signal_str(&signal), detail = signal_text(&signal), elapsed = ?started.elapsed(), "probe");
        let result = CheckResult {
            generation,
            index,
            run,
            signal,
        };
        if tx.send(result).await.is_err() {
            return;
        }
        // interval - jitter .. interval + jitter, measured from the start of this run.
        let base = check.interval.saturating_sub(jitter) + random_up_to(jitter * 2);
        delay = base.saturating_sub(started.elapsed());
    }
}

fn random_up_to(max: Duration) -> Duration {
    if max.is_zero() {
        return Duration::ZERO;
    }
    let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rand::rng().random_range(0..=nanos))
}

/// The timer driving [`ServiceHealth::tick`] (damping decay, graceful-drain end): half the service
/// interval, between 50 ms and [`MAX_TICK`].
fn health_tick(interval: Duration) -> tokio::time::Interval {
    let every = (interval / 2).clamp(Duration::from_millis(50), MAX_TICK);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick
}

/// Owns one service's health state machine.
struct ServiceTask {
    config: ServiceConfig,
    health: ServiceHealth,
    shared: Shared,
    report: ServiceReport,
    /// Probe generation whose results count.
    generation: u64,
}

impl ServiceTask {
    async fn run(
        mut self,
        mut rx: mpsc::Receiver<CheckResult>,
        mut commands: mpsc::Receiver<ServiceCommand>,
        cancel: CancellationToken,
    ) {
        let mut tick = health_tick(self.config.interval);
        let mut drains = self.shared.drains.clone();
        let mut missing = self.shared.missing_targets.clone();
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                result = rx.recv() => {
                    let Some(result) = result else { return };
                    if result.generation == self.generation {
                        self.on_result(result);
                    }
                }
                command = commands.recv() => {
                    let Some(command) = command else { return };
                    self.on_command(command);
                    tick = health_tick(self.config.interval);
                }
                _ = tick.tick() => {
                    let transition = self.health.tick(Instant::now());
                    self.after_transition(transition);
                }
                changed = drains.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let drain = drains.borrow_and_update().get(&self.config.name);
                    let transition = self.health.set_drain(drain, Instant::now());
                    self.after_transition(transition);
                }
                changed = missing.changed() => {
                    if changed.is_err() {
                        // The reconciler is gone (shutdown): nothing more to learn.
                        std::future::pending::<()>().await;
                    }
                    let targets: Vec<RouteTarget> = missing.borrow_and_update().iter().cloned().collect();
                    let transition = self.health.set_missing_targets(&targets, Instant::now());
                    self.after_transition(transition);
                }
            }
            self.publish();
        }
    }

    fn on_command(&mut self, command: ServiceCommand) {
        match command {
            ServiceCommand::Reconfigure { config, generation } => {
                let transition = self.health.reconfigure(&config, Instant::now());
                // Reports follow the checks by name, like the health counters do.
                let mut old = std::mem::take(&mut self.report.checks);
                self.report.checks = config
                    .checks
                    .iter()
                    .map(|c| match old.iter().position(|r| r.name == c.name) {
                        Some(i) => {
                            let mut report = old.swap_remove(i);
                            report.kind = c.kind.type_name();
                            report.target = check_target(c);
                            report
                        }
                        None => empty_check_report(c),
                    })
                    .collect();
                self.config = config;
                self.generation = generation;
                info!(service = %self.config.name, state = self.health.state().as_str(), "service reconfigured; state and check history kept");
                self.after_transition(transition);
            }
        }
    }

    fn on_result(&mut self, result: CheckResult) {
        let Some(check) = self.config.checks.get(result.index) else {
            return;
        };
        if let Some(report) = self.report.checks.get_mut(result.index) {
            record_run(
                &self.shared.metrics,
                &self.config.name,
                check,
                &result.run,
                &result.signal,
                report,
            );
        }
        if !matches!(result.signal, CheckSignal::Pass) {
            debug!(check = %check.name, signal = signal_str(&result.signal), detail = signal_text(&result.signal), "check did not pass");
        }
        let transition = self
            .health
            .observe(result.index, result.signal, Instant::now());
        self.after_transition(transition);
    }

    fn after_transition(&mut self, transition: Option<Transition>) {
        let Some(t) = transition else { return };
        let level_warn = matches!(t.to, ServiceState::Down | ServiceState::Degraded);
        if level_warn {
            warn!(service = %t.service, from = t.from.as_str(), to = t.to.as_str(), reason = %t.reason, "service state changed");
        } else {
            info!(service = %t.service, from = t.from.as_str(), to = t.to.as_str(), reason = %t.reason, "service state changed");
        }
        self.shared
            .metrics
            .service_transitions_total
            .with_label_values(&[&self.config.name, t.from.as_str(), t.to.as_str()])
            .inc();
        self.report.since_unix = unix_now();
    }

    /// Publishes desired steps, the status report and the metrics of the current state.
    fn publish(&mut self) {
        let name = &self.config.name;
        let steps = self.health.desired().steps;
        self.shared.desired.send_if_modified(|table| {
            if table.get(name) == Some(&steps) {
                false
            } else {
                table.insert(name.clone(), steps.clone());
                true
            }
        });
        let state = self.health.state();
        let metrics = &self.shared.metrics;
        let all: Vec<&str> = ServiceState::ALL.iter().map(|s| s.as_str()).collect();
        metrics.set_service_state(name, &all, state.as_str());
        metrics
            .damping_penalty
            .with_label_values(&[name])
            .set(self.health.penalty());
        metrics
            .damping_suppressed
            .with_label_values(&[name])
            .set(i64::from(self.health.suppressed()));
        metrics
            .service_drained
            .with_label_values(&[name])
            .set(i64::from(state == ServiceState::Drained));
        for (index, check_state) in self.health.check_states().iter().enumerate() {
            if let (Some(report), Some(check)) = (
                self.report.checks.get_mut(index),
                self.config.checks.get(index),
            ) {
                let up = check_state.up;
                if check_state.decided {
                    report.up = Some(up);
                }
                metrics
                    .check_up
                    .with_label_values(&[name, &check.name])
                    .set(i64::from(up));
            }
        }
        self.report.state = state.as_str();
        self.report.reason = self.health.reason().to_owned();
        self.report.drained = state == ServiceState::Drained;
        self.report.damping_penalty = self.health.penalty();
        self.report.suppressed = self.health.suppressed();
        self.report.transitions = self.health.transitions();
        self.report.targets = steps
            .iter()
            .map(|(target, desired)| ServiceTarget {
                id: TargetId::of(target),
                role: if self.config.announce.contains(target) {
                    "announce"
                } else {
                    "degrade"
                },
                desired: *desired,
            })
            .collect();
        self.shared
            .services
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(name.clone(), self.report.clone());
    }
}
