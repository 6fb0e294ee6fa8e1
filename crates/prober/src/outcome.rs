//! What a probe saw. Failures are values here, never `Err`.

use std::time::Duration;

use hickory_proto::op::ResponseCode;

use crate::spec::Transport;

/// Overall verdict of a query probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeStatus {
    /// Every expectation met within the soft latency limit.
    Pass,
    /// Every expectation met, but slower than the soft latency limit: answering, yet degraded.
    Slow,
    /// Some expectation not met; see [`FailReason`].
    Fail,
}

/// Why a probe failed. One value per failure mode an operator needs to tell apart.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailReason {
    /// No (acceptable) reply within the timeout.
    Timeout,
    /// The target refused the connection or replied with ICMP port unreachable.
    ConnectionRefused,
    /// Another I/O error (network unreachable, reset, ...).
    Io(String),
    /// The reply's rcode is not in the allowed set.
    UnexpectedRcode(ResponseCode),
    /// The reply lacks the AA flag.
    NotAuthoritative,
    /// Fewer answer records than required.
    EmptyAnswer {
        /// Records found.
        found: usize,
        /// Records required.
        required: usize,
    },
    /// No answer record matched the expected value.
    AnswerMismatch {
        /// What was expected.
        expected: String,
        /// What was seen (RDATA presentation forms).
        found: Vec<String>,
    },
    /// The server's identity differs from the expected one.
    IdentityMismatch {
        /// What was expected.
        expected: String,
        /// What was seen, if anything.
        found: Option<String>,
    },
    /// The local zone is behind the reference by more than the allowed lag.
    SerialBehind {
        /// Local serial.
        local: u32,
        /// Reference serial.
        reference: u32,
        /// RFC 1982 distance.
        lag: u32,
    },
    /// The reply could not be parsed, or is not a reply to our question.
    Malformed(String),
    /// TC=1 on UDP: the answer did not fit.
    Truncated,
}

/// What one transport's exchange measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportResult {
    /// Which transport (never `Both`).
    pub transport: Transport,
    /// Time from send to a complete reply, or to the failure.
    pub latency: Duration,
    /// Verdict for this transport alone.
    pub status: ProbeStatus,
    /// Why it failed, if it did.
    pub reason: Option<FailReason>,
    /// The rcode seen, if a reply was parsed.
    pub rcode: Option<ResponseCode>,
    /// Answer records seen, as RDATA presentation forms.
    pub answers: Vec<String>,
}

/// Outcome of one [`crate::ProbeSpec`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeOutcome {
    /// Combined verdict: `Fail` if any transport failed, else `Slow` if any was slow, else `Pass`.
    pub status: ProbeStatus,
    /// The first failure reason, if any.
    pub reason: Option<FailReason>,
    /// Per-transport details (one entry, or two for `Both`).
    pub transports: Vec<TransportResult>,
    /// The identity observed (NSID or CHAOS TXT), always reported when seen.
    pub identity: Option<String>,
}

/// Serial freshness verdict. "Local is behind" and "reference unreachable" are different facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SerialVerdict {
    /// Same serial, or local ahead of the reference.
    InSync,
    /// Local behind the reference by at most `max_lag`.
    Lagging,
    /// Local behind the reference by more than `max_lag`: a local failure.
    Behind,
    /// The local server did not give a usable SOA: a local failure.
    LocalFailed(FailReason),
    /// The reference did not answer usably. NOT a local failure: a shared dependency is down.
    ReferenceUnreachable(FailReason),
}

/// Outcome of one [`crate::SerialSpec`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerialOutcome {
    /// The verdict.
    pub verdict: SerialVerdict,
    /// Local SOA serial, if seen.
    pub local_serial: Option<u32>,
    /// Reference SOA serial, if seen.
    pub reference_serial: Option<u32>,
    /// RFC 1982 distance reference minus local, when both were seen and local is not ahead.
    pub lag: Option<u32>,
    /// Latency of the local SOA exchange.
    pub local_latency: Option<Duration>,
    /// Latency of the reference SOA exchange.
    pub reference_latency: Option<Duration>,
}
