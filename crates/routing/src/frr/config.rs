//! How to reach FRR: [`FrrConfig`] and its [`FrrTransport`], as the daemon builds them from its config
//! file ([`FrrBackend::new`](super::FrrBackend::new) validates them).

use std::path::PathBuf;
use std::time::Duration;

use super::gate::KernelRouteGate;
use crate::RouteMapName;

/// Debian's bgpd vty socket (FRR's `/var/run/frr` is `/run/frr`).
pub const DEFAULT_BGPD_VTY_SOCKET: &str = "/run/frr/bgpd.vty";

/// How nsbeacon talks to bgpd. See the module docs for the trade-off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrrTransport {
    /// One persistent connection to bgpd's vty socket (default [`DEFAULT_BGPD_VTY_SOCKET`]; an instance
    /// started with `--vty_socket DIR` has it at `DIR/bgpd.vty`, one in pathspace `NAME` at
    /// `/run/frr/NAME/bgpd.vty`).
    VtySocket {
        /// bgpd's vty socket.
        socket: PathBuf,
    },
    /// One `vtysh` process per call.
    Vtysh {
        /// The vtysh binary (a bare name is looked up on `PATH`).
        vtysh: PathBuf,
        /// Options placed before the `-c` commands to select a non-default FRR instance: only
        /// `--vty_socket DIR`, `-N NAME`/`--pathspace NAME` and `--config_dir DIR` (as two arguments or
        /// `--opt=value`).
        extra_args: Vec<String>,
    },
}

impl Default for FrrTransport {
    /// bgpd's vty socket at [`DEFAULT_BGPD_VTY_SOCKET`].
    fn default() -> FrrTransport {
        FrrTransport::VtySocket {
            socket: PathBuf::from(DEFAULT_BGPD_VTY_SOCKET),
        }
    }
}

/// How to reach FRR. The daemon builds this from its config file; [`FrrBackend::new`](super::FrrBackend::new) validates it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrrConfig {
    /// The vty socket or vtysh.
    pub transport: FrrTransport,
    /// The local ASN; `None` discovers it from FRR (and caches it).
    pub asn: Option<u32>,
    /// The VRF of the BGP instance; `None` is the default VRF.
    pub vrf: Option<String>,
    /// Bound on each operation (all commands it sends); a vtysh still running is killed, a vty connection
    /// still waiting is dropped.
    pub timeout: Duration,
    /// How a prefix is announced and withdrawn.
    pub announce: FrrAnnounce,
}

/// How the FRR backend announces and withdraws a `network` target.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum FrrAnnounce {
    /// `network P` / `no network P` in bgpd's running config. An FRR reload (`frr-reload.py`) or a
    /// bgpd restart drops the statements, so the prefix is withdrawn until nsbeacon's next read-back.
    /// The default of this crate, because it is the one that touches nothing but bgpd.
    #[default]
    Network,
    /// The `network P` statements stay in `frr.conf`; nsbeacon opens and closes FRR's import-check with
    /// a kernel route of its own (see `frr/gate.rs`): reload- and restart-proof. Announcing also adds the
    /// `network` statement when it is missing, withdrawing also removes it (so a connected route that
    /// defeats the gate still cannot keep a withdrawn prefix announced).
    KernelRoute(KernelRouteGate),
    /// No `network` statements at all: frr.conf has `redistribute kernel route-map NSBEACON-KERNEL-V4`
    /// (and `-V6`), and nsbeacon's kernel route carries the variant in its metric ([`KernelMetrics`]),
    /// which the file's route-map turns into the variant's attributes. Reloads touch neither the kernel
    /// route nor the file's statements, so a reload while degraded keeps the degraded path (an
    /// `frr-reload.py` cannot revert a route-map switch that never happened in bgpd's config). Switching
    /// variants is make-before-break on the kernel route: an UPDATE at the peers, no withdrawal.
    KernelMetric(KernelRouteGate, KernelMetrics),
}

/// The default kernel-route metric of the plain (healthy) variant with `announce_via = "kernel-metric"`.
pub const DEFAULT_PLAIN_METRIC: u32 = 53;

