//! DNSSEC signature expiry against the real binary, a real Knot serving a pre-signed zone (signed by
//! `dnssec-signzone` with a validity of seconds) and a real BIRD 2: the service goes up -> degraded ->
//! down as the signatures near expiry, and a signed zone serving an unsigned SOA withdraws.

mod common;

use std::time::{Duration, Instant};

use common::{Node, WAIT};
use nsbeacon_testkit::dnssec::{sign_zone, strip_rrsig};
use nsbeacon_testkit::knot::Zone;
use nsbeacon_testkit::wait_until;

fn dnssec_check(node: &Node, warn_before: &str, fail_before: &str) -> String {
    format!(
        r#"
[[service.check]]
name = "sigs"
type = "dnssec"
local = "{local}"
zones = ["example.com."]
warn_before = "{warn_before}"
fail_before = "{fail_before}"
interval = "300ms"
timeout = "250ms"
"#,
        local = node.knot.addr()
    )
}

fn dnssec_report(node: &Node) -> serde_json::Value {
    node.status()["services"][0]["checks"]
        .as_array()
        .and_then(|checks| checks.iter().find(|c| c["name"] == "sigs").cloned())
        .unwrap_or_default()
}

#[test]
fn expiring_signatures_degrade_then_withdraw() {
    let mut node = Node::new();
    let dir = tempfile::tempdir().expect("temp dir");
    // Validity ends 14 s after signing: valid for ~2 s, then expiring (< 12 s) until < 6 s is left.
    let signed = sign_zone(
        &Zone::new("example.com.", 2024010102),
        Duration::from_secs(14),
        dir.path(),
    );
    let signed_at = Instant::now();
    node.knot.write_zone(signed);
    node.write_config_with_checks("", &dnssec_check(&node, "12s", "6s"), "");
    node.start();
    node.expect_service("dns", "up");
    node.expect_protocol("anycast_dns", "up", "valid signatures announce");
    let report = dnssec_report(&node);
    assert_eq!(report["kind"], "dnssec", "{report}");
    let worst = &report["dnssec"]["worst"][0];
    assert_eq!(worst["zone"], "example.com.", "{report}");
    let left = worst["remaining_seconds"].as_i64().expect("remaining");
    assert!((1..=14).contains(&left), "{report}");

    node.expect_service("dns", "degraded");
    let degraded_after = signed_at.elapsed();
    node.expect_protocol("anycast_degraded", "up", "expiring signatures degrade");
    let report = dnssec_report(&node);
    assert_eq!(report["result"], "expiring", "{report}");
    assert!(
        report["detail"]
            .as_str()
            .is_some_and(|d| d.contains("example.com.") && d.contains("expires in")),
        "{report}"
    );
    let (_, metrics) = node.get("/metrics");
    assert!(
        metrics
            .contains(r#"nsbeacon_dnssec_zones{check="sigs",service="dns",verdict="expiring"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"nsbeacon_dnssec_expiry_seconds{check="sigs",service="dns",zone="example.com."}"#
        ),
        "{metrics}"
    );

    node.expect_service("dns", "down");
    let down_after = signed_at.elapsed();
    node.expect_protocol(
        "anycast_dns",
        "down",
        "signatures within fail_before withdraw",
    );
    node.expect_protocol(
        "anycast_degraded",
        "down",
        "signatures within fail_before withdraw",
    );
    let report = dnssec_report(&node);
    let result = report["result"].as_str().unwrap_or_default().to_owned();
    assert!(result == "critical" || result == "expired", "{report}");
    // Degraded once fewer than 12 s were left (>= 2 s after signing), down once fewer than 6 s were left.
    assert!(
        degraded_after >= Duration::from_secs(1) && down_after >= Duration::from_secs(7),
        "degraded after {degraded_after:?}, down after {down_after:?}"
    );
    let text = common::text(&node.cli(&["status"]));
    assert!(
        text.contains("dnssec dns/sigs: 1 zone(s)") && text.contains("example.com. "),
        "{text}"
    );
}

#[test]
fn a_signed_zone_serving_an_unsigned_soa_withdraws() {
    let mut node = Node::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let signed = sign_zone(
        &Zone::new("example.com.", 2024010102),
        Duration::from_secs(30 * 86400),
        dir.path(),
    );
    node.knot.write_zone(strip_rrsig(signed, "SOA"));
    node.write_config_with_checks("", &dnssec_check(&node, "3d", "1h"), "");
    node.start();
    assert!(
        wait_until(WAIT, || dnssec_report(&node)["result"]
            == "missing_signature"),
        "{}\n{}",
        dnssec_report(&node),
        node.log()
    );
    let report = dnssec_report(&node);
    assert!(
        report["detail"]
            .as_str()
            .is_some_and(|d| d.contains("SOA has no RRSIG although the zone has a DNSKEY")),
        "{report}"
    );
    // Never announced: the service stays below up while the check fails hard.
    assert_ne!(node.service_state("dns").as_deref(), Some("up"));
    assert_ne!(node.service_state("dns").as_deref(), Some("degraded"));
}
