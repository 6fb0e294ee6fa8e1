//! Issue 5, scenarios 1-3 across the matrix (BIRD x {Knot, NSD, BIND}, FRR x {Knot}), IPv4 and IPv6:
//! one lab per cell runs them in sequence.
//!
//! 1. Healthy: the prefixes appear at the upstream only after `rise` passes; while nsbeacon says
//!    `starting`, the upstream has nothing.
//! 2. DNS server SIGKILLed: withdrawn within interval x fall + margin; restarted: back after rise.
//! 3. DNS server hung (SIGSTOP): withdrawn after the probes time out; SIGCONT: back.
//!
//! Every step is asserted on the upstream's RIB and on nsbeacon's `/status` and `/metrics`.

use std::time::{Duration, Instant};

use nsbeacon_e2e::beacon::{Beacon, BeaconConfig, DampingSpec, RouteWatch};
use nsbeacon_e2e::lab::{ANYCAST_V4, ANYCAST_V6, NODE_AS};
use nsbeacon_e2e::nsbeacon::lab_targets;
use nsbeacon_e2e::{DnsServerKind, Lab, LabOptions, NodeBgpKind};

const PREFIXES: [&str; 2] = [ANYCAST_V4, ANYCAST_V6];
/// Probe interval and fall of the service (fast lab timers).
const INTERVAL: Duration = Duration::from_millis(300);
const FALL: u32 = 3;
/// Rise at start-up: long enough that `starting` is observable over HTTP.
const START_RISE: u32 = 8;
/// Slack on top of interval x fall for the BGP update to reach the upstream (and a loaded CI machine).
const MARGIN: Duration = Duration::from_secs(5);

