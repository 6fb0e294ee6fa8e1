//! A fleet lab: N anycast nodes behind one upstream router, one etcd cluster, one nsbeacon per node.
//!
//! ```text
//! netns upstream (BIRD, AS 64496)            netns fleetN (one per node)
//!   bgp "node0" .. "nodeN-1", import all       BIRD from bird-templates/ (AS 65001), lo 203.0.113.53/32
//!   n<i> 192.0.2.<4i+1>/30 ------ veth ------  to-upstream 192.0.2.<4i+2>/30
//!
//! root namespace: etcd members on 127.0.0.1, the Knot servers the nodes probe (127.0.0.1, own ports),
//!                 each node's nsbeacon (its BIRD control socket is a file; HTTP on 127.0.0.1)
//! ```
//!
//! The upstream sees one path per announcing node, so "how many nodes announce" is read where it matters.
//! Knot servers are shared by groups of nodes so that a test can fail any set of nodes at the same
//! instant (SIGSTOP of their Knot: probes time out, a failure every node of the group shares).
//! Every Knot also serves [`SIGNED_ZONE`], pre-signed by one "shared signer" (dnssec-signzone), so that a
//! test can make every node's DNSSEC check fail at once ([`FleetLab::resign_shared_zone`]).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nsbeacon_testkit::bird::{BirdDaemon, bird_command};
use nsbeacon_testkit::dnssec::sign_zone;
use nsbeacon_testkit::etcd::EtcdCluster;
use nsbeacon_testkit::knot::{KnotConfig, KnotServer, Zone};
use nsbeacon_testkit::net::free_port;
use nsbeacon_testkit::netns::{Netns, Veth};
use nsbeacon_testkit::{DaemonGuard, Signal, require_binary};

use crate::lab::{ANYCAST_V4, ANYCAST_V4_ADDR, LAB_ZONE, LAB_ZONE_SERIAL, NODE_AS, UPSTREAM_AS};
use crate::nsbeacon::nsbeacon_binary;
use crate::render::{bird_templates_dir, render_bird};

/// How long the lab waits for every BGP session.
const SESSION_TIMEOUT: Duration = Duration::from_secs(60);

/// The signed zone every Knot serves, as if from one signer shared by the fleet.
pub const SIGNED_ZONE: &str = "signed.fleet.test.";

/// Validity of [`SIGNED_ZONE`]'s signatures at lab start: far beyond any `warn_before` a test sets.
pub const SIGNED_ZONE_VALIDITY: Duration = Duration::from_secs(30 * 24 * 3600);

/// One path the upstream has for the anycast prefix.
///
/// Two paths are equal when they come from the same protocol with the same prepend and `since` stamps at
/// most [`crate::route::SINCE_JITTER_MS`] apart: BIRD keeps a route's age on its monotonic clock and converts it to
/// wall-clock time when it prints it, so the same, unchanged route reads a millisecond off now and then.
/// A re-announced path's stamp moves by the time between the two reads, which the tests keep well above.
#[derive(Debug, Clone)]
pub struct UpstreamPath {
    /// The upstream's BGP protocol it came from (`node<i>`).
    pub protocol: String,
    /// How often the node's AS is in the path (1: normal, 4: the degraded variant's prepend).
    pub node_as_count: usize,
    /// BIRD's `since` stamp of the path (changes when the path is withdrawn and announced again).
    pub since: String,
}

impl PartialEq for UpstreamPath {
    fn eq(&self, other: &Self) -> bool {
        self.protocol == other.protocol
            && self.node_as_count == other.node_as_count
            && crate::route::same_since(&self.since, &other.since)
    }
}

impl Eq for UpstreamPath {}

