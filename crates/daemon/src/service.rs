//! Service tasks: from check signals to desired route states and the service's report.
//!
//! The second stage of the data path (probe -> health -> routes -> reconciler -> backend). Each service
//! has one task that owns its [`ServiceHealth`], so the state machine stays synchronous and
//! single-owner. It takes the [`CheckResult`]s of its probe tasks ([`crate::probe`]), drains, missing
//! targets and reloads, and after each event publishes the desired route steps into the reconciler's
//! watch channel, a [`ServiceReport`] for `/status`, and the service's metrics. Nothing here touches the
//! routing backend, so deciding never waits on BIRD or FRR.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use nsbeacon_routing::{RouteState, RouteTarget};
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::clock::unix_now;
use crate::config::ServiceConfig;
use crate::drain::DrainRequest;
use crate::fleet::{Fleet, FleetEvent, ServiceFleet};
use crate::health::{CheckSignal, ServiceHealth, ServiceState, Transition};
use crate::load::{LoadTask, LoadView};
use crate::metrics::Metrics;
use crate::probe::{CheckResult, ProbeNow, ProbeRhythm, ProbeTasks, record};
use crate::procwatch;
use crate::routes::{DesiredTable, TargetId};
use crate::status::{LoadReport, ServiceReport, ServiceTarget, TargetRole};

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
    pub missing_targets: watch::Receiver<HashSet<RouteTarget>>,
    /// The fleet guard (`[fleet]`); `None` without it: every node decides alone.
    pub fleet: Option<Arc<Fleet>>,
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
    /// The current generation of probe tasks (replaced on reconfigure).
    probes: ProbeTasks,
    generation: u64,
    results: mpsc::Sender<CheckResult>,
    commands: mpsc::Sender<ServiceCommand>,
    service_task: JoinHandle<()>,
    span: tracing::Span,
    /// Asks the probe tasks to run at once (SIGUSR1, `nsbeacon probe --now`, the process watch).
    probe_now: Arc<watch::Sender<ProbeNow>>,
    /// The process watch, if `[service.watch]` is set; stopped with the service.
    process_watch: Option<JoinHandle<()>>,
    /// Where the load task publishes (kept across reloads, so the service task's receiver stays valid).
    load_view: Arc<watch::Sender<LoadView>>,
    /// The load task, if `[service.load]` is set; stopped with the service.
    load_task: Option<LoadTask>,
    /// Asks the load task for a reading at once (shared with the service task, kept across reloads).
    load_now: Arc<Notify>,
    /// For a load task started by a reload.
    metrics: Metrics,
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
        health.set_guard_policy(guard_policy(shared, &config), now);
        let fleet = shared
            .fleet
            .as_ref()
            .map(|fleet| fleet.service(&config, &shared.metrics));
        let hold = warm_hold(&config);
        if health.warm_start(warm_announced, now + hold, now).is_some() {
            info!(service = %config.name, ?hold, "warm restart: keeping this service's announced routes while its first probes run");
        }
        let mut task = ServiceTask {
            report: ServiceReport {
                name: config.name.clone(),
                state: health.state(),
                reason: health.reason().to_owned(),
                since_unix: unix_now(),
                checks: config.checks.iter().map(record::new_report).collect(),
                targets: Vec::new(),
                drained: false,
                damping_penalty: 0.0,
                suppressed: false,
                transitions: 0,
                load: None,
            },
            health,
            config: config.clone(),
            shared: shared.clone(),
            generation: 0,
            fleet,
            absorb_exported: None,
            load_now: Arc::new(Notify::new()),
        };
        let drain = shared.drains.borrow().get(&config.name);
        if drain.is_some() {
            let transition = task.health.set_drain(drain, now);
            task.after_transition(transition);
        }
        task.publish();
        let span = info_span!("service", service = %config.name);
        let load_view = Arc::new(watch::channel(LoadView::default()).0);
        let load_now = task.load_now.clone();
        let service_task = tokio::spawn(
            task.run(rx, commands_rx, load_view.subscribe(), cancel.clone())
                .instrument(span.clone()),
        );
        let load_task = spawn_load_task(
            &config,
            &shared.metrics,
            &load_view,
            &load_now,
            &cancel,
            &span,
        );
        let probe_now = Arc::new(watch::channel(ProbeNow::default()).0);
        let probes = ProbeTasks::spawn(
            0,
            &config.checks,
            rhythm(&config),
            &probe_now.subscribe(),
            &results,
            cancel.child_token(),
            &span,
        );
        let process_watch = spawn_process_watch(&config, &probe_now, &cancel, &span);
        let runtime = ServiceRuntime {
            probes,
            config,
            cancel,
            generation: 0,
            results,
            commands,
            service_task,
            span,
            probe_now,
            process_watch,
            load_view,
            load_task,
            load_now,
            metrics: shared.metrics.clone(),
        };
        info!(service = %runtime.config.name, checks = runtime.config.checks.len(), "service started");
        runtime
    }

    /// Applies a changed config (SIGHUP) without restarting the service: its health keeps what it knows
    /// (see [`ServiceHealth::reconfigure`]), the probe tasks are replaced by ones running the new checks.
    pub async fn reconfigure(&mut self, config: ServiceConfig) {
        self.probes.stop().await;
        self.generation += 1;
        let old_watch = std::mem::replace(&mut self.config, config.clone()).watch;
        let command = ServiceCommand::Reconfigure {
            config,
            generation: self.generation,
        };
        if self.commands.send(command).await.is_err() {
            warn!(service = %self.config.name, "the service task is gone; reconfigure ignored");
        }
        self.probes = ProbeTasks::spawn(
            self.generation,
            &self.config.checks,
            rhythm(&self.config),
            &self.probe_now.subscribe(),
            &self.results,
            self.cancel.child_token(),
            &self.span,
        );
        if old_watch != self.config.watch {
            if let Some(task) = self.process_watch.take() {
                task.abort();
            }
            self.process_watch =
                spawn_process_watch(&self.config, &self.probe_now, &self.cancel, &self.span);
        }
        match (self.load_task.take(), &self.config.load) {
            (Some(task), Some(load)) => {
                task.reconfigure(load.clone());
                self.load_task = Some(task);
            }
            (Some(task), None) => task.stop().await,
            (None, Some(_)) => {
                self.load_task = spawn_load_task(
                    &self.config,
                    &self.metrics,
                    &self.load_view,
                    &self.load_now,
                    &self.cancel,
                    &self.span,
                );
            }
            (None, None) => {}
        }
    }

    /// Runs every check of the service at once, as if its next time had come (SIGUSR1,
    /// `nsbeacon probe --now`). Not decisive: a failure counts towards `fall` as usual.
    pub fn probe_now(&self) {
        self.probe_now.send_modify(|now| *now = now.next(false));
    }

    /// Stops probing and deciding for this service and waits for its tasks to end. Its desired entry and
    /// report stay until the caller removes or replaces them.
    pub async fn stop(mut self) {
        self.cancel.cancel();
        self.probes.stop().await;
        if let Some(task) = self.process_watch.take() {
            let _ = task.await;
        }
        if let Some(task) = self.load_task.take() {
            task.stop().await;
        }
        let _ = self.service_task.await;
    }
}

