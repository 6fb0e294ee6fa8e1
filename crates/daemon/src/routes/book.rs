//! The route book: the reconciler's decisions as a pure state machine, the twin of [`crate::health`].
//!
//! The book knows, per target, what the services want, what the BGP daemon last reported, and whether
//! that was confirmed. It never calls the daemon and never reads a clock: the executor
//! ([`crate::executor`]) feeds it [`Event`]s with the time they happened and performs the one [`Io`] it
//! asks for next, feeding the result back as another event. Everything the executor must say or count
//! (drift, an outage episode, a route change) comes out as a [`Notice`].
//!
//! One pass applies each service's steps in order (make-before-break: a service's later steps wait while
//! an earlier one failed or is still pending), then withdraws orphans (targets no service lists any
//! more). Between passes the book waits for whichever comes first of: a new desired table, a nudge, the
//! pending re-check, the read-back interval, or (while the daemon does not answer) the backoff retry.
//!
//! Because events carry their time and the book holds no I/O, a recorded event log replays to exactly the
//! same decisions; see [`LogLine`] and the replay tests.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use nsbeacon_routing::{BackendHealth, Backoff, RouteState, RouteTarget, TargetStatus};
use serde::{Deserialize, Serialize};

use crate::routes::{DesiredTable, MergedTarget, TargetId, merge};
use crate::status::{BackendReport, RoutingReport, TargetReport};

/// Retry delays while the backend does not answer: 100 ms after the first failed pass, doubling, at most
/// 5 s. A nudge (the BGP daemon is back, or changed) starts the sequence again, so the retry after a
/// nudged pass that still fails comes 100 ms later, not at the 5 s the outage had reached.
pub const RETRY: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));

/// First re-check of a target the daemon accepted but does not report yet; it doubles up to the reconcile
/// interval. bgpd validates a new `network` after its 50 ms work-queue hold, so a read-back right after
/// the command (about a millisecond over the vty socket) usually finds it pending, and the next one 100 ms
/// later confirmed: status, metrics and make-before-break follow within a tenth of a second instead of
/// one reconcile interval.
pub const PENDING_RECHECK_INITIAL: Duration = Duration::from_millis(100);

/// An orphaned target (no service lists it any more) that the answering daemon keeps rejecting is
/// forgotten after this many attempts: it no longer exists there (e.g. removed from bird.conf together
/// with the service), so there is nothing left to withdraw.
pub const ORPHAN_ATTEMPTS: u32 = 5;

/// A pending target is mentioned at `info` once it has been pending for this many passes; the first
/// pending read-backs are normal (bgpd's hold).
pub const PENDING_PASSES_WORTH_SAYING: u32 = 3;

/// Something that happened, fed to [`RouteBook::handle`] with the time it happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// The executor started; the first pass reads every target.
    Started {
        /// The desired table at start.
        table: DesiredTable,
    },
    /// The services published a new desired table.
    DesiredChanged {
        /// The new table.
        table: DesiredTable,
    },
    /// The BGP daemon may have changed targets behind nsbeacon's back (BIRD logged a reconfiguration or
    /// came back after a restart): read everything now, and end a backoff wait.
    Nudge,
    /// The wait the book asked for ([`Next::Wait`]) ran out.
    Wake,
    /// A [`Io::Read`] finished.
    ReadDone {
        /// The target read.
        target: RouteTarget,
        /// What the daemon reported, or why it could not.
        result: Result<TargetStatus, OpError>,
    },
    /// A [`Io::Set`] finished.
    SetDone {
        /// The target set.
        target: RouteTarget,
        /// The daemon accepted the change, or why not.
        result: Result<(), OpError>,
    },
    /// A [`Io::Health`] finished.
    HealthDone {
        /// The daemon's health.
        health: BackendHealth,
    },
    /// Stop: withdraw every known target first when `withdraw` (`on_shutdown = "withdraw"`).
    Shutdown {
        /// Whether to withdraw before stopping.
        withdraw: bool,
    },
}

/// A backend operation's failure as the book needs it: the words, and whether it means "no such target".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpError {
    /// The backend's error message.
    pub message: String,
    /// The daemon answered that the target does not exist (a misspelled protocol or neighbor).
    pub missing: bool,
}

impl From<&nsbeacon_routing::RoutingError> for OpError {
    fn from(e: &nsbeacon_routing::RoutingError) -> OpError {
        OpError {
            message: e.to_string(),
            missing: e.is_missing_target(),
        }
    }
}

