//! Serial checks: SOA serial freshness of a set of zones (listed and/or from a zones file) at the local
//! server against a reference server.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use nsbeacon_prober::Transport;
use nsbeacon_prober::proto::rr::Name;

use super::Validator;
use super::raw::RawCheck;
use super::values::parse_name;
use crate::config::{
    DEFAULT_SERIAL_CONCURRENCY, MAX_SERIAL_CONCURRENCY, MAX_ZONES_FILE_BYTES, SerialCheck,
};
use crate::file;

impl Validator<'_> {
    pub(super) fn serial_check(
        &mut self,
        path: &str,
        raw: &RawCheck,
        transport: Option<Transport>,
        timeout: Option<Duration>,
    ) -> Option<SerialCheck> {
        let (local, reference) = self.serial_servers(path, raw);
        let max_lag = self.max_lag(path, raw);
        let max_behind_zones = self.max_behind_zones(path, raw);
        let concurrency = self.concurrency(path, raw);
        let zones = self.zones(path, raw, max_behind_zones);
        Some(SerialCheck {
            zones: zones?,
            local: local?,
            reference: reference?,
            transport: transport?,
            timeout: timeout?,
            max_lag: max_lag?,
            max_behind_zones: max_behind_zones?,
            concurrency: concurrency?,
        })
    }

    /// `local` and `reference`, which must differ.
    fn serial_servers(
        &mut self,
        path: &str,
        raw: &RawCheck,
    ) -> (Option<SocketAddr>, Option<SocketAddr>) {
        let local = self.address(
            &format!("{path}.local"),
            raw.local.as_deref(),
            "give the local server whose serials are checked, e.g. local = \"127.0.0.1:53\"",
        );
        let reference = self.address(
            &format!("{path}.reference"),
            raw.reference.as_deref(),
            "a serial check compares the local serials with a reference server: give the hidden primary's \
             unicast address, e.g. reference = \"192.0.2.10:53\"",
        );
        let reference = match (local, reference) {
            (Some(l), Some(r)) if l == r => {
                self.issue(
                    format!("{path}.reference"),
                    format!("the reference {r} is the local server itself"),
                    "give the hidden primary (or another upstream) so that the comparison means something",
                );
                None
            }
            (_, r) => r,
        };
        (local, reference)
    }

    fn max_lag(&mut self, path: &str, raw: &RawCheck) -> Option<u32> {
        match raw.max_lag {
            None => {
                self.issue(
                    format!("{path}.max_lag"),
                    "missing",
                    "set how far (in serial increments, RFC 1982) a zone may lag before this node is withdrawn; a \
                     smaller lag only degrades. E.g. 10 for YYYYMMDDnn serials, 3600 for unix-time serials",
                );
                None
            }
            Some(n) => match u32::try_from(n) {
                Ok(n) if n < (1 << 31) => Some(n),
                _ => {
                    self.issue(
                        format!("{path}.max_lag"),
                        format!("{n} is out of range"),
                        "use 0..=2147483647 (RFC 1982 cannot order serials further apart)",
                    );
                    None
                }
            },
        }
    }

    fn max_behind_zones(&mut self, path: &str, raw: &RawCheck) -> Option<usize> {
        match raw.max_behind_zones {
            None => Some(0),
            Some(n) => match usize::try_from(n) {
                Ok(n) => Some(n),
                Err(_) => {
                    self.issue(
                        format!("{path}.max_behind_zones"),
                        format!("{n} is out of range"),
                        "give how many zones may be behind beyond max_lag before this node is withdrawn; 0 \
                         (default) withdraws for any zone behind",
                    );
                    None
                }
            },
        }
    }

    pub(super) fn concurrency(&mut self, path: &str, raw: &RawCheck) -> Option<usize> {
        match raw.concurrency {
            None => Some(DEFAULT_SERIAL_CONCURRENCY),
            Some(n) => match usize::try_from(n) {
                Ok(n) if (1..=MAX_SERIAL_CONCURRENCY).contains(&n) => Some(n),
                _ => {
                    self.issue(
                        format!("{path}.concurrency"),
                        format!("{n} is out of range"),
                        format!("use 1..={MAX_SERIAL_CONCURRENCY} (default {DEFAULT_SERIAL_CONCURRENCY})"),
                    );
                    None
                }
            },
        }
    }

    /// `zones` and the zones of `zones_file`, deduplicated (case-insensitively) in that order; at least one,
    /// and more than `max_behind_zones`.
    pub(super) fn zones(
        &mut self,
        path: &str,
        raw: &RawCheck,
        max_behind_zones: Option<usize>,
    ) -> Option<Vec<Name>> {
        let mut zones: Vec<Name> = Vec::new();
        let mut seen: HashSet<Name> = HashSet::new();
        let mut zones_ok = true;
        for (i, z) in raw.zones.iter().flatten().enumerate() {
            match self.dns_name(&format!("{path}.zones[{i}]"), z) {
                Some(name) => {
                    if seen.insert(name.to_lowercase()) {
                        zones.push(name);
                    }
                }
                None => zones_ok = false,
            }
        }
        if let Some(file) = raw.zones_file.as_deref() {
            match self.zones_file(&format!("{path}.zones_file"), file) {
                Some(from_file) => {
                    for name in from_file {
                        if seen.insert(name.to_lowercase()) {
                            zones.push(name);
                        }
                    }
                }
                None => zones_ok = false,
            }
        }
        if zones_ok && zones.is_empty() {
            self.issue(
                format!("{path}.zones"),
                "no zones to check",
                "list zones = [\"example.com.\"] and/or zones_file = \"/etc/nsbeacon/zones.txt\" (one zone per line)",
            );
            zones_ok = false;
        }
        if zones_ok
            && let Some(n) = max_behind_zones
            && n > 0
            && n >= zones.len()
        {
            self.issue(
                format!("{path}.max_behind_zones"),
                format!(
                    "{n} tolerates every one of the {} zone(s), so no stale zone could ever withdraw this node",
                    zones.len()
                ),
                "set it below the number of zones (a few, for the odd zone whose transfer failed), or 0 to \
                 withdraw for any zone behind (default)",
            );
        }
        zones_ok.then_some(zones)
    }

    /// Reads a zones file: one zone per line, `#` starts a comment, blank lines ignored.
    fn zones_file(&mut self, path: &str, file: &str) -> Option<Vec<Name>> {
        const MAX_LISTED: usize = 5;
        let mut full = PathBuf::from(file);
        if full.is_relative()
            && let Some(base) = self.base
        {
            full = base.join(full);
        }
        let text = match file::read_text(&full, MAX_ZONES_FILE_BYTES, "a zones file") {
            Ok(text) => text,
            Err(e) => {
                self.issue(
                    path,
                    format!("cannot read the zones file: {e}"),
                    format!(
                        "{}; give a regular file with one zone per line (relative paths are relative to the \
                         config file)",
                        e.hint()
                    ),
                );
                return None;
            }
        };
        let mut zones = Vec::new();
        let mut bad = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let content = line.split('#').next().unwrap_or_default().trim();
            if content.is_empty() {
                continue;
            }
            match parse_name(content) {
                Some(name) if content.split_whitespace().count() == 1 => zones.push(name),
                _ => bad.push((number + 1, content.to_owned())),
            }
        }
        if !bad.is_empty() {
            let mut listed: Vec<String> = bad
                .iter()
                .take(MAX_LISTED)
                .map(|(line, content)| format!("line {line}: {content:?}"))
                .collect();
            if bad.len() > MAX_LISTED {
                listed.push(format!("and {} more", bad.len() - MAX_LISTED));
            }
            self.issue(
                path,
                format!(
                    "{}: invalid zone name(s): {}",
                    full.display(),
                    listed.join(", ")
                ),
                "write one domain name per line; '#' starts a comment",
            );
            return None;
        }
        Some(zones)
    }
}
