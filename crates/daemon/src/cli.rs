//! Command line: `nsbeacon [run] | check-config | status | probe | drain | undrain`.
//!
//! Exit codes: 0 success; 1 runtime failure (or, for `probe`, a check that did not pass; for `status`,
//! the daemon could not be reached); 2 configuration error (every problem is listed).

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, Subcommand};
use nsbeacon_prober::ProbeStatus;
use nsbeacon_routing::RouteState;

use crate::config::{self, CheckKind, Config};
use crate::drain::DrainStore;
use crate::probe::{CheckRun, check_target, classify, run_check};
use crate::status::{ServiceStatus, StatusDocument};

/// `println!` that never panics: a closed pipe (`nsbeacon status | head -1`) is not worth a crash.
macro_rules! out {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// `print!` that never panics.
macro_rules! out_raw {
    ($($arg:tt)*) => {{
        let _ = write!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// `eprintln!` that never panics.
macro_rules! err {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

/// Exit code for configuration errors.
pub const EXIT_CONFIG: i32 = 2;
/// Exit code for runtime failures (`probe`: a check failed hard; `status`: the daemon is unreachable).
pub const EXIT_FAILURE: i32 = 1;
/// `status`: the daemon answers, but its BGP daemon does not (or the first reconcile has not run), so
/// what it says about routes is not current.
pub const EXIT_BACKEND_UNREACHABLE: i32 = 3;
/// `probe`: no check failed hard, but at least one gave a soft signal (the service would be degraded).
pub const EXIT_SOFT: i32 = 4;

/// Longest reason shown inside the `status` table; longer ones are cut there and printed in full below.
const REASON_COLUMN_MAX: usize = 60;

/// nsbeacon: announce this node's anycast DNS route only while the local DNS server answers correctly.
#[derive(Debug, Parser)]
#[command(name = "nsbeacon", version, about, long_about = None)]
pub struct Cli {
    /// Configuration file.
    #[arg(short = 'c', long = "config", global = true, default_value = config::DEFAULT_CONFIG_PATH)]
    pub config: PathBuf,
    /// What to do (default: run).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon in the foreground (the default).
    Run,
    /// Validate the configuration and list every problem (exit 0 when valid, 2 otherwise).
    ///
    /// With `--live`, also ask the BGP daemon that every route target exists (exit 2 if one does not, 1
    /// if the BGP daemon cannot be asked).
    CheckConfig {
        /// Also ask the running BGP daemon whether every target exists (read-only).
        #[arg(long)]
        live: bool,
    },
    /// Ask the running daemon for its state and print it as a table.
    ///
    /// Exit 0; 1 if the daemon cannot be reached; 3 if its BGP daemon is unreachable or it is not ready.
    Status {
        /// Print the daemon's JSON document instead of the table.
        #[arg(long)]
        json: bool,
        /// The daemon's HTTP address (default: `[http] listen` from the config).
        #[arg(long)]
        addr: Option<SocketAddr>,
    },
    /// Run every check once (or only SERVICE's) and print everything seen, like dig would.
    ///
    /// Exit 0 when every check passes, 1 when one fails hard, 4 when none fails hard but one is soft.
    ///
    /// With `--now`, ask the running daemon instead (SIGUSR1): it runs every check of every service at once
    /// rather than at its next interval (for ExecStartPost hooks of the DNS server's unit). Exit 0 when the
    /// daemon was asked, 1 if it cannot be reached.
    Probe {
        /// Only this service.
        service: Option<String>,
        /// Make the running daemon probe now (SIGUSR1) instead of probing here.
        #[arg(long)]
        now: bool,
    },
    /// Withdraw SERVICE (or every service) on purpose; persists across restarts.
    ///
    /// Written to the drain store in state_dir; a running daemon notices within a second.
    ///
    /// For the stop hook of the DNS server's unit: `--keep-existing` leaves a drain already in force (an
    /// operator's) untouched, and `--wait` returns only once the running daemon reports every target of
    /// the drained services withdrawn by the BGP daemon (exit 1 if not within the bound), so the server
    /// stops only after no traffic is routed to it.
    Drain {
        /// Only this service (default: all services).
        service: Option<String>,
        /// Why, shown in status and logs.
        #[arg(long)]
        reason: Option<String>,
        /// Leave a drain already in force for the same service (or for all) as it is.
        #[arg(long)]
        keep_existing: bool,
        /// Wait until the running daemon reports the service's targets withdrawn, at most this long
        /// (e.g. `5s`).
        #[arg(long, value_parser = humantime::parse_duration)]
        wait: Option<Duration>,
    },
    /// Cancel a drain of SERVICE (or the drain of all services).
    Undrain {
        /// Only this service (default: the drain of all services).
        service: Option<String>,
        /// Only if the drain in force has exactly this reason (the start hook of the DNS server's unit
        /// ends its own drain, never an operator's).
        #[arg(long)]
        if_reason: Option<String>,
    },
    /// Print every node's record of the fleet from etcd (`[fleet]`): state, reason, since, announced
    /// targets, and per service how many nodes announce against `min_announcing`.
    ///
    /// Exit 0; 1 if etcd cannot be read; 2 if the config has no `[fleet]` section.
    Fleet {
        /// Print the records as JSON instead of the table.
        #[arg(long)]
        json: bool,
    },
}

/// Runs the command line and returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => run(&cli.config),
        Command::CheckConfig { live } => check_config(&cli.config, live),
        Command::Status { json, addr } => status(&cli.config, json, addr),
        Command::Probe { service, now: true } => probe_now(&cli.config, service.as_deref()),
        Command::Probe {
            service,
            now: false,
        } => probe(&cli.config, service.as_deref()),
        Command::Drain {
            service,
            reason,
            keep_existing,
            wait,
        } => drain(
            &cli.config,
            service.as_deref(),
            reason,
            DrainOptions {
                keep_existing,
                wait,
            },
        ),
        Command::Undrain { service, if_reason } => {
            undrain(&cli.config, service.as_deref(), if_reason.as_deref())
        }
        Command::Fleet { json } => fleet(&cli.config, json),
    }
}

fn load(path: &Path) -> Result<Config, i32> {
    config::load(path).map_err(|e| {
        err!("nsbeacon: {e}");
        EXIT_CONFIG
    })
}

fn runtime() -> Result<tokio::runtime::Runtime, i32> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| {
            err!("nsbeacon: cannot start the async runtime: {e}");
            EXIT_FAILURE
        })
}

fn run(path: &Path) -> i32 {
    // Runtime and signal handlers first: from here on a SIGTERM or SIGHUP is queued, not fatal.
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let signals = match rt.block_on(async { crate::daemon::Signals::install() }) {
        Ok(signals) => signals,
        Err(e) => {
            err!("nsbeacon: {e}");
            return EXIT_FAILURE;
        }
    };
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let log_level = crate::daemon::init_logging(
        &config.log.level,
        config.log.format == config::LogFormat::Json,
    );
    match rt.block_on(crate::daemon::run(
        path.to_path_buf(),
        config,
        log_level,
        signals,
    )) {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!(error = %e, "nsbeacon failed");
            err!("nsbeacon: {e}");
            EXIT_FAILURE
        }
    }
}