/// The one backend operation the book wants performed next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Io {
    /// Read what the daemon has for the target.
    Read(RouteTarget),
    /// Make the daemon announce or withdraw the target.
    Set(RouteTarget, RouteState),
    /// Ask the daemon how it is (reachable, version, sessions).
    Health,
}

/// What the executor does after handling an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Next {
    /// Perform this operation and feed its result back.
    Io(Io),
    /// Wait for the next event: a new table, a nudge, shutdown, or (if set) this long, then [`Event::Wake`].
    Wait {
        /// How long at most.
        at_most: Option<Duration>,
    },
    /// The book has stopped; the executor returns this.
    Stopped(Result<(), ShutdownWithdrawalFailed>),
}

/// What the executor should log or count; the book decides, the executor speaks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Notice {
    /// A confirmed target changed behind nsbeacon's back; it is being re-asserted.
    Drift {
        /// The target.
        target: RouteTarget,
        /// What nsbeacon wants.
        desired: RouteState,
        /// What the daemon now has.
        actual: RouteState,
        /// The daemon's words for it.
        detail: String,
    },
    /// A target reached its desired state after a set.
    Changed {
        /// The target.
        target: RouteTarget,
        /// Its new state.
        state: RouteState,
    },
    /// The daemon accepted a set but does not report the new state yet.
    Pending {
        /// The target.
        target: RouteTarget,
        /// Consecutive passes that found it pending.
        passes: u32,
        /// What was wanted and what the daemon reports.
        message: String,
        /// The daemon's words for the target.
        detail: String,
    },
    /// The daemon answered that a target does not exist (logged once per episode).
    Missing {
        /// The target.
        target: RouteTarget,
        /// The daemon's error.
        error: String,
    },
    /// A target no service lists any more was withdrawn and forgotten.
    OrphanWithdrawn {
        /// The target.
        target: RouteTarget,
    },
    /// A target no service lists any more kept being rejected by the answering daemon: forgotten.
    OrphanForgotten {
        /// The target.
        target: RouteTarget,
        /// The last error.
        error: String,
    },
    /// The first failed pass of an outage episode.
    OutageStarted {
        /// What failed.
        errors: Vec<String>,
        /// Whether the daemon still answers (so the targets, not the daemon, are the problem).
        backend_answers: bool,
        /// The daemon's health error, if it does not answer.
        backend_error: Option<String>,
    },
    /// Another failed pass of the same episode.
    StillFailing {
        /// What failed.
        errors: Vec<String>,
    },
    /// The first successful pass after an outage episode.
    Recovered {
        /// Failed passes in the episode.
        failed_passes: u32,
        /// How long the episode lasted.
        outage: Duration,
    },
    /// A pass ended: publish the report (and, the first time, signal that the first pass is done).
    PassDone,
    /// Shutdown leaves the routes as they are (`on_shutdown = "keep"`).
    ShutdownKeeps,
    /// A target was withdrawn at shutdown.
    WithdrawnAtShutdown {
        /// The target.
        target: RouteTarget,
    },
    /// A target could not be withdrawn at shutdown.
    ShutdownWithdrawalFailed {
        /// The target.
        target: RouteTarget,
        /// The daemon's error.
        error: String,
    },
}

/// The result of one [`RouteBook::handle`]: what to say, and what to do next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// Things to log or count, in order.
    pub notices: Vec<Notice>,
    /// The next thing to do.
    pub next: Next,
}

/// The first line of a recorded event log: what the book was built with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogHeader {
    /// The backend kind (`bird`, `frr`).
    pub backend: String,
    /// The reconcile interval.
    pub interval: Duration,
}

/// One line of a recorded event log after the [`LogHeader`]: an event, when it happened (nanoseconds
/// since the executor started), and what the book answered. Replaying the events at the same times gives
/// the same steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    /// Nanoseconds since the executor started.
    pub at_ns: u64,
    /// The event.
    pub event: Event,
    /// The book's answer.
    pub step: Step,
}

/// Some targets could not be withdrawn at shutdown: the BGP daemon may still announce them, so the
/// process exits non-zero and says which.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
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

/// Which backend operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    Read,
    Set,
}

/// One failed backend operation on a target.
#[derive(Debug, Clone, PartialEq, Eq)]
struct OpFailure {
    operation: Operation,
    target: RouteTarget,
    message: String,
}

