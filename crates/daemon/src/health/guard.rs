//! The fleet guard as health sees it: a pure overlay on the `down` verdict.
//!
//! With `[fleet]` configured, a withdrawal that health decides (checks down, or flap damping) is not taken
//! at once: the service keeps its routes while the service task asks etcd whether enough other nodes would
//! still announce the service afterwards (`Member::try_withdraw`, bounded by `guard_timeout`). The answer
//! comes back through [`ServiceHealth::guard_answered`](super::ServiceHealth::guard_answered):
//!
//! - allowed: the service goes `down` and withdraws, as without a fleet;
//! - held: the service goes `held` and announces its degrade targets (or keeps its normal ones if it has
//!   none); whenever the fleet view changes the task asks again
//!   ([`ServiceHealth::guard_retry`](super::ServiceHealth::guard_retry));
//! - etcd unavailable: `on_unavailable = "local"` withdraws (decided locally, as without a fleet),
//!   `"hold"` keeps the routes like a hold until etcd answers.
//!
//! What the guard never covers: drains and the shutdown withdrawal (an operator's decision), targets the
//! BGP daemon does not have (nothing can be announced anyway), a service that announces nothing yet
//! (nothing to withdraw), and, unless `guard_all_failures`, failures with local evidence: a DNS server
//! that refuses connections is not running on this node, no other node shares that, and keeping such a
//! node announced only blackholes its share of the queries.

use crate::config::OnUnavailable;

/// How this service's withdrawals pass the fleet guard; `None` in [`super::ServiceHealth`] without
/// `[fleet]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuardPolicy {
    /// Also hold failures with local evidence (connection refused). Default false.
    pub all_failures: bool,
    /// What a withdrawal does when etcd does not answer in time.
    pub on_unavailable: OnUnavailable,
}

/// The fleet guard's answer to one question, as health needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuardAnswer {
    /// The withdrawal may go ahead: `announcing` other nodes still announce, `needed` had to.
    Allowed {
        /// Other nodes announcing.
        announcing: usize,
        /// How many had to.
        needed: usize,
    },
    /// Too few other nodes would announce: keep announcing.
    Held {
        /// Other nodes announcing.
        announcing: usize,
        /// How many must, after a withdrawal.
        needed: usize,
    },
    /// etcd did not answer within the guard's bound (or this node has no lease yet).
    Unavailable {
        /// What went wrong, for the reason.
        error: String,
    },
}

/// Where a service's guarded withdrawal stands.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) enum GuardState {
    /// No guarded withdrawal: the service is not failing (or the guard does not apply).
    #[default]
    Idle,
    /// A guarded withdrawal waits for an answer; `asked` once the service task has sent the question.
    /// Meanwhile the service keeps its routes.
    Waiting {
        /// Whether the question is out.
        asked: bool,
        /// Why the checks want the withdrawal (the reason the withdrawn record will carry).
        reason: String,
        /// Why the guard held the service before, when this question is a retry of a held service.
        held: Option<String>,
    },
    /// Withdraw, for the rest of this failure: `note` says why the guard let it (appended to the reason).
    Withdraw {
        /// "the fleet guard allowed it: ..." or "etcd unavailable, decided locally: ...".
        note: String,
    },
    /// Keep announcing: `why` in words.
    Held {
        /// Why the guard holds.
        why: String,
    },
}

impl GuardState {
    /// The state after `answer` under `policy`. `held` says why the service was held before this question
    /// (a retry): etcd failing to answer a retry keeps it held whatever `on_unavailable` says, because the
    /// last answer etcd gave was that the fleet needs this node, and a slow etcd does not change that.
    pub(super) fn answered(
        answer: GuardAnswer,
        policy: GuardPolicy,
        held: Option<String>,
    ) -> GuardState {
        if let (GuardAnswer::Unavailable { error }, Some(why)) = (&answer, held) {
            return GuardState::Held {
                why: format!("{why} (etcd did not answer the retry: {error}; still held)"),
            };
        }
        match answer {
            GuardAnswer::Allowed { announcing, needed } => GuardState::Withdraw {
                note: format!(
                    "the fleet guard allowed the withdrawal ({announcing} other node(s) announce, {needed} required)"
                ),
            },
            GuardAnswer::Held { announcing, needed } => GuardState::Held {
                why: format!(
                    "only {announcing} other node(s) announce the service and min_announcing requires {needed} \
                     after a withdrawal; retried whenever the fleet changes"
                ),
            },
            GuardAnswer::Unavailable { error } => match policy.on_unavailable {
                OnUnavailable::Local => GuardState::Withdraw {
                    note: format!(
                        "the fleet guard could not ask etcd ({error}); decided locally (on_unavailable = \"local\")"
                    ),
                },
                OnUnavailable::Hold => GuardState::Held {
                    why: format!(
                        "the fleet guard could not ask etcd ({error}); on_unavailable = \"hold\" keeps the routes \
                         until etcd answers"
                    ),
                },
            },
        }
    }
}
