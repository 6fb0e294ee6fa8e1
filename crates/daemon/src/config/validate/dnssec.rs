//! DNSSEC checks: the RRSIG expiry of a set of zones (listed and/or from a zones file) at the local server.
//! The zone keys (`zones`, `zones_file`, `concurrency`) are the serial check's ([`super::serial`]).

use std::str::FromStr;
use std::time::Duration;

use nsbeacon_prober::Transport;
use nsbeacon_prober::dnssec::{DEFAULT_CLOCK_SKEW, DEFAULT_FAIL_BEFORE, DEFAULT_WARN_BEFORE};
use nsbeacon_prober::proto::rr::RecordType;

use super::Validator;
use super::raw::RawCheck;
use crate::config::{DnssecCheck, fmt_duration};

/// Longest accepted `warn_before` / `fail_before`: signature validities beyond a year are unheard of.
const MAX_EXPIRY_THRESHOLD: Duration = Duration::from_secs(366 * 24 * 3600);

/// Longest accepted `clock_skew`.
const MAX_CLOCK_SKEW: Duration = Duration::from_secs(24 * 3600);

/// RRset types that are never at a zone apex or cannot carry a signature of their own.
const NOT_APEX_SIGNED: &[RecordType] = &[
    RecordType::RRSIG,
    RecordType::OPT,
    RecordType::ANY,
    RecordType::AXFR,
    RecordType::IXFR,
    RecordType::TSIG,
    RecordType::SIG,
];

impl Validator<'_> {
    pub(super) fn dnssec_check(
        &mut self,
        path: &str,
        raw: &RawCheck,
        transport: Option<Transport>,
        timeout: Option<Duration>,
    ) -> Option<DnssecCheck> {
        let local = self.address(
            &format!("{path}.local"),
            raw.local.as_deref(),
            "give the local server whose signatures are checked, e.g. local = \"127.0.0.1:53\"",
        );
        let types = self.dnssec_types(path, raw);
        let (warn_before, fail_before) = self.expiry_thresholds(path, raw);
        let clock_skew = match raw.clock_skew.as_deref() {
            None => Some(DEFAULT_CLOCK_SKEW),
            s => self.duration_in(
                &format!("{path}.clock_skew"),
                s,
                Duration::ZERO,
                MAX_CLOCK_SKEW,
            ),
        };
        let concurrency = self.concurrency(path, raw);
        let zones = self.zones(path, raw, Some(0));
        Some(DnssecCheck {
            zones: zones?,
            local: local?,
            transport: transport?,
            timeout: timeout?,
            types: types?,
            warn_before: warn_before?,
            fail_before: fail_before?,
            clock_skew: clock_skew?,
            concurrency: concurrency?,
        })
    }

    /// `types`: record type names, deduplicated; SOA and DNSKEY by default.
    fn dnssec_types(&mut self, path: &str, raw: &RawCheck) -> Option<Vec<RecordType>> {
        let Some(names) = &raw.types else {
            return Some(vec![RecordType::SOA, RecordType::DNSKEY]);
        };
        if names.is_empty() {
            self.issue(
                format!("{path}.types"),
                "no record types",
                "list the apex RRsets whose signatures are checked, e.g. types = [\"SOA\", \"DNSKEY\"] \
                 (the default)",
            );
            return None;
        }
        let mut types = Vec::new();
        let mut ok = true;
        for (i, name) in names.iter().enumerate() {
            match RecordType::from_str(&name.trim().to_ascii_uppercase()) {
                Ok(t) if !matches!(t, RecordType::Unknown(_)) && !NOT_APEX_SIGNED.contains(&t) => {
                    if !types.contains(&t) {
                        types.push(t);
                    }
                }
                Ok(t) if NOT_APEX_SIGNED.contains(&t) => {
                    self.issue(
                        format!("{path}.types[{i}]"),
                        format!(
                            "{t} is not an RRset that carries its own signature at the zone apex"
                        ),
                        "list apex RRsets such as SOA, DNSKEY, NS, TXT",
                    );
                    ok = false;
                }
                _ => {
                    self.issue(
                        format!("{path}.types[{i}]"),
                        format!("{name:?} is not a record type"),
                        "use type names such as SOA, DNSKEY, NS, TXT",
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(types)
    }

    /// `warn_before` (default 3 days) and `fail_before` (default 1 hour); `fail_before` must be the
    /// smaller, or no zone would ever only degrade before it withdraws.
    fn expiry_thresholds(
        &mut self,
        path: &str,
        raw: &RawCheck,
    ) -> (Option<Duration>, Option<Duration>) {
        let warn = match raw.warn_before.as_deref() {
            None => Some(DEFAULT_WARN_BEFORE),
            s => self.duration_in(
                &format!("{path}.warn_before"),
                s,
                Duration::from_secs(1),
                MAX_EXPIRY_THRESHOLD,
            ),
        };
        let fail = match raw.fail_before.as_deref() {
            None => Some(DEFAULT_FAIL_BEFORE),
            s => self.duration_in(
                &format!("{path}.fail_before"),
                s,
                Duration::ZERO,
                MAX_EXPIRY_THRESHOLD,
            ),
        };
        if let (Some(w), Some(f)) = (warn, fail)
            && f >= w
        {
            let written = if raw.fail_before.is_some() {
                "fail_before"
            } else {
                "warn_before"
            };
            self.issue(
                format!("{path}.{written}"),
                format!(
                    "fail_before {} is not below warn_before {}",
                    fmt_duration(f),
                    fmt_duration(w)
                ),
                "a zone should degrade (warn_before) before it withdraws (fail_before): make fail_before \
                 the smaller, e.g. warn_before = \"3d\", fail_before = \"1h\" (the defaults)",
            );
            return (None, None);
        }
        (warn, fail)
    }
}
