//! `[[service.check]]`: the parts common to both check types (name, type, interval, timeout, transport),
//! then the type's own keys ([`super::query`], [`super::serial`]).

use std::time::Duration;

use super::Validator;
use super::raw::RawCheck;
use crate::config::{
    CheckConfig, CheckKind, DEFAULT_SERIAL_INTERVAL, DEFAULT_SERIAL_TIMEOUT_CAP,
    DEFAULT_TIMEOUT_CAP, MAX_INTERVAL, MAX_TIMEOUT, MIN_INTERVAL, fmt_duration,
};

impl Validator<'_> {
    pub(super) fn check(
        &mut self,
        path: &str,
        service_path: &str,
        raw: &RawCheck,
        service_interval: Option<Duration>,
        service_timeout: Option<Option<Duration>>,
    ) -> Option<CheckConfig> {
        let name = self.name(&format!("{path}.name"), raw.name.as_deref(), "check");
        let is_serial = self.check_type(path, raw.check_type.as_deref())?;
        self.foreign_keys(path, raw, is_serial);
        let interval = match raw.interval.as_deref() {
            Some(s) => self.duration_in(
                &format!("{path}.interval"),
                Some(s),
                MIN_INTERVAL,
                MAX_INTERVAL,
            ),
            None if is_serial => service_interval.map(|i| i.max(DEFAULT_SERIAL_INTERVAL)),
            None => service_interval,
        };
        let timeout = self.check_timeout(
            path,
            service_path,
            raw,
            is_serial,
            interval,
            service_timeout,
        )?;
        let transport = self.transport(
            &format!("{path}.transport"),
            raw.transport.as_deref(),
            is_serial,
        );
        let kind = if is_serial {
            self.serial_check(path, raw, transport, timeout)
                .map(CheckKind::Serial)
        } else {
            self.query_check(path, raw, transport, timeout)
                .map(CheckKind::Query)
        };
        Some(CheckConfig {
            name: name?,
            interval: interval?,
            timeout: timeout?,
            kind: kind?,
        })
    }

    /// `type`: `Some(true)` for a serial check, `Some(false)` for a query check (the default).
    fn check_type(&mut self, path: &str, raw: Option<&str>) -> Option<bool> {
        match raw {
            None | Some("query") => Some(false),
            Some("serial") => Some(true),
            Some(other) => {
                self.issue(
                    format!("{path}.type"),
                    format!("{other:?} is not a check type"),
                    "use type = \"query\" (default: one DNS query with expectations) or \"serial\" (SOA freshness \
                     against a reference server)",
                );
                None
            }
        }
    }

    /// Keys of the other check type are errors, naming the type they belong to.
    fn foreign_keys(&mut self, path: &str, raw: &RawCheck, is_serial: bool) {
        let (foreign, this, other, hint) = if is_serial {
            (
                raw.query_only_keys(),
                "serial",
                "query",
                "remove it, or make this a query check (the default type)",
            )
        } else {
            (
                raw.serial_only_keys(),
                "query",
                "serial",
                "remove it, or add type = \"serial\"",
            )
        };
        for key in foreign {
            self.issue(
                format!("{path}.{key}"),
                format!(
                    "`{key}` only applies to type = \"{other}\" checks, and this is a {this} check"
                ),
                hint,
            );
        }
    }

    /// The check's timeout: its own, else the service's, else derived from the interval. The outer
    /// `None` means the check is rejected (the timeout does not fit the interval); the inner one that the
    /// timeout or interval itself is invalid (already reported).
    fn check_timeout(
        &mut self,
        path: &str,
        service_path: &str,
        raw: &RawCheck,
        is_serial: bool,
        interval: Option<Duration>,
        service_timeout: Option<Option<Duration>>,
    ) -> Option<Option<Duration>> {
        // A CHAOS TXT identity query runs after the main exchange: such a probe can take two timeouts.
        let chaos_identity = !is_serial && raw.identity.as_deref().is_some_and(|i| i != "nsid");
        let timeouts_per_probe: u32 = if chaos_identity { 2 } else { 1 };
        // Where the timeout came from decides which key an error points at.
        let (timeout, timeout_path) = match (raw.timeout.as_deref(), service_timeout) {
            (Some(s), _) => (
                self.duration_in(
                    &format!("{path}.timeout"),
                    Some(s),
                    Duration::from_millis(1),
                    MAX_TIMEOUT,
                ),
                format!("{path}.timeout"),
            ),
            (None, Some(from_service)) => (from_service, format!("{service_path}.timeout")),
            (None, None) => {
                let cap = if is_serial {
                    DEFAULT_SERIAL_TIMEOUT_CAP
                } else {
                    DEFAULT_TIMEOUT_CAP
                };
                (
                    interval.map(|i| (i / (2 * timeouts_per_probe)).min(cap)),
                    format!("{path}.timeout"),
                )
            }
        };
        if let (Some(t), Some(i)) = (timeout, interval)
            && t * timeouts_per_probe >= i
        {
            let of_check = if raw.timeout.is_none() {
                format!(" of {path}")
            } else {
                String::new()
            };
            let message = if chaos_identity {
                format!(
                    "{} must be shorter than half the interval {}{of_check}: with a CHAOS TXT identity the \
                     probe sends a second query and can take two timeouts",
                    fmt_duration(t),
                    fmt_duration(i),
                )
            } else {
                format!(
                    "{} must be shorter than the interval {}{of_check}",
                    fmt_duration(t),
                    fmt_duration(i),
                )
            };
            self.issue(
                timeout_path,
                message,
                "a probe must end before the next one is due; lower the timeout or raise the interval",
            );
            return None;
        }
        Some(timeout)
    }
}
