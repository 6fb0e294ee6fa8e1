//! The reconciler: the only code that calls the routing backend.
//!
//! Service tasks publish what they want (per service, an ordered list of target states, make-before-break)
//! into a [`tokio::sync::watch`] channel; the reconciler makes the BGP daemon match it:
//!
//! - on every change of the desired table it applies the steps in order, skipping targets already known to
//!   be in the desired state, and reads each changed target back;
//! - every reconcile interval it reads back every target and re-asserts any drift (BIRD restarted and
//!   re-enabled a protocol from its config, someone ran `birdc disable` by hand, FRR lost its running config);
//! - when the backend fails it retries with exponential backoff, logs once per episode (and once when it
//!   recovers) and exports `nsbeacon_backend_up`; probing is never blocked, because it runs in other tasks
//!   and only ever writes into the watch channel;
//! - targets that disappear from the table (a service removed on reload) are withdrawn once, then forgotten;
//! - at shutdown it withdraws every target it knows (or leaves them, per `on_shutdown`).
//!
//! Start-up safety comes for free: services start in `starting`, which desires every target withdrawn, so
//! the first pass withdraws a target left announced by a crashed previous run.
//!
//! When two services list the same target, withdrawn wins: a shared route is announced only while every
//! service behind it wants it announced.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nsbeacon_routing::{
    BackendHealth, Backoff, RouteState, RouteTarget, RoutingBackend, RoutingError,
};
use tokio::sync::{Notify, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::metrics::Metrics;
use crate::routes::{DesiredTable, MergedTarget, TargetId, merge};
use crate::status::{BackendReport, RoutingReport, TargetReport};

/// Retry delays while the backend does not answer: 100 ms after the first failed pass, doubling, at most
/// 5 s. A nudge (the BGP daemon is back, or changed) starts the sequence again, so the retry after a
/// nudged pass that still fails comes 100 ms later, not at the 5 s the outage had reached.
const RETRY: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
/// First re-check of a target the daemon accepted but does not report yet; it doubles up to the reconcile
/// interval. bgpd validates a new `network` after its 50 ms work-queue hold, so a read-back right after
/// the command (about a millisecond over the vty socket) usually finds it pending, and the next one 100 ms
/// later confirmed: status, metrics and make-before-break follow within a tenth of a second instead of
/// one reconcile interval.
const PENDING_RECHECK_INITIAL: Duration = Duration::from_millis(100);

/// How the reconciler behaves; built from the config.
#[derive(Debug, Clone)]
pub struct ReconcilerSettings {
    /// Backend name for logs and metric labels (`bird`, `frr`).
    pub backend_kind: &'static str,
    /// How often every target is read back and drift re-asserted.
    pub interval: Duration,
    /// Whether to withdraw every known target when shutting down; shared so a reload can change it.
    pub withdraw_on_shutdown: Arc<AtomicBool>,
    /// Notified when the BGP daemon may have changed targets behind nsbeacon's back (BIRD logged a
    /// reconfiguration, or came back after a restart): every target is read back at once instead of at
    /// the next interval, and a backoff wait ends early.
    pub nudge: Arc<Notify>,
    /// The targets the BGP daemon says do not exist; the services listing them go down with that reason.
    pub missing: Arc<watch::Sender<HashSet<RouteTarget>>>,
}

/// A label pair for a target: (`kind`, `name`), e.g. (`bird_protocol`, `anycast_dns`).
fn target_labels(target: &RouteTarget) -> (&'static str, String) {
    let id = TargetId::of(target);
    (id.kind.as_str(), id.target)
}

#[derive(Debug)]
struct TargetRecord {
    desired: RouteState,
    actual: Option<RouteState>,
    detail: String,
    last_error: Option<String>,
    services: Vec<String>,
    /// True once a read-back confirmed actual == desired; drift is only reported after that.
    confirmed: bool,
    /// Failed withdrawals of this target as an orphan while the daemon answered.
    orphan_failures: u32,
    /// Consecutive passes that found this target pending (accepted, not yet reported).
    pending_passes: u32,
    /// The BGP daemon answered that the target does not exist (a misspelled protocol or neighbor).
    missing: bool,
}

/// An orphaned target (no service lists it any more) that the answering daemon keeps rejecting is
/// forgotten after this many attempts: it no longer exists there (e.g. removed from bird.conf together
/// with the service), so there is nothing left to withdraw.
const ORPHAN_ATTEMPTS: u32 = 5;

/// Why a pass stopped short.
#[derive(Debug)]
struct PassFailed {
    errors: Vec<String>,
}

/// Why one target did not converge.
#[derive(Debug)]
enum ConvergeError {
    /// A backend operation failed: counts towards an outage episode and backoff.
    Failed(String),
    /// The daemon accepted the change but does not report it yet (e.g. a BGP protocol still connecting,
    /// an FRR network not yet validated by bgpd). Not a failure; re-checked soon (from
    /// [`PENDING_RECHECK_INITIAL`], doubling up to the reconcile interval).
    Pending,
}

impl From<String> for ConvergeError {
    fn from(message: String) -> Self {
        ConvergeError::Failed(message)
    }
}

/// Some targets could not be withdrawn at shutdown: the BGP daemon may still announce them, so the
/// process exits non-zero and says which.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "could not withdraw {} of {total} route target(s) at shutdown: {}; check the BGP daemon and withdraw them by hand",
    failed.len(),
    failed.join("; ")
)]
pub struct ShutdownWithdrawalFailed {
    /// Targets the reconciler knew.
    pub total: usize,
    /// `target: error` for each one that failed.
    pub failed: Vec<String>,
}

