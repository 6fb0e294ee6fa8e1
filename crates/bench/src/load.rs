//! Part 8: the CPU cost of the load readers (`[service.load]`, issue 16) at a 1 s interval, all three
//! servers and the kernel counters.
//!
//! Two nsbeacon processes run side by side in one network namespace over the same window, so the
//! machine's noise hits both alike: "off" has three services probing at 1 Hz; "on" has the same three
//! services, each also reading one server's statistics every second (Knot over its control socket, NSD
//! over its unix control socket, BIND's statistics channel) plus `/proc/net/snmp`. The difference of their
//! CPU is what the readers cost. NSD and BIND run in the namespace with the lab's configs; Knot (with
//! `mod-stats`) runs in the root namespace and is read through its control socket, a file path.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use nsbeacon_e2e::DnsServerKind;
use nsbeacon_e2e::dns::{KnotRole, LabDns};
use nsbeacon_testkit::knot::{KnotConfig, KnotServer, Zone};
use nsbeacon_testkit::netns::Netns;

use crate::BenchError;
use crate::daemon::Nsbeacon;
use crate::footprint::{TICKS_PER_SECOND, base_config, bird_with_protocols, sample};
use crate::stats::{Table, num};

/// Target of issue 16: the readers together under 0.2 % of one core at a 1 s interval.
const TARGET_PERCENT: f64 = 0.2;

/// The config of one nsbeacon: three services probing NSD or BIND at 1 Hz, with or without load readers.
fn config(
    bird_socket: &Path,
    http_port: u16,
    prefix: &str,
    probes: &[(&str, SocketAddr)],
    loads: Option<&[String; 3]>,
) -> String {
    let mut text = base_config(bird_socket, http_port);
    for (i, (name, target)) in probes.iter().enumerate() {
        let _ = write!(
            text,
            "[[service]]\nname = \"{name}\"\nannounce = [\"{prefix}{name}\"]\n\n\
             [[service.check]]\nname = \"soa\"\ntarget = \"{target}\"\nqname = \"bench.test.\"\n\n"
        );
        if let Some(loads) = loads {
            let _ = write!(text, "[service.load]\n{}\ninterval = \"1s\"\n\n", loads[i]);
        }
    }
    text
}

