//! DNSSEC signature expiry of many zones: the RRSIG validity windows a local server hands out.
//!
//! A node whose signer stalled keeps answering "correctly" while its RRSIGs run out; once they expire,
//! validating resolvers fail the whole zone. This module asks the local server for each zone's apex
//! RRsets (SOA and DNSKEY by default) with the DO bit set and reads the validity window of every RRSIG
//! covering them. Signatures are not validated (no crypto): expiry, an inception in the future and the
//! presence of signatures are what is checked.
//!
//! The sweep reuses the serial sweep's engine ([`crate::sweep`]: worker tasks, bounded concurrency,
//! pooled UDP sockets with resends, one deadline per exchange). A UDP answer with TC=1 (a DNSKEY RRset
//! with RSA keys and its RRSIGs can exceed 1232 bytes) is asked again over TCP within the same deadline.
//!
//! RRSIG RDATA is parsed by hand ([`parse_rrsig`]): hickory-proto parses RRSIG only with its DNSSEC
//! features, which pull in a crypto backend (ring or aws-lc) for the signature checks this module does
//! not do. The fixed fields are 18 bytes followed by the signer's name and the signature (RFC 4034 3.1).

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use hickory_proto::serialize::binary::BinEncodable;

use crate::error::SpecError;
use crate::outcome::FailReason;
use crate::spec::{DEFAULT_EDNS_PAYLOAD, DEFAULT_TIMEOUT, QuerySpec, Transport, validate_sweep};
use crate::sweep::{DEFAULT_SWEEP_CONCURRENCY, ZoneCheck, sweep_zones};
use crate::wire::{Failure, PreparedQuery, Reply, UdpPool, exchange};

/// Default `warn_before`: three days of validity left is a soft signal (a signer that stalled is noticed
/// well before a typical 7-14 day validity runs out).
pub const DEFAULT_WARN_BEFORE: Duration = Duration::from_secs(3 * 24 * 3600);

/// Default `fail_before`: an hour of validity left is a hard signal.
pub const DEFAULT_FAIL_BEFORE: Duration = Duration::from_secs(3600);

/// Default allowance for an inception in the future (the signer's clock ahead of ours).
pub const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(300);

/// How many zones a [`DnssecSummary`] lists as the worst (earliest expiry first).
pub const WORST_ZONES: usize = 10;

/// The fixed fields of an RRSIG record (RFC 4034 3.1), as needed for expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RrsigTimes {
    /// The RR type the signature covers.
    pub type_covered: RecordType,
    /// DNSSEC algorithm number.
    pub algorithm: u8,
    /// The signing key's tag.
    pub key_tag: u16,
    /// Signature Expiration, seconds since the epoch modulo 2^32 (RFC 1982 arithmetic).
    pub expiration: u32,
    /// Signature Inception, seconds since the epoch modulo 2^32.
    pub inception: u32,
}

/// Length of an RRSIG's fixed fields before the signer's name.
const RRSIG_FIXED_LEN: usize = 18;

/// Parses an RRSIG's RDATA: the fixed fields, then checks that the signer's name is a well-formed
/// uncompressed name (RFC 4034 3.1.7 forbids compression there) followed by a non-empty signature.
/// `Err` says what is wrong, for a [`FailReason::Malformed`].
pub fn parse_rrsig(rdata: &[u8]) -> Result<RrsigTimes, String> {
    let Some(fixed) = rdata.get(..RRSIG_FIXED_LEN) else {
        return Err(format!(
            "RRSIG RDATA of {} byte(s), shorter than its {RRSIG_FIXED_LEN} bytes of fixed fields",
            rdata.len()
        ));
    };
    let u16_at = |i: usize| u16::from_be_bytes([fixed[i], fixed[i + 1]]);
    let u32_at =
        |i: usize| u32::from_be_bytes([fixed[i], fixed[i + 1], fixed[i + 2], fixed[i + 3]]);
    let mut at = RRSIG_FIXED_LEN;
    let mut name_len = 0usize;
    loop {
        let Some(&len) = rdata.get(at) else {
            return Err("RRSIG signer's name runs past the end of the RDATA".to_owned());
        };
        if len & 0xC0 != 0 {
            return Err(format!(
                "RRSIG signer's name has a compressed or extended label (0x{len:02x})"
            ));
        }
        at += 1 + usize::from(len);
        name_len += 1 + usize::from(len);
        if name_len > 255 {
            return Err("RRSIG signer's name is longer than 255 bytes".to_owned());
        }
        if len == 0 {
            break;
        }
    }
    if at >= rdata.len() {
        return Err("RRSIG has no signature after the signer's name".to_owned());
    }
    Ok(RrsigTimes {
        type_covered: RecordType::from(u16_at(0)),
        algorithm: fixed[2],
        key_tag: u16_at(16),
        expiration: u32_at(8),
        inception: u32_at(12),
    })
}

