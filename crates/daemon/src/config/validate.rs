//! Stage 2: one pass over the raw file that builds the typed [`Config`] and collects every problem.
//!
//! Each helper pushes its own issues and returns `None` for a value it could not accept, so that checks
//! depending on that value are skipped instead of producing follow-on noise.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use nsbeacon_prober::proto::op::ResponseCode;
use nsbeacon_prober::proto::rr::{DNSClass, Name, RecordType};
use nsbeacon_prober::{AnswerMatch, Expectations, IdentitySpec, ProbeSpec, QuerySpec, Transport};
use nsbeacon_routing::frr::FrrTransport;
use nsbeacon_routing::{BirdProtocolName, FrrNeighbor, FrrNetwork, RouteMapName, RouteTarget};

use super::raw::{RawBackend, RawCheck, RawConfig, RawDamping, RawService};
use super::*;

/// Which target syntax applies, known once `[backend] kind` is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BackendKind {
    Bird,
    Frr,
}

struct Validator<'a> {
    issues: Vec<ConfigIssue>,
    base: Option<&'a Path>,
}

pub(crate) fn validate(raw: RawConfig, base: Option<&Path>) -> Result<Config, ConfigError> {
    let mut v = Validator {
        issues: Vec::new(),
        base,
    };
    let backend = v.backend(raw.backend.as_ref());
    let kind = backend.as_ref().map(|b| match b {
        BackendConfig::Bird { .. } => BackendKind::Bird,
        BackendConfig::Frr { .. } => BackendKind::Frr,
    });

    if raw.services.is_empty() {
        v.issue(
            "service",
            "no [[service]] is defined, so nsbeacon would never announce anything",
            "add at least one [[service]] with a name, announce targets and a [[service.check]]",
        );
    }
    let mut services = Vec::new();
    let mut service_names: HashMap<String, usize> = HashMap::new();
    // Keyed by `ownership_key` (for FRR networks the prefix, so every route-map variant of it counts): the
    // owning service's entries, as (key path, target), so that a message can name the very same variant.
    let mut target_owner: HashMap<RouteTarget, Vec<(String, RouteTarget)>> = HashMap::new();
    for (index, raw_service) in raw.services.iter().enumerate() {
        let path = format!("service[{index}]");
        let service = v.service(&path, raw_service, kind);
        if let Some(name) = raw_service.name.as_deref() {
            if let Some(first) = service_names.get(name) {
                v.issue(
                    format!("{path}.name"),
                    format!("service name {name:?} is already used by service[{first}]"),
                    "give every service a unique name: it identifies the service in metrics, logs and `nsbeacon drain`",
                );
            } else {
                service_names.insert(name.to_owned(), index);
            }
        }
        // Ownership is checked on every target that parses, even when the rest of the service is invalid.
        if let Some(kind) = kind {
            for (list, raw_targets) in [
                ("announce", &raw_service.announce),
                ("degrade", &raw_service.degrade),
            ] {
                for (t, text) in raw_targets.iter().flatten().enumerate() {
                    let Ok(target) = parse_target(kind, text) else {
                        continue;
                    };
                    let here = format!("{path}.{list}[{t}]");
                    let entries = target_owner.entry(ownership_key(&target)).or_default();
                    let Some((owner, owned)) = entries.first().cloned() else {
                        entries.push((here, target));
                        continue;
                    };
                    if owner.starts_with(&format!("{path}.")) {
                        entries.push((here, target));
                    } else if let Some((owner, _)) = entries.iter().find(|(_, t)| *t == target) {
                        let owner = owner.clone();
                        v.issue(
                            here,
                            format!("{target} is already controlled by {owner}"),
                            "each route target may belong to one service only, otherwise two services would \
                             fight over it; give each service its own BIRD protocol / prefix",
                        );
                    } else {
                        v.issue(
                            here,
                            format!(
                                "{target} is a variant of {owned}, already controlled by {owner}: FRR keeps one \
                                 `network` statement per prefix"
                            ),
                            "a prefix may belong to one service only, whatever its route-map: announcing one \
                             variant replaces the other service's, and withdrawing it does nothing while the other \
                             variant is up; give each service its own prefix",
                        );
                    }
                }
            }
        }
        if let Some(service) = service {
            services.push(service);
        }
    }

    let http = v.http(raw.http.as_ref());
    let log = v.log(raw.log.as_ref());
    let state_dir = v
        .absolute_path("state_dir", raw.state_dir.as_deref())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
    let drain_file = v.absolute_path("drain_file", raw.drain_file.as_deref());
    let on_shutdown = match raw.on_shutdown.as_deref() {
        None | Some("withdraw") => OnShutdown::Withdraw,
        Some("keep") => OnShutdown::Keep,
        Some(other) => {
            v.issue(
                "on_shutdown",
                format!("{other:?} is not a shutdown behaviour"),
                "use \"withdraw\" (default: withdraw this node's routes before exiting) or \"keep\"",
            );
            OnShutdown::Withdraw
        }
    };
    let reconcile_interval = v
        .duration_in(
            "reconcile_interval",
            raw.reconcile_interval.as_deref(),
            Duration::from_millis(100),
            MAX_INTERVAL,
        )
        .unwrap_or(DEFAULT_RECONCILE_INTERVAL);

    match backend {
        Some(backend) if v.issues.is_empty() => Ok(Config {
            backend,
            services,
            http,
            log,
            state_dir,
            drain_file,
            on_shutdown,
            reconcile_interval,
        }),
        _ => Err(ConfigError::Invalid(v.issues)),
    }
}

