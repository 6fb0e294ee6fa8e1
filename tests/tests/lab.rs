//! The lab itself, before nsbeacon drives it: the shipped BIRD and FRR templates, loaded into real daemons
//! on a node namespace, announce, degrade, gracefully shut down and withdraw the anycast prefixes as seen
//! by a real upstream BIRD; and the lab leaves nothing behind.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use nsbeacon_e2e::dns::kdig_soa_serial;
use nsbeacon_e2e::lab::{
    ANYCAST_V4, ANYCAST_V4_ADDR, ANYCAST_V6, ANYCAST_V6_ADDR, LAB_ZONE_SERIAL,
};
use nsbeacon_e2e::lab::{NODE_AS, NODE_LOCAL_DNS, PRIMARY_V4};
use nsbeacon_e2e::{DnsServerKind, Lab, LabOptions, NodeBgpKind, RouteInfo};
use nsbeacon_testkit::frr::FrrDaemon;
use nsbeacon_testkit::netns;
use nsbeacon_testkit::process::is_alive;

/// Generous bound for a route change to reach the upstream (measured: milliseconds for BIRD, ~100 ms
/// for FRR); only a bound, never a latency assertion.
const ROUTE_TIMEOUT: Duration = Duration::from_secs(15);

fn route(lab: &Lab, prefix: &str) -> RouteInfo {
    lab.wait_for_route(prefix, true, ROUTE_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("wait_for_route returned no route for {prefix}"))
}