/// Seconds from `now` to `at`, both seconds since the epoch modulo 2^32, in RFC 1982 arithmetic as RFC
/// 4034 3.1.5 requires: negative when `at` is in the past. Valid within 68 years of `now`.
pub fn seconds_until(at: u32, now: u64) -> i64 {
    // Truncation to 32 bits is the point: RRSIG times are modulo 2^32.
    let now = now as u32;
    i64::from(at.wrapping_sub(now) as i32)
}

/// A DNSSEC expiry sweep's settings, shared by every zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnssecSweep {
    /// The local server.
    pub local: SocketAddr,
    /// `Udp` (TC=1 retried over TCP) or `Tcp`.
    pub transport: Transport,
    /// Hard limit for each exchange (a TCP retry after TC=1 shares it).
    pub timeout: Duration,
    /// The apex RRsets whose signatures are read (SOA and DNSKEY by default).
    pub types: Vec<RecordType>,
    /// Less validity left than this is [`ExpiryVerdict::Expiring`] (soft).
    pub warn_before: Duration,
    /// Less validity left than this is [`ExpiryVerdict::Critical`] (hard); none left is
    /// [`ExpiryVerdict::Expired`].
    pub fail_before: Duration,
    /// An inception further in the future than this is [`ExpiryVerdict::NotYetValid`].
    pub clock_skew: Duration,
    /// Most zones in flight at once.
    pub concurrency: usize,
}

impl DnssecSweep {
    /// UDP, 1 s timeout, SOA and DNSKEY, the default thresholds, 128 zones in flight.
    pub fn new(local: SocketAddr) -> Self {
        Self {
            local,
            transport: Transport::Udp,
            timeout: DEFAULT_TIMEOUT,
            types: vec![RecordType::SOA, RecordType::DNSKEY],
            warn_before: DEFAULT_WARN_BEFORE,
            fail_before: DEFAULT_FAIL_BEFORE,
            clock_skew: DEFAULT_CLOCK_SKEW,
            concurrency: DEFAULT_SWEEP_CONCURRENCY,
        }
    }

    /// Checks the settings and every zone name, then sweeps; see [`sweep_dnssec`].
    pub async fn run(&self, zones: &[Name]) -> Result<DnssecReport, SpecError> {
        sweep_dnssec(zones, self).await
    }
}

/// What one zone's signatures mean, worst first in [`ExpiryVerdict::severity`] order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpiryVerdict {
    /// Every asked RRset is signed, and the earliest signature has at least `warn_before` left.
    Valid,
    /// The earliest signature has less than `warn_before` left: soft.
    Expiring,
    /// The earliest signature has less than `fail_before` left: hard.
    Critical,
    /// A signature has expired: validating resolvers fail the zone now.
    Expired,
    /// A signature's inception is further in the future than the clock-skew allowance.
    NotYetValid {
        /// The RRset it covers.
        rtype: RecordType,
        /// Seconds until its inception.
        starts_in: i64,
    },
    /// The zone has a DNSKEY RRset, but this RRset came back without an RRSIG covering it.
    MissingSignature {
        /// The unsigned RRset.
        rtype: RecordType,
    },
    /// The zone has no DNSKEY RRset: it is not signed at all. The check was configured for signed zones,
    /// so the daemon treats this as a failure.
    Unsigned,
    /// The local server did not answer usefully (timeout, refused, rcode, not authoritative, RRset
    /// absent, malformed RRSIG).
    LocalFailed(FailReason),
}

