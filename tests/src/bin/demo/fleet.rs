//! `demo --fleet N`: N anycast nodes with the fleet guard on, and a live view of how many of them the
//! upstream router sees announcing, next to each node's state.
//!
//! The lab is the end-to-end tests' [`FleetLab`]: one upstream BIRD with a BGP session to each node, each
//! node in its own namespace with its own BIRD 2 (from bird-templates/) and its own nsbeacon, every node
//! probing one shared Knot (so one `kill -STOP` fails them all at the same instant), and a 3-member etcd on
//! loopback. Three members rather than one: the operator can stop one member (nothing happens) or two
//! (etcd loses quorum) and see that etcd trouble withdraws nothing by itself; a single member could only
//! show "etcd gone". The cost is two more etcd processes, small next to the N + 1 BIRDs.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::Value;

use nsbeacon_e2e::fleet::{FleetLab, UpstreamPath, http_get, parse_paths};
use nsbeacon_e2e::lab::{ANYCAST_V4, UPSTREAM_AS};
use nsbeacon_testkit::Signal;
use nsbeacon_testkit::bird::bird_command;
use nsbeacon_testkit::process::{is_alive, signal};

use super::{
    Args, DemoError, EVENTS_SHOWN, Events, REFRESH, SignalFlags, WITHDRAW_WAIT, check_config, draw,
    draw_clear, paint, process_state, say, secs, sleep_unless_stopped,
};

/// etcd members (see the module docs for why three).
const ETCD_MEMBERS: usize = 3;
/// How long each nsbeacon may take to leave the fleet and withdraw at the teardown.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Builds the fleet lab, starts one nsbeacon per node, runs the live view until a stop signal or
/// `--duration`, then tears everything down and checks that nothing is left.
pub(super) fn run(
    args: &Args,
    flags: &SignalFlags,
    binary: &Path,
    nodes: usize,
    tty: bool,
) -> Result<(), DemoError> {
    let min = args.min_announcing.map_or((nodes / 2).max(1), usize::from);
    say(&format!(
        "demo: building the fleet lab ({nodes} nodes, each its own namespace, BIRD 2 and nsbeacon; one \
         upstream BIRD AS {UPSTREAM_AS}; one shared Knot; etcd with {ETCD_MEMBERS} members) ..."
    ));
    let all: Vec<usize> = (0..nodes).collect();
    let mut lab = FleetLab::start(nodes, &[&all], ETCD_MEMBERS);
    let mut inventory = Inventory::of(&lab);
    if flags.stop_requested() {
        return teardown(lab, inventory);
    }
    for i in 0..nodes {
        lab.write_config(i, None, "", &format!("min_announcing = {min}"));
        check_config(binary, &lab.nodes[i].config_path)?;
    }
    for i in 0..nodes {
        lab.start_node_with(i, binary);
        let name = format!("nsbeacon {}", lab.nodes[i].name);
        if let Some(guard) = lab.nodes[i].nsbeacon() {
            inventory.pids.push((name, guard.pid()));
        }
    }
    let setup = Setup {
        binary: binary.to_path_buf(),
        min,
        started: Instant::now(),
    };
    if !tty {
        say(&instructions(&setup, &mut lab));
    }
    live(args, flags, &setup, &mut lab, tty);
    teardown(lab, inventory)
}

/// Facts fixed once the nodes run.
struct Setup {
    binary: PathBuf,
    min: usize,
    started: Instant,
}

/// Where a node's path stands at the upstream.
fn path_word(path: Option<&UpstreamPath>) -> &'static str {
    match path {
        None => "none",
        Some(p) if p.node_as_count > 1 => "degraded",
        Some(_) => "normal",
    }
}

/// One node, read at one moment.
#[derive(Debug, Clone)]
struct NodeRow {
    name: String,
    nsbeacon: String,
    state: String,
    reason: String,
    path: &'static str,
}

