//! Unit tests of config parsing and validation: BIRD and FRR examples, defaults, and every error path.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use nsbeacon_prober::proto::op::ResponseCode;
use nsbeacon_prober::proto::rr::{DNSClass, Name, RecordType};
use nsbeacon_prober::{AnswerMatch, IdentitySource, Transport};
use nsbeacon_routing::{BirdProtocolName, FrrNeighbor, RouteTarget};

use super::*;

const BIRD_EXAMPLE: &str = r#"
[backend]
kind = "bird"
socket = "/run/bird/bird.ctl"

[[service]]
name = "dns"
announce = ["anycast_dns"]
degrade = ["anycast_dns_prepend"]

[[service.check]]
name = "soa"
target = "127.0.0.1:53"
qname = "example.com"
"#;

const FRR_EXAMPLE: &str = r#"
state_dir = "/var/lib/nsbeacon-test"
drain_file = "/etc/nsbeacon/drain"
on_shutdown = "keep"
reconcile_interval = "5s"

[backend]
kind = "frr"
via = "vtysh"
vtysh = "/usr/local/bin/vtysh"
args = ["--vty_socket", "/run/frr-lab"]
asn = 65001
vrf = "anycast"
timeout = "3s"

[http]
listen = "[::1]:9999"

[log]
level = "info,nsbeacon=debug"
format = "json"

[[service]]
name = "auth-v4"
announce = ["203.0.113.53/32", "2001:db8::53/128"]
degrade = ["neighbor:192.0.2.1"]
combine = { at_least = 2 }
interval = "2s"
rise = 2
fall = 4
jitter = "100ms"
graceful_drain = "30s"

[service.damping]
enabled = true
penalty = 500
suppress_threshold = 2000.5
reuse_threshold = 400
half_life = "30s"
max_hold_down = "10m"

[[service.check]]
name = "udp-soa"
target = "203.0.113.53"
transport = "both"
qname = "example.net."
qtype = "txt"
qclass = "CH"
timeout = "400ms"
edns_payload = 4096
rcodes = ["NOERROR", "nxdomain"]
authoritative = false
min_answers = 2
answer_contains = "ok"
slow_after = "150ms"
identity = "id.server"
identity_expected = "ns1-ams"

[[service.check]]
name = "nsid"
interval = "5s"
target = "127.0.0.1:5353"
qname = "example.net."
answer_exact = "v=1"
identity_expected = "ns1-ams"

[[service.check]]
name = "freshness"
type = "serial"
local = "127.0.0.1:5353"
reference = "198.51.100.10"
zones = ["example.net", "Example.NET.", "example.org."]
transport = "tcp"
max_lag = 10
concurrency = 8
"#;

fn ok(text: &str) -> Config {
    match parse(text, "test.toml") {
        Ok(config) => config,
        Err(e) => panic!("expected a valid config, got:\n{e}"),
    }
}

fn issues(text: &str) -> Vec<ConfigIssue> {
    match parse(text, "test.toml") {
        Ok(_) => panic!("expected validation errors, the config was accepted:\n{text}"),
        Err(ConfigError::Invalid(issues)) => issues,
        Err(other) => panic!("expected validation errors, got: {other}"),
    }
}