impl ExpiryVerdict {
    /// The `verdict` label value: `valid`, `expiring`, `critical`, `expired`, `not_yet_valid`,
    /// `missing_signature`, `unsigned`, `local_failed`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ExpiryVerdict::Valid => "valid",
            ExpiryVerdict::Expiring => "expiring",
            ExpiryVerdict::Critical => "critical",
            ExpiryVerdict::Expired => "expired",
            ExpiryVerdict::NotYetValid { .. } => "not_yet_valid",
            ExpiryVerdict::MissingSignature { .. } => "missing_signature",
            ExpiryVerdict::Unsigned => "unsigned",
            ExpiryVerdict::LocalFailed(_) => "local_failed",
        }
    }

    /// Every label value of [`ExpiryVerdict::as_str`], in order.
    pub const ALL: &'static [&'static str] = &[
        "valid",
        "expiring",
        "critical",
        "expired",
        "not_yet_valid",
        "missing_signature",
        "unsigned",
        "local_failed",
    ];
}

/// The earliest-expiring signature of a zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EarliestSignature {
    /// The RRset it covers.
    pub covered: RecordType,
    /// Its expiration, seconds since the epoch (resolved from RFC 1982 arithmetic around the check time).
    pub expires_unix: i64,
    /// Seconds of validity left when checked; negative once expired.
    pub remaining: i64,
}

/// One zone's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneExpiry {
    /// The zone apex.
    pub zone: Name,
    /// What its signatures mean.
    pub verdict: ExpiryVerdict,
    /// The earliest-expiring signature seen, if any signature was read.
    pub earliest: Option<EarliestSignature>,
}

/// Zone counts per verdict and the worst zones of a sweep.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnssecSummary {
    /// Zones checked.
    pub zones: usize,
    /// Counts in [`ExpiryVerdict::ALL`] order.
    pub counts: [usize; 8],
    /// Up to [`WORST_ZONES`] zones with the earliest expiry, earliest first (zones with a signature).
    pub worst: Vec<(Name, EarliestSignature)>,
}

impl DnssecSummary {
    /// The count of zones whose verdict has the label `verdict`.
    pub fn count(&self, verdict: &str) -> usize {
        ExpiryVerdict::ALL
            .iter()
            .position(|v| *v == verdict)
            .map_or(0, |i| self.counts[i])
    }

    /// The earliest expiry of the sweep, if any signature was read.
    pub fn earliest(&self) -> Option<&(Name, EarliestSignature)> {
        self.worst.first()
    }

    fn from_zones(zones: &[ZoneExpiry]) -> Self {
        let mut summary = DnssecSummary {
            zones: zones.len(),
            ..DnssecSummary::default()
        };
        for zone in zones {
            if let Some(i) = ExpiryVerdict::ALL
                .iter()
                .position(|v| *v == zone.verdict.as_str())
            {
                summary.counts[i] += 1;
            }
        }
        let mut signed: Vec<(&Name, EarliestSignature)> = zones
            .iter()
            .filter_map(|z| z.earliest.map(|e| (&z.zone, e)))
            .collect();
        let keep = signed.len().min(WORST_ZONES);
        if keep > 0 {
            signed.select_nth_unstable_by_key(keep - 1, |(_, e)| e.remaining);
            signed.truncate(keep);
            signed.sort_by_key(|(_, e)| e.remaining);
        }
        summary.worst = signed.into_iter().map(|(n, e)| (n.clone(), e)).collect();
        summary
    }
}

/// The result of a DNSSEC sweep: every zone (in input order) and the summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnssecReport {
    /// Per-zone results, in the order the zones were given.
    pub zones: Vec<ZoneExpiry>,
    /// Counts per verdict and the worst zones.
    pub summary: DnssecSummary,
    /// Wall-clock time of the whole sweep.
    pub elapsed: Duration,
}

