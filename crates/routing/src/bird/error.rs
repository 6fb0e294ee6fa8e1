//! Errors of the BIRD backend, each naming the socket, the command and what to do about it.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::reply::{ReplyCode, ReplyError};
use crate::BirdProtocolName;

/// What the client was doing when an exchange with BIRD failed or timed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Phase {
    /// Waiting for an earlier command to finish: the one connection is used by one command at a time.
    WaitingForTurn,
    /// `connect()` on the control socket.
    Connecting,
    /// Reading the `0001 BIRD x.y.z ready.` greeting BIRD sends on connect.
    Greeting,
    /// Writing the command line.
    Sending,
    /// Reading the reply, up to its final `DDDD ` line.
    Receiving,
    /// Waiting for BIRD's log lines after `echo` (see [`BirdLogWatch`](super::BirdLogWatch)).
    WatchingLog,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::WaitingForTurn => "waiting for an earlier command on the same connection",
            Phase::Connecting => "connecting",
            Phase::Greeting => "waiting for BIRD's greeting",
            Phase::Sending => "sending the command",
            Phase::Receiving => "waiting for the reply",
            Phase::WatchingLog => "waiting for BIRD's echoed log",
        })
    }
}

/// Shows `command` as ` for `cmd`` in messages, or nothing when the failure came before any command.
struct ForCommand<'a>(&'a Option<String>);

impl fmt::Display for ForCommand<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(c) => write!(f, " (command `{c}`)"),
            None => Ok(()),
        }
    }
}