fn gone(lab: &Lab, prefix: &str) {
    lab.wait_for_route(prefix, false, ROUTE_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
}

fn path_with(lab: &Lab, prefix: &str, node_as_count: usize) -> RouteInfo {
    lab.wait_for_route_where(
        prefix,
        &format!("AS {NODE_AS} {node_as_count} time(s) in the path"),
        ROUTE_TIMEOUT,
        |r| r.is_some_and(|r| r.as_path_count(NODE_AS) == node_as_count),
    )
    .unwrap_or_else(|e| panic!("{e}"))
    .unwrap_or_else(|| panic!("no route for {prefix}"))
}

fn birdc_ok(lab: &Lab, command: &str) {
    let reply = lab.node_birdc(command);
    assert!(
        reply.starts_with("0009-") || reply.starts_with("0011-"),
        "`{command}` on the node's BIRD: {reply}"
    );
}

#[test]
fn bird_templates_announce_and_withdraw_ipv4_and_ipv6() {
    let lab = Lab::start(LabOptions::new(NodeBgpKind::Bird));

    // The template starts with every anycast protocol disabled: sessions up, nothing announced.
    assert_eq!(lab.upstream_has_route(ANYCAST_V4), None);
    assert_eq!(lab.upstream_has_route(ANYCAST_V6), None);
    assert_eq!(
        lab.query_from_upstream(IpAddr::V4(ANYCAST_V4_ADDR), Duration::from_secs(1)),
        None,
        "DNS must not be reachable from the upstream before the route is announced"
    );

    birdc_ok(&lab, "enable anycast_dns");
    let v4 = route(&lab, ANYCAST_V4);
    assert_eq!(v4.as_path, vec![NODE_AS], "{}", v4.raw);
    assert_eq!(v4.protocol, "node");
    assert!(!v4.has_graceful_shutdown(), "{}", v4.raw);
    assert_eq!(
        lab.upstream_has_route(ANYCAST_V6),
        None,
        "only the v4 protocol was enabled"
    );
    // A client behind the upstream now reaches the node's Knot over the announced route.
    assert_eq!(
        lab.query_from_upstream(IpAddr::V4(ANYCAST_V4_ADDR), Duration::from_secs(2)),
        Some(LAB_ZONE_SERIAL)
    );

    birdc_ok(&lab, "enable anycast_dns6");
    let v6 = route(&lab, ANYCAST_V6);
    assert_eq!(v6.as_path, vec![NODE_AS], "{}", v6.raw);
    assert_eq!(v6.protocol, "node6");
    assert_eq!(
        lab.query_from_upstream(IpAddr::V6(ANYCAST_V6_ADDR), Duration::from_secs(2)),
        Some(LAB_ZONE_SERIAL)
    );

    birdc_ok(&lab, "disable anycast_dns");
    gone(&lab, ANYCAST_V4);
    assert!(
        lab.upstream_has_route(ANYCAST_V6).is_some(),
        "v6 stays announced"
    );
    assert_eq!(
        lab.query_from_upstream(IpAddr::V4(ANYCAST_V4_ADDR), Duration::from_secs(1)),
        None,
        "withdrawn: the upstream has no route to the anycast address any more"
    );

    birdc_ok(&lab, "disable anycast_dns6");
    gone(&lab, ANYCAST_V6);
}

#[test]
fn bird_templates_degrade_and_graceful_shutdown() {
    let lab = Lab::start(LabOptions::new(NodeBgpKind::Bird));

    // Degraded alone: the export filter prepends the node's AS three times and tags (NODE_AS, 0, 1).
    birdc_ok(&lab, "enable anycast_dns_degraded");
    let degraded = path_with(&lab, ANYCAST_V4, 4);
    assert_eq!(degraded.as_path, vec![NODE_AS; 4], "{}", degraded.raw);
    assert_eq!(
        degraded.large_communities,
        vec![(NODE_AS, 0, 1)],
        "{}",
        degraded.raw
    );

    // Make before break back to normal: enable the normal protocol (higher preference wins), then disable
    // the degraded one. The upstream sees the short path, and the route never disappears in between.
    birdc_ok(&lab, "enable anycast_dns");
    let normal = path_with(&lab, ANYCAST_V4, 1);
    assert!(normal.large_communities.is_empty(), "{}", normal.raw);
    birdc_ok(&lab, "disable anycast_dns_degraded");
    std::thread::sleep(Duration::from_millis(200));
    let still = lab
        .upstream_has_route(ANYCAST_V4)
        .expect("the normal route stays announced after the degraded protocol is disabled");
    assert_eq!(still.as_path, vec![NODE_AS], "{}", still.raw);

    // And from normal to degraded: enable degraded first (it loses on preference, nothing changes), then
    // disable normal: the upstream gets the prepended path.
    birdc_ok(&lab, "enable anycast_dns_degraded");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        lab.upstream_has_route(ANYCAST_V4).map(|r| r.as_path),
        Some(vec![NODE_AS]),
        "while both are enabled the normal route wins"
    );
    birdc_ok(&lab, "disable anycast_dns");
    path_with(&lab, ANYCAST_V4, 4);

    // IPv6 degrade.
    birdc_ok(&lab, "enable anycast_dns6_degraded");
    let degraded6 = path_with(&lab, ANYCAST_V6, 4);
    assert_eq!(
        degraded6.large_communities,
        vec![(NODE_AS, 0, 1)],
        "{}",
        degraded6.raw
    );

    // Graceful shutdown (IPv6 here, IPv4 below): GRACEFUL_SHUTDOWN 65535:0, path not prepended.
    birdc_ok(&lab, "enable anycast_dns6_gshut");
    birdc_ok(&lab, "disable anycast_dns6_degraded");
    let gshut6 = lab
        .wait_for_route_where(ANYCAST_V6, "GRACEFUL_SHUTDOWN", ROUTE_TIMEOUT, |r| {
            r.is_some_and(RouteInfo::has_graceful_shutdown)
        })
        .unwrap_or_else(|e| panic!("{e}"))
        .expect("route");
    assert_eq!(gshut6.as_path, vec![NODE_AS], "{}", gshut6.raw);
    assert_eq!(
        gshut6.large_communities,
        vec![(NODE_AS, 0, 2)],
        "{}",
        gshut6.raw
    );

    birdc_ok(&lab, "enable anycast_dns_gshut");
    birdc_ok(&lab, "disable anycast_dns_degraded");
    let gshut4 = lab
        .wait_for_route_where(ANYCAST_V4, "GRACEFUL_SHUTDOWN", ROUTE_TIMEOUT, |r| {
            r.is_some_and(RouteInfo::has_graceful_shutdown)
        })
        .unwrap_or_else(|e| panic!("{e}"))
        .expect("route");
    assert_eq!(gshut4.as_path, vec![NODE_AS], "{}", gshut4.raw);

    birdc_ok(&lab, "disable anycast_dns_gshut");
    birdc_ok(&lab, "disable anycast_dns6_gshut");
    gone(&lab, ANYCAST_V4);
    gone(&lab, ANYCAST_V6);
}

fn vtysh_ok(out: &nsbeacon_testkit::frr::VtyshOutput, what: &str) {
    assert!(
        out.success,
        "vtysh {what}: {:?} {} {}",
        out.code, out.stdout, out.stderr
    );
}