/// Checks the RRSIG validity of `sweep.types` at every zone's apex on `sweep.local`.
///
/// Each zone's RRsets are asked for concurrently, so at most `concurrency` zones (and `concurrency` times
/// the number of types queries) are in flight. `Err` only for misuse: zero concurrency, a bad timeout,
/// `Transport::Both`, a relative zone name, no types, or `fail_before` not below `warn_before`.
pub async fn sweep_dnssec(zones: &[Name], sweep: &DnssecSweep) -> Result<DnssecReport, SpecError> {
    validate_sweep(sweep.timeout, sweep.transport, sweep.concurrency, zones)?;
    if sweep.types.is_empty() {
        return Err(SpecError::NoDnssecTypes);
    }
    if sweep.fail_before >= sweep.warn_before {
        return Err(SpecError::ThresholdsOutOfOrder);
    }
    let started = Instant::now();
    let check = DnssecZoneCheck {
        sweep: sweep.clone(),
        // Every type of a zone is asked at once: that many queries per zone in flight share the pool.
        pool: UdpPool::new(sweep.local, sweep.concurrency * sweep.types.len()),
    };
    let verdicts = sweep_zones(check, zones, sweep.concurrency).await;
    let zones: Vec<ZoneExpiry> = zones
        .iter()
        .zip(verdicts)
        .map(|(zone, (verdict, earliest))| ZoneExpiry {
            zone: zone.clone(),
            verdict,
            earliest,
        })
        .collect();
    Ok(DnssecReport {
        summary: DnssecSummary::from_zones(&zones),
        zones,
        elapsed: started.elapsed(),
    })
}

/// What the answer for one RRset of a zone held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RrsetAnswer {
    /// The RRset (`records` of the asked type at the apex) and the RRSIGs covering it.
    Found {
        /// How many records of the asked type.
        records: usize,
        /// The RRSIGs covering the asked type at the apex.
        signatures: Vec<RrsigTimes>,
    },
    /// The exchange failed or the answer was not usable.
    Failed(FailReason),
}

/// Reads one answer: NOERROR and AA required; records of `rtype` owned by `zone` and RRSIGs covering
/// `rtype` owned by `zone`. A malformed RRSIG fails the answer.
pub fn read_answer(message: &Message, zone: &Name, rtype: RecordType) -> RrsetAnswer {
    let rcode = message.metadata.response_code;
    if rcode != ResponseCode::NoError {
        return RrsetAnswer::Failed(FailReason::UnexpectedRcode(rcode));
    }
    if !message.metadata.authoritative {
        return RrsetAnswer::Failed(FailReason::NotAuthoritative);
    }
    let mut records = 0;
    let mut signatures = Vec::new();
    for record in message.answers.iter().filter(|r| &r.name == zone) {
        let t = record.record_type();
        if t == rtype {
            records += 1;
        } else if t == RecordType::RRSIG {
            // The RDATA's wire form whatever hickory made of it (raw bytes without its DNSSEC features).
            let rdata = match record.data.to_bytes() {
                Ok(bytes) => bytes,
                Err(e) => {
                    return RrsetAnswer::Failed(FailReason::Malformed(format!(
                        "cannot re-encode an RRSIG of {zone}: {e}"
                    )));
                }
            };
            match parse_rrsig(&rdata) {
                Ok(sig) if sig.type_covered == rtype => signatures.push(sig),
                Ok(_) => {}
                Err(e) => {
                    return RrsetAnswer::Failed(FailReason::Malformed(format!("{zone}: {e}")));
                }
            }
        }
    }
    RrsetAnswer::Found {
        records,
        signatures,
    }
}

/// The thresholds a zone is judged by, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// Less left than this: expiring.
    pub warn_before: i64,
    /// Less left than this: critical.
    pub fail_before: i64,
    /// Inception further ahead than this: not yet valid.
    pub clock_skew: i64,
}