/// Everything the fleet view shows, read at one moment.
#[derive(Debug, Clone)]
struct Snapshot {
    at: f64,
    knot: String,
    etcd: Vec<String>,
    /// The upstream's paths, or why it could not be read.
    paths: Result<Vec<UpstreamPath>, String>,
    nodes: Vec<NodeRow>,
}

/// A node's service `dns` state and reason from its `/status`.
fn node_status(lab: &FleetLab, i: usize) -> (String, String) {
    let Some((code, body)) = http_get(lab.nodes[i].http, "/status") else {
        return ("no answer".to_owned(), "/status does not answer".to_owned());
    };
    if code != 200 {
        return (format!("HTTP {code}"), String::new());
    }
    let Ok(doc) = serde_json::from_str::<Value>(&body) else {
        return ("?".to_owned(), "/status is not JSON".to_owned());
    };
    let service = doc["services"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "dns"))
        .cloned()
        .unwrap_or(Value::Null);
    (
        service["state"].as_str().unwrap_or("?").to_owned(),
        service["reason"].as_str().unwrap_or("").to_owned(),
    )
}

impl Snapshot {
    fn take(setup: &Setup, lab: &mut FleetLab) -> Snapshot {
        // The upstream first, the nodes second: a decision travels nsbeacon -> BIRD -> upstream, so read
        // in this order the view never shows the upstream ahead of the decision that caused it.
        let paths = bird_command(
            &lab.upstream_socket(),
            &format!("show route {ANYCAST_V4} all"),
        )
        .map(|reply| parse_paths(&reply))
        .map_err(|e| format!("upstream BIRD: {e}"));
        let knot = format!(
            "pid {}: {}",
            lab.knots[0].pid(),
            process_state(lab.knots[0].pid())
        );
        let etcd = (0..ETCD_MEMBERS)
            .map(|m| match lab.etcd.pid(m) {
                Some(pid) => format!("m{m} pid {pid} {}", process_state(pid)),
                None => format!("m{m} not running"),
            })
            .collect();
        let mut nodes = Vec::new();
        for i in 0..lab.nodes.len() {
            let name = lab.nodes[i].name.clone();
            let nsbeacon = match lab.nodes[i].nsbeacon() {
                Some(guard) => {
                    if guard.is_running() {
                        format!("pid {} {}", guard.pid(), process_state(guard.pid()))
                    } else {
                        format!("pid {} EXITED", guard.pid())
                    }
                }
                None => "not running".to_owned(),
            };
            let (state, reason) = node_status(lab, i);
            let protocol = format!("node{i}");
            let path = match &paths {
                Ok(paths) => path_word(paths.iter().find(|p| p.protocol == protocol)),
                Err(_) => "unknown",
            };
            nodes.push(NodeRow {
                name,
                nsbeacon,
                state,
                reason,
                path,
            });
        }
        Snapshot {
            at: setup.started.elapsed().as_secs_f64(),
            knot,
            etcd,
            paths,
            nodes,
        }
    }

    /// `5 of 5 nodes (5 normal, 0 degraded)`, or why the upstream could not be read.
    fn announcing(&self) -> String {
        match &self.paths {
            Ok(paths) => {
                let degraded = paths.iter().filter(|p| p.node_as_count > 1).count();
                format!(
                    "{} of {} nodes ({} normal, {degraded} degraded)",
                    paths.len(),
                    self.nodes.len(),
                    paths.len() - degraded
                )
            }
            Err(e) => format!("unknown: {e}"),
        }
    }

    /// The facts whose changes are events.
    fn facts(&self) -> Vec<(String, String)> {
        let mut facts = vec![("shared Knot".to_owned(), self.knot.clone())];
        for (m, member) in self.etcd.iter().enumerate() {
            let label = format!("m{m} ");
            let state = member.strip_prefix(&label).unwrap_or(member);
            facts.push((format!("etcd m{m}"), state.to_owned()));
        }
        for n in &self.nodes {
            facts.push((format!("{} nsbeacon", n.name), n.nsbeacon.clone()));
            facts.push((n.name.clone(), n.state.clone()));
        }
        for n in &self.nodes {
            facts.push((format!("{} upstream path", n.name), n.path.to_owned()));
        }
        facts.push(("upstream announcing".to_owned(), self.announcing()));
        facts
    }