/// `nsbeacon fleet`: reads the fleet's records straight from etcd (so it works on a node whose nsbeacon is
/// stopped), bounded by `[fleet] timeout`.
fn fleet(path: &Path, json: bool) -> i32 {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let Some(fleet_config) = &config.fleet else {
        err!(
            "nsbeacon: {} has no [fleet] section: this node is not part of a fleet (see the README, \"Fleet guard\")",
            path.display()
        );
        return EXIT_CONFIG;
    };
    let settings = match crate::fleet::settings(fleet_config) {
        Ok(s) => s,
        Err(e) => {
            err!("nsbeacon: {e}");
            return EXIT_CONFIG;
        }
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let bound = fleet_config.timeout.saturating_mul(3);
    let read = rt.block_on(async {
        tokio::time::timeout(bound, async {
            let client = nsbeacon_fleet::FleetClient::connect(settings).await?;
            client.view().await
        })
        .await
    });
    let view = match read {
        Ok(Ok(view)) => view,
        Ok(Err(e)) => {
            err!("nsbeacon: cannot read the fleet from etcd: {e}");
            return EXIT_FAILURE;
        }
        Err(_) => {
            err!(
                "nsbeacon: cannot read the fleet from etcd: no answer within {}",
                humantime::format_duration(bound)
            );
            return EXIT_FAILURE;
        }
    };
    let records = crate::fleet::sorted_records(&view);
    if json {
        match serde_json::to_string_pretty(&records) {
            Ok(text) => out!("{text}"),
            Err(e) => {
                err!("nsbeacon: cannot encode the records: {e}");
                return EXIT_FAILURE;
            }
        }
    } else {
        out_raw!(
            "{}",
            crate::fleet::render_fleet(&config, &records, crate::clock::unix_now_secs())
        );
    }
    0
}

fn check_config(path: &Path, live: bool) -> i32 {
    match load(path) {
        Ok(config) => {
            let checks: usize = config.services.iter().map(|s| s.checks.len()).sum();
            out!(
                "{}: OK ({} service(s), {} check(s), backend {})",
                path.display(),
                config.services.len(),
                checks,
                config.backend
            );
            if live { check_targets_live(&config) } else { 0 }
        }
        Err(code) => code,
    }
}

/// `check-config --live`: reads every route target from the BGP daemon (never changes one) and reports
/// the ones it does not know, with the services listing them.
fn check_targets_live(config: &Config) -> i32 {
    use nsbeacon_routing::RoutingBackend;
    let backend = match crate::backend::Backend::from_config(&config.backend) {
        Ok(backend) => backend,
        Err(e) => {
            err!("nsbeacon: {e}");
            return EXIT_CONFIG;
        }
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let bound = config.backend.timeout().saturating_mul(2);
    let targets = config.route_targets();
    let mut missing = 0;
    let mut unreachable = 0;
    for (target, services) in &targets {
        let listed = services.join(", ");
        match rt.block_on(async { tokio::time::timeout(bound, backend.read(target)).await }) {
            Ok(Ok(status)) => out!(
                "  ok: {target} exists ({}; {}) [service {listed}]",
                status.value.state.as_str(),
                status.value.detail
            ),
            Ok(Err(e)) if e.is_missing_target() => {
                missing += 1;
                err!(
                    "error: {target} does not exist in the BGP daemon [service {listed}]: {e}; fix the name in the config or add it to the BGP daemon's config"
                );
            }
            Ok(Err(e)) => {
                unreachable += 1;
                err!("error: cannot ask the BGP daemon about {target}: {e}");
            }
            Err(_) => {
                unreachable += 1;
                err!("error: the BGP daemon did not answer about {target} within {bound:?}");
            }
        }
    }
    if missing > 0 {
        err!("{missing} route target(s) missing in the BGP daemon");
        EXIT_CONFIG
    } else if unreachable > 0 {
        EXIT_FAILURE
    } else {
        out!(
            "every route target exists in the BGP daemon ({})",
            targets.len()
        );
        0
    }
}

/// Longest time [`http_get`] spends on one request, however slowly the peer trickles its reply.
const HTTP_GET_DEADLINE: Duration = Duration::from_secs(10);

/// Largest reply [`http_get`] accepts (a `/status` of thousands of zones is well below this).
const HTTP_GET_MAX_BYTES: usize = 64 * 1024 * 1024;

/// Why [`http_get`] got no reply. The messages say what to check, for the CLI to print as they are.
#[derive(Debug, thiserror::Error)]
pub enum HttpGetError {
    /// Nothing answered at the address.
    #[error(
        "cannot reach nsbeacon at {addr}: {source} (is it running? is [http] listen the same?)"
    )]
    Connect {
        /// The address asked.
        addr: SocketAddr,
        /// Why the connection failed.
        #[source]
        source: std::io::Error,
    },
    /// The socket's timeouts could not be set.
    #[error("socket setup: {0}")]
    Socket(#[source] std::io::Error),
    /// The request could not be sent.
    #[error("sending the request to {addr}: {source}")]
    Send {
        /// The address asked.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The reply was still coming in at the deadline.
    #[error("{addr} did not finish its reply within {}", humantime::format_duration(*deadline))]
    Deadline {
        /// The address asked.
        addr: SocketAddr,
        /// The deadline for the whole request.
        deadline: Duration,
    },
    /// Reading the reply failed.
    #[error("reading the reply from {addr}: {source}")]
    Read {
        /// The address asked.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The reply was larger than any nsbeacon sends.
    #[error("{addr} sent more than {max_bytes} bytes; is [http] listen the nsbeacon endpoint?")]
    TooLarge {
        /// The address asked.
        addr: SocketAddr,
        /// The cap.
        max_bytes: usize,
    },
    /// The peer closed before the end of the reply's headers.
    #[error("{addr} sent no complete HTTP reply")]
    Incomplete {
        /// The address asked.
        addr: SocketAddr,
    },
    /// The reply did not start with an HTTP status line.
    #[error("{addr} sent a malformed status line")]
    StatusLine {
        /// The address asked.
        addr: SocketAddr,
    },
}

/// GET `path` from the daemon at `addr` (plain HTTP/1.0 on loopback). Bounded: 5 s to connect, at most
/// [`HTTP_GET_DEADLINE`] in all and [`HTTP_GET_MAX_BYTES`] of reply, so pointing `status` at something that
/// is not nsbeacon cannot hang the CLI.
pub fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String), HttpGetError> {
    http_get_bounded(addr, path, HTTP_GET_DEADLINE, HTTP_GET_MAX_BYTES)
}

fn http_get_bounded(
    addr: SocketAddr,
    path: &str,
    deadline: Duration,
    max_bytes: usize,
) -> Result<(u16, String), HttpGetError> {
    let started = std::time::Instant::now();
    let timeout = Duration::from_secs(5);
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|source| HttpGetError::Connect { addr, source })?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(HttpGetError::Socket)?;
    // One write: `write!` on a socket sends each formatted piece separately, and a server that answers
    // after the first piece and closes would turn the rest into a broken pipe.
    let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|source| HttpGetError::Send { addr, source })?;
    let mut raw = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    loop {
        let left = deadline
            .checked_sub(started.elapsed())
            .filter(|left| !left.is_zero())
            .ok_or(HttpGetError::Deadline { addr, deadline })?;
        stream
            .set_read_timeout(Some(left.min(timeout)))
            .map_err(HttpGetError::Socket)?;
        let n = match stream.read(&mut chunk) {
            Ok(n) => n,
            // A read timeout or a signal: the deadline check above decides whether to go on.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::Interrupted
                        | std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(source) => return Err(HttpGetError::Read { addr, source }),
        };
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&chunk[..n]);
        if raw.len() > max_bytes {
            return Err(HttpGetError::TooLarge { addr, max_bytes });
        }
    }
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or(HttpGetError::Incomplete { addr })?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or(HttpGetError::StatusLine { addr })?;
    Ok((code, body.to_owned()))
}

