//! [`BirdBackend`]: announce = `enable`, withdraw = `disable`, read-back from `show protocols`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

use super::decision::{Decision, DecisionDir};
use super::error::BirdError;
use super::exports::{
    ProtocolDetails, parse_bfd_sessions, parse_protocols_all, parse_route_prefixes, quoted_symbol,
};
use super::reply::{Reply, ReplyCode};
use super::socket::BirdControlSocket;
use crate::{
    BackendHealth, BirdProtocolName, PeerExport, PeerSession, RouteState, RouteTarget,
    RoutingBackend, RoutingError, TargetStatus, Timed,
};

/// BIRD's control socket on Debian/Ubuntu (`bird2` package) and in BIRD's default build
/// (`--with-runtimedir=/run/bird`).
pub const DEFAULT_SOCKET: &str = "/run/bird/bird.ctl";

/// Default bound on one backend operation. BIRD answers in well under a millisecond; seconds mean trouble.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// How to reach BIRD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BirdConfig {
    /// BIRD's control socket (`bird -s PATH`); default [`DEFAULT_SOCKET`].
    pub socket: PathBuf,
    /// Bound on every operation (`set`, `read`, `health`), connecting and waiting for its turn included;
    /// default [`DEFAULT_TIMEOUT`].
    pub timeout: Duration,
    /// Where nsbeacon writes its decision for each protocol (`<dir>/<protocol>.conf`, see [`DecisionDir`])
    /// before each `enable`/`disable`, for the templates to include. `None`: no files, and every
    /// `birdc configure` re-disables the protocols nsbeacon enabled (repaired by the log watch).
    pub decision_dir: Option<PathBuf>,
}

impl Default for BirdConfig {
    fn default() -> BirdConfig {
        BirdConfig {
            socket: PathBuf::from(DEFAULT_SOCKET),
            timeout: DEFAULT_TIMEOUT,
            decision_dir: None,
        }
    }
}

/// Whether an `enable`/`disable` changed anything (decided from the reply code, `0009`/`0011` vs
/// `0008`/`0010`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ToggleOutcome {
    /// The protocol was switched (`0009 disabled`, `0011 enabled`).
    Changed,
    /// The protocol already was in that state (`0008 already disabled`, `0010 already enabled`).
    AlreadyInState,
}

/// The State column of `show protocols`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ProtocolState {
    /// `up`: running; a static protocol's routes are in the table, a BGP session is established.
    Up,
    /// `down`: stopped (disabled, or failed).
    Down,
    /// `start`: enabled but not up yet (e.g. a BGP session still connecting).
    Start,
    /// `stop`: shutting down.
    Stop,
    /// `flush`: down, routes still being flushed.
    Flush,
    /// A state this version of nsbeacon does not know (kept verbatim).
    Other(String),
}

impl ProtocolState {
    fn parse(column: &str) -> ProtocolState {
        match column {
            "up" => ProtocolState::Up,
            "down" => ProtocolState::Down,
            "start" => ProtocolState::Start,
            "stop" => ProtocolState::Stop,
            "flush" => ProtocolState::Flush,
            other => ProtocolState::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for ProtocolState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProtocolState::Up => "up",
            ProtocolState::Down => "down",
            ProtocolState::Start => "start",
            ProtocolState::Stop => "stop",
            ProtocolState::Flush => "flush",
            ProtocolState::Other(s) => s,
        })
    }
}

/// One row of `show protocols`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolRow {
    /// Protocol name.
    pub name: String,
    /// Protocol type as BIRD prints it: `BGP`, `Static`, `Device`, `Kernel`, ...
    pub protocol: String,
    /// Main table, or `---`.
    pub table: String,
    /// The State column.
    pub state: ProtocolState,
    /// The Since and Info columns as printed (e.g. `15:49:35.300  Established`): for humans only, since the
    /// time format is configurable and may contain spaces.
    pub since_and_info: String,
}

