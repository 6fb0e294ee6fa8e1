//! Test support for the daemon tests: one node = a real Knot, a real BIRD 2 and the real `nsbeacon`
//! binary, each in its own temp dir with free ports.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use nsbeacon_testkit::bird::BirdDaemon;
use nsbeacon_testkit::knot::{KnotConfig, KnotServer, Zone};
use nsbeacon_testkit::{DaemonGuard, free_port, wait_until};

/// Long enough for start-up + rise on a loaded 2-core machine; short enough to fail fast.
pub const WAIT: Duration = Duration::from_secs(15);

pub const BIRD_CONF: &str = "\
router id 192.0.2.2;
protocol device {}
protocol static anycast_dns { ipv4; route 203.0.113.53/32 blackhole; }
protocol static anycast_degraded { ipv4; route 203.0.113.54/32 blackhole; }
protocol static anycast_second { ipv4; route 203.0.113.55/32 blackhole; }
";

/// One node: Knot, BIRD, and (when started) nsbeacon, all in temp dirs.
pub struct Node {
    pub knot: KnotServer,
    pub bird: BirdDaemon,
    pub dir: tempfile::TempDir,
    pub http: SocketAddr,
    pub nsbeacon: Option<DaemonGuard>,
    /// `[log] format` written into the config (`text` or `json`).
    pub log_format: &'static str,
}

pub fn service_block(
    name: &str,
    announce: &str,
    degrade: Option<&str>,
    knot: SocketAddr,
) -> String {
    let degrade = degrade
        .map(|d| format!("degrade = [\"{d}\"]\n"))
        .unwrap_or_default();
    format!(
        r#"
[[service]]
name = "{name}"
announce = ["{announce}"]
{degrade}interval = "300ms"
rise = 3
fall = 3
jitter = "20ms"

[[service.check]]
name = "soa"
type = "query"
target = "{knot}"
qname = "example.com."
qtype = "SOA"
timeout = "250ms"
identity = "nsid"
"#
    )
}

impl Node {
    pub fn new() -> Node {
        let knot = KnotServer::start(
            KnotConfig::new()
                .with_nsid("test-node")
                .with_zone(Zone::new("example.com.", 2024010101)),
        );
        let bird = BirdDaemon::start(BIRD_CONF, None);
        let dir = tempfile::Builder::new()
            .prefix("nsbeacon-daemon-test-")
            .tempdir()
            .expect("temp dir");
        let http = SocketAddr::from(([127, 0, 0, 1], free_port()));
        Node {
            knot,
            bird,
            dir,
            http,
            nsbeacon: None,
            log_format: "text",
        }
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("nsbeacon.toml")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("nsbeacon.log")
    }

    /// The top of the config: backend, http, state dir, fast reconcile.
    pub fn header(&self, extra: &str) -> String {
        format!(
            r#"state_dir = "{state}"
reconcile_interval = "200ms"
{extra}

[backend]
kind = "bird"
socket = "{socket}"
timeout = "1s"

[http]
listen = "{http}"

[log]
level = "info"
format = "{log_format}"
"#,
            state = self.dir.path().join("state").display(),
            socket = self.bird.socket().display(),
            http = self.http,
            log_format = self.log_format,
        )
    }

    /// Writes the standard config: one service `dns` announcing `anycast_dns`, degrading to
    /// `anycast_degraded`.
    pub fn write_config(&self, extra_top: &str, extra_services: &str) {
        self.write_config_with_checks(extra_top, "", extra_services);
    }

    /// Like [`write_config`](Self::write_config), with extra `[[service.check]]` blocks for `dns`.
    pub fn write_config_with_checks(
        &self,
        extra_top: &str,
        extra_checks: &str,
        extra_services: &str,
    ) {
        let text = format!(
            "{}{}{}{}",
            self.header(extra_top),
            service_block(
                "dns",
                "anycast_dns",
                Some("anycast_degraded"),
                self.knot.addr()
            ),
            extra_checks,
            extra_services
        );
        std::fs::write(self.config_path(), text).expect("write config");
    }

    /// Starts nsbeacon. Callers wait for a service state through `/status` before asserting on BIRD:
    /// BIRD enables every protocol from its own config, so "up" in BIRD alone proves nothing.
    pub fn start(&mut self) {
        self.start_with_env(&[]);
    }

    /// [`start`](Self::start) with extra environment variables (e.g. systemd's `NOTIFY_SOCKET`).
    pub fn start_with_env(&mut self, env: &[(&str, &str)]) {
        // Another test process may grab our free port between free_port() and nsbeacon's bind (Knot and
        // BIRD of parallel test binaries): on that bind error, move to a new port and try again.
        for attempt in 0..3 {
            let log_before = self.log().len();
            self.spawn(env);
            let http = self.http;
            let guard = self.nsbeacon.as_mut().expect("spawned");
            let pid = u64::from(guard.pid());
            // Ours answers (the pid in /status is ours: a colliding nsbeacon of another test process
            // could answer on the same port), or it exited.
            wait_until(WAIT, || {
                let ours = nsbeacon::cli::http_get(http, "/status")
                    .ok()
                    .and_then(|(_, body)| serde_json::from_str::<serde_json::Value>(&body).ok())
                    .is_some_and(|doc| doc["daemon"]["pid"].as_u64() == Some(pid));
                ours || !guard.is_running()
            });
            if guard.is_running() {
                return;
            }
            let new_output = self.log().get(log_before..).unwrap_or("").to_owned();
            if attempt == 2 || !new_output.contains("cannot listen on") {
                return;
            }
            let old = self.http.to_string();
            self.http = SocketAddr::from(([127, 0, 0, 1], free_port()));
            let config = std::fs::read_to_string(self.config_path()).expect("read config");
            std::fs::write(
                self.config_path(),
                config.replace(&old, &self.http.to_string()),
            )
            .expect("rewrite config");
        }
    }

