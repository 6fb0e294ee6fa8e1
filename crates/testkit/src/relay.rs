//! A lossy UDP relay: a DNS server that loses packets, for tests and benchmarks of flapping.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A UDP relay on 127.0.0.1 in front of a DNS server that drops a fraction of the queries at random
/// (replies always pass): a server losing packets, without touching the server or the kernel's
/// queueing. Loopback only; it runs until [`LossyRelay::finish`] or drop.
#[derive(Debug)]
pub struct LossyRelay {
    /// Where clients send their queries.
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    forwarded: Arc<AtomicU64>,
    dropped: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

/// A small xorshift generator: the relay needs uniform draws, not cryptographic ones, and the testkit
/// stays free of a random-number crate.
struct XorShift(u64);

impl XorShift {
    fn seeded() -> XorShift {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        XorShift((nanos ^ (u64::from(std::process::id()) << 32)) | 1)
    }

    /// A uniform draw from [0, 1).
    fn next_f64(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x >> 11) as f64 / (1_u64 << 53) as f64
    }
}

impl LossyRelay {
    /// Starts relaying to `server`, dropping each query with probability `loss` (0.0-1.0).
    ///
    /// # Panics
    /// When the relay's sockets cannot be bound on 127.0.0.1 (a test setup failure).
    pub fn start(server: SocketAddr, loss: f64) -> LossyRelay {
        let front = UdpSocket::bind("127.0.0.1:0").expect("bind the relay's front socket");
        let back = UdpSocket::bind("127.0.0.1:0").expect("bind the relay's back socket");
        for socket in [&front, &back] {
            socket
                .set_read_timeout(Some(Duration::from_millis(5)))
                .expect("relay socket timeout");
        }
        let addr = front.local_addr().expect("relay address");
        let stop = Arc::new(AtomicBool::new(false));
        let forwarded = Arc::new(AtomicU64::new(0));
        let dropped = Arc::new(AtomicU64::new(0));
        let (flag, fwd, drp) = (stop.clone(), forwarded.clone(), dropped.clone());
        let thread = std::thread::Builder::new()
            .name("lossy-relay".into())
            .spawn(move || {
                let mut rng = XorShift::seeded();
                // Replies go back to whoever sent the query with that DNS ID.
                let mut clients: HashMap<u16, SocketAddr> = HashMap::new();
                let mut buf = [0u8; 4096];
                while !flag.load(Ordering::SeqCst) {
                    if let Ok((len, from)) = front.recv_from(&mut buf)
                        && len >= 2
                    {
                        if rng.next_f64() < loss {
                            drp.fetch_add(1, Ordering::Relaxed);
                        } else {
                            clients.insert(u16::from_be_bytes([buf[0], buf[1]]), from);
                            let _ = back.send_to(&buf[..len], server);
                            fwd.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    if let Ok((len, _)) = back.recv_from(&mut buf)
                        && len >= 2
                        && let Some(client) = clients.remove(&u16::from_be_bytes([buf[0], buf[1]]))
                    {
                        let _ = front.send_to(&buf[..len], client);
                    }
                }
            })
            .expect("spawn the relay thread");
        LossyRelay {
            addr,
            stop,
            forwarded,
            dropped,
            thread: Some(thread),
        }
    }

    /// Queries forwarded and dropped so far.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.forwarded.load(Ordering::Relaxed),
            self.dropped.load(Ordering::Relaxed),
        )
    }

    /// Stops the relay and returns (forwarded, dropped).
    pub fn finish(mut self) -> (u64, u64) {
        self.halt();
        self.counts()
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for LossyRelay {
    fn drop(&mut self) {
        self.halt();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A UDP echo server on 127.0.0.1 that answers `count` datagrams.
    fn echo(count: usize) -> (SocketAddr, JoinHandle<()>) {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind echo");
        socket
            .set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        let addr = socket.local_addr().expect("addr");
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            for _ in 0..count {
                let Ok((len, from)) = socket.recv_from(&mut buf) else {
                    return;
                };
                let _ = socket.send_to(&buf[..len], from);
            }
        });
        (addr, thread)
    }

    fn ask(relay: &LossyRelay, id: u16) -> bool {
        let client = UdpSocket::bind("127.0.0.1:0").expect("bind client");
        client
            .set_read_timeout(Some(Duration::from_millis(300)))
            .expect("timeout");
        let query = [id.to_be_bytes()[0], id.to_be_bytes()[1], 0xab];
        client.send_to(&query, relay.addr).expect("send");
        let mut buf = [0u8; 16];
        matches!(client.recv_from(&mut buf), Ok((3, _)) if buf[..3] == query)
    }

    #[test]
    fn a_lossless_relay_passes_every_query_and_its_reply_back() {
        let (server, _echo) = echo(5);
        let relay = LossyRelay::start(server, 0.0);
        for id in 1..=5 {
            assert!(ask(&relay, id), "query {id} got no reply");
        }
        assert_eq!(relay.finish(), (5, 0));
    }

    #[test]
    fn a_relay_losing_everything_forwards_nothing() {
        let (server, _echo) = echo(1);
        let relay = LossyRelay::start(server, 1.0);
        for id in 1..=3 {
            assert!(!ask(&relay, id), "query {id} was answered");
        }
        assert_eq!(relay.finish(), (0, 3));
    }
}