impl ProtocolRow {
    /// Parses a `1002` row's text: name, type, table and state are the first four columns.
    pub(crate) fn parse(text: &str) -> Option<ProtocolRow> {
        let mut rest = text.trim_start();
        let mut columns = Vec::with_capacity(4);
        for _ in 0..4 {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            let (column, tail) = rest.split_at(end);
            if column.is_empty() {
                return None;
            }
            columns.push(column);
            rest = tail.trim_start();
        }
        Some(ProtocolRow {
            name: columns[0].to_owned(),
            protocol: columns[1].to_owned(),
            table: columns[2].to_owned(),
            state: ProtocolState::parse(columns[3]),
            since_and_info: rest.trim_end().to_owned(),
        })
    }

    /// Whether this row is a BGP session.
    pub fn is_bgp(&self) -> bool {
        self.protocol == "BGP"
    }
}

/// What `show status` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonStatus {
    /// The version row (`1000`), e.g. `BIRD 2.0.12`.
    pub version: Option<String>,
    /// The final line's text, e.g. `Daemon is up and running` or `Reconfiguration in progress`.
    pub summary: String,
}

/// The BIRD 2 routing backend: one persistent control-socket connection, protocols as route targets.
///
/// Announce is `enable "NAME"`, withdraw is `disable "NAME"`; both are idempotent (`already enabled` /
/// `already disabled` are successes). The name is sent quoted: BIRD then treats it as a pattern, which for a
/// validated [`BirdProtocolName`] (no `*`/`?`) matches exactly that protocol, and an unknown name yields
/// `8003 No protocols match` instead of a parse error. Read-back is the State column of
/// `show protocols "NAME"`: `up` is [`RouteState::Announced`], anything else [`RouteState::Withdrawn`].
///
/// With a [`DecisionDir`], `set` first writes the protocol's decision file (announce: it must succeed before
/// the `enable`; withdraw: the `disable` runs whatever happens to the file, which is removed if it cannot
/// be rewritten), and `read` makes the file agree with the protocol's running state, so a file left by an
/// earlier run never contradicts what BIRD does.
#[derive(Debug)]
pub struct BirdBackend {
    socket: BirdControlSocket,
    decisions: Option<DecisionDir>,
}

impl BirdBackend {
    /// A backend for the BIRD at `config.socket`. Nothing is connected until the first operation, so the
    /// daemon can start before BIRD.
    pub fn new(config: BirdConfig) -> Result<BirdBackend, BirdError> {
        if config.timeout.is_zero() {
            return Err(BirdError::InvalidConfig {
                reason: "the timeout is zero: every operation would fail; use e.g. 2s".to_owned(),
            });
        }
        if config.socket.as_os_str().is_empty() {
            return Err(BirdError::InvalidConfig {
                reason: format!("the socket path is empty; BIRD's default is {DEFAULT_SOCKET}"),
            });
        }
        if let Some(dir) = &config.decision_dir
            && !dir.is_absolute()
        {
            return Err(BirdError::InvalidConfig {
                reason: format!(
                    "the decision dir {} is not an absolute path; the templates include an absolute path \
                     (/run/nsbeacon/bird)",
                    dir.display()
                ),
            });
        }
        Ok(BirdBackend {
            socket: BirdControlSocket::new(config.socket, config.timeout),
            decisions: config.decision_dir.map(DecisionDir::new),
        })
    }

    /// The control socket path.
    pub fn socket_path(&self) -> &Path {
        self.socket.path()
    }

    /// The decision files, when configured.
    pub fn decision_dir(&self) -> Option<&DecisionDir> {
        self.decisions.as_ref()
    }

    /// The underlying control-socket client, for commands this backend does not wrap.
    pub fn control_socket(&self) -> &BirdControlSocket {
        &self.socket
    }

    /// `enable "NAME"`: the protocol starts (a static protocol's routes are announced).
    pub async fn enable(&self, name: &BirdProtocolName) -> Result<Timed<ToggleOutcome>, BirdError> {
        self.toggle(
            name,
            "enable",
            ReplyCode::ENABLED,
            ReplyCode::ALREADY_ENABLED,
        )
        .await
    }

    /// `disable "NAME"`: the protocol stops (its routes are withdrawn; a BGP session is closed).
    pub async fn disable(
        &self,
        name: &BirdProtocolName,
    ) -> Result<Timed<ToggleOutcome>, BirdError> {
        self.toggle(
            name,
            "disable",
            ReplyCode::DISABLED,
            ReplyCode::ALREADY_DISABLED,
        )
        .await
    }

