//! Announce and withdraw anycast routes through the local BGP daemon, and read back what it really does.
//!
//! The daemon talks to a BGP daemon only through [`RoutingBackend`], so BIRD 2 (spoken to over its control
//! socket) and FRR (over one persistent connection to bgpd's vty socket, or through `vtysh`) are
//! interchangeable. This crate knows nothing of DNS.

pub mod backoff;
pub mod bird;
pub mod frr;
mod name;
mod reconnect;
mod socket_owner;
pub mod target;

pub use backoff::Backoff;
pub use target::*;

use std::future::Future;
use std::time::Duration;

/// Whether a route target is (to be) announced or withdrawn; `announced` / `withdrawn` in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RouteState {
    /// The target's routes are offered to BGP peers.
    Announced,
    /// The target's routes are not offered.
    Withdrawn,
}

impl RouteState {
    /// `announced` or `withdrawn`: the word logs, metrics and `/status` use.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteState::Announced => "announced",
            RouteState::Withdrawn => "withdrawn",
        }
    }
}

/// A value together with how long the backend operation that produced it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timed<T> {
    /// The result.
    pub value: T,
    /// Wall-clock duration of the operation (the daemon exports it).
    pub elapsed: Duration,
}

/// What the backend reports for one target.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TargetStatus {
    /// Announced or withdrawn, as the daemon really has it.
    pub state: RouteState,
    /// Daemon-specific detail for humans (e.g. BIRD protocol state `up`, `down`, `start`).
    pub detail: String,
}

/// The backend's own health, for `/status` and metrics.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct BackendHealth {
    /// Whether the daemon answered.
    pub reachable: bool,
    /// Daemon name and version, e.g. `BIRD 2.0.12`, `FRRouting 8.4.4`.
    pub daemon_version: Option<String>,
    /// BGP sessions established.
    pub sessions_up: u32,
    /// BGP sessions configured.
    pub sessions_total: u32,
    /// Why the daemon is unreachable, when it is.
    pub error: Option<String>,
}

/// A BGP peer's session, as the BGP daemon reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PeerSession {
    /// The peer's name as the daemon knows it: a BIRD protocol name, an FRR neighbor address or interface.
    pub peer: String,
    /// Whether the BGP session is established (only then can a route reach the peer).
    pub established: bool,
    /// The daemon's own word for the session state (`Established`, `Active`, `Connect`, `down`, ...).
    pub state: String,
    /// The BFD session state towards the peer (`up`, `down`, `init`, ...), where the daemon runs BFD for it.
    pub bfd: Option<String>,
}

/// Whether the BGP daemon exports one target's route to one peer: the proof that an announcement left the
/// node, not just that the daemon holds the route.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PeerExport {
    /// The peer and its session.
    pub session: PeerSession,
    /// Whether the target's route (every prefix of it) is in what the daemon exports to this peer.
    pub exported: bool,
}

/// The one interface between nsbeacon's reconciler and a BGP daemon.
///
/// Every operation is idempotent (announcing an announced target succeeds) and bounded by the backend's
/// configured timeout.
pub trait RoutingBackend: Send + Sync {
    /// Make `target` announced or withdrawn.
    fn set(
        &self,
        target: &RouteTarget,
        state: RouteState,
    ) -> impl Future<Output = Result<Timed<()>, RoutingError>> + Send;

    /// Read what the daemon really does with `target`.
    fn read(
        &self,
        target: &RouteTarget,
    ) -> impl Future<Output = Result<Timed<TargetStatus>, RoutingError>> + Send;

    /// The daemon's health: reachable, version, BGP sessions.
    fn health(&self) -> impl Future<Output = BackendHealth> + Send;

    /// For every BGP peer the daemon has, its session and whether `target`'s route is exported to it
    /// (BIRD: `show route export <peer>`; FRR: `show bgp ... neighbors <peer> advertised-routes json`).
    /// Read-only, bounded by the backend's timeout like the other operations. A backend that cannot tell
    /// answers [`RoutingError::ExportsUnsupported`], which callers show as "unknown", never as "0 peers".
    fn exports(
        &self,
        target: &RouteTarget,
    ) -> impl Future<Output = Result<Timed<Vec<PeerExport>>, RoutingError>> + Send {
        let backend = self.name();
        let _ = target;
        std::future::ready(Err(RoutingError::ExportsUnsupported { backend }))
    }

    /// The backend's name in messages (`bird`, `frr`).
    fn name(&self) -> &'static str;
}

/// Errors from a routing backend, with enough context to act on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RoutingError {
    /// A target of the wrong kind for this backend (e.g. an FRR prefix given to BIRD).
    #[error("route target {target} is not supported by the {backend} backend")]
    UnsupportedTarget {
        /// The target.
        target: String,
        /// The backend's name.
        backend: &'static str,
    },
    /// The backend cannot say what it exports to its peers.
    #[error("the {backend} backend cannot read what it exports to its BGP peers")]
    ExportsUnsupported {
        /// The backend's name.
        backend: &'static str,
    },
    /// The BIRD backend failed.
    #[error(transparent)]
    Bird(#[from] bird::BirdError),
    /// The FRR backend failed.
    #[error(transparent)]
    Frr(#[from] frr::FrrError),
}

impl RoutingError {
    /// Whether the BGP daemon answered that the target does not exist (a BIRD protocol or an FRR
    /// neighbor missing from its config, usually a misspelled name): a configuration error, not an
    /// outage, so the daemon reports it as such instead of retrying quietly.
    pub fn is_missing_target(&self) -> bool {
        matches!(
            self,
            RoutingError::Bird(bird::BirdError::UnknownProtocol { .. })
                | RoutingError::Frr(frr::FrrError::UnknownNeighbor { .. })
        )
    }
}
