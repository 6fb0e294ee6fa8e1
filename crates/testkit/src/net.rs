//! Free ports on loopback.

use std::io::Write;
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU16, Ordering};

use crate::process::is_alive;

/// The first port handed out.
const FIRST: u16 = 15_000;
/// One past the last port handed out: Linux's ephemeral range starts here by default.
const END: u16 = 32_768;

/// A port on 127.0.0.1 free for both UDP and TCP right now, and claimed for this process.
///
/// Between this call and the daemon's bind the port is only "free", not held, so two callers must never be
/// handed the same one. Within a process a rotating counter sees to that; across processes (cargo-nextest
/// runs every test in its own process, several at once) each port is also claimed with a file in
/// [`claims_dir`] created exclusively and holding the claimer's PID. A claim whose process has exited is
/// stale and taken over. Ports stay below Linux's ephemeral range, so that a probe's own socket can never
/// take the port of a daemon that a test is restarting.
pub fn free_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    if NEXT.load(Ordering::Relaxed) == 0 {
        // Spread the processes' start points over the range (Knuth's multiplicative hash of the PID), so that
        // test processes with consecutive PIDs do not all contend for the same ports.
        let spread = std::process::id().wrapping_mul(2_654_435_761) % u32::from(END - FIRST);
        let seed = FIRST + u16::try_from(spread).unwrap_or(0);
        let _ = NEXT.compare_exchange(0, seed, Ordering::Relaxed, Ordering::Relaxed);
    }
    let dir = claims_dir();
    let _ = std::fs::create_dir_all(&dir);
    for _ in FIRST..END {
        let mut port = NEXT.fetch_add(1, Ordering::Relaxed);
        if !(FIRST..END).contains(&port) {
            NEXT.store(FIRST + 1, Ordering::Relaxed);
            port = FIRST;
        }
        let tcp = TcpListener::bind((Ipv4Addr::LOCALHOST, port));
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, port));
        if tcp.is_ok() && udp.is_ok() && claim(&dir, port) {
            return port;
        }
    }
    panic!("no free port on 127.0.0.1 between {FIRST} and {END}");
}

/// Where the port claims of the test processes live: one file per port, named after it.
pub fn claims_dir() -> PathBuf {
    std::env::temp_dir().join("nsbeacon-test-ports")
}

/// Claims `port` for this process: creates `dir/port` exclusively with this PID in it, or takes over a
/// claim whose process is gone. False when a live process other than this one holds it.
fn claim(dir: &Path, port: u16) -> bool {
    let path = dir.join(port.to_string());
    let me = std::process::id();
    for _ in 0..2 {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut file) => return writeln!(file, "{me}").is_ok(),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                // A claim being written right now reads empty: treat it as live.
                let holder = std::fs::read_to_string(&path)
                    .ok()
                    .and_then(|s| s.trim().parse::<u32>().ok());
                match holder {
                    Some(pid) if pid == me => return true,
                    Some(pid) if !is_alive(pid) => {
                        let _ = std::fs::remove_file(&path);
                    }
                    _ => return false,
                }
            }
            // No claims directory (read-only temp dir): fall back to the in-process rotation alone.
            Err(_) => return true,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_is_claimed_once_and_a_dead_claim_is_taken_over() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(claim(dir.path(), 20_001));
        // Claimed by this process: still ours.
        assert!(claim(dir.path(), 20_001));
        // Claimed by a live other process (PID 1 always runs): not ours.
        std::fs::write(dir.path().join("20002"), "1\n").expect("write claim");
        assert!(!claim(dir.path(), 20_002));
        // Claimed by a process that no longer exists: taken over.
        let mut gone = std::process::Command::new("true")
            .spawn()
            .expect("spawn true");
        let gone_pid = gone.id();
        gone.wait().expect("reap");
        std::fs::write(dir.path().join("20003"), format!("{gone_pid}\n")).expect("write claim");
        assert!(claim(dir.path(), 20_003));
        let holder = std::fs::read_to_string(dir.path().join("20003")).expect("read claim");
        assert_eq!(holder.trim(), std::process::id().to_string());
    }

    #[test]
    fn free_ports_are_distinct_and_claimed() {
        let a = free_port();
        let b = free_port();
        assert_ne!(a, b);
        for port in [a, b] {
            let holder =
                std::fs::read_to_string(claims_dir().join(port.to_string())).expect("claim file");
            assert_eq!(holder.trim(), std::process::id().to_string());
        }
    }
}
