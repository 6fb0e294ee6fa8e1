//! Part 9 (issue 16): the DNSSEC expiry sweep (`nsbeacon_prober::dnssec`) over 10,000 signed zones on
//! one Knot, beside `dnsperf -D` sending the same SOA + DNSKEY queries (DO bit set) to the same server.
//!
//! Signing 10,000 zones with `dnssec-signzone` takes minutes on the shared 2 cores, so the signed zone
//! files are kept in a cache directory (under `target/` when run by `scripts/bench`) keyed by the zone
//! count, the suffix, the algorithm and the validity; a re-run loads them unless their signatures have
//! less than [`RESIGN_BEFORE`] left, so every zone stays `valid` under the check's default thresholds.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nsbeacon_prober::dnssec::{DnssecSweep, ExpiryVerdict};
use nsbeacon_testkit::dnssec::with_signed_records;
use nsbeacon_testkit::knot::{KnotConfig, KnotServer, Zone, bulk_zones};
use nsbeacon_testkit::require_binary;

use crate::BenchError;
use crate::stats::{Summary, Table, met, num};
use crate::zones::{DNSPERF_CLIENTS, DNSPERF_THREADS, SweepSetup, ZONE_SUFFIX, dnsperf};

/// Validity of the signatures made for the cache: a month, so one signing serves many runs.
const VALIDITY: Duration = Duration::from_secs(30 * 24 * 3600);

/// A cache whose signatures have less than this left is signed again: a week, well above the check's
/// default `warn_before` (3 days), so the sweep sees only `valid` zones.
const RESIGN_BEFORE: Duration = Duration::from_secs(7 * 24 * 3600);

/// The signing algorithm (ECDSA P-256, number 13: what most signers use today, and small answers).
const ALGORITHM: &str = "ECDSAP256SHA256";

/// The file written last into a complete cache: the signatures' expiry, seconds since the epoch.
const STAMP: &str = "complete";

/// dnsperf's passes over the query file: three, so that its start and ramp-up (a few ms) weigh little in
/// its rate; one pass of 20,000 queries lasts about as long as one sweep.
const DNSPERF_PASSES: usize = 3;

/// The target the sweep time is judged by: a fifth of the sweeps' default interval (10 s), as for the
/// serial sweep of part 4.
const SWEEP_TARGET_SECS: f64 = 2.0;

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> BenchError {
    BenchError::new(format!("{what} {}: {e}", path.display()))
}

