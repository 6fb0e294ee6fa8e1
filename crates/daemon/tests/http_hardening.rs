//! The HTTP endpoint under connection exhaustion: the real `nsbeacon` binary (with a real Knot and BIRD),
//! 500 clients that connect and send nothing, 100 slowloris clients that trickle a header byte every
//! second and never finish, all reconnecting as soon as nsbeacon closes them, while a scrape loop reads
//! `/healthz`, `/metrics` and `/status`. Every scrape must be answered, and quickly.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::Node;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const IDLE_CLIENTS: usize = 500;
const SLOWLORIS_CLIENTS: usize = 100;
const LOAD_FOR: Duration = Duration::from_secs(12);
/// Longest a single scrape may take under the attack.
const SCRAPE_BOUND: Duration = Duration::from_secs(2);

/// Holds connections open that send nothing (`trickle` false) or a header byte a second (`trickle`
/// true), reconnecting when nsbeacon closes them, until `stop`.
async fn attacker(
    addr: SocketAddr,
    trickle: bool,
    stop: Arc<AtomicBool>,
    reconnects: Arc<AtomicU64>,
) {
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut stream) = TcpStream::connect(addr).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        reconnects.fetch_add(1, Ordering::Relaxed);
        if trickle {
            let _ = stream.write_all(b"GET /metrics HTTP/1.1\r\n").await;
        }
        let mut buf = [0u8; 256];
        loop {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            // Closed by nsbeacon (EOF or reset): reconnect. Otherwise trickle one more byte.
            match tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf)).await {
                Ok(Ok(0) | Err(_)) => break,
                Ok(Ok(_)) => {}
                Err(_) => {
                    if trickle && stream.write_all(b"X").await.is_err() {
                        break;
                    }
                }
            }
        }
    }
}

#[test]
fn scrapes_are_answered_while_idle_and_slowloris_clients_hold_connections() {
    let mut node = Node::new();
    node.write_config("", "");
    node.start();
    node.expect_service("dns", "up");
    let addr = node.http;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let stop = Arc::new(AtomicBool::new(false));
    let connects = Arc::new(AtomicU64::new(0));
    let attackers: Vec<_> = (0..IDLE_CLIENTS + SLOWLORIS_CLIENTS)
        .map(|i| {
            runtime.spawn(attacker(
                addr,
                i >= IDLE_CLIENTS,
                stop.clone(),
                connects.clone(),
            ))
        })
        .collect();
    // Let every attacker connect (and the slowloris ones start trickling) before the first scrape.
    std::thread::sleep(Duration::from_secs(2));
    let connected = connects.load(Ordering::Relaxed);

    let started = Instant::now();
    let (mut ok, mut failed, mut slowest) = (0u32, Vec::new(), Duration::ZERO);
    let paths = ["/healthz", "/metrics", "/status"];
    let mut i = 0;
    while started.elapsed() < LOAD_FOR {
        let path = paths[i % paths.len()];
        i += 1;
        let t = Instant::now();
        let result = nsbeacon::cli::http_get(addr, path);
        let took = t.elapsed();
        slowest = slowest.max(took);
        match result {
            Ok((200, body)) if !body.is_empty() && took <= SCRAPE_BOUND => ok += 1,
            other => failed.push(format!("{path} after {took:?}: {other:?}")),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    for a in attackers {
        a.abort();
    }
    let reconnected = connects.load(Ordering::Relaxed);
    drop(runtime);

    let total = ok + u32::try_from(failed.len()).expect("count");
    assert!(
        connected >= (IDLE_CLIENTS + SLOWLORIS_CLIENTS) as u64,
        "only {connected} attacker connections were opened"
    );
    assert!(total >= 100, "the load loop ran only {total} scrapes");
    assert!(
        failed.is_empty(),
        "{} of {total} scrapes failed or took longer than {SCRAPE_BOUND:?} (slowest {slowest:?}, \
         {reconnected} attacker connections):\n{}\n--- nsbeacon log ---\n{}",
        failed.len(),
        failed
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n"),
        node.log()
    );
    // The slowloris clients were cut off by the header timeout and came back.
    assert!(
        reconnected > connected,
        "no attacker connection was ever closed ({reconnected} connections)"
    );
    assert!(node.guard().is_running());
    eprintln!("{total} scrapes ok, slowest {slowest:?}, {reconnected} attacker connections");
}
