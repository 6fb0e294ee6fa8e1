//! A real etcd v3 for tests: one member or a small cluster, each member with its own data dir in a temp dir,
//! client and peer URLs on 127.0.0.1 with free ports, run in the foreground and owned by a [`DaemonGuard`]
//! so it dies (by PID) with the test.
//!
//! ```no_run
//! use nsbeacon_testkit::etcd::EtcdCluster;
//! let mut etcd = EtcdCluster::start(1);
//! let endpoints = etcd.endpoints(); // ["http://127.0.0.1:<port>"], healthy (a leader, quorum)
//! etcd.kill_member(0); // SIGKILL: clients now time out or get connection refused
//! etcd.restart_member(0); // same ports and data dir: keys and leases are back
//! etcd.wipe_member(0); // a fresh, empty single-member cluster on the same ports (one member only)
//! # let _ = endpoints;
//! ```
//!
//! `start` and the restarts return only once every running member answers `GET /health` with
//! `{"health":"true"}`, so tests need no sleeps. Failures panic with the members' logs (this is test support).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::net::free_port;
use crate::process::{DaemonGuard, require_binary, wait_until};

/// How long a start or restart waits for every member to report healthy. A 3-member cluster on a loaded
/// 2-core machine elects its leader within a second or two; the bound only catches a member that cannot start.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Bound on one `GET /health` exchange.
const HEALTH_TIMEOUT: Duration = Duration::from_millis(500);

/// One member: its name, ports, data dir and (while running) process.
#[derive(Debug)]
struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    guard: Option<DaemonGuard>,
}

/// A running etcd cluster owned by a test. Dropping it kills every member (by PID) and deletes the data dirs.
#[derive(Debug)]
pub struct EtcdCluster {
    // Declared first so the members die before their directory is deleted.
    members: Vec<Member>,
    dir: tempfile::TempDir,
    /// Bumped by [`wipe_member`](Self::wipe_member): a new cluster token, so the wiped member does not
    /// look like the old cluster to a client that cached its id.
    generation: u32,
}

impl EtcdCluster {
    /// Starts a cluster of `members` etcd processes on loopback (1 for most tests, 3 for quorum tests) and
    /// waits until each one is healthy.
    ///
    /// Short raft timings (10 ms heartbeat, 100 ms election) make elections fast on loopback; they also
    /// lower etcd's minimum lease TTL to 150 ms, so tests can use TTLs of a second or two.
    pub fn start(members: usize) -> EtcdCluster {
        assert!(members >= 1, "an etcd cluster needs at least one member");
        require_binary("etcd");
        let dir = tempfile::Builder::new()
            .prefix("nsbeacon-etcd-")
            .tempdir()
            .unwrap_or_else(|e| panic!("create a temp dir for etcd: {e}"));
        let members = (0..members)
            .map(|i| Member {
                name: format!("m{i}"),
                client_port: free_port(),
                peer_port: free_port(),
                guard: None,
            })
            .collect();
        let mut cluster = EtcdCluster {
            members,
            dir,
            generation: 0,
        };
        for index in 0..cluster.members.len() {
            cluster.launch(index);
        }
        cluster.wait_healthy();
        cluster
    }

