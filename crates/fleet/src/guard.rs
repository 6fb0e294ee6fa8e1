//! The guard's arithmetic, kept pure so it is tested without etcd: how many other nodes must still announce,
//! and what one consistent read of a service's records says.
//!
//! The transaction that makes the decision race-free is in [`crate::member`]; see the crate docs for why it
//! is.

use std::fmt;

use crate::error::{FleetError, SettingsError};
use crate::record::Record;

/// Parts per million in a whole: fractions are kept as integers so `ceil` is exact (0.6 × 5 is 3, not 4).
const MILLION: u64 = 1_000_000;

/// How many other nodes must still announce a service after this node withdraws it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MinAnnouncing {
    /// A fixed number of other nodes.
    Count(u32),
    /// A fraction of the nodes registered for the service (this node included), rounded up; in parts per
    /// million, so the rounding is exact.
    Fraction {
        /// The fraction × 1,000,000 (0 to 1,000,000).
        ppm: u32,
    },
}

impl MinAnnouncing {
    /// A fraction in 0..=1 (e.g. 0.5), rounded to parts per million.
    pub fn fraction(value: f64) -> Result<MinAnnouncing, SettingsError> {
        if !(0.0..=1.0).contains(&value) {
            return Err(SettingsError::BadFraction(value.to_string()));
        }
        // In range, so the product is within 0..=1e6 and the cast is exact after rounding.
        let ppm = (value * MILLION as f64).round() as u32;
        Ok(MinAnnouncing::Fraction { ppm })
    }

    /// A percentage in 0..=100 (e.g. 50 for "50%").
    pub fn percent(value: u32) -> Result<MinAnnouncing, SettingsError> {
        if value > 100 {
            return Err(SettingsError::BadFraction(format!("{value}%")));
        }
        Ok(MinAnnouncing::Fraction {
            ppm: value * 10_000,
        })
    }

    /// The number of other nodes that must still announce when `registered` nodes (this one included) have
    /// a record for the service: the count, or `ceil(fraction × registered)`.
    pub fn needed(self, registered: usize) -> usize {
        match self {
            MinAnnouncing::Count(n) => usize::try_from(n).unwrap_or(usize::MAX),
            MinAnnouncing::Fraction { ppm } => {
                let registered = u64::try_from(registered).unwrap_or(u64::MAX);
                let scaled = registered.saturating_mul(u64::from(ppm));
                usize::try_from(scaled.div_ceil(MILLION)).unwrap_or(usize::MAX)
            }
        }
    }
}

impl fmt::Display for MinAnnouncing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MinAnnouncing::Count(n) => write!(f, "{n}"),
            MinAnnouncing::Fraction { ppm } => {
                let percent = f64::from(*ppm) / 10_000.0;
                write!(f, "{percent}%")
            }
        }
    }
}

/// What [`Member::try_withdraw`](crate::Member::try_withdraw) decided.
#[derive(Debug)]
pub enum GuardOutcome {
    /// The withdrawal may go ahead: the node's new record is already written, in the same transaction that
    /// checked that `announcing` other nodes announce (at least `needed`).
    Allowed {
        /// Other nodes announcing when the transaction committed (this withdrawal leaves them announcing).
        announcing: usize,
        /// How many had to.
        needed: usize,
    },
    /// The withdrawal would leave fewer than `needed` other nodes announcing: keep announcing (the daemon's
    /// `held` state) and try again when the fleet view changes. Nothing was written.
    Held {
        /// Other nodes announcing now.
        announcing: usize,
        /// How many must, after the withdrawal.
        needed: usize,
    },
    /// etcd could not answer within the bound (or the member has no lease): the daemon follows its
    /// `on_unavailable` policy. The node's record may or may not have been written; the member re-writes
    /// the last record it knows as current.
    Unavailable(FleetError),
}

/// One node's announcing record as the guard saw it: the key and the revision it was last modified at,
/// which the transaction compares so a record that changed or vanished since the read voids the decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Seen {
    pub key: String,
    pub mod_revision: i64,
}

/// One consistent read of a service's records, counted for the guard.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Tally {
    /// Nodes with a record for the service, this node included (counted even before its first record).
    pub registered: usize,
    /// The other nodes that announce, in key order.
    pub announcing: Vec<Seen>,
}

impl Tally {
    /// Counts `records`: (key, node from the key, the parsed record or `None` if malformed, mod revision).
    /// A malformed record counts as registered but not announcing, the cautious reading.
    pub fn count<'a>(
        me: &str,
        records: impl IntoIterator<Item = (&'a str, &'a str, Option<&'a Record>, i64)>,
    ) -> Tally {
        let mut tally = Tally {
            registered: 1,
            announcing: Vec::new(),
        };
        for (key, node, record, mod_revision) in records {
            if node == me {
                continue;
            }
            tally.registered += 1;
            if record.is_some_and(|r| r.state.announces()) {
                tally.announcing.push(Seen {
                    key: key.to_owned(),
                    mod_revision,
                });
            }
        }
        tally
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{RecordState, RecordUpdate};

    #[test]
    fn needed_rounds_fractions_up_exactly() {
        assert_eq!(MinAnnouncing::Count(3).needed(5), 3);
        let half = MinAnnouncing::fraction(0.5).expect("valid");
        assert_eq!(half.needed(5), 3, "ceil(2.5)");
        assert_eq!(half.needed(4), 2);
        assert_eq!(half.needed(1), 1);
        let sixty = MinAnnouncing::fraction(0.6).expect("valid");
        assert_eq!(
            sixty.needed(5),
            3,
            "0.6 x 5 is exactly 3, not 3.0000000000000004 rounded up"
        );
        assert_eq!(MinAnnouncing::percent(60).expect("valid"), sixty);
        assert_eq!(MinAnnouncing::fraction(0.0).expect("valid").needed(10), 0);
        assert!(MinAnnouncing::fraction(1.5).is_err());
        assert!(MinAnnouncing::fraction(f64::NAN).is_err());
        assert!(MinAnnouncing::percent(101).is_err());
        assert_eq!(sixty.to_string(), "60%");
        assert_eq!(MinAnnouncing::Count(2).to_string(), "2");
    }

    #[test]
    fn tally_counts_other_announcing_nodes_and_registers_self() {
        let rec = |node: &str, state| {
            Record::new(
                node,
                "dns",
                "0",
                RecordUpdate {
                    state,
                    reason: None,
                    targets: vec![],
                    since: 0,
                },
            )
        };
        let a = rec("a", RecordState::Up);
        let b = rec("b", RecordState::Held);
        let c = rec("c", RecordState::Down);
        let me = rec("me", RecordState::Up);
        let tally = Tally::count(
            "me",
            [
                ("k/a", "a", Some(&a), 5),
                ("k/b", "b", Some(&b), 6),
                ("k/c", "c", Some(&c), 7),
                ("k/d", "d", None, 8),
                ("k/me", "me", Some(&me), 9),
            ],
        );
        assert_eq!(tally.registered, 5);
        assert_eq!(
            tally.announcing,
            vec![
                Seen {
                    key: "k/a".into(),
                    mod_revision: 5
                },
                Seen {
                    key: "k/b".into(),
                    mod_revision: 6
                }
            ]
        );
        assert_eq!(Tally::count("me", []).registered, 1);
    }
}
