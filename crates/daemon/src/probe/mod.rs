//! The probe stage: runs each check on its timer and turns every run into a [`CheckSignal`].
//!
//! This is the first stage of the data path (probe -> health -> routes -> reconciler -> backend). Each
//! check runs in its own task ([`probe_loop`]), bounded ([`run_check`]), and sends a [`CheckResult`] to its
//! service's task, which feeds the signal to health and records the run ([`record`]) into the check's
//! `/status` report and the probe metrics. Nothing here decides routes or touches the routing backend,
//! so a slow DNS server only ever delays its own check. `nsbeacon probe` runs the same functions once.

pub mod record;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use nsbeacon_prober::{
    DnssecReport, DnssecSweep, ProbeOutcome, ProbeStatus, SerialSweep, SpecError, SweepReport,
};
use rand::Rng;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info_span};

use crate::config::{CONFIRM_TIMEOUT_HISTORY, CheckConfig, CheckKind};
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
    /// A DNSSEC expiry sweep finished.
    Dnssec(Result<DnssecReport, SpecError>),
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
    /// The run was asked for because the DNS server's process exited: a failure here is confirmed
    /// already (health takes it as `fall` failures).
    pub decisive: bool,
}

/// When a service's probes run, besides each check's interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeRhythm {
    /// Probe times are spread by up to +/- this (at most half a check's interval).
    pub jitter: Duration,
    /// After a hard failure, probe again this soon until `fall` is reached or a probe passes; `None`
    /// keeps the interval.
    pub confirm_interval: Option<Duration>,
    /// The service's `fall`: how many consecutive hard failures the fast path confirms.
    pub fall: u32,
}

/// Why a service's checks should run now instead of at their next time. Sent through a
/// [`watch`] channel whose sequence number changes with every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProbeNow {
    /// Changes with every request; the checks run once per change.
    pub seq: u64,
    /// The DNS server's process exited: a failure of the next run is decisive.
    pub decisive: bool,
}

impl ProbeNow {
    /// The request after this one.
    pub fn next(self, decisive: bool) -> ProbeNow {
        ProbeNow {
            seq: self.seq.wrapping_add(1),
            decisive,
        }
    }
}

/// The bound on a whole zone sweep (serial or DNSSEC): two timeouts per round of `concurrency` zones (an
/// exchange and its resend or TCP retry, or a zone's follow-up DNSKEY query), plus the grace of every check.
fn sweep_bound(zones: usize, concurrency: usize, timeout: Duration) -> Duration {
    let rounds = zones.div_ceil(concurrency.max(1)).max(1);
    timeout * 2 * u32::try_from(rounds).unwrap_or(u32::MAX / 4) + CHECK_GRACE
}

/// Runs one check once, bounded: the prober bounds every exchange, and this bound (the exchanges'
/// timeouts plus [`CHECK_GRACE`]) makes sure a bug there cannot stall the check for good.
pub async fn run_check(check: &CheckConfig) -> CheckRun {
    run_check_within(check, None).await
}

