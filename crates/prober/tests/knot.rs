//! Probes against a real Knot DNS (and a second Knot as the hidden-primary reference).

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use nsbeacon_prober::proto::op::ResponseCode;
use nsbeacon_prober::proto::rr::{Name, RecordType};
use nsbeacon_prober::{
    AnswerMatch, Expectations, FailReason, IdentitySpec, ProbeSpec, ProbeStatus, QuerySpec,
    SerialSpec, SerialSweep, SerialVerdict, SpecError, Transport, check_serial, probe,
};
use nsbeacon_testkit::knot::{KnotConfig, KnotServer, Zone};

/// Generous: these probes must get Knot's answer on a loaded machine; the timeout cases pay it in full.
const TIMEOUT: Duration = Duration::from_secs(2);

fn name(s: &str) -> Name {
    Name::from_str(s).expect("valid name")
}

fn node_a() -> KnotServer {
    KnotServer::start(
        KnotConfig::new()
            .with_nsid("node-a")
            .with_identity("node-a.example")
            .with_zone(
                Zone::new("example.com.", 2024010101)
                    .with_record("health IN TXT \"ok node-a\"")
                    .with_record("www IN A 192.0.2.80"),
            )
            .with_zone(Zone::new("example.net.", 7)),
    )
}

fn apex_a(target: SocketAddr) -> ProbeSpec {
    ProbeSpec::new(target, QuerySpec::new(name("example.com."), RecordType::A))
        .with_timeout(TIMEOUT)
}

#[tokio::test]
async fn passes_on_udp_tcp_and_both_with_nsid() {
    let knot = node_a();
    for transport in [Transport::Udp, Transport::Tcp, Transport::Both] {
        let spec = apex_a(knot.addr())
            .with_transport(transport)
            .with_expectations(
                Expectations::default().with_answer(AnswerMatch::Exact("192.0.2.1".into())),
            )
            .with_identity(IdentitySpec::nsid(Some("node-a".into())));
        let outcome = probe(&spec).await.expect("valid spec");
        assert_eq!(
            outcome.status,
            ProbeStatus::Pass,
            "{transport}: {outcome:?}"
        );
        assert_eq!(outcome.reason, None);
        assert_eq!(outcome.identity.as_deref(), Some("node-a"));
        let expected: Vec<Transport> = transport.expand().to_vec();
        let seen: Vec<Transport> = outcome.transports.iter().map(|t| t.transport).collect();
        assert_eq!(seen, expected);
        for t in &outcome.transports {
            assert_eq!(t.rcode, Some(ResponseCode::NoError));
            assert_eq!(t.answers, vec!["192.0.2.1".to_owned()]);
            assert!(t.latency > Duration::ZERO && t.latency < TIMEOUT);
            assert_eq!(outcome.latency(t.transport), Some(t.latency));
        }
    }
}

#[tokio::test]
async fn unserved_zone_is_refused() {
    let knot = node_a();
    let spec = ProbeSpec::new(
        knot.addr(),
        QuerySpec::new(name("example.org."), RecordType::SOA),
    )
    .with_transport(Transport::Both)
    .with_timeout(TIMEOUT);
    let outcome = probe(&spec).await.expect("valid spec");
    assert_eq!(outcome.status, ProbeStatus::Fail);
    assert_eq!(
        outcome.reason,
        Some(FailReason::UnexpectedRcode(ResponseCode::Refused))
    );
    for t in &outcome.transports {
        assert_eq!(
            t.reason,
            Some(FailReason::UnexpectedRcode(ResponseCode::Refused))
        );
    }

    // An operator may declare REFUSED acceptable (e.g. probing that a zone is NOT served).
    let allowed = spec.with_expectations(
        Expectations::default()
            .with_rcodes(vec![ResponseCode::Refused])
            .with_authoritative(false)
            .with_min_answers(0),
    );
    assert_eq!(
        probe(&allowed).await.expect("valid").status,
        ProbeStatus::Pass
    );
}

#[tokio::test]
async fn answer_value_exact_contains_and_mismatch() {
    let knot = node_a();
    let txt = |m: AnswerMatch| {
        ProbeSpec::new(
            knot.addr(),
            QuerySpec::new(name("health.example.com."), RecordType::TXT),
        )
        .with_timeout(TIMEOUT)
        .with_expectations(Expectations::default().with_answer(m))
    };
    let exact = probe(&txt(AnswerMatch::Exact("ok node-a".into())))
        .await
        .expect("valid");
    assert_eq!(exact.status, ProbeStatus::Pass, "{exact:?}");
    let contains = probe(&txt(AnswerMatch::Contains("node-a".into())))
        .await
        .expect("valid");
    assert_eq!(contains.status, ProbeStatus::Pass, "{contains:?}");
    let wrong = probe(&txt(AnswerMatch::Exact("ok node-b".into())))
        .await
        .expect("valid");
    assert_eq!(wrong.status, ProbeStatus::Fail);
    assert_eq!(
        wrong.reason,
        Some(FailReason::AnswerMismatch {
            expected: "ok node-b".into(),
            found: vec!["ok node-a".into()],
        })
    );
}

