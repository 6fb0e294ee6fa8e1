//! A node's membership in a fleet: its lease, its records, the guard's transaction and the change watch.
//!
//! Two background tasks run per member. The session task connects, grants the lease, keeps it alive, grants
//! a new one when etcd says the old one is gone (expired, or etcd lost its data), and writes every record the
//! node wants but etcd does not have yet. The watch task follows the fleet's prefix and bumps one counter per
//! service on every change, so a held node knows when to try its guard again. Both stop when the
//! [`Member`] is dropped.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, GetOptions, KeyValue, LeaseKeepAliveStream, LeaseKeeper,
    PutOptions, Txn, TxnOp, TxnOpResponse, WatchOptions,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::client::{FleetView, bounded, connect, parse_kv, read_view};
use crate::error::FleetError;
use crate::guard::{GuardOutcome, MinAnnouncing, Tally};
use crate::keys::{Keys, check_name, prefix_end};
use crate::record::{Record, RecordUpdate};
use crate::settings::FleetSettings;

/// How many transactions one guard call tries before it gives up with [`FleetError::Contention`]. Each lost
/// transaction means another node's update committed, so with N nodes deciding at once the last one wins by
/// its N-th try; the guard's time bound usually ends a longer streak first.
pub const GUARD_ATTEMPTS: u32 = 16;

/// The most announcing records one guard transaction compares (etcd's `--max-txn-ops` defaults to 128
/// compares per transaction; one more is the range compare).
pub const MAX_GUARD_COMPARES: usize = 120;

/// The first retry delay of the session and watch tasks after a failed call; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest retry delay: etcd coming back is noticed within this.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// The retry delay of a keep-alive after a failed one (the lease has a third of its TTL left at worst).
const KEEPALIVE_RETRY: Duration = Duration::from_millis(250);

/// What the member knows about its connection to etcd, for metrics (`nsbeacon_fleet_backend_up`) and logs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberStatus {
    /// The lease the node's records are bound to, while it holds one.
    pub lease: Option<i64>,
    /// Whether the last etcd call of the session task succeeded.
    pub reachable: bool,
    /// The last error of the session task, kept until a call succeeds again.
    pub last_error: Option<String>,
}

/// What the node wants etcd to hold for one service, and whether etcd has it.
#[derive(Debug, Clone)]
struct Entry {
    /// The record, or `None` for a service the node left (its key is to be deleted).
    record: Option<Record>,
    /// The lease the record was last written with; `None` while etcd may not have it.
    written: Option<i64>,
}

/// The member's state shared with its tasks.
struct Shared {
    settings: FleetSettings,
    keys: Keys,
    endpoints: String,
    client: watch::Sender<Option<Client>>,
    status: watch::Sender<MemberStatus>,
    /// Every write of this member's records goes through this lock, so a re-grant's rewrite and a guard
    /// transaction never interleave.
    book: tokio::sync::Mutex<BTreeMap<String, Entry>>,
    changes: Mutex<HashMap<String, watch::Sender<u64>>>,
}

/// A node's handle on the fleet. Dropping it stops its tasks without revoking the lease: the records then
/// vanish after the lease TTL, as for a node that died. [`leave`](Member::leave) removes them at once.
pub struct Member {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl Member {
    /// Validates `settings` and starts the member's tasks (call inside a tokio runtime). It returns at
    /// once: etcd being down must not hold up the daemon's start, so connecting and the lease grant happen
    /// in the background and are retried with backoff; [`status`](Member::status) shows the progress.
    pub fn start(settings: FleetSettings) -> Result<Member, FleetError> {
        settings.validate()?;
        let shared = Arc::new(Shared {
            keys: Keys::new(&settings.prefix, &settings.fleet),
            endpoints: settings.endpoints_text(),
            settings,
            client: watch::Sender::new(None),
            status: watch::Sender::new(MemberStatus::default()),
            book: tokio::sync::Mutex::new(BTreeMap::new()),
            changes: Mutex::new(HashMap::new()),
        });
        let tasks = vec![
            tokio::spawn(session(shared.clone())),
            tokio::spawn(watch_fleet(shared.clone())),
        ];
        Ok(Member { shared, tasks })
    }

    /// The settings the member runs with.
    pub fn settings(&self) -> &FleetSettings {
        &self.shared.settings
    }

    /// The connection and lease status, updated by the session task.
    pub fn status(&self) -> watch::Receiver<MemberStatus> {
        self.shared.status.subscribe()
    }

