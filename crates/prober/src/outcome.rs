//! What a probe saw. Failures are values here, never `Err`.

use std::fmt;
use std::net::SocketAddr;
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
    /// The only replies carried another message ID (UDP: ignored until the timeout; TCP: at once).
    IdMismatch {
        /// The ID we sent.
        expected: u16,
        /// The ID in the reply.
        found: u16,
    },
    /// The reply had our ID but answered another question.
    QuestionMismatch {
        /// The question sent, as `name class type`.
        expected: String,
        /// The question in the reply, or `(none)`.
        found: String,
    },
    /// The only UDP replies came from an address other than the target (ignored until the timeout).
    UnexpectedSource {
        /// Where the query went.
        expected: SocketAddr,
        /// Where a reply came from.
        from: SocketAddr,
    },
    /// TCP: the connection stalled or closed part-way through a reply.
    PartialReply {
        /// Reply length announced by the 2-byte prefix (`None` when even the prefix was incomplete).
        announced: Option<u16>,
        /// Bytes of the message received before the stall or close.
        received: usize,
    },
}

impl FailReason {
    /// A short stable label for metrics and logs (`timeout`, `refused`, `rcode`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            FailReason::Timeout => "timeout",
            FailReason::ConnectionRefused => "refused",
            FailReason::Io(_) => "io",
            FailReason::UnexpectedRcode(_) => "rcode",
            FailReason::NotAuthoritative => "not_authoritative",
            FailReason::EmptyAnswer { .. } => "empty_answer",
            FailReason::AnswerMismatch { .. } => "answer_mismatch",
            FailReason::IdentityMismatch { .. } => "identity_mismatch",
            FailReason::SerialBehind { .. } => "serial_behind",
            FailReason::Malformed(_) => "malformed",
            FailReason::Truncated => "truncated",
            FailReason::IdMismatch { .. } => "id_mismatch",
            FailReason::QuestionMismatch { .. } => "question_mismatch",
            FailReason::UnexpectedSource { .. } => "unexpected_source",
            FailReason::PartialReply { .. } => "partial_reply",
        }
    }
}

impl fmt::Display for FailReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailReason::Timeout => f.write_str("no reply within the timeout"),
            FailReason::ConnectionRefused => {
                f.write_str("connection refused (nothing listening on the target address/port)")
            }
            FailReason::Io(e) => write!(f, "I/O error: {e}"),
            FailReason::UnexpectedRcode(rcode) => write!(f, "unexpected rcode {rcode}"),
            FailReason::NotAuthoritative => f.write_str(
                "reply lacks the AA flag: the server does not serve this zone authoritatively",
            ),
            FailReason::EmptyAnswer { found, required } => {
                write!(
                    f,
                    "{found} answer record(s) of the queried type, {required} required"
                )
            }
            FailReason::AnswerMismatch { expected, found } => {
                write!(f, "no answer matched {expected:?}; answers were {found:?}")
            }
            FailReason::IdentityMismatch { expected, found } => match found {
                Some(found) => write!(f, "answered by {found:?}, expected {expected:?}"),
                None => write!(f, "no identity reported, expected {expected:?}"),
            },
            FailReason::SerialBehind {
                local,
                reference,
                lag,
            } => write!(
                f,
                "local serial {local} is {lag} behind reference serial {reference}"
            ),
            FailReason::Malformed(detail) => write!(
                f,
                "the server's reply is not a valid DNS message ({detail})"
            ),
            FailReason::Truncated => f.write_str("UDP reply truncated (TC=1)"),
            FailReason::IdMismatch { expected, found } => {
                write!(
                    f,
                    "reply carried message ID {found:#06x}, expected {expected:#06x}"
                )
            }
            FailReason::QuestionMismatch { expected, found } => {
                write!(f, "reply answers question `{found}`, expected `{expected}`")
            }
            FailReason::UnexpectedSource { expected, from } => {
                write!(
                    f,
                    "UDP reply came from {from}, not from the target {expected}"
                )
            }
            FailReason::PartialReply {
                announced: Some(len),
                received,
            } => write!(
                f,
                "TCP reply stalled or closed after {received} of {len} announced bytes"
            ),
            FailReason::PartialReply {
                announced: None,
                received,
            } => write!(
                f,
                "TCP reply stalled or closed after {received} byte(s) of the length prefix"
            ),
        }
    }
}

impl fmt::Display for ProbeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProbeStatus::Pass => "pass",
            ProbeStatus::Slow => "slow",
            ProbeStatus::Fail => "fail",
        })
    }
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

impl ProbeOutcome {
    /// The measured latency of one transport, if it was probed.
    pub fn latency(&self, transport: Transport) -> Option<Duration> {
        self.transports
            .iter()
            .find(|t| t.transport == transport)
            .map(|t| t.latency)
    }
}

impl SerialVerdict {
    /// True when the local server itself is at fault (`Behind` or `LocalFailed`). `ReferenceUnreachable`
    /// is deliberately not a local failure.
    pub fn is_local_failure(&self) -> bool {
        matches!(self, SerialVerdict::Behind | SerialVerdict::LocalFailed(_))
    }

    /// A short stable label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            SerialVerdict::InSync => "in_sync",
            SerialVerdict::Lagging => "lagging",
            SerialVerdict::Behind => "behind",
            SerialVerdict::LocalFailed(_) => "local_failed",
            SerialVerdict::ReferenceUnreachable(_) => "reference_unreachable",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::FailReason;

    #[test]
    fn a_malformed_reply_reads_as_a_sentence_and_keeps_the_parser_detail() {
        let reason = FailReason::Malformed("label points to data not prior to idx".to_owned());
        assert_eq!(
            reason.to_string(),
            "the server's reply is not a valid DNS message (label points to data not prior to idx)"
        );
        assert_eq!(reason.kind(), "malformed");
    }
}