/// Asserts that exactly one issue has `path` and its message contains `needle`.
fn assert_issue(issues: &[ConfigIssue], path: &str, needle: &str) {
    let hits: Vec<&ConfigIssue> = issues
        .iter()
        .filter(|i| i.path == path && i.message.contains(needle))
        .collect();
    assert_eq!(
        hits.len(),
        1,
        "expected one issue at {path} containing {needle:?}; got:\n{}",
        issues
            .iter()
            .map(|i| format!("  {i}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(!hits[0].hint.is_empty(), "issue at {path} has no hint");
}

/// A valid BIRD config with `extra` appended to the only check and `service_extra` to the service.
fn bird_with(service_extra: &str, check_extra: &str) -> String {
    format!(
        r#"
[backend]
kind = "bird"

[[service]]
name = "dns"
announce = ["anycast_dns"]
{service_extra}

[[service.check]]
name = "soa"
target = "127.0.0.1:53"
qname = "example.com."
{check_extra}
"#
    )
}

fn bird(name: &str) -> RouteTarget {
    RouteTarget::BirdProtocol(BirdProtocolName::new(name).expect("valid protocol name"))
}

#[test]
fn bird_example_gets_documented_defaults() {
    let config = ok(BIRD_EXAMPLE);
    assert_eq!(
        config.backend,
        BackendConfig::Bird {
            socket: "/run/bird/bird.ctl".into(),
            timeout: DEFAULT_BIRD_TIMEOUT,
            decision_dir: None,
        }
    );
    assert_eq!(
        config.http.listen,
        "127.0.0.1:9753".parse::<SocketAddr>().expect("addr")
    );
    assert_eq!(
        config.log,
        LogConfig {
            level: "info".into(),
            format: LogFormat::Text
        }
    );
    assert_eq!(
        config.state_dir,
        std::path::PathBuf::from("/var/lib/nsbeacon")
    );
    assert_eq!(config.drain_file, None);
    assert_eq!(config.on_shutdown, OnShutdown::Withdraw);
    assert_eq!(config.reconcile_interval, Duration::from_secs(2));

    let service = &config.services[0];
    assert_eq!(service.name, "dns");
    assert_eq!(service.combine, Combine::All);
    assert_eq!(service.announce, vec![bird("anycast_dns")]);
    assert_eq!(service.degrade, vec![bird("anycast_dns_prepend")]);
    assert_eq!(service.interval, Duration::from_secs(1));
    assert_eq!((service.rise, service.fall), (3, 3));
    assert_eq!(service.jitter, Duration::from_millis(100));
    assert_eq!(service.damping, DampingConfig::default());
    assert!(service.damping.enabled);
    assert_eq!(service.graceful_drain, None);

    let check = &service.checks[0];
    assert_eq!(check.name, "soa");
    assert_eq!(check.interval, Duration::from_secs(1));
    assert_eq!(check.timeout, Duration::from_millis(500));
    let CheckKind::Query(spec) = &check.kind else {
        panic!("expected a query check")
    };
    assert_eq!(
        spec.target,
        "127.0.0.1:53".parse::<SocketAddr>().expect("addr")
    );
    assert_eq!(spec.transport, Transport::Udp);
    assert_eq!(
        spec.query.name,
        Name::from_ascii("example.com.").expect("name")
    );
    assert!(spec.query.name.is_fqdn());
    assert_eq!(spec.query.record_type, RecordType::SOA);
    assert_eq!(spec.query.class, DNSClass::IN);
    assert_eq!(spec.timeout, Duration::from_millis(500));
    assert_eq!(spec.edns_payload, 1232);
    assert_eq!(spec.expect.rcodes, vec![ResponseCode::NoError]);
    assert!(spec.expect.authoritative);
    assert_eq!(spec.expect.min_answers, 1);
    assert_eq!(spec.expect.answer, None);
    assert_eq!(spec.expect.slow_after, None);
    assert_eq!(spec.identity, None);
}

#[test]
fn frr_example_parses_every_option() {
    let config = ok(FRR_EXAMPLE);
    assert_eq!(
        config.backend,
        BackendConfig::Frr {
            transport: FrrTransport::Vtysh {
                vtysh: "/usr/local/bin/vtysh".into(),
                extra_args: vec!["--vty_socket".into(), "/run/frr-lab".into()],
            },
            asn: Some(65001),
            vrf: Some("anycast".into()),
            timeout: Duration::from_secs(3),
            announce: FrrAnnounce::Network,
        }
    );
    assert_eq!(
        config.http.listen,
        "[::1]:9999".parse::<SocketAddr>().expect("addr")
    );
    assert_eq!(config.log.level, "info,nsbeacon=debug");
    assert_eq!(config.log.format, LogFormat::Json);
    assert_eq!(
        config.state_dir,
        std::path::PathBuf::from("/var/lib/nsbeacon-test")
    );
    assert_eq!(config.drain_file, Some("/etc/nsbeacon/drain".into()));
    assert_eq!(config.on_shutdown, OnShutdown::Keep);
    assert_eq!(config.reconcile_interval, Duration::from_secs(5));

    let service = config.service("auth-v4").expect("service");
    assert_eq!(
        service.announce,
        vec![
            RouteTarget::FrrNetwork("203.0.113.53/32".parse().expect("net")),
            RouteTarget::FrrNetwork("2001:db8::53/128".parse().expect("net")),
        ]
    );
    assert_eq!(
        service.degrade,
        vec![RouteTarget::FrrNeighbor(FrrNeighbor::Address(
            "192.0.2.1".parse().expect("ip")
        ))]
    );
    assert_eq!(service.combine, Combine::AtLeast(2));
    assert_eq!(service.interval, Duration::from_secs(2));
    assert_eq!((service.rise, service.fall), (2, 4));
    assert_eq!(service.jitter, Duration::from_millis(100));
    assert_eq!(service.graceful_drain, Some(Duration::from_secs(30)));
    assert_eq!(
        service.damping,
        DampingConfig {
            enabled: true,
            penalty: 500.0,
            suppress: 2000.5,
            reuse: 400.0,
            half_life: Duration::from_secs(30),
            max_hold_down: Duration::from_secs(600),
        }
    );

    let [udp, nsid, serial] = &service.checks[..] else {
        panic!("expected three checks")
    };
    let CheckKind::Query(spec) = &udp.kind else {
        panic!("query")
    };
    assert_eq!(udp.interval, Duration::from_secs(2));
    assert_eq!(udp.timeout, Duration::from_millis(400));
    assert_eq!(
        spec.target,
        "203.0.113.53:53".parse::<SocketAddr>().expect("addr")
    );
    assert_eq!(spec.transport, Transport::Both);
    assert_eq!(spec.query.record_type, RecordType::TXT);
    assert_eq!(spec.query.class, DNSClass::CH);
    assert_eq!(spec.edns_payload, 4096);
    assert_eq!(
        spec.expect.rcodes,
        vec![ResponseCode::NoError, ResponseCode::NXDomain]
    );
    assert!(!spec.expect.authoritative);
    assert_eq!(spec.expect.min_answers, 2);
    assert_eq!(spec.expect.answer, Some(AnswerMatch::Contains("ok".into())));
    assert_eq!(spec.expect.slow_after, Some(Duration::from_millis(150)));
    let identity = spec.identity.as_ref().expect("identity");
    assert_eq!(
        identity.source,
        IdentitySource::ChaosTxt(Name::from_ascii("id.server.").expect("name"))
    );
    assert_eq!(identity.expected.as_deref(), Some("ns1-ams"));

    let CheckKind::Query(spec) = &nsid.kind else {
        panic!("query")
    };
    assert_eq!(nsid.interval, Duration::from_secs(5));
    assert_eq!(
        nsid.timeout,
        Duration::from_millis(500),
        "default timeout is capped at 500ms"
    );
    assert_eq!(spec.expect.answer, Some(AnswerMatch::Exact("v=1".into())));
    let identity = spec.identity.as_ref().expect("identity");
    assert_eq!(
        identity.source,
        IdentitySource::Nsid,
        "identity_expected alone means NSID"
    );

    assert_eq!(
        serial.interval,
        Duration::from_secs(10),
        "serial checks default to at least 10s"
    );
    assert_eq!(serial.timeout, Duration::from_secs(1));
    let CheckKind::Serial(sweep) = &serial.kind else {
        panic!("serial")
    };
    assert_eq!(
        sweep.local,
        "127.0.0.1:5353".parse::<SocketAddr>().expect("addr")
    );
    assert_eq!(
        sweep.reference,
        "198.51.100.10:53".parse::<SocketAddr>().expect("addr")
    );
    assert_eq!(sweep.transport, Transport::Tcp);
    assert_eq!(sweep.timeout, Duration::from_secs(1));
    assert_eq!(sweep.max_lag, 10);
    assert_eq!(
        sweep.max_behind_zones, 0,
        "default: any zone behind withdraws"
    );
    assert_eq!(sweep.concurrency, 8);
    assert_eq!(
        sweep.zones,
        vec![
            Name::from_ascii("example.net.").expect("name"),
            Name::from_ascii("example.org.").expect("name")
        ],
        "zones are made absolute and deduplicated case-insensitively"
    );
}

#[test]
fn frr_unnumbered_neighbor_target() {
    let text = FRR_EXAMPLE.replace("neighbor:192.0.2.1", "neighbor:eth0");
    let config = ok(&text);
    assert_eq!(
        config.services[0].degrade,
        vec![RouteTarget::FrrNeighbor(FrrNeighbor::Interface(
            "eth0".into()
        ))]
    );
}

#[test]
fn timeout_derives_from_short_interval_and_service_timeout_applies() {
    let config = ok(&bird_with("interval = \"200ms\"", ""));
    assert_eq!(
        config.services[0].checks[0].timeout,
        Duration::from_millis(100)
    );
    assert_eq!(config.services[0].jitter, Duration::from_millis(20));
    let config = ok(&bird_with("timeout = \"250ms\"", ""));
    assert_eq!(
        config.services[0].checks[0].timeout,
        Duration::from_millis(250)
    );
    let config = ok(&bird_with("timeout = \"250ms\"", "timeout = \"300ms\""));
    assert_eq!(
        config.services[0].checks[0].timeout,
        Duration::from_millis(300)
    );
}

#[test]
fn syntax_error_names_line_and_column() {
    let text = "[backend]\nkind = \"bird\"\nsocket = /run/bird.ctl\n";
    match parse(text, "broken.toml") {
        Err(ConfigError::Syntax {
            origin,
            line,
            column,
            message,
            ..
        }) => {
            assert_eq!(origin, "broken.toml");
            assert_eq!(line, Some(3));
            assert_eq!(column, Some(10));
            assert!(!message.is_empty());
        }
        other => panic!("expected a syntax error, got {other:?}"),
    }
    let shown = parse(text, "broken.toml").expect_err("invalid").to_string();
    assert!(
        shown.starts_with("broken.toml: line 3, column 10: backend.socket: "),
        "{shown}"
    );
}

#[test]
fn unknown_key_names_line_column_and_key() {
    let text = bird_with("", "timout = \"1s\"");
    let err = parse(&text, "typo.toml").expect_err("unknown key must be rejected");
    let ConfigError::Syntax {
        line,
        column,
        message,
        ..
    } = &err
    else {
        panic!("expected syntax error: {err}")
    };
    let expected_line = text
        .lines()
        .position(|l| l.starts_with("timout"))
        .expect("line")
        + 1;
    assert_eq!(*line, Some(expected_line));
    assert_eq!(*column, Some(1));
    assert!(message.contains("timout"), "{message}");
    assert!(
        message.contains("timeout"),
        "should list the expected keys: {message}"
    );
}

#[test]
fn unknown_top_level_table_is_rejected() {
    let text = format!("{BIRD_EXAMPLE}\n[metrics]\nport = 1\n");
    let err = parse(&text, "x.toml").expect_err("unknown table");
    assert!(
        matches!(err, ConfigError::Syntax { line: Some(_), .. }),
        "{err}"
    );
    assert!(err.to_string().contains("metrics"), "{err}");
}

#[test]
fn wrong_value_type_is_a_syntax_error_with_position() {
    let text = bird_with("rise = \"three\"", "");
    let err = parse(&text, "x.toml").expect_err("string rise");
    let ConfigError::Syntax { line, .. } = &err else {
        panic!("{err}")
    };
    let expected = text
        .lines()
        .position(|l| l.starts_with("rise"))
        .expect("line")
        + 1;
    assert_eq!(*line, Some(expected), "{err}");
}

#[test]
fn stage_one_errors_name_the_key_path_and_give_a_hint() {
    let text = bird_with("rise = \"three\"", "");
    let err = parse(&text, "x.toml").expect_err("string rise");
    let ConfigError::Syntax {
        path,
        message,
        hint,
        ..
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!(path.as_deref(), Some("service[0].rise"));
    assert_eq!(message, "expected a whole number, got the string \"three\"");
    assert!(hint.contains("rise = 3"), "{hint}");
    let shown = err.to_string();
    assert!(
        shown.starts_with("x.toml: line ")
            && shown.contains(
                ": service[0].rise: expected a whole number, got the string \"three\" (hint: "
            ),
        "{shown}"
    );

    let text = bird_with("", "timout = \"1s\"");
    let err = parse(&text, "typo.toml").expect_err("unknown key");
    let ConfigError::Syntax { path, hint, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(path.as_deref(), Some("service[0].check[0].timout"));
    assert_eq!(hint, "did you mean `timeout`?");

    let text = format!("{BIRD_EXAMPLE}\n[metrics]\nport = 1\n");
    let err = parse(&text, "x.toml").expect_err("unknown table");
    let ConfigError::Syntax { path, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(path.as_deref(), Some("metrics"));
}

#[test]
fn timeout_longer_than_interval_uses_the_documented_message() {
    let text = format!(
        "{BIRD_EXAMPLE}\n[[service]]\nname = \"second\"\nannounce = [\"other\"]\ninterval = \"1s\"\n\
         [[service.check]]\nname = \"slow\"\ntarget = \"127.0.0.1\"\nqname = \"example.org.\"\ntimeout = \"2s\"\n"
    );
    let issues = issues(&text);
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert_eq!(issues[0].path, "service[1].check[0].timeout");
    assert_eq!(
        issues[0].message,
        "2s is longer than service[1].interval 1s"
    );
    assert_eq!(
        issues[0].to_string(),
        "service[1].check[0].timeout: 2s is longer than service[1].interval 1s (hint: a probe must end by the time \
         the next one is due; lower the timeout or raise the interval)"
    );
}

#[test]
fn service_level_timeout_error_points_at_the_service_key() {
    let issues = issues(&bird_with("timeout = \"3s\"\ninterval = \"2s\"", ""));
    assert_issue(
        &issues,
        "service[0].timeout",
        "3s is longer than service[0].interval 2s",
    );
    // Only the service's interval was written: the message must not name the check's.
    assert!(!issues[0].message.contains("check[0]"), "{issues:?}");
}

#[test]
fn a_timeout_equal_to_the_interval_is_accepted() {
    // Probes of one check never overlap (the next starts once the last has ended), so peers' usual
    // timeout = interval settings are fine.
    for (service, check) in [
        ("interval = \"1s\"", "timeout = \"1s\""),
        ("interval = \"1s\"\ntimeout = \"1s\"", ""),
        ("", "interval = \"2s\"\ntimeout = \"2s\""),
        ("", "identity = \"id.server\"\ntimeout = \"500ms\""),
    ] {
        let config = ok(&bird_with(service, check));
        let check = &config.services[0].checks[0];
        assert!(check.timeout * 2 >= check.interval, "{service} / {check:?}");
    }
}

#[test]
fn timeout_errors_name_the_interval_key_as_written_or_say_it_is_a_default() {
    assert_issue(
        &issues(&bird_with("", "interval = \"1s\"\ntimeout = \"1500ms\"")),
        "service[0].check[0].timeout",
        "1s 500ms is longer than service[0].check[0].interval 1s",
    );
    assert_issue(
        &issues(&bird_with("timeout = \"3s\"", "interval = \"2s\"")),
        "service[0].timeout",
        "3s is longer than service[0].check[0].interval 2s",
    );
    assert_issue(
        &issues(&bird_with("", "timeout = \"2s\"")),
        "service[0].check[0].timeout",
        "2s is longer than the default interval 1s",
    );
    let serial = format!(
        "{SERIAL_SERVICE}local = \"127.0.0.1\"\nreference = \"192.0.2.1\"\nzones = [\"example.com.\"]\n\
         max_lag = 3\ntimeout = \"11s\"\n"
    );
    assert_issue(
        &issues(&serial),
        "service[0].check[0].timeout",
        "11s is longer than the default serial interval 10s",
    );
}

#[test]
fn all_errors_are_reported_at_once() {
    let text = r#"
on_shutdown = "explode"
state_dir = "relative/dir"
reconcile_interval = "soon"

[backend]
kind = "bird"
vrf = "red"

[http]
listen = "localhost"

[log]
level = "loud=="
format = "xml"

[[service]]
name = "dns"
announce = ["anycast_dns", "203.0.113.0/24"]
degrade = ["anycast_dns"]
rise = 0
fall = -1
combine = "most"

[[service.check]]
name = "soa"
target = "127.0.0.1:53"
qname = "example.com."
timeout = "2s"

[[service.check]]
name = "soa"
type = "serial"
local = "127.0.0.1"
zones = ["example.com."]
max_lag = 5

[[service]]
name = "dns"
announce = ["anycast_dns"]
"#;
    let issues = issues(text);
    let expected = [
        ("on_shutdown", "\"explode\""),
        ("state_dir", "not an absolute path"),
        ("reconcile_interval", "not a duration"),
        ("backend.vrf", "only applies to kind = \"frr\""),
        ("http.listen", "\"localhost\""),
        ("log.level", "not a log filter"),
        ("log.format", "\"xml\""),
        ("service[0].announce[1]", "not a BIRD protocol name"),
        ("service[0].degrade[0]", "is also service[0].announce[0]"),
        ("service[0].rise", "0 is out of range"),
        ("service[0].fall", "-1 is out of range"),
        ("service[0].combine", "not a combine mode"),
        (
            "service[0].check[0].timeout",
            "2s is longer than the default interval 1s",
        ),
        ("service[0].check[1].name", "already used by check[0]"),
        ("service[0].check[1].reference", "missing"),
        ("service[1].name", "already used by service[0]"),
        ("service[1].check", "no checks"),
        (
            "service[1].announce[0]",
            "already controlled by service[0].announce[0]",
        ),
    ];
    for (path, needle) in expected {
        assert_issue(&issues, path, needle);
    }
    assert_eq!(
        issues.len(),
        expected.len(),
        "unexpected extra issues: {issues:#?}"
    );
    let shown = ConfigError::Invalid(issues).to_string();
    assert!(shown.starts_with(&format!(
        "{} problem(s) in the configuration:",
        expected.len()
    )));
    for (path, _) in expected {
        assert!(
            shown.lines().any(
                |l| l.starts_with("  - ") && l.contains(&format!(" {path}: "))
                    || l.starts_with(&format!("  - {path}: "))
            ),
            "{path} missing from:\n{shown}"
        );
    }
}

#[test]
fn missing_backend_and_services() {
    let issues = issues("");
    assert_issue(&issues, "backend", "missing");
    assert_issue(&issues, "service", "no [[service]]");
    assert_eq!(issues.len(), 2);
}

#[test]
fn backend_kind_errors() {
    let issues_unknown = issues("[backend]\nkind = \"gobgp\"\n");
    assert_issue(
        &issues_unknown,
        "backend.kind",
        "\"gobgp\" is not a supported backend",
    );
    let issues_missing = issues("[backend]\nsocket = \"/x\"\n");
    assert_issue(&issues_missing, "backend.kind", "missing");
}

#[test]
fn frr_backend_errors() {
    let text = FRR_EXAMPLE
        .replace("asn = 65001", "asn = 0")
        .replace("vrf = \"anycast\"", "vrf = \"a-very-long-vrf-name\"")
        .replace(
            "args = [\"--vty_socket\", \"/run/frr-lab\"]",
            "args = [\"-c\", \"\"]\nsocket = \"/x\"",
        )
        .replace("timeout = \"3s\"", "timeout = \"2m\"");
    let issues = issues(&text);
    assert_issue(&issues, "backend.asn", "0 is not an AS number");
    assert_issue(&issues, "backend.vrf", "not a valid VRF name");
    assert_issue(&issues, "backend.args[0]", "\"-c\"");
    assert_issue(&issues, "backend.args[1]", "empty argument");
    assert_issue(
        &issues,
        "backend.socket",
        "does not apply with via = \"vtysh\"",
    );
    assert_issue(&issues, "backend.timeout", "2m is out of range");
    assert_eq!(issues.len(), 6, "{issues:#?}");
    let as_trans = self::issues(&FRR_EXAMPLE.replace("asn = 65001", "asn = 23456"));
    assert_issue(&as_trans, "backend.asn", "AS_TRANS");
}

#[test]
fn bird_decision_dir_is_absolute_and_bird_only() {
    let with = |dir: &str| {
        BIRD_EXAMPLE.replace(
            "socket = \"/run/bird/bird.ctl\"",
            &format!("socket = \"/run/bird/bird.ctl\"\ndecision_dir = \"{dir}\""),
        )
    };
    let config = ok(&with("/run/nsbeacon/bird"));
    assert!(
        matches!(&config.backend, BackendConfig::Bird { decision_dir: Some(d), .. } if d.as_path() == std::path::Path::new("/run/nsbeacon/bird")),
        "{:?}",
        config.backend
    );
    for bad in ["run/nsbeacon/bird", "/run/nsbeacon/../etc", ""] {
        let issues = issues(&with(bad));
        assert_issue(&issues, "backend.decision_dir", "not an absolute path");
        assert_eq!(issues.len(), 1, "{bad:?}: {issues:#?}");
    }
    let frr = FRR_EXAMPLE.replace(
        "[backend]\n",
        "[backend]\ndecision_dir = \"/run/nsbeacon/bird\"\n",
    );
    assert!(frr.contains("decision_dir"), "{frr}");
    assert_issue(
        &issues(&frr),
        "backend.decision_dir",
        "only applies to kind = \"bird\"",
    );
}

#[test]
fn bird_targets_are_protocol_names_only() {
    let text = bird_with("", "").replace(
        "announce = [\"anycast_dns\"]",
        "announce = [\"all\", \"203.0.113.53/32\", \"anycast*\", \"9lives\", \"ok_name\", \"ok_name\"]",
    );
    let issues = issues(&text);
    assert_issue(
        &issues,
        "service[0].announce[0]",
        "`disable all` would shut down every BIRD protocol",
    );
    assert_issue(
        &issues,
        "service[0].announce[1]",
        "not a BIRD protocol name",
    );
    assert!(issues[1].hint.contains("frr backend"), "{:?}", issues[1]);
    assert_issue(
        &issues,
        "service[0].announce[2]",
        "not a BIRD protocol name",
    );
    assert_issue(
        &issues,
        "service[0].announce[3]",
        "not a BIRD protocol name",
    );
    assert_issue(&issues, "service[0].announce[5]", "listed twice");
    assert_eq!(issues.len(), 5, "{issues:#?}");
}

#[test]
fn frr_targets_are_prefixes_or_neighbors() {
    let text = FRR_EXAMPLE.replace(
        "announce = [\"203.0.113.53/32\", \"2001:db8::53/128\"]",
        "announce = [\"anycast_dns\", \"203.0.113.53/24\", \"203.0.113.53\", \"neighbor:bad/name\"]",
    );
    let issues = issues(&text);
    assert_issue(&issues, "service[0].announce[0]", "not an FRR target");
    assert_issue(&issues, "service[0].announce[1]", "host bits set");
    assert!(issues[1].hint.contains("203.0.113.0/24"), "{:?}", issues[1]);
    assert_issue(&issues, "service[0].announce[2]", "no prefix length");
    assert_issue(&issues, "service[0].announce[3]", "not a BGP neighbor");
    assert_eq!(issues.len(), 4, "{issues:#?}");
}

#[test]
fn frr_degrade_targets_may_carry_a_route_map() {
    let text = FRR_EXAMPLE.replace(
        "degrade = [\"neighbor:192.0.2.1\"]",
        "degrade = [\"203.0.113.53/32 route-map NSBEACON-DEGRADED\", \"2001:db8::53/128  route-map  RM:v6\"]",
    );
    let config = ok(&text);
    let service = config.service("auth-v4").expect("service");
    assert_eq!(
        service.degrade,
        vec![
            RouteTarget::FrrNetwork(
                "203.0.113.53/32 route-map NSBEACON-DEGRADED"
                    .parse()
                    .expect("net")
            ),
            RouteTarget::FrrNetwork("2001:db8::53/128 route-map RM:v6".parse().expect("net")),
        ]
    );
    let text = FRR_EXAMPLE.replace(
        "degrade = [\"neighbor:192.0.2.1\"]",
        "degrade = [\"203.0.113.53/32 route-map A B\", \"203.0.113.53/24 route-map X\", \"anycast route-map X\"]",
    );
    let issues = issues(&text);
    assert_issue(&issues, "service[0].degrade[0]", "route-map name");
    assert!(
        issues[0].hint.contains("PREFIX route-map NAME"),
        "{:?}",
        issues[0]
    );
    assert_issue(&issues, "service[0].degrade[1]", "host bits set");
    assert_issue(&issues, "service[0].degrade[2]", "not an FRR target");
    assert_eq!(issues.len(), 3, "{issues:#?}");
}

#[test]
fn the_same_target_in_two_services_is_an_error() {
    let text = format!(
        "{BIRD_EXAMPLE}\n[[service]]\nname = \"other\"\nannounce = [\"anycast_dns_prepend\"]\n\
         [[service.check]]\nname = \"soa\"\ntarget = \"127.0.0.1\"\nqname = \"example.org.\"\n"
    );
    let issues = issues(&text);
    assert_issue(
        &issues,
        "service[1].announce[0]",
        "already controlled by service[0].degrade[0]",
    );
    assert_eq!(issues.len(), 1);
}

#[test]
fn announce_targets_are_required() {
    let text = bird_with("", "").replace("announce = [\"anycast_dns\"]", "announce = []");
    assert_issue(&issues(&text), "service[0].announce", "no announce targets");
    let text = bird_with("", "").replace("announce = [\"anycast_dns\"]", "");
    assert_issue(&issues(&text), "service[0].announce", "no announce targets");
}

#[test]
fn service_and_check_names_are_validated() {
    let text = bird_with("", "")
        .replace("name = \"dns\"", "name = \"all\"")
        .replace("name = \"soa\"", "name = \"a b\"");
    let issues = issues(&text);
    assert_issue(&issues, "service[0].name", "reserved");
    assert_issue(
        &issues,
        "service[0].check[0].name",
        "not a valid check name",
    );
    let text = bird_with("", "").replace("name = \"soa\"\n", "");
    assert_issue(&self::issues(&text), "service[0].check[0].name", "missing");
}

#[test]
fn combine_modes() {
    assert_eq!(
        ok(&bird_with("combine = \"any\"", "")).services[0].combine,
        Combine::Any
    );
    assert_eq!(
        ok(&bird_with("combine = { at_least = 1 }", "")).services[0].combine,
        Combine::AtLeast(1)
    );
    assert_issue(
        &issues(&bird_with("combine = { at_least = 2 }", "")),
        "service[0].combine",
        "only 1 check(s)",
    );
    assert_issue(
        &issues(&bird_with("combine = { at_least = 0 }", "")),
        "service[0].combine",
        "not a positive integer",
    );
    assert_issue(
        &issues(&bird_with("combine = { most = 1 }", "")),
        "service[0].combine",
        "not a combine mode",
    );
    assert_eq!(Combine::All.required(3), 3);
    assert_eq!(Combine::Any.required(3), 1);
    assert_eq!(Combine::AtLeast(2).required(3), 2);
}

#[test]
fn jitter_is_at_most_half_the_shortest_interval() {
    let issues = issues(&bird_with("jitter = \"501ms\"", ""));
    assert_issue(
        &issues,
        "service[0].jitter",
        "501ms is more than half the shortest check interval 1s",
    );
    assert_eq!(
        ok(&bird_with("jitter = \"500ms\"", "")).services[0].jitter,
        Duration::from_millis(500)
    );
    assert_eq!(
        ok(&bird_with("jitter = \"0s\"", "")).services[0].jitter,
        Duration::ZERO
    );
}

#[test]
fn interval_bounds_and_bad_durations() {
    assert_issue(
        &issues(&bird_with("interval = \"10ms\"", "")),
        "service[0].interval",
        "10ms is out of range",
    );
    assert_issue(
        &issues(&bird_with("", "interval = \"2h\"")),
        "service[0].check[0].interval",
        "out of range",
    );
    assert_issue(
        &issues(&bird_with("", "timeout = \"fast\"")),
        "service[0].check[0].timeout",
        "not a duration",
    );
}

#[test]
fn query_check_errors() {
    let text = r#"
[backend]
kind = "bird"

[[service]]
name = "dns"
announce = ["anycast_dns"]

[[service.check]]
name = "q"
target = "localhost:53"
qname = "exa mple.com"
qtype = "BOGUS"
qclass = "XX"
edns_payload = 100
rcodes = ["NOERROR", "SUPERB"]
min_answers = -1
answer_exact = "a"
answer_contains = "b"
slow_after = "600ms"
identity = "!!"
transport = "quic"
zones = ["example.com."]
"#;
    let issues = issues(text);
    assert_issue(&issues, "service[0].check[0].target", "not an IP address");
    assert_issue(
        &issues,
        "service[0].check[0].qname",
        "not a valid domain name",
    );
    assert_issue(&issues, "service[0].check[0].qtype", "not a record type");
    assert_issue(&issues, "service[0].check[0].qclass", "not a DNS class");
    assert_issue(&issues, "service[0].check[0].edns_payload", "out of range");
    assert_issue(&issues, "service[0].check[0].rcodes[1]", "not an rcode");
    assert_issue(&issues, "service[0].check[0].min_answers", "out of range");
    assert_issue(&issues, "service[0].check[0].answer_contains", "both set");
    assert_issue(
        &issues,
        "service[0].check[0].slow_after",
        "must be shorter than the timeout 250ms",
    );
    assert_issue(
        &issues,
        "service[0].check[0].identity",
        "neither \"nsid\" nor a CHAOS TXT name",
    );
    assert_issue(&issues, "service[0].check[0].transport", "not a transport");
    assert_issue(
        &issues,
        "service[0].check[0].zones",
        "only applies to type = \"serial\"",
    );
    assert_eq!(issues.len(), 12, "{issues:#?}");
}

#[test]
fn query_check_missing_required_keys() {
    let text =
        bird_with("", "").replace("target = \"127.0.0.1:53\"\nqname = \"example.com.\"\n", "");
    let issues = issues(&text);
    assert_issue(&issues, "service[0].check[0].target", "missing");
    assert_issue(&issues, "service[0].check[0].qname", "missing");
    assert_eq!(issues.len(), 2);
}

#[test]
fn rcodes_without_noerror_default_to_zero_answers() {
    let config = ok(&bird_with("", "rcodes = [\"NXDOMAIN\"]"));
    let CheckKind::Query(spec) = &config.services[0].checks[0].kind else {
        panic!("query")
    };
    assert_eq!(spec.expect.min_answers, 0);
    assert_issue(
        &issues(&bird_with("", "rcodes = []")),
        "service[0].check[0].rcodes",
        "empty list",
    );
}

#[test]
fn unknown_check_type() {
    assert_issue(
        &issues(&bird_with("", "type = \"ping\"")),
        "service[0].check[0].type",
        "not a check type",
    );
}

const SERIAL_SERVICE: &str = r#"
[backend]
kind = "bird"

[[service]]
name = "dns"
announce = ["anycast_dns"]

[[service.check]]
name = "serial"
type = "serial"
"#;

#[test]
fn serial_check_errors() {
    let text = format!(
        "{SERIAL_SERVICE}local = \"127.0.0.1:53\"\nreference = \"127.0.0.1\"\nzones = [\"ok.example.\", \"bad zone\"]\n\
         transport = \"both\"\nconcurrency = 0\nslow_after = \"1s\"\n"
    );
    let issues = issues(&text);
    assert_issue(
        &issues,
        "service[0].check[0].reference",
        "is the local server itself",
    );
    assert_issue(&issues, "service[0].check[0].max_lag", "missing");
    assert_issue(
        &issues,
        "service[0].check[0].zones[1]",
        "not a valid domain name",
    );
    assert_issue(&issues, "service[0].check[0].transport", "one transport");
    assert_issue(
        &issues,
        "service[0].check[0].concurrency",
        "0 is out of range",
    );
    assert_issue(
        &issues,
        "service[0].check[0].slow_after",
        "only applies to type = \"query\"",
    );
    assert_eq!(issues.len(), 6, "{issues:#?}");
}

#[test]
fn serial_check_needs_reference_and_zones() {
    let text = format!("{SERIAL_SERVICE}local = \"127.0.0.1\"\nmax_lag = 0\n");
    let issues = issues(&text);
    assert_issue(&issues, "service[0].check[0].reference", "missing");
    assert!(issues[0].hint.contains("reference"), "{:?}", issues[0]);
    assert_issue(&issues, "service[0].check[0].zones", "no zones to check");
    assert_eq!(issues.len(), 2, "{issues:#?}");
    let too_big = format!(
        "{SERIAL_SERVICE}local = \"127.0.0.1\"\nreference = \"192.0.2.1\"\nzones = [\"a.\"]\nmax_lag = 2147483648\n"
    );
    assert_issue(
        &self::issues(&too_big),
        "service[0].check[0].max_lag",
        "out of range",
    );
}

#[test]
fn zones_file_is_read_relative_to_the_config_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut zones = std::fs::File::create(dir.path().join("zones.txt")).expect("create");
    writeln!(
        zones,
        "# the hosted zones\nexample.com\n\n  example.org.  # trailing comment\nEXAMPLE.com."
    )
    .expect("write");
    let config_path = dir.path().join("nsbeacon.toml");
    std::fs::write(
        &config_path,
        format!(
            "{SERIAL_SERVICE}local = \"127.0.0.1\"\nreference = \"192.0.2.1\"\nzones = [\"inline.example.\"]\n\
             zones_file = \"zones.txt\"\nmax_lag = 3\n"
        ),
    )
    .expect("write config");
    let config = load(&config_path).expect("valid config");
    let CheckKind::Serial(sweep) = &config.services[0].checks[0].kind else {
        panic!("serial")
    };
    let names: Vec<String> = sweep.zones.iter().map(ToString::to_string).collect();
    assert_eq!(names, ["inline.example.", "example.com.", "example.org."]);
    assert_eq!(sweep.max_lag, 3);
    assert_eq!(sweep.local.port(), 53);
}

#[test]
fn zones_file_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing.txt");
    let text = format!(
        "{SERIAL_SERVICE}local = \"127.0.0.1\"\nreference = \"192.0.2.1\"\nzones_file = \"{}\"\nmax_lag = 3\n",
        missing.display()
    );
    assert_issue(
        &issues(&text),
        "service[0].check[0].zones_file",
        "cannot read",
    );

    let bad = dir.path().join("bad.txt");
    let mut content = String::from("good.example.\n");
    for i in 0..8 {
        content.push_str(&format!("bad zone{i}\n"));
    }
    std::fs::write(&bad, content).expect("write");
    let text = text.replace(&missing.display().to_string(), &bad.display().to_string());
    let issues = issues(&text);
    assert_issue(
        &issues,
        "service[0].check[0].zones_file",
        "line 2: \"bad zone0\"",
    );
    assert!(
        issues[0].message.contains("and 3 more"),
        "{}",
        issues[0].message
    );

    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "# nothing yet\n").expect("write");
    let text = text.replace(&bad.display().to_string(), &empty.display().to_string());
    assert_issue(
        &self::issues(&text),
        "service[0].check[0].zones",
        "no zones to check",
    );
}

#[test]
fn damping_errors() {
    let issues_reuse = issues(&bird_with(
        "[service.damping]\nreuse_threshold = 5000\nsuppress_threshold = 3000",
        "",
    ));
    // The check table follows the damping table in bird_with, so it must still parse as a check.
    assert_issue(
        &issues_reuse,
        "service[0].damping.reuse_threshold",
        "must be below the suppress threshold",
    );

    let text = r#"
[backend]
kind = "bird"
[[service]]
name = "dns"
announce = ["anycast_dns"]
[service.damping]
penalty = -5
half_life = "0s"
[[service.check]]
name = "soa"
target = "127.0.0.1"
qname = "example.com."
"#;
    let issues = issues(text);
    assert_issue(&issues, "service[0].damping.penalty", "not positive");
    assert_issue(&issues, "service[0].damping.half_life", "out of range");

    let unreachable = r#"
[backend]
kind = "bird"
[[service]]
name = "dns"
announce = ["anycast_dns"]
[service.damping]
suppress_threshold = 100000
[[service.check]]
name = "soa"
target = "127.0.0.1"
qname = "example.com."
"#;
    assert_issue(
        &self::issues(unreachable),
        "service[0].damping.suppress_threshold",
        "can never be reached",
    );
    let disabled = unreachable.replace("suppress_threshold = 100000", "enabled = false");
    assert!(!ok(&disabled).services[0].damping.enabled);

    let short_hold = unreachable.replace("suppress_threshold = 100000", "max_hold_down = \"10s\"");
    assert_issue(
        &self::issues(&short_hold),
        "service[0].damping.max_hold_down",
        "shorter than the half-life",
    );
}

#[test]
fn damping_ceiling_matches_max_hold_down() {
    let d = DampingConfig::default();
    assert!((d.ceiling() - 750.0 * 32.0).abs() < 1e-6, "{}", d.ceiling());
}

#[test]
fn graceful_drain_needs_degrade_targets() {
    assert_issue(
        &issues(&bird_with("graceful_drain = \"30s\"", "")),
        "service[0].graceful_drain",
        "has none",
    );
    assert_eq!(
        ok(&bird_with("graceful_drain = \"0s\"", "")).services[0].graceful_drain,
        None
    );
}

#[test]
fn query_keys_on_a_serial_check_are_rejected() {
    let text = format!(
        "{SERIAL_SERVICE}local = \"127.0.0.1\"\nreference = \"192.0.2.1\"\nzones = [\"a.\"]\nmax_lag = 1\n\
         qname = \"x.\"\ntarget = \"127.0.0.1\"\n"
    );
    let issues = issues(&text);
    assert_issue(
        &issues,
        "service[0].check[0].target",
        "only applies to type = \"query\"",
    );
    assert_issue(
        &issues,
        "service[0].check[0].qname",
        "only applies to type = \"query\"",
    );
    assert_eq!(issues.len(), 2);
}

#[test]
fn drain_file_must_be_absolute() {
    let text = format!("drain_file = \"drain\"\n{BIRD_EXAMPLE}");
    assert_issue(&issues(&text), "drain_file", "not an absolute path");
}

#[test]
fn load_reports_unreadable_files() {
    let err = load(std::path::Path::new("/nonexistent/nsbeacon.toml")).expect_err("missing file");
    assert!(matches!(err, ConfigError::Read { .. }), "{err}");
    assert!(
        err.to_string().contains("/nonexistent/nsbeacon.toml"),
        "{err}"
    );
}

#[test]
fn service_config_equality_detects_changes() {
    let a = ok(BIRD_EXAMPLE);
    let b = ok(BIRD_EXAMPLE);
    assert_eq!(a.services[0], b.services[0]);
    let c = ok(&BIRD_EXAMPLE.replace("qname = \"example.com\"", "qname = \"example.org\""));
    assert_ne!(a.services[0], c.services[0]);
}

#[test]
fn example_file_in_deploy_is_valid() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/nsbeacon.example.toml");
    let config = load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(!config.services.is_empty());
}

#[test]
fn chaos_identity_probes_need_two_timeouts_per_interval() {
    let config = ok(&bird_with("", "identity = \"id.server\""));
    assert_eq!(
        config.services[0].checks[0].timeout,
        Duration::from_millis(250),
        "the default timeout leaves room for the CHAOS query"
    );
    let issues = issues(&bird_with(
        "",
        "identity = \"hostname.bind\"\ntimeout = \"600ms\"",
    ));
    assert_issue(
        &issues,
        "service[0].check[0].timeout",
        "600ms is longer than half of the default interval 1s: with a CHAOS TXT identity",
    );
    let nsid = ok(&bird_with("", "identity = \"nsid\"\ntimeout = \"500ms\""));
    assert_eq!(
        nsid.services[0].checks[0].timeout,
        Duration::from_millis(500)
    );
}

#[test]
fn issues_carry_lines_and_are_listed_in_file_order() {
    let text = r#"[backend]
kind = "bird"

[[service]]
name = "dns"
announce = ["anycast_dns"]
rise = 0

[[service.check]]
name = "soa"
target = "127.0.0.1"
qname = "example.com."
timeout = "2s"
"#;
    let err = parse(text, "x.toml").expect_err("invalid");
    let issues = err.issues();
    assert_eq!(issues.len(), 2, "{issues:?}");
    assert_eq!(issues[0].path, "service[0].rise");
    assert_eq!(issues[0].line, Some(7));
    assert_eq!(issues[1].path, "service[0].check[0].timeout");
    assert_eq!(issues[1].line, Some(13));
    let shown = err.to_string();
    assert!(
        shown.contains(
            "\n  - line 13: service[0].check[0].timeout: 2s is longer than the default interval 1s"
        ),
        "{shown}"
    );
    // A missing table has no line and is listed last.
    let err = parse("[[service]]\nname = \"x\"\n", "x.toml").expect_err("invalid");
    let last = err.issues().last().expect("issues");
    assert_eq!((last.path.as_str(), last.line), ("backend", None));
}

#[test]
fn shared_targets_are_found_even_in_an_otherwise_invalid_service() {
    let text = format!(
        "{BIRD_EXAMPLE}\n[[service]]\nname = \"other\"\nannounce = [\"anycast_dns\"]\nrise = 0\n\
         [[service.check]]\nname = \"soa\"\ntarget = \"127.0.0.1\"\nqname = \"example.org.\"\n"
    );
    let issues = issues(&text);
    assert_issue(
        &issues,
        "service[1].announce[0]",
        "already controlled by service[0].announce[0]",
    );
    assert_issue(&issues, "service[1].rise", "out of range");
    assert_eq!(issues.len(), 2, "{issues:#?}");
}

#[test]
fn vtysh_args_that_run_or_write_config_are_rejected() {
    for bad in [
        "-c",
        "--command=show run",
        "-wc",
        "--writeconfig",
        "-b",
        "--inputfile",
        "-f",
    ] {
        let text = FRR_EXAMPLE.replace(
            "args = [\"--vty_socket\", \"/run/frr-lab\"]",
            &format!("args = [{bad:?}]"),
        );
        assert_issue(
            &issues(&text),
            "backend.args[0]",
            "would make vtysh run or write configuration",
        );
    }
    for good in ["--vty_socket", "/run/frr", "-N", "ns1", "-u"] {
        let text = FRR_EXAMPLE.replace(
            "args = [\"--vty_socket\", \"/run/frr-lab\"]",
            &format!("args = [{good:?}]"),
        );
        ok(&text);
    }
}

/// The FRR backend with `backend_keys` in place of the example's via/vtysh/args lines.
fn frr_with(backend_keys: &str) -> String {
    FRR_EXAMPLE.replace(
        "via = \"vtysh\"\nvtysh = \"/usr/local/bin/vtysh\"\nargs = [\"--vty_socket\", \"/run/frr-lab\"]\n",
        backend_keys,
    )
}

#[test]
fn frr_defaults_to_bgpd_vty_socket() {
    let text = frr_with("");
    assert_ne!(text, FRR_EXAMPLE, "the replacement must apply");
    match ok(&text).backend {
        BackendConfig::Frr { transport, .. } => assert_eq!(
            transport,
            FrrTransport::VtySocket {
                socket: DEFAULT_BGPD_VTY_SOCKET.into()
            }
        ),
        other => panic!("{other:?}"),
    }
    match ok(&frr_with(
        "via = \"socket\"\nsocket = \"/run/frr-lab/bgpd.vty\"\n",
    ))
    .backend
    {
        BackendConfig::Frr { transport, .. } => assert_eq!(
            transport,
            FrrTransport::VtySocket {
                socket: "/run/frr-lab/bgpd.vty".into()
            }
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn frr_keys_of_the_other_transport_are_errors() {
    // vtysh settings without via = "vtysh": an older config, or a typo; never silently ignored.
    let issues_found = issues(&frr_with(
        "vtysh = \"/usr/bin/vtysh\"\nargs = [\"--vty_socket\", \"/run/frr\"]\n",
    ));
    assert_issue(
        &issues_found,
        "backend.vtysh",
        "only applies with via = \"vtysh\"",
    );
    assert_issue(
        &issues_found,
        "backend.args",
        "only applies with via = \"vtysh\"",
    );
    assert!(
        issues_found[0].to_string().contains("DIR/bgpd.vty"),
        "{}",
        issues_found[0]
    );
    assert_issue(
        &issues(&frr_with(
            "via = \"vtysh\"\nsocket = \"/run/frr/bgpd.vty\"\n",
        )),
        "backend.socket",
        "does not apply with via = \"vtysh\"",
    );
    assert_issue(
        &issues(&frr_with("via = \"telnet\"\n")),
        "backend.via",
        "not a way to reach FRR",
    );
    assert_issue(
        &issues(&frr_with("socket = \"\"\n")),
        "backend.socket",
        "empty path",
    );
    assert_issue(
        &issues(&BIRD_EXAMPLE.replace("kind = \"bird\"", "kind = \"bird\"\nvia = \"socket\"")),
        "backend.via",
        "only applies to kind = \"frr\"",
    );
}

#[test]
fn default_jitter_follows_a_shorter_check_interval() {
    let config = ok(&bird_with("interval = \"10s\"", "interval = \"1s\""));
    assert_eq!(config.services[0].jitter, Duration::from_millis(100));
}

/// An FRR config with one service per `(announce, degrade)` pair, each list written as TOML arrays.
fn frr_services(services: &[(&str, &str)]) -> String {
    let mut text = String::from("[backend]\nkind = \"frr\"\n");
    for (i, (announce, degrade)) in services.iter().enumerate() {
        text.push_str(&format!(
            "\n[[service]]\nname = \"svc{i}\"\nannounce = {announce}\ndegrade = {degrade}\n\n\
             [[service.check]]\nname = \"soa\"\ntarget = \"127.0.0.1\"\nqname = \"example.com.\"\n"
        ));
    }
    text
}

fn frr_net(text: &str) -> RouteTarget {
    RouteTarget::FrrNetwork(text.parse().expect("valid FRR network"))
}

/// The 1-based line of the first line of `text` containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("{needle:?} not in:\n{text}"))
}

#[test]
fn frr_a_prefix_belongs_to_one_service_whatever_its_route_map() {
    // Plain in one service, a route-map variant in the other: FRR has one `network` statement for both.
    let text = frr_services(&[
        ("[\"203.0.113.53/32\"]", "[]"),
        (
            "[\"203.0.113.54/32\"]",
            "[\"203.0.113.53/32 route-map NSBEACON-DEGRADED\"]",
        ),
    ]);
    let found = issues(&text);
    assert_issue(
        &found,
        "service[1].degrade[0]",
        "frr network 203.0.113.53/32 route-map NSBEACON-DEGRADED is a variant of frr network \
         203.0.113.53/32, already controlled by service[0].announce[0]",
    );
    assert!(
        found[0]
            .hint
            .contains("one service only, whatever its route-map"),
        "{:?}",
        found[0]
    );
    assert_eq!(
        found[0].line,
        Some(line_of(&text, "route-map NSBEACON-DEGRADED"))
    );
    assert_eq!(found.len(), 1, "{found:#?}");

    // Two different route-maps of one prefix, in the degrade lists of two services.
    let text = frr_services(&[
        (
            "[\"203.0.113.53/32\"]",
            "[\"2001:db8::53/128 route-map A\"]",
        ),
        (
            "[\"203.0.113.54/32\"]",
            "[\"2001:db8::53/128 route-map B\"]",
        ),
    ]);
    let found = issues(&text);
    assert_issue(
        &found,
        "service[1].degrade[0]",
        "is a variant of frr network 2001:db8::53/128 route-map A, already controlled by service[0].degrade[0]",
    );
    assert_eq!(found.len(), 1, "{found:#?}");

    // The same variant in two services keeps the plain message.
    let text = frr_services(&[
        ("[\"203.0.113.53/32\"]", "[\"203.0.113.53/32 route-map D\"]"),
        ("[\"203.0.113.54/32\"]", "[\"203.0.113.53/32 route-map D\"]"),
    ]);
    let found = issues(&text);
    assert_issue(
        &found,
        "service[1].degrade[0]",
        "frr network 203.0.113.53/32 route-map D is already controlled by service[0].degrade[0]",
    );
    assert_eq!(found.len(), 1, "{found:#?}");

    // Every service's own prefix, each degraded in place: valid.
    let config = ok(&frr_services(&[
        ("[\"203.0.113.53/32\"]", "[\"203.0.113.53/32 route-map D\"]"),
        ("[\"203.0.113.54/32\"]", "[\"203.0.113.54/32 route-map D\"]"),
    ]));
    assert_eq!(
        config.services[1].announce,
        vec![frr_net("203.0.113.54/32")]
    );
    assert_eq!(
        config.services[1].degrade,
        vec![frr_net("203.0.113.54/32 route-map D")]
    );
}

#[test]
fn frr_prefix_ownership_is_checked_even_when_a_service_is_otherwise_invalid() {
    // The second service's other list does not parse; its valid entry is still checked for ownership.
    let text = frr_services(&[
        ("[\"203.0.113.53/32\"]", "[]"),
        ("[\"203.0.113.53/32 route-map X\", \"anycast\"]", "[]"),
    ]);
    let found = issues(&text);
    assert_issue(
        &found,
        "service[1].announce[0]",
        "already controlled by service[0].announce[0]",
    );
    assert_issue(&found, "service[1].announce[1]", "not an FRR target");
    assert_eq!(found.len(), 2, "{found:#?}");
}

#[test]
fn frr_two_variants_of_a_prefix_in_one_list_are_rejected() {
    let text = "[backend]\nkind = \"frr\"\n\n[[service]]\nname = \"dns\"\nannounce = [\n  \"203.0.113.53/32\",\n  \
                \"2001:db8::53/128\",\n  \"203.0.113.53/32 route-map NSBEACON-DEGRADED\",\n]\ndegrade = [\n  \
                \"2001:db8::53/128 route-map A\",\n  \"2001:db8::53/128 route-map B\",\n]\n\n[[service.check]]\n\
                name = \"soa\"\ntarget = \"127.0.0.1\"\nqname = \"example.com.\"\n";
    let found = issues(text);
    assert_issue(
        &found,
        "service[0].announce[2]",
        "frr network 203.0.113.53/32 route-map NSBEACON-DEGRADED and service[0].announce[0] (frr network \
         203.0.113.53/32) are two variants of the same prefix in one list",
    );
    assert_issue(
        &found,
        "service[0].degrade[1]",
        "and service[0].degrade[0] (frr network 2001:db8::53/128 route-map A) are two variants",
    );
    for issue in &found {
        assert!(issue.hint.contains("switch each other out"), "{issue:?}");
    }
    assert_eq!(
        found[0].line,
        Some(line_of(text, "route-map NSBEACON-DEGRADED"))
    );
    assert_eq!(found[1].line, Some(line_of(text, "route-map B")));
    assert_eq!(found.len(), 2, "{found:#?}");
}

#[test]
fn frr_duplicates_point_at_the_entry_as_written() {
    // announce[0] does not parse, so the duplicate's first listing is announce[2], not the second parsed entry.
    let text = frr_services(&[(
        "[\"anycast\", \"203.0.113.54/32\", \"203.0.113.53/32\", \"203.0.113.53/32\"]",
        "[]",
    )]);
    let found = issues(&text);
    assert_issue(&found, "service[0].announce[0]", "not an FRR target");
    assert_issue(
        &found,
        "service[0].announce[3]",
        "listed twice (also service[0].announce[2])",
    );
    assert_eq!(found.len(), 2, "{found:#?}");
}

#[test]
fn frr_plain_announce_with_route_map_degrade_is_the_valid_degrade_setup() {
    let config = ok(&frr_services(&[(
        "[\"203.0.113.53/32\", \"2001:db8::53/128\"]",
        "[\"203.0.113.53/32 route-map NSBEACON-DEGRADED\", \"2001:db8::53/128 route-map NSBEACON-DEGRADED\"]",
    )]));
    assert_eq!(
        config.services[0].degrade,
        vec![
            frr_net("203.0.113.53/32 route-map NSBEACON-DEGRADED"),
            frr_net("2001:db8::53/128 route-map NSBEACON-DEGRADED"),
        ]
    );
    // Degrade targets need not mirror announce: another prefix (or one left out) is fine.
    let config = ok(&frr_services(&[(
        "[\"203.0.113.53/32\", \"2001:db8::53/128\"]",
        "[\"198.51.100.53/32 route-map D\"]",
    )]));
    assert_eq!(
        config.services[0].degrade,
        vec![frr_net("198.51.100.53/32 route-map D")]
    );
    // A route-map variant announced while healthy and another one when degraded: two variants, valid.
    ok(&frr_services(&[(
        "[\"203.0.113.53/32 route-map NORMAL\"]",
        "[\"203.0.113.53/32 route-map DEGRADED\"]",
    )]));
}

#[test]
fn frr_the_same_variant_in_announce_and_degrade_is_an_error() {
    for variant in ["203.0.113.53/32", "203.0.113.53/32 route-map D"] {
        let text = frr_services(&[(
            &format!("[\"203.0.113.54/32\", \"{variant}\"]"),
            &format!("[\"{variant}\"]"),
        )]);
        let found = issues(&text);
        assert_issue(
            &found,
            "service[0].degrade[0]",
            &format!("frr network {variant} is also service[0].announce[1]"),
        );
        assert!(
            found[0].hint.contains("route-map variant of the prefix"),
            "{:?}",
            found[0]
        );
        assert_eq!(found.len(), 1, "{found:#?}");
    }
}

#[test]
fn frr_neighbors_are_owned_whole() {
    let text = frr_services(&[
        ("[\"203.0.113.53/32\"]", "[\"neighbor:192.0.2.1\"]"),
        ("[\"203.0.113.54/32\"]", "[\"neighbor:192.0.2.1\"]"),
    ]);
    let found = issues(&text);
    assert_issue(
        &found,
        "service[1].degrade[0]",
        "frr neighbor 192.0.2.1 is already controlled by service[0].degrade[0]",
    );
    assert_eq!(found.len(), 1, "{found:#?}");
    ok(&frr_services(&[
        ("[\"203.0.113.53/32\"]", "[\"neighbor:192.0.2.1\"]"),
        ("[\"203.0.113.54/32\"]", "[\"neighbor:192.0.2.2\"]"),
    ]));
}

#[test]
fn max_behind_zones_tolerates_fewer_than_all_zones() {
    let serial = |extra: &str| {
        format!(
            "{SERIAL_SERVICE}local = \"127.0.0.1\"\nreference = \"192.0.2.1\"\nzones = [\"a.\", \"b.\", \"c.\"]\n\
             max_lag = 10\n{extra}"
        )
    };
    let config = ok(&serial("max_behind_zones = 2\n"));
    let CheckKind::Serial(sweep) = &config.services[0].checks[0].kind else {
        panic!("serial check")
    };
    assert_eq!(sweep.max_behind_zones, 2);
    let config = ok(&serial("max_behind_zones = 0\n"));
    let CheckKind::Serial(sweep) = &config.services[0].checks[0].kind else {
        panic!("serial check")
    };
    assert_eq!(sweep.max_behind_zones, 0);

    let text = serial("max_behind_zones = 3\n");
    let found = issues(&text);
    assert_issue(
        &found,
        "service[0].check[0].max_behind_zones",
        "3 tolerates every one of the 3 zone(s)",
    );
    assert!(
        found[0].hint.contains("below the number of zones"),
        "{:?}",
        found[0]
    );
    assert_eq!(found[0].line, Some(line_of(&text, "max_behind_zones")));
    assert_eq!(found.len(), 1, "{found:#?}");

    let found = issues(&serial("max_behind_zones = -1\n"));
    assert_issue(
        &found,
        "service[0].check[0].max_behind_zones",
        "-1 is out of range",
    );
    assert_eq!(found.len(), 1, "{found:#?}");

    let found = issues(&bird_with("", "max_behind_zones = 1"));
    assert_issue(
        &found,
        "service[0].check[0].max_behind_zones",
        "only applies to type = \"serial\"",
    );
    assert_eq!(found.len(), 1, "{found:#?}");
}

fn serial_with_zones_file(file: &std::path::Path) -> String {
    format!(
        "{SERIAL_SERVICE}local = \"127.0.0.1\"\nreference = \"192.0.2.1\"\nzones_file = \"{}\"\nmax_lag = 3\n",
        file.display()
    )
}

#[test]
fn a_zones_file_that_is_a_fifo_is_refused_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("zones.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    let started = std::time::Instant::now();
    let issues = issues(&serial_with_zones_file(&fifo));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_issue(
        &issues,
        "service[0].check[0].zones_file",
        "is a FIFO (named pipe), not a regular file",
    );
    assert!(
        issues[0].hint.contains("refuses FIFOs"),
        "{}",
        issues[0].hint
    );
}

#[test]
fn a_zones_file_that_is_a_device_is_refused_before_reading() {
    let issues = issues(&serial_with_zones_file(std::path::Path::new("/dev/zero")));
    assert_issue(
        &issues,
        "service[0].check[0].zones_file",
        "cannot read the zones file: /dev/zero is a character device, not a regular file",
    );
}

#[test]
fn a_zones_file_over_the_limit_names_the_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let big = dir.path().join("zones.txt");
    let file = std::fs::File::create(&big).expect("create");
    file.set_len(MAX_ZONES_FILE_BYTES + 1).expect("sparse file");
    assert_issue(
        &issues(&serial_with_zones_file(&big)),
        "service[0].check[0].zones_file",
        "is larger than 64 MiB, the limit for a zones file",
    );
}

#[test]
fn a_config_file_that_is_not_utf8_says_so_with_its_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("latin1.toml");
    let mut text = BIRD_EXAMPLE.as_bytes().to_vec();
    text.extend_from_slice(b"# caf\xe9\n");
    std::fs::write(&path, &text).expect("write");
    let err = load(&path).expect_err("not UTF-8");
    let shown = err.to_string();
    assert!(matches!(err, ConfigError::Read { .. }), "{err:?}");
    let line = BIRD_EXAMPLE.lines().count() + 1;
    assert!(
        shown.contains(&format!(
            "is not UTF-8 text: invalid byte 0xe9 at line {line}, column 6"
        )),
        "{shown}"
    );
    assert!(!shown.contains("permission"), "{shown}");
}

#[test]
fn a_config_file_over_the_limit_or_not_regular_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let big = dir.path().join("big.toml");
    std::fs::File::create(&big)
        .and_then(|f| f.set_len(MAX_CONFIG_BYTES + 1))
        .expect("sparse file");
    let shown = load(&big).expect_err("too large").to_string();
    assert!(
        shown.contains("is larger than 4 MiB, the limit for a config file"),
        "{shown}"
    );
    let shown = load(dir.path()).expect_err("directory").to_string();
    assert!(
        shown.contains("is a directory, not a regular file"),
        "{shown}"
    );
}

#[test]
fn syntax_errors_say_they_are_reported_one_at_a_time() {
    let text = "[backend]\nkind = = \"bird\"\n[[service]]\nname = = 1\n";
    let shown = parse(text, "two.toml").expect_err("invalid").to_string();
    assert!(shown.starts_with("two.toml: line 2, column "), "{shown}");
    assert!(
        !shown.contains("line 4"),
        "only the first syntax error is known: {shown}"
    );
    assert!(shown.contains("reported one at a time"), "{shown}");
}

fn frr_announcing(targets: &str, backend_extra: &str) -> String {
    FRR_EXAMPLE
        .replace(
            "announce = [\"203.0.113.53/32\", \"2001:db8::53/128\"]",
            &format!("announce = [{targets}]"),
        )
        .replace(
            "kind = \"frr\"\n",
            &format!("kind = \"frr\"\n{backend_extra}\n"),
        )
}

#[test]
fn frr_default_routes_and_short_prefixes_are_refused() {
    let text = frr_announcing(
        "\"0.0.0.0/0\", \"::/0\", \"10.0.0.0/7\", \"2000::/15\", \"10.0.0.0/8\", \"2001::/16\"",
        "",
    );
    assert_ne!(text, FRR_EXAMPLE);
    let issues = issues(&text);
    assert_issue(
        &issues,
        "service[0].announce[0]",
        "0.0.0.0/0 is the default route",
    );
    assert!(
        issues[0].hint.contains("allow_default_route = true"),
        "{:?}",
        issues[0]
    );
    assert_issue(
        &issues,
        "service[0].announce[1]",
        "::/0 is the default route",
    );
    assert_issue(
        &issues,
        "service[0].announce[2]",
        "10.0.0.0/7 is shorter than /8, the shortest prefix accepted",
    );
    assert!(
        issues[2].hint.contains("min_prefix_length_v4"),
        "{:?}",
        issues[2]
    );
    assert_issue(
        &issues,
        "service[0].announce[3]",
        "2000::/15 is shorter than /16",
    );
    assert!(
        issues[3].hint.contains("min_prefix_length_v6"),
        "{:?}",
        issues[3]
    );
    assert_eq!(issues.len(), 4, "/8 and /16 are accepted: {issues:#?}");
    // In degrade lists too, with a route-map.
    let text = FRR_EXAMPLE.replace(
        "degrade = [\"neighbor:192.0.2.1\"]",
        "degrade = [\"0.0.0.0/0 route-map NSBEACON-DEGRADED\"]",
    );
    assert_issue(
        &self::issues(&text),
        "service[0].degrade[0]",
        "is the default route",
    );
}

#[test]
fn frr_prefix_limits_can_be_lowered_and_default_routes_allowed_explicitly() {
    let text = frr_announcing(
        "\"0.0.0.0/0\", \"::/0\", \"10.0.0.0/7\", \"2000::/15\"",
        "allow_default_route = true\nmin_prefix_length_v4 = 4\nmin_prefix_length_v6 = 12",
    );
    let config = ok(&text);
    assert_eq!(config.services[0].announce.len(), 4);
    // Allowing the default route does not lower the minimum for other prefixes.
    let text = frr_announcing(
        "\"0.0.0.0/0\", \"10.0.0.0/7\"",
        "allow_default_route = true",
    );
    let issues = issues(&text);
    assert_eq!(issues.len(), 1, "{issues:#?}");
    assert_issue(&issues, "service[0].announce[1]", "shorter than /8");
}

#[test]
fn prefix_limit_keys_are_checked() {
    let text = frr_announcing(
        "\"203.0.113.53/32\"",
        "min_prefix_length_v4 = 33\nmin_prefix_length_v6 = -1",
    );
    let issues = issues(&text);
    assert_issue(
        &issues,
        "backend.min_prefix_length_v4",
        "33 is not a prefix length",
    );
    assert!(issues[0].hint.contains("0..=32"), "{:?}", issues[0]);
    assert_issue(
        &issues,
        "backend.min_prefix_length_v6",
        "-1 is not a prefix length",
    );
    let text = BIRD_EXAMPLE.replace(
        "kind = \"bird\"\n",
        "kind = \"bird\"\nallow_default_route = true\n",
    );
    assert_issue(
        &self::issues(&text),
        "backend.allow_default_route",
        "only applies to kind = \"frr\"",
    );
}

#[test]
fn frr_announce_via_kernel_metric_maps_the_variants_to_metrics_and_refuses_others() {
    let frr_announcing = |targets: &str, extra: &str| {
        frr_announcing(targets, extra).replace("vrf = \"anycast\"\n", "")
    };
    let text = frr_announcing(
        "\"203.0.113.53/32\", \"2001:db8::53/128 route-map NSBEACON-DEGRADED\"",
        "announce_via = \"kernel-metric\"\nkernel_protocol = 60",
    );
    let announce = match ok(&text).backend {
        BackendConfig::Frr { announce, .. } => announce,
        other => panic!("{other:?}"),
    };
    let FrrAnnounce::KernelMetric(gate, metrics) = announce else {
        panic!("{announce:?}")
    };
    assert_eq!(gate.protocol, 60);
    assert_eq!(metrics.metric(None), Some(53));
    assert_eq!(
        metrics.metric(Some(&"NSBEACON-DEGRADED".parse().unwrap())),
        Some(54)
    );
    assert_eq!(
        metrics.metric(Some(&"NSBEACON-GSHUT".parse().unwrap())),
        Some(55)
    );
    // A route-map variant the file's NSBEACON-KERNEL route-maps do not map has no metric: refused, with
    // the variants that exist.
    let issues = issues(&frr_announcing(
        "\"203.0.113.53/32 route-map MY-OWN\"",
        "announce_via = \"kernel-metric\"",
    ));
    assert_issue(
        &issues,
        "service[0].announce[0]",
        "has no kernel-route metric",
    );
    assert!(
        issues[0]
            .hint
            .contains("route-map NSBEACON-DEGRADED (metric 54)"),
        "{:?}",
        issues[0]
    );
    // The same target is fine with the other mechanisms.
    ok(&frr_announcing("\"203.0.113.53/32 route-map MY-OWN\"", ""));
    assert_issue(
        &self::issues(&frr_announcing(
            "\"203.0.113.53/32\"",
            "announce_via = \"kernel-metric\"\nvrf = \"blue\"",
        )),
        "backend.announce_via",
        "only works for the BGP instance of the default VRF",
    );
}

#[test]
fn frr_announce_via_defaults_to_the_kernel_route_gate_and_is_checked() {
    // FRR_EXAMPLE's instance is in a VRF; these cases are about the default VRF unless they add one.
    let frr_announcing = |targets: &str, extra: &str| {
        frr_announcing(targets, extra).replace("vrf = \"anycast\"\n", "")
    };
    let announce = |extra: &str| match ok(&frr_announcing("\"203.0.113.53/32\"", extra)).backend {
        BackendConfig::Frr { announce, .. } => announce,
        other => panic!("{other:?}"),
    };
    let gate = |protocol| {
        FrrAnnounce::KernelRoute(nsbeacon_routing::frr::KernelRouteGate {
            protocol,
            netns: None,
        })
    };
    assert_eq!(announce(""), gate(53));
    assert_eq!(
        announce("announce_via = \"kernel-route\"\nkernel_protocol = 250"),
        gate(250)
    );
    assert_eq!(announce("announce_via = \"network\""), FrrAnnounce::Network);
    // With a VRF the default is `network` (zebra reads the VRF's table, not the main one).
    assert_eq!(announce("vrf = \"blue\""), FrrAnnounce::Network);

    let cases = [
        (
            "announce_via = \"bgp\"",
            "backend.announce_via",
            "is not a way to announce",
        ),
        (
            "announce_via = \"kernel-route\"\nvrf = \"blue\"",
            "backend.announce_via",
            "only works for the BGP instance of the default VRF",
        ),
        (
            "announce_via = \"network\"\nkernel_protocol = 60",
            "backend.kernel_protocol",
            "only applies with announce_via",
        ),
        (
            "kernel_protocol = 186",
            "backend.kernel_protocol",
            "belong to FRR",
        ),
        (
            "kernel_protocol = 3",
            "backend.kernel_protocol",
            "the kernel's own",
        ),
        (
            "kernel_protocol = 256",
            "backend.kernel_protocol",
            "not a route protocol number",
        ),
        (
            "allow_default_route = true",
            "backend.allow_default_route",
            "cannot be announced through the kernel-route gate",
        ),
    ];
    for (extra, path, message) in cases {
        assert_issue(
            &issues(&frr_announcing("\"203.0.113.53/32\"", extra)),
            path,
            message,
        );
    }
    let text = BIRD_EXAMPLE.replace(
        "kind = \"bird\"\n",
        "kind = \"bird\"\nannounce_via = \"network\"\n",
    );
    assert_issue(
        &self::issues(&text),
        "backend.announce_via",
        "only applies to kind = \"frr\"",
    );
}

/// A valid BIRD config with `service_extra` in the service and `fleet` appended as the `[fleet]` body.
fn bird_fleet(service_extra: &str, fleet: &str) -> String {
    format!("{}\n[fleet]\n{fleet}\n", bird_with(service_extra, ""))
}

const FLEET_MIN: &str =
    "endpoints = [\"http://127.0.0.1:2379\"]\nname = \"prod\"\nnode = \"ams-1\"";

#[test]
fn without_a_fleet_section_there_is_no_fleet() {
    assert_eq!(ok(&bird_with("", "")).fleet, None);
}

#[test]
fn fleet_section_gets_documented_defaults() {
    let config = ok(&bird_fleet("", FLEET_MIN));
    let fleet = config.fleet.as_ref().expect("[fleet]");
    assert_eq!(
        *fleet,
        FleetConfig {
            endpoints: vec!["http://127.0.0.1:2379".to_owned()],
            name: "prod".to_owned(),
            node: "ams-1".to_owned(),
            prefix: DEFAULT_FLEET_PREFIX.to_owned(),
            lease_ttl: DEFAULT_FLEET_LEASE_TTL,
            timeout: DEFAULT_FLEET_TIMEOUT,
            guard_timeout: Duration::from_millis(200),
            on_unavailable: OnUnavailable::Local,
            guard_all_failures: false,
            tls: None,
            auth: None,
        }
    );
    assert_eq!(config.services[0].min_announcing, None);
    assert_eq!(
        fleet.min_announcing(&config.services[0]),
        MinAnnouncing::Count(1),
        "by default one other node must still announce"
    );
}

#[test]
fn fleet_node_defaults_to_the_host_name() {
    let text = bird_fleet(
        "",
        "endpoints = [\"http://127.0.0.1:2379\"]\nname = \"prod\"",
    );
    let host = nix::unistd::gethostname()
        .expect("host name")
        .into_string()
        .expect("UTF-8 host name");
    assert_eq!(ok(&text).fleet.expect("[fleet]").node, host);
}

#[test]
fn fleet_with_every_option_tls_and_a_password_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    for name in ["ca.pem", "node.pem", "node.key"] {
        std::fs::write(dir.path().join(name), pem).expect("write pem");
    }
    std::fs::write(dir.path().join("password"), "s3cret\n").expect("write password");
    let d = dir.path().display();
    let text = bird_fleet(
        "min_announcing = \"50%\"",
        &format!(
            r#"endpoints = ["https://10.0.0.1:2379", "https://etcd-2.example.net:2379/", "https://[2001:db8::1]:2379"]
name = "prod-dns"
node = "ams-1.example.net"
prefix = "/anycast/nsbeacon/"
lease_ttl = "15s"
timeout = "500ms"
guard_timeout = "100ms"
on_unavailable = "hold"
guard_all_failures = true
user = "nsbeacon"
password_file = "{d}/password"

[fleet.tls]
ca_file = "{d}/ca.pem"
cert_file = "{d}/node.pem"
key_file = "{d}/node.key"
"#
        ),
    );
    let config = ok(&text);
    let fleet = config.fleet.as_ref().expect("[fleet]");
    assert_eq!(fleet.endpoints.len(), 3);
    assert_eq!(fleet.prefix, "/anycast/nsbeacon");
    assert_eq!(fleet.lease_ttl, Duration::from_secs(15));
    assert_eq!(fleet.timeout, Duration::from_millis(500));
    assert_eq!(fleet.guard_timeout, Duration::from_millis(100));
    assert_eq!(fleet.on_unavailable, OnUnavailable::Hold);
    assert!(fleet.guard_all_failures);
    assert_eq!(
        fleet.tls,
        Some(FleetTlsConfig {
            ca_file: Some(dir.path().join("ca.pem")),
            cert_file: Some(dir.path().join("node.pem")),
            key_file: Some(dir.path().join("node.key")),
        })
    );
    assert_eq!(
        fleet.auth,
        Some(FleetAuthConfig {
            user: "nsbeacon".to_owned(),
            password_file: dir.path().join("password"),
        })
    );
    assert_eq!(
        fleet.min_announcing(&config.services[0]),
        MinAnnouncing::Fraction { ppm: 500_000 }
    );
}

