//! Unit tests of the health policy: rise/fall, combine modes, soft/hard tiers, start-up, make-before-break,
//! flap damping (math, suppression, decay, max hold-down), drain and graceful drain, classification.

use std::time::{Duration, Instant};

use nsbeacon_prober::proto::op::ResponseCode;
use nsbeacon_prober::proto::rr::Name;
use nsbeacon_prober::{
    FailReason, ProbeOutcome, ProbeStatus, SerialOutcome, SerialVerdict, SweepReport, SweepSummary,
    Transport, TransportResult, ZoneSerial,
};
use nsbeacon_routing::{BirdProtocolName, RouteState, RouteTarget};

use super::*;
use crate::config::{CheckConfig, CheckKind, Combine, DampingConfig, ServiceConfig};
use crate::drain::DrainRequest;

const ANNOUNCED: RouteState = RouteState::Announced;
const WITHDRAWN: RouteState = RouteState::Withdrawn;

pub(super) fn bird(name: &str) -> RouteTarget {
    RouteTarget::BirdProtocol(BirdProtocolName::new(name).expect("valid name"))
}

pub(super) fn check(name: &str) -> CheckConfig {
    let spec = nsbeacon_prober::ProbeSpec::new(
        "127.0.0.1:53".parse().expect("addr"),
        nsbeacon_prober::QuerySpec::new(
            Name::from_ascii("example.com.").expect("name"),
            nsbeacon_prober::proto::rr::RecordType::SOA,
        ),
    );
    CheckConfig {
        name: name.to_owned(),
        interval: Duration::from_secs(1),
        timeout: Duration::from_millis(500),
        confirm_timeout: crate::config::ConfirmTimeout::Auto,
        kind: CheckKind::Query(spec),
    }
}

/// One check "soa", announce `anycast`, degrade `anycast_prepend`, rise 3, fall 3, damping off.
pub(super) fn service() -> ServiceConfig {
    ServiceConfig {
        name: "dns".to_owned(),
        checks: vec![check("soa")],
        combine: Combine::All,
        announce: vec![bird("anycast")],
        degrade: vec![bird("anycast_prepend")],
        interval: Duration::from_secs(1),
        rise: 3,
        fall: 3,
        jitter: Duration::from_millis(100),
        damping: DampingConfig {
            enabled: false,
            ..DampingConfig::default()
        },
        graceful_drain: None,
        min_announcing: None,
        confirm_interval: None,
        watch: None,
        load: None,
    }
}

pub(super) fn hard(text: &str) -> CheckSignal {
    CheckSignal::Hard(text.to_owned())
}

fn soft(text: &str) -> CheckSignal {
    CheckSignal::Soft(text.to_owned())
}

/// A test clock: every call moves one second.
pub(super) struct Clock {
    pub(super) now: Instant,
}

impl Clock {
    pub(super) fn new() -> Self {
        Self {
            now: Instant::now(),
        }
    }
    pub(super) fn step(&mut self) -> Instant {
        self.now += Duration::from_secs(1);
        self.now
    }
    pub(super) fn advance(&mut self, d: Duration) -> Instant {
        self.now += d;
        self.now
    }
}

/// Feeds `n` copies of `signal` to check `index`, returning the transitions seen.
pub(super) fn feed(
    h: &mut ServiceHealth,
    clock: &mut Clock,
    index: usize,
    signal: &CheckSignal,
    n: usize,
) -> Vec<Transition> {
    (0..n)
        .filter_map(|_| h.observe(index, signal.clone(), clock.step()))
        .collect()
}

pub(super) fn steps(h: &ServiceHealth) -> Vec<(RouteTarget, RouteState)> {
    h.desired().steps
}

pub(super) fn all_withdrawn(h: &ServiceHealth) -> bool {
    steps(h).iter().all(|(_, s)| *s == WITHDRAWN)
}

pub(super) fn up_service(config: &ServiceConfig, clock: &mut Clock) -> ServiceHealth {
    let mut h = ServiceHealth::new(config, clock.now);
    for i in 0..config.checks.len() {
        feed(&mut h, clock, i, &CheckSignal::Pass, config.rise as usize);
    }
    assert_eq!(h.state(), ServiceState::Up, "{}", h.reason());
    h
}

#[test]
fn starts_withdrawn_and_announces_only_after_rise_passes() {
    let mut clock = Clock::new();
    let h0 = ServiceHealth::new(&service(), clock.now);
    assert_eq!(h0.state(), ServiceState::Starting);
    assert!(
        h0.reason().contains("nothing is announced"),
        "{}",
        h0.reason()
    );
    assert!(h0.reason().contains("soa 0/3"), "{}", h0.reason());
    // Every target is listed, withdrawn: this also withdraws a target left announced by a crashed run.
    assert_eq!(
        steps(&h0),
        vec![
            (bird("anycast"), WITHDRAWN),
            (bird("anycast_prepend"), WITHDRAWN)
        ]
    );

    let mut h = h0;
    assert!(feed(&mut h, &mut clock, 0, &CheckSignal::Pass, 2).is_empty());
    assert_eq!(h.state(), ServiceState::Starting);
    assert!(h.reason().contains("soa 2/3"), "{}", h.reason());
    assert!(all_withdrawn(&h));

    let t = h
        .observe(0, CheckSignal::Pass, clock.step())
        .expect("transition");
    assert_eq!((t.from, t.to), (ServiceState::Starting, ServiceState::Up));
    assert_eq!(t.service, "dns");
    assert_eq!(t.reason, "check soa passes");
    assert_eq!(
        steps(&h),
        vec![
            (bird("anycast"), ANNOUNCED),
            (bird("anycast_prepend"), WITHDRAWN)
        ]
    );
    assert_eq!(h.transitions(), 1);
}

#[test]
fn a_failure_during_start_up_resets_the_rise_count() {
    let mut clock = Clock::new();
    let mut h = ServiceHealth::new(&service(), clock.now);
    feed(&mut h, &mut clock, 0, &CheckSignal::Pass, 2);
    feed(&mut h, &mut clock, 0, &hard("timeout"), 1);
    feed(&mut h, &mut clock, 0, &CheckSignal::Pass, 2);
    assert_eq!(h.state(), ServiceState::Starting);
    assert!(all_withdrawn(&h));
    feed(&mut h, &mut clock, 0, &CheckSignal::Pass, 1);
    assert_eq!(h.state(), ServiceState::Up);
}

#[test]
fn failing_at_start_up_goes_down_with_the_reason() {
    let mut clock = Clock::new();
    let mut h = ServiceHealth::new(&service(), clock.now);
    let t = feed(&mut h, &mut clock, 0, &hard("connection refused"), 3);
    assert_eq!(t.len(), 1);
    assert_eq!(
        (t[0].from, t[0].to),
        (ServiceState::Starting, ServiceState::Down)
    );
    assert_eq!(
        h.reason(),
        "check soa: connection refused (3 consecutive failures)"
    );
    assert!(all_withdrawn(&h));
}

#[test]
fn fall_consecutive_hard_failures_withdraw() {
    let mut clock = Clock::new();
    let config = service();
    let mut h = up_service(&config, &mut clock);
    assert!(feed(&mut h, &mut clock, 0, &hard("timeout"), 2).is_empty());
    assert_eq!(h.state(), ServiceState::Up, "two failures are below fall");
    // A pass in between resets the fall count.
    feed(&mut h, &mut clock, 0, &CheckSignal::Pass, 1);
    assert!(feed(&mut h, &mut clock, 0, &hard("timeout"), 2).is_empty());
    let t = h
        .observe(0, hard("no reply within the timeout"), clock.step())
        .expect("down");
    assert_eq!((t.from, t.to), (ServiceState::Up, ServiceState::Down));
    assert_eq!(
        t.reason,
        "check soa: no reply within the timeout (3 consecutive failures)"
    );
    assert!(all_withdrawn(&h));
    let check = &h.check_states()[0];
    assert!(check.decided && !check.up);
    assert_eq!(check.consecutive_fail, 3);
    assert_eq!(check.last_signal, Some(hard("no reply within the timeout")));
}

