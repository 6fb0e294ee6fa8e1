//! Running a [`ProbeSpec`] or a [`SerialSpec`]: exchanges, then expectations.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::rr::{Name, RData, RecordType};

use crate::error::SpecError;
use crate::outcome::{
    FailReason, ProbeOutcome, ProbeStatus, SerialOutcome, SerialVerdict, TransportResult,
};
use crate::serial::{SerialOrder, compare_serials};
use crate::spec::{
    AnswerMatch, DEFAULT_EDNS_PAYLOAD, IdentitySource, ProbeSpec, QuerySpec, SerialSpec, Transport,
};
use crate::wire::{PreparedQuery, UdpPool, exchange};

/// Runs one health probe. Failures of the server are in the outcome; `Err` only for an invalid spec.
///
/// With `Transport::Both` the UDP and TCP exchanges run concurrently and each must pass on its own.
/// With a CHAOS identity source, one extra UDP CHAOS TXT query is sent after them; its failure to match
/// fails the probe as a whole (it belongs to no single transport). Each exchange is bounded by
/// `spec.timeout`, so a probe takes at most one timeout, or two with a CHAOS identity query.
pub async fn probe(spec: &ProbeSpec) -> Result<ProbeOutcome, SpecError> {
    spec.validate()?;
    let want_nsid = matches!(
        spec.identity.as_ref().map(|i| &i.source),
        Some(IdentitySource::Nsid)
    );
    let runs = spec
        .transport
        .expand()
        .iter()
        .map(|&t| probe_transport(spec, t, want_nsid));
    let results = futures::future::join_all(runs).await;

    let mut identity = None;
    let mut transports = Vec::with_capacity(results.len());
    for (result, nsid) in results {
        if identity.is_none() {
            identity = nsid;
        }
        transports.push(result);
    }

    let mut identity_failure = None;
    if let Some(id_spec) = &spec.identity
        && let IdentitySource::ChaosTxt(name) = &id_spec.source
    {
        identity = chaos_identity(spec.target, name, spec.timeout, spec.edns_payload).await;
        if let Some(expected) = &id_spec.expected
            && identity.as_ref() != Some(expected)
        {
            identity_failure = Some(FailReason::IdentityMismatch {
                expected: expected.clone(),
                found: identity.clone(),
            });
        }
    }

    let reason = transports
        .iter()
        .find_map(|t| t.reason.clone())
        .or(identity_failure);
    let status = if reason.is_some() {
        ProbeStatus::Fail
    } else if transports.iter().any(|t| t.status == ProbeStatus::Slow) {
        ProbeStatus::Slow
    } else {
        ProbeStatus::Pass
    };
    Ok(ProbeOutcome {
        status,
        reason,
        transports,
        identity,
    })
}

/// Decodes an NSID payload: printable UTF-8 as is, anything else as hex (as `kdig +nsid` does).
fn nsid_text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) if !s.chars().any(char::is_control) => s.to_owned(),
        _ => {
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            format!("0x{hex}")
        }
    }
}

fn reply_nsid(message: &Message) -> Option<String> {
    match message.edns.as_ref()?.option(EdnsCode::NSID)? {
        EdnsOption::NSID(payload) => Some(nsid_text(payload.as_ref())),
        EdnsOption::Unknown(_, data) => Some(nsid_text(data)),
        _ => None,
    }
}

async fn probe_transport(
    spec: &ProbeSpec,
    transport: Transport,
    want_nsid: bool,
) -> (TransportResult, Option<String>) {
    let failed = |reason: FailReason, latency: Duration| TransportResult {
        transport,
        latency,
        status: ProbeStatus::Fail,
        reason: Some(reason),
        rcode: None,
        answers: Vec::new(),
    };
    let query = match PreparedQuery::new(&spec.query, spec.edns_payload, want_nsid) {
        Ok(q) => q,
        Err(reason) => return (failed(reason, Duration::ZERO), None),
    };
    let reply = match exchange(spec.target, transport, &query, spec.timeout).await {
        Ok(reply) => reply,
        Err(failure) => return (failed(failure.reason, failure.latency), None),
    };
    let message = &reply.message;
    let rcode = message.metadata.response_code;
    let qtype = spec.query.record_type;
    let answers: Vec<String> = message
        .answers
        .iter()
        .filter(|r| qtype == RecordType::ANY || r.record_type() == qtype)
        .map(|r| r.data.to_string())
        .collect();
    let nsid = reply_nsid(message);
    let expect = &spec.expect;

    let reason = if !expect.rcodes.contains(&rcode) {
        Some(FailReason::UnexpectedRcode(rcode))
    } else if expect.authoritative && !message.metadata.authoritative {
        Some(FailReason::NotAuthoritative)
    } else if answers.len() < expect.min_answers {
        Some(FailReason::EmptyAnswer {
            found: answers.len(),
            required: expect.min_answers,
        })
    } else if let Some(mismatch) = answer_mismatch(expect.answer.as_ref(), &answers) {
        Some(mismatch)
    } else {
        identity_mismatch(spec, want_nsid, &nsid)
    };
    let status = match (&reason, expect.slow_after) {
        (Some(_), _) => ProbeStatus::Fail,
        (None, Some(limit)) if reply.latency > limit => ProbeStatus::Slow,
        (None, _) => ProbeStatus::Pass,
    };
    let result = TransportResult {
        transport,
        latency: reply.latency,
        status,
        reason,
        rcode: Some(rcode),
        answers,
    };
    (result, nsid)
}