/// Why `nsbeacon status` has no document to show (all exit [`EXIT_FAILURE`]).
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// No HTTP reply.
    #[error(transparent)]
    Get(#[from] HttpGetError),
    /// A reply, but not 200.
    #[error("{addr}/status answered HTTP {code}: {body}")]
    Http {
        /// The address asked.
        addr: SocketAddr,
        /// The HTTP status code.
        code: u16,
        /// The reply's body, usually the reason.
        body: String,
    },
    /// A 200 reply that is not JSON: something other than nsbeacon listens there.
    #[error("{addr}/status did not return JSON: {source}")]
    NotJson {
        /// The address asked.
        addr: SocketAddr,
        /// Where the JSON broke.
        #[source]
        source: serde_json::Error,
    },
    /// JSON, but not the status document this CLI knows (a daemon of another version, or another
    /// program).
    #[error(
        "{addr}/status is not a status document this nsbeacon can read: {source} (is the daemon another nsbeacon version?)"
    )]
    NotStatus {
        /// The address asked.
        addr: SocketAddr,
        /// The field that did not fit.
        #[source]
        source: serde_json::Error,
    },
}

/// Asks the daemon at `addr` for `/status`: the typed document, and the body as sent (for `--json`,
/// which prints the daemon's own words rather than this CLI's re-encoding of them).
pub fn fetch_status(addr: SocketAddr) -> Result<(StatusDocument, String), StatusError> {
    let (code, body) = http_get(addr, "/status")?;
    if code != 200 {
        return Err(StatusError::Http { addr, code, body });
    }
    match serde_json::from_str::<StatusDocument>(&body) {
        Ok(doc) => Ok((doc, body)),
        Err(source) if source.classify() == serde_json::error::Category::Data => {
            Err(StatusError::NotStatus { addr, source })
        }
        Err(source) => Err(StatusError::NotJson { addr, source }),
    }
}

fn status(path: &Path, json: bool, addr: Option<SocketAddr>) -> i32 {
    let addr = match addr {
        Some(a) => a,
        None => match load(path) {
            Ok(c) => c.http.listen,
            Err(code) => return code,
        },
    };
    let (doc, body) = match fetch_status(addr) {
        Ok(fetched) => fetched,
        Err(e) => {
            err!("nsbeacon: {e}");
            return EXIT_FAILURE;
        }
    };
    if json {
        out!("{body}");
    } else {
        out_raw!("{}", render_status(&doc, crate::clock::unix_now()));
    }
    status_exit_code(&doc)
}

/// 0 when the daemon's view of routing is current; [`EXIT_BACKEND_UNREACHABLE`] when its BGP daemon does
/// not answer or the first reconcile pass has not run, so scripts and monitoring can tell.
pub fn status_exit_code(doc: &StatusDocument) -> i32 {
    if doc.backend.reachable && doc.ready {
        0
    } else {
        EXIT_BACKEND_UNREACHABLE
    }
}

fn ago(now: f64, then: f64) -> String {
    let secs = (now - then).max(0.0).round() as u64;
    let text = humantime::format_duration(Duration::from_secs(secs)).to_string();
    format!(
        "{} ago",
        text.split(' ').take(2).collect::<Vec<_>>().join(" ")
    )
}

