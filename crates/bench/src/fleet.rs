//! Part 6: the fleet guard on etcd (issue 13). A 3-member etcd on loopback (the testkit's, 10 ms raft
//! heartbeat), and:
//!
//! - (a) the time one guard call takes, `Member::try_withdraw` through `nsbeacon-fleet` exactly as the daemon
//!   calls it (the daemon's `nsbeacon_fleet_guard_duration_seconds` times the same call): nodes registered
//!   and announcing, one withdrawal at a time that the guard allows (range read + transaction), one it holds
//!   (range read only), and every node asking at the same instant (transactions racing);
//! - (b) what a steady fleet costs etcd: N nsbeacon daemons (each with its own BIRD, one shared Knot) healthy
//!   for a window; etcd's own `/metrics` on every member before and after (revision, puts, transactions,
//!   deletes, lease renewals, ranges);
//! - (c) the RSS of one nsbeacon with `[fleet]` next to one without it, sampled over the same window.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use nsbeacon_fleet::{
    FleetSettings, GuardOutcome, Member, MinAnnouncing, RecordState, RecordUpdate,
};
use nsbeacon_testkit::bird::BirdDaemon;
use nsbeacon_testkit::etcd::EtcdCluster;
use nsbeacon_testkit::knot::{KnotConfig, KnotServer, Zone};

use crate::BenchError;
use crate::daemon::Nsbeacon;
use crate::footprint::{base_config, bird_with_protocols, sample};
use crate::stats::{Summary, Table, num};

/// etcd members.
const MEMBERS: usize = 3;
/// The service every node registers.
const SERVICE: &str = "dns";
/// The zone the nodes probe.
const ZONE: &str = "fleet.bench.test.";
/// The target for (a): a guard call's p50 in milliseconds.
const GUARD_P50_TARGET_MS: f64 = 5.0;
/// The target for (c): RSS of one nsbeacon with the fleet guard on, in MiB.
const RSS_TARGET_MIB: f64 = 12.0;

fn update(state: RecordState) -> RecordUpdate {
    RecordUpdate {
        state,
        reason: (!state.announces()).then(|| "bench: no reply".to_owned()),
        targets: if state.announces() {
            vec!["anycast_dns".to_owned()]
        } else {
            Vec::new()
        },
        since: 1_700_000_000,
    }
}

/// The daemon's defaults (`lease_ttl` 10 s, `timeout` 1 s, `guard_timeout` 200 ms).
fn settings(etcd: &EtcdCluster, fleet: &str, node: &str) -> FleetSettings {
    FleetSettings::new(etcd.endpoints(), fleet, node)
}

/// Guard-call durations and outcomes of one scenario.
#[derive(Debug, Default)]
struct Calls {
    durations: Vec<Duration>,
    allowed: usize,
    held: usize,
    unavailable: usize,
    errors: Vec<String>,
}

impl Calls {
    fn record(&mut self, took: Duration, outcome: &GuardOutcome) {
        self.durations.push(took);
        match outcome {
            GuardOutcome::Allowed { .. } => self.allowed += 1,
            GuardOutcome::Held { .. } => self.held += 1,
            GuardOutcome::Unavailable(e) => {
                self.unavailable += 1;
                if self.errors.len() < 3 {
                    self.errors.push(e.to_string());
                }
            }
        }
    }
}

async fn restore(members: &[Member]) -> Result<(), BenchError> {
    for m in members {
        m.put_record(SERVICE, update(RecordState::Up))
            .await
            .map_err(|e| BenchError::new(format!("put an up record: {e}")))?;
    }
    Ok(())
}