fn answer_mismatch(expected: Option<&AnswerMatch>, answers: &[String]) -> Option<FailReason> {
    let (wanted, matched) = match expected? {
        AnswerMatch::Exact(v) => (v, answers.iter().any(|a| a == v)),
        AnswerMatch::Contains(v) => (v, answers.iter().any(|a| a.contains(v.as_str()))),
    };
    (!matched).then(|| FailReason::AnswerMismatch {
        expected: wanted.clone(),
        found: answers.to_vec(),
    })
}

fn identity_mismatch(
    spec: &ProbeSpec,
    want_nsid: bool,
    nsid: &Option<String>,
) -> Option<FailReason> {
    let expected = spec.identity.as_ref()?.expected.as_ref()?;
    (want_nsid && nsid.as_ref() != Some(expected)).then(|| FailReason::IdentityMismatch {
        expected: expected.clone(),
        found: nsid.clone(),
    })
}

/// The first TXT answer to a CHAOS query, or `None` if the query failed or had no TXT answer.
async fn chaos_identity(
    target: SocketAddr,
    name: &Name,
    timeout: Duration,
    payload: u16,
) -> Option<String> {
    let query = PreparedQuery::new(&QuerySpec::chaos_txt(name.clone()), payload, false).ok()?;
    let reply = exchange(target, Transport::Udp, &query, timeout)
        .await
        .ok()?;
    reply
        .message
        .answers
        .iter()
        .find(|r| r.record_type() == RecordType::TXT)
        .map(|r| r.data.to_string())
}

/// One SOA lookup: the serial, or why there is none; plus the latency. Over UDP, `pool` (a sweep's
/// sockets for `target`) replaces the fresh socket per query.
pub(crate) async fn soa_serial(
    target: SocketAddr,
    zone: &Name,
    transport: Transport,
    timeout: Duration,
    pool: Option<&UdpPool>,
) -> (Result<u32, FailReason>, Duration) {
    let query = match PreparedQuery::new(
        &QuerySpec::new(zone.clone(), RecordType::SOA),
        DEFAULT_EDNS_PAYLOAD,
        false,
    ) {
        Ok(q) => q,
        Err(reason) => return (Err(reason), Duration::ZERO),
    };
    let exchanged = match pool.filter(|_| transport == Transport::Udp) {
        Some(pool) => pool.exchange(&query, timeout).await,
        None => exchange(target, transport, &query, timeout).await,
    };
    let reply = match exchanged {
        Ok(reply) => reply,
        Err(failure) => return (Err(failure.reason), failure.latency),
    };
    let message = &reply.message;
    let rcode = message.metadata.response_code;
    let serial = if rcode != ResponseCode::NoError {
        Err(FailReason::UnexpectedRcode(rcode))
    } else if !message.metadata.authoritative {
        Err(FailReason::NotAuthoritative)
    } else {
        let soas: Vec<u32> = message
            .answers
            .iter()
            .filter(|r| &r.name == zone)
            .filter_map(|r| match &r.data {
                RData::SOA(soa) => Some(soa.serial),
                _ => None,
            })
            .collect();
        match soas.as_slice() {
            [serial] => Ok(*serial),
            [] => Err(FailReason::EmptyAnswer {
                found: 0,
                required: 1,
            }),
            more => Err(FailReason::Malformed(format!(
                "{} SOA records for {zone} in one answer",
                more.len()
            ))),
        }
    };
    (serial, reply.latency)
}

