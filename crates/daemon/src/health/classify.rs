//! From prober outcomes to [`CheckSignal`]s: which failures withdraw (hard) and which only degrade (soft).

use std::fmt::Write;

use nsbeacon_prober::{
    DnssecReport, ExpiryVerdict, FailReason, ProbeOutcome, ProbeStatus, SerialVerdict, SweepReport,
    TransportResult,
};

use super::CheckSignal;
use crate::config::fmt_duration;

/// Zones named in one sweep reason; the rest are counted.
const ZONES_NAMED: usize = 3;

/// Classifies one query probe.
///
/// - `Pass` -> [`CheckSignal::Pass`].
/// - `Slow` (correct but over `slow_after`) -> [`CheckSignal::Soft`]: answering, so degrade, never withdraw.
/// - `Fail` (no answer, wrong rcode, not authoritative, wrong identity, answer mismatch, ...) ->
///   [`CheckSignal::Hard`]; [`CheckSignal::Refused`] when every failed transport was refused,
///   [`CheckSignal::TimedOut`] when every failed transport timed out (no answer at all).
pub fn classify_probe(outcome: &ProbeOutcome) -> CheckSignal {
    match outcome.status {
        ProbeStatus::Pass => CheckSignal::Pass,
        ProbeStatus::Slow => {
            let slow: Vec<String> = outcome
                .transports
                .iter()
                .filter(|t| t.status == ProbeStatus::Slow)
                .map(|t| format!("{} {}", t.transport, fmt_latency(t)))
                .collect();
            CheckSignal::Soft(format!(
                "slow answer ({}), over the slow_after limit",
                slow.join(", ")
            ))
        }
        ProbeStatus::Fail => {
            let failed: Vec<String> = outcome
                .transports
                .iter()
                .filter(|t| t.status == ProbeStatus::Fail)
                .map(|t| match &t.reason {
                    Some(reason) => format!("{}: {reason} after {}", t.transport, fmt_latency(t)),
                    None => format!("{}: failed after {}", t.transport, fmt_latency(t)),
                })
                .collect();
            let mut text = if failed.is_empty() {
                match &outcome.reason {
                    Some(reason) => reason.to_string(),
                    None => "the probe failed without a reason".to_owned(),
                }
            } else {
                failed.join("; ")
            };
            // Who answered helps with every failure; identity mismatches already say it.
            if let Some(identity) = &outcome.identity
                && !text.contains(&format!("{identity:?}"))
            {
                let _ = write!(text, " (answered by {identity:?})");
            }
            if refused_everywhere(outcome) {
                CheckSignal::Refused(text)
            } else if every_failure_is(outcome, &FailReason::Timeout) {
                CheckSignal::TimedOut(text)
            } else {
                CheckSignal::Hard(text)
            }
        }
    }
}

/// Whether every transport that failed failed with a refused connection (local evidence that nothing
/// listens; see [`CheckSignal::Refused`]).
fn refused_everywhere(outcome: &ProbeOutcome) -> bool {
    let mut failed = outcome
        .transports
        .iter()
        .filter(|t| t.status == ProbeStatus::Fail)
        .peekable();
    if failed.peek().is_none() {
        return outcome.reason == Some(FailReason::ConnectionRefused);
    }
    failed.all(|t| t.reason == Some(FailReason::ConnectionRefused))
}

/// Whether every transport that failed failed with `reason` (and at least one did, or the outcome's own
/// reason is `reason`).
fn every_failure_is(outcome: &ProbeOutcome, reason: &FailReason) -> bool {
    let mut failed = outcome
        .transports
        .iter()
        .filter(|t| t.status == ProbeStatus::Fail)
        .peekable();
    if failed.peek().is_none() {
        return outcome.reason.as_ref() == Some(reason);
    }
    failed.all(|t| t.reason.as_ref() == Some(reason))
}

fn fmt_latency(t: &TransportResult) -> String {
    fmt_duration(std::time::Duration::from_micros(
        u64::try_from(t.latency.as_micros()).unwrap_or(u64::MAX),
    ))
}

