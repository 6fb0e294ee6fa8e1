//! Network namespaces and veth pairs for lab topologies, deleted on drop.
//!
//! A lab test builds its own little network: a few namespaces (`ip netns add`), veth pairs between them and
//! documentation-range addresses on their ends. Names carry the test process's PID and a counter, so tests
//! running in parallel (threads of one binary, or several binaries) never collide, and a namespace left
//! behind by a test process that was SIGKILLed is recognised and removed by the next run.
//!
//! Everything here shells out to `ip` (iproute2): it is what operators use, it needs no unsafe `setns`, and
//! `ip netns exec` execs the program in place, so the PID of the spawned child is the daemon's own PID and a
//! [`crate::DaemonGuard`] can kill it.

use std::ffi::OsStr;
use std::fmt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::process::{Signal, is_alive, signal, wait_until};

/// Prefix of every namespace this module creates; the stale-namespace sweep only ever touches these.
const NAME_PREFIX: &str = "nsblab";

/// Where iproute2 keeps named namespaces.
const NETNS_RUN_DIR: &str = "/run/netns";

/// Why a namespace operation failed: the `ip` command that was run and what it said.
#[derive(Debug)]
pub struct NetnsError {
    /// The command line, for the message.
    command: String,
    /// What went wrong (exit status and stderr, or the spawn error).
    detail: String,
}

impl NetnsError {
    fn new(command: &Command, detail: impl Into<String>) -> NetnsError {
        NetnsError {
            command: format!("{command:?}"),
            detail: detail.into(),
        }
    }
}

impl fmt::Display for NetnsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} failed: {} (network namespaces need root and iproute2; run the tests as root, `scripts/install-deps` installs iproute2)",
            self.command, self.detail
        )
    }
}

impl std::error::Error for NetnsError {}

/// Runs `cmd` to completion, turning a spawn failure or a non-zero exit into a [`NetnsError`].
fn run_checked(mut cmd: Command) -> Result<Output, NetnsError> {
    cmd.stdin(Stdio::null());
    let output = cmd
        .output()
        .map_err(|e| NetnsError::new(&cmd, format!("could not start: {e}")))?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(NetnsError::new(
            &cmd,
            format!(
                "{}: {}{}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim(),
                String::from_utf8_lossy(&output.stdout).trim()
            ),
        ))
    }
}

fn ip_command() -> Command {
    Command::new(crate::require_binary("ip"))
}

/// A network namespace owned by a test. Dropping it kills whatever still runs inside and deletes it.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates a fresh namespace named `nsblab-<role>-<pid>-<counter>` with its loopback up.
    ///
    /// `role` says what the namespace is for (`node`, `upstream`, ...) so `ip netns list` is readable while
    /// debugging; it must be short lowercase ASCII. Stale namespaces of test processes that no longer run
    /// are removed first.
    pub fn create(role: &str) -> Result<Netns, NetnsError> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        sweep_stale();
        let role: String = role
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(12)
            .collect::<String>()
            .to_ascii_lowercase();
        let name = format!(
            "{NAME_PREFIX}-{role}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut add = ip_command();
        add.args(["netns", "add", &name]);
        run_checked(add)?;
        let netns = Netns { name };
        netns.ip(&["link", "set", "lo", "up"])?;
        Ok(netns)
    }

    /// The namespace's name as `ip netns` knows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A `Command` that runs `program` inside this namespace (`ip netns exec NAME program`).
    ///
    /// `ip netns exec` execs the program in place: the spawned child's PID is the program's PID.
    /// Add arguments, environment and stdio to the returned command as usual.
    pub fn exec(&self, program: impl AsRef<OsStr>) -> Command {
        exec_in(&self.name, program)
    }

    /// Runs `program args...` inside the namespace to completion; a non-zero exit is an error.
    pub fn run(&self, program: &str, args: &[&str]) -> Result<Output, NetnsError> {
        let mut cmd = self.exec(program);
        cmd.args(args);
        run_checked(cmd)
    }

    /// Runs `ip -n NAME args...` (configure links, addresses, routes of this namespace).
    pub fn ip(&self, args: &[&str]) -> Result<Output, NetnsError> {
        let mut cmd = ip_command();
        cmd.args(["-n", &self.name]).args(args);
        run_checked(cmd)
    }

    /// Adds `cidr` (e.g. `192.0.2.1/30` or `2001:db8:0:1::1/64`) to `dev`.
    ///
    /// IPv6 addresses are added with `nodad`: duplicate address detection would keep them tentative (and
    /// unusable for binding) for a second or two, and nothing else can use these addresses.
    pub fn add_address(&self, dev: &str, cidr: &str) -> Result<(), NetnsError> {
        if cidr.contains(':') {
            self.ip(&["addr", "add", cidr, "dev", dev, "nodad"])?;
        } else {
            self.ip(&["addr", "add", cidr, "dev", dev])?;
        }
        Ok(())
    }

    /// Sets `dev` up.
    pub fn link_up(&self, dev: &str) -> Result<(), NetnsError> {
        self.ip(&["link", "set", dev, "up"])?;
        Ok(())
    }

    /// PIDs of the processes whose network namespace is this one.
    pub fn pids(&self) -> Vec<u32> {
        let mut cmd = ip_command();
        cmd.args(["netns", "pids", &self.name]);
        match run_checked(cmd) {
            Ok(out) => String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Whether the namespace still exists (it does until this value is dropped).
    pub fn exists(&self) -> bool {
        exists(&self.name)
    }
}

/// [`Netns::exec`] by namespace name, for owners that keep only the name (e.g. to restart a daemon later).
pub fn exec_in(netns: &str, program: impl AsRef<OsStr>) -> Command {
    let mut cmd = ip_command();
    cmd.args(["netns", "exec", netns]).arg(program);
    cmd
}

/// Whether a namespace called `name` exists.
pub fn exists(name: &str) -> bool {
    Path::new(NETNS_RUN_DIR).join(name).exists()
}

/// Kills every process inside namespace `name` (SIGKILL, by PID) and deletes it. Best effort, never panics.
fn destroy(name: &str) {
    let mut pids_cmd = ip_command();
    pids_cmd.args(["netns", "pids", name]);
    if let Ok(out) = run_checked(pids_cmd) {
        let pids: Vec<u32> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        for pid in &pids {
            // These processes run in a namespace this test created: they are the test's own leftovers.
            signal(*pid, Signal::SIGCONT);
            signal(*pid, Signal::SIGKILL);
        }
        wait_until(Duration::from_secs(3), || {
            pids.iter().all(|pid| !is_alive(*pid))
        });
    }
    let mut del = ip_command();
    del.args(["netns", "del", name]);
    let _ = run_checked(del);
}

/// Removes namespaces named by this module for test processes that are no longer alive.
fn sweep_stale() {
    let Ok(entries) = std::fs::read_dir(NETNS_RUN_DIR) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = owner_pid(&name)
            && pid != std::process::id()
            && !is_alive(pid)
        {
            destroy(&name);
        }
    }
}

