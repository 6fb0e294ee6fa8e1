//! The fleet guard end to end (issue 13): a 3-member etcd cluster on loopback, 5 nodes each with its own
//! BIRD (from bird-templates/) in its own namespace, one upstream BIRD that sees one path per announcing
//! node, and one nsbeacon per node. Every process is started here and killed by PID.

use std::sync::Mutex;
use std::time::Duration;

use nsbeacon_e2e::fleet::{self, FleetLab, PathWatch, count};
use nsbeacon_testkit::{DaemonGuard, Signal, require_binary};

/// The fleet labs are big (6 BIRDs, 3 etcd, 5 nsbeacon): one at a time.
static ONE_FLEET: Mutex<()> = Mutex::new(());

const NODES: usize = 5;
const SETTLE: Duration = Duration::from_secs(15);

fn lock() -> std::sync::MutexGuard<'static, ()> {
    ONE_FLEET
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn up_everywhere(lab: &FleetLab) {
    lab.wait_states("every node up", SETTLE, |s| count(s, "up") == s.len());
    lab.wait_paths("a normal path from every node", SETTLE, |p| {
        p.len() == NODES && p.iter().all(|p| p.node_as_count == 1)
    });
}

/// Nodes 0-2 probe Knot 0, nodes 3-4 Knot 1; min_announcing 3.
fn five_nodes() -> FleetLab {
    let mut lab = FleetLab::start(NODES, &[&[0, 1, 2], &[3, 4]], 3);
    for i in 0..NODES {
        lab.write_config(i, None, "", "min_announcing = 3");
        lab.start_node(i);
    }
    up_everywhere(&lab);
    lab
}