/// [`run_check`], with each exchange of a query check bounded by `query_timeout` instead of the
/// check's timeout when that is given and shorter (a confirmation probe, see
/// [`ConfirmTimeout`](crate::config::ConfirmTimeout)). Zone sweeps always use their own timeout.
pub async fn run_check_within(check: &CheckConfig, query_timeout: Option<Duration>) -> CheckRun {
    match &check.kind {
        CheckKind::Query(configured) => {
            let shortened;
            let spec = match query_timeout {
                Some(timeout) if timeout < configured.timeout => {
                    let mut spec = configured.clone();
                    spec.timeout = timeout;
                    shortened = spec;
                    &shortened
                }
                _ => configured,
            };
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
            let bound = sweep_bound(serial.zones.len(), serial.concurrency, serial.timeout);
            // The sweep spreads its zones over worker tasks of this runtime (one per core); dropping it
            // at the bound aborts them.
            match tokio::time::timeout(bound, sweep.run(&serial.zones)).await {
                Ok(result) => CheckRun::Serial(result),
                Err(_) => CheckRun::Hung(bound),
            }
        }
        CheckKind::Dnssec(dnssec) => {
            let sweep = DnssecSweep {
                local: dnssec.local,
                transport: dnssec.transport,
                timeout: dnssec.timeout,
                types: dnssec.types.clone(),
                warn_before: dnssec.warn_before,
                fail_before: dnssec.fail_before,
                clock_skew: dnssec.clock_skew,
                concurrency: dnssec.concurrency,
            };
            // Each zone asks its types concurrently, plus at most one DNSKEY query after them; a TCP
            // retry after TC=1 shares its exchange's timeout.
            let bound = sweep_bound(dnssec.zones.len(), dnssec.concurrency, dnssec.timeout);
            match tokio::time::timeout(bound, sweep.run(&dnssec.zones)).await {
                Ok(result) => CheckRun::Dnssec(result),
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
                CheckKind::Query(_) | CheckKind::Dnssec(_) => 0,
            };
            health::classify_sweep(report, max_behind_zones)
        }
        CheckRun::Dnssec(Ok(report)) => health::classify_dnssec(report),
        CheckRun::Query(Err(e)) | CheckRun::Serial(Err(e)) | CheckRun::Dnssec(Err(e)) => {
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
        CheckKind::Dnssec(d) => format!(
            "{} zone(s) at {}, RRSIGs of {} over {}",
            d.zones.len(),
            d.local,
            d.types
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("/"),
            d.transport.as_str()
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
        rhythm: ProbeRhythm,
        now: &watch::Receiver<ProbeNow>,
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
                        ProbeLoop {
                            generation,
                            index,
                            check: check.clone(),
                            rhythm,
                        },
                        now.clone(),
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

/// One check's probe task: what it runs and when.
#[derive(Debug, Clone)]
pub struct ProbeLoop {
    /// The generation of the service's probe tasks (see [`CheckResult::generation`]).
    pub generation: u64,
    /// The check's index in its service.
    pub index: usize,
    /// The check.
    pub check: CheckConfig,
    /// Jitter and fast confirmation.
    pub rhythm: ProbeRhythm,
}

impl ProbeLoop {
    /// Whether the run after `consecutive_hard` hard failures in a row is a confirmation: fast
    /// confirmation is on, the last run failed hard and `fall` is not reached yet.
    pub fn confirming(&self, consecutive_hard: u32) -> bool {
        consecutive_hard > 0
            && consecutive_hard < self.rhythm.fall
            && self.rhythm.confirm_interval.is_some()
    }

    /// The timeout of the next run's exchanges when it is shorter than the check's own: `Some` only for
    /// a confirmation run of a query check (see [`ConfirmTimeout`](crate::config::ConfirmTimeout));
    /// zone sweeps and normal runs keep the check's timeout.
    pub fn run_timeout(&self, consecutive_hard: u32, recent: &RecentAnswers) -> Option<Duration> {
        if !self.confirming(consecutive_hard) || !matches!(self.check.kind, CheckKind::Query(_)) {
            return None;
        }
        let timeout = self
            .check
            .confirm_timeout
            .resolve(self.check.timeout, recent.slowest());
        (timeout < self.check.timeout).then_some(timeout)
    }

    /// How long to wait before the next run, given how the last one went: the confirm interval after a
    /// hard failure that has not reached `fall` yet (measured from the end of that run, so a hung server
    /// is never probed by two runs at once), else the interval +/- jitter measured from the run's start.
    pub fn next_delay(
        &self,
        consecutive_hard: u32,
        run_took: Duration,
        jitter_draw: Duration,
    ) -> Duration {
        let jitter = self.rhythm.jitter.min(self.check.interval / 2);
        if self.confirming(consecutive_hard)
            && let Some(confirm) = self.rhythm.confirm_interval
        {
            return confirm.min(self.check.interval);
        }
        let base = self.check.interval.saturating_sub(jitter) + jitter_draw.min(jitter * 2);
        base.saturating_sub(run_took)
    }
}

/// The answer times of a query check's most recent passing probes (at most
/// [`CONFIRM_TIMEOUT_HISTORY`]), from which the "auto" [`ConfirmTimeout`](crate::config::ConfirmTimeout)
/// is derived. A probe counts when it got its answer and did not fail hard: a merely slow answer (a soft
/// signal) counts too, so that a server that has become slow keeps a confirmation timeout that fits
/// its answers.
#[derive(Debug, Clone, Default)]
pub struct RecentAnswers {
    times: VecDeque<Duration>,
}

impl RecentAnswers {
    /// Takes note of one run: a passing (or slow) query probe's answer time, that of its slowest
    /// transport. Failed runs and zone sweeps are ignored.
    pub fn record(&mut self, run: &CheckRun) {
        let CheckRun::Query(Ok(outcome)) = run else {
            return;
        };
        if outcome.status == ProbeStatus::Fail {
            return;
        }
        let Some(answer) = outcome.transports.iter().map(|t| t.latency).max() else {
            return;
        };
        if self.times.len() == CONFIRM_TIMEOUT_HISTORY {
            self.times.pop_front();
        }
        self.times.push_back(answer);
    }

    /// The slowest of the recorded answer times; `None` before any probe has passed.
    pub fn slowest(&self) -> Option<Duration> {
        self.times.iter().max().copied()
    }
}

/// Runs one check until `cancel`: a random start offset within the jitter, then every interval +/-
/// jitter, so that the checks of many services (and of many nodes) do not hit the server in step. After
/// a hard failure the check is confirmed fast (see [`ProbeLoop::next_delay`]), by query probes with a
/// shorter timeout ([`ProbeLoop::run_timeout`]); a [`ProbeNow`] request runs it at once.
pub async fn probe_loop(
    probe: ProbeLoop,
    mut now: watch::Receiver<ProbeNow>,
    tx: mpsc::Sender<CheckResult>,
    cancel: CancellationToken,
) {
    let jitter = probe.rhythm.jitter.min(probe.check.interval / 2);
    let mut delay = random_up_to(jitter);
    let mut consecutive_hard: u32 = 0;
    let mut recent = RecentAnswers::default();
    let mut now_open = true;
    // Requests made before this task started are not for it.
    now.borrow_and_update();
    loop {
        let mut decisive = false;
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
            changed = now.changed(), if now_open => match changed {
                Ok(()) => decisive = now.borrow_and_update().decisive,
                Err(_) => now_open = false,
            },
        }
        let started = Instant::now();
        let confirm_timeout = probe.run_timeout(consecutive_hard, &recent);
        let run = tokio::select! {
            _ = cancel.cancelled() => return,
            run = run_check_within(&probe.check, confirm_timeout) => run,
        };
        recent.record(&run);
        let signal = classify(&probe.check, &run);
        debug!(signal = signal.as_str(), detail = signal.detail(), elapsed = ?started.elapsed(), decisive, confirm_timeout = ?confirm_timeout, "probe");
        if signal.is_hard() {
            consecutive_hard = if decisive {
                probe.rhythm.fall
            } else {
                consecutive_hard.saturating_add(1)
            };
        } else {
            consecutive_hard = 0;
        }
        let result = CheckResult {
            generation: probe.generation,
            index: probe.index,
            run,
            signal,
            decisive,
        };
        if tx.send(result).await.is_err() {
            return;
        }
        delay = probe.next_delay(
            consecutive_hard,
            started.elapsed(),
            random_up_to(jitter * 2),
        );
    }
}

/// A uniformly random duration from zero to `max`.
fn random_up_to(max: Duration) -> Duration {
    if max.is_zero() {
        return Duration::ZERO;
    }
    let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rand::rng().random_range(0..=nanos))
}