/// Turns the two SOA lookups into a verdict. A reference failure is never a local failure.
pub(crate) fn serial_outcome(
    local: (Result<u32, FailReason>, Duration),
    reference: (Result<u32, FailReason>, Duration),
    max_lag: u32,
) -> SerialOutcome {
    let (local_result, local_latency) = local;
    let (reference_result, reference_latency) = reference;
    let local_serial = local_result.as_ref().ok().copied();
    let reference_serial = reference_result.as_ref().ok().copied();
    let (verdict, lag) = match (local_result, reference_result) {
        (Err(reason), _) => (SerialVerdict::LocalFailed(reason), None),
        (Ok(_), Err(reason)) => (SerialVerdict::ReferenceUnreachable(reason), None),
        (Ok(local), Ok(reference)) => match compare_serials(local, reference) {
            SerialOrder::Equal => (SerialVerdict::InSync, Some(0)),
            SerialOrder::Ahead { .. } => (SerialVerdict::InSync, None),
            SerialOrder::Behind { lag } if lag <= max_lag => (SerialVerdict::Lagging, Some(lag)),
            SerialOrder::Behind { lag } => (SerialVerdict::Behind, Some(lag)),
            // Incomparable serials: the local server cannot be shown to be current.
            SerialOrder::Undefined => (SerialVerdict::Behind, Some(1 << 31)),
        },
    };
    SerialOutcome {
        verdict,
        local_serial,
        reference_serial,
        lag,
        local_latency: Some(local_latency),
        reference_latency: Some(reference_latency),
    }
}

/// Compares one zone's SOA serial at the local server with the reference (both queried concurrently).
/// Failures are in the outcome; `Err` only for an invalid spec.
pub async fn check_serial(spec: &SerialSpec) -> Result<SerialOutcome, SpecError> {
    spec.validate()?;
    let (local, reference) = tokio::join!(
        soa_serial(spec.local, &spec.zone, spec.transport, spec.timeout, None),
        soa_serial(
            spec.reference,
            &spec.zone,
            spec.transport,
            spec.timeout,
            None
        ),
    );
    Ok(serial_outcome(local, reference, spec.max_lag))
}

impl SerialOutcome {
    /// The local failure as a [`FailReason`]: `SerialBehind` for `Behind`, the cause for `LocalFailed`,
    /// `None` otherwise (including `ReferenceUnreachable`, which is not a local failure).
    pub fn local_failure(&self) -> Option<FailReason> {
        match &self.verdict {
            SerialVerdict::Behind => Some(FailReason::SerialBehind {
                local: self.local_serial.unwrap_or(0),
                reference: self.reference_serial.unwrap_or(0),
                lag: self.lag.unwrap_or(0),
            }),
            SerialVerdict::LocalFailed(reason) => Some(reason.clone()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nsid_is_text_when_printable_else_hex() {
        assert_eq!(nsid_text(b"node-a"), "node-a");
        assert_eq!(nsid_text(&[0x00, 0xff, 0x10]), "0x00ff10");
        assert_eq!(nsid_text(b"tab\there"), "0x7461620968657265");
    }

    #[test]
    fn serial_verdicts() {
        let ms = Duration::from_millis(1);
        let v = |l: Result<u32, FailReason>, r: Result<u32, FailReason>, max| {
            serial_outcome((l, ms), (r, ms), max)
        };
        assert_eq!(v(Ok(5), Ok(5), 0).verdict, SerialVerdict::InSync);
        assert_eq!(v(Ok(5), Ok(7), 2).verdict, SerialVerdict::Lagging);
        assert_eq!(v(Ok(5), Ok(8), 2).verdict, SerialVerdict::Behind);
        assert_eq!(v(Ok(9), Ok(8), 0).lag, None);
        let undefined = v(Ok(0), Ok(1 << 31), u32::MAX);
        assert_eq!(undefined.verdict, SerialVerdict::Behind);
        // Local failure wins over reference failure: the local fact is the one that matters.
        let both = v(
            Err(FailReason::Timeout),
            Err(FailReason::ConnectionRefused),
            0,
        );
        assert_eq!(
            both.verdict,
            SerialVerdict::LocalFailed(FailReason::Timeout)
        );
        let reference = v(Ok(3), Err(FailReason::Timeout), 0);
        assert_eq!(
            reference.verdict,
            SerialVerdict::ReferenceUnreachable(FailReason::Timeout)
        );
        assert_eq!(reference.local_serial, Some(3));
        assert!(!reference.verdict.is_local_failure());
    }

    #[test]
    fn answer_matching() {
        let answers = vec!["ok node-a".to_owned(), "v=1".to_owned()];
        assert_eq!(answer_mismatch(None, &answers), None);
        assert_eq!(
            answer_mismatch(Some(&AnswerMatch::Exact("v=1".into())), &answers),
            None
        );
        assert_eq!(
            answer_mismatch(Some(&AnswerMatch::Contains("node".into())), &answers),
            None
        );
        assert!(answer_mismatch(Some(&AnswerMatch::Exact("ok".into())), &answers).is_some());
    }
}
