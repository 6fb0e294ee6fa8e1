//! Soft signals, outages and process integration of the real `nsbeacon` binary against real BIRD 2 and
//! Knot: serial lag degrades (make-before-break), an unreachable reference never withdraws by itself, a
//! BIRD outage never stalls probing, the drain file drains everything, and systemd gets READY/WATCHDOG.

mod common;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use common::{Node, WAIT};
use nsbeacon_testkit::knot::{KnotConfig, KnotServer, Zone};
use nsbeacon_testkit::wait_until;

const SERIAL: u32 = 2024010101;

fn serial_check(node: &Node, reference: std::net::SocketAddr) -> String {
    format!(
        r#"
[[service.check]]
name = "fresh"
type = "serial"
local = "{local}"
reference = "{reference}"
zones = ["example.com."]
max_lag = 5
interval = "300ms"
timeout = "250ms"
"#,
        local = node.knot.addr()
    )
}

/// BIRD's `Since` column as a comparable time of day (`HH:MM:SS.mmm` sorts lexically within a day).
fn since(node: &Node, protocol: &str) -> String {
    node.since(protocol)
}

#[test]
fn serial_lag_degrades_make_before_break_and_reference_loss_never_withdraws() {
    let mut node = Node::new();
    let mut reference =
        KnotServer::start(KnotConfig::new().with_zone(Zone::new("example.com.", SERIAL)));
    node.write_config_with_checks("", &serial_check(&node, reference.addr()), "");
    node.start();
    node.expect_service("dns", "up");
    node.expect_protocol("anycast_dns", "up", "in sync");
    node.expect_protocol("anycast_degraded", "down", "in sync");

    // The hidden primary moves ahead by 2 (within max_lag 5): degraded, not withdrawn.
    reference.set_serial("example.com.", SERIAL + 2);
    node.expect_service("dns", "degraded");
    node.expect_protocol("anycast_degraded", "up", "lagging within max_lag");
    node.expect_protocol("anycast_dns", "down", "lagging within max_lag");
    // Make-before-break: the degrade target came up no later than the main target went down.
    let degraded_up = since(&node, "anycast_degraded");
    let main_down = since(&node, "anycast_dns");
    assert!(
        degraded_up <= main_down,
        "degrade target enabled at {degraded_up}, main withdrawn at {main_down}: break before make\n{}",
        node.log()
    );
    let doc = node.status();
    let fresh = &doc["services"][0]["checks"][1];
    assert_eq!(fresh["serial"]["lagging"], 1, "{fresh}");
    assert_eq!(fresh["serial"]["max_lag"], 2, "{fresh}");
    let (_, metrics) = node.get("/metrics");
    assert!(
        metrics.contains(
            "nsbeacon_serial_zones{check=\"fresh\",service=\"dns\",verdict=\"lagging\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("nsbeacon_serial_max_lag{check=\"fresh\",service=\"dns\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains(&format!(
        "nsbeacon_zone_serial{{check=\"fresh\",server=\"reference\",service=\"dns\",zone=\"example.com.\"}} {}",
        SERIAL + 2
    )));

    // The local server catches up: back to up, main target re-announced.
    node.knot.set_serial("example.com.", SERIAL + 2);
    node.expect_service("dns", "up");
    node.expect_protocol("anycast_dns", "up", "caught up");
    node.expect_protocol("anycast_degraded", "down", "caught up");

    // The reference dies: a shared dependency. Degraded, but the prefix stays announced.
    reference.stop();
    node.expect_service("dns", "degraded");
    node.expect_protocol("anycast_degraded", "up", "reference unreachable");
    assert!(
        !wait_until(Duration::from_secs(2), || node
            .service_state("dns")
            .as_deref()
            == Some("down")),
        "an unreachable reference withdrew the service\n{}",
        node.log()
    );
    assert_eq!(node.state("anycast_degraded").as_deref(), Some("up"));

    // The reference comes back far ahead (lag 29 > max_lag 5): the local copy is stale, withdraw.
    reference.restart();
    reference.set_serial("example.com.", SERIAL + 31);
    node.expect_service("dns", "down");
    node.expect_protocol("anycast_dns", "down", "behind beyond max_lag");
    node.expect_protocol("anycast_degraded", "down", "behind beyond max_lag");
}

