//! Route targets: the things nsbeacon announces and withdraws, validated before they reach a daemon.

use std::fmt;

/// One thing the reconciler can announce or withdraw.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RouteTarget {
    /// A BIRD protocol (usually a `static` protocol holding the anycast prefixes): enable/disable.
    BirdProtocol(BirdProtocolName),
    /// An FRR `network` statement under `router bgp` / `address-family`.
    FrrNetwork(ipnet::IpNet),
    /// An FRR BGP neighbor: `neighbor X shutdown` withdraws everything on that session.
    FrrNeighbor(FrrNeighbor),
}

impl fmt::Display for RouteTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteTarget::BirdProtocol(p) => write!(f, "bird protocol {p}"),
            RouteTarget::FrrNetwork(n) => write!(f, "frr network {n}"),
            RouteTarget::FrrNeighbor(n) => write!(f, "frr neighbor {n}"),
        }
    }
}

/// A BIRD protocol name that is safe to send on the control socket: BIRD symbol syntax, no glob characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BirdProtocolName(String);

impl BirdProtocolName {
    /// The name as BIRD knows it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BirdProtocolName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An FRR BGP neighbor: an IP address or an interface name (unnumbered BGP).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FrrNeighbor {
    /// A numbered neighbor.
    Address(std::net::IpAddr),
    /// An unnumbered neighbor on an interface.
    Interface(String),
}

impl fmt::Display for FrrNeighbor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrrNeighbor::Address(a) => write!(f, "{a}"),
            FrrNeighbor::Interface(i) => f.write_str(i),
        }
    }
}
