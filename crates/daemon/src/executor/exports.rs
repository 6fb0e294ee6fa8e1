//! The exports watch: which BGP peers receive each announced target's route, read from the BGP daemon
//! ([`RoutingBackend::exports`]) every reconcile interval and soon after the set of announced targets
//! changes, published into `/status` and the `nsbeacon_route_export*` metrics.
//!
//! It runs beside the executor's loop, not inside it, so a slow read (a stuck daemon: each read is bounded by
//! the backend timeout) never delays a withdrawal. It only reads; the route book stays the one place that
//! decides, and the backend's connection serialises the commands (a read waits for at most one command of
//! the executor's, well under a millisecond with BIRD). A backend that cannot tell answers
//! `ExportsUnsupported`, shown as unknown, never as "0 peers"; a failed read is unknown too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use nsbeacon_routing::{RouteState, RouteTarget, RoutingBackend, RoutingError};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::metrics::Metrics;
use crate::routes::TargetId;
use crate::status::{ExportsReport, RoutingReport};

/// How long after the announced targets changed the exports are read: the daemon hands a new route to its
/// BGP sessions within milliseconds; this keeps a read from racing the announcement it is meant to prove.
const SETTLE: Duration = Duration::from_millis(200);

/// The latest exports per target, shared between the watch (writer) and the executor's publish (reader).
pub(crate) type LatestExports = Arc<Mutex<HashMap<TargetId, ExportsReport>>>;

/// Puts `latest` into `report`: each target desired and read back announced gets its exports (if read
/// yet); every other target none, since a withdrawn target exports nothing worth showing.
pub(crate) fn merge_exports(report: &mut RoutingReport, latest: &HashMap<TargetId, ExportsReport>) {
    for target in &mut report.targets {
        let announced =
            target.desired == RouteState::Announced && target.actual == Some(RouteState::Announced);
        target.exports = if announced {
            latest.get(&target.id).cloned()
        } else {
            None
        };
    }
}

/// Everything the watch needs; built by the executor.
pub(crate) struct ExportsWatch<B> {
    pub backend: Arc<B>,
    pub targets: watch::Receiver<Vec<RouteTarget>>,
    pub report_tx: Arc<watch::Sender<RoutingReport>>,
    pub latest: LatestExports,
    pub metrics: Metrics,
    pub interval: Duration,
    pub backend_kind: &'static str,
}

impl<B: RoutingBackend + 'static> ExportsWatch<B> {
    /// Reads until `stop` is cancelled or the executor is gone.
    pub(crate) async fn run(mut self, stop: CancellationToken) {
        let mut published: HashMap<TargetId, Vec<String>> = HashMap::new();
        // The last failure per target, so an outage is logged once, not every interval.
        let mut failing: HashMap<TargetId, String> = HashMap::new();
        let mut next = tokio::time::Instant::now();
        loop {
            tokio::select! {
                biased;
                _ = stop.cancelled() => return,
                changed = self.targets.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(SETTLE) => {}
                    }
                }
                _ = tokio::time::sleep_until(next) => {}
            }
            let targets = self.targets.borrow_and_update().clone();
            let mut results = HashMap::new();
            for target in &targets {
                let (report, failure) = tokio::select! {
                    _ = stop.cancelled() => return,
                    read = self.read(target) => read,
                };
                let id = TargetId::of(target);
                match failure {
                    Some(error) if failing.get(&id) != Some(&error) => {
                        warn!(
                            target = %target,
                            %error,
                            "cannot read what the BGP daemon exports to its peers; shown as unknown (logged again \
                             only when the error changes)"
                        );
                        failing.insert(id.clone(), error);
                    }
                    Some(_) => {}
                    None => {
                        failing.remove(&id);
                    }
                }
                results.insert(id, report);
            }
            self.export_metrics(&results, &mut published);
            *self.latest.lock().unwrap_or_else(PoisonError::into_inner) = results.clone();
            self.report_tx
                .send_modify(|report| merge_exports(report, &results));
            next = tokio::time::Instant::now() + self.interval;
        }
    }

    /// The exports of `target`, and the error when reading failed (not for a backend that cannot tell).
    async fn read(&self, target: &RouteTarget) -> (ExportsReport, Option<String>) {
        let started = std::time::Instant::now();
        let result = self.backend.exports(target).await;
        let at_unix = crate::clock::unix_now();
        let kind = self.backend_kind;
        let failed =
            matches!(&result, Err(e) if !matches!(e, RoutingError::ExportsUnsupported { .. }));
        self.metrics
            .backend_operation_duration_seconds
            .with_label_values(&[kind, "exports"])
            .observe(started.elapsed().as_secs_f64());
        if failed {
            self.metrics
                .backend_errors_total
                .with_label_values(&[kind, "exports"])
                .inc();
        }
        match result {
            Ok(timed) => (ExportsReport::known(timed.value, at_unix), None),
            Err(RoutingError::ExportsUnsupported { backend }) => {
                debug!(target = %target, backend, "the backend cannot read its exports");
                let report = ExportsReport::Unknown {
                    reason: format!(
                        "the {backend} backend cannot read what it exports to its peers"
                    ),
                    at_unix,
                };
                (report, None)
            }
            Err(err) => {
                let reason = err.to_string();
                let report = ExportsReport::Unknown {
                    reason: reason.clone(),
                    at_unix,
                };
                (report, Some(reason))
            }
        }
    }

    /// Sets the `nsbeacon_route_export*` series of every read target, and removes the series of peers and
    /// targets that are gone or unknown (absent = unknown, never 0).
    fn export_metrics(
        &self,
        results: &HashMap<TargetId, ExportsReport>,
        published: &mut HashMap<TargetId, Vec<String>>,
    ) {
        let m = &self.metrics;
        let mut now_published: HashMap<TargetId, Vec<String>> = HashMap::new();
        for (id, report) in results {
            if let ExportsReport::Known {
                peers,
                exported_to,
                peers_total,
                ..
            } = report
            {
                let [kind, target] = id.labels();
                for peer in peers {
                    m.route_exported
                        .with_label_values(&[kind, target, &peer.session.peer])
                        .set(i64::from(peer.exported));
                }
                m.route_exported_peers
                    .with_label_values(&[kind, target])
                    .set(i64::from(*exported_to));
                m.route_export_peers
                    .with_label_values(&[kind, target])
                    .set(i64::from(*peers_total));
                now_published.insert(
                    id.clone(),
                    peers.iter().map(|p| p.session.peer.clone()).collect(),
                );
            }
        }
        for (id, peers) in published.iter() {
            let [kind, target] = id.labels();
            let still = now_published.get(id);
            for peer in peers {
                if still.is_none_or(|now| !now.contains(peer)) {
                    let _ = m.route_exported.remove_label_values(&[kind, target, peer]);
                }
            }
            if still.is_none() {
                let _ = m.route_exported_peers.remove_label_values(&[kind, target]);
                let _ = m.route_export_peers.remove_label_values(&[kind, target]);
            }
        }
        *published = now_published;
    }
}
