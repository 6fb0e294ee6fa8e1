//! The one-command demo (`scripts/demo`, binary `demo`), run the way the README tells an operator to,
//! without a terminal: its line-per-change output must show the anycast prefixes announced at the
//! upstream, withdrawn after the scripted DNS failure, and announced again after the restart; and once it
//! exits (after `--duration`, or on SIGINT) nothing it started may be left: no namespace, no process, no
//! lab dir. `--fleet 3` must show all three nodes announcing, the fleet guard holding one of them when all
//! three fail at once, and all three back afterwards.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use nsbeacon_e2e::lab::{ANYCAST_V4, ANYCAST_V6};
use nsbeacon_e2e::nsbeacon::nsbeacon_binary;
use nsbeacon_testkit::process::is_alive;
use nsbeacon_testkit::{DaemonGuard, Signal, wait_until};

/// How long the demo may take from start to exit, beyond its own `--duration`: building the lab and
/// tearing it down.
const OVERHEAD: Duration = Duration::from_secs(45);

/// The demo started with `args`, its output going to a log file in `dir`.
fn spawn_demo(dir: &Path, args: &[&str]) -> DaemonGuard {
    let nsbeacon = nsbeacon_binary();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_demo"));
    cmd.arg("--nsbeacon")
        .arg(&nsbeacon)
        .arg("--plain")
        .args(args);
    DaemonGuard::spawn("demo", cmd, Some(&dir.join("demo.log")))
}

/// Waits until the demo exits by itself (giving it SIGTERM and time to clean up when it does not) and
/// returns its output; panics when it did not exit successfully.
fn wait_for_exit(demo: &mut DaemonGuard, within: Duration) -> String {
    let exited = wait_until(within, || !demo.is_running());
    let status = demo.stop(Duration::from_secs(30));
    let output = demo.log();
    assert!(exited, "the demo did not exit within {within:?}:\n{output}");
    assert!(
        status.is_some_and(|s| s.success()),
        "the demo exited with {status:?}:\n{output}"
    );
    output
}

/// Index of the first line at or after `from` containing `needle`; panics with the output otherwise.
fn line_after(lines: &[&str], from: usize, needle: &str, output: &str) -> usize {
    lines[from..]
        .iter()
        .position(|l| l.contains(needle))
        .map(|i| from + i)
        .unwrap_or_else(|| panic!("no line with {needle:?} after line {from}:\n{output}"))
}

/// The word after `prefix` on the first line that has it, e.g. the lab dir after `config `.
fn word_after<'a>(output: &'a str, prefix: &str) -> &'a str {
    output
        .split(prefix)
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no {prefix:?} in the output:\n{output}"))
}

/// Asserts the demo said it cleaned up and no namespace named after its PID is left.
fn assert_no_namespaces(demo_pid: u32, output: &str) {
    assert!(output.contains("demo: clean:"), "{output}");
    let tag = format!("-{demo_pid}-");
    let namespaces: Vec<String> = std::fs::read_dir("/run/netns")
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("nsblab-") && n.contains(&tag))
                .collect()
        })
        .unwrap_or_default();
    assert!(
        namespaces.is_empty(),
        "namespaces left: {namespaces:?}\n{output}"
    );
}

/// Asserts nothing the demo started is left: its namespaces (named after its PID), processes whose
/// command line names its lab dir or its upstream BIRD's dir, the dirs themselves, the PIDs it printed.
fn assert_nothing_left(demo_pid: u32, output: &str) {
    assert_no_namespaces(demo_pid, output);
    let config = word_after(output, "undrain -c ");
    let lab_dir = Path::new(config).parent().expect("lab dir");
    let bird_socket = word_after(output, "birdc -s ");
    let bird_dir = Path::new(bird_socket).parent().expect("upstream bird dir");
    for dir in [lab_dir, bird_dir] {
        assert!(!dir.exists(), "{} left behind\n{output}", dir.display());
    }
    let needles = [
        lab_dir.to_string_lossy().into_owned(),
        bird_dir.to_string_lossy().into_owned(),
    ];
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        assert!(
            !(is_alive(pid) && needles.iter().any(|n| cmdline.contains(n.as_str()))),
            "process {pid} ({cmdline}) left behind\n{output}"
        );
    }
    let dns_pid: u32 = word_after(output, "kill -STOP ").parse().expect("DNS pid");
    let nsbeacon_pid: u32 = word_after(output, "nsbeacon    pid ")
        .parse()
        .expect("nsbeacon pid");
    for pid in [dns_pid, nsbeacon_pid] {
        assert!(!is_alive(pid), "pid {pid} still runs\n{output}");
    }
}

