//! One persistent connection to bgpd's vty socket: the socket and the command language `vtysh` itself
//! uses, without a process per operation.
//!
//! The framing (FRR 8.4, unchanged since Quagga): the client writes one command terminated by a NUL byte;
//! the daemon answers with the command's output followed by `\0\0\0` and one status byte, FRR's
//! `CMD_*` code (0 success, 1 warning, 2 unknown command, 3 ambiguous, 4 incomplete, 13 configuration
//! failed, ...). The vty starts in view mode: `enable` (no password on this socket) is sent once per
//! connection. A configuration sequence starts with `configure terminal` and ends with `end`, which
//! returns the vty to enable mode for the next operation.
//!
//! * Connects lazily; operations run one at a time, each bounded by its deadline (waiting for its turn
//!   included).
//! * After EOF, an I/O error, a timeout, a reply out of step or a failed command inside a configuration
//!   sequence, the connection is dropped (bgpd leaves configuration mode when its vty closes) and the next
//!   operation reconnects. Consecutive failed connects are spaced by an exponential backoff (50 ms
//!   doubling to 2 s); an operation whose deadline falls before the next allowed attempt fails at once with
//!   the last connect error. A new socket file at the path (bgpd started again) ends the backoff at once.
//! * When a *reused* connection turns out dead before any byte of the first reply arrived (bgpd restarted
//!   since the last operation), the sequence is sent again once on a fresh connection: nothing of it ran.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::Mutex;
use tokio::time::{Duration, Instant, timeout_at};

use super::FrrError;
use super::vtysh::{classify_failure, quote_output};
use crate::reconnect::{ConnectRefused, ExchangeError, SocketState};
/// A reply beyond this is refused (a summary of a few thousand peers is far below it).
const MAX_REPLY: usize = 32 * 1024 * 1024;
/// FRR's `CMD_SUCCESS`.
const CMD_SUCCESS: u8 = 0;
/// FRR's `CMD_WARNING`: the command ran and printed a warning.
const CMD_WARNING: u8 = 1;
/// FRR's `CMD_ERR_NO_MATCH`: no such command in the vty's current node.
const CMD_ERR_NO_MATCH: u8 = 2;

/// A client for one daemon's vty socket (nsbeacon uses bgpd's) that keeps its connection open.
#[derive(Debug)]
pub(crate) struct VtySocket {
    path: PathBuf,
    state: Mutex<SocketState<Connection, ConnectFailure>>,
}

/// Why the last connect failed (the OS error, shared: `io::Error` is not `Clone`), kept to answer
/// operations that fall inside the backoff.
#[derive(Debug, Clone)]
struct ConnectFailure(Arc<io::Error>);

#[derive(Debug)]
struct Connection {
    stream: UnixStream,
    buf: Vec<u8>,
}

/// One command's reply: FRR's status code and what it printed.
struct CommandReply {
    status: u8,
    output: String,
}

impl VtySocket {
    /// A client for the socket at `path`; nothing is connected until the first operation.
    pub(crate) fn new(path: PathBuf) -> VtySocket {
        VtySocket {
            path,
            state: Mutex::new(SocketState::default()),
        }
    }

    /// The commands as an operator could type them into `vtysh`, with the socket, for error messages.
    pub(crate) fn render(&self, lines: &[String]) -> String {
        format!("{} <- {}", self.path.display(), lines.join("; "))
    }

    /// Runs `lines` in order and returns their output, concatenated, or a typed error.
    ///
    /// The first failing command ends the sequence. `config` marks a configuration sequence (it must
    /// start with `configure terminal`): it is closed with `end`, and any `%` message in its output is an
    /// error even when FRR's status says success, as with vtysh.
    pub(crate) async fn run(
        &self,
        lines: &[String],
        deadline: Instant,
        timeout: Duration,
        config: bool,
    ) -> Result<String, FrrError> {
        let command = self.render(lines);
        let mut state =
            timeout_at(deadline, self.state.lock())
                .await
                .map_err(|_| FrrError::Timeout {
                    command: command.clone(),
                    timeout,
                })?;
        let mut retried = false;
        loop {
            let (mut connection, reused) = match state.connection.take() {
                Some(connection) => (connection, true),
                None => (
                    self.connect(&mut state, deadline, timeout, &command)
                        .await?,
                    false,
                ),
            };
            match self
                .sequence(&mut connection, lines, deadline, timeout, config)
                .await
            {
                Ok(output) => {
                    state.connection = Some(connection);
                    return Ok(output);
                }
                Err(SequenceError::Dead(err)) if reused && !retried => {
                    tracing::debug!(socket = %self.path.display(), %err, "stale FRR vty connection, reconnecting");
                    retried = true;
                }
                // The command failed cleanly and the vty is back in enable mode: keep the connection.
                Err(SequenceError::Refused(err, Reusable::Yes)) => {
                    state.connection = Some(connection);
                    return Err(err);
                }
                Err(SequenceError::Dead(err) | SequenceError::Refused(err, Reusable::No)) => {
                    return Err(err);
                }
            }
        }
    }

