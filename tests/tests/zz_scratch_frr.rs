//! Scratch experiment (not committed).
use std::process::Command;
use std::time::{Duration, Instant};

use nsbeacon_e2e::beacon::RouteWatch;
use nsbeacon_e2e::lab::{
    ANYCAST_V4, ANYCAST_V6, NODE_AS, UPSTREAM_PROTOCOL_V4, UPSTREAM_PROTOCOL_V6, node_frr_config,
};
use nsbeacon_e2e::{Lab, LabOptions, NodeBgpKind};
use nsbeacon_testkit::frr::{FrrDaemon, FrrInstance};
use nsbeacon_testkit::require_binary;

const PREFIXES: [&str; 2] = [ANYCAST_V4, ANYCAST_V6];
const M: Duration = Duration::from_secs(30);

fn frr_reload(frr: &FrrInstance) -> String {
    let out = Command::new(require_binary("python3"))
        .arg(require_binary("/usr/lib/frr/frr-reload.py"))
        .args(["--reload", "--stdout", "--daemon", "bgpd", "--bindir"])
        .arg(require_binary("vtysh").parent().expect("vtysh dir"))
        .arg("--confdir")
        .arg(frr.state_dir())
        .arg("--rundir")
        .arg(frr.state_dir())
        .arg("--vty_socket")
        .arg(frr.state_dir())
        .arg(frr.config_path(FrrDaemon::Bgpd))
        .output()
        .expect("run");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    text
}

fn ip(lab: &Lab, args: &[&str]) {
    lab.node_netns().ip(args).unwrap_or_else(|e| panic!("{e}"));
}
fn fam(p: &str) -> &'static str {
    if p.contains(':') { "-6" } else { "-4" }
}
fn counters(lab: &Lab) -> Vec<String> {
    [UPSTREAM_PROTOCOL_V4, UPSTREAM_PROTOCOL_V6]
        .iter()
        .map(|p| {
            lab.upstream_bird()
                .command(&format!("show protocols all {p}"))
                .lines()
                .filter(|l| l.contains("Import updates") || l.contains("Import withdraws"))
                .collect::<Vec<_>>()
                .join(" | ")
        })
        .collect()
}

fn redistribute_config() -> String {
    let maps = "\
route-map NSBEACON-KERNEL-V4 permit 10\n match ip address prefix-list NSBEACON-ANYCAST-V4\n match metric 53\n set origin igp\n set metric 0\nexit\n!\n\
route-map NSBEACON-KERNEL-V4 permit 20\n match ip address prefix-list NSBEACON-ANYCAST-V4\n match metric 54\n set origin igp\n set metric 0\n set large-community 65001:0:1 additive\nexit\n!\n\
route-map NSBEACON-KERNEL-V4 deny 100\nexit\n!\n\
route-map NSBEACON-KERNEL-V6 permit 10\n match ipv6 address prefix-list NSBEACON-ANYCAST-V6\n match metric 53\n set origin igp\n set metric 0\nexit\n!\n\
route-map NSBEACON-KERNEL-V6 permit 20\n match ipv6 address prefix-list NSBEACON-ANYCAST-V6\n match metric 54\n set origin igp\n set metric 0\n set large-community 65001:0:1 additive\nexit\n!\n\
route-map NSBEACON-KERNEL-V6 deny 100\nexit\n!\n";
    let c = node_frr_config()
        .replace(
            "  network 203.0.113.53/32\n",
            "  redistribute kernel route-map NSBEACON-KERNEL-V4\n",
        )
        .replace(
            "  network 2001:db8::53/128\n",
            "  redistribute kernel route-map NSBEACON-KERNEL-V6\n",
        )
        .replace("router bgp 65001\n", &format!("{maps}router bgp 65001\n"));
    assert!(c.contains("redistribute kernel route-map NSBEACON-KERNEL-V6"));
    c
}

