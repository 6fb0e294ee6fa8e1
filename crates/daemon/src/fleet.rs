//! The daemon's side of the fleet guard (`[fleet]`): this node's etcd member, one record writer per
//! service, and the fleet view for `/fleet`, `nsbeacon fleet` and the `nsbeacon_fleet_*` metrics.
//!
//! The decisions live in health ([`crate::health::GuardPolicy`], pure); the etcd engine, the lease and the
//! race-free guard transaction live in the `nsbeacon-fleet` crate. This module only carries questions and
//! answers between them:
//!
//! - each service task owns a [`ServiceFleet`]: it sends its record (state and announced targets) whenever
//!   they change, and the guard question when health asks one; a writer task performs both in order
//!   (a record change before a question, so etcd never gets an older record after a newer one) and sends
//!   the guard's answer back;
//! - [`Fleet::view_task`] re-reads every node's records whenever etcd reports a change (and every
//!   [`VIEW_REFRESH`]), for `/fleet` and the gauges.
//!
//! etcd being slow or unreachable never holds up a service task: every call is bounded (the guard by
//! `guard_timeout`, the rest by `timeout`), a failed record write is retried by the member's session task,
//! and health follows `on_unavailable` when the guard cannot answer.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use nsbeacon_fleet::{
    Credentials, FleetError, FleetSettings, FleetView, GuardOutcome, Member, MinAnnouncing,
    RecordState, RecordUpdate, TlsSettings,
};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::{self, FleetConfig, ServiceConfig};
use crate::file::{self, FileError};
use crate::health::{GuardAnswer, GuardPolicy, ServiceState};
use crate::metrics::Metrics;

/// The fleet view is read again at least this often, even without a change event (lease expiries of
/// nodes whose watch events were missed, a reconnect).
pub const VIEW_REFRESH: Duration = Duration::from_secs(5);

/// A burst of changes (several nodes failing at once) is read as one view after this pause.
const VIEW_DEBOUNCE: Duration = Duration::from_millis(50);

/// Largest PEM or password file read for etcd's TLS and authentication.
const SECRET_FILE_LIMIT: u64 = 1024 * 1024;

/// Why the fleet member could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum FleetSetupError {
    /// A TLS or password file could not be read.
    #[error("[fleet]: {0}")]
    File(#[from] FileError),
    /// The password file is empty.
    #[error("[fleet] password_file {0} is empty: put the etcd user's password on its first line")]
    EmptyPassword(String),
    /// The settings were refused by the fleet crate.
    #[error("[fleet]: {0}")]
    Member(#[from] FleetError),
}

/// The fleet crate's settings for this config: TLS material and the password are read here (bounded).
pub fn settings(config: &FleetConfig) -> Result<FleetSettings, FleetSetupError> {
    let mut settings = FleetSettings::new(config.endpoints.clone(), &config.name, &config.node);
    settings.prefix = config.prefix.clone();
    settings.lease_ttl = config.lease_ttl;
    settings.timeout = config.timeout;
    settings.guard_timeout = config.guard_timeout;
    let pem = |path: &Option<std::path::PathBuf>| -> Result<Option<String>, FileError> {
        path.as_deref()
            .map(|p| file::read_text(p, SECRET_FILE_LIMIT, "PEM file"))
            .transpose()
    };
    if let Some(tls) = &config.tls {
        settings.tls = Some(TlsSettings {
            ca_pem: pem(&tls.ca_file)?,
            cert_pem: pem(&tls.cert_file)?,
            key_pem: pem(&tls.key_file)?,
        });
    }
    if let Some(auth) = &config.auth {
        let text = file::read_text(&auth.password_file, SECRET_FILE_LIMIT, "password file")?;
        let password = text.lines().next().unwrap_or("").trim_end().to_owned();
        if password.is_empty() {
            return Err(FleetSetupError::EmptyPassword(
                auth.password_file.display().to_string(),
            ));
        }
        settings.auth = Some(Credentials {
            user: auth.user.clone(),
            password,
        });
    }
    Ok(settings)
}

/// The fleet crate's `min_announcing` for a config value.
pub fn min_announcing(min: config::MinAnnouncing) -> MinAnnouncing {
    match min {
        config::MinAnnouncing::Count(n) => MinAnnouncing::Count(n),
        config::MinAnnouncing::Fraction { ppm } => MinAnnouncing::Fraction { ppm },
    }
}

/// Health's guard policy for `fleet`.
pub fn policy(fleet: &FleetConfig) -> GuardPolicy {
    GuardPolicy {
        all_failures: fleet.guard_all_failures,
        on_unavailable: fleet.on_unavailable,
    }
}

/// The record state for a service state.
pub fn record_state(state: ServiceState) -> RecordState {
    match state {
        ServiceState::Starting => RecordState::Starting,
        ServiceState::Up => RecordState::Up,
        ServiceState::Degraded => RecordState::Degraded,
        ServiceState::Held => RecordState::Held,
        ServiceState::Down => RecordState::Down,
        ServiceState::Drained => RecordState::Drained,
    }
}

/// What `/fleet` serves: the last view read from etcd, or why there is none.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct FleetReport {
    /// The fleet's name.
    pub fleet: String,
    /// This node's name in it.
    pub node: String,
    /// Whether this node holds its lease and etcd answered its last call.
    pub etcd_up: bool,
    /// The member's last etcd error, if any.
    pub etcd_error: Option<String>,
    /// When the view was read (Unix seconds); 0 if never.
    pub read_unix: u64,
    /// Every node's record, ordered by service then node.
    pub records: Vec<nsbeacon_fleet::Record>,
}

