//! Part 2: how long one backend operation takes, and when the upstream sees its effect.
//!
//! BIRD: `disable`/`enable` of the static protocol over the control socket (nsbeacon's `BirdBackend`),
//! the same through a `birdc` process, and rewriting an include file + `birdc configure` with 5,000 extra
//! static routes in the config. FRR: `network`/`no network` through nsbeacon's `FrrBackend`, over bgpd's vty socket and through vtysh.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use nsbeacon_routing::bird::{BirdBackend, BirdConfig};
use nsbeacon_routing::frr::{FrrBackend, FrrConfig, FrrTransport};
use nsbeacon_routing::{BirdProtocolName, RouteState, RouteTarget, RoutingBackend};
use nsbeacon_testkit::require_binary;

use crate::BenchError;
use crate::lab::{ANYCAST_PREFIX, BIRD_PROTOCOL, BirdNodeOptions, Lab, NodeKind};
use crate::stats::{Summary, Table, cells};

/// How long to wait for the upstream to see one change before calling the round failed.
const SEEN_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between operations so BGP has settled (UPDATE sent, RIB quiet) before the next one.
const SETTLE: Duration = Duration::from_millis(50);

/// The samples of one operation kind.
#[derive(Debug, Default)]
struct OpSamples {
    withdraw_op: Vec<Duration>,
    withdraw_seen: Vec<Duration>,
    announce_op: Vec<Duration>,
    announce_seen: Vec<Duration>,
}

fn push_row(table: &mut Table, name: &str, s: &OpSamples) {
    for (what, op, seen) in [
        ("withdraw", &s.withdraw_op, &s.withdraw_seen),
        ("announce", &s.announce_op, &s.announce_seen),
    ] {
        let [op50, op95, opmax, n] = cells(Summary::of_ms(op));
        let [s50, s95, smax, _] = cells(Summary::of_ms(seen));
        table.row(vec![
            name.to_owned(),
            what.to_owned(),
            n,
            op50,
            op95,
            opmax,
            s50,
            s95,
            smax,
        ]);
    }
}

/// Runs `rounds` withdraw/announce pairs through `op`, timing the operation and the upstream's view.
fn measure(
    lab: &Lab,
    rounds: usize,
    mut op: impl FnMut(RouteState) -> Result<(), BenchError>,
) -> Result<OpSamples, BenchError> {
    let mut samples = OpSamples::default();
    for _ in 0..rounds {
        crate::check_interrupted()?;
        for state in [RouteState::Withdrawn, RouteState::Announced] {
            let present = state == RouteState::Announced;
            if lab.rib.present() == Some(present) {
                return Err(BenchError::new(format!(
                    "the upstream already shows the prefix {} before the operation",
                    if present { "announced" } else { "withdrawn" }
                )));
            }
            let started = Instant::now();
            op(state)?;
            let op_done = started.elapsed();
            let seen = lab
                .rib
                .wait_for(present, started, SEEN_TIMEOUT)
                .ok_or_else(|| {
                    BenchError::new(format!(
                        "the upstream did not see {state:?} within {SEEN_TIMEOUT:?}"
                    ))
                })?;
            let (op_list, seen_list) = if present {
                (&mut samples.announce_op, &mut samples.announce_seen)
            } else {
                (&mut samples.withdraw_op, &mut samples.withdraw_seen)
            };
            op_list.push(op_done);
            seen_list.push(seen.at.saturating_duration_since(started));
            std::thread::sleep(SETTLE);
        }
    }
    Ok(samples)
}

