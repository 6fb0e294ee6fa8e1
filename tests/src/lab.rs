//! The anycast lab: an upstream BGP router and a DNS node in network namespaces, joined by a veth pair.
//!
//! ```text
//! netns upstream                                  netns node
//!   BIRD 2, AS 64496                                BIRD 2 (bird-templates/) or FRR (frr-templates/), AS 65001
//!   bgp "node"  (IPv4) import all                   lo: 203.0.113.53/32, 2001:db8::53/128 (anycast)
//!   bgp "node6" (IPv6) import all                   Knot/NSD/BIND on the anycast addresses port 53
//!                                                   and on 127.0.0.1:5353
//!   kernel export (queries from here follow         [optional veth to netns primary, 198.51.100.0/30]
//!   the announced route)
//!   to-node 192.0.2.1/30 ------------- veth ------- to-upstream 192.0.2.2/30
//!           2001:db8:0:1::1/64                                  2001:db8:0:1::2/64
//! ```
//!
//! Names are unique per lab (PID + counter), so labs run in parallel. Every daemon is owned by a guard and
//! every namespace by a [`Netns`]: dropping the [`Lab`] (also while a test panics) kills them by PID and
//! deletes the namespaces and the lab directory.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nsbeacon_testkit::bird::{BirdDaemon, bird_command};
use nsbeacon_testkit::frr::{FrrConfigFiles, FrrInstance, VtyshOutput};
use nsbeacon_testkit::knot::Zone;
use nsbeacon_testkit::netns::{Netns, Veth};
use nsbeacon_testkit::{DaemonGuard, require_binary};

use crate::dns::{DnsServerKind, KnotRole, LabDns, kdig_soa_serial};
use crate::render::{bird_templates_dir, frr_templates_dir, render_bird, render_frr};
use crate::route::{RouteInfo, parse_show_route_all};

/// The node's AS.
pub const NODE_AS: u32 = 65001;
/// The upstream router's AS.
pub const UPSTREAM_AS: u32 = 64496;
/// The anycast IPv4 prefix the node announces.
pub const ANYCAST_V4: &str = "203.0.113.53/32";
/// The anycast IPv6 prefix the node announces.
pub const ANYCAST_V6: &str = "2001:db8::53/128";
/// The anycast IPv4 address (the DNS server listens on it, port 53).
pub const ANYCAST_V4_ADDR: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 53);
/// The anycast IPv6 address (the DNS server listens on it, port 53).
pub const ANYCAST_V6_ADDR: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x53);
/// The DNS server's local listener in the node (what a probe of "the local server" targets).
pub const NODE_LOCAL_DNS: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5353);
/// The upstream's address on the link.
pub const UPSTREAM_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// The node's address on the link (also its router ID).
pub const NODE_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
/// The upstream's IPv6 address on the link.
pub const UPSTREAM_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 1);
/// The node's IPv6 address on the link.
pub const NODE_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 2);
/// The hidden primary's address (only with [`LabOptions::primary`]).
pub const PRIMARY_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
/// The node's address towards the hidden primary.
pub const NODE_TO_PRIMARY_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
/// The upstream BIRD's BGP protocol for the IPv4 session to the node.
pub const UPSTREAM_PROTOCOL_V4: &str = "node";
/// The upstream BIRD's BGP protocol for the IPv6 session to the node.
pub const UPSTREAM_PROTOCOL_V6: &str = "node6";
/// The zone the node's DNS server serves.
pub const LAB_ZONE: &str = "lab.example.";
/// The zone's initial SOA serial.
pub const LAB_ZONE_SERIAL: u32 = 2_024_010_101;

/// How long [`Lab::start`] waits for both BGP sessions to come up.
const SESSION_TIMEOUT: Duration = Duration::from_secs(60);

/// Which BGP daemon runs on the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeBgpKind {
    /// BIRD 2 from `bird-templates/bird.conf`.
    Bird,
    /// FRR (zebra, staticd, bgpd) from `frr-templates/nsbeacon-bgpd.conf`.
    Frr,
}

