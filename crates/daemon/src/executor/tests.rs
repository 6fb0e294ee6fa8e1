//! The executor's own duties, with an in-memory backend on tokio's paused clock: that it performs what
//! the book asks, publishes the report, the missing set and the route metrics, signals the first pass,
//! listens to nudges, new tables and shutdown, and records the event log. The decisions themselves are
//! tested deterministically in `routes/book/tests.rs`.

use std::collections::HashMap;
use std::sync::Mutex;

use nsbeacon_routing::{PeerExport, PeerSession, RoutingError, Timed};

use super::*;
use crate::routes::fixtures::{proto, table};
use RouteState::{Announced, Withdrawn};

/// An in-memory BGP daemon: records every call, can reject every set.
#[derive(Default)]
struct FakeBackend {
    state: Mutex<HashMap<RouteTarget, RouteState>>,
    calls: Mutex<Vec<String>>,
    fail_sets: AtomicBool,
    /// What `exports` answers for every target; `None`: unsupported (the trait's default answer).
    peers: Mutex<Option<Vec<PeerExport>>>,
}

impl FakeBackend {
    fn actual(&self, t: &RouteTarget) -> Option<RouteState> {
        self.state.lock().expect("lock").get(t).copied()
    }
    fn force(&self, t: &RouteTarget, s: RouteState) {
        self.state.lock().expect("lock").insert(t.clone(), s);
    }
    fn calls(&self) -> Vec<String> {
        self.calls.lock().expect("lock").clone()
    }
}

impl RoutingBackend for FakeBackend {
    fn name(&self) -> &'static str {
        "fake"
    }

    async fn set(
        &self,
        target: &RouteTarget,
        state: RouteState,
    ) -> Result<Timed<()>, RoutingError> {
        self.calls
            .lock()
            .expect("lock")
            .push(format!("set {target} {}", state.as_str()));
        if self.fail_sets.load(Ordering::SeqCst) {
            return Err(RoutingError::UnsupportedTarget {
                target: target.to_string(),
                backend: "fake",
            });
        }
        self.force(target, state);
        Ok(Timed {
            value: (),
            elapsed: Duration::from_micros(100),
        })
    }

    async fn read(&self, target: &RouteTarget) -> Result<Timed<TargetStatus>, RoutingError> {
        self.calls
            .lock()
            .expect("lock")
            .push(format!("read {target}"));
        let state = *self
            .state
            .lock()
            .expect("lock")
            .entry(target.clone())
            .or_insert(Announced);
        Ok(Timed {
            value: TargetStatus {
                state,
                detail: state.as_str().to_owned(),
            },
            elapsed: Duration::from_micros(100),
        })
    }

    async fn health(&self) -> BackendHealth {
        BackendHealth {
            reachable: true,
            daemon_version: Some("fake 1".into()),
            ..BackendHealth::default()
        }
    }

    async fn exports(&self, _target: &RouteTarget) -> Result<Timed<Vec<PeerExport>>, RoutingError> {
        match self.peers.lock().expect("lock").clone() {
            Some(peers) => Ok(Timed {
                value: peers,
                elapsed: Duration::from_micros(100),
            }),
            None => Err(RoutingError::ExportsUnsupported { backend: "fake" }),
        }
    }
}

fn fake_peer(name: &str, exported: bool) -> PeerExport {
    PeerExport {
        session: PeerSession {
            peer: name.to_owned(),
            established: true,
            state: "Established".to_owned(),
            bfd: None,
        },
        exported,
    }
}

fn exports_of(h: &Harness, target: &str) -> Option<crate::status::ExportsReport> {
    h.report
        .borrow()
        .targets
        .iter()
        .find(|t| t.id.target == target)
        .and_then(|t| t.exports.clone())
}

