//! FRR, over one persistent connection to bgpd's vty socket (the default) or through `vtysh` (argv, never
//! a shell).
//!
//! Two ways to reach bgpd ([`FrrTransport`]), with the same commands and the same errors:
//! - [`FrrTransport::VtySocket`]: one persistent connection to `bgpd.vty`, the socket `vtysh` itself
//!   connects to, speaking its framing (a NUL-terminated command, the output followed by `\0\0\0` and
//!   FRR's status code). About 1 ms per operation, so a withdrawal reaches the peer ~50 ms after the
//!   decision (bgpd's own work-queue hold). It needs the same access as vtysh (group `frrvty`).
//! - [`FrrTransport::Vtysh`]: one `vtysh -c ...` process per call, FRR's documented command-line client.
//!   Each process costs 30-40 ms (it connects to every daemon and reads `vtysh.conf`); a withdrawal takes
//!   two calls (read, then write), so the peer sees it ~120 ms after the decision. Use it when the vty
//!   framing must not be relied on, or to reach an instance only `vtysh -N`/`--vty_socket` can name.
//!
//! Two kinds of targets:
//! - [`RouteTarget::FrrNetwork`]: `network P [route-map M]` / `no network P` under `router bgp ASN [vrf V]`
//!   and `address-family ipv4|ipv6 unicast`. The BGP session stays up and only the prefix comes and goes.
//!   A target is one *variant* of a prefix ([`FrrNetwork`]: the prefix and an optional route-map); FRR holds at most one `network` statement per prefix, so the
//!   healthy route (no route-map) and a degraded one (`route-map NSBEACON-DEGRADED`, frr-templates/) are
//!   variants of the same statement, and `network P route-map M` switches between them in place (the peer
//!   sees an update, never a withdrawal). Read-back: announced iff bgpd's running config has
//!   `network P` with exactly that route-map (the BGP JSON does not tell the route-map) and
//!   `show bgp [vrf V] ipv4|ipv6 unicast P json` has a valid path from a `network` statement.
//! - [`RouteTarget::FrrNeighbor`]: `neighbor X shutdown` / `no neighbor X shutdown`. Withdrawing drops every
//!   prefix on that session and looks like a flap upstream; re-announcing waits for the session to
//!   re-establish (about 2 s). Read-back: `adminShutDown` in `show bgp [vrf V] neighbors X json`.
//!
//! Idempotence and variants: setting a network first reads the running config. Announcing `(P, M)` is a
//! no-op when P is configured with exactly M, and otherwise `network P [route-map M]` (which replaces
//! another route-map, or clears it for the plain variant). Withdrawing `(P, M)` sends `no network P
//! [route-map M]` only when P is configured with exactly M: when another variant of P is active, `(P, M)`
//! is already withdrawn and removing the statement would take the other variant's route down too. So the
//! daemon's make-before-break (announce the new variant, then withdraw the old one) switches P in place,
//! with no gap at the peer. `% Can't find static route specified` and `% route-map name doesn't match static
//! route` on a withdrawal (someone changed the config between the read and the command) also count as
//! "already withdrawn". `neighbor X [no] shutdown` is idempotent in FRR itself.
//!
//! The local ASN is read from `show bgp [vrf V] summary json` (or, for an instance without peers, from the
//! `router bgp` line of `show running-config`) and cached; a configured ASN is checked against it once, so
//! `router bgp ASN` never creates a new BGP instance by accident.
//!
//! nsbeacon never runs `write memory`: the running configuration is the state, and after an FRR restart the
//! reconciler asserts it again.

mod readback;
mod types;
mod vty_socket;
mod vtysh;

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use ipnet::IpNet;
use tokio::time::Instant;

use crate::{
    BackendHealth, FrrNeighbor, FrrNetwork, RouteMapName, RouteState, RouteTarget, RoutingBackend,
    RoutingError, TargetStatus, Timed,
};
use readback::{ConfiguredNetwork, NeighborReadback, NetworkReadback};
pub use types::{Asn, VrfName};
use vty_socket::VtySocket;
use vtysh::Vtysh;

