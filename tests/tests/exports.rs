//! Issue 14, export proof (BIRD): nsbeacon reads what BIRD exports to each BGP peer and shows it per target
//! and peer in `/status`, `nsbeacon status` and `nsbeacon_route_export*`; an announcement no peer receives
//! (here: an export filter that rejects the prefix) is visible as 0 peers, while the upstream confirms it
//! really lost the route. BFD session states show once BFD runs on both ends.

use std::time::Duration;

use nsbeacon_e2e::beacon::{Beacon, BeaconConfig, Scrape};
use nsbeacon_e2e::lab::{ANYCAST_V4, ANYCAST_V6, NODE_AS, node_bird_config, upstream_bird_config};
use nsbeacon_e2e::nsbeacon::{lab_targets, nsbeacon_binary};
use nsbeacon_e2e::{Lab, LabOptions, NodeBgpKind};
use nsbeacon_testkit::wait_until;

/// Slack for a BGP update to reach the upstream, or a state to show, on a loaded 2-core machine.
const MARGIN: Duration = Duration::from_secs(8);

/// The `exports` of `target` in `/status`, if any.
fn exports(beacon: &Beacon, lab: &Lab, target: &str) -> Option<serde_json::Value> {
    let status = beacon.try_status(lab)?;
    status["targets"]
        .as_array()?
        .iter()
        .find(|t| t["target"] == target)
        .map(|t| t["exports"].clone())
        .filter(|e| !e.is_null())
}

/// Waits until `target`'s exports in `/status` satisfy `accept`; returns them. Panics with the last
/// value and the log otherwise.
fn wait_exports(
    beacon: &Beacon,
    lab: &Lab,
    target: &str,
    what: &str,
    accept: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let mut last = None;
    let ok = wait_until(MARGIN, || {
        last = exports(beacon, lab, target);
        last.as_ref().is_some_and(&accept)
    });
    match last {
        Some(value) if ok => value,
        _ => panic!(
            "{target}: exports not {what} within {MARGIN:?}; last: {last:#?}\nnsbeacon log:\n{}",
            beacon.log()
        ),
    }
}

fn counts(e: &serde_json::Value) -> (u64, u64) {
    (
        e["exported_to"].as_u64().unwrap_or(u64::MAX),
        e["peers_total"].as_u64().unwrap_or(u64::MAX),
    )
}

fn exported_peers(m: &Scrape, target: &str) -> Option<f64> {
    m.value("nsbeacon_route_exported_peers", &[("target", target)])
}

