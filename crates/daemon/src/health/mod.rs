//! Health policy: a pure, synchronous state machine from check signals to desired route states.
//!
//! Nothing here does I/O, sleeps or reads the clock: every call takes `now: Instant`, so the whole policy
//! is unit-tested deterministically. The runtime feeds it classified probe results ([`classify_probe`],
//! [`classify_sweep`]), ticks it (damping decay, graceful-drain timer) and drains; after every call it
//! reads [`ServiceHealth::desired`] and hands the steps to the reconciler.
//!
//! # Rules
//!
//! - **Per check**, rise/fall counters: a check is *up* after `rise` consecutive non-hard signals (pass or
//!   soft) and *down* after `fall` consecutive hard signals. Separately it is *soft* after `fall`
//!   consecutive signals that were not a clean pass, and clean again after `rise` consecutive passes. A
//!   check starts undecided and soft ("not proven clean").
//! - **Per service**, with `k` = the checks the combine mode requires: `up` when `k` checks are up and
//!   clean; `degraded` when `k` checks are up but some of them soft; `down` when so many checks are down
//!   that `k` can no longer be reached; otherwise `starting` (only possible before every check decided).
//! - **Start-up**: nothing is announced while `starting` (every target desired withdrawn, which also
//!   withdraws a target left announced by a crashed previous run).
//! - **Hard failures** make a check down, hence `down`: every target withdrawn. **Soft signals** (slow
//!   answers, serial lag within `max_lag`, reference unreachable) only ever make a service `degraded`:
//!   the degrade targets are announced instead of the normal ones, or, if the service has no degrade
//!   targets, the normal targets stay announced. A shared dependency failing therefore never withdraws.
//! - **Make-before-break**: [`DesiredRoutes::steps`] lists every announcement before every withdrawal,
//!   so up -> degraded enables the degrade targets before disabling the normal ones, and the reverse.
//! - **Flap damping** ([`crate::config::DampingConfig`]): each change of the health verdict between
//!   announcing (up/degraded) and withdrawn (down) adds the penalty, except the first verdict after
//!   start-up and changes while drained. Above the suppress threshold the service is `down` with a reason
//!   saying it is suppressed, until the penalty decays below the reuse threshold or the maximum hold-down
//!   ends. Up <-> degraded changes add no penalty.
//! - **Overload** (`[service.load]`, `overload.rs`): a `down` verdict from timeouts while the load
//!   signals say "overloaded" is `degraded` instead (absorb, don't withdraw), for at most `absorb_for`.
//! - **Drain** wins over everything: `drained`, every target withdrawn. With `graceful_drain` set and the
//!   service announcing when the drain starts, the degrade targets are announced (normal ones withdrawn)
//!   for that long first, then everything is withdrawn. Health keeps being tracked while drained, so an
//!   undrain goes straight to the current verdict.

mod classify;
mod damping;
mod guard;
mod overload;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod overload_tests;

use std::fmt;
use std::time::{Duration, Instant};

use nsbeacon_routing::{RouteState, RouteTarget};

use crate::config::{Combine, ServiceConfig};
use crate::drain::DrainRequest;

pub use classify::{classify_dnssec, classify_probe, classify_sweep};
pub use damping::Damping;
pub use guard::{GuardAnswer, GuardPolicy};

use guard::GuardState;
use overload::{Decision, Overload};

/// What one probe result means for the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckSignal {
    /// Everything as expected.
    Pass,
    /// Answering, but something is off (slow, lagging, reference unreachable): at most degrades.
    Soft(String),
    /// Not serving correctly: counts towards `fall` and, once the check is down, withdraws.
    Hard(String),
    /// A hard failure with local evidence that nothing serves DNS here: the server refused the connection
    /// (TCP reset, ICMP port unreachable on UDP) on every transport that failed. Counts exactly like
    /// [`CheckSignal::Hard`]; the only difference is the fleet guard's: a node whose DNS server is not
    /// running is useless to keep announced, and no other node can share that failure, so the guard does
    /// not hold it (unless `guard_all_failures`).
    Refused(String),
    /// A hard failure where every failed transport timed out: no answer at all, which is what a server
    /// too busy to answer looks like. Counts exactly like [`CheckSignal::Hard`]; the only difference is
    /// the overload policy's (`overload.rs`): while the load signals say the server is overloaded, a
    /// service whose down checks all timed out absorbs (degraded) instead of withdrawing.
    TimedOut(String),
}

impl CheckSignal {
    /// `"pass"`, `"soft"` or `"hard"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            CheckSignal::Pass => "pass",
            CheckSignal::Soft(_) => "soft",
            CheckSignal::Hard(_) | CheckSignal::Refused(_) | CheckSignal::TimedOut(_) => "hard",
        }
    }

    /// The human-readable detail (`"ok"` for a pass).
    pub fn detail(&self) -> &str {
        match self {
            CheckSignal::Pass => "ok",
            CheckSignal::Soft(text)
            | CheckSignal::Hard(text)
            | CheckSignal::Refused(text)
            | CheckSignal::TimedOut(text) => text,
        }
    }

    /// Whether the signal counts towards `fall` (hard or refused).
    pub fn is_hard(&self) -> bool {
        matches!(
            self,
            CheckSignal::Hard(_) | CheckSignal::Refused(_) | CheckSignal::TimedOut(_)
        )
    }
}

