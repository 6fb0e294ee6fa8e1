//! The overload policy ("absorb, don't withdraw") as health sees it: a pure overlay on the `down` verdict,
//! like the fleet guard.
//!
//! During the 2015 root DNS attacks sites took about 100 times their normal load; the sites that withdrew
//! pushed the attack and their good traffic onto their neighbours, and the ones that absorbed it kept
//! serving most of their users (Moura et al., IMC 2016). A flood makes probes time out, so without this
//! policy nsbeacon would be the thing that withdraws the node and passes the attack on.
//!
//! With `[service.load]` and `overload = "absorb"` (the default), when
//!
//! - the checks would take the service `down`, and every down check's last failure was a timeout
//!   ([`CheckSignal::TimedOut`](super::CheckSignal::TimedOut): no answer at all; a refused connection
//!   means the server is not running, a wrong answer means it is broken, neither is overload), and
//! - the load task says the server is overloaded, and
//! - the service announces something now (an absorption keeps a route, it never re-announces a
//!   withdrawn one) and flap damping does not suppress it,
//!
//! the service is `degraded` instead: the degrade targets are announced (a longer AS path or a
//! community, so the node keeps its catchment but draws less), or the normal targets stay if it has
//! none. This lasts until the overload ends (the load task needs several calm readings) or for at most
//! `absorb_for` from the start of the absorption; after that the normal rules apply for the rest of the
//! overload (a node that stays unanswering that long may be broken, not busy). The clock is per
//! overload episode: passing probes in between do not restart it.
//!
//! Precedence: a drain and a missing target win over an absorption (an operator's decision, nothing to
//! announce); an absorption wins over the fleet guard (it does not withdraw, so there is nothing to ask),
//! and when it ends the withdrawal goes through the guard as usual. Absorbing counts as announcing for
//! flap damping, so riding out a flood adds no penalty.

use std::time::{Duration, Instant};

/// One service's overload state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Overload {
    /// `absorb_for` with `overload = "absorb"`; `None` with `"withdraw"` or without `[service.load]`.
    pub policy: Option<Duration>,
    /// The load task's verdict: `Some(detail)` while the server is overloaded.
    pub signal: Option<String>,
    /// When the current episode's absorption started.
    pub since: Option<Instant>,
    /// `absorb_for` ran out in this episode: the normal rules apply until the overload ends.
    pub spent: bool,
    /// Whether the last evaluation absorbed (the service is degraded because of the overload).
    pub absorbing: bool,
}

/// What [`Overload::decide`] says about one `down` verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Decision {
    /// Not the overlay's business: the normal rules.
    Normal,
    /// Absorb: keep announcing, degraded; `left` of `absorb_for` remains.
    Absorb {
        /// Time left in this absorption.
        left: Duration,
    },
    /// This episode's absorption ran out: the normal rules, with a note for the reason.
    Spent {
        /// The `absorb_for` that ran out.
        absorb_for: Duration,
    },
}

impl Overload {
    /// A new load verdict; an overload that ends closes the episode.
    pub fn set_signal(&mut self, signal: Option<String>) {
        if signal.is_none() {
            self.since = None;
            self.spent = false;
        }
        self.signal = signal;
    }

    /// A new policy (start, reload). Switching to `withdraw` ends any absorption at once.
    pub fn set_policy(&mut self, policy: Option<Duration>) {
        self.policy = policy;
        if policy.is_none() {
            self.since = None;
            self.spent = false;
        }
    }

    /// Decides for a `down` verdict. `timeouts_only`: every down check's last failure timed out;
    /// `announcing`: the service announces now and is not suppressed (an absorption keeps routes, it
    /// never brings back withdrawn ones: after a drain, say).
    pub fn decide(&mut self, timeouts_only: bool, announcing: bool, now: Instant) -> Decision {
        let (Some(absorb_for), Some(_)) = (self.policy, &self.signal) else {
            return Decision::Normal;
        };
        if self.spent {
            return Decision::Spent { absorb_for };
        }
        if !timeouts_only || !announcing {
            return Decision::Normal;
        }
        let since = *self.since.get_or_insert(now);
        let elapsed = now.saturating_duration_since(since);
        if elapsed >= absorb_for {
            self.spent = true;
            return Decision::Spent { absorb_for };
        }
        Decision::Absorb {
            left: absorb_for - elapsed,
        }
    }
}