fn cell(bgp: NodeBgpKind, dns: DnsServerKind) {
    let mut lab = Lab::start(LabOptions::new(bgp).with_dns(dns));
    let (announce, _) = lab_targets(&lab);
    let mut config = BeaconConfig::for_lab(&lab);
    config.service_mut("dns").rise = START_RISE;
    config.service_mut("dns").fall = FALL;
    config.service_mut("dns").interval = INTERVAL;
    // Three outages in a row would (rightly) be damped; scenario 9 tests damping.
    config.service_mut("dns").damping = Some(DampingSpec::off());

    // --- 1. healthy: nothing before rise, then both prefixes, announced once.
    let watch = RouteWatch::start(&lab, &PREFIXES);
    let beacon = Beacon::start(&lab, &config);
    let mut saw_starting = false;
    let mut metrics_saw_starting = false;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // The route first, then the state: a route seen before a later `starting` was announced early.
        let announced: Vec<&str> = PREFIXES
            .iter()
            .copied()
            .filter(|p| lab.upstream_has_route(p).is_some())
            .collect();
        let state = beacon
            .try_status(&lab)
            .and_then(|s| nsbeacon_e2e::beacon::service_entry(&s, "dns"))
            .map(|s| s["state"].as_str().unwrap_or_default().to_owned());
        match state.as_deref() {
            Some("starting") => {
                assert!(
                    announced.is_empty(),
                    "{announced:?} announced while nsbeacon still reports starting; log:\n{}",
                    beacon.log()
                );
                // The same in /metrics, when the scrape is still from the starting phase (rise may
                // complete between the two reads).
                let m = beacon.metrics(&lab);
                if m.value(
                    "nsbeacon_service_state",
                    &[("service", "dns"), ("state", "starting")],
                ) == Some(1.0)
                {
                    for target in &announce {
                        assert_eq!(
                            m.desired_announced(target),
                            0.0,
                            "{target} desired while starting"
                        );
                    }
                    metrics_saw_starting = true;
                }
                saw_starting = true;
            }
            Some("up") => break,
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "service dns not up within 60 s (last state {state:?}); log:\n{}",
            beacon.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        saw_starting && metrics_saw_starting,
        "never saw the service starting in /status and /metrics (rise {START_RISE} x {INTERVAL:?}); \
         log:\n{}",
        beacon.log()
    );
    for prefix in PREFIXES {
        let route = lab
            .wait_for_route(prefix, true, MARGIN)
            .unwrap_or_else(|e| panic!("{e}\nnsbeacon log:\n{}", beacon.log()))
            .expect("route");
        assert_eq!(route.as_path, vec![NODE_AS], "{}", route.raw);
    }
    let history = watch.finish();
    for prefix in PREFIXES {
        let routes = history.routes(prefix);
        assert!(
            routes.len() == 2 && routes[0].is_none() && routes[1].is_some(),
            "{prefix}: expected absent, then announced once; saw:\n{}",
            history.describe()
        );
    }
    let m = beacon.metrics(&lab);
    m.assert_state("dns", "up");
    for check in ["soa-v4", "soa-v6"] {
        assert_eq!(
            m.expect("nsbeacon_check_up", &[("service", "dns"), ("check", check)]),
            1.0
        );
        let ok = m.expect(
            "nsbeacon_probe_results_total",
            &[("service", "dns"), ("check", check), ("result", "pass")],
        );
        assert!(ok >= f64::from(START_RISE), "{check}: {ok} passes < rise");
    }
    beacon.wait_actual(&lab, &announce, true, MARGIN);
    let up = beacon.service_status(&lab, "dns");
    assert_eq!(up["state"], "up", "{up:#}");
    assert!(
        up["targets"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["desired"] == "announced")),
        "{up:#}"
    );

    // --- 2. SIGKILL: withdrawn within interval x fall + margin; restarted: back after rise.
    lab.dns().kill();
    let withdraw_bound = INTERVAL * FALL + MARGIN;
    for prefix in PREFIXES {
        lab.wait_for_route(prefix, false, withdraw_bound)
            .unwrap_or_else(|e| panic!("after SIGKILL: {e}\nnsbeacon log:\n{}", beacon.log()));
    }
    let down = beacon.wait_state(&lab, "dns", "down", MARGIN);
    assert!(
        down["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "a down service says why: {down:#}"
    );
    let m = beacon.metrics(&lab);
    m.assert_state("dns", "down");
    for target in &announce {
        assert_eq!(m.desired_announced(target), 0.0, "{target} still desired");
    }
    beacon.wait_actual(&lab, &announce, false, MARGIN);

    lab.dns().restart();
    expect_back(&lab, &beacon, &announce, "after the DNS server restarted");

    // --- 3. SIGSTOP: the server hangs, the probes time out: withdrawn; SIGCONT: back.
    assert!(lab.dns().pause(), "SIGSTOP the DNS server");
    for prefix in PREFIXES {
        lab.wait_for_route(prefix, false, withdraw_bound + INTERVAL * FALL)
            .unwrap_or_else(|e| panic!("after SIGSTOP: {e}\nnsbeacon log:\n{}", beacon.log()));
    }
    beacon.wait_state(&lab, "dns", "down", MARGIN);
    // The service goes down with its first failing check; both fail soon after.
    let mut hung = serde_json::Value::Null;
    let both_down = nsbeacon_testkit::wait_until(MARGIN, || {
        hung = beacon.service_status(&lab, "dns");
        hung["checks"]
            .as_array()
            .is_some_and(|c| c.len() == 2 && c.iter().all(|c| c["up"] == false))
    });
    assert!(
        both_down,
        "both checks fail while the server hangs: {hung:#}"
    );
    let m = beacon.metrics(&lab);
    m.assert_state("dns", "down");
    assert!(
        m.value(
            "nsbeacon_probe_results_total",
            &[
                ("service", "dns"),
                ("check", "soa-v4"),
                ("result", "timeout")
            ]
        )
        .is_some_and(|n| n >= 1.0),
        "a hung server shows up as probe timeouts:\n{}",
        m.0
    );
    assert!(lab.dns().resume(), "SIGCONT the DNS server");
    expect_back(&lab, &beacon, &announce, "after SIGCONT");
    drop(beacon);
}

/// Both prefixes announced again (normal path), the service `up`, the targets read back as announced.
fn expect_back(lab: &Lab, beacon: &Beacon, announce: &[String], when: &str) {
    for prefix in PREFIXES {
        let route = lab
            .wait_for_route(prefix, true, INTERVAL * START_RISE + MARGIN)
            .unwrap_or_else(|e| panic!("{when}: {e}\nnsbeacon log:\n{}", beacon.log()))
            .expect("route");
        assert_eq!(route.as_path, vec![NODE_AS], "{when}: {}", route.raw);
    }
    beacon.wait_state(lab, "dns", "up", MARGIN);
    beacon.metrics(lab).assert_state("dns", "up");
    beacon.wait_actual(lab, announce, true, MARGIN);
}

#[test]
fn bird_knot_rise_kill_hang() {
    cell(NodeBgpKind::Bird, DnsServerKind::Knot);
}

#[test]
fn bird_nsd_rise_kill_hang() {
    cell(NodeBgpKind::Bird, DnsServerKind::Nsd);
}

#[test]
fn bird_bind_rise_kill_hang() {
    cell(NodeBgpKind::Bird, DnsServerKind::Bind);
}

#[test]
fn frr_knot_rise_kill_hang() {
    cell(NodeBgpKind::Frr, DnsServerKind::Knot);
}