/// (a): `rounds` calls per scenario with `nodes` registered members.
async fn guard_latency(
    etcd: &EtcdCluster,
    nodes: usize,
    rounds: usize,
) -> Result<Vec<(String, Calls)>, BenchError> {
    let mut members = Vec::new();
    for i in 0..nodes {
        let member = Member::start(settings(etcd, "bench", &format!("node-{i}")))
            .map_err(|e| BenchError::new(format!("fleet member settings: {e}")))?;
        if !member.wait_registered(Duration::from_secs(10)).await {
            return Err(BenchError::new(format!(
                "node-{i} got no etcd lease within 10 s: {:?}",
                *member.status().borrow()
            )));
        }
        members.push(member);
    }
    restore(&members).await?;
    let nodes_u32 = u32::try_from(nodes).unwrap_or(u32::MAX);
    let mut out = Vec::new();

    // One node at a time, allowed (min 1: the others announce): range read + one transaction.
    let mut allowed = Calls::default();
    for round in 0..rounds {
        crate::check_interrupted()?;
        let member = &members[round % nodes];
        let started = Instant::now();
        let outcome = member
            .try_withdraw(SERVICE, MinAnnouncing::Count(1), update(RecordState::Down))
            .await;
        allowed.record(started.elapsed(), &outcome);
        member
            .put_record(SERVICE, update(RecordState::Up))
            .await
            .map_err(|e| BenchError::new(format!("put an up record: {e}")))?;
    }
    out.push((
        format!("one node withdraws, allowed (min_announcing 1, {nodes} announcing)"),
        allowed,
    ));

    // One node at a time, held (min = nodes: never enough others): one range read, nothing written.
    let mut held = Calls::default();
    for round in 0..rounds {
        crate::check_interrupted()?;
        let member = &members[round % nodes];
        let started = Instant::now();
        let outcome = member
            .try_withdraw(
                SERVICE,
                MinAnnouncing::Count(nodes_u32),
                update(RecordState::Down),
            )
            .await;
        held.record(started.elapsed(), &outcome);
    }
    restore(&members).await?;
    out.push((
        format!("one node withdraws, held (min_announcing {nodes})"),
        held,
    ));

    // Every node at the same instant (min 3 of 5: 2 allowed, 3 held when nodes = 5): the transactions race.
    let min = u32::try_from(nodes.div_ceil(2)).unwrap_or(1);
    let mut racing = Calls::default();
    for _ in 0..rounds.div_ceil(nodes).max(1) {
        crate::check_interrupted()?;
        let calls = members.iter().map(|m| async move {
            let started = Instant::now();
            let outcome = m
                .try_withdraw(
                    SERVICE,
                    MinAnnouncing::Count(min),
                    update(RecordState::Down),
                )
                .await;
            (started.elapsed(), outcome)
        });
        for (took, outcome) in join_all(calls).await {
            racing.record(took, &outcome);
        }
        restore(&members).await?;
    }
    out.push((
        format!("all {nodes} nodes at once (min_announcing {min})"),
        racing,
    ));

    for member in members {
        let _ = member.leave().await;
    }
    Ok(out)
}

