//! The status model: what `/status` serves and `nsbeacon status` reads back, typed end to end.
//!
//! Every stage publishes its part (the reconciler a [`RoutingReport`]); the HTTP layer assembles them and
//! the CLI deserializes the same types, so the JSON has one definition.

use nsbeacon_routing::RouteState;
use serde::{Deserialize, Serialize};

use crate::routes::TargetId;

/// One target as the reconciler sees it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TargetReport {
    /// Kind and name (`bird_protocol` / `anycast_dns`).
    #[serde(flatten)]
    pub id: TargetId,
    /// Services that list this target.
    pub services: Vec<String>,
    /// The merged desired state (withdrawn wins).
    pub desired: RouteState,
    /// What the daemon reported at the last read-back; `None` while unknown.
    pub actual: Option<RouteState>,
    /// The daemon's own words for the target's state (e.g. BIRD's `up`/`down`).
    pub detail: String,
    /// The last error for this target, cleared on success.
    pub last_error: Option<String>,
    /// Whether desired and actual agree.
    pub in_sync: bool,
    /// The BGP daemon answered that this target does not exist (a misspelled name).
    #[serde(default)]
    pub missing: bool,
}

/// The backend as the reconciler sees it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct BackendReport {
    /// `bird` or `frr`.
    pub kind: String,
    /// Whether the daemon answered the last health check.
    pub reachable: bool,
    /// Daemon name and version, when known.
    pub daemon_version: Option<String>,
    /// BGP sessions established.
    pub sessions_up: u32,
    /// BGP sessions configured.
    pub sessions_total: u32,
    /// Why the backend is unreachable, when it is.
    pub error: Option<String>,
    /// Consecutive failed passes in the current outage episode.
    pub consecutive_failures: u32,
}

/// Everything the reconciler publishes about routing.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct RoutingReport {
    /// Backend health.
    pub backend: BackendReport,
    /// Every known target, sorted by kind and name.
    pub targets: Vec<TargetReport>,
    /// When the last complete pass ended (seconds since the Unix epoch).
    pub last_reconcile_unix: Option<f64>,
    /// Whether the first pass has run (the daemon reports ready to systemd after it).
    pub first_pass_done: bool,
}

impl RoutingReport {
    /// The reconciler's view of one target, if it manages it.
    pub fn target(&self, id: &TargetId) -> Option<&TargetReport> {
        self.targets.iter().find(|t| &t.id == id)
    }
}