/// Starts the load task of `config` (`[service.load]`), if it has one.
fn spawn_load_task(
    config: &ServiceConfig,
    metrics: &Metrics,
    out: &Arc<watch::Sender<LoadView>>,
    read_now: &Arc<Notify>,
    cancel: &CancellationToken,
    span: &tracing::Span,
) -> Option<LoadTask> {
    config.load.as_ref().map(|load| {
        LoadTask::spawn(
            &config.name,
            load.clone(),
            metrics,
            out,
            read_now.clone(),
            cancel.child_token(),
            span,
        )
    })
}

/// Starts the process watch of `config` (`[service.watch]`), if it has one.
fn spawn_process_watch(
    config: &ServiceConfig,
    probe_now: &Arc<watch::Sender<ProbeNow>>,
    cancel: &CancellationToken,
    span: &tracing::Span,
) -> Option<JoinHandle<()>> {
    config.watch.as_ref().map(|watch| {
        tokio::spawn(
            procwatch::watch(watch.clone(), probe_now.clone(), cancel.child_token())
                .instrument(span.clone()),
        )
    })
}

/// The probe rhythm of a service's checks.
fn rhythm(config: &ServiceConfig) -> ProbeRhythm {
    ProbeRhythm {
        jitter: config.jitter,
        confirm_interval: config.confirm_interval,
        fall: config.fall,
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
    /// The link to the fleet guard, with `[fleet]`.
    fleet: Option<ServiceFleet>,
    /// While absorbing an overload: when the absorb time was last added to its counter.
    absorb_exported: Option<Instant>,
    /// Asks the load task for a fresh reading: a probe that timed out may be the start of a flood, and the
    /// overload verdict must arrive before fast confirmation reaches `fall` (about timeout + 2 x 70 ms at
    /// the defaults, shorter than the load interval), or the service would be withdrawn, not absorbed.
    load_now: Arc<Notify>,
}

/// The fleet guard's policy for `config`: none without `[fleet]` or with `min_announcing = 0` (the guard
/// is off for that service).
fn guard_policy(shared: &Shared, config: &ServiceConfig) -> Option<crate::health::GuardPolicy> {
    let fleet = shared.fleet.as_ref()?;
    let min = fleet.config().min_announcing(config);
    (min != crate::config::MinAnnouncing::Count(0)).then(|| crate::fleet::policy(fleet.config()))
}

/// The fleet's next event for the service task (pends without a fleet).
async fn fleet_event(fleet: &mut Option<ServiceFleet>) -> FleetEvent {
    match fleet {
        Some(fleet) => fleet.next_event().await,
        None => std::future::pending().await,
    }
}

impl ServiceTask {
    async fn run(
        mut self,
        rx: mpsc::Receiver<CheckResult>,
        commands: mpsc::Receiver<ServiceCommand>,
        load: watch::Receiver<LoadView>,
        cancel: CancellationToken,
    ) {
        self.serve(rx, commands, load, cancel).await;
        if let Some(fleet) = self.fleet.take() {
            fleet.stop().await;
        }
    }

    async fn serve(
        &mut self,
        mut rx: mpsc::Receiver<CheckResult>,
        mut commands: mpsc::Receiver<ServiceCommand>,
        mut load: watch::Receiver<LoadView>,
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
                changed = load.changed() => {
                    if changed.is_err() {
                        // The runtime holds the sender for the service's life: only at shutdown.
                        std::future::pending::<()>().await;
                    }
                    let view = load.borrow_and_update().clone();
                    let signal = view
                        .assessment
                        .overloaded
                        .then(|| view.assessment.detail.clone());
                    let transition = self.health.set_overload(signal, Instant::now());
                    self.update_load_report(&view);
                    if transition.is_none() {
                        // Nothing but the numbers changed (once a second): refresh the report alone,
                        // without republishing routes and metrics.
                        self.store_report();
                        continue;
                    }
                    self.after_transition(transition);
                }
                event = fleet_event(&mut self.fleet) => {
                    let transition = match event {
                        FleetEvent::Answer(answer) => {
                            debug!(?answer, "fleet guard answered");
                            self.health.guard_answered(answer, Instant::now())
                        }
                        FleetEvent::Changed => self.health.guard_retry(Instant::now()),
                    };
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
                if let (Some(fleet), Some(shared)) = (&mut self.fleet, &self.shared.fleet) {
                    fleet.set_min_announcing(shared.config().min_announcing(&config));
                }
                let policy = guard_policy(&self.shared, &config);
                let guarded = self.health.set_guard_policy(policy, Instant::now());
                self.after_transition(guarded);
                // Reports follow the checks by name, like the health counters do.
                let old = std::mem::take(&mut self.report.checks);
                self.report.checks = record::carry_over(&config.checks, old);
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
            record::record_run(
                &self.shared.metrics,
                &self.config.name,
                check,
                &result.run,
                &result.signal,
                report,
            );
        }
        if !matches!(result.signal, CheckSignal::Pass) {
            debug!(check = %check.name, signal = result.signal.as_str(), detail = result.signal.detail(), "check did not pass");
        }
        if matches!(result.signal, CheckSignal::TimedOut(_)) && self.config.load.is_some() {
            self.load_now.notify_one();
        }
        let transition = if result.decisive {
            self.health
                .observe_decisive(result.index, result.signal, Instant::now())
        } else {
            self.health
                .observe(result.index, result.signal, Instant::now())
        };
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
        if t.to == ServiceState::Held && t.from != ServiceState::Held {
            self.shared
                .metrics
                .fleet_guard_holds_total
                .with_label_values(&[&self.config.name])
                .inc();
        }
        self.report.since_unix = unix_now();
    }

    /// Publishes desired steps, the status report and the metrics of the current state.
    fn publish(&mut self) {
        let steps = self.health.desired().steps;
        self.publish_desired(&steps);
        self.publish_fleet(&steps);
        self.export_metrics();
        self.update_report(&steps);
        self.store_report();
    }

    /// Puts the report where `/status` reads it.
    fn store_report(&self) {
        self.shared
            .services
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(self.config.name.clone(), self.report.clone());
    }

    /// Writes the service's steps into the desired table, waking the reconciler only on a change.
    fn publish_desired(&self, steps: &[(RouteTarget, RouteState)]) {
        let name = &self.config.name;
        self.shared.desired.send_if_modified(|table| {
            if table.get(name).is_some_and(|old| old.as_slice() == steps) {
                false
            } else {
                table.insert(name.clone(), steps.to_vec());
                true
            }
        });
    }

    /// With `[fleet]`: the record (state and announced targets) if it changed, and health's guard question
    /// if it has one.
    fn publish_fleet(&mut self, steps: &[(RouteTarget, RouteState)]) {
        let Some(fleet) = &mut self.fleet else { return };
        if let Some(reason) = self.health.guard_question() {
            fleet.ask(reason);
            self.health.guard_asked();
            return;
        }
        let announced: Vec<String> = steps
            .iter()
            .filter(|(_, state)| *state == RouteState::Announced)
            .map(|(target, _)| TargetId::of(target).target)
            .collect();
        fleet.publish(self.health.state(), self.health.reason(), announced);
    }

    /// The service's state, damping, drain, overload and per-check up gauges.
    fn export_metrics(&mut self) {
        let name = &self.config.name;
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
        if self.config.load.is_some() {
            let absorbing = self.health.absorbing();
            metrics
                .overload_absorbing
                .with_label_values(&[name])
                .set(i64::from(absorbing));
            let now = Instant::now();
            if absorbing && self.absorb_exported.is_none() {
                metrics
                    .overload_absorbs_total
                    .with_label_values(&[name])
                    .inc();
            }
            if let Some(last) = self.absorb_exported.take() {
                metrics
                    .overload_absorb_seconds_total
                    .with_label_values(&[name])
                    .inc_by(now.saturating_duration_since(last).as_secs_f64());
            }
            self.absorb_exported = absorbing.then_some(now);
        }
        for (check_state, check) in self.health.check_states().iter().zip(&self.config.checks) {
            metrics
                .check_up
                .with_label_values(&[name, &check.name])
                .set(i64::from(check_state.up));
        }
    }

    /// The `load` part of the report from the load task's latest view and health's absorption.
    fn update_load_report(&mut self, view: &LoadView) {
        let Some(config) = &self.config.load else {
            self.report.load = None;
            return;
        };
        let (policy, absorb_for) = match config.overload {
            crate::config::OverloadPolicy::Absorb { absorb_for } => {
                ("absorb", Some(absorb_for.as_secs_f64()))
            }
            crate::config::OverloadPolicy::Withdraw => ("withdraw", None),
        };
        let a = &view.assessment;
        self.report.load = Some(LoadReport {
            source: config.source.as_str().to_owned(),
            qps: a.qps,
            baseline_qps: a.baseline_qps,
            queries_total: view.queries_total,
            udp_errors_per_second: a.udp_errors_per_second,
            udp_in_errors_total: view.udp_in_errors_total,
            udp_rcvbuf_errors_total: view.udp_rcvbuf_errors_total,
            overloaded: a.overloaded,
            detail: if view.readings == 0 {
                "no reading yet".to_owned()
            } else {
                a.detail.clone()
            },
            error: view.error.clone(),
            policy: policy.to_owned(),
            absorb_for_secs: absorb_for,
            absorbing: self.health.absorbing(),
            absorbing_since_unix: self.health.absorbing_since().map(|since| {
                unix_now()
                    - Instant::now()
                        .saturating_duration_since(since)
                        .as_secs_f64()
            }),
            readings: view.readings,
        });
    }

    /// Brings the service's `/status` report up to date with its health and `steps`.
    fn update_report(&mut self, steps: &[(RouteTarget, RouteState)]) {
        for (check_state, report) in self
            .health
            .check_states()
            .iter()
            .zip(self.report.checks.iter_mut())
        {
            if check_state.decided {
                report.up = Some(check_state.up);
            }
        }
        let state = self.health.state();
        self.report.state = state;
        self.report.reason = self.health.reason().to_owned();
        self.report.drained = state == ServiceState::Drained;
        self.report.damping_penalty = self.health.penalty();
        self.report.suppressed = self.health.suppressed();
        self.report.transitions = self.health.transitions();
        if self.config.load.is_none() {
            self.report.load = None;
        } else if self.report.load.is_none() {
            self.update_load_report(&LoadView::default());
        }
        let absorbing = self.health.absorbing();
        let since = self.health.absorbing_since().map(|since| {
            unix_now()
                - Instant::now()
                    .saturating_duration_since(since)
                    .as_secs_f64()
        });
        if let Some(load) = &mut self.report.load {
            load.absorbing = absorbing;
            load.absorbing_since_unix = since;
        }
        self.report.targets = steps
            .iter()
            .map(|(target, desired)| ServiceTarget {
                id: TargetId::of(target),
                role: if self.config.announce.contains(target) {
                    TargetRole::Announce
                } else {
                    TargetRole::Degrade
                },
                desired: *desired,
            })
            .collect();
    }
}
