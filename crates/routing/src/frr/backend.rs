//! [`FrrBackend`]: the [`RoutingBackend`] for FRR `network` statements and neighbors, over the vty socket
//! or vtysh (see the [module docs](super) for the commands and the read-back).

use std::sync::Mutex;
use std::time::Duration;

use ipnet::IpNet;
use tokio::time::Instant;

use super::gate::Gate;
use super::readback::{
    self, Advertised, ConfiguredNetwork, NeighborReadback, NeighborSession, NetworkReadback,
    ReadbackError,
};
use super::types::{self, Asn, VrfName};
use super::vty_socket::VtySocket;
use super::vtysh::{self, Vtysh};
use super::{FrrAnnounce, FrrConfig, FrrError, FrrTransport, KernelMetrics};
use crate::{
    BackendHealth, FrrNeighbor, FrrNetwork, PeerExport, PeerSession, RouteMapName, RouteState,
    RouteTarget, RoutingBackend, RoutingError, TargetStatus, Timed,
};

/// The connection to bgpd: one of the two [`FrrTransport`]s, ready to run commands.
#[derive(Debug)]
enum Connection {
    VtySocket(VtySocket),
    Vtysh(Vtysh),
}

impl Connection {
    /// Runs `lines` (one vtysh `-c` each, or one vty command each) and returns the output.
    async fn run(
        &self,
        lines: &[String],
        deadline: Instant,
        timeout: Duration,
        config: bool,
    ) -> Result<String, FrrError> {
        match self {
            Connection::VtySocket(socket) => socket.run(lines, deadline, timeout, config).await,
            Connection::Vtysh(vtysh) => vtysh.run(lines, deadline, timeout, config).await,
        }
    }

    /// The commands as they appear in errors.
    fn render(&self, lines: &[String]) -> String {
        match self {
            Connection::VtySocket(socket) => socket.render(lines),
            Connection::Vtysh(vtysh) => vtysh.render(lines),
        }
    }

    /// The command that prints bgpd's part of the running config: vtysh merges every daemon's unless told
    /// which; bgpd's own vty only has its part.
    fn bgpd_running_config(&self) -> String {
        match self {
            Connection::VtySocket(_) => "show running-config".to_owned(),
            Connection::Vtysh(_) => "show running-config bgpd".to_owned(),
        }
    }
}

/// The FRR routing backend: announces and withdraws through bgpd's vty (socket or vtysh) and reads back
/// its JSON.
#[derive(Debug)]
pub struct FrrBackend {
    connection: Connection,
    configured_asn: Option<Asn>,
    vrf: Option<VrfName>,
    timeout: Duration,
    /// The ASN once discovered or checked against FRR.
    known_asn: Mutex<Option<Asn>>,
    /// The kernel-route gate, with [`FrrAnnounce::KernelRoute`] and [`FrrAnnounce::KernelMetric`];
    /// `None`: plain `network` / `no network`.
    gate: Option<Gate>,
    /// With [`FrrAnnounce::KernelMetric`]: the metric of each variant. Then the kernel route alone
    /// expresses the target (frr.conf redistributes it), and no vty command is ever sent for a network.
    metrics: Option<KernelMetrics>,
}

/// How long bgpd may still show a redistributed path after its kernel route went (zebra's message to
/// bgpd; a few ms in the lab): a path still there after this is not nsbeacon's.
const REDISTRIBUTION_LAG: Duration = Duration::from_millis(200);

/// The key of a prefix's address family in a neighbor's `addressFamilyInfo`.
fn family_key(prefix: &IpNet) -> &'static str {
    match prefix {
        IpNet::V4(_) => "ipv4Unicast",
        IpNet::V6(_) => "ipv6Unicast",
    }
}

/// A neighbor's session as the routing crate reports it, with `exported`.
fn peer_export(session: NeighborSession, exported: bool) -> PeerExport {
    PeerExport {
        session: PeerSession {
            established: session.state == "Established",
            peer: session.peer,
            state: session.state,
            bfd: session.bfd.map(|b| b.to_ascii_lowercase()),
        },
        exported,
    }
}

/// The address family keyword for a prefix.
fn afi(prefix: &IpNet) -> &'static str {
    match prefix {
        IpNet::V4(_) => "ipv4",
        IpNet::V6(_) => "ipv6",
    }
}

