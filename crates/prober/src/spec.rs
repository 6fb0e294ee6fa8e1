//! What to ask and what to expect. Built by the caller, validated by [`ProbeSpec::validate`].

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{DNSClass, Name, RecordType};

/// Which transport(s) a probe uses. `Both` means each transport must pass on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// One query over UDP.
    Udp,
    /// One query over a fresh TCP connection.
    Tcp,
    /// One query over each; the probe passes only if both pass.
    Both,
}

/// The question sent to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuerySpec {
    /// Query name (absolute).
    pub name: Name,
    /// Query type, e.g. SOA, A, TXT.
    pub record_type: RecordType,
    /// Query class, usually IN; CH for `id.server`.
    pub class: DNSClass,
}

/// How an expected answer value is compared with the RDATA presentation form of each answer record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnswerMatch {
    /// Some answer record's RDATA equals this string exactly (TXT without quotes).
    Exact(String),
    /// Some answer record's RDATA contains this substring.
    Contains(String),
}

/// Where the server's identity is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentitySource {
    /// The EDNS NSID option (RFC 5001) on the probe's own response.
    Nsid,
    /// A separate CHAOS TXT query (`id.server.` or `hostname.bind.`) sent over UDP to the same target.
    ChaosTxt(Name),
}

/// Identity expectation: catches a probe sent to the anycast address but answered by another node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentitySpec {
    /// Where to read the identity from.
    pub source: IdentitySource,
    /// If set, the observed identity must equal this value; otherwise it is only reported.
    pub expected: Option<String>,
}

/// What a response must look like to pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectations {
    /// Allowed response codes (default: NOERROR only).
    pub rcodes: Vec<ResponseCode>,
    /// Require the AA flag (default: yes).
    pub authoritative: bool,
    /// Minimum number of records in the answer section (default 1).
    pub min_answers: usize,
    /// Optional expected answer value.
    pub answer: Option<AnswerMatch>,
    /// Soft latency limit: a correct answer slower than this is [`ProbeStatus::Slow`].
    pub slow_after: Option<Duration>,
}

impl Default for Expectations {
    fn default() -> Self {
        Self {
            rcodes: vec![ResponseCode::NoError],
            authoritative: true,
            min_answers: 1,
            answer: None,
            slow_after: None,
        }
    }
}

/// One health probe: a query sent to a target with expectations on the reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSpec {
    /// Where to send the query (IPv4 or IPv6, any port).
    pub target: SocketAddr,
    /// Transport(s) to use.
    pub transport: Transport,
    /// The question.
    pub query: QuerySpec,
    /// Hard limit for each exchange; no probe runs longer than this per transport.
    pub timeout: Duration,
    /// EDNS UDP payload size advertised (512..=65535).
    pub edns_payload: u16,
    /// What the reply must look like.
    pub expect: Expectations,
    /// Optional identity reporting/requirement.
    pub identity: Option<IdentitySpec>,
}

/// SOA serial freshness of one zone: the local server compared with a reference (the hidden primary).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerialSpec {
    /// The zone apex.
    pub zone: Name,
    /// The local server (usually the anycast address or a local listener).
    pub local: SocketAddr,
    /// The reference server, reached by unicast.
    pub reference: SocketAddr,
    /// Transport for both SOA queries.
    pub transport: Transport,
    /// Hard limit for each SOA exchange.
    pub timeout: Duration,
    /// Largest lag (RFC 1982 distance, reference minus local) still considered "lagging" rather than "behind".
    pub max_lag: u32,
}
