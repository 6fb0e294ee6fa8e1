//! Every probe ends within its timeout, with a clear reason, whatever a hostile responder does.

mod common;

use std::str::FromStr;
use std::time::Duration;

use common::{Behaviour, hostile};
use nsbeacon_prober::proto::rr::{Name, RecordType};
use nsbeacon_prober::{FailReason, ProbeSpec, ProbeStatus, QuerySpec, Transport, probe};

/// Long enough that a responder that does answer is never mistaken for a silent one on a loaded
/// machine (it runs on the same thread as the probe).
const TIMEOUT: Duration = Duration::from_millis(1500);
/// Bound on the wall time of one probe: the timeout plus generous scheduling slack on a shared machine
/// (this checks that probes end, not how fast).
const WALL_LIMIT: Duration = Duration::from_secs(5);

fn spec(target: std::net::SocketAddr, transport: Transport) -> ProbeSpec {
    ProbeSpec::new(
        target,
        QuerySpec::new(
            Name::from_str("www.example.com.").expect("name"),
            RecordType::A,
        ),
    )
    .with_transport(transport)
    .with_timeout(TIMEOUT)
}

/// Probes `behaviour` over `transport` and returns the single transport's failure reason.
async fn reason_for(behaviour: Behaviour, transport: Transport) -> Option<FailReason> {
    let responder = hostile(behaviour).await;
    let started = std::time::Instant::now();
    let outcome = probe(&spec(responder.addr(), transport))
        .await
        .expect("valid spec");
    let elapsed = started.elapsed();
    assert!(
        elapsed < WALL_LIMIT,
        "{behaviour:?} over {transport}: probe took {elapsed:?}, the timeout is {TIMEOUT:?}"
    );
    assert_eq!(outcome.transports.len(), 1);
    let result = &outcome.transports[0];
    assert!(
        result.latency <= TIMEOUT + Duration::from_secs(2),
        "{behaviour:?}: latency {:?} beyond the timeout",
        result.latency
    );
    if outcome.status == ProbeStatus::Fail {
        assert_eq!(outcome.reason, result.reason);
    }
    outcome.reason
}

#[tokio::test]
async fn correct_responder_passes_both_transports() {
    let responder = hostile(Behaviour::Correct).await;
    let outcome = probe(&spec(responder.addr(), Transport::Both))
        .await
        .expect("valid spec");
    assert_eq!(outcome.status, ProbeStatus::Pass, "{outcome:?}");
    assert_eq!(outcome.transports.len(), 2);
    for t in &outcome.transports {
        assert_eq!(t.answers, vec!["192.0.2.1".to_owned()]);
    }
}

#[tokio::test]
async fn silence_is_a_timeout() {
    assert_eq!(
        reason_for(Behaviour::Silence, Transport::Udp).await,
        Some(FailReason::Timeout)
    );
    assert_eq!(
        reason_for(Behaviour::Silence, Transport::Tcp).await,
        Some(FailReason::Timeout)
    );
}

#[tokio::test]
async fn garbage_is_malformed() {
    for transport in [Transport::Udp, Transport::Tcp] {
        let reason = reason_for(Behaviour::Garbage, transport).await;
        assert!(
            matches!(reason, Some(FailReason::Malformed(_))),
            "{transport}: {reason:?}"
        );
    }
}

#[tokio::test]
async fn wrong_id_is_reported_as_such() {
    for transport in [Transport::Udp, Transport::Tcp] {
        let reason = reason_for(Behaviour::WrongId, transport).await;
        match reason {
            Some(FailReason::IdMismatch { expected, found }) => {
                assert_eq!(found, expected.wrapping_add(1), "{transport}")
            }
            other => panic!("{transport}: expected IdMismatch, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn wrong_question_is_reported_as_such() {
    for transport in [Transport::Udp, Transport::Tcp] {
        let reason = reason_for(Behaviour::WrongQuestion, transport).await;
        match reason {
            Some(FailReason::QuestionMismatch { expected, found }) => {
                assert_eq!(expected, "www.example.com. IN A", "{transport}");
                assert_eq!(found, "other.example. IN A", "{transport}");
            }
            other => panic!("{transport}: expected QuestionMismatch, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn tc_on_udp_is_truncated_and_tcp_still_passes() {
    assert_eq!(
        reason_for(Behaviour::Truncated, Transport::Udp).await,
        Some(FailReason::Truncated)
    );
    assert_eq!(reason_for(Behaviour::Truncated, Transport::Tcp).await, None);
    let responder = hostile(Behaviour::Truncated).await;
    let outcome = probe(&spec(responder.addr(), Transport::Both))
        .await
        .expect("valid spec");
    assert_eq!(outcome.status, ProbeStatus::Fail);
    assert_eq!(outcome.transports[0].reason, Some(FailReason::Truncated));
    assert_eq!(outcome.transports[1].status, ProbeStatus::Pass);
}

#[tokio::test]
async fn tcp_stall_after_length_prefix_is_a_partial_reply() {
    assert_eq!(
        reason_for(Behaviour::StallAfterPrefix, Transport::Tcp).await,
        Some(FailReason::PartialReply {
            announced: Some(100),
            received: 0
        })
    );
}

#[tokio::test]
async fn udp_reply_from_another_address_is_reported() {
    let reason = reason_for(Behaviour::OtherSource, Transport::Udp).await;
    match reason {
        Some(FailReason::UnexpectedSource { expected, from }) => {
            assert_eq!(expected.ip().to_string(), "127.0.0.1");
            assert_eq!(from.ip().to_string(), "127.0.0.2");
        }
        other => panic!("expected UnexpectedSource, got {other:?}"),
    }
}

#[tokio::test]
async fn missing_aa_is_not_authoritative() {
    for transport in [Transport::Udp, Transport::Tcp] {
        assert_eq!(
            reason_for(Behaviour::NoAa, transport).await,
            Some(FailReason::NotAuthoritative),
            "{transport}"
        );
    }
    let responder = hostile(Behaviour::NoAa).await;
    let lenient = spec(responder.addr(), Transport::Udp)
        .with_expectations(nsbeacon_prober::Expectations::default().with_authoritative(false));
    let outcome = probe(&lenient).await.expect("valid spec");
    assert_eq!(
        outcome.status,
        ProbeStatus::Pass,
        "AA not required: {outcome:?}"
    );
}

#[tokio::test]
async fn a_lost_udp_query_is_sent_again_within_the_timeout_and_passes() {
    let responder = hostile(Behaviour::DropFirst).await;
    let outcome = probe(&spec(responder.addr(), Transport::Udp))
        .await
        .expect("valid spec");
    assert_eq!(outcome.status, ProbeStatus::Pass, "{outcome:?}");
    let latency = outcome.transports[0].latency;
    // The resend goes out a third of the way into the timeout.
    assert!(
        latency >= TIMEOUT / 3 && latency < TIMEOUT,
        "answered after {latency:?}: the resend, not the first query"
    );
}
