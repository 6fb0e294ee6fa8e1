//! `[backend]`: which BGP daemon nsbeacon drives and how it reaches it. Keys of the other backend (or of
//! the other FRR transport) are errors, so a config never silently ignores what the operator wrote.

use std::path::PathBuf;
use std::time::Duration;

use nsbeacon_routing::frr::{
    DEFAULT_KERNEL_ROUTE_PROTOCOL, FrrAnnounce, FrrTransport, KernelMetrics, KernelRouteGate,
    protocol_problem,
};

use super::raw::RawBackend;
use super::targets::PrefixPolicy;
use super::values::valid_ifname;
use super::{BackendKind, Validator};
use crate::config::{
    BackendConfig, DEFAULT_BGPD_VTY_SOCKET, DEFAULT_BIRD_SOCKET, DEFAULT_BIRD_TIMEOUT,
    DEFAULT_FRR_TIMEOUT, DEFAULT_VTYSH, MAX_TIMEOUT,
};

impl Validator<'_> {
    pub(super) fn backend(&mut self, raw: Option<&RawBackend>) -> Option<BackendConfig> {
        let Some(raw) = raw else {
            self.issue(
                "backend",
                "the [backend] table is missing",
                "add [backend] with kind = \"bird\" (and socket = \"/run/bird/bird.ctl\") or kind = \"frr\"",
            );
            return None;
        };
        let kind = self.backend_kind(raw.kind.as_deref())?;
        match kind {
            BackendKind::Bird => self.bird_backend(raw),
            BackendKind::Frr => self.frr_backend(raw),
        }
    }

    fn backend_kind(&mut self, raw: Option<&str>) -> Option<BackendKind> {
        const HINT: &str = "kind = \"bird\" (BIRD 2, control socket) or kind = \"frr\" (FRR, bgpd's vty socket or vtysh)";
        match raw {
            Some("bird") => Some(BackendKind::Bird),
            Some("frr") => Some(BackendKind::Frr),
            Some(other) => {
                self.issue(
                    "backend.kind",
                    format!("{other:?} is not a supported backend"),
                    format!("use {HINT}"),
                );
                None
            }
            None => {
                self.issue("backend.kind", "missing", format!("set {HINT}"));
                None
            }
        }
    }

    fn bird_backend(&mut self, raw: &RawBackend) -> Option<BackendConfig> {
        for (key, present) in [
            ("via", raw.via.is_some()),
            ("vtysh", raw.vtysh.is_some()),
            ("args", raw.args.is_some()),
            ("asn", raw.asn.is_some()),
            ("vrf", raw.vrf.is_some()),
            ("min_prefix_length_v4", raw.min_prefix_length_v4.is_some()),
            ("min_prefix_length_v6", raw.min_prefix_length_v6.is_some()),
            ("allow_default_route", raw.allow_default_route.is_some()),
            ("announce_via", raw.announce_via.is_some()),
            ("kernel_protocol", raw.kernel_protocol.is_some()),
        ] {
            if present {
                self.issue(
                    format!("backend.{key}"),
                    format!("`{key}` only applies to kind = \"frr\""),
                    "remove it, or switch the backend to frr",
                );
            }
        }
        let socket = match raw.socket.as_deref() {
            None => Some(PathBuf::from(DEFAULT_BIRD_SOCKET)),
            Some("") => {
                self.issue(
                    "backend.socket",
                    "empty path",
                    "give BIRD's control socket, e.g. /run/bird/bird.ctl (bird -s PATH)",
                );
                None
            }
            Some(s) => Some(PathBuf::from(s)),
        };
        let timeout = self.backend_timeout(raw, DEFAULT_BIRD_TIMEOUT);
        let decision_dir = self.bird_decision_dir(raw.decision_dir.as_deref());
        Some(BackendConfig::Bird {
            socket: socket?,
            timeout: timeout?,
            decision_dir: decision_dir?,
        })
    }

    /// `decision_dir`: `Some(None)` when unset (no decision files), `None` when invalid. It must be absolute,
    /// since the templates include an absolute path; it belongs on a tmpfs (/run), which README explains.
    fn bird_decision_dir(&mut self, raw: Option<&str>) -> Option<Option<PathBuf>> {
        match raw {
            None => Some(None),
            Some(dir) if dir.starts_with('/') && !dir.contains("..") => {
                Some(Some(PathBuf::from(dir)))
            }
            Some(dir) => {
                self.issue(
                    "backend.decision_dir",
                    format!("{dir:?} is not an absolute path without `..`"),
                    "use the directory the BIRD templates include, /run/nsbeacon/bird (on a tmpfs, so a reboot \
                     forgets every decision), or remove the key",
                );
                None
            }
        }
    }

    fn frr_backend(&mut self, raw: &RawBackend) -> Option<BackendConfig> {
        if raw.decision_dir.is_some() {
            self.issue(
                "backend.decision_dir",
                "`decision_dir` only applies to kind = \"bird\"",
                "remove it, or switch the backend to bird",
            );
        }
        let transport = self.frr_transport(raw);
        let asn = self.frr_asn(raw.asn);
        let vrf = self.frr_vrf(raw.vrf.as_deref());
        self.prefix_policy = self.prefix_policy(raw);
        let timeout = self.backend_timeout(raw, DEFAULT_FRR_TIMEOUT);
        let announce = self.frr_announce(raw);
        Some(BackendConfig::Frr {
            transport: transport?,
            asn: asn?,
            vrf: vrf?,
            timeout: timeout?,
            announce: announce?,
        })
    }

    /// FRR's `announce_via`: `"kernel-route"` (the default in the default VRF) gates the `network`
    /// statements of frr.conf with a kernel route of protocol `kernel_protocol`; `"kernel-metric"` has
    /// frr.conf redistribute that kernel route and carries the variant in its metric; `"network"` (the
    /// default with a `vrf`, where zebra does not read the main table) adds and removes the statements.
    fn frr_announce(&mut self, raw: &RawBackend) -> Option<FrrAnnounce> {
        self.frr_kernel_metrics = None;
        let (kernel_route, by_metric) = match raw.announce_via.as_deref() {
            None => (raw.vrf.is_none(), false),
            Some(mode @ ("kernel-route" | "kernel-metric")) => {
                if raw.vrf.is_some() {
                    self.issue(
                        "backend.announce_via",
                        format!("{mode:?} only works for the BGP instance of the default VRF"),
                        "use announce_via = \"network\" with a vrf, or remove vrf",
                    );
                    return None;
                }
                (true, mode == "kernel-metric")
            }
            Some("network") => (false, false),
            Some(other) => {
                self.issue(
                    "backend.announce_via",
                    format!("{other:?} is not a way to announce through FRR"),
                    "use announce_via = \"kernel-route\" (the default: frr.conf keeps the `network` lines, \
                     nsbeacon's kernel route opens bgp import-check), \"kernel-metric\" (frr.conf redistributes \
                     nsbeacon's kernel route, whose metric selects the variant: reload-proof while degraded too) \
                     or \"network\" (nsbeacon adds and removes `network` lines; an FRR reload withdraws until \
                     the next read-back)",
                );
                return None;
            }
        };
        if !kernel_route {
            if raw.kernel_protocol.is_some() {
                self.issue(
                    "backend.kernel_protocol",
                    "`kernel_protocol` only applies with announce_via = \"kernel-route\" or \"kernel-metric\"",
                    "remove it, or set announce_via = \"kernel-route\"",
                );
                return None;
            }
            return Some(FrrAnnounce::Network);
        }
        let protocol = match raw.kernel_protocol {
            None => DEFAULT_KERNEL_ROUTE_PROTOCOL,
            Some(n) => match u8::try_from(n) {
                Ok(p) => match protocol_problem(p) {
                    None => p,
                    Some(reason) => {
                        self.issue(
                            "backend.kernel_protocol",
                            format!("{p} cannot mark nsbeacon's routes: {reason}"),
                            format!(
                                "use an unused number such as the default {DEFAULT_KERNEL_ROUTE_PROTOCOL} \
                                 (see /etc/iproute2/rt_protos)"
                            ),
                        );
                        return None;
                    }
                },
                Err(_) => {
                    self.issue(
                        "backend.kernel_protocol",
                        format!("{n} is not a route protocol number"),
                        format!("use 5..=255 (default {DEFAULT_KERNEL_ROUTE_PROTOCOL})"),
                    );
                    return None;
                }
            },
        };
        if raw.allow_default_route == Some(true) {
            self.issue(
                "backend.allow_default_route",
                "a default route cannot be announced through the kernel-route gate: its kernel route would \
                 send all of the node's traffic into lo",
                "set announce_via = \"network\" to announce a default route, or remove allow_default_route",
            );
            return None;
        }
        let gate = KernelRouteGate {
            protocol,
            netns: None,
        };
        if by_metric {
            let metrics = KernelMetrics::default();
            self.frr_kernel_metrics = Some(metrics.clone());
            return Some(FrrAnnounce::KernelMetric(gate, metrics));
        }
        Some(FrrAnnounce::KernelRoute(gate))
    }

    /// `backend.timeout`, or `default` when unset; `None` when set but invalid.
    fn backend_timeout(&mut self, raw: &RawBackend, default: Duration) -> Option<Duration> {
        let timeout = self.duration_in(
            "backend.timeout",
            raw.timeout.as_deref(),
            Duration::from_millis(1),
            MAX_TIMEOUT,
        );
        timeout.or(raw.timeout.is_none().then_some(default))
    }

    /// `Some(None)` when unset (discovered from FRR), `None` when invalid.
    fn frr_asn(&mut self, raw: Option<i64>) -> Option<Option<u32>> {
        match raw {
            None => Some(None),
            Some(23456) => {
                self.issue(
                    "backend.asn",
                    "23456 is AS_TRANS (RFC 6793), not a real ASN",
                    "set the ASN of the local `router bgp`, or leave asn unset to discover it",
                );
                None
            }
            Some(asn) => match u32::try_from(asn) {
                Ok(asn) if asn > 0 => Some(Some(asn)),
                _ => {
                    self.issue(
                        "backend.asn",
                        format!("{asn} is not an AS number"),
                        "use 1..=4294967295, or leave asn unset to discover it from FRR",
                    );
                    None
                }
            },
        }
    }

    /// `Some(None)` when unset (the default VRF), `None` when invalid.
    fn frr_vrf(&mut self, raw: Option<&str>) -> Option<Option<String>> {
        match raw {
            None => Some(None),
            Some(name) if valid_ifname(name) => Some(Some(name.to_owned())),
            Some(name) => {
                self.issue(
                    "backend.vrf",
                    format!("{name:?} is not a valid VRF name"),
                    "VRF names are 1-15 characters of letters, digits, '_', '.', '-'; leave vrf unset for \
                     the default VRF",
                );
                None
            }
        }
    }

    /// FRR's `via`: bgpd's vty socket (default; `socket`) or vtysh (`vtysh`, `args`). Keys of the other
    /// transport are errors, so a config never silently ignores what the operator wrote.
    fn frr_transport(&mut self, raw: &RawBackend) -> Option<FrrTransport> {
        match raw.via.as_deref() {
            None | Some("socket") => self.frr_vty_socket(raw),
            Some("vtysh") => self.frr_vtysh(raw),
            Some(other) => {
                self.issue(
                    "backend.via",
                    format!("{other:?} is not a way to reach FRR"),
                    "use via = \"socket\" (bgpd's vty socket, the default) or via = \"vtysh\" (one vtysh process \
                     per call)",
                );
                None
            }
        }
    }

    fn frr_vty_socket(&mut self, raw: &RawBackend) -> Option<FrrTransport> {
        for (key, present) in [("vtysh", raw.vtysh.is_some()), ("args", raw.args.is_some())] {
            if present {
                self.issue(
                    format!("backend.{key}"),
                    format!("`{key}` only applies with via = \"vtysh\""),
                    "set via = \"vtysh\" to run vtysh, or remove it and give bgpd's vty socket as socket = \
                     \"DIR/bgpd.vty\" (vtysh --vty_socket DIR; -N NAME is /run/frr/NAME/bgpd.vty)",
                );
            }
        }
        let socket = match raw.socket.as_deref() {
            None => PathBuf::from(DEFAULT_BGPD_VTY_SOCKET),
            Some("") => {
                self.issue(
                    "backend.socket",
                    "empty path",
                    "give bgpd's vty socket, e.g. /run/frr/bgpd.vty",
                );
                return None;
            }
            Some(s) => PathBuf::from(s),
        };
        Some(FrrTransport::VtySocket { socket })
    }

    fn frr_vtysh(&mut self, raw: &RawBackend) -> Option<FrrTransport> {
        if raw.socket.is_some() {
            self.issue(
                "backend.socket",
                "`socket` does not apply with via = \"vtysh\"",
                "give vtysh's socket directory through args = [\"--vty_socket\", \"DIR\"], or remove via to talk to \
                 bgpd's socket directly",
            );
        }
        let vtysh = match raw.vtysh.as_deref() {
            None => Some(PathBuf::from(DEFAULT_VTYSH)),
            Some("") => {
                self.issue(
                    "backend.vtysh",
                    "empty path",
                    "give the vtysh binary, e.g. /usr/bin/vtysh",
                );
                None
            }
            Some(s) => Some(PathBuf::from(s)),
        };
        let args = raw.args.clone().unwrap_or_default();
        let args_ok = self.vtysh_args(&args);
        if raw.socket.is_some() || !args_ok {
            return None;
        }
        Some(FrrTransport::Vtysh {
            vtysh: vtysh?,
            extra_args: args,
        })
    }

    /// Checks every extra vtysh argument; `false` if any was rejected.
    fn vtysh_args(&mut self, args: &[String]) -> bool {
        let mut ok = true;
        for (i, arg) in args.iter().enumerate() {
            if arg.is_empty() {
                self.issue(format!("backend.args[{i}]"), "empty argument", "remove it");
                ok = false;
            } else if dangerous_vtysh_arg(arg) {
                self.issue(
                    format!("backend.args[{i}]"),
                    format!("{arg:?} would make vtysh run or write configuration on every call"),
                    "only pass connection options such as --vty_socket DIR or -N NAMESPACE; nsbeacon adds \
                     its own -c commands and never writes the startup config",
                );
                ok = false;
            }
        }
        ok
    }

    /// `min_prefix_length_v4`/`_v6` and `allow_default_route`: which FRR prefixes a typo must not turn
    /// into an announcement of a huge block or the default route.
    fn prefix_policy(&mut self, raw: &RawBackend) -> PrefixPolicy {
        let defaults = PrefixPolicy::default();
        let v4 = self.prefix_length(
            "backend.min_prefix_length_v4",
            raw.min_prefix_length_v4,
            32,
            defaults.min_v4,
        );
        let v6 = self.prefix_length(
            "backend.min_prefix_length_v6",
            raw.min_prefix_length_v6,
            128,
            defaults.min_v6,
        );
        PrefixPolicy {
            min_v4: v4,
            min_v6: v6,
            allow_default: raw.allow_default_route.unwrap_or(defaults.allow_default),
        }
    }

    fn prefix_length(&mut self, path: &str, raw: Option<i64>, max: u8, default: u8) -> u8 {
        let Some(raw) = raw else { return default };
        match u8::try_from(raw) {
            Ok(n) if n <= max => n,
            _ => {
                self.issue(
                    path,
                    format!("{raw} is not a prefix length"),
                    format!("use 0..={max} (default {default})"),
                );
                default
            }
        }
    }
}

/// vtysh options that run commands or write configuration (`-c`, `-b`, `-f`, `-w` and their long forms,
/// also inside short-option clusters such as `-wc`). nsbeacon passes its own `-c` commands.
fn dangerous_vtysh_arg(arg: &str) -> bool {
    if let Some(long) = arg.strip_prefix("--") {
        let name = long.split('=').next().unwrap_or_default();
        matches!(name, "command" | "boot" | "inputfile" | "writeconfig")
    } else if let Some(short) = arg.strip_prefix('-') {
        short.chars().any(|c| matches!(c, 'c' | 'b' | 'f' | 'w'))
    } else {
        false
    }
}
