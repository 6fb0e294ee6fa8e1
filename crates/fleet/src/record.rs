//! The record each node keeps per service: the fleet's live view, one JSON value per key.

use serde::{Deserialize, Serialize};

/// A node's state for one service, as the fleet sees it. The crate knows nothing of what the states mean
/// beyond one thing the guard needs: which of them keep the service's routes announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordState {
    /// Not yet verified: nothing announced.
    Starting,
    /// Healthy: announcing.
    Up,
    /// Answering, but not well: announcing a less preferred variant.
    Degraded,
    /// Failing, but kept announced by the fleet guard because too few others announce.
    Held,
    /// Failing: withdrawn.
    Down,
    /// Withdrawn on purpose by an operator.
    Drained,
    /// A state written by a newer nsbeacon that this one does not know: counted as not announcing, the
    /// cautious reading for the guard (it holds rather than over-withdraws).
    #[serde(other)]
    Unknown,
}

impl RecordState {
    /// Whether a node in this state announces the service (up, degraded, held): what the guard counts.
    pub fn announces(self) -> bool {
        matches!(
            self,
            RecordState::Up | RecordState::Degraded | RecordState::Held
        )
    }

    /// The state's name as written in records and shown to operators.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordState::Starting => "starting",
            RecordState::Up => "up",
            RecordState::Degraded => "degraded",
            RecordState::Held => "held",
            RecordState::Down => "down",
            RecordState::Drained => "drained",
            RecordState::Unknown => "unknown",
        }
    }
}

/// What a node reports about one service: the part of a [`Record`] the daemon decides. The member adds
/// the node name, the service and the version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordUpdate {
    /// The node's state for the service.
    pub state: RecordState,
    /// Why (a failure reason, a drain reason), if any.
    pub reason: Option<String>,
    /// The route targets the node announces for the service (names as the operator wrote them).
    pub targets: Vec<String>,
    /// When the node entered this state, in Unix seconds.
    pub since: u64,
}

/// One node's record for one service, as stored at `<prefix>/<fleet>/services/<service>/<node>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The node (also the last key segment).
    pub node: String,
    /// The service (also a key segment).
    pub service: String,
    /// The node's state for the service.
    pub state: RecordState,
    /// Why, if any.
    #[serde(default)]
    pub reason: Option<String>,
    /// The route targets announced.
    #[serde(default)]
    pub targets: Vec<String>,
    /// When the node entered the state (Unix seconds).
    #[serde(default)]
    pub since: u64,
    /// The nsbeacon version that wrote the record, so a mixed fleet during an upgrade is visible.
    #[serde(default)]
    pub version: String,
}

impl Record {
    /// The record `node` writes for `service` with `update`.
    pub fn new(node: &str, service: &str, version: &str, update: RecordUpdate) -> Record {
        Record {
            node: node.to_owned(),
            service: service.to_owned(),
            state: update.state,
            reason: update.reason,
            targets: update.targets,
            since: update.since,
            version: version.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_unknown_states_do_not_announce() {
        let record = Record::new(
            "ams-1",
            "dns",
            "0.1.0",
            RecordUpdate {
                state: RecordState::Held,
                reason: Some("answer mismatch".into()),
                targets: vec!["anycast_dns_degraded".into()],
                since: 1_700_000_000,
            },
        );
        let json = serde_json::to_string(&record).expect("encode");
        assert_eq!(
            json,
            r#"{"node":"ams-1","service":"dns","state":"held","reason":"answer mismatch","targets":["anycast_dns_degraded"],"since":1700000000,"version":"0.1.0"}"#
        );
        assert_eq!(
            serde_json::from_str::<Record>(&json).expect("decode"),
            record
        );
        let future: Record =
            serde_json::from_str(r#"{"node":"a","service":"dns","state":"quarantined"}"#)
                .expect("decode");
        assert_eq!(future.state, RecordState::Unknown);
        assert!(!future.state.announces());
        assert!(RecordState::Up.announces() && RecordState::Degraded.announces());
        assert!(!RecordState::Down.announces() && !RecordState::Drained.announces());
        assert!(!RecordState::Starting.announces());
    }
}