/// `nsbeacon status` run inside the node's namespace (where nsbeacon's HTTP listener is).
fn status_text(lab: &Lab, beacon: &Beacon) -> String {
    let out = lab
        .node_netns()
        .exec(nsbeacon_binary())
        .arg("status")
        .arg("-c")
        .arg(beacon.config_path())
        .output()
        .unwrap_or_else(|e| panic!("run nsbeacon status: {e}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn bird_exports_per_peer_show_a_rejecting_filter_as_zero_peers_and_bfd_states() {
    let mut lab = Lab::start(LabOptions::new(NodeBgpKind::Bird));
    let (announce, _) = lab_targets(&lab);
    let beacon = Beacon::start(&lab, &BeaconConfig::for_lab(&lab));
    for prefix in [ANYCAST_V4, ANYCAST_V6] {
        lab.wait_for_route_where(prefix, "the normal path", Duration::from_secs(30), |r| {
            r.is_some_and(|r| r.as_path == vec![NODE_AS])
        })
        .unwrap_or_else(|e| panic!("{e}\nnsbeacon log:\n{}", beacon.log()));
    }
    beacon.wait_actual(&lab, &announce, true, MARGIN);

    // Announced and exported: each family to its one session, BFD not running for them (no session).
    let v4 = wait_exports(&beacon, &lab, "anycast_dns", "1/1", |e| {
        e["status"] == "known" && counts(e) == (1, 1)
    });
    let peer = &v4["peers"][0];
    assert_eq!(peer["session"]["peer"], "upstream1", "{v4:#}");
    assert_eq!(peer["session"]["established"], true, "{v4:#}");
    assert_eq!(peer["session"]["state"], "Established", "{v4:#}");
    assert!(peer["session"]["bfd"].is_null(), "{v4:#}");
    assert_eq!(peer["exported"], true, "{v4:#}");
    let v6 = wait_exports(&beacon, &lab, "anycast_dns6", "1/1", |e| {
        e["status"] == "known" && counts(e) == (1, 1)
    });
    assert_eq!(v6["peers"][0]["session"]["peer"], "upstream1_v6", "{v6:#}");
    let m = beacon.metrics(&lab);
    assert_eq!(exported_peers(&m, "anycast_dns"), Some(1.0));
    assert_eq!(
        m.value(
            "nsbeacon_route_exported",
            &[("target", "anycast_dns"), ("peer", "upstream1")]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.value("nsbeacon_route_export_peers", &[("target", "anycast_dns")]),
        Some(1.0)
    );
    let text = status_text(&lab, &beacon);
    assert!(
        text.contains("anycast_dns: announced to 1/1 peers (upstream1)"),
        "{text}"
    );
    // Withdrawn targets export nothing and carry no exports.
    assert!(exports(&beacon, &lab, "anycast_dns_degraded").is_none());

    // A typo'd export filter: the IPv4 filter rejects the anycast routes. The decision files keep the
    // statics enabled through the configure, so nsbeacon still announces, and the upstream loses the route.
    let base = node_bird_config(&lab.run_root());
    let accept = "if proto ~ \"anycast_*\" then accept;";
    let at = base.find(accept).expect("the v4 filter accepts anycast_*");
    let mut broken = base.clone();
    broken.replace_range(
        at..at + accept.len(),
        "if proto ~ \"anycast_*\" then reject;",
    );
    let config_path = lab.node_bird().expect("BIRD lab").config_path();
    std::fs::write(&config_path, &broken).expect("write node bird.conf");
    let reply = lab.node_birdc("configure");
    assert!(
        reply.contains("0003 ") || reply.contains("0004 "),
        "{reply}"
    );
    lab.wait_for_route(ANYCAST_V4, false, MARGIN)
        .unwrap_or_else(|e| panic!("the filter should cost the upstream the route: {e}"));
    let v4 = wait_exports(&beacon, &lab, "anycast_dns", "0/1", |e| {
        e["status"] == "known" && counts(e) == (0, 1)
    });
    assert_eq!(v4["peers"][0]["session"]["established"], true, "{v4:#}");
    assert_eq!(v4["peers"][0]["exported"], false, "{v4:#}");
    let m = beacon.metrics(&lab);
    // What NsbeaconRouteExportedToNoPeer (deploy/prometheus) fires on: announced, exported to 0 peers.
    assert_eq!(m.actual_announced("anycast_dns"), 1.0);
    assert_eq!(exported_peers(&m, "anycast_dns"), Some(0.0));
    assert_eq!(
        m.value(
            "nsbeacon_route_exported",
            &[("target", "anycast_dns"), ("peer", "upstream1")]
        ),
        Some(0.0)
    );
    assert_eq!(exported_peers(&m, "anycast_dns6"), Some(1.0));
    let text = status_text(&lab, &beacon);
    assert!(
        text.contains(
            "anycast_dns: announced to 0/1 peers (upstream1 not exported): NO PEER RECEIVES IT"
        ),
        "{text}"
    );
    assert!(
        lab.upstream_has_route(ANYCAST_V6).is_some(),
        "IPv6 is unaffected"
    );

    // Fixed again, with BFD switched on at both ends: the route goes out, and /status shows BFD up.
    let with_bfd = base.replace("define UPSTREAM1_BFD = 0;", "define UPSTREAM1_BFD = 1;");
    assert_ne!(with_bfd, base, "the template has the BFD switch");
    std::fs::write(&config_path, &with_bfd).expect("write node bird.conf");
    let reply = lab.node_birdc("configure");
    assert!(
        reply.contains("0003 ") || reply.contains("0004 "),
        "{reply}"
    );
    let upstream = upstream_bird_config().replace("local as", "bfd on;\n  local as")
        + "protocol bfd { interface \"*\" { min rx interval 300 ms; min tx interval 300 ms; }; }\n";
    std::fs::write(lab.upstream_bird().config_path(), upstream).expect("write upstream bird.conf");
    let reply = lab.upstream_bird().command("configure");
    assert!(
        reply.contains("0003 ") || reply.contains("0004 "),
        "{reply}"
    );
    lab.wait_for_route(ANYCAST_V4, true, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("fixed filter: {e}"));
    let v4 = wait_exports(&beacon, &lab, "anycast_dns", "1/1 with BFD up", |e| {
        counts(e) == (1, 1) && e["peers"][0]["session"]["bfd"] == "Up"
    });
    assert_eq!(v4["peers"][0]["exported"], true, "{v4:#}");
    let text = status_text(&lab, &beacon);
    assert!(
        text.contains("anycast_dns: announced to 1/1 peers (upstream1 bfd Up)"),
        "{text}"
    );
}
