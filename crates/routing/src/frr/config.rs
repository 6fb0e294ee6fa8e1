//! How to reach FRR: [`FrrConfig`] and its [`FrrTransport`], as the daemon builds them from its config
//! file ([`FrrBackend::new`](super::FrrBackend::new) validates them).

use std::path::PathBuf;
use std::time::Duration;

use super::gate::KernelRouteGate;

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