impl fmt::Display for CheckSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckSignal::Pass => f.write_str("pass"),
            CheckSignal::Soft(text) => write!(f, "soft: {text}"),
            CheckSignal::Hard(text) | CheckSignal::Refused(text) | CheckSignal::TimedOut(text) => {
                write!(f, "hard: {text}")
            }
        }
    }
}

/// A service's state, as exported and logged; `/status` spells it as [`ServiceState::as_str`] does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceState {
    /// Not every required check has decided yet; nothing is announced.
    Starting,
    /// Healthy: the normal targets are announced.
    Up,
    /// Answering with soft problems, or absorbing an overload (timeouts while the load signals say
    /// "overloaded", see `overload.rs`): the degrade targets are announced (or the normal ones if none).
    Degraded,
    /// Failing, or suppressed by flap damping: everything withdrawn.
    Down,
    /// Drained by an operator: everything withdrawn (after the graceful period, if any).
    Drained,
    /// Failing, but the fleet guard keeps the service announced (the degrade targets, or the normal ones if
    /// it has none), because too few other nodes would announce it after a withdrawal, or because etcd
    /// cannot be asked and `on_unavailable = "hold"`. Retried whenever the fleet changes.
    Held,
}

impl ServiceState {
    /// Every state, for exporting one series per state.
    pub const ALL: [ServiceState; 6] = [
        ServiceState::Starting,
        ServiceState::Up,
        ServiceState::Degraded,
        ServiceState::Down,
        ServiceState::Drained,
        ServiceState::Held,
    ];

    /// Lower-case name (`"starting"`, `"up"`, ...), used in metrics labels, logs and `/status`.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceState::Starting => "starting",
            ServiceState::Up => "up",
            ServiceState::Degraded => "degraded",
            ServiceState::Down => "down",
            ServiceState::Drained => "drained",
            ServiceState::Held => "held",
        }
    }
}

impl fmt::Display for ServiceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A state change, for one log line and the transitions counter.
///
/// `from == to` is possible for [`ServiceState::Drained`] when a graceful drain period ends and the
/// degrade targets are withdrawn: the state is the same but the routes change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The service's name.
    pub service: String,
    /// State before.
    pub from: ServiceState,
    /// State after.
    pub to: ServiceState,
    /// Why, in words (which check, what it saw).
    pub reason: String,
}

/// The route states a service wants, in the order they must be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredRoutes {
    /// Every announce and degrade target of the service, announcements first (make-before-break).
    pub steps: Vec<(RouteTarget, RouteState)>,
}

impl DesiredRoutes {
    /// The desired state of `target`, if it belongs to the service.
    pub fn state_of(&self, target: &RouteTarget) -> Option<RouteState> {
        self.steps
            .iter()
            .find(|(t, _)| t == target)
            .map(|(_, s)| *s)
    }
}

/// One check's debounced health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckHealth {
    /// The check's name.
    pub name: String,
    /// Whether the check has decided (passed `rise` or failed `fall` times in a row) at least once.
    pub decided: bool,
    /// Up (answering) after `rise` consecutive non-hard signals; false while undecided or down.
    pub up: bool,
    /// Soft-degraded: `fall` consecutive signals were not a clean pass, and `rise` clean passes have not
    /// followed since. True until the first `rise` clean passes.
    pub soft: bool,
    /// Consecutive pass or soft signals.
    pub consecutive_ok: u32,
    /// Consecutive hard signals.
    pub consecutive_fail: u32,
    /// Consecutive clean passes.
    pub consecutive_clean: u32,
    /// Consecutive soft or hard signals.
    pub consecutive_unclean: u32,
    /// The last signal seen.
    pub last_signal: Option<CheckSignal>,
    /// The last soft or hard signal seen, kept while the check recovers.
    pub last_problem: Option<CheckSignal>,
    /// Added by [`ServiceHealth::reconfigure`] to a running service and not decided yet: left out of the
    /// combine until it decides, so adding a check does not withdraw a healthy service.
    pub pending: bool,
}

