//! SOA freshness of many zones (10,000+) with bounded concurrency.
//!
//! All queries run as futures on the caller's task (no task or thread per query). At most `concurrency`
//! zones are in flight; each zone asks the local server and the reference at the same time, so at most
//! `concurrency` queries per server are outstanding at any time. Every query is bounded by the timeout,
//! so a sweep of `n` zones ends within about `timeout * ceil(n / concurrency)` even if every server is
//! silent.
//!
//! Over UDP, each server's queries reuse a small pool of sockets (see `wire::UdpPool`) instead of a fresh
//! socket per query, which was most of a sweep's CPU. Single probes keep a fresh socket per query.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures::StreamExt;
use hickory_proto::rr::Name;

use crate::error::SpecError;
use crate::outcome::{SerialOutcome, SerialVerdict};
use crate::probe::{serial_outcome, soa_serial};
use crate::spec::{DEFAULT_TIMEOUT, Transport, validate_sweep};
use crate::wire::UdpPool;

/// Settings shared by every zone of a sweep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerialSweep {
    /// The local server.
    pub local: SocketAddr,
    /// The reference server (hidden primary), by unicast.
    pub reference: SocketAddr,
    /// `Udp` or `Tcp`.
    pub transport: Transport,
    /// Hard limit for each SOA exchange.
    pub timeout: Duration,
    /// Largest lag still reported as [`SerialVerdict::Lagging`].
    pub max_lag: u32,
    /// Most zones in flight at once; each has one query outstanding per server.
    pub concurrency: usize,
}

/// Default number of queries in flight for [`SerialSweep::new`].
pub const DEFAULT_SWEEP_CONCURRENCY: usize = 128;

impl SerialSweep {
    /// UDP, 1 s timeout, `max_lag` 0, 128 queries in flight.
    pub fn new(local: SocketAddr, reference: SocketAddr) -> Self {
        Self {
            local,
            reference,
            transport: Transport::Udp,
            timeout: DEFAULT_TIMEOUT,
            max_lag: 0,
            concurrency: DEFAULT_SWEEP_CONCURRENCY,
        }
    }

    /// Sets the transport.
    pub fn with_transport(mut self, transport: Transport) -> Self {
        self.transport = transport;
        self
    }

    /// Sets the per-exchange timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the largest lag still reported as lagging.
    pub fn with_max_lag(mut self, max_lag: u32) -> Self {
        self.max_lag = max_lag;
        self
    }

    /// Sets the most queries in flight.
    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency;
        self
    }

    /// Checks the settings and every zone name, then sweeps; see [`sweep_serials`].
    pub async fn run(&self, zones: &[Name]) -> Result<SweepReport, SpecError> {
        sweep_serials(zones, self).await
    }
}

/// One zone's result in a sweep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneSerial {
    /// The zone apex.
    pub zone: Name,
    /// Its serial outcome.
    pub outcome: SerialOutcome,
}

/// The zone furthest behind in a sweep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneLag {
    /// The zone apex.
    pub zone: Name,
    /// RFC 1982 distance, reference minus local.
    pub lag: u32,
}

/// Counts per verdict. `local_failed + behind` are the local server's problems; `reference_unreachable`
/// is the reference's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepSummary {
    /// Zones checked.
    pub zones: usize,
    /// [`SerialVerdict::InSync`].
    pub in_sync: usize,
    /// [`SerialVerdict::Lagging`].
    pub lagging: usize,
    /// [`SerialVerdict::Behind`].
    pub behind: usize,
    /// [`SerialVerdict::LocalFailed`].
    pub local_failed: usize,
    /// [`SerialVerdict::ReferenceUnreachable`].
    pub reference_unreachable: usize,
    /// The largest lag seen among lagging/behind zones, if any.
    pub worst_lag: Option<ZoneLag>,
}

impl SweepSummary {
    fn count(&mut self, zone: &Name, outcome: &SerialOutcome) {
        self.zones += 1;
        match outcome.verdict {
            SerialVerdict::InSync => self.in_sync += 1,
            SerialVerdict::Lagging => self.lagging += 1,
            SerialVerdict::Behind => self.behind += 1,
            SerialVerdict::LocalFailed(_) => self.local_failed += 1,
            SerialVerdict::ReferenceUnreachable(_) => self.reference_unreachable += 1,
        }
        if let Some(lag) = outcome.lag.filter(|&l| l > 0)
            && self.worst_lag.as_ref().is_none_or(|w| lag > w.lag)
        {
            self.worst_lag = Some(ZoneLag {
                zone: zone.clone(),
                lag,
            });
        }
    }
}

/// The result of a sweep: every zone's outcome (in input order) and the summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepReport {
    /// Per-zone outcomes, in the order the zones were given.
    pub zones: Vec<ZoneSerial>,
    /// Counts per verdict and the worst lag.
    pub summary: SweepSummary,
    /// Wall-clock time of the whole sweep.
    pub elapsed: Duration,
}

/// Checks the SOA serial of every zone at `sweep.local` against `sweep.reference`.
///
/// `Err` only for misuse: zero concurrency, a bad timeout, `Transport::Both`, or a relative zone name.
pub async fn sweep_serials(zones: &[Name], sweep: &SerialSweep) -> Result<SweepReport, SpecError> {
    validate_sweep(sweep.timeout, sweep.transport, sweep.concurrency, zones)?;
    let started = Instant::now();
    let local_pool = UdpPool::new(sweep.local, sweep.concurrency);
    let reference_pool = UdpPool::new(sweep.reference, sweep.concurrency);
    let (local_pool, reference_pool) = (&local_pool, &reference_pool);
    let checks = zones.iter().enumerate().map(|(index, zone)| async move {
        let (local, reference) = futures::join!(
            soa_serial(
                sweep.local,
                zone,
                sweep.transport,
                sweep.timeout,
                Some(local_pool)
            ),
            soa_serial(
                sweep.reference,
                zone,
                sweep.transport,
                sweep.timeout,
                Some(reference_pool)
            ),
        );
        (index, serial_outcome(local, reference, sweep.max_lag))
    });
    let mut results: Vec<(usize, SerialOutcome)> = futures::stream::iter(checks)
        .buffer_unordered(sweep.concurrency)
        .collect()
        .await;
    results.sort_unstable_by_key(|(index, _)| *index);

    let mut summary = SweepSummary::default();
    let zones: Vec<ZoneSerial> = results
        .into_iter()
        .zip(zones)
        .map(|((_, outcome), zone)| {
            summary.count(zone, &outcome);
            ZoneSerial {
                zone: zone.clone(),
                outcome,
            }
        })
        .collect();
    Ok(SweepReport {
        zones,
        summary,
        elapsed: started.elapsed(),
    })
}