/// Renders the `/status` document as an aligned table. Pure, and `now` is passed in, so the table
/// (including its "2m 10s ago") is testable without a daemon or a clock.
pub fn render_status(doc: &StatusDocument, now: f64) -> String {
    let mut out = render_header(doc);
    let mut rows = vec![[
        "SERVICE".to_owned(),
        "STATE".to_owned(),
        "REASON".to_owned(),
        "ANNOUNCED".to_owned(),
        "SINCE".to_owned(),
    ]];
    let mut long_reasons = Vec::new();
    for service in &doc.services {
        let reason = if service.reason.chars().count() > REASON_COLUMN_MAX {
            long_reasons.push(format!("{}: {}", service.name, service.reason));
            let cut: String = service.reason.chars().take(REASON_COLUMN_MAX - 1).collect();
            format!("{cut}…")
        } else {
            service.reason.clone()
        };
        rows.push([
            service.name.clone(),
            service.state.as_str().to_owned(),
            reason,
            announced_column(service),
            ago(now, service.since_unix),
        ]);
    }
    let widths: Vec<usize> = (0..5)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for row in &rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i == 4 {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$}  ", width = widths[i]);
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    if !long_reasons.is_empty() {
        let _ = writeln!(out, "reasons in full:");
        for reason in long_reasons {
            let _ = writeln!(out, "  {reason}");
        }
    }
    let exports: Vec<String> = doc
        .targets
        .iter()
        .filter_map(|t| {
            t.exports
                .as_ref()
                .map(|e| format!("  {}: {}", t.id.target, e.summary()))
        })
        .collect();
    if !exports.is_empty() {
        let _ = writeln!(out, "exports (what the BGP daemon sends its peers):");
        for line in exports {
            let _ = writeln!(out, "{line}");
        }
    }
    render_dnssec(doc, now, &mut out);
    let loads: Vec<String> = doc
        .services
        .iter()
        .filter_map(|s| {
            s.load.as_ref().map(|l| {
                let mut line = format!("  {}: {}", s.name, l.summary());
                if let (true, Some(since)) = (l.absorbing, l.absorbing_since_unix) {
                    let _ = write!(line, ", since {}", ago(now, since));
                }
                line
            })
        })
        .collect();
    if !loads.is_empty() {
        let _ = writeln!(out, "load (the DNS server's statistics, [service.load]):");
        for line in loads {
            let _ = writeln!(out, "{line}");
        }
    }
    out
}

/// Zones shown per DNSSEC check in `nsbeacon status`.
const DNSSEC_ZONES_SHOWN: usize = 5;

/// Each DNSSEC check's counts and its zones with the earliest expiry.
fn render_dnssec(doc: &StatusDocument, now: f64, out: &mut String) {
    for service in &doc.services {
        for check in &service.checks {
            let Some(d) = &check.dnssec else { continue };
            let counts: Vec<String> = d.verdicts.iter().map(|(v, n)| format!("{n} {v}")).collect();
            let _ = writeln!(
                out,
                "dnssec {}/{}: {} zone(s): {}",
                service.name,
                check.name,
                d.zones,
                counts.join(", ")
            );
            for zone in d.worst.iter().take(DNSSEC_ZONES_SHOWN) {
                // The report's remaining validity was measured at the run; count on from there.
                let at = check.at_unix.unwrap_or(now);
                let left = zone.remaining_seconds as f64 - (now - at).max(0.0);
                let when = if left > 0.0 {
                    format!(
                        "expires in {}",
                        humantime::format_duration(Duration::from_secs(left as u64))
                    )
                } else {
                    format!(
                        "expired {} ago",
                        humantime::format_duration(Duration::from_secs((-left) as u64))
                    )
                };
                let _ = writeln!(out, "  {} {} RRSIG {when}", zone.zone, zone.covered);
            }
        }
    }
}

/// The lines above the table: the backend, readiness, a failed reload, drains.
fn render_header(doc: &StatusDocument) -> String {
    let mut out = String::new();
    let backend = &doc.backend;
    if backend.reachable {
        let _ = writeln!(
            out,
            "backend {} ({}): reachable, BGP sessions {}/{} up",
            backend.kind,
            backend
                .daemon_version
                .as_deref()
                .unwrap_or("version unknown"),
            backend.sessions_up,
            backend.sessions_total,
        );
    } else {
        let _ = writeln!(
            out,
            "backend {}: UNREACHABLE ({}); BGP sessions and announced routes unknown, shown as last read",
            backend.kind,
            backend.error.as_deref().unwrap_or("no answer yet"),
        );
    }
    if !doc.ready {
        let _ = writeln!(out, "not ready: the first reconcile pass has not finished");
    }
    if let Some(error) = &doc.daemon.last_reload_error {
        let _ = writeln!(
            out,
            "last reload FAILED (the previous configuration stays in force): {error}"
        );
    }
    if !doc.daemon.drains.is_empty() {
        let list: Vec<String> = doc
            .daemon
            .drains
            .iter()
            .map(|(service, reason)| format!("{service}: {reason}"))
            .collect();
        let _ = writeln!(out, "drains: {}", list.join("; "));
    }
    out
}

/// The ANNOUNCED cell: the targets the BGP daemon last reported announced, and whether some are unknown
/// (never read, or the daemon is unreachable), so "none" is only said when it is known.
fn announced_column(service: &ServiceStatus) -> String {
    let announced: Vec<&str> = service
        .targets
        .iter()
        .filter(|t| t.actual == Some(RouteState::Announced))
        .map(|t| t.id.target.as_str())
        .collect();
    let unknown = service.targets.iter().any(|t| t.actual.is_none());
    match (announced.is_empty(), unknown) {
        (false, false) => announced.join(","),
        (false, true) => format!("{} (others unknown)", announced.join(",")),
        (true, true) => "unknown".to_owned(),
        (true, false) => "none".to_owned(),
    }
}