impl fmt::Display for OpFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let operation = match self.operation {
            Operation::Read => "read",
            Operation::Set => "set",
        };
        write!(f, "{operation} {}: {}", self.target, self.message)
    }
}

/// Why a pass stopped short, per service or orphan.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PassError {
    Service { service: String, failure: OpFailure },
    Orphan { failure: OpFailure },
}

impl fmt::Display for PassError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PassError::Service { service, failure } => write!(f, "service {service}: {failure}"),
            PassError::Orphan { failure } => write!(f, "orphaned {}: {failure}", failure.target),
        }
    }
}

#[derive(Debug, Clone)]
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
    /// The BGP daemon answered that the target does not exist.
    missing: bool,
}

impl TargetRecord {
    fn new(desired: RouteState) -> TargetRecord {
        TargetRecord {
            desired,
            actual: None,
            detail: String::new(),
            last_error: None,
            services: Vec::new(),
            confirmed: false,
            orphan_failures: 0,
            pending_passes: 0,
            missing: false,
        }
    }
}

/// Where one target's convergence stands: read first (if needed), set (if different), read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    InitialRead,
    Set,
    ReadBack,
}

/// Who a target is converged for: a service (whose later steps wait on it) or as an orphan.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Scope {
    Service(String),
    Orphan,
}

/// How one target's convergence ended.
enum Converged {
    Done,
    Pending,
    Failed(OpFailure),
}

/// The target a pass is converging and the operation outstanding for it.
#[derive(Debug)]
struct Current {
    scope: Scope,
    target: RouteTarget,
    stage: Stage,
    desired: RouteState,
}

/// A pass in progress.
#[derive(Debug)]
struct Pass {
    read_all: bool,
    /// The targets the table lists (the rest are orphans).
    listed: HashSet<RouteTarget>,
    /// Service steps still to do, in order: (service, target).
    plan: VecDeque<(String, RouteTarget)>,
    /// Targets already converged in this pass (a target listed twice is converged once).
    done: HashSet<RouteTarget>,
    /// Orphans still to do; filled when the plan runs out.
    orphans: Option<VecDeque<RouteTarget>>,
    /// The target being converged and the operation outstanding for it.
    current: Option<Current>,
    /// An orphan whose withdrawal failed, waiting for the health check that says whether it counts.
    orphan_failed: Option<OpFailure>,
    /// The closing health check is outstanding.
    closing_health: bool,
    errors: Vec<PassError>,
}

/// Between passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Waiting {
    /// The daemon does not answer: retry at `retry_at`; any event starts a full pass.
    Backoff { retry_at: Instant },
    /// Normal: re-check pending targets at `recheck_at`, read everything at the interval.
    Normal { recheck_at: Option<Instant> },
}

#[derive(Debug)]
enum Phase {
    /// Created; waiting for [`Event::Started`].
    Idle,
    Pass(Box<Pass>),
    Waiting(Waiting),
    ShuttingDown {
        queue: VecDeque<RouteTarget>,
        total: usize,
        failed: Vec<String>,
    },
    Stopped(Result<(), ShutdownWithdrawalFailed>),
}

/// The reconciler's state: every known target, the backend's health, the outage episode, and where the
/// current pass or wait stands. See the module documentation.
#[derive(Debug)]
pub struct RouteBook {
    backend_kind: &'static str,
    interval: Duration,
    table: DesiredTable,
    targets: HashMap<RouteTarget, TargetRecord>,
    health: BackendHealth,
    consecutive_failures: u32,
    outage_started: Option<Instant>,
    /// Consecutive failed passes while the daemon did not answer (the backoff exponent).
    failed_passes: u32,
    /// When every target is next read back.
    next_full_read: Instant,
    /// A new table arrived during a pass: run another pass right after.
    rerun: bool,
    /// A nudge arrived during a pass: run a full pass right after.
    nudged: bool,
    /// Shutdown was asked for during a pass: begin it right after.
    shutdown_after_pass: Option<bool>,
    phase: Phase,
}

impl RouteBook {
    /// An empty book for backend `backend_kind` (`bird`, `frr`) reading every target back every
    /// `interval`; `now` is when the executor starts.
    pub fn new(backend_kind: &'static str, interval: Duration, now: Instant) -> RouteBook {
        RouteBook {
            backend_kind,
            interval,
            table: DesiredTable::new(),
            targets: HashMap::new(),
            health: BackendHealth::default(),
            consecutive_failures: 0,
            outage_started: None,
            failed_passes: 0,
            next_full_read: now + interval,
            rerun: false,
            nudged: false,
            shutdown_after_pass: None,
            phase: Phase::Idle,
        }
    }