#[test]
fn bird_outage_never_stalls_probing_and_is_logged_once() {
    let mut node = Node::new();
    node.write_config("", "");
    node.start();
    node.expect_service("dns", "up");
    node.expect_protocol("anycast_dns", "up", "healthy");

    node.bird.kill();
    assert!(
        wait_until(WAIT, || node.status()["backend"]["reachable"] == false),
        "backend still reported reachable with BIRD dead"
    );
    let runs_before = node.status()["services"][0]["checks"][0]["runs"]
        .as_u64()
        .expect("runs");
    assert!(
        wait_until(WAIT, || node.status()["services"][0]["checks"][0]["runs"]
            .as_u64()
            .is_some_and(|r| r >= runs_before + 4)),
        "probing stalled while BIRD was down"
    );
    let (_, metrics) = node.get("/metrics");
    assert!(
        metrics.contains("nsbeacon_backend_up{backend=\"bird\"} 0"),
        "{metrics}"
    );

    // DNS fails during the outage: the decision is still made (and applied once BIRD is back).
    node.knot.stop();
    node.expect_service("dns", "down");
    // Let the reconciler retry a few times (backoff) before BIRD returns.
    let outage = Instant::now();
    std::thread::sleep(Duration::from_millis(1500));
    node.bird.start_again();
    // BIRD's config enables anycast_dns at start; nsbeacon must withdraw it.
    node.expect_protocol(
        "anycast_dns",
        "down",
        "BIRD back while DNS is down: must be withdrawn",
    );
    assert!(
        wait_until(WAIT, || node.status()["backend"]["reachable"] == true),
        "backend not reported reachable again"
    );
    let log = node.log();
    let episodes = log.matches("routing backend failed").count();
    assert_eq!(
        episodes,
        1,
        "one outage of {:?} must be logged once:\n{log}",
        outage.elapsed()
    );
    assert!(log.contains("routing backend works again"), "{log}");
}

#[test]
fn drain_file_drains_every_service_while_it_exists() {
    let mut node = Node::new();
    let drain_file = node.dir.path().join("drain-all");
    let second = common::service_block("second", "anycast_second", None, node.knot.addr());
    node.write_config(
        &format!("drain_file = \"{}\"", drain_file.display()),
        &second,
    );
    node.start();
    node.expect_service("dns", "up");
    node.expect_service("second", "up");
    node.expect_protocol("anycast_second", "up", "healthy");

    std::fs::write(&drain_file, "").expect("touch drain file");
    node.expect_service("dns", "drained");
    node.expect_service("second", "drained");
    node.expect_protocol("anycast_dns", "down", "drain file");
    node.expect_protocol("anycast_second", "down", "drain file");
    let (_, metrics) = node.get("/metrics");
    assert!(
        metrics.contains("nsbeacon_service_drained{service=\"second\"} 1"),
        "{metrics}"
    );

    std::fs::remove_file(&drain_file).expect("remove drain file");
    node.expect_protocol("anycast_dns", "up", "drain file removed");
    node.expect_protocol("anycast_second", "up", "drain file removed");
}