#[test]
fn demo_shows_the_withdrawal_and_the_return_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut demo = spawn_demo(
        dir.path(),
        &[
            "--duration",
            "14",
            "--dns-kill-after",
            "6",
            "--dns-restart-after",
            "9",
        ],
    );
    let demo_pid = demo.pid();
    let output = wait_for_exit(&mut demo, Duration::from_secs(14) + OVERHEAD);
    let lines: Vec<&str> = output.lines().collect();
    let kill = line_after(&lines, 0, "demo: SIGKILL to the DNS server", &output);
    let restart = line_after(&lines, kill, "demo: DNS server answers again", &output);
    for prefix in [ANYCAST_V4, ANYCAST_V6] {
        let seen = format!("upstream sees {prefix}: ");
        let announced = line_after(&lines, 0, &format!("{seen}ANNOUNCED"), &output);
        assert!(
            announced < kill,
            "{prefix} not announced before the kill:\n{output}"
        );
        let withdrawn = line_after(&lines, kill, &format!("{seen}NO ROUTE"), &output);
        assert!(
            withdrawn < restart,
            "{prefix} not withdrawn while the DNS server was dead:\n{output}"
        );
        line_after(&lines, restart, &format!("{seen}ANNOUNCED"), &output);
        // Stopping nsbeacon withdraws before the lab goes.
        line_after(
            &lines,
            restart,
            &format!("after nsbeacon stopped, {seen}NO ROUTE"),
            &output,
        );
    }
    line_after(&lines, kill, "service dns: down", &output);
    line_after(&lines, restart, "service dns: up", &output);
    assert_nothing_left(demo_pid, &output);
}

#[test]
fn demo_cleans_up_on_sigint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut demo = spawn_demo(dir.path(), &["--frr"]);
    let announced = format!("upstream sees {ANYCAST_V4}: ANNOUNCED");
    let up = wait_until(OVERHEAD, || {
        demo.log().contains(&announced) || !demo.is_running()
    });
    assert!(up, "no announcement within {OVERHEAD:?}:\n{}", demo.log());
    assert!(demo.signal(Signal::SIGINT), "SIGINT to the demo");
    let demo_pid = demo.pid();
    let output = wait_for_exit(&mut demo, OVERHEAD);
    assert!(output.contains("demo: stop signal received"), "{output}");
    assert_nothing_left(demo_pid, &output);
}

/// `demo --fleet 3` as the README runs it, without a terminal: all 3 nodes announce at the upstream; the
/// scripted SIGSTOP of the Knot all of them probe makes every node fail at once, and the guard
/// (min_announcing 1, the default for 3 nodes) withdraws 2 and holds 1, announcing the degraded path, so
/// no refresh of the view ever shows the upstream without a path; after SIGCONT all 3 announce again; the
/// teardown withdraws everything and leaves nothing behind.
#[test]
fn demo_fleet_holds_min_announcing_when_every_node_fails_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut demo = spawn_demo(
        dir.path(),
        &[
            "--fleet",
            "3",
            "--duration",
            "20",
            "--dns-stop-after",
            "7",
            "--dns-cont-after",
            "13",
        ],
    );
    let demo_pid = demo.pid();
    let output = wait_for_exit(&mut demo, Duration::from_secs(20) + OVERHEAD);
    let lines: Vec<&str> = output.lines().collect();
    let all = "upstream announcing: 3 of 3 nodes (3 normal, 0 degraded)";
    let first = line_after(&lines, 0, all, &output);
    let stop = line_after(&lines, 0, "demo: SIGSTOP to the shared Knot", &output);
    assert!(
        first < stop,
        "not every node announced before the stop:\n{output}"
    );
    let cont = line_after(&lines, stop, "demo: SIGCONT to the shared Knot", &output);
    let held = line_after(
        &lines,
        stop,
        "upstream announcing: 1 of 3 nodes (0 normal, 1 degraded)",
        &output,
    );
    assert!(held < cont, "the guard did not hold one node:\n{output}");
    let window = &lines[stop..cont];
    let says = |state: &str| {
        window
            .iter()
            .filter(|l| (0..3).any(|i| l.contains(&format!("] node-{i}: {state}"))))
            .count()
    };
    assert_eq!(
        (says("down"), says("held")),
        (2, 1),
        "expected 2 nodes down and 1 held while the Knot hung:\n{output}"
    );
    let end = line_after(&lines, cont, "reached, cleaning up", &output);
    assert!(
        !lines[first..end]
            .iter()
            .any(|l| l.contains("upstream announcing: 0 of 3")),
        "a refresh showed no node announcing:\n{output}"
    );
    line_after(&lines, cont, all, &output);
    let final_view = line_after(&lines, end, "---- final view ----", &output);
    line_after(
        &lines,
        final_view,
        "sees 203.0.113.53/32 from 3 of 3 nodes",
        &output,
    );
    line_after(
        &lines,
        end,
        "after the nsbeacons stopped, upstream sees 203.0.113.53/32 from 0 node(s)",
        &output,
    );

    assert_no_namespaces(demo_pid, &output);
    let log = word_after(&output, "tail -f ");
    let lab_dir = Path::new(log)
        .parent()
        .and_then(Path::parent)
        .expect("lab dir");
    assert!(
        !lab_dir.exists(),
        "{} left behind\n{output}",
        lab_dir.display()
    );
    let needle = lab_dir.to_string_lossy().into_owned();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        assert!(
            !(is_alive(pid) && cmdline.contains(needle.as_str())),
            "process {pid} ({cmdline}) left behind\n{output}"
        );
    }
    let knot_pid: u32 = word_after(&output, "kill -STOP ")
        .parse()
        .expect("Knot pid");
    assert!(!is_alive(knot_pid), "the shared Knot still runs\n{output}");
    for i in 0..3 {
        let pid: u32 = word_after(&output, &format!("node-{i} nsbeacon: pid "))
            .parse()
            .expect("nsbeacon pid");
        assert!(!is_alive(pid), "node-{i}'s nsbeacon still runs\n{output}");
    }
}
