//! `[[service]]`: names, timing defaults, checks, combine mode, jitter, announce/degrade targets, flap
//! damping and graceful drain of each service.

use std::collections::HashMap;
use std::time::Duration;

use nsbeacon_routing::RouteTarget;

use super::check::ServiceTiming;
use super::raw::{RawDamping, RawService};
use super::targets::Owners;
use super::{BackendKind, Validator};
use crate::config::{
    CheckConfig, Combine, ConfirmTimeout, DEFAULT_CONFIRM_INTERVAL, DEFAULT_FALL, DEFAULT_INTERVAL,
    DEFAULT_JITTER_FRACTION, DEFAULT_RISE, DampingConfig, MAX_INTERVAL, MAX_TIMEOUT,
    MIN_CONFIRM_INTERVAL, MIN_INTERVAL, ProcessWatch, ServiceConfig, fmt_duration,
};

impl Validator<'_> {
    /// Every service, with unique names and each target owned by one service only.
    pub(super) fn services(
        &mut self,
        raw: &[RawService],
        kind: Option<BackendKind>,
    ) -> Vec<ServiceConfig> {
        if raw.is_empty() {
            self.issue(
                "service",
                "no [[service]] is defined, so nsbeacon would never announce anything",
                "add at least one [[service]] with a name, announce targets and a [[service.check]]",
            );
        }
        let mut services = Vec::new();
        let mut service_names: HashMap<String, usize> = HashMap::new();
        let mut owners = Owners::new();
        for (index, raw_service) in raw.iter().enumerate() {
            let path = format!("service[{index}]");
            let service = self.service(&path, raw_service, kind);
            if let Some(name) = raw_service.name.as_deref() {
                if let Some(first) = service_names.get(name) {
                    self.issue(
                        format!("{path}.name"),
                        format!("service name {name:?} is already used by service[{first}]"),
                        "give every service a unique name: it identifies the service in metrics, logs and `nsbeacon drain`",
                    );
                } else {
                    service_names.insert(name.to_owned(), index);
                }
            }
            if let Some(kind) = kind {
                self.claim_targets(&path, raw_service, kind, &mut owners);
            }
            if let Some(service) = service {
                services.push(service);
            }
        }
        services
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
        let service_confirm_timeout = raw
            .confirm_timeout
            .as_deref()
            .map(|s| self.confirm_timeout_value(&format!("{path}.confirm_timeout"), s));
        let (checks, checks_ok) = self.checks(
            path,
            raw,
            interval,
            service_timeout,
            service_confirm_timeout,
        );
        let combine = self.combine(
            &format!("{path}.combine"),
            raw.combine.as_ref(),
            raw.checks.len(),
        );
        let shortest_interval = checks.iter().map(|c| c.interval).min();
        let jitter = self.jitter(path, raw.jitter.as_deref(), interval, shortest_interval);
        let (announce, degrade) = self.service_targets(path, raw, kind);
        let damping = self.damping(&format!("{path}.damping"), raw.damping.as_ref());
        let graceful_drain = self.graceful_drain(path, raw);
        let min_announcing = self.min_announcing(
            &format!("{path}.min_announcing"),
            raw.min_announcing.as_ref(),
        );
        let confirm_interval = self.confirm_interval(path, raw, interval);
        let watch = self.watch(path, raw);
        let load = self.load(path, raw.load.as_ref());

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
            min_announcing: min_announcing?,
            confirm_interval: confirm_interval?,
            watch: watch?,
            load: load?,
        })
    }

    /// `confirm_interval`: default [`DEFAULT_CONFIRM_INTERVAL`] (or the interval, if that is shorter);
    /// `"0s"` turns fast confirmation off; otherwise from [`MIN_CONFIRM_INTERVAL`] to the service interval.
    fn confirm_interval(
        &mut self,
        path: &str,
        raw: &RawService,
        interval: Option<Duration>,
    ) -> Option<Option<Duration>> {
        let interval = interval.unwrap_or(DEFAULT_INTERVAL);
        let Some(written) = raw.confirm_interval.as_deref() else {
            return Some(Some(DEFAULT_CONFIRM_INTERVAL.min(interval)));
        };
        let key = format!("{path}.confirm_interval");
        if humantime::parse_duration(written.trim()).is_ok_and(|d| d.is_zero()) {
            return Some(None);
        }
        let confirm = self.duration_in(&key, Some(written), MIN_CONFIRM_INTERVAL, MAX_INTERVAL)?;
        if confirm > interval {
            self.issue(
                key,
                format!(
                    "confirm_interval {} is longer than the service interval {}",
                    fmt_duration(confirm),
                    fmt_duration(interval)
                ),
                "fast confirmation re-probes sooner than the interval after a failure: use a shorter \
                 value (default 20ms), or \"0s\" to turn it off",
            );
            return None;
        }
        Some(Some(confirm))
    }

    /// `[service.watch]`: `pid_file`, an absolute path.
    fn watch(&mut self, path: &str, raw: &RawService) -> Option<Option<ProcessWatch>> {
        let Some(watch) = &raw.watch else {
            return Some(None);
        };
        let key = format!("{path}.watch.pid_file");
        let Some(written) = watch.pid_file.as_deref() else {
            self.issue(
                key,
                "[service.watch] needs pid_file",
                "name the DNS server's PID file, e.g. watch = { pid_file = \"/run/knot/knot.pid\" }, or \
                 remove watch",
            );
            return None;
        };
        let pid_file = self.absolute_path(&key, Some(written))?;
        Some(Some(ProcessWatch { pid_file }))
    }

    /// The service's valid checks (names unique), and whether every check was valid.
    fn checks(
        &mut self,
        path: &str,
        raw: &RawService,
        interval: Option<Duration>,
        service_timeout: Option<Option<Duration>>,
        service_confirm_timeout: Option<Option<ConfirmTimeout>>,
    ) -> (Vec<CheckConfig>, bool) {
        if raw.checks.is_empty() {
            self.issue(
                format!("{path}.check"),
                "the service has no checks",
                "add at least one [[service.check]], e.g. an SOA query of a zone the server hosts",
            );
        }
        let timing = ServiceTiming {
            path,
            interval,
            interval_written: raw.interval.is_some(),
            timeout: service_timeout,
            confirm_timeout: service_confirm_timeout,
        };
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
            match self.check(&check_path, raw_check, &timing) {
                Some(check) => checks.push(check),
                None => checks_ok = false,
            }
        }
        (checks, checks_ok)
    }

    /// `jitter`: default 10 % of the service interval (or of a shorter check interval, so the default is
    /// always valid); at most half the shortest check interval.
    fn jitter(
        &mut self,
        path: &str,
        raw: Option<&str>,
        interval: Option<Duration>,
        shortest_interval: Option<Duration>,
    ) -> Option<Duration> {
        let jitter = match (raw, interval) {
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
        jitter
    }

    /// `announce` (required) and `degrade`, which must not share a target.
    #[allow(clippy::type_complexity)]
    fn service_targets(
        &mut self,
        path: &str,
        raw: &RawService,
        kind: Option<BackendKind>,
    ) -> (Option<Vec<RouteTarget>>, Option<Vec<RouteTarget>>) {
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
        for (d, a, target) in overlaps(raw, announce.as_deref(), degrade.as_deref()) {
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
        (announce, degrade)
    }

    /// `graceful_drain`: `Some(None)` when unset or zero; needs degrade targets.
    fn graceful_drain(&mut self, path: &str, raw: &RawService) -> Option<Option<Duration>> {
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
        graceful_drain
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
        self.damping_consistent(path, &damping).then_some(damping)
    }

    /// The thresholds and times must fit together, or damping would never end or never start.
    fn damping_consistent(&mut self, path: &str, damping: &DampingConfig) -> bool {
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
        ok
    }
}

/// Degrade targets that are also announce targets, as (degrade index, announce index, target). Compares
/// typed targets when both lists parsed (catches spelling variants), else the raw text.
fn overlaps(
    raw: &RawService,
    announce: Option<&[RouteTarget]>,
    degrade: Option<&[RouteTarget]>,
) -> Vec<(usize, usize, String)> {
    match (announce, degrade) {
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
    }
}