/// Parses `show route 203.0.113.53/32 all` from the upstream: every path, not only the best.
pub fn parse_paths(reply: &str) -> Vec<UpstreamPath> {
    let mut paths: Vec<UpstreamPath> = Vec::new();
    for raw in reply.lines() {
        let text = match raw.as_bytes() {
            [a, b, c, d, b'-' | b' ', ..] if [a, b, c, d].iter().all(|x| x.is_ascii_digit()) => {
                if raw.starts_with("8001") {
                    return Vec::new();
                }
                &raw[5..]
            }
            _ => raw,
        };
        if let Some((_, rest)) = text.split_once("unicast [") {
            let mut words = rest.split_whitespace();
            let protocol = words.next().unwrap_or_default().to_owned();
            let since = words
                .next()
                .unwrap_or_default()
                .trim_end_matches(']')
                .to_owned();
            paths.push(UpstreamPath {
                protocol,
                node_as_count: 0,
                since,
            });
        } else if let Some(path) = text.trim().strip_prefix("BGP.as_path:")
            && let Some(last) = paths.last_mut()
        {
            last.node_as_count = path
                .split_whitespace()
                .filter(|a| *a == NODE_AS.to_string())
                .count();
        }
    }
    paths
}

/// One node: its namespace, BIRD, Knot group and (while running) nsbeacon.
#[derive(Debug)]
pub struct FleetNode {
    /// The node's name in the fleet (`node-<i>`).
    pub name: String,
    /// nsbeacon's HTTP address.
    pub http: SocketAddr,
    /// The config file.
    pub config_path: PathBuf,
    /// Which Knot the node probes (index into [`FleetLab::knots`]).
    pub knot: usize,
    nsbeacon: Option<DaemonGuard>,
    log: PathBuf,
    bird: BirdDaemon,
    netns: Netns,
}

impl FleetNode {
    /// nsbeacon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// nsbeacon's process guard, while it runs.
    pub fn nsbeacon(&mut self) -> Option<&mut DaemonGuard> {
        self.nsbeacon.as_mut()
    }

    /// The node's BIRD.
    pub fn bird(&self) -> &BirdDaemon {
        &self.bird
    }

    /// The node's namespace.
    pub fn netns(&self) -> &Netns {
        &self.netns
    }
}

/// The running fleet lab. Dropping it stops every nsbeacon, BIRD, Knot and etcd member by PID, then the
/// namespaces and the directory.
#[derive(Debug)]
pub struct FleetLab {
    /// The nodes, in order.
    pub nodes: Vec<FleetNode>,
    /// The Knot servers the node groups probe.
    pub knots: Vec<KnotServer>,
    /// The etcd cluster.
    pub etcd: EtcdCluster,
    upstream: BirdDaemon,
    upstream_ns: Netns,
    dir: tempfile::TempDir,
}

/// The address of the upstream (`side = 1`) or the node (`side = 2`) on node `i`'s link.
fn link_addr(i: usize, side: u8) -> Ipv4Addr {
    let base = u8::try_from(4 * i).unwrap_or_else(|_| panic!("too many nodes"));
    Ipv4Addr::new(192, 0, 2, base + side)
}