impl CheckHealth {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            decided: false,
            up: false,
            soft: true,
            consecutive_ok: 0,
            consecutive_fail: 0,
            consecutive_clean: 0,
            consecutive_unclean: 0,
            last_signal: None,
            last_problem: None,
            pending: false,
        }
    }

    fn observe(&mut self, signal: CheckSignal, rise: u32, fall: u32) {
        match &signal {
            CheckSignal::Pass => {
                self.consecutive_ok = self.consecutive_ok.saturating_add(1);
                self.consecutive_fail = 0;
                self.consecutive_clean = self.consecutive_clean.saturating_add(1);
                self.consecutive_unclean = 0;
            }
            CheckSignal::Soft(_) => {
                self.consecutive_ok = self.consecutive_ok.saturating_add(1);
                self.consecutive_fail = 0;
                self.consecutive_clean = 0;
                self.consecutive_unclean = self.consecutive_unclean.saturating_add(1);
            }
            CheckSignal::Hard(_) | CheckSignal::Refused(_) | CheckSignal::TimedOut(_) => {
                self.consecutive_ok = 0;
                self.consecutive_fail = self.consecutive_fail.saturating_add(1);
                self.consecutive_clean = 0;
                self.consecutive_unclean = self.consecutive_unclean.saturating_add(1);
            }
        }
        if self.consecutive_ok >= rise {
            self.up = true;
            self.decided = true;
        }
        if self.consecutive_fail >= fall {
            self.up = false;
            self.decided = true;
        }
        if self.decided {
            self.pending = false;
        }
        if self.consecutive_clean >= rise {
            self.soft = false;
        }
        if self.consecutive_unclean >= fall {
            self.soft = true;
        }
        if !matches!(signal, CheckSignal::Pass) {
            self.last_problem = Some(signal.clone());
        }
        self.last_signal = Some(signal);
    }

    /// Why the check is down, for reasons: the last hard signal and how the check is doing now.
    fn down_reason(&self, rise: u32) -> String {
        let problem = self
            .last_problem
            .as_ref()
            .map_or("failing", CheckSignal::detail);
        if self.consecutive_fail > 0 {
            format!(
                "check {}: {} ({} consecutive failures)",
                self.name, problem, self.consecutive_fail
            )
        } else {
            format!(
                "check {}: recovering ({}/{rise} passes), last failure: {}",
                self.name, self.consecutive_ok, problem
            )
        }
    }

    /// Why the check is soft.
    fn soft_reason(&self, rise: u32, fall: u32) -> String {
        match &self.last_signal {
            Some(CheckSignal::Soft(text)) => format!("check {}: {}", self.name, text),
            Some(
                CheckSignal::Hard(text) | CheckSignal::Refused(text) | CheckSignal::TimedOut(text),
            ) => format!(
                "check {}: {} ({}/{fall} consecutive failures, not down yet)",
                self.name, text, self.consecutive_fail
            ),
            Some(_) => format!(
                "check {}: recovering ({}/{rise} clean passes), last problem: {}",
                self.name,
                self.consecutive_clean,
                self.last_problem
                    .as_ref()
                    .map_or("not yet clean", CheckSignal::detail)
            ),
            None => format!("check {}: no result yet", self.name),
        }
    }
}

/// The health verdict before drain and damping are applied.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Verdict {
    state: ServiceState,
    reason: String,
}

/// A warm restart: the previous run exited cleanly with `on_shutdown = "keep"` and these of the service's
/// targets were still announced, so the new run keeps them while its first probes run instead of
/// withdrawing them for the `rise` probes a cold start needs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct WarmStart {
    /// Targets to keep announced (a subset of the service's announce and degrade targets).
    kept: Vec<RouteTarget>,
    /// The hold ends here even if the checks have not decided yet.
    until: Instant,
}

/// The graceful phase of a drain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Graceful {
    until: Instant,
}

/// One service's health policy. Owned by the service's task; every method is synchronous and pure apart
/// from the state it keeps.
#[derive(Debug, Clone)]
pub struct ServiceHealth {
    name: String,
    combine: Combine,
    rise: u32,
    fall: u32,
    announce: Vec<RouteTarget>,
    degrade: Vec<RouteTarget>,
    graceful_drain: Option<Duration>,
    checks: Vec<CheckHealth>,
    damping: Damping,
    /// The last decided verdict's "announcing" flag (up/degraded = true), for counting flaps.
    announcing: Option<bool>,
    drain: Option<DrainRequest>,
    graceful: Option<Graceful>,
    warm: Option<WarmStart>,
    /// This service's targets the BGP daemon says do not exist.
    missing: Vec<RouteTarget>,
    /// The fleet guard's policy for this service; `None` without `[fleet]`.
    guard: Option<GuardPolicy>,
    guard_state: GuardState,
    /// The overload policy's state (`overload.rs`).
    overload: Overload,
    state: ServiceState,
    reason: String,
    desired: DesiredRoutes,
    transitions: u64,
}

