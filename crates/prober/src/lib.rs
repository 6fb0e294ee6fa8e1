//! Health probes for authoritative DNS servers.
//!
//! `nsbeacon-prober` asks a local authoritative server (Knot, NSD, BIND) whether it is really serving and
//! returns a typed verdict. It knows nothing of BGP, configuration files or metrics: callers build a
//! [`ProbeSpec`] or [`SerialSpec`] and get back a [`ProbeOutcome`] or [`SerialOutcome`].
//!
//! A failed probe is data, not an error: `Err` is reserved for misuse (an invalid spec).

mod error;
pub mod outcome;
mod probe;
pub mod serial;
pub mod spec;
mod sweep;
mod wire;

pub use error::SpecError;
pub use hickory_proto as proto;
pub use outcome::*;
pub use probe::{check_serial, probe};
pub use serial::{SerialOrder, compare_serials, serial_add, serial_lt};
pub use spec::*;
pub use sweep::{
    DEFAULT_SWEEP_CONCURRENCY, SerialSweep, SweepReport, SweepSummary, ZoneLag, ZoneSerial,
    sweep_serials,
};
