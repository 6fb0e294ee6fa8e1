//! Part 3: nsbeacon's resident memory and CPU over a window, (a) with 20 services probing at 1 Hz and
//! (b) with one service whose serial check sweeps 10,000 zones (local Knot against a reference Knot).
//!
//! Sampled from `/proc/PID/stat` (utime + stime of every thread, in clock ticks of 10 ms) and
//! `/proc/PID/status` (VmRSS, VmHWM) once a second.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use nsbeacon_testkit::bird::BirdDaemon;
use nsbeacon_testkit::knot::{KnotConfig, KnotServer, Zone};

use crate::BenchError;
use crate::daemon::Nsbeacon;
use crate::stats::{Summary, Table, num};
use crate::zones::start_knots;

/// Kernel clock ticks per second of `/proc/PID/stat` times (USER_HZ, 100 on Linux).
pub(crate) const TICKS_PER_SECOND: f64 = 100.0;
/// Length of the windows whose CPU % gives the spread.
const WINDOW: Duration = Duration::from_secs(10);

/// One sample of the process.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    /// When it was taken.
    pub(crate) at: Instant,
    /// utime + stime of every thread, in ticks.
    pub(crate) cpu_ticks: u64,
    /// VmRSS.
    pub(crate) rss_kib: u64,
    /// VmHWM (peak RSS).
    pub(crate) hwm_kib: u64,
    /// Threads.
    pub(crate) threads: u64,
}

/// One sample of process `pid` from `/proc`.
pub(crate) fn sample(pid: u32) -> Result<Sample, BenchError> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| BenchError::new(format!("read /proc/{pid}/stat: {e} (did nsbeacon exit?)")))?;
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let rest = stat
        .rsplit_once(") ")
        .map(|(_, r)| r)
        .ok_or_else(|| BenchError::new(format!("unexpected /proc/{pid}/stat: {stat}")))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| -> Result<u64, BenchError> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| BenchError::new(format!("unexpected /proc/{pid}/stat: {stat}")))
    };
    // rest starts at field 3, so field N is rest[N - 3].
    let cpu_ticks = tick(14 - 3)? + tick(15 - 3)?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| BenchError::new(format!("read /proc/{pid}/status: {e}")))?;
    let kib = |key: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok(Sample {
        at: Instant::now(),
        cpu_ticks,
        rss_kib: kib("VmRSS:"),
        hwm_kib: kib("VmHWM:"),
        threads: kib("Threads:"),
    })
}

/// What one scenario measured.
#[derive(Debug)]
pub(crate) struct Footprint {
    pub(crate) cpu_percent: f64,
    window_cpu: Option<Summary>,
    rss_mib: Option<Summary>,
    hwm_mib: f64,
    threads: u64,
    seconds: f64,
}

pub(crate) fn measure(daemon: &mut Nsbeacon, seconds: u64) -> Result<Footprint, BenchError> {
    let pid = daemon.pid();
    let first = sample(pid)?;
    let mut samples = vec![first];
    let end = first.at + Duration::from_secs(seconds);
    while Instant::now() < end {
        std::thread::sleep(
            Duration::from_secs(1).min(end.saturating_duration_since(Instant::now())),
        );
        if !daemon.is_running() {
            return Err(BenchError::new("nsbeacon exited during the measurement"));
        }
        crate::check_interrupted()?;
        samples.push(sample(pid)?);
    }
    let last = samples[samples.len() - 1];
    let elapsed = last.at.duration_since(first.at).as_secs_f64();
    let cpu_percent =
        100.0 * (last.cpu_ticks - first.cpu_ticks) as f64 / TICKS_PER_SECOND / elapsed.max(1e-9);
    let mut windows = Vec::new();
    let mut window_start = first;
    for s in &samples[1..] {
        let span = s.at.duration_since(window_start.at);
        if span >= WINDOW {
            windows.push(
                100.0 * (s.cpu_ticks - window_start.cpu_ticks) as f64
                    / TICKS_PER_SECOND
                    / span.as_secs_f64(),
            );
            window_start = *s;
        }
    }
    let rss: Vec<f64> = samples.iter().map(|s| s.rss_kib as f64 / 1024.0).collect();
    Ok(Footprint {
        cpu_percent,
        window_cpu: Summary::of(&windows),
        rss_mib: Summary::of(&rss),
        hwm_mib: last.hwm_kib as f64 / 1024.0,
        threads: last.threads,
        seconds: elapsed,
    })
}