/// The test PID encoded in a name made by [`Netns::create`], if `name` is one.
fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(NAME_PREFIX)?.strip_prefix('-')?;
    let mut parts = rest.rsplitn(3, '-');
    let _counter: u32 = parts.next()?.parse().ok()?;
    let pid: u32 = parts.next()?.parse().ok()?;
    parts.next()?;
    Some(pid)
}

impl Drop for Netns {
    fn drop(&mut self) {
        destroy(&self.name);
    }
}

/// A veth pair joining two namespaces. It needs no cleanup of its own: the kernel deletes both ends when
/// either namespace goes away.
#[derive(Debug, Clone)]
pub struct Veth {
    /// Interface name of the end in the first namespace.
    pub a_dev: String,
    /// Interface name of the end in the second namespace.
    pub b_dev: String,
}

impl Veth {
    /// Creates a veth pair with end `a_dev` in `a` and end `b_dev` in `b`, both set up.
    ///
    /// The ends are created directly inside their namespaces, so their names only have to be unique within
    /// each namespace (at most 15 characters, a kernel limit), never in the root namespace.
    pub fn create(a: &Netns, a_dev: &str, b: &Netns, b_dev: &str) -> Result<Veth, NetnsError> {
        let mut add = ip_command();
        add.args([
            "link", "add", a_dev, "netns", &a.name, "type", "veth", "peer", "name", b_dev, "netns",
            &b.name,
        ]);
        run_checked(add)?;
        a.link_up(a_dev)?;
        b.link_up(b_dev)?;
        Ok(Veth {
            a_dev: a_dev.to_owned(),
            b_dev: b_dev.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_pid_reads_only_our_names() {
        assert_eq!(owner_pid("nsblab-node-1234-7"), Some(1234));
        assert_eq!(owner_pid("nsblab-upstream-99-0"), Some(99));
        assert_eq!(owner_pid("nsblab--5-0"), Some(5));
        assert_eq!(owner_pid("frrexp7324"), None);
        assert_eq!(owner_pid("nsblab-node-x-1"), None);
        assert_eq!(owner_pid("nsblab-node-12"), None);
        assert_eq!(owner_pid("other-node-1-2"), None);
    }

    #[test]
    fn namespaces_veth_and_exec_work_and_are_deleted_on_drop() {
        let a = Netns::create("ta").expect("create a");
        let b = Netns::create("tb").expect("create b");
        assert_ne!(a.name(), b.name());
        Veth::create(&a, "va", &b, "vb").expect("veth");
        a.add_address("va", "192.0.2.1/30").expect("addr a");
        b.add_address("vb", "192.0.2.2/30").expect("addr b");
        a.add_address("va", "2001:db8:0:1::1/64").expect("addr6 a");
        b.add_address("vb", "2001:db8:0:1::2/64").expect("addr6 b");
        let ping = a
            .run("ping", &["-c", "1", "-W", "2", "192.0.2.2"])
            .expect("ping across the veth");
        assert!(ping.status.success());
        let ping6 = a
            .run("ping", &["-6", "-c", "1", "-W", "2", "2001:db8:0:1::2"])
            .expect("ping6 across the veth");
        assert!(ping6.status.success());
        // The root namespace does not see the lab's addresses.
        let root = Command::new("ip")
            .args(["-o", "addr"])
            .output()
            .expect("ip addr");
        assert!(!String::from_utf8_lossy(&root.stdout).contains("192.0.2.1/30"));

        let mut sleeper = a.exec("sleep").arg("60").spawn().expect("sleep in netns");
        // `ip netns exec` enters the namespace and then execs: poll rather than race it.
        assert!(
            crate::wait_until(std::time::Duration::from_secs(5), || a
                .pids()
                .contains(&sleeper.id())),
            "the process started with exec runs inside the namespace"
        );
        let names = (a.name().to_owned(), b.name().to_owned());
        drop(a);
        drop(b);
        assert!(!exists(&names.0) && !exists(&names.1));
        let status = sleeper.wait().expect("reap sleeper");
        assert!(
            !status.success(),
            "the process left in the namespace was killed"
        );
    }

    #[test]
    fn failing_ip_command_is_an_error_naming_the_command() {
        let a = Netns::create("terr").expect("create");
        let err = a
            .add_address("nosuchdev0", "192.0.2.9/32")
            .expect_err("no such device");
        let msg = err.to_string();
        assert!(msg.contains("nosuchdev0"), "{msg}");
    }
}