#[test]
fn frr_template_announces_degrades_and_withdraws_ipv4_and_ipv6() {
    let lab = Lab::start(LabOptions::new(NodeBgpKind::Frr));

    // The template's networks are gated by nsbeacon's kernel route (import-check), which nobody added
    // yet: sessions up, nothing announced.
    assert_eq!(lab.upstream_has_route(ANYCAST_V4), None);
    assert_eq!(lab.upstream_has_route(ANYCAST_V6), None);

    for (prefix, anycast) in [
        (ANYCAST_V4, IpAddr::V4(ANYCAST_V4_ADDR)),
        (ANYCAST_V6, IpAddr::V6(ANYCAST_V6_ADDR)),
    ] {
        vtysh_ok(&lab.frr_network(prefix, None, true), "network");
        let normal = route(&lab, prefix);
        assert_eq!(normal.as_path, vec![NODE_AS], "{}", normal.raw);
        assert!(normal.large_communities.is_empty(), "{}", normal.raw);
        assert_eq!(
            lab.query_from_upstream(anycast, Duration::from_secs(2)),
            Some(LAB_ZONE_SERIAL),
            "DNS over the announced {prefix}"
        );

        // Degrade in place: the same network with the degrade route-map; the outbound route-map prepends.
        vtysh_ok(
            &lab.frr_network(prefix, Some("NSBEACON-DEGRADED"), true),
            "network route-map NSBEACON-DEGRADED",
        );
        let degraded = path_with(&lab, prefix, 4);
        assert_eq!(
            degraded.large_communities,
            vec![(NODE_AS, 0, 1)],
            "{}",
            degraded.raw
        );

        // Graceful shutdown in place.
        vtysh_ok(
            &lab.frr_network(prefix, Some("NSBEACON-GSHUT"), true),
            "network route-map NSBEACON-GSHUT",
        );
        let gshut = lab
            .wait_for_route_where(prefix, "GRACEFUL_SHUTDOWN", ROUTE_TIMEOUT, |r| {
                r.is_some_and(|r| r.has_graceful_shutdown() && r.as_path == vec![NODE_AS])
            })
            .unwrap_or_else(|e| panic!("{e}"))
            .expect("route");
        assert_eq!(
            gshut.large_communities,
            vec![(NODE_AS, 0, 2)],
            "{}",
            gshut.raw
        );

        // Back to normal: `network P` without a route-map clears it.
        vtysh_ok(
            &lab.frr_network(prefix, None, true),
            "network (back to normal)",
        );
        let back = lab
            .wait_for_route_where(prefix, "the normal path without tags", ROUTE_TIMEOUT, |r| {
                r.is_some_and(|r| {
                    r.as_path == vec![NODE_AS]
                        && r.large_communities.is_empty()
                        && !r.has_graceful_shutdown()
                })
            })
            .unwrap_or_else(|e| panic!("{e}"))
            .expect("route");
        assert_eq!(back.as_path, vec![NODE_AS]);

        vtysh_ok(&lab.frr_network(prefix, None, false), "no network");
        gone(&lab, prefix);
        assert_eq!(
            lab.query_from_upstream(anycast, Duration::from_secs(1)),
            None
        );
    }
}

#[test]
fn frr_outbound_policy_only_exports_the_anycast_prefixes() {
    let lab = Lab::start(LabOptions::new(NodeBgpKind::Frr));
    // A network that is in the RIB (the link's connected prefix) but not in the anycast prefix-list: the
    // outbound route-map must drop it, while the anycast prefix next to it is exported.
    vtysh_ok(
        &lab.frr_network("192.0.2.0/30", None, true),
        "network 192.0.2.0/30",
    );
    vtysh_ok(&lab.frr_network(ANYCAST_V4, None, true), "network anycast");
    // bgpd really has the link prefix as a local route, so only the outbound policy can keep it back
    // (valid once zebra has answered bgpd's next-hop check, a moment after the `network` line).
    let mut local = String::new();
    let valid = nsbeacon_testkit::wait_until(Duration::from_secs(5), || {
        let out = lab.node_vtysh(&["show bgp ipv4 unicast 192.0.2.0/30 json"]);
        vtysh_ok(&out, "show bgp ipv4 unicast 192.0.2.0/30 json");
        local = out.stdout;
        local.contains("\"paths\"") && local.contains("\"valid\":true")
    });
    assert!(
        valid,
        "node's bgpd should hold 192.0.2.0/30 as a valid local route: {local}"
    );
    route(&lab, ANYCAST_V4);
    std::thread::sleep(Duration::from_millis(500));
    let leaked = lab.upstream_has_route("192.0.2.0/30");
    assert_eq!(
        leaked, None,
        "a non-anycast prefix leaked to the upstream over BGP"
    );
}

