//! Watching the DNS server's process (`[service.watch]`), so that its exit is acted on at once.
//!
//! Probes find a dead server only at their next run; a pidfd (Linux 5.3+) becomes readable the moment
//! the process exits. The watch then asks the service's checks to run at once with a *decisive* flag:
//! one failing run takes the check down (no `fall` failures needed; the exit already confirmed it), and a
//! run that passes (the server was restarted in the meantime) counts as a pass. After an exit the watch
//! re-reads the PID file until it names a live process, and asks for an immediate (ordinary) run when it
//! does, so a restarted server is re-probed at once rather than at the next interval.
//!
//! `pid_file` may also name a systemd unit's `cgroup.procs` (e.g.
//! `/sys/fs/cgroup/system.slice/knot.service/cgroup.procs`): its first line is the unit's first process,
//! which for Knot, NSD (`-d`) and BIND (`-f`) is the server itself; Debian's NSD unit writes no PID file.
//!
//! The watch never changes routes by itself: it only makes probes run sooner. A missing or unreadable
//! PID file, a PID that does not exist or a kernel without pidfds cost the fast path, never a route: the
//! probes go on as without a watch, and the watch retries every [`POLL_INTERVAL`].

use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustix::process::{Pid, PidfdFlags, pidfd_open};
use tokio::io::unix::AsyncFd;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::ProcessWatch;
use crate::file::{self, FileError};
use crate::probe::ProbeNow;

/// How often the PID file is re-read while no live process is watched.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Longest a PID file read may take (it lives on a tmpfs; this only guards against a hung mount).
const READ_DEADLINE: Duration = Duration::from_secs(1);

/// A PID file is a number and a newline; anything larger is not one.
const PID_FILE_LIMIT: u64 = 64;

/// Why the watched process could not be found.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The PID file could not be read.
    #[error(transparent)]
    Read(#[from] FileError),
    /// Reading the PID file took too long.
    #[error("reading {path} took longer than {READ_DEADLINE:?}")]
    Slow {
        /// The PID file.
        path: String,
    },
    /// The PID file does not hold a process id.
    #[error(
        "{path} does not hold a process id (found {found:?}); point watch.pid_file at the DNS server's PID file"
    )]
    NotAPid {
        /// The PID file.
        path: String,
        /// What it holds (trimmed, at most 64 bytes).
        found: String,
    },
    /// No process has that id (a stale PID file), or it cannot be watched.
    #[error("cannot watch process {pid} from {path}: {source}")]
    Open {
        /// The id read.
        pid: i32,
        /// The PID file.
        path: String,
        /// The kernel's answer (ESRCH: no such process).
        source: std::io::Error,
    },
}

/// The process id in the PID file at `path`.
pub async fn read_pid(path: &Path) -> Result<i32, WatchError> {
    let owned = path.to_path_buf();
    let shown = path.display().to_string();
    let text = file::run_with_deadline_async(
        READ_DEADLINE,
        || {
            Err(WatchError::Slow {
                path: shown.clone(),
            })
        },
        move || file::read_text(&owned, PID_FILE_LIMIT, "PID file").map_err(WatchError::from),
    )
    .await?;
    // A PID file holds one number; a cgroup's `cgroup.procs` (a systemd unit's processes) lists one per
    // line, the main process first for a single-process server: the first line either way.
    let trimmed = text.lines().next().unwrap_or("").trim();
    trimmed
        .parse::<i32>()
        .ok()
        .filter(|pid| *pid > 0)
        .ok_or_else(|| WatchError::NotAPid {
            path: path.display().to_string(),
            found: trimmed.to_owned(),
        })
}

/// A pidfd for `pid`: readable once the process has exited.
fn open(pid: i32, path: &Path) -> Result<AsyncFd<OwnedFd>, WatchError> {
    let error = |source: std::io::Error| WatchError::Open {
        pid,
        path: path.display().to_string(),
        source,
    };
    let pid_t =
        Pid::from_raw(pid).ok_or_else(|| error(std::io::Error::other("not a valid pid")))?;
    let fd = pidfd_open(pid_t, PidfdFlags::NONBLOCK).map_err(|e| error(e.into()))?;
    register(fd).map_err(error)
}

/// Registers the pidfd with tokio's reactor.
#[allow(unsafe_code)]
fn register(fd: OwnedFd) -> std::io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: `register` requires that the descriptor stays open and the same for the AsyncFd's whole
    // life. The AsyncFd takes ownership of the OwnedFd, which nothing else can close or replace, and
    // `OwnedFd::as_raw_fd` always returns the descriptor it owns.
    unsafe { AsyncFd::register(fd) }.map_err(std::io::Error::from)
}