impl ServiceHealth {
    /// A service in `starting`: nothing announced until the checks have passed `rise` times.
    pub fn new(config: &ServiceConfig, now: Instant) -> Self {
        let mut health = Self {
            name: config.name.clone(),
            combine: config.combine,
            rise: config.rise.max(1),
            fall: config.fall.max(1),
            announce: config.announce.clone(),
            degrade: config.degrade.clone(),
            graceful_drain: config.graceful_drain,
            checks: config
                .checks
                .iter()
                .map(|c| CheckHealth::new(&c.name))
                .collect(),
            damping: Damping::new(config.damping, now),
            announcing: None,
            drain: None,
            graceful: None,
            warm: None,
            missing: Vec::new(),
            guard: None,
            guard_state: GuardState::Idle,
            overload: Overload {
                policy: absorb_policy(config),
                ..Overload::default()
            },
            state: ServiceState::Starting,
            reason: String::new(),
            desired: DesiredRoutes { steps: Vec::new() },
            transitions: 0,
        };
        let (state, reason, desired) = health.evaluate(now);
        health.state = state;
        health.reason = reason;
        health.desired = desired;
        health
    }

    /// Starts warm: keeps `announced` (those of them that are this service's targets) announced while the
    /// checks have not decided, until `until`. The first hard result of any check, a decided verdict, a
    /// drain or the deadline ends the hold, so a node whose DNS died across the restart withdraws at its
    /// first failing probe, and one whose DNS is healthy never drops its route. Only call it for a service
    /// still in `starting` whose targets the BGP daemon was seen announcing.
    pub fn warm_start(
        &mut self,
        announced: &[RouteTarget],
        until: Instant,
        now: Instant,
    ) -> Option<Transition> {
        let kept: Vec<RouteTarget> = self
            .announce
            .iter()
            .chain(self.degrade.iter())
            .filter(|t| announced.contains(t))
            .cloned()
            .collect();
        if kept.is_empty() || self.state != ServiceState::Starting {
            return None;
        }
        self.warm = Some(WarmStart { kept, until });
        self.update(now)
    }

    /// Tells the service which targets the BGP daemon says do not exist (usually a misspelled protocol
    /// or neighbor name); those that are not this service's are ignored. While any of its targets is
    /// missing the service is `down` with a reason naming them: it cannot announce what it was
    /// configured to, and reporting `up` would hide that nothing is announced. A drain still wins.
    pub fn set_missing_targets(
        &mut self,
        missing: &[RouteTarget],
        now: Instant,
    ) -> Option<Transition> {
        let own: Vec<RouteTarget> = self
            .announce
            .iter()
            .chain(self.degrade.iter())
            .filter(|t| missing.contains(t))
            .cloned()
            .collect();
        if own == self.missing {
            return None;
        }
        self.missing = own;
        self.update(now)
    }

    /// Feeds one classified result of check `check_index` (its position in the config). An out-of-range
    /// index is ignored. Returns the state change it caused, if any.
    pub fn observe(
        &mut self,
        check_index: usize,
        signal: CheckSignal,
        now: Instant,
    ) -> Option<Transition> {
        let (rise, fall) = (self.rise, self.fall);
        if signal.is_hard() {
            self.warm = None;
        }
        self.checks
            .get_mut(check_index)?
            .observe(signal, rise, fall);
        self.update(now)
    }

    /// Like [`Self::observe`], for a run that confirms a failure by itself: the DNS server's process has
    /// exited, so a hard signal takes the check down at once instead of after `fall` of them. Passes and
    /// soft signals count as usual (the server may already be back).
    pub fn observe_decisive(
        &mut self,
        check_index: usize,
        signal: CheckSignal,
        now: Instant,
    ) -> Option<Transition> {
        if !signal.is_hard() {
            return self.observe(check_index, signal, now);
        }
        self.warm = None;
        let rise = self.rise;
        self.checks.get_mut(check_index)?.observe(signal, rise, 1);
        self.update(now)
    }

    /// Advances time: damping decay and release, the graceful-drain timer. Call it regularly (e.g. every
    /// half interval, at most every second).
    pub fn tick(&mut self, now: Instant) -> Option<Transition> {
        self.update(now)
    }

    /// Sets or clears the drain. A new drain of an announcing service with `graceful_drain` configured
    /// first announces the degrade targets for that long; changing the reason of an existing drain keeps
    /// its timer.
    pub fn set_drain(&mut self, drain: Option<DrainRequest>, now: Instant) -> Option<Transition> {
        match (&self.drain, &drain) {
            (None, Some(_)) => {
                let announcing = matches!(self.state, ServiceState::Up | ServiceState::Degraded);
                self.graceful = match self.graceful_drain {
                    Some(period) if announcing && !self.degrade.is_empty() => Some(Graceful {
                        until: now + period,
                    }),
                    _ => None,
                };
            }
            (_, None) => self.graceful = None,
            (Some(_), Some(_)) => {}
        }
        self.drain = drain;
        self.update(now)
    }