    /// Waits until the member holds a lease, at most `timeout`. Returns whether it does.
    pub async fn wait_registered(&self, timeout: Duration) -> bool {
        let mut status = self.status();
        tokio::time::timeout(timeout, status.wait_for(|s| s.lease.is_some()))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Writes the node's record for `service` with a plain put (bounded by the call timeout): for every
    /// transition that is not a guarded withdrawal (up, degraded, held, drained, and withdrawals the guard
    /// does not cover). An unchanged record is not written again, so a steady node costs etcd only its lease
    /// keep-alives. If the write fails, the record is kept and the session task writes it when etcd answers.
    pub async fn put_record(&self, service: &str, update: RecordUpdate) -> Result<(), FleetError> {
        check_name("service name", service)?;
        let record = self.record(service, update);
        let mut book = self.shared.book.lock().await;
        let lease = self.shared.status.borrow().lease;
        let entry = book.entry(service.to_owned()).or_insert(Entry {
            record: None,
            written: None,
        });
        if entry.record.as_ref() == Some(&record)
            && entry.written.is_some()
            && entry.written == lease
        {
            return Ok(());
        }
        entry.record = Some(record.clone());
        entry.written = None;
        let lease = lease.ok_or(FleetError::NotRegistered)?;
        self.shared.put(service, &record, lease).await?;
        entry.written = Some(lease);
        Ok(())
    }

    /// Deletes the node's record for `service` (a service removed by a reload), bounded by the call
    /// timeout. If etcd does not answer, the session task deletes it later.
    pub async fn remove_record(&self, service: &str) -> Result<(), FleetError> {
        check_name("service name", service)?;
        let mut book = self.shared.book.lock().await;
        book.insert(
            service.to_owned(),
            Entry {
                record: None,
                written: None,
            },
        );
        self.shared.delete(service).await?;
        book.remove(service);
        Ok(())
    }

    /// The guard: asks whether this node may withdraw `service`, and if so writes `update` (its withdrawn
    /// record) in the same etcd transaction that checked.
    ///
    /// Allowed only if, after the withdrawal, at least `min.needed(registered)` other nodes still announce
    /// the service (up, degraded or held), where `registered` counts the nodes with a record for it, this
    /// one included. The whole call is bounded by `guard_timeout` and each etcd call by `timeout`: past
    /// either, or without a lease, the answer is [`GuardOutcome::Unavailable`], never a hang. See the crate
    /// docs for the transaction and why it is race-free.
    pub async fn try_withdraw(
        &self,
        service: &str,
        min: MinAnnouncing,
        update: RecordUpdate,
    ) -> GuardOutcome {
        if let Err(e) = check_name("service name", service) {
            return GuardOutcome::Unavailable(e.into());
        }
        let bound = self.shared.settings.guard_timeout;
        let record = self.record(service, update);
        match tokio::time::timeout(bound, self.guard(service, min, record)).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(error)) => GuardOutcome::Unavailable(error),
            Err(_) => {
                // The transaction may have committed after all: whatever etcd holds now, the session task
                // rewrites the last record this node knows as current (the caller writes a newer one).
                let shared = self.shared.clone();
                let service_name = service.to_owned();
                tokio::spawn(async move {
                    if let Some(entry) = shared.book.lock().await.get_mut(&service_name) {
                        entry.written = None;
                    }
                });
                GuardOutcome::Unavailable(FleetError::GuardTimeout {
                    service: service.to_owned(),
                    bound,
                })
            }
        }
    }

    /// Every node's record in the fleet, read at one revision (bounded by the call timeout).
    pub async fn view(&self) -> Result<FleetView, FleetError> {
        let client = self.shared.client()?;
        read_view(&client, &self.shared.keys, &self.shared.settings).await
    }

    /// A counter that changes whenever a record of `service` changes in etcd (any node's, this one's
    /// included, lease expiries too) and whenever the watch reconnects (it may have missed changes). A held
    /// node awaits `changed()` on it and then tries its guard again.
    pub fn changes(&self, service: &str) -> watch::Receiver<u64> {
        let mut senders = self
            .shared
            .changes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        senders
            .entry(service.to_owned())
            .or_insert_with(|| watch::Sender::new(0))
            .subscribe()
    }

    /// Leaves the fleet: stops the tasks and revokes the lease (bounded by the call timeout), so every
    /// record of this node vanishes at once instead of after the TTL.
    pub async fn leave(mut self) -> Result<(), FleetError> {
        self.stop_tasks();
        let lease = self.shared.status.borrow().lease;
        let (Some(lease), Ok(client)) = (lease, self.shared.client()) else {
            return Ok(());
        };
        let mut leases = client.lease_client();
        bounded(
            "lease revoke",
            self.shared.settings.timeout,
            &self.shared.endpoints,
            leases.revoke(lease),
        )
        .await
        .map(drop)
    }

