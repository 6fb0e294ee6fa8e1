//! The fleet crate against a real etcd (Debian `etcd-server`), started by the testkit on loopback with its
//! own data dir and killed by PID.

use std::sync::Arc;
use std::time::{Duration, Instant};

use nsbeacon_fleet::{
    FleetClient, FleetError, FleetSettings, GuardOutcome, Member, MinAnnouncing, RecordState,
    RecordUpdate,
};
use nsbeacon_testkit::Signal;
use nsbeacon_testkit::etcd::EtcdCluster;

/// Short enough that the expiry test takes a few seconds; etcd's minimum TTL with the testkit's raft
/// timings is 150 ms.
const TTL: Duration = Duration::from_secs(2);

fn settings(etcd: &EtcdCluster, fleet: &str, node: &str) -> FleetSettings {
    let mut settings = FleetSettings::new(etcd.endpoints(), fleet, node);
    settings.lease_ttl = TTL;
    settings.timeout = Duration::from_millis(500);
    settings
}

fn update(state: RecordState) -> RecordUpdate {
    RecordUpdate {
        state,
        reason: (!state.announces()).then(|| "answer mismatch".to_owned()),
        targets: if state.announces() {
            vec!["anycast_dns".to_owned()]
        } else {
            vec![]
        },
        since: 1_700_000_000,
    }
}

async fn registered(
    etcd: &EtcdCluster,
    fleet: &str,
    node: &str,
    guard_timeout: Duration,
) -> Member {
    let mut settings = settings(etcd, fleet, node);
    settings.guard_timeout = guard_timeout;
    let member = Member::start(settings).expect("valid settings");
    assert!(
        member.wait_registered(Duration::from_secs(5)).await,
        "{node} not registered: {:?}\n{}",
        *member.status().borrow(),
        etcd.logs()
    );
    member
}

async fn client(etcd: &EtcdCluster, fleet: &str) -> FleetClient {
    FleetClient::connect(settings(etcd, fleet, "viewer"))
        .await
        .expect("connect")
}