#[test]
fn recovery_needs_rise_passes_and_says_so() {
    let mut clock = Clock::new();
    let config = service();
    let mut h = up_service(&config, &mut clock);
    feed(&mut h, &mut clock, 0, &hard("refused"), 3);
    feed(&mut h, &mut clock, 0, &CheckSignal::Pass, 2);
    assert_eq!(h.state(), ServiceState::Down);
    assert_eq!(
        h.reason(),
        "check soa: recovering (2/3 passes), last failure: refused"
    );
    let t = feed(&mut h, &mut clock, 0, &CheckSignal::Pass, 1);
    assert_eq!((t[0].from, t[0].to), (ServiceState::Down, ServiceState::Up));
}

#[test]
fn soft_signals_degrade_make_before_break_and_recover_make_before_break() {
    let mut clock = Clock::new();
    let config = service();
    let mut h = up_service(&config, &mut clock);
    assert!(feed(&mut h, &mut clock, 0, &soft("slow answer (udp 300ms)"), 2).is_empty());
    let t = h
        .observe(0, soft("slow answer (udp 310ms)"), clock.step())
        .expect("degraded");
    assert_eq!((t.from, t.to), (ServiceState::Up, ServiceState::Degraded));
    assert!(
        t.reason.contains("check soa: slow answer (udp 310ms)"),
        "{}",
        t.reason
    );
    assert!(t.reason.contains("degrade targets"), "{}", t.reason);
    // Make-before-break: the degrade target is announced before the normal one is withdrawn.
    assert_eq!(
        steps(&h),
        vec![
            (bird("anycast_prepend"), ANNOUNCED),
            (bird("anycast"), WITHDRAWN)
        ]
    );

    // Soft signals never withdraw, however long they last.
    feed(&mut h, &mut clock, 0, &soft("slow"), 50);
    assert_eq!(h.state(), ServiceState::Degraded);

    // Recovery needs rise clean passes; then the normal target is announced before the degrade one goes.
    feed(&mut h, &mut clock, 0, &CheckSignal::Pass, 2);
    assert_eq!(h.state(), ServiceState::Degraded);
    assert!(
        h.reason().contains("recovering (2/3 clean passes)"),
        "{}",
        h.reason()
    );
    let t = feed(&mut h, &mut clock, 0, &CheckSignal::Pass, 1);
    assert_eq!(
        (t[0].from, t[0].to),
        (ServiceState::Degraded, ServiceState::Up)
    );
    assert_eq!(
        steps(&h),
        vec![
            (bird("anycast"), ANNOUNCED),
            (bird("anycast_prepend"), WITHDRAWN)
        ]
    );
}

#[test]
fn degraded_without_degrade_targets_keeps_the_normal_targets() {
    let mut clock = Clock::new();
    let mut config = service();
    config.degrade.clear();
    let mut h = up_service(&config, &mut clock);
    feed(&mut h, &mut clock, 0, &soft("lagging"), 3);
    assert_eq!(h.state(), ServiceState::Degraded);
    assert_eq!(steps(&h), vec![(bird("anycast"), ANNOUNCED)]);
    assert!(
        h.reason().contains("normal targets stay announced"),
        "{}",
        h.reason()
    );
}

#[test]
fn soft_from_the_start_announces_the_degrade_targets_never_the_normal_ones() {
    let mut clock = Clock::new();
    let mut config = service();
    config.rise = 2;
    config.fall = 5;
    let mut h = ServiceHealth::new(&config, clock.now);
    feed(&mut h, &mut clock, 0, &soft("slow"), 1);
    assert_eq!(h.state(), ServiceState::Starting);
    let t = feed(&mut h, &mut clock, 0, &soft("slow"), 1);
    assert_eq!(
        (t[0].from, t[0].to),
        (ServiceState::Starting, ServiceState::Degraded)
    );
    assert_eq!(h.desired().state_of(&bird("anycast")), Some(WITHDRAWN));
    assert_eq!(
        h.desired().state_of(&bird("anycast_prepend")),
        Some(ANNOUNCED)
    );
}

#[test]
fn a_mix_of_hard_and_soft_below_fall_degrades() {
    let mut clock = Clock::new();
    let config = service();
    let mut h = up_service(&config, &mut clock);
    feed(&mut h, &mut clock, 0, &hard("timeout"), 2);
    feed(&mut h, &mut clock, 0, &soft("slow"), 1);
    assert_eq!(
        h.state(),
        ServiceState::Degraded,
        "flaky but answering: {}",
        h.reason()
    );
    assert!(h.check_states()[0].up);
}

#[test]
fn reference_unreachable_never_withdraws() {
    let mut clock = Clock::new();
    let config = service();
    let mut h = up_service(&config, &mut clock);
    let report = sweep(vec![
        zone(
            "example.com.",
            SerialVerdict::ReferenceUnreachable(FailReason::Timeout),
            Some(5),
            None,
        ),
        zone(
            "example.net.",
            SerialVerdict::ReferenceUnreachable(FailReason::Timeout),
            Some(9),
            None,
        ),
    ]);
    let signal = classify_sweep(&report, 0);
    assert!(matches!(signal, CheckSignal::Soft(_)), "{signal:?}");
    feed(&mut h, &mut clock, 0, &signal, 100);
    assert_eq!(h.state(), ServiceState::Degraded);
    assert!(steps(&h).iter().any(|(_, s)| *s == ANNOUNCED));
    assert!(
        h.reason().contains("reference unreachable"),
        "{}",
        h.reason()
    );
}

#[test]
fn combine_all_needs_every_check() {
    let mut clock = Clock::new();
    let mut config = service();
    config.checks = vec![check("udp"), check("tcp")];
    let mut h = ServiceHealth::new(&config, clock.now);
    feed(&mut h, &mut clock, 0, &CheckSignal::Pass, 3);
    assert_eq!(h.state(), ServiceState::Starting, "tcp has not decided yet");
    assert!(
        h.reason().contains("udp 3/3, tcp 0/3") || h.reason().contains("tcp 0/3"),
        "{}",
        h.reason()
    );
    feed(&mut h, &mut clock, 1, &CheckSignal::Pass, 3);
    assert_eq!(h.state(), ServiceState::Up);
    assert_eq!(h.reason(), "all 2 checks pass");
    feed(&mut h, &mut clock, 1, &hard("tcp: connection refused"), 3);
    assert_eq!(h.state(), ServiceState::Down);
    assert!(
        h.reason().starts_with("check tcp: tcp: connection refused"),
        "{}",
        h.reason()
    );
}

#[test]
fn combine_all_goes_down_at_start_up_as_soon_as_one_check_is_down() {
    let mut clock = Clock::new();
    let mut config = service();
    config.checks = vec![check("udp"), check("tcp")];
    let mut h = ServiceHealth::new(&config, clock.now);
    feed(&mut h, &mut clock, 0, &hard("refused"), 3);
    assert_eq!(
        h.state(),
        ServiceState::Down,
        "tcp cannot rescue an all-combine"
    );
}

#[test]
fn combine_any_needs_one_check() {
    let mut clock = Clock::new();
    let mut config = service();
    config.checks = vec![check("a"), check("b")];
    config.combine = Combine::Any;
    let mut h = ServiceHealth::new(&config, clock.now);
    feed(&mut h, &mut clock, 0, &hard("refused"), 3);
    assert_eq!(h.state(), ServiceState::Starting, "b may still come up");
    feed(&mut h, &mut clock, 1, &CheckSignal::Pass, 3);
    assert_eq!(h.state(), ServiceState::Up);
    assert!(
        h.reason().contains("1 of 2 checks pass (any required)"),
        "{}",
        h.reason()
    );
    assert!(
        h.reason()
            .contains("down but not required: check a: refused"),
        "{}",
        h.reason()
    );
    feed(&mut h, &mut clock, 1, &hard("timeout"), 3);
    assert_eq!(h.state(), ServiceState::Down);
    assert!(
        h.reason().contains("check a: refused") && h.reason().contains("check b: timeout"),
        "{}",
        h.reason()
    );
}

