//! Health probes for authoritative DNS servers.
//!
//! `nsbeacon-prober` asks a local authoritative server (Knot, NSD, BIND) whether it is really serving and
//! returns a typed verdict. It knows nothing of BGP, configuration files or metrics: callers build a
//! [`ProbeSpec`] or [`SerialSpec`] and get back a [`ProbeOutcome`] or [`SerialOutcome`].
//!
//! A failed probe is data, not an error: `Err` is reserved for misuse (an invalid spec).

pub mod outcome;
pub mod spec;

pub use hickory_proto as proto;
pub use outcome::*;
pub use spec::*;