/// Watches the process named by `config.pid_file` until `cancel`; see the module documentation.
pub async fn watch(
    config: ProcessWatch,
    probe_now: Arc<watch::Sender<ProbeNow>>,
    cancel: CancellationToken,
) {
    let path = config.pid_file;
    // The process that exited last: a stale PID file still naming it is not a restart.
    let mut exited: Option<i32> = None;
    // Said once per episode of "cannot find the process", not every poll.
    let mut complained = false;
    loop {
        match read_pid(&path).await.and_then(|pid| {
            if exited == Some(pid) {
                Err(WatchError::Open {
                    pid,
                    path: path.display().to_string(),
                    source: std::io::Error::other(
                        "the PID file still names the process that exited",
                    ),
                })
            } else {
                open(pid, &path).map(|fd| (pid, fd))
            }
        }) {
            Ok((pid, fd)) => {
                complained = false;
                if exited.is_some() {
                    info!(pid, pid_file = %path.display(), "the DNS server is back; probing at once");
                    probe_now.send_modify(|now| *now = now.next(false));
                } else {
                    info!(pid, pid_file = %path.display(), "watching the DNS server's process");
                }
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    ready = fd.readable() => {
                        if let Err(e) = ready {
                            warn!(pid, error = %e, "the process watch failed; probes go on at their interval");
                        } else {
                            warn!(pid, pid_file = %path.display(), "the DNS server's process exited; probing at once (one failure withdraws)");
                            probe_now.send_modify(|now| *now = now.next(true));
                        }
                        exited = Some(pid);
                    }
                }
            }
            Err(e) => {
                if complained {
                    debug!(error = %e, "the DNS server's process is not there yet");
                } else {
                    info!(error = %e, "cannot watch the DNS server's process; probes go on at their interval, retrying every 100 ms");
                    complained = true;
                }
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(POLL_INTERVAL) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_exit_asks_for_a_decisive_run_and_a_successor_for_an_ordinary_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pid_file = dir.path().join("server.pid");
        let mut first = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        std::fs::write(&pid_file, format!("{}\n", first.id())).expect("write pid file");
        let (tx, mut rx) = watch::channel(ProbeNow::default());
        let tx = Arc::new(tx);
        let cancel = CancellationToken::new();
        let task = tokio::spawn(watch(
            ProcessWatch {
                pid_file: pid_file.clone(),
            },
            tx,
            cancel.clone(),
        ));
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            rx.borrow_and_update().seq,
            0,
            "nothing asked while the server runs"
        );
        first.kill().expect("kill");
        first.wait().expect("reap");
        tokio::time::timeout(Duration::from_secs(2), rx.changed())
            .await
            .expect("asked within 2 s of the exit")
            .expect("sender alive");
        let asked = *rx.borrow_and_update();
        assert_eq!(
            asked,
            ProbeNow {
                seq: 1,
                decisive: true
            }
        );
        // The stale PID file is not a restart; a new process is.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!rx.has_changed().expect("sender alive"));
        let mut second = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        std::fs::write(&pid_file, format!("{}\n", second.id())).expect("write pid file");
        tokio::time::timeout(Duration::from_secs(2), rx.changed())
            .await
            .expect("asked within 2 s of the restart")
            .expect("sender alive");
        assert_eq!(
            *rx.borrow_and_update(),
            ProbeNow {
                seq: 2,
                decisive: false
            }
        );
        cancel.cancel();
        task.await.expect("watch ends");
        second.kill().expect("kill");
        second.wait().expect("reap");
    }

    #[tokio::test]
    async fn a_pid_file_that_is_not_a_pid_is_named_in_the_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pid_file = dir.path().join("server.pid");
        std::fs::write(&pid_file, "knot\n").expect("write");
        let error = read_pid(&pid_file).await.expect_err("not a pid");
        assert!(
            error.to_string().contains("does not hold a process id"),
            "{error}"
        );
        std::fs::write(&pid_file, "0\n").expect("write");
        assert!(read_pid(&pid_file).await.is_err());
        // A systemd unit's cgroup.procs: the first process.
        std::fs::write(&pid_file, "4242\n4250\n").expect("write");
        assert_eq!(read_pid(&pid_file).await.expect("first line"), 4242);
        let missing = read_pid(&dir.path().join("absent.pid"))
            .await
            .expect_err("missing");
        assert!(matches!(missing, WatchError::Read(_)), "{missing}");
    }
}
