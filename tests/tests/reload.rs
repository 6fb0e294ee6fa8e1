//! Issue 14, BIRD: `birdc configure`, BIRD restarts and reboots against nsbeacon's decision files
//! (`[backend] decision_dir`, included by bird-templates/nsbeacon/anycast-dns.conf), judged by the upstream:
//! its BGP import counters (every update and withdrawal the node sent, so nothing between two polls is
//! missed), its routes' `since` stamps, and a continuous [`RouteWatch`].

use std::path::Path;
use std::time::{Duration, Instant};

use nsbeacon_e2e::beacon::{Beacon, BeaconConfig, RouteWatch};
use nsbeacon_e2e::lab::{
    ANYCAST_V4, ANYCAST_V6, NODE_AS, UPSTREAM_PROTOCOL_V4, UPSTREAM_PROTOCOL_V6, node_bird_config,
};
use nsbeacon_e2e::nsbeacon::lab_targets;
use nsbeacon_e2e::{Lab, LabOptions, NodeBgpKind};

const PREFIXES: [&str; 2] = [ANYCAST_V4, ANYCAST_V6];
/// Slack for a BGP update to reach the upstream, or a state to show, on a loaded 2-core machine.
const MARGIN: Duration = Duration::from_secs(6);
/// How long a BGP session may take to come back after the node's BIRD restarted (the template keeps
/// BIRD's default timers: the node waits `connect delay time` 5 s, the lab's upstream retries every 2 s).
const SESSION_BACK: Duration = Duration::from_secs(30);

/// The upstream's BGP import counters for one session: updates and withdrawals received from the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ImportCounters {
    updates: u64,
    withdraws: u64,
}

/// Parses `show protocols all PROTO` of the upstream: the `received` column of `Import updates:` and
/// `Import withdraws:`.
fn import_counters(lab: &Lab, protocol: &str) -> ImportCounters {
    let reply = lab
        .upstream_bird()
        .command(&format!("show protocols all {protocol}"));
    let received = |label: &str| {
        reply
            .lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no {label:?} counter in the upstream's reply:\n{reply}"))
    };
    ImportCounters {
        updates: received("Import updates:"),
        withdraws: received("Import withdraws:"),
    }
}

/// Everything the upstream knows about the node's routes that changes when a route flaps. Equal when the
/// counters are and every route's `since` stamp reads the same within BIRD's print jitter.
#[derive(Debug, Clone)]
struct UpstreamView {
    counters: Vec<ImportCounters>,
    since: Vec<Option<String>>,
}

impl PartialEq for UpstreamView {
    fn eq(&self, other: &Self) -> bool {
        self.counters == other.counters
            && self.since.len() == other.since.len()
            && self
                .since
                .iter()
                .zip(&other.since)
                .all(|(a, b)| match (a, b) {
                    (Some(a), Some(b)) => nsbeacon_e2e::route::same_since(a, b),
                    (a, b) => a == b,
                })
    }
}

fn upstream_view(lab: &Lab) -> UpstreamView {
    UpstreamView {
        counters: [UPSTREAM_PROTOCOL_V4, UPSTREAM_PROTOCOL_V6]
            .iter()
            .map(|p| import_counters(lab, p))
            .collect(),
        since: PREFIXES
            .iter()
            .map(|p| lab.upstream_has_route(p).map(|r| r.since))
            .collect(),
    }
}

/// Both prefixes announced with the normal path (the node's AS once).
fn expect_normal(lab: &Lab, beacon: &Beacon, timeout: Duration, when: &str) {
    for prefix in PREFIXES {
        lab.wait_for_route_where(prefix, "the normal path", timeout, |r| {
            r.is_some_and(|r| r.as_path == vec![NODE_AS])
        })
        .unwrap_or_else(|e| panic!("{when}: {e}\nnsbeacon log:\n{}", beacon.log()));
    }
}

/// The decision file of `protocol` in the lab, or `None` when there is none.
fn decision(lab: &Lab, protocol: &str) -> Option<String> {
    std::fs::read_to_string(lab.decision_dir().join(format!("{protocol}.conf"))).ok()
}