#[test]
fn combine_at_least_n() {
    let mut clock = Clock::new();
    let mut config = service();
    config.checks = vec![check("a"), check("b"), check("c")];
    config.combine = Combine::AtLeast(2);
    let mut h = ServiceHealth::new(&config, clock.now);
    feed(&mut h, &mut clock, 0, &CheckSignal::Pass, 3);
    assert_eq!(h.state(), ServiceState::Starting);
    feed(&mut h, &mut clock, 1, &CheckSignal::Pass, 3);
    assert_eq!(h.state(), ServiceState::Up, "2 of 3 suffice");
    feed(&mut h, &mut clock, 2, &hard("x"), 3);
    assert_eq!(h.state(), ServiceState::Up);
    // A soft check among the two required makes the service degraded.
    feed(&mut h, &mut clock, 1, &soft("slow"), 3);
    assert_eq!(h.state(), ServiceState::Degraded);
    feed(&mut h, &mut clock, 0, &hard("y"), 3);
    assert_eq!(h.state(), ServiceState::Down);
}

#[test]
fn observe_ignores_an_unknown_check_index() {
    let mut clock = Clock::new();
    let mut h = ServiceHealth::new(&service(), clock.now);
    assert_eq!(h.observe(7, CheckSignal::Pass, clock.step()), None);
    assert_eq!(h.check_states()[0].consecutive_ok, 0);
}

#[test]
fn service_state_names() {
    let names: Vec<&str> = ServiceState::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(
        names,
        ["starting", "up", "degraded", "down", "drained", "held"]
    );
    assert_eq!(ServiceState::Degraded.to_string(), "degraded");
}

// ---------------------------------------------------------------------------------------------- damping

pub(super) fn damped() -> ServiceConfig {
    let mut config = service();
    config.rise = 1;
    config.fall = 1;
    config.damping = DampingConfig::default();
    config
}

#[test]
fn damping_math_decay_and_ceiling() {
    let config = DampingConfig::default();
    let t0 = Instant::now();
    let mut d = Damping::new(config, t0);
    d.advance(t0, true);
    assert_eq!(d.penalty(), 1000.0);
    d.advance(t0 + Duration::from_secs(60), false);
    assert!(
        (d.penalty() - 500.0).abs() < 1e-6,
        "one half-life halves: {}",
        d.penalty()
    );
    d.advance(t0 + Duration::from_secs(90), false);
    assert!(
        (d.penalty() - 500.0 / 2f64.sqrt()).abs() < 1e-6,
        "{}",
        d.penalty()
    );
    d.advance(t0 + Duration::from_secs(90), true);
    assert!((d.penalty() - (1000.0 + 500.0 / 2f64.sqrt())).abs() < 1e-6);
    assert!(!d.suppressed());
    // Flaps at the same instant pile up to the ceiling, never beyond.
    for _ in 0..100 {
        d.advance(t0 + Duration::from_secs(90), true);
    }
    assert!(
        (d.penalty() - config.ceiling()).abs() < 1e-6,
        "{}",
        d.penalty()
    );
    assert!(d.suppressed());
    assert_eq!(d.flaps(), 102);
    // From the ceiling, decay to reuse takes exactly max_hold_down.
    assert_eq!(d.time_to_reuse().as_secs(), config.max_hold_down.as_secs());
    // An idle penalty decays to exactly zero eventually.
    d.advance(t0 + Duration::from_secs(90 + 3600), false);
    assert_eq!(d.penalty(), 0.0);
    assert!(!d.suppressed());
}

#[test]
fn damping_disabled_adds_no_penalty() {
    let config = DampingConfig {
        enabled: false,
        ..DampingConfig::default()
    };
    let t0 = Instant::now();
    let mut d = Damping::new(config, t0);
    for _ in 0..10 {
        d.advance(t0, true);
    }
    assert_eq!(d.penalty(), 0.0);
    assert!(!d.suppressed());
}

#[test]
fn one_outage_is_not_suppressed() {
    let mut clock = Clock::new();
    let config = damped();
    let mut h = up_service(&config, &mut clock);
    assert_eq!(
        h.penalty(),
        0.0,
        "the first verdict after start-up is no flap"
    );
    feed(&mut h, &mut clock, 0, &hard("down"), 1);
    feed(&mut h, &mut clock, 0, &CheckSignal::Pass, 1);
    assert_eq!(h.state(), ServiceState::Up);
    assert!(!h.suppressed());
    assert!(
        h.penalty() > 1900.0 && h.penalty() < 2000.0,
        "{}",
        h.penalty()
    );
}

#[test]
fn flapping_is_suppressed_until_the_penalty_decays_below_reuse() {
    let mut clock = Clock::new();
    let config = damped();
    let mut h = up_service(&config, &mut clock);
    // down, up, down, up within four seconds: the fourth transition crosses 3000.
    feed(&mut h, &mut clock, 0, &hard("timeout"), 1);
    feed(&mut h, &mut clock, 0, &CheckSignal::Pass, 1);
    feed(&mut h, &mut clock, 0, &hard("timeout"), 1);
    assert!(!h.suppressed(), "penalty {} still below 3000", h.penalty());
    let t = h.observe(0, CheckSignal::Pass, clock.step());
    assert!(h.suppressed(), "penalty {}", h.penalty());
    assert!(t.is_none(), "down stays down while suppressed: {t:?}");
    assert_eq!(h.state(), ServiceState::Down);
    assert!(all_withdrawn(&h));
    assert!(
        h.reason()
            .starts_with("flap damping: suppressed after 4 flap(s)"),
        "{}",
        h.reason()
    );
    assert!(
        h.reason().contains("the checks say up: check soa passes"),
        "{}",
        h.reason()
    );

    // Healthy but held: release happens when the penalty decays below 750 (~log2(3900/750) half-lives).
    let penalty = h.penalty();
    let to_reuse = Duration::from_secs_f64(60.0 * (penalty / 750.0).log2());
    assert!(
        h.tick(clock.advance(to_reuse - Duration::from_secs(2)))
            .is_none()
    );
    assert!(h.suppressed());
    let t = h
        .tick(clock.advance(Duration::from_secs(3)))
        .expect("released");
    assert_eq!((t.from, t.to), (ServiceState::Down, ServiceState::Up));
    assert!(!h.suppressed());
    assert!(h.penalty() < 750.0);
    assert_eq!(h.desired().state_of(&bird("anycast")), Some(ANNOUNCED));
}

#[test]
fn max_hold_down_bounds_a_suppression() {
    let mut clock = Clock::new();
    let config = damped();
    let mut h = up_service(&config, &mut clock);
    while !h.suppressed() {
        feed(&mut h, &mut clock, 0, &hard("x"), 1);
        feed(&mut h, &mut clock, 0, &CheckSignal::Pass, 1);
    }
    let suppressed_at = clock.now;
    // Flapping on while suppressed keeps the penalty at its ceiling...
    for _ in 0..120 {
        feed(&mut h, &mut clock, 0, &hard("x"), 1);
        feed(&mut h, &mut clock, 0, &CheckSignal::Pass, 1);
        assert!(h.suppressed());
    }
    assert!(h.penalty() > 20_000.0, "{}", h.penalty());
    // ...but one suppression never lasts longer than max_hold_down (5 min).
    let hold = config.damping.max_hold_down;
    assert!(
        h.tick(suppressed_at + hold - Duration::from_secs(1))
            .is_none()
    );
    assert!(h.suppressed());
    let t = h
        .tick(suppressed_at + hold)
        .expect("released by max hold-down");
    assert_eq!((t.from, t.to), (ServiceState::Down, ServiceState::Up));
    assert!(!h.suppressed());
    assert!(
        h.penalty() > 750.0,
        "the penalty itself is not reset: {}",
        h.penalty()
    );
    // With the penalty still high, the next flap suppresses again at once.
    h.observe(0, hard("x"), suppressed_at + hold + Duration::from_secs(1));
    h.observe(
        0,
        CheckSignal::Pass,
        suppressed_at + hold + Duration::from_secs(2),
    );
    assert!(h.suppressed());
}

#[test]
fn up_degraded_changes_add_no_penalty() {
    let mut clock = Clock::new();
    let config = damped();
    let mut h = up_service(&config, &mut clock);
    for _ in 0..20 {
        feed(&mut h, &mut clock, 0, &soft("slow"), 1);
        feed(&mut h, &mut clock, 0, &CheckSignal::Pass, 1);
    }
    assert_eq!(h.penalty(), 0.0);
    assert!(!h.suppressed());
}

