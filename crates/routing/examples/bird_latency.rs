//! Benchmark: one `disable`/`enable` of a static protocol over nsbeacon's persistent control-socket
//! connection vs spawning `birdc -s SOCKET` per command (what scripts usually do).
//!
//! Starts its own BIRD 2 in a temp dir (root needed, `bird2` installed), then prints a table.
//!
//! ```text
//! cargo run --release -p nsbeacon-routing --example bird_latency [-- ITERATIONS]
//! ```

use std::process::Command;
use std::time::{Duration, Instant};

use nsbeacon_routing::bird::{BirdBackend, BirdConfig, ToggleOutcome};
use nsbeacon_routing::{BirdProtocolName, RouteState, RouteTarget, RoutingBackend};
use nsbeacon_testkit::bird::BirdDaemon;
use nsbeacon_testkit::require_binary;

const CONFIG: &str = "router id 192.0.2.2;\nprotocol device {}\n\
    protocol static anycast_dns { ipv4; route 203.0.113.53/32 blackhole; }\n";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let iterations: usize = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 200,
    };
    let birdc = require_binary("birdc");
    let bird = BirdDaemon::start(CONFIG, None);
    let socket = bird.socket();
    let version = bird.command("show status");
    let name: BirdProtocolName = "anycast_dns".parse()?;
    let target = RouteTarget::BirdProtocol(name.clone());
    let backend = BirdBackend::new(BirdConfig {
        socket: socket.clone(),
        timeout: Duration::from_secs(2),
        decision_dir: None,
    })?;

    // Warm up: connect once, and let the page cache hold birdc.
    backend.set(&target, RouteState::Announced).await?;
    run_birdc(&birdc, &socket, "enable anycast_dns")?;

    let mut socket_disable = Vec::with_capacity(iterations);
    let mut socket_enable = Vec::with_capacity(iterations);
    let mut socket_read = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let off = backend.disable(&name).await?;
        assert_eq!(off.value, ToggleOutcome::Changed);
        socket_disable.push(off.elapsed);
        let on = backend.enable(&name).await?;
        assert_eq!(on.value, ToggleOutcome::Changed);
        socket_enable.push(on.elapsed);
        socket_read.push(backend.read(&target).await?.elapsed);
    }

    let mut birdc_disable = Vec::with_capacity(iterations);
    let mut birdc_enable = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        birdc_disable.push(run_birdc(&birdc, &socket, "disable anycast_dns")?);
        birdc_enable.push(run_birdc(&birdc, &socket, "enable anycast_dns")?);
    }

    println!(
        "{} ({}), {iterations} iterations each",
        version
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("1000-"))
            .unwrap_or("?"),
        socket.display()
    );
    println!(
        "{:<44} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "operation", "min", "median", "p90", "p99", "max"
    );
    for (label, samples) in [
        (
            "disable, persistent socket (BirdBackend)",
            &mut socket_disable,
        ),
        (
            "enable, persistent socket (BirdBackend)",
            &mut socket_enable,
        ),
        ("show protocols read-back (BirdBackend)", &mut socket_read),
        ("disable, spawn `birdc -s SOCK`", &mut birdc_disable),
        ("enable, spawn `birdc -s SOCK`", &mut birdc_enable),
    ] {
        samples.sort();
        let pick = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
        println!(
            "{label:<44} {:>9} {:>9} {:>9} {:>9} {:>9}",
            ms(pick(0.0)),
            ms(pick(0.5)),
            ms(pick(0.9)),
            ms(pick(0.99)),
            ms(pick(1.0))
        );
    }
    Ok(())
}

fn run_birdc(
    birdc: &std::path::Path,
    socket: &std::path::Path,
    command: &str,
) -> Result<Duration, Box<dyn std::error::Error>> {
    let start = Instant::now();
    let output = Command::new(birdc)
        .arg("-s")
        .arg(socket)
        .args(command.split(' '))
        .output()?;
    let elapsed = start.elapsed();
    if !output.status.success() {
        return Err(format!(
            "birdc {command} failed: {}",
            String::from_utf8_lossy(&output.stdout)
        )
        .into());
    }
    Ok(elapsed)
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}