    /// Applies a changed config (SIGHUP) without forgetting what the service already knows, so that an
    /// edit (a new zone, another timeout) does not send a healthy service back to `starting`:
    ///
    /// - checks are matched by name and keep their counters (rename a check to reset its history);
    /// - a check new to a service that has already decided starts *pending*: it is left out of the combine
    ///   until it decides, then counts like any other (a new check that fails `fall` times still withdraws);
    /// - rise/fall, combine, targets and graceful drain take the new values; the damping penalty and any
    ///   suppression are kept under the new thresholds (disabling damping releases a suppression).
    ///
    /// Targets removed from the service are no longer in [`ServiceHealth::desired`]; the caller decides
    /// what happens to them (normally: withdraw). The service's name must not change (a renamed service is
    /// a new service).
    pub fn reconfigure(&mut self, config: &ServiceConfig, now: Instant) -> Option<Transition> {
        let established = self.checks.iter().any(|c| c.decided);
        let mut old: Vec<CheckHealth> = std::mem::take(&mut self.checks);
        self.checks = config
            .checks
            .iter()
            .map(|c| match old.iter().position(|h| h.name == c.name) {
                Some(i) => old.swap_remove(i),
                None => CheckHealth {
                    pending: established,
                    ..CheckHealth::new(&c.name)
                },
            })
            .collect();
        self.combine = config.combine;
        self.rise = config.rise.max(1);
        self.fall = config.fall.max(1);
        self.announce = config.announce.clone();
        self.degrade = config.degrade.clone();
        let targets: Vec<&RouteTarget> = self.announce.iter().chain(self.degrade.iter()).collect();
        self.missing.retain(|t| targets.contains(&t));
        self.graceful_drain = config.graceful_drain;
        if self.graceful_drain.is_none() {
            self.graceful = None;
        }
        self.damping.reconfigure(config.damping, now);
        self.overload.set_policy(absorb_policy(config));
        self.update(now)
    }

    /// The load task's verdict: `Some(detail)` while the DNS server is overloaded (`detail` goes into the
    /// reason, e.g. "2400 qps vs baseline 12 qps ..."), `None` when it is not or nothing is known. See
    /// [`overload`] for what an overload changes.
    pub fn set_overload(&mut self, signal: Option<String>, now: Instant) -> Option<Transition> {
        if signal == self.overload.signal {
            return None;
        }
        self.overload.set_signal(signal);
        self.update(now)
    }

    /// Whether the service is degraded because it absorbs an overload (its checks would take it down).
    pub fn absorbing(&self) -> bool {
        self.overload.absorbing
    }

    /// Since when the current overload episode has been absorbed (kept while it lasts, also after
    /// `absorb_for` ran out).
    pub fn absorbing_since(&self) -> Option<Instant> {
        self.overload.since
    }

    /// Puts the service's withdrawals under the fleet guard (`Some`), or takes them out (`None`: every
    /// withdrawal health decides is taken at once, as without `[fleet]`). See [`guard`] for what the guard
    /// covers. A change of policy never changes routes by itself.
    pub fn set_guard_policy(
        &mut self,
        policy: Option<GuardPolicy>,
        now: Instant,
    ) -> Option<Transition> {
        if policy == self.guard {
            return None;
        }
        self.guard = policy;
        if policy.is_none() {
            self.guard_state = GuardState::Idle;
        }
        self.update(now)
    }

    /// The reason of a withdrawal that waits for the fleet guard and has not been asked about yet: the
    /// service task asks `try_withdraw` with a record carrying this reason, then calls
    /// [`Self::guard_asked`]. `None` when nothing is to be asked.
    pub fn guard_question(&self) -> Option<&str> {
        match &self.guard_state {
            GuardState::Waiting {
                asked: false,
                reason,
                ..
            } => Some(reason),
            _ => None,
        }
    }

    /// The question of [`Self::guard_question`] is out; the routes stay as they are until
    /// [`Self::guard_answered`].
    pub fn guard_asked(&mut self) {
        if let GuardState::Waiting { asked, .. } = &mut self.guard_state {
            *asked = true;
        }
    }

    /// The fleet guard's answer to the question out. Ignored if none is out (the service recovered in the
    /// meantime, a drain came, the policy was removed).
    pub fn guard_answered(&mut self, answer: GuardAnswer, now: Instant) -> Option<Transition> {
        let (
            Some(policy),
            GuardState::Waiting {
                asked: true, held, ..
            },
        ) = (self.guard, &self.guard_state)
        else {
            return None;
        };
        self.guard_state = GuardState::answered(answer, policy, held.clone());
        self.update(now)
    }

    /// The fleet changed (another node's record, a lease expiry, etcd reachable again): a held service asks
    /// the guard again, keeping its routes meanwhile. A no-op unless `held`.
    ///
    /// Not while the checks are recovering (every down check's last result passed): when a shared
    /// failure ends, the other nodes recover first, and asking then would let this node withdraw for
    /// the few probes it still needs to come back up, a needless withdrawal and re-announcement.
    pub fn guard_retry(&mut self, now: Instant) -> Option<Transition> {
        let GuardState::Held { why } = &self.guard_state else {
            return None;
        };
        let recovering = self
            .checks
            .iter()
            .filter(|c| c.decided && !c.up && !c.pending)
            .all(|c| c.consecutive_fail == 0);
        if recovering {
            return None;
        }
        self.guard_state = GuardState::Waiting {
            asked: false,
            reason: why.clone(),
            held: Some(why.clone()),
        };
        self.update(now)
    }