/// This node's membership: the etcd member and what it last read.
pub struct Fleet {
    member: Arc<Member>,
    config: FleetConfig,
    report: Arc<RwLock<FleetReport>>,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("fleet", &self.config.name)
            .field("node", &self.config.node)
            .finish_non_exhaustive()
    }
}

impl Fleet {
    /// Starts the member (connects and registers in the background: etcd being down never holds up the
    /// start). Call inside the runtime.
    pub fn start(config: &FleetConfig) -> Result<Fleet, FleetSetupError> {
        let member = Member::start(settings(config)?)?;
        info!(fleet = %config.name, node = %config.node, endpoints = ?config.endpoints, "fleet guard on: joining the fleet through etcd");
        Ok(Fleet {
            member: Arc::new(member),
            report: Arc::new(RwLock::new(FleetReport {
                fleet: config.name.clone(),
                node: config.node.clone(),
                ..FleetReport::default()
            })),
            config: config.clone(),
        })
    }

    /// The config the member runs with (a change of `[fleet]` other than per-service keys needs a
    /// restart).
    pub fn config(&self) -> &FleetConfig {
        &self.config
    }

    /// The last view, for `/fleet`.
    pub fn report(&self) -> Arc<RwLock<FleetReport>> {
        self.report.clone()
    }

    /// The link a service task uses, with its writer task.
    pub fn service(&self, service: &ServiceConfig, metrics: &Metrics) -> ServiceFleet {
        ServiceFleet::start(self.member.clone(), &self.config, service, metrics)
    }

