//! The FRR backend against real FRR 8.4 (zebra, staticd, bgpd) in a network namespace, with a real BIRD 2
//! upstream peer in a second namespace that shows whether the prefix really reaches a peer.
//!
//! Topology per test (namespaces named after the test process's PID and a counter, deleted on drop):
//! ```text
//! upstream ns: BIRD AS64496              node ns: FRR AS65001
//!   up0 192.0.2.1/30, 2001:db8::1/64 <-> node0 192.0.2.2/30, 2001:db8::2/64
//!                                        lo: 203.0.113.53/32, 2001:db8:53::53/128 (the anycast prefixes)
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use nsbeacon_routing::frr::{
    Asn, DEFAULT_KERNEL_ROUTE_PROTOCOL, FrrAnnounce, FrrBackend, FrrConfig, FrrError, FrrTransport,
    KernelMetrics, KernelRouteGate,
};
use nsbeacon_routing::{
    BirdProtocolName, FrrNeighbor, FrrNetwork, FrrNetworkParseError, PeerExport, RouteMapName,
    RouteMapNameError, RouteState, RouteTarget, RoutingBackend, RoutingError, TargetStatus,
};
use nsbeacon_testkit::frr::{FrrConfigFiles, FrrDaemon, FrrInstance};
use nsbeacon_testkit::{DaemonGuard, require_binary, wait_until};

const V4: &str = "203.0.113.53/32";
const V6: &str = "2001:db8:53::53/128";
const PEER_V4: &str = "192.0.2.1";
const PEER_V6: &str = "2001:db8::1";
/// How long the upstream may take to see a change (the lab measured ~0.1 s for `network`, ~2 s for a
/// neighbor coming back; generous for a loaded 2-core machine).
const UPSTREAM_WAIT: Duration = Duration::from_secs(20);

const BGPD_CONF: &str = "\
hostname node
router bgp 65001
 bgp router-id 192.0.2.2
 no bgp ebgp-requires-policy
 neighbor 192.0.2.1 remote-as 64496
 neighbor 192.0.2.1 timers connect 1
 neighbor 2001:db8::1 remote-as 64496
 neighbor 2001:db8::1 timers connect 1
 address-family ipv6 unicast
  neighbor 2001:db8::1 activate
 exit-address-family
exit
!
router bgp 65001 vrf blue
exit
!
route-map NSBEACON-DEGRADED permit 10
 set as-path prepend 65001 65001 65001
 set large-community 65001:0:1 additive
exit
!
route-map NSBEACON-GSHUT permit 10
 set community graceful-shutdown additive
 set large-community 65001:0:2 additive
exit
!
";

const BIRD_CONF: &str = "\
router id 192.0.2.1;
protocol device {}
protocol bgp node4 {
  local 192.0.2.1 as 64496; neighbor 192.0.2.2 as 65001;
  ipv4 { import all; export none; };
  connect retry time 1; error wait time 1, 2;
}
protocol bgp node6 {
  local 2001:db8::1 as 64496; neighbor 2001:db8::2 as 65001;
  ipv6 { import all; export none; };
  connect retry time 1; error wait time 1, 2;
}
";

/// A named network namespace created by this test, deleted on drop.
struct Netns(String);

impl Netns {
    fn create(role: &str) -> Netns {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "nsbfrr-{role}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        ip(&["netns", "add", &name]);
        let ns = Netns(name);
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", self.0.as_str()];
        all.extend_from_slice(args);
        ip(&all);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The upstream BIRD 2, in the foreground, with its files in a temp dir.
struct Upstream {
    guard: DaemonGuard,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Upstream {
    fn start(ns: &Netns) -> Upstream {
        let bird = require_binary("bird");
        require_binary("birdc");
        let dir = tempfile::tempdir().expect("bird temp dir");
        let conf = dir.path().join("bird.conf");
        std::fs::write(&conf, BIRD_CONF).expect("write bird.conf");
        let socket = dir.path().join("bird.ctl");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &ns.0])
            .arg(bird)
            .arg("-f")
            .arg("-c")
            .arg(&conf)
            .arg("-s")
            .arg(&socket)
            .arg("-P")
            .arg(dir.path().join("bird.pid"));
        let guard = DaemonGuard::spawn("bird-upstream", cmd, Some(&dir.path().join("bird.log")));
        assert!(
            wait_until(Duration::from_secs(10), || socket.exists()),
            "upstream BIRD did not start: {}",
            guard.log()
        );
        Upstream {
            guard,
            socket,
            _dir: dir,
        }
    }

    fn birdc(&self, command: &str) -> String {
        let out = Command::new("birdc")
            .arg("-s")
            .arg(&self.socket)
            .args(command.split_whitespace())
            .output()
            .expect("run birdc");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Whether the upstream has a route for `prefix` from the node.
    fn has_route(&self, prefix: &str) -> bool {
        let out = self.birdc(&format!("show route {prefix}"));
        out.lines().any(|l| l.starts_with(prefix))
    }

    /// Whether the BGP session `protocol` is Established.
    fn established(&self, protocol: &str) -> bool {
        self.birdc(&format!("show protocols {protocol}"))
            .contains("Established")
    }

    /// `show route PREFIX all` as BIRD prints it (attributes included).
    fn route_all(&self, prefix: &str) -> String {
        self.birdc(&format!("show route {prefix} all"))
    }

    /// Waits until the upstream's route for `prefix` shows every one of `attributes` (e.g.
    /// `BGP.as_path: 65001 65001 65001 65001`) and none of `absent`.
    fn wait_route_with(&self, prefix: &str, attributes: &[&str], absent: &[&str]) {
        assert!(
            wait_until(UPSTREAM_WAIT, || {
                let route = self.route_all(prefix);
                route.lines().any(|l| l.starts_with(prefix))
                    && attributes.iter().all(|a| route.contains(a))
                    && !absent.iter().any(|a| route.contains(a))
            }),
            "upstream route {prefix}: expected {attributes:?} and none of {absent:?}:\n{}",
            self.route_all(prefix)
        );
    }

    /// The `Import withdraws: received` counter of the BGP session `protocol`: how many withdrawals the
    /// upstream ever received from the node on it.
    fn withdraws_received(&self, protocol: &str) -> u64 {
        let out = self.birdc(&format!("show protocols all {protocol}"));
        out.lines()
            .find_map(|l| l.trim().strip_prefix("Import withdraws:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no import withdraws counter for {protocol}:\n{out}"))
    }

    fn wait_route(&self, prefix: &str, present: bool) {
        assert!(
            wait_until(UPSTREAM_WAIT, || self.has_route(prefix) == present),
            "upstream route {prefix}: expected present={present}; routes:\n{}\nlog:\n{}",
            self.birdc("show route"),
            self.guard.log()
        );
    }
}

/// Node + upstream namespaces, the veth between them, FRR on the node and BIRD upstream.
struct Lab {
    // Fields drop in order: daemons first, then the namespaces they run in.
    frr: FrrInstance,
    upstream: Upstream,
    _node: Netns,
    _up: Netns,
}

impl Lab {
    fn start() -> Lab {
        let node = Netns::create("node");
        let up = Netns::create("up");
        ip(&[
            "link", "add", "node0", "netns", &node.0, "type", "veth", "peer", "name", "up0",
            "netns", &up.0,
        ]);
        node.ip(&["addr", "add", "192.0.2.2/30", "dev", "node0"]);
        node.ip(&["addr", "add", "2001:db8::2/64", "dev", "node0", "nodad"]);
        node.ip(&["addr", "add", "203.0.113.53/32", "dev", "lo"]);
        node.ip(&["addr", "add", "2001:db8:53::53/128", "dev", "lo"]);
        node.ip(&["link", "set", "node0", "up"]);
        up.ip(&["addr", "add", "192.0.2.1/30", "dev", "up0"]);
        up.ip(&["addr", "add", "2001:db8::1/64", "dev", "up0", "nodad"]);
        up.ip(&["link", "set", "up0", "up"]);
        let upstream = Upstream::start(&up);
        let frr = FrrInstance::start(&node.0, FrrConfigFiles::bgpd(BGPD_CONF));
        Lab {
            frr,
            upstream,
            _node: node,
            _up: up,
        }
    }

    /// The default transport: bgpd's vty socket.
    fn config(&self) -> FrrConfig {
        self.config_via(Via::Socket)
    }

    fn config_via(&self, via: Via) -> FrrConfig {
        FrrConfig {
            transport: via.transport(&self.frr),
            timeout: Duration::from_secs(10),
            ..FrrConfig::default()
        }
    }

    fn backend(&self) -> FrrBackend {
        self.backend_via(Via::Socket)
    }

    fn backend_via(&self, via: Via) -> FrrBackend {
        FrrBackend::new(self.config_via(via)).expect("valid config")
    }

    fn running_config(&self) -> String {
        self.frr.vtysh_ok(&["show running-config"])
    }

    fn wait_sessions(&self) {
        assert!(
            wait_until(UPSTREAM_WAIT, || self.upstream.established("node4")
                && self.upstream.established("node6")),
            "BGP sessions did not come up: {}",
            self.upstream.birdc("show protocols all")
        );
    }
}

/// Which of the backend's two transports a test drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    /// One persistent connection to bgpd's vty socket (the default).
    Socket,
    /// One vtysh process per call.
    Vtysh,
}

impl Via {
    fn transport(self, frr: &FrrInstance) -> FrrTransport {
        match self {
            Via::Socket => FrrTransport::VtySocket {
                socket: frr.bgpd_vty_socket(),
            },
            Via::Vtysh => FrrTransport::Vtysh {
                vtysh: require_binary("vtysh"),
                extra_args: frr.vtysh_args(),
            },
        }
    }
}

/// vtysh at `vtysh` with no instance options, for tests that never reach FRR.
fn vtysh_at(vtysh: PathBuf) -> FrrConfig {
    FrrConfig {
        transport: FrrTransport::Vtysh {
            vtysh,
            extra_args: Vec::new(),
        },
        ..FrrConfig::default()
    }
}

fn network(prefix: &str) -> RouteTarget {
    // From the IP network, not from text: the invalid-input test needs prefixes with host bits set.
    RouteTarget::FrrNetwork(prefix.parse::<ipnet::IpNet>().expect("prefix").into())
}

/// The variant of `prefix` with `route_map` (`None`: the plain, healthy `network P`).
fn variant(prefix: &str, route_map: Option<&str>) -> RouteTarget {
    RouteTarget::FrrNetwork(FrrNetwork::new(
        prefix.parse().expect("prefix"),
        route_map.map(|m| RouteMapName::new(m).expect("route-map name")),
    ))
}

/// Polls the upstream's RIB for `prefix` in a thread until dropped, counting the polls that did not find
/// it: a withdrawal between two steps of a switch would show up here (and in the withdraws counter).
struct RibWatch {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<(u32, u32)>>,
}

impl RibWatch {
    fn start(upstream: &Upstream, prefix: &str) -> RibWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let socket = upstream.socket.clone();
        let prefix = prefix.to_owned();
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let (mut polls, mut missing) = (0, 0);
            while !flag.load(Ordering::Relaxed) {
                let out = Command::new("birdc")
                    .arg("-s")
                    .arg(&socket)
                    .args(["show", "route", &prefix])
                    .output()
                    .expect("run birdc");
                polls += 1;
                if !String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .any(|l| l.starts_with(&prefix))
                {
                    missing += 1;
                }
            }
            (polls, missing)
        });
        RibWatch {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops polling: (polls, polls that did not find the prefix).
    fn finish(mut self) -> (u32, u32) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .expect("running")
            .join()
            .expect("poller thread")
    }
}

