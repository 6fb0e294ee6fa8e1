//! Unit tests of the probe loop's timing decisions: fast confirmation and its shorter timeout.

use std::time::Duration;

use nsbeacon_prober::{ProbeOutcome, ProbeStatus, Transport, TransportResult};

use super::*;
use crate::config::{self, ConfirmTimeout};

/// A config with one query check (`query_keys` added to it) and one serial check, fall 3, fast
/// confirmation 20 ms apart (the default) unless `service_keys` says otherwise.
fn config_checks(service_keys: &str, query_keys: &str) -> (Vec<CheckConfig>, ProbeRhythm) {
    let text = format!(
        r#"
[backend]
kind = "bird"
socket = "/run/bird/bird.ctl"

[[service]]
name = "dns"
announce = ["anycast_dns"]
{service_keys}

[[service.check]]
name = "soa"
target = "127.0.0.1:53"
qname = "example.com"
transport = "udp"
{query_keys}

[[service.check]]
name = "fresh"
type = "serial"
local = "127.0.0.1:53"
reference = "192.0.2.1"
max_lag = 10
zones = ["example.com"]
"#
    );
    let config = match config::parse(&text, "test.toml") {
        Ok(config) => config,
        Err(e) => panic!("test config: {e}"),
    };
    let service = &config.services[0];
    let rhythm = ProbeRhythm {
        jitter: service.jitter,
        confirm_interval: service.confirm_interval,
        fall: service.fall,
    };
    (service.checks.clone(), rhythm)
}

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

fn probe_loop_of(check: &CheckConfig, rhythm: ProbeRhythm) -> ProbeLoop {
    ProbeLoop {
        generation: 1,
        index: 0,
        check: check.clone(),
        rhythm,
    }
}

/// A query run that got its answer after `latency` (`Pass`), or failed after it.
fn query_run(status: ProbeStatus, latency: Duration) -> CheckRun {
    CheckRun::Query(Ok(ProbeOutcome {
        status,
        reason: None,
        transports: vec![TransportResult {
            transport: Transport::Udp,
            latency,
            status,
            reason: None,
            rcode: None,
            answers: Vec::new(),
        }],
        identity: None,
    }))
}

fn answers(latencies: &[u64]) -> RecentAnswers {
    let mut recent = RecentAnswers::default();
    for &millis in latencies {
        recent.record(&query_run(ProbeStatus::Pass, ms(millis)));
    }
    recent
}

#[test]
fn auto_confirm_timeout_is_the_full_timeout_until_a_probe_has_passed() {
    assert_eq!(ConfirmTimeout::Auto.resolve(ms(500), None), ms(500));
    assert_eq!(answers(&[]).slowest(), None);
}

#[test]
fn auto_confirm_timeout_of_a_fast_server_is_the_50ms_floor() {
    let recent = answers(&[0, 1, 0, 2, 1]);
    assert_eq!(recent.slowest(), Some(ms(2)));
    assert_eq!(
        ConfirmTimeout::Auto.resolve(ms(500), recent.slowest()),
        ms(50)
    );
    // Above the floor it is 8 x the slowest recent answer.
    let recent = answers(&[1, 20, 3]);
    assert_eq!(
        ConfirmTimeout::Auto.resolve(ms(500), recent.slowest()),
        ms(160)
    );
    // A check whose own timeout is below the floor keeps its timeout.
    assert_eq!(
        ConfirmTimeout::Auto.resolve(ms(30), recent.slowest()),
        ms(30)
    );
}

#[test]
fn auto_confirm_timeout_of_a_slow_server_is_capped_at_the_timeout() {
    let recent = answers(&[1, 200, 1]);
    assert_eq!(
        ConfirmTimeout::Auto.resolve(ms(500), recent.slowest()),
        ms(500)
    );
}

#[test]
fn an_explicit_confirm_timeout_is_used_as_is() {
    let fixed = ConfirmTimeout::Fixed(ms(100));
    assert_eq!(fixed.resolve(ms(500), None), ms(100));
    assert_eq!(fixed.resolve(ms(500), Some(ms(200))), ms(100));
    assert_eq!(fixed.resolve(ms(500), Some(Duration::ZERO)), ms(100));
}