/// The DNS mnemonic of an rcode (`NOERROR`, `REFUSED`, ...), as dig prints it.
pub fn rcode_mnemonic(rcode: nsbeacon_prober::proto::op::ResponseCode) -> String {
    match u16::from(rcode) {
        0 => "NOERROR".to_owned(),
        1 => "FORMERR".to_owned(),
        2 => "SERVFAIL".to_owned(),
        3 => "NXDOMAIN".to_owned(),
        4 => "NOTIMP".to_owned(),
        5 => "REFUSED".to_owned(),
        6 => "YXDOMAIN".to_owned(),
        7 => "YXRRSET".to_owned(),
        8 => "NXRRSET".to_owned(),
        9 => "NOTAUTH".to_owned(),
        10 => "NOTZONE".to_owned(),
        16 => "BADVERS".to_owned(),
        other => format!("RCODE{other}"),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// Prints one check run in detail; returns whether it passed.
fn print_run(run: &CheckRun, out: &mut String) {
    match run {
        CheckRun::Query(Ok(outcome)) => {
            for t in &outcome.transports {
                let _ = writeln!(
                    out,
                    "    {}: {} in {}, rcode {}, {} answer(s){}",
                    t.transport.as_str(),
                    t.status,
                    ms(t.latency),
                    t.rcode
                        .map(rcode_mnemonic)
                        .unwrap_or_else(|| "-".to_owned()),
                    t.answers.len(),
                    t.reason
                        .as_ref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                );
                for answer in &t.answers {
                    let _ = writeln!(out, "      {answer}");
                }
            }
            let _ = writeln!(
                out,
                "    identity: {}",
                outcome.identity.as_deref().unwrap_or("(none reported)")
            );
            if outcome.status == ProbeStatus::Fail
                && let Some(reason) = &outcome.reason
            {
                let _ = writeln!(out, "    failure: {reason}");
            }
        }
        CheckRun::Serial(Ok(report)) => {
            let s = &report.summary;
            let _ = writeln!(
                out,
                "    {} zone(s) in {}: {} in sync, {} lagging, {} behind, {} local failures, {} reference unreachable",
                s.zones,
                ms(report.elapsed),
                s.in_sync,
                s.lagging,
                s.behind,
                s.local_failed,
                s.reference_unreachable
            );
            if let Some(worst) = &s.worst_lag {
                let _ = writeln!(out, "    worst lag: {} behind by {}", worst.zone, worst.lag);
            }
            let mut shown = 0;
            for zone in &report.zones {
                let interesting = report.zones.len() <= 10
                    || !matches!(zone.outcome.verdict, nsbeacon_prober::SerialVerdict::InSync);
                if !interesting {
                    continue;
                }
                shown += 1;
                if shown > 50 {
                    let _ = writeln!(out, "    ... (more zones not shown)");
                    break;
                }
                let o = &zone.outcome;
                let detail = match &o.verdict {
                    nsbeacon_prober::SerialVerdict::LocalFailed(r)
                    | nsbeacon_prober::SerialVerdict::ReferenceUnreachable(r) => {
                        format!(": {r}")
                    }
                    _ => String::new(),
                };
                let _ = writeln!(
                    out,
                    "      {}: {} local {} reference {} lag {}{}",
                    zone.zone,
                    o.verdict.kind(),
                    o.local_serial
                        .map(|v| v.to_string())
                        .unwrap_or_else(|| "-".into()),
                    o.reference_serial
                        .map(|v| v.to_string())
                        .unwrap_or_else(|| "-".into()),
                    o.lag.map(|v| v.to_string()).unwrap_or_else(|| "-".into()),
                    detail
                );
            }
        }
        CheckRun::Dnssec(Ok(report)) => print_dnssec(report, out),
        CheckRun::Query(Err(e)) | CheckRun::Serial(Err(e)) | CheckRun::Dnssec(Err(e)) => {
            let _ = writeln!(out, "    invalid check: {e}");
        }
        CheckRun::Hung(bound) => {
            let _ = writeln!(out, "    did not finish within {}", ms(*bound));
        }
    }
}

/// A DNSSEC sweep: counts per verdict, then every zone of a small sweep or the zones not valid (at most
/// 50) of a large one.
fn print_dnssec(report: &nsbeacon_prober::DnssecReport, out: &mut String) {
    use nsbeacon_prober::ExpiryVerdict;
    let s = &report.summary;
    let counts: Vec<String> = ExpiryVerdict::ALL
        .iter()
        .filter(|v| s.count(v) > 0)
        .map(|v| format!("{} {v}", s.count(v)))
        .collect();
    let _ = writeln!(
        out,
        "    {} zone(s) in {}: {}",
        s.zones,
        ms(report.elapsed),
        counts.join(", ")
    );
    let mut shown = 0;
    for zone in &report.zones {
        if report.zones.len() > 10 && zone.verdict == ExpiryVerdict::Valid {
            continue;
        }
        shown += 1;
        if shown > 50 {
            let _ = writeln!(out, "    ... (more zones not shown)");
            break;
        }
        let earliest = zone
            .earliest
            .map(|e| {
                format!(
                    " earliest {} RRSIG {} s left (expires at unix time {})",
                    e.covered, e.remaining, e.expires_unix
                )
            })
            .unwrap_or_default();
        let detail = match &zone.verdict {
            ExpiryVerdict::LocalFailed(reason) => format!(": {reason}"),
            ExpiryVerdict::MissingSignature { rtype } => format!(": {rtype} unsigned"),
            ExpiryVerdict::NotYetValid { rtype, starts_in } => {
                format!(": {rtype} valid only in {starts_in} s")
            }
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "      {}: {}{earliest}{detail}",
            zone.zone,
            zone.verdict.as_str()
        );
    }
}

/// `nsbeacon probe --now`: finds the running daemon through its `/status` (its PID) and sends it SIGUSR1.
/// Every service is probed (a probe is cheap); a SERVICE argument is checked against the config so a typo
/// in a unit file is an error, not a silent no-op.
fn probe_now(path: &Path, only: Option<&str>) -> i32 {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Err(code) = known_service(&config, path, only) {
        return code;
    }
    let (doc, _) = match fetch_status(config.http.listen) {
        Ok(status) => status,
        Err(e) => {
            err!("nsbeacon: cannot ask the running daemon to probe: {e}");
            return EXIT_FAILURE;
        }
    };
    let Ok(pid) = i32::try_from(doc.daemon.pid) else {
        err!(
            "nsbeacon: the daemon reported an invalid PID {}",
            doc.daemon.pid
        );
        return EXIT_FAILURE;
    };
    match nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGUSR1,
    ) {
        Ok(()) => {
            out!("asked nsbeacon (pid {pid}) to probe every service now");
            0
        }
        Err(e) => {
            err!(
                "nsbeacon: cannot signal the daemon (pid {pid}): {e}; run this as root or as the daemon's user"
            );
            EXIT_FAILURE
        }
    }
}

fn probe(path: &Path, only: Option<&str>) -> i32 {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Err(code) = known_service(&config, path, only) {
        return code;
    }
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let (mut any_soft, mut any_hard) = (false, false);
    for service in config
        .services
        .iter()
        .filter(|s| only.is_none_or(|n| n == s.name))
    {
        out!("service {}", service.name);
        for check in &service.checks {
            let mut out = String::new();
            let _ = writeln!(
                out,
                "  check {} ({}): {}, timeout {}, every {}",
                check.name,
                check.kind.type_name(),
                check_target(check),
                humantime::format_duration(check.timeout),
                humantime::format_duration(check.interval)
            );
            if let CheckKind::Query(spec) = &check.kind {
                let _ = writeln!(
                    out,
                    "    question: {} {} {}; expect rcode {}, AA {}, >= {} answer(s){}",
                    spec.query.name,
                    spec.query.class,
                    spec.query.record_type,
                    spec.expect
                        .rcodes
                        .iter()
                        .map(|r| rcode_mnemonic(*r))
                        .collect::<Vec<_>>()
                        .join("|"),
                    if spec.expect.authoritative {
                        "required"
                    } else {
                        "not required"
                    },
                    spec.expect.min_answers,
                    spec.expect
                        .answer
                        .as_ref()
                        .map(|a| format!(", answer {a:?}"))
                        .unwrap_or_default()
                );
            }
            let run = rt.block_on(run_check(check));
            print_run(&run, &mut out);
            let signal = classify(check, &run);
            let _ = writeln!(
                out,
                "    verdict: {} ({})",
                signal.as_str(),
                signal.detail()
            );
            match signal {
                crate::health::CheckSignal::Pass => {}
                crate::health::CheckSignal::Soft(_) => any_soft = true,
                crate::health::CheckSignal::Hard(_)
                | crate::health::CheckSignal::Refused(_)
                | crate::health::CheckSignal::TimedOut(_) => any_hard = true,
            }
            out_raw!("{out}");
        }
    }
    if any_hard {
        EXIT_FAILURE
    } else if any_soft {
        EXIT_SOFT
    } else {
        0
    }
}

fn known_service(config: &Config, path: &Path, service: Option<&str>) -> Result<(), i32> {
    if let Some(name) = service
        && config.service(name).is_none()
    {
        let known: Vec<&str> = config.services.iter().map(|s| s.name.as_str()).collect();
        err!(
            "nsbeacon: no service named {name:?} in {}; services: {}",
            path.display(),
            known.join(", ")
        );
        return Err(EXIT_CONFIG);
    }
    Ok(())
}

/// `drain` options for hooks.
#[derive(Debug, Clone, Copy, Default)]
struct DrainOptions {
    keep_existing: bool,
    wait: Option<Duration>,
}

fn drain(path: &Path, service: Option<&str>, reason: Option<String>, options: DrainOptions) -> i32 {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Err(code) = known_service(&config, path, service) {
        return code;
    }
    let reason = reason.unwrap_or_else(|| "drained by operator".to_owned());
    let result =
        DrainStore::open(&config.state_dir).and_then(|mut store| match store.own(service) {
            Some(drain) if options.keep_existing => Ok(Some(drain.reason)),
            _ => store.set(service, &reason).map(|()| None),
        });
    let what = service.unwrap_or("all services");
    match result {
        Ok(Some(kept)) => out!("{what} is already drained ({kept}); left as it is"),
        Ok(None) => {
            out!("drained {what} ({reason}); a running nsbeacon withdraws within about a second")
        }
        Err(e) => {
            err!("nsbeacon: {e}");
            return EXIT_FAILURE;
        }
    }
    match options.wait {
        Some(bound) => wait_withdrawn(&config, service, bound),
        None => 0,
    }
}

/// `drain --wait`: polls the running daemon's `/status` until every target of the drained services is
/// desired and reported withdrawn, at most `bound`.
fn wait_withdrawn(config: &Config, service: Option<&str>, bound: Duration) -> i32 {
    let started = std::time::Instant::now();
    let mut last = String::from("the daemon did not answer");
    while started.elapsed() < bound {
        match fetch_status(config.http.listen) {
            Ok((doc, _)) => {
                let pending: Vec<String> = doc
                    .services
                    .iter()
                    .filter(|s| service.is_none_or(|n| n == s.name))
                    .flat_map(|s| {
                        s.targets
                            .iter()
                            .filter(|t| {
                                s.state != crate::health::ServiceState::Drained
                                    || t.actual != Some(nsbeacon_routing::RouteState::Withdrawn)
                            })
                            .map(|t| format!("{} {}", s.name, t.id.target))
                    })
                    .collect();
                if pending.is_empty() {
                    out!(
                        "withdrawn after {}",
                        humantime::format_duration(Duration::from_millis(
                            u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
                        ))
                    );
                    return 0;
                }
                last = format!("still announced or not read back: {}", pending.join(", "));
            }
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    err!(
        "nsbeacon: not withdrawn within {} ({last})",
        humantime::format_duration(bound)
    );
    EXIT_FAILURE
}

fn undrain(path: &Path, service: Option<&str>, if_reason: Option<&str>) -> i32 {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Err(code) = known_service(&config, path, service) {
        return code;
    }
    let what = service.unwrap_or("all services");
    let result = DrainStore::open(&config.state_dir).and_then(|mut store| {
        if let (Some(wanted), Some(drain)) = (if_reason, &store.own(service))
            && drain.reason != wanted
        {
            out!(
                "{what} stays drained: its drain says {:?}, not {wanted:?}",
                drain.reason
            );
            return Ok(false);
        }
        store.clear(service).map(|()| true)
    });
    let result = match result {
        Ok(false) => return 0,
        Ok(true) => Ok(()),
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => {
            out!(
                "undrained {}; a running nsbeacon re-announces once the checks pass",
                service.unwrap_or("all services")
            );
            if let Some(file) = &config.drain_file
                && file.exists()
            {
                out!(
                    "note: the drain file {} still exists and keeps every service drained",
                    file.display()
                );
            }
            0
        }
        Err(e) => {
            err!("nsbeacon: {e}");
            EXIT_FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::OnShutdown;
    use crate::health::ServiceState;
    use crate::routes::{TargetId, TargetKind};
    use crate::status::{
        BackendReport, DaemonInfo, DampingStatus, ServiceTargetStatus, TargetRole,
    };

    /// A loopback peer that answers every connection with `reply`, then trickles one byte every 20 ms
    /// (if `trickle`) until the client goes away.
    fn peer(reply: Vec<u8>, trickle: bool) -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        std::thread::spawn(move || {
            if let Ok((mut conn, _)) = listener.accept() {
                // Read the whole request first: closing with unread bytes makes the kernel send a reset.
                let mut request = Vec::new();
                let mut chunk = [0u8; 1024];
                while !request.ends_with(b"\r\n\r\n") {
                    match conn.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&chunk[..n]),
                    }
                }
                if conn.write_all(&reply).is_err() {
                    return;
                }
                while trickle && conn.write_all(b"x").is_ok() {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        });
        addr
    }

    #[test]
    fn http_get_reads_a_reply_and_bounds_slow_or_huge_ones() {
        let addr = peer(b"HTTP/1.0 200 OK\r\n\r\n{}".to_vec(), false);
        assert_eq!(
            http_get_bounded(addr, "/status", Duration::from_secs(5), 1024).expect("a reply"),
            (200, "{}".to_owned())
        );

        let addr = peer(b"HTTP/1.0 200 OK\r\n\r\n".to_vec(), true);
        let err = http_get_bounded(addr, "/status", Duration::from_millis(300), 1 << 20)
            .expect_err("a trickling peer must not hold the CLI")
            .to_string();
        assert!(
            err.contains("did not finish its reply within 300ms"),
            "{err}"
        );

        let addr = peer(vec![b'x'; 4096], false);
        let err = http_get_bounded(addr, "/status", Duration::from_secs(5), 1024)
            .expect_err("oversized reply")
            .to_string();
        assert!(err.contains("more than 1024 bytes"), "{err}");
    }

    fn document(
        backend: BackendReport,
        ready: bool,
        services: Vec<ServiceStatus>,
    ) -> StatusDocument {
        StatusDocument {
            daemon: DaemonInfo {
                version: "0.0.0".to_owned(),
                pid: 1,
                config_path: "/etc/nsbeacon/nsbeacon.toml".to_owned(),
                started_unix: 0.0,
                config_loaded_unix: 0.0,
                reloads_ok: 0,
                reloads_failed: 0,
                last_reload_error: None,
                on_shutdown: OnShutdown::Withdraw,
                drains: BTreeMap::new(),
            },
            ready,
            backend,
            services,
            targets: Vec::new(),
            last_reconcile_unix: None,
        }
    }

    fn service(
        name: &str,
        state: ServiceState,
        reason: &str,
        since_unix: f64,
        targets: &[(&str, Option<RouteState>)],
    ) -> ServiceStatus {
        ServiceStatus {
            name: name.to_owned(),
            state,
            reason: reason.to_owned(),
            since_unix,
            drained: false,
            damping: DampingStatus {
                penalty: 0.0,
                suppressed: false,
            },
            transitions: 0,
            load: None,
            checks: Vec::new(),
            targets: targets
                .iter()
                .map(|(target, actual)| ServiceTargetStatus {
                    id: TargetId {
                        kind: TargetKind::BirdProtocol,
                        target: (*target).to_owned(),
                    },
                    role: TargetRole::Announce,
                    desired: RouteState::Announced,
                    reconciled: Some(RouteState::Announced),
                    actual: *actual,
                    detail: String::new(),
                    last_error: None,
                    exports: None,
                })
                .collect(),
        }
    }

    fn bgp_peer(name: &str, established: bool, exported: bool) -> nsbeacon_routing::PeerExport {
        nsbeacon_routing::PeerExport {
            session: nsbeacon_routing::PeerSession {
                peer: name.to_owned(),
                established,
                state: if established { "Established" } else { "Active" }.to_owned(),
                bfd: established.then(|| "Up".to_owned()),
            },
            exported,
        }
    }

    #[test]
    fn status_shows_how_many_peers_receive_each_announced_target_and_unknown_as_unknown() {
        use crate::status::{ExportsReport, TargetReport};
        let backend = BackendReport {
            kind: "bird".to_owned(),
            reachable: true,
            ..BackendReport::default()
        };
        let mut doc = document(backend, true, Vec::new());
        let target = |name: &str, exports: Option<ExportsReport>| TargetReport {
            id: TargetId {
                kind: TargetKind::BirdProtocol,
                target: name.to_owned(),
            },
            services: vec!["dns".to_owned()],
            desired: RouteState::Announced,
            actual: Some(RouteState::Announced),
            detail: String::new(),
            last_error: None,
            in_sync: true,
            missing: false,
            exports,
        };
        doc.targets = vec![
            target(
                "anycast_dns",
                Some(ExportsReport::known(
                    vec![
                        bgp_peer("upstream1", true, true),
                        bgp_peer("upstream2", true, true),
                    ],
                    1.0,
                )),
            ),
            target(
                "anycast_dns6",
                Some(ExportsReport::known(
                    vec![
                        bgp_peer("upstream1_v6", true, false),
                        bgp_peer("upstream2_v6", false, false),
                    ],
                    1.0,
                )),
            ),
            target(
                "frr_like",
                Some(ExportsReport::Unknown {
                    reason: "the frr backend cannot read what it exports to its peers".to_owned(),
                    at_unix: 1.0,
                }),
            ),
            target("not_read_yet", None),
        ];
        let table = render_status(&doc, 2.0);
        assert!(
            table.contains(
                "  anycast_dns: announced to 2/2 peers (upstream1 bfd Up, upstream2 bfd Up)\n"
            ),
            "{table}"
        );
        assert!(
            table.contains(
                "  anycast_dns6: announced to 0/2 peers (upstream1_v6 bfd Up not exported, upstream2_v6 Active): NO PEER RECEIVES IT\n"
            ),
            "{table}"
        );
        assert!(
            table.contains("  frr_like: exports unknown: the frr backend cannot read"),
            "{table}"
        );
        assert!(!table.contains("not_read_yet"), "{table}");
        assert!(!table.contains("frr_like: announced to 0"), "{table}");
    }

    #[test]
    fn status_table_is_aligned_and_lists_announced_targets() {
        let backend = BackendReport {
            kind: "bird".to_owned(),
            reachable: true,
            daemon_version: Some("BIRD 2.0.12".to_owned()),
            sessions_up: 1,
            sessions_total: 1,
            ..BackendReport::default()
        };
        let doc = document(
            backend,
            true,
            vec![
                service(
                    "dns",
                    ServiceState::Up,
                    "all checks pass",
                    1000.0,
                    &[
                        ("anycast_dns", Some(RouteState::Announced)),
                        ("anycast_degraded", Some(RouteState::Withdrawn)),
                    ],
                ),
                service(
                    "secondary-long-name",
                    ServiceState::Down,
                    "check soa: timeout",
                    1100.0,
                    &[("x", Some(RouteState::Withdrawn))],
                ),
            ],
        );
        let table = render_status(&doc, 1130.0);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("backend bird (BIRD 2.0.12): reachable, BGP sessions 1/1 up"));
        assert!(lines[1].starts_with("SERVICE "));
        let state_col = lines[1].find("STATE").expect("STATE header");
        assert_eq!(lines[2].find("up"), Some(state_col));
        assert_eq!(lines[3].find("down"), Some(state_col));
        assert!(lines[2].contains("anycast_dns"));
        assert!(!lines[2].contains("anycast_degraded"));
        assert!(lines[2].ends_with("2m 10s ago"));
        assert!(lines[3].contains(" none "));
        assert!(lines[3].ends_with("30s ago"));
        assert_eq!(status_exit_code(&doc), 0);
    }

    #[test]
    fn status_says_what_it_cannot_know_shows_a_failed_reload_and_cuts_long_reasons() {
        let long = format!(
            "check soa: {}",
            "the server's reply is not a valid DNS message ".repeat(3)
        );
        let backend = BackendReport {
            kind: "bird".to_owned(),
            reachable: false,
            error: Some("connect /run/bird/bird.ctl: connection refused".to_owned()),
            ..BackendReport::default()
        };
        let mut doc = document(
            backend,
            true,
            vec![service(
                "dns",
                ServiceState::Down,
                &long,
                1000.0,
                &[("anycast_dns", None)],
            )],
        );
        doc.daemon.last_reload_error = Some("line 3: unknown key `intervall`".to_owned());
        let table = render_status(&doc, 1130.0);
        assert!(
            table.contains(
                "backend bird: UNREACHABLE (connect /run/bird/bird.ctl: connection refused)"
            ),
            "{table}"
        );
        assert!(!table.contains("0/0"), "{table}");
        assert!(
            table
                .contains("last reload FAILED (the previous configuration stays in force): line 3"),
            "{table}"
        );
        let row = table
            .lines()
            .find(|l| l.starts_with("dns "))
            .expect("dns row");
        assert!(row.contains(" unknown "), "{row}");
        assert!(row.contains('…'), "{row}");
        assert!(row.chars().count() < 120, "the table stays narrow: {row}");
        assert!(table.contains("reasons in full:"), "{table}");
        assert!(table.contains(&long), "{table}");
        assert_eq!(status_exit_code(&doc), EXIT_BACKEND_UNREACHABLE);

        let reachable = BackendReport {
            reachable: true,
            ..BackendReport::default()
        };
        let not_ready = document(reachable, false, Vec::new());
        assert_eq!(status_exit_code(&not_ready), EXIT_BACKEND_UNREACHABLE);
        assert!(render_status(&not_ready, 0.0).contains("not ready"));
    }

    #[test]
    fn status_table_lists_drains_and_partly_known_targets_from_a_document_read_back() {
        let backend = BackendReport {
            kind: "frr".to_owned(),
            reachable: true,
            sessions_up: 2,
            sessions_total: 3,
            ..BackendReport::default()
        };
        let mut doc = document(
            backend,
            true,
            vec![service(
                "dns",
                ServiceState::Drained,
                "drained: maintenance",
                1000.0,
                &[
                    ("anycast_dns", Some(RouteState::Announced)),
                    ("anycast_degraded", None),
                ],
            )],
        );
        doc.daemon
            .drains
            .insert("dns".to_owned(), "maintenance".to_owned());
        // What the CLI renders is what it read back from the wire.
        let wire = serde_json::to_string(&doc).expect("serializes");
        let doc: StatusDocument = serde_json::from_str(&wire).expect("deserializes");
        let table = render_status(&doc, 1005.0);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[0],
            "backend frr (version unknown): reachable, BGP sessions 2/3 up"
        );
        assert_eq!(lines[1], "drains: dns: maintenance");
        let row = lines
            .iter()
            .find(|l| l.starts_with("dns "))
            .expect("dns row");
        assert!(row.contains(" drained "), "{row}");
        assert!(row.contains("anycast_dns (others unknown)"), "{row}");
        assert!(row.ends_with("5s ago"), "{row}");
        assert_eq!(status_exit_code(&doc), 0);
    }

    #[test]
    fn a_reply_that_is_json_but_not_a_status_document_is_named_as_such() {
        let addr = peer(b"HTTP/1.0 200 OK\r\n\r\n{\"ready\": true}".to_vec(), false);
        let err = fetch_status(addr).expect_err("not a status document");
        assert!(matches!(err, StatusError::NotStatus { .. }), "{err:?}");
        let addr = peer(b"HTTP/1.0 200 OK\r\n\r\n<html>".to_vec(), false);
        let err = fetch_status(addr).expect_err("not JSON");
        assert!(err.to_string().contains("did not return JSON"), "{err}");
        let addr = peer(b"HTTP/1.0 503 Unavailable\r\n\r\nstarting".to_vec(), false);
        let err = fetch_status(addr).expect_err("not 200");
        assert!(
            err.to_string()
                .ends_with("/status answered HTTP 503: starting"),
            "{err}"
        );
    }
}
