//! Load signals and the overload policy against real servers (issue 16): the Knot reader counts the
//! queries a real Knot received, the kernel reader sees real receive-buffer drops, and a real flood
//! (dnsperf on loopback against a deliberately small Knot: `mod-rrl` drops every answer over 20 per
//! second to the flood's source, which the probes share) makes the real nsbeacon absorb (degraded: the
//! BIRD degrade protocol up, the normal one down) while it lasts and come back up after; with
//! `overload = "withdraw"` the same flood withdraws. NSD and BIND readers run against the real servers
//! in the e2e lab (tests/tests/load.rs), which runs them.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Node, WAIT};
use nsbeacon::load::read::{ReadError, read_kernel, read_knot};
use nsbeacon_testkit::bird::BirdDaemon;
use nsbeacon_testkit::knot::{KnotConfig, KnotServer, Zone, soa_query};
use nsbeacon_testkit::{free_port, require_binary, wait_until};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn the_knot_reader_counts_the_queries_knot_received() {
    let knot = KnotServer::start(
        KnotConfig::new()
            .with_stats()
            .with_zone(Zone::new("example.com.", 1)),
    );
    let rt = runtime();
    let timeout = Duration::from_millis(500);
    let before = rt
        .block_on(read_knot(&knot.control_socket(), timeout))
        .expect("first read");
    for _ in 0..50 {
        assert!(soa_query(knot.addr(), "example.com.", Duration::from_secs(1)).is_some());
    }
    let after = rt
        .block_on(read_knot(&knot.control_socket(), timeout))
        .expect("second read");
    assert!(
        after >= before + 50,
        "50 queries sent, the counter went from {before} to {after}"
    );
    // The same number knotc prints, summed over protocols.
    let out = knot.knotc(&["stats", "mod-stats.request-protocol"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let knotc: u64 = text
        .lines()
        .filter_map(|l| l.split(" = ").nth(1))
        .filter_map(|v| v.trim().parse::<u64>().ok())
        .sum();
    assert!(
        knotc >= after,
        "knotc says {knotc}, the reader {after}: {text}"
    );
}

#[test]
fn the_knot_reader_says_what_is_wrong_instead_of_guessing() {
    // mod-stats not loaded: a clear error naming it, not "0 queries".
    let knot = KnotServer::start(KnotConfig::new().with_zone(Zone::new("example.com.", 1)));
    let rt = runtime();
    let error = rt
        .block_on(read_knot(
            &knot.control_socket(),
            Duration::from_millis(500),
        ))
        .expect_err("no mod-stats");
    assert!(error.to_string().contains("mod-stats"), "{error}");
    // No socket: an I/O error naming the path.
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("knot.sock");
    let error = rt
        .block_on(read_knot(&missing, Duration::from_millis(500)))
        .expect_err("no socket");
    assert!(matches!(error, ReadError::Io { .. }), "{error}");
    assert!(error.to_string().contains("knot.sock"), "{error}");
    // A socket that accepts and never answers: the timeout bounds the read.
    let silent = dir.path().join("silent.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&silent).expect("bind");
    let started = Instant::now();
    let error = rt
        .block_on(read_knot(&silent, Duration::from_millis(300)))
        .expect_err("silent");
    assert!(matches!(error, ReadError::Timeout { .. }), "{error}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn the_kernel_reader_sees_receive_buffer_drops() {
    let rt = runtime();
    let before = rt
        .block_on(read_kernel(Duration::from_secs(1)))
        .expect("read /proc/net/snmp");
    // A socket nobody reads: after its receive buffer (~200 KiB) fills, loopback drops the rest.
    let sink = UdpSocket::bind("127.0.0.1:0").expect("bind sink");
    let sender = UdpSocket::bind("127.0.0.1:0").expect("bind sender");
    let payload = [0u8; 1400];
    for _ in 0..3000 {
        let _ = sender.send_to(&payload, sink.local_addr().expect("addr"));
    }
    let after = rt
        .block_on(read_kernel(Duration::from_secs(1)))
        .expect("read /proc/net/snmp");
    assert!(
        after.rcvbuf_errors >= before.rcvbuf_errors + 1000,
        "3000 datagrams into a full buffer, RcvbufErrors went from {} to {}",
        before.rcvbuf_errors,
        after.rcvbuf_errors
    );
    assert!(
        after.in_errors >= before.in_errors + 1000,
        "{before:?} -> {after:?}"
    );
    drop(sink);
}

/// dnsperf flooding `target` with the probes' own query from loopback for `secs` seconds.
fn flood(target: SocketAddr, dir: &std::path::Path, secs: u32) -> Child {
    let queries = dir.join("flood.queries");
    std::fs::write(&queries, "example.com. SOA\n").expect("write queries");
    Command::new(require_binary("dnsperf"))
        .args([
            "-s",
            &target.ip().to_string(),
            "-p",
            &target.port().to_string(),
        ])
        .arg("-d")
        .arg(&queries)
        .args([
            "-Q",
            "3000",
            "-q",
            "5000",
            "-t",
            "1",
            "-l",
            &secs.to_string(),
        ])
        .args(["-O", "suppress=timeout"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn dnsperf")
}

/// A node whose Knot answers at most 20 times per second per source and name, with nsbeacon reading
/// Knot's statistics every 100 ms.
fn small_node(overload: &str) -> Node {
    let knot = KnotServer::start(
        KnotConfig::new()
            .with_nsid("test-node")
            .with_stats()
            .with_rate_limit(20)
            .with_zone(Zone::new("example.com.", 2024010101)),
    );
    let bird = BirdDaemon::start(common::BIRD_CONF, None);
    let dir = tempfile::Builder::new()
        .prefix("nsbeacon-load-test-")
        .tempdir()
        .expect("temp dir");
    let node = Node {
        knot,
        bird,
        dir,
        http: SocketAddr::from(([127, 0, 0, 1], free_port())),
        nsbeacon: None,
        log_format: "text",
    };
    let load = format!(
        r#"
[service.load]
source = "knot"
socket = "{socket}"
interval = "100ms"
overload_factor = 5
min_qps = 100
{overload}
"#,
        socket = node.knot.control_socket().display()
    );
    let text = format!(
        "{}{}{}",
        node.header(""),
        common::service_block(
            "dns",
            "anycast_dns",
            Some("anycast_degraded"),
            node.knot.addr()
        ),
        load
    );
    std::fs::write(node.config_path(), text).expect("write config");
    node
}

fn load_status(node: &Node) -> serde_json::Value {
    node.status()["services"][0]["load"].clone()
}

#[test]
fn a_flood_that_times_the_probes_out_is_absorbed_while_it_lasts() {
    let mut node = small_node("absorb_for = \"30s\"");
    node.start();
    node.expect_service("dns", "up");
    node.expect_protocol("anycast_dns", "up", "healthy");
    // The baseline: a few probe queries per second, read every 100 ms.
    assert!(
        wait_until(WAIT, || load_status(&node)["readings"].as_u64() >= Some(10)
            && load_status(&node)["baseline_qps"].is_number()),
        "no baseline: {}",
        load_status(&node)
    );
    let mut dnsperf = flood(node.knot.addr(), node.dir.path(), 6);
    let started = Instant::now();
    // Absorbing: degraded, the degrade protocol announced instead of the normal one; never down.
    let mut seen_absorbing = false;
    let mut states = Vec::new();
    while started.elapsed() < Duration::from_secs(5) {
        let state = node.service_state("dns").unwrap_or_default();
        if states.last() != Some(&state) {
            states.push(state.clone());
        }
        if load_status(&node)["absorbing"] == true {
            seen_absorbing = true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !states.iter().any(|s| s == "down"),
        "the flood withdrew the service: states {states:?}\n{}",
        node.log()
    );
    assert!(
        seen_absorbing,
        "never absorbing: states {states:?}\n{}",
        node.log()
    );
    let load = load_status(&node);
    assert_eq!(load["overloaded"], true, "{load}");
    assert!(load["qps"].as_f64() > Some(500.0), "{load}");
    let doc = node.status();
    let reason = doc["services"][0]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(reason.starts_with("absorbing overload: "), "{reason}");
    assert!(reason.contains("vs baseline"), "{reason}");
    node.expect_protocol(
        "anycast_degraded",
        "up",
        "absorbing announces the degrade target",
    );
    node.expect_protocol(
        "anycast_dns",
        "down",
        "absorbing replaces the normal target",
    );
    let (_, metrics) = node.get("/metrics");
    assert!(
        metrics.contains("nsbeacon_overload_absorbing{service=\"dns\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("nsbeacon_load_overloaded{service=\"dns\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("nsbeacon_overload_absorbs_total{service=\"dns\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("nsbeacon_dns_queries_per_second{service=\"dns\",source=\"knot\"}"));
    let status = node.cli(&["status"]);
    let text = common::text(&status);
    assert!(text.contains("ABSORBING"), "{text}");

    // The flood ends: up again on the normal target.
    let _ = dnsperf.wait();
    node.expect_service("dns", "up");
    node.expect_protocol("anycast_dns", "up", "recovered");
    node.expect_protocol("anycast_degraded", "down", "recovered");
    assert_eq!(load_status(&node)["absorbing"], false);
}

#[test]
fn with_overload_withdraw_the_same_flood_withdraws() {
    let mut node = small_node("overload = \"withdraw\"");
    node.start();
    node.expect_service("dns", "up");
    node.expect_protocol("anycast_dns", "up", "healthy");
    assert!(
        wait_until(WAIT, || load_status(&node)["readings"].as_u64() >= Some(10)),
        "{}",
        load_status(&node)
    );
    let mut dnsperf = flood(node.knot.addr(), node.dir.path(), 5);
    node.expect_service("dns", "down");
    node.expect_protocol("anycast_dns", "down", "withdraw under overload");
    node.expect_protocol("anycast_degraded", "down", "withdraw under overload");
    let load = load_status(&node);
    assert_eq!(load["policy"], "withdraw", "{load}");
    assert_eq!(load["absorbing"], false, "{load}");
    let _ = dnsperf.wait();
    node.expect_service("dns", "up");
}
