//! Files that would block or never end (issue 17): a running daemon given a zones file that is a FIFO on
//! SIGHUP keeps running with its old config, reports why the reload failed, and still stops at once on
//! SIGTERM. Real nsbeacon binary against a real BIRD 2 and a real Knot.

mod common;

use std::time::{Duration, Instant};

use common::{Node, WAIT};
use nsbeacon_testkit::{Signal, wait_until};

#[test]
fn a_reload_naming_a_fifo_is_rejected_and_sigterm_still_stops_the_daemon_at_once() {
    let mut node = Node::new();
    node.write_config("", "");
    node.start();
    node.expect_service("dns", "up");
    node.expect_protocol("anycast_dns", "up", "healthy");

    let fifo = node.dir.path().join("zones.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    let serial = format!(
        r#"
[[service.check]]
name = "serial"
type = "serial"
local = "{knot}"
reference = "192.0.2.1"
max_lag = 3
zones_file = "{fifo}"
"#,
        knot = node.knot.addr(),
        fifo = fifo.display()
    );
    node.write_config_with_checks("", &serial, "");
    assert!(node.guard().signal(Signal::SIGHUP));
    let mut doc = serde_json::Value::Null;
    assert!(
        wait_until(WAIT, || {
            doc = node.status();
            doc["daemon"]["reloads_failed"] == 1
        }),
        "the reload failure is not reported: {doc}\n{}",
        node.log()
    );
    let error = doc["daemon"]["last_reload_error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        error.contains(&format!(
            "cannot read the zones file: {} is a FIFO (named pipe), not a regular file",
            fifo.display()
        )),
        "{error}"
    );
    assert!(
        node.guard().is_running(),
        "nsbeacon died on the reload\n{}",
        node.log()
    );
    assert_eq!(
        node.service_state("dns").as_deref(),
        Some("up"),
        "the old config must stay in force"
    );

    // A second SIGHUP then SIGTERM right away: shutdown is never held up by a reload.
    assert!(node.guard().signal(Signal::SIGHUP));
    let started = Instant::now();
    let status = node
        .guard()
        .stop(Duration::from_secs(10))
        .expect("exit status");
    let took = started.elapsed();
    assert!(
        status.success(),
        "SIGTERM did not stop nsbeacon cleanly ({status:?} after {took:?})\n{}",
        node.log()
    );
    assert!(took < Duration::from_secs(5), "shutdown took {took:?}");
    assert_eq!(
        node.state("anycast_dns").as_deref(),
        Some("down"),
        "SIGTERM must withdraw\n{}",
        node.log()
    );
}
