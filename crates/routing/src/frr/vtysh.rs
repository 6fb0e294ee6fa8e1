//! Running `vtysh` (argv, never a shell) with a deadline, and turning its exit status and output into
//! typed errors.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::Command;
use tokio::time::Instant;

use super::FrrError;

/// vtysh output beyond this is refused (a summary of a few thousand peers is far below it).
const MAX_OUTPUT: u64 = 32 * 1024 * 1024;

/// How much of vtysh's output an error message quotes.
const MAX_QUOTED_OUTPUT: usize = 600;

/// How long to wait for a killed vtysh to be reaped before giving up on it (tokio reaps it later).
const REAP_GRACE: Duration = Duration::from_millis(500);

/// Extra vtysh options that only select which FRR instance to talk to. Each takes a value.
const ALLOWED_OPTIONS: &[&str] = &["--vty_socket", "-N", "--pathspace", "--config_dir"];

/// Checks `extra_args` against [`ALLOWED_OPTIONS`].
///
/// Anything else could run commands (`-c`, `-f`, `-b`) or write the configuration (`-w`), which nsbeacon
/// must never do: the running config is the state it manages.
pub(crate) fn validate_extra_args(extra_args: &[String]) -> Result<(), FrrError> {
    let mut args = extra_args.iter();
    while let Some(arg) = args.next() {
        let invalid = |reason: &str| FrrError::InvalidExtraArg {
            arg: arg.clone(),
            reason: reason.to_owned(),
        };
        let value = if let Some((option, value)) = arg.split_once('=') {
            if !ALLOWED_OPTIONS.contains(&option) {
                return Err(invalid(
                    "only --vty_socket, -N/--pathspace and --config_dir are allowed",
                ));
            }
            value
        } else if ALLOWED_OPTIONS.contains(&arg.as_str()) {
            args.next()
                .ok_or_else(|| invalid("this option needs a value after it"))?
        } else {
            return Err(invalid(
                "only --vty_socket, -N/--pathspace and --config_dir are allowed",
            ));
        };
        if value.is_empty() || value.contains(['\n', '\0']) {
            return Err(invalid(
                "the option's value must be non-empty and on one line",
            ));
        }
    }
    Ok(())
}

/// How vtysh is invoked: its path and the options that select the FRR instance.
#[derive(Debug, Clone)]
pub(crate) struct Vtysh {
    path: PathBuf,
    extra_args: Vec<String>,
}

impl Vtysh {
    /// `extra_args` must have passed [`validate_extra_args`].
    pub(crate) fn new(path: PathBuf, extra_args: Vec<String>) -> Vtysh {
        Vtysh { path, extra_args }
    }

    /// The invocation as an operator could paste it into a shell (inputs are validated, so single quotes
    /// suffice), used as context in every error.
    pub(crate) fn render(&self, lines: &[String]) -> String {
        let mut out = self.path.display().to_string();
        for arg in &self.extra_args {
            out.push(' ');
            out.push_str(arg);
        }
        for line in lines {
            out.push_str(" -c '");
            out.push_str(line);
            out.push('\'');
        }
        out
    }

    /// Runs vtysh with one `-c` per line and returns its stdout, or a typed error.
    ///
    /// vtysh is killed if it has not finished by `deadline`. `config` marks a configuration call: any
    /// `%` message in its output is then an error even when vtysh exits 0.
    pub(crate) async fn run(
        &self,
        lines: &[String],
        deadline: Instant,
        timeout: Duration,
        config: bool,
    ) -> Result<String, FrrError> {
        let command = self.render(lines);
        let mut cmd = Command::new(&self.path);
        cmd.args(&self.extra_args);
        for line in lines {
            cmd.arg("-c").arg(line);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("VTYSH_PAGER", "cat")
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => FrrError::VtyshNotFound {
                path: self.path.clone(),
            },
            std::io::ErrorKind::PermissionDenied => FrrError::VtyshNotExecutable {
                path: self.path.clone(),
            },
            _ => FrrError::Spawn {
                path: self.path.clone(),
                source,
            },
        })?;
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(FrrError::Spawn {
                path: self.path.clone(),
                source: std::io::Error::other("stdout/stderr pipes missing"),
            });
        };
        let collect = async {
            let mut out = Vec::new();
            let mut err = Vec::new();
            let mut stdout = stdout.take(MAX_OUTPUT);
            let mut stderr = stderr.take(MAX_OUTPUT);
            let (read_out, read_err, status) = tokio::join!(
                stdout.read_to_end(&mut out),
                stderr.read_to_end(&mut err),
                child.wait(),
            );
            (read_out.and(read_err).and(status), out, err)
        };
        let result = tokio::time::timeout_at(deadline, collect).await;
        let (status, out, err) = match result {
            Ok(done) => done,
            Err(_) => {
                let _ = child.start_kill();
                let _ = tokio::time::timeout(REAP_GRACE, child.wait()).await;
                return Err(FrrError::Timeout { command, timeout });
            }
        };
        let status = status.map_err(|source| FrrError::Io {
            command: command.clone(),
            source,
        })?;
        if out.len() as u64 >= MAX_OUTPUT {
            return Err(FrrError::CommandFailed {
                command,
                status: status.code(),
                output: format!("output larger than {MAX_OUTPUT} bytes"),
            });
        }
        let stdout = String::from_utf8_lossy(&out).into_owned();
        let stderr = String::from_utf8_lossy(&err).into_owned();
        let complaint = config && stdout.lines().any(|l| l.trim_start().starts_with('%'));
        if status.success() && !complaint {
            return Ok(stdout);
        }
        Err(classify_failure(command, status.code(), &stdout, &stderr))
    }
}