// ------------------------------------------------------------------------------------------------ drain

pub(super) fn drain(reason: &str) -> Option<DrainRequest> {
    Some(DrainRequest {
        reason: reason.to_owned(),
        since_unix: 1_700_000_000,
    })
}

#[test]
fn drain_withdraws_and_undrain_returns_to_the_current_verdict() {
    let mut clock = Clock::new();
    let config = service();
    let mut h = up_service(&config, &mut clock);
    let t = h
        .set_drain(drain("maintenance"), clock.step())
        .expect("drained");
    assert_eq!((t.from, t.to), (ServiceState::Up, ServiceState::Drained));
    assert_eq!(h.reason(), "drained: maintenance");
    assert!(all_withdrawn(&h));
    assert_eq!(h.drain().map(|d| d.reason.as_str()), Some("maintenance"));
    // Health keeps being tracked while drained.
    feed(&mut h, &mut clock, 0, &hard("refused"), 3);
    assert_eq!(h.state(), ServiceState::Drained);
    feed(&mut h, &mut clock, 0, &CheckSignal::Pass, 3);
    // Same drain again (e.g. the poller re-reading the store): no transition.
    assert!(h.set_drain(drain("maintenance"), clock.step()).is_none());
    let t = h.set_drain(None, clock.step()).expect("undrained");
    assert_eq!((t.from, t.to), (ServiceState::Drained, ServiceState::Up));
    assert_eq!(h.desired().state_of(&bird("anycast")), Some(ANNOUNCED));
}

#[test]
fn undrain_of_a_failing_service_goes_down() {
    let mut clock = Clock::new();
    let config = service();
    let mut h = up_service(&config, &mut clock);
    h.set_drain(drain("m"), clock.step());
    feed(&mut h, &mut clock, 0, &hard("refused"), 3);
    let t = h.set_drain(None, clock.step()).expect("transition");
    assert_eq!(t.to, ServiceState::Down);
    assert!(all_withdrawn(&h));
}

#[test]
fn drain_at_start_up_is_immediate_even_with_graceful_drain() {
    let mut clock = Clock::new();
    let mut config = service();
    config.graceful_drain = Some(Duration::from_secs(30));
    let mut h = ServiceHealth::new(&config, clock.now);
    let t = h
        .set_drain(drain("persisted"), clock.step())
        .expect("drained");
    assert_eq!(
        (t.from, t.to),
        (ServiceState::Starting, ServiceState::Drained)
    );
    assert!(
        all_withdrawn(&h),
        "a restart while drained must not announce degrade targets"
    );
    feed(&mut h, &mut clock, 0, &CheckSignal::Pass, 5);
    assert_eq!(h.state(), ServiceState::Drained);
    assert!(all_withdrawn(&h));
}

#[test]
fn graceful_drain_announces_degrade_targets_then_withdraws() {
    let mut clock = Clock::new();
    let mut config = service();
    config.graceful_drain = Some(Duration::from_secs(30));
    let mut h = up_service(&config, &mut clock);
    let t = h
        .set_drain(drain("maintenance"), clock.step())
        .expect("drained");
    assert_eq!((t.from, t.to), (ServiceState::Up, ServiceState::Drained));
    // Make-before-break: the graceful-shutdown target comes up before the normal one goes.
    assert_eq!(
        steps(&h),
        vec![
            (bird("anycast_prepend"), ANNOUNCED),
            (bird("anycast"), WITHDRAWN)
        ]
    );
    assert!(h.reason().contains("graceful drain"), "{}", h.reason());
    assert!(h.reason().contains("30s"), "{}", h.reason());
    assert!(h.tick(clock.advance(Duration::from_secs(29))).is_none());
    assert!(h.reason().contains("another 1s"), "{}", h.reason());
    let t = h
        .tick(clock.advance(Duration::from_secs(1)))
        .expect("graceful period over");
    assert_eq!(
        (t.from, t.to),
        (ServiceState::Drained, ServiceState::Drained)
    );
    assert_eq!(t.reason, "drained: maintenance");
    assert!(all_withdrawn(&h));
    assert_eq!(h.transitions(), 3);
}

#[test]
fn graceful_drain_stops_at_once_when_the_service_fails() {
    let mut clock = Clock::new();
    let mut config = service();
    config.graceful_drain = Some(Duration::from_secs(300));
    let mut h = up_service(&config, &mut clock);
    h.set_drain(drain("m"), clock.step());
    assert_eq!(
        h.desired().state_of(&bird("anycast_prepend")),
        Some(ANNOUNCED)
    );
    feed(&mut h, &mut clock, 0, &hard("refused"), 3);
    assert_eq!(h.state(), ServiceState::Drained);
    assert!(all_withdrawn(&h));
}

#[test]
fn flaps_while_drained_add_no_penalty() {
    let mut clock = Clock::new();
    let config = damped();
    let mut h = up_service(&config, &mut clock);
    h.set_drain(drain("restart knot"), clock.step());
    for _ in 0..5 {
        feed(&mut h, &mut clock, 0, &hard("refused"), 1);
        feed(&mut h, &mut clock, 0, &CheckSignal::Pass, 1);
    }
    assert_eq!(h.penalty(), 0.0);
    h.set_drain(None, clock.step());
    assert_eq!(h.state(), ServiceState::Up);
}

// --------------------------------------------------------------------------------------- classification

pub(super) fn transport_result(
    transport: Transport,
    status: ProbeStatus,
    reason: Option<FailReason>,
    ms: u64,
) -> TransportResult {
    TransportResult {
        transport,
        latency: Duration::from_millis(ms),
        status,
        reason,
        rcode: None,
        answers: Vec::new(),
    }
}

pub(super) fn outcome(
    status: ProbeStatus,
    transports: Vec<TransportResult>,
    identity: Option<&str>,
) -> ProbeOutcome {
    ProbeOutcome {
        status,
        reason: transports.iter().find_map(|t| t.reason.clone()),
        transports,
        identity: identity.map(str::to_owned),
    }
}

#[test]
fn classify_probe_tiers() {
    let pass = outcome(
        ProbeStatus::Pass,
        vec![transport_result(Transport::Udp, ProbeStatus::Pass, None, 1)],
        Some("ns1"),
    );
    assert_eq!(classify_probe(&pass), CheckSignal::Pass);

    let slow = outcome(
        ProbeStatus::Slow,
        vec![
            transport_result(Transport::Udp, ProbeStatus::Pass, None, 1),
            transport_result(Transport::Tcp, ProbeStatus::Slow, None, 250),
        ],
        None,
    );
    assert_eq!(
        classify_probe(&slow),
        soft("slow answer (tcp 250ms), over the slow_after limit")
    );

    let refused = outcome(
        ProbeStatus::Fail,
        vec![transport_result(
            Transport::Udp,
            ProbeStatus::Fail,
            Some(FailReason::ConnectionRefused),
            0,
        )],
        None,
    );
    let CheckSignal::Refused(text) = classify_probe(&refused) else {
        panic!("refused: nothing listens")
    };
    assert!(text.starts_with("udp: connection refused"), "{text}");

    let rcode = outcome(
        ProbeStatus::Fail,
        vec![transport_result(
            Transport::Tcp,
            ProbeStatus::Fail,
            Some(FailReason::UnexpectedRcode(ResponseCode::Refused)),
            2,
        )],
        Some("ns2"),
    );
    let CheckSignal::Hard(text) = classify_probe(&rcode) else {
        panic!("hard")
    };
    assert!(
        text.contains("tcp: unexpected rcode") && text.contains("after 2ms"),
        "{text}"
    );
    assert!(text.contains("answered by \"ns2\""), "{text}");

    for reason in [
        FailReason::Timeout,
        FailReason::NotAuthoritative,
        FailReason::IdentityMismatch {
            expected: "ns1".into(),
            found: Some("ns9".into()),
        },
        FailReason::AnswerMismatch {
            expected: "ok".into(),
            found: vec!["bad".into()],
        },
    ] {
        let o = outcome(
            ProbeStatus::Fail,
            vec![transport_result(
                Transport::Udp,
                ProbeStatus::Fail,
                Some(reason.clone()),
                5,
            )],
            None,
        );
        // A timeout is hard too, marked as such for the overload policy.
        assert!(
            matches!(
                classify_probe(&o),
                CheckSignal::Hard(_) | CheckSignal::TimedOut(_)
            ),
            "{reason:?} must be hard"
        );
        assert_eq!(
            matches!(classify_probe(&o), CheckSignal::TimedOut(_)),
            reason == FailReason::Timeout,
            "{reason:?}"
        );
    }

    let no_detail = ProbeOutcome {
        status: ProbeStatus::Fail,
        reason: None,
        transports: Vec::new(),
        identity: None,
    };
    assert_eq!(
        classify_probe(&no_detail),
        hard("the probe failed without a reason")
    );
}

