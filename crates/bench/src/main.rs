//! nsbeacon's benchmarks (issue 7). Not tests: they measure and print, they assert no timing.
//!
//! ```text
//! nsbeacon-bench backend   [--rounds N] [--configure-routes N]            # part 2
//! nsbeacon-bench zones     [--zones N] [--runs N] [--concurrency N]       # part 4
//! nsbeacon-bench failover  --nsbeacon PATH [--trials N] [--profiles ...]  # part 1
//! nsbeacon-bench footprint --nsbeacon PATH [--seconds N]                  # part 3
//! nsbeacon-bench restart   --nsbeacon PATH [--trials N]                   # part 5
//! nsbeacon-bench fleet     --nsbeacon PATH [--nodes N] [--rounds N] [--seconds N]   # part 6
//! nsbeacon-bench flap      --nsbeacon PATH [--seconds N] [--loss-percent N]         # part 7
//! nsbeacon-bench load      --nsbeacon PATH [--seconds N]                  # part 8
//! nsbeacon-bench dnssec    [--zones N] [--runs N] [--concurrency N] [--cache DIR]  # part 9
//! ```
//! Each part prints its tables and, with `--out FILE`, writes its markdown section there; `scripts/bench`
//! runs them all and assembles BENCHMARKS.md. Needs root (network namespaces) and the Debian packages of
//! `scripts/install-deps`.

mod backend_ops;
mod daemon;
mod dnssec;
mod failover;
mod flap;
mod fleet;
mod footprint;
mod lab;
mod load;
mod pooled;
mod restart;
mod rib;
mod stats;
mod zones;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Parser, Subcommand};

/// Why a benchmark could not run; the message says what failed and where.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BenchError(String);

impl BenchError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> BenchError {
        BenchError(message.into())
    }
}

impl From<nsbeacon_testkit::netns::NetnsError> for BenchError {
    fn from(e: nsbeacon_testkit::netns::NetnsError) -> BenchError {
        BenchError(format!("network namespace setup: {e}"))
    }
}

/// Set by SIGTERM/SIGINT: the parts stop at the next trial/round and return, so that every daemon they
/// started is stopped by its guard (the daemons run in their own process groups and do not get the signal).
static STOP: AtomicBool = AtomicBool::new(false);

/// An error if SIGTERM/SIGINT arrived; the long loops call it between trials.
pub fn check_interrupted() -> Result<(), BenchError> {
    if STOP.load(Ordering::Relaxed) {
        Err(BenchError::new(
            "interrupted (SIGTERM/SIGINT): stopped early, daemons cleaned up",
        ))
    } else {
        Ok(())
    }
}

/// Watches for SIGTERM and SIGINT on a thread of its own and sets [`STOP`].
fn watch_signals() {
    let spawned = std::thread::Builder::new()
        .name("signals".into())
        .spawn(|| {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                use tokio::signal::unix::{SignalKind, signal};
                let (Ok(mut term), Ok(mut int)) = (
                    signal(SignalKind::terminate()),
                    signal(SignalKind::interrupt()),
                ) else {
                    return;
                };
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
                eprintln!("nsbeacon-bench: signal received, stopping after the current trial");
                STOP.store(true, Ordering::Relaxed);
            });
        });
    if let Err(e) = spawned {
        eprintln!(
            "nsbeacon-bench: cannot watch for signals ({e}); SIGTERM will leave daemons behind"
        );
    }
}

#[derive(Debug, Parser)]
#[command(name = "nsbeacon-bench", about = "nsbeacon's benchmarks (issue 7)")]
struct Cli {
    /// Write the part's markdown section to this file.
    #[arg(long, global = true)]
    out: Option<PathBuf>,
    #[command(subcommand)]
    part: Part,
}