impl Drop for RibWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The `network PREFIX ...` lines of the running config of the default instance.
fn network_lines(lab: &Lab, prefix: &str) -> Vec<String> {
    lab.running_config()
        .split("router bgp 65001 vrf")
        .next()
        .expect("default instance")
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with(&format!("network {prefix}")))
        .map(str::to_owned)
        .collect()
}

/// Asserts the read-back of every variant: exactly `active` is announced, the others are withdrawn.
async fn assert_variants(
    backend: &FrrBackend,
    variants: &[&RouteTarget],
    active: Option<&RouteTarget>,
) {
    for target in variants {
        let expected = if Some(*target) == active {
            RouteState::Announced
        } else {
            RouteState::Withdrawn
        };
        let status = read_until(backend, target, expected).await;
        assert_eq!(status.state, expected, "{target}: {status:?}");
    }
}

/// normal -> degraded -> normal -> graceful shutdown -> normal -> withdrawn, each switch in the daemon's
/// make-before-break order (announce the new variant, then withdraw the old one), with read-back of every
/// variant after each step, the upstream's view of the path, and proof that the upstream never lost the
/// prefix during the switches (continuous polling of its RIB and its withdraws counter).
async fn variants_switch_in_place(prefix: &str, session: &str, via: Via) {
    let lab = Lab::start();
    let backend = lab.backend_via(via);
    lab.wait_sessions();
    let normal = variant(prefix, None);
    let degraded = variant(prefix, Some("NSBEACON-DEGRADED"));
    let gshut = variant(prefix, Some("NSBEACON-GSHUT"));
    let all = [&normal, &degraded, &gshut];
    let short_path = "BGP.as_path: 65001\n";
    let long_path = "BGP.as_path: 65001 65001 65001 65001";
    let degraded_tag = "(65001, 0, 1)";
    let gshut_tag = "(65001, 0, 2)";

    assert_variants(&backend, &all, None).await;
    backend
        .set(&degraded, RouteState::Withdrawn)
        .await
        .expect("withdrawing a variant of an unconfigured prefix is a no-op");
    assert!(network_lines(&lab, prefix).is_empty());

    backend
        .set(&normal, RouteState::Announced)
        .await
        .expect("announce normal");
    assert_variants(&backend, &all, Some(&normal)).await;
    assert_eq!(network_lines(&lab, prefix), [format!("network {prefix}")]);
    lab.upstream
        .wait_route_with(prefix, &[short_path], &[degraded_tag, gshut_tag]);
    let withdraws_before = lab.upstream.withdraws_received(session);
    let watch = RibWatch::start(&lab.upstream, prefix);

    // Degrade: announce the degraded variant, then withdraw the normal one.
    backend
        .set(&degraded, RouteState::Announced)
        .await
        .expect("announce degraded");
    assert_variants(&backend, &all, Some(&degraded)).await;
    let status = read(&backend, &normal).await;
    assert!(status.detail.contains("another variant"), "{status:?}");
    backend
        .set(&normal, RouteState::Withdrawn)
        .await
        .expect("withdrawing the inactive normal variant");
    assert_variants(&backend, &all, Some(&degraded)).await;
    assert_eq!(
        network_lines(&lab, prefix),
        [format!("network {prefix} route-map NSBEACON-DEGRADED")]
    );
    lab.upstream
        .wait_route_with(prefix, &[long_path, degraded_tag], &[gshut_tag]);

    // Idempotence while degraded: repeating either step changes nothing.
    backend
        .set(&degraded, RouteState::Announced)
        .await
        .expect("announce degraded again");
    backend
        .set(&normal, RouteState::Withdrawn)
        .await
        .expect("withdraw normal again");
    backend
        .set(&gshut, RouteState::Withdrawn)
        .await
        .expect("withdraw another inactive variant");
    assert_variants(&backend, &all, Some(&degraded)).await;
    assert_eq!(
        network_lines(&lab, prefix),
        [format!("network {prefix} route-map NSBEACON-DEGRADED")]
    );

    // Recover: announce normal (clears the route-map in place), then withdraw degraded.
    backend
        .set(&normal, RouteState::Announced)
        .await
        .expect("announce normal");
    assert_variants(&backend, &all, Some(&normal)).await;
    backend
        .set(&degraded, RouteState::Withdrawn)
        .await
        .expect("withdraw the inactive degraded variant");
    assert_variants(&backend, &all, Some(&normal)).await;
    assert_eq!(network_lines(&lab, prefix), [format!("network {prefix}")]);
    lab.upstream
        .wait_route_with(prefix, &[short_path], &[degraded_tag, gshut_tag]);

    // Graceful shutdown and back.
    backend
        .set(&gshut, RouteState::Announced)
        .await
        .expect("announce graceful shutdown");
    backend
        .set(&normal, RouteState::Withdrawn)
        .await
        .expect("withdraw normal");
    assert_variants(&backend, &all, Some(&gshut)).await;
    lab.upstream.wait_route_with(
        prefix,
        &[short_path, "(65535,0)", gshut_tag],
        &[degraded_tag],
    );
    backend
        .set(&normal, RouteState::Announced)
        .await
        .expect("announce normal");
    backend
        .set(&gshut, RouteState::Withdrawn)
        .await
        .expect("withdraw graceful shutdown");
    assert_variants(&backend, &all, Some(&normal)).await;
    lab.upstream
        .wait_route_with(prefix, &[short_path], &[gshut_tag, "(65535,0)"]);

    let (polls, missing) = watch.finish();
    assert_eq!(
        missing, 0,
        "the upstream lost {prefix} in {missing} of {polls} polls"
    );
    assert!(polls > 0);
    assert_eq!(
        lab.upstream.withdraws_received(session),
        withdraws_before,
        "the upstream received a withdrawal during the switches"
    );

    // Withdraw all while normal: the inactive variants are no-ops, the active one is removed.
    for target in [&degraded, &gshut, &normal] {
        backend
            .set(target, RouteState::Withdrawn)
            .await
            .expect("withdraw all");
    }
    assert_variants(&backend, &all, None).await;
    assert!(network_lines(&lab, prefix).is_empty());
    lab.upstream.wait_route(prefix, false);
    for target in all {
        backend
            .set(target, RouteState::Withdrawn)
            .await
            .expect("withdrawing withdrawn variants is a no-op");
    }

    // Withdraw all while degraded, normal first (as the daemon's shutdown may order it).
    backend
        .set(&degraded, RouteState::Announced)
        .await
        .expect("announce degraded from nothing");
    assert_variants(&backend, &all, Some(&degraded)).await;
    lab.upstream
        .wait_route_with(prefix, &[long_path, degraded_tag], &[]);
    backend
        .set(&normal, RouteState::Withdrawn)
        .await
        .expect("withdraw inactive normal");
    assert_variants(&backend, &all, Some(&degraded)).await;
    backend
        .set(&degraded, RouteState::Withdrawn)
        .await
        .expect("withdraw degraded");
    assert_variants(&backend, &all, None).await;
    assert!(network_lines(&lab, prefix).is_empty());
    lab.upstream.wait_route(prefix, false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_variants_ipv4_switch_in_place_make_before_break() {
    variants_switch_in_place(V4, "node4", Via::Socket).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_variants_ipv4_switch_in_place_through_vtysh() {
    variants_switch_in_place(V4, "node4", Via::Vtysh).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_variants_ipv6_switch_in_place_make_before_break() {
    variants_switch_in_place(V6, "node6", Via::Socket).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_route_map_reads_as_withdrawn_with_hint() {
    let lab = Lab::start();
    let backend = lab.backend();
    let target = variant(V4, Some("NO-SUCH-MAP"));
    backend
        .set(&target, RouteState::Announced)
        .await
        .expect("FRR accepts a network with an undefined route-map");
    assert_eq!(
        network_lines(&lab, V4),
        [format!("network {V4} route-map NO-SUCH-MAP")]
    );
    let status = read(&backend, &target).await;
    assert_eq!(status.state, RouteState::Withdrawn, "{status:?}");
    assert!(
        status.detail.contains("does route-map NO-SUCH-MAP exist"),
        "{status:?}"
    );
    backend
        .set(&target, RouteState::Withdrawn)
        .await
        .expect("withdraw");
    assert!(network_lines(&lab, V4).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_map_names_frr_accepts_round_trip() {
    let lab = Lab::start();
    let backend = lab.backend();
    let long = "R".repeat(nsbeacon_routing::ROUTE_MAP_NAME_MAX_LEN);
    for name in ["rm:x.y/z+@-_*", "a!b#c", long.as_str()] {
        let target = variant(V6, Some(name));
        backend
            .set(&target, RouteState::Announced)
            .await
            .expect("announce");
        assert_eq!(
            network_lines(&lab, V6),
            [format!("network {V6} route-map {name}")],
            "FRR stores the name as given"
        );
        backend
            .set(&target, RouteState::Announced)
            .await
            .expect("no-op: the configured route-map is read back as the same name");
        backend
            .set(&target, RouteState::Withdrawn)
            .await
            .expect("withdraw");
        assert!(network_lines(&lab, V6).is_empty());
    }
}

fn neighbor(addr: &str) -> RouteTarget {
    RouteTarget::FrrNeighbor(addr.parse().expect("neighbor"))
}

async fn read(backend: &FrrBackend, target: &RouteTarget) -> TargetStatus {
    backend.read(target).await.expect("read-back").value
}

/// Reads `target` back until it is in `state` (up to 5 s) and returns the last status. A network is
/// announced only once its path is valid in the BGP table, which bgpd settles after its 50 ms work-queue
/// hold: over the vty socket the read-back can come before that (the daemon's reconciler treats this as
/// "pending" and re-checks).
async fn read_until(backend: &FrrBackend, target: &RouteTarget, state: RouteState) -> TargetStatus {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let status = read(backend, target).await;
        if status.state == state || Instant::now() >= deadline {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn frr_err(err: RoutingError) -> FrrError {
    match err {
        RoutingError::Frr(e) => e,
        other => panic!("not an FRR error: {other:?}"),
    }
}

/// network / no network with read-back, idempotence both ways, and the upstream seeing it.
async fn network_cycle(prefix: &str, via: Via) {
    let lab = Lab::start();
    let backend = lab.backend_via(via);
    let target = network(prefix);
    lab.wait_sessions();

    let before = read(&backend, &target).await;
    assert_eq!(before.state, RouteState::Withdrawn, "{before:?}");
    assert!(!lab.upstream.has_route(prefix));

    let done = backend
        .set(&target, RouteState::Announced)
        .await
        .expect("announce");
    assert!(done.elapsed > Duration::ZERO);
    let after = read_until(&backend, &target, RouteState::Announced).await;
    assert_eq!(after.state, RouteState::Announced, "{after:?}");
    assert!(lab.running_config().contains(&format!("network {prefix}")));
    lab.upstream.wait_route(prefix, true);

    backend
        .set(&target, RouteState::Announced)
        .await
        .expect("announcing an announced network is a no-op");
    assert_eq!(read(&backend, &target).await.state, RouteState::Announced);

    backend
        .set(&target, RouteState::Withdrawn)
        .await
        .expect("withdraw");
    let after = read(&backend, &target).await;
    assert_eq!(
        after.state,
        RouteState::Withdrawn,
        "read right after `no network`: {after:?}"
    );
    assert!(!lab.running_config().contains(&format!("network {prefix}")));
    lab.upstream.wait_route(prefix, false);

    backend
        .set(&target, RouteState::Withdrawn)
        .await
        .expect("withdrawing a withdrawn network is a no-op");
    assert_eq!(read(&backend, &target).await.state, RouteState::Withdrawn);

    backend
        .set(&target, RouteState::Announced)
        .await
        .expect("announce again");
    lab.upstream.wait_route(prefix, true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_ipv4_announce_withdraw_readback_and_upstream() {
    network_cycle(V4, Via::Socket).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_ipv4_cycle_through_vtysh() {
    network_cycle(V4, Via::Vtysh).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_ipv6_announce_withdraw_readback_and_upstream() {
    network_cycle(V6, Via::Socket).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_not_in_rib_reads_as_withdrawn_with_reason() {
    let lab = Lab::start();
    let backend = lab.backend();
    let target = network("198.51.100.0/24");
    backend
        .set(&target, RouteState::Announced)
        .await
        .expect("network is accepted");
    assert!(lab.running_config().contains("network 198.51.100.0/24"));
    let status = read(&backend, &target).await;
    assert_eq!(status.state, RouteState::Withdrawn, "{status:?}");
    assert!(status.detail.contains("not valid"), "{status:?}");
    backend
        .set(&target, RouteState::Withdrawn)
        .await
        .expect("withdraw configured-but-invalid");
    assert!(!lab.running_config().contains("network 198.51.100.0/24"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neighbor_shutdown_and_back_with_readback() {
    let lab = Lab::start();
    let backend = lab.backend();
    lab.wait_sessions();
    backend
        .set(&network(V4), RouteState::Announced)
        .await
        .expect("announce");
    lab.upstream.wait_route(V4, true);

    for peer in [PEER_V4, PEER_V6] {
        let status = read(&backend, &neighbor(peer)).await;
        assert_eq!(status.state, RouteState::Announced, "{status:?}");
        assert!(status.detail.contains("Established"), "{status:?}");
    }

    let target = neighbor(PEER_V4);
    backend
        .set(&target, RouteState::Withdrawn)
        .await
        .expect("shutdown");
    let status = read(&backend, &target).await;
    assert_eq!(status.state, RouteState::Withdrawn, "{status:?}");
    assert!(lab.running_config().contains("neighbor 192.0.2.1 shutdown"));
    lab.upstream.wait_route(V4, false);
    assert!(!lab.upstream.established("node4"));
    backend
        .set(&target, RouteState::Withdrawn)
        .await
        .expect("shutting down a shut neighbor is a no-op");
    assert_eq!(read(&backend, &target).await.state, RouteState::Withdrawn);
    assert_eq!(
        read(&backend, &neighbor(PEER_V6)).await.state,
        RouteState::Announced,
        "only the named neighbor is shut"
    );

    backend
        .set(&target, RouteState::Announced)
        .await
        .expect("no shutdown");
    assert_eq!(read(&backend, &target).await.state, RouteState::Announced);
    assert!(!lab.running_config().contains("neighbor 192.0.2.1 shutdown"));
    backend
        .set(&target, RouteState::Announced)
        .await
        .expect("un-shutting an active neighbor is a no-op");
    lab.upstream.wait_route(V4, true);

    let v6 = neighbor(PEER_V6);
    backend
        .set(&v6, RouteState::Withdrawn)
        .await
        .expect("shutdown v6 peer");
    assert_eq!(read(&backend, &v6).await.state, RouteState::Withdrawn);
    backend
        .set(&v6, RouteState::Announced)
        .await
        .expect("no shutdown v6 peer");
    assert_eq!(read(&backend, &v6).await.state, RouteState::Announced);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_neighbor_is_a_clear_error() {
    let lab = Lab::start();
    let backend = lab.backend();
    let target = neighbor("192.0.2.77");
    let err = frr_err(
        backend
            .set(&target, RouteState::Withdrawn)
            .await
            .expect_err("unknown neighbor"),
    );
    assert!(matches!(err, FrrError::UnknownNeighbor { .. }), "{err:?}");
    assert!(
        err.to_string().contains("neighbor 192.0.2.77 shutdown"),
        "{err}"
    );
    let err = frr_err(backend.read(&target).await.expect_err("unknown neighbor"));
    assert!(matches!(err, FrrError::UnknownNeighbor { .. }), "{err:?}");
    assert!(!lab.running_config().contains("192.0.2.77"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asn_discovery_checks_and_vrfs() {
    let lab = Lab::start();
    assert_eq!(lab.backend().asn().await.expect("discover").get(), 65001);

    let configured = FrrBackend::new(FrrConfig {
        asn: Some(65001),
        ..lab.config()
    })
    .expect("config");
    assert_eq!(
        configured.asn().await.expect("confirmed"),
        Asn::new(65001).expect("asn")
    );
    configured
        .set(&network(V4), RouteState::Announced)
        .await
        .expect("announce with configured ASN");

    let wrong = FrrBackend::new(FrrConfig {
        asn: Some(65002),
        ..lab.config()
    })
    .expect("config");
    let err = frr_err(
        wrong
            .set(&network(V4), RouteState::Withdrawn)
            .await
            .expect_err("mismatch"),
    );
    match &err {
        FrrError::AsnMismatch { running, .. } => assert_eq!(running, "65001"),
        other => panic!("{other:?}"),
    }
    assert!(
        !lab.running_config().contains("router bgp 65002"),
        "no instance was created"
    );
    assert_eq!(
        read_until(&lab.backend(), &network(V4), RouteState::Announced)
            .await
            .state,
        RouteState::Announced
    );

    // A VRF instance without peers: the summary JSON is `{}` and the ASN comes from the running config.
    let blue = FrrBackend::new(FrrConfig {
        vrf: Some("blue".into()),
        ..lab.config()
    })
    .expect("config");
    assert_eq!(blue.asn().await.expect("discover in vrf").get(), 65001);
    blue.set(&network(V4), RouteState::Announced)
        .await
        .expect("announce in vrf");
    let config = lab.running_config();
    let blue_section = config
        .split("router bgp 65001 vrf blue")
        .nth(1)
        .expect("vrf blue section");
    assert!(blue_section.contains(&format!("network {V4}")), "{config}");
    // Not in VRF blue's RIB (the VRF has no interfaces), so configured but not valid.
    assert_eq!(read(&blue, &network(V4)).await.state, RouteState::Withdrawn);
    blue.set(&network(V4), RouteState::Withdrawn)
        .await
        .expect("withdraw in vrf");
    assert_eq!(
        read_until(&lab.backend(), &network(V4), RouteState::Announced)
            .await
            .state,
        RouteState::Announced
    );

    let red = FrrBackend::new(FrrConfig {
        vrf: Some("red".into()),
        ..lab.config()
    })
    .expect("config");
    let err = frr_err(
        red.set(&network(V4), RouteState::Announced)
            .await
            .expect_err("no vrf red"),
    );
    assert!(matches!(err, FrrError::NoBgpInstance { .. }), "{err:?}");
    let err = frr_err(red.read(&network(V4)).await.expect_err("no vrf red"));
    assert!(matches!(err, FrrError::NoBgpInstance { .. }), "{err:?}");
    assert!(
        !lab.running_config().contains("vrf red"),
        "no instance was created"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_version_and_sessions() {
    let lab = Lab::start();
    let backend = lab.backend();
    lab.wait_sessions();
    // The upstream saw both sessions established; bgpd itself gets there on the upstream's KEEPALIVE,
    // which may be a moment later.
    let give_up = Instant::now() + Duration::from_secs(20);
    let health = loop {
        let health = backend.health().await;
        if (health.sessions_up, health.sessions_total) == (2, 2) || Instant::now() > give_up {
            break health;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(health.reachable, "{health:?}");
    assert_eq!(health.error, None);
    let version = health.daemon_version.clone().expect("version");
    assert!(version.starts_with("FRRouting 8."), "{version}");
    assert_eq!(
        (health.sessions_up, health.sessions_total),
        (2, 2),
        "{health:?}"
    );

    backend
        .set(&neighbor(PEER_V6), RouteState::Withdrawn)
        .await
        .expect("shutdown");
    let health = backend.health().await;
    assert_eq!(
        (health.sessions_up, health.sessions_total),
        (1, 2),
        "{health:?}"
    );
}

/// bgpd stopped: the error names bgpd. Through vtysh it says so; on the socket, connect(2) is refused
/// (or the socket is gone) and the error names bgpd and the socket.
fn assert_bgpd_down(err: &FrrError, via: Via) {
    match (err, via) {
        (FrrError::DaemonNotRunning { daemon, .. }, _) => assert_eq!(daemon, "bgpd"),
        (FrrError::VtySocketMissing { socket }, Via::Socket) => {
            assert!(socket.ends_with("bgpd.vty"), "{socket:?}");
            assert!(err.to_string().contains("is bgpd running"), "{err}");
        }
        other => panic!("{other:?}"),
    }
}

async fn frr_stopped_gives_clear_errors_and_restart_recovers(via: Via) {
    let mut lab = Lab::start();
    let backend = lab.backend_via(via);
    backend
        .set(&network(V4), RouteState::Announced)
        .await
        .expect("announce");

    lab.frr.stop_daemon(FrrDaemon::Bgpd);
    let err = frr_err(
        backend
            .set(&network(V4), RouteState::Withdrawn)
            .await
            .expect_err("bgpd down"),
    );
    assert_bgpd_down(&err, via);
    let err = frr_err(backend.read(&network(V4)).await.expect_err("bgpd down"));
    assert_bgpd_down(&err, via);
    let health = backend.health().await;
    assert!(!health.reachable);
    assert!(
        health.error.as_deref().unwrap_or("").contains("bgpd"),
        "{health:?}"
    );

    lab.frr.stop();
    let err = frr_err(backend.read(&network(V4)).await.expect_err("FRR down"));
    match via {
        Via::Vtysh => {
            assert!(matches!(err, FrrError::NotReachable { .. }), "{err:?}");
            assert!(err.to_string().contains("--vty_socket"), "{err}");
        }
        Via::Socket => assert_bgpd_down(&err, via),
    }
    let err = frr_err(
        backend
            .set(&network(V4), RouteState::Announced)
            .await
            .expect_err("FRR down"),
    );
    assert!(
        matches!(
            err,
            FrrError::NotReachable { .. }
                | FrrError::DaemonNotRunning { .. }
                | FrrError::VtySocketMissing { .. }
        ),
        "{err:?}"
    );
    let health = backend.health().await;
    assert!(!health.reachable && health.error.is_some(), "{health:?}");

    // Restarted from its files: the running config (never written) is gone, and the same backend works
    // again (on the socket: it reconnects).
    lab.frr.restart();
    assert_eq!(
        read(&backend, &network(V4)).await.state,
        RouteState::Withdrawn
    );
    backend
        .set(&network(V4), RouteState::Announced)
        .await
        .expect("announce after restart");
    assert_eq!(
        read_until(&backend, &network(V4), RouteState::Announced)
            .await
            .state,
        RouteState::Announced
    );
    assert!(backend.health().await.reachable);
    lab.upstream.wait_route(V4, true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frr_stopped_gives_clear_errors_and_restart_recovers_on_the_socket() {
    frr_stopped_gives_clear_errors_and_restart_recovers(Via::Socket).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frr_stopped_gives_clear_errors_and_restart_recovers_through_vtysh() {
    frr_stopped_gives_clear_errors_and_restart_recovers(Via::Vtysh).await;
}

async fn hung_frr_times_out_within_bound(via: Via) {
    let lab = Lab::start();
    let backend = FrrBackend::new(FrrConfig {
        timeout: Duration::from_millis(800),
        ..lab.config_via(via)
    })
    .expect("config");
    let bgpd = lab.frr.pid(FrrDaemon::Bgpd).expect("bgpd pid");
    assert!(nsbeacon_testkit::process::signal(
        bgpd,
        nsbeacon_testkit::Signal::SIGSTOP
    ));
    let started = Instant::now();
    let result = backend.set(&network(V4), RouteState::Announced).await;
    let elapsed = started.elapsed();
    let health = backend.health().await;
    nsbeacon_testkit::process::signal(bgpd, nsbeacon_testkit::Signal::SIGCONT);
    let err = frr_err(result.expect_err("hung bgpd"));
    assert!(matches!(err, FrrError::Timeout { .. }), "{err:?}");
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
    assert!(
        !health.reachable
            && health
                .error
                .as_deref()
                .unwrap_or("")
                .contains("did not finish")
    );
    backend
        .set(&network(V4), RouteState::Announced)
        .await
        .expect("works again after SIGCONT");
    assert_eq!(
        read_until(&backend, &network(V4), RouteState::Announced)
            .await
            .state,
        RouteState::Announced
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_bgpd_times_out_within_bound_on_the_socket() {
    hung_frr_times_out_within_bound(Via::Socket).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_bgpd_times_out_within_bound_through_vtysh() {
    hung_frr_times_out_within_bound(Via::Vtysh).await;
}

/// Writes an executable shell script (a stand-in vtysh) into `dir`.
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vtysh_as_unprivileged_user_is_permission_denied() {
    let lab = Lab::start();
    let dir = tempfile::tempdir().expect("dir");
    let vtysh = require_binary("vtysh");
    let runuser = require_binary("runuser");
    let wrapper = script(
        dir.path(),
        "vtysh-as-nobody",
        &format!(
            "exec {} -u nobody -- {} \"$@\"",
            runuser.display(),
            vtysh.display()
        ),
    );
    let backend = FrrBackend::new(FrrConfig {
        transport: FrrTransport::Vtysh {
            vtysh: wrapper,
            extra_args: lab.frr.vtysh_args(),
        },
        ..lab.config()
    })
    .expect("config");
    let err = frr_err(
        backend
            .read(&network(V4))
            .await
            .expect_err("nobody may not connect"),
    );
    assert!(
        matches!(err, FrrError::SocketPermissionDenied { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("frrvty"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vtysh_missing_or_not_executable_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("dir");
    let missing = dir.path().join("no-such-vtysh");
    let backend = FrrBackend::new(vtysh_at(missing.clone())).expect("config");
    let err = frr_err(
        backend
            .set(&network(V4), RouteState::Announced)
            .await
            .expect_err("missing"),
    );
    match &err {
        FrrError::VtyshNotFound { path } => assert_eq!(path, &missing),
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("no-such-vtysh"), "{err}");
    let health = backend.health().await;
    assert!(!health.reachable && health.error.as_deref().unwrap_or("").contains("not found"));

    let not_exec = dir.path().join("vtysh");
    std::fs::write(&not_exec, "not a program").expect("write");
    let backend = FrrBackend::new(vtysh_at(not_exec)).expect("config");
    let err = frr_err(
        backend
            .read(&network(V4))
            .await
            .expect_err("not executable"),
    );
    assert!(
        matches!(err, FrrError::VtyshNotExecutable { .. }),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_inputs_are_rejected_before_spawning() {
    let dir = tempfile::tempdir().expect("dir");
    let marker = dir.path().join("spawned");
    let recorder = script(dir.path(), "vtysh", &format!("touch {}", marker.display()));
    let backend = FrrBackend::new(vtysh_at(recorder.clone())).expect("config");

    let err = frr_err(
        backend
            .set(&network("203.0.113.1/24"), RouteState::Announced)
            .await
            .expect_err("host bits"),
    );
    assert!(matches!(err, FrrError::InvalidPrefix { .. }), "{err:?}");
    assert!(err.to_string().contains("203.0.113.0/24"), "{err}");
    let err = frr_err(
        backend
            .read(&network("2001:db8::1/64"))
            .await
            .expect_err("host bits"),
    );
    assert!(matches!(err, FrrError::InvalidPrefix { .. }), "{err:?}");

    let err = frr_err(
        backend
            .set(
                &RouteTarget::FrrNetwork(FrrNetwork::new(
                    "203.0.113.1/24".parse().expect("net"),
                    Some(RouteMapName::new("NSBEACON-DEGRADED").expect("name")),
                )),
                RouteState::Withdrawn,
            )
            .await
            .expect_err("host bits with a route-map"),
    );
    assert!(matches!(err, FrrError::InvalidPrefix { .. }), "{err:?}");
    for bad in [
        "NSBEACON DEGRADED",
        "X\nno router bgp 65001",
        "x'y",
        "",
        "é",
        &"R".repeat(129),
    ] {
        assert!(RouteMapName::new(bad).is_err(), "{bad:?} accepted");
        let text = format!("{V4} route-map {bad}");
        assert!(
            matches!(
                text.parse::<FrrNetwork>(),
                Err(FrrNetworkParseError::RouteMap(_) | FrrNetworkParseError::Syntax { .. })
            ),
            "{text:?} accepted"
        );
    }
    assert!(matches!(
        RouteMapName::new("a\tb"),
        Err(RouteMapNameError::InvalidCharacter { ch: '\t', .. })
    ));
    for bad in ["eth0 remote-as 1", "eth0\nno router bgp 65001", "x'y"] {
        let target = RouteTarget::FrrNeighbor(FrrNeighbor::Interface(bad.into()));
        let err = frr_err(
            backend
                .set(&target, RouteState::Withdrawn)
                .await
                .expect_err("bad neighbor"),
        );
        assert!(matches!(err, FrrError::InvalidNeighbor { .. }), "{err:?}");
        assert!(bad.parse::<FrrNeighbor>().is_err());
    }
    let bird = RouteTarget::BirdProtocol(
        "anycast_dns"
            .parse::<BirdProtocolName>()
            .expect("valid bird protocol name"),
    );
    assert!(matches!(
        backend.set(&bird, RouteState::Announced).await,
        Err(RoutingError::UnsupportedTarget { backend: "frr", .. })
    ));

    for config in [
        FrrConfig {
            asn: Some(0),
            ..FrrConfig::default()
        },
        FrrConfig {
            vrf: Some("blue; write memory".into()),
            ..FrrConfig::default()
        },
        FrrConfig {
            vrf: Some("default".into()),
            ..FrrConfig::default()
        },
        FrrConfig {
            transport: FrrTransport::Vtysh {
                vtysh: "vtysh".into(),
                extra_args: vec!["-c".into(), "write memory".into()],
            },
            ..FrrConfig::default()
        },
        FrrConfig {
            transport: FrrTransport::Vtysh {
                vtysh: "vtysh".into(),
                extra_args: vec!["-w".into()],
            },
            ..FrrConfig::default()
        },
    ] {
        assert!(
            FrrBackend::new(config.clone()).is_err(),
            "{config:?} accepted"
        );
    }
    assert!(!marker.exists(), "vtysh was spawned for invalid input");

    // The recorder does run for valid input, so the check above is meaningful.
    let _ = backend.read(&network(V4)).await;
    assert!(marker.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unnumbered_interface_neighbor_shutdown_with_readback() {
    let lab = Lab::start();
    lab.frr.vtysh_ok(&[
        "configure terminal",
        "router bgp 65001",
        "neighbor node0 interface remote-as external",
    ]);
    let backend = lab.backend();
    let target = neighbor("node0");
    assert_eq!(
        target,
        RouteTarget::FrrNeighbor(FrrNeighbor::Interface("node0".into()))
    );
    assert_eq!(read(&backend, &target).await.state, RouteState::Announced);
    backend
        .set(&target, RouteState::Withdrawn)
        .await
        .expect("shutdown");
    let status = read(&backend, &target).await;
    assert_eq!(status.state, RouteState::Withdrawn, "{status:?}");
    assert!(lab.running_config().contains("neighbor node0 shutdown"));
    backend
        .set(&target, RouteState::Announced)
        .await
        .expect("no shutdown");
    assert_eq!(read(&backend, &target).await.state, RouteState::Announced);
    assert!(!lab.running_config().contains("neighbor node0 shutdown"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bgpd_crash_gives_clear_error() {
    let mut lab = Lab::start();
    let backends = [
        (Via::Socket, lab.backend_via(Via::Socket)),
        (Via::Vtysh, lab.backend_via(Via::Vtysh)),
    ];
    for (_, backend) in &backends {
        backend
            .set(&network(V4), RouteState::Announced)
            .await
            .expect("announce");
    }
    // SIGKILL: the socket's connection is open and its file stays behind.
    lab.frr.kill_daemon(FrrDaemon::Bgpd);
    for (via, backend) in &backends {
        let err = frr_err(
            backend
                .set(&network(V4), RouteState::Withdrawn)
                .await
                .expect_err("bgpd crashed"),
        );
        match &err {
            FrrError::DaemonNotRunning { daemon, .. } => assert_eq!(daemon, "bgpd", "{via:?}"),
            other => panic!("{via:?}: {other:?}"),
        }
        let health = backend.health().await;
        assert!(
            !health.reachable && health.error.as_deref().unwrap_or("").contains("bgpd"),
            "{via:?}: {health:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_bgp_instance_is_a_clear_error_and_none_is_created() {
    let node = Netns::create("nobgp");
    let frr = FrrInstance::start(&node.0, FrrConfigFiles::bgpd(""));
    for via in [Via::Socket, Via::Vtysh] {
        no_bgp_instance_through(&frr, via).await;
    }
    assert!(
        !frr.vtysh_ok(&["show running-config"])
            .contains("router bgp")
    );
    drop(frr);
}

async fn no_bgp_instance_through(frr: &FrrInstance, via: Via) {
    let backend = FrrBackend::new(FrrConfig {
        transport: via.transport(frr),
        ..FrrConfig::default()
    })
    .expect("config");
    let err = backend.asn().await.expect_err("no instance");
    assert!(
        matches!(err, FrrError::NoBgpInstance { vrf: None }),
        "{err:?}"
    );
    for target in [network(V4), neighbor(PEER_V4)] {
        let err = frr_err(
            backend
                .set(&target, RouteState::Announced)
                .await
                .expect_err("no instance"),
        );
        assert!(matches!(err, FrrError::NoBgpInstance { .. }), "{err:?}");
        let err = frr_err(backend.read(&target).await.expect_err("no instance"));
        assert!(
            matches!(err, FrrError::NoBgpInstance { .. }),
            "{via:?} {target}: {err:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_operations_on_one_backend() {
    let lab = Lab::start();
    let backend = lab.backend();
    lab.wait_sessions();
    let (v4, v6) = (network(V4), network(V6));
    let (a, b, c) = tokio::join!(
        backend.set(&v4, RouteState::Announced),
        backend.set(&v6, RouteState::Announced),
        backend.health(),
    );
    a.expect("announce v4");
    b.expect("announce v6");
    assert!(c.reachable, "{c:?}");
    lab.upstream.wait_route(V4, true);
    lab.upstream.wait_route(V6, true);
    let (a, b) = tokio::join!(
        backend.set(&v4, RouteState::Withdrawn),
        backend.set(&v6, RouteState::Withdrawn),
    );
    a.expect("withdraw v4");
    b.expect("withdraw v6");
    assert_eq!(
        read(&backend, &network(V4)).await.state,
        RouteState::Withdrawn
    );
    assert_eq!(
        read(&backend, &network(V6)).await.state,
        RouteState::Withdrawn
    );
    lab.upstream.wait_route(V4, false);
    lab.upstream.wait_route(V6, false);
}

const VTY_CHILD_SOCKET_ENV: &str = "NSBEACON_TEST_FRR_CHILD_SOCKET";
const VTY_CHILD_EXPECT_ENV: &str = "NSBEACON_TEST_FRR_CHILD_EXPECT";

/// The child side of `vty_socket_permission_denied_names_the_group`, running as `nobody`.
async fn vty_permission_child(socket: PathBuf) {
    let expect = std::env::var(VTY_CHILD_EXPECT_ENV).expect("expectation");
    let backend = FrrBackend::new(FrrConfig {
        transport: FrrTransport::VtySocket { socket },
        ..FrrConfig::default()
    })
    .expect("config");
    let result = backend.read(&network(V4)).await;
    if expect == "denied" {
        let err = frr_err(result.expect_err("nobody must not reach a frr:frrvty 0770 socket"));
        assert!(
            matches!(err, FrrError::VtyPermissionDenied { .. }),
            "{err:?}"
        );
        println!("CHILD-ERROR: {err}");
    } else {
        let read = result.expect("a member of frrvty gets through");
        println!("CHILD-OK: {:?}", read.value.state);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vty_socket_permission_denied_names_the_group() {
    if let Ok(socket) = std::env::var(VTY_CHILD_SOCKET_ENV) {
        vty_permission_child(PathBuf::from(socket)).await;
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let lab = Lab::start();
    // FRR creates its vty sockets frr:frrvty 0770; let nobody traverse the test's state dir.
    std::fs::set_permissions(lab.frr.state_dir(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod state dir");
    let socket = lab.frr.bgpd_vty_socket();
    let run_child = |group: Option<u32>, expect: &str| {
        nsbeacon_testkit::process::rerun_test_as_nobody(
            "vty_socket_permission_denied_names_the_group",
            group,
            &[
                (VTY_CHILD_SOCKET_ENV, &socket),
                (VTY_CHILD_EXPECT_ENV, Path::new(expect)),
            ],
        )
    };
    let stdout = run_child(None, "denied");
    let line = nsbeacon_testkit::process::child_line(&stdout, "CHILD-ERROR: ");
    assert!(line.contains("permission denied"), "{line}");
    assert!(line.contains(&socket.display().to_string()), "{line}");
    assert!(line.contains("member of group `frrvty`"), "{line}");
    // Following the hint works.
    let frrvty = nsbeacon_testkit::process::group_id("frrvty");
    let stdout = run_child(Some(frrvty), "ok");
    assert!(stdout.contains("CHILD-OK: Withdrawn"), "{stdout}");
}

/// A unix socket at `path` whose one connection is answered by `serve`, in a thread.
fn fake_vty(
    path: &Path,
    serve: impl FnOnce(std::os::unix::net::UnixStream) + Send + 'static,
) -> std::thread::JoinHandle<()> {
    let listener = std::os::unix::net::UnixListener::bind(path).expect("bind fake vty");
    std::thread::spawn(move || {
        if let Ok((stream, _)) = listener.accept() {
            serve(stream);
        }
    })
}

/// Reads one NUL-terminated command from a fake vty's client.
fn read_command(stream: &mut std::os::unix::net::UnixStream) -> String {
    use std::io::Read;
    let mut command = Vec::new();
    let mut byte = [0u8; 1];
    while stream.read_exact(&mut byte).is_ok() && byte[0] != 0 {
        command.push(byte[0]);
    }
    String::from_utf8_lossy(&command).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_vty_sockets_give_bounded_errors() {
    use std::io::Write;
    let dir = tempfile::tempdir().expect("dir");
    let timeout = Duration::from_millis(500);
    let backend_at = |path: &Path| {
        FrrBackend::new(FrrConfig {
            transport: FrrTransport::VtySocket {
                socket: path.to_owned(),
            },
            timeout,
            ..FrrConfig::default()
        })
        .expect("config")
    };
    let attempt = |backend: FrrBackend| async move {
        let started = Instant::now();
        let err = frr_err(backend.read(&network(V4)).await.expect_err("hostile peer"));
        assert!(
            started.elapsed() < timeout + Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        err
    };

    // BIRD's control socket (or anything line-based): a greeting, never the vty trailer.
    let path = dir.path().join("bird.ctl");
    let peer = fake_vty(&path, |mut s| {
        let _ = s.write_all(b"0001 BIRD 2.0.12 ready.\n");
        std::thread::sleep(Duration::from_secs(2));
    });
    let err = attempt(backend_at(&path)).await;
    assert!(matches!(err, FrrError::NotAVtySocket { .. }), "{err:?}");
    assert!(err.to_string().contains("0001 BIRD"), "{err}");
    peer.join().expect("peer");

    // Garbage with NUL bytes in the wrong places.
    let path = dir.path().join("garbage.vty");
    let peer = fake_vty(&path, |mut s| {
        let _ = read_command(&mut s);
        let _ = s.write_all(b"x\0y\0\0\0");
    });
    let err = attempt(backend_at(&path)).await;
    assert!(matches!(err, FrrError::BadOutput { .. }), "{err:?}");
    peer.join().expect("peer");

    // Accepts `enable`, then closes in the middle of the next command.
    let path = dir.path().join("closing.vty");
    let peer = fake_vty(&path, |mut s| {
        assert_eq!(read_command(&mut s), "enable");
        let _ = s.write_all(b"\0\0\0\0");
        let _ = read_command(&mut s);
        let _ = s.write_all(b"half a reply");
    });
    let err = attempt(backend_at(&path)).await;
    assert!(matches!(err, FrrError::VtyDisconnected { .. }), "{err:?}");
    peer.join().expect("peer");

    // Accepts, then never answers: the timeout bounds it.
    let path = dir.path().join("silent.vty");
    let peer = fake_vty(&path, |s| {
        std::thread::sleep(Duration::from_secs(2));
        drop(s);
    });
    let err = attempt(backend_at(&path)).await;
    assert!(matches!(err, FrrError::Timeout { .. }), "{err:?}");
    peer.join().expect("peer");

    // An unknown command is FRR's status 2, whatever the text.
    let path = dir.path().join("old.vty");
    let peer = fake_vty(&path, |mut s| {
        assert_eq!(read_command(&mut s), "enable");
        let _ = s.write_all(b"\0\0\0\0");
        let _ = read_command(&mut s);
        let _ = s.write_all(b"% [BGP] Unknown command: show running-config\n\0\0\0\x02");
        let _ = read_command(&mut s);
    });
    let err = attempt(backend_at(&path)).await;
    assert!(matches!(err, FrrError::UnknownCommand { .. }), "{err:?}");
    peer.join().expect("peer");
}

/// Prefixes the node has NOT on `lo` (so no connected route): only the kernel-route gate puts them into
/// zebra's RIB, and so through bgp import-check.
const GATED_V4: &str = "198.51.100.53/32";
const GATED_V6: &str = "2001:db8:5353::53/128";

impl Lab {
    /// The backend with `announce_via = "kernel-route"`, writing its routes into the node's namespace.
    fn gate_backend(&self) -> FrrBackend {
        FrrBackend::new(FrrConfig {
            announce: FrrAnnounce::KernelRoute(KernelRouteGate {
                protocol: DEFAULT_KERNEL_ROUTE_PROTOCOL,
                netns: Some(PathBuf::from(format!("/run/netns/{}", self._node.0))),
            }),
            ..self.config()
        })
        .expect("valid config")
    }

    /// `ip route show PREFIX [proto N]` in the node: the kernel's routes for exactly `prefix`.
    fn kernel_routes(&self, prefix: &str, protocol: Option<&str>) -> String {
        let family = if prefix.contains(':') { "-6" } else { "-4" };
        let mut args = vec!["-n", self._node.0.as_str(), family, "route", "show", prefix];
        if let Some(p) = protocol {
            args.extend(["proto", p]);
        }
        let out = Command::new("ip").args(&args).output().expect("run ip");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// The export of `target` to `peer`, as the backend reports it.
async fn export_to(backend: &FrrBackend, target: &RouteTarget, peer: &str) -> PeerExport {
    let exports = backend.exports(target).await.expect("exports").value;
    exports
        .iter()
        .find(|e| e.session.peer == peer)
        .cloned()
        .unwrap_or_else(|| panic!("no export entry for {peer}: {exports:?}"))
}

/// Reads exports until `peer`'s entry says `exported` (up to 5 s: bgpd's 50 ms hold, zebra's NHT update).
async fn export_until(
    backend: &FrrBackend,
    target: &RouteTarget,
    peer: &str,
    exported: bool,
) -> PeerExport {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let export = export_to(backend, target, peer).await;
        if export.exported == exported || Instant::now() >= deadline {
            return export;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kernel_route_gate_announces_withdraws_and_holds_a_configured_network_back() {
    let lab = Lab::start();
    let backend = lab.gate_backend();
    lab.wait_sessions();
    // A neighbor that never comes up: listed, not established, nothing exported.
    lab.frr.vtysh_ok(&[
        "configure terminal",
        "router bgp 65001",
        "neighbor 192.0.2.9 remote-as 64497",
    ]);
    for (prefix, peer) in [(GATED_V4, PEER_V4), (GATED_V6, PEER_V6)] {
        let target = network(prefix);
        assert_eq!(read(&backend, &target).await.state, RouteState::Withdrawn);
        assert!(!export_to(&backend, &target, peer).await.exported);

        backend
            .set(&target, RouteState::Announced)
            .await
            .expect("announce");
        let status = read_until(&backend, &target, RouteState::Announced).await;
        assert_eq!(status.state, RouteState::Announced, "{status:?}");
        assert!(
            status.detail.contains("kernel route (proto 53) is present"),
            "{status:?}"
        );
        assert!(
            lab.kernel_routes(prefix, Some("53")).contains("dev lo"),
            "no kernel route: {}",
            lab.kernel_routes(prefix, None)
        );
        lab.upstream.wait_route(prefix, true);
        let export = export_until(&backend, &target, peer, true).await;
        assert!(export.exported && export.session.established, "{export:?}");

        // Closing the gate by hand withdraws, although the `network` statement stays: the gate, not the
        // statement, decides.
        let family = if prefix.contains(':') { "-6" } else { "-4" };
        ip(&[
            "-n",
            &lab._node.0,
            family,
            "route",
            "del",
            prefix,
            "proto",
            "53",
        ]);
        lab.upstream.wait_route(prefix, false);
        assert!(lab.running_config().contains(&format!("network {prefix}")));
        let status = read_until(&backend, &target, RouteState::Withdrawn).await;
        assert!(status.detail.contains("is absent"), "{status:?}");
        assert!(!export_until(&backend, &target, peer, false).await.exported);

        // Announcing again re-opens it; withdrawing closes it and removes the statement.
        backend
            .set(&target, RouteState::Announced)
            .await
            .expect("announce again");
        lab.upstream.wait_route(prefix, true);
        backend
            .set(&target, RouteState::Withdrawn)
            .await
            .expect("withdraw");
        lab.upstream.wait_route(prefix, false);
        assert_eq!(lab.kernel_routes(prefix, Some("53")), "");
        assert!(!lab.running_config().contains(&format!("network {prefix}")));
        assert_eq!(read(&backend, &target).await.state, RouteState::Withdrawn);
        backend
            .set(&target, RouteState::Withdrawn)
            .await
            .expect("withdraw is idempotent");
    }
    let idle = export_to(&backend, &network(GATED_V4), "192.0.2.9").await;
    assert!(!idle.exported && !idle.session.established, "{idle:?}");
    assert_ne!(idle.session.state, "Established");
    // The neighbor target: its own session only.
    let session = backend
        .exports(&neighbor(PEER_V4))
        .await
        .expect("neighbor exports")
        .value;
    assert_eq!(session.len(), 1, "{session:?}");
    assert_eq!(session[0].session.peer, PEER_V4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kernel_route_gate_defeated_by_a_connected_route_is_reported_and_still_withdraws() {
    let lab = Lab::start();
    let backend = lab.gate_backend();
    lab.wait_sessions();
    // V4 is on lo in this lab: zebra has it as a connected route, which satisfies import-check alone.
    let target = network(V4);
    backend
        .set(&target, RouteState::Announced)
        .await
        .expect("announce");
    lab.upstream.wait_route(V4, true);
    ip(&["-n", &lab._node.0, "-4", "route", "del", V4, "proto", "53"]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = read(&backend, &target).await;
    assert_eq!(status.state, RouteState::Announced, "{status:?}");
    assert!(
        status.detail.contains("WITHOUT nsbeacon's kernel route"),
        "{status:?}"
    );
    assert!(
        lab.upstream.has_route(V4),
        "the connected route keeps it announced"
    );
    // Withdrawing still works: the statement goes.
    backend
        .set(&target, RouteState::Withdrawn)
        .await
        .expect("withdraw");
    lab.upstream.wait_route(V4, false);
    assert_eq!(read(&backend, &target).await.state, RouteState::Withdrawn);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kernel_route_gate_never_touches_another_programs_route() {
    let lab = Lab::start();
    let backend = lab.gate_backend();
    // Someone else's route for the prefix (proto boot, as `ip route add` makes it) in the same slot.
    ip(&["-n", &lab._node.0, "route", "add", GATED_V4, "dev", "lo"]);
    let err = backend
        .set(&network(GATED_V4), RouteState::Announced)
        .await
        .expect_err("conflict");
    let err = frr_err(err);
    assert!(matches!(err, FrrError::KernelRouteConflict { .. }), "{err}");
    assert!(err.to_string().contains("never replaces"), "{err}");
    backend
        .set(&network(GATED_V4), RouteState::Withdrawn)
        .await
        .expect("withdraw");
    assert!(
        lab.kernel_routes(GATED_V4, None).contains("dev lo"),
        "the other program's route was deleted"
    );
    // A default route is never a gate: it would route all of the node's traffic into lo.
    let err = frr_err(
        backend
            .set(&network("0.0.0.0/0"), RouteState::Announced)
            .await
            .expect_err("default route"),
    );
    assert!(err.to_string().contains("default route"), "{err}");
    assert_eq!(lab.kernel_routes("0.0.0.0/0", Some("53")), "");
    // A namespace that does not exist is a clear error, not a hang.
    let missing = FrrBackend::new(FrrConfig {
        announce: FrrAnnounce::KernelRoute(KernelRouteGate {
            protocol: DEFAULT_KERNEL_ROUTE_PROTOCOL,
            netns: Some(PathBuf::from("/run/netns/nsbeacon-no-such-namespace")),
        }),
        ..lab.config()
    })
    .expect("valid config");
    let err = frr_err(
        missing
            .set(&network(GATED_V4), RouteState::Announced)
            .await
            .expect_err("no namespace"),
    );
    assert!(
        matches!(err, FrrError::KernelRouteSocket { .. })
            && err.to_string().contains("nsbeacon-no-such-namespace"),
        "{err}"
    );
}

impl Lab {
    /// The backend with `announce_via = "kernel-metric"` (metrics 53/54/55), writing its routes into the
    /// node's namespace, after configuring bgpd like frr-templates/nsbeacon-bgpd-kernel-metric.conf does:
    /// `redistribute kernel` through a route-map that passes only `prefix` with nsbeacon's metrics and tags
    /// the degraded (54) and graceful-shutdown (55) variants.
    fn metric_backend(&self, prefix: &str) -> FrrBackend {
        let (afi, list, matcher) = if prefix.contains(':') {
            (
                "ipv6",
                "ipv6 prefix-list KM seq 5 permit",
                "match ipv6 address prefix-list KM",
            )
        } else {
            (
                "ipv4",
                "ip prefix-list KM seq 5 permit",
                "match ip address prefix-list KM",
            )
        };
        let list = format!("{list} {prefix}");
        let mut lines = vec!["configure terminal".to_owned(), list];
        for (seq, metric, tag) in [
            (10, 53, None),
            (20, 54, Some("65001:0:1")),
            (30, 55, Some("65001:0:2")),
        ] {
            lines.push(format!("route-map KM permit {seq}"));
            lines.push(matcher.to_owned());
            lines.push(format!("match metric {metric}"));
            lines.push("set origin igp".to_owned());
            lines.push("set metric 0".to_owned());
            if let Some(tag) = tag {
                lines.push(format!("set large-community {tag} additive"));
            }
            lines.push("exit".to_owned());
        }
        lines.push("route-map KM deny 100".to_owned());
        lines.push("exit".to_owned());
        lines.push("router bgp 65001".to_owned());
        lines.push(format!("address-family {afi} unicast"));
        lines.push("redistribute kernel route-map KM".to_owned());
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        self.frr.vtysh_ok(&lines);
        FrrBackend::new(FrrConfig {
            announce: FrrAnnounce::KernelMetric(
                KernelRouteGate {
                    protocol: DEFAULT_KERNEL_ROUTE_PROTOCOL,
                    netns: Some(PathBuf::from(format!("/run/netns/{}", self._node.0))),
                },
                KernelMetrics::default(),
            ),
            ..self.config()
        })
        .expect("valid config")
    }
}

/// `announce_via = "kernel-metric"` against real zebra/bgpd: each variant is the metric of nsbeacon's kernel
/// route; switching (make-before-break, as the daemon does) is an UPDATE upstream, never a withdrawal; the
/// read-back and the exports name the active variant; a redistributed route without nsbeacon's kernel
/// route is reported; a variant without a metric is a clear error; withdrawing removes the route.
async fn kernel_metric_variants(prefix: &str, peer: &str, session: &str) {
    let lab = Lab::start();
    let backend = lab.metric_backend(prefix);
    lab.wait_sessions();
    let normal = variant(prefix, None);
    let degraded = variant(prefix, Some("NSBEACON-DEGRADED"));
    let gshut = variant(prefix, Some("NSBEACON-GSHUT"));
    let all = [&normal, &degraded, &gshut];
    let degraded_tag = "(65001, 0, 1)";
    let gshut_tag = "(65001, 0, 2)";
    assert_variants(&backend, &all, None).await;

    backend
        .set(&normal, RouteState::Announced)
        .await
        .expect("announce");
    assert_variants(&backend, &all, Some(&normal)).await;
    assert!(lab.kernel_routes(prefix, Some("53")).contains("metric 53"));
    lab.upstream
        .wait_route_with(prefix, &["BGP.med: 0"], &[degraded_tag, gshut_tag]);
    assert!(export_until(&backend, &normal, peer, true).await.exported);
    assert!(!export_to(&backend, &degraded, peer).await.exported);
    let withdraws_before = lab.upstream.withdraws_received(session);
    let watch = RibWatch::start(&lab.upstream, prefix);

    for (to, from, tags, absent) in [
        (&degraded, &normal, [degraded_tag], [gshut_tag]),
        (&normal, &degraded, ["BGP.med: 0"], [degraded_tag]),
        (&gshut, &normal, [gshut_tag], [degraded_tag]),
        (&normal, &gshut, ["BGP.med: 0"], [gshut_tag]),
    ] {
        backend
            .set(to, RouteState::Announced)
            .await
            .expect("announce the new variant");
        backend
            .set(from, RouteState::Withdrawn)
            .await
            .expect("withdraw the old variant");
        assert_variants(&backend, &all, Some(to)).await;
        lab.upstream.wait_route_with(prefix, &tags, &absent);
        let routes = lab.kernel_routes(prefix, Some("53"));
        assert_eq!(
            routes.lines().count(),
            1,
            "one kernel route after the switch: {routes}"
        );
        assert!(export_until(&backend, to, peer, true).await.exported);
        assert!(!export_to(&backend, from, peer).await.exported);
    }
    let status = read(&backend, &degraded).await;
    assert!(status.detail.contains("another variant"), "{status:?}");
    let (polls, missing) = watch.finish();
    assert_eq!(
        missing, 0,
        "the upstream lost {prefix} in {missing} of {polls} polls"
    );
    assert_eq!(
        lab.upstream.withdraws_received(session),
        withdraws_before,
        "the upstream received a withdrawal during the switches"
    );

    // A variant without a metric: a clear error, nothing changed.
    let err = frr_err(
        backend
            .set(&variant(prefix, Some("OTHER")), RouteState::Announced)
            .await
            .expect_err("no metric"),
    );
    assert!(matches!(err, FrrError::NoKernelMetric { .. }), "{err}");
    assert!(
        err.to_string().contains("NSBEACON-DEGRADED (metric 54)"),
        "{err}"
    );

    // Another program's kernel route with nsbeacon's metric passes the route-map: reported, and nsbeacon
    // does not delete it. (Same slot as nsbeacon's route: nsbeacon's goes first.)
    backend
        .set(&normal, RouteState::Withdrawn)
        .await
        .expect("withdraw");
    lab.upstream.wait_route(prefix, false);
    let family = if prefix.contains(':') { "-6" } else { "-4" };
    ip(&[
        "-n",
        &lab._node.0,
        family,
        "route",
        "add",
        prefix,
        "dev",
        "lo",
        "metric",
        "53",
        "proto",
        "static",
    ]);
    lab.upstream.wait_route(prefix, true);
    backend
        .set(&normal, RouteState::Withdrawn)
        .await
        .expect("withdrawing again leaves the other program's route alone");
    let status = read(&backend, &normal).await;
    assert_eq!(status.state, RouteState::Announced, "{status:?}");
    assert!(
        status.detail.contains("WITHOUT nsbeacon's kernel route"),
        "{status:?}"
    );
    assert!(export_until(&backend, &normal, peer, true).await.exported);
    assert!(lab.kernel_routes(prefix, Some("static")).contains("dev lo"));
    ip(&[
        "-n",
        &lab._node.0,
        family,
        "route",
        "del",
        prefix,
        "proto",
        "static",
    ]);
    lab.upstream.wait_route(prefix, false);
    assert_variants(&backend, &all, None).await;
    assert_eq!(lab.kernel_routes(prefix, Some("53")), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kernel_metric_switches_variants_without_withdrawal_v4() {
    kernel_metric_variants(GATED_V4, PEER_V4, "node4").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kernel_metric_switches_variants_without_withdrawal_v6() {
    kernel_metric_variants(GATED_V6, PEER_V6, "node6").await;
}