impl FrrBackend {
    /// Validates `config` (ASN, VRF name, extra vtysh arguments, timeout). Connects to nothing and spawns
    /// nothing, so nsbeacon can start before FRR.
    pub fn new(config: FrrConfig) -> Result<FrrBackend, FrrError> {
        let configured_asn = config.asn.map(Asn::new).transpose()?;
        let vrf = config.vrf.as_deref().map(VrfName::new).transpose()?;
        if config.timeout.is_zero() {
            return Err(FrrError::ZeroTimeout);
        }
        let connection = match config.transport {
            FrrTransport::VtySocket { socket } => Connection::VtySocket(VtySocket::new(socket)),
            FrrTransport::Vtysh { vtysh, extra_args } => {
                vtysh::validate_extra_args(&extra_args)?;
                Connection::Vtysh(Vtysh::new(vtysh, extra_args))
            }
        };
        let (gate, metrics) = match config.announce {
            FrrAnnounce::Network => (None, None),
            FrrAnnounce::KernelRoute(gate) => {
                if vrf.is_some() {
                    return Err(FrrError::KernelRouteInVrf);
                }
                (Some(Gate::new(gate)?), None)
            }
            FrrAnnounce::KernelMetric(gate, metrics) => {
                if vrf.is_some() {
                    return Err(FrrError::KernelRouteInVrf);
                }
                if let Some(reason) = metrics.problem() {
                    return Err(FrrError::InvalidKernelMetrics { reason });
                }
                (Some(Gate::new(gate)?), Some(metrics))
            }
        };
        Ok(FrrBackend {
            connection,
            configured_asn,
            vrf,
            timeout: config.timeout,
            known_asn: Mutex::new(None),
            gate,
            metrics,
        })
    }

    /// With `announce_via = "kernel-metric"`: the gate and the metric of `network`'s variant (an error
    /// for a variant without one); `None` in the other modes.
    fn metric_gate(&self, network: &FrrNetwork) -> Option<Result<(&Gate, u32), FrrError>> {
        let metrics = self.metrics.as_ref()?;
        let gate = self.gate.as_ref()?;
        Some(
            metrics
                .metric(network.route_map.as_ref())
                .map(|m| (gate, m))
                .ok_or_else(|| FrrError::NoKernelMetric {
                    variant: network.to_string(),
                    known: metrics.describe(),
                }),
        )
    }

    /// The VRF this backend configures, `None` for the default VRF.
    pub fn vrf(&self) -> Option<&VrfName> {
        self.vrf.as_ref()
    }

    /// `vrf V ` for show commands, empty for the default VRF.
    fn show_vrf(&self) -> String {
        self.vrf
            .as_ref()
            .map_or_else(String::new, |v| format!("vrf {v} "))
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.timeout
    }

    async fn run(
        &self,
        lines: &[String],
        deadline: Instant,
        config: bool,
    ) -> Result<String, FrrError> {
        self.connection
            .run(lines, deadline, self.timeout, config)
            .await
    }

    /// The local ASN of the BGP instance: discovered from FRR, or the configured one once FRR confirmed
    /// it. Cached after the first success.
    pub async fn asn(&self) -> Result<Asn, FrrError> {
        self.asn_by(self.deadline()).await
    }

    async fn asn_by(&self, deadline: Instant) -> Result<Asn, FrrError> {
        if let Some(asn) = *self.known_asn.lock().unwrap_or_else(|e| e.into_inner()) {
            return Ok(asn);
        }
        let running = self.discover_asn(deadline).await?;
        if let Some(configured) = self.configured_asn
            && configured != running
        {
            return Err(FrrError::AsnMismatch {
                running: running.to_string(),
                command: self.connection.render(&[self.summary_command()]),
            });
        }
        *self.known_asn.lock().unwrap_or_else(|e| e.into_inner()) = Some(running);
        Ok(running)
    }

    fn summary_command(&self) -> String {
        format!("show bgp {}summary json", self.show_vrf())
    }

