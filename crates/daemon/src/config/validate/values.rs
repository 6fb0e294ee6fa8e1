//! Value helpers shared by every part of the validation: durations, counts, names, paths, addresses,
//! domain names. Each pushes its own issue and returns `None` for a value it could not accept.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use nsbeacon_prober::Transport;
use nsbeacon_prober::proto::rr::Name;

use super::Validator;
use crate::config::{MAX_RISE_FALL, fmt_duration};

impl Validator<'_> {
    pub(super) fn absolute_path(&mut self, path: &str, raw: Option<&str>) -> Option<PathBuf> {
        let raw = raw?;
        let p = PathBuf::from(raw);
        if raw.is_empty() || !p.is_absolute() {
            self.issue(
                path,
                format!("{raw:?} is not an absolute path"),
                "give an absolute path: nsbeacon's working directory is not meaningful under systemd",
            );
            return None;
        }
        Some(p)
    }

    /// Parses a humantime duration and checks `min <= d <= max`. `None` when unset or invalid.
    pub(super) fn duration_in(
        &mut self,
        path: &str,
        raw: Option<&str>,
        min: Duration,
        max: Duration,
    ) -> Option<Duration> {
        let raw = raw?;
        match humantime::parse_duration(raw.trim()) {
            Err(e) => {
                self.issue(
                    path,
                    format!("{raw:?} is not a duration ({e})"),
                    "write a number with a unit, e.g. \"500ms\", \"2s\", \"1m\"",
                );
                None
            }
            Ok(d) if d < min || d > max => {
                self.issue(
                    path,
                    format!("{} is out of range", fmt_duration(d)),
                    format!(
                        "use a value from {} to {}",
                        fmt_duration(min),
                        fmt_duration(max)
                    ),
                );
                None
            }
            Ok(d) => Some(d),
        }
    }

    pub(super) fn count(
        &mut self,
        path: &str,
        raw: Option<i64>,
        default: u32,
        what: &str,
    ) -> Option<u32> {
        let Some(raw) = raw else { return Some(default) };
        match u32::try_from(raw) {
            Ok(n) if (1..=MAX_RISE_FALL).contains(&n) => Some(n),
            _ => {
                self.issue(
                    path,
                    format!("{raw} is out of range"),
                    format!("{what}; use 1..={MAX_RISE_FALL} (default {default})"),
                );
                None
            }
        }
    }

    pub(super) fn name(&mut self, path: &str, raw: Option<&str>, what: &str) -> Option<String> {
        match raw {
            None => {
                self.issue(
                    path,
                    "missing",
                    format!("give the {what} a name, e.g. name = \"dns\""),
                );
                None
            }
            Some(name) if !valid_name(name) => {
                self.issue(
                    path,
                    format!("{name:?} is not a valid {what} name"),
                    "use 1-64 characters of letters, digits, '_', '.', '-'",
                );
                None
            }
            Some(name) if what == "service" && name.eq_ignore_ascii_case("all") => {
                self.issue(
                    path,
                    "\"all\" is reserved",
                    "`nsbeacon drain` uses \"all\" for every service; pick another name",
                );
                None
            }
            Some(name) => Some(name.to_owned()),
        }
    }

    pub(super) fn positive_number(
        &mut self,
        path: &str,
        raw: Option<&toml::Value>,
        default: f64,
    ) -> Option<f64> {
        let value = match raw {
            None => return Some(default),
            Some(toml::Value::Integer(n)) => *n as f64,
            Some(toml::Value::Float(f)) => *f,
            Some(other) => {
                self.issue(
                    path,
                    format!("{other} is not a number"),
                    format!("use a positive number (default {default})"),
                );
                return None;
            }
        };
        if value.is_finite() && value > 0.0 {
            Some(value)
        } else {
            self.issue(
                path,
                format!("{value} is not positive"),
                format!("use a positive number (default {default})"),
            );
            None
        }
    }

    pub(super) fn transport(
        &mut self,
        path: &str,
        raw: Option<&str>,
        is_serial: bool,
    ) -> Option<Transport> {
        match raw {
            None | Some("udp") => Some(Transport::Udp),
            Some("tcp") => Some(Transport::Tcp),
            Some("both") if !is_serial => Some(Transport::Both),
            Some("both") => {
                self.issue(
                    path,
                    "zone sweeps (serial and dnssec checks) query over one transport",
                    "use \"udp\" (default) or \"tcp\"; add a query check with transport = \"both\" to test both",
                );
                None
            }
            Some(other) => {
                self.issue(
                    path,
                    format!("{other:?} is not a transport"),
                    "use \"udp\" (default), \"tcp\", or \"both\" (each must pass on its own)",
                );
                None
            }
        }
    }

    pub(super) fn address(
        &mut self,
        path: &str,
        raw: Option<&str>,
        required_hint: &str,
    ) -> Option<SocketAddr> {
        let Some(raw) = raw else {
            self.issue(path, "missing", required_hint);
            return None;
        };
        match parse_dns_address(raw) {
            Some(addr) => Some(addr),
            None => {
                self.issue(
                    path,
                    format!("{raw:?} is not an IP address (with optional port)"),
                    "write e.g. \"127.0.0.1\" (port 53), \"127.0.0.1:5353\" or \"[2001:db8::53]:53\"",
                );
                None
            }
        }
    }

    pub(super) fn dns_name(&mut self, path: &str, raw: &str) -> Option<Name> {
        match parse_name(raw) {
            Some(name) => Some(name),
            None => {
                self.issue(
                    path,
                    format!("{raw:?} is not a valid domain name"),
                    "write a domain name such as \"example.com.\"",
                );
                None
            }
        }
    }
}

/// `name`/`service` names: safe in metric labels, file names, command lines.
pub(super) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Linux interface (and VRF) names: 1-15 bytes, no '/', whitespace or ':'. Stricter here on purpose.
pub(super) fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// An IP address with optional port (default 53).
pub(super) fn parse_dns_address(text: &str) -> Option<SocketAddr> {
    let text = text.trim();
    text.parse::<SocketAddr>().ok().or_else(|| {
        text.parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, 53))
    })
}

/// A domain name, made absolute.
pub(super) fn parse_name(text: &str) -> Option<Name> {
    let text = text.trim();
    if text.is_empty() || text.chars().any(char::is_whitespace) {
        return None;
    }
    let mut name = Name::from_ascii(text).ok()?;
    name.set_fqdn(true);
    Some(name)
}