impl FleetLab {
    /// Starts etcd (`etcd_members`), one Knot per entry of `groups` (each lists the nodes that probe
    /// it), the upstream and one BIRD per node, and waits until every node's BGP session is up. nsbeacon
    /// is not started: write configs with [`Self::write_config`] and start with [`Self::start_node`].
    pub fn start(nodes: usize, groups: &[&[usize]], etcd_members: usize) -> FleetLab {
        for bin in ["ip", "bird", "knotd", "etcd"] {
            require_binary(bin);
        }
        let dir = tempfile::Builder::new()
            .prefix("nsbeacon-fleet-")
            .tempdir()
            .unwrap_or_else(|e| panic!("create the fleet lab dir: {e}"));
        let etcd = EtcdCluster::start(etcd_members);
        let signed = sign_zone(
            &Zone::new(SIGNED_ZONE, 1),
            SIGNED_ZONE_VALIDITY,
            &dir.path().join("signer-1"),
        );
        let knots: Vec<KnotServer> = groups
            .iter()
            .map(|_| {
                KnotServer::start(
                    KnotConfig::new()
                        .with_zone(
                            Zone::new(LAB_ZONE, LAB_ZONE_SERIAL).with_record("www IN A 192.0.2.80"),
                        )
                        .with_zone(signed.clone()),
                )
            })
            .collect();
        let upstream_ns = Netns::create("fupstream").unwrap_or_else(|e| panic!("{e}"));
        let mut upstream_conf = format!(
            "router id 192.0.2.1;\nlog stderr all;\nprotocol device {{}}\n\
             template bgp fleet_node {{\n  local as {UPSTREAM_AS};\n  connect delay time 1;\n  connect retry time 2;\n  error wait time 1, 5;\n}}\n"
        );
        let mut node_parts = Vec::new();
        for i in 0..nodes {
            let netns = Netns::create("fleet").unwrap_or_else(|e| panic!("{e}"));
            let upstream_dev = format!("n{i}");
            Veth::create(&upstream_ns, &upstream_dev, &netns, "to-upstream")
                .unwrap_or_else(|e| panic!("{e}"));
            upstream_ns
                .add_address(&upstream_dev, &format!("{}/30", link_addr(i, 1)))
                .unwrap_or_else(|e| panic!("{e}"));
            netns
                .add_address("to-upstream", &format!("{}/30", link_addr(i, 2)))
                .unwrap_or_else(|e| panic!("{e}"));
            netns
                .add_address("lo", &format!("{ANYCAST_V4_ADDR}/32"))
                .unwrap_or_else(|e| panic!("{e}"));
            upstream_conf.push_str(&format!(
                "protocol bgp node{i} from fleet_node {{\n  neighbor {} as {NODE_AS};\n  ipv4 {{ import all; export none; }};\n}}\n",
                link_addr(i, 2)
            ));
            node_parts.push(netns);
        }
        let upstream = BirdDaemon::start(&upstream_conf, Some(upstream_ns.name()));
        let mut fleet_nodes = Vec::new();
        for (i, netns) in node_parts.into_iter().enumerate() {
            let router_id = link_addr(i, 2).to_string();
            let upstream_v4 = link_addr(i, 1).to_string();
            let node_as = NODE_AS.to_string();
            let upstream_as = UPSTREAM_AS.to_string();
            let anycast = format!("[ {ANYCAST_V4} ]");
            let node_dir = dir.path().join(format!("node-{i}"));
            std::fs::create_dir_all(node_dir.join("state"))
                .unwrap_or_else(|e| panic!("create {}: {e}", node_dir.display()));
            let conf = render_bird(
                &bird_templates_dir().join("bird.conf"),
                &[
                    ("NODE_AS", &node_as),
                    ("NODE_ROUTER_ID", &router_id),
                    ("UPSTREAM1_AS", &upstream_as),
                    ("UPSTREAM1_V4", &upstream_v4),
                    ("UPSTREAM1_V6", "2001:db8:0:1::1"),
                    ("UPSTREAM1_BFD", "0"),
                    ("NSBEACON_ANYCAST_V4", &anycast),
                    ("NSBEACON_ANYCAST_V6", "[ 2001:db8::53/128 ]"),
                ],
                &node_dir,
            )
            .unwrap_or_else(|e| panic!("{e}"));
            let bird = BirdDaemon::start(&conf, Some(netns.name()));
            let knot = groups
                .iter()
                .position(|g| g.contains(&i))
                .unwrap_or_else(|| panic!("node {i} is in no Knot group"));
            fleet_nodes.push(FleetNode {
                name: format!("node-{i}"),
                http: SocketAddr::from((Ipv4Addr::LOCALHOST, free_port())),
                config_path: node_dir.join("nsbeacon.toml"),
                knot,
                nsbeacon: None,
                log: node_dir.join("nsbeacon.log"),
                bird,
                netns,
            });
        }
        let lab = FleetLab {
            nodes: fleet_nodes,
            knots,
            etcd,
            upstream,
            upstream_ns,
            dir,
        };
        for i in 0..nodes {
            let protocol = format!("node{i}");
            assert!(
                lab.upstream
                    .wait_protocol_state(&protocol, "up", SESSION_TIMEOUT),
                "BGP session {protocol} not up within {SESSION_TIMEOUT:?}: {}\nupstream log:\n{}",
                lab.upstream.command("show protocols"),
                lab.upstream.log()
            );
        }
        lab
    }

    /// The lab directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The upstream BIRD's control socket (for a watcher thread: see [`PathWatch`]).
    pub fn upstream_socket(&self) -> PathBuf {
        self.upstream.socket()
    }

    /// The upstream BIRD (its PID, its protocols).
    pub fn upstream_bird(&self) -> &BirdDaemon {
        &self.upstream
    }