    /// Spawns nsbeacon once, without waiting for it (for tests of start-up failures).
    pub fn spawn(&mut self, env: &[(&str, &str)]) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_nsbeacon"));
        cmd.arg("-c").arg(self.config_path()).arg("run");
        cmd.env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .env_remove("RUST_LOG");
        cmd.envs(env.iter().copied());
        self.nsbeacon = Some(DaemonGuard::spawn("nsbeacon", cmd, Some(&self.log_path())));
    }

    pub fn guard(&mut self) -> &mut DaemonGuard {
        self.nsbeacon.as_mut().expect("nsbeacon started")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn state(&self, protocol: &str) -> Option<String> {
        self.bird.protocol_state(protocol)
    }

    /// Waits until BIRD reports `protocol` in `state`; panics with both logs otherwise.
    pub fn expect_protocol(&self, protocol: &str, state: &str, why: &str) {
        assert!(
            self.bird.wait_protocol_state(protocol, state, WAIT),
            "{why}: BIRD protocol {protocol} is {:?}, expected {state}\n--- nsbeacon log ---\n{}",
            self.state(protocol),
            self.log()
        );
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_nsbeacon"))
            .arg("-c")
            .arg(self.config_path())
            .args(args)
            .output()
            .expect("run nsbeacon CLI")
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        nsbeacon::cli::http_get(self.http, path)
            .unwrap_or_else(|e| panic!("GET {path}: {e}\n--- nsbeacon log ---\n{}", self.log()))
    }

    pub fn status(&self) -> serde_json::Value {
        let (code, body) = self.get("/status");
        assert_eq!(code, 200, "/status: {body}");
        serde_json::from_str(&body).expect("/status is JSON")
    }

    pub fn service_state(&self, service: &str) -> Option<String> {
        let (code, body) = nsbeacon::cli::http_get(self.http, "/status").ok()?;
        if code != 200 {
            return None;
        }
        let doc: serde_json::Value = serde_json::from_str(&body).ok()?;
        doc["services"]
            .as_array()?
            .iter()
            .find(|s| s["name"] == service)
            .and_then(|s| s["state"].as_str().map(str::to_owned))
    }

    pub fn expect_service(&self, service: &str, state: &str) {
        assert!(
            wait_until(WAIT, || self.service_state(service).as_deref()
                == Some(state)),
            "service {service} is {:?}, expected {state}\n--- nsbeacon log ---\n{}",
            self.service_state(service),
            self.log()
        );
    }

    /// [`since`](Self::since) once it has settled: BIRD can stamp a protocol twice within a few ms as it
    /// comes up (protocol, then channel), so take a value that stays the same for 300 ms.
    pub fn stable_since(&self, protocol: &str) -> String {
        let deadline = std::time::Instant::now() + WAIT;
        let mut last = self.since(protocol);
        loop {
            std::thread::sleep(Duration::from_millis(300));
            let now = self.since(protocol);
            if now == last || std::time::Instant::now() > deadline {
                return now;
            }
            last = now;
        }
    }

    /// Asserts that `protocol` has not changed state since BIRD's `Since` stamp `before`. BIRD may stamp
    /// a protocol twice within a few milliseconds as it comes up (protocol, then channel), so a stamp at
    /// most 100 ms later counts as the same event; a real flip is stamped when it happens, much later.
    pub fn assert_no_flip(&self, protocol: &str, before: &str, why: &str) {
        let after = self.since(protocol);
        let same = match (stamp_ms(before), stamp_ms(&after)) {
            (Some(a), Some(b)) => b >= a && b - a < 100.0,
            _ => after == before,
        };
        assert!(
            same,
            "{why}: BIRD stamped {protocol} {before} before and {after} now\n--- nsbeacon log ---\n{}",
            self.log()
        );
    }

    /// The `Since` column of BIRD's `show protocols "NAME"` (changes whenever the protocol flips).
    pub fn since(&self, protocol: &str) -> String {
        let reply = self.bird.command(&format!("show protocols \"{protocol}\""));
        reply
            .lines()
            .find_map(|l| l.strip_prefix("1002-").or_else(|| l.strip_prefix("1002 ")))
            .and_then(|row| row.split_whitespace().nth(4).map(str::to_owned))
            .unwrap_or_else(|| panic!("no row for {protocol} in {reply:?}"))
    }
}

pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Milliseconds since midnight of a BIRD `HH:MM:SS.mmm` stamp.
fn stamp_ms(stamp: &str) -> Option<f64> {
    let mut parts = stamp.split(':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    Some(((h * 60.0 + m) * 60.0 + s) * 1000.0)
}
