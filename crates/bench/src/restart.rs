//! Part 5: the node's BIRD crashes (SIGKILL) and is started again while DNS is healthy. Measured: from
//! BIRD's start until the upstream has the anycast prefix again, with nsbeacon's decision files (issue 14:
//! BIRD starts the protocol enabled by itself) and without them (before issue 14: the protocol starts
//! `disabled`, and nsbeacon enables it again once it has reconnected and read it back).
//!
//! The node's static protocol is `disabled` and includes the decision file as bird-templates/ do; the lab
//! upstream and node use 1 s BGP connect timers, so the BGP session, not nsbeacon, dominates both figures.

use std::path::Path;
use std::time::{Duration, Instant};

use nsbeacon_testkit::knot::{KnotConfig, KnotServer, Zone};

use crate::BenchError;
use crate::daemon::Nsbeacon;
use crate::failover::{catch, knot_port, log_tail, random_delay};
use crate::lab::{BIRD_PROTOCOL, BirdNodeOptions, Lab, NodeKind, NodeRouter};
use crate::stats::{Summary, Table, cells};

/// The probed zone.
const ZONE: &str = "bench.test.";

/// With or without nsbeacon's decision files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    DecisionFiles,
    Without,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::DecisionFiles => "with decision files (`decision_dir` set)",
            Mode::Without => "without decision files (before issue 14)",
        }
    }
}

/// One mode's samples: BIRD start -> prefix back at the upstream.
#[derive(Debug)]
struct ModeRun {
    mode: Mode,
    samples: Vec<Duration>,
    poll_rate: f64,
}

fn node_bird(lab: &mut Lab) -> Result<&mut nsbeacon_testkit::bird::BirdDaemon, BenchError> {
    match &mut lab.node {
        NodeRouter::Bird(bird) => Ok(bird),
        NodeRouter::Frr(_) => Err(BenchError::new("BIRD lab without BIRD")),
    }
}

fn run_mode(binary: &Path, mode: Mode, trials: usize) -> Result<ModeRun, BenchError> {
    let root = tempfile::tempdir().map_err(|e| BenchError::new(format!("temp dir: {e}")))?;
    let mut lab = Lab::start(
        NodeKind::Bird,
        &BirdNodeOptions {
            configure_variant: None,
            decision_root: Some(root.path().to_path_buf()),
            poll_every: None,
        },
    )?;
    let knot = KnotServer::start(
        KnotConfig::new()
            .with_port(knot_port()?)
            .with_zone(Zone::new(ZONE, 1)),
    );
    let socket = lab
        .bird_socket()
        .ok_or_else(|| BenchError::new("BIRD lab without BIRD"))?;
    let decision = match mode {
        Mode::DecisionFiles => format!(
            "decision_dir = \"{}\"\n",
            root.path().join("nsbeacon/bird").display()
        ),
        Mode::Without => String::new(),
    };
    let config = format!(
        "state_dir = \"@STATE@\"\n\n[backend]\nkind = \"bird\"\nsocket = \"{}\"\n{decision}\n\
         [http]\nlisten = \"127.0.0.1:{}\"\n\n[log]\nlevel = \"info\"\nformat = \"json\"\n\n\
         [[service]]\nname = \"dns\"\nannounce = [\"{BIRD_PROTOCOL}\"]\n\n\
         [[service.check]]\nname = \"soa\"\ntarget = \"{}\"\nqname = \"{ZONE}\"\n",
        socket.display(),
        nsbeacon_testkit::free_port(),
        knot.addr(),
    );
    let mut daemon = Nsbeacon::start(binary, &config)?;
    let slack = Duration::from_secs(60);
    if lab.rib.wait_for(true, Instant::now(), slack).is_none() {
        return Err(BenchError::new(format!(
            "{}: nsbeacon never announced; log:\n{}",
            mode.name(),
            log_tail(&daemon)
        )));
    }
    let mut samples = Vec::with_capacity(trials);
    for trial in 0..trials {
        crate::check_interrupted()?;
        if lab.rib.wait_for(true, Instant::now(), slack).is_none() {
            return Err(BenchError::new(format!(
                "{} trial {trial}: the prefix is not announced before the crash",
                mode.name()
            )));
        }
        std::thread::sleep(Duration::from_millis(500) + random_delay(Duration::from_secs(1)));
        let killed = Instant::now();
        node_bird(&mut lab)?.kill();
        if lab.rib.wait_for(false, killed, slack).is_none() {
            return Err(BenchError::new(format!(
                "{} trial {trial}: the upstream kept the prefix after the node's BIRD died",
                mode.name()
            )));
        }
        let started = Instant::now();
        catch("BIRD start", || -> Result<(), BenchError> {
            node_bird(&mut lab)?.start_again();
            Ok(())
        })??;
        let back = lab.rib.wait_for(true, started, slack).ok_or_else(|| {
            BenchError::new(format!(
                "{} trial {trial}: the prefix did not come back within {slack:?}; nsbeacon log tail:\n{}",
                mode.name(),
                log_tail(&daemon)
            ))
        })?;
        samples.push(back.at.saturating_duration_since(started));
        if !daemon.is_running() {
            return Err(BenchError::new(format!(
                "nsbeacon exited; log tail:\n{}",
                log_tail(&daemon)
            )));
        }
    }
    let written = root.path().join("nsbeacon/bird").exists();
    if written != (mode == Mode::DecisionFiles) {
        return Err(BenchError::new(format!(
            "{}: the decision dir {} exists: {written}",
            mode.name(),
            root.path().join("nsbeacon/bird").display()
        )));
    }
    eprintln!("{}: {} trials done", mode.name(), samples.len());
    Ok(ModeRun {
        mode,
        samples,
        poll_rate: lab.rib.poll_rate(),
    })
}