/// Classifies a serial sweep. `max_behind_zones` is the serial check's tolerance for zones behind beyond
/// `max_lag` (0, the default, tolerates none).
///
/// - Any zone `LocalFailed`, or more than `max_behind_zones` zones `Behind` (more than `max_lag`) ->
///   [`CheckSignal::Hard`]: the local server is not serving current data ([`CheckSignal::TimedOut`] when
///   every failing zone is a local timeout).
/// - Otherwise any zone `Behind` (within the tolerance), `Lagging` (within `max_lag`) or
///   `ReferenceUnreachable` -> [`CheckSignal::Soft`]. A tolerated stale zone still degrades: it is stale on
///   this node, but withdrawing the node for it would pull every other zone too. The reference being
///   unreachable is a shared dependency failing; it must never withdraw on its own, or the whole fleet
///   would withdraw at once.
/// - Otherwise [`CheckSignal::Pass`]. An empty sweep is soft (nothing proven either way).
pub fn classify_sweep(report: &SweepReport, max_behind_zones: usize) -> CheckSignal {
    let total = report.zones.len();
    if total == 0 {
        return CheckSignal::Soft("the serial sweep returned no zones".to_owned());
    }
    // Behind and locally failed zones, in zone order; `behind` the behind ones alone.
    let mut local_failures = Vec::new();
    let mut behind = Vec::new();
    let mut lagging = Vec::new();
    let mut unreachable = Vec::new();
    let mut local_timeouts = 0usize;
    for zone in &report.zones {
        let o = &zone.outcome;
        match &o.verdict {
            SerialVerdict::InSync => {}
            SerialVerdict::Behind => {
                let text = format!(
                    "{} is {} behind (local {}, reference {})",
                    zone.zone,
                    o.lag.map_or_else(|| "?".to_owned(), |l| l.to_string()),
                    o.local_serial
                        .map_or_else(|| "?".to_owned(), |s| s.to_string()),
                    o.reference_serial
                        .map_or_else(|| "?".to_owned(), |s| s.to_string()),
                );
                behind.push(text.clone());
                local_failures.push(text);
            }
            SerialVerdict::LocalFailed(reason) => {
                if *reason == FailReason::Timeout {
                    local_timeouts += 1;
                }
                local_failures.push(format!("{}: local server: {reason}", zone.zone))
            }
            SerialVerdict::Lagging => lagging.push(format!(
                "{} lags by {}",
                zone.zone,
                o.lag.map_or_else(|| "?".to_owned(), |l| l.to_string())
            )),
            SerialVerdict::ReferenceUnreachable(reason) => {
                unreachable.push(format!("{}: {reason}", zone.zone))
            }
        }
    }
    let only_tolerated_behind =
        local_failures.len() == behind.len() && behind.len() <= max_behind_zones;
    if !local_failures.is_empty() && !only_tolerated_behind {
        let mut text = format!(
            "{} of {total} zone(s) failing locally: {}",
            local_failures.len(),
            name_some(&local_failures)
        );
        if max_behind_zones > 0 && local_failures.len() == behind.len() {
            let _ = write!(text, " (more than max_behind_zones = {max_behind_zones})");
        }
        if local_timeouts == local_failures.len() {
            // The local server answered none of them: what a flooded server looks like.
            return CheckSignal::TimedOut(text);
        }
        return CheckSignal::Hard(text);
    }
    let mut soft = Vec::new();
    if !behind.is_empty() {
        soft.push(format!(
            "{} of {total} zone(s) behind beyond max_lag, tolerated by max_behind_zones = {max_behind_zones}: {}",
            behind.len(),
            name_some(&behind)
        ));
    }
    if !lagging.is_empty() {
        soft.push(format!(
            "{} of {total} zone(s) lagging within max_lag: {}",
            lagging.len(),
            name_some(&lagging)
        ));
    }
    if !unreachable.is_empty() {
        soft.push(format!(
            "reference unreachable for {} of {total} zone(s) (not a local failure): {}",
            unreachable.len(),
            name_some(&unreachable)
        ));
    }
    if soft.is_empty() {
        CheckSignal::Pass
    } else {
        CheckSignal::Soft(soft.join("; "))
    }
}

fn name_some(items: &[String]) -> String {
    let mut text = items
        .iter()
        .take(ZONES_NAMED)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > ZONES_NAMED {
        let _ = write!(text, " and {} more", items.len() - ZONES_NAMED);
    }
    text
}