/// Errors from the FRR backend. Each names the vtysh command (as a pasteable command line) or the bad input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrrError {
    /// An ASN that FRR would reject.
    #[error("invalid BGP AS number {value:?}: {reason}")]
    InvalidAsn {
        /// The ASN as given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A VRF name that is not safe or not meaningful on a vtysh command line.
    #[error("invalid FRR VRF name {name:?}: {reason}")]
    InvalidVrf {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A neighbor that is neither an IP address nor a valid interface name.
    #[error("invalid FRR BGP neighbor {value:?}: {reason}")]
    InvalidNeighbor {
        /// The neighbor as given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A prefix FRR would silently change (host bits set).
    #[error("invalid prefix {prefix} for an FRR `network` statement: {reason}")]
    InvalidPrefix {
        /// The prefix as given.
        prefix: IpNet,
        /// What is wrong with it.
        reason: String,
    },
    /// An extra vtysh argument outside the allowed instance-selecting options.
    #[error("vtysh argument {arg:?} is not allowed: {reason}")]
    InvalidExtraArg {
        /// The argument.
        arg: String,
        /// Why it is refused.
        reason: String,
    },
    /// A zero timeout: every vtysh call would be killed at once.
    #[error("the FRR command timeout must be greater than zero")]
    ZeroTimeout,
    /// The vtysh binary does not exist.
    #[error("vtysh not found at {path}: install FRR (Debian package `frr`) or set the vtysh path")]
    VtyshNotFound {
        /// The configured path.
        path: PathBuf,
    },
    /// The vtysh binary exists but may not be executed by this user.
    #[error("permission denied executing {path}: make it executable for the user nsbeacon runs as")]
    VtyshNotExecutable {
        /// The configured path.
        path: PathBuf,
    },
    /// vtysh could not be started for another reason.
    #[error("failed to start {path}: {source}")]
    Spawn {
        /// The configured path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Reading vtysh's output or waiting for it failed.
    #[error("I/O error running `{command}`: {source}")]
    Io {
        /// The vtysh command line.
        command: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// vtysh did not finish in time and was killed.
    #[error(
        "`{command}` did not finish within {timeout:?} (vtysh is killed, a vty connection dropped): is an FRR \
         daemon hung or overloaded?"
    )]
    Timeout {
        /// The vtysh command line.
        command: String,
        /// The configured per-operation timeout.
        timeout: Duration,
    },
    /// vtysh could not reach any FRR daemon.
    #[error(
        "`{command}`: no FRR daemon reachable ({output}): is FRR running, and does --vty_socket/-N point at \
         its socket directory?"
    )]
    NotReachable {
        /// The vtysh command line.
        command: String,
        /// What vtysh printed.
        output: String,
    },
    /// vtysh may not connect to the daemons' vty sockets.
    #[error(
        "`{command}`: permission denied on FRR's vty sockets ({output}): run nsbeacon as root or as a member \
         of the group owning the sockets (Debian: `frrvty`)"
    )]
    SocketPermissionDenied {
        /// The vtysh command line.
        command: String,
        /// What vtysh printed.
        output: String,
    },
    /// One FRR daemon the command needs (usually bgpd) is not running.
    #[error("`{command}`: FRR daemon {daemon} is not running: start it (systemctl restart frr)")]
    DaemonNotRunning {
        /// The daemon vtysh named.
        daemon: String,
        /// The vtysh command line.
        command: String,
    },
    /// FRR did not understand a command (e.g. a keyword this FRR version lacks).
    #[error("`{command}`: FRR rejected the command as unknown ({output})")]
    UnknownCommand {
        /// The vtysh command line.
        command: String,
        /// What vtysh printed.
        output: String,
    },
    /// `no network P` for a P that is not configured. The backend treats it as already withdrawn.
    #[error("`{command}`: the network is not configured (% Can't find static route specified)")]
    NetworkNotConfigured {
        /// The vtysh command line.
        command: String,
    },
    /// `no network P route-map M` while P carries another route-map: FRR refused to remove it. The backend
    /// treats it as "this variant is already withdrawn" (another variant is active).
    #[error(
        "`{command}`: the network is configured with another route-map (% route-map name doesn't match \
         static route)"
    )]
    NetworkRouteMapMismatch {
        /// The vtysh command line.
        command: String,
    },
    /// The BGP instance runs with another ASN than the one configured for nsbeacon.
    #[error(
        "`{command}`: FRR's BGP instance runs as AS {running}, not the configured ASN: fix the ASN in \
         nsbeacon's config or leave it unset to discover it"
    )]
    AsnMismatch {
        /// The ASN FRR reports.
        running: String,
        /// The vtysh command line.
        command: String,
    },
    /// There is no `router bgp` instance (in this VRF) to configure.
    #[error(
        "no FRR BGP instance {}: configure `router bgp ASN{}` in FRR first (nsbeacon never creates one)",
        .vrf.as_ref().map_or_else(|| "in the default VRF".to_owned(), |v| format!("in VRF {v}")),
        .vrf.as_ref().map_or_else(String::new, |v| format!(" vrf {v}"))
    )]
    NoBgpInstance {
        /// The VRF, if not the default one.
        vrf: Option<String>,
    },
    /// The neighbor is not configured in FRR.
    #[error(
        "`{command}`: the BGP neighbor is not configured in FRR (add `neighbor X remote-as ...` first)"
    )]
    UnknownNeighbor {
        /// The vtysh command line.
        command: String,
    },
    /// bgpd's vty socket does not exist.
    #[error(
        "FRR's vty socket {socket} does not exist: is bgpd running? (Debian: /run/frr/bgpd.vty; for another \
         instance set the backend's socket to its bgpd.vty)"
    )]
    VtySocketMissing {
        /// The configured socket path.
        socket: PathBuf,
    },
    /// The operating system refused access to bgpd's vty socket.
    #[error("permission denied connecting to FRR's vty socket {socket} ({owner}): {hint}")]
    VtyPermissionDenied {
        /// The configured socket path.
        socket: PathBuf,
        /// The socket's owner, group and mode.
        owner: String,
        /// What to change.
        hint: String,
    },
    /// Connecting to bgpd's vty socket failed for another reason.
    #[error("cannot connect to FRR's vty socket {socket}: {reason}")]
    VtyConnect {
        /// The configured socket path.
        socket: PathBuf,
        /// The OS error.
        reason: String,
    },
    /// The socket answered, but not in FRR's vty framing (e.g. it is BIRD's control socket).
    #[error(
        "{socket} is not an FRR vty socket (it sent {received:?}): point the backend's socket at bgpd.vty"
    )]
    NotAVtySocket {
        /// The configured socket path.
        socket: PathBuf,
        /// The start of what it sent.
        received: String,
    },
    /// bgpd closed the vty connection in the middle of a command (bgpd stopped or crashed).
    #[error(
        "FRR closed the vty connection {socket} during `{command}`: bgpd stopped or restarted; the command \
         may or may not have taken effect (the reconciler reads the state back)"
    )]
    VtyDisconnected {
        /// The configured socket path.
        socket: PathBuf,
        /// The command that was running.
        command: String,
    },
    /// vtysh printed something that is not the JSON/text the backend expects.
    #[error("`{command}`: unexpected output ({reason}): {output}")]
    BadOutput {
        /// The vtysh command line.
        command: String,
        /// What did not match.
        reason: String,
        /// What vtysh printed (shortened).
        output: String,
    },
    /// vtysh failed in a way not recognised above.
    #[error("`{command}` failed (exit status {status:?}): {output}")]
    CommandFailed {
        /// The vtysh command line.
        command: String,
        /// vtysh's exit code (`None` if killed by a signal).
        status: Option<i32>,
        /// What vtysh printed (shortened).
        output: String,
    },
}

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

