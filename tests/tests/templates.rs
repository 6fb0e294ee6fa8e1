//! `scripts/check-templates` as part of `cargo test`: the BIRD templates parsed by BIRD, the FRR template
//! checked by vtysh and bgpd, the systemd unit verified by systemd-analyze, and the templates' safety rules.

use std::process::Command;

use nsbeacon_e2e::nsbeacon::nsbeacon_binary;
use nsbeacon_e2e::render::repo_root;

#[test]
fn check_templates_script_passes() {
    // The unit's ExecStart must exist for systemd-analyze: hand the script the workspace's binary.
    let out = Command::new(repo_root().join("scripts/check-templates"))
        .env("NSBEACON_BIN", nsbeacon_binary())
        .output()
        .expect("run scripts/check-templates");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "scripts/check-templates failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    // It really checked each kind of file.
    for expected in [
        "ok: bird -p -c bird-templates/bird.conf",
        "ok: vtysh -C -f frr-templates/nsbeacon-bgpd.conf",
        "ok: systemd-analyze verify deploy/systemd/nsbeacon.service",
        "all templates pass",
    ] {
        assert!(
            stdout.contains(expected),
            "missing `{expected}` in:\n{stdout}"
        );
    }
}