/// Classifies a DNSSEC expiry sweep.
///
/// - Any zone expired, within `fail_before` of expiry (`critical`), not yet valid (inception in the
///   future beyond the clock skew), missing a signature on a signed zone, unsigned, or not answered by
///   the local server -> [`CheckSignal::Hard`]. Never [`CheckSignal::Refused`]: the server answers, and an
///   expiry shared by the whole fleet (one signer) must reach the fleet guard as an ordinary hard failure,
///   which it holds when too few nodes would be left announcing.
/// - Otherwise any zone within `warn_before` (`expiring`) -> [`CheckSignal::Soft`]: still valid, so
///   degrade and alert, never withdraw.
/// - Otherwise [`CheckSignal::Pass`]. An empty sweep is soft (nothing proven either way).
pub fn classify_dnssec(report: &DnssecReport) -> CheckSignal {
    let total = report.zones.len();
    if total == 0 {
        return CheckSignal::Soft("the DNSSEC sweep returned no zones".to_owned());
    }
    let mut hard = Vec::new();
    let mut soft = Vec::new();
    for zone in &report.zones {
        let left = zone
            .earliest
            .map(|e| {
                let text = fmt_validity(e.remaining);
                format!("{} RRSIG {text}", e.covered)
            })
            .unwrap_or_default();
        let text = match &zone.verdict {
            ExpiryVerdict::Valid => continue,
            ExpiryVerdict::Expiring => {
                soft.push(format!("{} {left}", zone.zone));
                continue;
            }
            ExpiryVerdict::Critical | ExpiryVerdict::Expired => format!("{} {left}", zone.zone),
            ExpiryVerdict::NotYetValid { rtype, starts_in } => format!(
                "{}: {rtype} RRSIG not valid for another {starts_in} s (inception in the future)",
                zone.zone
            ),
            ExpiryVerdict::MissingSignature { rtype } => {
                format!(
                    "{}: {rtype} has no RRSIG although the zone has a DNSKEY",
                    zone.zone
                )
            }
            ExpiryVerdict::Unsigned => format!("{}: not signed (no DNSKEY)", zone.zone),
            ExpiryVerdict::LocalFailed(reason) => format!("{}: local server: {reason}", zone.zone),
        };
        hard.push(text);
    }
    if !hard.is_empty() {
        return CheckSignal::Hard(format!(
            "{} of {total} zone(s) with failing signatures: {}",
            hard.len(),
            name_some(&hard)
        ));
    }
    if !soft.is_empty() {
        return CheckSignal::Soft(format!(
            "{} of {total} zone(s) with signatures expiring within warn_before: {}",
            soft.len(),
            name_some(&soft)
        ));
    }
    CheckSignal::Pass
}

/// "expires in 2d 3h" or "expired 5m ago", at whole seconds.
fn fmt_validity(remaining: i64) -> String {
    let span = |s: i64| {
        humantime::format_duration(std::time::Duration::from_secs(s.unsigned_abs())).to_string()
    };
    if remaining > 0 {
        format!("expires in {}", span(remaining))
    } else {
        format!("expired {} ago", span(remaining))
    }
}

#[cfg(test)]
mod dnssec_tests {
    use std::time::Duration;

    use nsbeacon_prober::dnssec::{DnssecSummary, EarliestSignature, ZoneExpiry};
    use nsbeacon_prober::proto::rr::{Name, RecordType};
    use nsbeacon_prober::{DnssecReport, ExpiryVerdict, FailReason};

    use super::*;

    fn report(verdicts: Vec<ExpiryVerdict>) -> DnssecReport {
        let zones = verdicts
            .into_iter()
            .enumerate()
            .map(|(i, verdict)| ZoneExpiry {
                zone: Name::from_ascii(format!("z{i}.example.")).expect("name"),
                verdict,
                earliest: Some(EarliestSignature {
                    covered: RecordType::SOA,
                    expires_unix: 0,
                    remaining: 100,
                }),
            })
            .collect();
        DnssecReport {
            zones,
            summary: DnssecSummary::default(),
            elapsed: Duration::ZERO,
        }
    }

    #[test]
    fn expiring_is_soft_and_failures_are_hard_never_refused() {
        assert_eq!(
            classify_dnssec(&report(vec![ExpiryVerdict::Valid])),
            CheckSignal::Pass
        );
        assert!(matches!(
            classify_dnssec(&report(vec![ExpiryVerdict::Valid, ExpiryVerdict::Expiring])),
            CheckSignal::Soft(_)
        ));
        for bad in [
            ExpiryVerdict::Critical,
            ExpiryVerdict::Expired,
            ExpiryVerdict::Unsigned,
            ExpiryVerdict::MissingSignature {
                rtype: RecordType::SOA,
            },
            ExpiryVerdict::NotYetValid {
                rtype: RecordType::SOA,
                starts_in: 4000,
            },
            // Even a refused connection: the signatures, not the socket, are what this check judges.
            ExpiryVerdict::LocalFailed(FailReason::ConnectionRefused),
        ] {
            let signal = classify_dnssec(&report(vec![ExpiryVerdict::Expiring, bad.clone()]));
            assert!(
                matches!(signal, CheckSignal::Hard(_)),
                "{bad:?}: {signal:?}"
            );
        }
        assert!(matches!(
            classify_dnssec(&report(vec![])),
            CheckSignal::Soft(_)
        ));
    }
}