fn run_ok(mut cmd: Command) -> Result<(), BenchError> {
    let out = cmd
        .output()
        .map_err(|e| BenchError::new(format!("run {cmd:?}: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(BenchError::new(format!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )))
    }
}

fn birdc(socket: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(require_binary("birdc"));
    cmd.arg("-s").arg(socket).args(args);
    cmd
}

/// Runs part 2 and returns its markdown section.
pub fn run(rounds: usize, configure_routes: usize) -> Result<String, BenchError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| BenchError::new(format!("tokio runtime: {e}")))?;
    let mut table = Table::new(&[
        "operation",
        "direction",
        "n",
        "op p50",
        "op p95",
        "op max",
        "seen p50",
        "seen p95",
        "seen max",
    ]);

    // BIRD: socket and birdc on a plain node.
    {
        let lab = Lab::start(NodeKind::Bird, &BirdNodeOptions::default())?;
        let socket = lab
            .bird_socket()
            .ok_or_else(|| BenchError::new("BIRD lab without a BIRD node"))?;
        let backend = BirdBackend::new(BirdConfig {
            socket: socket.clone(),
            timeout: Duration::from_secs(2),
            decision_dir: None,
        })
        .map_err(|e| BenchError::new(e.to_string()))?;
        let name =
            BirdProtocolName::new(BIRD_PROTOCOL).map_err(|e| BenchError::new(e.to_string()))?;
        // Connect once, as the daemon does, so the first round does not pay the connect.
        runtime
            .block_on(backend.protocol(&name))
            .map_err(|e| BenchError::new(e.to_string()))?;
        let socket_samples = measure(&lab, rounds, |state| {
            let result = match state {
                RouteState::Withdrawn => runtime.block_on(backend.disable(&name)),
                RouteState::Announced => runtime.block_on(backend.enable(&name)),
            };
            result
                .map(|_| ())
                .map_err(|e| BenchError::new(e.to_string()))
        })?;
        push_row(
            &mut table,
            "BIRD disable/enable, control socket (BirdBackend)",
            &socket_samples,
        );
        let birdc_samples = measure(&lab, rounds, |state| {
            let verb = if state == RouteState::Withdrawn {
                "disable"
            } else {
                "enable"
            };
            run_ok(birdc(&socket, &[verb, BIRD_PROTOCOL]))
        })?;
        push_row(
            &mut table,
            "BIRD disable/enable, one `birdc` process",
            &birdc_samples,
        );
    }

    // BIRD: include file + `birdc configure` with many static routes in the config.
    {
        let dir = tempfile::Builder::new()
            .prefix("nsbeacon-bench-conf-")
            .tempdir()
            .map_err(|e| BenchError::new(format!("temp dir: {e}")))?;
        let include = dir.path().join("anycast.conf");
        let route_line = format!("route {ANYCAST_PREFIX} blackhole;\n");
        std::fs::write(&include, &route_line)
            .map_err(|e| BenchError::new(format!("write {}: {e}", include.display())))?;
        let lab = Lab::start(
            NodeKind::Bird,
            &BirdNodeOptions {
                configure_variant: Some((include.clone(), configure_routes)),
                decision_root: None,
                poll_every: None,
            },
        )?;
        let socket = lab
            .bird_socket()
            .ok_or_else(|| BenchError::new("BIRD lab without a BIRD node"))?;
        let samples = measure(&lab, rounds, |state| {
            let text = if state == RouteState::Withdrawn {
                ""
            } else {
                route_line.as_str()
            };
            std::fs::write(&include, text)
                .map_err(|e| BenchError::new(format!("write {}: {e}", include.display())))?;
            run_ok(birdc(&socket, &["configure"]))
        })?;
        push_row(
            &mut table,
            &format!("BIRD include rewrite + `birdc configure`, {configure_routes} static routes"),
            &samples,
        );
    }

    // FRR: `no network` / `network` through FrrBackend, over each transport.
    {
        let lab = Lab::start(NodeKind::Frr, &BirdNodeOptions::default())?;
        let missing = || BenchError::new("FRR lab without an FRR node");
        let transports = [
            (
                "FRR `no network`/`network` (FrrBackend, bgpd vty socket: default)",
                FrrTransport::VtySocket {
                    socket: lab.frr_vty_socket().ok_or_else(missing)?,
                },
            ),
            (
                "FRR `no network`/`network` (FrrBackend, via = \"vtysh\")",
                FrrTransport::Vtysh {
                    vtysh: require_binary("vtysh"),
                    extra_args: lab.frr_vtysh_args().ok_or_else(missing)?,
                },
            ),
        ];
        let target = RouteTarget::FrrNetwork(
            ANYCAST_PREFIX
                .parse()
                .map_err(|e| BenchError::new(format!("{ANYCAST_PREFIX}: {e}")))?,
        );
        for (label, transport) in transports {
            let backend = FrrBackend::new(FrrConfig {
                transport,
                ..FrrConfig::default()
            })
            .map_err(|e| BenchError::new(e.to_string()))?;
            runtime
                .block_on(backend.read(&target))
                .map_err(|e| BenchError::new(e.to_string()))?;
            let samples = measure(&lab, rounds, |state| {
                runtime
                    .block_on(backend.set(&target, state))
                    .map(|_| ())
                    .map_err(|e| BenchError::new(e.to_string()))
            })?;
            push_row(&mut table, label, &samples);
        }
    }

    let rendered = table.render();
    println!("{rendered}");
    Ok(format!(
        "## 2. Backend operation latency\n\n\
         {rounds} withdraw/announce rounds per operation, lab topology (node -> upstream BIRD over a veth). \
         *op* = until the operation returned; *seen* = from the operation's start until the upstream's \
         RIB (polled every 1 ms over a persistent control-socket connection) showed the change. \
         Milliseconds. Both FRR rows are nsbeacon's `FrrBackend` (read the running config, then \
         `[no] network`): over one persistent connection to bgpd's vty socket (the default), and with \
         `via = \"vtysh\"`, one vtysh process per command batch (two per operation).\n\n{rendered}\n"
    ))
}
