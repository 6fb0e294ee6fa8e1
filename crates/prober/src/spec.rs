//! What to ask and what to expect. Built by the caller, validated by [`ProbeSpec::validate`].

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{DNSClass, Name, RecordType};

use crate::error::SpecError;

/// Timeouts above this are rejected: a health probe that may run for minutes is not a health probe.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);

/// Default per-exchange timeout of [`ProbeSpec::new`] and [`SerialSpec::new`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// Default EDNS payload: the DNS Flag Day 2020 value, which avoids IP fragmentation.
pub const DEFAULT_EDNS_PAYLOAD: u16 = 1232;

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

impl Transport {
    /// The single transports this one stands for: `Both` expands to UDP then TCP.
    pub fn expand(self) -> &'static [Transport] {
        match self {
            Transport::Udp => &[Transport::Udp],
            Transport::Tcp => &[Transport::Tcp],
            Transport::Both => &[Transport::Udp, Transport::Tcp],
        }
    }
}

impl Transport {
    /// `udp`, `tcp` or `both`: the word the config, metrics labels and `probe` output use.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Both => "both",
        }
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl QuerySpec {
    /// An IN-class question, the usual case.
    pub fn new(name: Name, record_type: RecordType) -> Self {
        Self {
            name,
            record_type,
            class: DNSClass::IN,
        }
    }

    /// A CHAOS TXT question such as `id.server.` or `hostname.bind.`.
    pub fn chaos_txt(name: Name) -> Self {
        Self {
            name,
            record_type: RecordType::TXT,
            class: DNSClass::CH,
        }
    }
}

impl IdentitySpec {
    /// Read the NSID; with `expected`, require it to equal that value.
    pub fn nsid(expected: Option<String>) -> Self {
        Self {
            source: IdentitySource::Nsid,
            expected,
        }
    }

    /// Read the identity from a CHAOS TXT query for `name`; with `expected`, require it.
    pub fn chaos_txt(name: Name, expected: Option<String>) -> Self {
        Self {
            source: IdentitySource::ChaosTxt(name),
            expected,
        }
    }
}

fn check_timeout(field: &'static str, value: Duration) -> Result<(), SpecError> {
    if value.is_zero() {
        return Err(SpecError::ZeroTimeout { field });
    }
    if value > MAX_TIMEOUT {
        return Err(SpecError::TimeoutTooLong {
            field,
            value,
            max: MAX_TIMEOUT,
        });
    }
    Ok(())
}

fn check_fqdn(field: &'static str, name: &Name) -> Result<(), SpecError> {
    if name.is_fqdn() {
        Ok(())
    } else {
        Err(SpecError::RelativeName {
            field,
            name: name.clone(),
        })
    }
}

impl ProbeSpec {
    /// A probe of `query` at `target` over UDP with a 1 s timeout, EDNS payload 1232, default
    /// [`Expectations`] (NOERROR, AA, at least one answer) and no identity handling. Adjust with the
    /// `with_*` methods.
    pub fn new(target: SocketAddr, query: QuerySpec) -> Self {
        Self {
            target,
            transport: Transport::Udp,
            query,
            timeout: DEFAULT_TIMEOUT,
            edns_payload: DEFAULT_EDNS_PAYLOAD,
            expect: Expectations::default(),
            identity: None,
        }
    }

    /// Sets the transport(s).
    pub fn with_transport(mut self, transport: Transport) -> Self {
        self.transport = transport;
        self
    }

    /// Sets the hard per-exchange timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the advertised EDNS UDP payload size.
    pub fn with_edns_payload(mut self, payload: u16) -> Self {
        self.edns_payload = payload;
        self
    }

    /// Replaces the expectations.
    pub fn with_expectations(mut self, expect: Expectations) -> Self {
        self.expect = expect;
        self
    }

    /// Sets identity reporting/requirement.
    pub fn with_identity(mut self, identity: IdentitySpec) -> Self {
        self.identity = Some(identity);
        self
    }