    /// Reads the fleet view whenever one of `services` changes in etcd (debounced), at least every
    /// [`VIEW_REFRESH`], and whenever the member's connection changes; exports the gauges and keeps the
    /// report for `/fleet`. Runs until `stop`.
    pub fn view_task(
        &self,
        services: Vec<(String, MinAnnouncing)>,
        metrics: Metrics,
        stop: CancellationToken,
    ) -> JoinHandle<()> {
        let member = self.member.clone();
        let report = self.report.clone();
        tokio::spawn(async move {
            let mut status = member.status();
            let (any_change, mut changed) = watch::channel(());
            let forwarders: Vec<JoinHandle<()>> = services
                .iter()
                .map(|(name, _)| {
                    let mut changes = member.changes(name);
                    let tx = any_change.clone();
                    tokio::spawn(async move {
                        while changes.changed().await.is_ok() {
                            tx.send_replace(());
                        }
                    })
                })
                .collect();
            loop {
                let up = {
                    let s = status.borrow_and_update();
                    s.reachable && s.lease.is_some()
                };
                metrics
                    .fleet_backend_up
                    .with_label_values::<&str>(&[])
                    .set(i64::from(up));
                match member.view().await {
                    Ok(view) => publish_view(&view, &services, &metrics, &report, &status.borrow()),
                    Err(e) => {
                        debug!(error = %e, "fleet view not read");
                        let mut r = report.write().unwrap_or_else(PoisonError::into_inner);
                        r.etcd_up = false;
                        r.etcd_error = Some(e.to_string());
                    }
                }
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(VIEW_REFRESH) => {}
                    _ = status.changed() => {}
                    _ = changed.changed() => tokio::time::sleep(VIEW_DEBOUNCE).await,
                }
            }
            for forwarder in forwarders {
                forwarder.abort();
            }
        })
    }

    /// Deletes this node's record of a service a reload removed (bounded by the call timeout; if etcd does
    /// not answer, the member's session task deletes it later).
    pub async fn remove_service(&self, service: &str) {
        match self.member.remove_record(service).await {
            Ok(()) => info!(service, "fleet record of the removed service deleted"),
            Err(e) => {
                warn!(service, error = %e, "fleet record of the removed service not deleted yet; retried when etcd answers")
            }
        }
    }

    /// Leaves the fleet (revokes the lease, bounded by the call timeout): this node's records vanish at
    /// once, so the others stop counting it. At shutdown.
    pub async fn leave(self) {
        let member = match Arc::try_unwrap(self.member) {
            Ok(member) => member,
            Err(shared) => {
                // A writer task still holds it (it ends with its service): let the lease expire instead.
                warn!(
                    "fleet: a service still holds the member; its records expire after the lease TTL"
                );
                drop(shared);
                return;
            }
        };
        match member.leave().await {
            Ok(()) => info!("left the fleet: this node's records are gone"),
            Err(e) => {
                warn!(error = %e, "leaving the fleet failed; this node's records expire after the lease TTL")
            }
        }
    }
}

/// Every record of `view`, ordered by service, then node: how `/fleet` and `nsbeacon fleet` list them.
pub fn sorted_records(view: &FleetView) -> Vec<nsbeacon_fleet::Record> {
    let mut records: Vec<nsbeacon_fleet::Record> = view
        .services()
        .into_iter()
        .flat_map(|service| view.service(service).cloned().collect::<Vec<_>>())
        .collect();
    records.sort_by(|a, b| (&a.service, &a.node).cmp(&(&b.service, &b.node)));
    records
}

/// Exports one view and keeps it for `/fleet`.
fn publish_view(
    view: &FleetView,
    services: &[(String, MinAnnouncing)],
    metrics: &Metrics,
    report: &RwLock<FleetReport>,
    status: &nsbeacon_fleet::MemberStatus,
) {
    for (name, min) in services {
        let mut counts = std::collections::BTreeMap::new();
        for record in view.service(name) {
            *counts.entry(record.state.as_str()).or_insert(0_i64) += 1;
        }
        for state in [
            RecordState::Starting,
            RecordState::Up,
            RecordState::Degraded,
            RecordState::Held,
            RecordState::Down,
            RecordState::Drained,
            RecordState::Unknown,
        ] {
            let n = counts.get(state.as_str()).copied().unwrap_or(0);
            metrics
                .fleet_nodes
                .with_label_values(&[name, state.as_str()])
                .set(n);
        }
        let registered = view.service(name).count();
        metrics
            .fleet_min_announcing
            .with_label_values(&[name])
            .set(i64::try_from(min.needed(registered)).unwrap_or(i64::MAX));
    }
    let records = sorted_records(view);
    let mut r = report.write().unwrap_or_else(PoisonError::into_inner);
    r.records = records;
    r.read_unix = crate::clock::unix_now_secs();
    r.etcd_up = status.reachable && status.lease.is_some();
    r.etcd_error = status.last_error.clone();
}

/// What [`ServiceFleet::next_event`] brings the service task.
#[derive(Debug)]
pub enum FleetEvent {
    /// The answer to the guard question out.
    Answer(GuardAnswer),
    /// The fleet may look different: a held service asks again.
    Changed,
}

/// A guard question from a service task: the withdrawn record to write if allowed, and when the
/// service stops waiting for the answer.
#[derive(Debug)]
struct Question {
    /// Which question this is: its answer carries the number, so a late answer to an earlier question
    /// (asked before the service recovered and failed again) is never taken for the current one's.
    seq: u64,
    update: RecordUpdate,
    min: MinAnnouncing,
    deadline: Instant,
}

