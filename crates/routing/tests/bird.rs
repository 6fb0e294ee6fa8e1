//! The BIRD backend against a real BIRD 2 (Debian `bird2`) started per test in a temp dir, plus fake
//! sockets for the failures a real BIRD cannot be made to produce on demand (garbage, stalls).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nsbeacon_routing::bird::{
    BirdBackend, BirdConfig, BirdError, BirdLogEvent, BirdLogWatch, Phase, ProtocolState,
    ToggleOutcome,
};
use nsbeacon_routing::{
    BirdProtocolName, BirdProtocolNameError, RouteState, RouteTarget, RoutingBackend, RoutingError,
};
use nsbeacon_testkit::bird::BirdDaemon;
use nsbeacon_testkit::netns::{Netns, Veth};
use nsbeacon_testkit::process::{child_line, group_id, rerun_test_as_nobody};
use nsbeacon_testkit::{Signal, free_port};

const TIMEOUT: Duration = Duration::from_secs(2);

fn name(s: &str) -> BirdProtocolName {
    s.parse().expect("valid protocol name")
}

fn target(s: &str) -> RouteTarget {
    RouteTarget::BirdProtocol(name(s))
}

fn backend(socket: &Path, timeout: Duration) -> BirdBackend {
    BirdBackend::new(BirdConfig {
        socket: socket.to_owned(),
        timeout,
        decision_dir: None,
    })
    .expect("valid config")
}

/// A node BIRD: two static protocols (one needing apostrophes in bird.conf) and, when given, a BGP session
/// to `upstream` (ports on loopback) exporting the static prefix, plus a BGP protocol whose neighbor never
/// answers.
fn node_config(bgp: Option<(u16, u16)>) -> String {
    let mut conf = String::from(
        "router id 192.0.2.2;\n\
         protocol device {}\n\
         protocol static anycast_dns { ipv4; route 203.0.113.53/32 blackhole; }\n\
         protocol static 'anycast-dns.v6' { ipv6; route 2001:db8::53/128 blackhole; }\n",
    );
    if let Some((local, remote)) = bgp {
        conf.push_str(&format!(
            "protocol bgp upstream1 {{ local 127.0.0.1 port {local} as 65001; neighbor 127.0.0.2 port {remote} as 64496; \
             multihop; hold time 6; connect retry time 1; ipv4 {{ import none; export where proto = \"anycast_dns\"; }}; }}\n\
             protocol bgp silent_peer {{ local 127.0.0.1 port {local} as 65001; neighbor 127.0.0.3 port {silent} as 64497; \
             multihop; ipv4 {{ import none; export none; }}; }}\n",
            silent = free_port(),
        ));
    }
    conf
}

fn upstream_config(local: u16, remote: u16) -> String {
    format!(
        "router id 192.0.2.1;\nprotocol device {{}}\n\
         protocol bgp node {{ local 127.0.0.2 port {remote} as 64496; neighbor 127.0.0.1 port {local} as 65001; \
         multihop; hold time 6; connect retry time 1; ipv4 {{ import all; export none; }}; }}\n"
    )
}

fn route_present(bird: &BirdDaemon, prefix: &str) -> bool {
    let reply = bird.command(&format!("show route {prefix}"));
    if reply.starts_with("8001 ") {
        return false;
    }
    assert!(
        reply.contains(prefix),
        "unexpected `show route` reply: {reply}"
    );
    true
}

#[tokio::test]
async fn static_protocol_enable_disable_and_read_back() {
    let bird = BirdDaemon::start(&node_config(None), None);
    let backend = backend(&bird.socket(), TIMEOUT);
    let anycast = target("anycast_dns");

    let read = backend.read(&anycast).await.expect("read");
    assert_eq!(
        read.value.state,
        RouteState::Announced,
        "{}",
        read.value.detail
    );
    assert!(
        read.value
            .detail
            .contains("Static protocol anycast_dns is up"),
        "{}",
        read.value.detail
    );
    assert!(read.elapsed < TIMEOUT);

    let set = backend
        .set(&anycast, RouteState::Withdrawn)
        .await
        .expect("withdraw");
    assert!(set.elapsed > Duration::ZERO && set.elapsed < TIMEOUT);
    assert!(
        !route_present(&bird, "203.0.113.53/32"),
        "route still in BIRD's table"
    );
    assert_eq!(bird.protocol_state("anycast_dns").as_deref(), Some("down"));
    let read = backend.read(&anycast).await.expect("read");
    assert_eq!(read.value.state, RouteState::Withdrawn);
    assert!(
        read.value.detail.contains("is down"),
        "{}",
        read.value.detail
    );

    // Idempotent: withdrawing again succeeds and says nothing changed.
    backend
        .set(&anycast, RouteState::Withdrawn)
        .await
        .expect("withdraw again");
    let again = backend
        .disable(&name("anycast_dns"))
        .await
        .expect("disable");
    assert_eq!(again.value, ToggleOutcome::AlreadyInState);

    backend
        .set(&anycast, RouteState::Announced)
        .await
        .expect("announce");
    assert!(route_present(&bird, "203.0.113.53/32"));
    assert_eq!(
        backend.read(&anycast).await.expect("read").value.state,
        RouteState::Announced
    );
    let again = backend.enable(&name("anycast_dns")).await.expect("enable");
    assert_eq!(again.value, ToggleOutcome::AlreadyInState);

    // A name that needs apostrophes in bird.conf, given bare.
    let v6 = name("anycast-dns.v6");
    assert_eq!(
        backend.disable(&v6).await.expect("disable").value,
        ToggleOutcome::Changed
    );
    assert!(!route_present(&bird, "2001:db8::53/128"));
    let row = backend.protocol(&v6).await.expect("row").value;
    assert_eq!(
        (row.protocol.as_str(), row.state),
        ("Static", ProtocolState::Down)
    );
    assert_eq!(
        backend.enable(&v6).await.expect("enable").value,
        ToggleOutcome::Changed
    );
    assert!(route_present(&bird, "2001:db8::53/128"));
    // The other protocol was not touched.
    assert!(route_present(&bird, "203.0.113.53/32"));
}

