//! `scripts/check-templates` as part of `cargo test`: the BIRD templates parsed by BIRD, the FRR template
//! checked by vtysh and bgpd, the systemd unit verified by systemd-analyze, and the templates' safety rules.

use std::path::PathBuf;
use std::process::Command;

use nsbeacon_e2e::render::repo_root;

/// The `nsbeacon` binary cargo built next to this test, if it did (`cargo test --workspace` does).
fn built_nsbeacon() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let profile_dir = exe.parent()?.parent()?;
    let bin = profile_dir.join("nsbeacon");
    bin.is_file().then_some(bin)
}

#[test]
fn check_templates_script_passes() {
    let mut cmd = Command::new(repo_root().join("scripts/check-templates"));
    if let Some(bin) = built_nsbeacon() {
        cmd.env("NSBEACON_BIN", bin);
    }
    let out = cmd.output().expect("run scripts/check-templates");
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