impl Thresholds {
    fn of(sweep: &DnssecSweep) -> Self {
        let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        Self {
            warn_before: secs(sweep.warn_before),
            fail_before: secs(sweep.fail_before),
            clock_skew: secs(sweep.clock_skew),
        }
    }
}

/// Judges one zone from its answers (one per asked type, in order) at `now` (seconds since the epoch).
/// `dnskey_present` says whether the zone has a DNSKEY RRset, when known without the answers (it is
/// asked separately only when an RRset has no signature and DNSKEY is not among the types).
///
/// Order: a failed answer, then an absent RRset, then (if the zone has no DNSKEY) unsigned, then a
/// missing signature, then an inception in the future, then the earliest expiration against the
/// thresholds.
pub fn judge_zone(
    answers: &[(RecordType, RrsetAnswer)],
    dnskey_present: Option<bool>,
    now: u64,
    limits: Thresholds,
) -> (ExpiryVerdict, Option<EarliestSignature>) {
    let mut earliest: Option<EarliestSignature> = None;
    for (rtype, answer) in answers {
        if let RrsetAnswer::Found { signatures, .. } = answer {
            for sig in signatures {
                let remaining = seconds_until(sig.expiration, now);
                if earliest.is_none_or(|e| remaining < e.remaining) {
                    earliest = Some(EarliestSignature {
                        covered: *rtype,
                        expires_unix: i64::try_from(now).unwrap_or(i64::MAX) + remaining,
                        remaining,
                    });
                }
            }
        }
    }
    let dnskey_present = dnskey_present.or_else(|| {
        answers.iter().find_map(|(t, a)| match a {
            RrsetAnswer::Found { records, .. } if *t == RecordType::DNSKEY => Some(*records > 0),
            _ => None,
        })
    });
    for (rtype, answer) in answers {
        match answer {
            RrsetAnswer::Failed(reason) => {
                return (ExpiryVerdict::LocalFailed(reason.clone()), earliest);
            }
            RrsetAnswer::Found { records: 0, .. } if *rtype == RecordType::DNSKEY => {
                return (ExpiryVerdict::Unsigned, earliest);
            }
            RrsetAnswer::Found { records: 0, .. } => {
                return (
                    ExpiryVerdict::LocalFailed(FailReason::EmptyAnswer {
                        found: 0,
                        required: 1,
                    }),
                    earliest,
                );
            }
            RrsetAnswer::Found { .. } => {}
        }
    }
    for (rtype, answer) in answers {
        if let RrsetAnswer::Found { signatures, .. } = answer
            && signatures.is_empty()
        {
            let verdict = if dnskey_present == Some(false) {
                ExpiryVerdict::Unsigned
            } else {
                ExpiryVerdict::MissingSignature { rtype: *rtype }
            };
            return (verdict, earliest);
        }
    }
    for (rtype, answer) in answers {
        if let RrsetAnswer::Found { signatures, .. } = answer
            && let Some(starts_in) = signatures
                .iter()
                .map(|s| seconds_until(s.inception, now))
                .max()
            && starts_in > limits.clock_skew
        {
            return (
                ExpiryVerdict::NotYetValid {
                    rtype: *rtype,
                    starts_in,
                },
                earliest,
            );
        }
    }
    let verdict = match earliest {
        None => ExpiryVerdict::Valid,
        Some(e) if e.remaining <= 0 => ExpiryVerdict::Expired,
        Some(e) if e.remaining < limits.fail_before => ExpiryVerdict::Critical,
        Some(e) if e.remaining < limits.warn_before => ExpiryVerdict::Expiring,
        Some(_) => ExpiryVerdict::Valid,
    };
    (verdict, earliest)
}

/// The wall clock in seconds since the epoch (RRSIG times are wall-clock times).
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The DNSSEC sweep's part of a zone: every type's RRset (and, if needed, DNSKEY) concurrently.
struct DnssecZoneCheck {
    sweep: DnssecSweep,
    pool: UdpPool,
}