/// Trims and shortens vtysh output for an error message.
pub(crate) fn quote_output(text: &str) -> String {
    let text = text.trim();
    if text.len() <= MAX_QUOTED_OUTPUT {
        return text.to_owned();
    }
    let mut end = MAX_QUOTED_OUTPUT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

/// Maps a failed vtysh call to an error, from what vtysh printed (FRR 8.4 messages; see the lab notes).
///
/// vtysh has one exit status for every failure (1), so the message decides; anything unrecognised is
/// [`FrrError::CommandFailed`] with the output quoted.
pub(crate) fn classify_failure(
    command: String,
    status: Option<i32>,
    stdout: &str,
    stderr: &str,
) -> FrrError {
    let all = format!("{stdout}\n{stderr}");
    let output = quote_output(&all);
    if all.contains("try running me as a privileged user")
        || (all.contains("vtysh_connect(") && all.contains("Permission denied"))
    {
        return FrrError::SocketPermissionDenied { command, output };
    }
    if all.contains("failed to connect to any daemons") {
        return FrrError::NotReachable { command, output };
    }
    if let Some(daemon) = all
        .lines()
        .find_map(|l| l.trim().strip_suffix(" is not running"))
        && !daemon.is_empty()
        && daemon.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return FrrError::DaemonNotRunning {
            daemon: daemon.to_owned(),
            command,
        };
    }
    if let Some(running) = all
        .lines()
        .find_map(|l| l.trim().strip_prefix("BGP is already running; AS is "))
    {
        return FrrError::AsnMismatch {
            running: running.trim().to_owned(),
            command,
        };
    }
    if all.contains("% Unknown command") {
        return FrrError::UnknownCommand { command, output };
    }
    if all.contains("% Can't find static route specified") {
        return FrrError::NetworkNotConfigured { command };
    }
    if all.contains("% route-map name doesn't match static route") {
        return FrrError::NetworkRouteMapMismatch { command };
    }
    if all.contains("% Specify remote-as or peer-group commands first") {
        return FrrError::UnknownNeighbor { command };
    }
    FrrError::CommandFailed {
        command,
        status,
        output,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(stdout: &str, stderr: &str) -> FrrError {
        classify_failure("vtysh -c 'x'".into(), Some(1), stdout, stderr)
    }

    #[test]
    fn recorded_failures_map_to_variants() {
        assert!(matches!(
            classify("", "Exiting: failed to connect to any daemons.\n"),
            FrrError::NotReachable { .. }
        ));
        assert!(matches!(
            classify(
                "",
                "% Can't open configuration file /etc/frr/vtysh.conf due to 'Permission denied'.\n\
                 Exiting: failed to connect to any daemons.\n\
                 Hint: if this seems wrong, try running me as a privileged user!\n"
            ),
            FrrError::SocketPermissionDenied { .. }
        ));
        assert!(matches!(
            classify(
                "",
                "vtysh_connect(/tmp/x/zebra.vty): stat = Permission denied\n"
            ),
            FrrError::SocketPermissionDenied { .. }
        ));
        match classify("", "bgpd is not running\n") {
            FrrError::DaemonNotRunning { daemon, .. } => assert_eq!(daemon, "bgpd"),
            other => panic!("{other:?}"),
        }
        match classify("BGP is already running; AS is 65001\n", "") {
            FrrError::AsnMismatch { running, .. } => assert_eq!(running, "65001"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            classify("% Unknown command: show version json\n", ""),
            FrrError::UnknownCommand { .. }
        ));
        assert!(matches!(
            classify("% Can't find static route specified\n", ""),
            FrrError::NetworkNotConfigured { .. }
        ));
        assert!(matches!(
            classify("% route-map name doesn't match static route\n", ""),
            FrrError::NetworkRouteMapMismatch { .. }
        ));
        assert!(matches!(
            classify("% Specify remote-as or peer-group commands first\n", ""),
            FrrError::UnknownNeighbor { .. }
        ));
        match classify("something new\n", "") {
            err @ FrrError::CommandFailed { .. } => {
                let text = err.to_string();
                assert!(
                    text.contains("something new") && text.contains("vtysh -c 'x'"),
                    "{text}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn extra_args_allowlist() {
        let ok =
            |a: &[&str]| validate_extra_args(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert!(ok(&[]).is_ok());
        assert!(ok(&["--vty_socket", "/run/frr/x"]).is_ok());
        assert!(ok(&["--vty_socket=/run/frr/x", "-N", "ns1"]).is_ok());
        for bad in [
            &["-c", "write memory"][..],
            &["-w"],
            &["--vty_socket"],
            &["-f", "/tmp/cmds"],
            &["--writeconfig"],
            &["-b"],
            &["--vty_socket="],
        ] {
            assert!(
                matches!(ok(bad), Err(FrrError::InvalidExtraArg { .. })),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn render_quotes_lines() {
        let v = Vtysh::new("vtysh".into(), vec!["--vty_socket".into(), "/d".into()]);
        assert_eq!(
            v.render(&["configure terminal".into(), "router bgp 65001".into()]),
            "vtysh --vty_socket /d -c 'configure terminal' -c 'router bgp 65001'"
        );
    }

    #[test]
    fn quoting_is_bounded() {
        let long = "é".repeat(1000);
        assert!(quote_output(&long).len() <= MAX_QUOTED_OUTPUT + 3);
    }
}
