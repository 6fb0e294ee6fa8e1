//! Free ports on loopback.

use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicU16, Ordering};

/// A port on 127.0.0.1 free for both UDP and TCP right now.
///
/// Ports are handed out from a per-process rotating start point so that parallel tests in one binary do
/// not race for the same port between this call and the daemon's bind.
pub fn free_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    if NEXT.load(Ordering::Relaxed) == 0 {
        let seed = 20_000 + (std::process::id() % 20_000) as u16;
        let _ = NEXT.compare_exchange(0, seed, Ordering::Relaxed, Ordering::Relaxed);
    }
    for _ in 0..20_000 {
        let mut port = NEXT.fetch_add(1, Ordering::Relaxed);
        if !(20_000..60_000).contains(&port) {
            NEXT.store(20_001, Ordering::Relaxed);
            port = 20_000;
        }
        let tcp = TcpListener::bind((Ipv4Addr::LOCALHOST, port));
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, port));
        if tcp.is_ok() && udp.is_ok() {
            return port;
        }
    }
    panic!("no free port on 127.0.0.1 between 20000 and 60000");
}
