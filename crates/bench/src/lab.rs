//! The lab of the end-to-end tests, rebuilt for benchmarking: an `upstream` namespace running BIRD 2
//! (AS64496, imports everything from the node) and a `node` namespace running BIRD 2 or FRR 8.4 (AS65001)
//! that announces 203.0.113.53/32, joined by a veth pair 192.0.2.1/30 -- 192.0.2.2/30. A [`RibWatcher`]
//! polls the upstream's RIB for the prefix every millisecond.
//!
//! The DNS server nsbeacon probes runs on 127.0.0.1 in the root namespace (probe latency over loopback is
//! the same as inside the node namespace), so nsbeacon itself runs in the root namespace and reaches BIRD's
//! control socket / FRR's vty sockets as files.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use nsbeacon_testkit::bird::BirdDaemon;
use nsbeacon_testkit::frr::{FrrConfigFiles, FrrInstance};
use nsbeacon_testkit::netns::{Netns, Veth};

use crate::BenchError;
use crate::rib::RibWatcher;

/// The anycast prefix the node announces.
pub const ANYCAST_PREFIX: &str = "203.0.113.53/32";
/// The BIRD static protocol holding the anycast route on a BIRD node.
pub const BIRD_PROTOCOL: &str = "anycast_dns";
/// How often the upstream's RIB is polled.
pub const POLL_EVERY: Duration = Duration::from_millis(1);

/// Which BGP daemon runs on the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// BIRD 2, driven over its control socket.
    Bird,
    /// FRR 8.4, driven through vtysh.
    Frr,
}

impl NodeKind {
    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            NodeKind::Bird => "BIRD",
            NodeKind::Frr => "FRR",
        }
    }
}

/// The node's BGP daemon.
#[derive(Debug)]
pub enum NodeRouter {
    /// BIRD 2 with static protocol [`BIRD_PROTOCOL`].
    Bird(BirdDaemon),
    /// FRR with `network 203.0.113.53/32` under `router bgp 65001`.
    Frr(Box<FrrInstance>),
}

/// Where the anycast route comes from on a BIRD node.
#[derive(Debug, Clone, Default)]
pub struct BirdNodeOptions {
    /// When set, the static protocol's routes are read from this include file (rewritten by the
    /// `birdc configure` benchmark), and a second static protocol holds this many extra IPv6 routes so
    /// that every `configure` parses and compares a config of that size.
    pub configure_variant: Option<(PathBuf, usize)>,
    /// When set, the static protocol is `disabled` and includes nsbeacon's decision file through the
    /// templates' glob, moved under this directory (`DIR/nsbeaco[n]/bird/anycast_dns.conf`), as
    /// bird-templates/ do under /run. The lab then starts with nothing announced.
    pub decision_root: Option<PathBuf>,
    /// How often the upstream's RIB is polled; default [`POLL_EVERY`]. Long runs that only count
    /// changes poll less often (a change lasts at least `rise` probe intervals).
    pub poll_every: Option<Duration>,
}

/// One running lab. Dropping it stops the daemons, then deletes the namespaces.
#[derive(Debug)]
pub struct Lab {
    /// Polls the upstream's RIB (dropped first).
    pub rib: RibWatcher,
    /// The node's BGP daemon.
    pub node: NodeRouter,
    /// The upstream's BIRD.
    pub upstream: BirdDaemon,
    _veth: Veth,
    // Kept for their Drop (the namespaces are deleted after the daemons have been stopped).
    _node_ns: Netns,
    _upstream_ns: Netns,
}

const UPSTREAM_CONF: &str = "\
router id 192.0.2.1;
protocol device { scan time 10; }
protocol bgp node {
  local 192.0.2.1 as 64496;
  neighbor 192.0.2.2 as 65001;
  connect delay time 1;
  connect retry time 1;
  ipv4 { import all; export none; };
}
";

