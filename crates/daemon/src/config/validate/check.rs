//! `[[service.check]]`: the parts common to every check type (name, type, interval, timeout, transport),
//! then the type's own keys ([`super::query`], [`super::serial`], [`super::dnssec`]).

use std::time::Duration;

use super::Validator;
use super::raw::RawCheck;
use crate::config::{
    CheckConfig, CheckKind, ConfirmTimeout, DEFAULT_SERIAL_INTERVAL, DEFAULT_SERIAL_TIMEOUT_CAP,
    DEFAULT_TIMEOUT_CAP, MAX_INTERVAL, MAX_TIMEOUT, MIN_INTERVAL, fmt_duration,
};

/// The check types, as `type` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// `query` (default): one DNS query with expectations.
    Query,
    /// `serial`: SOA freshness of a zone sweep against a reference.
    Serial,
    /// `dnssec`: RRSIG expiry of a zone sweep.
    Dnssec,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Query => "query",
            Kind::Serial => "serial",
            Kind::Dnssec => "dnssec",
        }
    }

    /// A zone sweep (serial or dnssec): slower default interval, one transport.
    pub(super) fn is_sweep(self) -> bool {
        self != Kind::Query
    }
}

/// What a service passes down to its checks: its interval and timeout, and whether the operator wrote
/// the interval (so that an error names the key actually written, or says the value is a default).
pub(super) struct ServiceTiming<'a> {
    /// The service's key path, `service[N]`.
    pub path: &'a str,
    /// The service interval (default or written); `None` if it was invalid.
    pub interval: Option<Duration>,
    /// Whether `interval` was written in the service.
    pub interval_written: bool,
    /// The service timeout: `None` unset, `Some(None)` set but invalid.
    pub timeout: Option<Option<Duration>>,
    /// The service `confirm_timeout`: `None` unset, `Some(None)` set but invalid (already reported).
    pub confirm_timeout: Option<Option<ConfirmTimeout>>,
}

/// A check's interval and where it came from.
struct Interval {
    value: Option<Duration>,
    /// How a message names it: `service[0].check[1].interval 2s`, `the default interval 1s`, ...
    described: fn(&str, &str, Duration) -> String,
}