impl DnssecZoneCheck {
    /// One RRset with the DO bit; over UDP on the pool, asked again over TCP after TC=1 within the same
    /// deadline.
    async fn ask(&self, zone: &Name, rtype: RecordType) -> RrsetAnswer {
        let query =
            match PreparedQuery::dnssec(&QuerySpec::new(zone.clone(), rtype), DEFAULT_EDNS_PAYLOAD)
            {
                Ok(q) => q,
                Err(reason) => return RrsetAnswer::Failed(reason),
            };
        let sweep = &self.sweep;
        let started = Instant::now();
        let reply: Result<Reply, Failure> = match sweep.transport {
            Transport::Tcp => exchange(sweep.local, Transport::Tcp, &query, sweep.timeout).await,
            Transport::Udp | Transport::Both => {
                match self.pool.exchange(&query, sweep.timeout).await {
                    Err(Failure {
                        reason: FailReason::Truncated,
                        ..
                    }) => {
                        let left = sweep.timeout.saturating_sub(started.elapsed());
                        if left.is_zero() {
                            Err(Failure {
                                reason: FailReason::Timeout,
                                latency: started.elapsed(),
                            })
                        } else {
                            exchange(sweep.local, Transport::Tcp, &query, left).await
                        }
                    }
                    other => other,
                }
            }
        };
        match reply {
            Ok(reply) => read_answer(&reply.message, zone, rtype),
            Err(failure) => RrsetAnswer::Failed(failure.reason),
        }
    }
}

impl ZoneCheck for DnssecZoneCheck {
    type Outcome = (ExpiryVerdict, Option<EarliestSignature>);

    async fn check(&self, zone: &Name) -> Self::Outcome {
        let asks = self
            .sweep
            .types
            .iter()
            .map(|&t| async move { (t, self.ask(zone, t).await) });
        let answers = futures::future::join_all(asks).await;
        let unsigned_rrset = answers.iter().any(|(_, a)| {
            matches!(a, RrsetAnswer::Found { records, signatures } if *records > 0 && signatures.is_empty())
        });
        // Whether the zone is signed at all decides between "missing signature" and "unsigned".
        let dnskey_present = if unsigned_rrset && !self.sweep.types.contains(&RecordType::DNSKEY) {
            match self.ask(zone, RecordType::DNSKEY).await {
                RrsetAnswer::Found { records, .. } => Some(records > 0),
                RrsetAnswer::Failed(_) => None,
            }
        } else {
            None
        };
        judge_zone(
            &answers,
            dnskey_present,
            unix_now(),
            Thresholds::of(&self.sweep),
        )
    }

    fn not_checked(&self) -> Self::Outcome {
        (ExpiryVerdict::LocalFailed(FailReason::Timeout), None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: u64 = 1_800_000_000;

    fn rdata(covered: u16, expiration: u32, inception: u32) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&covered.to_be_bytes());
        v.push(13); // ECDSAP256SHA256
        v.push(2); // labels
        v.extend_from_slice(&3600u32.to_be_bytes());
        v.extend_from_slice(&expiration.to_be_bytes());
        v.extend_from_slice(&inception.to_be_bytes());
        v.extend_from_slice(&4242u16.to_be_bytes());
        v.extend_from_slice(b"\x07example\x03com\x00");
        v.extend_from_slice(&[0xAB; 64]);
        v
    }

    fn sig(covered: RecordType, expires_in: i64, started: i64) -> RrsigTimes {
        RrsigTimes {
            type_covered: covered,
            algorithm: 13,
            key_tag: 1,
            expiration: (NOW as i64 + expires_in) as u32,
            inception: (NOW as i64 + started) as u32,
        }
    }

    const LIMITS: Thresholds = Thresholds {
        warn_before: 3 * 86400,
        fail_before: 3600,
        clock_skew: 300,
    };

    fn found(signatures: Vec<RrsigTimes>) -> RrsetAnswer {
        RrsetAnswer::Found {
            records: 1,
            signatures,
        }
    }