/// A service task's link to the fleet: its record, its guard questions and their answers, and the
/// changes of its service in etcd.
#[derive(Debug)]
pub struct ServiceFleet {
    service: String,
    min: MinAnnouncing,
    guard_timeout: Duration,
    records: watch::Sender<Option<RecordUpdate>>,
    questions: mpsc::Sender<Question>,
    answers: mpsc::Receiver<(u64, GuardAnswer)>,
    /// The number of the last question asked.
    asked: u64,
    changes: watch::Receiver<u64>,
    status: watch::Receiver<nsbeacon_fleet::MemberStatus>,
    /// The state and targets last sent (a reason change alone is not written: steady nodes cost etcd only
    /// their keep-alives).
    sent: Option<(RecordState, Vec<String>)>,
    /// When the question out must have been answered.
    deadline: Option<tokio::time::Instant>,
    writer: JoinHandle<()>,
}

impl ServiceFleet {
    fn start(
        member: Arc<Member>,
        fleet: &FleetConfig,
        service: &ServiceConfig,
        metrics: &Metrics,
    ) -> ServiceFleet {
        let (records, records_rx) = watch::channel(None);
        let (questions, questions_rx) = mpsc::channel(4);
        let (answers_tx, answers) = mpsc::channel(4);
        let changes = member.changes(&service.name);
        let status = member.status();
        let writer = tokio::spawn(write_records(
            member,
            service.name.clone(),
            records_rx,
            questions_rx,
            answers_tx,
            metrics.clone(),
        ));
        ServiceFleet {
            service: service.name.clone(),
            min: min_announcing(fleet.min_announcing(service)),
            guard_timeout: fleet.guard_timeout,
            records,
            questions,
            answers,
            asked: 0,
            changes,
            status,
            sent: None,
            deadline: None,
            writer,
        }
    }

    /// A reload changed the service's `min_announcing`: the next question uses it. No route changes.
    pub fn set_min_announcing(&mut self, min: config::MinAnnouncing) {
        self.min = min_announcing(min);
    }

    /// Sends the service's record if its state or announced targets changed since the last one. Not while
    /// a guard question is out: the guard's transaction writes the withdrawn record if it allows, and a
    /// record sent meanwhile (the unchanged state, kept while asking) would be written after it and undo
    /// it, making the other nodes count this one as announcing after it withdrew.
    pub fn publish(&mut self, state: ServiceState, reason: &str, targets: Vec<String>) {
        if self.deadline.is_some() {
            return;
        }
        let record_state = record_state(state);
        if self
            .sent
            .as_ref()
            .is_some_and(|(s, t)| *s == record_state && *t == targets)
        {
            return;
        }
        self.sent = Some((record_state, targets.clone()));
        self.records.send_replace(Some(RecordUpdate {
            state: record_state,
            reason: (!reason.is_empty()).then(|| reason.to_owned()),
            targets,
            since: crate::clock::unix_now_secs(),
        }));
    }

    /// Sends health's guard question (the withdrawal of the service, with `reason`). The answer arrives
    /// through [`Self::answer`], within `guard_timeout` (plus a little slack for the writer).
    pub fn ask(&mut self, reason: &str) {
        let now = Instant::now();
        self.asked = self.asked.wrapping_add(1);
        let question = Question {
            seq: self.asked,
            update: RecordUpdate {
                state: RecordState::Down,
                reason: Some(reason.to_owned()),
                targets: Vec::new(),
                since: crate::clock::unix_now_secs(),
            },
            min: self.min,
            deadline: now + self.guard_timeout,
        };
        // If the guard allows, its transaction writes exactly this state and targets.
        self.sent = Some((RecordState::Down, Vec::new()));
        self.deadline = Some(tokio::time::Instant::from_std(
            now + self.guard_timeout + Duration::from_millis(50),
        ));
        if self.questions.try_send(question).is_err() {
            // The writer is gone or stuck with questions: the deadline answers "unavailable".
            debug!(service = %self.service, "fleet guard question not queued");
        }
    }