/// The node's DNS server under each kind: answers on the anycast address through the announced route,
/// and the fault controls the scenarios use (pause, kill, restart, new serial) do what they say.
fn dns_server_controls(kind: DnsServerKind) {
    let mut lab = Lab::start(LabOptions::new(NodeBgpKind::Bird).with_dns(kind));
    assert_eq!(lab.dns().kind(), kind);
    let zone = lab.dns().zone().name.clone();
    let node = lab.node_netns().name().to_owned();
    let local = || kdig_soa_serial(&node, NODE_LOCAL_DNS, &zone, Duration::from_secs(1));
    assert_eq!(local(), Some(LAB_ZONE_SERIAL));

    birdc_ok(&lab, "enable anycast_dns6");
    route(&lab, ANYCAST_V6);
    assert_eq!(
        lab.query_from_upstream(IpAddr::V6(ANYCAST_V6_ADDR), Duration::from_secs(2)),
        Some(LAB_ZONE_SERIAL),
        "{kind:?} answers on the anycast address from the upstream"
    );

    assert!(lab.dns().pause(), "SIGSTOP");
    assert_eq!(local(), None, "a stopped {kind:?} does not answer");
    assert!(lab.dns().resume(), "SIGCONT");
    assert!(
        nsbeacon_testkit::wait_until(Duration::from_secs(5), || local() == Some(LAB_ZONE_SERIAL)),
        "{kind:?} answers again after SIGCONT"
    );

    let pid = lab.dns().pid().expect("dns pid");
    lab.dns().kill();
    assert!(!is_alive(pid), "{kind:?} {pid} killed");
    assert_eq!(local(), None);
    lab.dns().restart();
    assert_eq!(local(), Some(LAB_ZONE_SERIAL));

    lab.dns().set_serial(LAB_ZONE_SERIAL + 1);
    assert_eq!(local(), Some(LAB_ZONE_SERIAL + 1));
}

#[test]
fn dns_server_controls_knot() {
    dns_server_controls(DnsServerKind::Knot);
}

#[test]
fn dns_server_controls_nsd() {
    dns_server_controls(DnsServerKind::Nsd);
}

#[test]
fn dns_server_controls_bind() {
    dns_server_controls(DnsServerKind::Bind);
}

/// PIDs of every daemon a lab runs, and its namespaces.
fn lab_footprint(lab: &mut Lab) -> (Vec<u32>, Vec<String>) {
    let mut pids = vec![lab.upstream_bird().pid().expect("upstream bird pid")];
    pids.push(lab.dns().pid().expect("dns pid"));
    if let Some(primary) = lab.primary_knot() {
        pids.push(primary.pid().expect("primary knot pid"));
    }
    if let Some(bird) = lab.node_bird() {
        pids.push(bird.pid().expect("node bird pid"));
    }
    if let Some(frr) = lab.node_frr() {
        for daemon in FrrDaemon::ALL {
            pids.push(frr.pid(daemon).expect("frr daemon pid"));
        }
    }
    let names = vec![
        lab.node_netns().name().to_owned(),
        lab.upstream_netns().name().to_owned(),
    ];
    (pids, names)
}

fn assert_nothing_left(pids: &[u32], names: &[String], dir: &std::path::Path) {
    for pid in pids {
        assert!(!is_alive(*pid), "process {pid} of the lab still runs");
    }
    for name in names {
        assert!(!netns::exists(name), "namespace {name} still exists");
    }
    assert!(!dir.exists(), "lab dir {} still exists", dir.display());
}

#[test]
fn lab_cleans_up_on_drop_and_on_panic() {
    // Normal drop, FRR lab (more processes).
    let mut lab = Lab::start(LabOptions::new(NodeBgpKind::Frr).with_primary());
    let (pids, mut names) = lab_footprint(&mut lab);
    names.push(lab.primary_netns().expect("primary").name().to_owned());
    assert_eq!(
        pids.len(),
        6,
        "upstream BIRD, node Knot, primary Knot, zebra, staticd, bgpd"
    );
    let dir = lab.dir().to_path_buf();
    assert!(pids.iter().all(|p| is_alive(*p)));
    drop(lab);
    assert_nothing_left(&pids, &names, &dir);

    // A test that panics with a BIRD lab up: unwinding drops the lab.
    let footprint = std::sync::Mutex::new(None);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut lab = Lab::start(LabOptions::new(NodeBgpKind::Bird));
        let (pids, names) = lab_footprint(&mut lab);
        *footprint.lock().expect("lock") = Some((pids, names, lab.dir().to_path_buf()));
        panic!("deliberate panic with the lab up");
    }));
    assert!(result.is_err());
    let (pids, names, dir) = footprint
        .lock()
        .expect("lock")
        .take()
        .expect("the lab was built before the panic");
    assert_nothing_left(&pids, &names, &dir);
}