    /// The current state.
    pub fn state(&self) -> ServiceState {
        self.state
    }

    /// Why the service is in its state, in words.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The service's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Per-check debounced health, in config order.
    pub fn check_states(&self) -> &[CheckHealth] {
        &self.checks
    }

    /// The desired route states, ordered make-before-break; covers every announce and degrade target.
    pub fn desired(&self) -> DesiredRoutes {
        self.desired.clone()
    }

    /// The current damping penalty (decayed to the last call's `now`).
    pub fn penalty(&self) -> f64 {
        self.damping.penalty()
    }

    /// Whether flap damping holds the service withdrawn.
    pub fn suppressed(&self) -> bool {
        self.damping.suppressed()
    }

    /// State changes so far (including the end of a graceful drain period).
    pub fn transitions(&self) -> u64 {
        self.transitions
    }

    /// The drain in force, if any.
    pub fn drain(&self) -> Option<&DrainRequest> {
        self.drain.as_ref()
    }

    fn update(&mut self, now: Instant) -> Option<Transition> {
        let (state, reason, desired) = self.evaluate(now);
        let routes_changed = desired != self.desired;
        let from = self.state;
        self.state = state;
        self.reason = reason;
        self.desired = desired;
        if from != state || routes_changed {
            self.transitions += 1;
            Some(Transition {
                service: self.name.clone(),
                from,
                to: state,
                reason: self.reason.clone(),
            })
        } else {
            None
        }
    }

    /// Computes state, reason and desired routes; records flaps in the damping state.
    fn evaluate(&mut self, now: Instant) -> (ServiceState, String, DesiredRoutes) {
        let mut verdict = self.verdict();
        let absorb = self.overload_decision(&verdict, now);
        self.overload.absorbing = matches!(absorb, Decision::Absorb { .. });
        let announcing = match verdict.state {
            ServiceState::Up | ServiceState::Degraded => Some(true),
            // Absorbing keeps the routes: no flap for damping to count.
            ServiceState::Down if self.overload.absorbing => Some(true),
            ServiceState::Down => Some(false),
            _ => None,
        };
        let flapped = match (self.announcing, announcing) {
            (Some(before), Some(after)) => before != after,
            _ => false,
        };
        if announcing.is_some() {
            self.announcing = announcing;
        }
        self.damping.advance(now, flapped && self.drain.is_none());

        if self.drain.is_some() || !self.missing.is_empty() {
            // An operator's drain and a target the BGP daemon lacks are never the guard's to hold.
            self.guard_state = GuardState::Idle;
        }
        if let Some(drain) = &self.drain {
            let graceful_left = self
                .graceful
                .filter(|g| now < g.until)
                .map(|g| g.until.saturating_duration_since(now));
            let healthy = announcing == Some(true) && !self.damping.suppressed();
            return match graceful_left {
                Some(left) if healthy => (
                    ServiceState::Drained,
                    format!(
                        "drained: {}; graceful drain: degrade targets announced for another {}, then withdrawn",
                        drain.reason,
                        crate::config::fmt_duration(round_secs(left))
                    ),
                    self.routes(&self.degrade),
                ),
                _ => (
                    ServiceState::Drained,
                    format!("drained: {}", drain.reason),
                    self.routes(&[]),
                ),
            };
        }

        if !self.missing.is_empty() {
            let names: Vec<String> = self.missing.iter().map(ToString::to_string).collect();
            return (
                ServiceState::Down,
                format!(
                    "misconfigured: the BGP daemon has no {}; fix the name in the config or add it to the \
                     BGP daemon's config (the checks say: {})",
                    names.join(", "),
                    verdict.reason
                ),
                self.routes(&[]),
            );
        }
        if verdict.state != ServiceState::Starting {
            self.warm = None;
        }
        if self.warm.as_ref().is_some_and(|w| now >= w.until) {
            self.warm = None;
        }
        if let Some(warm) = &self.warm {
            let left = warm.until.saturating_duration_since(now);
            let reason = format!(
                "starting after a warm restart: keeping the routes the previous run left announced while the \
                 checks pass {} times in a row (withdrawn at the first failing probe, or in {} if they have not \
                 passed by then)",
                self.rise,
                crate::config::fmt_duration(round_secs(left))
            );
            return (ServiceState::Starting, reason, self.routes(&warm.kept));
        }

        if let Decision::Spent { absorb_for } = absorb {
            verdict.reason = format!(
                "{}; overloaded, but absorbed for absorb_for = {} already, so the normal rules apply until the \
                 overload ends",
                verdict.reason,
                crate::config::fmt_duration(absorb_for)
            );
        }
        if let Decision::Absorb { left } = absorb {
            // Announcing: nothing for the fleet guard to decide.
            self.guard_state = GuardState::Idle;
            let detail = self.overload.signal.clone().unwrap_or_default();
            let (routes, what) = if self.degrade.is_empty() {
                (
                    self.routes(&self.announce),
                    "no degrade targets configured, so the normal targets stay announced",
                )
            } else {
                (
                    self.routes(&self.degrade),
                    "announcing the degrade targets instead of the normal ones",
                )
            };
            return (
                ServiceState::Degraded,
                format!(
                    "absorbing overload: {detail}; {what} for up to another {} (absorb_for), then the normal \
                     rules apply; the checks say: {}",
                    crate::config::fmt_duration(round_secs(left)),
                    verdict.reason
                ),
                routes,
            );
        }

        let suppressed = self.damping.suppressed();
        if !(verdict.state == ServiceState::Down
            || suppressed && matches!(verdict.state, ServiceState::Up | ServiceState::Degraded))
        {
            self.guard_state = GuardState::Idle;
        }
        match verdict.state {
            ServiceState::Up | ServiceState::Degraded if suppressed => {
                let reason = format!(
                    "{}; the checks say {}: {}",
                    self.damping.describe_suppression(now),
                    verdict.state,
                    verdict.reason
                );
                self.guarded_withdrawal(reason, true)
            }
            ServiceState::Down => {
                let shared = !self.local_evidence();
                self.guarded_withdrawal(verdict.reason, shared)
            }
            ServiceState::Up => (
                ServiceState::Up,
                verdict.reason,
                self.routes(&self.announce),
            ),
            ServiceState::Degraded if self.degrade.is_empty() => (
                ServiceState::Degraded,
                format!(
                    "{}; no degrade targets configured, so the normal targets stay announced",
                    verdict.reason
                ),
                self.routes(&self.announce),
            ),
            ServiceState::Degraded => (
                ServiceState::Degraded,
                format!(
                    "{}; announcing the degrade targets instead of the normal ones",
                    verdict.reason
                ),
                self.routes(&self.degrade),
            ),
            state => (state, verdict.reason, self.routes(&[])),
        }
    }