pub(super) fn zone(
    name: &str,
    verdict: SerialVerdict,
    local: Option<u32>,
    reference: Option<u32>,
) -> ZoneSerial {
    let lag = match (local, reference) {
        (Some(l), Some(r)) if r >= l => Some(r - l),
        _ => None,
    };
    ZoneSerial {
        zone: Name::from_ascii(name).expect("name"),
        outcome: SerialOutcome {
            verdict,
            local_serial: local,
            reference_serial: reference,
            lag,
            local_latency: None,
            reference_latency: None,
        },
    }
}

pub(super) fn sweep(zones: Vec<ZoneSerial>) -> SweepReport {
    SweepReport {
        zones,
        summary: SweepSummary::default(),
        elapsed: Duration::from_millis(3),
    }
}

#[test]
fn classify_sweep_tiers() {
    let in_sync = sweep(vec![zone("a.", SerialVerdict::InSync, Some(1), Some(1))]);
    assert_eq!(classify_sweep(&in_sync, 0), CheckSignal::Pass);

    let lagging = sweep(vec![
        zone("a.", SerialVerdict::InSync, Some(1), Some(1)),
        zone("b.", SerialVerdict::Lagging, Some(5), Some(7)),
    ]);
    assert_eq!(
        classify_sweep(&lagging, 0),
        soft("1 of 2 zone(s) lagging within max_lag: b. lags by 2")
    );

    let behind = sweep(vec![
        zone("a.", SerialVerdict::Behind, Some(1), Some(100)),
        zone(
            "b.",
            SerialVerdict::ReferenceUnreachable(FailReason::Timeout),
            Some(1),
            None,
        ),
    ]);
    assert_eq!(
        classify_sweep(&behind, 0),
        hard("1 of 2 zone(s) failing locally: a. is 99 behind (local 1, reference 100)"),
        "a local failure wins over an unreachable reference"
    );

    let local_failed = sweep(vec![zone(
        "c.",
        SerialVerdict::LocalFailed(FailReason::UnexpectedRcode(ResponseCode::Refused)),
        None,
        Some(3),
    )]);
    let CheckSignal::Hard(text) = classify_sweep(&local_failed, 0) else {
        panic!("hard")
    };
    assert!(
        text.starts_with("1 of 1 zone(s) failing locally: c.: local server: unexpected rcode"),
        "{text}"
    );

    let unreachable = sweep(vec![zone(
        "d.",
        SerialVerdict::ReferenceUnreachable(FailReason::ConnectionRefused),
        Some(3),
        None,
    )]);
    let CheckSignal::Soft(text) = classify_sweep(&unreachable, 0) else {
        panic!("soft")
    };
    assert!(
        text.contains("reference unreachable for 1 of 1 zone(s) (not a local failure)"),
        "{text}"
    );

    assert!(matches!(
        classify_sweep(&sweep(Vec::new()), 0),
        CheckSignal::Soft(_)
    ));
}

#[test]
fn classify_sweep_names_a_few_zones_and_counts_the_rest() {
    let zones = (0..10)
        .map(|i| {
            zone(
                &format!("z{i}.example."),
                SerialVerdict::Behind,
                Some(1),
                Some(50),
            )
        })
        .collect();
    let CheckSignal::Hard(text) = classify_sweep(&sweep(zones), 0) else {
        panic!("hard")
    };
    assert!(
        text.starts_with("10 of 10 zone(s) failing locally: z0.example. is 49 behind"),
        "{text}"
    );
    assert!(text.ends_with("and 7 more"), "{text}");
}

#[test]
fn classify_sweep_tolerates_up_to_max_behind_zones_as_soft() {
    let behind = |name: &str| zone(name, SerialVerdict::Behind, Some(1), Some(50));
    let in_sync = |name: &str| zone(name, SerialVerdict::InSync, Some(7), Some(7));
    let two_behind = sweep(vec![
        in_sync("a."),
        behind("b."),
        in_sync("c."),
        behind("d."),
        zone("e.", SerialVerdict::Lagging, Some(5), Some(7)),
    ]);
    // Default 0: any zone behind is hard, with exactly the message of before the option existed.
    assert_eq!(
        classify_sweep(&two_behind, 0),
        hard(
            "2 of 5 zone(s) failing locally: b. is 49 behind (local 1, reference 50), d. is 49 behind (local \
             1, reference 50)"
        )
    );
    // Within the tolerance: soft, so the service degrades instead of withdrawing, and the reason names them.
    for tolerance in [2, 3] {
        assert_eq!(
            classify_sweep(&two_behind, tolerance),
            soft(&format!(
                "2 of 5 zone(s) behind beyond max_lag, tolerated by max_behind_zones = {tolerance}: b. is 49 \
                 behind (local 1, reference 50), d. is 49 behind (local 1, reference 50); 1 of 5 zone(s) \
                 lagging within max_lag: e. lags by 2"
            ))
        );
    }
    // Beyond the tolerance: hard, saying which limit was passed.
    let CheckSignal::Hard(text) = classify_sweep(&two_behind, 1) else {
        panic!("hard")
    };
    assert!(
        text.starts_with("2 of 5 zone(s) failing locally: b. is 49 behind")
            && text.ends_with("(more than max_behind_zones = 1)"),
        "{text}"
    );
    // A zone the local server fails to answer for is never tolerated: that is not staleness.
    let failed = sweep(vec![
        behind("b."),
        zone(
            "f.",
            SerialVerdict::LocalFailed(FailReason::UnexpectedRcode(ResponseCode::Refused)),
            None,
            Some(3),
        ),
    ]);
    let CheckSignal::Hard(text) = classify_sweep(&failed, 5) else {
        panic!("hard")
    };
    assert!(
        text.starts_with("2 of 2 zone(s) failing locally: b. is 49 behind (local 1, reference 50), f.: local server:"),
        "{text}"
    );
    assert!(!text.contains("max_behind_zones"), "{text}");
    // Nothing behind: the tolerance changes nothing.
    assert_eq!(
        classify_sweep(&sweep(vec![in_sync("a.")]), 3),
        CheckSignal::Pass
    );
}

#[test]
fn a_tolerated_stale_zone_degrades_the_service_instead_of_withdrawing_it() {
    let config = service();
    let report = sweep(vec![
        zone("a.", SerialVerdict::InSync, Some(7), Some(7)),
        zone("b.", SerialVerdict::Behind, Some(1), Some(50)),
    ]);

    let mut clock = Clock::new();
    let mut h = up_service(&config, &mut clock);
    feed(&mut h, &mut clock, 0, &classify_sweep(&report, 1), 10);
    assert_eq!(h.state(), ServiceState::Degraded, "{}", h.reason());
    assert!(
        steps(&h).contains(&(bird("anycast_prepend"), ANNOUNCED)),
        "{:?}",
        steps(&h)
    );
    assert!(
        h.reason().contains("tolerated by max_behind_zones = 1"),
        "{}",
        h.reason()
    );

    // The default withdraws for the same sweep.
    let mut clock = Clock::new();
    let mut h = up_service(&config, &mut clock);
    feed(&mut h, &mut clock, 0, &classify_sweep(&report, 0), 10);
    assert_eq!(h.state(), ServiceState::Down, "{}", h.reason());
    assert!(all_withdrawn(&h), "{:?}", steps(&h));
}

