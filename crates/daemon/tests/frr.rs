//! The real `nsbeacon` binary driving a real FRR 8.4 (zebra, staticd, bgpd in a network namespace this
//! test creates) from the probes of a real Knot: `network P` follows DNS health, and an FRR restart (which
//! loses the running config) is re-asserted.

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
fn frr_network_follows_dns_health_and_is_reasserted_after_an_frr_restart() {
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
    let args: Vec<String> = frr.vtysh_args().iter().map(|a| format!("{a:?}")).collect();
    let config = format!(
        r#"state_dir = "{state}"
reconcile_interval = "500ms"

[backend]
kind = "frr"
vtysh = "{vtysh}"
args = [{args}]
timeout = "10s"

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
        vtysh = require_binary("vtysh").display(),
        args = args.join(", "),
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

    let status = nsbeacon.stop(Duration::from_secs(20)).expect("exit status");
    assert!(status.success(), "exit {status:?}\n{}", log());
    assert!(!announced(&frr), "SIGTERM did not withdraw\n{}", log());
}
