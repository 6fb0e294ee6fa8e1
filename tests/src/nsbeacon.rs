//! The nsbeacon binary and a config for running it in a lab.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::lab::{ANYCAST_V4_ADDR, ANYCAST_V6_ADDR, LAB_ZONE, Lab, NodeBgp};

/// The `nsbeacon` binary of this workspace, built in the same target dir and profile as the running
/// test: `cargo build -p nsbeacon` runs once per test process (a no-op when `cargo test --workspace` has
/// built it already), so a lab never runs a stale binary. Panics with cargo's output on failure.
///
/// [`BINARY_ENV`] names an already built binary instead: `scripts/test` builds the workspace's binaries
/// once and sets it, because under cargo-nextest every test is its own process, and a cargo run per test
/// (several at once, queueing on the target dir's lock) costs seconds in the middle of a timed test.
pub fn nsbeacon_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            if let Some(prebuilt) = std::env::var_os(BINARY_ENV).map(PathBuf::from) {
                assert!(
                    prebuilt.is_file(),
                    "{BINARY_ENV}={} is not a file: build it (cargo build -p nsbeacon) or unset it",
                    prebuilt.display()
                );
                return prebuilt;
            }
            let exe = std::env::current_exe()
                .unwrap_or_else(|e| panic!("locate the running test binary: {e}"));
            // target/<profile>/deps/<test> -> target/<profile>/nsbeacon
            let profile_dir = exe
                .parent()
                .and_then(Path::parent)
                .unwrap_or_else(|| panic!("unexpected test binary location {}", exe.display()));
            let binary = profile_dir.join("nsbeacon");
            let target_dir = profile_dir
                .parent()
                .unwrap_or_else(|| panic!("no target dir above {}", profile_dir.display()));
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let mut cmd = Command::new(cargo);
            cmd.args(["build", "-q", "-p", "nsbeacon"])
                .env("CARGO_TARGET_DIR", target_dir)
                .current_dir(crate::render::repo_root());
            if profile_dir.file_name().is_some_and(|n| n == "release") {
                cmd.arg("--release");
            }
            let out = cmd
                .output()
                .unwrap_or_else(|e| panic!("run cargo build -p nsbeacon: {e}"));
            assert!(
                out.status.success() && binary.is_file(),
                "cargo build -p nsbeacon failed (needed at {}):\n{}",
                binary.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            binary
        })
        .clone()
}

/// The environment variable naming a prebuilt nsbeacon binary for [`nsbeacon_binary`].
pub const BINARY_ENV: &str = "NSBEACON_TEST_BINARY";

/// The lab's route targets for the service `dns`, as nsbeacon's config names them: `(announce, degrade)`.
///
/// BIRD: the template's static protocols (bird-templates/README.md). FRR: the anycast prefixes, degraded
/// in place with the template's route-map (`network P route-map NSBEACON-DEGRADED`, frr-templates/).
pub fn lab_targets(lab: &Lab) -> (Vec<String>, Vec<String>) {
    match lab.node_bgp_ref() {
        NodeBgp::Bird(_) => (
            vec!["anycast_dns".to_owned(), "anycast_dns6".to_owned()],
            vec![
                "anycast_dns_degraded".to_owned(),
                "anycast_dns6_degraded".to_owned(),
            ],
        ),
        NodeBgp::Frr(_) => (
            vec![
                crate::lab::ANYCAST_V4.to_owned(),
                crate::lab::ANYCAST_V6.to_owned(),
            ],
            vec![
                format!("{} route-map NSBEACON-DEGRADED", crate::lab::ANYCAST_V4),
                format!("{} route-map NSBEACON-DEGRADED", crate::lab::ANYCAST_V6),
            ],
        ),
    }
}

/// The `[backend]` table's body for `lab`: the node's BIRD control socket and the decision dir its config
/// includes (as an operator following bird-templates/README.md sets it up), or the node's bgpd vty socket
/// (FRR's default transport; `announce_via = "kernel-metric"` when the lab runs that template).
pub fn lab_backend(lab: &Lab) -> String {
    match lab.node_bgp_ref() {
        NodeBgp::Bird(bird) => format!(
            "kind = \"bird\"\nsocket = \"{}\"\ntimeout = \"2s\"\ndecision_dir = \"{}\"\n",
            bird.socket().display(),
            lab.decision_dir().display()
        ),
        NodeBgp::Frr(frr) => format!(
            "kind = \"frr\"\nsocket = \"{}\"\nasn = {}\ntimeout = \"5s\"\n{}",
            frr.bgpd_vty_socket().display(),
            crate::lab::NODE_AS,
            if lab.frr_kernel_metric() {
                "announce_via = \"kernel-metric\"\n"
            } else {
                ""
            }
        ),
    }
}

/// A complete nsbeacon config for `lab`: the node's BGP daemon as backend, one service `dns` announcing
/// both anycast prefixes while Knot/NSD/BIND answers the lab zone's SOA authoritatively on both anycast
/// addresses (fast timers: 200 ms interval, rise 3, fall 3), state under the lab dir, HTTP on
/// `http_listen` inside the node namespace (reach it with [`Lab::node_http_get`]).
pub fn lab_config(lab: &Lab, http_listen: std::net::SocketAddr) -> String {
    let backend = lab_backend(lab);
    let (announce, degrade) = lab_targets(lab);
    let list = |v: &[String]| {
        v.iter()
            .map(|t| format!("\"{t}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "state_dir = \"{state}\"\nreconcile_interval = \"1s\"\n\n[backend]\n{backend}\n[http]\nlisten = \"{http_listen}\"\n\n\
         [log]\nlevel = \"info\"\n\n[[service]]\nname = \"dns\"\nannounce = [{announce}]\ndegrade = [{degrade}]\n\
         interval = \"200ms\"\nrise = 3\nfall = 3\n\n\
         [[service.check]]\nname = \"soa-v4\"\ntarget = \"{ANYCAST_V4_ADDR}:53\"\nqname = \"{LAB_ZONE}\"\n\n\
         [[service.check]]\nname = \"soa-v6\"\ntarget = \"[{ANYCAST_V6_ADDR}]:53\"\nqname = \"{LAB_ZONE}\"\n",
        state = lab.dir().join("nsbeacon-state").display(),
        announce = list(&announce),
        degrade = list(&degrade),
    )
}
