//! FRR, over one persistent connection to bgpd's vty socket (the default) or through `vtysh` (argv, never
//! a shell).
//!
//! Two ways to reach bgpd ([`FrrTransport`]), with the same commands and the same errors:
//! - [`FrrTransport::VtySocket`]: one persistent connection to `bgpd.vty`, the socket `vtysh` itself
//!   connects to, speaking its framing (a NUL-terminated command, the output followed by `\0\0\0` and
//!   FRR's status code). About 1 ms per operation, so a withdrawal reaches the peer ~50 ms after the
//!   decision (bgpd's own work-queue hold). It needs the same access as vtysh (group `frrvty`).
//! - [`FrrTransport::Vtysh`]: one `vtysh -c ...` process per call, FRR's documented command-line client.
//!   Each process costs 30-40 ms (it connects to every daemon and reads `vtysh.conf`); a withdrawal takes
//!   two calls (read, then write), so the peer sees it ~120 ms after the decision. Use it when the vty
//!   framing must not be relied on, or to reach an instance only `vtysh -N`/`--vty_socket` can name.
//!
//! Two kinds of targets:
//! - [`RouteTarget::FrrNetwork`](crate::RouteTarget::FrrNetwork): `network P [route-map M]` / `no network P` under `router bgp ASN [vrf V]`
//!   and `address-family ipv4|ipv6 unicast`. The BGP session stays up and only the prefix comes and goes.
//!   A target is one *variant* of a prefix ([`FrrNetwork`](crate::FrrNetwork): the prefix and an optional route-map); FRR holds at most one `network` statement per prefix, so the
//!   healthy route (no route-map) and a degraded one (`route-map NSBEACON-DEGRADED`, frr-templates/) are
//!   variants of the same statement, and `network P route-map M` switches between them in place (the peer
//!   sees an update, never a withdrawal). Read-back: announced iff bgpd's running config has
//!   `network P` with exactly that route-map (the BGP JSON does not tell the route-map) and
//!   `show bgp [vrf V] ipv4|ipv6 unicast P json` has a valid path from a `network` statement.
//! - [`RouteTarget::FrrNeighbor`](crate::RouteTarget::FrrNeighbor): `neighbor X shutdown` / `no neighbor X shutdown`. Withdrawing drops every
//!   prefix on that session and looks like a flap upstream; re-announcing waits for the session to
//!   re-establish (about 2 s). Read-back: `adminShutDown` in `show bgp [vrf V] neighbors X json`.
//!
//! Idempotence and variants: setting a network first reads the running config. Announcing `(P, M)` is a
//! no-op when P is configured with exactly M, and otherwise `network P [route-map M]` (which replaces
//! another route-map, or clears it for the plain variant). Withdrawing `(P, M)` sends `no network P
//! [route-map M]` only when P is configured with exactly M: when another variant of P is active, `(P, M)`
//! is already withdrawn and removing the statement would take the other variant's route down too. So the
//! daemon's make-before-break (announce the new variant, then withdraw the old one) switches P in place,
//! with no gap at the peer. `% Can't find static route specified` and `% route-map name doesn't match static
//! route` on a withdrawal (someone changed the config between the read and the command) also count as
//! "already withdrawn". `neighbor X [no] shutdown` is idempotent in FRR itself.
//!
//! The local ASN is read from `show bgp [vrf V] summary json` (or, for an instance without peers, from the
//! `router bgp` line of `show running-config`) and cached; a configured ASN is checked against it once, so
//! `router bgp ASN` never creates a new BGP instance by accident.
//!
//! nsbeacon never runs `write memory`: the running configuration is the state, and after an FRR restart the
//! reconciler asserts it again.

mod backend;
mod config;
mod error;
mod gate;
mod readback;
mod types;
mod vty_socket;
mod vtysh;

pub use backend::FrrBackend;
pub use config::{
    DEFAULT_BGPD_VTY_SOCKET, DEFAULT_PLAIN_METRIC, FrrAnnounce, FrrConfig, FrrTransport,
    KernelMetrics,
};
pub use error::FrrError;
pub use gate::{DEFAULT_KERNEL_ROUTE_PROTOCOL, KernelRouteGate, protocol_problem};
pub use types::{Asn, VrfName};