impl Validator<'_> {
    fn issue(
        &mut self,
        path: impl Into<String>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.issues.push(ConfigIssue {
            path: path.into(),
            message: message.into(),
            hint: hint.into(),
            line: None,
        });
    }

    fn backend(&mut self, raw: Option<&RawBackend>) -> Option<BackendConfig> {
        let Some(raw) = raw else {
            self.issue(
                "backend",
                "the [backend] table is missing",
                "add [backend] with kind = \"bird\" (and socket = \"/run/bird/bird.ctl\") or kind = \"frr\"",
            );
            return None;
        };
        let kind = match raw.kind.as_deref() {
            Some("bird") => BackendKind::Bird,
            Some("frr") => BackendKind::Frr,
            Some(other) => {
                self.issue(
                    "backend.kind",
                    format!("{other:?} is not a supported backend"),
                    "use kind = \"bird\" (BIRD 2, control socket) or kind = \"frr\" (FRR, bgpd's vty socket or vtysh)",
                );
                return None;
            }
            None => {
                self.issue(
                    "backend.kind",
                    "missing",
                    "set kind = \"bird\" (BIRD 2, control socket) or kind = \"frr\" (FRR, bgpd's vty socket or vtysh)",
                );
                return None;
            }
        };
        match kind {
            BackendKind::Bird => {
                for (key, present) in [
                    ("via", raw.via.is_some()),
                    ("vtysh", raw.vtysh.is_some()),
                    ("args", raw.args.is_some()),
                    ("asn", raw.asn.is_some()),
                    ("vrf", raw.vrf.is_some()),
                ] {
                    if present {
                        self.issue(
                            format!("backend.{key}"),
                            format!("`{key}` only applies to kind = \"frr\""),
                            "remove it, or switch the backend to frr",
                        );
                    }
                }
                let socket = match raw.socket.as_deref() {
                    None => Some(PathBuf::from(DEFAULT_BIRD_SOCKET)),
                    Some("") => {
                        self.issue(
                            "backend.socket",
                            "empty path",
                            "give BIRD's control socket, e.g. /run/bird/bird.ctl (bird -s PATH)",
                        );
                        None
                    }
                    Some(s) => Some(PathBuf::from(s)),
                };
                let timeout = self.duration_in(
                    "backend.timeout",
                    raw.timeout.as_deref(),
                    Duration::from_millis(1),
                    MAX_TIMEOUT,
                );
                Some(BackendConfig::Bird {
                    socket: socket?,
                    timeout: timeout.or(raw.timeout.is_none().then_some(DEFAULT_BIRD_TIMEOUT))?,
                })
            }
            BackendKind::Frr => {
                let transport = self.frr_transport(raw);
                let asn = match raw.asn {
                    None => Some(None),
                    Some(23456) => {
                        self.issue(
                            "backend.asn",
                            "23456 is AS_TRANS (RFC 6793), not a real ASN",
                            "set the ASN of the local `router bgp`, or leave asn unset to discover it",
                        );
                        None
                    }
                    Some(asn) => match u32::try_from(asn) {
                        Ok(asn) if asn > 0 => Some(Some(asn)),
                        _ => {
                            self.issue(
                                "backend.asn",
                                format!("{asn} is not an AS number"),
                                "use 1..=4294967295, or leave asn unset to discover it from FRR",
                            );
                            None
                        }
                    },
                };
                let vrf = match raw.vrf.as_deref() {
                    None => Some(None),
                    Some(name) if valid_ifname(name) => Some(Some(name.to_owned())),
                    Some(name) => {
                        self.issue(
                            "backend.vrf",
                            format!("{name:?} is not a valid VRF name"),
                            "VRF names are 1-15 characters of letters, digits, '_', '.', '-'; leave vrf unset for \
                             the default VRF",
                        );
                        None
                    }
                };
                let timeout = self.duration_in(
                    "backend.timeout",
                    raw.timeout.as_deref(),
                    Duration::from_millis(1),
                    MAX_TIMEOUT,
                );
                Some(BackendConfig::Frr {
                    transport: transport?,
                    asn: asn?,
                    vrf: vrf?,
                    timeout: timeout.or(raw.timeout.is_none().then_some(DEFAULT_FRR_TIMEOUT))?,
                })
            }
        }
    }

    /// FRR's `via`: bgpd's vty socket (default; `socket`) or vtysh (`vtysh`, `args`). Keys of the other
    /// transport are errors, so a config never silently ignores what the operator wrote.
    fn frr_transport(&mut self, raw: &RawBackend) -> Option<FrrTransport> {
        let via_socket = match raw.via.as_deref() {
            None | Some("socket") => true,
            Some("vtysh") => false,
            Some(other) => {
                self.issue(
                    "backend.via",
                    format!("{other:?} is not a way to reach FRR"),
                    "use via = \"socket\" (bgpd's vty socket, the default) or via = \"vtysh\" (one vtysh process \
                     per call)",
                );
                return None;
            }
        };
        if via_socket {
            for (key, present) in [("vtysh", raw.vtysh.is_some()), ("args", raw.args.is_some())] {
                if present {
                    self.issue(
                        format!("backend.{key}"),
                        format!("`{key}` only applies with via = \"vtysh\""),
                        "set via = \"vtysh\" to run vtysh, or remove it and give bgpd's vty socket as socket = \
                         \"DIR/bgpd.vty\" (vtysh --vty_socket DIR; -N NAME is /run/frr/NAME/bgpd.vty)",
                    );
                }
            }
            let socket = match raw.socket.as_deref() {
                None => PathBuf::from(DEFAULT_BGPD_VTY_SOCKET),
                Some("") => {
                    self.issue(
                        "backend.socket",
                        "empty path",
                        "give bgpd's vty socket, e.g. /run/frr/bgpd.vty",
                    );
                    return None;
                }
                Some(s) => PathBuf::from(s),
            };
            return Some(FrrTransport::VtySocket { socket });
        }
        if raw.socket.is_some() {
            self.issue(
                "backend.socket",
                "`socket` does not apply with via = \"vtysh\"",
                "give vtysh's socket directory through args = [\"--vty_socket\", \"DIR\"], or remove via to talk to \
                 bgpd's socket directly",
            );
        }
        let vtysh = match raw.vtysh.as_deref() {
            None => Some(PathBuf::from(DEFAULT_VTYSH)),
            Some("") => {
                self.issue(
                    "backend.vtysh",
                    "empty path",
                    "give the vtysh binary, e.g. /usr/bin/vtysh",
                );
                None
            }
            Some(s) => Some(PathBuf::from(s)),
        };
        let args = raw.args.clone().unwrap_or_default();
        let mut args_ok = true;
        for (i, arg) in args.iter().enumerate() {
            if arg.is_empty() {
                self.issue(format!("backend.args[{i}]"), "empty argument", "remove it");
                args_ok = false;
            } else if dangerous_vtysh_arg(arg) {
                self.issue(
                    format!("backend.args[{i}]"),
                    format!("{arg:?} would make vtysh run or write configuration on every call"),
                    "only pass connection options such as --vty_socket DIR or -N NAMESPACE; nsbeacon adds \
                     its own -c commands and never writes the startup config",
                );
                args_ok = false;
            }
        }
        if raw.socket.is_some() || !args_ok {
            return None;
        }
        Some(FrrTransport::Vtysh {
            vtysh: vtysh?,
            extra_args: args,
        })
    }

    fn http(&mut self, raw: Option<&super::raw::RawHttp>) -> HttpConfig {
        let listen = raw
            .and_then(|h| h.listen.as_deref())
            .and_then(|s| match s.parse::<SocketAddr>() {
                Ok(addr) => Some(addr),
                Err(_) => {
                    self.issue(
                        "http.listen",
                        format!("{s:?} is not an IP address with a port"),
                        "write e.g. \"127.0.0.1:9753\" or \"[::1]:9753\"",
                    );
                    None
                }
            })
            .unwrap_or(DEFAULT_HTTP_LISTEN);
        HttpConfig { listen }
    }

    fn log(&mut self, raw: Option<&super::raw::RawLog>) -> LogConfig {
        let mut log = LogConfig::default();
        let Some(raw) = raw else { return log };
        if let Some(level) = raw.level.as_deref() {
            if level.trim().is_empty() {
                self.issue(
                    "log.level",
                    "empty",
                    "use info (default), debug, warn, error or trace",
                );
            } else if let Err(e) = tracing_subscriber::EnvFilter::try_new(level) {
                self.issue(
                    "log.level",
                    format!("{level:?} is not a log filter: {e}"),
                    "use info (default), debug, warn, error, trace, or a directive like \"info,nsbeacon=debug\"",
                );
            } else {
                log.level = level.to_owned();
            }
        }
        match raw.format.as_deref() {
            None | Some("text") => {}
            Some("json") => log.format = LogFormat::Json,
            Some(other) => self.issue(
                "log.format",
                format!("{other:?} is not a log format"),
                "use \"text\" (default) or \"json\"",
            ),
        }
        log
    }

    fn absolute_path(&mut self, path: &str, raw: Option<&str>) -> Option<PathBuf> {
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
    fn duration_in(
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

    fn count(&mut self, path: &str, raw: Option<i64>, default: u32, what: &str) -> Option<u32> {
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

    fn service(
        &mut self,
        path: &str,
        raw: &RawService,
        kind: Option<BackendKind>,
    ) -> Option<ServiceConfig> {
        let name = self.name(&format!("{path}.name"), raw.name.as_deref(), "service");
        let interval = match raw.interval.as_deref() {
            None => Some(DEFAULT_INTERVAL),
            Some(s) => self.duration_in(
                &format!("{path}.interval"),
                Some(s),
                MIN_INTERVAL,
                MAX_INTERVAL,
            ),
        };
        let rise = self.count(
            &format!("{path}.rise"),
            raw.rise,
            DEFAULT_RISE,
            "rise is how many consecutive passes bring a check up",
        );
        let fall = self.count(
            &format!("{path}.fall"),
            raw.fall,
            DEFAULT_FALL,
            "fall is how many consecutive failures bring a check down",
        );
        let service_timeout = raw.timeout.as_deref().map(|s| {
            self.duration_in(
                &format!("{path}.timeout"),
                Some(s),
                Duration::from_millis(1),
                MAX_TIMEOUT,
            )
        });

        if raw.checks.is_empty() {
            self.issue(
                format!("{path}.check"),
                "the service has no checks",
                "add at least one [[service.check]], e.g. an SOA query of a zone the server hosts",
            );
        }
        let mut checks = Vec::new();
        let mut check_names: HashMap<String, usize> = HashMap::new();
        let mut checks_ok = true;
        for (index, raw_check) in raw.checks.iter().enumerate() {
            let check_path = format!("{path}.check[{index}]");
            if let Some(check_name) = raw_check.name.as_deref() {
                if let Some(first) = check_names.get(check_name) {
                    self.issue(
                        format!("{check_path}.name"),
                        format!("check name {check_name:?} is already used by check[{first}] of this service"),
                        "give every check of a service a unique name: it labels metrics and status lines",
                    );
                } else {
                    check_names.insert(check_name.to_owned(), index);
                }
            }
            match self.check(&check_path, path, raw_check, interval, service_timeout) {
                Some(check) => checks.push(check),
                None => checks_ok = false,
            }
        }

        let combine = self.combine(
            &format!("{path}.combine"),
            raw.combine.as_ref(),
            raw.checks.len(),
        );

        let shortest_interval = checks.iter().map(|c| c.interval).min();
        let jitter = match (raw.jitter.as_deref(), interval) {
            // 10% of the service interval, or of a shorter check interval, so the default is always valid.
            (None, Some(interval)) => Some(
                shortest_interval
                    .map_or(interval, |s| s.min(interval))
                    .mul_f64(DEFAULT_JITTER_FRACTION),
            ),
            (None, None) => None,
            (Some(s), _) => self.duration_in(
                &format!("{path}.jitter"),
                Some(s),
                Duration::ZERO,
                MAX_INTERVAL,
            ),
        };
        if let (Some(jitter), Some(shortest)) = (jitter, shortest_interval)
            && jitter > shortest / 2
        {
            self.issue(
                format!("{path}.jitter"),
                format!(
                    "{} is more than half the shortest check interval {}",
                    fmt_duration(jitter),
                    fmt_duration(shortest)
                ),
                "probe times are spread by a random offset of up to +/- jitter; keep it around 10% of the \
                 interval",
            );
        }

        let announce = self.targets(&format!("{path}.announce"), raw.announce.as_deref(), kind);
        let degrade = self.targets(&format!("{path}.degrade"), raw.degrade.as_deref(), kind);
        if raw.announce.as_ref().is_none_or(|a| a.is_empty()) {
            self.issue(
                format!("{path}.announce"),
                "no announce targets",
                match kind {
                    Some(BackendKind::Frr) => {
                        "list what this service announces while healthy, e.g. announce = [\"203.0.113.53/32\"]"
                    }
                    _ => {
                        "list the BIRD protocol(s) this service enables while healthy, e.g. announce = \
                         [\"anycast_dns\"] (a static protocol holding the anycast prefix)"
                    }
                },
            );
        }
        // Compare typed targets when both lists parsed (catches spelling variants), else the raw text.
        let overlaps: Vec<(usize, usize, String)> = match (&announce, &degrade) {
            (Some(announce), Some(degrade)) => degrade
                .iter()
                .enumerate()
                .filter_map(|(d, t)| {
                    announce
                        .iter()
                        .position(|a| a == t)
                        .map(|a| (d, a, t.to_string()))
                })
                .collect(),
            _ => raw
                .degrade
                .iter()
                .flatten()
                .enumerate()
                .filter_map(|(d, t)| {
                    raw.announce
                        .iter()
                        .flatten()
                        .position(|a| a.trim() == t.trim())
                        .map(|a| (d, a, format!("{t:?}")))
                })
                .collect(),
        };
        for (d, a, target) in overlaps {
            self.issue(
                format!("{path}.degrade[{d}]"),
                format!("{target} is also {path}.announce[{a}]"),
                match kind {
                    Some(BackendKind::Frr) => {
                        "a target cannot be both a normal and a degrade target: degrading swaps one set for the \
                         other; degrade with a route-map variant of the prefix instead, e.g. \
                         \"203.0.113.53/32 route-map NSBEACON-DEGRADED\" (a route-map of FRR's config that \
                         prepends or sets a community)"
                    }
                    _ => {
                        "a target cannot be both a normal and a degrade target: degrading swaps one set for the \
                         other; use a separate protocol/prefix carrying the prepend or community"
                    }
                },
            );
        }

        let damping = self.damping(&format!("{path}.damping"), raw.damping.as_ref());
        let graceful_drain = match raw.graceful_drain.as_deref() {
            None => Some(None),
            Some(s) => self
                .duration_in(
                    &format!("{path}.graceful_drain"),
                    Some(s),
                    Duration::ZERO,
                    Duration::from_secs(86_400),
                )
                .map(|d| (!d.is_zero()).then_some(d)),
        };
        if let Some(Some(_)) = graceful_drain
            && raw.degrade.as_ref().is_none_or(|d| d.is_empty())
        {
            self.issue(
                format!("{path}.graceful_drain"),
                "a graceful drain announces the degrade targets first, but this service has none",
                "add degrade targets (e.g. a BIRD static protocol whose routes carry GRACEFUL_SHUTDOWN 65535:0) or \
                 remove graceful_drain",
            );
        }

        Some(ServiceConfig {
            name: name?,
            checks: checks_ok.then_some(checks)?,
            combine: combine?,
            announce: announce?,
            degrade: degrade?,
            interval: interval?,
            rise: rise?,
            fall: fall?,
            jitter: jitter?,
            damping: damping?,
            graceful_drain: graceful_drain?,
        })
    }

    fn name(&mut self, path: &str, raw: Option<&str>, what: &str) -> Option<String> {
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

    fn combine(&mut self, path: &str, raw: Option<&toml::Value>, checks: usize) -> Option<Combine> {
        const HINT: &str = "use combine = \"all\" (default), \"any\", or { at_least = N }";
        let combine = match raw {
            None => Combine::All,
            Some(toml::Value::String(s)) if s == "all" => Combine::All,
            Some(toml::Value::String(s)) if s == "any" => Combine::Any,
            Some(toml::Value::Table(t)) if t.len() == 1 && t.contains_key("at_least") => match t
                .get("at_least")
            {
                Some(toml::Value::Integer(n)) if *n >= 1 => {
                    let n = usize::try_from(*n).unwrap_or(usize::MAX);
                    if checks > 0 && n > checks {
                        self.issue(
                            path,
                            format!("at_least = {n} but the service has only {checks} check(s)"),
                            "the service could never be up; lower at_least or add checks",
                        );
                        return None;
                    }
                    Combine::AtLeast(n)
                }
                Some(other) => {
                    self.issue(
                        path,
                        format!("at_least = {other} is not a positive integer"),
                        HINT,
                    );
                    return None;
                }
                None => return None,
            },
            Some(other) => {
                self.issue(path, format!("{other} is not a combine mode"), HINT);
                return None;
            }
        };
        Some(combine)
    }

    fn damping(&mut self, path: &str, raw: Option<&RawDamping>) -> Option<DampingConfig> {
        let defaults = DampingConfig::default();
        let Some(raw) = raw else {
            return Some(defaults);
        };
        let penalty = self.positive_number(
            &format!("{path}.penalty"),
            raw.penalty.as_ref(),
            defaults.penalty,
        );
        let suppress = self.positive_number(
            &format!("{path}.suppress_threshold"),
            raw.suppress_threshold.as_ref(),
            defaults.suppress,
        );
        let reuse = self.positive_number(
            &format!("{path}.reuse_threshold"),
            raw.reuse_threshold.as_ref(),
            defaults.reuse,
        );
        let half_life = match raw.half_life.as_deref() {
            None => Some(defaults.half_life),
            Some(s) => self.duration_in(
                &format!("{path}.half_life"),
                Some(s),
                Duration::from_secs(1),
                Duration::from_secs(86_400),
            ),
        };
        let max_hold_down = match raw.max_hold_down.as_deref() {
            None => Some(defaults.max_hold_down),
            Some(s) => self.duration_in(
                &format!("{path}.max_hold_down"),
                Some(s),
                Duration::from_secs(1),
                Duration::from_secs(86_400),
            ),
        };
        let damping = DampingConfig {
            enabled: raw.enabled.unwrap_or(defaults.enabled),
            penalty: penalty?,
            suppress: suppress?,
            reuse: reuse?,
            half_life: half_life?,
            max_hold_down: max_hold_down?,
        };
        let mut ok = true;
        if damping.reuse >= damping.suppress {
            self.issue(
                format!("{path}.reuse_threshold"),
                format!(
                    "{} must be below the suppress threshold {}",
                    damping.reuse, damping.suppress
                ),
                "suppression ends when the penalty decays below reuse_threshold, so it must be lower than \
                 suppress_threshold (defaults 750 and 3000)",
            );
            ok = false;
        }
        if ok && damping.max_hold_down < damping.half_life {
            self.issue(
                format!("{path}.max_hold_down"),
                format!(
                    "{} is shorter than the half-life {}",
                    fmt_duration(damping.max_hold_down),
                    fmt_duration(damping.half_life)
                ),
                "the penalty could not decay meaningfully before the hold-down ends; raise max_hold_down",
            );
            ok = false;
        }
        if ok && damping.enabled && damping.suppress >= damping.ceiling() {
            self.issue(
                format!("{path}.suppress_threshold"),
                format!(
                    "{} can never be reached: the penalty is capped at {:.0} (reuse_threshold x 2^(max_hold_down / half_life))",
                    damping.suppress,
                    damping.ceiling()
                ),
                "lower suppress_threshold or raise max_hold_down, or set enabled = false",
            );
            ok = false;
        }
        ok.then_some(damping)
    }

    fn positive_number(
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

    fn targets(
        &mut self,
        path: &str,
        raw: Option<&[String]>,
        kind: Option<BackendKind>,
    ) -> Option<Vec<RouteTarget>> {
        let raw = raw.unwrap_or_default();
        let kind = kind?;
        // With the index in `raw`, so that a message points at the entry as written.
        let mut listed: Vec<(usize, RouteTarget)> = Vec::new();
        let mut ok = true;
        for (i, text) in raw.iter().enumerate() {
            let here = format!("{path}[{i}]");
            match parse_target(kind, text) {
                Ok(target) => {
                    let same_key = listed
                        .iter()
                        .find(|(_, t)| ownership_key(t) == ownership_key(&target));
                    match same_key {
                        Some((first, t)) if *t == target => {
                            self.issue(
                                here,
                                format!("{target} is listed twice (also {path}[{first}])"),
                                "remove the duplicate",
                            );
                            ok = false;
                        }
                        Some((first, t)) => {
                            self.issue(
                                here,
                                format!(
                                    "{target} and {path}[{first}] ({t}) are two variants of the same prefix in \
                                     one list"
                                ),
                                "FRR keeps one `network` statement per prefix, so announcing one variant replaces \
                                 the other: the two would switch each other out on every reconcile. List each \
                                 prefix once per list: the plain prefix in announce, its route-map variant in \
                                 degrade",
                            );
                            ok = false;
                        }
                        None => listed.push((i, target)),
                    }
                }
                Err((message, hint)) => {
                    self.issue(here, message, hint);
                    ok = false;
                }
            }
        }
        ok.then(|| listed.into_iter().map(|(_, t)| t).collect())
    }

    fn check(
        &mut self,
        path: &str,
        service_path: &str,
        raw: &RawCheck,
        service_interval: Option<Duration>,
        service_timeout: Option<Option<Duration>>,
    ) -> Option<CheckConfig> {
        let name = self.name(&format!("{path}.name"), raw.name.as_deref(), "check");
        let is_serial = match raw.check_type.as_deref() {
            None | Some("query") => false,
            Some("serial") => true,
            Some(other) => {
                self.issue(
                    format!("{path}.type"),
                    format!("{other:?} is not a check type"),
                    "use type = \"query\" (default: one DNS query with expectations) or \"serial\" (SOA freshness \
                     against a reference server)",
                );
                return None;
            }
        };
        let foreign = if is_serial {
            raw.query_only_keys()
        } else {
            raw.serial_only_keys()
        };
        for key in foreign {
            let (this, other) = if is_serial {
                ("serial", "query")
            } else {
                ("query", "serial")
            };
            self.issue(
                format!("{path}.{key}"),
                format!(
                    "`{key}` only applies to type = \"{other}\" checks, and this is a {this} check"
                ),
                if is_serial {
                    "remove it, or make this a query check (the default type)".to_owned()
                } else {
                    "remove it, or add type = \"serial\"".to_owned()
                },
            );
        }

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

    fn transport(&mut self, path: &str, raw: Option<&str>, is_serial: bool) -> Option<Transport> {
        match raw {
            None | Some("udp") => Some(Transport::Udp),
            Some("tcp") => Some(Transport::Tcp),
            Some("both") if !is_serial => Some(Transport::Both),
            Some("both") => {
                self.issue(
                    path,
                    "serial checks query over one transport",
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

    fn address(
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

    fn dns_name(&mut self, path: &str, raw: &str) -> Option<Name> {
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

    fn query_check(
        &mut self,
        path: &str,
        raw: &RawCheck,
        transport: Option<Transport>,
        timeout: Option<Duration>,
    ) -> Option<ProbeSpec> {
        let target = self.address(
            &format!("{path}.target"),
            raw.target.as_deref(),
            "give the server address to probe, e.g. target = \"127.0.0.1:53\" or the anycast address itself",
        );
        let qname = match raw.qname.as_deref() {
            None => {
                self.issue(
                    format!("{path}.qname"),
                    "missing",
                    "give the name to query, e.g. qname = \"example.com.\" (a zone the server is authoritative for)",
                );
                None
            }
            Some(s) => self.dns_name(&format!("{path}.qname"), s),
        };
        let qtype = match raw.qtype.as_deref() {
            None => Some(RecordType::SOA),
            Some(s) => match RecordType::from_str(&s.to_ascii_uppercase()) {
                Ok(t) if !matches!(t, RecordType::Unknown(_)) => Some(t),
                _ => {
                    self.issue(
                        format!("{path}.qtype"),
                        format!("{s:?} is not a record type"),
                        "use a type name such as SOA (default), A, AAAA, TXT, NS",
                    );
                    None
                }
            },
        };
        let qclass = match raw.qclass.as_deref() {
            None => Some(DNSClass::IN),
            Some(s) => match DNSClass::from_str(&s.to_ascii_uppercase()) {
                Ok(c) => Some(c),
                Err(_) => {
                    self.issue(
                        format!("{path}.qclass"),
                        format!("{s:?} is not a DNS class"),
                        "use IN (default) or CH",
                    );
                    None
                }
            },
        };
        let edns_payload = match raw.edns_payload {
            None => Some(DEFAULT_EDNS_PAYLOAD),
            Some(n) => match u16::try_from(n) {
                Ok(n) if n >= 512 => Some(n),
                _ => {
                    self.issue(
                        format!("{path}.edns_payload"),
                        format!("{n} is out of range"),
                        "use 512..=65535 (default 1232, which avoids IP fragmentation)",
                    );
                    None
                }
            },
        };
        let rcodes = match raw.rcodes.as_deref() {
            None => Some(vec![ResponseCode::NoError]),
            Some([]) => {
                self.issue(
                    format!("{path}.rcodes"),
                    "empty list: no reply could ever pass",
                    "list the acceptable rcodes, e.g. [\"NOERROR\"] (default)",
                );
                None
            }
            Some(list) => {
                let mut codes = Vec::new();
                let mut ok = true;
                for (i, s) in list.iter().enumerate() {
                    match parse_rcode(s) {
                        Some(code) => codes.push(code),
                        None => {
                            self.issue(
                                format!("{path}.rcodes[{i}]"),
                                format!("{s:?} is not an rcode"),
                                "use names such as NOERROR, NXDOMAIN, SERVFAIL, REFUSED",
                            );
                            ok = false;
                        }
                    }
                }
                ok.then_some(codes)
            }
        };
        let min_answers = match raw.min_answers {
            None => rcodes
                .as_ref()
                .map(|codes| usize::from(codes.contains(&ResponseCode::NoError))),
            Some(n) => match usize::try_from(n) {
                Ok(n) if n <= 1000 => Some(n),
                _ => {
                    self.issue(
                        format!("{path}.min_answers"),
                        format!("{n} is out of range"),
                        "use 0..=1000 (default 1 when NOERROR is expected, else 0)",
                    );
                    None
                }
            },
        };
        let answer = match (raw.answer_exact.as_deref(), raw.answer_contains.as_deref()) {
            (Some(_), Some(_)) => {
                self.issue(
                    format!("{path}.answer_contains"),
                    "answer_exact and answer_contains are both set",
                    "set one of them",
                );
                None
            }
            (Some(""), None) | (None, Some("")) => {
                self.issue(
                    format!(
                        "{path}.{}",
                        if raw.answer_exact.is_some() {
                            "answer_exact"
                        } else {
                            "answer_contains"
                        }
                    ),
                    "empty expected value",
                    "give the RDATA to expect (TXT without quotes), or remove the key",
                );
                None
            }
            (Some(s), None) => Some(Some(AnswerMatch::Exact(s.to_owned()))),
            (None, Some(s)) => Some(Some(AnswerMatch::Contains(s.to_owned()))),
            (None, None) => Some(None),
        };
        let slow_after = match raw.slow_after.as_deref() {
            None => Some(None),
            Some(s) => {
                let d = self.duration_in(
                    &format!("{path}.slow_after"),
                    Some(s),
                    Duration::from_micros(1),
                    MAX_TIMEOUT,
                );
                if let (Some(d), Some(t)) = (d, timeout)
                    && d >= t
                {
                    self.issue(
                        format!("{path}.slow_after"),
                        format!(
                            "{} must be shorter than the timeout {}",
                            fmt_duration(d),
                            fmt_duration(t)
                        ),
                        "an answer slower than the timeout is a failure, so slow_after would never trigger",
                    );
                    None
                } else {
                    d.map(Some)
                }
            }
        };
        let identity = match (raw.identity.as_deref(), raw.identity_expected.as_deref()) {
            (_, Some("")) => {
                self.issue(
                    format!("{path}.identity_expected"),
                    "empty expected identity",
                    "give this node's NSID / id.server value, or remove the key",
                );
                None
            }
            (None, None) => Some(None),
            (None, Some(expected)) | (Some("nsid"), Some(expected)) => {
                Some(Some(IdentitySpec::nsid(Some(expected.to_owned()))))
            }
            (Some("nsid"), None) => Some(Some(IdentitySpec::nsid(None))),
            (Some(chaos), expected) => match parse_name(chaos).filter(|n| !n.is_root()) {
                Some(name) => Some(Some(IdentitySpec::chaos_txt(
                    name,
                    expected.map(str::to_owned),
                ))),
                None => {
                    self.issue(
                        format!("{path}.identity"),
                        format!("{chaos:?} is neither \"nsid\" nor a CHAOS TXT name"),
                        "use \"nsid\" (EDNS NSID, RFC 5001), \"id.server\" or \"hostname.bind\"",
                    );
                    None
                }
            },
        };

        let query = QuerySpec {
            name: qname?,
            record_type: qtype?,
            class: qclass?,
        };
        let mut expect = Expectations::default()
            .with_rcodes(rcodes?)
            .with_authoritative(raw.authoritative.unwrap_or(true))
            .with_min_answers(min_answers?);
        if let Some(answer) = answer? {
            expect = expect.with_answer(answer);
        }
        if let Some(slow) = slow_after? {
            expect = expect.with_slow_after(slow);
        }
        let mut spec = ProbeSpec::new(target?, query)
            .with_transport(transport?)
            .with_timeout(timeout?)
            .with_edns_payload(edns_payload?)
            .with_expectations(expect);
        if let Some(identity) = identity? {
            spec = spec.with_identity(identity);
        }
        if let Err(e) = spec.validate() {
            self.issue(
                path,
                format!("the prober rejects this check: {e}"),
                "fix the check's settings",
            );
            return None;
        }
        Some(spec)
    }

    fn serial_check(
        &mut self,
        path: &str,
        raw: &RawCheck,
        transport: Option<Transport>,
        timeout: Option<Duration>,
    ) -> Option<SerialCheck> {
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
        let max_lag = match raw.max_lag {
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
        };
        let max_behind_zones = match raw.max_behind_zones {
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
        };
        let concurrency = match raw.concurrency {
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
        };

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
        Some(SerialCheck {
            zones: zones_ok.then_some(zones)?,
            local: local?,
            reference: reference?,
            transport: transport?,
            timeout: timeout?,
            max_lag: max_lag?,
            max_behind_zones: max_behind_zones?,
            concurrency: concurrency?,
        })
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
        let text = match std::fs::read_to_string(&full) {
            Ok(text) => text,
            Err(e) => {
                self.issue(
                    path,
                    format!("cannot read {}: {e}", full.display()),
                    "give a readable file with one zone per line (relative paths are relative to the config file)",
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

/// vtysh options that run commands or write configuration (`-c`, `-b`, `-f`, `-w` and their long forms,
/// also inside short-option clusters such as `-wc`). nsbeacon passes its own `-c` commands.
fn dangerous_vtysh_arg(arg: &str) -> bool {
    if let Some(long) = arg.strip_prefix("--") {
        let name = long.split('=').next().unwrap_or_default();
        matches!(name, "command" | "boot" | "inputfile" | "writeconfig")
    } else if let Some(short) = arg.strip_prefix('-') {
        short.chars().any(|c| matches!(c, 'c' | 'b' | 'f' | 'w'))
    } else {
        false
    }
}

/// `name`/`service` names: safe in metric labels, file names, command lines.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Linux interface (and VRF) names: 1-15 bytes, no '/', whitespace or ':'. Stricter here on purpose.
fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// BIRD symbol syntax: a letter or '_', then letters, digits, '_'; at most 64 characters.
fn valid_bird_symbol(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 64
}

/// Parses one route target in the syntax of `kind`; on failure, (message, hint).
fn parse_target(kind: BackendKind, text: &str) -> Result<RouteTarget, (String, String)> {
    match kind {
        BackendKind::Bird => {
            if text.eq_ignore_ascii_case("all") {
                return Err((
                    "\"all\" is not a protocol name: `disable all` would shut down every BIRD protocol".to_owned(),
                    "name the static protocol holding the anycast prefix, e.g. \"anycast_dns\"".to_owned(),
                ));
            }
            if !valid_bird_symbol(text) {
                let hint = if text.contains('/')
                    || text.parse::<IpAddr>().is_ok()
                    || text.starts_with("neighbor:")
                {
                    "the bird backend takes BIRD protocol names (e.g. a static protocol \"anycast_dns\"); prefixes \
                     and neighbors are targets of the frr backend"
                } else {
                    "BIRD protocol names start with a letter or '_' and contain only letters, digits and '_' (no \
                     quotes or glob characters)"
                };
                return Err((
                    format!("{text:?} is not a BIRD protocol name"),
                    hint.to_owned(),
                ));
            }
            bird_protocol(text)
                .map(RouteTarget::BirdProtocol)
                .map_err(|e| {
                    (
                        format!("{text:?} is not a BIRD protocol name: {e}"),
                        "use BIRD symbol syntax".to_owned(),
                    )
                })
        }
        BackendKind::Frr => {
            if let Some(neighbor) = text.strip_prefix("neighbor:") {
                return neighbor
                    .trim()
                    .parse::<FrrNeighbor>()
                    .map(RouteTarget::FrrNeighbor)
                    .map_err(|e| {
                        (
                            format!("{neighbor:?} is not a BGP neighbor: {e}"),
                            "write \"neighbor:192.0.2.1\" or \"neighbor:eth0\" (unnumbered BGP)"
                                .to_owned(),
                        )
                    });
            }
            let (text, route_map) = match text.split_once(" route-map ") {
                None => (text, None),
                Some((prefix, name)) => match name.trim().parse::<RouteMapName>() {
                    Ok(name) => (prefix.trim(), Some(name)),
                    Err(e) => {
                        return Err((
                            format!("{text:?}: {e}"),
                            "write \"PREFIX route-map NAME\" with the name of a route-map from FRR's config, \
                             e.g. \"203.0.113.53/32 route-map NSBEACON-DEGRADED\""
                                .to_owned(),
                        ));
                    }
                },
            };
            match text.parse::<ipnet::IpNet>() {
                Ok(net) if net.trunc() == net => {
                    Ok(RouteTarget::FrrNetwork(FrrNetwork::new(net, route_map)))
                }
                Ok(net) => Err((
                    format!("{net} has host bits set"),
                    format!("write the network address, {}", net.trunc()),
                )),
                Err(_) if text.parse::<IpAddr>().is_ok() => Err((
                    format!("{text:?} has no prefix length"),
                    format!("write it as a prefix, e.g. \"{text}/{}\"", if text.contains(':') { 128 } else { 32 }),
                )),
                Err(_) => Err((
                    format!("{text:?} is not an FRR target"),
                    "the frr backend takes prefixes (\"203.0.113.53/32\", toggled with `network`), optionally \
                     with a route-map (\"203.0.113.53/32 route-map NSBEACON-DEGRADED\") or neighbors \
                     (\"neighbor:192.0.2.1\", toggled with `neighbor shutdown`); BIRD protocol names need kind = \
                     \"bird\""
                        .to_owned(),
                )),
            }
        }
    }
}

/// What a service owns when it lists `target`. FRR keeps one `network` statement per prefix, so every
/// route-map variant of a prefix is the same thing to own: the prefix alone (no route-map) is the key.
fn ownership_key(target: &RouteTarget) -> RouteTarget {
    match target {
        RouteTarget::FrrNetwork(network) => {
            RouteTarget::FrrNetwork(FrrNetwork::new(network.prefix, None))
        }
        other => other.clone(),
    }
}

/// Builds the routing crate's validated protocol name.
fn bird_protocol(name: &str) -> Result<BirdProtocolName, String> {
    BirdProtocolName::new(name).map_err(|e| e.to_string())
}

/// An IP address with optional port (default 53).
fn parse_dns_address(text: &str) -> Option<SocketAddr> {
    let text = text.trim();
    text.parse::<SocketAddr>().ok().or_else(|| {
        text.parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, 53))
    })
}

/// A domain name, made absolute.
fn parse_name(text: &str) -> Option<Name> {
    let text = text.trim();
    if text.is_empty() || text.chars().any(char::is_whitespace) {
        return None;
    }
    let mut name = Name::from_ascii(text).ok()?;
    name.set_fqdn(true);
    Some(name)
}

fn parse_rcode(text: &str) -> Option<ResponseCode> {
    let code = match text.to_ascii_uppercase().as_str() {
        "NOERROR" => 0,
        "FORMERR" => 1,
        "SERVFAIL" => 2,
        "NXDOMAIN" => 3,
        "NOTIMP" => 4,
        "REFUSED" => 5,
        "YXDOMAIN" => 6,
        "YXRRSET" => 7,
        "NXRRSET" => 8,
        "NOTAUTH" => 9,
        "NOTZONE" => 10,
        _ => return None,
    };
    let code: u16 = code;
    Some(code.into())
}

/// Formats a duration the way it is written in the config (`500ms`, `2s`).
pub(crate) fn fmt_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}
