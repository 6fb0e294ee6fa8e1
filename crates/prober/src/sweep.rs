//! SOA freshness of many zones (10,000+) with bounded concurrency.
//!
//! Queries run as futures (no task or thread per query) on a few worker tasks, one per core (at most 4),
//! so a multi-threaded runtime uses every core; on a current-thread runtime the caller's task does all the
//! work. The workers take zones from one shared counter and split `concurrency` between them: at most
//! `concurrency` zones are in flight in total; each zone asks the local server and the reference at the
//! same time, so at most `concurrency` queries per server are outstanding at any time. Every query is
//! bounded by the timeout, so a sweep of `n` zones ends within about `timeout * ceil(n / concurrency)`
//! even if every server is silent.
//!
//! Over UDP, each server's queries reuse a small pool of sockets (see `wire::UdpPool`) instead of a fresh
//! socket per query, which was most of a sweep's CPU. Single probes keep a fresh socket per query.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use hickory_proto::rr::Name;

use crate::error::SpecError;
use crate::outcome::{FailReason, SerialOutcome, SerialVerdict};
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

/// Most worker tasks a sweep spreads its zones over (fewer when the machine has fewer cores).
const MAX_SWEEP_WORKERS: usize = 4;

/// Checks the SOA serial of every zone at `sweep.local` against `sweep.reference`.
///
/// The zones are spread over a few worker tasks (see [`sweep_zones`]), so a multi-threaded runtime
/// checks zones on every core, and share one UDP socket pool per server. At most `concurrency` zones are
/// in flight in total. Dropping the returned future aborts the workers.
///
/// `Err` only for misuse: zero concurrency, a bad timeout, `Transport::Both`, or a relative zone name.
pub async fn sweep_serials(zones: &[Name], sweep: &SerialSweep) -> Result<SweepReport, SpecError> {
    validate_sweep(sweep.timeout, sweep.transport, sweep.concurrency, zones)?;
    let started = Instant::now();
    let check = SerialZoneCheck {
        sweep: sweep.clone(),
        local_pool: UdpPool::new(sweep.local, sweep.concurrency),
        reference_pool: UdpPool::new(sweep.reference, sweep.concurrency),
    };
    let outcomes = sweep_zones(check, zones, sweep.concurrency).await;
    let mut summary = SweepSummary::default();
    let zones: Vec<ZoneSerial> = zones
        .iter()
        .zip(outcomes)
        .map(|(zone, outcome)| {
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

/// What a sweep does for one zone: the part that differs between the serial and the DNSSEC sweeps. The
/// rest (workers, the shared counter, bounded concurrency, zones not checked at runtime shutdown) is
/// [`sweep_zones`].
pub(crate) trait ZoneCheck: Send + Sync + 'static {
    /// One zone's result.
    type Outcome: Send + 'static;
    /// Checks one zone; must end within the sweep's timeouts (every exchange is bounded).
    fn check(&self, zone: &Name) -> impl Future<Output = Self::Outcome> + Send;
    /// The result of a zone whose worker was cancelled before checking it (only at runtime shutdown).
    fn not_checked(&self) -> Self::Outcome;
}

/// Runs `check` over every zone with at most `concurrency` zones in flight, and returns the outcomes in
/// the order of `zones`.
///
/// The zones are spread over a few worker tasks (one per core, at most 4, never more than
/// `concurrency`) spawned on the caller's runtime, so a multi-threaded runtime checks zones on every
/// core. The workers pull zone indices from one shared counter (a fast worker takes more zones).
/// `concurrency` is split between the workers. On a current-thread runtime the sweep runs on the
/// caller's task alone, as spawning would gain nothing there. Dropping the returned future aborts the
/// workers.
pub(crate) async fn sweep_zones<C: ZoneCheck>(
    check: C,
    zones: &[Name],
    concurrency: usize,
) -> Vec<C::Outcome> {
    let shared = Arc::new(SweepWork {
        check,
        zones: zones.to_vec(),
        next: AtomicUsize::new(0),
    });
    let workers = worker_count(concurrency, zones.len());
    let mut results: Vec<(usize, C::Outcome)> = if workers <= 1 {
        Arc::clone(&shared).check_zones(concurrency).await
    } else {
        let mut tasks = tokio::task::JoinSet::new();
        for worker in 0..workers {
            let in_flight = concurrency / workers + usize::from(worker < concurrency % workers);
            tasks.spawn(Arc::clone(&shared).check_zones(in_flight));
        }
        let mut results = Vec::with_capacity(zones.len());
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(part) => results.extend(part),
                // A worker only panics on a bug; keep the panic visible as it was before workers.
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                // Cancelled: the runtime is shutting down; its zones are reported as not checked below.
                Err(_) => {}
            }
        }
        results
    };
    results.sort_unstable_by_key(|(index, _)| *index);
    let mut results = results.into_iter().peekable();
    (0..zones.len())
        .map(|index| match results.next_if(|(i, _)| *i == index) {
            Some((_, outcome)) => outcome,
            None => shared.check.not_checked(),
        })
        .collect()
}

/// How many worker tasks to use: one per core (at most [`MAX_SWEEP_WORKERS`]) on a multi-threaded
/// runtime, one (the caller's task) on a current-thread runtime or outside any runtime.
fn worker_count(concurrency: usize, zones: usize) -> usize {
    let multi_threaded = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if !multi_threaded {
        return 1;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    cores
        .min(MAX_SWEEP_WORKERS)
        .min(concurrency)
        .min(zones)
        .max(1)
}

/// The serial sweep's part of a zone: the SOA at the local server and at the reference, concurrently.
struct SerialZoneCheck {
    sweep: SerialSweep,
    local_pool: UdpPool,
    reference_pool: UdpPool,
}

impl ZoneCheck for SerialZoneCheck {
    type Outcome = SerialOutcome;

    async fn check(&self, zone: &Name) -> SerialOutcome {
        let sweep = &self.sweep;
        let (local, reference) = futures::join!(
            soa_serial(
                sweep.local,
                zone,
                sweep.transport,
                sweep.timeout,
                Some(&self.local_pool)
            ),
            soa_serial(
                sweep.reference,
                zone,
                sweep.transport,
                sweep.timeout,
                Some(&self.reference_pool)
            ),
        );
        serial_outcome(local, reference, sweep.max_lag)
    }

    fn not_checked(&self) -> SerialOutcome {
        let timeout = self.sweep.timeout;
        serial_outcome(
            (Err(FailReason::Timeout), timeout),
            (Err(FailReason::Timeout), timeout),
            0,
        )
    }
}

/// What the workers of one sweep share.
struct SweepWork<C> {
    check: C,
    zones: Vec<Name>,
    /// The index of the next zone no worker has taken yet.
    next: AtomicUsize,
}

impl<C: ZoneCheck> SweepWork<C> {
    /// Checks zones taken from the shared counter, at most `in_flight` at once, until none is left.
    async fn check_zones(self: Arc<Self>, in_flight: usize) -> Vec<(usize, C::Outcome)> {
        let work = &*self;
        let indices = std::iter::from_fn(|| {
            let index = work.next.fetch_add(1, Ordering::Relaxed);
            (index < work.zones.len()).then_some(index)
        });
        let checks =
            indices.map(|index| async move { (index, work.check.check(&work.zones[index]).await) });
        futures::stream::iter(checks)
            .buffer_unordered(in_flight.max(1))
            .collect()
            .await
    }
}
