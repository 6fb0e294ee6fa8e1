//! One persistent connection to BIRD's control socket, spoken to directly (no `birdc` process).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::Mutex;
use tokio::time::{Instant, timeout_at};

use super::error::{BirdError, Phase};
use super::reply::{LineKind, MAX_LINE_BYTES, Reply, ReplyAssembler, ReplyCode};
use crate::Timed;
use crate::reconnect::{ConnectRefused, ExchangeError, SocketState};
/// Longest command accepted: BIRD drops connections whose command line overflows its input buffer.
const MAX_COMMAND_BYTES: usize = 512;

/// A client for BIRD's control socket that keeps one connection open across commands.
///
/// * Connects lazily on the first command, reads the `0001` greeting, then sends one command per line and
///   reads until the reply's final `DDDD ` line. It never half-closes the socket (BIRD then often drops
///   the command unanswered).
/// * Commands run one at a time; each is bounded by the configured timeout, waiting for its turn included.
/// * After EOF, an I/O error, a malformed reply or a timeout the connection is dropped, and the next
///   command reconnects. Consecutive failed connects are spaced by an exponential backoff (50 ms doubling
///   to 2 s); a command whose deadline falls before the next allowed attempt fails at once with the last
///   connect error. A new socket file at the path (BIRD started again) ends the backoff at once.
/// * When a *reused* connection turns out dead before any byte of the reply arrived (BIRD restarted since
///   the last command), the command is retried once on a fresh connection. Commands are therefore assumed
///   idempotent, which holds for everything nsbeacon sends (`enable`, `disable`, `show ...`).
#[derive(Debug)]
pub struct BirdControlSocket {
    path: PathBuf,
    timeout: Duration,
    state: Mutex<SocketState<Connection, BirdError>>,
}

#[derive(Debug)]
struct Connection {
    stream: UnixStream,
    buf: Vec<u8>,
    assembler: ReplyAssembler,
}

