//! Free ports on loopback.

use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicU16, Ordering};

/// A port on 127.0.0.1 free for both UDP and TCP right now.
///
/// Ports are handed out from a per-process rotating start point so that parallel tests in one binary do
/// not race for the same port between this call and the daemon's bind. They stay below Linux's ephemeral
/// range (32768 and up by default), so that a probe's own socket can never take the port of a daemon
/// that a test is restarting.
pub fn free_port() -> u16 {
    const FIRST: u16 = 15_000;
    const END: u16 = 32_768;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    if NEXT.load(Ordering::Relaxed) == 0 {
        let seed = FIRST + (std::process::id() % u32::from(END - FIRST)) as u16;
        let _ = NEXT.compare_exchange(0, seed, Ordering::Relaxed, Ordering::Relaxed);
    }
    for _ in FIRST..END {
        let mut port = NEXT.fetch_add(1, Ordering::Relaxed);
        if !(FIRST..END).contains(&port) {
            NEXT.store(FIRST + 1, Ordering::Relaxed);
            port = FIRST;
        }
        let tcp = TcpListener::bind((Ipv4Addr::LOCALHOST, port));
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, port));
        if tcp.is_ok() && udp.is_ok() {
            return port;
        }
    }
    panic!("no free port on 127.0.0.1 between {FIRST} and {END}");
}