#[tokio::test]
async fn nodata_is_an_empty_answer() {
    let knot = node_a();
    let spec = ProbeSpec::new(
        knot.addr(),
        QuerySpec::new(name("www.example.com."), RecordType::TXT),
    )
    .with_timeout(TIMEOUT);
    let outcome = probe(&spec).await.expect("valid spec");
    assert_eq!(
        outcome.reason,
        Some(FailReason::EmptyAnswer {
            found: 0,
            required: 1
        })
    );
}

#[tokio::test]
async fn identity_mismatch_via_nsid_and_chaos() {
    let knot = node_a();
    let other_node = apex_a(knot.addr())
        .with_transport(Transport::Both)
        .with_identity(IdentitySpec::nsid(Some("node-b".into())));
    let outcome = probe(&other_node).await.expect("valid spec");
    assert_eq!(outcome.status, ProbeStatus::Fail);
    assert_eq!(
        outcome.reason,
        Some(FailReason::IdentityMismatch {
            expected: "node-b".into(),
            found: Some("node-a".into()),
        })
    );
    assert_eq!(outcome.identity.as_deref(), Some("node-a"));

    // NSID only reported, not required.
    let report_only = apex_a(knot.addr()).with_identity(IdentitySpec::nsid(None));
    let outcome = probe(&report_only).await.expect("valid spec");
    assert_eq!(outcome.status, ProbeStatus::Pass);
    assert_eq!(outcome.identity.as_deref(), Some("node-a"));

    // CHAOS TXT id.server as the identity source.
    let chaos = |expected: &str| {
        apex_a(knot.addr()).with_identity(IdentitySpec::chaos_txt(
            name("id.server."),
            Some(expected.into()),
        ))
    };
    let good = probe(&chaos("node-a.example")).await.expect("valid spec");
    assert_eq!(good.status, ProbeStatus::Pass, "{good:?}");
    assert_eq!(good.identity.as_deref(), Some("node-a.example"));
    let bad = probe(&chaos("node-b.example")).await.expect("valid spec");
    assert_eq!(bad.status, ProbeStatus::Fail);
    assert_eq!(
        bad.reason,
        Some(FailReason::IdentityMismatch {
            expected: "node-b.example".into(),
            found: Some("node-a.example".into()),
        })
    );
    // hostname.bind. is answered from the same setting.
    let hostname =
        apex_a(knot.addr()).with_identity(IdentitySpec::chaos_txt(name("hostname.bind."), None));
    let outcome = probe(&hostname).await.expect("valid spec");
    assert_eq!(outcome.identity.as_deref(), Some("node-a.example"));
}

#[tokio::test]
async fn over_the_soft_latency_limit_is_slow_not_failed() {
    let knot = node_a();
    let spec = apex_a(knot.addr())
        .with_transport(Transport::Both)
        .with_expectations(Expectations::default().with_slow_after(Duration::from_nanos(1)));
    let outcome = probe(&spec).await.expect("valid spec");
    assert_eq!(outcome.status, ProbeStatus::Slow, "{outcome:?}");
    assert_eq!(outcome.reason, None);
    assert!(
        outcome
            .transports
            .iter()
            .all(|t| t.status == ProbeStatus::Slow)
    );
}

#[tokio::test]
async fn stopped_frozen_and_restarted_server() {
    let mut knot = node_a();
    let addr = knot.addr();
    let spec_for = |t| apex_a(addr).with_transport(t);

    knot.freeze();
    for transport in [Transport::Udp, Transport::Tcp] {
        let outcome = probe(&spec_for(transport)).await.expect("valid spec");
        assert_eq!(
            outcome.reason,
            Some(FailReason::Timeout),
            "frozen, {transport}: {outcome:?}"
        );
        let latency = outcome.transports[0].latency;
        assert!(
            latency >= TIMEOUT && latency < TIMEOUT + Duration::from_secs(2),
            "{latency:?}"
        );
    }
    knot.thaw();

    knot.stop();
    for transport in [Transport::Udp, Transport::Tcp] {
        let outcome = probe(&spec_for(transport)).await.expect("valid spec");
        assert_eq!(
            outcome.reason,
            Some(FailReason::ConnectionRefused),
            "stopped, {transport}: {outcome:?}"
        );
        assert!(
            outcome.transports[0].latency < TIMEOUT,
            "refused is immediate"
        );
    }

    knot.restart();
    let outcome = probe(&spec_for(Transport::Both)).await.expect("valid spec");
    assert_eq!(
        outcome.status,
        ProbeStatus::Pass,
        "after restart: {outcome:?}"
    );
}