/// Runs futures concurrently on the current task and collects their outputs in order.
async fn join_all<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let handles: Vec<_> = futures.map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = handles.iter().map(|_| None).collect();
    let mut pending = handles;
    let mut done = 0;
    let total = outputs.len();
    std::future::poll_fn(|cx| {
        for (i, fut) in pending.iter_mut().enumerate() {
            if outputs[i].is_none()
                && let std::task::Poll::Ready(v) = fut.as_mut().poll(cx)
            {
                outputs[i] = Some(v);
                done += 1;
            }
        }
        if done == total {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

/// The counters read from each etcd member's `/metrics`.
#[derive(Debug, Clone, Default)]
struct EtcdCounters {
    /// Per member, in member order: name -> value.
    members: Vec<Vec<(String, f64)>>,
}

/// The series (name and labels as written) whose deltas part (b) reports.
const SERIES: [&str; 8] = [
    "etcd_debugging_mvcc_current_revision",
    "etcd_mvcc_put_total",
    "etcd_mvcc_txn_total",
    "etcd_mvcc_delete_total",
    "etcd_mvcc_range_total",
    "etcd_debugging_lease_renewed_total",
    "etcd_server_proposals_committed_total",
    "grpc_server_msg_received_total{grpc_method=\"LeaseKeepAlive\"",
];

/// `GET path` from `addr` over HTTP/1.0, bounded: the body of a 200 reply. HTTP/1.0, because an HTTP/1.1
/// reply may come chunked, and the chunk-size lines split metric lines (counts went missing that way).
fn get(addr: std::net::SocketAddr, path: &str) -> Result<String, BenchError> {
    use std::io::{Read, Write};
    let fail = |what: &str, e: std::io::Error| {
        BenchError::new(format!("GET http://{addr}{path}: {what}: {e}"))
    };
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| fail("connect", e))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| fail("socket", e))?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .map_err(|e| fail("send", e))?;
    let mut reply = String::new();
    stream
        .read_to_string(&mut reply)
        .map_err(|e| fail("read", e))?;
    match reply.split_once("\r\n\r\n") {
        Some((head, body))
            if head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200") =>
        {
            Ok(body.to_owned())
        }
        _ => Err(BenchError::new(format!(
            "GET http://{addr}{path}: unexpected reply {}",
            reply.lines().next().unwrap_or("")
        ))),
    }
}

/// `GET path` from an nsbeacon's HTTP listener on 127.0.0.1:`port` (see [`get`]).
fn nsbeacon_get(port: u16, path: &str) -> Result<String, BenchError> {
    get(std::net::SocketAddr::from(([127, 0, 0, 1], port)), path)
}

fn read_counters(etcd: &EtcdCluster) -> Result<EtcdCounters, BenchError> {
    let mut members = Vec::new();
    for m in 0..MEMBERS {
        let body = get(etcd.client_addr(m), "/metrics")?;
        let values = SERIES
            .iter()
            .map(|series| {
                let value = if let Some((name, labels)) = series.split_once('{') {
                    // A labelled series: the sum over every line of `name` that has `labels`.
                    body.lines()
                        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(labels))
                        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                        .sum()
                } else {
                    body.lines()
                        .find(|l| l.split(' ').next() == Some(*series))
                        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                        .unwrap_or(f64::NAN)
                };
                ((*series).to_owned(), value)
            })
            .collect();
        members.push(values);
    }
    Ok(EtcdCounters { members })
}

/// A member's value of `series`.
fn value(c: &EtcdCounters, member: usize, series: &str) -> f64 {
    c.members[member]
        .iter()
        .find(|(s, _)| s == series)
        .map_or(f64::NAN, |(_, v)| *v)
}

/// A config for node `i` of part (b): one service announcing `anycast_dns` while the shared Knot answers
/// (defaults: 1 s interval), flap damping off (the guard rounds flap every node on purpose; with the
/// defaults a node would stay suppressed after two rounds), and `[fleet]` when `etcd` is given.
fn node_config(
    bird: &BirdDaemon,
    port: u16,
    knot: &KnotServer,
    fleet: Option<(&EtcdCluster, &str)>,
) -> String {
    let mut config = base_config(&bird.socket(), port);
    let mut min = String::new();
    if let Some((etcd, node)) = fleet {
        let endpoints = etcd
            .endpoints()
            .iter()
            .map(|e| format!("\"{e}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = write!(
            config,
            "[fleet]\nendpoints = [{endpoints}]\nname = \"steady\"\nnode = \"{node}\"\n\n"
        );
        min = "min_announcing = 2\n".to_owned();
    }
    let _ = write!(
        config,
        "[[service]]\nname = \"{SERVICE}\"\nannounce = [\"anycast_dns\"]\n{min}\n\
         [service.damping]\nenabled = false\n\n\
         [[service.check]]\nname = \"soa\"\ntarget = \"{}\"\nqname = \"{ZONE}\"\n",
        knot.addr()
    );
    config
}

/// What part (b) and (c) measured.
struct Steady {
    window: f64,
    before: EtcdCounters,
    after: EtcdCounters,
    rss_fleet: Option<Summary>,
    rss_fleet_all_max: f64,
    rss_plain: Option<Summary>,
    hwm_fleet: f64,
    hwm_plain: f64,
    threads: (u64, u64),
    guard_calls: String,
    daemon_guard: DaemonGuard,
}

/// One outcome's histogram: count, sum in seconds, cumulative buckets `(le, count)`.
type Histogram = (f64, f64, Vec<(f64, f64)>);

/// The daemons' own `nsbeacon_fleet_guard_duration_seconds`, summed over the fleet nodes, per outcome.
#[derive(Debug, Default)]
struct DaemonGuard {
    rounds: usize,
    /// Per round, the nodes' states while the Knot hung (e.g. `down 3, held 2`).
    states: Vec<String>,
    /// Hangs that started before every node was up again (within 60 s), with the states then.
    not_up: Vec<String>,
    /// Nodes seen down 7 s into the hangs, over all rounds.
    down: usize,
    /// The distinct guard-related clauses of the nodes' reasons, prefixed by their state.
    reasons: std::collections::BTreeSet<String>,
    /// outcome -> its histogram.
    outcomes: std::collections::BTreeMap<String, Histogram>,
}

/// The value of label `name` in a metric line.
fn label<'l>(line: &'l str, name: &str) -> Option<&'l str> {
    let start = line.find(&format!("{name}=\""))? + name.len() + 2;
    let rest = &line[start..];
    Some(&rest[..rest.find('"')?])
}