    /// A withdrawal health decided, through the fleet guard if one applies (see [`guard`]). `shared` says
    /// whether other nodes could be failing the same way (false for local evidence: connection refused).
    fn guarded_withdrawal(
        &mut self,
        reason: String,
        shared: bool,
    ) -> (ServiceState, String, DesiredRoutes) {
        let Some(policy) = self.guard else {
            return (ServiceState::Down, reason, self.routes(&[]));
        };
        if !shared && !policy.all_failures {
            self.guard_state = GuardState::Idle;
            return (
                ServiceState::Down,
                format!(
                    "{reason}; not held by the fleet guard: the DNS server refuses connections on this node \
                     (guard_all_failures = true would hold this too)"
                ),
                self.routes(&[]),
            );
        }
        match &self.guard_state {
            GuardState::Withdraw { note } => (
                ServiceState::Down,
                format!("{reason}; {note}"),
                self.routes(&[]),
            ),
            GuardState::Held { why } => (
                ServiceState::Held,
                format!("held by the fleet guard: {why}; the checks say: {reason}"),
                self.held_routes(),
            ),
            GuardState::Idle | GuardState::Waiting { .. } => {
                let announcing = self
                    .desired
                    .steps
                    .iter()
                    .any(|(_, state)| *state == RouteState::Announced);
                if !announcing {
                    // Nothing to withdraw: nothing to ask.
                    self.guard_state = GuardState::Idle;
                    return (ServiceState::Down, reason, self.routes(&[]));
                }
                let (asked, held) = match &self.guard_state {
                    GuardState::Waiting { asked, held, .. } => (*asked, held.clone()),
                    _ => (false, None),
                };
                self.guard_state = GuardState::Waiting {
                    asked,
                    reason: reason.clone(),
                    held,
                };
                (
                    self.state,
                    format!(
                        "{reason}; asking the fleet guard before withdrawing (routes kept meanwhile)"
                    ),
                    self.desired.clone(),
                )
            }
        }
    }

    /// What a held service announces: its degrade targets, or its normal ones if it has none.
    fn held_routes(&self) -> DesiredRoutes {
        if self.degrade.is_empty() {
            self.routes(&self.announce)
        } else {
            self.routes(&self.degrade)
        }
    }

    /// The overload overlay's decision for `verdict` (see [`overload`]); never while drained or missing a
    /// target (those win).
    fn overload_decision(&mut self, verdict: &Verdict, now: Instant) -> Decision {
        if verdict.state != ServiceState::Down || self.drain.is_some() || !self.missing.is_empty() {
            return Decision::Normal;
        }
        let announcing = self
            .desired
            .steps
            .iter()
            .any(|(_, state)| *state == RouteState::Announced);
        let may_start = announcing && !self.damping.suppressed();
        self.overload.decide(self.timeouts_only(), may_start, now)
    }