    /// Runs the sequence on `connection`. See [`run`](Self::run).
    async fn sequence(
        &self,
        connection: &mut Connection,
        lines: &[String],
        deadline: Instant,
        timeout: Duration,
        config: bool,
    ) -> Result<String, SequenceError> {
        let command = self.render(lines);
        let mut output = String::new();
        for (i, line) in lines.iter().enumerate() {
            let reply = match self.exchange(connection, line, deadline, timeout).await {
                Ok(reply) => reply,
                Err(ExchangeError::DeadBeforeReply(err)) if i == 0 => {
                    return Err(SequenceError::Dead(err));
                }
                Err(err) => return Err(SequenceError::Refused(err.into_inner(), Reusable::No)),
            };
            output.push_str(&reply.output);
            let complaint = config
                && reply
                    .output
                    .lines()
                    .any(|l| l.trim_start().starts_with('%'));
            if (reply.status != CMD_SUCCESS && reply.status != CMD_WARNING) || complaint {
                let err = self.failure(command, reply.status, &output);
                // Outside configuration mode nothing needs undoing; inside, closing the vty leaves it.
                let reusable = if config { Reusable::No } else { Reusable::Yes };
                return Err(SequenceError::Refused(err, reusable));
            }
        }
        if config {
            let end = self
                .exchange(connection, "end", deadline, timeout)
                .await
                .map_err(|err| SequenceError::Refused(err.into_inner(), Reusable::No))?;
            if end.status != CMD_SUCCESS {
                let err = self.failure(self.render(&["end".to_owned()]), end.status, &end.output);
                return Err(SequenceError::Refused(err, Reusable::No));
            }
        }
        Ok(output)
    }

    /// Maps a refused command to an error: the status decides where it can (FRR's daemons prefix their
    /// messages differently from vtysh), the message otherwise.
    fn failure(&self, command: String, status: u8, output: &str) -> FrrError {
        if status == CMD_ERR_NO_MATCH {
            return FrrError::UnknownCommand {
                command,
                output: quote_output(output),
            };
        }
        classify_failure(command, Some(i32::from(status)), output, "")
    }

    async fn connect(
        &self,
        state: &mut SocketState<Connection, ConnectFailure>,
        deadline: Instant,
        timeout: Duration,
        command: &str,
    ) -> Result<Connection, FrrError> {
        let remember = |err: &ConnectError| match err {
            ConnectError::Os(failure) => Some(failure.clone()),
            ConnectError::Other(_) => None,
        };
        match state
            .connect(
                &self.path,
                deadline,
                self.connect_once(deadline, timeout),
                remember,
            )
            .await
        {
            Ok(connection) => Ok(connection),
            Err(
                ConnectRefused::Failed(ConnectError::Os(failure))
                | ConnectRefused::Backoff(Some(failure)),
            ) => Err(self.connect_error(&failure)),
            Err(ConnectRefused::Failed(ConnectError::Other(err))) => Err(err),
            Err(ConnectRefused::Backoff(None)) => Err(FrrError::Timeout {
                command: command.to_owned(),
                timeout,
            }),
        }
    }

