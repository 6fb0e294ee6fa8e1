//! Watches one prefix in the upstream router's RIB by polling BIRD's control socket over one persistent
//! connection (no `birdc` process per poll), recording every change with its time.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

/// One observed change of the prefix's presence.
#[derive(Debug, Clone, Copy)]
pub struct RibChange {
    /// When the poll that saw the new state got its reply.
    pub at: Instant,
    /// The same moment on the wall clock (to line up with nsbeacon's log timestamps).
    pub wall: SystemTime,
    /// Whether the prefix is now in the upstream's RIB.
    pub present: bool,
}

#[derive(Debug, Default)]
struct Shared {
    changes: Mutex<Vec<RibChange>>,
    stop: AtomicBool,
    polls: AtomicU64,
    errors: AtomicU64,
}

/// A background thread polling `show route PREFIX` on the upstream's control socket.
#[derive(Debug)]
pub struct RibWatcher {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    started: Instant,
}

impl RibWatcher {
    /// Starts polling `prefix` on `socket` every `every` (the reply itself takes 0.2-0.5 ms).
    pub fn start(socket: &Path, prefix: &str, every: Duration) -> RibWatcher {
        let shared = Arc::new(Shared::default());
        let thread_shared = Arc::clone(&shared);
        let socket = socket.to_path_buf();
        let prefix = prefix.to_owned();
        let thread = std::thread::Builder::new()
            .name("rib-watcher".into())
            .spawn(move || poll_loop(&thread_shared, &socket, &prefix, every))
            .ok();
        RibWatcher {
            shared,
            thread,
            started: Instant::now(),
        }
    }

    /// The state last seen (`None` before the first successful poll).
    pub fn present(&self) -> Option<bool> {
        self.changes().last().map(|c| c.present)
    }

    fn changes(&self) -> std::sync::MutexGuard<'_, Vec<RibChange>> {
        self.shared
            .changes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits until the prefix is `present` (or not) and returns the change that made it so: the first such
    /// change at or after `since`, or, when the state already held before `since`, the change before it
    /// (callers timing a transition check the state before they trigger it). `None` after `timeout`.
    pub fn wait_for(&self, present: bool, since: Instant, timeout: Duration) -> Option<RibChange> {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let changes = self.changes();
                if let Some(change) = changes
                    .iter()
                    .find(|c| c.at >= since && c.present == present)
                {
                    return Some(*change);
                }
                if let Some(last) = changes.last()
                    && last.present == present
                {
                    return Some(*last);
                }
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_micros(500));
        }
    }

    /// The changes seen at or after `since`.
    pub fn changes_since(&self, since: Instant) -> Vec<RibChange> {
        self.changes()
            .iter()
            .filter(|c| c.at >= since)
            .copied()
            .collect()
    }

    /// Polls per second so far (to report the real polling rate).
    pub fn poll_rate(&self) -> f64 {
        self.shared.polls.load(Ordering::Relaxed) as f64
            / self.started.elapsed().as_secs_f64().max(1e-9)
    }
}

impl Drop for RibWatcher {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Connection {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

fn connect(socket: &PathBuf) -> std::io::Result<Connection> {
    let stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    let writer = stream.try_clone()?;
    let mut connection = Connection {
        reader: BufReader::new(stream),
        writer,
    };
    // The greeting: `0001 BIRD 2.0.12 ready.`
    read_reply(&mut connection.reader)?;
    Ok(connection)
}

/// Reads one reply: lines until the first `DDDD ` (code followed by a space).
fn read_reply(reader: &mut BufReader<UnixStream>) -> std::io::Result<String> {
    let mut reply = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "BIRD closed the control socket",
            ));
        }
        let bytes = line.as_bytes();
        let last =
            bytes.len() >= 5 && bytes[..4].iter().all(u8::is_ascii_digit) && bytes[4] == b' ';
        reply.push_str(&line);
        if last {
            return Ok(reply);
        }
    }
}

fn poll_loop(shared: &Shared, socket: &PathBuf, prefix: &str, every: Duration) {
    let command = format!("show route {prefix}\n");
    let mut connection: Option<Connection> = None;
    let mut last: Option<bool> = None;
    while !shared.stop.load(Ordering::Relaxed) {
        if connection.is_none() {
            match connect(socket) {
                Ok(c) => connection = Some(c),
                Err(_) => {
                    shared.errors.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
            }
        }
        let Some(conn) = connection.as_mut() else {
            continue;
        };
        let reply = conn
            .writer
            .write_all(command.as_bytes())
            .and_then(|()| read_reply(&mut conn.reader));
        match reply {
            Ok(reply) => {
                let at = Instant::now();
                let wall = SystemTime::now();
                shared.polls.fetch_add(1, Ordering::Relaxed);
                let present =
                    reply.lines().any(|l| l.contains(prefix)) && !reply.starts_with("8001");
                if last != Some(present) {
                    last = Some(present);
                    shared
                        .changes
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push(RibChange { at, wall, present });
                }
            }
            Err(_) => {
                shared.errors.fetch_add(1, Ordering::Relaxed);
                connection = None;
            }
        }
        std::thread::sleep(every);
    }
}
