//! Route targets: their syntax per backend (BIRD protocol names; FRR prefixes, route-map variants and
//! neighbors), duplicates within a list, and which service owns which target.

use std::collections::HashMap;
use std::net::IpAddr;

use nsbeacon_routing::{BirdProtocolName, FrrNeighbor, FrrNetwork, RouteMapName, RouteTarget};

use super::raw::RawService;
use super::{BackendKind, Validator};
use crate::config::{DEFAULT_MIN_PREFIX_LENGTH_V4, DEFAULT_MIN_PREFIX_LENGTH_V6};

/// Who owns what, keyed by [`ownership_key`] (for FRR networks the prefix, so every route-map variant of
/// it counts): the owning service's entries, as (key path, target), so that a message can name the very
/// same variant.
pub(super) type Owners = HashMap<RouteTarget, Vec<(String, RouteTarget)>>;

/// Which FRR prefixes a service may announce: a typo such as `0.0.0.0/0` or `10.0.0.0/1` must not
/// announce a default route or a huge block to the world. Set in `[backend]` (frr only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct PrefixPolicy {
    /// Shortest IPv4 prefix accepted (`min_prefix_length_v4`, default [`DEFAULT_MIN_PREFIX_LENGTH_V4`]).
    pub min_v4: u8,
    /// Shortest IPv6 prefix accepted (`min_prefix_length_v6`, default [`DEFAULT_MIN_PREFIX_LENGTH_V6`]).
    pub min_v6: u8,
    /// Whether `0.0.0.0/0` and `::/0` are accepted (`allow_default_route`, default false); when true the
    /// minimum lengths do not apply to them.
    pub allow_default: bool,
}

impl Default for PrefixPolicy {
    fn default() -> Self {
        Self {
            min_v4: DEFAULT_MIN_PREFIX_LENGTH_V4,
            min_v6: DEFAULT_MIN_PREFIX_LENGTH_V6,
            allow_default: false,
        }
    }
}

impl PrefixPolicy {
    /// `None` if `net` may be announced, else (message, hint).
    fn refuse(&self, net: &ipnet::IpNet) -> Option<(String, String)> {
        let len = net.prefix_len();
        if len == 0 {
            return (!self.allow_default).then(|| {
                (
                    format!("{net} is the default route: announcing it would attract all traffic"),
                    "write the anycast prefix (e.g. \"203.0.113.53/32\"); if this node really originates a \
                     default route, set [backend] allow_default_route = true"
                        .to_owned(),
                )
            });
        }
        let (min, key) = match net {
            ipnet::IpNet::V4(_) => (self.min_v4, "min_prefix_length_v4"),
            ipnet::IpNet::V6(_) => (self.min_v6, "min_prefix_length_v6"),
        };
        (len < min).then(|| {
            (
                format!("{net} is shorter than /{min}, the shortest prefix accepted"),
                format!(
                    "check the prefix length (an anycast DNS prefix is usually a /24 or /32, /48 or /128); if \
                     this prefix is meant, lower [backend] {key}"
                ),
            )
        })
    }
}

impl Validator<'_> {
    pub(super) fn targets(
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
            let parsed = parse_target(kind, text).and_then(|target| match &target {
                RouteTarget::FrrNetwork(network) => {
                    match self.prefix_policy.refuse(&network.prefix) {
                        Some(refused) => Err(refused),
                        None => match &self.frr_kernel_metrics {
                            Some(metrics) if metrics.metric(network.route_map.as_ref()).is_none() => {
                                Err((
                                    format!(
                                        "{network} has no kernel-route metric with announce_via = \
                                         \"kernel-metric\""
                                    ),
                                    format!(
                                        "use one of the variants frr.conf's NSBEACON-KERNEL route-maps map: {} \
                                         (frr-templates/nsbeacon-bgpd-kernel-metric.conf)",
                                        metrics.describe()
                                    ),
                                ))
                            }
                            _ => Ok(target),
                        },
                    }
                }
                _ => Ok(target),
            });
            match parsed {
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

    /// Records the targets of the service at `path` in `owners` and reports those another service owns.
    /// Checked on every target that parses, even when the rest of the service is invalid.
    pub(super) fn claim_targets(
        &mut self,
        path: &str,
        raw: &RawService,
        kind: BackendKind,
        owners: &mut Owners,
    ) {
        for (list, raw_targets) in [("announce", &raw.announce), ("degrade", &raw.degrade)] {
            for (t, text) in raw_targets.iter().flatten().enumerate() {
                let Ok(target) = parse_target(kind, text) else {
                    continue;
                };
                let here = format!("{path}.{list}[{t}]");
                let entries = owners.entry(ownership_key(&target)).or_default();
                let Some((owner, owned)) = entries.first().cloned() else {
                    entries.push((here, target));
                    continue;
                };
                if owner.starts_with(&format!("{path}.")) {
                    entries.push((here, target));
                } else if let Some((owner, _)) = entries.iter().find(|(_, t)| *t == target) {
                    let owner = owner.clone();
                    self.issue(
                        here,
                        format!("{target} is already controlled by {owner}"),
                        "each route target may belong to one service only, otherwise two services would \
                         fight over it; give each service its own BIRD protocol / prefix",
                    );
                } else {
                    self.issue(
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
}

/// Parses one route target in the syntax of `kind`; on failure, (message, hint).
fn parse_target(kind: BackendKind, text: &str) -> Result<RouteTarget, (String, String)> {
    match kind {
        BackendKind::Bird => parse_bird_target(text),
        BackendKind::Frr => parse_frr_target(text),
    }
}

fn parse_bird_target(text: &str) -> Result<RouteTarget, (String, String)> {
    if text.eq_ignore_ascii_case("all") {
        return Err((
            "\"all\" is not a protocol name: `disable all` would shut down every BIRD protocol"
                .to_owned(),
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
    BirdProtocolName::new(text)
        .map(RouteTarget::BirdProtocol)
        .map_err(|e| {
            (
                format!("{text:?} is not a BIRD protocol name: {e}"),
                "use BIRD symbol syntax".to_owned(),
            )
        })
}

fn parse_frr_target(text: &str) -> Result<RouteTarget, (String, String)> {
    if let Some(neighbor) = text.strip_prefix("neighbor:") {
        return neighbor
            .trim()
            .parse::<FrrNeighbor>()
            .map(RouteTarget::FrrNeighbor)
            .map_err(|e| {
                (
                    format!("{neighbor:?} is not a BGP neighbor: {e}"),
                    "write \"neighbor:192.0.2.1\" or \"neighbor:eth0\" (unnumbered BGP)".to_owned(),
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
        Ok(net) if net.trunc() == net => Ok(RouteTarget::FrrNetwork(FrrNetwork::new(net, route_map))),
        Ok(net) => Err((
            format!("{net} has host bits set"),
            format!("write the network address, {}", net.trunc()),
        )),
        Err(_) if text.parse::<IpAddr>().is_ok() => Err((
            format!("{text:?} has no prefix length"),
            format!(
                "write it as a prefix, e.g. \"{text}/{}\"",
                if text.contains(':') { 128 } else { 32 }
            ),
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

/// BIRD symbol syntax: a letter or '_', then letters, digits, '_'; at most 64 characters.
fn valid_bird_symbol(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 64
}