/// A BIRD 2 in the root namespace with one static protocol (a blackhole /32) per name.
pub(crate) fn bird_with_protocols(names: &[String]) -> BirdDaemon {
    let mut conf = String::from("router id 192.0.2.2;\n");
    for (i, name) in names.iter().enumerate() {
        let _ = writeln!(
            conf,
            "protocol static {name} {{ ipv4; route 198.51.100.{}/32 blackhole; }}",
            i % 256
        );
    }
    BirdDaemon::start(&conf, None)
}

/// The top of an nsbeacon config: state dir placeholder, BIRD backend, HTTP port, info logs in JSON.
pub(crate) fn base_config(socket: &Path, http_port: u16) -> String {
    format!(
        "state_dir = \"@STATE@\"\n\n[backend]\nkind = \"bird\"\nsocket = \"{}\"\n\n[http]\nlisten = \"127.0.0.1:{}\"\n\n\
         [log]\nlevel = \"info\"\nformat = \"json\"\n\n",
        socket.display(),
        http_port
    )
}

/// Runs part 3 and returns its markdown section.
pub fn run(
    binary: &Path,
    seconds: u64,
    services: usize,
    zones: usize,
) -> Result<String, BenchError> {
    let mut table = Table::new(&[
        "scenario",
        "window (s)",
        "CPU % of one core (whole window)",
        "CPU % per 10 s window p50 / max",
        "RSS MiB p50 / max",
        "peak RSS (VmHWM) MiB",
        "threads",
        "target",
    ]);
    let mut notes = String::new();
    let mut verdicts: Vec<String> = Vec::new();

    // (a) services at 1 Hz.
    {
        let names: Vec<String> = (0..services).map(|i| format!("svc{i:02}")).collect();
        let bird = bird_with_protocols(&names);
        let knot = KnotServer::start(
            KnotConfig::new().with_zones(
                names
                    .iter()
                    .map(|n| Zone::new(&format!("{n}.bench.test."), 1)),
            ),
        );
        let mut config = base_config(&bird.socket(), nsbeacon_testkit::free_port());
        for name in &names {
            let _ = write!(
                config,
                "[[service]]\nname = \"{name}\"\nannounce = [\"{name}\"]\n\n\
                 [[service.check]]\nname = \"soa\"\ntarget = \"{}\"\nqname = \"{name}.bench.test.\"\n\n",
                knot.addr()
            );
        }
        let mut daemon = Nsbeacon::start(binary, &config)?;
        let all_up = nsbeacon_testkit::wait_until(Duration::from_secs(30), || {
            daemon
                .events()
                .iter()
                .filter(|e| {
                    e.message == "route target changed" && e.field("state") == Some("announced")
                })
                .count()
                >= services
        });
        if !all_up {
            let _ = writeln!(
                notes,
                "- (a): not every service was announced within 30 s of start; measured anyway."
            );
        }
        std::thread::sleep(Duration::from_secs(2));
        let f = measure(&mut daemon, seconds)?;
        push_row(
            &mut table,
            &mut verdicts,
            &format!("{services} services, 1 UDP SOA check each at 1 Hz (defaults), BIRD backend"),
            &f,
            true,
        );
        drop(daemon);
        drop(knot);
        drop(bird);
    }

    // (b) one service sweeping many zones.
    {
        let (local, reference) = start_knots(zones);
        let bird = bird_with_protocols(&["svc00".to_owned()]);
        let http_port = nsbeacon_testkit::free_port();
        let mut config = base_config(&bird.socket(), http_port);
        let _ = write!(
            config,
            "[[service]]\nname = \"zones\"\nannounce = [\"svc00\"]\n\n\
             [[service.check]]\nname = \"freshness\"\ntype = \"serial\"\nlocal = \"{}\"\nreference = \"{}\"\n\
             zones_file = \"zones.txt\"\nmax_lag = 10\n",
            local.addr(),
            reference.addr()
        );
        // The zones file lives next to the config (relative paths are relative to it): write it first.
        let zone_list: String = local
            .zones()
            .iter()
            .map(|z| format!("{}\n", z.name))
            .collect();
        let mut daemon = Nsbeacon::start_with_file(binary, &config, "zones.txt", &zone_list)?;
        std::thread::sleep(Duration::from_secs(2));
        let f = measure(&mut daemon, seconds)?;
        push_row(
            &mut table,
            &mut verdicts,
            &format!(
                "1 service, serial check over {zones} zones every 10 s (default), local vs reference Knot"
            ),
            &f,
            false,
        );
        let sweeps = crate::daemon::http_get(http_port, "/metrics")
            .map(|m| sweep_stats(&m))
            .unwrap_or_else(|e| format!("/metrics unreadable: {e}"));
        let _ = writeln!(
            notes,
            "- (b): the serial check's default interval is 10 s, so the window holds about {} sweeps of \
             {} SOA queries each (local + reference). From nsbeacon's /metrics at the end: {sweeps}.",
            seconds / 10,
            2 * zones,
        );
        drop(daemon);
        drop(bird);
    }

    let rendered = table.render();
    println!("{rendered}\n{notes}");
    Ok(format!(
        "## 3. Footprint\n\n\
         nsbeacon (release build) in the root namespace with a BIRD 2 holding one static protocol per \
         service (no BGP needed here), Knot on 127.0.0.1. Sampled once a second from `/proc/PID/stat` \
         (utime + stime of all threads, 10 ms ticks) and `/proc/PID/status` over a {seconds} s window that \
         starts 2 s after the services are up. Log level info, JSON. CPU % is of one core.\n\n{rendered}\n{notes}\n\
         Targets:\n\n{}\n",
        verdicts.join("\n")
    ))
}

