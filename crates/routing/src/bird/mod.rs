//! BIRD 2, spoken to directly over its control socket (no `birdc` process per operation).
//!
//! * [`reply`]: the pure reply parser (bytes to coded lines and complete replies).
//! * [`BirdControlSocket`]: one persistent connection, bounded timeouts, reconnect with backoff.
//! * [`BirdBackend`]: the [`RoutingBackend`](crate::RoutingBackend) for BIRD protocols
//!   ([`RouteTarget::BirdProtocol`](crate::RouteTarget::BirdProtocol)), built from a [`BirdConfig`].

mod backend;
mod error;
pub mod reply;
mod socket;

pub use backend::{
    BirdBackend, BirdConfig, DEFAULT_SOCKET, DEFAULT_TIMEOUT, DaemonStatus, ProtocolRow,
    ProtocolState, ToggleOutcome,
};
pub use error::{BirdError, Phase};
pub use socket::BirdControlSocket;