    /// Stops the tasks without revoking the lease: keep-alives stop, and the records vanish after the
    /// lease TTL, exactly as when the node dies. (Dropping the member does the same.)
    pub fn abandon(mut self) {
        self.stop_tasks();
    }

    fn stop_tasks(&mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
        }
    }

    fn record(&self, service: &str, update: RecordUpdate) -> Record {
        let settings = &self.shared.settings;
        Record::new(&settings.node, service, &settings.version, update)
    }

    /// One guard decision: read, then transactions until one commits or the read says "held".
    async fn guard(
        &self,
        service: &str,
        min: MinAnnouncing,
        record: Record,
    ) -> Result<GuardOutcome, FleetError> {
        let shared = &self.shared;
        let mut book = shared.book.lock().await;
        let lease = shared
            .status
            .borrow()
            .lease
            .ok_or(FleetError::NotRegistered)?;
        let client = shared.client()?;
        let mut kv = client.kv_client();
        let prefix = shared.keys.service_prefix(service);
        let range_end = prefix_end(&prefix);
        let own_key = shared.keys.record(service, &shared.settings.node);
        let value = encode(service, &record)?;
        let read = bounded(
            "guard read",
            shared.settings.timeout,
            &shared.endpoints,
            kv.get(prefix.as_str(), Some(GetOptions::new().with_prefix())),
        )
        .await?;
        let mut revision = read.header().map_or(0, |h| h.revision());
        let mut kvs = read.kvs().to_vec();
        for _ in 0..GUARD_ATTEMPTS {
            let tally = self.tally(&kvs);
            let needed = min.needed(tally.registered);
            let announcing = tally.announcing.len();
            if announcing < needed {
                return Ok(GuardOutcome::Held { announcing, needed });
            }
            if needed > MAX_GUARD_COMPARES {
                return Err(FleetError::TooManyCompares {
                    service: service.to_owned(),
                    needed,
                    max: MAX_GUARD_COMPARES,
                });
            }
            // Nothing in the service's range was written after the read, and the `needed` announcing
            // records the decision rests on are still exactly the ones read (a deleted key has
            // mod_revision 0, so a lease expiry since the read fails the compare too).
            let mut compares = vec![
                Compare::mod_revision(prefix.as_str(), CompareOp::Less, revision + 1)
                    .with_range(range_end.clone()),
            ];
            compares.extend(tally.announcing[..needed].iter().map(|seen| {
                Compare::mod_revision(seen.key.as_str(), CompareOp::Equal, seen.mod_revision)
            }));
            let txn = Txn::new()
                .when(compares)
                .and_then(vec![TxnOp::put(
                    own_key.as_str(),
                    value.clone(),
                    Some(PutOptions::new().with_lease(lease)),
                )])
                .or_else(vec![TxnOp::get(
                    prefix.as_str(),
                    Some(GetOptions::new().with_prefix()),
                )]);
            let response = bounded(
                "guard txn",
                shared.settings.timeout,
                &shared.endpoints,
                kv.txn(txn),
            )
            .await?;
            if response.succeeded() {
                tracing::debug!(
                    service,
                    revision,
                    counted = ?tally.announcing[..needed].iter().map(|s| (&s.key, s.mod_revision)).collect::<Vec<_>>(),
                    "fleet guard: withdrawal allowed"
                );
                book.insert(
                    service.to_owned(),
                    Entry {
                        record: Some(record),
                        written: Some(lease),
                    },
                );
                return Ok(GuardOutcome::Allowed { announcing, needed });
            }
            // Another node's update won. The failure branch read the range again at the transaction's
            // revision, so the next decision needs no extra round trip.
            revision = response.header().map_or(revision, |h| h.revision());
            kvs = response
                .op_responses()
                .into_iter()
                .find_map(|op| match op {
                    TxnOpResponse::Get(get) => Some(get.kvs().to_vec()),
                    _ => None,
                })
                .unwrap_or_default();
        }
        Err(FleetError::Contention {
            service: service.to_owned(),
            attempts: GUARD_ATTEMPTS,
        })
    }

    fn tally(&self, kvs: &[KeyValue]) -> Tally {
        let keys = &self.shared.keys;
        let parsed: Vec<_> = kvs
            .iter()
            .filter_map(|kv| {
                parse_kv(keys, kv)
                    .map(|(key, _, node, record)| (key, node, record, kv.mod_revision()))
            })
            .collect();
        Tally::count(
            &self.shared.settings.node,
            parsed
                .iter()
                .map(|(key, node, record, rev)| (*key, *node, record.as_ref(), *rev)),
        )
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.stop_tasks();
    }
}