/// Local node and hidden-primary reference, with different serials per zone.
fn serial_pair() -> (KnotServer, KnotServer) {
    let local = KnotServer::start(
        KnotConfig::new()
            .with_nsid("local")
            .with_zone(Zone::new("same.test.", 100))
            .with_zone(Zone::new("lagging.test.", 100))
            .with_zone(Zone::new("behind.test.", 100))
            .with_zone(Zone::new("ahead.test.", 100))
            .with_zone(Zone::new("wrapped.test.", u32::MAX - 1)),
    );
    let reference = KnotServer::start(
        KnotConfig::new()
            .with_nsid("primary")
            .with_zone(Zone::new("same.test.", 100))
            .with_zone(Zone::new("lagging.test.", 103))
            .with_zone(Zone::new("behind.test.", 200))
            .with_zone(Zone::new("ahead.test.", 90))
            .with_zone(Zone::new("wrapped.test.", 2)),
    );
    (local, reference)
}

#[tokio::test]
async fn serial_freshness_against_reference() {
    let (mut local, reference) = serial_pair();
    let (local_addr, reference_addr) = (local.addr(), reference.addr());
    let check = |zone: &str, transport| {
        let spec = SerialSpec::new(name(zone), local_addr, reference_addr)
            .with_transport(transport)
            .with_timeout(TIMEOUT)
            .with_max_lag(5);
        async move { check_serial(&spec).await.expect("valid spec") }
    };
    for transport in [Transport::Udp, Transport::Tcp] {
        let same = check("same.test.", transport).await;
        assert_eq!(same.verdict, SerialVerdict::InSync);
        assert_eq!(
            (same.local_serial, same.reference_serial, same.lag),
            (Some(100), Some(100), Some(0))
        );

        let lagging = check("lagging.test.", transport).await;
        assert_eq!(lagging.verdict, SerialVerdict::Lagging);
        assert_eq!(lagging.lag, Some(3));
        assert!(!lagging.verdict.is_local_failure());

        let behind = check("behind.test.", transport).await;
        assert_eq!(behind.verdict, SerialVerdict::Behind);
        assert_eq!(
            (behind.local_serial, behind.reference_serial, behind.lag),
            (Some(100), Some(200), Some(100))
        );
        assert!(behind.verdict.is_local_failure());
        assert_eq!(
            behind.local_failure(),
            Some(FailReason::SerialBehind {
                local: 100,
                reference: 200,
                lag: 100
            })
        );

        let ahead = check("ahead.test.", transport).await;
        assert_eq!(ahead.verdict, SerialVerdict::InSync);
        assert_eq!(ahead.lag, None);

        // 4294967294 -> 2 is 4 increments across the wrap (RFC 1982), not "4 billion ahead".
        let wrapped = check("wrapped.test.", transport).await;
        assert_eq!(wrapped.verdict, SerialVerdict::Lagging);
        assert_eq!(wrapped.lag, Some(4));
    }

    // The local server catches up: behind -> in sync.
    local.set_serial("behind.test.", 200);
    assert_eq!(
        check("behind.test.", Transport::Udp).await.verdict,
        SerialVerdict::InSync
    );

    // A zone the local server does not serve is a local failure, with the reference serial still reported.
    let missing =
        SerialSpec::new(name("example.org."), local.addr(), reference.addr()).with_timeout(TIMEOUT);
    let outcome = check_serial(&missing).await.expect("valid spec");
    assert_eq!(
        outcome.verdict,
        SerialVerdict::LocalFailed(FailReason::UnexpectedRcode(ResponseCode::Refused))
    );
}