#[test]
fn bird_export_filter_only_exports_anycast_protocols_and_prefixes() {
    let mut lab = Lab::start(LabOptions::new(NodeBgpKind::Bird));
    // Two routes the export filter must stop, added to the rendered template and loaded with `configure`:
    // the anycast prefix from a protocol outside the naming convention (lower preference, so anycast_dns
    // wins once enabled), and a non-anycast prefix from a protocol that follows the convention.
    let extra = "\nprotocol static other_static {\n  ipv4 { preference 100; };\n  route 203.0.113.53/32 blackhole;\n}\n\
                 protocol static anycast_leak {\n  ipv4;\n  route 198.51.100.0/24 blackhole;\n}\n";
    let config = format!(
        "{}{extra}",
        nsbeacon_e2e::lab::node_bird_config(&lab.run_root())
    );
    let bird = lab.node_bird().expect("BIRD lab");
    std::fs::write(bird.config_path(), config).expect("rewrite node bird.conf");
    let reply = bird.command("configure");
    // By code only: 0003 reconfigured (BIRD 3 words its texts differently).
    assert!(
        reply.lines().any(|l| l.starts_with("0003 ")),
        "configure: {reply}"
    );
    assert_eq!(bird.protocol_state("other_static").as_deref(), Some("up"));
    assert_eq!(bird.protocol_state("anycast_leak").as_deref(), Some("up"));

    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        lab.upstream_has_route(ANYCAST_V4),
        None,
        "other_static must not be exported"
    );
    assert_eq!(
        lab.upstream_has_route("198.51.100.0/24"),
        None,
        "anycast_leak must not be exported"
    );

    birdc_ok(&lab, "enable anycast_dns");
    let r = route(&lab, ANYCAST_V4);
    assert_eq!(r.as_path, vec![NODE_AS], "{}", r.raw);
    assert_eq!(lab.upstream_has_route("198.51.100.0/24"), None);
}

#[test]
fn hidden_primary_feeds_the_node_and_can_be_cut_off() {
    let mut lab = Lab::start(LabOptions::new(NodeBgpKind::Bird).with_primary());
    let zone = lab.dns().zone().name.clone();
    let node = lab.node_netns().name().to_owned();
    let primary_addr = SocketAddr::new(IpAddr::V4(PRIMARY_V4), 53);
    // The node transferred the zone from the primary at start.
    assert_eq!(
        kdig_soa_serial(&node, NODE_LOCAL_DNS, &zone, Duration::from_secs(1)),
        Some(LAB_ZONE_SERIAL)
    );

    // A change on the primary reaches the node by NOTIFY + transfer.
    lab.primary_knot()
        .expect("primary")
        .set_serial(LAB_ZONE_SERIAL + 1);
    assert!(
        lab.dns()
            .expect_serial(LAB_ZONE_SERIAL + 1, Duration::from_secs(15)),
        "node did not transfer serial {}; node log:\n{}",
        LAB_ZONE_SERIAL + 1,
        lab.dns().log()
    );

    // Link to the primary down: the primary moves on, the node falls behind and cannot reach it.
    lab.set_primary_link(false);
    lab.primary_knot()
        .expect("primary")
        .set_serial(LAB_ZONE_SERIAL + 2);
    assert_eq!(
        kdig_soa_serial(&node, primary_addr, &zone, Duration::from_secs(1)),
        None,
        "the primary must be unreachable from the node"
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        kdig_soa_serial(&node, NODE_LOCAL_DNS, &zone, Duration::from_secs(1)),
        Some(LAB_ZONE_SERIAL + 1),
        "the node keeps serving its (now stale) copy"
    );

    // Link up again and a refresh: the node catches up.
    lab.set_primary_link(true);
    assert_eq!(
        kdig_soa_serial(&node, primary_addr, &zone, Duration::from_secs(2)),
        Some(LAB_ZONE_SERIAL + 2)
    );
    let out = lab.dns().knotc(&["zone-refresh", &zone]);
    assert!(out.status.success(), "knotc zone-refresh: {out:?}");
    assert!(
        lab.dns()
            .expect_serial(LAB_ZONE_SERIAL + 2, Duration::from_secs(15)),
        "node did not catch up; log:\n{}",
        lab.dns().log()
    );
}

