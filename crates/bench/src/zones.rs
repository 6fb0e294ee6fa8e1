//! Part 4: a SOA + serial sweep of 10,000 zones on a local Knot (nsbeacon's prober, `SerialSweep`) beside
//! `dnsperf` sending the same SOA queries to the same server.

use std::net::SocketAddr;
use std::process::Command;
use std::str::FromStr;
use std::time::Duration;

use nsbeacon_prober::proto::rr::Name;
use nsbeacon_prober::{SerialSweep, Transport};
use nsbeacon_testkit::knot::{KnotServer, Zone, start_sweep_pair};
use nsbeacon_testkit::require_binary;

use crate::BenchError;
use crate::stats::{Summary, Table, met, num};

/// Zone name suffix of the bulk zones.
pub const ZONE_SUFFIX: &str = "bench.test";

/// Starts the local and the reference Knot of a sweep (every 10th zone one serial ahead on the reference).
pub fn start_knots(zones: usize) -> (KnotServer, KnotServer) {
    start_sweep_pair(zones, ZONE_SUFFIX)
}

/// One dnsperf run's result.
#[derive(Debug, Clone, Copy)]
pub struct DnsperfRun {
    /// Queries per second, as dnsperf reports it.
    pub qps: f64,
    /// The run's wall-clock time in seconds.
    pub run_time: f64,
    /// Queries answered.
    pub completed: u64,
    /// Queries without an answer within dnsperf's timeout.
    pub lost: u64,
}

/// dnsperf's client sockets: like the sweep's socket pools, many source ports, so Knot's `SO_REUSEPORT`
/// UDP workers share the load as they do for the sweep (one client would pin one Knot worker).
pub const DNSPERF_CLIENTS: usize = 32;

/// dnsperf's threads: one per core of the 2-core bench machine, as the sweep's workers use every core.
pub const DNSPERF_THREADS: usize = 2;