    async fn toggle(
        &self,
        name: &BirdProtocolName,
        verb: &str,
        changed: ReplyCode,
        unchanged: ReplyCode,
    ) -> Result<Timed<ToggleOutcome>, BirdError> {
        let start = Instant::now();
        let command = format!("{verb} \"{name}\"");
        let reply = self
            .socket
            .command_until(&command, start + self.socket.timeout())
            .await?;
        self.check_protocol_reply(&reply, name, &command)?;
        let outcome = if reply.has_code(changed) {
            ToggleOutcome::Changed
        } else if reply.has_code(unchanged) {
            ToggleOutcome::AlreadyInState
        } else {
            return Err(self.unexpected(
                &command,
                &reply,
                "a 00xx line saying the protocol changed or already was",
            ));
        };
        tracing::debug!(socket = %self.socket.path().display(), %command, ?outcome, elapsed = ?start.elapsed(), "BIRD command");
        Ok(Timed {
            value: outcome,
            elapsed: start.elapsed(),
        })
    }

    /// `show protocols "NAME"`: the protocol's row.
    pub async fn protocol(&self, name: &BirdProtocolName) -> Result<Timed<ProtocolRow>, BirdError> {
        let start = Instant::now();
        let row = self
            .protocol_until(name, start + self.socket.timeout())
            .await?;
        Ok(Timed {
            value: row,
            elapsed: start.elapsed(),
        })
    }

    async fn protocol_until(
        &self,
        name: &BirdProtocolName,
        deadline: Instant,
    ) -> Result<ProtocolRow, BirdError> {
        let command = format!("show protocols \"{name}\"");
        let reply = self.socket.command_until(&command, deadline).await?;
        self.check_protocol_reply(&reply, name, &command)?;
        let rows = self.rows(&reply, &command)?;
        let mut matching = rows.into_iter().filter(|row| row.name == name.as_str());
        match (matching.next(), matching.next()) {
            (Some(row), None) => Ok(row),
            _ => Err(self.unexpected(&command, &reply, "exactly one 1002 row for the protocol")),
        }
    }

    /// `show protocols`: every protocol's row.
    pub async fn protocols(&self) -> Result<Timed<Vec<ProtocolRow>>, BirdError> {
        let start = Instant::now();
        let rows = self.protocols_until(start + self.socket.timeout()).await?;
        Ok(Timed {
            value: rows,
            elapsed: start.elapsed(),
        })
    }

    async fn protocols_until(&self, deadline: Instant) -> Result<Vec<ProtocolRow>, BirdError> {
        let command = "show protocols";
        let reply = self.socket.command_until(command, deadline).await?;
        self.check_reply(&reply, command)?;
        self.rows(&reply, command)
    }

    /// `show status`: BIRD's version and state.
    pub async fn status(&self) -> Result<Timed<DaemonStatus>, BirdError> {
        let start = Instant::now();
        let status = self.status_until(start + self.socket.timeout()).await?;
        Ok(Timed {
            value: status,
            elapsed: start.elapsed(),
        })
    }

    async fn status_until(&self, deadline: Instant) -> Result<DaemonStatus, BirdError> {
        let command = "show status";
        let reply = self.socket.command_until(command, deadline).await?;
        self.check_reply(&reply, command)?;
        Ok(DaemonStatus {
            version: reply
                .lines_with_code(ReplyCode::VERSION)
                .next()
                .map(|l| l.text.trim().to_owned()),
            summary: reply.last().text.clone(),
        })
    }

    fn rows(&self, reply: &Reply, command: &str) -> Result<Vec<ProtocolRow>, BirdError> {
        reply
            .lines_with_code(ReplyCode::PROTOCOL_ROW)
            .map(|line| {
                ProtocolRow::parse(&line.text).ok_or_else(|| {
                    self.unexpected(
                        command,
                        reply,
                        "1002 rows with name, type, table and state columns",
                    )
                })
            })
            .collect()
    }