impl BirdControlSocket {
    /// A client for the socket at `path`; nothing is connected until the first command.
    pub fn new(path: impl Into<PathBuf>, timeout: Duration) -> BirdControlSocket {
        BirdControlSocket {
            path: path.into(),
            timeout,
            state: Mutex::new(SocketState::default()),
        }
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The per-command timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sends `command` and returns BIRD's complete reply, whatever its codes, with the time it took.
    ///
    /// Error codes in the reply are *not* turned into errors here: the caller decides from the codes.
    pub async fn command(&self, command: &str) -> Result<Timed<Reply>, BirdError> {
        let start = Instant::now();
        let reply = self.command_until(command, start + self.timeout).await?;
        Ok(Timed {
            value: reply,
            elapsed: start.elapsed(),
        })
    }

    /// Like [`command`](Self::command), bounded by `deadline` instead of the configured timeout, so that
    /// several commands can share one operation's budget.
    pub async fn command_until(
        &self,
        command: &str,
        deadline: Instant,
    ) -> Result<Reply, BirdError> {
        check_command(command)?;
        let mut state = timeout_at(deadline, self.state.lock())
            .await
            .map_err(|_| self.timeout_error(Some(command), Phase::WaitingForTurn))?;
        let mut retried = false;
        loop {
            let (mut connection, reused) = match state.connection.take() {
                Some(connection) => (connection, true),
                None => (self.connect(&mut state, deadline).await?, false),
            };
            match self.exchange(&mut connection, command, deadline).await {
                Ok(reply) => {
                    // Bytes beyond the reply mean we are out of step with BIRD: never reuse such a connection.
                    if connection.buf.is_empty() && !connection.assembler.is_partial() {
                        state.connection = Some(connection);
                    }
                    return Ok(reply);
                }
                Err(ExchangeError::DeadBeforeReply(err)) if reused && !retried => {
                    tracing::debug!(socket = %self.path.display(), %err, "stale BIRD connection, reconnecting");
                    retried = true;
                }
                Err(err) => return Err(err.into_inner()),
            }
        }
    }

    /// Waits, without a deadline, for the next spontaneous (`+`) line on the open connection: BIRD's log,
    /// echoed after an `echo` command on this connection. Returns its text.
    ///
    /// Meant for a client dedicated to watching (see [`BirdLogWatch`](super::BirdLogWatch)): it holds the
    /// connection while it waits, so a command on the same client waits too. Cancel-safe: dropping the
    /// future keeps the connection and any partly read line. EOF or an I/O error drops the connection (the
    /// next command reconnects); a numbered line outside any command means we are out of step with BIRD and
    /// is an error too.
    pub async fn next_spontaneous(&self) -> Result<String, BirdError> {
        let mut state = self.state.lock().await;
        let disconnected = || BirdError::Disconnected {
            socket: self.path.clone(),
            command: None,
            phase: Phase::WatchingLog,
        };
        let Some(connection) = state.connection.as_mut() else {
            return Err(disconnected());
        };
        let failure = loop {
            if let Some(pos) = connection.buf.iter().position(|&b| b == b'\n') {
                let parsed = super::reply::parse_line(&connection.buf[..pos]);
                connection.buf.drain(..=pos);
                match parsed {
                    Ok(line) if line.kind == LineKind::Spontaneous => return Ok(line.text),
                    Ok(line) => {
                        break BirdError::UnexpectedReply {
                            socket: self.path.clone(),
                            command: "echo all".to_owned(),
                            expected: "only echoed log lines (`+...`) between commands",
                            reply: line.text.chars().take(200).collect(),
                        };
                    }
                    Err(source) => {
                        break BirdError::MalformedReply {
                            socket: self.path.clone(),
                            command: None,
                            source,
                        };
                    }
                }
            }
            if connection.buf.len() > MAX_LINE_BYTES {
                break BirdError::MalformedReply {
                    socket: self.path.clone(),
                    command: None,
                    source: super::reply::ReplyError::LineTooLong {
                        max: MAX_LINE_BYTES,
                    },
                };
            }
            match connection.stream.read_buf(&mut connection.buf).await {
                Ok(0) => break disconnected(),
                Ok(_) => {}
                Err(e) => break self.io_error(None, Phase::WatchingLog, e),
            }
        };
        state.connection = None;
        Err(failure)
    }

    /// Drops the open connection, if any (the next command reconnects).
    pub async fn disconnect(&self) {
        self.state.lock().await.connection = None;
    }

    async fn connect(
        &self,
        state: &mut SocketState<Connection, BirdError>,
        deadline: Instant,
    ) -> Result<Connection, BirdError> {
        let remember = |err: &BirdError| Some(err.clone());
        match state
            .connect(&self.path, deadline, self.connect_once(deadline), remember)
            .await
        {
            Ok(connection) => Ok(connection),
            Err(ConnectRefused::Failed(err) | ConnectRefused::Backoff(Some(err))) => Err(err),
            Err(ConnectRefused::Backoff(None)) => Err(self.timeout_error(None, Phase::Connecting)),
        }
    }

    async fn connect_once(&self, deadline: Instant) -> Result<Connection, BirdError> {
        let stream = timeout_at(deadline, UnixStream::connect(&self.path))
            .await
            .map_err(|_| self.timeout_error(None, Phase::Connecting))?
            .map_err(|e| self.connect_error(e))?;
        let mut connection = Connection {
            stream,
            buf: Vec::with_capacity(4096),
            assembler: ReplyAssembler::new(),
        };
        let greeting = match self
            .read_reply(&mut connection, None, Phase::Greeting, deadline)
            .await
        {
            Ok(reply) => reply,
            Err(ExchangeError::Other(BirdError::MalformedReply { .. })) => {
                return Err(BirdError::NotBirdSocket {
                    socket: self.path.clone(),
                    received: String::from_utf8_lossy(&connection.buf)
                        .chars()
                        .take(80)
                        .collect(),
                });
            }
            Err(err) => return Err(err.into_inner()),
        };
        let line = greeting.last();
        if greeting.lines().len() != 1
            || line.code != ReplyCode::WELCOME
            || line.kind != LineKind::Last
        {
            return Err(BirdError::NotBirdSocket {
                socket: self.path.clone(),
                received: greeting.to_string().chars().take(80).collect(),
            });
        }
        tracing::debug!(socket = %self.path.display(), greeting = %line.text, "connected to BIRD");
        Ok(connection)
    }

    async fn exchange(
        &self,
        connection: &mut Connection,
        command: &str,
        deadline: Instant,
    ) -> Result<Reply, ExchangeError<BirdError>> {
        let mut line = Vec::with_capacity(command.len() + 1);
        line.extend_from_slice(command.as_bytes());
        line.push(b'\n');
        match timeout_at(deadline, connection.stream.write_all(&line)).await {
            Err(_) => {
                return Err(ExchangeError::Other(
                    self.timeout_error(Some(command), Phase::Sending),
                ));
            }
            Ok(Err(e)) => {
                let err = self.io_error(Some(command), Phase::Sending, e);
                return Err(ExchangeError::DeadBeforeReply(err));
            }
            Ok(Ok(())) => {}
        }
        self.read_reply(connection, Some(command), Phase::Receiving, deadline)
            .await
    }

    /// Reads until one complete reply is assembled. A peer that closes or resets the connection before
    /// sending a single byte yields [`ExchangeError::DeadBeforeReply`].
    async fn read_reply(
        &self,
        connection: &mut Connection,
        command: Option<&str>,
        phase: Phase,
        deadline: Instant,
    ) -> Result<Reply, ExchangeError<BirdError>> {
        let mut received_any = false;
        let mut scanned = 0;
        loop {
            // Feed every complete line already buffered.
            while let Some(pos) = connection.buf[scanned..].iter().position(|&b| b == b'\n') {
                let end = scanned + pos;
                let result = connection.assembler.push_line(&connection.buf[..end]);
                scanned = 0;
                match result {
                    Ok(Some(reply)) => {
                        connection.buf.drain(..=end);
                        return Ok(reply);
                    }
                    Ok(None) => {
                        connection.buf.drain(..=end);
                    }
                    // The offending bytes stay in the buffer for the error message; the connection is dropped.
                    Err(source) => {
                        return Err(ExchangeError::Other(BirdError::MalformedReply {
                            socket: self.path.clone(),
                            command: command.map(str::to_owned),
                            source,
                        }));
                    }
                }
            }
            scanned = connection.buf.len();
            if connection.buf.len() > MAX_LINE_BYTES {
                return Err(ExchangeError::Other(BirdError::MalformedReply {
                    socket: self.path.clone(),
                    command: command.map(str::to_owned),
                    source: super::reply::ReplyError::LineTooLong {
                        max: MAX_LINE_BYTES,
                    },
                }));
            }
            let read = timeout_at(deadline, connection.stream.read_buf(&mut connection.buf))
                .await
                .map_err(|_| ExchangeError::Other(self.timeout_error(command, phase)))?;
            match read {
                Ok(0) => {
                    let err = BirdError::Disconnected {
                        socket: self.path.clone(),
                        command: command.map(str::to_owned),
                        phase,
                    };
                    return Err(if received_any {
                        ExchangeError::Other(err)
                    } else {
                        ExchangeError::DeadBeforeReply(err)
                    });
                }
                Ok(_) => received_any = true,
                Err(e) => {
                    let dead = matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
                    );
                    let err = self.io_error(command, phase, e);
                    return Err(if dead && !received_any {
                        ExchangeError::DeadBeforeReply(err)
                    } else {
                        ExchangeError::Other(err)
                    });
                }
            }
        }
    }