#[derive(Debug, Subcommand)]
enum Part {
    /// Part 2: backend operation latency (BIRD socket, birdc, birdc configure, FRR vty socket and vtysh).
    Backend {
        /// Withdraw/announce rounds per operation.
        #[arg(long, default_value_t = 20)]
        rounds: usize,
        /// Extra static routes in the config for the `birdc configure` variant.
        #[arg(long, default_value_t = 5000)]
        configure_routes: usize,
    },
    /// Part 4: 10,000-zone SOA + serial sweep vs dnsperf on the same Knot.
    Zones {
        /// Zones per Knot.
        #[arg(long, default_value_t = 10_000)]
        zones: usize,
        /// Measured runs of each (after one warm-up).
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Queries in flight (nsbeacon's default serial-check concurrency is 64).
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
    },
    /// Part 1: failure -> withdrawal seen at the upstream, and recovery -> re-announce.
    Failover {
        /// The nsbeacon binary.
        #[arg(long)]
        nsbeacon: PathBuf,
        /// Trials per (backend, profile, failure).
        #[arg(long, default_value_t = 20)]
        trials: usize,
        /// Backends to measure: bird, frr.
        #[arg(long, value_delimiter = ',', default_value = "bird,frr")]
        backends: Vec<String>,
        /// Profiles to measure: default, aggressive, watch (the defaults plus the process watch).
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "aggressive,default,watch"
        )]
        profiles: Vec<String>,
        /// Run the BIRD and FRR labs one after the other instead of side by side.
        #[arg(long)]
        sequential: bool,
    },
    /// Part 5: the node's BIRD crashes and restarts while DNS is healthy: time until the upstream has the
    /// route again, with and without nsbeacon's decision files.
    Restart {
        /// The nsbeacon binary.
        #[arg(long)]
        nsbeacon: PathBuf,
        /// Trials per mode.
        #[arg(long, default_value_t = 10)]
        trials: usize,
    },
    /// Part 3: RSS and CPU of nsbeacon over a window (20 services at 1 Hz; one 10,000-zone sweep).
    Footprint {
        /// The nsbeacon binary.
        #[arg(long)]
        nsbeacon: PathBuf,
        /// Measurement window per scenario.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Services in the first scenario.
        #[arg(long, default_value_t = 20)]
        services: usize,
        /// Zones in the sweep scenario.
        #[arg(long, default_value_t = 10_000)]
        zones: usize,
    },
    /// Part 8: the CPU of the load readers (Knot, NSD, BIND, kernel) at a 1 s interval, on vs off.
    Load {
        /// The nsbeacon binary.
        #[arg(long)]
        nsbeacon: PathBuf,
        /// The measurement window.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
    /// Part 5: the fleet guard on etcd: guard-call latency, etcd writes in steady state, RSS with the guard.
    Fleet {
        /// The nsbeacon binary.
        #[arg(long)]
        nsbeacon: PathBuf,
        /// Fleet nodes (guard members, then nsbeacon daemons).
        #[arg(long, default_value_t = 5)]
        nodes: usize,
        /// Guard calls per scenario.
        #[arg(long, default_value_t = 200)]
        rounds: usize,
        /// The steady-state window.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
    /// Part 7: route changes while the DNS server drops a share of its queries, with and without fast
    /// confirmation (issue 15).
    Flap {
        /// The nsbeacon binary.
        #[arg(long)]
        nsbeacon: PathBuf,
        /// The window per setting (both run side by side).
        #[arg(long, default_value_t = 600)]
        seconds: u64,
        /// Share of the queries the relay drops, in percent.
        #[arg(long, default_value_t = 30)]
        loss_percent: u32,
    },
    /// Part 9: DNSSEC expiry sweep of 10,000 signed zones vs `dnsperf -D` on the same Knot (issue 16).
    Dnssec {
        /// Signed zones on the Knot.
        #[arg(long, default_value_t = 10_000)]
        zones: usize,
        /// Measured runs of each (after one warm-up).
        #[arg(long, default_value_t = 10)]
        runs: usize,
        /// Zones in flight (the dnssec check's default is 64, two queries each).
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Where the signed zones are kept between runs (signing 10,000 zones takes minutes).
        #[arg(long, default_value = "target/bench-cache")]
        cache: PathBuf,
    },
}

fn main() {
    let cli = Cli::parse();
    watch_signals();
    let result = match cli.part {
        Part::Backend {
            rounds,
            configure_routes,
        } => backend_ops::run(rounds, configure_routes),
        Part::Zones {
            zones,
            runs,
            concurrency,
        } => zones::run(zones, runs, concurrency),
        Part::Failover {
            nsbeacon,
            trials,
            backends,
            profiles,
            sequential,
        } => failover::run(&nsbeacon, trials, &backends, &profiles, sequential),
        Part::Footprint {
            nsbeacon,
            seconds,
            services,
            zones,
        } => footprint::run(&nsbeacon, seconds, services, zones),
        Part::Restart { nsbeacon, trials } => restart::run(&nsbeacon, trials),
        Part::Load { nsbeacon, seconds } => load::run(&nsbeacon, seconds),
        Part::Fleet {
            nsbeacon,
            nodes,
            rounds,
            seconds,
        } => fleet::run(&nsbeacon, nodes, rounds, seconds),
        Part::Flap {
            nsbeacon,
            seconds,
            loss_percent,
        } => flap::run(&nsbeacon, seconds, loss_percent),
        Part::Dnssec {
            zones,
            runs,
            concurrency,
            cache,
        } => dnssec::run(zones, runs, concurrency, &cache),
    };
    match result {
        Ok(markdown) => {
            if let Some(path) = cli.out
                && let Err(e) = std::fs::write(&path, markdown)
            {
                eprintln!("nsbeacon-bench: cannot write {}: {e}", path.display());
                std::process::exit(1);
            }
        }
        Err(e) => {
            eprintln!("nsbeacon-bench: {e}");
            std::process::exit(1);
        }
    }
}