    fn reason(&self, key: &str) -> Option<String> {
        self.nodes
            .iter()
            .find(|n| n.name == key && !n.reason.is_empty())
            .map(|n| n.reason.clone())
    }
}

/// Colours a path word on a terminal.
fn paint_path(word: &str, tty: bool) -> String {
    let colour = match word {
        "normal" => "32",
        "degraded" => "33",
        "none" => "31",
        _ => return word.to_owned(),
    };
    if tty {
        format!("\x1b[1;{colour}m{word:<9}\x1b[0m")
    } else {
        format!("{word:<9}")
    }
}

/// The view without the instructions and events.
fn render_snapshot(setup: &Setup, s: &Snapshot, tty: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "fleet guard: min_announcing = {} (a node withdraws only while at least {} other nodes still announce)",
        setup.min, setup.min
    );
    let _ = writeln!(
        out,
        "upstream router (AS {UPSTREAM_AS}) sees {ANYCAST_V4} from {}",
        s.announcing()
    );
    let _ = writeln!(out, "shared Knot  {}", paint(&s.knot, tty));
    let _ = writeln!(out, "etcd         {}", s.etcd.join(", "));
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<8} {:<24} {:<10} {:<9} reason",
        "node", "nsbeacon", "state", "upstream"
    );
    for n in &s.nodes {
        let pad = " ".repeat(10usize.saturating_sub(n.state.len()));
        let _ = writeln!(
            out,
            "{:<8} {:<24} {}{pad} {} {}",
            n.name,
            n.nsbeacon,
            paint(&n.state, tty),
            paint_path(n.path, tty),
            n.reason
        );
    }
    out
}

fn render_view(setup: &Setup, s: &Snapshot, lab: &mut FleetLab, events: &Events) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "nsbeacon demo: fleet of {} nodes (BIRD 2 + nsbeacon each, one shared Knot, etcd {ETCD_MEMBERS} members)   t={:.1}s   lab {}",
        s.nodes.len(),
        s.at,
        lab.dir().display()
    );
    let _ = writeln!(out);
    out.push_str(&render_snapshot(setup, s, true));
    let _ = writeln!(out);
    let _ = writeln!(out, "recent changes:");
    let start = events.lines.len().saturating_sub(EVENTS_SHOWN);
    for line in &events.lines[start..] {
        let _ = writeln!(out, "  {line}");
    }
    let _ = writeln!(out);
    out.push_str(&instructions(setup, lab));
    out
}