/// Runs `dnsperf` over the queries of `file` `passes` times with `outstanding` queries in flight, and
/// reads its summary. `dnssec_ok` sets the DO bit (`-D`), as the DNSSEC sweep does.
pub fn dnsperf(
    server: SocketAddr,
    file: &std::path::Path,
    passes: usize,
    outstanding: usize,
    dnssec_ok: bool,
) -> Result<DnsperfRun, BenchError> {
    let mut command = Command::new(require_binary("dnsperf"));
    if dnssec_ok {
        command.arg("-D");
    }
    let out = command
        .args([
            "-s",
            &server.ip().to_string(),
            "-p",
            &server.port().to_string(),
        ])
        .arg("-d")
        .arg(file)
        .args([
            "-n",
            &passes.to_string(),
            "-c",
            &DNSPERF_CLIENTS.to_string(),
            "-T",
            &DNSPERF_THREADS.to_string(),
            "-q",
            &outstanding.to_string(),
            "-t",
            "2",
        ])
        .output()
        .map_err(|e| BenchError::new(format!("run dnsperf: {e}")))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(BenchError::new(format!(
            "dnsperf failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let field = |label: &str| -> Option<&str> {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .map(str::trim)
    };
    let first_number = |s: &str| -> Option<f64> { s.split_whitespace().next()?.parse().ok() };
    let qps = field("Queries per second:").and_then(first_number);
    let run_time = field("Run time (s):").and_then(first_number);
    let completed = field("Queries completed:").and_then(first_number);
    let lost = field("Queries lost:").and_then(first_number);
    match (qps, run_time, completed, lost) {
        (Some(qps), Some(run_time), Some(completed), Some(lost)) => Ok(DnsperfRun {
            qps,
            run_time,
            completed: completed as u64,
            lost: lost as u64,
        }),
        _ => Err(BenchError::new(format!(
            "cannot read dnsperf's summary:\n{text}"
        ))),
    }
}

/// What a sweep benchmark needs besides its servers: the zone names, a dnsperf query file asking `qtypes`
/// of every zone (in that order), and a multi-threaded runtime like the daemon's.
pub struct SweepSetup {
    /// The zones, parsed.
    pub names: Vec<Name>,
    /// dnsperf's input; removed when dropped.
    pub query_file: tempfile::NamedTempFile,
    /// One worker thread per core.
    pub runtime: tokio::runtime::Runtime,
}

impl SweepSetup {
    /// Parses `zones`' names and writes the query file.
    pub fn new(zones: &[Zone], qtypes: &[&str]) -> Result<SweepSetup, BenchError> {
        let names = zones
            .iter()
            .map(|z| {
                Name::from_str(&z.name).map_err(|e| BenchError::new(format!("{}: {e}", z.name)))
            })
            .collect::<Result<_, _>>()?;
        let query_file = tempfile::NamedTempFile::new()
            .map_err(|e| BenchError::new(format!("temp file: {e}")))?;
        let queries: String = zones
            .iter()
            .flat_map(|z| qtypes.iter().map(move |t| format!("{} {t}\n", z.name)))
            .collect();
        std::fs::write(query_file.path(), queries)
            .map_err(|e| BenchError::new(format!("write queries: {e}")))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| BenchError::new(format!("tokio runtime: {e}")))?;
        Ok(SweepSetup {
            names,
            query_file,
            runtime,
        })
    }
}

/// Runs part 4 and returns its markdown section.
pub fn run(zones: usize, runs: usize, concurrency: usize) -> Result<String, BenchError> {
    let started = std::time::Instant::now();
    let (local, reference) = start_knots(zones);
    let knot_start = started.elapsed();
    let SweepSetup {
        names,
        query_file,
        runtime,
    } = SweepSetup::new(local.zones(), &["SOA"])?;
    let mut sweep_two: Vec<Duration> = Vec::new();
    let mut sweep_same: Vec<Duration> = Vec::new();
    let mut pooled_two: Vec<Duration> = Vec::new();
    let mut pooled_ok = 0usize;
    let zone_names = std::sync::Arc::new(
        local
            .zones()
            .iter()
            .map(|z| z.name.clone())
            .collect::<Vec<_>>(),
    );
    let mut perf: Vec<DnsperfRun> = Vec::new();
    let mut last_summary = String::new();
    // Warm-up: one sweep and one dnsperf pass, not counted (first touches of Knot's zone tree, page cache).
    let warm = SerialSweep::new(local.addr(), reference.addr())
        .with_transport(Transport::Udp)
        .with_timeout(Duration::from_secs(1))
        .with_max_lag(1)
        .with_concurrency(concurrency);
    runtime
        .block_on(warm.run(&names))
        .map_err(|e| BenchError::new(e.to_string()))?;
    dnsperf(local.addr(), query_file.path(), 1, 2 * concurrency, false)?;
    for _ in 0..runs {
        crate::check_interrupted()?;
        // Interleaved, so that machine noise hits all three alike.
        let two = SerialSweep::new(local.addr(), reference.addr())
            .with_transport(Transport::Udp)
            .with_timeout(Duration::from_secs(1))
            .with_max_lag(1)
            .with_concurrency(concurrency);
        let report = runtime
            .block_on(two.run(&names))
            .map_err(|e| BenchError::new(e.to_string()))?;
        let s = &report.summary;
        last_summary = format!(
            "in_sync={} lagging={} behind={} local_failed={} reference_unreachable={}",
            s.in_sync, s.lagging, s.behind, s.local_failed, s.reference_unreachable
        );
        sweep_two.push(report.elapsed);
        let same = SerialSweep::new(local.addr(), local.addr())
            .with_transport(Transport::Udp)
            .with_timeout(Duration::from_secs(1))
            .with_max_lag(1)
            .with_concurrency(concurrency);
        let report = runtime
            .block_on(same.run(&names))
            .map_err(|e| BenchError::new(e.to_string()))?;
        sweep_same.push(report.elapsed);
        perf.push(dnsperf(
            local.addr(),
            query_file.path(),
            2,
            2 * concurrency,
            false,
        )?);
        let (elapsed, ok) = runtime.block_on(crate::pooled::sweep(
            local.addr(),
            reference.addr(),
            std::sync::Arc::clone(&zone_names),
            concurrency / 2,
            Duration::from_secs(1),
        ))?;
        pooled_two.push(elapsed);
        pooled_ok = ok;
    }

    let queries = (2 * zones) as f64;
    let rate = |d: &Duration| queries / d.as_secs_f64();
    let mut table = Table::new(&[
        "what (20,000 SOA queries over UDP)",
        "runs",
        "time p50 (s)",
        "time min-max (s)",
        "queries/s p50",
        "queries/s min-max",
    ]);
    for (label, samples) in [
        (
            format!("nsbeacon sweep, local + reference Knot ({zones} zones x 2)"),
            &sweep_two,
        ),
        (
            format!("nsbeacon sweep, both sides on the local Knot ({zones} zones x 2)"),
            &sweep_same,
        ),
    ] {
        let t = Summary::of(
            &samples
                .iter()
                .map(Duration::as_secs_f64)
                .collect::<Vec<_>>(),
        );
        let q = Summary::of(&samples.iter().map(rate).collect::<Vec<_>>());
        if let (Some(t), Some(q)) = (t, q) {
            table.row(vec![
                label,
                t.n.to_string(),
                format!("{:.3}", t.p50),
                format!("{:.3}-{:.3}", t.min, t.max),
                num(q.p50),
                format!("{}-{}", num(q.min), num(q.max)),
            ]);
        }
    }
    let t = Summary::of(&perf.iter().map(|r| r.run_time).collect::<Vec<_>>());
    let q = Summary::of(&perf.iter().map(|r| r.qps).collect::<Vec<_>>());
    if let (Some(t), Some(q)) = (t, q) {
        table.row(vec![
            format!(
                "dnsperf -n 2 -q {} -c {DNSPERF_CLIENTS} -T {DNSPERF_THREADS}, the same {zones} SOA queries twice, local Knot",
                2 * concurrency
            ),
            t.n.to_string(),
            format!("{:.3}", t.p50),
            format!("{:.3}-{:.3}", t.min, t.max),
            num(q.p50),
            format!("{}-{}", num(q.min), num(q.max)),
        ]);
    }
    let t = Summary::of(
        &pooled_two
            .iter()
            .map(Duration::as_secs_f64)
            .collect::<Vec<_>>(),
    );
    let pq = Summary::of(&pooled_two.iter().map(rate).collect::<Vec<_>>());
    if let (Some(t), Some(q)) = (t, pq) {
        table.row(vec![
            format!(
                "baseline (not nsbeacon): minimal sweep, {} workers x 2 queries in flight, local + reference",
                concurrency / 2
            ),
            t.n.to_string(),
            format!("{:.3}", t.p50),
            format!("{:.3}-{:.3}", t.min, t.max),
            num(q.p50),
            format!("{}-{}", num(q.min), num(q.max)),
        ]);
    }
    let lost: u64 = perf.iter().map(|r| r.lost).sum();
    let completed: u64 = perf.iter().map(|r| r.completed).sum();
    let sweep_p50 = Summary::of(
        &sweep_two
            .iter()
            .map(Duration::as_secs_f64)
            .collect::<Vec<_>>(),
    );
    let same_q = Summary::of(&sweep_same.iter().map(rate).collect::<Vec<_>>());
    let verdict = match (sweep_p50, same_q, q) {
        (Some(t), Some(sq), Some(dq)) => format!(
            "Targets:\n\n\
             - Zone scale: {zones}-zone sweep p50 {:.3} s (target < 2 s) -> {}\n\
             - Zone scale: sweep rate p50 {:.0} % of dnsperf's on the same server (target >= 50 %) -> {}\n",
            t.p50,
            met(t.p50 < 2.0),
            100.0 * sq.p50 / dq.p50,
            met(sq.p50 >= dq.p50 / 2.0)
        ),
        _ => "Targets: not evaluated (missing samples).".to_owned(),
    };
    let rendered = table.render();
    println!("{rendered}\n{verdict}");
    Ok(format!(
        "## 4. Zone scale: 10,000-zone SOA + serial sweep\n\n\
         Two Knot instances (`knotd`, 1 background worker, default UDP workers) on 127.0.0.1 with {zones} \
         zones each (started in {:.1} s); every 10th zone is one serial ahead on the reference. A sweep asks \
         every zone's SOA at the local server and at the reference (2 x {zones} queries), `concurrency` {concurrency}: \
         {concurrency} zones, so up to {} queries, in flight (nsbeacon's default is 128 zones), 1 s timeout, UDP, \
         spread over one worker task per core on a multi-threaded tokio runtime (one thread per core). `dnsperf` sends the same {zones} SOA \
         queries twice (`-n 2`) to the local Knot with as many queries outstanding (`-q {}`), \
         {DNSPERF_CLIENTS} client sockets (`-c`, many source ports like the sweep's socket pools, so Knot's \
         reuseport UDP workers share the load alike) and {DNSPERF_THREADS} threads (`-T`, every core, like the \
         sweep). The % of dnsperf's rate compares the both-sides-local sweep (all 2 x {zones} queries to the \
         local Knot) with dnsperf. One warm-up round of \
         each, then {runs} interleaved runs. Last sweep's verdicts: {last_summary}. dnsperf lost {lost} of \
         {completed} queries. The baseline row is not nsbeacon code: the same sweep written as plainly as possible \
         ({} reused sockets per server, both servers asked at once, replies parsed with the same \
         hickory-proto; {pooled_ok} of {zones} zones fully answered in its last run), to show what the \
         prober's checks and bookkeeping cost on top.\n\n{rendered}\n{verdict}\n",
        knot_start.as_secs_f64(),
        2 * concurrency,
        2 * concurrency,
        concurrency / 2
    ))
}