#[test]
fn scratch() {
    let mut lab = Lab::start(LabOptions::new(NodeBgpKind::Frr));
    // A: network import-check path with a metric-54 kernel route: what MED?
    for p in PREFIXES {
        ip(
            &lab,
            &[
                fam(p),
                "route",
                "add",
                p,
                "dev",
                "lo",
                "proto",
                "53",
                "metric",
                "54",
            ],
        );
    }
    for p in PREFIXES {
        lab.wait_for_route(p, true, M).unwrap();
        eprintln!("A upstream {p}: {}", lab.upstream_has_route(p).unwrap().raw);
    }
    eprintln!(
        "A bgpd: {}",
        lab.node_vtysh(&["show bgp ipv4 unicast 203.0.113.53/32 json"])
            .stdout
    );
    eprintln!(
        "A zebra: {}",
        lab.node_vtysh(&["show ip route 203.0.113.53/32"]).stdout
    );
    for p in PREFIXES {
        ip(
            &lab,
            &[
                fam(p),
                "route",
                "del",
                p,
                "dev",
                "lo",
                "proto",
                "53",
                "metric",
                "54",
            ],
        );
    }
    for p in PREFIXES {
        lab.wait_for_route(p, false, M).unwrap();
    }

    // B: redistribute kernel with metric route-maps.
    let frr_path = lab.node_frr().unwrap().config_path(FrrDaemon::Bgpd);
    std::fs::write(&frr_path, redistribute_config()).unwrap();
    let out = frr_reload(lab.node_frr().unwrap());
    eprintln!("B first reload:\n{out}");
    for p in PREFIXES {
        ip(
            &lab,
            &[
                fam(p),
                "route",
                "add",
                p,
                "dev",
                "lo",
                "proto",
                "53",
                "metric",
                "53",
            ],
        );
    }
    for p in PREFIXES {
        lab.wait_for_route_where(p, "normal", M, |r| {
            r.is_some_and(|r| r.as_path == vec![NODE_AS])
        })
        .unwrap();
        eprintln!("B upstream {p}: {}", lab.upstream_has_route(p).unwrap().raw);
    }
    std::thread::sleep(Duration::from_secs(5));
    let c0 = counters(&lab);
    let watch = RouteWatch::start(&lab, &PREFIXES);
    // normal -> degraded, make before break
    let t = Instant::now();
    for p in PREFIXES {
        ip(
            &lab,
            &[
                fam(p),
                "route",
                "add",
                p,
                "dev",
                "lo",
                "proto",
                "53",
                "metric",
                "54",
            ],
        );
        eprintln!(
            "both: {}",
            String::from_utf8_lossy(
                &lab.node_netns()
                    .ip(&[fam(p), "route", "show", p])
                    .unwrap()
                    .stdout
            )
        );
        ip(
            &lab,
            &[
                fam(p),
                "route",
                "del",
                p,
                "dev",
                "lo",
                "proto",
                "53",
                "metric",
                "53",
            ],
        );
    }
    for p in PREFIXES {
        lab.wait_for_route_where(p, "degraded", M, |r| {
            r.is_some_and(|r| r.as_path_count(NODE_AS) == 4)
        })
        .unwrap();
    }
    eprintln!("degraded after {:?}", t.elapsed());
    eprintln!(
        "C zebra: {}",
        lab.node_vtysh(&["show ip route 203.0.113.53/32"]).stdout
    );
    std::thread::sleep(Duration::from_secs(5));
    let c1 = counters(&lab);
    let t = Instant::now();
    let mut outs = vec![];
    for _ in 0..20 {
        outs.push(frr_reload(lab.node_frr().unwrap()));
    }
    eprintln!(
        "20 reloads in {:?}; last:\n{}",
        t.elapsed(),
        outs.last().unwrap()
    );
    std::thread::sleep(Duration::from_secs(2));
    let c2 = counters(&lab);
    // degraded -> normal
    for p in PREFIXES {
        ip(
            &lab,
            &[
                fam(p),
                "route",
                "add",
                p,
                "dev",
                "lo",
                "proto",
                "53",
                "metric",
                "53",
            ],
        );
        ip(
            &lab,
            &[
                fam(p),
                "route",
                "del",
                p,
                "dev",
                "lo",
                "proto",
                "53",
                "metric",
                "54",
            ],
        );
    }
    for p in PREFIXES {
        lab.wait_for_route_where(p, "normal", M, |r| {
            r.is_some_and(|r| r.as_path == vec![NODE_AS])
        })
        .unwrap();
    }
    std::thread::sleep(Duration::from_secs(5));
    let c3 = counters(&lab);
    let h = watch.finish();
    eprintln!("history:\n{}", h.describe());
    eprintln!(
        "counters before switch {c0:?}\nafter degrade {c1:?}\nafter reloads {c2:?}\nafter back {c3:?}"
    );
    eprintln!(
        "bgp json: {}",
        lab.node_vtysh(&["show bgp ipv4 unicast 203.0.113.53/32 json"])
            .stdout
    );
}
