//! A serial sweep of 10,000 zones against two real Knot instances (local node and reference).

use std::str::FromStr;
use std::time::Duration;

use nsbeacon_prober::proto::op::ResponseCode;
use nsbeacon_prober::proto::rr::Name;
use nsbeacon_prober::{FailReason, SerialSweep, SerialVerdict, SpecError, Transport, ZoneLag};
use nsbeacon_testkit::knot::{KnotConfig, KnotServer, bulk_zones};

const ZONES: usize = 10_000;
const BASE: u32 = 2_024_010_100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_of_ten_thousand_zones() {
    let all = bulk_zones(ZONES, "bulk.test", BASE);
    // Local: every zone but the last 10 (those are local failures).
    let local_zones = all[..ZONES - 10].to_vec();
    // Reference: zones 0..100 one serial ahead (lagging with max_lag 1), 100..150 fifty ahead (behind),
    // zones 9980..9990 missing (reference unusable for them), the rest equal.
    let reference_zones: Vec<_> = all
        .iter()
        .enumerate()
        .filter(|(i, _)| !(ZONES - 20..ZONES - 10).contains(i))
        .map(|(i, z)| match i {
            0..100 => z.clone().with_serial(BASE + 1),
            100..150 => z.clone().with_serial(BASE + 50),
            _ => z.clone(),
        })
        .collect();

    let (local, reference) = std::thread::scope(|s| {
        let local = s.spawn(|| {
            KnotServer::start(KnotConfig::new().with_nsid("local").with_zones(local_zones))
        });
        let reference = s.spawn(|| {
            KnotServer::start(
                KnotConfig::new()
                    .with_nsid("reference")
                    .with_zones(reference_zones),
            )
        });
        (
            local.join().expect("start local knot"),
            reference.join().expect("start reference knot"),
        )
    });

    let names: Vec<Name> = all
        .iter()
        .map(|z| Name::from_str(&z.name).expect("zone name"))
        .collect();
    let sweep = SerialSweep::new(local.addr(), reference.addr())
        .with_timeout(Duration::from_secs(2))
        .with_max_lag(1)
        .with_concurrency(128);

    // Over TCP every query is a new connection: 128 zones in flight on both servers is a burst of 256
    // connects at a time, and on a loaded CI machine Knot's accept queue drops a few SYNs, whose 1 s
    // retransmit then misses the 2 s timeout. This test is about classification, not TCP throughput, so
    // TCP runs with fewer connections in flight and a longer timeout.
    for (transport, concurrency, timeout) in [
        (Transport::Udp, 128, Duration::from_secs(2)),
        (Transport::Tcp, 32, Duration::from_secs(5)),
    ] {
        let report = sweep
            .clone()
            .with_transport(transport)
            .with_concurrency(concurrency)
            .with_timeout(timeout)
            .run(&names)
            .await
            .expect("valid sweep");
        println!(
            "sweep of {ZONES} zones over {transport}: {:?} ({:.0} zones/s)",
            report.elapsed,
            ZONES as f64 / report.elapsed.as_secs_f64()
        );
        let s = &report.summary;
        assert_eq!(s.zones, ZONES);
        assert_eq!(s.lagging, 100, "{s:?}");
        assert_eq!(s.behind, 50, "{s:?}");
        assert_eq!(s.local_failed, 10, "{s:?}");
        assert_eq!(s.reference_unreachable, 10, "{s:?}");
        assert_eq!(s.in_sync, ZONES - 170, "{s:?}");
        assert_eq!(
            s.worst_lag,
            Some(ZoneLag {
                zone: names[100].clone(),
                lag: 50
            })
        );

        assert_eq!(report.zones.len(), ZONES);
        for (zone, result) in names.iter().zip(&report.zones) {
            assert_eq!(&result.zone, zone, "results are in input order");
        }
        let first = &report.zones[0].outcome;
        assert_eq!(first.verdict, SerialVerdict::Lagging);
        assert_eq!(
            (first.local_serial, first.reference_serial, first.lag),
            (Some(BASE), Some(BASE + 1), Some(1))
        );
        assert_eq!(
            report.zones[ZONES - 1].outcome.verdict,
            SerialVerdict::LocalFailed(FailReason::UnexpectedRcode(ResponseCode::Refused))
        );
        let unreachable = &report.zones[ZONES - 15].outcome;
        assert_eq!(
            unreachable.verdict,
            SerialVerdict::ReferenceUnreachable(FailReason::UnexpectedRcode(ResponseCode::Refused))
        );
        assert_eq!(unreachable.local_serial, Some(BASE));
    }

    assert_eq!(
        sweep.clone().with_concurrency(0).run(&names).await,
        Err(SpecError::ZeroConcurrency)
    );
}

/// A silent local and reference (bound UDP sockets that never answer): every zone fails by timeout,
/// in zone order, and the sweep ends within the timeout bound, on both runtime flavors (the current-thread
/// one must not wait for workers it cannot run).
async fn silent_servers_end_within_the_timeout_bound() {
    let local = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind local");
    let reference = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind reference");
    let names: Vec<Name> = (0..64)
        .map(|i| Name::from_str(&format!("z{i}.silent.test.")).expect("name"))
        .collect();
    let timeout = Duration::from_millis(200);
    let report = SerialSweep::new(
        local.local_addr().expect("addr"),
        reference.local_addr().expect("addr"),
    )
    .with_timeout(timeout)
    .with_concurrency(16)
    .run(&names)
    .await
    .expect("sweep");
    // 64 zones, 16 in flight: 4 rounds of one timeout each, plus scheduling slack.
    assert!(
        report.elapsed < timeout * 4 + Duration::from_secs(2),
        "took {:?}",
        report.elapsed
    );
    assert_eq!(report.summary.zones, 64);
    assert_eq!(report.summary.local_failed, 64, "{:?}", report.summary);
    let order: Vec<&Name> = report.zones.iter().map(|z| &z.zone).collect();
    assert_eq!(order, names.iter().collect::<Vec<_>>());
    for zone in &report.zones {
        assert_eq!(
            zone.outcome.verdict,
            SerialVerdict::LocalFailed(FailReason::Timeout),
            "{}",
            zone.zone
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_servers_multi_thread() {
    silent_servers_end_within_the_timeout_bound().await;
}

#[tokio::test(flavor = "current_thread")]
async fn silent_servers_current_thread() {
    silent_servers_end_within_the_timeout_bound().await;
}