/// Errors from the BIRD backend.
///
/// Cloneable (I/O causes are shared behind an [`Arc`]) so the client can report the last connect failure
/// again while it backs off.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum BirdError {
    /// The backend configuration cannot work (e.g. a zero timeout).
    #[error("invalid BIRD backend configuration: {reason}")]
    InvalidConfig {
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// A command that cannot be sent as one line (empty, or containing a line break).
    #[error("refusing to send {command:?} to BIRD: {reason}")]
    InvalidCommand {
        /// The rejected command.
        command: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// The control socket does not exist.
    #[error(
        "BIRD control socket {} does not exist: is BIRD running, and is this the path it was started with \
         (`bird -s PATH`; Debian's default is /run/bird/bird.ctl)?",
        socket.display()
    )]
    SocketMissing {
        /// The socket path.
        socket: PathBuf,
    },
    /// The socket exists but we may not connect to it.
    #[error(
        "permission denied connecting to BIRD control socket {} ({owner}): {hint}",
        socket.display()
    )]
    PermissionDenied {
        /// The socket path.
        socket: PathBuf,
        /// The socket's owner, group and mode as far as they could be read, e.g. `owner root:bird, mode 0660`.
        owner: String,
        /// What to do, e.g. run nsbeacon in the socket's group.
        hint: String,
    },
    /// The socket file exists but nobody listens on it: BIRD is not running (a crashed BIRD leaves it).
    #[error(
        "nothing listens on BIRD control socket {} (connection refused): BIRD is not running, the file is \
         left over from a BIRD that stopped or crashed",
        socket.display()
    )]
    NotListening {
        /// The socket path.
        socket: PathBuf,
    },
    /// `connect()` failed for another reason.
    #[error("cannot connect to BIRD control socket {}: {source}", socket.display())]
    Connect {
        /// The socket path.
        socket: PathBuf,
        /// The operating system's error.
        #[source]
        source: Arc<io::Error>,
    },
    /// Something answered on the socket, but not with BIRD's `0001 ... ready.` greeting.
    #[error(
        "{} is not a BIRD control socket: expected the greeting `0001 BIRD <version> ready.`, got {received:?}; \
         check the configured socket path",
        socket.display()
    )]
    NotBirdSocket {
        /// The socket path.
        socket: PathBuf,
        /// What arrived instead (truncated).
        received: String,
    },
    /// BIRD closed the connection (it stopped, crashed or restarted); the next command reconnects.
    #[error(
        "BIRD closed the control connection on {} while {phase}{}: BIRD stopped or restarted; the next command \
         reconnects",
        socket.display(),
        ForCommand(command)
    )]
    Disconnected {
        /// The socket path.
        socket: PathBuf,
        /// The command in flight, if any.
        command: Option<String>,
        /// What the client was doing.
        phase: Phase,
    },
    /// Reading or writing the socket failed; the connection is dropped and the next command reconnects.
    #[error("I/O error on BIRD control socket {} while {phase}{}: {source}", socket.display(), ForCommand(command))]
    Io {
        /// The socket path.
        socket: PathBuf,
        /// The command in flight, if any.
        command: Option<String>,
        /// What the client was doing.
        phase: Phase,
        /// The operating system's error.
        #[source]
        source: Arc<io::Error>,
    },
    /// BIRD did not answer in time; the connection is dropped (a late reply must not be taken for the next
    /// command's) and the next command reconnects.
    #[error(
        "no answer from BIRD on {} within {timeout:?} while {phase}{}: BIRD is stuck or overloaded, or this is \
         not a BIRD control socket",
        socket.display(),
        ForCommand(command)
    )]
    Timeout {
        /// The socket path.
        socket: PathBuf,
        /// The command in flight, if any.
        command: Option<String>,
        /// What the client was doing.
        phase: Phase,
        /// The configured per-operation timeout.
        timeout: Duration,
    },
    /// The peer sent bytes that are not BIRD reply lines.
    #[error("malformed reply on BIRD control socket {}{}: {source}", socket.display(), ForCommand(command))]
    MalformedReply {
        /// The socket path.
        socket: PathBuf,
        /// The command in flight, if any.
        command: Option<String>,
        /// What was wrong with the bytes.
        #[source]
        source: ReplyError,
    },
    /// BIRD has no protocol of this name (`8003`, or a parse error on a name that passed validation).
    #[error(
        "BIRD on {} has no protocol named `{protocol}` (`{command}` -> {code} {message}): check the name against \
         `birdc show protocols` and bird.conf",
        socket.display()
    )]
    UnknownProtocol {
        /// The socket path.
        socket: PathBuf,
        /// The protocol name.
        protocol: BirdProtocolName,
        /// The command sent.
        command: String,
        /// BIRD's reply code.
        code: ReplyCode,
        /// BIRD's message, for humans.
        message: String,
    },
    /// BIRD answered the command with an error code (8xxx run-time, 9xxx parse error).
    #[error("BIRD on {} rejected `{command}`: {code} {message}", socket.display())]
    CommandFailed {
        /// The socket path.
        socket: PathBuf,
        /// The command sent.
        command: String,
        /// BIRD's reply code.
        code: ReplyCode,
        /// BIRD's message, for humans.
        message: String,
    },
    /// A decision file (`[backend] decision_dir`) could not be read or written.
    #[error(
        "cannot update nsbeacon's decision file {} for BIRD: {reason}; nsbeacon must be able to create and write \
         files in the decision_dir of [backend] (and BIRD to read them), so check that directory's owner and mode",
        path.display()
    )]
    DecisionFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// BIRD answered with success codes, but not the ones this command produces.
    #[error(
        "unexpected reply from BIRD on {} to `{command}`: expected {expected}, got {reply:?}",
        socket.display()
    )]
    UnexpectedReply {
        /// The socket path.
        socket: PathBuf,
        /// The command sent.
        command: String,
        /// What the backend expected.
        expected: &'static str,
        /// The whole reply in wire format (truncated).
        reply: String,
    },
}

impl BirdError {
    /// Whether BIRD itself answered (the error is about the command, not about reaching BIRD).
    ///
    /// The daemon uses it to tell "BIRD is down or unreachable" from "BIRD refused this".
    pub fn daemon_answered(&self) -> bool {
        matches!(
            self,
            BirdError::UnknownProtocol { .. }
                | BirdError::CommandFailed { .. }
                | BirdError::UnexpectedReply { .. }
        )
    }
}
