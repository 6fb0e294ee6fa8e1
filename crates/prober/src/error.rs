//! Misuse of the API: a spec that cannot be probed as written. Network failures are never errors here; they
//! are [`crate::FailReason`] values inside an outcome.

use std::time::Duration;

use hickory_proto::rr::Name;

/// Why a spec was rejected before any packet was sent. Each message names the field and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// A timeout of zero would fail every probe without sending anything.
    #[error("{field} is zero: set a timeout of at least 1 ms (typically 500 ms to 2 s)")]
    ZeroTimeout {
        /// Which timeout field (e.g. `ProbeSpec.timeout`).
        field: &'static str,
    },
    /// An absurdly long timeout would let one probe stall a health loop.
    #[error(
        "{field} is {value:?}: timeouts above {max:?} are rejected; a health probe must fail fast"
    )]
    TimeoutTooLong {
        /// Which timeout field.
        field: &'static str,
        /// The value given.
        value: Duration,
        /// The largest accepted value.
        max: Duration,
    },
    /// RFC 6891 forbids advertising an EDNS UDP payload below 512 bytes.
    #[error(
        "ProbeSpec.edns_payload is {0}: it must be at least 512 (RFC 6891); 1232 is the usual choice"
    )]
    PayloadTooSmall(u16),
    /// The allowed rcode set is empty, so no reply could ever pass.
    #[error(
        "Expectations.rcodes is empty: no reply could pass; list at least one rcode (usually NOERROR)"
    )]
    NoAllowedRcodes,
    /// An expected answer or identity value is the empty string, which cannot mean what was intended.
    #[error(
        "{field} is an empty string: remove it to only report the value, or set the value to require"
    )]
    EmptyExpectedValue {
        /// Which field.
        field: &'static str,
    },
    /// A query or zone name must be absolute (fully qualified) to mean the same thing everywhere.
    #[error("{field} `{name}` is not fully qualified: write it with a trailing dot (`{name}.`)")]
    RelativeName {
        /// Which field.
        field: &'static str,
        /// The name given.
        name: Name,
    },
    /// A serial check needs exactly one SOA answer per server.
    #[error(
        "{field} is `Both`: a serial check compares one SOA per server; choose `Udp` or `Tcp` (probe both transports with a ProbeSpec)"
    )]
    BothTransportForSerial {
        /// Which field.
        field: &'static str,
    },
    /// The CHAOS identity query needs a name such as `id.server.` or `hostname.bind.`.
    #[error("IdentitySource::ChaosTxt name is the root: use `id.server.` or `hostname.bind.`")]
    EmptyChaosName,
    /// A batch with no concurrency would never finish.
    #[error(
        "SerialSweep.concurrency is 0: allow at least 1 query in flight (64 to 512 is typical)"
    )]
    ZeroConcurrency,
    /// A DNSSEC sweep with no RRset types would read no signature.
    #[error(
        "DnssecSweep.types is empty: list the apex RRsets whose RRSIGs are read, e.g. SOA and DNSKEY"
    )]
    NoDnssecTypes,
    /// `fail_before` must be below `warn_before`, or no zone could ever be only degraded.
    #[error(
        "DnssecSweep.fail_before is not below warn_before: a zone must pass through `expiring` (soft) before `critical` (hard)"
    )]
    ThresholdsOutOfOrder,
}