    /// The upstream's namespace.
    pub fn upstream_netns(&self) -> &Netns {
        &self.upstream_ns
    }

    /// Writes node `i`'s config: the fleet section with `fleet_extra` lines, one service `dns` announcing
    /// `anycast_dns` (degraded: `anycast_dns_degraded`) while its Knot answers, fast timers (200 ms
    /// interval, 100 ms timeout, rise 2, fall 2), damping off (the tests flap on purpose), a 1 s
    /// `guard_timeout` (the lab runs some 15 daemons on 2 cores: what is tested is the guard's decision;
    /// its timeout path has a test of its own, a partition), and
    /// `service_extra` lines (e.g. `min_announcing = 3`). `endpoints` default to the etcd cluster's.
    pub fn write_config(
        &self,
        i: usize,
        endpoints: Option<&[String]>,
        fleet_extra: &str,
        service_extra: &str,
    ) {
        let node = &self.nodes[i];
        let endpoints = endpoints
            .map(<[String]>::to_vec)
            .unwrap_or_else(|| self.etcd.endpoints());
        let endpoints = endpoints
            .iter()
            .map(|e| format!("\"{e}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let knot = self.knots[node.knot].addr();
        let text = format!(
            "state_dir = \"{state}\"\nreconcile_interval = \"1s\"\n\n\
             [backend]\nkind = \"bird\"\nsocket = \"{socket}\"\ntimeout = \"2s\"\ndecision_dir = \"{decisions}\"\n\n\
             [http]\nlisten = \"{http}\"\n\n[log]\nlevel = \"debug\"\n\n\
             [fleet]\nendpoints = [{endpoints}]\nname = \"lab\"\nnode = \"{name}\"\nlease_ttl = \"2s\"\n\
             timeout = \"500ms\"\nguard_timeout = \"1s\"\n{fleet_extra}\n\n\
             [[service]]\nname = \"dns\"\nannounce = [\"anycast_dns\"]\ndegrade = [\"anycast_dns_degraded\"]\n\
             interval = \"200ms\"\ntimeout = \"100ms\"\nrise = 2\nfall = 2\n{service_extra}\n\n\
             [service.damping]\nenabled = false\n\n\
             [[service.check]]\nname = \"soa\"\ntarget = \"{knot}\"\nqname = \"{LAB_ZONE}\"\n",
            state = node.config_path.with_file_name("state").display(),
            decisions = node
                .config_path
                .with_file_name("nsbeacon")
                .join("bird")
                .display(),
            socket = node.bird.socket().display(),
            http = node.http,
            name = node.name,
        );
        std::fs::write(&node.config_path, text)
            .unwrap_or_else(|e| panic!("write {}: {e}", node.config_path.display()));
    }

    /// Appends a `type = "dnssec"` check of [`SIGNED_ZONE`] on node `i`'s Knot to its config (written by
    /// [`Self::write_config`]): the service's 200 ms rhythm, `warn_before` 2 days, `fail_before` 1 hour.
    pub fn add_dnssec_check(&self, i: usize) {
        let node = &self.nodes[i];
        let check = format!(
            "\n[[service.check]]\nname = \"signatures\"\ntype = \"dnssec\"\nlocal = \"{}\"\n\
             zones = [\"{SIGNED_ZONE}\"]\ninterval = \"200ms\"\nwarn_before = \"2d\"\nfail_before = \"1h\"\n",
            self.knots[node.knot].addr()
        );
        let mut text = std::fs::read_to_string(&node.config_path)
            .unwrap_or_else(|e| panic!("read {}: {e}", node.config_path.display()));
        text.push_str(&check);
        std::fs::write(&node.config_path, text)
            .unwrap_or_else(|e| panic!("write {}: {e}", node.config_path.display()));
    }

    /// The shared signer signs [`SIGNED_ZONE`] again at `serial` with `valid_for` left, and every Knot
    /// serves the result (one after the other, each within milliseconds): what every node sees when the
    /// signer they share stalls (`valid_for` below `fail_before`) or recovers.
    pub fn resign_shared_zone(&mut self, serial: u32, valid_for: Duration) {
        let signed = sign_zone(
            &Zone::new(SIGNED_ZONE, serial),
            valid_for,
            &self.dir.path().join(format!("signer-{serial}")),
        );
        for knot in &mut self.knots {
            knot.write_zone(signed.clone());
        }
    }

    /// Sends SIGHUP to the nsbeacon of each of `nodes` and waits until each has logged one more
    /// "configuration reloaded" than before.
    pub fn reload(&mut self, nodes: &[usize]) {
        const DONE: &str = "configuration reloaded";
        let before: Vec<usize> = nodes
            .iter()
            .map(|&i| self.nodes[i].log().matches(DONE).count())
            .collect();
        for &i in nodes {
            let guard = self.nodes[i]
                .nsbeacon()
                .unwrap_or_else(|| panic!("node {i}'s nsbeacon is not running"));
            assert!(guard.signal(Signal::SIGHUP), "SIGHUP to node {i}");
        }
        let reloaded = nsbeacon_testkit::wait_until(Duration::from_secs(10), || {
            nodes
                .iter()
                .zip(&before)
                .all(|(&i, &n)| self.nodes[i].log().matches(DONE).count() > n)
        });
        assert!(
            reloaded,
            "not every node of {nodes:?} reloaded; node {} log tail:\n{}",
            nodes[0],
            tail(&self.nodes[nodes[0]].log(), 20)
        );
    }

    /// Starts node `i`'s nsbeacon (its config must be written).
    pub fn start_node(&mut self, i: usize) {
        self.start_node_with(i, &nsbeacon_binary());
    }

    /// Starts node `i`'s nsbeacon from `binary` (the demo passes its `--nsbeacon`; tests use
    /// [`Self::start_node`], which builds the one beside the test binary).
    pub fn start_node_with(&mut self, i: usize, binary: &Path) {
        let node = &mut self.nodes[i];
        let mut cmd = std::process::Command::new(binary);
        cmd.arg("-c").arg(&node.config_path).arg("run");
        node.nsbeacon = Some(DaemonGuard::spawn(
            &format!("nsbeacon {}", node.name),
            cmd,
            Some(&node.log),
        ));
    }

    /// Kills node `i`'s nsbeacon with SIGKILL (its BIRD keeps whatever it announced).
    pub fn kill_node(&mut self, i: usize) {
        if let Some(mut guard) = self.nodes[i].nsbeacon.take() {
            guard.kill();
        }
    }

    /// Sends `sig` to Knot `k` (SIGSTOP: every node probing it fails at the same instant).
    pub fn signal_knot(&self, k: usize, sig: Signal) {
        assert!(
            nsbeacon_testkit::process::signal(self.knots[k].pid(), sig),
            "signal Knot {k}"
        );
    }

    /// Every path the upstream has for the anycast prefix.
    pub fn upstream_paths(&self) -> Vec<UpstreamPath> {
        match bird_command(
            &self.upstream.socket(),
            &format!("show route {ANYCAST_V4} all"),
        ) {
            Ok(reply) => parse_paths(&reply),
            Err(e) => panic!("ask the upstream BIRD: {e}"),
        }
    }

    /// Waits until the upstream's paths satisfy `cond`, at most `timeout`; panics with what it saw.
    pub fn wait_paths(
        &self,
        what: &str,
        timeout: Duration,
        cond: impl Fn(&[UpstreamPath]) -> bool,
    ) -> Vec<UpstreamPath> {
        let deadline = Instant::now() + timeout;
        loop {
            let paths = self.upstream_paths();
            if cond(&paths) {
                return paths;
            }
            if Instant::now() > deadline {
                panic!(
                    "upstream: waited {timeout:?} for {what}; paths now: {paths:?}\nnode states: {:?}",
                    self.states()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// GET `path` from node `i`'s nsbeacon: `(status, body)`, or `None` if it does not answer.
    pub fn http_get(&self, i: usize, path: &str) -> Option<(u16, String)> {
        http_get(self.nodes[i].http, path)
    }

    /// Node `i`'s service `dns` state from its `/status`, or `None` if it does not answer.
    pub fn state(&self, i: usize) -> Option<String> {
        let (code, body) = self.http_get(i, "/status")?;
        if code != 200 {
            return None;
        }
        let doc: serde_json::Value = serde_json::from_str(&body).ok()?;
        doc["services"]
            .as_array()?
            .iter()
            .find(|s| s["name"] == "dns")?
            .get("state")?
            .as_str()
            .map(str::to_owned)
    }

    /// Every running node's state (`None` for a node not answering).
    pub fn states(&self) -> Vec<Option<String>> {
        (0..self.nodes.len()).map(|i| self.state(i)).collect()
    }

    /// Waits until the nodes' states satisfy `cond`, at most `timeout`.
    pub fn wait_states(
        &self,
        what: &str,
        timeout: Duration,
        cond: impl Fn(&[Option<String>]) -> bool,
    ) -> Vec<Option<String>> {
        let deadline = Instant::now() + timeout;
        loop {
            let states = self.states();
            if cond(&states) {
                return states;
            }
            if Instant::now() > deadline {
                let changes: Vec<String> = self
                    .nodes
                    .iter()
                    .map(|n| {
                        let log = n.log();
                        let lines: Vec<&str> = log
                            .lines()
                            .filter(|l| l.contains("state changed") || l.contains("fleet"))
                            .collect();
                        format!(
                            "--- {}:\n{}",
                            n.name,
                            lines[lines.len().saturating_sub(6)..].join("\n")
                        )
                    })
                    .collect();
                panic!(
                    "waited {timeout:?} for {what}; states now: {states:?}\nupstream paths: {:?}\nstate changes:\n{}",
                    self.upstream_paths(),
                    changes.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs `nsbeacon fleet --json` with node `i`'s config: every record in etcd.
    pub fn fleet_records(&self, i: usize) -> serde_json::Value {
        let out = std::process::Command::new(nsbeacon_binary())
            .arg("-c")
            .arg(&self.nodes[i].config_path)
            .args(["fleet", "--json"])
            .output()
            .unwrap_or_else(|e| panic!("run nsbeacon fleet: {e}"));
        assert!(
            out.status.success(),
            "nsbeacon fleet --json failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("nsbeacon fleet --json is not JSON ({e})"))
    }
}

/// A plain HTTP/1.0 GET on loopback, bounded (1 s to connect, 2 s to read): `(status, body)`.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .ok()?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).ok()?;
    let (head, body) = reply.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, body.to_owned()))
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Counts the states equal to `state`.
pub fn count(states: &[Option<String>], state: &str) -> usize {
    states
        .iter()
        .filter(|s| s.as_deref() == Some(state))
        .count()
}

/// Polls the upstream's paths in a thread, as fast as BIRD answers, and keeps the fewest seen: the proof
/// that no instant between two steps had fewer announcing nodes than the guard allows.
#[derive(Debug)]
pub struct PathWatch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<(usize, usize)>>,
}

impl PathWatch {
    /// Starts polling the upstream at `socket`.
    pub fn start(socket: PathBuf) -> PathWatch {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let (mut fewest, mut polls) = (usize::MAX, 0);
            while !flag.load(std::sync::atomic::Ordering::SeqCst) {
                if let Ok(reply) = bird_command(&socket, &format!("show route {ANYCAST_V4} all")) {
                    fewest = fewest.min(parse_paths(&reply).len());
                    polls += 1;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            (fewest, polls)
        });
        PathWatch {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops polling: `(fewest paths seen, polls)`.
    pub fn finish(mut self) -> (usize, usize) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or((0, 0))
    }
}

impl Drop for PathWatch {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(since: &str) -> UpstreamPath {
        UpstreamPath {
            protocol: "node0".to_owned(),
            node_as_count: 1,
            since: since.to_owned(),
        }
    }

    #[test]
    fn a_path_read_a_millisecond_off_is_the_same_and_a_reannounced_one_is_not() {
        assert_eq!(path("00:41:02.123"), path("00:41:02.124"));
        assert_eq!(path("00:41:02.999"), path("00:41:03.001"));
        assert_ne!(path("00:41:02.123"), path("00:41:02.623"));
        assert_ne!(path("00:41:02.123"), path("00:41:03.123"));
        let mut prepended = path("00:41:02.123");
        prepended.node_as_count = 4;
        assert_ne!(path("00:41:02.123"), prepended);
        assert_eq!(path("yesterday"), path("yesterday"));
        assert_ne!(path("yesterday"), path("00:41:02.123"));
    }
}
