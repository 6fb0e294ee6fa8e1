//! DNSSEC signature expiry against each real DNS server the lab runs (Knot, NSD, BIND), each serving the
//! same kind of pre-signed zone (dnssec-signzone, validity ending seconds from now) in its own network
//! namespace. `nsbeacon probe` with a `type = "dnssec"` check runs in that namespace and its exit code
//! follows the signatures: 0 (valid) -> 4 (soft: expiring) -> 1 (hard: critical). A zone with
//! its SOA RRSIG stripped is hard at once.

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use nsbeacon_e2e::dns::{DnsServerKind, KnotRole, LabDns};
use nsbeacon_e2e::nsbeacon::nsbeacon_binary;
use nsbeacon_testkit::dnssec::{sign_zone, strip_rrsig};
use nsbeacon_testkit::knot::Zone;
use nsbeacon_testkit::netns::Netns;

const LISTEN: &str = "127.0.0.1:5353";

fn write_config(dir: &Path, warn_before: &str, fail_before: &str) -> std::path::PathBuf {
    let path = dir.join("nsbeacon.toml");
    let text = format!(
        r#"state_dir = "{state}"

[backend]
kind = "bird"
socket = "{state}/bird.ctl"

[[service]]
name = "dns"
announce = ["anycast_dns"]

[[service.check]]
name = "sigs"
type = "dnssec"
local = "{LISTEN}"
zones = ["example.com."]
warn_before = "{warn_before}"
fail_before = "{fail_before}"
timeout = "500ms"
"#,
        state = dir.join("state").display()
    );
    std::fs::write(&path, text).expect("write config");
    path
}

fn probe(netns: &Netns, config: &Path) -> Output {
    netns
        .exec(nsbeacon_binary())
        .arg("probe")
        .arg("-c")
        .arg(config)
        .output()
        .expect("run nsbeacon probe")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Probes every 250 ms until the exit code is `code`, within `within`; returns the output.
fn wait_for_exit(netns: &Netns, config: &Path, code: i32, within: Duration) -> Output {
    let deadline = Instant::now() + within;
    loop {
        let out = probe(netns, config);
        if out.status.code() == Some(code) || Instant::now() > deadline {
            assert_eq!(out.status.code(), Some(code), "{}", text(&out));
            return out;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn expiry_walk(kind: DnsServerKind) {
    let netns = Netns::create("dnssec").expect("netns");
    let dir = tempfile::tempdir().expect("temp dir");
    // The signatures expire `VALIDITY` after signing; the thresholds are set once the server is up (its
    // start-up time varies on a loaded machine, where the suite runs four tests at once): expiring 5 s
    // later, critical 12 s later. `left` never overstates the validity (the clock started before signing),
    // so "valid" holds for at least 5 s after the config is written, and a slow `nsbeacon probe` start
    // cannot skip a step.
    const VALIDITY: u64 = 150;
    // Found (or built) now, not between the thresholds and the first probe.
    nsbeacon_binary();
    const TO_SOFT: u64 = 5;
    const TO_HARD: u64 = 12;
    let signed_at = Instant::now();
    let zone = sign_zone(
        &Zone::new("example.com.", 2024010102),
        Duration::from_secs(VALIDITY),
        &dir.path().join("keys"),
    );
    let _dns = LabDns::start(
        kind,
        netns.name(),
        &dir.path().join("dns"),
        zone,
        &[LISTEN.parse().expect("addr")],
        KnotRole::Standalone,
    );
    let left = VALIDITY.saturating_sub(signed_at.elapsed().as_secs() + 1);
    assert!(
        left > TO_HARD + 10,
        "{kind:?} took too long to start: {left} s of validity left"
    );
    let config = write_config(
        dir.path(),
        &format!("{}s", left - TO_SOFT),
        &format!("{}s", left - TO_HARD),
    );
    let valid = wait_for_exit(&netns, &config, 0, Duration::from_secs(2));
    assert!(text(&valid).contains("1 valid"), "{}", text(&valid));
    let soft = wait_for_exit(&netns, &config, 4, Duration::from_secs(TO_SOFT + 5));
    assert!(
        text(&soft).contains("example.com.: expiring"),
        "{}",
        text(&soft)
    );
    let hard = wait_for_exit(&netns, &config, 1, Duration::from_secs(TO_HARD + 5));
    assert!(
        text(&hard).contains("example.com.: critical"),
        "{}",
        text(&hard)
    );
}

fn stripped_soa(kind: DnsServerKind) {
    let netns = Netns::create("dnssec").expect("netns");
    let dir = tempfile::tempdir().expect("temp dir");
    let zone = sign_zone(
        &Zone::new("example.com.", 2024010102),
        Duration::from_secs(30 * 86400),
        &dir.path().join("keys"),
    );
    let _dns = LabDns::start(
        kind,
        netns.name(),
        &dir.path().join("dns"),
        strip_rrsig(zone, "SOA"),
        &[LISTEN.parse().expect("addr")],
        KnotRole::Standalone,
    );
    let config = write_config(dir.path(), "3d", "1h");
    let out = probe(&netns, &config);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("example.com.: missing_signature"),
        "{}",
        text(&out)
    );
}

#[test]
fn knot_signatures_expire_through_soft_to_hard() {
    expiry_walk(DnsServerKind::Knot);
    stripped_soa(DnsServerKind::Knot);
}

#[test]
fn nsd_signatures_expire_through_soft_to_hard() {
    expiry_walk(DnsServerKind::Nsd);
    stripped_soa(DnsServerKind::Nsd);
}

#[test]
fn bind_signatures_expire_through_soft_to_hard() {
    expiry_walk(DnsServerKind::Bind);
    stripped_soa(DnsServerKind::Bind);
}