/// What to build.
#[derive(Debug, Clone)]
pub struct LabOptions {
    /// The node's BGP daemon.
    pub bgp: NodeBgpKind,
    /// Whether to create the `primary` namespace (veth to the node, 198.51.100.0/30) with a hidden
    /// primary Knot at [`PRIMARY_V4`] port 53; the node's Knot is then its secondary (transfers the zone,
    /// accepts NOTIFY, also listens on [`NODE_TO_PRIMARY_V4`] port 53).
    pub primary: bool,
    /// The node's authoritative DNS server.
    pub dns: DnsServerKind,
    /// The zone the node's DNS server serves.
    pub zone: Zone,
    /// FRR only: run `frr-templates/nsbeacon-bgpd-kernel-metric.conf` (redistributed kernel routes, for
    /// nsbeacon's `announce_via = "kernel-metric"`) instead of `nsbeacon-bgpd.conf`.
    pub frr_kernel_metric: bool,
}

impl LabOptions {
    /// A lab with `bgp` and Knot on the node, no primary, and zone [`LAB_ZONE`] at [`LAB_ZONE_SERIAL`].
    pub fn new(bgp: NodeBgpKind) -> LabOptions {
        LabOptions {
            bgp,
            dns: DnsServerKind::Knot,
            primary: false,
            zone: Zone::new(LAB_ZONE, LAB_ZONE_SERIAL).with_record("www IN A 192.0.2.80"),
            frr_kernel_metric: false,
        }
    }

    /// FRR from `frr-templates/nsbeacon-bgpd-kernel-metric.conf`; nsbeacon's lab config then says
    /// `announce_via = "kernel-metric"` ([`Lab::frr_kernel_metric`]).
    pub fn with_frr_kernel_metric(mut self) -> LabOptions {
        self.frr_kernel_metric = true;
        self
    }

    /// Run `dns` as the node's DNS server instead of Knot.
    pub fn with_dns(mut self, dns: DnsServerKind) -> LabOptions {
        self.dns = dns;
        self
    }

    /// Also create the `primary` namespace with a hidden primary Knot (needs Knot on the node too).
    pub fn with_primary(mut self) -> LabOptions {
        self.primary = true;
        self
    }
}

/// Why waiting on the upstream's RIB gave up.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// The condition did not hold within the timeout.
    #[error(
        "upstream route for {prefix}: waited {timeout:?} for {wanted}, last seen: {last}; node BGP log:\n{node_log}"
    )]
    RouteTimeout {
        /// The prefix watched.
        prefix: String,
        /// What was waited for.
        wanted: String,
        /// How long.
        timeout: Duration,
        /// The last route seen (or "no route").
        last: String,
        /// The node BGP daemon's log, to see why.
        node_log: String,
    },
}

/// The node's BGP daemon.
#[derive(Debug)]
pub enum NodeBgp {
    /// BIRD 2.
    Bird(BirdDaemon),
    /// FRR.
    Frr(Box<FrrInstance>),
}

/// A running lab. Dropping it tears everything down (daemons by PID, then namespaces, then the directory).
#[derive(Debug)]
pub struct Lab {
    // Field order is drop order: daemons first, then namespaces, then the directory.
    dns: LabDns,
    primary_knot: Option<LabDns>,
    node_bgp: NodeBgp,
    upstream: BirdDaemon,
    primary: Option<Netns>,
    node: Netns,
    upstream_ns: Netns,
    dir: tempfile::TempDir,
    frr_kernel_metric: bool,
    // Released last, after the whole teardown.
    _slot: LabSlot,
}

/// How many labs one test process runs at once: each lab is two BGP daemons, a DNS server and usually
/// nsbeacon; more than this on a 2-core machine makes probe timeouts, not nsbeacon, decide the results.
pub const MAX_PARALLEL_LABS: usize = 4;

/// A place among the [`MAX_PARALLEL_LABS`] labs that may run at once in this process; held by the
/// [`Lab`] and given back when it is dropped. Tests that start more labs than this simply wait.
#[derive(Debug)]
struct LabSlot;