#[test]
fn check_signal_accessors() {
    assert_eq!(CheckSignal::Pass.as_str(), "pass");
    assert_eq!(soft("x").as_str(), "soft");
    assert_eq!(hard("y").detail(), "y");
    assert_eq!(CheckSignal::Pass.detail(), "ok");
    assert_eq!(hard("y").to_string(), "hard: y");
}

// ------------------------------------------------------------------------------------------- reconfigure

#[test]
fn reconfigure_keeps_check_history_and_does_not_restart_a_healthy_service() {
    let mut clock = Clock::new();
    let config = service();
    let mut h = up_service(&config, &mut clock);
    let mut changed = config.clone();
    changed.checks[0].timeout = Duration::from_millis(300);
    changed.checks.push(check("serial"));
    changed.rise = 2;
    assert!(
        h.reconfigure(&changed, clock.step()).is_none(),
        "still up: {}",
        h.reason()
    );
    assert_eq!(h.state(), ServiceState::Up);
    assert!(h.check_states()[1].pending);
    assert!(
        h.reason()
            .contains("new check(s) not counted until they decide: serial 0/2"),
        "{}",
        h.reason()
    );
    // Once the new check decides it counts like any other: failing it withdraws.
    feed(&mut h, &mut clock, 1, &CheckSignal::Pass, 2);
    assert!(!h.check_states()[1].pending);
    assert_eq!(h.reason(), "all 2 checks pass");
    feed(&mut h, &mut clock, 1, &hard("behind"), 3);
    assert_eq!(h.state(), ServiceState::Down);
}

#[test]
fn reconfigure_a_new_check_that_fails_withdraws() {
    let mut clock = Clock::new();
    let config = service();
    let mut h = up_service(&config, &mut clock);
    let mut changed = config.clone();
    changed.checks.push(check("broken"));
    h.reconfigure(&changed, clock.step());
    feed(&mut h, &mut clock, 1, &hard("refused"), 2);
    assert_eq!(h.state(), ServiceState::Up);
    let t = feed(&mut h, &mut clock, 1, &hard("refused"), 1);
    assert_eq!(t[0].to, ServiceState::Down);
}

#[test]
fn reconfigure_targets_and_damping() {
    let mut clock = Clock::new();
    let config = damped();
    let mut h = up_service(&config, &mut clock);
    while !h.suppressed() {
        feed(&mut h, &mut clock, 0, &hard("x"), 1);
        feed(&mut h, &mut clock, 0, &CheckSignal::Pass, 1);
    }
    let mut changed = config.clone();
    changed.announce = vec![bird("anycast_v2")];
    // The renamed target changes the desired routes (reported as down -> down), the state stays down.
    let t = h
        .reconfigure(&changed, clock.step())
        .expect("routes changed");
    assert_eq!((t.from, t.to), (ServiceState::Down, ServiceState::Down));
    assert!(h.suppressed(), "suppression survives a reload");
    changed.damping.enabled = false;
    let t = h.reconfigure(&changed, clock.step()).expect("released");
    assert_eq!(t.to, ServiceState::Up);
    assert_eq!(
        steps(&h),
        vec![
            (bird("anycast_v2"), ANNOUNCED),
            (bird("anycast_prepend"), WITHDRAWN)
        ]
    );
}

#[test]
fn reconfigure_while_starting_keeps_new_checks_required() {
    let mut clock = Clock::new();
    let config = service();
    let mut h = ServiceHealth::new(&config, clock.now);
    let mut changed = config.clone();
    changed.checks.push(check("second"));
    h.reconfigure(&changed, clock.step());
    assert!(!h.check_states()[1].pending);
    feed(&mut h, &mut clock, 0, &CheckSignal::Pass, 3);
    assert_eq!(h.state(), ServiceState::Starting);
}

#[test]
fn classify_probe_identity_mismatch_outside_any_transport() {
    // A CHAOS TXT identity query failing to match fails the probe as a whole, not one transport.
    let o = ProbeOutcome {
        status: ProbeStatus::Fail,
        reason: Some(FailReason::IdentityMismatch {
            expected: "ns1".into(),
            found: Some("ns9".into()),
        }),
        transports: vec![transport_result(Transport::Udp, ProbeStatus::Pass, None, 1)],
        identity: Some("ns9".into()),
    };
    let CheckSignal::Hard(text) = classify_probe(&o) else {
        panic!("hard")
    };
    assert_eq!(text, "answered by \"ns9\", expected \"ns1\"");
}

// ---------------------------------------------------------------------------------------- invariants

/// A small deterministic generator (xorshift), so the invariant test needs no extra dependency and
/// always runs the same sequences.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn check_invariants(h: &ServiceHealth, config: &ServiceConfig) {
    let steps = steps(h);
    let targets: Vec<&RouteTarget> = config.targets().collect();
    assert_eq!(steps.len(), targets.len(), "every target exactly once");
    for t in &targets {
        assert_eq!(steps.iter().filter(|(s, _)| s == *t).count(), 1);
    }
    let first_withdrawn = steps
        .iter()
        .position(|(_, s)| *s == WITHDRAWN)
        .unwrap_or(steps.len());
    assert!(
        steps[first_withdrawn..]
            .iter()
            .all(|(_, s)| *s == WITHDRAWN),
        "make-before-break: every announcement comes first: {steps:?}"
    );
    let normal_up = config
        .announce
        .iter()
        .any(|t| h.desired().state_of(t) == Some(ANNOUNCED));
    let degrade_up = config
        .degrade
        .iter()
        .any(|t| h.desired().state_of(t) == Some(ANNOUNCED));
    assert!(!(normal_up && degrade_up), "never both sets at once");
    match h.state() {
        ServiceState::Starting | ServiceState::Down => assert!(all_withdrawn(h), "{}", h.reason()),
        ServiceState::Up => assert!(normal_up && !degrade_up),
        ServiceState::Degraded => assert!(degrade_up || config.degrade.is_empty() && normal_up),
        ServiceState::Drained => assert!(!normal_up),
        ServiceState::Held => assert!(degrade_up || config.degrade.is_empty() && normal_up),
    }
    assert!(!h.reason().is_empty());
}

#[test]
fn random_signal_sequences_keep_the_invariants() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..300 {
        let mut config = damped();
        config.rise = 1 + rng.below(4) as u32;
        config.fall = 1 + rng.below(4) as u32;
        config.checks = (0..1 + rng.below(3))
            .map(|i| check(&format!("c{i}")))
            .collect();
        config.combine = match rng.below(3) {
            0 => Combine::All,
            1 => Combine::Any,
            _ => Combine::AtLeast(1 + rng.below(config.checks.len() as u64) as usize),
        };
        config.damping.enabled = rng.below(2) == 0;
        if rng.below(3) == 0 {
            config.degrade.clear();
        } else if rng.below(2) == 0 {
            config.graceful_drain = Some(Duration::from_secs(5));
        }
        let mut clock = Clock::new();
        let mut h = ServiceHealth::new(&config, clock.now);
        check_invariants(&h, &config);
        let mut soft_only_since_announcing = false;
        for _ in 0..200 {
            let now = clock.step();
            let index = rng.below(config.checks.len() as u64) as usize;
            let event = rng.below(20);
            let hard_phase = round % 2 == 0;
            let before = h.state();
            match event {
                0 => {
                    h.set_drain(drain("random"), now);
                }
                1 => {
                    h.set_drain(None, now);
                }
                2 => {
                    h.tick(now);
                }
                3..=7 if hard_phase => {
                    h.observe(index, hard("x"), now);
                }
                3..=10 => {
                    h.observe(index, soft("s"), now);
                }
                _ => {
                    h.observe(index, CheckSignal::Pass, now);
                }
            }
            check_invariants(&h, &config);
            // Without hard signals, a service that announced never withdraws unless drained.
            if !hard_phase {
                if matches!(before, ServiceState::Up | ServiceState::Degraded) {
                    soft_only_since_announcing = true;
                }
                if soft_only_since_announcing && h.drain().is_none() {
                    assert!(
                        matches!(h.state(), ServiceState::Up | ServiceState::Degraded),
                        "round {round}: soft signals withdrew: {}",
                        h.reason()
                    );
                }
            }
        }
    }
}

