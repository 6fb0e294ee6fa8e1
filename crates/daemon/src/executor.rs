//! The executor: the only code that calls the routing backend, and the thin shell around the
//! [`RouteBook`].
//!
//! The book decides; the executor performs. It feeds the book an [`Event`] with the time it happened
//! (the desired table changed, a nudge from the BIRD log watch, the wait ran out, a backend operation
//! finished, shutdown), performs the one [`Io`] the book asks for next through [`RoutingBackend`] (every
//! operation is bounded by the backend's own timeout), and turns the book's [`Notice`]s into logs and
//! metrics. After every pass it publishes the [`RoutingReport`] for `/status`, the set of targets the BGP
//! daemon says do not exist (back to the services), and, once, the first-pass signal (READY=1,
//! `/healthz` 200).
//!
//! Beside its loop the executor runs the exports watch ([`exports`]): a read-only task that asks the
//! backend which BGP peers receive each announced target's route, for `/status` and the
//! `nsbeacon_route_export*` metrics, without ever holding up the loop.
//!
//! Probing is never blocked by the BGP daemon: probes and services run in other tasks and only ever write
//! into the desired-table watch channel.
//!
//! With `NSBEACON_ROUTE_EVENT_LOG=/path/to/file.jsonl` in its environment the executor appends every event
//! and the book's answer to that file, one [`LogLine`] of JSON per line. Such a log, recorded from a real
//! BGP daemon, replays to the same decisions in a unit test (see `routes/book/replay/`); it is a tool for
//! developers and bug reports, not for production (it grows without bound).