impl std::fmt::Debug for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Member")
            .field("settings", &self.shared.settings)
            .field("status", &*self.shared.status.borrow())
            .finish_non_exhaustive()
    }
}

fn encode(service: &str, record: &Record) -> Result<Vec<u8>, FleetError> {
    serde_json::to_vec(record).map_err(|source| FleetError::Encode {
        service: service.to_owned(),
        source,
    })
}

impl Shared {
    fn client(&self) -> Result<Client, FleetError> {
        self.client
            .borrow()
            .clone()
            .ok_or(FleetError::NotRegistered)
    }

    fn set_status(&self, change: impl FnOnce(&mut MemberStatus)) {
        self.status.send_if_modified(|status| {
            let before = status.clone();
            change(status);
            *status != before
        });
    }

    fn failed(&self, error: &FleetError) {
        let text = error.to_string();
        let first = self.status.borrow().reachable;
        if first {
            tracing::warn!(error = %text, "fleet: etcd call failed");
        }
        self.set_status(|s| {
            s.reachable = false;
            s.last_error = Some(text);
        });
    }

    fn succeeded(&self) {
        if !self.status.borrow().reachable {
            tracing::info!(endpoints = %self.endpoints, "fleet: etcd answers");
        }
        self.set_status(|s| {
            s.reachable = true;
            s.last_error = None;
        });
    }

    async fn put(&self, service: &str, record: &Record, lease: i64) -> Result<(), FleetError> {
        let client = self.client()?;
        let mut kv = client.kv_client();
        let key = self.keys.record(service, &self.settings.node);
        bounded(
            "record put",
            self.settings.timeout,
            &self.endpoints,
            kv.put(
                key,
                encode(service, record)?,
                Some(PutOptions::new().with_lease(lease)),
            ),
        )
        .await
        .map(drop)
    }

    async fn delete(&self, service: &str) -> Result<(), FleetError> {
        let client = self.client()?;
        let mut kv = client.kv_client();
        let key = self.keys.record(service, &self.settings.node);
        bounded(
            "record delete",
            self.settings.timeout,
            &self.endpoints,
            kv.delete(key, None),
        )
        .await
        .map(drop)
    }

    /// Writes every record etcd may not have with `lease` (after a grant, or after a failed write).
    async fn flush(&self, lease: i64) -> Result<(), FleetError> {
        let mut book = self.book.lock().await;
        let mut gone = Vec::new();
        for (service, entry) in book.iter_mut() {
            if entry.written == Some(lease) {
                continue;
            }
            match &entry.record {
                Some(record) => self.put(service, record, lease).await?,
                None => {
                    self.delete(service).await?;
                    gone.push(service.clone());
                }
            }
            entry.written = Some(lease);
        }
        for service in gone {
            book.remove(&service);
        }
        Ok(())
    }

    fn bump(&self, service: Option<&str>) {
        let senders = self.changes.lock().unwrap_or_else(PoisonError::into_inner);
        for (name, sender) in senders.iter() {
            if service.is_none_or(|s| s == name) {
                sender.send_modify(|n| *n = n.wrapping_add(1));
            }
        }
    }
}

/// Doubling retry delays.
struct Backoff(Duration);

impl Backoff {
    fn new() -> Backoff {
        Backoff(FIRST_BACKOFF)
    }

    fn next(&mut self) -> Duration {
        let delay = self.0;
        self.0 = (self.0 * 2).min(MAX_BACKOFF);
        delay
    }

    fn reset(&mut self) {
        self.0 = FIRST_BACKOFF;
    }
}

/// The session task: connect, grant, keep alive, and again from the grant whenever the lease is lost.
async fn session(shared: Arc<Shared>) {
    let mut backoff = Backoff::new();
    loop {
        let client = match shared.client() {
            Ok(client) => client,
            Err(_) => match connect(&shared.settings).await {
                Ok(client) => {
                    shared.client.send_replace(Some(client.clone()));
                    client
                }
                Err(error) => {
                    shared.failed(&error);
                    tokio::time::sleep(backoff.next()).await;
                    continue;
                }
            },
        };
        let mut leases = client.lease_client();
        let grant = bounded(
            "lease grant",
            shared.settings.timeout,
            &shared.endpoints,
            leases.grant(shared.settings.lease_ttl_secs(), None),
        )
        .await;
        let (lease, ttl) = match grant {
            Ok(granted) => (granted.id(), granted.ttl()),
            Err(error) => {
                shared.failed(&error);
                tokio::time::sleep(backoff.next()).await;
                continue;
            }
        };
        let granted_at = Instant::now();
        shared.succeeded();
        backoff.reset();
        tracing::info!(lease, ttl, node = %shared.settings.node, "fleet: lease granted");
        // Records first, then the lease becomes visible: a guard never runs on a lease whose records are
        // still the old ones.
        if let Err(error) = shared.flush(lease).await {
            shared.failed(&error);
        }
        shared.set_status(|s| s.lease = Some(lease));
        keep_alive(&shared, &client, lease, ttl, granted_at).await;
        shared.set_status(|s| s.lease = None);
    }
}