#[test]
fn all_nodes_failing_at_once_withdraw_only_down_to_min_announcing_and_the_rest_are_held() {
    let _one = lock();
    let mut lab = five_nodes();

    // 20 rounds: every node's DNS hangs at the same instant (one SIGSTOP per Knot, both within a
    // millisecond), so all five nodes decide to withdraw together and race through the guard.
    for round in 1..=20 {
        let watch = PathWatch::start(lab.upstream_socket());
        lab.signal_knot(0, Signal::SIGSTOP);
        lab.signal_knot(1, Signal::SIGSTOP);
        let states = lab.wait_states(&format!("round {round}: 2 down and 3 held"), SETTLE, |s| {
            count(s, "down") == 2 && count(s, "held") == 3
        });
        let paths = lab.wait_paths(&format!("round {round}: 3 degraded paths"), SETTLE, |p| {
            p.len() == 3 && p.iter().all(|p| p.node_as_count == 4)
        });
        // Held for a while: still exactly 2 withdrawn (no late over-withdrawal).
        std::thread::sleep(Duration::from_millis(600));
        let later = lab.states();
        assert_eq!(
            (count(&later, "down"), count(&later, "held")),
            (2, 3),
            "round {round}: the split changed while held: {later:?} (was {states:?})"
        );
        lab.signal_knot(0, Signal::SIGCONT);
        lab.signal_knot(1, Signal::SIGCONT);
        up_everywhere(&lab);
        let (fewest, polls) = watch.finish();
        assert!(
            polls > 20,
            "round {round}: the upstream was polled {polls} times"
        );
        assert!(
            fewest >= 3,
            "round {round}: the upstream had only {fewest} path(s) at some instant (min_announcing 3); \
             paths when held: {paths:?}"
        );
    }

    // 2 of 5 fail (Knot 1: nodes 3 and 4): both withdraw, as without the guard.
    let watch = PathWatch::start(lab.upstream_socket());
    lab.signal_knot(1, Signal::SIGSTOP);
    let states = lab.wait_states("nodes 3 and 4 down", SETTLE, |s| {
        count(s, "down") == 2 && count(s, "up") == 3
    });
    assert_eq!(states[3].as_deref(), Some("down"));
    assert_eq!(states[4].as_deref(), Some("down"));
    lab.wait_paths("3 normal paths", SETTLE, |p| {
        p.len() == 3 && p.iter().all(|p| p.node_as_count == 1)
    });
    lab.signal_knot(1, Signal::SIGCONT);
    up_everywhere(&lab);
    let (fewest, _) = watch.finish();
    assert_eq!(fewest, 3, "2 of 5 withdrew, no more");

    shared_signer_failing_is_held(&mut lab);

    // The fleet view as an operator reads it.
    let records = lab.fleet_records(0);
    let records = records.as_array().expect("a list of records");
    assert_eq!(records.len(), NODES, "{records:?}");
    assert!(
        records
            .iter()
            .all(|r| r["state"] == "up" && r["targets"] == serde_json::json!(["anycast_dns"])),
        "{records:?}"
    );
    let (code, body) = lab.http_get(1, "/fleet").expect("/fleet answers");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"node\":\"node-4\""), "{body}");
    // Each node's view follows etcd's change events (debounced by 50 ms), not only its 5 s refresh.
    let started = std::time::Instant::now();
    let mut metrics = String::new();
    let fresh = nsbeacon_testkit::wait_until(Duration::from_secs(2), || {
        metrics = lab
            .http_get(2, "/metrics")
            .map(|(_, m)| m)
            .unwrap_or_default();
        metrics.contains("nsbeacon_fleet_nodes{service=\"dns\",state=\"up\"} 5")
    });
    assert!(
        fresh,
        "{}\nnode-2 log:\n{}",
        metrics
            .lines()
            .filter(|l| l.starts_with("nsbeacon_fleet_nodes"))
            .collect::<Vec<_>>()
            .join("\n"),
        nsbeacon_e2e::fleet::tail(&lab.nodes[2].log(), 40)
    );
    eprintln!("fleet view fresh after {:?}", started.elapsed());
    assert!(metrics.contains("nsbeacon_fleet_backend_up 1"));
    assert!(metrics.contains("nsbeacon_fleet_guard_holds_total{service=\"dns\"}"));

    // A node SIGKILLed: its record is gone after the lease TTL (2 s) and it is counted as not announcing
    // (its BIRD still announces, but the guard only trusts live records). 4 registered, min 3: when all
    // four fail, one withdraws and three are held.
    lab.kill_node(4);
    let gone = nsbeacon_testkit::wait_until(Duration::from_secs(8), || {
        lab.fleet_records(0)
            .as_array()
            .is_some_and(|r| r.len() == NODES - 1 && r.iter().all(|r| r["node"] != "node-4"))
    });
    assert!(
        gone,
        "node-4's record outlived its lease: {}",
        lab.fleet_records(0)
    );
    lab.signal_knot(0, Signal::SIGSTOP);
    lab.signal_knot(1, Signal::SIGSTOP);
    let live = |s: &[Option<String>]| s[..4].to_vec();
    lab.wait_states("1 down, 3 held among the live nodes", SETTLE, |s| {
        count(&live(s), "down") == 1 && count(&live(s), "held") == 3
    });
    lab.signal_knot(0, Signal::SIGCONT);
    lab.signal_knot(1, Signal::SIGCONT);
    lab.wait_states("the live nodes up", SETTLE, |s| count(&live(s), "up") == 4);

    // A reload that lowers min_announcing to 1 changes no route, and then applies: with 4 live nodes
    // failing, 3 withdraw and 1 is held.
    lab.wait_paths("5 normal paths", SETTLE, |p| {
        p.len() == NODES && p.iter().all(|p| p.node_as_count == 1)
    });
    // Settled first (the paths unchanged for a second), so that a route still moving after the previous
    // phase is not blamed on the reload.
    let mut before = lab.upstream_paths();
    let settled = nsbeacon_testkit::wait_until(Duration::from_secs(10), || {
        std::thread::sleep(Duration::from_secs(1));
        let now = lab.upstream_paths();
        std::mem::replace(&mut before, now) == before
    });
    assert!(settled, "the upstream's paths did not settle: {before:?}");
    for i in 0..4 {
        lab.write_config(i, None, "", "min_announcing = 1");
    }
    lab.reload(&[0, 1, 2, 3]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        lab.upstream_paths(),
        before,
        "the reload changed a route at the upstream; states {:?}\nnode-0 log tail:\n{}",
        lab.states(),
        nsbeacon_e2e::fleet::tail(&lab.nodes[0].log(), 20)
    );
    lab.signal_knot(0, Signal::SIGSTOP);
    lab.signal_knot(1, Signal::SIGSTOP);
    lab.wait_states("3 down, 1 held after the reload", SETTLE, |s| {
        count(&live(s), "down") == 3 && count(&live(s), "held") == 1
    });
    lab.signal_knot(0, Signal::SIGCONT);
    lab.signal_knot(1, Signal::SIGCONT);
    lab.wait_states("the live nodes up again", SETTLE, |s| {
        count(&live(s), "up") == 4
    });

    // A clean stop leaves the fleet at once (the lease is revoked), before the shutdown withdrawal: the
    // record is gone long before the 2 s TTL would have removed it.
    let stopped = lab.nodes[3]
        .nsbeacon()
        .expect("running")
        .stop(Duration::from_secs(10));
    assert!(
        stopped.is_some_and(|s| s.success()),
        "{}",
        lab.nodes[3].log()
    );
    assert!(
        lab.nodes[3].log().contains("left the fleet"),
        "{}",
        lab.nodes[3].log()
    );
    let records = lab.fleet_records(0);
    assert!(
        records
            .as_array()
            .is_some_and(|r| r.iter().all(|r| r["node"] != "node-3")),
        "node-3's record is still there after its clean stop: {records}"
    );
}