    async fn connect_once(
        &self,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Connection, ConnectError> {
        let enable = self.render(&["enable".to_owned()]);
        let stream = timeout_at(deadline, UnixStream::connect(&self.path))
            .await
            .map_err(|_| {
                ConnectError::Other(FrrError::Timeout {
                    command: enable.clone(),
                    timeout,
                })
            })?
            .map_err(|e| ConnectError::Os(ConnectFailure(Arc::new(e))))?;
        let mut connection = Connection {
            stream,
            buf: Vec::with_capacity(4096),
        };
        let reply = match self
            .exchange(&mut connection, "enable", deadline, timeout)
            .await
        {
            Ok(reply) => reply,
            // Something answered, but not in vty framing (a BIRD socket greets with `0001 ...`).
            Err(ExchangeError::Other(FrrError::Timeout { .. })) if !connection.buf.is_empty() => {
                return Err(ConnectError::Other(self.not_a_vty(&connection.buf)));
            }
            Err(err) => return Err(ConnectError::Other(err.into_inner())),
        };
        if reply.status != CMD_SUCCESS {
            return Err(ConnectError::Other(self.failure(
                enable,
                reply.status,
                &reply.output,
            )));
        }
        tracing::debug!(socket = %self.path.display(), "connected to FRR's vty socket");
        Ok(connection)
    }

    fn not_a_vty(&self, received: &[u8]) -> FrrError {
        FrrError::NotAVtySocket {
            socket: self.path.clone(),
            received: String::from_utf8_lossy(received).chars().take(80).collect(),
        }
    }

    /// Sends one command and reads its reply up to the `\0\0\0<status>` trailer.
    async fn exchange(
        &self,
        connection: &mut Connection,
        line: &str,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<CommandReply, ExchangeError<FrrError>> {
        let command = || self.render(&[line.to_owned()]);
        let timed_out = || {
            ExchangeError::Other(FrrError::Timeout {
                command: command(),
                timeout,
            })
        };
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(0);
        match timeout_at(deadline, connection.stream.write_all(&bytes)).await {
            Err(_) => return Err(timed_out()),
            Ok(Err(e)) => return Err(ExchangeError::DeadBeforeReply(self.io_error(command(), e))),
            Ok(Ok(())) => {}
        }
        connection.buf.clear();
        loop {
            if let Some(reply) = self.complete_reply(&connection.buf, &command)? {
                return Ok(reply);
            }
            if connection.buf.len() > MAX_REPLY {
                return Err(ExchangeError::Other(FrrError::BadOutput {
                    command: command(),
                    reason: format!("reply larger than {MAX_REPLY} bytes"),
                    output: String::new(),
                }));
            }
            let read = timeout_at(deadline, connection.stream.read_buf(&mut connection.buf))
                .await
                .map_err(|_| timed_out())?;
            match read {
                Ok(0) => {
                    let err = FrrError::VtyDisconnected {
                        socket: self.path.clone(),
                        command: line.to_owned(),
                    };
                    return Err(if connection.buf.is_empty() {
                        ExchangeError::DeadBeforeReply(err)
                    } else {
                        ExchangeError::Other(err)
                    });
                }
                Ok(_) => {}
                Err(e) => {
                    let dead = matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
                    );
                    let err = self.io_error(command(), e);
                    return Err(if dead && connection.buf.is_empty() {
                        ExchangeError::DeadBeforeReply(err)
                    } else {
                        ExchangeError::Other(err)
                    });
                }
            }
        }
    }

    /// The reply in `buf` once its trailer has arrived: output up to the first NUL, then exactly
    /// `\0\0\0<status>`. Bytes after the trailer, or a NUL not followed by two more, mean the peer is not
    /// speaking the vty protocol (or we are out of step with it).
    fn complete_reply(
        &self,
        buf: &[u8],
        command: &dyn Fn() -> String,
    ) -> Result<Option<CommandReply>, ExchangeError<FrrError>> {
        let Some(nul) = buf.iter().position(|&b| b == 0) else {
            return Ok(None);
        };
        let trailer = &buf[nul..];
        let out_of_step = |reason: &str| {
            ExchangeError::Other(FrrError::BadOutput {
                command: command(),
                reason: reason.to_owned(),
                output: quote_output(&String::from_utf8_lossy(buf)),
            })
        };
        if trailer.iter().take(3).any(|&b| b != 0) {
            return Err(out_of_step(
                "a NUL byte inside the reply: not FRR's vty framing",
            ));
        }
        match trailer.len() {
            0..=3 => Ok(None),
            4 => Ok(Some(CommandReply {
                status: trailer[3],
                output: String::from_utf8_lossy(&buf[..nul]).into_owned(),
            })),
            _ => Err(out_of_step("bytes after the end of the reply")),
        }
    }

    fn io_error(&self, command: String, source: io::Error) -> FrrError {
        if matches!(
            source.kind(),
            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
        ) {
            return FrrError::VtyDisconnected {
                socket: self.path.clone(),
                command,
            };
        }
        FrrError::Io { command, source }
    }

    fn connect_error(&self, failure: &ConnectFailure) -> FrrError {
        let socket = self.path.clone();
        match failure.0.kind() {
            io::ErrorKind::NotFound => FrrError::VtySocketMissing { socket },
            io::ErrorKind::ConnectionRefused => FrrError::DaemonNotRunning {
                daemon: "bgpd".to_owned(),
                command: format!("connect {}", socket.display()),
            },
            io::ErrorKind::PermissionDenied => {
                let (owner, hint) = crate::socket_owner::permission_hint(&self.path, "FRR");
                FrrError::VtyPermissionDenied {
                    socket,
                    owner,
                    hint,
                }
            }
            _ => FrrError::VtyConnect {
                socket,
                reason: failure.0.to_string(),
            },
        }
    }
}

/// Whether a connection is still usable after a refused command.
enum Reusable {
    Yes,
    No,
}

/// How a sequence failed.
enum SequenceError {
    /// The connection was dead before the first command got any reply: nothing ran.
    Dead(FrrError),
    /// A command failed or the connection broke midway.
    Refused(FrrError, Reusable),
}

/// How a connect failed.
enum ConnectError {
    /// `connect(2)` itself: remembered for the backoff window.
    Os(ConnectFailure),
    /// Connected, but the peer did not behave like FRR's vty.
    Other(FrrError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn socket() -> VtySocket {
        VtySocket::new(PathBuf::from("/tmp/nonexistent/bgpd.vty"))
    }

    fn parse(bytes: &[u8]) -> Result<Option<(u8, String)>, String> {
        match socket().complete_reply(bytes, &|| "x".to_owned()) {
            Ok(reply) => Ok(reply.map(|r| (r.status, r.output))),
            Err(err) => Err(err.into_inner().to_string()),
        }
    }

    #[test]
    fn replies_end_with_three_nuls_and_a_status() {
        assert_eq!(parse(b""), Ok(None));
        assert_eq!(parse(b"partial output"), Ok(None));
        assert_eq!(parse(b"out\0\0"), Ok(None));
        assert_eq!(parse(b"out\0\0\0"), Ok(None));
        assert_eq!(parse(b"out\n\0\0\0\0"), Ok(Some((0, "out\n".to_owned()))));
        assert_eq!(parse(b"\0\0\0\x02"), Ok(Some((2, String::new()))));
        assert!(parse(b"a\0b\0\0\0").is_err());
        assert!(parse(b"a\0\0\0\0more").is_err());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(
            proptest::prop_oneof![proptest::prelude::Just(0u8), proptest::prelude::any::<u8>()],
            0..64,
        )) {
            // A reply is complete only when it ends with exactly one `\0\0\0<status>` trailer.
            if let Ok(Some((status, _))) = parse(&bytes) {
                let n = bytes.len();
                proptest::prop_assert!(n >= 4 && bytes[n - 4..n - 1] == [0, 0, 0]);
                proptest::prop_assert_eq!(status, bytes[n - 1]);
                proptest::prop_assert!(!bytes[..n - 4].contains(&0));
            }
        }
    }

    // A paused clock: nothing here waits on real I/O (the socket is missing), and a sleep until the
    // deadline would show as exactly 10 ms, however loaded the machine.
    #[tokio::test(start_paused = true)]
    async fn missing_socket_names_the_path_and_backs_off() {
        let vty = socket();
        let lines = ["show version".to_owned()];
        let deadline = Instant::now() + Duration::from_secs(1);
        let err = vty
            .run(&lines, deadline, Duration::from_secs(1), false)
            .await
            .expect_err("no socket");
        assert!(matches!(err, FrrError::VtySocketMissing { .. }), "{err:?}");
        assert!(
            err.to_string().contains("/tmp/nonexistent/bgpd.vty"),
            "{err}"
        );
        // Inside the backoff window with a deadline before the next attempt: the same error, at once.
        let started = Instant::now();
        let err = vty
            .run(
                &lines,
                Instant::now() + Duration::from_millis(10),
                Duration::from_millis(10),
                false,
            )
            .await
            .expect_err("no socket");
        assert!(matches!(err, FrrError::VtySocketMissing { .. }), "{err:?}");
        assert!(started.elapsed() < Duration::from_millis(10));
    }
}