/// How to break the fleet from a second terminal, with the real PIDs and paths.
fn instructions(setup: &Setup, lab: &mut FleetLab) -> String {
    let bin = setup.binary.display();
    let knot = lab.knots[0].pid();
    let nodes = lab.nodes.len();
    let withdraw = nodes.saturating_sub(setup.min);
    let cfg0 = lab.nodes[0].config_path.display().to_string();
    let log0 = lab.nodes[0].config_path.with_file_name("nsbeacon.log");
    let etcd_minority: Vec<String> = (1..ETCD_MEMBERS)
        .filter_map(|m| lab.etcd.pid(m))
        .map(|p| p.to_string())
        .collect();
    let etcd_minority = etcd_minority.join(" ");
    let nsbeacon0 = lab.nodes[0]
        .nsbeacon()
        .map_or_else(|| "-".to_owned(), |g| g.pid().to_string());
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Break it from a second terminal (as root) and watch the upstream:"
    );
    let _ = writeln!(
        out,
        "  kill -STOP {knot}      # the Knot every node probes hangs: all {nodes} nodes fail at once; the guard lets \
         {withdraw} withdraw and holds {} (they announce the degraded, prepended path)",
        setup.min.min(nodes)
    );
    let _ = writeln!(
        out,
        "  kill -CONT {knot}      # it answers again: every node back up after rise"
    );
    let _ = writeln!(
        out,
        "  kill -STOP {etcd_minority}   # 2 of 3 etcd members hang: no quorum; no route changes because of it \
         (kill -CONT {etcd_minority} to resume)"
    );
    let _ = writeln!(
        out,
        "                        #   with the Knot hung too, the guard cannot answer: every node decides locally \
         (on_unavailable = \"local\") and withdraws"
    );
    let _ = writeln!(
        out,
        "  {bin} drain -c {cfg0} --reason test   # node-0 withdraws on purpose (undrain -c {cfg0})"
    );
    let _ = writeln!(
        out,
        "  kill {nsbeacon0}      # node-0's nsbeacon stops: it leaves the fleet and withdraws on the way out"
    );
    let _ = writeln!(out, "Look closer:");
    let _ = writeln!(
        out,
        "  {bin} fleet -c {cfg0}   # every node's record in etcd"
    );
    let _ = writeln!(out, "  {bin} status -c {cfg0}");
    let _ = writeln!(
        out,
        "  birdc -s {} show route {ANYCAST_V4} all",
        lab.upstream_socket().display()
    );
    let _ = writeln!(out, "  tail -f {}", log0.display());
    let _ = write!(
        out,
        "Ctrl-C (or kill {}) stops the demo and removes the lab.",
        std::process::id()
    );
    out
}

/// The refresh loop: poll, record changes, draw; the scripted failure; until a stop signal or `--duration`.
fn live(args: &Args, flags: &SignalFlags, setup: &Setup, lab: &mut FleetLab, tty: bool) {
    let mut events = Events::new(setup.started, !tty);
    let (mut stopped, mut continued) = (false, false);
    let mut last = None;
    if tty {
        draw_clear();
    }
    loop {
        let elapsed = setup.started.elapsed().as_secs_f64();
        if flags.stop_requested() {
            events.push("demo: stop signal received, cleaning up".to_owned());
            break;
        }
        if args.duration.is_some_and(|d| elapsed >= d) {
            events.push(format!(
                "demo: --duration {} s reached, cleaning up",
                secs(args.duration)
            ));
            break;
        }
        // SIGUSR1 means "start the DNS server again" in the single-node demo; here: let the Knot go on.
        let resume = flags.restart_dns.swap(false, Ordering::SeqCst);
        let knot = lab.knots[0].pid();
        if !stopped && args.dns_stop_after.is_some_and(|t| elapsed >= t) {
            stopped = true;
            signal(knot, Signal::SIGSTOP);
            events.push(format!(
                "demo: SIGSTOP to the shared Knot (pid {knot}): every node's DNS hangs [--dns-stop-after {}]",
                secs(args.dns_stop_after)
            ));
        }
        if resume || (!continued && args.dns_cont_after.is_some_and(|t| elapsed >= t)) {
            continued |= !resume;
            signal(knot, Signal::SIGCONT);
            events.push(format!(
                "demo: SIGCONT to the shared Knot (pid {knot}) [{}]",
                if resume {
                    "SIGUSR1".to_owned()
                } else {
                    format!("--dns-cont-after {}", secs(args.dns_cont_after))
                }
            ));
        }
        let tick = Instant::now();
        let snapshot = Snapshot::take(setup, lab);
        events.observe_facts(snapshot.facts(), |key| snapshot.reason(key));
        if tty {
            draw(&render_view(setup, &snapshot, lab, &events));
        }
        last = Some(snapshot);
        sleep_unless_stopped(flags, REFRESH.saturating_sub(tick.elapsed()));
    }
    if !tty && let Some(snapshot) = last {
        say(&format!(
            "---- final view ----\n{}",
            render_snapshot(setup, &snapshot, false)
        ));
    }
}

