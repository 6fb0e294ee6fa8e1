//! Unit tests of the overload overlay (`overload.rs`): absorb instead of withdraw while the load signals
//! say "overloaded" and the checks time out; `absorb_for`; what it never covers (refused, wrong answers,
//! `withdraw`, services not announcing); drains, the fleet guard and flap damping.

use std::time::Duration;

use nsbeacon_prober::{FailReason, ProbeStatus, Transport};

use super::tests::{
    Clock, all_withdrawn, announced, answer, damped, drain, feed, guarded_up_service, hard,
    outcome, service, transport_result, up_service,
};
use super::*;
use crate::config::{LoadConfig, LoadSource, OverloadPolicy, ServiceConfig};

const FLOOD: &str = "5000 qps vs baseline 50 qps";

fn timed_out() -> CheckSignal {
    CheckSignal::TimedOut("udp: timeout after 250ms".to_owned())
}

fn with_load(mut config: ServiceConfig, overload: OverloadPolicy) -> ServiceConfig {
    config.load = Some(LoadConfig {
        source: LoadSource::None,
        kernel: true,
        interval: Duration::from_secs(1),
        timeout: Duration::from_millis(500),
        overload_factor: 10.0,
        min_qps: 100.0,
        max_qps: None,
        max_udp_errors: None,
        baseline_window: Duration::from_secs(600),
        overload,
    });
    config
}

fn absorbing(absorb_for_secs: u64) -> ServiceConfig {
    with_load(
        service(),
        OverloadPolicy::Absorb {
            absorb_for: Duration::from_secs(absorb_for_secs),
        },
    )
}

/// An up service with `config`, overloaded, whose only check then times out `fall` times.
fn flooded(config: &ServiceConfig, clock: &mut Clock) -> ServiceHealth {
    let mut h = up_service(config, clock);
    assert!(
        h.set_overload(Some(FLOOD.to_owned()), clock.step())
            .is_none(),
        "a load signal alone changes nothing"
    );
    feed(&mut h, clock, 0, &timed_out(), 3);
    h
}

#[test]
fn timeouts_under_overload_absorb_on_the_degrade_targets_and_recover() {
    let mut clock = Clock::new();
    let config = absorbing(600);
    let mut h = flooded(&config, &mut clock);
    assert_eq!(h.state(), ServiceState::Degraded, "{}", h.reason());
    assert!(h.absorbing());
    assert_eq!(announced(&h), ["anycast_prepend"]);
    assert!(
        h.reason()
            .starts_with(&format!("absorbing overload: {FLOOD}")),
        "{}",
        h.reason()
    );
    assert!(
        h.reason().contains("udp: timeout"),
        "the checks' reason is kept: {}",
        h.reason()
    );
    assert!(h.absorbing_since().is_some());
    // Make-before-break, as for any degrade: the degrade target first.
    assert_eq!(
        h.desired().steps[0],
        (super::tests::bird("anycast_prepend"), RouteState::Announced)
    );
    // The probes pass again: up, still overloaded but nothing to absorb.
    feed(&mut h, &mut clock, 0, &CheckSignal::Pass, 3);
    assert_eq!(h.state(), ServiceState::Up, "{}", h.reason());
    assert!(!h.absorbing());
    assert_eq!(announced(&h), ["anycast"]);
}

#[test]
fn without_an_overload_or_with_withdraw_timeouts_withdraw() {
    let mut clock = Clock::new();
    let config = absorbing(600);
    let mut calm = up_service(&config, &mut clock);
    feed(&mut calm, &mut clock, 0, &timed_out(), 3);
    assert_eq!(calm.state(), ServiceState::Down);
    assert!(all_withdrawn(&calm));

    let withdraw = with_load(service(), OverloadPolicy::Withdraw);
    let h = flooded(&withdraw, &mut clock);
    assert_eq!(h.state(), ServiceState::Down, "{}", h.reason());
    assert!(all_withdrawn(&h));
    assert!(!h.absorbing());

    // No [service.load] at all: the same.
    let plain = flooded(&service(), &mut clock);
    assert_eq!(plain.state(), ServiceState::Down);
}

#[test]
fn refused_connections_and_wrong_answers_are_not_overload() {
    let mut clock = Clock::new();
    let config = absorbing(600);
    let mut refused = up_service(&config, &mut clock);
    refused.set_overload(Some(FLOOD.to_owned()), clock.step());
    feed(
        &mut refused,
        &mut clock,
        0,
        &CheckSignal::Refused("udp: connection refused".to_owned()),
        3,
    );
    assert_eq!(
        refused.state(),
        ServiceState::Down,
        "a server that is not running is not overloaded"
    );
    assert!(all_withdrawn(&refused));

    let mut wrong = up_service(&config, &mut clock);
    wrong.set_overload(Some(FLOOD.to_owned()), clock.step());
    feed(&mut wrong, &mut clock, 0, &hard("udp: rcode SERVFAIL"), 3);
    assert_eq!(wrong.state(), ServiceState::Down);

    // Two checks: one timing out, one answering wrongly: not overload alone.
    let mut two = absorbing(600);
    two.checks.push(super::tests::check("www"));
    let mut h = up_service(&two, &mut clock);
    h.set_overload(Some(FLOOD.to_owned()), clock.step());
    for _ in 0..3 {
        h.observe(0, timed_out(), clock.step());
        h.observe(1, hard("answer mismatch"), clock.step());
    }
    assert_eq!(h.state(), ServiceState::Down, "{}", h.reason());
}