    #[test]
    fn parses_the_fixed_fields() {
        let parsed = parse_rrsig(&rdata(6, 0xDEAD_BEEF, 0x1234_5678)).expect("valid");
        assert_eq!(parsed.type_covered, RecordType::SOA);
        assert_eq!(parsed.algorithm, 13);
        assert_eq!(parsed.key_tag, 4242);
        assert_eq!(parsed.expiration, 0xDEAD_BEEF);
        assert_eq!(parsed.inception, 0x1234_5678);
    }

    #[test]
    fn rejects_malformed_rdata() {
        let good = rdata(6, 1, 0);
        assert!(parse_rrsig(&good[..17]).unwrap_err().contains("shorter"));
        // Name cut short, no signature, a compression pointer.
        assert!(
            parse_rrsig(&good[..22])
                .unwrap_err()
                .contains("past the end")
        );
        let no_sig = &good[..good.len() - 64];
        assert!(parse_rrsig(no_sig).unwrap_err().contains("no signature"));
        let mut compressed = good[..18].to_vec();
        compressed.extend_from_slice(&[0xC0, 0x0C, 1, 2, 3]);
        assert!(parse_rrsig(&compressed).unwrap_err().contains("compressed"));
        // A name longer than 255 bytes.
        let mut long = good[..18].to_vec();
        for _ in 0..5 {
            long.push(63);
            long.extend_from_slice(&[b'a'; 63]);
        }
        long.extend_from_slice(&[0, 1]);
        assert!(parse_rrsig(&long).unwrap_err().contains("255"));
    }

    proptest! {
        /// Any byte string parses or is rejected; never a panic.
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = parse_rrsig(&bytes);
        }