/// Asserts what the decision files say: `disabled no;` for `enabled`, and for the others either no
/// file or `disabled yes;`.
fn expect_decisions(lab: &Lab, enabled: &[String], disabled: &[String], when: &str) {
    for p in enabled {
        let text = decision(lab, p);
        assert!(
            text.as_deref()
                .is_some_and(|t| t.ends_with("\ndisabled no;\n")),
            "{when}: decision file of {p} should enable it: {text:?}"
        );
    }
    for p in disabled {
        let text = decision(lab, p);
        assert!(
            text.as_deref()
                .is_none_or(|t| t.ends_with("\ndisabled yes;\n")),
            "{when}: decision file of {p} should be absent or disable it: {text:?}"
        );
    }
}

fn write_node_config(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// `configure` on the node's BIRD must end with `0003` (reconfigured) or `0004` (reconfiguration in
/// progress: BIRD waits for a removed protocol to stop), judged by the code only.
fn configure(lab: &Lab) {
    let reply = lab.node_birdc("configure");
    assert!(
        reply
            .lines()
            .any(|l| l.starts_with("0003 ") || l.starts_with("0004 ")),
        "birdc configure did not answer 0003 or 0004: {reply}"
    );
}

#[test]
fn bird_configure_twenty_times_while_announced_changes_nothing_upstream() {
    let mut lab = Lab::start(LabOptions::new(NodeBgpKind::Bird));
    let (announce, degrade) = lab_targets(&lab);
    let beacon = Beacon::start(&lab, &BeaconConfig::for_lab(&lab));
    expect_normal(&lab, &beacon, Duration::from_secs(30), "at start");
    beacon.wait_actual(&lab, &announce, true, MARGIN);
    expect_decisions(&lab, &announce, &degrade, "announced");

    let config_path = lab.node_bird().expect("BIRD lab").config_path();
    let base = node_bird_config(&lab.run_root());
    let unrelated = format!(
        "{base}\nprotocol static lab_unrelated {{\n  ipv4;\n  route 198.51.100.128/25 blackhole;\n}}\n"
    );
    let before = upstream_view(&lab);
    assert!(
        before.since.iter().all(Option::is_some),
        "both routes at the upstream: {before:?}"
    );
    let watch = RouteWatch::start(&lab, &PREFIXES);
    for run in 0..20 {
        // Odd runs add an unrelated static protocol, even runs load the unchanged template again.
        let with_unrelated = run % 2 == 1;
        write_node_config(
            &config_path,
            if with_unrelated { &unrelated } else { &base },
        );
        configure(&lab);
        let mut unrelated_state = None;
        let followed = nsbeacon_testkit::wait_until(MARGIN, || {
            unrelated_state = lab
                .node_bird()
                .expect("BIRD lab")
                .protocol_state("lab_unrelated");
            unrelated_state.as_deref() == with_unrelated.then_some("up")
        });
        assert!(
            followed,
            "run {run}: the unrelated protocol does not follow the config: {unrelated_state:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // BIRD sends a withdrawal within milliseconds; give it ample time to arrive before comparing.
    std::thread::sleep(Duration::from_secs(1));
    let history = watch.finish();
    let after = upstream_view(&lab);
    assert_eq!(
        before,
        after,
        "20 configures changed what the upstream received (counters: updates, withdraws per session; route \
         since stamps)\nupstream saw:\n{}\nnode BIRD log:\n{}",
        history.describe(),
        lab.node_bgp_log()
    );
    for prefix in PREFIXES {
        assert_eq!(
            history.changes(prefix),
            0,
            "{prefix}:\n{}",
            history.describe()
        );
    }
    expect_decisions(&lab, &announce, &degrade, "after 20 configures");

    // The control: without its decision file the same configure is the old flap (BIRD disables the
    // protocol, the upstream receives a withdrawal), which nsbeacon then repairs and writes the file again.
    // This shows the counters above would have seen a flap.
    std::fs::remove_file(lab.decision_dir().join("anycast_dns.conf"))
        .expect("remove a decision file");
    let v4_before = import_counters(&lab, UPSTREAM_PROTOCOL_V4);
    configure(&lab);
    let mut v4_after = v4_before;
    let seen = nsbeacon_testkit::wait_until(MARGIN, || {
        v4_after = import_counters(&lab, UPSTREAM_PROTOCOL_V4);
        v4_after.withdraws > v4_before.withdraws
    });
    assert!(
        seen,
        "control: a configure without the decision file should flap the route: {v4_before:?} -> {v4_after:?}"
    );
    expect_normal(&lab, &beacon, MARGIN, "control: repaired by nsbeacon");
    assert!(
        nsbeacon_testkit::wait_until(MARGIN, || decision(&lab, "anycast_dns")
            .is_some_and(|t| t.ends_with("\ndisabled no;\n"))),
        "control: nsbeacon did not write the decision file again\nnsbeacon log:\n{}",
        beacon.log()
    );
}

/// Kills the node's BIRD and starts it again (a crash); returns how long until BIRD has `anycast_dns` up
/// again and until the upstream has both prefixes again, both from the restart.
fn crash_and_time(lab: &mut Lab, beacon: &Beacon) -> (Duration, Duration) {
    lab.node_bird().expect("BIRD lab").kill();
    for prefix in PREFIXES {
        lab.wait_for_route(prefix, false, MARGIN * 3)
            .unwrap_or_else(|e| panic!("the crash should withdraw {prefix}: {e}"));
    }
    let start = Instant::now();
    lab.node_bird().expect("BIRD lab").start_again();
    let bird = lab.node_bird().expect("BIRD lab");
    assert!(
        bird.wait_protocol_state("anycast_dns", "up", MARGIN),
        "anycast_dns not up after the restart\nnsbeacon log:\n{}",
        beacon.log()
    );
    let node_up = start.elapsed();
    expect_normal(lab, beacon, SESSION_BACK, "after the BIRD crash");
    (node_up, start.elapsed())
}

/// `nsbeacon_route_drift_total` summed over `targets`: how often nsbeacon found a target not as it left it.
fn drift(lab: &Lab, beacon: &Beacon, targets: &[String]) -> f64 {
    let m = beacon.metrics(lab);
    targets
        .iter()
        .filter_map(|t| m.value("nsbeacon_route_drift_total", &[("target", t)]))
        .sum()
}

#[test]
fn bird_crash_while_healthy_announces_again_from_the_decision_files() {
    let mut lab = Lab::start(LabOptions::new(NodeBgpKind::Bird));
    let (announce, degrade) = lab_targets(&lab);
    let mut beacon = Beacon::start(&lab, &BeaconConfig::for_lab(&lab));
    expect_normal(&lab, &beacon, Duration::from_secs(30), "at start");
    beacon.wait_actual(&lab, &announce, true, MARGIN);

    let drift_before = drift(&lab, &beacon, &announce);
    let mut with_files = Vec::new();
    for _ in 0..3 {
        with_files.push(crash_and_time(&mut lab, &beacon));
    }
    expect_decisions(&lab, &announce, &degrade, "after the crashes");
    beacon.wait_actual(&lab, &announce, true, MARGIN);
    // BIRD started the protocols itself from the decision files: nsbeacon had nothing to re-assert.
    assert_eq!(
        drift(&lab, &beacon, &announce),
        drift_before,
        "with decision files nsbeacon should not have had to re-enable anything\nnsbeacon log:\n{}",
        beacon.log()
    );

    // Today's behaviour for comparison: nsbeacon without decision files (the templates then keep every
    // protocol disabled at start), so the restarted BIRD waits for nsbeacon's read-back.
    assert_eq!(
        beacon.terminate().and_then(|s| s.code()),
        Some(0),
        "nsbeacon exits 0 on SIGTERM\n{}",
        beacon.log()
    );
    std::fs::remove_dir_all(lab.decision_dir()).expect("clear the decision dir");
    let without = BeaconConfig::for_lab(&lab).render(&lab);
    let without: String = without
        .lines()
        .filter(|l| !l.starts_with("decision_dir"))
        .map(|l| format!("{l}\n"))
        .collect();
    beacon.write_config_unchecked(&without);
    beacon.spawn(&lab);
    expect_normal(
        &lab,
        &beacon,
        Duration::from_secs(30),
        "without decision files",
    );
    beacon.wait_actual(&lab, &announce, true, MARGIN);
    let drift_before = drift(&lab, &beacon, &announce);
    let mut without_files = Vec::new();
    for _ in 0..3 {
        without_files.push(crash_and_time(&mut lab, &beacon));
    }
    // Without the files every restart starts the protocols disabled and nsbeacon re-enables them.
    assert!(
        drift(&lab, &beacon, &announce) >= drift_before + 3.0,
        "without decision files each restart should need nsbeacon's re-assert\nnsbeacon log:\n{}",
        beacon.log()
    );
    assert!(
        !lab.decision_dir().exists(),
        "no decision_dir configured, yet files were written"
    );
    let ms = |v: &[(Duration, Duration)]| {
        v.iter()
            .map(|(n, u)| format!("node {} ms / upstream {} ms", n.as_millis(), u.as_millis()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    eprintln!(
        "BIRD crash + restart while DNS healthy, until anycast_dns is up in BIRD / until the upstream has both \
         prefixes again:\n  with decision files:    {}\n  without decision files: {}",
        ms(&with_files),
        ms(&without_files)
    );
}

#[test]
fn reboot_announces_nothing_before_rise_good_probes() {
    let mut lab = Lab::start(LabOptions::new(NodeBgpKind::Bird));
    let (announce, degrade) = lab_targets(&lab);
    let config = BeaconConfig::for_lab(&lab);
    let mut beacon = Beacon::start(&lab, &config);
    expect_normal(&lab, &beacon, Duration::from_secs(30), "at start");
    expect_decisions(&lab, &announce, &degrade, "announced");

    // The reboot: everything dies at once, nothing is withdrawn cleanly, and /run (a tmpfs) is empty after.
    beacon.kill();
    lab.dns().kill();
    lab.node_bird().expect("BIRD lab").kill();
    std::fs::remove_dir_all(lab.run_root()).expect("clear the runtime dir");
    std::fs::create_dir(lab.run_root()).expect("an empty /run");
    for prefix in PREFIXES {
        lab.wait_for_route(prefix, false, MARGIN * 3)
            .unwrap_or_else(|e| panic!("the dead node's {prefix} should go: {e}"));
    }

    // BIRD comes up first, DNS is not there yet: no route, whatever nsbeacon does.
    let watch = RouteWatch::start(&lab, &PREFIXES);
    lab.node_bird().expect("BIRD lab").start_again();
    for protocol in [UPSTREAM_PROTOCOL_V4, UPSTREAM_PROTOCOL_V6] {
        assert!(
            lab.upstream_bird()
                .wait_protocol_state(protocol, "up", SESSION_BACK),
            "session {protocol} not up after the reboot; node log:\n{}",
            lab.node_bgp_log()
        );
    }
    beacon.spawn(&lab);
    std::thread::sleep(Duration::from_secs(3));
    let bird = lab.node_bird().expect("BIRD lab");
    for p in announce.iter().chain(&degrade) {
        assert_eq!(
            bird.protocol_state(p).as_deref(),
            Some("down"),
            "{p} after the reboot, DNS still down"
        );
    }
    expect_decisions(&lab, &[], &announce, "after the reboot, DNS down");
    let history = watch.finish();
    for prefix in PREFIXES {
        assert!(
            !history.ever_announced(prefix),
            "{prefix} announced after the reboot before DNS answered:\n{}",
            history.describe()
        );
    }

    // DNS comes back: the route follows only after `rise` good probes, at least (rise - 1) intervals later.
    let watch = RouteWatch::start(&lab, &PREFIXES);
    let dns_back = Instant::now();
    lab.dns().restart();
    expect_normal(
        &lab,
        &beacon,
        Duration::from_secs(30),
        "DNS back after the reboot",
    );
    let history = watch.finish();
    let service = &config.services[0];
    let earliest = service.interval.mul_f64(f64::from(service.rise - 1) * 0.8);
    for prefix in PREFIXES {
        let first = history
            .events
            .iter()
            .find(|e| e.prefix == prefix && e.route.is_some())
            .unwrap_or_else(|| panic!("{prefix} never announced:\n{}", history.describe()));
        let after = first.at.duration_since(dns_back);
        assert!(
            after >= earliest,
            "{prefix} announced {after:?} after DNS came back, before rise = {} probes at {:?} could pass \
             (at least {earliest:?})",
            service.rise,
            service.interval
        );
    }
    expect_decisions(&lab, &announce, &degrade, "announced after the reboot");
}