/// Polls `cond` every 50 ms for at most `timeout`.
async fn eventually<F, Fut>(timeout: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cond().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_appear_and_vanish_after_the_lease_ttl_or_at_once_on_leave() {
    let etcd = EtcdCluster::start(1);
    let viewer = client(&etcd, "ttl").await;
    let a = registered(&etcd, "ttl", "node-a", Duration::from_millis(200)).await;
    let b = registered(&etcd, "ttl", "node-b", Duration::from_millis(200)).await;
    a.put_record("dns", update(RecordState::Up))
        .await
        .expect("put a");
    b.put_record("dns", update(RecordState::Degraded))
        .await
        .expect("put b");
    let view = viewer.view().await.expect("view");
    assert_eq!(view.announcing("dns"), 2, "{view:?}");
    let record = view.service("dns").next().expect("a record");
    assert_eq!(record.node, "node-a");
    assert_eq!(record.state, RecordState::Up);
    assert_eq!(record.targets, ["anycast_dns"]);
    assert_eq!(record.since, 1_700_000_000);
    assert_eq!(record.version, env!("CARGO_PKG_VERSION"));
    assert!(view.malformed.is_empty());

    // Keep-alives keep the records past the TTL.
    tokio::time::sleep(TTL + Duration::from_millis(500)).await;
    assert_eq!(viewer.view().await.expect("view").records.len(), 2);

    // A node that dies (no more keep-alives) vanishes after the TTL, not before.
    let died = Instant::now();
    a.abandon();
    assert_eq!(viewer.view().await.expect("view").records.len(), 2);
    assert!(
        eventually(TTL + Duration::from_secs(3), || async {
            viewer.view().await.is_ok_and(|v| v.records.len() == 1)
        })
        .await,
        "node-a's record outlived its lease"
    );
    let gone_after = died.elapsed();
    assert!(
        gone_after >= TTL - Duration::from_millis(500),
        "gone after {gone_after:?}, before the TTL"
    );

    // Leaving revokes the lease: gone at once.
    b.leave().await.expect("leave");
    assert!(viewer.view().await.expect("view").records.is_empty());
}

/// Puts every member's record to `Up` and waits until the view shows them all.
async fn all_up(members: &[Arc<Member>], viewer: &FleetClient) {
    for member in members {
        member
            .put_record("dns", update(RecordState::Up))
            .await
            .expect("put up");
    }
    let view = viewer.view().await.expect("view");
    assert_eq!(view.announcing("dns"), members.len(), "{view:?}");
}

/// Every member asks to withdraw at the same instant; returns (allowed, held) and the outcomes.
async fn race(members: &[Arc<Member>], min: MinAnnouncing) -> (usize, usize, Vec<String>) {
    let barrier = Arc::new(tokio::sync::Barrier::new(members.len()));
    let tasks: Vec<_> = members
        .iter()
        .map(|member| {
            let member = member.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                member
                    .try_withdraw("dns", min, update(RecordState::Down))
                    .await
            })
        })
        .collect();
    let mut allowed = 0;
    let mut held = 0;
    let mut seen = Vec::new();
    for task in tasks {
        let outcome = task.await.expect("guard task");
        seen.push(format!("{outcome:?}"));
        match outcome {
            GuardOutcome::Allowed { .. } => allowed += 1,
            GuardOutcome::Held {
                announcing, needed, ..
            } => {
                assert!(announcing < needed, "{announcing} < {needed}");
                held += 1;
            }
            GuardOutcome::Unavailable(e) => panic!("etcd is up, yet: {e}"),
        }
    }
    (allowed, held, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_failing_at_once_with_min_three_allow_exactly_two() {
    let etcd = EtcdCluster::start(1);
    let viewer = client(&etcd, "race").await;
    let mut members = Vec::new();
    for i in 0..5 {
        // A generous bound: five contending transactions with fsyncs on a loaded machine; the bound itself
        // is tested below.
        members.push(Arc::new(
            registered(&etcd, "race", &format!("node-{i}"), Duration::from_secs(3)).await,
        ));
    }
    for round in 0..5 {
        all_up(&members, &viewer).await;
        let (allowed, held, seen) = race(&members, MinAnnouncing::Count(3)).await;
        assert_eq!((allowed, held), (2, 3), "round {round}: {seen:#?}");
        let view = viewer.view().await.expect("view");
        assert_eq!(view.announcing("dns"), 3, "round {round}: {view:?}");
    }

    // A fraction of the registered nodes (this one included), rounded up: 50% of 5 is 3.
    all_up(&members, &viewer).await;
    let half = MinAnnouncing::fraction(0.5).expect("valid");
    let (allowed, held, seen) = race(&members, half).await;
    assert_eq!((allowed, held), (2, 3), "{seen:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fractions_count_registered_nodes_and_a_dead_node_stops_counting() {
    let etcd = EtcdCluster::start(1);
    let viewer = client(&etcd, "frac").await;
    let mut members = Vec::new();
    for i in 0..4 {
        members.push(Arc::new(
            registered(&etcd, "frac", &format!("node-{i}"), Duration::from_secs(2)).await,
        ));
    }
    all_up(&members, &viewer).await;
    let half = MinAnnouncing::percent(50).expect("valid");
    // 4 registered: 2 others must still announce.
    let down = || update(RecordState::Down);
    let outcome = members[0].try_withdraw("dns", half, down()).await;
    assert!(
        matches!(
            outcome,
            GuardOutcome::Allowed {
                announcing: 3,
                needed: 2
            }
        ),
        "{outcome:?}"
    );
    let outcome = members[1].try_withdraw("dns", half, down()).await;
    assert!(
        matches!(
            outcome,
            GuardOutcome::Allowed {
                announcing: 2,
                needed: 2
            }
        ),
        "{outcome:?}"
    );
    let outcome = members[2].try_withdraw("dns", half, down()).await;
    assert!(
        matches!(
            outcome,
            GuardOutcome::Held {
                announcing: 1,
                needed: 2
            }
        ),
        "{outcome:?}"
    );
    // Held wrote nothing: node-2 still announces.
    assert_eq!(viewer.view().await.expect("view").announcing("dns"), 2);

    // A held node learns of changes in the fleet view.
    let mut changes = members[2].changes("dns");
    changes.mark_unchanged();
    members[3]
        .put_record("dns", update(RecordState::Degraded))
        .await
        .expect("put");
    tokio::time::timeout(Duration::from_secs(2), changes.changed())
        .await
        .expect("a change within 2 s")
        .expect("the member is alive");

    // A count of 0 always allows.
    let outcome = members[2]
        .try_withdraw("dns", MinAnnouncing::Count(0), down())
        .await;
    assert!(
        matches!(outcome, GuardOutcome::Allowed { .. }),
        "{outcome:?}"
    );

    // Node-3 dies: after its TTL it is neither registered nor announcing, so node-0 coming back and then
    // failing again is held by a count of 1 (nobody else announces).
    members[0]
        .put_record("dns", update(RecordState::Up))
        .await
        .expect("put");
    let dead = members.pop().expect("four members");
    match Arc::try_unwrap(dead) {
        Ok(member) => member.abandon(),
        Err(_) => panic!("no other handle on node-3"),
    }
    assert!(
        eventually(TTL + Duration::from_secs(3), || async {
            viewer.view().await.is_ok_and(|v| v.records.len() == 3)
        })
        .await
    );
    let outcome = members[0]
        .try_withdraw("dns", MinAnnouncing::Count(1), down())
        .await;
    assert!(
        matches!(
            outcome,
            GuardOutcome::Held {
                announcing: 0,
                needed: 1
            }
        ),
        "{outcome:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_etcd_makes_the_guard_unavailable_within_its_bound() {
    let mut etcd = EtcdCluster::start(1);
    let a = registered(&etcd, "down", "node-a", Duration::from_millis(200)).await;
    let b = registered(&etcd, "down", "node-b", Duration::from_millis(200)).await;
    a.put_record("dns", update(RecordState::Up))
        .await
        .expect("put");
    b.put_record("dns", update(RecordState::Up))
        .await
        .expect("put");

    // etcd hangs (SIGSTOP: connections stay open, nothing answers): the bound ends the wait.
    assert!(etcd.signal_member(0, Signal::SIGSTOP));
    let started = Instant::now();
    let outcome = a
        .try_withdraw("dns", MinAnnouncing::Count(1), update(RecordState::Down))
        .await;
    let took = started.elapsed();
    assert!(
        matches!(
            outcome,
            GuardOutcome::Unavailable(FleetError::GuardTimeout { .. })
        ),
        "{outcome:?}"
    );
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert!(etcd.signal_member(0, Signal::SIGCONT));

    // etcd dead (SIGKILL: connections refused).
    tokio::task::block_in_place(|| etcd.kill_member(0));
    let started = Instant::now();
    let outcome = a
        .try_withdraw("dns", MinAnnouncing::Count(1), update(RecordState::Down))
        .await;
    let took = started.elapsed();
    assert!(
        matches!(outcome, GuardOutcome::Unavailable(_)),
        "{outcome:?}"
    );
    assert!(took < Duration::from_secs(1), "took {took:?}");
    let started = Instant::now();
    let put = b.put_record("dns", update(RecordState::Degraded)).await;
    assert!(put.is_err(), "{put:?}");
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_re_register_after_etcd_restarts_or_loses_its_data() {
    let mut etcd = EtcdCluster::start(1);
    let a = registered(&etcd, "restart", "node-a", Duration::from_millis(500)).await;
    a.put_record("dns", update(RecordState::Up))
        .await
        .expect("put");
    let viewer = client(&etcd, "restart").await;

    // A restart on the same data dir: the lease and the record survive, the member keeps going.
    tokio::task::block_in_place(|| etcd.restart_member(0));
    assert!(
        eventually(Duration::from_secs(5), || async {
            viewer.view().await.is_ok_and(|v| v.announcing("dns") == 1)
        })
        .await
    );
    // The record is still kept alive after the restart (past a TTL).
    tokio::time::sleep(TTL + Duration::from_millis(500)).await;
    assert_eq!(viewer.view().await.expect("view").announcing("dns"), 1);
    assert!(a.wait_registered(Duration::from_secs(3)).await);

    // A record written while etcd is down is written once it is back.
    tokio::task::block_in_place(|| etcd.kill_member(0));
    let failed = a.put_record("dns", update(RecordState::Degraded)).await;
    assert!(failed.is_err(), "{failed:?}");

    // etcd loses its data (a fresh cluster on the same ports): the member grants a new lease and writes
    // its record again, the latest one.
    let lease_before = a.status().borrow().lease;
    tokio::task::block_in_place(|| etcd.wipe_member(0));
    assert!(
        eventually(Duration::from_secs(8), || async {
            viewer
                .view()
                .await
                .is_ok_and(|v| v.records.len() == 1 && v.records[0].state == RecordState::Degraded)
        })
        .await,
        "record not re-registered: {:?}\n{}",
        *a.status().borrow(),
        etcd.logs()
    );
    // The member writes its records before it makes the new lease visible (so a guard never runs on a
    // lease whose records are old): the record can be seen a moment before the status says registered.
    assert!(a.wait_registered(Duration::from_secs(3)).await);
    let status = a.status().borrow().clone();
    assert!(status.reachable, "{status:?}");
    assert_ne!(status.lease, lease_before, "a new lease");
    assert!(status.lease.is_some());
}