#[test]
fn absorb_for_bounds_an_episode_and_a_withdrawn_service_is_never_reannounced() {
    let mut clock = Clock::new();
    let config = absorbing(60);
    let mut h = flooded(&config, &mut clock);
    assert!(h.absorbing());
    assert!(h.reason().contains("for up to another"), "{}", h.reason());
    // Passing probes in between do not restart the clock.
    feed(&mut h, &mut clock, 0, &CheckSignal::Pass, 3);
    assert_eq!(h.state(), ServiceState::Up);
    feed(&mut h, &mut clock, 0, &timed_out(), 3);
    assert!(h.absorbing());
    clock.advance(Duration::from_secs(60));
    let t = h.tick(clock.step()).expect("absorb_for ran out");
    assert_eq!((t.from, t.to), (ServiceState::Degraded, ServiceState::Down));
    assert!(all_withdrawn(&h));
    assert!(
        h.reason().contains("absorbed for absorb_for = 1m already"),
        "{}",
        h.reason()
    );
    // The rest of this overload: the normal rules, even after a passing spell.
    feed(&mut h, &mut clock, 0, &CheckSignal::Pass, 3);
    assert_eq!(h.state(), ServiceState::Up);
    feed(&mut h, &mut clock, 0, &timed_out(), 3);
    assert_eq!(h.state(), ServiceState::Down, "{}", h.reason());
    // The overload ends and a new one starts while the service is withdrawn: nothing is re-announced.
    h.set_overload(None, clock.step());
    h.set_overload(Some(FLOOD.to_owned()), clock.step());
    feed(&mut h, &mut clock, 0, &timed_out(), 2);
    assert_eq!(h.state(), ServiceState::Down);
    assert!(all_withdrawn(&h));
    // Once up again, a new episode absorbs afresh.
    feed(&mut h, &mut clock, 0, &CheckSignal::Pass, 3);
    feed(&mut h, &mut clock, 0, &timed_out(), 3);
    assert!(h.absorbing(), "{}", h.reason());
}

#[test]
fn the_overload_ending_while_the_probes_still_fail_withdraws() {
    let mut clock = Clock::new();
    let config = absorbing(600);
    let mut h = flooded(&config, &mut clock);
    assert!(h.absorbing());
    let t = h.set_overload(None, clock.step()).expect("transition");
    assert_eq!((t.from, t.to), (ServiceState::Degraded, ServiceState::Down));
    assert!(all_withdrawn(&h));
}

#[test]
fn a_service_that_never_announced_does_not_absorb() {
    let mut clock = Clock::new();
    let config = absorbing(600);
    let mut h = ServiceHealth::new(&config, clock.now);
    h.set_overload(Some(FLOOD.to_owned()), clock.step());
    feed(&mut h, &mut clock, 0, &timed_out(), 3);
    assert_eq!(h.state(), ServiceState::Down);
    assert!(all_withdrawn(&h));
}

#[test]
fn a_drain_wins_and_an_undrain_does_not_reannounce_a_failing_service() {
    let mut clock = Clock::new();
    let config = absorbing(600);
    let mut h = flooded(&config, &mut clock);
    assert!(h.absorbing());
    h.set_drain(drain("maintenance"), clock.step());
    assert_eq!(h.state(), ServiceState::Drained);
    assert!(all_withdrawn(&h));
    assert!(!h.absorbing());
    h.set_drain(None, clock.step());
    assert_eq!(h.state(), ServiceState::Down, "{}", h.reason());
    assert!(all_withdrawn(&h));
}

#[test]
fn switching_to_withdraw_on_reload_ends_an_absorption() {
    let mut clock = Clock::new();
    let config = absorbing(600);
    let mut h = flooded(&config, &mut clock);
    assert!(h.absorbing());
    let t = h
        .reconfigure(
            &with_load(service(), OverloadPolicy::Withdraw),
            clock.step(),
        )
        .expect("transition");
    assert_eq!(t.to, ServiceState::Down);
    assert!(all_withdrawn(&h));
}

#[test]
fn absorbing_asks_no_fleet_guard_and_its_end_goes_through_the_guard() {
    let mut clock = Clock::new();
    let config = absorbing(30);
    let mut h = guarded_up_service(&config, &mut clock);
    h.set_overload(Some(FLOOD.to_owned()), clock.step());
    feed(&mut h, &mut clock, 0, &timed_out(), 3);
    assert!(h.absorbing(), "{}", h.reason());
    assert_eq!(
        h.guard_question(),
        None,
        "absorbing withdraws nothing: nothing to ask"
    );
    clock.advance(Duration::from_secs(30));
    h.tick(clock.step());
    // The withdrawal after absorb_for is guarded like any other: the routes stay while the guard is asked.
    let question = h.guard_question().expect("asked").to_owned();
    assert!(question.contains("absorbed for absorb_for"), "{question}");
    assert!(!all_withdrawn(&h));
    answer(
        &mut h,
        &mut clock,
        GuardAnswer::Held {
            announcing: 0,
            needed: 1,
        },
    );
    assert_eq!(h.state(), ServiceState::Held);
    assert_eq!(announced(&h), ["anycast_prepend"]);
}