fn bird_node_conf(options: &BirdNodeOptions) -> String {
    let anycast = match (&options.configure_variant, &options.decision_root) {
        (_, Some(root)) => format!(
            "protocol static {BIRD_PROTOCOL} {{\ndisabled;\ninclude \"{}/nsbeaco[n]/bird/{BIRD_PROTOCOL}.conf\";\n\
             ipv4; route {ANYCAST_PREFIX} blackhole;\n}}\n",
            root.display()
        ),
        (Some((include, _)), None) => format!(
            // BIRD only recognises `include` at the start of a line.
            "protocol static {BIRD_PROTOCOL} {{ ipv4;\ninclude \"{}\";\n}}\n",
            include.display()
        ),
        (None, None) => format!(
            "protocol static {BIRD_PROTOCOL} {{ ipv4; route {ANYCAST_PREFIX} blackhole; }}\n"
        ),
    };
    let bulk = match &options.configure_variant {
        Some((_, routes)) if *routes > 0 => {
            let mut text = String::from("protocol static bulk6 { ipv6;\n");
            for i in 0..*routes {
                text.push_str(&format!("  route 2001:db8:{:x}::/48 blackhole;\n", i + 1));
            }
            text.push_str("}\n");
            text
        }
        _ => String::new(),
    };
    format!(
        "router id 192.0.2.2;\nprotocol device {{ scan time 10; }}\n{anycast}{bulk}\
         protocol bgp upstream {{\n  local 192.0.2.2 as 65001;\n  neighbor 192.0.2.1 as 64496;\n  \
         connect delay time 1;\n  connect retry time 1;\n  \
         ipv4 {{ import none; export where proto = \"{BIRD_PROTOCOL}\"; }};\n}}\n"
    )
}

const FRR_BGPD_CONF: &str = "\
router bgp 65001
 bgp router-id 192.0.2.2
 no bgp ebgp-requires-policy
 neighbor 192.0.2.1 remote-as 64496
 neighbor 192.0.2.1 timers connect 1
 address-family ipv4 unicast
  network 203.0.113.53/32
 exit-address-family
exit
";

impl Lab {
    /// Builds the namespaces and veth, starts the upstream BIRD and the node's daemon, and waits until the
    /// upstream has learned the anycast prefix (not with [`BirdNodeOptions::decision_root`]: nothing is
    /// announced until nsbeacon decides).
    pub fn start(kind: NodeKind, options: &BirdNodeOptions) -> Result<Lab, BenchError> {
        let upstream_ns = Netns::create("bupstream")?;
        let node_ns = Netns::create("bnode")?;
        let veth = Veth::create(&upstream_ns, "veth-up", &node_ns, "veth-node")?;
        upstream_ns.add_address("veth-up", "192.0.2.1/30")?;
        node_ns.add_address("veth-node", "192.0.2.2/30")?;
        node_ns.add_address("lo", "203.0.113.53/32")?;
        let upstream = BirdDaemon::start(UPSTREAM_CONF, Some(upstream_ns.name()));
        let node = match kind {
            NodeKind::Bird => NodeRouter::Bird(BirdDaemon::start(
                &bird_node_conf(options),
                Some(node_ns.name()),
            )),
            NodeKind::Frr => NodeRouter::Frr(Box::new(FrrInstance::start(
                node_ns.name(),
                FrrConfigFiles::bgpd(FRR_BGPD_CONF),
            ))),
        };
        let rib = RibWatcher::start(
            &upstream.socket(),
            ANYCAST_PREFIX,
            options.poll_every.unwrap_or(POLL_EVERY),
        );
        let lab = Lab {
            rib,
            node,
            upstream,
            _veth: veth,
            _node_ns: node_ns,
            _upstream_ns: upstream_ns,
        };
        if options.decision_root.is_none()
            && lab
                .rib
                .wait_for(true, Instant::now(), Duration::from_secs(60))
                .is_none()
        {
            return Err(BenchError::new(format!(
                "the upstream did not learn {ANYCAST_PREFIX} from the {} node within 60 s; upstream log:\n{}",
                kind.name(),
                lab.upstream.log()
            )));
        }
        Ok(lab)
    }

    /// The node BIRD's control socket (BIRD nodes only).
    pub fn bird_socket(&self) -> Option<PathBuf> {
        match &self.node {
            NodeRouter::Bird(bird) => Some(bird.socket()),
            NodeRouter::Frr(_) => None,
        }
    }

    /// bgpd's vty socket on the node (FRR nodes only): nsbeacon's default FRR transport.
    pub fn frr_vty_socket(&self) -> Option<PathBuf> {
        match &self.node {
            NodeRouter::Bird(_) => None,
            NodeRouter::Frr(frr) => Some(frr.bgpd_vty_socket()),
        }
    }

    /// vtysh arguments reaching the node's FRR (FRR nodes only).
    pub fn frr_vtysh_args(&self) -> Option<Vec<String>> {
        match &self.node {
            NodeRouter::Bird(_) => None,
            NodeRouter::Frr(frr) => Some(frr.vtysh_args()),
        }
    }
}
