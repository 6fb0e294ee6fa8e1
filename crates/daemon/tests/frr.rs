//! The real `nsbeacon` binary driving a real FRR 8.4 (zebra, staticd, bgpd in a network namespace this
//! test creates) from the probes of a real Knot: `network P` follows DNS health, and an FRR restart (which
//! loses the running config, and closes nsbeacon's vty connection) is re-asserted. The first test uses
//! the default transport (bgpd's vty socket), the degrade test `via = "vtysh"`.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use nsbeacon_testkit::frr::{FrrConfigFiles, FrrInstance};
use nsbeacon_testkit::knot::{KnotConfig, KnotServer, Zone};
use nsbeacon_testkit::netns::Netns;
use nsbeacon_testkit::{DaemonGuard, free_port, require_binary, wait_until};

const WAIT: Duration = Duration::from_secs(30);
const PREFIX: &str = "203.0.113.53/32";

const BGPD_CONF: &str = "\
hostname node
router bgp 65001
 bgp router-id 192.0.2.2
 no bgp ebgp-requires-policy
exit
!
";

fn announced(frr: &FrrInstance) -> bool {
    frr.vtysh(&["show running-config"])
        .stdout
        .contains(&format!("network {PREFIX}"))
}

#[test]
fn frr_network_follows_dns_health_and_is_reasserted_after_an_frr_restart_and_reload() {
    let node = Netns::create("frrnode").expect("create namespace");
    node.ip(&["addr", "add", PREFIX, "dev", "lo"])
        .expect("anycast address on lo");
    let mut frr = FrrInstance::start(node.name(), FrrConfigFiles::bgpd(BGPD_CONF));
    let mut knot = KnotServer::start(
        KnotConfig::new()
            .with_nsid("frr-node")
            .with_zone(Zone::new("example.com.", 1)),
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let http = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let config = format!(
        r#"state_dir = "{state}"
reconcile_interval = "500ms"

[backend]
kind = "frr"
socket = "{socket}"
timeout = "10s"
# nsbeacon runs in the test's namespace, FRR in its own: the kernel-route gate would write to the wrong
# namespace (tests/tests/frr_gate.rs runs that mechanism in the node's namespace).
announce_via = "network"

[http]
listen = "{http}"

[[service]]
name = "dns"
announce = ["{PREFIX}"]
interval = "300ms"
rise = 2
fall = 3

[[service.check]]
name = "soa"
type = "query"
target = "{knot}"
qname = "example.com."
qtype = "SOA"
timeout = "250ms"
"#,
        state = dir.path().join("state").display(),
        socket = frr.bgpd_vty_socket().display(),
        knot = knot.addr(),
    );
    let config_path = dir.path().join("nsbeacon.toml");
    std::fs::write(&config_path, config).expect("write config");
    let log_path = dir.path().join("nsbeacon.log");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nsbeacon"));
    cmd.arg("-c").arg(&config_path).arg("run");
    let mut nsbeacon = DaemonGuard::spawn("nsbeacon", cmd, Some(&log_path));
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();

    assert!(
        wait_until(WAIT, || announced(&frr)),
        "network not announced while DNS is healthy\n{}",
        log()
    );
    let bgp = frr.vtysh_ok(&[&format!("show bgp ipv4 unicast {PREFIX} json")]);
    assert!(bgp.contains("\"paths\""), "not in the BGP table: {bgp}");

    knot.stop();
    assert!(
        wait_until(WAIT, || !announced(&frr)),
        "network still announced with DNS stopped\n{}",
        log()
    );

    knot.restart();
    assert!(
        wait_until(WAIT, || announced(&frr)),
        "network not re-announced after DNS came back\n{}",
        log()
    );

    // FRR restarts and loses its running config: nsbeacon must put `network` back.
    frr.restart();
    assert!(
        wait_until(WAIT, || announced(&frr)),
        "network not re-asserted after an FRR restart\n{}",
        log()
    );

    // `systemctl reload frr` runs frr-reload.py, which makes the running config match the file: it removes
    // the `network` nsbeacon added (the template has none) before it returns. Only nsbeacon adds it again,
    // at its next read-back (drift) or pending re-check.
    let reload_out = frr.reload_bgpd_from_file();
    assert!(
        reload_out.contains(&format!("no network {PREFIX}")),
        "frr-reload.py did not remove the network: {reload_out}"
    );
    assert!(
        wait_until(WAIT, || announced(&frr)),
        "network not re-asserted after frr-reload.py\n{reload_out}\n{}",
        log()
    );
    assert!(
        wait_until(WAIT, || frr
            .vtysh_ok(&[&format!("show bgp ipv4 unicast {PREFIX} json")])
            .contains("\"paths\"")),
        "re-asserted network not in the BGP table\n{}",
        log()
    );

    let status = nsbeacon.stop(Duration::from_secs(20)).expect("exit status");
    assert!(status.success(), "exit {status:?}\n{}", log());
    assert!(!announced(&frr), "SIGTERM did not withdraw\n{}", log());
}

const BGPD_DEGRADE_CONF: &str = "\
hostname node
route-map NSBEACON-DEGRADED permit 10
 set as-path prepend 65001 65001 65001
exit
!
router bgp 65001
 bgp router-id 192.0.2.2
 no bgp ebgp-requires-policy
exit
!
";

/// Which variant of the anycast `network` statement FRR has: `None` when absent.
fn variant(frr: &FrrInstance) -> Option<String> {
    let config = frr.vtysh(&["show running-config"]).stdout;
    config
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(&format!("network {PREFIX}")))
        .map(str::to_owned)
}