/// `/status` of the nsbeacon listening on `port` inside `netns`, through `nsbeacon status --json`.
fn status(binary: &Path, netns: &Netns, port: u16) -> Result<serde_json::Value, BenchError> {
    let out = netns
        .exec(binary)
        .args(["status", "--json", "--addr", &format!("127.0.0.1:{port}")])
        .output()
        .map_err(|e| BenchError::new(format!("run nsbeacon status: {e}")))?;
    serde_json::from_slice(&out.stdout).map_err(|e| {
        BenchError::new(format!(
            "nsbeacon status --json: {e}: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    })
}

/// Runs part 8 and returns its markdown section.
pub fn run(binary: &Path, seconds: u64) -> Result<String, BenchError> {
    let netns = Netns::create("benchload").map_err(|e| BenchError::new(e.to_string()))?;
    let dir = tempfile::Builder::new()
        .prefix("nsbeacon-bench-load-")
        .tempdir()
        .map_err(|e| BenchError::new(format!("temp dir: {e}")))?;
    let zone = Zone::new("bench.test.", 1);
    let nsd_addr: SocketAddr = ([127, 0, 0, 1], 5301).into();
    let bind_addr: SocketAddr = ([127, 0, 0, 1], 5302).into();
    let nsd = LabDns::start(
        DnsServerKind::Nsd,
        netns.name(),
        &dir.path().join("nsd"),
        zone.clone(),
        &[nsd_addr],
        KnotRole::Standalone,
    );
    let bind = LabDns::start(
        DnsServerKind::Bind,
        netns.name(),
        &dir.path().join("bind"),
        zone.clone(),
        &[bind_addr],
        KnotRole::Standalone,
    );
    let knot = KnotServer::start(KnotConfig::new().with_stats().with_zone(zone));
    let names: Vec<String> = [
        "off_knot", "off_nsd", "off_bind", "on_knot", "on_nsd", "on_bind",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let bird = bird_with_protocols(&names);
    // The "knot" service probes NSD: Knot listens in the root namespace, out of the probes' reach; what
    // is measured is the reading, and the probes are the same in both processes.
    let probes = [("knot", nsd_addr), ("nsd", nsd_addr), ("bind", bind_addr)];
    let loads = [
        format!(
            "source = \"knot\"\nsocket = \"{}\"",
            knot.control_socket().display()
        ),
        format!(
            "source = \"nsd\"\nsocket = \"{}\"",
            nsd.nsd_control_socket().display()
        ),
        format!(
            "source = \"bind\"\nurl = \"{}\"",
            bind.bind_statistics_url()
        ),
    ];
    let (off_port, on_port) = (nsbeacon_testkit::free_port(), nsbeacon_testkit::free_port());
    let mut off = Nsbeacon::start_in_netns(
        binary,
        &config(&bird.socket(), off_port, "off_", &probes, None),
        netns.name(),
    )?;
    let mut on = Nsbeacon::start_in_netns(
        binary,
        &config(&bird.socket(), on_port, "on_", &probes, Some(&loads)),
        netns.name(),
    )?;
    // Both up, and the readers reading without errors, before the window starts.
    let ready = nsbeacon_testkit::wait_until(Duration::from_secs(30), || {
        let up = |port| {
            status(binary, &netns, port).is_ok_and(|doc| {
                doc["services"]
                    .as_array()
                    .is_some_and(|s| s.len() == 3 && s.iter().all(|s| s["state"] == "up"))
            })
        };
        let reading = status(binary, &netns, on_port).is_ok_and(|doc| {
            doc["services"].as_array().is_some_and(|s| {
                s.iter().all(|s| {
                    s["load"]["readings"].as_u64() >= Some(2)
                        && s["load"]["error"].is_null()
                        && s["load"]["queries_total"].is_number()
                })
            })
        });
        up(off_port) && up(on_port) && reading
    });
    if !ready {
        return Err(BenchError::new(format!(
            "the services did not come up with working readers within 30 s; /status of \"on\": {}",
            status(binary, &netns, on_port)
                .map(|d| d.to_string())
                .unwrap_or_else(|e| e.to_string())
        )));
    }
    std::thread::sleep(Duration::from_secs(2));
    let (off_pid, on_pid) = (off.pid(), on.pid());
    let first = (sample(off_pid)?, sample(on_pid)?);
    let end = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < end {
        std::thread::sleep(
            Duration::from_secs(1).min(end.saturating_duration_since(Instant::now())),
        );
        crate::check_interrupted()?;
        if !off.is_running() || !on.is_running() {
            return Err(BenchError::new("an nsbeacon exited during the measurement"));
        }
    }
    let last = (sample(off_pid)?, sample(on_pid)?);
    let elapsed = last.0.at.duration_since(first.0.at).as_secs_f64();
    let percent = |a: u64, b: u64| 100.0 * (b - a) as f64 / TICKS_PER_SECOND / elapsed.max(1e-9);
    let off_cpu = percent(first.0.cpu_ticks, last.0.cpu_ticks);
    let on_cpu = percent(first.1.cpu_ticks, last.1.cpu_ticks);
    let readers = on_cpu - off_cpu;
    let doc = status(binary, &netns, on_port)?;
    let mut reads = Vec::new();
    for service in doc["services"].as_array().into_iter().flatten() {
        let load = &service["load"];
        reads.push(format!(
            "{}: {} readings, last error {}",
            load["source"].as_str().unwrap_or("?"),
            load["readings"],
            load["error"]
        ));
    }
    let met = readers < TARGET_PERCENT;
    let mut table = Table::new(&[
        "nsbeacon",
        "services",
        "CPU % of one core",
        "RSS MiB at the end",
    ]);
    table.row(vec![
        "off: probes only".into(),
        "3 at 1 Hz".into(),
        format!("{off_cpu:.3}"),
        num(last.0.rss_kib as f64 / 1024.0),
    ]);
    table.row(vec![
        "on: probes + Knot, NSD, BIND and kernel readers at 1 s".into(),
        "3 at 1 Hz".into(),
        format!("{on_cpu:.3}"),
        num(last.1.rss_kib as f64 / 1024.0),
    ]);
    let rendered = table.render();
    let verdict = format!(
        "- Load readers: {readers:.3} % of a core for Knot + NSD + BIND + kernel at 1 s (target < {TARGET_PERCENT} %) -> {}",
        if met { "met" } else { "missed" }
    );
    println!("{rendered}\n{verdict}\n{}", reads.join("; "));
    Ok(format!(
        "## 8. Load readers (issue 16)\n\n\
         Two nsbeacon processes (release build) side by side in one network namespace for the same {elapsed:.0} s \
         window, so the machine's noise hits both alike. Both run three services probing at 1 Hz (an SOA \
         query each); \"on\" also reads one server's statistics per service every second (Knot over its \
         control socket with knotc's protocol, NSD `stats_noreset` over its unix control socket, BIND's \
         `/json/v1/server` over HTTP) and `/proc/net/snmp`. CPU from `/proc/PID/stat` (utime + stime, 10 ms \
         ticks; over {elapsed:.0} s one tick is {tick:.3} % of a core). The readers' cost is the difference. \
         Readings at the end: {}.\n\n{rendered}\n{verdict}\n",
        reads.join("; "),
        tick = 100.0 / TICKS_PER_SECOND / elapsed.max(1e-9),
    ))
}