static LABS_RUNNING: std::sync::Mutex<usize> = std::sync::Mutex::new(0);
static LAB_SLOT_FREED: std::sync::Condvar = std::sync::Condvar::new();

impl LabSlot {
    fn acquire() -> LabSlot {
        // A test that panicked while holding the lock leaves the count itself intact: keep using it.
        let mut running = LABS_RUNNING
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while *running >= MAX_PARALLEL_LABS {
            running = LAB_SLOT_FREED
                .wait(running)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        *running += 1;
        LabSlot
    }
}

impl Drop for LabSlot {
    fn drop(&mut self) {
        let mut running = LABS_RUNNING
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *running -= 1;
        LAB_SLOT_FREED.notify_one();
    }
}

impl Lab {
    /// Builds the topology, starts the upstream BIRD, the node's BGP daemon (from the shipped templates)
    /// and the DNS server, and waits until both BGP sessions (IPv4, IPv6) are established. Nothing is announced
    /// yet: the templates start with every anycast route withdrawn.
    ///
    /// Panics with the daemons' logs when anything fails: a lab that cannot be built is a failed test.
    /// Waits first while [`MAX_PARALLEL_LABS`] labs run in this process.
    pub fn start(options: LabOptions) -> Lab {
        for bin in ["ip", "bird", "kdig", options.dns.binary()] {
            require_binary(bin);
        }
        let slot = LabSlot::acquire();
        let dir = tempfile::Builder::new()
            .prefix("nsbeacon-lab-")
            .tempdir()
            .unwrap_or_else(|e| panic!("create the lab dir: {e}"));
        let upstream_ns = Netns::create("upstream").unwrap_or_else(|e| panic!("{e}"));
        let node = Netns::create("node").unwrap_or_else(|e| panic!("{e}"));
        Veth::create(&upstream_ns, "to-node", &node, "to-upstream")
            .unwrap_or_else(|e| panic!("{e}"));
        for (ns, dev, cidr) in [
            (&upstream_ns, "to-node", format!("{UPSTREAM_V4}/30")),
            (&upstream_ns, "to-node", format!("{UPSTREAM_V6}/64")),
            (&node, "to-upstream", format!("{NODE_V4}/30")),
            (&node, "to-upstream", format!("{NODE_V6}/64")),
        ] {
            ns.add_address(dev, &cidr).unwrap_or_else(|e| panic!("{e}"));
        }
        make_anycast_local(&node, options.bgp);
        assert!(
            !options.primary || options.dns == DnsServerKind::Knot,
            "a lab with a hidden primary runs Knot on the node (asked for {:?})",
            options.dns
        );
        let primary = options.primary.then(|| {
            let primary = Netns::create("primary").unwrap_or_else(|e| panic!("{e}"));
            Veth::create(&primary, "to-node", &node, "to-primary")
                .unwrap_or_else(|e| panic!("{e}"));
            primary
                .add_address("to-node", &format!("{PRIMARY_V4}/30"))
                .unwrap_or_else(|e| panic!("{e}"));
            node.add_address("to-primary", &format!("{NODE_TO_PRIMARY_V4}/30"))
                .unwrap_or_else(|e| panic!("{e}"));
            primary
        });

        let upstream_conf = upstream_bird_config();
        write_copy(dir.path(), "upstream-bird.conf", &upstream_conf);
        let upstream = BirdDaemon::start(&upstream_conf, Some(upstream_ns.name()));

        let node_bgp = match options.bgp {
            NodeBgpKind::Bird => {
                let run_root = dir.path().join("run");
                std::fs::create_dir(&run_root)
                    .unwrap_or_else(|e| panic!("create {}: {e}", run_root.display()));
                let conf = node_bird_config(&run_root);
                write_copy(dir.path(), "node-bird.conf", &conf);
                NodeBgp::Bird(BirdDaemon::start(&conf, Some(node.name())))
            }
            NodeBgpKind::Frr => {
                let conf = if options.frr_kernel_metric {
                    node_frr_kernel_metric_config()
                } else {
                    node_frr_config()
                };
                write_copy(dir.path(), "node-bgpd.conf", &conf);
                NodeBgp::Frr(Box::new(FrrInstance::start(
                    node.name(),
                    FrrConfigFiles::bgpd(&conf),
                )))
            }
        };

        let node_to_primary = SocketAddr::new(IpAddr::V4(NODE_TO_PRIMARY_V4), 53);
        let mut node_listen = vec![
            SocketAddr::new(IpAddr::V4(ANYCAST_V4_ADDR), 53),
            SocketAddr::new(IpAddr::V6(ANYCAST_V6_ADDR), 53),
            NODE_LOCAL_DNS,
        ];
        let (primary_knot, node_role) = match &primary {
            Some(primary_ns) => {
                let primary_addr = SocketAddr::new(IpAddr::V4(PRIMARY_V4), 53);
                let knot = LabDns::start(
                    DnsServerKind::Knot,
                    primary_ns.name(),
                    &dir.path().join("knot-primary"),
                    options.zone.clone(),
                    &[primary_addr],
                    KnotRole::Primary {
                        notify: vec![node_to_primary],
                    },
                );
                node_listen.push(node_to_primary);
                (
                    Some(knot),
                    KnotRole::Secondary {
                        primary: primary_addr,
                    },
                )
            }
            None => (None, KnotRole::Standalone),
        };
        let dns = LabDns::start(
            options.dns,
            node.name(),
            &dir.path().join("dns-node"),
            options.zone,
            &node_listen,
            node_role,
        );

        let lab = Lab {
            dns,
            primary_knot,
            node_bgp,
            upstream,
            primary,
            node,
            upstream_ns,
            dir,
            frr_kernel_metric: options.frr_kernel_metric && options.bgp == NodeBgpKind::Frr,
            _slot: slot,
        };
        for protocol in [UPSTREAM_PROTOCOL_V4, UPSTREAM_PROTOCOL_V6] {
            if !lab
                .upstream
                .wait_protocol_state(protocol, "up", SESSION_TIMEOUT)
            {
                panic!(
                    "BGP session {protocol} (upstream <-> node) not up within {SESSION_TIMEOUT:?}.\n\
                     upstream: {}\nupstream log:\n{}\nnode BGP log:\n{}",
                    lab.upstream.command("show protocols all"),
                    lab.upstream.log(),
                    lab.node_bgp_log()
                );
            }
        }
        lab
    }