    /// The client URLs of every member (`http://127.0.0.1:PORT`), running or not, in member order.
    pub fn endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| format!("http://127.0.0.1:{}", m.client_port))
            .collect()
    }

    /// The client address of member `index`.
    pub fn client_addr(&self, index: usize) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.members[index].client_port))
    }

    /// The temp dir that holds every member's data dir and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The PID of member `index`, while it runs.
    pub fn pid(&self, index: usize) -> Option<u32> {
        self.members[index].guard.as_ref().map(DaemonGuard::pid)
    }

    /// Every member's log so far, for assertion messages.
    pub fn logs(&self) -> String {
        self.members
            .iter()
            .map(|m| {
                let text = std::fs::read_to_string(self.log_path(&m.name)).unwrap_or_default();
                format!("--- etcd {} ---\n{text}", m.name)
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Kills member `index` with SIGKILL (a crash) and reaps it. Its data dir stays.
    pub fn kill_member(&mut self, index: usize) {
        if let Some(mut guard) = self.members[index].guard.take() {
            guard.kill();
        }
    }

    /// Sends `sig` to member `index` (e.g. `Signal::SIGSTOP` for an etcd that hangs without closing its
    /// connections, `Signal::SIGCONT` to resume it). Returns false if it is not running.
    pub fn signal_member(&self, index: usize, sig: crate::process::Signal) -> bool {
        self.members[index]
            .guard
            .as_ref()
            .is_some_and(|guard| guard.signal(sig))
    }

    /// Kills every member with SIGKILL.
    pub fn kill_all(&mut self) {
        for index in 0..self.members.len() {
            self.kill_member(index);
        }
    }

    /// Starts member `index` again on its ports and data dir (killing it first if it runs) and waits until
    /// every running member is healthy. Keys and leases survive: etcd extends restored leases by their TTL.
    pub fn restart_member(&mut self, index: usize) {
        self.kill_member(index);
        self.launch(index);
        self.wait_healthy();
    }

    /// Replaces member `index` of a single-member cluster by a fresh, empty one on the same ports: every key
    /// and lease is gone, as after losing etcd's data. Panics for a cluster of more than one member.
    pub fn wipe_member(&mut self, index: usize) {
        assert_eq!(
            self.members.len(),
            1,
            "wipe_member is for single-member clusters"
        );
        self.kill_member(index);
        let data = self.data_dir(&self.members[index].name);
        std::fs::remove_dir_all(&data)
            .unwrap_or_else(|e| panic!("remove etcd data dir {}: {e}", data.display()));
        self.generation += 1;
        self.launch(index);
        self.wait_healthy();
    }

    /// Whether member `index` answers `GET /health` with `{"health":"true"}` (it has a leader and quorum).
    pub fn is_healthy(&self, index: usize) -> bool {
        health(self.client_addr(index))
    }

    fn data_dir(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.etcd"))
    }

    fn log_path(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.log"))
    }

    fn launch(&mut self, index: usize) {
        let initial_cluster = self
            .members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",");
        let member = &self.members[index];
        let data = self.data_dir(&member.name);
        // A member with a data dir rejoins from it; only a fresh member needs the "new" bootstrap.
        let state = if data.exists() { "existing" } else { "new" };
        let client = format!("http://127.0.0.1:{}", member.client_port);
        let peer = format!("http://127.0.0.1:{}", member.peer_port);
        let mut cmd = Command::new(require_binary("etcd"));
        cmd.arg("--name")
            .arg(&member.name)
            .arg("--data-dir")
            .arg(&data)
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &initial_cluster])
            .args(["--initial-cluster-state", state])
            .args([
                "--initial-cluster-token",
                &format!("nsbeacon-test-{}", self.generation),
            ])
            .args(["--heartbeat-interval", "10", "--election-timeout", "100"])
            .args(["--logger", "zap", "--log-outputs", "stderr"]);
        let log = self.log_path(&member.name);
        let guard = DaemonGuard::spawn(&format!("etcd {}", member.name), cmd, Some(&log));
        self.members[index].guard = Some(guard);
    }

    fn wait_healthy(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        for index in 0..self.members.len() {
            let addr = self.client_addr(index);
            let Some(guard) = self.members[index].guard.as_mut() else {
                continue;
            };
            let remaining = deadline.saturating_duration_since(Instant::now());
            let mut exited = false;
            let healthy = wait_until(remaining, || {
                exited = !guard.is_running();
                exited || health(addr)
            });
            if exited || !healthy {
                let why = if exited {
                    "exited during startup"
                } else {
                    "not healthy in time"
                };
                panic!(
                    "etcd {} {why} (after {READY_TIMEOUT:?} at most); logs:\n{}",
                    self.members[index].name,
                    self.logs()
                );
            }
        }
    }
}

/// `GET /health` on an etcd client URL, over a plain TCP stream (no HTTP client dependency).
fn health(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, HEALTH_TIMEOUT) else {
        return false;
    };
    if stream.set_read_timeout(Some(HEALTH_TIMEOUT)).is_err()
        || stream.set_write_timeout(Some(HEALTH_TIMEOUT)).is_err()
    {
        return false;
    }
    let request = format!("GET /health HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut reply = String::new();
    let _ = stream.take(64 * 1024).read_to_string(&mut reply);
    reply.starts_with("HTTP/1.") && reply.contains(" 200 ") && reply.contains("\"health\":\"true\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_starts_healthy_and_dies_with_its_guard() {
        let mut etcd = EtcdCluster::start(1);
        assert!(etcd.is_healthy(0), "{}", etcd.logs());
        let pid = etcd.pid(0).expect("running");
        etcd.kill_member(0);
        assert!(!etcd.is_healthy(0));
        assert!(!crate::process::is_alive(pid));
        etcd.restart_member(0);
        assert!(etcd.is_healthy(0));
        etcd.wipe_member(0);
        assert!(etcd.is_healthy(0));
        let pid = etcd.pid(0).expect("running");
        drop(etcd);
        assert!(
            !crate::process::is_alive(pid),
            "dropping the cluster kills etcd"
        );
    }
}
