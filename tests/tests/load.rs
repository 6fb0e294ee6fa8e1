//! Issue 16, load signals: nsbeacon's NSD and BIND load readers against the real servers in the lab (the
//! Knot reader and the overload policy are tested in crates/daemon/tests/load.rs). nsbeacon runs in the
//! node's namespace with `[service.load]` pointing at NSD's unix control socket or BIND's statistics
//! channel; queries sent from the upstream through the announced route must move the request counter
//! `/status` shows, and the rate must show in `nsbeacon_dns_queries_per_second`.

use std::time::Duration;

use nsbeacon_e2e::beacon::{Beacon, BeaconConfig};
use nsbeacon_e2e::lab::{ANYCAST_V4, ANYCAST_V4_ADDR};
use nsbeacon_e2e::{DnsServerKind, Lab, LabOptions, NodeBgpKind};
use nsbeacon_testkit::wait_until;

/// Slack for start-up, a BGP update or a reading on a loaded 2-core machine.
const MARGIN: Duration = Duration::from_secs(15);

fn load_of(beacon: &Beacon, lab: &Lab) -> serde_json::Value {
    beacon.service_status(lab, "dns")["load"].clone()
}

fn reader_counts_queries(kind: DnsServerKind) {
    let mut lab = Lab::start(LabOptions::new(NodeBgpKind::Bird).with_dns(kind));
    let (source, address) = match kind {
        DnsServerKind::Nsd => (
            "nsd",
            format!("socket = \"{}\"", lab.dns().nsd_control_socket().display()),
        ),
        DnsServerKind::Bind => (
            "bind",
            format!("url = \"{}\"", lab.dns().bind_statistics_url()),
        ),
        DnsServerKind::Knot => unreachable!("the Knot reader is tested in crates/daemon"),
    };
    let mut config = BeaconConfig::for_lab(&lab);
    config.service_mut("dns").load = Some(format!(
        "source = \"{source}\"\n{address}\ninterval = \"200ms\"\n"
    ));
    let beacon = Beacon::start(&lab, &config);
    beacon.wait_state(&lab, "dns", "up", MARGIN);
    lab.wait_for_route(ANYCAST_V4, true, MARGIN)
        .unwrap_or_else(|e| panic!("{e}\nnsbeacon log:\n{}", beacon.log()));
    let mut before = None;
    assert!(
        wait_until(MARGIN, || {
            before = load_of(&beacon, &lab)["queries_total"].as_u64();
            before.is_some()
        }),
        "{source}: no request counter in /status: {}\nnsbeacon log:\n{}",
        load_of(&beacon, &lab),
        beacon.log()
    );
    let before = before.unwrap_or_default();
    let load = load_of(&beacon, &lab);
    assert_eq!(load["source"], source, "{load}");
    assert!(load["error"].is_null(), "{load}");
    // 40 queries from the upstream, through the announced route.
    let anycast = std::net::IpAddr::V4(ANYCAST_V4_ADDR);
    for _ in 0..40 {
        assert!(
            lab.query_from_upstream(anycast, Duration::from_secs(2))
                .is_some(),
            "the upstream's query through the route failed"
        );
    }
    let mut last = load_of(&beacon, &lab);
    assert!(
        wait_until(MARGIN, || {
            last = load_of(&beacon, &lab);
            last["queries_total"].as_u64() >= Some(before + 40)
        }),
        "{source}: 40 queries sent, the counter went from {before} to {last}"
    );
    assert!(last["qps"].is_number(), "{last}");
    let scrape = beacon.metrics(&lab);
    assert!(
        scrape
            .value(
                "nsbeacon_dns_queries_per_second",
                &[("service", "dns"), ("source", source)]
            )
            .is_some(),
        "no nsbeacon_dns_queries_per_second for {source}"
    );
    assert_eq!(
        scrape.value(
            "nsbeacon_load_read_errors_total",
            &[("service", "dns"), ("source", source)]
        ),
        None,
        "{source}: read errors"
    );
}

#[test]
fn the_nsd_reader_counts_the_queries_nsd_received() {
    reader_counts_queries(DnsServerKind::Nsd);
}

#[test]
fn the_bind_reader_counts_the_queries_bind_received() {
    reader_counts_queries(DnsServerKind::Bind);
}