    /// Whether the node's FRR runs the kernel-metric template (nsbeacon must use `announce_via =
    /// "kernel-metric"`).
    pub fn frr_kernel_metric(&self) -> bool {
        self.frr_kernel_metric
    }

    /// The lab directory (rendered configs as copies, the DNS servers' files). BIRD and FRR keep their own files in
    /// their own temp dirs: see [`Lab::node_bird`], [`Lab::node_frr`], [`Lab::upstream_bird`].
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The lab's stand-in for `/run`: the templates' decision-file includes point below it.
    pub fn run_root(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    /// nsbeacon's `[backend] decision_dir` for this lab: `/run/nsbeacon/bird` moved under [`Lab::run_root`],
    /// the directory the node BIRD's config includes the decision files from.
    pub fn decision_dir(&self) -> PathBuf {
        self.run_root().join("nsbeacon").join("bird")
    }

    /// The node's namespace: run nsbeacon (or anything) there with `lab.node_netns().exec("nsbeacon")`.
    pub fn node_netns(&self) -> &Netns {
        &self.node
    }

    /// The upstream's namespace.
    pub fn upstream_netns(&self) -> &Netns {
        &self.upstream_ns
    }

    /// The hidden primary's namespace, when built with [`LabOptions::with_primary`].
    pub fn primary_netns(&self) -> Option<&Netns> {
        self.primary.as_ref()
    }

    /// The upstream BIRD (its control socket: `upstream_bird().socket()`).
    pub fn upstream_bird(&self) -> &BirdDaemon {
        &self.upstream
    }

    /// The node's BGP daemon.
    pub fn node_bgp(&mut self) -> &mut NodeBgp {
        &mut self.node_bgp
    }

    /// The node's BGP daemon, read-only.
    pub fn node_bgp_ref(&self) -> &NodeBgp {
        &self.node_bgp
    }

    /// The node's BIRD, when the lab runs BIRD (else `None`).
    pub fn node_bird(&mut self) -> Option<&mut BirdDaemon> {
        match &mut self.node_bgp {
            NodeBgp::Bird(b) => Some(b),
            NodeBgp::Frr(_) => None,
        }
    }

    /// The node's BIRD control socket (nsbeacon's `[backend] socket`), when the lab runs BIRD.
    pub fn node_bird_socket(&self) -> Option<PathBuf> {
        match &self.node_bgp {
            NodeBgp::Bird(b) => Some(b.socket()),
            NodeBgp::Frr(_) => None,
        }
    }

    /// The node's FRR, when the lab runs FRR (else `None`).
    pub fn node_frr(&mut self) -> Option<&mut FrrInstance> {
        match &mut self.node_bgp {
            NodeBgp::Frr(f) => Some(f),
            NodeBgp::Bird(_) => None,
        }
    }

    /// The FRR vty socket dir (nsbeacon's vtysh args: `--vty_socket DIR`), when the lab runs FRR.
    pub fn node_frr_vty_dir(&self) -> Option<PathBuf> {
        match &self.node_bgp {
            NodeBgp::Frr(f) => Some(f.state_dir().to_path_buf()),
            NodeBgp::Bird(_) => None,
        }
    }

    /// Sends one command to the node's BIRD control socket and returns the raw reply (codes included).
    /// Panics when the lab runs FRR or BIRD cannot be reached.
    pub fn node_birdc(&self, command: &str) -> String {
        match &self.node_bgp {
            NodeBgp::Bird(b) => b.command(command),
            NodeBgp::Frr(_) => panic!("node_birdc({command:?}): this lab runs FRR on the node"),
        }
    }

    /// Runs vtysh against the node's FRR (`-c` per command). Panics when the lab runs BIRD.
    pub fn node_vtysh(&self, commands: &[&str]) -> VtyshOutput {
        match &self.node_bgp {
            NodeBgp::Frr(f) => f.vtysh(commands),
            NodeBgp::Bird(_) => panic!("node_vtysh({commands:?}): this lab runs BIRD on the node"),
        }
    }

    /// Adds (`present`) or removes the FRR `network PREFIX [route-map MAP]` statement under `router bgp`,
    /// in the address family of `prefix`, and for the anycast prefixes also the kernel route that opens
    /// the template's import-check gate ([`Lab::frr_gate`]): what nsbeacon's FRR backend does with
    /// `announce_via = "kernel-route"`. Returns vtysh's output.
    pub fn frr_network(&self, prefix: &str, route_map: Option<&str>, present: bool) -> VtyshOutput {
        if prefix == ANYCAST_V4 || prefix == ANYCAST_V6 {
            self.frr_gate(prefix, present);
        }
        let family = if prefix.contains(':') {
            "address-family ipv6 unicast"
        } else {
            "address-family ipv4 unicast"
        };
        let router = format!("router bgp {NODE_AS}");
        let network = match (present, route_map) {
            (true, Some(map)) => format!("network {prefix} route-map {map}"),
            (true, None) => format!("network {prefix}"),
            (false, _) => format!("no network {prefix}"),
        };
        self.node_vtysh(&["configure terminal", &router, family, &network])
    }

    /// Adds (`open`) or removes nsbeacon's kernel route for `prefix` in the node (`P dev lo proto 53`, the
    /// route nsbeacon's FRR backend manages over netlink): the template's `network P` passes bgpd's import
    /// check only while it exists. Idempotent.
    pub fn frr_gate(&self, prefix: &str, open: bool) {
        let family = if prefix.contains(':') { "-6" } else { "-4" };
        let present = |lab: &Lab| {
            lab.node
                .ip(&[family, "route", "show", prefix, "proto", FRR_GATE_PROTOCOL])
                .map(|out| !out.stdout.is_empty())
                .unwrap_or_else(|e| panic!("{e}"))
        };
        if present(self) == open {
            return;
        }
        let verb = if open { "add" } else { "del" };
        self.node
            .ip(&[
                family,
                "route",
                verb,
                prefix,
                "dev",
                "lo",
                "proto",
                FRR_GATE_PROTOCOL,
            ])
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Whether nsbeacon's kernel route for `prefix` is in the node's main table.
    pub fn frr_gate_open(&self, prefix: &str) -> bool {
        let family = if prefix.contains(':') { "-6" } else { "-4" };
        self.node
            .ip(&[family, "route", "show", prefix, "proto", FRR_GATE_PROTOCOL])
            .map(|out| !out.stdout.is_empty())
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The node's BGP daemon log(s), for assertion messages.
    pub fn node_bgp_log(&self) -> String {
        match &self.node_bgp {
            NodeBgp::Bird(b) => b.log(),
            NodeBgp::Frr(f) => {
                use nsbeacon_testkit::frr::FrrDaemon;
                FrrDaemon::ALL
                    .iter()
                    .map(|d| format!("--- {}:\n{}", d.name(), f.log(*d)))
                    .collect::<Vec<_>>()
                    .join("\n")
            }
        }
    }

    /// The node's DNS server (kill, pause/resume, restart, set_serial, pid, log).
    pub fn dns(&mut self) -> &mut LabDns {
        &mut self.dns
    }

    /// Starts `program args...` in the foreground inside the node's namespace (e.g. nsbeacon itself), with
    /// stdout/stderr appended to `<lab dir>/<name>.log`. The guard kills it by PID on drop; drop it before
    /// the lab (the lab's teardown also kills anything left in its namespaces).
    pub fn spawn_in_node(&self, name: &str, program: &Path, args: &[&str]) -> DaemonGuard {
        let mut cmd = self.node.exec(program);
        cmd.args(args);
        DaemonGuard::spawn(
            name,
            cmd,
            Some(&self.dir.path().join(format!("{name}.log"))),
        )
    }

    /// `GET path` over HTTP/1.0 to `addr` from inside the node's namespace (where nsbeacon's HTTP
    /// listener on 127.0.0.1 is; the test's own namespace cannot reach it), through `socat`. Returns the
    /// status code and the body, or `None` when nothing answered within `timeout`.
    pub fn node_http_get(
        &self,
        addr: SocketAddr,
        path: &str,
        timeout: Duration,
    ) -> Option<(u16, String)> {
        use std::io::Write;
        use std::process::Stdio;
        let secs = timeout.as_secs().max(1).to_string();
        let mut child = self
            .node
            .exec(require_binary("socat"))
            .args(["-T", &secs, "-t", "0.2", "-"])
            .arg(format!("TCP:{addr},connect-timeout={secs}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        // Keep our side open until the answer is in: a half-closed request makes some servers (hyper by
        // default) drop the connection before a slow handler has answered. socat exits when the server
        // closes (HTTP/1.0) or after `-T` seconds of silence.
        let mut stdin = child.stdin.take()?;
        stdin.write_all(request.as_bytes()).ok()?;
        stdin.flush().ok()?;
        let mut stdout = child.stdout.take()?;
        let mut raw = Vec::new();
        let read = std::io::Read::read_to_end(&mut stdout, &mut raw);
        drop(stdin);
        let _ = child.wait();
        read.ok()?;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n")?;
        let status = head.split_whitespace().nth(1)?.parse().ok()?;
        Some((status, body.to_owned()))
    }

    /// The hidden primary's Knot, when built with [`LabOptions::with_primary`]: change the zone there
    /// ([`LabDns::set_serial`]) and the node transfers it on NOTIFY.
    pub fn primary_knot(&mut self) -> Option<&mut LabDns> {
        self.primary_knot.as_mut()
    }

    /// Takes the node's link to the hidden primary down (`false`) or up again (`true`): the primary becomes
    /// unreachable from the node (transfers and SOA checks against it time out) without touching its Knot.
    /// Panics when the lab has no primary.
    pub fn set_primary_link(&self, up: bool) {
        assert!(
            self.primary.is_some(),
            "set_primary_link: this lab has no primary"
        );
        self.node
            .ip(&["link", "set", "to-primary", if up { "up" } else { "down" }])
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// The upstream's best route for `prefix` (exactly that prefix, e.g. [`ANYCAST_V4`]), read through the
    /// upstream BIRD's control socket; `None` when it has none. Panics if the upstream BIRD is unreachable.
    pub fn upstream_has_route(&self, prefix: &str) -> Option<RouteInfo> {
        let reply = bird_command(&self.upstream.socket(), &format!("show route {prefix} all"))
            .unwrap_or_else(|e| {
                panic!(
                    "upstream BIRD socket {}: {e}; log:\n{}",
                    self.upstream.socket().display(),
                    self.upstream.log()
                )
            });
        parse_show_route_all(&reply)
    }

    /// Waits until the upstream has a route for `prefix` (`present`) or has none (`!present`); returns the
    /// route seen at that moment. Polls every 10 ms.
    pub fn wait_for_route(
        &self,
        prefix: &str,
        present: bool,
        timeout: Duration,
    ) -> Result<Option<RouteInfo>, LabError> {
        let wanted = if present { "a route" } else { "no route" };
        self.wait_for_route_where(prefix, wanted, timeout, |r| r.is_some() == present)
    }

    /// Waits until `accept` holds for the upstream's route for `prefix` (`None` = no route); returns it.
    /// `wanted` describes the condition for the error message (e.g. "an AS path prepended 3 times").
    pub fn wait_for_route_where(
        &self,
        prefix: &str,
        wanted: &str,
        timeout: Duration,
        mut accept: impl FnMut(Option<&RouteInfo>) -> bool,
    ) -> Result<Option<RouteInfo>, LabError> {
        let deadline = Instant::now() + timeout;
        loop {
            let route = self.upstream_has_route(prefix);
            if accept(route.as_ref()) {
                return Ok(route);
            }
            if Instant::now() >= deadline {
                return Err(LabError::RouteTimeout {
                    prefix: prefix.to_owned(),
                    wanted: wanted.to_owned(),
                    timeout,
                    last: route.map_or_else(|| "no route".to_owned(), |r| r.raw),
                    node_log: self.node_bgp_log(),
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Queries the lab zone's SOA at the anycast address from the upstream's namespace, i.e. the way a
    /// client behind the upstream would: it only works while the route is announced. Returns the serial.
    pub fn query_from_upstream(&self, anycast: IpAddr, timeout: Duration) -> Option<u32> {
        kdig_soa_serial(
            self.upstream_ns.name(),
            SocketAddr::new(anycast, 53),
            &self.dns.zone().name,
            timeout,
        )
    }
}

/// The protocol number of nsbeacon's kernel routes (its default `[backend] kernel_protocol`).
pub const FRR_GATE_PROTOCOL: &str = "53";

/// Makes the anycast addresses local in the node, so the DNS server can listen on them.
///
/// BIRD: as addresses on `lo`. FRR: as "AnyIP" routes in the local table (`ip route add local P dev lo
/// table local`), which zebra ignores, plus `net.ipv6.ip_nonlocal_bind` for binding the IPv6 one: an
/// address on `lo` would be a connected route in zebra, which satisfies the template's import check by
/// itself, so bgpd would announce the prefix without nsbeacon (frr-templates/README.md).
fn make_anycast_local(node: &Netns, bgp: NodeBgpKind) {
    match bgp {
        NodeBgpKind::Bird => {
            node.add_address("lo", &format!("{ANYCAST_V4_ADDR}/32"))
                .unwrap_or_else(|e| panic!("{e}"));
            node.add_address("lo", &format!("{ANYCAST_V6_ADDR}/128"))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        NodeBgpKind::Frr => {
            for (family, prefix) in [("-4", ANYCAST_V4), ("-6", ANYCAST_V6)] {
                node.ip(&[
                    family, "route", "add", "local", prefix, "dev", "lo", "table", "local",
                ])
                .unwrap_or_else(|e| panic!("{e}"));
            }
            node.run(
                require_binary("sysctl").to_str().unwrap_or("sysctl"),
                &["-q", "-w", "net.ipv6.ip_nonlocal_bind=1"],
            )
            .unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

/// Keeps a copy of a rendered config in the lab dir, for whoever debugs a failing lab test.
fn write_copy(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// The upstream router: a lab fixture, not a template. Imports everything from the node, exports nothing
/// to it, and installs what it learns into its namespace's kernel table so queries from the upstream
/// follow the announced route. Short connect timers make sessions come up in about a second.
pub fn upstream_bird_config() -> String {
    format!(
        "router id {UPSTREAM_V4};\n\
         log stderr all;\n\
         protocol device {{}}\n\
         protocol kernel {{ ipv4 {{ import none; export all; }}; }}\n\
         protocol kernel {{ ipv6 {{ import none; export all; }}; }}\n\
         template bgp lab_node {{\n  local as {UPSTREAM_AS};\n  connect delay time 1;\n  connect retry time 2;\n  error wait time 1, 5;\n}}\n\
         protocol bgp {UPSTREAM_PROTOCOL_V4} from lab_node {{\n  neighbor {NODE_V4} as {NODE_AS};\n  ipv4 {{ import all; export none; }};\n}}\n\
         protocol bgp {UPSTREAM_PROTOCOL_V6} from lab_node {{\n  neighbor {NODE_V6} as {NODE_AS};\n  ipv6 {{ import all; export none; }};\n}}\n"
    )
}

/// `bird-templates/bird.conf` rendered for the lab: only the defines operators edit are substituted, and
/// the decision-file includes move from `/run` to `run_root` ([`Lab::run_root`]).
pub fn node_bird_config(run_root: &Path) -> String {
    let node_as = NODE_AS.to_string();
    let upstream_as = UPSTREAM_AS.to_string();
    let router_id = NODE_V4.to_string();
    let upstream_v4 = UPSTREAM_V4.to_string();
    let upstream_v6 = UPSTREAM_V6.to_string();
    let anycast_v4 = format!("[ {ANYCAST_V4} ]");
    let anycast_v6 = format!("[ {ANYCAST_V6} ]");
    render_bird(
        &bird_templates_dir().join("bird.conf"),
        &[
            ("NODE_AS", &node_as),
            ("NODE_ROUTER_ID", &router_id),
            ("UPSTREAM1_AS", &upstream_as),
            ("UPSTREAM1_V4", &upstream_v4),
            ("UPSTREAM1_V6", &upstream_v6),
            ("UPSTREAM1_BFD", "0"),
            ("NSBEACON_ANYCAST_V4", &anycast_v4),
            ("NSBEACON_ANYCAST_V6", &anycast_v6),
        ],
        run_root,
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// `frr-templates/nsbeacon-bgpd.conf` rendered for the lab: the example ASNs and addresses replaced by the
/// lab's (which are the same documentation values, so the file runs as shipped).
pub fn node_frr_config() -> String {
    render_frr_template("nsbeacon-bgpd.conf")
}

/// `frr-templates/nsbeacon-bgpd-kernel-metric.conf` rendered for the lab, like [`node_frr_config`].
pub fn node_frr_kernel_metric_config() -> String {
    render_frr_template("nsbeacon-bgpd-kernel-metric.conf")
}

fn render_frr_template(name: &str) -> String {
    let router = format!("router bgp {NODE_AS}");
    let prepend = format!("set as-path prepend {NODE_AS} {NODE_AS} {NODE_AS}");
    let remote_v4 = format!("neighbor {UPSTREAM_V4} remote-as {UPSTREAM_AS}");
    let remote_v6 = format!("neighbor {UPSTREAM_V6} remote-as {UPSTREAM_AS}");
    let router_id = format!("bgp router-id {NODE_V4}");
    render_frr(
        &frr_templates_dir().join(name),
        &[
            ("router bgp 65001", &router),
            ("set as-path prepend 65001 65001 65001", &prepend),
            ("neighbor 192.0.2.1 remote-as 64496", &remote_v4),
            ("neighbor 2001:db8:0:1::1 remote-as 64496", &remote_v6),
            ("bgp router-id 192.0.2.2", &router_id),
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"))
}
