//! Times a serial sweep of many zones against real local Knot instances (local node + reference).
//!
//! ```text
//! cargo run --release -p nsbeacon-prober --example sweep -- [ZONES] [CONCURRENCY]
//! ```
//! Defaults: 10000 zones, concurrency 128. Starts two `knotd` in temp dirs on 127.0.0.1 (killed on exit),
//! the reference one serial ahead on every 10th zone; sweeps over UDP then TCP, and prints the elapsed
//! time and rate of each. Measures; asserts nothing.

use std::str::FromStr;
use std::time::Duration;

use nsbeacon_prober::proto::rr::Name;
use nsbeacon_prober::{SerialSweep, Transport};
use nsbeacon_testkit::knot::start_sweep_pair;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let zones: usize = args
        .next()
        .map(|a| a.parse().expect("ZONES must be a number"))
        .unwrap_or(10_000);
    let concurrency: usize = args
        .next()
        .map(|a| a.parse().expect("CONCURRENCY must be a number"))
        .unwrap_or(128);

    let started = std::time::Instant::now();
    let (local, reference) = start_sweep_pair(zones, "bench.test");
    let names: Vec<Name> = local
        .zones()
        .iter()
        .map(|z| Name::from_str(&z.name).expect("zone name"))
        .collect();
    println!(
        "started two knotd with {zones} zones each in {:?}",
        started.elapsed()
    );

    for transport in [Transport::Udp, Transport::Tcp] {
        let sweep = SerialSweep::new(local.addr(), reference.addr())
            .with_transport(transport)
            .with_timeout(Duration::from_secs(2))
            .with_max_lag(1)
            .with_concurrency(concurrency);
        let report = sweep.run(&names).await.expect("valid sweep settings");
        let s = &report.summary;
        println!(
            "{transport}: {zones} zones (2 SOA queries each), concurrency {concurrency}: {:?}, {:.0} zones/s; \
             in_sync={} lagging={} behind={} local_failed={} reference_unreachable={}",
            report.elapsed,
            zones as f64 / report.elapsed.as_secs_f64(),
            s.in_sync,
            s.lagging,
            s.behind,
            s.local_failed,
            s.reference_unreachable
        );
    }
}