#[test]
fn min_announcing_is_a_count_or_a_fraction_below_one() {
    for (written, expected) in [
        ("0", MinAnnouncing::Count(0)),
        ("3", MinAnnouncing::Count(3)),
        ("0.25", MinAnnouncing::Fraction { ppm: 250_000 }),
        ("\"60%\"", MinAnnouncing::Fraction { ppm: 600_000 }),
        ("\"33.3 %\"", MinAnnouncing::Fraction { ppm: 333_000 }),
    ] {
        let config = ok(&bird_fleet(
            &format!("min_announcing = {written}"),
            FLEET_MIN,
        ));
        assert_eq!(
            config.services[0].min_announcing,
            Some(expected),
            "{written}"
        );
    }
    for (written, needle) in [
        ("-1", "out of range"),
        ("121", "out of range"),
        ("1.0", "not a fraction below 1"),
        ("-0.5", "not a fraction below 1"),
        ("\"100%\"", "not a percentage below 100%"),
        ("\"half\"", "not a percentage"),
        ("true", "not a count or a fraction"),
    ] {
        let found = issues(&bird_fleet(
            &format!("min_announcing = {written}"),
            FLEET_MIN,
        ));
        assert_issue(&found, "service[0].min_announcing", needle);
        assert_eq!(
            found[0].line,
            Some(8),
            "{written}: the line of min_announcing"
        );
    }
}