#[test]
fn degraded_reason_names_a_recent_hard_failure_as_such() {
    let mut clock = Clock::new();
    let config = service();
    let mut h = up_service(&config, &mut clock);
    feed(&mut h, &mut clock, 0, &soft("slow"), 3);
    feed(&mut h, &mut clock, 0, &hard("timeout"), 1);
    assert_eq!(h.state(), ServiceState::Degraded);
    assert!(
        h.reason()
            .contains("check soa: timeout (1/3 consecutive failures, not down yet)"),
        "{}",
        h.reason()
    );
}

#[test]
fn a_warm_start_keeps_the_announced_target_while_passing_and_hands_over_to_up() {
    let mut clock = Clock::new();
    let mut h = ServiceHealth::new(&service(), clock.now);
    let until = clock.now + Duration::from_secs(10);
    // `other` is not this service's target: ignored.
    h.warm_start(&[bird("anycast"), bird("other")], until, clock.now)
        .expect("the routes change");
    assert_eq!(h.state(), ServiceState::Starting);
    assert!(h.reason().contains("warm restart"), "{}", h.reason());
    assert_eq!(
        steps(&h),
        vec![
            (bird("anycast"), ANNOUNCED),
            (bird("anycast_prepend"), WITHDRAWN)
        ]
    );
    feed(&mut h, &mut clock, 0, &CheckSignal::Pass, 2);
    assert_eq!(
        steps(&h)[0],
        (bird("anycast"), ANNOUNCED),
        "kept while passing"
    );
    feed(&mut h, &mut clock, 0, &CheckSignal::Pass, 1);
    assert_eq!(h.state(), ServiceState::Up);
    assert_eq!(steps(&h)[0], (bird("anycast"), ANNOUNCED));
    // Once up the hold is over: a later failure follows the normal fall rule.
    feed(&mut h, &mut clock, 0, &hard("timeout"), 3);
    assert_eq!(h.state(), ServiceState::Down);
    assert!(all_withdrawn(&h));
}

#[test]
fn a_warm_start_withdraws_at_the_first_failing_probe() {
    let mut clock = Clock::new();
    let mut h = ServiceHealth::new(&service(), clock.now);
    h.warm_start(
        &[bird("anycast")],
        clock.now + Duration::from_secs(10),
        clock.now,
    );
    let t = h
        .observe(0, hard("connection refused"), clock.step())
        .expect("the routes change");
    assert_eq!(t.to, ServiceState::Starting);
    assert!(all_withdrawn(&h), "{:?}", steps(&h));
    // The hold does not come back: passes now need the full rise.
    feed(&mut h, &mut clock, 0, &CheckSignal::Pass, 2);
    assert!(all_withdrawn(&h));
}

#[test]
fn a_warm_start_ends_at_its_deadline_and_never_announces_what_was_not_announced() {
    let mut clock = Clock::new();
    let mut h = ServiceHealth::new(&service(), clock.now);
    assert!(
        h.warm_start(
            &[bird("unrelated")],
            clock.now + Duration::from_secs(10),
            clock.now
        )
        .is_none(),
        "nothing of this service was announced: a cold start"
    );
    assert!(all_withdrawn(&h));

    let mut h = ServiceHealth::new(&service(), clock.now);
    h.warm_start(
        &[bird("anycast")],
        clock.now + Duration::from_secs(2),
        clock.now,
    );
    assert!(!all_withdrawn(&h));
    assert!(h.tick(clock.advance(Duration::from_secs(3))).is_some());
    assert!(all_withdrawn(&h), "the hold ended: {}", h.reason());
    assert!(
        h.reason().contains("nothing is announced"),
        "{}",
        h.reason()
    );
}

#[test]
fn a_drain_overrides_a_warm_start() {
    let mut clock = Clock::new();
    let mut h = ServiceHealth::new(&service(), clock.now);
    h.warm_start(
        &[bird("anycast")],
        clock.now + Duration::from_secs(10),
        clock.now,
    );
    h.set_drain(Some(DrainRequest::new("maintenance")), clock.step());
    assert_eq!(h.state(), ServiceState::Drained);
    assert!(all_withdrawn(&h));
}

#[test]
fn a_missing_target_holds_the_service_down_with_the_name_until_it_exists() {
    let mut clock = Clock::new();
    let config = service();
    let mut h = up_service(&config, &mut clock);
    // Someone else's missing target changes nothing.
    assert!(
        h.set_missing_targets(&[bird("other")], clock.step())
            .is_none()
    );
    assert_eq!(h.state(), ServiceState::Up);

    let t = h
        .set_missing_targets(&[bird("anycast")], clock.step())
        .expect("transition");
    assert_eq!((t.from, t.to), (ServiceState::Up, ServiceState::Down));
    assert!(h.reason().contains("misconfigured"), "{}", h.reason());
    assert!(h.reason().contains("anycast"), "{}", h.reason());
    assert!(all_withdrawn(&h));
    // Passing checks do not bring it up while the target is missing.
    feed(&mut h, &mut clock, 0, &CheckSignal::Pass, 5);
    assert_eq!(h.state(), ServiceState::Down);

    h.set_missing_targets(&[], clock.step())
        .expect("transition");
    assert_eq!(h.state(), ServiceState::Up);
}

// ---- fleet guard overlay ----

pub(super) fn guarded(
    on_unavailable: crate::config::OnUnavailable,
    all_failures: bool,
) -> GuardPolicy {
    GuardPolicy {
        all_failures,
        on_unavailable,
    }
}

/// An up service under the fleet guard with `on_unavailable = "local"`.
pub(super) fn guarded_up_service(config: &ServiceConfig, clock: &mut Clock) -> ServiceHealth {
    let mut h = up_service(config, clock);
    h.set_guard_policy(
        Some(guarded(crate::config::OnUnavailable::Local, false)),
        clock.now,
    );
    h
}

/// Marks the pending question asked and feeds `answer`.
pub(super) fn answer(
    h: &mut ServiceHealth,
    clock: &mut Clock,
    answer: GuardAnswer,
) -> Option<Transition> {
    h.guard_asked();
    h.guard_answered(answer, clock.step())
}

pub(super) fn announced(h: &ServiceHealth) -> Vec<String> {
    steps(h)
        .iter()
        .filter(|(_, s)| *s == ANNOUNCED)
        .map(|(t, _)| crate::routes::TargetId::of(t).target)
        .collect()
}

#[test]
fn a_guarded_withdrawal_keeps_the_routes_until_the_guard_allows_it() {
    let mut clock = Clock::new();
    let mut h = guarded_up_service(&service(), &mut clock);
    assert_eq!(h.guard_question(), None, "nothing to ask while up");
    feed(&mut h, &mut clock, 0, &hard("timeout"), 3);
    assert_eq!(h.state(), ServiceState::Up, "routes kept while asking");
    assert_eq!(announced(&h), ["anycast"]);
    let question = h.guard_question().expect("a question").to_owned();
    assert!(question.contains("timeout"), "{question}");
    h.guard_asked();
    assert_eq!(h.guard_question(), None, "asked once");
    // More failures while the question is out change nothing.
    feed(&mut h, &mut clock, 0, &hard("timeout"), 2);
    assert_eq!(h.state(), ServiceState::Up);
    assert_eq!(h.guard_question(), None);
    let t = h
        .guard_answered(
            GuardAnswer::Allowed {
                announcing: 3,
                needed: 2,
            },
            clock.step(),
        )
        .expect("a transition");
    assert_eq!((t.from, t.to), (ServiceState::Up, ServiceState::Down));
    assert!(all_withdrawn(&h));
    assert!(h.reason().contains("allowed"), "{}", h.reason());
    // Still failing: no new question for the same failure.
    feed(&mut h, &mut clock, 0, &hard("timeout"), 3);
    assert_eq!(h.guard_question(), None);
    assert_eq!(h.state(), ServiceState::Down);
}