fn push_row(
    table: &mut Table,
    verdicts: &mut Vec<String>,
    scenario: &str,
    f: &Footprint,
    with_target: bool,
) {
    let window = f
        .window_cpu
        .map(|s| format!("{} / {}", num(s.p50), num(s.max)))
        .unwrap_or_else(|| "n/a".into());
    let rss = f
        .rss_mib
        .map(|s| format!("{} / {}", num(s.p50), num(s.max)))
        .unwrap_or_else(|| "n/a".into());
    let target = if with_target {
        let rss_ok = f.rss_mib.is_some_and(|s| s.max < 10.0);
        let cpu_ok = f.cpu_percent < 1.0;
        verdicts.push(format!(
            "- Footprint: RSS max {} MiB with 20 services at 1 Hz (target < 10 MiB) -> {}",
            f.rss_mib
                .map(|s| num(s.max))
                .unwrap_or_else(|| "n/a".into()),
            if rss_ok { "met" } else { "missed" }
        ));
        verdicts.push(format!(
            "- Footprint: CPU {:.2} % of a core with 20 services at 1 Hz (target < 1 %) -> {}",
            f.cpu_percent,
            if cpu_ok { "met" } else { "missed" }
        ));
        format!(
            "RSS < 10 MiB: {}; CPU < 1 %: {}",
            if rss_ok { "met" } else { "**missed**" },
            if cpu_ok { "met" } else { "**missed**" }
        )
    } else {
        "(none set)".into()
    };
    table.row(vec![
        scenario.to_owned(),
        format!("{:.0}", f.seconds),
        format!("{:.2}", f.cpu_percent),
        window,
        rss,
        num(f.hwm_mib),
        f.threads.to_string(),
        target,
    ]);
}

/// Sweep count and mean duration from the `transport="sweep"` series of the probe-duration histogram.
fn sweep_stats(metrics: &str) -> String {
    let value = |suffix: &str| -> Option<f64> {
        metrics
            .lines()
            .filter(|l| !l.starts_with('#') && l.contains("transport=\"sweep\""))
            .find(|l| {
                l.split(['{', ' '])
                    .next()
                    .is_some_and(|name| name.ends_with(suffix))
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    };
    match (value("_count"), value("_sum")) {
        (Some(count), Some(sum)) if count > 0.0 => format!(
            "{count:.0} sweeps completed, {:.0} ms each on average",
            1000.0 * sum / count
        ),
        _ => "no sweep duration series found".to_owned(),
    }
}
