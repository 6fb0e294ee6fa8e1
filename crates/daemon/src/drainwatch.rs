//! How a running daemon learns about drains: it re-reads the drain store (in `state_dir`) and checks the
//! drain file every [`POLL_INTERVAL`].
//!
//! `nsbeacon drain` / `undrain` only write the store, so they work whether or not the daemon runs, the
//! drain survives restarts, and there is no HTTP endpoint that can change routing. The cost is up to one
//! poll interval of delay, negligible next to BGP propagation.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::drain::{DrainError, DrainRequest, DrainStore};
use crate::service::DrainView;
use crate::status::DaemonInfo;

/// How often the drain store and drain file are re-read.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// Where drains are kept (from the config; may change on reload).
#[derive(Debug, Clone, PartialEq)]
pub struct DrainPaths {
    /// The state directory holding the drain store.
    pub state_dir: PathBuf,
    /// The optional drain file: while it exists, every service is drained.
    pub drain_file: Option<PathBuf>,
}

/// Reads the drains in force at start-up. A store that cannot be read (corrupt, wrong version, no
/// permission) drains every service until it can: after a restart nsbeacon must not announce a service an
/// operator drained just because the record of that drain is unreadable. The watcher replaces this with
/// the real drains as soon as the store reads again.
pub fn read(paths: &DrainPaths) -> DrainView {
    match read_checked(paths) {
        Ok(view) => view,
        Err(e) => {
            warn!(error = %e, "cannot read the drain store at start-up; every service stays drained until it can be read");
            DrainView {
                services: BTreeMap::new(),
                all: Some(DrainRequest::new(format!(
                    "the drain store cannot be read ({e}); drained until it can"
                ))),
            }
        }
    }
}

/// Reads the drains in force, or says why the store could not be read.
pub fn read_checked(paths: &DrainPaths) -> Result<DrainView, DrainError> {
    let store = DrainStore::open(&paths.state_dir)?;
    let mut view = DrainView {
        all: store.all(),
        services: store.entries().into_iter().collect(),
    };
    view.services.retain(|name, _| name != "*");
    if view.all.is_none()
        && let Some(file) = &paths.drain_file
        && file.exists()
    {
        view.all = Some(DrainRequest::from_file(file));
    }
    Ok(view)
}

/// Drains in force as service (or `*`) -> reason, for `/status`.
pub fn describe(view: &DrainView) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = view
        .services
        .iter()
        .map(|(k, v)| (k.clone(), v.reason.clone()))
        .collect();
    if let Some(all) = &view.all {
        out.insert("*".to_owned(), all.reason.clone());
    }
    out
}

/// Polls the drain store and file until `stop`, publishing changes.
pub async fn watch_loop(
    mut paths: watch::Receiver<DrainPaths>,
    drains: watch::Sender<DrainView>,
    info: Arc<RwLock<DaemonInfo>>,
    stop: CancellationToken,
) {
    let mut failing = false;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(POLL_INTERVAL) => {}
            _ = paths.changed() => {}
        }
        let current = paths.borrow_and_update().clone();
        match read_checked(&current) {
            Ok(view) => {
                if failing {
                    info!("the drain store is readable again");
                    failing = false;
                }
                let changed = drains.send_if_modified(|old| {
                    if *old == view {
                        false
                    } else {
                        *old = view.clone();
                        true
                    }
                });
                if changed {
                    info!(drains = ?describe(&view), "drains changed");
                    info.write()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .drains = describe(&view);
                }
            }
            Err(e) => {
                // Keep the drains last seen: a half-written or unreadable store must not undrain.
                if !failing {
                    warn!(error = %e, "cannot read the drain store; keeping the drains last seen");
                    failing = true;
                }
            }
        }
    }
}