    /// Maps error codes to errors; `8003`/`9xxx` on a validated name mean BIRD has no such protocol.
    fn check_protocol_reply(
        &self,
        reply: &Reply,
        name: &BirdProtocolName,
        command: &str,
    ) -> Result<(), BirdError> {
        match reply.first_error() {
            Some(line) if line.code == ReplyCode::NO_PROTOCOLS_MATCH => {
                Err(BirdError::UnknownProtocol {
                    socket: self.socket.path().to_owned(),
                    protocol: name.clone(),
                    command: command.to_owned(),
                    code: line.code,
                    message: line.text.clone(),
                })
            }
            _ => self.check_reply(reply, command),
        }
    }

    fn check_reply(&self, reply: &Reply, command: &str) -> Result<(), BirdError> {
        match reply.first_error() {
            Some(line) => Err(BirdError::CommandFailed {
                socket: self.socket.path().to_owned(),
                command: command.to_owned(),
                code: line.code,
                message: line.text.clone(),
            }),
            None => Ok(()),
        }
    }

    fn unexpected(&self, command: &str, reply: &Reply, expected: &'static str) -> BirdError {
        BirdError::UnexpectedReply {
            socket: self.socket.path().to_owned(),
            command: command.to_owned(),
            expected,
            reply: reply.to_string().chars().take(400).collect(),
        }
    }

    fn protocol_of(target: &RouteTarget) -> Result<&BirdProtocolName, RoutingError> {
        match target {
            RouteTarget::BirdProtocol(name) => Ok(name),
            other => Err(RoutingError::UnsupportedTarget {
                target: other.to_string(),
                backend: "bird",
            }),
        }
    }
}

impl BirdBackend {
    /// Every BGP protocol whose channels use `target`'s table, with its session, BFD state and whether all
    /// of `target`'s routes pass its export filter; one deadline for all commands. See
    /// [`RoutingBackend::exports`].
    pub async fn peer_exports(
        &self,
        target: &BirdProtocolName,
    ) -> Result<Timed<Vec<PeerExport>>, BirdError> {
        let start = Instant::now();
        let deadline = start + self.socket.timeout();
        let command = "show protocols all";
        let reply = self.socket.command_until(command, deadline).await?;
        self.check_reply(&reply, command)?;
        let protocols = parse_protocols_all(&reply).ok_or_else(|| {
            self.unexpected(
                command,
                &reply,
                "1002 rows with name, type, table and state columns",
            )
        })?;
        let Some(own) = protocols.iter().find(|p| p.row.name == target.as_str()) else {
            return Err(BirdError::UnknownProtocol {
                socket: self.socket.path().to_owned(),
                protocol: target.clone(),
                command: command.to_owned(),
                code: ReplyCode::OK,
                message: "not among the protocols BIRD lists".to_owned(),
            });
        };
        let table = own.row.table.clone();
        let quoted_target = Self::symbol(target.as_str(), command, &reply, self)?;
        let prefixes = if own.row.state == ProtocolState::Up {
            let command = format!("show route protocol {quoted_target}");
            let routes = self.socket.command_until(&command, deadline).await?;
            self.check_route_reply(&routes, &command)?;
            parse_route_prefixes(&routes)
        } else {
            Default::default()
        };
        let bfd_running = protocols
            .iter()
            .any(|p| p.row.protocol == "BFD" && p.row.state == ProtocolState::Up);
        let bfd = if bfd_running {
            let command = "show bfd sessions";
            let sessions = self.socket.command_until(command, deadline).await?;
            self.check_reply(&sessions, command)?;
            parse_bfd_sessions(&sessions)
        } else {
            Default::default()
        };
        let peers: Vec<&ProtocolDetails> = protocols
            .iter()
            .filter(|p| p.row.is_bgp())
            .filter(|p| p.tables.is_empty() || p.tables.contains(&table))
            .collect();
        let mut exports = Vec::with_capacity(peers.len());
        for peer in peers {
            let exported = if peer.established() && !prefixes.is_empty() {
                let quoted_peer = Self::symbol(&peer.row.name, command, &reply, self)?;
                let command = format!("show route protocol {quoted_target} export {quoted_peer}");
                let routes = self.socket.command_until(&command, deadline).await?;
                // A 9xxx here is `No valid tables`: the peer's channel went down since the listing.
                match routes.first_error() {
                    Some(line) if line.code.class() == super::reply::CodeClass::ParseError => false,
                    _ => {
                        self.check_route_reply(&routes, &command)?;
                        prefixes.is_subset(&parse_route_prefixes(&routes))
                    }
                }
            } else {
                false
            };
            exports.push(PeerExport {
                session: PeerSession {
                    peer: peer.row.name.clone(),
                    established: peer.established(),
                    state: peer.session_state(),
                    bfd: peer.neighbor.and_then(|n| bfd.get(&n).cloned()),
                },
                exported,
            });
        }
        Ok(Timed {
            value: exports,
            elapsed: start.elapsed(),
        })
    }

