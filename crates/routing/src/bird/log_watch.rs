//! BIRD's own log, echoed to a dedicated control connection: the only way to hear, as it happens, that
//! BIRD changed something nsbeacon manages behind its back.
//!
//! `birdc configure` restarts every protocol whose configured `disabled` flag differs from its current
//! state, so a protocol nsbeacon enabled (the templates declare them `disabled`, for a safe start) is
//! disabled again by every reconfiguration, and a restarted BIRD starts with all of them disabled. The
//! reconciler's periodic read-back repairs both, but only at its next interval; a configuration push that
//! reconfigures BIRD on every node at once would withdraw the service everywhere for that long. Watching
//! the log lets the daemon read back at once: BIRD logs `Reconfiguring`, `Disabling protocol ...` and so on,
//! and every reconnect after a failure is a BIRD that may have restarted.
//!
//! The watcher never interprets the text (BIRD 3 changed messages): any echoed line is a hint to read the
//! protocols back, and the read-back decides by reply codes as always.

use std::path::PathBuf;
use std::time::Duration;

use tokio::time::Instant;

use super::error::BirdError;
use super::reply::ReplyCode;
use super::socket::BirdControlSocket;
use crate::backoff::Backoff;
use crate::reconnect::{SocketFile, sleep_unless_replaced};

/// The pause after a failed attempt while BIRD is away: 100 ms doubling to 2 s, cut short by a new socket
/// file (BIRD started again).
const RETRY: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));

/// What the watcher saw.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BirdLogEvent {
    /// A connection with the log echo was (re)established. After a failure this is likely a restarted
    /// BIRD, which starts with every protocol in its configured state.
    Connected,
    /// One line of BIRD's log (its text, not to be parsed for decisions).
    Line(String),
}

/// A dedicated control connection with `echo all`, yielding BIRD's log lines as they are written.
#[derive(Debug)]
pub struct BirdLogWatch {
    socket: BirdControlSocket,
    echoing: bool,
    consecutive_failures: u32,
    /// The socket file at the path when the last attempt began, to notice BIRD's new one.
    failed_file: Option<SocketFile>,
}

impl BirdLogWatch {
    /// A watcher for the control socket at `path`; `timeout` bounds connecting and the `echo` command.
    /// Nothing is connected until [`next`](Self::next).
    pub fn new(path: impl Into<PathBuf>, timeout: Duration) -> BirdLogWatch {
        BirdLogWatch {
            socket: BirdControlSocket::new(path, timeout),
            echoing: false,
            consecutive_failures: 0,
            failed_file: None,
        }
    }

    /// Waits for the next event. Connects (and sends `echo all`) when needed; after a failure it first
    /// waits a backoff (100 ms doubling to 2 s), so calling it in a loop never spins while BIRD is away.
    /// The wait ends early when a new socket file appears at the path: a restarted BIRD is heard (and
    /// [`BirdLogEvent::Connected`] reported) within milliseconds, not at the end of the backoff.
    /// Errors are for logging: the next call tries again.
    pub async fn next(&mut self) -> Result<BirdLogEvent, BirdError> {
        if self.consecutive_failures > 0 {
            let until = Instant::now() + RETRY.after_failures(self.consecutive_failures);
            if sleep_unless_replaced(self.socket.path(), self.failed_file, until).await {
                tracing::debug!(socket = %self.socket.path().display(), "BIRD's socket file is new: reconnecting the log watch now");
                self.consecutive_failures = 0;
            }
        }
        let file = SocketFile::at(self.socket.path());
        let result = self.try_next().await;
        match &result {
            Ok(_) => self.consecutive_failures = 0,
            Err(_) => {
                self.echoing = false;
                self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                self.failed_file = file;
            }
        }
        result
    }

    async fn try_next(&mut self) -> Result<BirdLogEvent, BirdError> {
        if !self.echoing {
            let reply = self.socket.command("echo all").await?.value;
            let last = reply.last();
            if last.code != ReplyCode::OK {
                self.socket.disconnect().await;
                return Err(BirdError::UnexpectedReply {
                    socket: self.socket.path().to_owned(),
                    command: "echo all".to_owned(),
                    expected: "0000 (echo enabled)",
                    reply: reply.to_string().chars().take(200).collect(),
                });
            }
            self.echoing = true;
            return Ok(BirdLogEvent::Connected);
        }
        self.socket.next_spontaneous().await.map(BirdLogEvent::Line)
    }
}