fn series(metrics: &Metrics, family: &str) -> Vec<(Vec<String>, f64)> {
    metrics
        .registry()
        .gather()
        .into_iter()
        .filter(|f| f.name() == family)
        .flat_map(|f| {
            f.get_metric()
                .iter()
                .map(|m| {
                    (
                        m.get_label().iter().map(|l| l.value().to_owned()).collect(),
                        m.get_gauge().get_value(),
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn exports_of_announced_targets_are_published_per_peer_and_go_with_the_announcement() {
    let backend = Arc::new(FakeBackend::default());
    *backend.peers.lock().expect("lock") = Some(vec![
        fake_peer("upstream1", true),
        fake_peer("upstream2", false),
    ]);
    let h = start_with(
        table(&[("main", Announced)]),
        Duration::from_secs(60),
        None,
        backend,
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    match exports_of(&h, "main") {
        Some(crate::status::ExportsReport::Known {
            exported_to,
            peers_total,
            ..
        }) => assert_eq!((exported_to, peers_total), (1, 2)),
        other => panic!("exports of main: {other:?}"),
    }
    assert_eq!(
        gauge(&h.metrics, "nsbeacon_route_exported_peers", "main"),
        Some(1.0)
    );
    assert_eq!(
        gauge(&h.metrics, "nsbeacon_route_export_peers", "main"),
        Some(2.0)
    );
    let mut per_peer = series(&h.metrics, "nsbeacon_route_exported");
    per_peer.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        per_peer,
        vec![
            // Label values in label-name order: kind, peer, target.
            (
                vec!["bird_protocol".into(), "upstream1".into(), "main".into()],
                1.0
            ),
            (
                vec!["bird_protocol".into(), "upstream2".into(), "main".into()],
                0.0
            ),
        ]
    );
    // The filter starts rejecting: the next interval's read says 0 peers.
    *h.backend.peers.lock().expect("lock") = Some(vec![
        fake_peer("upstream1", false),
        fake_peer("upstream2", false),
    ]);
    tokio::time::sleep(Duration::from_secs(61)).await;
    assert_eq!(
        gauge(&h.metrics, "nsbeacon_route_exported_peers", "main"),
        Some(0.0)
    );
    // Withdrawn: nothing to export, no exports in the report, no series.
    h.desired.send(table(&[("main", Withdrawn)])).expect("send");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(exports_of(&h, "main"), None);
    assert!(series(&h.metrics, "nsbeacon_route_exported").is_empty());
    assert_eq!(
        gauge(&h.metrics, "nsbeacon_route_exported_peers", "main"),
        None
    );
    h.shutdown.cancel();
    h.task.await.expect("ends").expect("withdrawn at shutdown");
}

#[tokio::test(start_paused = true)]
async fn a_backend_that_cannot_read_exports_is_unknown_never_zero_peers() {
    let h = start(table(&[("main", Announced)]), Duration::from_secs(60), None);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        matches!(
            exports_of(&h, "main"),
            Some(crate::status::ExportsReport::Unknown { ref reason, .. }) if reason.contains("cannot read")
        ),
        "{:?}",
        exports_of(&h, "main")
    );
    assert_eq!(
        gauge(&h.metrics, "nsbeacon_route_exported_peers", "main"),
        None
    );
    assert!(series(&h.metrics, "nsbeacon_route_exported").is_empty());
    h.shutdown.cancel();
    h.task.await.expect("ends").expect("withdrawn at shutdown");
}

struct Harness {
    backend: Arc<FakeBackend>,
    nudge: Arc<Notify>,
    desired: watch::Sender<DesiredTable>,
    report: watch::Receiver<RoutingReport>,
    first_pass: Option<oneshot::Receiver<()>>,
    metrics: Metrics,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), ShutdownWithdrawalFailed>>,
}

fn start(table: DesiredTable, interval: Duration, event_log: Option<PathBuf>) -> Harness {
    let backend = Arc::new(FakeBackend::default());
    start_with(table, interval, event_log, backend)
}

fn start_with(
    table: DesiredTable,
    interval: Duration,
    event_log: Option<PathBuf>,
    backend: Arc<FakeBackend>,
) -> Harness {
    let (desired, rx) = watch::channel(table);
    let nudge = Arc::new(Notify::new());
    let metrics = Metrics::new().expect("metrics");
    let settings = ExecutorSettings {
        backend_kind: "fake",
        interval,
        withdraw_on_shutdown: Arc::new(AtomicBool::new(true)),
        nudge: nudge.clone(),
        missing: Arc::new(watch::channel(HashSet::new()).0),
        event_log,
    };
    let (executor, handles) = RouteExecutor::new(backend.clone(), settings, rx, metrics.clone());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(executor.run(shutdown.clone()));
    Harness {
        backend,
        nudge,
        desired,
        report: handles.report,
        first_pass: Some(handles.first_pass),
        metrics,
        shutdown,
        task,
    }
}

/// Lets the executor run until it waits (the paused clock advances only when every task is idle).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

fn gauge(metrics: &Metrics, family: &str, target: &str) -> Option<f64> {
    metrics
        .registry()
        .gather()
        .into_iter()
        .find(|f| f.name() == family)
        .and_then(|f| {
            f.get_metric()
                .iter()
                .find(|m| m.get_label().iter().any(|l| l.value() == target))
                .map(|m| m.get_gauge().get_value())
        })
}

#[tokio::test(start_paused = true)]
async fn the_first_pass_withdraws_a_stale_announcement_publishes_and_signals() {
    let backend = Arc::new(FakeBackend::default());
    backend.force(&proto("main"), Announced);
    let mut h = start_with(
        table(&[("main", Withdrawn)]),
        Duration::from_secs(60),
        None,
        backend,
    );
    h.first_pass
        .take()
        .expect("receiver")
        .await
        .expect("first pass signalled");
    assert_eq!(h.backend.actual(&proto("main")), Some(Withdrawn));
    let report = h.report.borrow().clone();
    assert!(report.first_pass_done);
    assert!(report.last_reconcile_unix.is_some());
    assert_eq!(report.targets.len(), 1);
    assert_eq!(
        gauge(&h.metrics, "nsbeacon_route_desired_announced", "main"),
        Some(0.0)
    );
    assert_eq!(
        gauge(&h.metrics, "nsbeacon_route_actual_announced", "main"),
        Some(0.0)
    );
    h.shutdown.cancel();
    h.task
        .await
        .expect("ends")
        .expect("every target withdrawn at shutdown");
}

#[tokio::test(start_paused = true)]
async fn a_new_table_and_a_nudge_are_acted_on_and_orphan_metrics_go_away() {
    let mut two = table(&[("main", Announced)]);
    two.insert("other".into(), vec![(proto("other"), Announced)]);
    let h = start(two, Duration::from_secs(3600), None);
    settle().await;
    assert_eq!(
        gauge(&h.metrics, "nsbeacon_route_actual_announced", "other"),
        Some(1.0)
    );
    h.desired.send(table(&[("main", Announced)])).expect("send");
    settle().await;
    assert_eq!(h.backend.actual(&proto("other")), Some(Withdrawn));
    assert_eq!(h.report.borrow().targets.len(), 1);
    assert_eq!(
        gauge(&h.metrics, "nsbeacon_route_actual_announced", "other"),
        None
    );
    assert_eq!(
        gauge(&h.metrics, "nsbeacon_route_desired_announced", "other"),
        None
    );
    // `birdc configure` disabled main; a nudge repairs it long before the hour-long interval.
    h.backend.force(&proto("main"), Withdrawn);
    h.nudge.notify_one();
    settle().await;
    assert_eq!(h.backend.actual(&proto("main")), Some(Announced));
    let drift = h
        .metrics
        .registry()
        .gather()
        .into_iter()
        .find(|f| f.name() == "nsbeacon_route_drift_total")
        .map(|f| f.get_metric()[0].get_counter().get_value());
    assert_eq!(drift, Some(1.0));
    h.shutdown.cancel();
    h.task
        .await
        .expect("ends")
        .expect("every target withdrawn at shutdown");
    assert_eq!(h.backend.actual(&proto("main")), Some(Withdrawn));
}

#[tokio::test(start_paused = true)]
async fn the_interval_reads_everything_back() {
    let h = start(table(&[("main", Announced)]), Duration::from_secs(2), None);
    settle().await;
    let reads = |h: &Harness| {
        h.backend
            .calls()
            .iter()
            .filter(|c| c.starts_with("read"))
            .count()
    };
    assert_eq!(reads(&h), 1);
    tokio::time::sleep(Duration::from_millis(1990)).await;
    assert_eq!(reads(&h), 1);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(reads(&h), 2);
    h.shutdown.cancel();
    h.task.await.expect("ends").expect("withdrawn");
}

#[tokio::test(start_paused = true)]
async fn a_failed_shutdown_withdrawal_names_every_target() {
    let h = start(table(&[("main", Announced)]), Duration::from_secs(60), None);
    settle().await;
    h.backend.fail_sets.store(true, Ordering::SeqCst);
    h.shutdown.cancel();
    let failed = h
        .task
        .await
        .expect("ends")
        .expect_err("sets fail, so the withdrawal fails");
    assert_eq!(failed.total, 1);
    assert!(failed.failed[0].contains("main"), "{failed}");
}

#[tokio::test(start_paused = true)]
async fn the_event_log_replays_to_the_same_steps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("events.jsonl");
    let h = start(
        table(&[("main", Announced)]),
        Duration::from_secs(1),
        Some(path.clone()),
    );
    settle().await;
    h.backend.force(&proto("main"), Withdrawn);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    h.desired.send(table(&[("main", Withdrawn)])).expect("send");
    settle().await;
    h.shutdown.cancel();
    h.task.await.expect("ends").expect("withdrawn");
    let log = std::fs::read_to_string(&path).expect("event log written");
    let mut lines = log.lines();
    let header: LogHeader = serde_json::from_str(lines.next().expect("header")).expect("header");
    assert_eq!(header.backend, "fake");
    let t0 = Instant::now();
    let mut book = RouteBook::new("fake", header.interval, t0);
    let mut count = 0;
    let mut drift = false;
    for line in lines {
        let line: LogLine = serde_json::from_str(line).expect("line parses");
        let step = book.handle(line.event, t0 + Duration::from_nanos(line.at_ns));
        drift |= step
            .notices
            .iter()
            .any(|n| matches!(n, Notice::Drift { .. }));
        assert_eq!(step, line.step);
        count += 1;
    }
    assert!(count > 10, "{log}");
    assert!(drift, "the interval read-back found the drift: {log}");
    assert!(matches!(
        serde_json::from_str::<LogLine>(log.lines().last().expect("a line"))
            .expect("parses")
            .step
            .next,
        Next::Stopped(Ok(()))
    ));
}