use std::collections::HashSet;
use std::io::{LineWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nsbeacon_routing::{BackendHealth, RouteState, RouteTarget, RoutingBackend, TargetStatus};
use tokio::sync::{Notify, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, error, info, info_span, warn};

use self::exports::{ExportsWatch, LatestExports, merge_exports};
use crate::metrics::Metrics;
use crate::routes::book::{
    Event, Io, LogHeader, LogLine, Next, Notice, OpError, PENDING_PASSES_WORTH_SAYING, RouteBook,
    Step,
};
use crate::routes::{DesiredTable, TargetId};
use crate::status::{BackendReport, RoutingReport};

pub use crate::routes::book::ShutdownWithdrawalFailed;

/// The environment variable naming the file the executor records its event log to.
pub const EVENT_LOG_ENV: &str = "NSBEACON_ROUTE_EVENT_LOG";

/// How the executor behaves; built from the config.
#[derive(Debug, Clone)]
pub struct ExecutorSettings {
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
    /// Where to record the event log, if anywhere (see the module documentation).
    pub event_log: Option<PathBuf>,
}

impl ExecutorSettings {
    /// The event log path from [`EVENT_LOG_ENV`], if set and not empty.
    pub fn event_log_from_env() -> Option<PathBuf> {
        std::env::var_os(EVENT_LOG_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    }
}

/// The receiving ends a caller keeps: the status report and the first-pass signal.
#[derive(Debug)]
pub struct ExecutorHandles {
    /// Latest routing report, for `/status`.
    pub report: watch::Receiver<RoutingReport>,
    /// Fires once when the first pass has finished (successfully or not).
    pub first_pass: oneshot::Receiver<()>,
}

/// Makes the BGP daemon match the desired table by running a [`RouteBook`]. Generic over the backend so
/// it is tested with an in-memory fake as well as with the real daemons.
pub struct RouteExecutor<B> {
    backend: Arc<B>,
    settings: ExecutorSettings,
    desired_rx: watch::Receiver<DesiredTable>,
    report_tx: Arc<watch::Sender<RoutingReport>>,
    metrics: Metrics,
    /// The targets announced at the last pass, for the exports watch.
    announced_tx: watch::Sender<Vec<RouteTarget>>,
    /// The watch's end, until `run` hands it over.
    announced_rx: Option<watch::Receiver<Vec<RouteTarget>>>,
    /// What the exports watch read last, merged into every report published.
    latest_exports: LatestExports,
    first_pass_done: Option<oneshot::Sender<()>>,
    /// The targets the last published report listed, so their metric labels go when they do.
    published: HashSet<TargetId>,
}

impl<B> std::fmt::Debug for RouteExecutor<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteExecutor")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// The executor's clock: tokio's, so that tests on a paused clock see time pass as the timers do.
fn clock_now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Appends [`LogLine`]s to the event log; a write failure is logged once and ends the recording.
struct EventLog {
    writer: Option<LineWriter<std::fs::File>>,
    started: Instant,
}

impl EventLog {
    fn open(path: Option<&PathBuf>, header: &LogHeader, started: Instant) -> EventLog {
        let writer = path.and_then(|path| {
            match std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                Ok(file) => {
                    info!(path = %path.display(), "recording the route event log ({EVENT_LOG_ENV})");
                    let mut writer = LineWriter::new(file);
                    let written = serde_json::to_string(header)
                        .map_err(std::io::Error::other)
                        .and_then(|json| writeln!(writer, "{json}"));
                    match written {
                        Ok(()) => Some(writer),
                        Err(e) => {
                            warn!(path = %path.display(), error = %e, "cannot write the route event log; not recording");
                            None
                        }
                    }
                }
                Err(e) => {
                    warn!(path = %path.display(), error = %e, "cannot open the route event log ({EVENT_LOG_ENV}); not recording");
                    None
                }
            }
        });
        EventLog { writer, started }
    }

    fn record(&mut self, now: Instant, event: &Event, step: &Step) {
        let Some(writer) = &mut self.writer else {
            return;
        };
        let line = LogLine {
            at_ns: u64::try_from(now.saturating_duration_since(self.started).as_nanos())
                .unwrap_or(u64::MAX),
            event: event.clone(),
            step: step.clone(),
        };
        let written = serde_json::to_string(&line)
            .map_err(std::io::Error::other)
            .and_then(|json| writeln!(writer, "{json}"));
        if let Err(e) = written {
            warn!(error = %e, "cannot write the route event log; recording stops");
            self.writer = None;
        }
    }
}

impl<B: RoutingBackend + 'static> RouteExecutor<B> {
    /// Builds an executor that reads desired states from `desired_rx`.
    pub fn new(
        backend: Arc<B>,
        settings: ExecutorSettings,
        desired_rx: watch::Receiver<DesiredTable>,
        metrics: Metrics,
    ) -> (Self, ExecutorHandles) {
        let (report_tx, report_rx) = watch::channel(RoutingReport {
            backend: BackendReport {
                kind: settings.backend_kind.to_owned(),
                ..BackendReport::default()
            },
            ..RoutingReport::default()
        });
        let (first_tx, first_rx) = oneshot::channel();
        let (announced_tx, announced_rx) = watch::channel(Vec::new());
        (
            RouteExecutor {
                backend,
                settings,
                desired_rx,
                report_tx: Arc::new(report_tx),
                metrics,
                announced_tx,
                announced_rx: Some(announced_rx),
                latest_exports: LatestExports::default(),
                first_pass_done: Some(first_tx),
                published: HashSet::new(),
            },
            ExecutorHandles {
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
        let exports_task = self.announced_rx.take().map(|targets| {
            let watch = ExportsWatch {
                backend: self.backend.clone(),
                targets,
                report_tx: self.report_tx.clone(),
                latest: self.latest_exports.clone(),
                metrics: self.metrics.clone(),
                interval: self.settings.interval,
                backend_kind: self.settings.backend_kind,
            };
            tokio::spawn(watch.run(shutdown.child_token()).instrument(span.clone()))
        });
        let result = async move {
            let started = clock_now();
            let mut book =
                RouteBook::new(self.settings.backend_kind, self.settings.interval, started);
            let header = LogHeader {
                backend: self.settings.backend_kind.to_owned(),
                interval: self.settings.interval,
            };
            let mut log = EventLog::open(self.settings.event_log.as_ref(), &header, started);
            let mut desired_open = true;
            let mut event = Event::Started {
                table: self.desired_rx.borrow_and_update().clone(),
            };
            loop {
                let now = clock_now();
                let step = book.handle(event.clone(), now);
                log.record(now, &event, &step);
                for notice in &step.notices {
                    self.speak(notice, &book);
                }
                event = match step.next {
                    Next::Io(io) => self.perform(io).await,
                    Next::Stopped(result) => {
                        self.say_stopped(&book, &result);
                        return result;
                    }
                    Next::Wait { at_most } => {
                        let sleep = at_most.unwrap_or(Duration::MAX);
                        // Biased: a shutdown wins over everything, a new table over a nudge.
                        tokio::select! {
                            biased;
                            _ = shutdown.cancelled() => Event::Shutdown {
                                withdraw: self.settings.withdraw_on_shutdown.load(Ordering::SeqCst),
                            },
                            changed = self.desired_rx.changed(), if desired_open => match changed {
                                Ok(()) => Event::DesiredChanged {
                                    table: self.desired_rx.borrow_and_update().clone(),
                                },
                                // Every sender is gone: the daemon is shutting down; keep re-asserting
                                // until told to stop.
                                Err(_) => {
                                    desired_open = false;
                                    Event::Wake
                                }
                            },
                            _ = self.settings.nudge.notified() => Event::Nudge,
                            _ = tokio::time::sleep(sleep), if at_most.is_some() => Event::Wake,
                        }
                    }
                };
            }
        }
        .instrument(span)
        .await;
        if let Some(task) = exports_task {
            task.abort();
        }
        result
    }

    /// Performs one backend operation, timing it into the metrics; the result is the next event.
    async fn perform(&self, io: Io) -> Event {
        let started = clock_now();
        match io {
            Io::Read(target) => {
                let result = self.backend.read(&target).await;
                let (elapsed, result) = match result {
                    Ok(timed) => (timed.elapsed, Ok::<TargetStatus, OpError>(timed.value)),
                    Err(e) => (started.elapsed(), Err(OpError::from(&e))),
                };
                self.observe("read", elapsed, result.is_err());
                Event::ReadDone { target, result }
            }
            Io::Set(target, state) => {
                let result = self.backend.set(&target, state).await;
                let (elapsed, result) = match result {
                    Ok(timed) => (timed.elapsed, Ok(())),
                    Err(e) => (started.elapsed(), Err(OpError::from(&e))),
                };
                self.observe("set", elapsed, result.is_err());
                debug!(target = %target, state = state.as_str(), ?elapsed, ok = result.is_ok(), "set");
                Event::SetDone { target, result }
            }
            Io::Health => {
                let health: BackendHealth = self.backend.health().await;
                self.observe("health", started.elapsed(), !health.reachable);
                Event::HealthDone { health }
            }
        }
    }

    fn observe(&self, operation: &str, elapsed: Duration, failed: bool) {
        let kind = self.settings.backend_kind;
        self.metrics
            .backend_operation_duration_seconds
            .with_label_values(&[kind, operation])
            .observe(elapsed.as_secs_f64());
        if failed {
            self.metrics
                .backend_errors_total
                .with_label_values(&[kind, operation])
                .inc();
        }
    }

    /// Logs or counts what the book noticed, and publishes at the end of a pass.
    fn speak(&mut self, notice: &Notice, book: &RouteBook) {
        match notice {
            Notice::Drift {
                target,
                desired,
                actual,
                detail,
            } => {
                warn!(
                    target = %target,
                    desired = desired.as_str(),
                    actual = actual.as_str(),
                    detail = %detail,
                    "drift: the BGP daemon changed this target behind nsbeacon's back; re-asserting"
                );
                self.metrics
                    .route_drift_total
                    .with_label_values(&TargetId::of(target).labels())
                    .inc();
            }
            Notice::Changed { target, state } => {
                info!(target = %target, state = state.as_str(), "route target changed");
            }
            Notice::Pending {
                target,
                passes,
                message,
                detail,
            } => {
                // The first pending read-backs are normal (bgpd's hold); say so only when it lasts.
                if *passes == PENDING_PASSES_WORTH_SAYING {
                    info!(target = %target, detail = %detail, "{message}; re-checking until it does");
                } else {
                    debug!(target = %target, detail = %detail, "{message}; re-checking soon");
                }
            }
            Notice::Missing { target, error } => {
                error!(target = %target, error = %error, "the BGP daemon has no such target: check the name in the config and in the BGP daemon's config; services listing it are down until it exists");
            }
            Notice::OrphanWithdrawn { target } => {
                info!(target = %target, "withdrew a target no service lists any more");
            }
            Notice::OrphanForgotten { target, error } => {
                warn!(target = %target, error = %error, attempts = crate::routes::book::ORPHAN_ATTEMPTS, "forgetting a target no service lists any more: the BGP daemon answers but keeps rejecting it (removed from its config?)");
            }
            Notice::OutageStarted {
                errors,
                backend_answers,
                backend_error,
            } => {
                if *backend_answers {
                    warn!(
                        errors = %errors.join("; "),
                        "route targets could not be applied although the routing backend answers; \
                         retrying with backoff (logged once per episode)"
                    );
                } else {
                    warn!(
                        errors = %errors.join("; "),
                        backend_error = backend_error.as_deref().unwrap_or(""),
                        "routing backend failed; retrying with backoff (logged once per episode; probing continues)"
                    );
                }
            }
            Notice::StillFailing { errors } => {
                debug!(errors = %errors.join("; "), "routing backend still failing");
            }
            Notice::Recovered {
                failed_passes,
                outage,
            } => {
                info!(
                    failed_passes,
                    outage = ?outage,
                    "routing backend works again; desired state re-asserted"
                );
            }
            Notice::PassDone => self.publish(book),
            Notice::ShutdownKeeps => {
                info!("shutting down; leaving routes as they are (on_shutdown = \"keep\")");
            }
            Notice::WithdrawnAtShutdown { target } => {
                info!(target = %target, "withdrawn at shutdown");
            }
            Notice::ShutdownWithdrawalFailed { target, error } => {
                error!(target = %target, error = %error, "could not withdraw at shutdown");
            }
        }
    }

    fn say_stopped(&self, book: &RouteBook, result: &Result<(), ShutdownWithdrawalFailed>) {
        if !self.settings.withdraw_on_shutdown.load(Ordering::SeqCst) {
            return;
        }
        match result {
            Ok(()) => info!(
                targets = book.known_targets(),
                "shutdown: withdrew this node's route targets"
            ),
            Err(failed) => error!(
                targets = failed.total,
                failures = failed.failed.len(),
                "shutdown: could not withdraw every route target; the BGP daemon may still announce them"
            ),
        }
    }

    /// Publishes the report, the missing set and the route gauges; fires the first-pass signal once.
    fn publish(&mut self, book: &RouteBook) {
        let mut report = book.report(Some(crate::clock::unix_now()));
        merge_exports(
            &mut report,
            &self
                .latest_exports
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let announced = book.announced_targets();
        self.announced_tx.send_if_modified(|known| {
            let changed = *known != announced;
            if changed {
                *known = announced;
            }
            changed
        });
        let mut now_listed = HashSet::new();
        for target in &report.targets {
            let labels = target.id.labels();
            self.metrics
                .route_desired_announced
                .with_label_values(&labels)
                .set(i64::from(target.desired == RouteState::Announced));
            match target.actual {
                Some(actual) => self
                    .metrics
                    .route_actual_announced
                    .with_label_values(&labels)
                    .set(i64::from(actual == RouteState::Announced)),
                None => {
                    let _ = self
                        .metrics
                        .route_actual_announced
                        .remove_label_values(&labels);
                }
            }
            self.metrics
                .route_target_missing
                .with_label_values(&labels)
                .set(i64::from(target.missing));
            now_listed.insert(target.id.clone());
        }
        for gone in self.published.difference(&now_listed) {
            let labels = gone.labels();
            let _ = self
                .metrics
                .route_desired_announced
                .remove_label_values(&labels);
            let _ = self
                .metrics
                .route_actual_announced
                .remove_label_values(&labels);
            let _ = self
                .metrics
                .route_target_missing
                .remove_label_values(&labels);
        }
        self.published = now_listed;
        self.metrics
            .backend_up
            .with_label_values(&[self.settings.backend_kind])
            .set(i64::from(book.backend_reachable()));
        let missing = book.missing_targets();
        self.settings.missing.send_if_modified(|known| {
            let changed = *known != missing;
            if changed {
                *known = missing;
            }
            changed
        });
        self.report_tx.send_replace(report);
        if let Some(tx) = self.first_pass_done.take() {
            let _ = tx.send(());
        }
    }
}

mod exports;

#[cfg(test)]
mod tests;
