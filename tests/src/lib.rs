//! End-to-end lab for nsbeacon: network namespaces, an upstream BIRD router, the node's DNS and BGP daemons.
//!
//! [`lab::Lab`] builds the topology from the templates operators copy (`bird-templates/`, `frr-templates/`),
//! so what ships is what is tested. Assertions read the upstream router's RIB, the way an operator judges
//! whether a node announces: [`lab::Lab::upstream_has_route`] and [`lab::Lab::wait_for_route`].
//!
//! [`beacon`] runs nsbeacon in a lab the way the scenarios (`tests/scenarios_*.rs`, issue 5) drive it:
//! [`beacon::BeaconConfig`] writes its config, [`beacon::Beacon`] starts, signals and queries it
//! (`/status`, `/metrics`, the CLI), and [`beacon::RouteWatch`] records every change the upstream sees
//! between two steps, for "never withdrawn", "never announced" and "at most N changes" assertions.

pub mod beacon;
pub mod dns;
pub mod fleet;
pub mod lab;
pub mod nsbeacon;
pub mod relay;
pub mod render;
pub mod route;

pub use dns::{DnsServerKind, LabDns};
pub use lab::{Lab, LabError, LabOptions, NodeBgp, NodeBgpKind};
pub use route::RouteInfo;
