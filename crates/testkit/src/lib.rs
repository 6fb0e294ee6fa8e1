//! Test support shared by nsbeacon's crates.
//!
//! Tests run real daemons (Knot, NSD, BIND, BIRD 2, FRR, etcd) as root with their own config, sockets and PID
//! files in a temp dir. Everything a test starts is owned by a guard that kills it by PID on drop, so a
//! failing or panicking test leaves nothing behind. A missing binary is a test failure, never a skip.

pub mod bird;
pub mod dnssec;
pub mod etcd;
pub mod frr;
pub mod knot;
pub mod net;
pub mod netns;
pub mod process;
pub mod relay;

pub use net::free_port;
pub use process::{DaemonGuard, Signal, require_binary, wait_until};