    /// The next event for the service task: the answer to the question out (the guard's, or
    /// "unavailable" when the deadline passes first), or a change of the fleet (a record of this service
    /// changed in etcd, any node's, lease expiries too; or this node's connection to etcd changed), on
    /// which a held service asks again.
    pub async fn next_event(&mut self) -> FleetEvent {
        let guard_timeout = self.guard_timeout;
        let deadline = self.deadline;
        let asked = self.asked;
        let answers = &mut self.answers;
        let answer = async {
            let Some(deadline) = deadline else {
                return std::future::pending().await;
            };
            let current = async {
                loop {
                    match answers.recv().await {
                        Some((seq, answer)) if seq == asked => return answer,
                        // A late answer to an earlier question: its decision was made for a state
                        // the service has left.
                        Some(_) => continue,
                        None => {
                            return GuardAnswer::Unavailable {
                                error: "the fleet writer task ended".to_owned(),
                            };
                        }
                    }
                }
            };
            tokio::select! {
                answer = current => answer,
                _ = tokio::time::sleep_until(deadline) => GuardAnswer::Unavailable {
                    error: format!("no answer within guard_timeout ({})", config::fmt_duration(guard_timeout)),
                },
            }
        };
        let changes = &mut self.changes;
        let status = &mut self.status;
        let changed = async {
            tokio::select! {
                r = changes.changed() => if r.is_err() { std::future::pending::<()>().await },
                r = status.changed() => if r.is_err() { std::future::pending::<()>().await },
            }
        };
        let event = tokio::select! {
            answer = answer => FleetEvent::Answer(answer),
            () = changed => FleetEvent::Changed,
        };
        if let FleetEvent::Answer(answer) = &event {
            self.deadline = None;
            if matches!(answer, GuardAnswer::Unavailable { .. }) {
                // The withdrawn record may or may not be in etcd: write whatever comes next.
                self.sent = None;
            }
        }
        event
    }

    /// Stops the writer task and waits for it to end, so that the member can leave the fleet (the
    /// member's session task still writes a record that etcd did not take).
    pub async fn stop(self) {
        self.writer.abort();
        let _ = self.writer.await;
    }
}

