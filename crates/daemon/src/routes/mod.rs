//! Routes: what the services want announced, merged into one table, and the book the reconciler keeps.
//!
//! This is the stage after [`crate::health`]: each service publishes its ordered target steps (a
//! [`DesiredTable`] entry); [`merge`] folds the services into one desired state per target (withdrawn
//! wins); the reconciler makes the BGP daemon match it. The names here are the route vocabulary every
//! later stage shares (status, metrics, CLI), so that none of them spells a target or a state on its own.

pub mod book;

use std::collections::{BTreeMap, HashMap};

use nsbeacon_routing::{RouteState, RouteTarget};
use serde::{Deserialize, Serialize};

/// What every service wants: service name -> target states in the order to apply them (make before
/// break: a service lists the announcements of its new targets before the withdrawals of its old ones).
pub type DesiredTable = BTreeMap<String, Vec<(RouteTarget, RouteState)>>;

/// Which kind of thing a target is; the `kind` label of the route metrics and the `kind` key of `/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    /// A BIRD protocol, enabled or disabled.
    BirdProtocol,
    /// An FRR `network` statement.
    FrrNetwork,
    /// An FRR BGP neighbor, shut down or not.
    FrrNeighbor,
}

impl TargetKind {
    /// `bird_protocol`, `frr_network` or `frr_neighbor`.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::BirdProtocol => "bird_protocol",
            TargetKind::FrrNetwork => "frr_network",
            TargetKind::FrrNeighbor => "frr_neighbor",
        }
    }
}

/// A target as people and metrics name it: its kind and its protocol name, prefix or neighbor. It is the
/// key that joins a service's view of a target with the reconciler's view in `/status`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TargetId {
    /// What kind of target.
    pub kind: TargetKind,
    /// Protocol name, prefix (with its route-map, if any) or neighbor.
    pub target: String,
}

impl TargetId {
    /// The id of `target`.
    pub fn of(target: &RouteTarget) -> TargetId {
        let (kind, name) = match target {
            RouteTarget::BirdProtocol(p) => (TargetKind::BirdProtocol, p.as_str().to_owned()),
            RouteTarget::FrrNetwork(n) => (TargetKind::FrrNetwork, n.to_string()),
            RouteTarget::FrrNeighbor(n) => (TargetKind::FrrNeighbor, n.to_string()),
        };
        TargetId { kind, target: name }
    }

    /// The (`kind`, `target`) label values of the route metrics.
    pub fn labels(&self) -> [&str; 2] {
        [self.kind.as_str(), &self.target]
    }
}

/// One target's desired state after merging every service that lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergedTarget {
    /// Withdrawn if any service wants it withdrawn, else announced.
    pub state: RouteState,
    /// The services that list the target, in table order.
    pub services: Vec<String>,
}

/// Per target: the merged desired state (withdrawn wins, so a shared route is announced only while every
/// service behind it wants it) and the services listing it.
pub fn merge(table: &DesiredTable) -> HashMap<RouteTarget, MergedTarget> {
    let mut merged: HashMap<RouteTarget, MergedTarget> = HashMap::new();
    for (service, steps) in table {
        for (target, state) in steps {
            let entry = merged.entry(target.clone()).or_insert(MergedTarget {
                state: *state,
                services: Vec::new(),
            });
            if *state == RouteState::Withdrawn {
                entry.state = RouteState::Withdrawn;
            }
            if !entry.services.contains(service) {
                entry.services.push(service.clone());
            }
        }
    }
    merged
}

/// Targets and tables for the tests of this stage and the next.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;
    use nsbeacon_routing::BirdProtocolName;

    /// The BIRD protocol `name`.
    pub(crate) fn proto(name: &str) -> RouteTarget {
        RouteTarget::BirdProtocol(BirdProtocolName::new(name).expect("valid protocol name"))
    }

    /// A table with one service, `dns`, listing these protocols in this order.
    pub(crate) fn table(steps: &[(&str, RouteState)]) -> DesiredTable {
        BTreeMap::from([(
            "dns".to_owned(),
            steps.iter().map(|(n, s)| (proto(n), *s)).collect(),
        )])
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::proto as bird;
    use super::*;

    #[test]
    fn withdrawn_wins_and_services_are_listed_once() {
        let mut table = DesiredTable::new();
        table.insert(
            "a".into(),
            vec![
                (bird("p"), RouteState::Announced),
                (bird("q"), RouteState::Announced),
            ],
        );
        table.insert("b".into(), vec![(bird("p"), RouteState::Withdrawn)]);
        let merged = merge(&table);
        assert_eq!(merged[&bird("p")].state, RouteState::Withdrawn);
        assert_eq!(merged[&bird("p")].services, ["a", "b"]);
        assert_eq!(merged[&bird("q")].state, RouteState::Announced);
        assert_eq!(merged[&bird("q")].services, ["a"]);
    }

    #[test]
    fn ids_serialize_as_kind_and_target() {
        let id = TargetId::of(&bird("anycast_dns"));
        let json = serde_json::to_string(&id).expect("serializes");
        assert_eq!(json, r#"{"kind":"bird_protocol","target":"anycast_dns"}"#);
        assert_eq!(id.labels(), ["bird_protocol", "anycast_dns"]);
    }
}