    /// Rejects specs that cannot be probed as written (zero timeout, payload below 512, relative names,
    /// an empty rcode set, empty expected strings). [`crate::probe`] calls this first.
    pub fn validate(&self) -> Result<(), SpecError> {
        check_timeout("ProbeSpec.timeout", self.timeout)?;
        if self.edns_payload < 512 {
            return Err(SpecError::PayloadTooSmall(self.edns_payload));
        }
        check_fqdn("ProbeSpec.query.name", &self.query.name)?;
        if self.expect.rcodes.is_empty() {
            return Err(SpecError::NoAllowedRcodes);
        }
        if let Some(AnswerMatch::Exact(v) | AnswerMatch::Contains(v)) = &self.expect.answer
            && v.is_empty()
        {
            return Err(SpecError::EmptyExpectedValue {
                field: "Expectations.answer",
            });
        }
        if let Some(identity) = &self.identity {
            if identity.expected.as_deref() == Some("") {
                return Err(SpecError::EmptyExpectedValue {
                    field: "IdentitySpec.expected",
                });
            }
            if let IdentitySource::ChaosTxt(name) = &identity.source {
                check_fqdn("IdentitySource::ChaosTxt", name)?;
                if name.is_root() {
                    return Err(SpecError::EmptyChaosName);
                }
            }
        }
        if let Some(slow) = self.expect.slow_after {
            check_timeout("Expectations.slow_after", slow)?;
        }
        Ok(())
    }
}

impl Expectations {
    /// Sets the allowed rcodes.
    pub fn with_rcodes(mut self, rcodes: Vec<ResponseCode>) -> Self {
        self.rcodes = rcodes;
        self
    }

    /// Sets whether the AA flag is required.
    pub fn with_authoritative(mut self, required: bool) -> Self {
        self.authoritative = required;
        self
    }

    /// Sets the minimum number of answer records of the queried type.
    pub fn with_min_answers(mut self, min: usize) -> Self {
        self.min_answers = min;
        self
    }

    /// Sets the expected answer value.
    pub fn with_answer(mut self, answer: AnswerMatch) -> Self {
        self.answer = Some(answer);
        self
    }

    /// Sets the soft latency limit.
    pub fn with_slow_after(mut self, limit: Duration) -> Self {
        self.slow_after = Some(limit);
        self
    }
}

impl SerialSpec {
    /// Compare `zone` at `local` with `reference` over UDP, 1 s timeout, `max_lag` 0 (any lag is "behind").
    pub fn new(zone: Name, local: SocketAddr, reference: SocketAddr) -> Self {
        Self {
            zone,
            local,
            reference,
            transport: Transport::Udp,
            timeout: DEFAULT_TIMEOUT,
            max_lag: 0,
        }
    }

    /// Sets the transport (`Udp` or `Tcp`).
    pub fn with_transport(mut self, transport: Transport) -> Self {
        self.transport = transport;
        self
    }

    /// Sets the hard per-exchange timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the largest lag still reported as [`crate::SerialVerdict::Lagging`].
    pub fn with_max_lag(mut self, max_lag: u32) -> Self {
        self.max_lag = max_lag;
        self
    }

    /// Rejects zero/huge timeouts, relative zone names and `Transport::Both`.
    pub fn validate(&self) -> Result<(), SpecError> {
        check_serial_exchange(
            ("SerialSpec.timeout", self.timeout),
            ("SerialSpec.transport", self.transport),
        )?;
        check_fqdn("SerialSpec.zone", &self.zone)
    }
}

/// What a single serial check and a sweep both require of their SOA exchanges: a usable timeout and
/// one transport (a serial is read once, so `Both` has no meaning). The field names go into the errors.
fn check_serial_exchange(
    (timeout_field, timeout): (&'static str, Duration),
    (transport_field, transport): (&'static str, Transport),
) -> Result<(), SpecError> {
    check_timeout(timeout_field, timeout)?;
    if transport == Transport::Both {
        return Err(SpecError::BothTransportForSerial {
            field: transport_field,
        });
    }
    Ok(())
}

/// Rejects sweep settings that cannot run (see [`check_serial_exchange`], plus zero concurrency) and
/// relative zone names.
pub(crate) fn validate_sweep(
    timeout: Duration,
    transport: Transport,
    concurrency: usize,
    zones: &[Name],
) -> Result<(), SpecError> {
    check_serial_exchange(
        ("SerialSweep.timeout", timeout),
        ("SerialSweep.transport", transport),
    )?;
    if concurrency == 0 {
        return Err(SpecError::ZeroConcurrency);
    }
    zones
        .iter()
        .try_for_each(|zone| check_fqdn("sweep_serials zones", zone))
}