/// How to reach FRR. The daemon builds this from its config file; [`FrrBackend::new`] validates it.
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
}

impl Default for FrrConfig {
    /// bgpd's default vty socket, the default VRF, ASN discovered, 5 s per operation.
    fn default() -> FrrConfig {
        FrrConfig {
            transport: FrrTransport::default(),
            asn: None,
            vrf: None,
            timeout: Duration::from_secs(5),
        }
    }
}

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
        Ok(FrrBackend {
            connection,
            configured_asn,
            vrf,
            timeout: config.timeout,
            known_asn: Mutex::new(None),
        })
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
        let bad = |reason: String, out: &str| FrrError::BadOutput {
            command: self.connection.render(&lines),
            reason,
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
        let asn = self.asn_by(deadline).await?;
        let prefix = network.prefix;
        let wanted = network.route_map.as_ref().map(RouteMapName::as_str);
        let configured = self.configured_network(&prefix, deadline).await?;
        let this_variant = matches!(&configured, ConfiguredNetwork::Present { route_map } if route_map.as_deref() == wanted);
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
        match self.run(&lines, deadline, true).await {
            Ok(_) => Ok(()),
            Err(
                FrrError::NetworkNotConfigured { .. } | FrrError::NetworkRouteMapMismatch { .. },
            ) if state == RouteState::Withdrawn => Ok(()),
            Err(err) => Err(err),
        }
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
        let (configured, table) = tokio::join!(
            self.configured_network(&network.prefix, deadline),
            self.read_network_path(network.prefix, deadline),
        );
        let (configured, (table_status, _)) = (configured?, table?);
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

    /// The status of the `network` path in the BGP table and whether one exists at all (valid or not).
    async fn read_network_path(
        &self,
        prefix: IpNet,
        deadline: Instant,
    ) -> Result<(TargetStatus, bool), FrrError> {
        let lines = [format!(
            "show bgp {}{} unicast {prefix} json",
            self.show_vrf(),
            afi(&prefix)
        )];
        let out = self.run(&lines, deadline, false).await?;
        match readback::network_status(&prefix, &out) {
            Ok(NetworkReadback::Status { status, configured }) => Ok((status, configured)),
            Ok(NetworkReadback::UnknownVrf) => Err(FrrError::NoBgpInstance {
                vrf: self.vrf.as_ref().map(ToString::to_string),
            }),
            Err(reason) => Err(FrrError::BadOutput {
                command: self.connection.render(&lines),
                reason,
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
                    reason,
                    output: vtysh::quote_output(&out),
                });
            }
        };
        Ok(Timed {
            value: status,
            elapsed: started.elapsed(),
        })
    }

    /// Version and BGP sessions in one call, as an error if FRR does not answer properly.
    async fn try_health(&self) -> Result<BackendHealth, FrrError> {
        let lines = ["show version".to_owned(), self.summary_command()];
        let out = self.run(&lines, self.deadline(), false).await?;
        let bad = |reason: String| FrrError::BadOutput {
            command: self.connection.render(&lines),
            reason,
            output: vtysh::quote_output(&out),
        };
        let json_start = out
            .find("\n{")
            .map(|i| i + 1)
            .ok_or_else(|| bad("no JSON after the version banner".into()))?;
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
        ];
        for config in bad {
            assert!(
                FrrBackend::new(config.clone()).is_err(),
                "{config:?} accepted"
            );
        }
    }

    #[test]
    fn no_instance_message() {
        let msg = FrrError::NoBgpInstance {
            vrf: Some("blue".into()),
        }
        .to_string();
        assert!(
            msg.contains("in VRF blue") && msg.contains("router bgp ASN vrf blue"),
            "{msg}"
        );
    }
}