impl DaemonGuard {
    fn add(&mut self, metrics: &str) {
        const NAME: &str = "nsbeacon_fleet_guard_duration_seconds";
        for line in metrics.lines().filter(|l| l.starts_with(NAME)) {
            let (Some(outcome), Some(value)) = (
                label(line, "outcome"),
                line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()),
            ) else {
                continue;
            };
            let entry = self.outcomes.entry(outcome.to_owned()).or_default();
            if line.starts_with(&format!("{NAME}_count")) {
                entry.0 += value;
            } else if line.starts_with(&format!("{NAME}_sum")) {
                entry.1 += value;
            } else if let Some(le) = label(line, "le") {
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap_or(f64::NAN)
                };
                match entry.2.iter_mut().find(|(b, _)| *b == le) {
                    Some(bucket) => bucket.1 += value,
                    None => entry.2.push((le, value)),
                }
            }
        }
    }
}

/// The upper bound (ms) of the first bucket holding at least `q` of the calls.
fn bucket_quantile(count: f64, buckets: &[(f64, f64)], q: f64) -> String {
    let mut sorted = buckets.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    sorted.iter().find(|(_, c)| *c >= q * count).map_or_else(
        || "n/a".to_owned(),
        |(le, _)| {
            if le.is_infinite() {
                "> largest bucket".to_owned()
            } else {
                format!("<= {}", num(le * 1000.0))
            }
        },
    )
}

/// After the steady window: `rounds` times, the shared Knot hangs (every node fails at once, so every
/// node asks its guard) and comes back; then every fleet node's guard histogram is read.
fn daemon_guard_rounds(
    knot: &KnotServer,
    daemons: &[(Nsbeacon, u16)],
    rounds: usize,
) -> Result<DaemonGuard, BenchError> {
    let mut result = DaemonGuard {
        rounds,
        ..DaemonGuard::default()
    };
    let node_state = |port: u16| -> Option<String> {
        let body = nsbeacon_get(port, "/status").ok()?;
        let doc = serde_json::from_str::<serde_json::Value>(&body).ok()?;
        doc["services"][0]["state"].as_str().map(str::to_owned)
    };
    for round in 0..rounds {
        crate::check_interrupted()?;
        // Every node up again first (rise after the last hang, damping), so each hang starts alike.
        let up = nsbeacon_testkit::wait_until(Duration::from_secs(60), || {
            daemons
                .iter()
                .all(|(_, port)| node_state(*port).as_deref() == Some("up"))
        });
        if !up {
            let states: Vec<String> = daemons
                .iter()
                .map(|(_, port)| node_state(*port).unwrap_or_else(|| "no answer".to_owned()))
                .collect();
            result
                .not_up
                .push(format!("before hang {}: {}", round + 1, states.join(", ")));
        }
        knot.signal(nsbeacon_testkit::Signal::SIGSTOP);
        // fall 3 at 1 s, 1 s timeouts: every node has decided within about 5 s.
        std::thread::sleep(Duration::from_secs(7));
        let mut states = std::collections::BTreeMap::<String, usize>::new();
        for (_, port) in daemons {
            let service = nsbeacon_get(*port, "/status")
                .ok()
                .and_then(|body| serde_json::from_str::<serde_json::Value>(&body).ok())
                .map(|doc| doc["services"][0].clone())
                .unwrap_or_default();
            let mut state = service["state"].as_str().unwrap_or("no answer").to_owned();
            if service["suppressed"].as_bool() == Some(true) {
                state.push_str(" (suppressed by damping)");
            }
            // Why a down node withdrew, as its /status says (the guard's answer or a local decision).
            if let Some(why) = service["reason"].as_str().and_then(|r| {
                r.split(';')
                    .find(|part| part.contains("guard") || part.contains("locally"))
            }) {
                result
                    .reasons
                    .insert(format!("{state}:{}", why.trim().trim_end_matches(')')));
            }
            if state.starts_with("down") {
                result.down += 1;
            }
            *states.entry(state).or_default() += 1;
        }
        result.states.push(
            states
                .iter()
                .map(|(state, n)| format!("{state} {n}"))
                .collect::<Vec<_>>()
                .join(", "),
        );
        knot.signal(nsbeacon_testkit::Signal::SIGCONT);
    }
    // The last recovery too (a held node may ask again while the others come back).
    nsbeacon_testkit::wait_until(Duration::from_secs(60), || {
        daemons
            .iter()
            .all(|(_, port)| node_state(*port).as_deref() == Some("up"))
    });
    for (_, port) in daemons {
        result.add(&nsbeacon_get(*port, "/metrics")?);
    }
    Ok(result)
}

