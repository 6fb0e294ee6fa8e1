//! nsbeacon itself in the lab, first scenarios (issue 5, 1 and 2): healthy -> announced; DNS server
//! killed -> withdrawn; restarted -> announced again. Asserted on the upstream's RIB and on /status.

use std::net::SocketAddr;
use std::time::Duration;

use nsbeacon_e2e::lab::{ANYCAST_V4, ANYCAST_V6, NODE_AS};
use nsbeacon_e2e::nsbeacon::{lab_config, nsbeacon_binary};
use nsbeacon_e2e::{Lab, LabOptions, NodeBgpKind};

fn smoke(bgp: NodeBgpKind) {
    let mut lab = Lab::start(LabOptions::new(bgp));
    let http: SocketAddr = "127.0.0.1:9753".parse().expect("addr");
    let config = lab.dir().join("nsbeacon.toml");
    std::fs::write(&config, lab_config(&lab, http)).expect("write config");
    let binary = nsbeacon_binary();
    let check = std::process::Command::new(&binary)
        .arg("check-config")
        .arg("-c")
        .arg(&config)
        .output()
        .expect("run nsbeacon check-config");
    assert!(
        check.status.success(),
        "the lab config is invalid: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let config_str = config.to_str().expect("utf-8 path").to_owned();
    let nsbeacon = lab.spawn_in_node("nsbeacon", &binary, &["run", "-c", &config_str]);

    for prefix in [ANYCAST_V4, ANYCAST_V6] {
        let route = lab
            .wait_for_route(prefix, true, Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("{e}\nnsbeacon log:\n{}", nsbeacon.log()))
            .expect("route");
        assert_eq!(route.as_path, vec![NODE_AS], "{}", route.raw);
    }
    let (status, body) = lab
        .node_http_get(http, "/status", Duration::from_secs(10))
        .unwrap_or_else(|| panic!("no /status answer; log:\n{}", nsbeacon.log()));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"dns\""), "{body}");

    // The DNS server dies: both prefixes are withdrawn (interval 200 ms x fall 3, plus margin).
    lab.dns().kill();
    for prefix in [ANYCAST_V4, ANYCAST_V6] {
        lab.wait_for_route(prefix, false, Duration::from_secs(15))
            .unwrap_or_else(|e| panic!("{e}\nnsbeacon log:\n{}", nsbeacon.log()));
    }
    // Back: announced again after rise.
    lab.dns().restart();
    for prefix in [ANYCAST_V4, ANYCAST_V6] {
        lab.wait_for_route(prefix, true, Duration::from_secs(15))
            .unwrap_or_else(|e| panic!("{e}\nnsbeacon log:\n{}", nsbeacon.log()));
    }
    drop(nsbeacon);
}

#[test]
fn nsbeacon_announces_a_healthy_service_with_bird() {
    smoke(NodeBgpKind::Bird);
}

#[test]
fn nsbeacon_announces_a_healthy_service_with_frr() {
    smoke(NodeBgpKind::Frr);
}