impl Validator<'_> {
    pub(super) fn check(
        &mut self,
        path: &str,
        raw: &RawCheck,
        service: &ServiceTiming<'_>,
    ) -> Option<CheckConfig> {
        let name = self.name(&format!("{path}.name"), raw.name.as_deref(), "check");
        let kind = self.check_type(path, raw.check_type.as_deref())?;
        self.foreign_keys(path, raw, kind);
        let interval = self.check_interval(path, raw, kind.is_sweep(), service);
        let timeout = self.check_timeout(path, raw, kind.is_sweep(), &interval, service)?;
        let confirm_timeout = self.check_confirm_timeout(path, raw, kind, timeout, service);
        let interval = interval.value;
        let transport = self.transport(
            &format!("{path}.transport"),
            raw.transport.as_deref(),
            kind.is_sweep(),
        );
        let kind = match kind {
            Kind::Serial => self
                .serial_check(path, raw, transport, timeout)
                .map(CheckKind::Serial),
            Kind::Dnssec => self
                .dnssec_check(path, raw, transport, timeout)
                .map(CheckKind::Dnssec),
            Kind::Query => self
                .query_check(path, raw, transport, timeout)
                .map(CheckKind::Query),
        };
        Some(CheckConfig {
            name: name?,
            interval: interval?,
            timeout: timeout?,
            confirm_timeout: confirm_timeout?,
            kind: kind?,
        })
    }

    /// The check's `confirm_timeout`: its own, else the service's, else `auto`; an explicit duration
    /// must not exceed the check's timeout (the error names the key where it was written). Zone sweeps
    /// keep their full timeout for confirmations, so the service's value does not apply to them (a
    /// check's own is rejected by [`Self::foreign_keys`]).
    fn check_confirm_timeout(
        &mut self,
        path: &str,
        raw: &RawCheck,
        kind: Kind,
        timeout: Option<Duration>,
        service: &ServiceTiming<'_>,
    ) -> Option<ConfirmTimeout> {
        if kind.is_sweep() {
            return Some(ConfirmTimeout::Auto);
        }
        let (value, key) = match (raw.confirm_timeout.as_deref(), service.confirm_timeout) {
            (Some(s), _) => {
                let key = format!("{path}.confirm_timeout");
                (self.confirm_timeout_value(&key, s), key)
            }
            (None, Some(from_service)) => {
                (from_service, format!("{}.confirm_timeout", service.path))
            }
            (None, None) => return Some(ConfirmTimeout::Auto),
        };
        let value = value?;
        if let (ConfirmTimeout::Fixed(fixed), Some(timeout)) = (value, timeout)
            && fixed > timeout
        {
            let check = raw
                .name
                .as_deref()
                .map_or_else(|| path.to_owned(), |name| format!("{path} ({name:?})"));
            self.issue(
                key,
                format!(
                    "confirm_timeout {} is longer than the timeout {} of {check}",
                    fmt_duration(fixed),
                    fmt_duration(timeout)
                ),
                "a confirmation probe waits at most the check's timeout: use a shorter value, or \"auto\" \
                 (8x the slowest recent answer, from 50ms up to the timeout)",
            );
            return None;
        }
        Some(value)
    }

    /// A written `confirm_timeout`: `"auto"` or a duration more than zero.
    pub(super) fn confirm_timeout_value(
        &mut self,
        key: &str,
        written: &str,
    ) -> Option<ConfirmTimeout> {
        if written.trim().eq_ignore_ascii_case("auto") {
            return Some(ConfirmTimeout::Auto);
        }
        match humantime::parse_duration(written.trim()) {
            Ok(d) if d.is_zero() => {
                self.issue(
                    key,
                    "a confirm_timeout of 0s would fail every confirmation probe",
                    "write \"auto\" (the default: 8x the slowest recent answer, from 50ms up to the \
                     check's timeout) or a duration more than zero, e.g. \"100ms\"; to turn fast \
                     confirmation off, set confirm_interval = \"0s\"",
                );
                None
            }
            Ok(d) => Some(ConfirmTimeout::Fixed(d)),
            Err(e) => {
                self.issue(
                    key,
                    format!("{written:?} is neither \"auto\" nor a duration ({e})"),
                    "write \"auto\" (the default) or a number with a unit, e.g. \"100ms\"",
                );
                None
            }
        }
    }

    /// `type`: query (the default), serial or dnssec.
    fn check_type(&mut self, path: &str, raw: Option<&str>) -> Option<Kind> {
        match raw {
            None | Some("query") => Some(Kind::Query),
            Some("serial") => Some(Kind::Serial),
            Some("dnssec") => Some(Kind::Dnssec),
            Some(other) => {
                self.issue(
                    format!("{path}.type"),
                    format!("{other:?} is not a check type"),
                    "use type = \"query\" (default: one DNS query with expectations), \"serial\" (SOA freshness \
                     against a reference server) or \"dnssec\" (RRSIG expiry of signed zones)",
                );
                None
            }
        }
    }

    /// Keys of the other check types are errors, naming the types they belong to.
    fn foreign_keys(&mut self, path: &str, raw: &RawCheck, kind: Kind) {
        let groups: [(Vec<&'static str>, &[Kind], &str); 4] = [
            (raw.query_only_keys(), &[Kind::Query], "type = \"query\""),
            (
                raw.sweep_keys(),
                &[Kind::Serial, Kind::Dnssec],
                "type = \"serial\" and type = \"dnssec\"",
            ),
            (raw.serial_only_keys(), &[Kind::Serial], "type = \"serial\""),
            (raw.dnssec_only_keys(), &[Kind::Dnssec], "type = \"dnssec\""),
        ];
        for (keys, accepted, owners) in groups {
            if accepted.contains(&kind) {
                continue;
            }
            for key in keys {
                let hint = if kind == Kind::Query {
                    format!("remove it, or set the check's {owners}")
                } else {
                    format!("remove it, or make this a check of {owners}")
                };
                self.issue(
                    format!("{path}.{key}"),
                    format!(
                        "`{key}` only applies to {owners} checks, and this is a {} check",
                        kind.name()
                    ),
                    hint,
                );
            }
        }
    }

    /// The check's interval: its own, else the service's (for zone sweeps at least
    /// [`DEFAULT_SERIAL_INTERVAL`]), remembering which it was.
    fn check_interval(
        &mut self,
        path: &str,
        raw: &RawCheck,
        is_serial: bool,
        service: &ServiceTiming<'_>,
    ) -> Interval {
        if let Some(s) = raw.interval.as_deref() {
            return Interval {
                value: self.duration_in(
                    &format!("{path}.interval"),
                    Some(s),
                    MIN_INTERVAL,
                    MAX_INTERVAL,
                ),
                described: |check, _, i| format!("{check}.interval {}", fmt_duration(i)),
            };
        }
        let Some(from_service) = service.interval else {
            return Interval {
                value: None,
                described: |_, _, i| fmt_duration(i),
            };
        };
        let value = if is_serial {
            from_service.max(DEFAULT_SERIAL_INTERVAL)
        } else {
            from_service
        };
        let described: fn(&str, &str, Duration) -> String = if value != from_service {
            |_, _, i| format!("the default serial interval {}", fmt_duration(i))
        } else if service.interval_written {
            |_, service, i| format!("{service}.interval {}", fmt_duration(i))
        } else {
            |_, _, i| format!("the default interval {}", fmt_duration(i))
        };
        Interval {
            value: Some(value),
            described,
        }
    }

    /// The check's timeout: its own, else the service's, else derived from the interval. It may equal the
    /// interval (probes of a check never overlap: the next starts when the last has ended) but not exceed
    /// it. The outer `None` means the check is rejected (the timeout does not fit the interval); the inner
    /// one that the timeout or interval itself is invalid (already reported).
    fn check_timeout(
        &mut self,
        path: &str,
        raw: &RawCheck,
        is_serial: bool,
        interval: &Interval,
        service: &ServiceTiming<'_>,
    ) -> Option<Option<Duration>> {
        // A CHAOS TXT identity query runs after the main exchange: such a probe can take two timeouts.
        let chaos_identity = !is_serial && raw.identity.as_deref().is_some_and(|i| i != "nsid");
        let timeouts_per_probe: u32 = if chaos_identity { 2 } else { 1 };
        // Where the timeout came from decides which key an error points at.
        let (timeout, timeout_path) = match (raw.timeout.as_deref(), service.timeout) {
            (Some(s), _) => (
                self.duration_in(
                    &format!("{path}.timeout"),
                    Some(s),
                    Duration::from_millis(1),
                    MAX_TIMEOUT,
                ),
                format!("{path}.timeout"),
            ),
            (None, Some(from_service)) => (from_service, format!("{}.timeout", service.path)),
            (None, None) => {
                let cap = if is_serial {
                    DEFAULT_SERIAL_TIMEOUT_CAP
                } else {
                    DEFAULT_TIMEOUT_CAP
                };
                (
                    interval
                        .value
                        .map(|i| (i / (2 * timeouts_per_probe)).min(cap)),
                    format!("{path}.timeout"),
                )
            }
        };
        if let (Some(t), Some(i)) = (timeout, interval.value)
            && t * timeouts_per_probe > i
        {
            let of = (interval.described)(path, service.path, i);
            let message = if chaos_identity {
                format!(
                    "{} is longer than half of {of}: with a CHAOS TXT identity the probe sends a second query \
                     and can take two timeouts",
                    fmt_duration(t),
                )
            } else {
                format!("{} is longer than {of}", fmt_duration(t))
            };
            self.issue(
                timeout_path,
                message,
                "a probe must end by the time the next one is due; lower the timeout or raise the interval",
            );
            return None;
        }
        Some(timeout)
    }
}