#[test]
fn min_announcing_without_a_fleet_names_the_line_and_the_fix() {
    let found = issues(&bird_with("min_announcing = 2", ""));
    assert_issue(
        &found,
        "service[0].min_announcing",
        "no effect without a [fleet] section",
    );
    assert_eq!(found[0].line, Some(8));
    assert!(found[0].hint.contains("add [fleet]"), "{}", found[0].hint);
}

#[test]
fn fleet_errors_are_all_reported_with_their_key() {
    let found = issues(&bird_fleet(
        "",
        r#"endpoints = ["http://127.0.0.1:2379", "127.0.0.1:2379", "http://host"]
node = "ams 1"
prefix = "nsbeacon"
lease_ttl = "2500ms"
timeout = "2s"
guard_timeout = "0s"
on_unavailable = "withdraw"
password = "hunter2"
"#,
    ));
    assert_issue(&found, "fleet.endpoints[1]", "not an etcd client URL");
    assert_issue(&found, "fleet.endpoints[2]", "not an etcd client URL");
    assert_issue(&found, "fleet.name", "missing");
    assert_issue(&found, "fleet.node", "not a valid node name");
    assert_issue(&found, "fleet.prefix", "not an etcd key prefix");
    assert_issue(&found, "fleet.lease_ttl", "not a whole number of seconds");
    assert_issue(&found, "fleet.guard_timeout", "out of range");
    assert_issue(&found, "fleet.on_unavailable", "not a policy");
    assert_issue(
        &found,
        "fleet.password",
        "does not belong in the config file",
    );
    let endpoint = found
        .iter()
        .find(|i| i.path == "fleet.endpoints[1]")
        .expect("issue");
    assert_eq!(endpoint.line, Some(17), "{endpoint}");
    let password = found
        .iter()
        .find(|i| i.path == "fleet.password")
        .expect("issue");
    assert!(password.hint.contains("password_file"), "{password}");
    assert_eq!(password.line, Some(24), "{password}");

    let found = issues(&bird_fleet(
        "",
        &format!("{FLEET_MIN}\nlease_ttl = \"3s\"\ntimeout = \"2s\""),
    ));
    assert_issue(&found, "fleet.timeout", "more than a third of lease_ttl 3s");
}

