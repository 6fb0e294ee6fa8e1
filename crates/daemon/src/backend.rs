//! The routing backend chosen by the config: BIRD 2 or FRR behind one type.
//!
//! [`RoutingBackend`] uses `impl Future` returns, so it is not object-safe; an enum that delegates keeps the
//! reconciler generic (and unit-testable with a fake) while the daemon picks the backend at run time.

use nsbeacon_routing::bird::{BirdBackend, BirdConfig};
use nsbeacon_routing::frr::{FrrBackend, FrrConfig};
use nsbeacon_routing::{
    BackendHealth, PeerExport, RouteState, RouteTarget, RoutingBackend, RoutingError, TargetStatus,
    Timed,
};

use crate::config::BackendConfig;

/// The configured BGP daemon.
#[derive(Debug)]
pub enum Backend {
    /// BIRD 2 over its control socket.
    Bird(BirdBackend),
    /// FRR over bgpd's vty socket or through vtysh.
    Frr(FrrBackend),
}

/// The backend settings were rejected by the routing crate (the config validation should have caught it).
#[derive(Debug, thiserror::Error)]
#[error("backend ({kind}): {source}; fix the [backend] section of the config")]
pub struct BackendSetupError {
    /// `bird` or `frr`.
    pub kind: &'static str,
    /// What the routing crate objected to.
    #[source]
    pub source: RoutingError,
}

impl Backend {
    /// Builds the backend from the `[backend]` config section. Connects to nothing yet, so nsbeacon can
    /// start before the BGP daemon.
    pub fn from_config(config: &BackendConfig) -> Result<Backend, BackendSetupError> {
        match config {
            BackendConfig::Bird {
                socket,
                timeout,
                decision_dir,
            } => BirdBackend::new(BirdConfig {
                socket: socket.clone(),
                timeout: *timeout,
                decision_dir: decision_dir.clone(),
            })
            .map(Backend::Bird)
            .map_err(|e| BackendSetupError {
                kind: "bird",
                source: e.into(),
            }),
            BackendConfig::Frr {
                transport,
                asn,
                vrf,
                timeout,
                announce,
            } => FrrBackend::new(FrrConfig {
                transport: transport.clone(),
                asn: *asn,
                vrf: vrf.clone(),
                timeout: *timeout,
                announce: announce.clone(),
            })
            .map(Backend::Frr)
            .map_err(|e| BackendSetupError {
                kind: "frr",
                source: e.into(),
            }),
        }
    }

    /// `bird` or `frr`, for logs and metric labels.
    pub fn kind(&self) -> &'static str {
        match self {
            Backend::Bird(_) => "bird",
            Backend::Frr(_) => "frr",
        }
    }
}

impl RoutingBackend for Backend {
    async fn set(
        &self,
        target: &RouteTarget,
        state: RouteState,
    ) -> Result<Timed<()>, RoutingError> {
        match self {
            Backend::Bird(b) => b.set(target, state).await,
            Backend::Frr(b) => b.set(target, state).await,
        }
    }

    async fn read(&self, target: &RouteTarget) -> Result<Timed<TargetStatus>, RoutingError> {
        match self {
            Backend::Bird(b) => b.read(target).await,
            Backend::Frr(b) => b.read(target).await,
        }
    }

    async fn health(&self) -> BackendHealth {
        match self {
            Backend::Bird(b) => b.health().await,
            Backend::Frr(b) => b.health().await,
        }
    }

    async fn exports(&self, target: &RouteTarget) -> Result<Timed<Vec<PeerExport>>, RoutingError> {
        match self {
            Backend::Bird(b) => b.exports(target).await,
            Backend::Frr(b) => b.exports(target).await,
        }
    }

    fn name(&self) -> &'static str {
        self.kind()
    }
}
