//! A baseline for part 4: the same SOA sweep as nsbeacon's prober, written as plainly as possible (a
//! fixed set of reused UDP sockets, one per worker, the local and reference queries of a zone sent
//! together). It once showed what the prober's fresh socket per query cost; since the prober pools its
//! sockets it shows what the prober's checks and bookkeeping add. Not nsbeacon code; replies are parsed
//! with the same hickory-proto `Message::from_vec` as the prober.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nsbeacon_prober::proto::op::Message;
use nsbeacon_prober::proto::rr::{RData, RecordType};
use tokio::net::UdpSocket;

use crate::BenchError;

/// The wire form of a SOA query for `zone` (absolute, ASCII) with message ID `id`, EDNS payload 1232.
fn soa_query(zone: &str, id: u16) -> Vec<u8> {
    let mut q = Vec::with_capacity(64);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 1]); // flags 0, QD 1, AN 0, NS 0, AR 1
    for label in zone.trim_end_matches('.').split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&u16::from(RecordType::SOA).to_be_bytes());
    q.extend_from_slice(&[0, 1]); // IN
    q.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]); // OPT, payload 1232
    q
}

/// Sends `query` to `server` on `socket` and returns the SOA serial of the matching reply.
async fn exchange(
    socket: &UdpSocket,
    server: SocketAddr,
    query: &[u8],
    id: u16,
    buf: &mut [u8],
    timeout: Duration,
) -> Option<u32> {
    socket.send_to(query, server).await.ok()?;
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let (len, from) = tokio::time::timeout_at(deadline, socket.recv_from(buf))
            .await
            .ok()?
            .ok()?;
        if from != server || len < 2 || u16::from_be_bytes([buf[0], buf[1]]) != id {
            continue;
        }
        let message = Message::from_vec(&buf[..len]).ok()?;
        return message.answers.iter().find_map(|r| match &r.data {
            RData::SOA(soa) => Some(soa.serial),
            _ => None,
        });
    }
}

/// Sweeps `zones` at `local` and `reference` with `workers` sockets; returns the time and the zones whose
/// two serials were both read.
pub async fn sweep(
    local: SocketAddr,
    reference: SocketAddr,
    zones: Arc<Vec<String>>,
    workers: usize,
    timeout: Duration,
) -> Result<(Duration, usize), BenchError> {
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let zones = Arc::clone(&zones);
        let next = Arc::clone(&next);
        tasks.push(tokio::spawn(async move {
            let Ok(socket_l) = UdpSocket::bind("127.0.0.1:0").await else {
                return 0;
            };
            let Ok(socket_r) = UdpSocket::bind("127.0.0.1:0").await else {
                return 0;
            };
            let (mut buf_l, mut buf_r) = (vec![0u8; 4096], vec![0u8; 4096]);
            let mut ok = 0usize;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(zone) = zones.get(i) else {
                    return ok;
                };
                let id = (i % 65_536) as u16;
                let query = soa_query(zone, id);
                let (l, r) = tokio::join!(
                    exchange(&socket_l, local, &query, id, &mut buf_l, timeout),
                    exchange(&socket_r, reference, &query, id, &mut buf_r, timeout)
                );
                if l.is_some() && r.is_some() {
                    ok += 1;
                }
            }
        }));
    }
    let mut ok = 0;
    for task in tasks {
        ok += task
            .await
            .map_err(|e| BenchError::new(format!("pooled sweep worker: {e}")))?;
    }
    Ok((started.elapsed(), ok))
}