#[test]
fn systemd_gets_ready_after_the_first_reconcile_and_watchdog_pings() {
    let mut node = Node::new();
    node.write_config("", "");
    let socket_path = node.dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("bind notify socket");
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let socket_str = socket_path.display().to_string();
    node.start_with_env(&[
        ("NOTIFY_SOCKET", socket_str.as_str()),
        ("WATCHDOG_USEC", "400000"),
    ]);
    let mut seen = Vec::new();
    let deadline = Instant::now() + WAIT;
    let mut buf = [0u8; 512];
    while Instant::now() < deadline
        && !(seen.iter().any(|m: &String| m.contains("READY=1"))
            && seen.iter().filter(|m| m.contains("WATCHDOG=1")).count() >= 2)
    {
        if let Ok(n) = socket.recv(&mut buf) {
            seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    let ready_at = seen
        .iter()
        .position(|m| m.contains("READY=1"))
        .unwrap_or_else(|| panic!("no READY=1; got {seen:?}\n{}", node.log()));
    assert!(
        seen.iter().filter(|m| m.contains("WATCHDOG=1")).count() >= 2,
        "no watchdog pings; got {seen:?}"
    );
    assert!(
        seen[..ready_at].iter().all(|m| !m.contains("WATCHDOG=1")),
        "watchdog before READY: {seen:?}"
    );
    // READY means the first reconcile ran: the stale announcement from BIRD's config is already gone
    // or the service is already up; either way /status says ready.
    assert_eq!(node.status()["ready"], true);

    let status = node
        .guard()
        .stop(Duration::from_secs(10))
        .expect("exit status");
    assert!(status.success());
    let mut stopping = false;
    while let Ok(n) = socket.recv(&mut buf) {
        stopping |= String::from_utf8_lossy(&buf[..n]).contains("STOPPING=1");
    }
    assert!(stopping, "no STOPPING=1 at shutdown");
}

#[test]
fn an_unreadable_drain_store_keeps_everything_drained_until_it_reads() {
    let mut node = Node::new();
    node.write_config("", "");
    let state = node.dir.path().join("state");
    std::fs::create_dir_all(&state).expect("state dir");
    std::fs::write(state.join("drain.json"), "{ this is not json").expect("corrupt store");
    node.start();
    node.expect_service("dns", "drained");
    node.expect_protocol("anycast_dns", "down", "unreadable drain store at start");
    assert!(
        !wait_until(Duration::from_secs(2), || node
            .state("anycast_dns")
            .as_deref()
            == Some("up")),
        "announced although the drain store is unreadable\n{}",
        node.log()
    );
    // Repaired (no drains recorded): the service comes up.
    std::fs::remove_file(state.join("drain.json")).expect("remove store");
    node.expect_service("dns", "up");
    node.expect_protocol("anycast_dns", "up", "drain store readable again");
}

#[test]
fn graceful_drain_announces_the_degrade_target_first_then_withdraws() {
    let mut node = Node::new();
    node.write_config("", "");
    let text = std::fs::read_to_string(node.config_path()).expect("read config");
    std::fs::write(
        node.config_path(),
        text.replacen(
            "jitter = \"20ms\"",
            "jitter = \"20ms\"\ngraceful_drain = \"5s\"",
            1,
        ),
    )
    .expect("write config");
    node.start();
    node.expect_service("dns", "up");
    node.expect_protocol("anycast_dns", "up", "healthy");

    let drained_at = Instant::now();
    let out = node.cli(&["drain", "dns", "--reason", "planned maintenance"]);
    assert!(out.status.success(), "{}", common::text(&out));
    // First the graceful phase (5 s, so that polling BIRD on a loaded machine still sees it): the degrade
    // target (e.g. carrying GRACEFUL_SHUTDOWN) replaces the main one.
    node.expect_protocol("anycast_degraded", "up", "graceful drain phase");
    node.expect_protocol("anycast_dns", "down", "graceful drain phase");
    // Then, after the graceful period, everything is withdrawn; never before the period has passed (a
    // lower bound, which load on the machine can only lengthen).
    node.expect_protocol("anycast_degraded", "down", "after the graceful period");
    assert!(
        drained_at.elapsed() >= Duration::from_millis(4900),
        "the graceful phase ended {:?} after the drain, configured 5s",
        drained_at.elapsed()
    );
    node.expect_service("dns", "drained");
    assert_eq!(node.state("anycast_dns").as_deref(), Some("down"));
}

#[test]
fn flap_damping_holds_a_flapping_service_withdrawn_until_the_hold_down_ends() {
    let mut node = Node::new();
    node.write_config_with_checks(
        "",
        r#"
[service.damping]
penalty = 1000
suppress_threshold = 1500
reuse_threshold = 500
half_life = "4s"
max_hold_down = "8s"
"#,
        "",
    );
    node.start();
    node.expect_service("dns", "up");
    node.expect_protocol("anycast_dns", "up", "healthy");

    // Flap: down, then back. The penalty crosses the suppress threshold if the way back (Knot's start,
    // then rise) takes under one half-life: 4 s leaves room for a slow start on a loaded machine.
    node.knot.stop();
    node.expect_service("dns", "down");
    node.knot.restart();
    assert!(
        wait_until(
            WAIT,
            || node.status()["services"][0]["damping"]["suppressed"] == true
        ),
        "damping did not suppress the flapping service: {}",
        node.status()["services"][0]
    );
    let (_, metrics) = node.get("/metrics");
    assert!(
        metrics.contains("nsbeacon_damping_suppressed{service=\"dns\"} 1"),
        "{metrics}"
    );
    // DNS is healthy again, but the route stays withdrawn while suppressed.
    assert!(
        wait_until(WAIT, || node.status()["services"][0]["checks"][0]["up"]
            == true),
        "the check did not come back up"
    );
    assert_eq!(node.status()["services"][0]["damping"]["suppressed"], true);
    assert_eq!(node.state("anycast_dns").as_deref(), Some("down"));
    assert!(
        !wait_until(Duration::from_millis(1500), || node
            .state("anycast_dns")
            .as_deref()
            == Some("up")),
        "announced while suppressed"
    );
    // The maximum hold-down ends the suppression.
    node.expect_protocol("anycast_dns", "up", "after the maximum hold-down");
    node.expect_service("dns", "up");
}

#[test]
fn slow_answers_degrade_and_a_reload_that_relaxes_the_limit_restores() {
    let mut node = Node::new();
    let knot = node.knot.addr();
    let slow_check = |limit: &str| {
        format!(
            r#"
[[service.check]]
name = "latency"
type = "query"
target = "{}"
qname = "example.com."
qtype = "SOA"
timeout = "250ms"
slow_after = "{limit}"
"#,
            knot
        )
    };
    // No real answer arrives within 1 µs: every answer is correct but `slow`.
    node.write_config_with_checks("", &slow_check("1us"), "");
    node.start();
    node.expect_service("dns", "degraded");
    node.expect_protocol("anycast_degraded", "up", "slow answers");
    node.expect_protocol("anycast_dns", "down", "slow answers");
    let doc = node.status();
    let latency = &doc["services"][0]["checks"][1];
    assert_eq!(latency["result"], "slow", "{latency}");
    assert_eq!(latency["signal"], "soft", "{latency}");
    let (_, metrics) = node.get("/metrics");
    assert!(
        metrics.contains(
            "nsbeacon_probe_results_total{check=\"latency\",result=\"slow\",service=\"dns\",transport=\"udp\"}"
        ),
        "{metrics}"
    );

    // Relax the limit and reload: the same check (same name) now passes; back to up.
    node.write_config_with_checks("", &slow_check("240ms"), "");
    assert!(node.guard().signal(nsbeacon_testkit::Signal::SIGHUP));
    node.expect_service("dns", "up");
    node.expect_protocol("anycast_dns", "up", "limit relaxed");
    node.expect_protocol("anycast_degraded", "down", "limit relaxed");
}