/// What the demo started, to check after the teardown that all of it is gone.
struct Inventory {
    namespaces: Vec<String>,
    pids: Vec<(String, u32)>,
    dirs: Vec<PathBuf>,
}

impl Inventory {
    fn of(lab: &FleetLab) -> Inventory {
        let mut namespaces = vec![lab.upstream_netns().name().to_owned()];
        let mut pids = Vec::new();
        if let Some(pid) = lab.upstream_bird().pid() {
            pids.push(("upstream bird".to_owned(), pid));
        }
        for node in &lab.nodes {
            namespaces.push(node.netns().name().to_owned());
            if let Some(pid) = node.bird().pid() {
                pids.push((format!("{} bird", node.name), pid));
            }
        }
        for (k, knot) in lab.knots.iter().enumerate() {
            pids.push((format!("knot {k}"), knot.pid()));
        }
        for m in 0..ETCD_MEMBERS {
            if let Some(pid) = lab.etcd.pid(m) {
                pids.push((format!("etcd m{m}"), pid));
            }
        }
        let mut dirs = vec![lab.dir().to_path_buf(), lab.etcd.dir().to_path_buf()];
        dirs.extend(lab.knots.iter().map(|k| k.dir().to_path_buf()));
        Inventory {
            namespaces,
            pids,
            dirs,
        }
    }
}

/// Lets every process the operator may have stopped go on, stops the nsbeacons (SIGTERM: each leaves the
/// fleet and withdraws), shows what the upstream sees then, drops the lab and checks nothing is left.
fn teardown(mut lab: FleetLab, inventory: Inventory) -> Result<(), DemoError> {
    for (_, pid) in &inventory.pids {
        signal(*pid, Signal::SIGCONT);
    }
    let running: Vec<usize> = (0..lab.nodes.len())
        .filter(|i| lab.nodes[*i].nsbeacon().is_some_and(|g| g.is_running()))
        .collect();
    if !running.is_empty() {
        say("demo: stopping the nsbeacons (SIGTERM: each leaves the fleet and withdraws) ...");
        for i in &running {
            if let Some(guard) = lab.nodes[*i].nsbeacon() {
                guard.stop(STOP_GRACE);
            }
        }
        let stopped = Instant::now();
        let socket = lab.upstream_socket();
        let paths = loop {
            let paths = bird_command(&socket, &format!("show route {ANYCAST_V4} all"))
                .map(|reply| parse_paths(&reply));
            if !matches!(&paths, Ok(p) if !p.is_empty()) || stopped.elapsed() >= WITHDRAW_WAIT {
                break paths;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        match paths {
            Ok(paths) => say(&format!(
                "demo: {:.1}s after the nsbeacons stopped, upstream sees {ANYCAST_V4} from {} node(s)",
                stopped.elapsed().as_secs_f64(),
                paths.len()
            )),
            Err(e) => say(&format!("demo: the upstream BIRD does not answer: {e}")),
        }
    }
    say("demo: stopping the daemons and removing the lab ...");
    drop(lab);
    let mut left = Vec::new();
    for (name, pid) in &inventory.pids {
        if is_alive(*pid) {
            left.push(format!("{name} pid {pid} still runs"));
        }
    }
    for ns in &inventory.namespaces {
        if nsbeacon_testkit::netns::exists(ns) {
            left.push(format!("namespace {ns} still exists"));
        }
    }
    for dir in &inventory.dirs {
        if dir.exists() {
            left.push(format!("dir {} still exists", dir.display()));
        }
    }
    if left.is_empty() {
        say(&format!(
            "demo: clean: {} processes stopped, {} namespaces deleted, {} dirs removed",
            inventory.pids.len(),
            inventory.namespaces.len(),
            inventory.dirs.len()
        ));
        Ok(())
    } else {
        Err(DemoError::LeftBehind(left.join("; ")))
    }
}
