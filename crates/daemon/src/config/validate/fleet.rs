//! `[fleet]` (etcd endpoints, names, lease and bounds, TLS, auth) and each service's `min_announcing`.

use std::path::PathBuf;
use std::time::Duration;

use super::Validator;
use super::raw::{RawFleet, RawFleetTls, RawService};
use crate::config::{
    DEFAULT_FLEET_GUARD_TIMEOUT, DEFAULT_FLEET_LEASE_TTL, DEFAULT_FLEET_PREFIX,
    DEFAULT_FLEET_TIMEOUT, FleetAuthConfig, FleetConfig, FleetTlsConfig, MAX_MIN_ANNOUNCING,
    MinAnnouncing, OnUnavailable, fmt_duration,
};
use crate::file;

/// Longest fleet or node name (an etcd key segment).
const MAX_NAME: usize = 128;
/// Cap on a PEM file read at load (a CA bundle is a few KiB).
const MAX_PEM_BYTES: u64 = 1024 * 1024;
/// Cap on a password file.
const MAX_PASSWORD_BYTES: u64 = 4096;
/// Parts per million in a whole.
const MILLION: f64 = 1_000_000.0;

impl Validator<'_> {
    /// `[fleet]`, or `None` without the section (or when it has errors, which are pushed).
    pub(super) fn fleet(&mut self, raw: Option<&RawFleet>) -> Option<FleetConfig> {
        let raw = raw?;
        let endpoints = self.fleet_endpoints(raw.endpoints.as_deref());
        let name = match raw.name.as_deref() {
            None => {
                self.issue(
                    "fleet.name",
                    "missing",
                    "name the fleet, e.g. name = \"prod-dns\": nodes with the same name count each other",
                );
                None
            }
            Some(name) => self.key_segment("fleet.name", name, "fleet"),
        };
        let node = match raw.node.as_deref() {
            Some(node) => self.key_segment("fleet.node", node, "node"),
            None => self.host_name(),
        };
        let prefix = self.fleet_prefix(raw.prefix.as_deref());
        let lease_ttl = self.lease_ttl(raw.lease_ttl.as_deref());
        let timeout = match raw.timeout.as_deref() {
            None => Some(DEFAULT_FLEET_TIMEOUT),
            raw_timeout => self.duration_in(
                "fleet.timeout",
                raw_timeout,
                Duration::from_millis(10),
                Duration::from_secs(60),
            ),
        };
        let guard_timeout = match raw.guard_timeout.as_deref() {
            None => Some(DEFAULT_FLEET_GUARD_TIMEOUT),
            raw_bound => self.duration_in(
                "fleet.guard_timeout",
                raw_bound,
                Duration::from_millis(10),
                Duration::from_secs(10),
            ),
        };
        if let (Some(ttl), Some(timeout)) = (lease_ttl, timeout)
            && timeout * 3 > ttl
        {
            self.issue(
                "fleet.timeout",
                format!(
                    "{} is more than a third of lease_ttl {}",
                    fmt_duration(timeout),
                    fmt_duration(ttl)
                ),
                "the lease is kept alive every third of its TTL and each keep-alive must end before the next: \
                 lower timeout or raise lease_ttl",
            );
        }
        let on_unavailable = match raw.on_unavailable.as_deref() {
            None | Some("local") => Some(OnUnavailable::Local),
            Some("hold") => Some(OnUnavailable::Hold),
            Some(other) => {
                self.issue(
                    "fleet.on_unavailable",
                    format!("{other:?} is not a policy"),
                    "use \"local\" (default: decide as without a fleet) or \"hold\" (keep the current routes \
                     until etcd answers)",
                );
                None
            }
        };
        let https = endpoints
            .as_ref()
            .is_some_and(|e| e.iter().any(|url| url.starts_with("https://")));
        let tls = self.fleet_tls(raw.tls.as_ref(), endpoints.is_some().then_some(https));
        let auth = self.fleet_auth(raw);
        Some(FleetConfig {
            endpoints: endpoints?,
            name: name?,
            node: node?,
            prefix: prefix?,
            lease_ttl: lease_ttl?,
            timeout: timeout?,
            guard_timeout: guard_timeout?,
            on_unavailable: on_unavailable?,
            guard_all_failures: raw.guard_all_failures.unwrap_or(false),
            tls: tls?,
            auth: auth?,
        })
    }

    /// `min_announcing` of one service: `Some(None)` when unset, `None` when invalid (issue pushed).
    pub(super) fn min_announcing(
        &mut self,
        path: &str,
        raw: Option<&toml::Value>,
    ) -> Option<Option<MinAnnouncing>> {
        const HINT: &str = "write a count of other nodes (min_announcing = 2) or a fraction of the nodes \
                            registered for the service below 1 (min_announcing = \"50%\" or 0.5)";
        let Some(raw) = raw else { return Some(None) };
        let fraction = |f: f64| ((0.0..1.0).contains(&f)).then(|| (f * MILLION).round() as u32);
        let parsed = match raw {
            toml::Value::Integer(n) => match u32::try_from(*n) {
                Ok(n) if n <= MAX_MIN_ANNOUNCING => Ok(MinAnnouncing::Count(n)),
                _ => Err((
                    format!("{n} is out of range"),
                    format!(
                        "use 0 to {MAX_MIN_ANNOUNCING} other nodes (one etcd transaction compares that many), \
                         or a fraction like \"50%\""
                    ),
                )),
            },
            toml::Value::Float(f) => match fraction(*f) {
                Some(ppm) => Ok(MinAnnouncing::Fraction { ppm }),
                None => Err((
                    format!("{f} is not a fraction below 1"),
                    "a fraction of 1 or more could never be met (this node is one of the registered nodes); \
                     for a count write an integer, e.g. min_announcing = 1"
                        .to_owned(),
                )),
            },
            toml::Value::String(s) => {
                let percent = s
                    .trim()
                    .strip_suffix('%')
                    .and_then(|p| p.trim().parse::<f64>().ok());
                match percent.and_then(|p| fraction(p / 100.0)) {
                    Some(ppm) => Ok(MinAnnouncing::Fraction { ppm }),
                    None => Err((
                        format!("{s:?} is not a percentage below 100%"),
                        HINT.to_owned(),
                    )),
                }
            }
            other => Err((
                format!("a {} is not a count or a fraction", other.type_str()),
                HINT.to_owned(),
            )),
        };
        match parsed {
            Ok(min) => Some(Some(min)),
            Err((message, hint)) => {
                self.issue(path, message, hint);
                None
            }
        }
    }

    /// `min_announcing` needs `[fleet]`: without it nothing counts the other nodes.
    pub(super) fn min_announcing_without_fleet(&mut self, services: &[RawService]) {
        for (index, service) in services.iter().enumerate() {
            if service.min_announcing.is_some() {
                self.issue(
                    format!("service[{index}].min_announcing"),
                    "min_announcing has no effect without a [fleet] section",
                    "add [fleet] with endpoints and a name (the etcd the nodes share), or remove min_announcing",
                );
            }
        }
    }

    fn fleet_endpoints(&mut self, raw: Option<&[String]>) -> Option<Vec<String>> {
        let Some(raw) = raw.filter(|e| !e.is_empty()) else {
            self.issue(
                "fleet.endpoints",
                "no etcd endpoints",
                "list etcd's client URLs, e.g. endpoints = [\"https://10.0.0.1:2379\", \"https://10.0.0.2:2379\"]",
            );
            return None;
        };
        let mut ok = true;
        for (index, url) in raw.iter().enumerate() {
            if !valid_endpoint(url) {
                ok = false;
                self.issue(
                    format!("fleet.endpoints[{index}]"),
                    format!("{url:?} is not an etcd client URL"),
                    "write http:// or https://, a host and a port, e.g. \"https://10.0.0.1:2379\"",
                );
            }
        }
        let https = raw.iter().filter(|u| u.starts_with("https://")).count();
        if ok && https != 0 && https != raw.len() {
            ok = false;
            self.issue(
                "fleet.endpoints",
                "mixes http:// and https:// URLs",
                "one connection cannot be both: use https:// everywhere (with [fleet.tls]) or http:// everywhere",
            );
        }
        ok.then(|| raw.to_vec())
    }

    fn key_segment(&mut self, path: &str, value: &str, what: &str) -> Option<String> {
        if valid_segment(value) {
            return Some(value.to_owned());
        }
        self.issue(
            path,
            format!("{value:?} is not a valid {what} name"),
            format!(
                "use 1-{MAX_NAME} characters of letters, digits, '_', '.', '-' (it is part of the etcd keys)"
            ),
        );
        None
    }

    /// The default node name: the host name, if it is a valid key segment.
    fn host_name(&mut self) -> Option<String> {
        let name = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok());
        match name {
            Some(name) if valid_segment(&name) => Some(name),
            other => {
                self.issue(
                    "fleet.node",
                    match other {
                        Some(name) => format!("the host name {name:?} is not a valid node name"),
                        None => "the host name cannot be read".to_owned(),
                    },
                    "set node = \"ams-1\" (letters, digits, '_', '.', '-'), unique in the fleet",
                );
                None
            }
        }
    }

    fn fleet_prefix(&mut self, raw: Option<&str>) -> Option<String> {
        let Some(prefix) = raw else {
            return Some(DEFAULT_FLEET_PREFIX.to_owned());
        };
        let trimmed = prefix.trim_end_matches('/');
        let ok = trimmed
            .strip_prefix('/')
            .is_some_and(|rest| rest.split('/').all(valid_segment));
        if ok {
            return Some(trimmed.to_owned());
        }
        self.issue(
            "fleet.prefix",
            format!("{prefix:?} is not an etcd key prefix"),
            format!(
                "write an absolute key path of names (letters, digits, '_', '.', '-'), e.g. \"{DEFAULT_FLEET_PREFIX}\""
            ),
        );
        None
    }

    fn lease_ttl(&mut self, raw: Option<&str>) -> Option<Duration> {
        if raw.is_none() {
            return Some(DEFAULT_FLEET_LEASE_TTL);
        }
        let ttl = self.duration_in(
            "fleet.lease_ttl",
            raw,
            Duration::from_secs(2),
            Duration::from_secs(3600),
        )?;
        if ttl.subsec_nanos() != 0 {
            self.issue(
                "fleet.lease_ttl",
                format!("{} is not a whole number of seconds", fmt_duration(ttl)),
                "etcd leases count whole seconds: write e.g. \"10s\"",
            );
            return None;
        }
        Some(ttl)
    }

    /// `[fleet.tls]`: `Some(None)` without it. `https` is whether the endpoints are https:// (`None` when
    /// the endpoints are invalid, so that no follow-on issue is reported).
    fn fleet_tls(
        &mut self,
        raw: Option<&RawFleetTls>,
        https: Option<bool>,
    ) -> Option<Option<FleetTlsConfig>> {
        let Some(raw) = raw else {
            if https == Some(true) {
                self.issue(
                    "fleet.tls",
                    "https:// endpoints need the CA that signed etcd's certificate",
                    "add [fleet.tls] with ca_file = \"/etc/nsbeacon/etcd-ca.pem\"",
                );
                return None;
            }
            return Some(None);
        };
        if https == Some(false) {
            self.issue(
                "fleet.tls",
                "TLS settings with http:// endpoints would not be used",
                "write the endpoints as https:// URLs, or remove [fleet.tls]",
            );
        }
        let ca_file = self.pem_file("fleet.tls.ca_file", raw.ca_file.as_deref());
        let cert_file = self.pem_file("fleet.tls.cert_file", raw.cert_file.as_deref());
        let key_file = self.pem_file("fleet.tls.key_file", raw.key_file.as_deref());
        if raw.ca_file.is_none() && https == Some(true) {
            self.issue(
                "fleet.tls.ca_file",
                "missing",
                "give the CA that signed etcd's server certificate, e.g. ca_file = \"/etc/nsbeacon/etcd-ca.pem\"",
            );
        }
        if raw.cert_file.is_some() != raw.key_file.is_some() {
            let missing = if raw.cert_file.is_none() {
                "fleet.tls.cert_file"
            } else {
                "fleet.tls.key_file"
            };
            self.issue(
                missing,
                "missing",
                "a client certificate needs its private key and the key its certificate: give cert_file and \
                 key_file, or neither",
            );
            return None;
        }
        Some(Some(FleetTlsConfig {
            ca_file: ca_file?,
            cert_file: cert_file?,
            key_file: key_file?,
        }))
    }

    /// An optional PEM file: `Some(None)` when unset, `None` when unreadable or not PEM.
    fn pem_file(&mut self, path: &str, raw: Option<&str>) -> Option<Option<PathBuf>> {
        if raw.is_none() {
            return Some(None);
        }
        let file = self.absolute_path(path, raw)?;
        match file::read_text(&file, MAX_PEM_BYTES, "a PEM file") {
            Ok(text) if text.contains("-----BEGIN ") => Some(Some(file)),
            Ok(_) => {
                self.issue(
                    path,
                    format!("{} is not a PEM file (no -----BEGIN line)", file.display()),
                    "give the PEM text (convert DER with openssl x509 -inform der -in FILE -out FILE.pem)",
                );
                None
            }
            Err(e) => {
                self.issue(path, format!("cannot read it: {e}"), e.hint());
                None
            }
        }
    }

    /// `user` with `password_file`: `Some(None)` without auth.
    fn fleet_auth(&mut self, raw: &RawFleet) -> Option<Option<FleetAuthConfig>> {
        if raw.password.is_some() {
            self.issue(
                "fleet.password",
                "a password does not belong in the config file",
                "put it in a file readable only by nsbeacon (mode 0600) and set password_file = \
                 \"/etc/nsbeacon/etcd-password\"",
            );
            return None;
        }
        match (raw.user.as_deref(), raw.password_file.as_deref()) {
            (None, None) => Some(None),
            (Some(_), None) => {
                self.issue(
                    "fleet.password_file",
                    "missing",
                    "etcd's user needs its password: set password_file to a file holding it",
                );
                None
            }
            (None, Some(_)) => {
                self.issue(
                    "fleet.user",
                    "missing",
                    "a password_file needs the etcd user it belongs to: set user = \"nsbeacon\"",
                );
                None
            }
            (Some(user), Some(password_file)) => {
                let user_ok = !user.is_empty() && !user.contains(|c: char| c.is_whitespace());
                if !user_ok {
                    self.issue(
                        "fleet.user",
                        format!("{user:?} is not an etcd user name"),
                        "write the user as created with etcdctl user add, without spaces",
                    );
                }
                let password_file = self.password_file(Some(password_file));
                Some(Some(FleetAuthConfig {
                    user: user_ok.then(|| user.to_owned())?,
                    password_file: password_file?,
                }))
            }
        }
    }

    fn password_file(&mut self, raw: Option<&str>) -> Option<PathBuf> {
        const PATH: &str = "fleet.password_file";
        let file = self.absolute_path(PATH, raw)?;
        match file::read_text(&file, MAX_PASSWORD_BYTES, "a password file") {
            Ok(text) if password_line(&text).is_some() => Some(file),
            Ok(_) => {
                self.issue(
                    PATH,
                    format!("{} is empty", file.display()),
                    "write the password on the file's first line",
                );
                None
            }
            Err(e) => {
                self.issue(PATH, format!("cannot read it: {e}"), e.hint());
                None
            }
        }
    }
}

/// The password in a password file: its first line, without the line end; `None` when empty.
pub(crate) fn password_line(text: &str) -> Option<&str> {
    text.lines().next().filter(|line| !line.is_empty())
}

/// A fleet, node or prefix segment: 1-128 characters of `[A-Za-z0-9_.-]`.
fn valid_segment(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= MAX_NAME
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// `http(s)://host:port` with an optional trailing `/`; host a name, an IPv4 address or `[IPv6]`.
fn valid_endpoint(url: &str) -> bool {
    let Some(rest) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    else {
        return false;
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    let Some((host, port)) = authority.rsplit_once(':') else {
        return false;
    };
    let host_ok = match host.strip_prefix('[') {
        Some(v6) => v6
            .strip_suffix(']')
            .is_some_and(|a| a.parse::<std::net::Ipv6Addr>().is_ok()),
        None => {
            !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
        }
    };
    host_ok && port.parse::<u16>().is_ok_and(|p| p != 0)
}