#[test]
fn frr_degrade_switches_the_route_map_in_place_without_a_gap() {
    let node = Netns::create("frrdeg").expect("create namespace");
    node.ip(&["addr", "add", PREFIX, "dev", "lo"])
        .expect("anycast address on lo");
    let frr = FrrInstance::start(node.name(), FrrConfigFiles::bgpd(BGPD_DEGRADE_CONF));
    let mut knot = KnotServer::start(KnotConfig::new().with_zone(Zone::new("example.com.", 10)));
    let mut reference =
        KnotServer::start(KnotConfig::new().with_zone(Zone::new("example.com.", 10)));
    let dir = tempfile::tempdir().expect("temp dir");
    let http = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let args: Vec<String> = frr.vtysh_args().iter().map(|a| format!("{a:?}")).collect();
    let config = format!(
        r#"state_dir = "{state}"
reconcile_interval = "500ms"

[backend]
kind = "frr"
via = "vtysh"
vtysh = "{vtysh}"
args = [{args}]
timeout = "10s"
announce_via = "network"

[http]
listen = "{http}"

[[service]]
name = "dns"
announce = ["{PREFIX}"]
degrade = ["{PREFIX} route-map NSBEACON-DEGRADED"]
interval = "300ms"
rise = 2
fall = 3

[[service.check]]
name = "soa"
type = "query"
target = "{knot}"
qname = "example.com."
qtype = "SOA"
timeout = "250ms"

[[service.check]]
name = "fresh"
type = "serial"
local = "{knot}"
reference = "{reference}"
zones = ["example.com."]
max_lag = 5
interval = "300ms"
timeout = "250ms"
"#,
        state = dir.path().join("state").display(),
        vtysh = require_binary("vtysh").display(),
        args = args.join(", "),
        knot = knot.addr(),
        reference = reference.addr(),
    );
    let config_path = dir.path().join("nsbeacon.toml");
    std::fs::write(&config_path, config).expect("write config");
    let log_path = dir.path().join("nsbeacon.log");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nsbeacon"));
    cmd.arg("-c").arg(&config_path).arg("run");
    let _nsbeacon = DaemonGuard::spawn("nsbeacon", cmd, Some(&log_path));
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let plain = format!("network {PREFIX}");
    let degraded = format!("network {PREFIX} route-map NSBEACON-DEGRADED");

    assert!(
        wait_until(WAIT, || variant(&frr).as_deref() == Some(plain.as_str())),
        "plain network not announced while healthy: {:?}\n{}",
        variant(&frr),
        log()
    );

    // Watch FRR's config continuously while the service degrades and recovers: the prefix must never be
    // missing (make-before-break: the route-map is switched in place).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let stop = stop.clone();
        let args = frr.vtysh_args();
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let out = Command::new("vtysh")
                    .args(&args)
                    .args(["-c", "show running-config"])
                    .output()
                    .expect("vtysh");
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                seen.push(
                    text.lines()
                        .map(str::trim)
                        .find(|l| l.starts_with(&format!("network {PREFIX}")))
                        .map(str::to_owned),
                );
            }
            seen
        })
    };

    reference.set_serial("example.com.", 12);
    assert!(
        wait_until(WAIT, || variant(&frr).as_deref() == Some(degraded.as_str())),
        "not switched to the degraded route-map: {:?}\n{}",
        variant(&frr),
        log()
    );
    knot.set_serial("example.com.", 12);
    assert!(
        wait_until(WAIT, || variant(&frr).as_deref() == Some(plain.as_str())),
        "not switched back to the plain network: {:?}\n{}",
        variant(&frr),
        log()
    );
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = watcher.join().expect("watcher");
    assert!(seen.len() > 3, "too few observations: {seen:?}");
    assert!(
        seen.iter().all(Option::is_some),
        "the prefix was missing from FRR during a switch: {seen:?}\n{}",
        log()
    );
    assert!(
        seen.iter().any(|v| v.as_deref() == Some(degraded.as_str())),
        "the degraded variant was never observed: {seen:?}"
    );
}