/// One service's writer: record changes and guard questions, in order, each bounded.
async fn write_records(
    member: Arc<Member>,
    service: String,
    mut records: watch::Receiver<Option<RecordUpdate>>,
    mut questions: mpsc::Receiver<Question>,
    answers: mpsc::Sender<(u64, GuardAnswer)>,
    metrics: Metrics,
) {
    loop {
        tokio::select! {
            biased;
            changed = records.changed() => {
                if changed.is_err() {
                    return;
                }
                let update = records.borrow_and_update().clone();
                if let Some(update) = update
                    && let Err(e) = member.put_record(&service, update).await
                {
                    debug!(service = %service, error = %e, "fleet record not written now; the member writes it when etcd answers");
                }
            }
            question = questions.recv() => {
                let Some(question) = question else { return };
                let started = Instant::now();
                let Some(left) = question.deadline.checked_duration_since(started) else {
                    // The service stopped waiting: do not write a withdrawn record it no longer wants.
                    continue;
                };
                let outcome = match tokio::time::timeout(
                    left,
                    member.try_withdraw(&service, question.min, question.update),
                )
                .await
                {
                    Ok(outcome) => outcome,
                    Err(_) => GuardOutcome::Unavailable(FleetError::GuardTimeout {
                        service: service.clone(),
                        bound: left,
                    }),
                };
                let (answer, label) = match outcome {
                    GuardOutcome::Allowed { announcing, needed } => {
                        (GuardAnswer::Allowed { announcing, needed }, "allowed")
                    }
                    GuardOutcome::Held { announcing, needed } => {
                        (GuardAnswer::Held { announcing, needed }, "held")
                    }
                    GuardOutcome::Unavailable(e) => {
                        // Whatever etcd holds now, the current record is written next.
                        records.mark_changed();
                        (GuardAnswer::Unavailable { error: e.to_string() }, "unavailable")
                    }
                };
                metrics
                    .fleet_guard_duration_seconds
                    .with_label_values(&[&service, label])
                    .observe(started.elapsed().as_secs_f64());
                if answers.send((question.seq, answer)).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Renders every node's record as a table, one line per (service, node), then per service how many nodes
/// announce against what `min_announcing` requires. Pure (`now` passed in) so it is tested without etcd.
pub fn render_fleet(
    config: &crate::config::Config,
    records: &[nsbeacon_fleet::Record],
    now: u64,
) -> String {
    use std::fmt::Write;
    let Some(fleet) = &config.fleet else {
        return String::new();
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "fleet {} (etcd {}): {} record(s); this node is {}",
        fleet.name,
        fleet.endpoints.join(","),
        records.len(),
        fleet.node
    );
    let rows: Vec<[String; 6]> = records
        .iter()
        .map(|r| {
            [
                r.service.clone(),
                r.node.clone(),
                r.state.as_str().to_owned(),
                if r.since == 0 {
                    "-".to_owned()
                } else {
                    format!(
                        "{} ago",
                        humantime::format_duration(Duration::from_secs(
                            now.saturating_sub(r.since)
                        ))
                    )
                },
                if r.targets.is_empty() {
                    "none".to_owned()
                } else {
                    r.targets.join(",")
                },
                r.reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let header = ["SERVICE", "NODE", "STATE", "SINCE", "ANNOUNCED", "REASON"];
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row.iter()).take(5) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[&str]| -> String {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<width$}  ", width = widths[i]);
            }
        }
        text.trim_end().to_owned()
    };
    let _ = writeln!(out, "{}", line(&header));
    for row in &rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        let _ = writeln!(out, "{}", line(&cells));
    }
    for service in &config.services {
        let of: Vec<&nsbeacon_fleet::Record> = records
            .iter()
            .filter(|r| r.service == service.name)
            .collect();
        let announcing = of.iter().filter(|r| r.state.announces()).count();
        let min = min_announcing(fleet.min_announcing(service));
        let needed = min.needed(of.len());
        let verdict = if announcing < needed {
            "BELOW min_announcing"
        } else {
            "ok"
        };
        let _ = writeln!(
            out,
            "service {}: {announcing} of {} node(s) announce; the guard keeps at least {needed} announcing: {verdict}",
            service.name,
            of.len()
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
[backend]
kind = "bird"
socket = "/run/bird/bird.ctl"

[fleet]
endpoints = ["http://127.0.0.1:2379"]
name = "lab"
node = "ams-1"

[[service]]
name = "dns"
announce = ["anycast_dns"]
degrade = ["anycast_dns_degraded"]
min_announcing = "50%"

[[service.check]]
name = "soa"
target = "127.0.0.1:53"
qname = "example.com."
"#;

    fn record(node: &str, state: RecordState, targets: &[&str]) -> nsbeacon_fleet::Record {
        nsbeacon_fleet::Record::new(
            node,
            "dns",
            "0.1.0",
            RecordUpdate {
                state,
                reason: (!state.announces()).then(|| "answer mismatch".to_owned()),
                targets: targets.iter().map(|t| (*t).to_owned()).collect(),
                since: 1_000,
            },
        )
    }

    #[test]
    fn the_fleet_table_lists_every_node_and_says_when_a_service_is_below_its_floor() {
        let config = crate::config::parse(CONFIG, "test").expect("valid config");
        let records = vec![
            record("ams-1", RecordState::Held, &["anycast_dns_degraded"]),
            record("fra-1", RecordState::Down, &[]),
            record("lon-1", RecordState::Down, &[]),
        ];
        let text = render_fleet(&config, &records, 1_090);
        assert!(
            text.starts_with(
                "fleet lab (etcd http://127.0.0.1:2379): 3 record(s); this node is ams-1"
            ),
            "{text}"
        );
        assert!(text.contains("ams-1  held"), "{text}");
        assert!(text.contains("1m 30s ago"), "{text}");
        assert!(text.contains("anycast_dns_degraded"), "{text}");
        assert!(text.contains("answer mismatch"), "{text}");
        // 50% of 3 registered is 2; only the held node announces.
        assert!(
            text.contains("service dns: 1 of 3 node(s) announce; the guard keeps at least 2 announcing: BELOW min_announcing"),
            "{text}"
        );
    }

    #[test]
    fn every_service_state_has_a_record_state_and_held_announces() {
        for state in ServiceState::ALL {
            assert_eq!(record_state(state).as_str(), state.as_str());
        }
        assert!(record_state(ServiceState::Held).announces());
        assert!(!record_state(ServiceState::Starting).announces());
    }
}