#[tokio::test]
async fn bgp_protocol_enable_disable_read_back_and_health() {
    let (node_port, upstream_port) = (free_port(), free_port());
    let node = BirdDaemon::start(&node_config(Some((node_port, upstream_port))), None);
    let upstream = BirdDaemon::start(&upstream_config(node_port, upstream_port), None);
    assert!(
        node.wait_protocol_state("upstream1", "up", Duration::from_secs(30)),
        "BGP session did not come up:\n{}\n{}",
        node.command("show protocols all upstream1"),
        upstream.command("show protocols all node")
    );
    let backend = backend(&node.socket(), TIMEOUT);

    let health = backend.health().await;
    assert!(health.reachable, "{health:?}");
    assert!(health.error.is_none(), "{health:?}");
    assert!(
        health
            .daemon_version
            .as_deref()
            .is_some_and(|v| v.starts_with("BIRD 2.")),
        "{health:?}"
    );
    assert_eq!(
        (health.sessions_up, health.sessions_total),
        (1, 2),
        "{health:?}"
    );

    // The upstream learns the prefix while the static protocol is up, and loses it when it is disabled.
    assert!(nsbeacon_testkit::wait_until(
        Duration::from_secs(10),
        || route_present(&upstream, "203.0.113.53/32")
    ));
    backend
        .set(&target("anycast_dns"), RouteState::Withdrawn)
        .await
        .expect("withdraw");
    assert!(nsbeacon_testkit::wait_until(Duration::from_secs(5), || {
        !route_present(&upstream, "203.0.113.53/32")
    }));
    assert_eq!(
        node.protocol_state("upstream1").as_deref(),
        Some("up"),
        "session must stay up"
    );
    backend
        .set(&target("anycast_dns"), RouteState::Announced)
        .await
        .expect("announce");
    assert!(nsbeacon_testkit::wait_until(Duration::from_secs(5), || {
        route_present(&upstream, "203.0.113.53/32")
    }));

    // The classic pattern: disable the BGP protocol itself.
    let bgp = target("upstream1");
    let read = backend.read(&bgp).await.expect("read");
    assert_eq!(
        read.value.state,
        RouteState::Announced,
        "{}",
        read.value.detail
    );
    assert!(
        read.value.detail.contains("BGP protocol upstream1 is up"),
        "{}",
        read.value.detail
    );
    assert!(
        read.value.detail.contains("Established"),
        "{}",
        read.value.detail
    );
    backend
        .set(&bgp, RouteState::Withdrawn)
        .await
        .expect("disable bgp");
    let read = backend.read(&bgp).await.expect("read");
    assert_eq!(
        read.value.state,
        RouteState::Withdrawn,
        "{}",
        read.value.detail
    );
    // BGP passes through `stop` (closing the session) and `flush` on its way `down`.
    assert!(
        ["is stop", "is flush", "is down"]
            .iter()
            .any(|s| read.value.detail.contains(s)),
        "{}",
        read.value.detail
    );
    assert!(node.wait_protocol_state("upstream1", "down", Duration::from_secs(5)));
    let read = backend.read(&bgp).await.expect("read");
    assert!(
        read.value.detail.contains("is down"),
        "{}",
        read.value.detail
    );
    assert!(nsbeacon_testkit::wait_until(Duration::from_secs(5), || {
        !route_present(&upstream, "203.0.113.53/32")
    }));
    let health = backend.health().await;
    assert_eq!(
        (health.sessions_up, health.sessions_total),
        (0, 2),
        "{health:?}"
    );
    backend
        .set(&bgp, RouteState::Withdrawn)
        .await
        .expect("disable again is a no-op");

    backend
        .set(&bgp, RouteState::Announced)
        .await
        .expect("enable bgp");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let read = backend.read(&bgp).await.expect("read");
        if read.value.state == RouteState::Announced {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "session not re-established: {}",
            read.value.detail
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(nsbeacon_testkit::wait_until(
        Duration::from_secs(10),
        || route_present(&upstream, "203.0.113.53/32")
    ));

    // Enabled but never established: not announcing.
    let silent = backend.read(&target("silent_peer")).await.expect("read");
    assert_eq!(silent.value.state, RouteState::Withdrawn);
    assert!(
        silent.value.detail.contains("is start"),
        "{}",
        silent.value.detail
    );
}

#[tokio::test]
async fn bird_in_network_namespaces_withdraws_at_the_upstream() {
    // The lab topology: node and upstream BIRD in their own namespaces on a veth pair, direct eBGP.
    // Declared first, dropped last: the daemons die before their namespaces go.
    let node_ns = Netns::create("bnode").expect("node namespace");
    let upstream_ns = Netns::create("bup").expect("upstream namespace");
    Veth::create(&node_ns, "up0", &upstream_ns, "node0").expect("veth");
    node_ns
        .add_address("up0", "192.0.2.2/30")
        .expect("node address");
    upstream_ns
        .add_address("node0", "192.0.2.1/30")
        .expect("upstream address");
    let node = BirdDaemon::start(
        "router id 192.0.2.2;\nprotocol device {}\n\
         protocol static anycast_dns { ipv4; route 203.0.113.53/32 blackhole; }\n\
         protocol bgp upstream { local 192.0.2.2 as 65001; neighbor 192.0.2.1 as 64496; \
         connect retry time 1; ipv4 { import none; export where proto = \"anycast_dns\"; }; }\n",
        Some(node_ns.name()),
    );
    let upstream = BirdDaemon::start(
        "router id 192.0.2.1;\nprotocol device {}\n\
         protocol bgp node { local 192.0.2.1 as 64496; neighbor 192.0.2.2 as 65001; \
         connect retry time 1; ipv4 { import all; export none; }; }\n",
        Some(upstream_ns.name()),
    );
    assert_eq!(node.netns(), Some(node_ns.name()));
    assert!(
        node.wait_protocol_state("upstream", "up", Duration::from_secs(30)),
        "BGP session did not come up:\n{}",
        node.command("show protocols all upstream")
    );
    // The control socket is a file: reachable from the root namespace.
    let backend = backend(&node.socket(), TIMEOUT);
    assert_eq!(backend.health().await.sessions_up, 1);
    assert!(nsbeacon_testkit::wait_until(
        Duration::from_secs(10),
        || { route_present(&upstream, "203.0.113.53/32") }
    ));
    backend
        .set(&target("anycast_dns"), RouteState::Withdrawn)
        .await
        .expect("withdraw");
    assert!(nsbeacon_testkit::wait_until(Duration::from_secs(5), || {
        !route_present(&upstream, "203.0.113.53/32")
    }));
    backend
        .set(&target("anycast_dns"), RouteState::Announced)
        .await
        .expect("announce");
    assert!(nsbeacon_testkit::wait_until(Duration::from_secs(5), || {
        route_present(&upstream, "203.0.113.53/32")
    }));
}

#[tokio::test]
async fn unknown_protocols_are_clear_errors_and_never_patterns() {
    let bird = BirdDaemon::start(&node_config(None), None);
    let backend = backend(&bird.socket(), TIMEOUT);
    for unknown in ["nosuchproto", "master4", "all", "anycast"] {
        let err = backend
            .set(&target(unknown), RouteState::Withdrawn)
            .await
            .expect_err("unknown protocol");
        let RoutingError::Bird(BirdError::UnknownProtocol {
            protocol,
            code,
            socket,
            ..
        }) = &err
        else {
            panic!("expected UnknownProtocol for {unknown}, got {err:?}");
        };
        assert_eq!(protocol.as_str(), unknown);
        assert_eq!(code.value(), 8003);
        assert_eq!(socket, &bird.socket());
        let message = err.to_string();
        assert!(
            message.contains(&format!("no protocol named `{unknown}`")),
            "{message}"
        );
        assert!(
            message.contains(&bird.socket().display().to_string()),
            "{message}"
        );
        let err = backend
            .read(&target(unknown))
            .await
            .expect_err("unknown protocol");
        assert!(
            matches!(err, RoutingError::Bird(BirdError::UnknownProtocol { .. })),
            "{err:?}"
        );
    }
    // `all` and `anycast` were taken literally, not as "every protocol" or a prefix: nothing was disabled.
    assert_eq!(bird.protocol_state("anycast_dns").as_deref(), Some("up"));
    assert_eq!(bird.protocol_state("anycast-dns.v6").as_deref(), Some("up"));
    // The connection survived the errors.
    assert!(backend.health().await.reachable);
}

#[tokio::test]
async fn invalid_names_and_commands_are_rejected_before_the_socket() {
    for (bad, what) in [
        ("anycast*", "pattern"),
        ("any?ast", "pattern"),
        ("\"anycast_dns\"", "quoted"),
        ("anycast_dns\ndisable all", "character"),
        ("anycast dns", "character"),
        ("", "empty"),
    ] {
        let err = bad.parse::<BirdProtocolName>().expect_err(bad);
        let matched = match what {
            "pattern" => matches!(err, BirdProtocolNameError::Pattern { .. }),
            "quoted" => matches!(err, BirdProtocolNameError::Quoted { .. }),
            "character" => matches!(err, BirdProtocolNameError::InvalidCharacter { .. }),
            _ => matches!(err, BirdProtocolNameError::Empty),
        };
        assert!(matched, "{bad:?}: {err:?}");
    }
    // Raw commands are checked before connecting: the socket path does not even exist.
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = backend(&dir.path().join("absent.ctl"), TIMEOUT);
    let err = backend
        .control_socket()
        .command("show status\ndisable all")
        .await
        .expect_err("two lines");
    assert!(matches!(err, BirdError::InvalidCommand { .. }), "{err:?}");
    // Other target kinds are not BIRD's.
    let err = backend
        .set(
            &RouteTarget::FrrNetwork("203.0.113.53/32".parse().expect("net")),
            RouteState::Announced,
        )
        .await
        .expect_err("frr target");
    assert!(
        matches!(
            err,
            RoutingError::UnsupportedTarget {
                backend: "bird",
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn missing_socket_and_dead_bird_are_clear_errors_and_reconnect_after_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("bird.ctl");
    let err = backend(&missing, TIMEOUT)
        .read(&target("anycast_dns"))
        .await
        .expect_err("no socket");
    let RoutingError::Bird(BirdError::SocketMissing { socket }) = &err else {
        panic!("expected SocketMissing, got {err:?}");
    };
    assert_eq!(socket, &missing);
    assert!(
        err.to_string().contains(&missing.display().to_string()),
        "{err}"
    );

    let mut bird = BirdDaemon::start(&node_config(None), None);
    let backend = backend(&bird.socket(), TIMEOUT);
    backend
        .set(&target("anycast_dns"), RouteState::Withdrawn)
        .await
        .expect("withdraw");

    // Crash and restart between two commands: the next command reconnects by itself.
    bird.restart();
    let read = backend
        .read(&target("anycast_dns"))
        .await
        .expect("read after restart");
    // A restarted BIRD starts from its config: the protocol is enabled again (the daemon re-asserts).
    assert_eq!(read.value.state, RouteState::Announced);
    backend
        .set(&target("anycast_dns"), RouteState::Withdrawn)
        .await
        .expect("withdraw after restart");
    assert_eq!(bird.protocol_state("anycast_dns").as_deref(), Some("down"));

    // BIRD down: a bounded, clear error (and health says unreachable), then back once BIRD is.
    bird.kill();
    let start = Instant::now();
    let err = backend
        .read(&target("anycast_dns"))
        .await
        .expect_err("BIRD is down");
    assert!(start.elapsed() < TIMEOUT + Duration::from_millis(500));
    assert!(
        matches!(
            err,
            RoutingError::Bird(BirdError::NotListening { .. } | BirdError::SocketMissing { .. })
        ),
        "{err:?}"
    );
    let health = backend.health().await;
    assert!(!health.reachable, "{health:?}");
    assert!(
        health
            .error
            .as_deref()
            .is_some_and(|e| e.contains("bird.ctl")),
        "{health:?}"
    );
    bird.start_again();
    let read = backend
        .read(&target("anycast_dns"))
        .await
        .expect("read after start");
    assert_eq!(read.value.state, RouteState::Announced);
    assert!(backend.health().await.reachable);
}

#[tokio::test]
async fn bird_stuck_then_killed_mid_command_is_a_bounded_error() {
    let mut bird = BirdDaemon::start(&node_config(None), None);
    let backend = backend(&bird.socket(), Duration::from_millis(800));
    backend.read(&target("anycast_dns")).await.expect("read");
    let slow_backend = self::backend(&bird.socket(), Duration::from_secs(10));
    slow_backend
        .read(&target("anycast_dns"))
        .await
        .expect("read");

    // Frozen BIRD: the command times out within its bound.
    assert!(
        bird.pid()
            .is_some_and(|pid| nsbeacon_testkit::process::signal(pid, Signal::SIGSTOP))
    );
    let start = Instant::now();
    let err = backend
        .set(&target("anycast_dns"), RouteState::Withdrawn)
        .await
        .expect_err("frozen");
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(790) && took < Duration::from_millis(2800),
        "{took:?}"
    );
    assert!(
        matches!(
            &err,
            RoutingError::Bird(BirdError::Timeout { phase: Phase::Receiving, command: Some(c), .. })
                if c == "disable \"anycast_dns\""
        ),
        "{err:?}"
    );

    // Killed while a command waits for its reply: the command ends with an error at once, not at the timeout.
    let pid = bird.pid().expect("pid");
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        nsbeacon_testkit::process::signal(pid, Signal::SIGKILL);
    });
    let start = Instant::now();
    let err = slow_backend
        .read(&target("anycast_dns"))
        .await
        .expect_err("killed");
    killer.join().expect("killer thread");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    // The open connection dies without a reply byte; the one retry on a fresh connection finds nothing
    // listening, or (racing the dying process's teardown) is accepted into the backlog and then reset.
    assert!(
        matches!(
            err,
            RoutingError::Bird(BirdError::NotListening { .. } | BirdError::Disconnected { .. })
        ),
        "{err:?}"
    );
    bird.kill();
    bird.start_again();
    backend
        .read(&target("anycast_dns"))
        .await
        .expect("the next command reconnects");
    slow_backend
        .read(&target("anycast_dns"))
        .await
        .expect("the next command reconnects");
}

/// What a fake control socket does with each connection, in order.
#[derive(Clone, Copy, Debug)]
enum Fake {
    /// Sends bytes instead of a greeting, then waits for the client to go.
    Garbage(&'static [u8]),
    /// Accepts and says nothing.
    Silent,
    /// Greets, reads a command, then sends `reply` and closes.
    GreetThenReplyAndClose(&'static [u8]),
    /// Greets, reads a command, never answers.
    GreetThenStall,
    /// Greets, answers each command with a `show status` reply.
    Bird,
}

struct FakeSocket {
    _dir: Option<tempfile::TempDir>,
    path: PathBuf,
    thread: Option<std::thread::JoinHandle<Vec<String>>>,
}

impl FakeSocket {
    fn serve(script: &'static [Fake]) -> FakeSocket {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut fake = FakeSocket::serve_at(dir.path().join("fake.ctl"), script);
        fake._dir = Some(dir);
        fake
    }

    fn serve_at(path: PathBuf, script: &'static [Fake]) -> FakeSocket {
        let listener = UnixListener::bind(&path).expect("bind");
        let thread = std::thread::spawn(move || {
            let mut commands = Vec::new();
            for step in script {
                let (stream, _) = listener.accept().expect("accept");
                stream
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .expect("timeout");
                let mut writer = stream.try_clone().expect("clone");
                let mut reader = BufReader::new(stream);
                let greet = |w: &mut std::os::unix::net::UnixStream| {
                    w.write_all(b"0001 BIRD 2.0.12 ready.\n").expect("greet")
                };
                let mut line = String::new();
                match step {
                    Fake::Garbage(bytes) => {
                        writer.write_all(bytes).expect("write");
                        let _ = reader.read_to_end(&mut Vec::new());
                    }
                    Fake::Silent | Fake::GreetThenStall => {
                        if matches!(step, Fake::GreetThenStall) {
                            greet(&mut writer);
                            reader.read_line(&mut line).expect("command");
                            commands.push(line.clone());
                        }
                        // Hold the connection until the client gives up and closes it.
                        let _ = reader.read_to_end(&mut Vec::new());
                    }
                    Fake::GreetThenReplyAndClose(reply) => {
                        greet(&mut writer);
                        reader.read_line(&mut line).expect("command");
                        commands.push(line.clone());
                        writer.write_all(reply).expect("reply");
                    }
                    Fake::Bird => {
                        greet(&mut writer);
                        while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                            commands.push(std::mem::take(&mut line));
                            writer
                                .write_all(b"1000-BIRD 2.0.12\n0013 Daemon is up and running\n")
                                .expect("reply");
                        }
                    }
                }
            }
            commands
        });
        FakeSocket {
            _dir: None,
            path,
            thread: Some(thread),
        }
    }

    fn commands(mut self) -> Vec<String> {
        self.thread
            .take()
            .expect("thread")
            .join()
            .expect("fake server")
    }
}

#[tokio::test]
async fn garbage_and_silent_sockets_are_not_bird() {
    let fake = FakeSocket::serve(&[
        Fake::Garbage(b"HTTP/1.1 400 Bad Request\r\n\r\n"),
        Fake::Garbage(b"SSH-2.0-OpenSSH_9.2p1 Debian\r\n"),
        Fake::Silent,
    ]);
    let backend = backend(&fake.path, Duration::from_millis(500));
    for expected in ["HTTP/1.1 400", "SSH-2.0"] {
        let err = backend.health().await;
        assert!(!err.reachable);
        let message = err.error.expect("error");
        assert!(
            message.contains("is not a BIRD control socket"),
            "{message}"
        );
        assert!(message.contains(expected), "{message}");
        assert!(
            message.contains(&fake.path.display().to_string()),
            "{message}"
        );
        // Connect failures back off; let the next attempt through.
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let start = Instant::now();
    let err = backend
        .read(&target("anycast_dns"))
        .await
        .expect_err("silent");
    assert!(start.elapsed() < Duration::from_secs(1));
    assert!(
        matches!(
            err,
            RoutingError::Bird(BirdError::Timeout {
                phase: Phase::Greeting,
                ..
            })
        ),
        "{err:?}"
    );
    drop(backend);
    assert!(
        fake.commands().is_empty(),
        "nothing may be sent before a greeting"
    );
}

#[tokio::test]
async fn garbage_reply_death_mid_reply_and_stall_are_bounded_and_the_next_command_reconnects() {
    let fake = FakeSocket::serve(&[
        Fake::GreetThenReplyAndClose(b"0009-anycast_dns: disabled\nthis is not BIRD\n"),
        Fake::GreetThenReplyAndClose(b"0009-anycast_dns: disabled\n"),
        Fake::GreetThenStall,
        Fake::Bird,
    ]);
    let backend = backend(&fake.path, Duration::from_millis(600));

    let err = backend
        .set(&target("anycast_dns"), RouteState::Withdrawn)
        .await
        .expect_err("garbage");
    assert!(
        matches!(&err, RoutingError::Bird(BirdError::MalformedReply { command: Some(c), .. }) if c == "disable \"anycast_dns\""),
        "{err:?}"
    );
    assert!(err.to_string().contains("this is not BIRD"), "{err}");

    // Dies after the first line of the reply: not retried (the command may have run), a clear error.
    let err = backend
        .set(&target("anycast_dns"), RouteState::Withdrawn)
        .await
        .expect_err("closed");
    assert!(
        matches!(
            err,
            RoutingError::Bird(BirdError::Disconnected {
                phase: Phase::Receiving,
                ..
            })
        ),
        "{err:?}"
    );

    let start = Instant::now();
    let err = backend
        .set(&target("anycast_dns"), RouteState::Withdrawn)
        .await
        .expect_err("stall");
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(590) && took < Duration::from_millis(2600),
        "{took:?}"
    );
    assert!(
        matches!(
            err,
            RoutingError::Bird(BirdError::Timeout {
                phase: Phase::Receiving,
                ..
            })
        ),
        "{err:?}"
    );

    let health = backend.health().await;
    assert!(health.reachable, "{health:?}");
    assert_eq!(health.daemon_version.as_deref(), Some("BIRD 2.0.12"));
    // The fake answers `show protocols` with a status reply: rows missing is fine, no BGP sessions.
    assert_eq!(health.sessions_total, 0);
    drop(backend);
    let commands = fake.commands();
    assert_eq!(
        commands,
        [
            "disable \"anycast_dns\"\n",
            "disable \"anycast_dns\"\n",
            "disable \"anycast_dns\"\n",
            "show status\n",
            "show protocols\n"
        ]
    );
}

#[tokio::test]
async fn failed_connects_back_off_without_blocking_past_the_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bird.ctl");
    let backend = backend(&path, Duration::from_millis(30));
    // A paused clock while the socket is missing (no real I/O to wait for): waiting for the next attempt
    // would show as 30 ms or more, however loaded the machine.
    tokio::time::pause();
    let err = backend.health().await.error.expect("no socket yet");
    assert!(err.contains("does not exist"), "{err}");
    // The next attempt is 50 ms away, beyond this 30 ms budget: the last error comes back without waiting
    // for it.
    let start = tokio::time::Instant::now();
    let again = backend
        .read(&target("anycast_dns"))
        .await
        .expect_err("still backing off");
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert!(
        matches!(again, RoutingError::Bird(BirdError::SocketMissing { .. })),
        "{again:?}"
    );
    tokio::time::resume();
    // Once the backoff has passed and a BIRD is there, the connection comes up (a generous deadline of
    // its own: the fake answers from a thread that a loaded machine may not run within 30 ms).
    let fake = FakeSocket::serve_at(path, &[Fake::Bird]);
    tokio::time::sleep(Duration::from_millis(60)).await;
    let reply = backend
        .control_socket()
        .command_until(
            "show status",
            tokio::time::Instant::now() + Duration::from_secs(5),
        )
        .await
        .expect("connected after the backoff");
    assert!(
        reply.lines().iter().any(|l| l.text == "BIRD 2.0.12"),
        "{reply:?}"
    );
    drop(backend);
    assert_eq!(fake.commands(), ["show status\n"]);
}

/// Runs in a child process as `nobody` (see `permission_denied_names_the_socket_and_its_group`).
const CHILD_SOCKET_ENV: &str = "NSBEACON_TEST_BIRD_CHILD_SOCKET";
const CHILD_EXPECT_ENV: &str = "NSBEACON_TEST_BIRD_CHILD_EXPECT";

async fn permission_child(socket: PathBuf) {
    let expect = std::env::var(CHILD_EXPECT_ENV).expect("expectation");
    let backend = backend(&socket, TIMEOUT);
    let result = backend.read(&target("anycast_dns")).await;
    match expect.as_str() {
        "denied" => {
            let err = result.expect_err("nobody must not reach a root:bird 0660 socket");
            assert!(
                matches!(err, RoutingError::Bird(BirdError::PermissionDenied { .. })),
                "{err:?}"
            );
            println!("CHILD-ERROR: {err}");
        }
        _ => {
            let read = result.expect("a member of the socket's group gets through");
            println!("CHILD-OK: {}", read.value.detail);
        }
    }
}

#[tokio::test]
async fn permission_denied_names_the_socket_and_its_group() {
    if let Ok(socket) = std::env::var(CHILD_SOCKET_ENV) {
        permission_child(PathBuf::from(socket)).await;
        return;
    }
    // Root bypasses file permissions, so the client runs in a child process dropped to `nobody`.
    let bird = BirdDaemon::start(&node_config(None), None);
    let bird_gid = group_id("bird");
    std::fs::set_permissions(bird.dir(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod dir");
    let socket = bird.socket();
    std::os::unix::fs::chown(&socket, Some(0), Some(bird_gid)).expect("chown socket");
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o660))
        .expect("chmod socket");
    let run_child = |group: Option<u32>, expect: &str| {
        rerun_test_as_nobody(
            "permission_denied_names_the_socket_and_its_group",
            group,
            &[
                (CHILD_SOCKET_ENV, &socket),
                (CHILD_EXPECT_ENV, Path::new(expect)),
            ],
        )
    };

    let stdout = run_child(None, "denied");
    let line = child_line(&stdout, "CHILD-ERROR: ");
    assert!(line.contains("permission denied"), "{line}");
    assert!(line.contains(&socket.display().to_string()), "{line}");
    assert!(line.contains("owner root:bird, mode 0660"), "{line}");
    assert!(line.contains("member of group `bird`"), "{line}");

    // Following the hint works: the same user with the socket's group gets through.
    let stdout = run_child(Some(bird_gid), "ok");
    assert!(
        stdout.contains("CHILD-OK: Static protocol anycast_dns is up"),
        "{stdout}"
    );
}

/// The next event from `watch`, skipping errors (BIRD away), within `limit`.
async fn next_event(watch: &mut BirdLogWatch, limit: Duration) -> BirdLogEvent {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, watch.next()).await {
            Ok(Ok(event)) => return event,
            Ok(Err(_)) => continue,
            Err(_) => panic!("no event from the log watch within {limit:?}"),
        }
    }
}