        /// Corrupting any byte of a valid RDATA never panics, and truncating it is always an error.
        #[test]
        fn corrupted_or_truncated_rdata(at in 0usize..100, byte in any::<u8>(), cut in 0usize..100) {
            let mut v = rdata(48, 5, 1);
            let at = at % v.len();
            v[at] = byte;
            let _ = parse_rrsig(&v);
            let good = rdata(48, 5, 1);
            let cut = cut % (good.len() - 64);
            prop_assert!(parse_rrsig(&good[..cut]).is_err());
        }
    }

    #[test]
    fn serial_time_arithmetic_wraps() {
        assert_eq!(seconds_until((NOW + 10) as u32, NOW), 10);
        assert_eq!(seconds_until((NOW - 10) as u32, NOW), -10);
        // Across the 2106 wrap of 32-bit time.
        let late = (1u64 << 32) - 5;
        assert_eq!(seconds_until(5, late), 10);
    }

    #[test]
    fn judges_expiry_against_the_thresholds() {
        let judge = |left: i64| {
            judge_zone(
                &[
                    (
                        RecordType::SOA,
                        found(vec![sig(RecordType::SOA, 30 * 86400, -60)]),
                    ),
                    (
                        RecordType::DNSKEY,
                        found(vec![sig(RecordType::DNSKEY, left, -60)]),
                    ),
                ],
                None,
                NOW,
                LIMITS,
            )
        };
        assert_eq!(judge(10 * 86400).0, ExpiryVerdict::Valid);
        let (verdict, earliest) = judge(86400);
        assert_eq!(verdict, ExpiryVerdict::Expiring);
        let earliest = earliest.expect("signed");
        assert_eq!(earliest.covered, RecordType::DNSKEY);
        assert_eq!(earliest.remaining, 86400);
        assert_eq!(earliest.expires_unix, NOW as i64 + 86400);
        assert_eq!(judge(600).0, ExpiryVerdict::Critical);
        assert_eq!(judge(0).0, ExpiryVerdict::Expired);
        assert_eq!(judge(-5).0, ExpiryVerdict::Expired);
    }

    #[test]
    fn the_earliest_of_several_signatures_counts() {
        let (verdict, earliest) = judge_zone(
            &[(
                RecordType::SOA,
                found(vec![
                    sig(RecordType::SOA, 30 * 86400, -60),
                    sig(RecordType::SOA, 100, -60),
                ]),
            )],
            None,
            NOW,
            LIMITS,
        );
        assert_eq!(verdict, ExpiryVerdict::Critical);
        assert_eq!(earliest.map(|e| e.remaining), Some(100));
    }

    #[test]
    fn inception_in_the_future_beyond_the_skew_fails() {
        let judge = |started: i64| {
            judge_zone(
                &[(
                    RecordType::SOA,
                    found(vec![sig(RecordType::SOA, 30 * 86400, started)]),
                )],
                None,
                NOW,
                LIMITS,
            )
            .0
        };
        assert_eq!(judge(200), ExpiryVerdict::Valid);
        assert_eq!(
            judge(3600),
            ExpiryVerdict::NotYetValid {
                rtype: RecordType::SOA,
                starts_in: 3600
            }
        );
    }

    #[test]
    fn missing_signature_versus_unsigned() {
        let dnskey = (
            RecordType::DNSKEY,
            found(vec![sig(RecordType::DNSKEY, 30 * 86400, -60)]),
        );
        let bare_soa = (RecordType::SOA, found(vec![]));
        assert_eq!(
            judge_zone(&[bare_soa.clone(), dnskey], None, NOW, LIMITS).0,
            ExpiryVerdict::MissingSignature {
                rtype: RecordType::SOA
            }
        );
        let no_dnskey = (
            RecordType::DNSKEY,
            RrsetAnswer::Found {
                records: 0,
                signatures: vec![],
            },
        );
        assert_eq!(
            judge_zone(&[bare_soa.clone(), no_dnskey], None, NOW, LIMITS).0,
            ExpiryVerdict::Unsigned
        );
        // DNSKEY not among the types: the separate DNSKEY answer decides.
        assert_eq!(
            judge_zone(std::slice::from_ref(&bare_soa), Some(false), NOW, LIMITS).0,
            ExpiryVerdict::Unsigned
        );
        assert_eq!(
            judge_zone(std::slice::from_ref(&bare_soa), Some(true), NOW, LIMITS).0,
            ExpiryVerdict::MissingSignature {
                rtype: RecordType::SOA
            }
        );
    }

    #[test]
    fn failures_and_absent_rrsets() {
        let failed = (RecordType::SOA, RrsetAnswer::Failed(FailReason::Timeout));
        assert_eq!(
            judge_zone(&[failed], None, NOW, LIMITS).0,
            ExpiryVerdict::LocalFailed(FailReason::Timeout)
        );
        let absent = (
            RecordType::TXT,
            RrsetAnswer::Found {
                records: 0,
                signatures: vec![],
            },
        );
        assert!(matches!(
            judge_zone(&[absent], None, NOW, LIMITS).0,
            ExpiryVerdict::LocalFailed(FailReason::EmptyAnswer { .. })
        ));
    }

    #[test]
    fn summary_counts_and_worst_zones() {
        let name = |i: usize| Name::from_ascii(format!("z{i}.example.")).expect("name");
        let zones: Vec<ZoneExpiry> = (0..25)
            .map(|i| ZoneExpiry {
                zone: name(i),
                verdict: if i == 3 {
                    ExpiryVerdict::Unsigned
                } else {
                    ExpiryVerdict::Valid
                },
                earliest: (i != 3).then_some(EarliestSignature {
                    covered: RecordType::SOA,
                    expires_unix: 0,
                    remaining: 1000 - i as i64,
                }),
            })
            .collect();
        let summary = DnssecSummary::from_zones(&zones);
        assert_eq!(summary.zones, 25);
        assert_eq!(summary.count("valid"), 24);
        assert_eq!(summary.count("unsigned"), 1);
        assert_eq!(summary.worst.len(), WORST_ZONES);
        assert_eq!(summary.worst[0].0, name(24));
        assert_eq!(summary.worst[9].0, name(15));
        assert_eq!(summary.earliest().map(|w| w.1.remaining), Some(976));
    }
}