#[test]
fn recent_answers_keep_the_last_ten_passing_or_slow_probes_only() {
    let mut recent = answers(&[300]);
    // Failures (timeouts, refusals) and sweeps say nothing about how fast the server answers.
    recent.record(&query_run(ProbeStatus::Fail, ms(500)));
    recent.record(&CheckRun::Hung(ms(2000)));
    assert_eq!(recent.slowest(), Some(ms(300)));
    // A merely slow answer (a soft signal) counts: the server answers, just slowly.
    recent.record(&query_run(ProbeStatus::Slow, ms(400)));
    assert_eq!(recent.slowest(), Some(ms(400)));
    // After ten faster answers the slow ones have left the window.
    for _ in 0..9 {
        recent.record(&query_run(ProbeStatus::Pass, ms(1)));
    }
    assert_eq!(recent.slowest(), Some(ms(400)), "nine later answers");
    recent.record(&query_run(ProbeStatus::Pass, ms(1)));
    assert_eq!(recent.slowest(), Some(ms(1)), "ten later answers");
}

#[test]
fn only_confirmation_runs_of_query_checks_get_the_shorter_timeout() {
    let (checks, rhythm) = config_checks("", "");
    assert_eq!(rhythm.confirm_interval, Some(ms(20)));
    let query = probe_loop_of(&checks[0], rhythm);
    let fast = answers(&[0, 1, 0]);
    // The normal run, and the run after `fall` failures, wait the full timeout (500 ms).
    assert_eq!(query.run_timeout(0, &fast), None);
    assert_eq!(query.run_timeout(3, &fast), None);
    // The confirmations after one and two failures wait 50 ms.
    assert_eq!(query.run_timeout(1, &fast), Some(ms(50)));
    assert_eq!(query.run_timeout(2, &fast), Some(ms(50)));
    // Before any pass they wait the full timeout too.
    assert_eq!(query.run_timeout(1, &answers(&[])), None);
    // Zone sweeps keep their full timeout for confirmations.
    let serial = probe_loop_of(&checks[1], rhythm);
    assert!(serial.confirming(1));
    assert_eq!(serial.run_timeout(1, &fast), None);
    // Without fast confirmation there are no confirmation runs.
    let (checks, rhythm) = config_checks("confirm_interval = \"0s\"", "");
    assert_eq!(
        probe_loop_of(&checks[0], rhythm).run_timeout(1, &fast),
        None
    );
    // An explicit value applies with or without passes.
    let (checks, rhythm) = config_checks("", "confirm_timeout = \"120ms\"");
    let query = probe_loop_of(&checks[0], rhythm);
    assert_eq!(query.run_timeout(1, &answers(&[])), Some(ms(120)));
    assert_eq!(query.run_timeout(0, &answers(&[])), None);
}

#[test]
fn fast_confirmation_reprobes_20ms_after_a_failure_until_fall() {
    let (checks, rhythm) = config_checks("jitter = \"0s\"", "");
    let query = probe_loop_of(&checks[0], rhythm);
    assert_eq!(query.next_delay(1, ms(50), Duration::ZERO), ms(20));
    assert_eq!(query.next_delay(2, ms(50), Duration::ZERO), ms(20));
    assert_eq!(query.next_delay(3, ms(50), Duration::ZERO), ms(950));
    assert_eq!(query.next_delay(0, ms(1), Duration::ZERO), ms(999));
}

/// A confirmation run really waits only its shorter timeout: a server that never answers (a bound UDP
/// socket nobody reads) fails the normal run after the check's 500 ms and a confirmation after 50 ms.
/// Time is paused, so the figures are exact and the test takes no time.
#[tokio::test(start_paused = true)]
async fn a_confirmation_run_waits_its_shorter_timeout_and_a_normal_run_the_full_one() {
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let target = silent.local_addr().expect("addr");
    let (checks, rhythm) = config_checks("", "");
    let mut check = checks[0].clone();
    if let CheckKind::Query(spec) = &mut check.kind {
        spec.target = target;
    }
    let probe = probe_loop_of(&check, rhythm);
    let fast = answers(&[0, 1]);
    let latency = |run: &CheckRun| match run {
        CheckRun::Query(Ok(outcome)) => {
            assert_eq!(outcome.status, ProbeStatus::Fail, "{outcome:?}");
            outcome.transports[0].latency
        }
        other => panic!("expected a failed query run, got {other:?}"),
    };
    let normal = run_check_within(&check, probe.run_timeout(0, &fast)).await;
    assert_eq!(latency(&normal), ms(500));
    let confirmation = run_check_within(&check, probe.run_timeout(1, &fast)).await;
    assert_eq!(latency(&confirmation), ms(50));
    drop(silent);
}
