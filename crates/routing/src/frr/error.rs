//! [`FrrError`]: every way the FRR backend fails, each naming the command (as an operator could paste it) or
//! the bad input, so a log line says what to fix.

use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

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
    /// The kernel-route gate with a BGP instance in a VRF: zebra would read the VRF's own table, not the
    /// main table nsbeacon writes to.
    #[error(
        "announcing through kernel routes is only supported for the default VRF's BGP instance: use the \
         `network` mechanism with a VRF"
    )]
    KernelRouteInVrf,
    /// A kernel-metric table that cannot be used.
    #[error("the kernel-route metrics of the variants cannot be used: {reason}")]
    InvalidKernelMetrics {
        /// What is wrong.
        reason: String,
    },
    /// With `announce_via = "kernel-metric"`: a variant (route-map) that has no kernel-route metric, so
    /// nsbeacon cannot express it in its kernel route.
    #[error(
        "{variant} has no kernel-route metric with announce_via = \"kernel-metric\": the variants are {known} \
         (frr.conf's NSBEACON-KERNEL route-maps map each metric to its variant)"
    )]
    NoKernelMetric {
        /// The target as written.
        variant: String,
        /// The variants that have one.
        known: String,
    },
    /// A protocol number that cannot mark nsbeacon's kernel routes.
    #[error(
        "kernel route protocol {protocol} cannot mark nsbeacon's routes: {reason}; pick an unused number \
         (default 53)"
    )]
    InvalidKernelProtocol {
        /// The number as given.
        protocol: u8,
        /// Why it is refused.
        reason: String,
    },
    /// The rtnetlink socket for the kernel-route gate could not be opened.
    #[error(
        "cannot open the rtnetlink socket for nsbeacon's kernel routes{}: {reason}",
        .netns.as_ref().map_or_else(String::new, |p| format!(" in network namespace {}", p.display()))
    )]
    KernelRouteSocket {
        /// The namespace file, when not nsbeacon's own namespace.
        netns: Option<PathBuf>,
        /// The OS error.
        reason: String,
    },
    /// The kernel refused to add, read or delete nsbeacon's route.
    #[error("cannot {operation} nsbeacon's kernel route for {prefix} (proto {protocol}): {reason}")]
    KernelRoute {
        /// `add`, `read` or `remove`.
        operation: &'static str,
        /// The anycast prefix.
        prefix: IpNet,
        /// nsbeacon's protocol number.
        protocol: u8,
        /// The kernel's answer.
        reason: String,
    },
    /// Another program's route for the prefix occupies the slot nsbeacon's route needs.
    #[error(
        "another route for {prefix} is in the main routing table with the same metric (not proto {protocol}), so \
         nsbeacon cannot add its own: remove it (`ip route show {prefix}`); nsbeacon never replaces another \
         program's route"
    )]
    KernelRouteConflict {
        /// The anycast prefix.
        prefix: IpNet,
        /// nsbeacon's protocol number.
        protocol: u8,
    },
    /// The kernel did not answer in time.
    #[error(
        "the kernel did not answer the {operation} of nsbeacon's route for {prefix} within {waited:?}"
    )]
    KernelRouteTimeout {
        /// `add`, `read` or `remove`.
        operation: &'static str,
        /// The anycast prefix.
        prefix: IpNet,
        /// How long nsbeacon waited.
        waited: Duration,
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

#[cfg(test)]
mod tests {
    use super::*;

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