#[test]
fn a_held_service_that_is_flooded_absorbs() {
    let mut clock = Clock::new();
    let config = absorbing(600);
    let mut h = guarded_up_service(&config, &mut clock);
    feed(&mut h, &mut clock, 0, &timed_out(), 3);
    answer(
        &mut h,
        &mut clock,
        GuardAnswer::Held {
            announcing: 0,
            needed: 1,
        },
    );
    assert_eq!(h.state(), ServiceState::Held);
    h.set_overload(Some(FLOOD.to_owned()), clock.step());
    assert_eq!(h.state(), ServiceState::Degraded, "{}", h.reason());
    assert!(h.absorbing());
    assert_eq!(announced(&h), ["anycast_prepend"]);
}

#[test]
fn absorbing_adds_no_damping_penalty() {
    let mut clock = Clock::new();
    let config = with_load(
        damped(),
        OverloadPolicy::Absorb {
            absorb_for: Duration::from_secs(600),
        },
    );
    let mut h = up_service(&config, &mut clock);
    h.set_overload(Some(FLOOD.to_owned()), clock.step());
    for _ in 0..10 {
        h.observe(0, timed_out(), clock.step());
        assert!(h.absorbing(), "{}", h.reason());
        h.observe(0, CheckSignal::Pass, clock.step());
    }
    assert_eq!(h.penalty(), 0.0, "riding out a flood is not flapping");
    assert!(!h.suppressed());
}

#[test]
fn without_degrade_targets_the_normal_targets_stay_announced() {
    let mut clock = Clock::new();
    let mut config = absorbing(600);
    config.degrade.clear();
    let h = flooded(&config, &mut clock);
    assert!(h.absorbing());
    assert_eq!(announced(&h), ["anycast"]);
    assert!(
        h.reason().contains("normal targets stay announced"),
        "{}",
        h.reason()
    );
}

#[test]
fn classify_marks_timeouts_everywhere_as_timed_out() {
    let timeouts = outcome(
        ProbeStatus::Fail,
        vec![
            transport_result(
                Transport::Udp,
                ProbeStatus::Fail,
                Some(FailReason::Timeout),
                250,
            ),
            transport_result(
                Transport::Tcp,
                ProbeStatus::Fail,
                Some(FailReason::Timeout),
                250,
            ),
        ],
        None,
    );
    assert!(matches!(
        classify_probe(&timeouts),
        CheckSignal::TimedOut(_)
    ));
    let mixed = outcome(
        ProbeStatus::Fail,
        vec![
            transport_result(
                Transport::Udp,
                ProbeStatus::Fail,
                Some(FailReason::Timeout),
                250,
            ),
            transport_result(
                Transport::Tcp,
                ProbeStatus::Fail,
                Some(FailReason::NotAuthoritative),
                1,
            ),
        ],
        None,
    );
    assert!(matches!(classify_probe(&mixed), CheckSignal::Hard(_)));
    let t = CheckSignal::TimedOut("x".to_owned());
    assert!(t.is_hard());
    assert_eq!(t.as_str(), "hard");
}

#[test]
fn classify_marks_a_sweep_whose_local_failures_all_timed_out_as_timed_out() {
    use nsbeacon_prober::SerialVerdict;

    use super::tests::{sweep, zone};

    let timeouts = sweep(vec![
        zone(
            "a.",
            SerialVerdict::LocalFailed(FailReason::Timeout),
            None,
            Some(1),
        ),
        zone("b.", SerialVerdict::InSync, Some(1), Some(1)),
        zone(
            "c.",
            SerialVerdict::LocalFailed(FailReason::Timeout),
            None,
            Some(1),
        ),
    ]);
    assert!(matches!(
        classify_sweep(&timeouts, 0),
        CheckSignal::TimedOut(_)
    ));
    // A zone behind, or another local failure, is not overload.
    let behind = sweep(vec![
        zone(
            "a.",
            SerialVerdict::LocalFailed(FailReason::Timeout),
            None,
            Some(1),
        ),
        zone("b.", SerialVerdict::Behind, Some(1), Some(100)),
    ]);
    assert!(matches!(classify_sweep(&behind, 0), CheckSignal::Hard(_)));
    let refused = sweep(vec![
        zone(
            "a.",
            SerialVerdict::LocalFailed(FailReason::Timeout),
            None,
            Some(1),
        ),
        zone(
            "b.",
            SerialVerdict::LocalFailed(FailReason::ConnectionRefused),
            None,
            Some(1),
        ),
    ]);
    assert!(matches!(classify_sweep(&refused, 0), CheckSignal::Hard(_)));
}