/// A DNSSEC failure is a hard signal, never "refused" (issue 16): when the signer every node shares
/// stalls, every node's dnssec check fails at the same sweep, and the fleet guard holds `min_announcing`
/// nodes announced (degraded) instead of letting the fleet withdraw. Runs in the lab of the test above
/// (every node up, min_announcing 3) and leaves it as it found it.
fn shared_signer_failing_is_held(lab: &mut FleetLab) {
    let started = std::time::Instant::now();
    for i in 0..NODES {
        lab.write_config(i, None, "", "min_announcing = 3");
        lab.add_dnssec_check(i);
    }
    lab.reload(&(0..NODES).collect::<Vec<_>>());
    up_everywhere(lab);
    let signatures_valid = nsbeacon_testkit::wait_until(Duration::from_secs(5), || {
        (0..NODES).all(|i| {
            lab.http_get(i, "/metrics").is_some_and(|(_, m)| {
                m.contains("nsbeacon_dnssec_zones{check=\"signatures\",service=\"dns\",verdict=\"valid\"} 1")
            })
        })
    });
    assert!(
        signatures_valid,
        "not every node's dnssec check saw the signed zone valid; node-0 metrics:\n{}",
        lab.http_get(0, "/metrics")
            .map(|(_, m)| m)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("nsbeacon_dnssec_zones"))
            .collect::<Vec<_>>()
            .join("\n")
    );

    // The shared signer stalls: its latest signatures have 30 minutes left, below fail_before (1 h), on
    // both Knots at once. Every node's dnssec check is critical (hard); the SOA checks still pass.
    let watch = PathWatch::start(lab.upstream_socket());
    lab.resign_shared_zone(2, Duration::from_secs(1800));
    let states = lab.wait_states(
        "signatures critical everywhere: 2 down, 3 held",
        SETTLE,
        |s| count(s, "down") == 2 && count(s, "held") == 3,
    );
    let paths = lab.wait_paths("3 degraded paths while held", SETTLE, |p| {
        p.len() == 3 && p.iter().all(|p| p.node_as_count == 4)
    });
    for (i, state) in states.iter().enumerate() {
        let metrics = lab
            .http_get(i, "/metrics")
            .map(|(_, m)| m)
            .unwrap_or_default();
        assert!(
            metrics.contains(
                "nsbeacon_dnssec_zones{check=\"signatures\",service=\"dns\",verdict=\"critical\"} 1"
            ),
            "node-{i} is {state:?} but its dnssec check does not report the zone critical:\n{}",
            metrics
                .lines()
                .filter(
                    |l| l.starts_with("nsbeacon_dnssec") || l.starts_with("nsbeacon_fleet_guard")
                )
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    std::thread::sleep(Duration::from_millis(600));
    let later = lab.states();
    assert_eq!(
        (count(&later, "down"), count(&later, "held")),
        (2, 3),
        "the split changed while held: {later:?} (was {states:?}; paths {paths:?})"
    );

    // The signer recovers: fresh signatures, every node up and announcing normally again.
    lab.resign_shared_zone(3, fleet::SIGNED_ZONE_VALIDITY);
    up_everywhere(lab);
    let (fewest, polls) = watch.finish();
    assert!(polls > 20, "the upstream was polled {polls} times");
    assert!(
        fewest >= 3,
        "the upstream had only {fewest} path(s) at some instant (min_announcing 3)"
    );

    // Back to the SOA check alone, for the rest of the test.
    for i in 0..NODES {
        lab.write_config(i, None, "", "min_announcing = 3");
    }
    lab.reload(&(0..NODES).collect::<Vec<_>>());
    up_everywhere(lab);
    eprintln!("shared signer phase took {:?}", started.elapsed());
}

/// socat relays between node 0 and etcd; the per-connection children are in each relay's process group,
/// so stopping the group stops every byte. Dropping kills the groups (children too, even if stopped).
struct Relays(Vec<DaemonGuard>);

impl Relays {
    fn signal(&self, sig: Signal) {
        for relay in &self.0 {
            assert!(relay.signal_group(sig), "signal relay {}", relay.name());
        }
    }
}

impl Drop for Relays {
    fn drop(&mut self) {
        for relay in &self.0 {
            relay.signal_group(Signal::SIGKILL);
            relay.signal_group(Signal::SIGCONT);
        }
    }
}

#[test]
fn etcd_trouble_never_withdraws_anything_by_itself() {
    let _one = lock();
    require_binary("socat");
    // Node 0 alone probes Knot 0, and reaches etcd through relays the test can freeze (a partition:
    // packets go nowhere, calls hang until their timeouts).
    let mut lab = FleetLab::start(NODES, &[&[0], &[1, 2, 3, 4]], 3);
    let mut relays = Relays(Vec::new());
    let mut relayed = Vec::new();
    for m in 0..3 {
        let port = nsbeacon_testkit::free_port();
        let mut cmd = std::process::Command::new(require_binary("socat"));
        cmd.arg(format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork"))
            .arg(format!("TCP:{}", lab.etcd.client_addr(m)));
        relays.0.push(DaemonGuard::spawn(
            &format!("etcd relay {m}"),
            cmd,
            Some(&lab.dir().join(format!("relay-{m}.log"))),
        ));
        relayed.push(format!("http://127.0.0.1:{port}"));
    }
    lab.write_config(0, Some(&relayed), "", "min_announcing = 3");
    lab.start_node(0);
    for i in 1..NODES {
        lab.write_config(i, None, "", "min_announcing = 3");
        lab.start_node(i);
    }
    up_everywhere(&lab);

    // Node 0 partitioned from etcd while its DNS fails: on_unavailable = "local" (the default) decides
    // as without a fleet, after at most guard_timeout.
    relays.signal(Signal::SIGSTOP);
    lab.signal_knot(0, Signal::SIGSTOP);
    lab.wait_states("node 0 down, the others up", SETTLE, |s| {
        s[0].as_deref() == Some("down") && count(&s[1..], "up") == NODES - 1
    });
    let (_, status) = lab.http_get(0, "/status").expect("/status");
    assert!(
        status.contains("decided locally"),
        "the reason says why: {status}"
    );
    lab.signal_knot(0, Signal::SIGCONT);
    relays.signal(Signal::SIGCONT);
    up_everywhere(&lab);

    // etcd loses quorum (2 of 3 members killed): nothing is withdrawn because of it.
    let before = lab.upstream_paths();
    let watch = PathWatch::start(lab.upstream_socket());
    lab.etcd.kill_member(1);
    lab.etcd.kill_member(2);
    std::thread::sleep(Duration::from_secs(5));
    let states = lab.states();
    assert_eq!(count(&states, "up"), NODES, "{states:?}");
    let (_, metrics) = lab.http_get(1, "/metrics").expect("/metrics");
    assert!(
        metrics.contains("nsbeacon_fleet_backend_up 0"),
        "the node sees etcd down: {}",
        metrics
            .lines()
            .filter(|l| l.starts_with("nsbeacon_fleet_backend"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // etcd back: records and leases are restored without a route change.
    lab.etcd.restart_member(1);
    lab.etcd.restart_member(2);
    let restored = nsbeacon_testkit::wait_until(Duration::from_secs(20), || {
        std::process::Command::new(nsbeacon_e2e::nsbeacon::nsbeacon_binary())
            .arg("-c")
            .arg(&lab.nodes[1].config_path)
            .args(["fleet", "--json"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
            .and_then(|v| {
                v.as_array()
                    .map(|r| r.iter().filter(|r| r["state"] == "up").count())
            })
            == Some(NODES)
    });
    assert!(restored, "records not restored: {:?}", lab.states());
    let (fewest, _) = watch.finish();
    assert_eq!(fewest, NODES, "a path went away while etcd had no quorum");
    assert_eq!(
        lab.upstream_paths(),
        before,
        "a route changed (since stamps) across the etcd outage"
    );
}
