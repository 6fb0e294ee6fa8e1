//! Fleet membership and a withdrawal guard on etcd v3, so that health checks failing on every node at once
//! can never take a whole anycast fleet off the internet.
//!
//! The crate knows nothing of DNS or BGP: a fleet is a set of nodes, each keeping one record per service
//! (its state, a reason, the targets it announces), and the guard answers one question, "may this node stop
//! announcing this service?". The daemon maps its config onto [`FleetSettings`] and calls:
//!
//! - [`Member::start`] once: connects, grants a lease, keeps it alive, all in the background (etcd being
//!   down never holds up the daemon);
//! - [`Member::try_withdraw`] when health decides a withdrawal: [`GuardOutcome::Allowed`] (the withdrawn
//!   record is written), [`GuardOutcome::Held`] (keep announcing, retry on [`Member::changes`]) or
//!   [`GuardOutcome::Unavailable`] (etcd did not answer within `guard_timeout`: follow `on_unavailable`);
//! - [`Member::put_record`] on every other transition;
//! - [`Member::view`] or [`FleetClient::view`] for `nsbeacon fleet` and `/fleet`.
//!
//! # Keys
//!
//! `<prefix>/<fleet>/services/<service>/<node>` holds one JSON [`Record`], bound to the node's lease: a node
//! that dies stops its keep-alives and its records vanish after the lease TTL. Names are single key
//! segments (no `/`), so one service's records are one contiguous key range.
//!
//! # The guard's transaction, and why it is race-free
//!
//! A withdrawal is allowed only if, after it, at least `min_announcing` *other* nodes still announce the
//! service (a record in state up, degraded or held). `min_announcing` is a count, or a fraction of the nodes
//! registered for the service (this one included), rounded up.
//!
//! The guard reads the service's range (`.../services/<service>/`) and notes the read's revision `R`. If
//! fewer than `needed` other nodes announce, the answer is `Held` and nothing is written. Otherwise it sends
//! one transaction:
//!
//! - **if** every key in the service's range has `mod_revision < R + 1` (a compare with a `range_end`: no
//!   record of the service was created or changed since the read), **and** each of the `needed` announcing
//!   records the decision rests on still has the `mod_revision` it was read with (a deleted key compares as
//!   0, so a record that vanished by lease expiry since the read fails this too);
//! - **then** put this node's new record (lease-bound);
//! - **else** read the range again, which is the next attempt's view (no extra round trip).
//!
//! etcd applies transactions one at a time, in one order. A guard transaction commits only if the range is
//! exactly as it was read, so its decision was made on the state it commits on: the committed withdrawals
//! behave as if the nodes had decided one after another, each seeing the others' withdrawn records. When N
//! nodes fail at the same instant, all read the same view, the first transaction commits, it changes the
//! range, and every other transaction's compare fails; those re-decide on the new view. So withdrawals pass only while the others
//! still number `needed`: with 5 announcing nodes and `min_announcing = 3`, exactly 2 are allowed and 3
//! held (`tests/etcd.rs` races them). The compares on the counted records cover what the range compare cannot see (a
//! deletion leaves no key to compare): without them, a record expiring between the read and the commit
//! would be counted though gone. Only `needed` records are compared: if those still announce, the
//! withdrawal leaves `needed` announcing whatever the others do, and a deletion elsewhere only lowers the
//! registered count (so a fractional `needed` too).
//!
//! A per-service guard key that every write bumps would serialise the same way, but a lease expiry deletes
//! a record without touching such a key, so it would still need the per-record compares, and every plain
//! put would become a transaction. The range compare needs neither.
//!
//! Each lost transaction means another node's update committed, so contention always makes progress; the
//! guard tries [`GUARD_ATTEMPTS`] transactions and the whole call is bounded by `guard_timeout` (200 ms by
//! default), each etcd call by `timeout`. Past the bound the answer is `Unavailable`, never a hang: the
//! daemon's `on_unavailable` decides, and etcd being unreachable never by itself withdraws anything.

mod client;
mod error;
mod guard;
mod keys;
mod member;
mod record;
mod settings;

pub use client::{FleetClient, FleetView};
pub use error::{FleetError, SettingsError};
pub use guard::{GuardOutcome, MinAnnouncing};
pub use keys::{Keys, check_name};
pub use member::{GUARD_ATTEMPTS, MAX_GUARD_COMPARES, Member, MemberStatus};
pub use record::{Record, RecordState, RecordUpdate};
pub use settings::{
    Credentials, DEFAULT_GUARD_TIMEOUT, DEFAULT_LEASE_TTL, DEFAULT_PREFIX, DEFAULT_TIMEOUT,
    FleetSettings, TlsSettings,
};