#[test]
fn fleet_tls_and_auth_must_be_complete_and_readable() {
    let https = "endpoints = [\"https://10.0.0.1:2379\"]\nname = \"prod\"\nnode = \"a\"";
    let found = issues(&bird_fleet("", https));
    assert_issue(&found, "fleet.tls", "need the CA");

    let mixed = "endpoints = [\"https://10.0.0.1:2379\", \"http://10.0.0.2:2379\"]\nname = \"prod\"\nnode = \"a\"";
    assert_issue(
        &issues(&bird_fleet("", mixed)),
        "fleet.endpoints",
        "mixes http:// and https://",
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().display();
    std::fs::write(dir.path().join("ca.pem"), "not pem").expect("write");
    std::fs::write(dir.path().join("empty"), "").expect("write");
    let found = issues(&bird_fleet(
        "",
        &format!(
            "{https}\nuser = \"nsbeacon\"\npassword_file = \"{d}/empty\"\n[fleet.tls]\nca_file = \"{d}/ca.pem\"\n\
             cert_file = \"{d}/missing.pem\""
        ),
    ));
    assert_issue(&found, "fleet.tls.ca_file", "not a PEM file");
    assert_issue(&found, "fleet.tls.cert_file", "cannot read it");
    assert_issue(&found, "fleet.tls.key_file", "missing");
    assert_issue(&found, "fleet.password_file", "is empty");

    let found = issues(&bird_fleet(
        "",
        &format!("{FLEET_MIN}\nuser = \"nsbeacon\"\n[fleet.tls]\nca_file = \"relative.pem\""),
    ));
    assert_issue(&found, "fleet.password_file", "missing");
    assert_issue(&found, "fleet.tls", "would not be used");
    assert_issue(&found, "fleet.tls.ca_file", "not an absolute path");

    let found = issues(&bird_fleet(
        "",
        &format!("{FLEET_MIN}\npassword_file = \"{d}/empty\""),
    ));
    assert_issue(&found, "fleet.user", "missing");
}

#[test]
fn unknown_fleet_keys_stop_the_parser_with_their_position() {
    let err = parse(
        &bird_fleet("", &format!("{FLEET_MIN}\nendpoint = \"x\"")),
        "x.toml",
    )
    .expect_err("unknown key");
    assert!(
        matches!(err, ConfigError::Syntax { line: Some(20), .. }),
        "{err}"
    );
}

const DNSSEC_SERVICE: &str = r#"
[backend]
kind = "bird"

[[service]]
name = "dns"
announce = ["anycast_dns"]

[[service.check]]
name = "signatures"
type = "dnssec"
"#;

/// A dnssec check with `local` and one zone, plus `extra`.
fn dnssec_with(extra: &str) -> String {
    format!("{DNSSEC_SERVICE}local = \"127.0.0.1:5353\"\nzones = [\"example.com.\"]\n{extra}")
}

/// Asserts that the one issue at `path` says how to fix it with a hint containing `needle`.
fn assert_hint(issues: &[ConfigIssue], path: &str, needle: &str) {
    let at: Vec<&ConfigIssue> = issues.iter().filter(|i| i.path == path).collect();
    assert_eq!(at.len(), 1, "expected one issue at {path}: {issues:#?}");
    assert!(
        at[0].hint.contains(needle),
        "the hint at {path} should contain {needle:?}: {:?}",
        at[0].hint
    );
}

fn dnssec_of(config: &Config) -> (&CheckConfig, &DnssecCheck) {
    let check = &config.services[0].checks[0];
    let CheckKind::Dnssec(sweep) = &check.kind else {
        panic!("expected a dnssec check, got {:?}", check.kind)
    };
    (check, sweep)
}

#[test]
fn dnssec_check_gets_documented_defaults() {
    let config = ok(&format!(
        "{DNSSEC_SERVICE}local = \"127.0.0.1\"\nzones = [\"example.net\", \"Example.NET.\", \"example.org.\"]\n"
    ));
    let (check, sweep) = dnssec_of(&config);
    assert_eq!(check.kind.type_name(), "dnssec");
    assert_eq!(
        check.interval,
        Duration::from_secs(10),
        "zone sweeps default to at least 10s"
    );
    assert_eq!(check.timeout, Duration::from_secs(1));
    assert_eq!(
        sweep.local,
        "127.0.0.1:53".parse::<SocketAddr>().expect("addr"),
        "the port defaults to 53"
    );
    assert_eq!(sweep.transport, Transport::Udp);
    assert_eq!(sweep.timeout, Duration::from_secs(1));
    assert_eq!(sweep.types, vec![RecordType::SOA, RecordType::DNSKEY]);
    assert_eq!(sweep.warn_before, Duration::from_secs(3 * 24 * 3600));
    assert_eq!(sweep.fail_before, Duration::from_secs(3600));
    assert_eq!(sweep.clock_skew, Duration::from_secs(300));
    assert_eq!(sweep.concurrency, DEFAULT_SERIAL_CONCURRENCY);
    assert_eq!(
        sweep.zones,
        vec![
            Name::from_ascii("example.net.").expect("name"),
            Name::from_ascii("example.org.").expect("name")
        ],
        "zones are made absolute and deduplicated case-insensitively"
    );
}

#[test]
fn dnssec_check_takes_every_key() {
    let config = ok(&dnssec_with(
        "types = [\"soa\", \"DNSKEY\", \"NS\", \"soa\"]\nwarn_before = \"7d\"\nfail_before = \"6h\"\n\
         clock_skew = \"0s\"\ntransport = \"tcp\"\nconcurrency = 500\ninterval = \"1m\"\ntimeout = \"3s\"\n",
    ));
    let (check, sweep) = dnssec_of(&config);
    assert_eq!(check.interval, Duration::from_secs(60));
    assert_eq!(sweep.timeout, Duration::from_secs(3));
    assert_eq!(
        sweep.types,
        vec![RecordType::SOA, RecordType::DNSKEY, RecordType::NS],
        "types are case-insensitive and deduplicated in order"
    );
    assert_eq!(sweep.warn_before, Duration::from_secs(7 * 24 * 3600));
    assert_eq!(sweep.fail_before, Duration::from_secs(6 * 3600));
    assert_eq!(sweep.clock_skew, Duration::ZERO);
    assert_eq!(sweep.transport, Transport::Tcp);
    assert_eq!(sweep.concurrency, 500);
}

#[test]
fn dnssec_check_needs_local_and_zones() {
    let issues = issues(DNSSEC_SERVICE);
    assert_issue(&issues, "service[0].check[0].local", "missing");
    assert_hint(
        &issues,
        "service[0].check[0].local",
        "local = \"127.0.0.1:53\"",
    );
    assert_issue(&issues, "service[0].check[0].zones", "no zones to check");
    assert_eq!(issues.len(), 2, "{issues:#?}");
}

#[test]
fn a_misspelt_check_type_lists_dnssec_among_the_types() {
    let issues = issues(&dnssec_with("").replace("\"dnssec\"", "\"dnsec\""));
    assert_issue(
        &issues,
        "service[0].check[0].type",
        "\"dnsec\" is not a check type",
    );
    assert_hint(
        &issues,
        "service[0].check[0].type",
        "\"dnssec\" (RRSIG expiry",
    );
}

#[test]
fn dnssec_types_must_be_signed_apex_record_types() {
    let issues = issues(&dnssec_with(
        "types = [\"SOA\", \"RRSIG\", \"BOGUS\", \"ANY\", \"TYPE65534\"]\n",
    ));
    assert_issue(
        &issues,
        "service[0].check[0].types[1]",
        "RRSIG is not an RRset that carries its own signature",
    );
    assert_hint(&issues, "service[0].check[0].types[1]", "SOA, DNSKEY");
    assert_issue(
        &issues,
        "service[0].check[0].types[2]",
        "\"BOGUS\" is not a record type",
    );
    assert_hint(
        &issues,
        "service[0].check[0].types[2]",
        "type names such as",
    );
    assert_issue(
        &issues,
        "service[0].check[0].types[3]",
        "ANY is not an RRset that carries its own signature",
    );
    assert_issue(&issues, "service[0].check[0].types[4]", "not a record type");
    assert_eq!(issues.len(), 4, "{issues:#?}");

    let empty = self::issues(&dnssec_with("types = []\n"));
    assert_issue(&empty, "service[0].check[0].types", "no record types");
    assert_hint(
        &empty,
        "service[0].check[0].types",
        "types = [\"SOA\", \"DNSKEY\"]",
    );
}

#[test]
fn fail_before_must_be_below_warn_before_and_the_error_points_at_the_key_written() {
    let both = issues(&dnssec_with("warn_before = \"1h\"\nfail_before = \"1h\"\n"));
    assert_issue(
        &both,
        "service[0].check[0].fail_before",
        "fail_before 1h is not below warn_before 1h",
    );
    assert_hint(
        &both,
        "service[0].check[0].fail_before",
        "make fail_before the smaller",
    );
    assert_eq!(both.len(), 1, "{both:#?}");

    // Only fail_before written, at or above the default warn_before (3 days).
    let fail_only = issues(&dnssec_with("fail_before = \"4d\"\n"));
    assert_issue(
        &fail_only,
        "service[0].check[0].fail_before",
        "is not below warn_before 3d",
    );

    // Only warn_before written, below the default fail_before (1 hour): the key written is the one to fix.
    let warn_only = issues(&dnssec_with("warn_before = \"30m\"\n"));
    assert_issue(
        &warn_only,
        "service[0].check[0].warn_before",
        "fail_before 1h is not below warn_before 30m",
    );
    assert_hint(
        &warn_only,
        "service[0].check[0].warn_before",
        "warn_before = \"3d\", fail_before = \"1h\"",
    );
}

#[test]
fn dnssec_durations_are_checked_with_their_key_and_range() {
    let issues = issues(&dnssec_with(
        "warn_before = \"soon\"\nfail_before = \"400d\"\nclock_skew = \"2d\"\n",
    ));
    assert_issue(
        &issues,
        "service[0].check[0].warn_before",
        "\"soon\" is not a duration",
    );
    assert_hint(
        &issues,
        "service[0].check[0].warn_before",
        "a number with a unit",
    );
    assert_issue(&issues, "service[0].check[0].fail_before", "out of range");
    assert_issue(&issues, "service[0].check[0].clock_skew", "out of range");
    assert_hint(
        &issues,
        "service[0].check[0].clock_skew",
        "use a value from 0s to 1day",
    );
    assert_eq!(issues.len(), 3, "{issues:#?}");

    let zero_warn = self::issues(&dnssec_with("warn_before = \"0s\"\n"));
    assert_issue(
        &zero_warn,
        "service[0].check[0].warn_before",
        "out of range",
    );
}

#[test]
fn keys_of_other_check_types_on_a_dnssec_check_are_rejected() {
    let issues = issues(&dnssec_with(
        "reference = \"192.0.2.1\"\nmax_lag = 1\nmax_behind_zones = 0\nqname = \"x.\"\n",
    ));
    for key in ["reference", "max_lag", "max_behind_zones"] {
        let path = format!("service[0].check[0].{key}");
        assert_issue(
            &issues,
            &path,
            "only applies to type = \"serial\" checks, and this is a dnssec check",
        );
        assert_hint(
            &issues,
            &path,
            "remove it, or make this a check of type = \"serial\"",
        );
    }
    assert_issue(
        &issues,
        "service[0].check[0].qname",
        "only applies to type = \"query\" checks",
    );
    assert_eq!(issues.len(), 4, "{issues:#?}");
}

#[test]
fn dnssec_keys_on_serial_and_query_checks_are_rejected() {
    let serial = issues(&format!(
        "{SERIAL_SERVICE}local = \"127.0.0.1\"\nreference = \"192.0.2.1\"\nzones = [\"a.\"]\nmax_lag = 1\n\
         warn_before = \"3d\"\ntypes = [\"SOA\"]\n"
    ));
    assert_issue(
        &serial,
        "service[0].check[0].warn_before",
        "only applies to type = \"dnssec\" checks, and this is a serial check",
    );
    assert_issue(
        &serial,
        "service[0].check[0].types",
        "only applies to type = \"dnssec\"",
    );
    assert_eq!(serial.len(), 2, "{serial:#?}");

    let query = issues(&bird_with(
        "",
        "fail_before = \"1h\"\nclock_skew = \"1m\"\n",
    ));
    assert_issue(
        &query,
        "service[0].check[0].fail_before",
        "only applies to type = \"dnssec\" checks, and this is a query check",
    );
    assert_hint(
        &query,
        "service[0].check[0].fail_before",
        "set the check's type = \"dnssec\"",
    );
    assert_issue(
        &query,
        "service[0].check[0].clock_skew",
        "only applies to type = \"dnssec\"",
    );
}

#[test]
fn dnssec_check_sweep_keys_are_validated_like_the_serial_checks() {
    let issues = issues(&format!(
        "{DNSSEC_SERVICE}local = \"localhost\"\nzones = [\"ok.example.\", \"bad zone\"]\ntransport = \"both\"\n\
         concurrency = 0\n"
    ));
    assert_issue(&issues, "service[0].check[0].local", "not an IP address");
    assert_issue(
        &issues,
        "service[0].check[0].zones[1]",
        "not a valid domain name",
    );
    assert_issue(&issues, "service[0].check[0].transport", "one transport");
    assert_issue(
        &issues,
        "service[0].check[0].concurrency",
        "0 is out of range",
    );
    assert_eq!(issues.len(), 4, "{issues:#?}");

    // A timeout that does not fit the interval rejects the check before its own keys are read.
    let timeout = self::issues(&dnssec_with("interval = \"10s\"\ntimeout = \"11s\"\n"));
    assert_issue(
        &timeout,
        "service[0].check[0].timeout",
        "11s is longer than service[0].check[0].interval 10s",
    );
    assert_hint(
        &timeout,
        "service[0].check[0].timeout",
        "lower the timeout or raise the interval",
    );
}

/// BIRD_EXAMPLE with `service` keys after `announce` and `check` keys at the end of its check, plus a
/// serial check (zone sweeps ignore the service's `confirm_timeout`).
fn with_confirm(service: &str, check: &str) -> String {
    BIRD_EXAMPLE
        .replace(
            "degrade = [\"anycast_dns_prepend\"]",
            &format!("degrade = [\"anycast_dns_prepend\"]\n{service}"),
        )
        .replace(
            "qname = \"example.com\"",
            &format!(
                "qname = \"example.com\"\n{check}\n\n[[service.check]]\nname = \"fresh\"\ntype = \"serial\"\n\
                 local = \"127.0.0.1:53\"\nreference = \"192.0.2.1\"\nmax_lag = 10\nzones = [\"example.com\"]"
            ),
        )
}

#[test]
fn fast_confirmation_defaults_to_20ms_apart_with_an_auto_timeout() {
    let config = ok(&with_confirm("", ""));
    let service = &config.services[0];
    assert_eq!(service.confirm_interval, Some(Duration::from_millis(20)));
    assert_eq!(service.checks[0].timeout, Duration::from_millis(500));
    assert_eq!(service.checks[0].confirm_timeout, ConfirmTimeout::Auto);
    assert_eq!(service.checks[1].confirm_timeout, ConfirmTimeout::Auto);
}

#[test]
fn confirm_timeout_is_auto_or_a_duration_from_the_service_or_the_check() {
    let config = ok(&with_confirm(
        "confirm_timeout = \"100ms\"",
        "confirm_timeout = \"auto\"",
    ));
    assert_eq!(
        config.services[0].checks[0].confirm_timeout,
        ConfirmTimeout::Auto
    );
    let config = ok(&with_confirm("confirm_timeout = \"100ms\"", ""));
    assert_eq!(
        config.services[0].checks[0].confirm_timeout,
        ConfirmTimeout::Fixed(Duration::from_millis(100))
    );
    // The serial check keeps its full timeout: the service's value does not apply to sweeps.
    assert_eq!(
        config.services[0].checks[1].confirm_timeout,
        ConfirmTimeout::Auto
    );
    let config = ok(&with_confirm("", "confirm_timeout = \"500ms\""));
    assert_eq!(
        config.services[0].checks[0].confirm_timeout,
        ConfirmTimeout::Fixed(Duration::from_millis(500))
    );
}

#[test]
fn a_confirm_timeout_must_be_more_than_zero_and_at_most_the_checks_timeout() {
    let found = issues(&with_confirm("", "confirm_timeout = \"0s\""));
    assert_issue(
        &found,
        "service[0].check[0].confirm_timeout",
        "would fail every confirmation probe",
    );
    let found = issues(&with_confirm("", "confirm_timeout = \"soon\""));
    assert_issue(
        &found,
        "service[0].check[0].confirm_timeout",
        "neither \"auto\" nor a duration",
    );
    let found = issues(&with_confirm("", "confirm_timeout = \"600ms\""));
    assert_issue(
        &found,
        "service[0].check[0].confirm_timeout",
        "longer than the timeout 500ms of service[0].check[0] (\"soa\")",
    );
    // Written at the service: the error names the service's key, and the check it does not fit.
    let found = issues(&with_confirm(
        "timeout = \"200ms\"\nconfirm_timeout = \"300ms\"",
        "",
    ));
    assert_issue(
        &found,
        "service[0].confirm_timeout",
        "longer than the timeout 200ms of service[0].check[0] (\"soa\")",
    );
    assert_eq!(
        found.len(),
        1,
        "the serial check is not affected: {found:?}"
    );
    // A zone sweep's own confirm_timeout is rejected: sweeps always keep their timeout.
    let found = issues(&with_confirm("", "").replace(
        "zones = [\"example.com\"]",
        "zones = [\"example.com\"]\nconfirm_timeout = \"100ms\"",
    ));
    assert_issue(
        &found,
        "service[0].check[1].confirm_timeout",
        "only applies to type = \"query\" checks",
    );
}