fn steady(binary: &Path, nodes: usize, seconds: u64) -> Result<Steady, BenchError> {
    let etcd = EtcdCluster::start(MEMBERS);
    let knot = KnotServer::start(KnotConfig::new().with_zone(Zone::new(ZONE, 1)));
    let mut birds = Vec::new();
    let mut daemons = Vec::new();
    for i in 0..=nodes {
        let bird = bird_with_protocols(&["anycast_dns".to_owned()]);
        let port = nsbeacon_testkit::free_port();
        // The last one runs without [fleet]: the RSS figure to compare with.
        let fleet = (i < nodes).then(|| format!("node-{i}"));
        let config = node_config(
            &bird,
            port,
            &knot,
            fleet.as_deref().map(|node| (&etcd, node)),
        );
        daemons.push((Nsbeacon::start(binary, &config)?, port));
        birds.push(bird);
    }
    let all_up = nsbeacon_testkit::wait_until(Duration::from_secs(30), || {
        daemons.iter().all(|(d, _)| {
            d.events().iter().any(|e| {
                e.message == "route target changed" && e.field("state") == Some("announced")
            })
        })
    });
    if !all_up {
        return Err(BenchError::new(
            "not every nsbeacon announced within 30 s of start",
        ));
    }
    let registered = nsbeacon_testkit::wait_until(Duration::from_secs(15), || {
        nsbeacon_get(daemons[0].1, "/fleet")
            .is_ok_and(|body| body.matches("\"state\":\"up\"").count() >= nodes)
    });
    if !registered {
        return Err(BenchError::new(format!(
            "node-0's /fleet does not show {nodes} nodes up within 15 s: {}",
            nsbeacon_get(daemons[0].1, "/fleet").unwrap_or_else(|e| e.to_string())
        )));
    }
    // Let start-up writes settle (records, the first keep-alives).
    std::thread::sleep(Duration::from_secs(3));
    let before = read_counters(&etcd)?;
    let started = Instant::now();
    let fleet_pid = daemons[0].0.pid();
    let plain_pid = daemons[nodes].0.pid();
    let (mut rss_fleet, mut rss_plain) = (Vec::new(), Vec::new());
    let end = started + Duration::from_secs(seconds);
    loop {
        crate::check_interrupted()?;
        for (d, _) in &mut daemons {
            if !d.is_running() {
                return Err(BenchError::new(format!(
                    "an nsbeacon exited during the window; log: {}",
                    d.log_path().display()
                )));
            }
        }
        rss_fleet.push(sample(fleet_pid)?.rss_kib as f64 / 1024.0);
        rss_plain.push(sample(plain_pid)?.rss_kib as f64 / 1024.0);
        if Instant::now() >= end {
            break;
        }
        std::thread::sleep(
            Duration::from_secs(1).min(end.saturating_duration_since(Instant::now())),
        );
    }
    let window = started.elapsed().as_secs_f64();
    let after = read_counters(&etcd)?;
    let mut rss_fleet_all_max: f64 = 0.0;
    for (d, _) in &daemons[..nodes] {
        rss_fleet_all_max = rss_fleet_all_max.max(sample(d.pid())?.hwm_kib as f64 / 1024.0);
    }
    let fleet_last = sample(fleet_pid)?;
    let plain_last = sample(plain_pid)?;
    let guard_calls = nsbeacon_get(daemons[0].1, "/metrics")
        .map(|m| {
            m.lines()
                .filter(|l| l.starts_with("nsbeacon_fleet_guard_duration_seconds_count"))
                .map(|l| l.rsplit(' ').next().unwrap_or("?").to_owned())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_else(|e| format!("unreadable: {e}"));
    let daemon_guard = daemon_guard_rounds(&knot, &daemons[..nodes], 3)?;
    drop(daemons);
    drop(birds);
    Ok(Steady {
        window,
        before,
        after,
        rss_fleet: Summary::of(&rss_fleet),
        rss_fleet_all_max,
        rss_plain: Summary::of(&rss_plain),
        hwm_fleet: fleet_last.hwm_kib as f64 / 1024.0,
        hwm_plain: plain_last.hwm_kib as f64 / 1024.0,
        threads: (fleet_last.threads, plain_last.threads),
        guard_calls: if guard_calls.is_empty() {
            "no series (no guard call yet)".to_owned()
        } else {
            guard_calls
        },
        daemon_guard,
    })
}

/// Runs part 6 and returns its markdown section.
pub fn run(binary: &Path, nodes: usize, rounds: usize, seconds: u64) -> Result<String, BenchError> {
    if nodes < 2 {
        return Err(BenchError::new("--nodes must be at least 2"));
    }
    let mut verdicts = Vec::new();
    let mut notes = String::new();

    // (a)
    let etcd = EtcdCluster::start(MEMBERS);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| BenchError::new(format!("tokio runtime: {e}")))?;
    let scenarios = runtime.block_on(guard_latency(&etcd, nodes, rounds))?;
    drop(runtime);
    drop(etcd);
    let mut guard_table = Table::new(&[
        "guard call (Member::try_withdraw)",
        "calls",
        "p50",
        "p95",
        "max",
        "allowed / held / unavailable",
    ]);
    for (name, calls) in &scenarios {
        let s = Summary::of_ms(&calls.durations);
        guard_table.row(vec![
            name.clone(),
            calls.durations.len().to_string(),
            s.map_or_else(|| "n/a".into(), |s| num(s.p50)),
            s.map_or_else(|| "n/a".into(), |s| num(s.p95)),
            s.map_or_else(|| "n/a".into(), |s| num(s.max)),
            format!("{} / {} / {}", calls.allowed, calls.held, calls.unavailable),
        ]);
        if !calls.errors.is_empty() {
            let _ = writeln!(
                notes,
                "- {name}: {} call(s) unavailable, e.g. `{}`.",
                calls.unavailable,
                calls.errors.join("`; `")
            );
        }
    }
    if let Some((name, calls)) = scenarios.first() {
        let s = Summary::of_ms(&calls.durations);
        let met = s.is_some_and(|s| s.p50 < GUARD_P50_TARGET_MS);
        verdicts.push(format!(
            "- Fleet: guard call p50 {} ms ({name}; target < {GUARD_P50_TARGET_MS} ms) -> {}",
            s.map_or_else(|| "n/a".into(), |s| num(s.p50)),
            if met { "met" } else { "missed" }
        ));
    }
    let guard_rendered = guard_table.render();
    println!("{guard_rendered}");

    // (b) and (c)
    let st = steady(binary, nodes, seconds)?;
    let minutes = st.window / 60.0;
    let delta = |series: &str, member: usize| {
        value(&st.after, member, series) - value(&st.before, member, series)
    };
    let sum = |series: &str| (0..MEMBERS).map(|m| delta(series, m)).sum::<f64>();
    let per_node_min = |v: f64| v / nodes as f64 / minutes;
    let mut writes = Table::new(&[
        "etcd counter (delta over the window)",
        "total",
        "per node per minute",
        "counted on",
    ]);
    let rows: [(&str, &str, f64); 7] = [
        (
            "revision (every put, delete or writing txn bumps it)",
            "member 0 (all agree)",
            delta(SERIES[0], 0),
        ),
        (
            "puts (`etcd_mvcc_put_total`)",
            "member 0 (every member applies each)",
            delta(SERIES[1], 0),
        ),
        (
            "transactions (`etcd_mvcc_txn_total`)",
            "member 0",
            delta(SERIES[2], 0),
        ),
        (
            "deletes (`etcd_mvcc_delete_total`)",
            "member 0",
            delta(SERIES[3], 0),
        ),
        (
            "lease renewals (`etcd_debugging_lease_renewed_total`)",
            "sum of members (the leader renews)",
            sum(SERIES[5]),
        ),
        (
            "keep-alive messages received (`grpc_server_msg_received_total{grpc_method=\"LeaseKeepAlive\"}`)",
            "sum of members",
            sum(SERIES[7]),
        ),
        (
            "reads (`etcd_mvcc_range_total`)",
            "sum of members (each read is served by one)",
            sum(SERIES[4]),
        ),
    ];
    for (name, on, v) in rows {
        writes.row(vec![
            name.to_owned(),
            if v.is_nan() {
                "n/a".into()
            } else {
                format!("{v:.0}")
            },
            if v.is_nan() {
                "n/a".into()
            } else {
                num(per_node_min(v))
            },
            on.to_owned(),
        ]);
    }
    let proposals = delta(SERIES[6], 0);
    let _ = writeln!(
        notes,
        "- (b) raft proposals committed on member 0 over the window: {} (lease keep-alives are answered by \
         the leader without a proposal; etcd 3.4 proposes lease checkpoints only when enabled).",
        if proposals.is_nan() {
            "n/a".to_owned()
        } else {
            format!("{proposals:.0}")
        }
    );
    let _ = writeln!(
        notes,
        "- (b) node-0's `nsbeacon_fleet_guard_duration_seconds_count` at the end: {} (no withdrawal in a \
         steady window).",
        st.guard_calls
    );
    let revision = delta(SERIES[0], 0);
    let renewals = sum(SERIES[5]);
    verdicts.push(format!(
        "- Fleet: {} etcd writes (revision delta) per node per minute in steady state, {} lease renewals \
         (target: lease keep-alives only, i.e. 0 writes) -> {}",
        if revision.is_nan() { "n/a".into() } else { num(per_node_min(revision)) },
        if renewals.is_nan() { "n/a".into() } else { num(per_node_min(renewals)) },
        if revision == 0.0 { "met" } else { "missed" }
    ));
    let mut rss = Table::new(&[
        "nsbeacon (1 service, 1 UDP SOA check at 1 Hz, BIRD backend)",
        "RSS MiB p50 / max",
        "peak RSS (VmHWM) MiB",
        "threads",
    ]);
    let cell = |s: Option<Summary>| {
        s.map_or_else(
            || "n/a".into(),
            |s| format!("{} / {}", num(s.p50), num(s.max)),
        )
    };
    rss.row(vec![
        format!("with `[fleet]` (node-0 of {nodes}, 3-member etcd)"),
        cell(st.rss_fleet),
        num(st.hwm_fleet),
        st.threads.0.to_string(),
    ]);
    rss.row(vec![
        "without `[fleet]` (same config otherwise, same window)".to_owned(),
        cell(st.rss_plain),
        num(st.hwm_plain),
        st.threads.1.to_string(),
    ]);
    let rss_max = st.rss_fleet.map_or(f64::NAN, |s| s.max);
    verdicts.push(format!(
        "- Fleet: RSS max {} MiB of one nsbeacon with the fleet guard on (target < {RSS_TARGET_MIB} MiB) -> {}",
        num(rss_max),
        if rss_max < RSS_TARGET_MIB { "met" } else { "missed" }
    ));
    let _ = writeln!(
        notes,
        "- (c) the largest peak RSS (VmHWM) among all {nodes} fleet nodes: {} MiB.",
        num(st.rss_fleet_all_max)
    );
    let mut daemon_table = Table::new(&[
        "outcome (nsbeacon_fleet_guard_duration_seconds, all nodes)",
        "calls",
        "mean",
        "p50 (bucket bound)",
        "p95 (bucket bound)",
    ]);
    for (outcome, (count, sum, buckets)) in &st.daemon_guard.outcomes {
        daemon_table.row(vec![
            outcome.clone(),
            format!("{count:.0}"),
            if *count > 0.0 {
                num(sum / count * 1000.0)
            } else {
                "n/a".into()
            },
            bucket_quantile(*count, buckets, 0.5),
            bucket_quantile(*count, buckets, 0.95),
        ]);
    }
    let allowed_calls = st.daemon_guard.outcomes.get("allowed").map_or(0.0, |h| h.0);
    let daemon_rendered = if st.daemon_guard.outcomes.is_empty() {
        "No guard call was recorded by the daemons (not measured).\n".to_owned()
    } else {
        format!(
            "{}\nThe nodes' states 7 s into each hang (min_announcing 2 of {nodes}): {}. A held node asks \
             again whenever the fleet changes, so `held` counts those retries too.\n",
            daemon_table.render(),
            st.daemon_guard.states.join("; ")
        ) + &format!(
            "{}{} nodes were down 7 s into the hangs and {} allowed guard calls were counted{}. They need \
             not match one to one: a held node asks again on every fleet change, also while the others \
             recover (then it may be allowed to withdraw while it still fails: held, down, up; seen in \
             `demo --fleet 5`). What the nodes' `/status` reasons said about the guard: {}.\n",
            if st.daemon_guard.not_up.is_empty() {
                "Every hang started with all nodes up. ".to_owned()
            } else {
                format!(
                    "Not every node was up again within 60 s: {}. ",
                    st.daemon_guard.not_up.join("; ")
                )
            },
            st.daemon_guard.down,
            allowed_calls,
            if allowed_calls < st.daemon_guard.down as f64 {
                " (fewer calls than down nodes: not explained by this benchmark)"
            } else {
                ""
            },
            st.daemon_guard
                .reasons
                .iter()
                .map(|r| format!("`{r}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let writes_rendered = writes.render();
    let rss_rendered = rss.render();
    println!("{daemon_rendered}\n{writes_rendered}\n{rss_rendered}\n{notes}");
    Ok(format!(
        "## 6. Fleet guard (etcd)\n\n\
         A 3-member etcd 3.4 on loopback (the testkit's: own data dirs, 10 ms heartbeat, 100 ms election \
         timeout), fsync on the same disk as everything else. nsbeacon's fleet defaults: `lease_ttl` 10 s \
         (a keep-alive every 3.3 s), `timeout` 1 s, `guard_timeout` 200 ms.\n\n\
         ### 6a. Time the guard adds to a withdrawal\n\n\
         `Member::try_withdraw` of `nsbeacon-fleet`, the call the daemon makes when health decides a \
         withdrawal (and times in `nsbeacon_fleet_guard_duration_seconds`), measured around the call with \
         {nodes} members registered and announcing, {rounds} calls per row (the racing row: rounds of all \
         {nodes} at once). Allowed: a range read and one transaction (a write, so a raft round and an fsync \
         on a quorum); held: the range read only. Milliseconds.\n\n{guard_rendered}\n\
         The same call as the daemons time it: after the steady window of 6b, the Knot all {nodes} daemons \
         probe was hung (SIGSTOP) for 7 s and resumed, {} times (each time once every node was up again), so every node asked its guard at about \
         the same instant (held nodes ask again whenever the fleet changes). From every node's `/metrics` \
         at the end, summed; quantiles only to the histogram's bucket bounds (ms):\n\n{daemon_rendered}\n\
         ### 6b. etcd writes in steady state\n\n\
         {nodes} nsbeacon daemons (release build), each with its own BIRD 2 (a static protocol, no BGP) \
         and the fleet section, probing one shared Knot at 1 s (damping off, as in part 1), all up and registered; one more nsbeacon \
         without `[fleet]` for (c). etcd's `/metrics` was read from every member 3 s after all nodes \
         showed up in `/fleet` and again after a {:.0} s window.\n\n{writes_rendered}\n\
         ### 6c. Memory with and without the fleet guard\n\n\
         Sampled once a second from `/proc/PID/status` over the same window.\n\n{rss_rendered}\n{notes}\n\
         Targets:\n\n{}\n",
        st.daemon_guard.rounds,
        st.window,
        verdicts.join("\n")
    ))
}