    async fn discover_asn(&self, deadline: Instant) -> Result<Asn, FrrError> {
        let lines = [self.summary_command()];
        let out = self.run(&lines, deadline, false).await?;
        let bad = |reason: ReadbackError, out: &str| FrrError::BadOutput {
            command: self.connection.render(&lines),
            reason: reason.to_string(),
            output: vtysh::quote_output(out),
        };
        if let Some(asn) = readback::summary_asn(&out).map_err(|r| bad(r, &out))? {
            return Asn::new(asn);
        }
        let lines = ["show running-config".to_owned()];
        let config = self.run(&lines, deadline, false).await?;
        match readback::running_config_asn(&config, self.vrf.as_ref().map(VrfName::as_str)) {
            Some(asn) => Asn::new(asn),
            None => Err(FrrError::NoBgpInstance {
                vrf: self.vrf.as_ref().map(ToString::to_string),
            }),
        }
    }

    /// Forgets the cached ASN after an error that suggests FRR changed under us (restart, reconfig).
    fn forget_asn_on(&self, err: &FrrError) {
        if matches!(
            err,
            FrrError::AsnMismatch { .. }
                | FrrError::NoBgpInstance { .. }
                | FrrError::DaemonNotRunning { .. }
        ) {
            *self.known_asn.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }

    /// The `configure terminal` / `router bgp` prefix of every configuration call.
    fn config_preamble(&self, asn: Asn) -> Vec<String> {
        let router = match &self.vrf {
            None => format!("router bgp {asn}"),
            Some(vrf) => format!("router bgp {asn} vrf {vrf}"),
        };
        vec!["configure terminal".to_owned(), router]
    }

    /// Makes the variant `network` (prefix + route-map) announced or withdrawn. Idempotent.
    ///
    /// Announcing runs `network P [route-map M]` unless P is already configured with exactly M; when P is
    /// configured with another route-map this switches it in place (an update at the peer, no
    /// withdrawal). Withdrawing runs `no network P` only while P is configured with exactly M; when
    /// another variant of P is active (or none), this variant is already withdrawn and nothing is sent.
    pub async fn set_network(
        &self,
        network: &FrrNetwork,
        state: RouteState,
    ) -> Result<Timed<()>, FrrError> {
        types::validate_prefix(&network.prefix)?;
        let started = std::time::Instant::now();
        let deadline = self.deadline();
        let result = self.set_network_by(network, state, deadline).await;
        if let Err(err) = &result {
            self.forget_asn_on(err);
        }
        result.map(|()| Timed {
            value: (),
            elapsed: started.elapsed(),
        })
    }

    async fn set_network_by(
        &self,
        network: &FrrNetwork,
        state: RouteState,
        deadline: Instant,
    ) -> Result<(), FrrError> {
        if let Some(found) = self.metric_gate(network) {
            let (gate, metric) = found?;
            return match state {
                RouteState::Announced => {
                    gate.switch_metric(&network.prefix, metric, deadline).await
                }
                RouteState::Withdrawn => {
                    gate.remove_metric(&network.prefix, metric, deadline).await
                }
            };
        }
        let asn = self.asn_by(deadline).await?;
        let prefix = network.prefix;
        let wanted = network.route_map.as_ref().map(RouteMapName::as_str);
        let configured = self.configured_network(&prefix, deadline).await?;
        let this_variant = matches!(&configured, ConfiguredNetwork::Present { route_map } if route_map.as_deref() == wanted);
        // Gate first: announcing opens it before the statement exists (harmless: no statement, no route),
        // withdrawing closes it before the statement goes (the statement is removed too, in case something
        // else than the gate satisfies import-check). A gate that fails to close does not stop the
        // withdrawal: `no network` still runs, and the gate's error is returned afterwards.
        let mut gate_error = None;
        if let Some(gate) = &self.gate {
            match (state, &configured) {
                (RouteState::Announced, _) => gate.add(&prefix, deadline).await?,
                (RouteState::Withdrawn, ConfiguredNetwork::Absent) => {
                    return gate.remove(&prefix, deadline).await;
                }
                (RouteState::Withdrawn, _) if this_variant => {
                    gate_error = gate.remove(&prefix, deadline).await.err();
                }
                (RouteState::Withdrawn, _) => {}
            }
        }
        let command = match state {
            RouteState::Announced if this_variant => return Ok(()),
            RouteState::Announced => format!("network {network}"),
            // `no network P route-map M` (rather than `no network P`) lets FRR refuse the removal if the
            // route-map changed since the read above; for the plain variant FRR has no such check.
            RouteState::Withdrawn if this_variant => format!("no network {network}"),
            RouteState::Withdrawn => return Ok(()),
        };
        let mut lines = self.config_preamble(asn);
        lines.push(format!("address-family {} unicast", afi(&prefix)));
        lines.push(command);
        let result = match self.run(&lines, deadline, true).await {
            Ok(_) => Ok(()),
            Err(
                FrrError::NetworkNotConfigured { .. } | FrrError::NetworkRouteMapMismatch { .. },
            ) if state == RouteState::Withdrawn => Ok(()),
            Err(err) => Err(err),
        };
        // The statement's error first (the prefix may still be announced), then the gate's.
        result.and(gate_error.map_or(Ok(()), Err))
    }

    /// Whether `network prefix` is configured in this instance's address family, and with which route-map.
    async fn configured_network(
        &self,
        prefix: &IpNet,
        deadline: Instant,
    ) -> Result<ConfiguredNetwork, FrrError> {
        let config = self
            .run(&[self.connection.bgpd_running_config()], deadline, false)
            .await?;
        if let Some(configured) =
            readback::configured_network(&config, self.vrf.as_ref().map(VrfName::as_str), prefix)
        {
            return Ok(configured);
        }
        // No `router bgp` block for this instance. vtysh exits 0 with bgpd's part missing when bgpd is
        // not running, so ask bgpd for something only it answers: its failure (not running, hung) is the error to report.
        self.run(&[self.summary_command()], deadline, false).await?;
        Err(FrrError::NoBgpInstance {
            vrf: self.vrf.as_ref().map(ToString::to_string),
        })
    }

    /// Reads whether the variant `network` is announced: P is configured with exactly its route-map and
    /// the path of the `network` statement is valid in the BGP table.
    pub async fn read_network(
        &self,
        network: &FrrNetwork,
    ) -> Result<Timed<TargetStatus>, FrrError> {
        types::validate_prefix(&network.prefix)?;
        let started = std::time::Instant::now();
        let deadline = self.deadline();
        if let Some(found) = self.metric_gate(network) {
            let (gate, metric) = found?;
            let (metrics, table) = tokio::join!(
                gate.metrics(&network.prefix, deadline),
                self.read_path(network.prefix, deadline, readback::redistributed_status),
            );
            let (metrics, mut table) = (metrics?, table?.0);
            if metrics.is_empty() && table.state == RouteState::Announced {
                // Right after nsbeacon deleted its route, bgpd may not have heard from zebra yet: look
                // again before calling it an announcement without nsbeacon's route.
                tokio::time::sleep_until(deadline.min(Instant::now() + REDISTRIBUTION_LAG)).await;
                table = self
                    .read_path(network.prefix, deadline, readback::redistributed_status)
                    .await?
                    .0;
            }
            return Ok(Timed {
                value: self.metric_status(network, metric, &metrics, table),
                elapsed: started.elapsed(),
            });
        }
        let gate = async {
            match &self.gate {
                None => Ok(None),
                Some(gate) => gate.present(&network.prefix, deadline).await.map(Some),
            }
        };
        let (configured, table, gate_open) = tokio::join!(
            self.configured_network(&network.prefix, deadline),
            self.read_network_path(network.prefix, deadline),
            gate,
        );
        let (configured, (table_status, _), gate_open) = (configured?, table?, gate_open?);
        let table_status = match gate_open {
            None => table_status,
            Some(open) => self.gated(network.prefix, table_status, open),
        };
        let wanted = network.route_map.as_ref().map(RouteMapName::as_str);
        let describe = |map: Option<&str>| {
            map.map_or_else(
                || "without a route-map".to_owned(),
                |m| format!("with route-map {m}"),
            )
        };
        let status = match configured {
            ConfiguredNetwork::Absent => TargetStatus {
                state: RouteState::Withdrawn,
                detail: format!("no `network {}` is configured", network.prefix),
            },
            ConfiguredNetwork::Present { route_map } if route_map.as_deref() != wanted => {
                TargetStatus {
                    state: RouteState::Withdrawn,
                    detail: format!(
                        "`network {}` is configured {}, not {} (another variant is active)",
                        network.prefix,
                        describe(route_map.as_deref()),
                        describe(wanted)
                    ),
                }
            }
            ConfiguredNetwork::Present { .. } => match (table_status.state, wanted) {
                (RouteState::Announced, Some(map)) => TargetStatus {
                    state: RouteState::Announced,
                    detail: format!("{} (route-map {map})", table_status.detail),
                },
                (RouteState::Withdrawn, Some(map)) => TargetStatus {
                    state: RouteState::Withdrawn,
                    detail: format!(
                        "`network {network}` is configured but {}: does route-map {map} exist in FRR and \
                         permit the prefix? (a missing or denying route-map keeps it out of the BGP table)",
                        table_status.detail
                    ),
                },
                (_, None) => table_status,
            },
        };
        Ok(Timed {
            value: status,
            elapsed: started.elapsed(),
        })
    }

    /// The path's status in kernel-route mode: what the BGP table says, explained by the gate's state.
    ///
    /// A valid path is announced whether or not the gate is open (that is what the peers get), but a
    /// valid path with the gate closed means something else satisfies import-check (the anycast address
    /// on `lo` as a connected route, a static route): the detail says so, and withdrawing removes the
    /// `network` statement as well.
    fn gated(&self, prefix: IpNet, table: TargetStatus, open: bool) -> TargetStatus {
        let protocol = self.gate.as_ref().map_or(0, Gate::protocol);
        match (table.state, open) {
            (RouteState::Announced, true) => TargetStatus {
                state: RouteState::Announced,
                detail: format!(
                    "{}; nsbeacon's kernel route (proto {protocol}) is present",
                    table.detail
                ),
            },
            (RouteState::Announced, false) => {
                tracing::warn!(
                    %prefix,
                    protocol,
                    "FRR announces the prefix without nsbeacon's kernel route: another route for exactly \
                     this prefix (usually the anycast address configured on lo, a connected route) satisfies \
                     bgp import-check, so the kernel-route gate cannot hold it back; make the address local \
                     with an AnyIP route instead (frr-templates/README.md)"
                );
                TargetStatus {
                    state: RouteState::Announced,
                    detail: format!(
                        "{}, WITHOUT nsbeacon's kernel route (proto {protocol}): another route for {prefix} \
                     satisfies bgp import-check (the anycast address on lo? a static route?), so the kernel-route \
                     gate does not hold this prefix back (frr-templates/README.md)",
                        table.detail
                    ),
                }
            }
            (RouteState::Withdrawn, false) => TargetStatus {
                state: RouteState::Withdrawn,
                detail: format!(
                    "{}; nsbeacon's kernel route (proto {protocol}) is absent",
                    table.detail
                ),
            },
            (RouteState::Withdrawn, true) => TargetStatus {
                state: RouteState::Withdrawn,
                detail: format!(
                    "{} although nsbeacon's kernel route (proto {protocol}) is present: does zebra run in the \
                     network namespace nsbeacon writes to, and is `bgp network import-check` on?",
                    table.detail
                ),
            },
        }
    }

    /// A variant's status with `announce_via = "kernel-metric"`: announced iff nsbeacon's kernel route
    /// with the lowest metric (the one zebra selects) has the variant's metric and bgpd has a valid
    /// redistributed path for the prefix. A redistributed path without any kernel route of nsbeacon's
    /// reads as announced for every variant, with a warning: something else announces the prefix.
    fn metric_status(
        &self,
        network: &FrrNetwork,
        metric: u32,
        own: &[u32],
        table: TargetStatus,
    ) -> TargetStatus {
        let prefix = network.prefix;
        let protocol = self.gate.as_ref().map_or(0, Gate::protocol);
        match (own.first(), table.state) {
            (None, RouteState::Announced) => {
                tracing::warn!(
                    %prefix,
                    protocol,
                    "FRR announces the prefix without nsbeacon's kernel route: another kernel route for \
                     exactly this prefix passes frr.conf's NSBEACON-KERNEL route-map"
                );
                TargetStatus {
                    state: RouteState::Announced,
                    detail: format!(
                        "{}, WITHOUT nsbeacon's kernel route (proto {protocol}): another kernel route for \
                         {prefix} passes the redistribute route-map (frr-templates/README.md)",
                        table.detail
                    ),
                }
            }
            (None, RouteState::Withdrawn) => TargetStatus {
                state: RouteState::Withdrawn,
                detail: format!(
                    "{}; nsbeacon's kernel route (proto {protocol}) is absent",
                    table.detail
                ),
            },
            (Some(active), _) if *active != metric => TargetStatus {
                state: RouteState::Withdrawn,
                detail: format!(
                    "nsbeacon's kernel route for {prefix} has metric {active}, not {metric} (another variant \
                     is active)"
                ),
            },
            (Some(_), RouteState::Announced) => TargetStatus {
                state: RouteState::Announced,
                detail: format!(
                    "{}; nsbeacon's kernel route (proto {protocol}, metric {metric}) is present",
                    table.detail
                ),
            },
            (Some(_), RouteState::Withdrawn) => TargetStatus {
                state: RouteState::Withdrawn,
                detail: format!(
                    "{} although nsbeacon's kernel route (proto {protocol}, metric {metric}) is present: \
                     does frr.conf have `redistribute kernel route-map NSBEACON-KERNEL-V4`/`-V6` mapping \
                     metric {metric}, does zebra run in nsbeacon's network namespace, and is {prefix} not \
                     also an interface address (a connected route wins over a kernel route)?",
                    table.detail
                ),
            },
        }
    }

    /// The status of the `network` path in the BGP table and whether one exists at all (valid or not).
    async fn read_network_path(
        &self,
        prefix: IpNet,
        deadline: Instant,
    ) -> Result<(TargetStatus, bool), FrrError> {
        self.read_path(prefix, deadline, readback::network_status)
            .await
    }

    /// Reads `show bgp ... P json` and parses it with `parse` (a `network` path or a redistributed one).
    async fn read_path(
        &self,
        prefix: IpNet,
        deadline: Instant,
        parse: fn(&IpNet, &str) -> Result<NetworkReadback, ReadbackError>,
    ) -> Result<(TargetStatus, bool), FrrError> {
        let lines = [format!(
            "show bgp {}{} unicast {prefix} json",
            self.show_vrf(),
            afi(&prefix)
        )];
        let out = self.run(&lines, deadline, false).await?;
        match parse(&prefix, &out) {
            Ok(NetworkReadback::Status { status, configured }) => Ok((status, configured)),
            Ok(NetworkReadback::UnknownVrf) => Err(FrrError::NoBgpInstance {
                vrf: self.vrf.as_ref().map(ToString::to_string),
            }),
            Err(reason) => Err(FrrError::BadOutput {
                command: self.connection.render(&lines),
                reason: reason.to_string(),
                output: vtysh::quote_output(&out),
            }),
        }
    }

    /// Shuts a neighbor down (withdrawn) or brings it back (announced). Idempotent.
    pub async fn set_neighbor(
        &self,
        neighbor: &FrrNeighbor,
        state: RouteState,
    ) -> Result<Timed<()>, FrrError> {
        types::validate_neighbor(neighbor)?;
        let started = std::time::Instant::now();
        let deadline = self.deadline();
        let result = async {
            let asn = self.asn_by(deadline).await?;
            let mut lines = self.config_preamble(asn);
            lines.push(match state {
                RouteState::Announced => format!("no neighbor {neighbor} shutdown"),
                RouteState::Withdrawn => format!("neighbor {neighbor} shutdown"),
            });
            self.run(&lines, deadline, true).await.map(drop)
        }
        .await;
        if let Err(err) = &result {
            self.forget_asn_on(err);
        }
        result.map(|()| Timed {
            value: (),
            elapsed: started.elapsed(),
        })
    }

    /// Reads a neighbor's admin state (`neighbor X shutdown` or not); the session state is in the detail.
    pub async fn read_neighbor(
        &self,
        neighbor: &FrrNeighbor,
    ) -> Result<Timed<TargetStatus>, FrrError> {
        types::validate_neighbor(neighbor)?;
        let started = std::time::Instant::now();
        let lines = [format!(
            "show bgp {}neighbors {neighbor} json",
            self.show_vrf()
        )];
        let out = self.run(&lines, self.deadline(), false).await?;
        let status = match readback::neighbor_status(&neighbor.to_string(), &out) {
            Ok(NeighborReadback::Status(status)) => status,
            Ok(NeighborReadback::NoSuchNeighbor) => {
                return Err(FrrError::UnknownNeighbor {
                    command: self.connection.render(&lines),
                });
            }
            Ok(NeighborReadback::NoInstance) => {
                return Err(FrrError::NoBgpInstance {
                    vrf: self.vrf.as_ref().map(ToString::to_string),
                });
            }
            Err(reason) => {
                return Err(FrrError::BadOutput {
                    command: self.connection.render(&lines),
                    reason: reason.to_string(),
                    output: vtysh::quote_output(&out),
                });
            }
        };
        Ok(Timed {
            value: status,
            elapsed: started.elapsed(),
        })
    }

    /// For every BGP neighbor: its session, its BFD state where bgpd reports one, and whether `target` is
    /// exported to it (in its adj-RIB-out, after the outbound policy). All commands share one deadline.
    ///
    /// A network variant counts as exported only while it is the configured variant of its prefix and the
    /// prefix is in the neighbor's advertised routes of its address family; a neighbor target, while its
    /// session is established and anything at all is advertised on it. A neighbor that is not established
    /// exports nothing and is not asked.
    pub async fn exports_of(
        &self,
        target: &RouteTarget,
    ) -> Result<Timed<Vec<PeerExport>>, RoutingError> {
        let started = std::time::Instant::now();
        let deadline = self.deadline();
        let sessions = self.neighbor_sessions(deadline).await?;
        let mut exports = Vec::with_capacity(sessions.len());
        match target {
            RouteTarget::FrrNetwork(network) => {
                types::validate_prefix(&network.prefix)?;
                let wanted = network.route_map.as_ref().map(RouteMapName::as_str);
                let active = match self.metric_gate(network) {
                    // The variant is active while nsbeacon's selected kernel route has its metric; with no
                    // kernel route of nsbeacon's at all, whatever bgpd exports is reported (a defeated gate).
                    Some(found) => {
                        let (gate, metric) = found?;
                        gate.metrics(&network.prefix, deadline)
                            .await?
                            .first()
                            .is_none_or(|active| *active == metric)
                    }
                    None => matches!(
                        self.configured_network(&network.prefix, deadline).await?,
                        ConfiguredNetwork::Present { route_map } if route_map.as_deref() == wanted
                    ),
                };
                let family = family_key(&network.prefix);
                for session in sessions {
                    let exported = active
                        && session.state == "Established"
                        && session.families.contains(family)
                        && self
                            .advertised(&session.peer, afi(&network.prefix), deadline)
                            .await?
                            .contains(&network.prefix);
                    exports.push(peer_export(session, exported));
                }
            }
            RouteTarget::FrrNeighbor(neighbor) => {
                types::validate_neighbor(neighbor)?;
                let name = neighbor.to_string();
                for session in sessions.into_iter().filter(|s| s.peer == name) {
                    let mut exported = false;
                    if session.state == "Established" {
                        for (key, afi) in [("ipv4Unicast", "ipv4"), ("ipv6Unicast", "ipv6")] {
                            if session.families.contains(key)
                                && !self
                                    .advertised(&session.peer, afi, deadline)
                                    .await?
                                    .is_empty()
                            {
                                exported = true;
                            }
                        }
                    }
                    exports.push(peer_export(session, exported));
                }
            }
            other => {
                return Err(RoutingError::UnsupportedTarget {
                    target: other.to_string(),
                    backend: "frr",
                });
            }
        }
        Ok(Timed {
            value: exports,
            elapsed: started.elapsed(),
        })
    }

    /// Every neighbor of the instance with its session.
    async fn neighbor_sessions(&self, deadline: Instant) -> Result<Vec<NeighborSession>, FrrError> {
        let lines = [format!("show bgp {}neighbors json", self.show_vrf())];
        let out = self.run(&lines, deadline, false).await?;
        readback::neighbor_sessions(&out).map_err(|reason| FrrError::BadOutput {
            command: self.connection.render(&lines),
            reason: reason.to_string(),
            output: vtysh::quote_output(&out),
        })
    }

    /// The prefixes bgpd advertises to `peer` in `afi` unicast (empty if the neighbor went away).
    async fn advertised(
        &self,
        peer: &str,
        afi: &str,
        deadline: Instant,
    ) -> Result<std::collections::BTreeSet<IpNet>, FrrError> {
        // `peer` comes from bgpd's own JSON keys; check it like any neighbor before it goes into a command.
        let neighbor: FrrNeighbor = peer.parse()?;
        let lines = [format!(
            "show bgp {}{afi} unicast neighbors {neighbor} advertised-routes json",
            self.show_vrf()
        )];
        let out = self.run(&lines, deadline, false).await?;
        match readback::advertised_routes(&out) {
            Ok(Advertised::Prefixes(prefixes)) => Ok(prefixes),
            Ok(Advertised::NoSuchNeighbor) => Ok(std::collections::BTreeSet::new()),
            Err(reason) => Err(FrrError::BadOutput {
                command: self.connection.render(&lines),
                reason: reason.to_string(),
                output: vtysh::quote_output(&out),
            }),
        }
    }

    /// Version and BGP sessions in one call, as an error if FRR does not answer properly.
    async fn try_health(&self) -> Result<BackendHealth, FrrError> {
        let lines = ["show version".to_owned(), self.summary_command()];
        let out = self.run(&lines, self.deadline(), false).await?;
        let bad = |reason: ReadbackError| FrrError::BadOutput {
            command: self.connection.render(&lines),
            reason: reason.to_string(),
            output: vtysh::quote_output(&out),
        };
        let json_start = out
            .find("\n{")
            .map(|i| i + 1)
            .ok_or_else(|| bad(ReadbackError::NoJsonAfterBanner))?;
        let (banner, json) = out.split_at(json_start);
        let (sessions_up, sessions_total) = readback::summary_sessions(json).map_err(bad)?;
        Ok(BackendHealth {
            reachable: true,
            daemon_version: readback::version(banner),
            sessions_up,
            sessions_total,
            error: None,
        })
    }
}

impl RoutingBackend for FrrBackend {
    fn name(&self) -> &'static str {
        "frr"
    }

