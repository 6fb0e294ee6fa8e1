//! Benchmark (not a test): how long one FRR backend operation takes against a real FRR 8.4, over each
//! transport (bgpd's vty socket, the default, and one vtysh process per call).
//!
//! Starts zebra + staticd + bgpd in a fresh network namespace (root needed), then times, over N rounds:
//! a bare `vtysh -c 'show version'` spawn, and per transport: `set` network withdrawn (read, then
//! `no network`) and announced (read, then `network`), a no-op announce (one read), a read (running config
//! and BGP JSON), and neighbor shutdown / no shutdown. Prints min / median / p90 / max per operation.
//!
//! Run: `cargo run -p nsbeacon-routing --example frr_latency --release -- [ROUNDS]`

use std::process::Command;
use std::time::{Duration, Instant};

use nsbeacon_routing::frr::{FrrBackend, FrrConfig, FrrTransport};
use nsbeacon_routing::{RouteState, RouteTarget, RoutingBackend};
use nsbeacon_testkit::frr::{FrrConfigFiles, FrrInstance};
use nsbeacon_testkit::require_binary;

const BGPD_CONF: &str = "\
router bgp 65001
 bgp router-id 192.0.2.2
 no bgp ebgp-requires-policy
 neighbor 192.0.2.1 remote-as 64496
exit
";

/// The benchmark's own namespace, deleted on drop (also on panic).
struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn stats(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let pick = |q: f64| {
        let i = ((samples.len() - 1) as f64 * q).round() as usize;
        samples[i].as_secs_f64() * 1000.0
    };
    println!(
        "| {name:<56} | {:>7.1} | {:>7.1} | {:>7.1} | {:>7.1} |",
        pick(0.0),
        pick(0.5),
        pick(0.9),
        pick(1.0)
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rounds: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(20)
        .max(1);
    let ns = Netns(format!("nsbfrr-bench-{}", std::process::id()));
    ip(&["netns", "add", &ns.0])?;
    ip(&["-n", &ns.0, "link", "set", "lo", "up"])?;
    ip(&["-n", &ns.0, "addr", "add", "203.0.113.53/32", "dev", "lo"])?;
    let frr = FrrInstance::start(&ns.0, FrrConfigFiles::bgpd(BGPD_CONF));
    let network = RouteTarget::FrrNetwork("203.0.113.53/32".parse()?);
    let neighbor = RouteTarget::FrrNeighbor("192.0.2.1".parse()?);

    let mut spawn = Vec::new();
    for _ in 0..rounds {
        let started = Instant::now();
        let ok = Command::new("vtysh")
            .args(frr.vtysh_args())
            .args(["-c", "show version"])
            .output()?
            .status
            .success();
        spawn.push(started.elapsed());
        if !ok {
            return Err("vtysh show version failed".into());
        }
    }
    let transports = [
        (
            "vty socket",
            FrrTransport::VtySocket {
                socket: frr.bgpd_vty_socket(),
            },
        ),
        (
            "vtysh",
            FrrTransport::Vtysh {
                vtysh: require_binary("vtysh"),
                extra_args: frr.vtysh_args(),
            },
        ),
    ];
    let mut version = None;
    let mut tables = Vec::new();
    for (name, transport) in transports {
        let backend = FrrBackend::new(FrrConfig {
            transport,
            ..FrrConfig::default()
        })?;
        backend.asn().await?;
        version = backend.health().await.daemon_version.or(version);
        let samples = measure(&backend, &network, &neighbor, rounds).await?;
        tables.push((name, samples));
    }
    println!(
        "{} in netns {}, {rounds} rounds (milliseconds)\n",
        version.as_deref().unwrap_or("FRR"),
        ns.0
    );
    println!(
        "| {:<56} | {:>7} | {:>7} | {:>7} | {:>7} |",
        "operation", "min", "median", "p90", "max"
    );
    println!("|{:-<58}|{:->9}|{:->9}|{:->9}|{:->9}|", "", "", "", "", "");
    stats("bare vtysh spawn (`show version`)", spawn);
    for (name, samples) in tables {
        for (operation, samples) in samples {
            stats(&format!("{name}: {operation}"), samples);
        }
    }
    drop(frr);
    Ok(())
}

/// Times each backend operation `rounds` times; returns (operation, samples) in print order.
async fn measure(
    backend: &FrrBackend,
    network: &RouteTarget,
    neighbor: &RouteTarget,
    rounds: usize,
) -> Result<Vec<(&'static str, Vec<Duration>)>, Box<dyn std::error::Error>> {
    let mut withdraw = Vec::new();
    let mut announce = Vec::new();
    let mut announce_noop = Vec::new();
    let mut read = Vec::new();
    let mut shutdown = Vec::new();
    let mut no_shutdown = Vec::new();
    for _ in 0..rounds {
        withdraw.push(backend.set(network, RouteState::Withdrawn).await?.elapsed);
        announce.push(backend.set(network, RouteState::Announced).await?.elapsed);
        announce_noop.push(backend.set(network, RouteState::Announced).await?.elapsed);
        // bgpd validates the path after its 50 ms hold; over the socket a read can come first.
        let deadline = Instant::now() + Duration::from_secs(2);
        let status = loop {
            let status = backend.read(network).await?;
            if status.value.state == RouteState::Announced || Instant::now() >= deadline {
                break status;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        if status.value.state != RouteState::Announced {
            return Err(format!("read-back after announce: {:?}", status.value).into());
        }
        read.push(status.elapsed);
        shutdown.push(backend.set(neighbor, RouteState::Withdrawn).await?.elapsed);
        no_shutdown.push(backend.set(neighbor, RouteState::Announced).await?.elapsed);
    }
    Ok(vec![
        ("set network withdrawn (read + `no network`)", withdraw),
        ("set network announced (read + `network`)", announce),
        ("set network announced, already (1 read)", announce_noop),
        ("read network (config + JSON)", read),
        ("set neighbor withdrawn (`shutdown`)", shutdown),
        ("set neighbor announced (`no shutdown`)", no_shutdown),
    ])
}