    /// `name` as a quoted BIRD symbol, or an error naming the reply it came from.
    fn symbol(
        name: &str,
        command: &str,
        reply: &Reply,
        backend: &BirdBackend,
    ) -> Result<String, BirdError> {
        quoted_symbol(name).ok_or_else(|| {
            backend.unexpected(
                command,
                reply,
                "protocol names BIRD accepts as symbols (no quotes or white space)",
            )
        })
    }

    /// `show route` replies: `8001` (network not found) is an empty answer, other error codes errors.
    fn check_route_reply(&self, reply: &Reply, command: &str) -> Result<(), BirdError> {
        match reply.first_error() {
            Some(line) if line.code == ReplyCode::NETWORK_NOT_FOUND => Ok(()),
            _ => self.check_reply(reply, command),
        }
    }

    /// Makes the decision file of `name` say what BIRD runs (enabled while the protocol is `up` or `start`),
    /// so a file left by an earlier run (a crash, an operator's `birdc disable`) can never turn a later
    /// `birdc configure` or BIRD restart into an announcement nobody decided. A failure is logged, not
    /// returned: the read itself succeeded, and the next `set` reports the same file problem as an error.
    async fn align_decision(
        &self,
        decisions: &DecisionDir,
        name: &BirdProtocolName,
        row: &ProtocolRow,
        deadline: Instant,
    ) {
        let running = if matches!(row.state, ProtocolState::Up | ProtocolState::Start) {
            Decision::Enabled
        } else {
            Decision::Disabled
        };
        let result = match decisions.read(name, deadline).await {
            Ok(on_file) if on_file == running => return,
            Ok(_) => decisions.write(name, running, deadline).await,
            Err(err) => Err(err),
        };
        match result {
            Ok(()) => tracing::info!(
                protocol = %name,
                file = %decisions.file(name).display(),
                ?running,
                "decision file did not match BIRD's running state; rewritten"
            ),
            Err(err) => tracing::warn!(protocol = %name, %err, "cannot align the decision file"),
        }
    }
}

/// Maps a protocol row to the route state the reconciler compares with what it wants.
fn target_status(row: &ProtocolRow) -> TargetStatus {
    let state = if row.state == ProtocolState::Up {
        RouteState::Announced
    } else {
        RouteState::Withdrawn
    };
    let mut detail = format!("{} protocol {} is {}", row.protocol, row.name, row.state);
    if !row.since_and_info.is_empty() {
        detail.push_str(&format!(" (since {})", row.since_and_info));
    }
    TargetStatus { state, detail }
}