#[test]
fn processes_and_http_inside_the_node_namespace() {
    let lab = Lab::start(LabOptions::new(NodeBgpKind::Bird));
    // Nothing listens yet: no answer.
    let addr: SocketAddr = "127.0.0.1:18080".parse().expect("addr");
    assert_eq!(lab.node_http_get(addr, "/", Duration::from_secs(1)), None);
    // A tiny HTTP responder inside the node namespace stands in for nsbeacon's /status here.
    let socat = nsbeacon_testkit::require_binary("socat");
    let response = lab.dir().join("response.http");
    std::fs::write(
        &response,
        "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nnode-ok",
    )
    .expect("write response");
    // The stub reads the request up to its blank line before answering: closing a socket with the request
    // still unread makes the kernel reset the connection, and the reset can discard the answer.
    let stub = lab.dir().join("http-stub.sh");
    std::fs::write(
        &stub,
        format!(
            "sed -n '/^\\r$/q' >/dev/null\ncat '{}'\n",
            response.display()
        ),
    )
    .expect("write stub script");
    let mut server = lab.spawn_in_node(
        "http-stub",
        &socat,
        &[
            "TCP-LISTEN:18080,bind=127.0.0.1,reuseaddr,fork",
            &format!("SYSTEM:sh {}", stub.display()),
        ],
    );
    assert!(
        nsbeacon_testkit::wait_until(Duration::from_secs(10), || lab
            .node_http_get(addr, "/status", Duration::from_secs(1))
            .is_some()),
        "stub did not answer; log: {}",
        server.log()
    );
    let (status, body) = lab
        .node_http_get(addr, "/status", Duration::from_secs(2))
        .expect("answer");
    assert_eq!(status, 200);
    assert_eq!(body, "node-ok");
    assert!(lab.node_netns().pids().contains(&server.pid()));
    server.kill();
}

/// The templates' safety promise: after a reboot the node announces nothing until someone (nsbeacon) has
/// checked DNS and enabled the routes again. BIRD: a restart alone comes back with the statics disabled.
/// FRR: a restart alone re-announces (nsbeacon's kernel route survives it, tests/tests/frr_gate.rs), so
/// the FRR arm stops FRR and removes the kernel route, as a reboot does, before starting FRR again.
#[test]
fn bgp_daemon_restart_comes_back_with_nothing_announced() {
    for bgp in [NodeBgpKind::Bird, NodeBgpKind::Frr] {
        let mut lab = Lab::start(LabOptions::new(bgp));
        match bgp {
            NodeBgpKind::Bird => birdc_ok(&lab, "enable anycast_dns"),
            NodeBgpKind::Frr => vtysh_ok(&lab.frr_network(ANYCAST_V4, None, true), "network"),
        }
        route(&lab, ANYCAST_V4);

        match bgp {
            NodeBgpKind::Bird => lab.node_bird().expect("bird").restart(),
            NodeBgpKind::Frr => {
                lab.node_frr().expect("frr").stop();
                lab.frr_gate(ANYCAST_V4, false);
                lab.node_frr().expect("frr").start_again();
            }
        }
        // The restarted daemon's own session comes back up (so this is the new session, not the old one
        // the upstream has not noticed yet) ...
        let established = nsbeacon_testkit::wait_until(Duration::from_secs(60), || match bgp {
            NodeBgpKind::Bird => {
                lab.node_bird()
                    .expect("bird")
                    .protocol_state("upstream1")
                    .as_deref()
                    == Some("up")
            }
            NodeBgpKind::Frr => lab
                .node_vtysh(&["show bgp ipv4 unicast summary json"])
                .stdout
                .contains("\"state\":\"Established\""),
        });
        assert!(
            established,
            "{bgp:?}: session did not come back after the restart"
        );
        assert!(
            lab.upstream_bird().wait_protocol_state(
                nsbeacon_e2e::lab::UPSTREAM_PROTOCOL_V4,
                "up",
                Duration::from_secs(30)
            ),
            "{bgp:?}: upstream session not up"
        );
        // ... and stays without the anycast route.
        std::thread::sleep(Duration::from_secs(2));
        assert_eq!(
            lab.upstream_has_route(ANYCAST_V4),
            None,
            "{bgp:?} re-announced the anycast prefix on its own after a restart"
        );
    }
}
