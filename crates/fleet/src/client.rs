//! A read-only connection to a fleet: the fleet view for `nsbeacon fleet` and `/fleet`, and the bounded
//! call helper every etcd call in the crate goes through.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

use etcd_client::{Client, GetOptions, KeyValue};

use crate::error::FleetError;
use crate::keys::Keys;
use crate::record::Record;
use crate::settings::FleetSettings;

/// Runs one etcd call bounded by `limit`: a timeout or an etcd error becomes a [`FleetError`] naming the
/// call and the endpoints.
pub(crate) async fn bounded<T>(
    operation: &'static str,
    limit: Duration,
    endpoints: &str,
    call: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, FleetError> {
    match tokio::time::timeout(limit, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(source)) => Err(FleetError::Etcd {
            operation,
            endpoints: endpoints.to_owned(),
            source,
        }),
        Err(_) => Err(FleetError::Timeout {
            operation,
            endpoints: endpoints.to_owned(),
            timeout: limit,
        }),
    }
}

/// Opens the etcd client for `settings` (validated first), bounded by the call timeout. Without auth this
/// does not touch the network (the channel connects on first use); with auth it authenticates.
pub(crate) async fn connect(settings: &FleetSettings) -> Result<Client, FleetError> {
    settings.validate()?;
    bounded(
        "connect",
        settings.timeout,
        &settings.endpoints_text(),
        Client::connect(&settings.endpoints, Some(settings.connect_options())),
    )
    .await
}

/// Every record of a fleet at one etcd revision.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FleetView {
    /// The etcd revision the view was read at.
    pub revision: i64,
    /// Every record, ordered by service, then node.
    pub records: Vec<Record>,
    /// Keys under the fleet's prefix whose value is not a record (written by something else, or corrupt):
    /// shown so an operator can clean them up; the guard counts them as registered, not announcing.
    pub malformed: Vec<String>,
}

impl FleetView {
    /// The records of `service`.
    pub fn service<'v>(&'v self, service: &'v str) -> impl Iterator<Item = &'v Record> + 'v {
        self.records.iter().filter(move |r| r.service == service)
    }

    /// How many nodes announce `service` (state up, degraded or held).
    pub fn announcing(&self, service: &str) -> usize {
        self.service(service)
            .filter(|r| r.state.announces())
            .count()
    }

    /// The services that have at least one record.
    pub fn services(&self) -> BTreeSet<&str> {
        self.records.iter().map(|r| r.service.as_str()).collect()
    }
}

/// Parses one key-value under the fleet prefix: `(key, service, node, record)`, the record `None` when the
/// value is not a record JSON or disagrees with its key. `None` for keys outside the layout.
pub(crate) fn parse_kv<'k>(
    keys: &Keys,
    kv: &'k KeyValue,
) -> Option<(&'k str, &'k str, &'k str, Option<Record>)> {
    let key = kv.key_str().ok()?;
    let (service, node) = keys.parse(key)?;
    let record = serde_json::from_slice::<Record>(kv.value())
        .ok()
        .filter(|r| r.node == node && r.service == service);
    Some((key, service, node, record))
}

/// Reads the whole fleet view (one range read, so one revision).
pub(crate) async fn read_view(
    client: &Client,
    keys: &Keys,
    settings: &FleetSettings,
) -> Result<FleetView, FleetError> {
    let mut kv = client.kv_client();
    let response = bounded(
        "range read of the fleet view",
        settings.timeout,
        &settings.endpoints_text(),
        kv.get(
            keys.services_prefix(),
            Some(GetOptions::new().with_prefix()),
        ),
    )
    .await?;
    let mut view = FleetView {
        revision: response.header().map_or(0, |h| h.revision()),
        ..FleetView::default()
    };
    for kv in response.kvs() {
        match parse_kv(keys, kv) {
            Some((_, _, _, Some(record))) => view.records.push(record),
            Some((key, _, _, None)) => view.malformed.push(key.to_owned()),
            None => view
                .malformed
                .push(String::from_utf8_lossy(kv.key()).into_owned()),
        }
    }
    Ok(view)
}

/// A read-only view of a fleet, for commands that show it (`nsbeacon fleet`) without joining it.
#[derive(Clone)]
pub struct FleetClient {
    settings: FleetSettings,
    keys: Keys,
    client: Client,
}

impl FleetClient {
    /// Connects to the fleet's etcd (bounded by `settings.timeout`). `settings.node` is not used.
    pub async fn connect(settings: FleetSettings) -> Result<FleetClient, FleetError> {
        let client = connect(&settings).await?;
        Ok(FleetClient {
            keys: Keys::new(&settings.prefix, &settings.fleet),
            settings,
            client,
        })
    }

    /// Every node's record in the fleet, bounded by the call timeout.
    pub async fn view(&self) -> Result<FleetView, FleetError> {
        read_view(&self.client, &self.keys, &self.settings).await
    }
}

impl std::fmt::Debug for FleetClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetClient")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}