    fn timeout_error(&self, command: Option<&str>, phase: Phase) -> BirdError {
        BirdError::Timeout {
            socket: self.path.clone(),
            command: command.map(str::to_owned),
            phase,
            timeout: self.timeout,
        }
    }

    /// A reset or broken pipe is BIRD going away, reported like a clean close; anything else stays an I/O error.
    fn io_error(&self, command: Option<&str>, phase: Phase, source: io::Error) -> BirdError {
        if matches!(
            source.kind(),
            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
        ) {
            return BirdError::Disconnected {
                socket: self.path.clone(),
                command: command.map(str::to_owned),
                phase,
            };
        }
        BirdError::Io {
            socket: self.path.clone(),
            command: command.map(str::to_owned),
            phase,
            source: Arc::new(source),
        }
    }

    fn connect_error(&self, source: io::Error) -> BirdError {
        let socket = self.path.clone();
        match source.kind() {
            io::ErrorKind::NotFound => BirdError::SocketMissing { socket },
            io::ErrorKind::ConnectionRefused => BirdError::NotListening { socket },
            io::ErrorKind::PermissionDenied => {
                let (owner, hint) = crate::socket_owner::permission_hint(&self.path, "BIRD");
                BirdError::PermissionDenied {
                    socket,
                    owner,
                    hint,
                }
            }
            _ => BirdError::Connect {
                socket,
                source: Arc::new(source),
            },
        }
    }
}

fn check_command(command: &str) -> Result<(), BirdError> {
    let reason = if command.trim().is_empty() {
        "the command is empty"
    } else if command.contains(['\n', '\r']) {
        "the command contains a line break (one command per line)"
    } else if command.len() > MAX_COMMAND_BYTES {
        "the command is longer than 512 bytes"
    } else {
        return Ok(());
    };
    Err(BirdError::InvalidCommand {
        command: command.chars().take(80).collect(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_checked_before_sending() {
        assert!(check_command("show status").is_ok());
        for bad in ["", "   ", "show status\ndisable all", "a\rb"] {
            assert!(matches!(
                check_command(bad),
                Err(BirdError::InvalidCommand { .. })
            ));
        }
        assert!(check_command(&"x".repeat(600)).is_err());
    }
}