/// Runs both modes and returns the markdown section.
pub fn run(binary: &Path, trials: usize) -> Result<String, BenchError> {
    let mut runs = Vec::new();
    for mode in [Mode::DecisionFiles, Mode::Without] {
        runs.push(catch("BIRD restart trials", || {
            run_mode(binary, mode, trials)
        })??);
    }
    let mut table = Table::new(&["node BGP daemon", "nsbeacon", "n", "p50", "p95", "max"]);
    for run in &runs {
        let [p50, p95, max, _] = cells(Summary::of_ms(&run.samples));
        table.row(vec![
            "BIRD killed (SIGKILL), started again".to_owned(),
            run.mode.name().to_owned(),
            run.samples.len().to_string(),
            p50,
            p95,
            max,
        ]);
    }
    let rendered = table.render();
    println!("{rendered}");
    let p50 = |mode: Mode| {
        runs.iter()
            .find(|r| r.mode == mode)
            .and_then(|r| Summary::of_ms(&r.samples))
            .map(|s| s.p50)
    };
    let difference = match (p50(Mode::Without), p50(Mode::DecisionFiles)) {
        (Some(without), Some(with)) => format!("{} ms", crate::stats::num(without - with)),
        _ => "n/a".to_owned(),
    };
    let poll = runs
        .iter()
        .map(|r| r.poll_rate)
        .fold(f64::INFINITY, f64::min);
    Ok(format!(
        "## 5. BIRD restart while DNS is healthy: time until the upstream has the route again\n\n\
         Lab as in part 1 (BIRD node, 1 s BGP connect timers on both sides), but the node's static protocol is \
         `disabled` and includes nsbeacon's decision file the way bird-templates/ do. nsbeacon runs at its \
         defaults with one SOA check against a healthy Knot. Each trial SIGKILLs the node's BIRD, waits for the \
         upstream to drop the prefix, starts BIRD again and times from that start to the first poll of the \
         upstream's RIB (every 1 ms; slowest lab {poll:.0}/s) that shows the prefix. Milliseconds.\n\n\
         {rendered}\n\
         Median without minus median with decision files: {difference}. With decision files BIRD starts the \
         protocol enabled by itself, so nothing waits for nsbeacon; without them nsbeacon re-enables it after \
         BIRD's control socket reappears (log watch, then a read-back), racing the BGP session, which takes \
         about a second here either way.\n"
    ))
}