    /// Handles one event that happened at `now`; says what to log and what to do next.
    pub fn handle(&mut self, event: Event, now: Instant) -> Step {
        let mut notices = Vec::new();
        let next = self.dispatch(event, now, &mut notices);
        Step { notices, next }
    }

    /// What the reconciler publishes about routing (`/status`, the missing targets, the warm record).
    pub fn report(&self, last_reconcile_unix: Option<f64>) -> RoutingReport {
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
                exports: None,
            })
            .collect();
        targets.sort_by(|a, b| a.id.cmp(&b.id));
        RoutingReport {
            backend: BackendReport {
                kind: self.backend_kind.to_owned(),
                reachable: self.health.reachable,
                daemon_version: self.health.daemon_version.clone(),
                sessions_up: self.health.sessions_up,
                sessions_total: self.health.sessions_total,
                error: self.health.error.clone(),
                consecutive_failures: self.consecutive_failures,
            },
            targets,
            last_reconcile_unix,
            first_pass_done: true,
        }
    }

    /// The targets the BGP daemon says do not exist.
    pub fn missing_targets(&self) -> HashSet<RouteTarget> {
        self.targets
            .iter()
            .filter(|(_, r)| r.missing)
            .map(|(t, _)| t.clone())
            .collect()
    }

    /// The targets both desired and read back announced, sorted: the ones whose exports to BGP peers the
    /// executor reads (a withdrawn target has nothing to export).
    pub fn announced_targets(&self) -> Vec<RouteTarget> {
        let mut targets: Vec<RouteTarget> = self
            .targets
            .iter()
            .filter(|(_, r)| {
                r.desired == RouteState::Announced && r.actual == Some(RouteState::Announced)
            })
            .map(|(t, _)| t.clone())
            .collect();
        targets.sort_by_key(TargetId::of);
        targets
    }

    /// How many targets the book knows (listed, or orphans not yet withdrawn).
    pub fn known_targets(&self) -> usize {
        self.targets.len()
    }

    /// Whether the daemon answered the last health check.
    pub fn backend_reachable(&self) -> bool {
        self.health.reachable
    }

    fn dispatch(&mut self, event: Event, now: Instant, notices: &mut Vec<Notice>) -> Next {
        match event {
            Event::Started { table } | Event::DesiredChanged { table }
                if matches!(self.phase, Phase::Idle) =>
            {
                self.table = table;
                self.start_pass(true, now, notices)
            }
            Event::DesiredChanged { table } => {
                self.table = table;
                match self.phase {
                    Phase::Pass(_) => {
                        self.rerun = true;
                        self.current_next()
                    }
                    Phase::Waiting(Waiting::Backoff { .. }) => self.start_pass(true, now, notices),
                    Phase::Waiting(Waiting::Normal { .. }) => self.start_pass(false, now, notices),
                    _ => self.current_next(),
                }
            }
            Event::Started { .. } => self.current_next(),
            Event::Nudge => match self.phase {
                Phase::Pass(_) => {
                    self.nudged = true;
                    self.current_next()
                }
                Phase::Waiting(waiting) => {
                    if matches!(waiting, Waiting::Backoff { .. }) {
                        self.failed_passes = 0;
                    }
                    self.start_pass(true, now, notices)
                }
                _ => self.current_next(),
            },
            Event::Wake => match self.phase {
                Phase::Waiting(Waiting::Backoff { retry_at }) if now >= retry_at => {
                    self.start_pass(true, now, notices)
                }
                Phase::Waiting(Waiting::Normal { recheck_at }) => {
                    if now >= self.next_full_read {
                        self.start_pass(true, now, notices)
                    } else if recheck_at.is_some_and(|at| now >= at) {
                        self.start_pass(false, now, notices)
                    } else {
                        self.current_next_at(now)
                    }
                }
                _ => self.current_next_at(now),
            },
            Event::Shutdown { withdraw } => match self.phase {
                Phase::Pass(_) => {
                    self.shutdown_after_pass = Some(withdraw);
                    self.current_next()
                }
                Phase::Stopped(_) | Phase::ShuttingDown { .. } => self.current_next(),
                _ => self.begin_shutdown(withdraw, notices),
            },
            Event::ReadDone { target, result } => self.on_read(target, result, now, notices),
            Event::SetDone { target, result } => self.on_set(target, result, now, notices),
            Event::HealthDone { health } => self.on_health(health, now, notices),
        }
    }

    /// What to do next when an event changed nothing: repeat the outstanding request.
    fn current_next(&self) -> Next {
        match &self.phase {
            Phase::Idle => Next::Wait { at_most: None },
            Phase::Pass(pass) => pass_io(pass),
            Phase::Waiting(_) => Next::Wait { at_most: None },
            Phase::ShuttingDown { queue, .. } => match queue.front() {
                Some(target) => Next::Io(Io::Set(target.clone(), RouteState::Withdrawn)),
                None => Next::Wait { at_most: None },
            },
            Phase::Stopped(result) => Next::Stopped(result.clone()),
        }
    }

    /// Like [`Self::current_next`], with the wait recomputed for `now`.
    fn current_next_at(&self, now: Instant) -> Next {
        match self.phase {
            Phase::Waiting(waiting) => self.wait_for(waiting, now),
            _ => self.current_next(),
        }
    }

    fn wait_for(&self, waiting: Waiting, now: Instant) -> Next {
        let deadline = match waiting {
            Waiting::Backoff { retry_at } => retry_at,
            Waiting::Normal { recheck_at } => {
                recheck_at.map_or(self.next_full_read, |at| at.min(self.next_full_read))
            }
        };
        Next::Wait {
            at_most: Some(deadline.saturating_duration_since(now)),
        }
    }

    fn start_pass(&mut self, read_all: bool, now: Instant, notices: &mut Vec<Notice>) -> Next {
        if read_all {
            self.next_full_read = now + self.interval;
        }
        let merged = merge(&self.table);
        for (target, MergedTarget { state, services }) in &merged {
            let record = self
                .targets
                .entry(target.clone())
                .or_insert_with(|| TargetRecord::new(*state));
            if record.desired != *state {
                record.confirmed = false;
            }
            record.desired = *state;
            record.services.clone_from(services);
        }
        let plan = self
            .table
            .iter()
            .flat_map(|(service, steps)| {
                steps
                    .iter()
                    .map(move |(target, _)| (service.clone(), target.clone()))
            })
            .collect();
        self.phase = Phase::Pass(Box::new(Pass {
            read_all,
            listed: merged.into_keys().collect(),
            plan,
            done: HashSet::new(),
            orphans: None,
            current: None,
            orphan_failed: None,
            closing_health: false,
            errors: Vec::new(),
        }));
        self.advance(now, notices)
    }

    /// Moves the pass on to its next operation: the next target's convergence, the orphans, the closing
    /// health check, or the end of the pass.
    fn advance(&mut self, now: Instant, notices: &mut Vec<Notice>) -> Next {
        loop {
            let Phase::Pass(pass) = &mut self.phase else {
                return self.current_next_at(now);
            };
            if pass.current.is_some() || pass.closing_health || pass.orphan_failed.is_some() {
                return pass_io(pass);
            }
            let (scope, target, read_first) = if let Some((service, target)) = pass.plan.pop_front()
            {
                if !pass.done.insert(target.clone()) {
                    continue;
                }
                (Scope::Service(service), target, pass.read_all)
            } else {
                let listed = &pass.listed;
                let targets = &self.targets;
                let orphans = pass.orphans.get_or_insert_with(|| {
                    let mut orphans: Vec<RouteTarget> = targets
                        .keys()
                        .filter(|t| !listed.contains(*t))
                        .cloned()
                        .collect();
                    orphans.sort_by_key(TargetId::of);
                    orphans.into()
                });
                match orphans.pop_front() {
                    Some(target) => (Scope::Orphan, target, true),
                    None => {
                        if pass.read_all || !pass.errors.is_empty() {
                            pass.closing_health = true;
                            return Next::Io(Io::Health);
                        }
                        return self.finish_pass(now, notices);
                    }
                }
            };
            if scope == Scope::Orphan
                && let Some(record) = self.targets.get_mut(&target)
            {
                record.desired = RouteState::Withdrawn;
                record.services.clear();
            }
            match self.begin_converge(scope.clone(), target.clone(), read_first) {
                Some(next) => return next,
                None => self.converged(scope, target, Converged::Done, notices),
            }
        }
    }

    /// Starts converging `target`: returns the first operation, or `None` if it is already done.
    fn begin_converge(
        &mut self,
        scope: Scope,
        target: RouteTarget,
        read_first: bool,
    ) -> Option<Next> {
        let record = self.targets.get(&target)?;
        let stage = if read_first || record.actual.is_none() {
            Stage::InitialRead
        } else if record.actual != Some(record.desired) {
            Stage::Set
        } else {
            return None;
        };
        let io = stage_io(&target, stage, record.desired);
        self.set_stage(scope, target, stage);
        Some(Next::Io(io))
    }

    fn on_read(
        &mut self,
        target: RouteTarget,
        result: Result<TargetStatus, OpError>,
        now: Instant,
        notices: &mut Vec<Notice>,
    ) -> Next {
        let Some((scope, stage)) = self.expect_io(&target, &[Stage::InitialRead, Stage::ReadBack])
        else {
            return self.current_next();
        };
        let status = match result {
            Ok(status) => status,
            Err(error) => {
                let failure = self.record_error(&target, Operation::Read, error, notices);
                self.converged(scope, target, Converged::Failed(failure), notices);
                return self.advance(now, notices);
            }
        };
        let Some(record) = self.targets.get_mut(&target) else {
            return self.advance(now, notices);
        };
        record.actual = Some(status.state);
        record.detail = status.detail;
        record.missing = false;
        let desired = record.desired;
        if stage == Stage::InitialRead {
            if status.state != desired && record.confirmed {
                notices.push(Notice::Drift {
                    target: target.clone(),
                    desired,
                    actual: status.state,
                    detail: record.detail.clone(),
                });
                record.confirmed = false;
            }
            if status.state == desired {
                self.converged(scope, target, Converged::Done, notices);
            } else {
                self.set_stage(scope, target.clone(), Stage::Set);
                return Next::Io(Io::Set(target, desired));
            }
        } else if status.state == desired {
            notices.push(Notice::Changed {
                target: target.clone(),
                state: desired,
            });
            self.converged(scope, target, Converged::Done, notices);
        } else {
            let message = format!(
                "the daemon accepted `{}` but reports the target {} so far",
                desired.as_str(),
                status.state.as_str()
            );
            record.pending_passes = record.pending_passes.saturating_add(1);
            notices.push(Notice::Pending {
                target: target.clone(),
                passes: record.pending_passes,
                message: message.clone(),
                detail: record.detail.clone(),
            });
            record.last_error = Some(message);
            self.converged(scope, target, Converged::Pending, notices);
        }
        self.advance(now, notices)
    }

    fn on_set(
        &mut self,
        target: RouteTarget,
        result: Result<(), OpError>,
        now: Instant,
        notices: &mut Vec<Notice>,
    ) -> Next {
        if let Phase::ShuttingDown { queue, .. } = &mut self.phase {
            if queue.front() != Some(&target) {
                return self.current_next();
            }
            queue.pop_front();
            return self.on_shutdown_set(target, result, notices);
        }
        let Some((scope, _)) = self.expect_io(&target, &[Stage::Set]) else {
            return self.current_next();
        };
        match result {
            Ok(()) => {
                self.set_stage(scope, target.clone(), Stage::ReadBack);
                Next::Io(Io::Read(target))
            }
            Err(error) => {
                let failure = self.record_error(&target, Operation::Set, error, notices);
                self.converged(scope, target, Converged::Failed(failure), notices);
                self.advance(now, notices)
            }
        }
    }

    fn on_health(
        &mut self,
        health: BackendHealth,
        now: Instant,
        notices: &mut Vec<Notice>,
    ) -> Next {
        let Phase::Pass(pass) = &mut self.phase else {
            return self.current_next();
        };
        if let Some(failure) = pass.orphan_failed.take() {
            let reachable = health.reachable;
            self.health = health;
            let target = failure.target.clone();
            let give_up = self.targets.get_mut(&target).is_some_and(|r| {
                if reachable {
                    r.orphan_failures += 1;
                }
                r.orphan_failures >= ORPHAN_ATTEMPTS
            });
            if give_up {
                notices.push(Notice::OrphanForgotten {
                    target: target.clone(),
                    error: failure.to_string(),
                });
                self.targets.remove(&target);
            } else if let Phase::Pass(pass) = &mut self.phase {
                pass.errors.push(PassError::Orphan { failure });
            }
            return self.advance(now, notices);
        }
        if !pass.closing_health {
            return self.current_next();
        }
        pass.closing_health = false;
        self.health = health;
        self.finish_pass(now, notices)
    }

    /// Checks that `target` is the one the pass is waiting on, in one of `stages`.
    fn expect_io(&mut self, target: &RouteTarget, stages: &[Stage]) -> Option<(Scope, Stage)> {
        let Phase::Pass(pass) = &mut self.phase else {
            return None;
        };
        match &pass.current {
            Some(current) if current.target == *target && stages.contains(&current.stage) => {
                let current = pass.current.take()?;
                Some((current.scope, current.stage))
            }
            _ => None,
        }
    }

    fn set_stage(&mut self, scope: Scope, target: RouteTarget, stage: Stage) {
        let desired = self
            .targets
            .get(&target)
            .map_or(RouteState::Withdrawn, |r| r.desired);
        if let Phase::Pass(pass) = &mut self.phase {
            pass.current = Some(Current {
                scope,
                target,
                stage,
                desired,
            });
        }
    }

    /// Records a failed operation on the target; says when it newly went missing.
    fn record_error(
        &mut self,
        target: &RouteTarget,
        operation: Operation,
        error: OpError,
        notices: &mut Vec<Notice>,
    ) -> OpFailure {
        let failure = OpFailure {
            operation,
            target: target.clone(),
            message: error.message.clone(),
        };
        if let Some(record) = self.targets.get_mut(target) {
            record.last_error = Some(failure.to_string());
            record.actual = None;
            if error.missing && !record.missing {
                notices.push(Notice::Missing {
                    target: target.clone(),
                    error: error.message,
                });
            }
            record.missing = error.missing;
        }
        failure
    }

    /// Books how one target's convergence ended: confirm it, or stop its service's later steps.
    fn converged(
        &mut self,
        scope: Scope,
        target: RouteTarget,
        outcome: Converged,
        notices: &mut Vec<Notice>,
    ) {
        match outcome {
            Converged::Done => {
                if scope == Scope::Orphan {
                    notices.push(Notice::OrphanWithdrawn {
                        target: target.clone(),
                    });
                    self.targets.remove(&target);
                } else if let Some(record) = self.targets.get_mut(&target) {
                    record.confirmed = true;
                    record.last_error = None;
                    record.pending_passes = 0;
                }
            }
            Converged::Pending => {
                if let (Scope::Service(service), Phase::Pass(pass)) = (&scope, &mut self.phase) {
                    skip_service(pass, service);
                }
            }
            Converged::Failed(failure) => {
                let Phase::Pass(pass) = &mut self.phase else {
                    return;
                };
                match scope {
                    Scope::Service(service) => {
                        skip_service(pass, &service);
                        pass.errors.push(PassError::Service { service, failure });
                    }
                    Scope::Orphan => pass.orphan_failed = Some(failure),
                }
            }
        }
    }

    /// Ends the pass: books the outcome (outage episodes, backoff) and decides the wait.
    fn finish_pass(&mut self, now: Instant, notices: &mut Vec<Notice>) -> Next {
        let Phase::Pass(pass) = std::mem::replace(&mut self.phase, Phase::Idle) else {
            return self.current_next();
        };
        let failed = !pass.errors.is_empty();
        let errors: Vec<String> = pass.errors.iter().map(ToString::to_string).collect();
        if failed {
            self.consecutive_failures += 1;
            if self.outage_started.is_none() {
                self.outage_started = Some(now);
                notices.push(Notice::OutageStarted {
                    errors,
                    backend_answers: self.health.reachable,
                    backend_error: self.health.error.clone(),
                });
            } else {
                notices.push(Notice::StillFailing { errors });
            }
        } else {
            if let Some(started) = self.outage_started.take() {
                notices.push(Notice::Recovered {
                    failed_passes: self.consecutive_failures,
                    outage: now.saturating_duration_since(started),
                });
            }
            self.consecutive_failures = 0;
        }
        notices.push(Notice::PassDone);
        if let Some(withdraw) = self.shutdown_after_pass.take() {
            return self.begin_shutdown(withdraw, notices);
        }
        // Backoff is for a daemon that does not answer. When it answers but some target fails (say, a
        // protocol missing from bird.conf), retry at the normal reconcile interval so drift on every other
        // target is still caught on time.
        if failed && !self.health.reachable {
            if std::mem::take(&mut self.nudged) {
                self.failed_passes = 0;
            } else {
                self.failed_passes = self.failed_passes.saturating_add(1);
            }
            if std::mem::take(&mut self.rerun) || self.failed_passes == 0 {
                // A new desired state is tried at once, backoff or not; so is a nudge.
                return self.start_pass(true, now, notices);
            }
            let waiting = Waiting::Backoff {
                retry_at: now + RETRY.after_failures(self.failed_passes),
            };
            self.phase = Phase::Waiting(waiting);
            return self.wait_for(waiting, now);
        }
        self.failed_passes = 0;
        if std::mem::take(&mut self.nudged) {
            self.rerun = false;
            return self.start_pass(true, now, notices);
        }
        if std::mem::take(&mut self.rerun) {
            return self.start_pass(false, now, notices);
        }
        let recheck_at = self.pending_recheck().map(|d| now + d);
        let waiting = Waiting::Normal { recheck_at };
        self.phase = Phase::Waiting(waiting);
        if now >= self.next_full_read {
            return self.start_pass(true, now, notices);
        }
        self.wait_for(waiting, now)
    }

    /// When to look again at targets the daemon accepted but does not report yet: 100 ms after the first
    /// pending pass, doubling per pass, never later than the reconcile interval. `None` when nothing is
    /// pending.
    fn pending_recheck(&self) -> Option<Duration> {
        let passes = self.targets.values().map(|r| r.pending_passes).max()?;
        (passes > 0)
            .then(|| Backoff::new(PENDING_RECHECK_INITIAL, self.interval).after_failures(passes))
    }

    fn begin_shutdown(&mut self, withdraw: bool, notices: &mut Vec<Notice>) -> Next {
        if !withdraw {
            notices.push(Notice::ShutdownKeeps);
            self.phase = Phase::Stopped(Ok(()));
            return self.current_next();
        }
        let mut queue: Vec<RouteTarget> = self.targets.keys().cloned().collect();
        queue.sort_by_key(TargetId::of);
        let total = queue.len();
        self.phase = Phase::ShuttingDown {
            queue: queue.into(),
            total,
            failed: Vec::new(),
        };
        self.next_shutdown_step()
    }

    fn on_shutdown_set(
        &mut self,
        target: RouteTarget,
        result: Result<(), OpError>,
        notices: &mut Vec<Notice>,
    ) -> Next {
        if let Phase::ShuttingDown { failed, .. } = &mut self.phase {
            match result {
                Ok(()) => notices.push(Notice::WithdrawnAtShutdown { target }),
                Err(error) => {
                    failed.push(format!("{target}: {}", error.message));
                    notices.push(Notice::ShutdownWithdrawalFailed {
                        target,
                        error: error.message,
                    });
                }
            }
        }
        self.next_shutdown_step()
    }

    fn next_shutdown_step(&mut self) -> Next {
        let Phase::ShuttingDown {
            queue,
            total,
            failed,
        } = &mut self.phase
        else {
            return self.current_next();
        };
        if let Some(target) = queue.front() {
            return Next::Io(Io::Set(target.clone(), RouteState::Withdrawn));
        }
        let result = if failed.is_empty() {
            Ok(())
        } else {
            Err(ShutdownWithdrawalFailed {
                total: *total,
                failed: std::mem::take(failed),
            })
        };
        self.phase = Phase::Stopped(result);
        self.current_next()
    }
}

/// The operation a pass is waiting on.
fn pass_io(pass: &Pass) -> Next {
    if pass.closing_health || pass.orphan_failed.is_some() {
        return Next::Io(Io::Health);
    }
    match &pass.current {
        Some(current) => Next::Io(stage_io(&current.target, current.stage, current.desired)),
        None => Next::Wait { at_most: None },
    }
}

fn stage_io(target: &RouteTarget, stage: Stage, desired: RouteState) -> Io {
    match stage {
        Stage::InitialRead | Stage::ReadBack => Io::Read(target.clone()),
        Stage::Set => Io::Set(target.clone(), desired),
    }
}

/// Drops the rest of `service`'s steps from the pass: make-before-break never runs a service's later
/// steps (the withdrawals of its old targets) while an earlier one (the announcement of the new ones) has
/// not taken effect.
fn skip_service(pass: &mut Pass, service: &str) {
    while pass.plan.front().is_some_and(|(s, _)| s == service) {
        pass.plan.pop_front();
    }
}

#[cfg(test)]
mod tests;
