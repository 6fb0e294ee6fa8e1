//! Health probes for authoritative DNS servers.
//!
//! `nsbeacon-prober` asks a local authoritative server (Knot, NSD, BIND) whether it is really serving and
//! returns a typed verdict. It knows nothing of BGP, configuration files or metrics: callers build a
//! [`ProbeSpec`] or [`SerialSpec`] and get back a [`ProbeOutcome`] or [`SerialOutcome`].
//!
//! A failed probe is data, not an error: `Err` ([`SpecError`]) is reserved for misuse (an invalid spec).
//!
//! # What is checked
//! - [`probe`]: one query over UDP, TCP or both (each must pass on its own); rcode in an allowed set, the
//!   AA flag, a minimum number of answer records of the queried type, an optional expected RDATA value
//!   (exact or substring), a soft latency limit ([`ProbeStatus::Slow`] is its own state), and the
//!   server's identity from the EDNS NSID option or a CHAOS TXT query (always reported, optionally required).
//! - [`check_serial`]: the SOA serial of one zone at the local server against a reference (the hidden
//!   primary), compared with RFC 1982 arithmetic ([`compare_serials`]). "Local is behind"
//!   ([`SerialVerdict::Behind`]) and "reference unreachable" ([`SerialVerdict::ReferenceUnreachable`]) are
//!   different verdicts: a shared dependency failing must not make every node look broken.
//! - [`sweep_serials`] / [`SerialSweep`]: the same for 10,000+ zones, with bounded concurrency, no task or
//!   thread per query, and summary counts ([`SweepSummary`]).
//! - [`sweep_dnssec`] / [`DnssecSweep`] ([`dnssec`]): the RRSIG validity windows of many zones' apex
//!   RRsets (SOA, DNSKEY), on the same sweep engine: expiring, expired, not yet valid, missing.
//!
//! # Bad input from the network
//! Every exchange ends within its timeout whatever the server does, and each misbehaviour has its own
//! [`FailReason`]: silence ([`FailReason::Timeout`]), a closed port ([`FailReason::ConnectionRefused`], at
//! once, also on UDP via ICMP), garbage ([`FailReason::Malformed`]), a wrong message ID
//! ([`FailReason::IdMismatch`]), a wrong question ([`FailReason::QuestionMismatch`]), TC=1 on UDP
//! ([`FailReason::Truncated`]), a TCP reply that stalls after its length prefix
//! ([`FailReason::PartialReply`]), a UDP reply from another address ([`FailReason::UnexpectedSource`]).
//!
//! # Why not hickory-net's client
//! Messages are built and parsed with `hickory-proto` 0.26, but the UDP/TCP exchange is done here on
//! plain tokio sockets. hickory-net's client streams silently discard replies with a wrong ID, a wrong
//! question or from another source and keep waiting (after retries of their own), so all of those become
//! an unexplained timeout, and a stalled TCP reply looks like silence. A health verdict that says
//! *which* of these happened is worth the ~250 lines in the private `wire` module: one fresh socket per
//! exchange, one deadline over connect, send and every read; over UDP the query is sent again (same ID)
//! after a third and two thirds of that deadline when nothing came back, so a lost datagram costs latency,
//! not a failed probe.
//!
//! # Example
//! A probe of a port where nothing listens is a `Fail` outcome, not an error:
//! ```
//! use std::time::Duration;
//! use nsbeacon_prober::proto::rr::{Name, RecordType};
//! use nsbeacon_prober::{
//!     probe, AnswerMatch, Expectations, FailReason, IdentitySpec, ProbeSpec, ProbeStatus, QuerySpec,
//!     SpecError, Transport,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A UDP port nobody listens on: bind one, then release it.
//! let target = std::net::UdpSocket::bind("127.0.0.1:0")?.local_addr()?;
//!
//! let spec = ProbeSpec::new(target, QuerySpec::new(Name::from_ascii("health.example.com.")?, RecordType::TXT))
//!     .with_transport(Transport::Udp)
//!     .with_timeout(Duration::from_millis(500))
//!     .with_expectations(
//!         Expectations::default()
//!             .with_answer(AnswerMatch::Contains("ok".into()))
//!             .with_slow_after(Duration::from_millis(50)),
//!     )
//!     .with_identity(IdentitySpec::nsid(Some("node-a".into())));
//!
//! let outcome = probe(&spec).await?; // `?` only fails for an invalid spec
//! assert_eq!(outcome.status, ProbeStatus::Fail);
//! assert_eq!(outcome.reason, Some(FailReason::ConnectionRefused));
//! assert!(outcome.latency(Transport::Udp).expect("probed") < Duration::from_millis(500));
//! println!("{}: {}", outcome.status, outcome.reason.expect("failed"));
//!
//! // Misuse is an error, with a message that says how to fix it.
//! let err = probe(&spec.clone().with_edns_payload(100)).await.expect_err("payload below 512");
//! assert_eq!(err, SpecError::PayloadTooSmall(100));
//! # Ok(())
//! # }
//! ```
//! The integration tests (`tests/knot.rs`, `tests/sweep.rs`) run the same calls against real Knot DNS
//! instances; `examples/sweep.rs` times a 10,000-zone sweep.

pub mod dnssec;
mod error;
pub mod outcome;
mod probe;
pub mod serial;
pub mod spec;
mod sweep;
mod wire;

pub use dnssec::{
    DnssecReport, DnssecSummary, DnssecSweep, ExpiryVerdict, ZoneExpiry, sweep_dnssec,
};
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