    /// Whether every down check's last failure was a timeout: no answer at all, as from a flooded server.
    fn timeouts_only(&self) -> bool {
        let mut down = self
            .checks
            .iter()
            .filter(|c| c.decided && !c.up && !c.pending)
            .peekable();
        down.peek().is_some()
            && down.all(|c| matches!(c.last_problem, Some(CheckSignal::TimedOut(_))))
    }

    /// Whether every down check's last failure was a refused connection: local evidence that this node's
    /// DNS server is not running, which no other node shares.
    fn local_evidence(&self) -> bool {
        let mut down = self
            .checks
            .iter()
            .filter(|c| c.decided && !c.up && !c.pending)
            .peekable();
        down.peek().is_some()
            && down.all(|c| matches!(c.last_problem, Some(CheckSignal::Refused(_))))
    }

    /// The health verdict from the checks alone.
    fn verdict(&self) -> Verdict {
        let mut counted: Vec<&CheckHealth> = self.checks.iter().filter(|c| !c.pending).collect();
        if counted.is_empty() {
            counted = self.checks.iter().collect();
        }
        let total = counted.len();
        let required = self.combine.required(total);
        let up: Vec<&CheckHealth> = counted.iter().copied().filter(|c| c.up).collect();
        let clean = up.iter().filter(|c| !c.soft).count();
        let down: Vec<&CheckHealth> = counted
            .iter()
            .copied()
            .filter(|c| c.decided && !c.up)
            .collect();
        let undecided: Vec<&CheckHealth> = counted.iter().copied().filter(|c| !c.decided).collect();

        if total == 0 {
            return Verdict {
                state: ServiceState::Down,
                reason: "the service has no checks".to_owned(),
            };
        }
        if up.len() >= required {
            let mut down_note = if down.is_empty() {
                String::new()
            } else {
                format!(
                    " (down but not required: {})",
                    down.iter()
                        .map(|c| c.down_reason(self.rise))
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            };
            let pending: Vec<String> = self
                .checks
                .iter()
                .filter(|c| c.pending)
                .map(|c| format!("{} {}/{}", c.name, c.consecutive_ok, self.rise))
                .collect();
            if !pending.is_empty() {
                down_note.push_str(&format!(
                    " (new check(s) not counted until they decide: {})",
                    pending.join(", ")
                ));
            }
            if clean >= required {
                let mut reason = if total == 1 {
                    format!("check {} passes", up[0].name)
                } else if up.len() == total && clean == total {
                    format!("all {total} checks pass")
                } else {
                    format!(
                        "{clean} of {total} checks pass ({} required){down_note}",
                        self.required_words()
                    )
                };
                if total == 1 || (up.len() == total && clean == total) {
                    reason.push_str(&down_note);
                }
                return Verdict {
                    state: ServiceState::Up,
                    reason,
                };
            }
            let soft: Vec<String> = up
                .iter()
                .filter(|c| c.soft)
                .map(|c| c.soft_reason(self.rise, self.fall))
                .collect();
            return Verdict {
                state: ServiceState::Degraded,
                reason: format!("soft signal: {}{down_note}", soft.join("; ")),
            };
        }
        if down.len() > total - required {
            return Verdict {
                state: ServiceState::Down,
                reason: down
                    .iter()
                    .map(|c| c.down_reason(self.rise))
                    .collect::<Vec<_>>()
                    .join("; "),
            };
        }
        let waiting: Vec<String> = undecided
            .iter()
            .map(|c| format!("{} {}/{}", c.name, c.consecutive_ok, self.rise))
            .collect();
        Verdict {
            state: ServiceState::Starting,
            reason: format!(
                "starting: waiting for checks to pass {} times in a row ({} required): {}; nothing is announced \
                 until then",
                self.rise,
                self.required_words(),
                waiting.join(", ")
            ),
        }
    }

    fn required_words(&self) -> String {
        match self.combine {
            Combine::All => "all".to_owned(),
            Combine::Any => "any".to_owned(),
            Combine::AtLeast(n) => format!("at least {n}"),
        }
    }

    /// Steps announcing `announced` (in config order) and withdrawing every other target of the service.
    fn routes(&self, announced: &[RouteTarget]) -> DesiredRoutes {
        let mut steps: Vec<(RouteTarget, RouteState)> = announced
            .iter()
            .map(|t| (t.clone(), RouteState::Announced))
            .collect();
        for target in self.announce.iter().chain(self.degrade.iter()) {
            if !announced.contains(target) {
                steps.push((target.clone(), RouteState::Withdrawn));
            }
        }
        DesiredRoutes { steps }
    }
}

/// `absorb_for` when the service absorbs overloads (`[service.load]` with `overload = "absorb"`).
fn absorb_policy(config: &ServiceConfig) -> Option<Duration> {
    match config.load.as_ref()?.overload {
        crate::config::OverloadPolicy::Absorb { absorb_for } => Some(absorb_for),
        crate::config::OverloadPolicy::Withdraw => None,
    }
}

/// Rounds up to whole seconds for reasons that would otherwise change on every tick.
fn round_secs(d: Duration) -> Duration {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    Duration::from_secs(secs)
}