/// Which kernel-route metric stands for which variant with [`FrrAnnounce::KernelMetric`]: the plain
/// prefix and each route-map name the services use. frr.conf's `NSBEACON-KERNEL-V4`/`-V6` route-maps must
/// map the same metrics to the same attributes (frr-templates/nsbeacon-bgpd-kernel-metric.conf).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelMetrics {
    /// The metric of the plain variant (`P`).
    pub plain: u32,
    /// The metric of each route-map variant (`P route-map NAME`).
    pub route_maps: Vec<(RouteMapName, u32)>,
}

impl Default for KernelMetrics {
    /// 53 plain, 54 `NSBEACON-DEGRADED`, 55 `NSBEACON-GSHUT`: what the template maps.
    fn default() -> KernelMetrics {
        KernelMetrics {
            plain: DEFAULT_PLAIN_METRIC,
            route_maps: [
                ("NSBEACON-DEGRADED", DEFAULT_PLAIN_METRIC + 1),
                ("NSBEACON-GSHUT", DEFAULT_PLAIN_METRIC + 2),
            ]
            .into_iter()
            .filter_map(|(name, m)| RouteMapName::new(name).ok().map(|n| (n, m)))
            .collect(),
        }
    }
}

impl KernelMetrics {
    /// The metric of the variant with `route_map` (`None`: plain), if it has one.
    pub fn metric(&self, route_map: Option<&RouteMapName>) -> Option<u32> {
        match route_map {
            None => Some(self.plain),
            Some(map) => self
                .route_maps
                .iter()
                .find(|(name, _)| name == map)
                .map(|(_, m)| *m),
        }
    }

    /// The variants that have a metric, for error messages: `P (53), P route-map NSBEACON-DEGRADED (54), ...`.
    pub fn describe(&self) -> String {
        std::iter::once(format!("P (metric {})", self.plain))
            .chain(
                self.route_maps
                    .iter()
                    .map(|(name, m)| format!("P route-map {name} (metric {m})")),
            )
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Why this table cannot be used (two variants with one metric, or metric 0 which the kernel would
    /// confuse with an IPv4 route added without a metric), `None` if it can.
    pub fn problem(&self) -> Option<String> {
        let mut all: Vec<u32> = self.route_maps.iter().map(|(_, m)| *m).collect();
        all.push(self.plain);
        if all.contains(&0) {
            return Some(
                "metric 0 is the kernel's default for IPv4 routes; use 1 or more".to_owned(),
            );
        }
        all.sort_unstable();
        if all.windows(2).any(|w| w[0] == w[1]) {
            return Some("two variants share a metric".to_owned());
        }
        None
    }
}

impl Default for FrrConfig {
    /// bgpd's default vty socket, the default VRF, ASN discovered, 5 s per operation, `network` statements
    /// (no kernel routes).
    fn default() -> FrrConfig {
        FrrConfig {
            transport: FrrTransport::default(),
            asn: None,
            vrf: None,
            timeout: Duration::from_secs(5),
            announce: FrrAnnounce::Network,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_metrics_map_each_variant_and_refuse_ambiguous_tables() {
        let metrics = KernelMetrics::default();
        assert_eq!(metrics.problem(), None);
        assert_eq!(metrics.metric(None), Some(53));
        let name = |n: &str| RouteMapName::new(n).unwrap();
        assert_eq!(metrics.metric(Some(&name("NSBEACON-DEGRADED"))), Some(54));
        assert_eq!(metrics.metric(Some(&name("NSBEACON-GSHUT"))), Some(55));
        assert_eq!(metrics.metric(Some(&name("OTHER"))), None);
        assert!(
            metrics
                .describe()
                .contains("P route-map NSBEACON-GSHUT (metric 55)")
        );
        let shared = KernelMetrics {
            plain: 54,
            ..KernelMetrics::default()
        };
        assert!(shared.problem().is_some_and(|p| p.contains("share")));
        let zero = KernelMetrics {
            plain: 0,
            ..KernelMetrics::default()
        };
        assert!(zero.problem().is_some_and(|p| p.contains("metric 0")));
    }
}
