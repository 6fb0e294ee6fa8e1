//! BIRD 2, spoken to directly over its control socket (no `birdc` process per operation).
//!
//! * [`reply`]: the pure reply parser (bytes to coded lines and complete replies).
//! * [`BirdControlSocket`]: one persistent connection, bounded timeouts, reconnect with backoff.
//! * [`BirdBackend`]: the [`RoutingBackend`](crate::RoutingBackend) for BIRD protocols
//!   ([`RouteTarget::BirdProtocol`](crate::RouteTarget::BirdProtocol)), built from a [`BirdConfig`].
//! * [`DecisionDir`]: the decision files the templates include, so `birdc configure` and BIRD restarts keep
//!   what nsbeacon decided.
//! * [`BirdLogWatch`]: BIRD's log echoed on a dedicated connection, so the daemon reads back at once when
//!   BIRD reconfigures or restarts.

mod backend;
mod decision;
mod error;
pub mod exports;
mod log_watch;
pub mod reply;
mod socket;

pub use backend::{
    BirdBackend, BirdConfig, DEFAULT_SOCKET, DEFAULT_TIMEOUT, DaemonStatus, ProtocolRow,
    ProtocolState, ToggleOutcome,
};
pub use decision::{Decision, DecisionDir};
pub use error::{BirdError, Phase};
pub use log_watch::{BirdLogEvent, BirdLogWatch};
pub use socket::BirdControlSocket;