    async fn set(
        &self,
        target: &RouteTarget,
        state: RouteState,
    ) -> Result<Timed<()>, RoutingError> {
        match target {
            RouteTarget::FrrNetwork(network) => Ok(self.set_network(network, state).await?),
            RouteTarget::FrrNeighbor(neighbor) => Ok(self.set_neighbor(neighbor, state).await?),
            other => Err(RoutingError::UnsupportedTarget {
                target: other.to_string(),
                backend: "frr",
            }),
        }
    }

    async fn read(&self, target: &RouteTarget) -> Result<Timed<TargetStatus>, RoutingError> {
        match target {
            RouteTarget::FrrNetwork(network) => Ok(self.read_network(network).await?),
            RouteTarget::FrrNeighbor(neighbor) => Ok(self.read_neighbor(neighbor).await?),
            other => Err(RoutingError::UnsupportedTarget {
                target: other.to_string(),
                backend: "frr",
            }),
        }
    }

    async fn exports(&self, target: &RouteTarget) -> Result<Timed<Vec<PeerExport>>, RoutingError> {
        self.exports_of(target).await
    }

    async fn health(&self) -> BackendHealth {
        match self.try_health().await {
            Ok(health) => health,
            Err(err) => BackendHealth {
                reachable: false,
                error: Some(err.to_string()),
                ..BackendHealth::default()
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_validation() {
        assert!(FrrBackend::new(FrrConfig::default()).is_ok());
        let bad = [
            FrrConfig {
                asn: Some(0),
                ..FrrConfig::default()
            },
            FrrConfig {
                vrf: Some("blue green".into()),
                ..FrrConfig::default()
            },
            FrrConfig {
                transport: FrrTransport::Vtysh {
                    vtysh: "vtysh".into(),
                    extra_args: vec!["-c".into(), "write memory".into()],
                },
                ..FrrConfig::default()
            },
            FrrConfig {
                timeout: Duration::ZERO,
                ..FrrConfig::default()
            },
            // The gate writes the main table, which zebra reads for the default VRF only.
            FrrConfig {
                vrf: Some("blue".into()),
                announce: FrrAnnounce::KernelRoute(super::super::KernelRouteGate::default()),
                ..FrrConfig::default()
            },
            FrrConfig {
                announce: FrrAnnounce::KernelRoute(super::super::KernelRouteGate {
                    protocol: 186,
                    netns: None,
                }),
                ..FrrConfig::default()
            },
        ];
        for config in bad {
            assert!(
                FrrBackend::new(config.clone()).is_err(),
                "{config:?} accepted"
            );
        }
    }
}