/// Keeps `lease` alive every third of its TTL until it is lost: etcd answers TTL 0 (expired, revoked, or
/// etcd lost its data), or no keep-alive succeeded for a whole TTL (then it has expired in etcd too).
async fn keep_alive(
    shared: &Shared,
    client: &Client,
    lease: i64,
    ttl_secs: i64,
    granted_at: Instant,
) {
    let ttl = Duration::from_secs(u64::try_from(ttl_secs).unwrap_or(1).max(1));
    let interval = (ttl / 3).max(Duration::from_millis(100));
    let mut last_ok = granted_at;
    let mut stream: Option<(LeaseKeeper, LeaseKeepAliveStream)> = None;
    let mut delay = interval;
    loop {
        tokio::time::sleep(delay).await;
        if last_ok.elapsed() >= ttl {
            tracing::warn!(
                lease,
                "fleet: no keep-alive succeeded for a whole lease TTL; granting a new lease"
            );
            return;
        }
        let timeout = shared.settings.timeout;
        let result = tokio::time::timeout(timeout, async {
            if stream.is_none() {
                let mut leases = client.lease_client();
                stream = Some(leases.keep_alive(lease).await?);
            }
            match stream.as_mut() {
                Some((keeper, responses)) => {
                    keeper.keep_alive().await?;
                    responses.message().await
                }
                None => Ok(None),
            }
        })
        .await;
        match result {
            Ok(Ok(Some(response))) if response.ttl() > 0 => {
                last_ok = Instant::now();
                delay = interval;
                shared.succeeded();
                if let Err(error) = shared.flush(lease).await {
                    shared.failed(&error);
                }
            }
            Ok(Ok(Some(_))) => {
                tracing::warn!(
                    lease,
                    "fleet: etcd no longer knows the lease; granting a new one"
                );
                return;
            }
            outcome => {
                let error = match outcome {
                    Ok(Err(source)) => FleetError::Etcd {
                        operation: "lease keep-alive",
                        endpoints: shared.endpoints.clone(),
                        source,
                    },
                    _ => FleetError::Timeout {
                        operation: "lease keep-alive",
                        endpoints: shared.endpoints.clone(),
                        timeout,
                    },
                };
                shared.failed(&error);
                stream = None;
                delay = KEEPALIVE_RETRY.min(interval);
            }
        }
    }
}

/// The watch task: one etcd watch on the fleet's prefix, re-created with backoff whenever it ends.
async fn watch_fleet(shared: Arc<Shared>) {
    let mut backoff = Backoff::new();
    let mut client_rx = shared.client.subscribe();
    loop {
        let client = match client_rx.wait_for(Option::is_some).await {
            Ok(client) => client.clone(),
            Err(_) => return,
        };
        let Some(client) = client else { continue };
        let mut watcher = client.watch_client();
        let opened = bounded(
            "watch",
            shared.settings.timeout,
            &shared.endpoints,
            watcher.watch(
                shared.keys.services_prefix(),
                Some(WatchOptions::new().with_prefix()),
            ),
        )
        .await;
        let mut stream = match opened {
            Ok(stream) => stream,
            Err(error) => {
                tracing::debug!(%error, "fleet: watch not open");
                tokio::time::sleep(backoff.next()).await;
                continue;
            }
        };
        // Changes while no watch was open are unknown: every service's watchers look again.
        shared.bump(None);
        while let Ok(Some(response)) = stream.message().await {
            backoff.reset();
            if response.canceled() {
                break;
            }
            for event in response.events() {
                let service = event
                    .kv()
                    .and_then(|kv| kv.key_str().ok())
                    .and_then(|key| shared.keys.parse(key))
                    .map(|(service, _)| service);
                if let Some(service) = service {
                    shared.bump(Some(service));
                }
            }
        }
        shared.bump(None);
        tokio::time::sleep(backoff.next()).await;
    }
}