#[test]
fn a_held_service_announces_its_degrade_targets_and_asks_again_when_the_fleet_changes() {
    let mut clock = Clock::new();
    let mut h = guarded_up_service(&service(), &mut clock);
    feed(&mut h, &mut clock, 0, &hard("answer mismatch"), 3);
    h.guard_asked();
    let t = h
        .guard_answered(
            GuardAnswer::Held {
                announcing: 1,
                needed: 2,
            },
            clock.step(),
        )
        .expect("a transition");
    assert_eq!(t.to, ServiceState::Held);
    assert_eq!(announced(&h), ["anycast_prepend"], "degrade targets");
    assert_eq!(
        steps(&h),
        [
            (bird("anycast_prepend"), ANNOUNCED),
            (bird("anycast"), WITHDRAWN)
        ],
        "make-before-break"
    );
    assert!(
        h.reason().contains("held by the fleet guard"),
        "{}",
        h.reason()
    );
    assert!(h.reason().contains("answer mismatch"), "{}", h.reason());
    // The fleet changed: ask again, keeping the held routes meanwhile.
    assert_eq!(h.guard_retry(clock.step()), None, "no route change");
    assert_eq!(h.state(), ServiceState::Held);
    assert!(h.guard_question().is_some());
    answer(
        &mut h,
        &mut clock,
        GuardAnswer::Allowed {
            announcing: 2,
            needed: 2,
        },
    );
    assert_eq!(h.state(), ServiceState::Down);
    assert!(all_withdrawn(&h));
}

#[test]
fn a_held_service_without_degrade_targets_keeps_its_normal_targets_and_recovers_to_up() {
    let mut clock = Clock::new();
    let mut config = service();
    config.degrade.clear();
    let mut h = guarded_up_service(&config, &mut clock);
    feed(&mut h, &mut clock, 0, &hard("timeout"), 3);
    answer(
        &mut h,
        &mut clock,
        GuardAnswer::Held {
            announcing: 0,
            needed: 1,
        },
    );
    assert_eq!(h.state(), ServiceState::Held);
    assert_eq!(announced(&h), ["anycast"]);
    feed(&mut h, &mut clock, 0, &CheckSignal::Pass, 3);
    assert_eq!(h.state(), ServiceState::Up);
    assert_eq!(h.guard_question(), None);
    // A new failure asks anew.
    feed(&mut h, &mut clock, 0, &hard("timeout"), 3);
    assert!(h.guard_question().is_some());
}

#[test]
fn refused_connections_withdraw_at_once_unless_guard_all_failures() {
    let refused = CheckSignal::Refused("udp: connection refused".to_owned());
    for (all_failures, expect_question) in [(false, false), (true, true)] {
        let mut clock = Clock::new();
        let mut h = up_service(&service(), &mut clock);
        h.set_guard_policy(
            Some(guarded(crate::config::OnUnavailable::Local, all_failures)),
            clock.now,
        );
        feed(&mut h, &mut clock, 0, &refused, 3);
        assert_eq!(h.guard_question().is_some(), expect_question);
        if expect_question {
            assert_eq!(h.state(), ServiceState::Up);
        } else {
            assert_eq!(h.state(), ServiceState::Down);
            assert!(all_withdrawn(&h));
            assert!(h.reason().contains("refuses connections"), "{}", h.reason());
        }
    }
}

#[test]
fn etcd_unavailable_follows_on_unavailable() {
    for (policy, expected) in [
        (crate::config::OnUnavailable::Local, ServiceState::Down),
        (crate::config::OnUnavailable::Hold, ServiceState::Held),
    ] {
        let mut clock = Clock::new();
        let mut h = up_service(&service(), &mut clock);
        h.set_guard_policy(Some(guarded(policy, false)), clock.now);
        feed(&mut h, &mut clock, 0, &hard("timeout"), 3);
        h.guard_asked();
        h.guard_answered(
            GuardAnswer::Unavailable {
                error: "etcd timed out".to_owned(),
            },
            clock.step(),
        );
        assert_eq!(h.state(), expected, "{}", h.reason());
        assert!(h.reason().contains("etcd timed out"), "{}", h.reason());
    }
}

#[test]
fn drains_missing_targets_and_services_announcing_nothing_are_not_guarded() {
    let mut clock = Clock::new();
    let policy = Some(guarded(crate::config::OnUnavailable::Local, false));
    // Starting (nothing announced) and failing: down at once.
    let mut h = ServiceHealth::new(&service(), clock.now);
    h.set_guard_policy(policy, clock.now);
    feed(&mut h, &mut clock, 0, &hard("timeout"), 3);
    assert_eq!(h.state(), ServiceState::Down);
    assert_eq!(h.guard_question(), None);
    // A drain withdraws at once.
    let mut h = up_service(&service(), &mut clock);
    h.set_guard_policy(policy, clock.now);
    h.set_drain(
        Some(DrainRequest {
            reason: "maintenance".to_owned(),
            since_unix: 0,
        }),
        clock.step(),
    );
    assert_eq!(h.state(), ServiceState::Drained);
    assert!(all_withdrawn(&h));
    assert_eq!(h.guard_question(), None);
    // A missing target withdraws at once.
    let mut h = up_service(&service(), &mut clock);
    h.set_guard_policy(policy, clock.now);
    h.set_missing_targets(&[bird("anycast")], clock.step());
    assert_eq!(h.state(), ServiceState::Down);
    assert_eq!(h.guard_question(), None);
}

#[test]
fn a_late_answer_after_recovery_is_ignored() {
    let mut clock = Clock::new();
    let mut h = guarded_up_service(&service(), &mut clock);
    feed(&mut h, &mut clock, 0, &hard("timeout"), 3);
    h.guard_asked();
    feed(&mut h, &mut clock, 0, &CheckSignal::Pass, 3);
    assert_eq!(h.state(), ServiceState::Up);
    assert_eq!(
        h.guard_answered(
            GuardAnswer::Allowed {
                announcing: 4,
                needed: 1
            },
            clock.step()
        ),
        None
    );
    assert_eq!(h.state(), ServiceState::Up);
    assert_eq!(announced(&h), ["anycast"]);
}

#[test]
fn etcd_failing_a_held_services_retry_keeps_it_held_even_with_on_unavailable_local() {
    let mut clock = Clock::new();
    let mut h = guarded_up_service(&service(), &mut clock);
    feed(&mut h, &mut clock, 0, &hard("timeout"), 3);
    answer(
        &mut h,
        &mut clock,
        GuardAnswer::Held {
            announcing: 2,
            needed: 3,
        },
    );
    assert_eq!(h.state(), ServiceState::Held);
    h.guard_retry(clock.step());
    answer(
        &mut h,
        &mut clock,
        GuardAnswer::Unavailable {
            error: "no answer within guard_timeout".to_owned(),
        },
    );
    assert_eq!(h.state(), ServiceState::Held, "{}", h.reason());
    assert_eq!(announced(&h), ["anycast_prepend"]);
    assert!(h.reason().contains("still held"), "{}", h.reason());
    // The next retry that etcd answers decides.
    h.guard_retry(clock.step());
    answer(
        &mut h,
        &mut clock,
        GuardAnswer::Allowed {
            announcing: 3,
            needed: 3,
        },
    );
    assert_eq!(h.state(), ServiceState::Down);
}

#[test]
fn a_held_service_that_is_recovering_is_not_asked_again() {
    let mut clock = Clock::new();
    let mut h = guarded_up_service(&service(), &mut clock);
    feed(&mut h, &mut clock, 0, &hard("timeout"), 3);
    answer(
        &mut h,
        &mut clock,
        GuardAnswer::Held {
            announcing: 2,
            needed: 3,
        },
    );
    // The shared failure ends: this node passes once (rise 3), the others come back and the fleet
    // changes. Asking now could withdraw a node two probes away from up.
    feed(&mut h, &mut clock, 0, &CheckSignal::Pass, 1);
    assert_eq!(h.guard_retry(clock.step()), None);
    assert_eq!(h.guard_question(), None, "not asked while recovering");
    assert_eq!(h.state(), ServiceState::Held);
    feed(&mut h, &mut clock, 0, &CheckSignal::Pass, 2);
    assert_eq!(h.state(), ServiceState::Up);
    // Failing again while held: asked again on the next change.
    feed(&mut h, &mut clock, 0, &hard("timeout"), 3);
    answer(
        &mut h,
        &mut clock,
        GuardAnswer::Held {
            announcing: 2,
            needed: 3,
        },
    );
    feed(&mut h, &mut clock, 0, &hard("timeout"), 1);
    h.guard_retry(clock.step());
    assert!(h.guard_question().is_some());
}