#[tokio::test]
async fn unreachable_reference_is_not_a_local_failure() {
    let (mut local, mut reference) = serial_pair();
    reference.stop();
    let spec =
        SerialSpec::new(name("behind.test."), local.addr(), reference.addr()).with_timeout(TIMEOUT);
    let outcome = check_serial(&spec).await.expect("valid spec");
    assert_eq!(
        outcome.verdict,
        SerialVerdict::ReferenceUnreachable(FailReason::ConnectionRefused)
    );
    assert!(!outcome.verdict.is_local_failure());
    assert_eq!(outcome.local_failure(), None);
    assert_eq!(
        outcome.local_serial,
        Some(100),
        "the local serial is still reported"
    );
    assert_eq!(outcome.reference_serial, None);

    // The same for a whole sweep: every zone is "reference unreachable", none is a local failure.
    let zones: Vec<Name> = local.zones().iter().map(|z| name(&z.name)).collect();
    let report = SerialSweep::new(local.addr(), reference.addr())
        .with_timeout(TIMEOUT)
        .run(&zones)
        .await
        .expect("valid sweep");
    assert_eq!(
        report.summary.reference_unreachable,
        zones.len(),
        "{:?}",
        report.summary
    );
    assert_eq!(report.summary.local_failed + report.summary.behind, 0);
    assert!(
        report
            .zones
            .iter()
            .all(|z| z.outcome.local_serial.is_some() && z.outcome.reference_serial.is_none())
    );

    // Frozen reference: a timeout, still not a local failure.
    reference.restart();
    reference.freeze();
    let outcome = check_serial(&spec).await.expect("valid spec");
    reference.thaw();
    assert_eq!(
        outcome.verdict,
        SerialVerdict::ReferenceUnreachable(FailReason::Timeout)
    );

    // And the local server down is a local failure.
    local.stop();
    let outcome = check_serial(&spec).await.expect("valid spec");
    assert_eq!(
        outcome.verdict,
        SerialVerdict::LocalFailed(FailReason::ConnectionRefused)
    );
    assert!(outcome.verdict.is_local_failure());
    assert_eq!(outcome.reference_serial, Some(200));
}

#[tokio::test]
async fn invalid_specs_are_errors_not_outcomes() {
    let target: SocketAddr = "127.0.0.1:53".parse().expect("addr");
    let good = ProbeSpec::new(
        target,
        QuerySpec::new(name("example.com."), RecordType::SOA),
    );
    assert_eq!(good.validate(), Ok(()));
    assert_eq!(
        probe(&good.clone().with_timeout(Duration::ZERO)).await,
        Err(SpecError::ZeroTimeout {
            field: "ProbeSpec.timeout"
        })
    );
    assert_eq!(
        probe(&good.clone().with_edns_payload(511)).await,
        Err(SpecError::PayloadTooSmall(511))
    );
    assert!(matches!(
        ProbeSpec::new(
            target,
            QuerySpec::new(Name::from_str("example.com").expect("name"), RecordType::A)
        )
        .validate(),
        Err(SpecError::RelativeName { .. })
    ));
    assert_eq!(
        good.clone()
            .with_expectations(Expectations::default().with_rcodes(vec![]))
            .validate(),
        Err(SpecError::NoAllowedRcodes)
    );
    assert!(matches!(
        good.clone()
            .with_identity(IdentitySpec::nsid(Some(String::new())))
            .validate(),
        Err(SpecError::EmptyExpectedValue { .. })
    ));
    assert!(matches!(
        good.with_timeout(Duration::from_secs(3600)).validate(),
        Err(SpecError::TimeoutTooLong { .. })
    ));
    let serial =
        SerialSpec::new(name("example.com."), target, target).with_transport(Transport::Both);
    let err = check_serial(&serial).await.expect_err("Both is rejected");
    assert!(matches!(err, SpecError::BothTransportForSerial { .. }));
    assert!(err.to_string().contains("choose `Udp` or `Tcp`"), "{err}");
}

#[tokio::test]
async fn ipv6_target() {
    let knot = KnotServer::start(
        KnotConfig::new()
            .with_ip("::1".parse().expect("ipv6 loopback"))
            .with_nsid("node-v6")
            .with_zone(Zone::new("example.com.", 1)),
    );
    assert!(knot.addr().is_ipv6());
    let spec = apex_a(knot.addr())
        .with_transport(Transport::Both)
        .with_identity(IdentitySpec::nsid(Some("node-v6".into())));
    let outcome = probe(&spec).await.expect("valid spec");
    assert_eq!(outcome.status, ProbeStatus::Pass, "{outcome:?}");
    let serial =
        SerialSpec::new(name("example.com."), knot.addr(), knot.addr()).with_timeout(TIMEOUT);
    let outcome = check_serial(&serial).await.expect("valid spec");
    assert_eq!(outcome.verdict, SerialVerdict::InSync);
    assert_eq!(outcome.local_serial, Some(1));
}