#[tokio::test]
async fn log_watch_hears_a_reconfiguration_and_a_restart() {
    // The templates' way: the protocol is `disabled` in the config and enabled at run time.
    let config = "router id 192.0.2.2;\nprotocol device {}\n\
                  protocol static anycast_dns { disabled; ipv4; route 203.0.113.53/32 blackhole; }\n";
    let mut bird = BirdDaemon::start(config, None);
    let mut watch = BirdLogWatch::new(bird.socket(), TIMEOUT);
    assert_eq!(
        next_event(&mut watch, Duration::from_secs(5)).await,
        BirdLogEvent::Connected
    );
    let backend = backend(&bird.socket(), TIMEOUT);
    backend.enable(&name("anycast_dns")).await.expect("enable");
    // Our own `enable` is logged too: drain it.
    assert!(matches!(
        next_event(&mut watch, Duration::from_secs(5)).await,
        BirdLogEvent::Line(_)
    ));

    // `configure` restarts the protocol in its configured (disabled) state: BIRD's behaviour that makes
    // the watch necessary. The watch hears it.
    let reply = bird.command("configure");
    assert!(reply.contains("0002-"), "configure: {reply}");
    match next_event(&mut watch, Duration::from_secs(5)).await {
        BirdLogEvent::Line(text) => assert!(!text.is_empty()),
        other => panic!("{other:?}"),
    }
    assert!(bird.wait_protocol_state("anycast_dns", "down", Duration::from_secs(5)));

    // A restarted BIRD: the connection breaks, the watch reconnects by itself and says so.
    bird.restart();
    let started = Instant::now();
    loop {
        if next_event(&mut watch, Duration::from_secs(10)).await == BirdLogEvent::Connected {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no reconnect");
    }
    // And keeps hearing the new BIRD.
    backend.enable(&name("anycast_dns")).await.expect("enable");
    assert!(matches!(
        next_event(&mut watch, Duration::from_secs(5)).await,
        BirdLogEvent::Line(_)
    ));
}

/// Issue 17 item 5: after `kill -9` of BIRD, the socket file removed and BIRD started again, the first
/// re-assert must not wait for a backoff window left over from the outage.
///
/// A caller shaped like the daemon's reconciler (retry with its own backoff, 100 ms doubling to 5 s, woken
/// early by a nudge) runs against the backend while a [`BirdLogWatch`] nudges it when it reconnects. Each of
/// 20 trials kills BIRD, removes the socket file, keeps BIRD away for a different time (so the backoff
/// windows are in every phase when it returns) and starts it again; the caller's first successful `enable`
/// must come within 500 ms of the socket file reappearing. The backend's timeout (1 s) is shorter than the
/// longest connect backoff (2 s), so a stale window would show both ways: as a command sleeping in it, and
/// as a command refused at once with the outage's error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reassert_after_bird_crash_and_socket_recreation_is_not_delayed_by_backoff() {
    use std::sync::Arc;
    use tokio::sync::{Notify, mpsc};

    const TRIALS: u32 = 20;
    const BOUND: Duration = Duration::from_millis(500);
    let config = "router id 192.0.2.2;\nprotocol device {}\n\
                  protocol static anycast_dns { disabled; ipv4; route 203.0.113.53/32 blackhole; }\n";
    let mut bird = BirdDaemon::start(config, None);
    let socket = bird.socket();
    let backend = Arc::new(backend(&socket, Duration::from_secs(1)));
    let nudge = Arc::new(Notify::new());
    let kick = Arc::new(Notify::new());
    let stop = Arc::new(Notify::new());

    // The log watch, nudging on every (re)connect as the daemon's does.
    let watcher = tokio::spawn({
        let (socket, nudge, stop) = (socket.clone(), nudge.clone(), stop.clone());
        async move {
            let mut watch = BirdLogWatch::new(socket, TIMEOUT);
            loop {
                tokio::select! {
                    _ = stop.notified() => return,
                    event = watch.next() => if let Ok(BirdLogEvent::Connected) = event {
                        nudge.notify_one();
                    },
                }
            }
        }
    });
    // The reconciler model: after a success it waits for a nudge or a kick (its interval tick); after a
    // failure for its backoff or a nudge.
    let (successes_tx, mut successes) = mpsc::unbounded_channel::<Instant>();
    let caller = tokio::spawn({
        let (backend, nudge, kick, stop) =
            (backend.clone(), nudge.clone(), kick.clone(), stop.clone());
        async move {
            let mut backoff = Duration::from_millis(100);
            loop {
                let result = backend
                    .set(&target("anycast_dns"), RouteState::Announced)
                    .await;
                let wait = if result.is_ok() {
                    let _ = successes_tx.send(Instant::now());
                    backoff = Duration::from_millis(100);
                    None
                } else {
                    let pause = backoff;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    Some(pause)
                };
                tokio::select! {
                    _ = stop.notified() => return,
                    _ = nudge.notified() => {}
                    _ = kick.notified(), if wait.is_none() => {}
                    _ = tokio::time::sleep(wait.unwrap_or_default()), if wait.is_some() => {}
                }
            }
        }
    });

    let mut delays = Vec::new();
    for trial in 0..TRIALS {
        bird.kill();
        match std::fs::remove_file(&socket) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("remove {}: {e}", socket.display()),
        }
        // The reconciler's next tick meets the dead BIRD; BIRD stays away 0.05 to 2.9 s.
        kick.notify_one();
        tokio::time::sleep(Duration::from_millis(50 + u64::from(trial) * 150)).await;
        while successes.try_recv().is_ok() {}
        let starter = tokio::task::spawn_blocking(move || {
            bird.start_again();
            bird
        });
        let appeared = loop {
            if std::fs::symlink_metadata(&socket).is_ok() {
                break Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        let succeeded = tokio::time::timeout(Duration::from_secs(30), successes.recv())
            .await
            .expect("no successful enable within 30 s of BIRD's return")
            .expect("the caller stopped");
        delays.push(succeeded.saturating_duration_since(appeared));
        bird = starter.await.expect("BIRD started again");
        assert!(bird.wait_protocol_state("anycast_dns", "up", Duration::from_secs(5)));
    }
    stop.notify_waiters();
    caller.abort();
    watcher.abort();
    let worst = delays.iter().max().copied().unwrap_or_default();
    eprintln!(
        "re-assert after BIRD's socket reappeared, {TRIALS} trials: worst {worst:?}, all {delays:?}"
    );
    assert!(
        worst <= BOUND,
        "re-assert took up to {worst:?} after the socket reappeared (bound {BOUND:?}): {delays:?}"
    );
}

#[tokio::test]
async fn exports_per_peer_from_a_real_bird() {
    let (node_port, upstream_port) = (free_port(), free_port());
    let node = BirdDaemon::start(&node_config(Some((node_port, upstream_port))), None);
    let _upstream = BirdDaemon::start(&upstream_config(node_port, upstream_port), None);
    assert!(
        node.wait_protocol_state("upstream1", "up", Duration::from_secs(30)),
        "BGP session did not come up:\n{}",
        node.command("show protocols all upstream1")
    );
    let backend = backend(&node.socket(), TIMEOUT);

    // anycast_dns goes to upstream1 (its export filter takes it); silent_peer never establishes.
    let peers = backend
        .exports(&target("anycast_dns"))
        .await
        .expect("exports")
        .value;
    let by_name = |name: &str| {
        peers
            .iter()
            .find(|p| p.session.peer == name)
            .unwrap_or_else(|| panic!("no peer {name} in {peers:?}"))
            .clone()
    };
    assert_eq!(peers.len(), 2, "{peers:?}");
    let up = by_name("upstream1");
    assert!(up.session.established && up.exported, "{up:?}");
    assert_eq!(up.session.state, "Established");
    assert_eq!(up.session.bfd, None, "no BFD protocol runs");
    let silent = by_name("silent_peer");
    assert!(
        !silent.session.established && !silent.exported,
        "{silent:?}"
    );

    // The IPv6 protocol (a name BIRD needs apostrophes for) has no BGP peer of its table: none listed.
    let v6 = backend
        .exports(&target("anycast-dns.v6"))
        .await
        .expect("exports of an apostrophe name")
        .value;
    assert!(v6.is_empty(), "{v6:?}");

    // Withdrawn: its routes are gone, so no peer receives them.
    backend
        .set(&target("anycast_dns"), RouteState::Withdrawn)
        .await
        .expect("withdraw");
    let peers = backend
        .exports(&target("anycast_dns"))
        .await
        .expect("exports")
        .value;
    assert!(peers.iter().all(|p| !p.exported), "{peers:?}");

    // An unknown protocol is the same clear error as for set/read.
    let err = backend
        .exports(&target("anycast_typo"))
        .await
        .expect_err("unknown protocol");
    assert!(err.is_missing_target(), "{err}");
}

/// A node BIRD whose static protocol is `disabled` and includes its decision file like bird-templates/.
fn decision_config(root: &Path) -> String {
    format!(
        "router id 192.0.2.2;\nprotocol device {{}}\n\
         protocol static anycast_dns {{\n  disabled;\n  include \"{}/nsbeaco[n]/bird/anycast_dns.conf\";\n  \
         ipv4;\n  route 203.0.113.53/32 blackhole;\n}}\n",
        root.display()
    )
}

#[tokio::test]
async fn decision_files_survive_configure_fail_closed_and_never_block_a_withdrawal() {
    let root = tempfile::tempdir().expect("tempdir");
    let node = BirdDaemon::start(&decision_config(root.path()), None);
    let dir = root.path().join("nsbeacon/bird");
    let file = dir.join("anycast_dns.conf");
    let with_dir = |decision_dir: PathBuf| {
        BirdBackend::new(BirdConfig {
            socket: node.socket(),
            timeout: TIMEOUT,
            decision_dir: Some(decision_dir),
        })
        .expect("valid config")
    };
    let backend = with_dir(dir.clone());
    assert_eq!(node.protocol_state("anycast_dns").as_deref(), Some("down"));

    // Announce: the file first, then `enable`; a configure keeps it up (config and state agree).
    backend
        .set(&target("anycast_dns"), RouteState::Announced)
        .await
        .expect("announce");
    assert!(
        std::fs::read_to_string(&file)
            .expect("decision file")
            .ends_with("disabled no;\n")
    );
    let since = node.command("show protocols anycast_dns");
    let reply = node.command("configure");
    assert!(reply.lines().any(|l| l.starts_with("0003 ")), "{reply}");
    assert_eq!(node.protocol_state("anycast_dns").as_deref(), Some("up"));
    assert_eq!(
        node.command("show protocols anycast_dns"),
        since,
        "configure restarted the protocol"
    );

    // A stale file (an operator's `birdc disable` while nsbeacon was away) is aligned by the read-back.
    node.command("disable anycast_dns");
    let status = backend.read(&target("anycast_dns")).await.expect("read");
    assert_eq!(status.value.state, RouteState::Withdrawn);
    assert!(
        std::fs::read_to_string(&file)
            .expect("decision file")
            .ends_with("disabled yes;\n")
    );
    let reply = node.command("configure");
    assert!(reply.lines().any(|l| l.starts_with("0003 ")), "{reply}");
    assert_eq!(node.protocol_state("anycast_dns").as_deref(), Some("down"));

    // A decision dir that cannot be written: an announcement fails closed (nothing enabled) ...
    let blocker = root.path().join("not-a-dir");
    std::fs::write(&blocker, "").expect("write");
    let blocked = with_dir(blocker.join("bird"));
    let err = blocked
        .set(&target("anycast_dns"), RouteState::Announced)
        .await
        .expect_err("cannot write the decision file");
    assert!(err.to_string().contains("decision_dir"), "{err}");
    assert_eq!(node.protocol_state("anycast_dns").as_deref(), Some("down"));
    // ... while a withdrawal still disables, and reports the file problem afterwards.
    node.command("enable anycast_dns");
    let err = blocked
        .set(&target("anycast_dns"), RouteState::Withdrawn)
        .await
        .expect_err("the file problem is reported");
    assert!(err.to_string().contains("not-a-dir"), "{err}");
    assert_eq!(node.protocol_state("anycast_dns").as_deref(), Some("down"));

    // A BIRD restart starts what the file says, and no file (a reboot) means disabled.
    backend
        .set(&target("anycast_dns"), RouteState::Announced)
        .await
        .expect("announce");
    let mut node = node;
    node.restart();
    assert!(node.wait_protocol_state("anycast_dns", "up", Duration::from_secs(10)));
    std::fs::remove_dir_all(&dir).expect("clear the decision dir");
    node.restart();
    assert!(node.wait_protocol_state("anycast_dns", "down", Duration::from_secs(10)));
}
