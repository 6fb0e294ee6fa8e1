//! The probe stage: runs each check on its timer and turns every run into a [`CheckSignal`].
//!
//! This is the first stage of the data path (probe -> health -> routes -> reconciler -> backend). Each
//! check runs in its own task ([`probe_loop`]), bounded ([`run_check`]), and sends a [`CheckResult`] to its
//! service's task, which feeds the signal to health and records the run ([`record`]) into the check's
//! `/status` report and the probe metrics. Nothing here decides routes or touches the routing backend,
//! so a slow DNS server only ever delays its own check. `nsbeacon probe` runs the same functions once.

pub mod record;

use std::time::{Duration, Instant};

use nsbeacon_prober::{ProbeOutcome, SerialSweep, SpecError, SweepReport};
use rand::Rng;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info_span};

use crate::config::{CheckConfig, CheckKind};
use crate::health::{self, CheckSignal};

/// Extra time granted to a whole check beyond its per-exchange timeout before it counts as hung.
const CHECK_GRACE: Duration = Duration::from_secs(1);

/// What one run of a check produced, before classification. Kept whole (not just the signal) so that
/// the report, the metrics and `nsbeacon probe` can show everything the run saw.
#[derive(Debug, Clone)]
pub enum CheckRun {
    /// A query probe finished.
    Query(Result<ProbeOutcome, SpecError>),
    /// A serial sweep finished.
    Serial(Result<SweepReport, SpecError>),
    /// The check did not finish within its bound (should not happen: the prober bounds every exchange).
    Hung(Duration),
}

/// A check's result on its way to the service task.
#[derive(Debug)]
pub struct CheckResult {
    /// Which set of probe tasks sent it: results of checks replaced by a reload are dropped.
    pub generation: u64,
    /// The check's position in its service's config (the index health counts it under).
    pub index: usize,
    /// What the run saw.
    pub run: CheckRun,
    /// What it means for health.
    pub signal: CheckSignal,
}

/// Runs one check once, bounded: the prober bounds every exchange, and this bound (the exchanges'
/// timeouts plus [`CHECK_GRACE`]) makes sure a bug there cannot stall the check for good.
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

/// The health signal of one run of `check`. An invalid or hung check is hard: a check that cannot run
/// says nothing good about the server.
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

/// What a check talks to, for humans (`/status` and `nsbeacon probe`).
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

/// One generation of a service's probe tasks, one per check. A reload replaces the whole generation
/// rather than patching tasks, and the `generation` stamped on every [`CheckResult`] lets the service
/// task drop a result that was already on its way from the old one.
#[derive(Debug)]
pub struct ProbeTasks {
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl ProbeTasks {
    /// Starts one [`probe_loop`] per check, sending to `results`, each in a `check` span under
    /// `parent` (the service's span). They run until [`ProbeTasks::stop`] or until `cancel` (a child of
    /// the service's token, so stopping the service stops them too).
    pub fn spawn(
        generation: u64,
        checks: &[CheckConfig],
        jitter: Duration,
        results: &mpsc::Sender<CheckResult>,
        cancel: CancellationToken,
        parent: &tracing::Span,
    ) -> ProbeTasks {
        let tasks = checks
            .iter()
            .enumerate()
            .map(|(index, check)| {
                let span = info_span!(parent: parent, "check", check = %check.name);
                tokio::spawn(
                    probe_loop(
                        generation,
                        index,
                        check.clone(),
                        jitter,
                        results.clone(),
                        cancel.clone(),
                    )
                    .instrument(span),
                )
            })
            .collect();
        ProbeTasks { cancel, tasks }
    }

    /// Cancels the tasks and waits until they are gone, so no run of this generation is still going
    /// when the caller starts the next one (two generations would probe the server twice as often).
    pub async fn stop(&mut self) {
        self.cancel.cancel();
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }
}

/// Runs one check until `cancel`: a random start offset within the jitter, then every interval +/-
/// jitter, so that the checks of many services (and of many nodes) do not hit the server in step.
pub async fn probe_loop(
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
        debug!(signal = signal.as_str(), detail = signal.detail(), elapsed = ?started.elapsed(), "probe");
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