/// Runs a signing tool and returns its stdout; an error carries the tool's output.
fn run_tool(command: &mut Command, what: &str) -> Result<String, BenchError> {
    let out = command
        .output()
        .map_err(|e| BenchError::new(format!("run {what}: {e}")))?;
    if !out.status.success() {
        return Err(BenchError::new(format!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The signed zones and how they were obtained.
struct SignedZones {
    zones: Vec<Zone>,
    /// Seconds spent signing in this run; `None` when they came from the cache.
    signed_in: Option<f64>,
    /// When the signatures expire, seconds since the epoch.
    expires_unix: u64,
    dir: PathBuf,
}

/// One key pair, made once and written under each zone's name: `dnssec-signzone` finds a zone's keys
/// by owner name, and a key's tag does not depend on its owner, so one `dnssec-keygen` serves every zone.
struct SharedKey {
    /// `+013+12345`: the key files' name after the owner.
    file_tail: String,
    /// The DNSKEY line after its owner name (`IN DNSKEY 256 3 13 ...`).
    dnskey_rest: String,
    /// The private key file's text (it names no owner).
    private: String,
}

impl SharedKey {
    fn generate(dir: &Path) -> Result<SharedKey, BenchError> {
        std::fs::create_dir_all(dir).map_err(|e| io_error("create", dir, e))?;
        let base = run_tool(
            Command::new(require_binary("dnssec-keygen"))
                .args(["-q", "-a", ALGORITHM, "-n", "ZONE", "-K"])
                .arg(dir)
                .arg("template."),
            "dnssec-keygen",
        )?;
        let base = base.trim();
        let file_tail = base
            .strip_prefix("Ktemplate.")
            .ok_or_else(|| BenchError::new(format!("dnssec-keygen named its key {base:?}")))?
            .to_owned();
        let key_path = dir.join(format!("{base}.key"));
        let key = std::fs::read_to_string(&key_path).map_err(|e| io_error("read", &key_path, e))?;
        let dnskey_rest = key
            .lines()
            .find_map(|l| l.strip_prefix("template. "))
            .ok_or_else(|| BenchError::new(format!("no DNSKEY line in {}", key_path.display())))?
            .to_owned();
        let private_path = dir.join(format!("{base}.private"));
        let private = std::fs::read_to_string(&private_path)
            .map_err(|e| io_error("read", &private_path, e))?;
        Ok(SharedKey {
            file_tail,
            dnskey_rest,
            private,
        })
    }

    /// Writes the key files for `zone` into `dir`; returns their paths (to remove after signing).
    fn write_for(&self, zone: &str, dir: &Path) -> Result<[PathBuf; 2], BenchError> {
        let key = dir.join(format!("K{zone}{}.key", self.file_tail));
        let private = dir.join(format!("K{zone}{}.private", self.file_tail));
        std::fs::write(&key, format!("{zone} {}\n", self.dnskey_rest))
            .map_err(|e| io_error("write", &key, e))?;
        std::fs::write(&private, &self.private).map_err(|e| io_error("write", &private, e))?;
        Ok([key, private])
    }
}

/// The signed file of `zone` in the cache.
fn signed_path(dir: &Path, zone: &Zone) -> PathBuf {
    dir.join("signed").join(format!("{}zone", zone.name))
}

/// Signs `zones[worker], zones[worker + workers], ...` into `dir/signed`, working in `dir/work-<worker>`.
fn sign_share(
    zones: &[Zone],
    worker: usize,
    workers: usize,
    key: &SharedKey,
    dir: &Path,
) -> Result<(), BenchError> {
    let work = dir.join(format!("work-{worker}"));
    std::fs::create_dir_all(&work).map_err(|e| io_error("create", &work, e))?;
    let unsigned = work.join("unsigned.zone");
    for zone in zones.iter().skip(worker).step_by(workers) {
        crate::check_interrupted()?;
        std::fs::write(&unsigned, zone.render()).map_err(|e| io_error("write", &unsigned, e))?;
        let key_files = key.write_for(&zone.name, &work)?;
        run_tool(
            Command::new(require_binary("dnssec-signzone"))
                .args(["-q", "-z", "-S", "-O", "full", "-s", "now-3600", "-d"])
                .arg(&work)
                .arg("-e")
                .arg(format!("now+{}", VALIDITY.as_secs()))
                .arg("-K")
                .arg(&work)
                .arg("-o")
                .arg(&zone.name)
                .arg("-f")
                .arg(signed_path(dir, zone))
                .arg(&unsigned),
            &format!("dnssec-signzone {}", zone.name),
        )?;
        for file in key_files
            .iter()
            .chain(std::iter::once(&work.join(format!("dsset-{}", zone.name))))
        {
            std::fs::remove_file(file).map_err(|e| io_error("remove", file, e))?;
        }
    }
    Ok(())
}

/// `count` bulk zones, signed: from the cache under `cache` if it is complete and its signatures have
/// more than [`RESIGN_BEFORE`] left, else signed now (on every core) and cached.
fn signed_zones(count: usize, cache: &Path) -> Result<SignedZones, BenchError> {
    let dir = cache.join(format!(
        "dnssec-{count}-{ZONE_SUFFIX}-{}-{}d",
        ALGORITHM.to_ascii_lowercase(),
        VALIDITY.as_secs() / 86_400
    ));
    let unsigned = bulk_zones(count, ZONE_SUFFIX, 1);
    let stamp = dir.join(STAMP);
    let cached_expiry = std::fs::read_to_string(&stamp)
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .filter(|&e| e > unix_now() + RESIGN_BEFORE.as_secs());
    let (signed_in, expires_unix) = match cached_expiry {
        Some(e) => (None, e),
        None => {
            if dir.exists() {
                std::fs::remove_dir_all(&dir).map_err(|e| io_error("remove", &dir, e))?;
            }
            let signed_dir = dir.join("signed");
            std::fs::create_dir_all(&signed_dir).map_err(|e| io_error("create", &signed_dir, e))?;
            let started = Instant::now();
            let expires = unix_now() + VALIDITY.as_secs();
            let key = SharedKey::generate(&dir.join("key"))?;
            let workers = std::thread::available_parallelism().map_or(2, usize::from);
            eprintln!(
                "signing {count} zones with dnssec-signzone ({workers} at a time) into {}",
                dir.display()
            );
            std::thread::scope(|s| {
                let handles: Vec<_> = (0..workers)
                    .map(|w| {
                        let (unsigned, key, dir) = (&unsigned, &key, &dir);
                        s.spawn(move || sign_share(unsigned, w, workers, key, dir))
                    })
                    .collect();
                handles
                    .into_iter()
                    .try_for_each(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            })?;
            std::fs::write(&stamp, format!("{expires}\n"))
                .map_err(|e| io_error("write", &stamp, e))?;
            (Some(started.elapsed().as_secs_f64()), expires)
        }
    };
    let zones = unsigned
        .iter()
        .map(|zone| {
            let path = signed_path(&dir, zone);
            let text = std::fs::read_to_string(&path).map_err(|e| io_error("read", &path, e))?;
            Ok(with_signed_records(zone, &text))
        })
        .collect::<Result<Vec<_>, BenchError>>()?;
    Ok(SignedZones {
        zones,
        signed_in,
        expires_unix,
        dir,
    })
}

/// Runs part 9 and returns its markdown section.
pub fn run(
    zones: usize,
    runs: usize,
    concurrency: usize,
    cache: &Path,
) -> Result<String, BenchError> {
    let signed = signed_zones(zones, cache)?;
    let started = Instant::now();
    let knot = KnotServer::start(KnotConfig::new().with_zones(signed.zones.clone()));
    let knot_start = started.elapsed();
    let sweep = DnssecSweep {
        concurrency,
        ..DnssecSweep::new(knot.addr())
    };
    let qtypes: Vec<String> = sweep.types.iter().map(ToString::to_string).collect();
    let SweepSetup {
        names,
        query_file,
        runtime,
    } = SweepSetup::new(
        &signed.zones,
        &qtypes.iter().map(String::as_str).collect::<Vec<_>>(),
    )?;
    let outstanding = sweep.types.len() * concurrency;

    // Warm-up, not counted: first touches of Knot's zone tree and the page cache.
    runtime
        .block_on(sweep.run(&names))
        .map_err(|e| BenchError::new(e.to_string()))?;
    dnsperf(
        knot.addr(),
        query_file.path(),
        DNSPERF_PASSES,
        outstanding,
        true,
    )?;
    let mut times: Vec<f64> = Vec::new();
    let mut perf = Vec::new();
    let mut verdicts = String::new();
    for _ in 0..runs {
        crate::check_interrupted()?;
        let report = runtime
            .block_on(sweep.run(&names))
            .map_err(|e| BenchError::new(e.to_string()))?;
        times.push(report.elapsed.as_secs_f64());
        verdicts = ExpiryVerdict::ALL
            .iter()
            .map(|v| format!("{v}={}", report.summary.count(v)))
            .collect::<Vec<_>>()
            .join(" ");
        perf.push(dnsperf(
            knot.addr(),
            query_file.path(),
            DNSPERF_PASSES,
            outstanding,
            true,
        )?);
    }

    let per_sweep = (sweep.types.len() * zones) as f64;
    let time = Summary::of(&times);
    let zone_rate = Summary::of(&times.iter().map(|t| zones as f64 / t).collect::<Vec<_>>());
    let query_rate = Summary::of(&times.iter().map(|t| per_sweep / t).collect::<Vec<_>>());
    let perf_time = Summary::of(&perf.iter().map(|r| r.run_time).collect::<Vec<_>>());
    let perf_rate = Summary::of(&perf.iter().map(|r| r.qps).collect::<Vec<_>>());
    let mut table = Table::new(&[
        "what (SOA + DNSKEY of every zone, DO bit, UDP)",
        "runs",
        "time p50 (s)",
        "time p95 (s)",
        "zones/s p50",
        "queries/s p50",
        "queries/s min-max",
    ]);
    if let (Some(t), Some(z), Some(q)) = (time, zone_rate, query_rate) {
        table.row(vec![
            format!("nsbeacon DNSSEC sweep, {zones} zones, concurrency {concurrency}"),
            t.n.to_string(),
            format!("{:.3}", t.p50),
            format!("{:.3}", t.p95),
            num(z.p50),
            num(q.p50),
            format!("{}-{}", num(q.min), num(q.max)),
        ]);
    }
    if let (Some(t), Some(q)) = (perf_time, perf_rate) {
        table.row(vec![
            format!(
                "dnsperf -D -n {DNSPERF_PASSES} -q {outstanding} -c {DNSPERF_CLIENTS} -T {DNSPERF_THREADS}, the same queries {DNSPERF_PASSES} times"
            ),
            t.n.to_string(),
            format!("{:.3}", t.p50),
            format!("{:.3}", t.p95),
            num((DNSPERF_PASSES * zones) as f64 / t.p50),
            num(q.p50),
            format!("{}-{}", num(q.min), num(q.max)),
        ]);
    }
    let lost: u64 = perf.iter().map(|r| r.lost).sum();
    let completed: u64 = perf.iter().map(|r| r.completed).sum();
    let verdict = match (time, query_rate, perf_rate) {
        (Some(t), Some(q), Some(d)) => format!(
            "Targets:\n\n\
             - DNSSEC: {zones}-zone sweep p50 {:.3} s (target < {SWEEP_TARGET_SECS} s, a fifth of the 10 s default \
             interval) -> {}\n\
             - DNSSEC: sweep rate p50 {:.0} % of `dnsperf -D`'s on the same server (target >= 50 %) -> {}\n",
            t.p50,
            met(t.p50 < SWEEP_TARGET_SECS),
            100.0 * q.p50 / d.p50,
            met(q.p50 >= d.p50 / 2.0)
        ),
        _ => "Targets: not evaluated (missing samples).".to_owned(),
    };
    let signing = match signed.signed_in {
        Some(s) => format!("signed in this run in {s:.0} s"),
        None => "loaded from the cache (signed in an earlier run)".to_owned(),
    };
    let rendered = table.render();
    println!("{rendered}\n{verdict}");
    Ok(format!(
        "## 9. DNSSEC: expiry sweep of 10,000 signed zones\n\n\
         One Knot (`knotd`, no signing policy of its own) on 127.0.0.1 serving {zones} zones signed with \
         `dnssec-signzone` ({ALGORITHM}, NSEC, one key written under every zone's name, signatures valid until unix time {}, {:.0} days after \
         this run; {signing}; cached in `{}`), started in {:.1} s. A sweep asks every zone's SOA and DNSKEY \
         with the DO bit ({} queries), `concurrency` {concurrency} zones (the check's default), so up to \
         {outstanding} queries in flight, 1 s timeout, UDP, on a multi-threaded tokio runtime; it reads every \
         RRSIG's validity window (no crypto). `dnsperf -D` sends the same {} queries {DNSPERF_PASSES} times (`-n {DNSPERF_PASSES}`) to the same \
         Knot with as many outstanding (`-q {outstanding}`), {DNSPERF_CLIENTS} client sockets and \
         {DNSPERF_THREADS} threads, as in part 4. One warm-up round of each, then {runs} interleaved runs. \
         Last sweep's verdicts: {verdicts}. dnsperf lost {lost} of {completed} queries.\n\n{rendered}\n{verdict}\n",
        signed.expires_unix,
        (signed.expires_unix.saturating_sub(unix_now())) as f64 / 86_400.0,
        signed.dir.display(),
        knot_start.as_secs_f64(),
        per_sweep,
        per_sweep,
    ))
}