impl RoutingBackend for BirdBackend {
    fn name(&self) -> &'static str {
        "bird"
    }

    async fn set(
        &self,
        target: &RouteTarget,
        state: RouteState,
    ) -> Result<Timed<()>, RoutingError> {
        let name = Self::protocol_of(target)?;
        let start = Instant::now();
        let Some(decisions) = &self.decisions else {
            let timed = match state {
                RouteState::Announced => self.enable(name).await?,
                RouteState::Withdrawn => self.disable(name).await?,
            };
            return Ok(Timed {
                value: (),
                elapsed: timed.elapsed,
            });
        };
        // Half of the budget for the file at most, so a hung file system never starves the command.
        let file_deadline = start + self.socket.timeout() / 2;
        match state {
            RouteState::Announced => {
                // The file first: enabled in BIRD but `disabled` in its config would flap on the next
                // `birdc configure`. Without the file, do not announce; the error says how to fix it.
                decisions
                    .write(name, Decision::Enabled, file_deadline)
                    .await?;
                self.enable(name).await?;
            }
            RouteState::Withdrawn => {
                // A withdrawal never waits on the file: write `disabled yes;`, or else remove the file (a
                // missing file is disabled too), disable either way, and report a file failure afterwards.
                let written = match decisions
                    .write(name, Decision::Disabled, file_deadline)
                    .await
                {
                    Ok(()) => Ok(()),
                    Err(err) => decisions.remove(name, file_deadline).await.map_err(|_| err),
                };
                self.disable(name).await?;
                written?;
            }
        }
        Ok(Timed {
            value: (),
            elapsed: start.elapsed(),
        })
    }

    async fn read(&self, target: &RouteTarget) -> Result<Timed<TargetStatus>, RoutingError> {
        let name = Self::protocol_of(target)?;
        let start = Instant::now();
        let row = self
            .protocol_until(name, start + self.socket.timeout())
            .await?;
        if let Some(decisions) = &self.decisions {
            self.align_decision(decisions, name, &row, start + self.socket.timeout())
                .await;
        }
        Ok(Timed {
            value: target_status(&row),
            elapsed: start.elapsed(),
        })
    }

    async fn exports(&self, target: &RouteTarget) -> Result<Timed<Vec<PeerExport>>, RoutingError> {
        let name = Self::protocol_of(target)?;
        Ok(self.peer_exports(name).await?)
    }

    /// `show status` then `show protocols`, both within one timeout.
    async fn health(&self) -> BackendHealth {
        let deadline = Instant::now() + self.socket.timeout();
        let status = match self.status_until(deadline).await {
            Ok(status) => status,
            Err(err) => {
                return BackendHealth {
                    reachable: err.daemon_answered(),
                    error: Some(err.to_string()),
                    ..BackendHealth::default()
                };
            }
        };
        let mut health = BackendHealth {
            reachable: true,
            daemon_version: status.version,
            ..BackendHealth::default()
        };
        match self.protocols_until(deadline).await {
            Ok(rows) => {
                let bgp = rows.iter().filter(|r| r.is_bgp());
                for row in bgp {
                    health.sessions_total += 1;
                    if row.state == ProtocolState::Up {
                        health.sessions_up += 1;
                    }
                }
            }
            Err(err) => {
                health.reachable = err.daemon_answered();
                health.error = Some(err.to_string());
            }
        }
        health
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_parse_recorded_output() {
        let row = ProtocolRow::parse(
            "upstream   BGP        ---        up     15:49:35.300  Established   ",
        )
        .expect("row");
        assert_eq!(row.name, "upstream");
        assert!(row.is_bgp());
        assert_eq!(row.table, "---");
        assert_eq!(row.state, ProtocolState::Up);
        assert_eq!(row.since_and_info, "15:49:35.300  Established");
        let row = ProtocolRow::parse("anycast-dns.v4 Static     master4    down   16:31:20.217  ")
            .expect("row");
        assert_eq!(row.state, ProtocolState::Down);
        assert_eq!(target_status(&row).state, RouteState::Withdrawn);
        assert_eq!(
            target_status(&row).detail,
            "Static protocol anycast-dns.v4 is down (since 16:31:20.217)"
        );
        assert!(ProtocolRow::parse("only three columns").is_none());
        assert!(ProtocolRow::parse("").is_none());
    }

    #[test]
    fn config_is_checked() {
        assert!(BirdBackend::new(BirdConfig::default()).is_ok());
        let zero = BirdConfig {
            timeout: Duration::ZERO,
            ..BirdConfig::default()
        };
        assert!(matches!(
            BirdBackend::new(zero),
            Err(BirdError::InvalidConfig { .. })
        ));
        let empty = BirdConfig {
            socket: PathBuf::new(),
            ..BirdConfig::default()
        };
        assert!(matches!(
            BirdBackend::new(empty),
            Err(BirdError::InvalidConfig { .. })
        ));
    }
}