/// Makes the BGP daemon match the desired table. Generic over the backend so it is unit-tested with an
/// in-memory fake.
pub struct Reconciler<B> {
    backend: Arc<B>,
    settings: ReconcilerSettings,
    desired_rx: watch::Receiver<DesiredTable>,
    report_tx: watch::Sender<RoutingReport>,
    metrics: Metrics,
    targets: HashMap<RouteTarget, TargetRecord>,
    health: BackendHealth,
    consecutive_failures: u32,
    outage_started: Option<std::time::Instant>,
    first_pass_done: Option<oneshot::Sender<()>>,
}

impl<B> std::fmt::Debug for Reconciler<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reconciler")
            .field("settings", &self.settings)
            .field("targets", &self.targets)
            .finish_non_exhaustive()
    }
}

/// The receiving ends a caller keeps: the status report and the first-pass signal.
#[derive(Debug)]
pub struct ReconcilerHandles {
    /// Latest routing report, for `/status`.
    pub report: watch::Receiver<RoutingReport>,
    /// Fires once when the first pass has finished (successfully or not).
    pub first_pass: oneshot::Receiver<()>,
}

impl<B: RoutingBackend + 'static> Reconciler<B> {
    /// Builds a reconciler that reads desired states from `desired_rx`.
    pub fn new(
        backend: Arc<B>,
        settings: ReconcilerSettings,
        desired_rx: watch::Receiver<DesiredTable>,
        metrics: Metrics,
    ) -> (Self, ReconcilerHandles) {
        let (report_tx, report_rx) = watch::channel(RoutingReport {
            backend: BackendReport {
                kind: settings.backend_kind.to_owned(),
                ..BackendReport::default()
            },
            ..RoutingReport::default()
        });
        let (first_tx, first_rx) = oneshot::channel();
        (
            Reconciler {
                backend,
                settings,
                desired_rx,
                report_tx,
                metrics,
                targets: HashMap::new(),
                health: BackendHealth::default(),
                consecutive_failures: 0,
                outage_started: None,
                first_pass_done: Some(first_tx),
            },
            ReconcilerHandles {
                report: report_rx,
                first_pass: first_rx,
            },
        )
    }

    /// Runs until `shutdown` is cancelled, then withdraws every known target if configured to; says
    /// which withdrawals failed.
    pub async fn run(
        mut self,
        shutdown: CancellationToken,
    ) -> Result<(), ShutdownWithdrawalFailed> {
        let span = info_span!("reconciler", backend = self.settings.backend_kind);
        async move {
            let mut tick = tokio::time::interval(self.settings.interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            let mut failed_passes: u32 = 0;
            let mut read_all = true;
            loop {
                let table = self.desired_rx.borrow_and_update().clone();
                let outcome = self.pass(&table, read_all).await;
                if read_all || outcome.is_err() {
                    self.refresh_health().await;
                }
                let failed = outcome.is_err();
                self.note_outcome(outcome);
                self.publish();
                if let Some(tx) = self.first_pass_done.take() {
                    let _ = tx.send(());
                }
                read_all = false;
                // Backoff is for a daemon that does not answer. When it answers but some target fails
                // (say, a protocol missing from bird.conf), retry at the normal reconcile interval so
                // drift on every other target is still caught on time.
                if failed && !self.health.reachable {
                    // A new desired state is tried at once, backoff or not.
                    failed_passes = failed_passes.saturating_add(1);
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(RETRY.after_failures(failed_passes)) => {}
                        _ = self.settings.nudge.notified() => failed_passes = 0,
                        changed = self.desired_rx.changed() => {
                            if changed.is_err() {
                                shutdown.cancelled().await;
                                break;
                            }
                        }
                    }
                    // After a failure nothing we believe about the daemon is trustworthy: read everything.
                    read_all = true;
                    continue;
                }
                failed_passes = 0;
                let recheck = self.pending_recheck();
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(recheck.unwrap_or_default()), if recheck.is_some() => {}
                    changed = self.desired_rx.changed() => {
                        if changed.is_err() {
                            // Every sender is gone: the daemon is shutting down; keep re-asserting
                            // until told to stop.
                            shutdown.cancelled().await;
                            break;
                        }
                    }
                    _ = tick.tick() => read_all = true,
                    _ = self.settings.nudge.notified() => read_all = true,
                }
            }
            self.shutdown().await
        }
        .instrument(span)
        .await
    }

    /// When to look again at targets the daemon accepted but does not report yet: 100 ms after the first
    /// pending pass, doubling per pass, never later than the reconcile interval. `None` when nothing is
    /// pending.
    fn pending_recheck(&self) -> Option<Duration> {
        let passes = self.targets.values().map(|r| r.pending_passes).max()?;
        (passes > 0).then(|| {
            Backoff::new(PENDING_RECHECK_INITIAL, self.settings.interval).after_failures(passes)
        })
    }

    /// One pass over the table: apply each service's steps in order; withdraw orphaned targets.
    async fn pass(&mut self, table: &DesiredTable, read_all: bool) -> Result<(), PassFailed> {
        let merged = merge(table);
        for (target, MergedTarget { state, services }) in &merged {
            let record = self
                .targets
                .entry(target.clone())
                .or_insert_with(|| TargetRecord {
                    desired: *state,
                    actual: None,
                    detail: String::new(),
                    last_error: None,
                    services: Vec::new(),
                    confirmed: false,
                    orphan_failures: 0,
                    pending_passes: 0,
                    missing: false,
                });
            if record.desired != *state {
                record.confirmed = false;
            }
            record.desired = *state;
            record.services.clone_from(services);
            let (kind, name) = target_labels(target);
            self.metrics
                .route_desired_announced
                .with_label_values(&[kind, &name])
                .set(i64::from(*state == RouteState::Announced));
        }
        let mut errors = Vec::new();
        let mut done: HashSet<RouteTarget> = HashSet::new();
        for (service, steps) in table {
            for (target, _) in steps {
                if !done.insert(target.clone()) {
                    continue;
                }
                match self.converge(target, read_all).await {
                    Ok(()) => {}
                    // Make-before-break: never run this service's later steps (the withdrawals of the
                    // old targets) while an earlier one (the announcement of the new ones) has not
                    // taken effect.
                    Err(ConvergeError::Pending) => break,
                    Err(ConvergeError::Failed(e)) => {
                        errors.push(format!("service {service}: {e}"));
                        break;
                    }
                }
            }
        }
        let orphans: Vec<RouteTarget> = self
            .targets
            .keys()
            .filter(|t| !merged.contains_key(*t))
            .cloned()
            .collect();
        for target in orphans {
            if let Some(record) = self.targets.get_mut(&target) {
                record.desired = RouteState::Withdrawn;
                record.services.clear();
            }
            match self.converge(&target, true).await {
                Ok(()) => {
                    info!(target = %target, "withdrew a target no service lists any more");
                    self.targets.remove(&target);
                    let (kind, name) = target_labels(&target);
                    let _ = self
                        .metrics
                        .route_desired_announced
                        .remove_label_values(&[kind, &name]);
                    let _ = self
                        .metrics
                        .route_actual_announced
                        .remove_label_values(&[kind, &name]);
                    let _ = self
                        .metrics
                        .route_target_missing
                        .remove_label_values(&[kind, &name]);
                }
                Err(ConvergeError::Pending) => {}
                Err(ConvergeError::Failed(e)) => {
                    let reachable = self.backend.health().await.reachable;
                    let give_up = self.targets.get_mut(&target).is_some_and(|r| {
                        if reachable {
                            r.orphan_failures += 1;
                        }
                        r.orphan_failures >= ORPHAN_ATTEMPTS
                    });
                    if give_up {
                        warn!(target = %target, error = %e, attempts = ORPHAN_ATTEMPTS, "forgetting a target no service lists any more: the BGP daemon answers but keeps rejecting it (removed from its config?)");
                        self.targets.remove(&target);
                        let (kind, name) = target_labels(&target);
                        let _ = self
                            .metrics
                            .route_desired_announced
                            .remove_label_values(&[kind, &name]);
                        let _ = self
                            .metrics
                            .route_target_missing
                            .remove_label_values(&[kind, &name]);
                    } else {
                        errors.push(format!("orphaned {target}: {e}"));
                    }
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(PassFailed { errors })
        }
    }

    /// Makes one target match its desired state: read if needed, set if different, read back.
    async fn converge(
        &mut self,
        target: &RouteTarget,
        read_first: bool,
    ) -> Result<(), ConvergeError> {
        let span = info_span!("target", target = %target);
        async {
            let Some(desired) = self.targets.get(target).map(|r| r.desired) else {
                return Ok(());
            };
            let needs_read = read_first
                || self
                    .targets
                    .get(target)
                    .is_none_or(|r| r.actual.is_none());
            if needs_read {
                self.read(target).await?;
                if let Some(record) = self.targets.get_mut(target)
                    && record.actual != Some(desired)
                    && record.confirmed
                {
                    warn!(
                        desired = desired.as_str(),
                        actual = record.actual.map(RouteState::as_str),
                        detail = %record.detail,
                        "drift: the BGP daemon changed this target behind nsbeacon's back; re-asserting"
                    );
                    let (kind, name) = target_labels(target);
                    self.metrics
                        .route_drift_total
                        .with_label_values(&[kind, &name])
                        .inc();
                    record.confirmed = false;
                }
            }
            if self.targets.get(target).and_then(|r| r.actual) != Some(desired) {
                self.set(target, desired).await?;
                self.read(target).await?;
                let actual = self.targets.get(target).and_then(|r| r.actual);
                if actual != Some(desired) {
                    let message = format!(
                        "the daemon accepted `{}` but reports the target {} so far",
                        desired.as_str(),
                        actual.map(RouteState::as_str).unwrap_or("unknown")
                    );
                    if let Some(record) = self.targets.get_mut(target) {
                        record.pending_passes = record.pending_passes.saturating_add(1);
                        // The first pending read-back is normal (bgpd's hold); say so only when it lasts.
                        if record.pending_passes == 3 {
                            info!(detail = %record.detail, "{message}; re-checking until it does");
                        } else {
                            debug!(detail = %record.detail, "{message}; re-checking soon");
                        }
                        record.last_error = Some(message);
                    }
                    return Err(ConvergeError::Pending);
                }
                info!(state = desired.as_str(), "route target changed");
            }
            if let Some(record) = self.targets.get_mut(target) {
                record.confirmed = true;
                record.last_error = None;
                record.pending_passes = 0;
            }
            Ok(())
        }
        .instrument(span)
        .await
    }

    async fn set(&mut self, target: &RouteTarget, state: RouteState) -> Result<(), String> {
        let kind = self.settings.backend_kind;
        let started = std::time::Instant::now();
        let result = self.backend.set(target, state).await;
        let elapsed = match &result {
            Ok(timed) => timed.elapsed,
            Err(_) => started.elapsed(),
        };
        self.metrics
            .backend_operation_duration_seconds
            .with_label_values(&[kind, "set"])
            .observe(elapsed.as_secs_f64());
        match result {
            Ok(_) => {
                debug!(state = state.as_str(), ?elapsed, "set");
                Ok(())
            }
            Err(e) => Err(self.record_error(target, "set", &e)),
        }
    }

    async fn read(&mut self, target: &RouteTarget) -> Result<(), String> {
        let kind = self.settings.backend_kind;
        let started = std::time::Instant::now();
        let result = self.backend.read(target).await;
        let elapsed = match &result {
            Ok(timed) => timed.elapsed,
            Err(_) => started.elapsed(),
        };
        self.metrics
            .backend_operation_duration_seconds
            .with_label_values(&[kind, "read"])
            .observe(elapsed.as_secs_f64());
        let (label_kind, name) = target_labels(target);
        match result {
            Ok(timed) => {
                if let Some(record) = self.targets.get_mut(target) {
                    record.actual = Some(timed.value.state);
                    record.detail = timed.value.detail;
                    record.missing = false;
                }
                self.metrics
                    .route_actual_announced
                    .with_label_values(&[label_kind, &name])
                    .set(i64::from(timed.value.state == RouteState::Announced));
                Ok(())
            }
            Err(e) => {
                if let Some(record) = self.targets.get_mut(target) {
                    record.actual = None;
                }
                let _ = self
                    .metrics
                    .route_actual_announced
                    .remove_label_values(&[label_kind, &name]);
                Err(self.record_error(target, "read", &e))
            }
        }
    }

    fn record_error(&mut self, target: &RouteTarget, operation: &str, e: &RoutingError) -> String {
        self.metrics
            .backend_errors_total
            .with_label_values(&[self.settings.backend_kind, operation])
            .inc();
        let message = format!("{operation} {target}: {e}");
        if let Some(record) = self.targets.get_mut(target) {
            record.last_error = Some(message.clone());
            record.actual = None;
            if e.is_missing_target() && !record.missing {
                error!(target = %target, error = %e, "the BGP daemon has no such target: check the name in the config and in the BGP daemon's config; services listing it are down until it exists");
            }
            record.missing = e.is_missing_target();
        }
        message
    }

    async fn refresh_health(&mut self) {
        let started = std::time::Instant::now();
        self.health = self.backend.health().await;
        self.metrics
            .backend_operation_duration_seconds
            .with_label_values(&[self.settings.backend_kind, "health"])
            .observe(started.elapsed().as_secs_f64());
        if !self.health.reachable {
            self.metrics
                .backend_errors_total
                .with_label_values(&[self.settings.backend_kind, "health"])
                .inc();
        }
    }

    /// Logs the start and end of an outage episode once each, and exports backend_up.
    fn note_outcome(&mut self, outcome: Result<(), PassFailed>) {
        let up = self.health.reachable;
        match outcome {
            Ok(()) => {
                if let Some(started) = self.outage_started.take() {
                    info!(
                        failed_passes = self.consecutive_failures,
                        outage = ?started.elapsed(),
                        "routing backend works again; desired state re-asserted"
                    );
                }
                self.consecutive_failures = 0;
            }
            Err(failed) => {
                self.consecutive_failures += 1;
                if self.outage_started.is_none() {
                    self.outage_started = Some(std::time::Instant::now());
                    if self.health.reachable {
                        warn!(
                            errors = %failed.errors.join("; "),
                            "route targets could not be applied although the routing backend answers; \
                             retrying with backoff (logged once per episode)"
                        );
                    } else {
                        warn!(
                            errors = %failed.errors.join("; "),
                            backend_error = self.health.error.as_deref().unwrap_or(""),
                            "routing backend failed; retrying with backoff (logged once per episode; probing continues)"
                        );
                    }
                } else {
                    debug!(errors = %failed.errors.join("; "), "routing backend still failing");
                }
            }
        }
        self.metrics
            .backend_up
            .with_label_values(&[self.settings.backend_kind])
            .set(i64::from(up));
    }

    fn publish(&self) {
        let mut targets: Vec<TargetReport> = self
            .targets
            .iter()
            .map(|(target, r)| TargetReport {
                id: TargetId::of(target),
                services: r.services.clone(),
                desired: r.desired,
                actual: r.actual,
                detail: r.detail.clone(),
                last_error: r.last_error.clone(),
                in_sync: r.actual == Some(r.desired),
                missing: r.missing,
            })
            .collect();
        targets.sort_by(|a, b| a.id.cmp(&b.id));
        let missing: HashSet<RouteTarget> = self
            .targets
            .iter()
            .filter(|(_, r)| r.missing)
            .map(|(t, _)| t.clone())
            .collect();
        for (target, record) in &self.targets {
            self.metrics
                .route_target_missing
                .with_label_values(&TargetId::of(target).labels())
                .set(i64::from(record.missing));
        }
        self.settings.missing.send_if_modified(|known| {
            let changed = *known != missing;
            if changed {
                *known = missing;
            }
            changed
        });
        let report = RoutingReport {
            backend: BackendReport {
                kind: self.settings.backend_kind.to_owned(),
                reachable: self.health.reachable,
                daemon_version: self.health.daemon_version.clone(),
                sessions_up: self.health.sessions_up,
                sessions_total: self.health.sessions_total,
                error: self.health.error.clone(),
                consecutive_failures: self.consecutive_failures,
            },
            targets,
            last_reconcile_unix: Some(crate::clock::unix_now()),
            first_pass_done: true,
        };
        self.report_tx.send_replace(report);
    }

    async fn shutdown(&mut self) -> Result<(), ShutdownWithdrawalFailed> {
        if !self.settings.withdraw_on_shutdown.load(Ordering::SeqCst) {
            info!("shutting down; leaving routes as they are (on_shutdown = \"keep\")");
            return Ok(());
        }
        let mut targets: Vec<RouteTarget> = self.targets.keys().cloned().collect();
        targets.sort_by_key(TargetId::of);
        let mut failed = Vec::new();
        for target in &targets {
            match self.backend.set(target, RouteState::Withdrawn).await {
                Ok(_) => info!(target = %target, "withdrawn at shutdown"),
                Err(e) => {
                    error!(target = %target, error = %e, "could not withdraw at shutdown");
                    failed.push(format!("{target}: {e}"));
                }
            }
        }
        if failed.is_empty() {
            info!(
                targets = targets.len(),
                "shutdown: withdrew this node's route targets"
            );
            Ok(())
        } else {
            error!(
                targets = targets.len(),
                failures = failed.len(),
                "shutdown: could not withdraw every route target; the BGP daemon may still announce them"
            );
            Err(ShutdownWithdrawalFailed {
                total: targets.len(),
                failed,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nsbeacon_routing::{TargetStatus, Timed};
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    /// An in-memory BGP daemon: records every call, can be made unreachable.
    #[derive(Default)]
    struct FakeBackend {
        state: Mutex<HashMap<RouteTarget, RouteState>>,
        calls: Mutex<Vec<String>>,
        down: AtomicBool,
        fail_sets: AtomicBool,
        /// Targets that accept `set` but keep reading back as withdrawn (a BGP session still connecting).
        slow_to_come_up: Mutex<HashSet<RouteTarget>>,
        /// Targets the (answering) daemon rejects, like a protocol missing from bird.conf.
        rejected: Mutex<HashSet<RouteTarget>>,
    }

    impl FakeBackend {
        fn calls(&self) -> Vec<String> {
            self.calls.lock().expect("lock").clone()
        }
        fn sets(&self) -> Vec<String> {
            self.calls()
                .into_iter()
                .filter(|c| c.starts_with("set"))
                .collect()
        }
        fn actual(&self, t: &RouteTarget) -> Option<RouteState> {
            self.state.lock().expect("lock").get(t).copied()
        }
        fn force(&self, t: &RouteTarget, s: RouteState) {
            self.state.lock().expect("lock").insert(t.clone(), s);
        }
        fn fail(&self, target: &RouteTarget) -> RoutingError {
            RoutingError::UnsupportedTarget {
                target: target.to_string(),
                backend: "fake (down)",
            }
        }
    }

    impl RoutingBackend for FakeBackend {
        async fn set(
            &self,
            target: &RouteTarget,
            state: RouteState,
        ) -> Result<Timed<()>, RoutingError> {
            self.calls.lock().expect("lock").push(format!(
                "set {} {}",
                target_labels(target).1,
                state.as_str()
            ));
            if self.down.load(Ordering::SeqCst)
                || self.fail_sets.load(Ordering::SeqCst)
                || self.rejected.lock().expect("lock").contains(target)
            {
                return Err(self.fail(target));
            }
            self.force(target, state);
            Ok(Timed {
                value: (),
                elapsed: Duration::from_micros(100),
            })
        }

        async fn read(&self, target: &RouteTarget) -> Result<Timed<TargetStatus>, RoutingError> {
            self.calls
                .lock()
                .expect("lock")
                .push(format!("read {}", target_labels(target).1));
            if self.down.load(Ordering::SeqCst)
                || self.rejected.lock().expect("lock").contains(target)
            {
                return Err(self.fail(target));
            }
            // A protocol the fake never heard of starts announced, like a BIRD static protocol
            // enabled in bird.conf.
            let mut state = *self
                .state
                .lock()
                .expect("lock")
                .entry(target.clone())
                .or_insert(RouteState::Announced);
            if self.slow_to_come_up.lock().expect("lock").contains(target) {
                state = RouteState::Withdrawn;
            }
            Ok(Timed {
                value: TargetStatus {
                    state,
                    detail: state.as_str().to_owned(),
                },
                elapsed: Duration::from_micros(100),
            })
        }

        async fn health(&self) -> BackendHealth {
            BackendHealth {
                reachable: !self.down.load(Ordering::SeqCst),
                daemon_version: Some("fake 1".into()),
                ..BackendHealth::default()
            }
        }
    }

    fn proto(name: &str) -> RouteTarget {
        RouteTarget::BirdProtocol(
            nsbeacon_routing::BirdProtocolName::new(name).expect("valid protocol name"),
        )
    }

    struct Harness {
        backend: Arc<FakeBackend>,
        nudge: Arc<Notify>,
        desired: watch::Sender<DesiredTable>,
        report: watch::Receiver<RoutingReport>,
        shutdown: CancellationToken,
        task: tokio::task::JoinHandle<Result<(), ShutdownWithdrawalFailed>>,
    }

    fn start(table: DesiredTable, interval: Duration, backend: Arc<FakeBackend>) -> Harness {
        let (desired, rx) = watch::channel(table);
        let nudge = Arc::new(Notify::new());
        let settings = ReconcilerSettings {
            backend_kind: "fake",
            interval,
            withdraw_on_shutdown: Arc::new(AtomicBool::new(true)),
            nudge: nudge.clone(),
            missing: Arc::new(watch::channel(HashSet::new()).0),
        };
        let (reconciler, handles) = Reconciler::new(
            backend.clone(),
            settings,
            rx,
            Metrics::new().expect("metrics"),
        );
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(reconciler.run(shutdown.clone()));
        Harness {
            backend,
            nudge,
            desired,
            report: handles.report,
            shutdown,
            task,
        }
    }

    async fn eventually(mut cond: impl FnMut() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !cond() {
            assert!(
                std::time::Instant::now() < deadline,
                "condition not met within 5 s"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn table(steps: &[(&str, RouteState)]) -> DesiredTable {
        BTreeMap::from([(
            "dns".to_owned(),
            steps.iter().map(|(n, s)| (proto(n), *s)).collect(),
        )])
    }

    use RouteState::{Announced, Withdrawn};

    #[tokio::test]
    async fn startup_withdraws_targets_left_announced_and_signals_first_pass() {
        let backend = Arc::new(FakeBackend::default());
        backend.force(&proto("main"), Announced);
        let (desired, rx) = watch::channel(table(&[("main", Withdrawn)]));
        let settings = ReconcilerSettings {
            backend_kind: "fake",
            interval: Duration::from_secs(60),
            withdraw_on_shutdown: Arc::new(AtomicBool::new(true)),
            nudge: Arc::new(Notify::new()),
            missing: Arc::new(watch::channel(HashSet::new()).0),
        };
        let (reconciler, handles) = Reconciler::new(
            backend.clone(),
            settings,
            rx,
            Metrics::new().expect("metrics"),
        );
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(reconciler.run(shutdown.clone()));
        handles.first_pass.await.expect("first pass signalled");
        assert_eq!(backend.actual(&proto("main")), Some(Withdrawn));
        shutdown.cancel();
        task.await
            .expect("reconciler ends")
            .expect("every target withdrawn at shutdown");
        drop(desired);
    }

    #[tokio::test]
    async fn applies_steps_in_order_make_before_break() {
        let backend = Arc::new(FakeBackend::default());
        let h = start(
            table(&[("main", Announced), ("degrade", Withdrawn)]),
            Duration::from_secs(60),
            backend,
        );
        eventually(|| h.backend.actual(&proto("degrade")) == Some(Withdrawn)).await;
        h.backend.calls.lock().expect("lock").clear();
        // Degrade: announce the degrade target first, then withdraw the main one.
        h.desired
            .send(table(&[("degrade", Announced), ("main", Withdrawn)]))
            .expect("send");
        eventually(|| h.backend.actual(&proto("main")) == Some(Withdrawn)).await;
        assert_eq!(
            h.backend.sets(),
            vec![
                "set degrade announced".to_owned(),
                "set main withdrawn".to_owned()
            ]
        );
        h.shutdown.cancel();
        h.task
            .await
            .expect("ends")
            .expect("every target withdrawn at shutdown");
    }

    /// A reconciler with `main` announced that is told to switch to `degrade`, which the daemon accepts but
    /// does not report up (a BGP session still connecting, a network bgpd has not validated yet). Returns
    /// once `degrade` has been set.
    async fn switch_to_a_slow_target(interval: Duration) -> Harness {
        let backend = Arc::new(FakeBackend::default());
        let h = start(
            table(&[("main", Announced), ("degrade", Withdrawn)]),
            interval,
            backend,
        );
        eventually(|| h.report.borrow().first_pass_done).await;
        h.backend
            .slow_to_come_up
            .lock()
            .expect("lock")
            .insert(proto("degrade"));
        h.desired
            .send(table(&[("degrade", Announced), ("main", Withdrawn)]))
            .expect("send");
        eventually(|| {
            h.backend
                .sets()
                .contains(&"set degrade announced".to_owned())
        })
        .await;
        h
    }

    #[tokio::test]
    async fn pending_announcement_holds_the_withdrawal_without_an_outage() {
        let h = switch_to_a_slow_target(Duration::from_millis(30)).await;
        // Several reconcile intervals later: still pending, main still announced, no outage episode.
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(h.backend.actual(&proto("main")), Some(Announced));
        let report = h.report.borrow().clone();
        assert_eq!(report.backend.consecutive_failures, 0);
        assert!(report.backend.reachable);
        let degrade = report
            .targets
            .iter()
            .find(|t| t.id.target == "degrade")
            .expect("degrade target");
        assert!(
            degrade
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains("so far")),
            "{degrade:?}"
        );
        // The session comes up: the make-before-break sequence completes.
        h.backend.slow_to_come_up.lock().expect("lock").clear();
        eventually(|| h.backend.actual(&proto("main")) == Some(Withdrawn)).await;
        h.shutdown.cancel();
        h.task
            .await
            .expect("ends")
            .expect("every target withdrawn at shutdown");
    }

    #[tokio::test]
    async fn a_pending_target_is_rechecked_soon_not_at_the_interval() {
        let h = switch_to_a_slow_target(Duration::from_secs(3600)).await;
        assert_eq!(h.backend.actual(&proto("main")), Some(Announced));
        // bgpd validated the network: the next re-check (100 ms, not the hour-long interval) confirms it
        // and the make-before-break sequence completes.
        h.backend.slow_to_come_up.lock().expect("lock").clear();
        eventually(|| h.backend.actual(&proto("main")) == Some(Withdrawn)).await;
        h.shutdown.cancel();
        h.task
            .await
            .expect("ends")
            .expect("every target withdrawn at shutdown");
    }

    #[tokio::test]
    async fn failed_announce_never_withdraws_the_old_target() {
        let backend = Arc::new(FakeBackend::default());
        let h = start(
            table(&[("main", Announced), ("degrade", Withdrawn)]),
            Duration::from_secs(60),
            backend,
        );
        eventually(|| h.report.borrow().first_pass_done).await;
        h.backend.fail_sets.store(true, Ordering::SeqCst);
        h.backend.calls.lock().expect("lock").clear();
        h.desired
            .send(table(&[("degrade", Announced), ("main", Withdrawn)]))
            .expect("send");
        eventually(|| !h.backend.sets().is_empty()).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            h.backend
                .sets()
                .iter()
                .all(|c| c == "set degrade announced"),
            "withdrawal attempted before the announcement succeeded: {:?}",
            h.backend.sets()
        );
        h.shutdown.cancel();
        // Sets still fail: the shutdown withdrawal reports every target it could not withdraw.
        let failed = h
            .task
            .await
            .expect("ends")
            .expect_err("sets fail, so the withdrawal fails");
        assert_eq!(failed.total, 2, "{failed}");
        assert_eq!(failed.failed.len(), 2, "{failed}");
    }

    #[tokio::test]
    async fn backend_down_backs_off_then_converges_when_back() {
        let backend = Arc::new(FakeBackend::default());
        backend.down.store(true, Ordering::SeqCst);
        let h = start(
            table(&[("main", Announced)]),
            Duration::from_secs(60),
            backend,
        );
        tokio::time::sleep(Duration::from_millis(700)).await;
        // 100 + 200 + 400 ms of backoff: a handful of attempts, not a busy loop.
        let attempts = h
            .backend
            .calls()
            .iter()
            .filter(|c| c.starts_with("read"))
            .count();
        assert!(
            (2..=6).contains(&attempts),
            "expected backoff, saw {attempts} attempts"
        );
        assert!(!h.report.borrow().backend.reachable);
        assert!(h.report.borrow().backend.consecutive_failures >= 2);
        h.backend.down.store(false, Ordering::SeqCst);
        h.backend.force(&proto("main"), Withdrawn);
        eventually(|| h.backend.actual(&proto("main")) == Some(Announced)).await;
        eventually(|| h.report.borrow().backend.reachable).await;
        h.shutdown.cancel();
        h.task
            .await
            .expect("ends")
            .expect("every target withdrawn at shutdown");
    }

    #[tokio::test]
    async fn drift_is_detected_and_reasserted_every_interval() {
        let backend = Arc::new(FakeBackend::default());
        let h = start(
            table(&[("main", Withdrawn)]),
            Duration::from_millis(50),
            backend,
        );
        eventually(|| h.backend.actual(&proto("main")) == Some(Withdrawn)).await;
        // Someone runs `birdc enable` by hand (or BIRD restarts and enables it from its config).
        h.backend.force(&proto("main"), Announced);
        eventually(|| {
            h.backend.actual(&proto("main")) == Some(Withdrawn)
                && h.backend
                    .sets()
                    .iter()
                    .filter(|c| *c == "set main withdrawn")
                    .count()
                    == 2
        })
        .await;
        h.shutdown.cancel();
        h.task
            .await
            .expect("ends")
            .expect("every target withdrawn at shutdown");
    }

    #[tokio::test]
    async fn a_nudge_reads_back_at_once_instead_of_at_the_interval() {
        let backend = Arc::new(FakeBackend::default());
        let h = start(
            table(&[("main", Announced)]),
            Duration::from_secs(3600),
            backend,
        );
        eventually(|| h.backend.actual(&proto("main")) == Some(Announced)).await;
        // `birdc configure` disabled it; the hour-long interval would leave it withdrawn.
        h.backend.force(&proto("main"), Withdrawn);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(h.backend.actual(&proto("main")), Some(Withdrawn));
        h.nudge.notify_one();
        eventually(|| h.backend.actual(&proto("main")) == Some(Announced)).await;
        h.shutdown.cancel();
        h.task
            .await
            .expect("ends")
            .expect("every target withdrawn at shutdown");
    }

    #[tokio::test]
    async fn shutdown_withdraws_and_orphans_are_withdrawn() {
        let backend = Arc::new(FakeBackend::default());
        let mut two = table(&[("main", Announced)]);
        two.insert("other".into(), vec![(proto("other"), Announced)]);
        let h = start(two, Duration::from_secs(60), backend);
        eventually(|| h.backend.actual(&proto("other")) == Some(Announced)).await;
        // A reload removed service "other": its target is withdrawn once and forgotten.
        h.desired.send(table(&[("main", Announced)])).expect("send");
        eventually(|| h.backend.actual(&proto("other")) == Some(Withdrawn)).await;
        eventually(|| h.report.borrow().targets.len() == 1).await;
        h.shutdown.cancel();
        h.task
            .await
            .expect("ends")
            .expect("every target withdrawn at shutdown");
        assert_eq!(h.backend.actual(&proto("main")), Some(Withdrawn));
    }

    #[tokio::test]
    async fn a_rejected_target_retries_at_the_interval_and_a_rejected_orphan_is_forgotten() {
        let backend = Arc::new(FakeBackend::default());
        backend
            .rejected
            .lock()
            .expect("lock")
            .insert(proto("other"));
        let mut two = table(&[("main", Withdrawn)]);
        two.insert("other".into(), vec![(proto("other"), Announced)]);
        let h = start(two, Duration::from_millis(20), backend);
        eventually(|| h.report.borrow().first_pass_done).await;
        // The daemon answers: no backoff, drift on the healthy target is still caught every interval.
        h.backend.force(&proto("main"), Announced);
        eventually(|| h.backend.actual(&proto("main")) == Some(Withdrawn)).await;
        assert!(h.report.borrow().backend.reachable);
        // The service goes away with its target: forgotten after a bounded number of attempts.
        h.desired.send(table(&[("main", Withdrawn)])).expect("send");
        eventually(|| h.report.borrow().targets.len() == 1).await;
        h.shutdown.cancel();
        h.task
            .await
            .expect("ends")
            .expect("every target withdrawn at shutdown");
    }

    #[tokio::test]
    async fn shared_target_is_withdrawn_when_any_service_wants_it_withdrawn() {
        let backend = Arc::new(FakeBackend::default());
        let mut t = table(&[("main", Announced)]);
        t.insert("b".into(), vec![(proto("main"), Withdrawn)]);
        let h = start(t, Duration::from_secs(60), backend);
        eventually(|| h.report.borrow().first_pass_done).await;
        assert_eq!(h.backend.actual(&proto("main")), Some(Withdrawn));
        let report = h.report.borrow().clone();
        assert_eq!(
            report.targets[0].services,
            vec!["b".to_owned(), "dns".to_owned()]
        );
        h.shutdown.cancel();
        h.task
            .await
            .expect("ends")
            .expect("every target withdrawn at shutdown");
    }
}
