//! The reconnect gate shared by every persistent client of a routing daemon's unix socket (BIRD's control
//! socket, FRR's vty socket): one open connection, and consecutive failed connects spaced by a backoff.
//!
//! The backoff keeps a client from hammering a daemon that is away, but it must never delay the first
//! attempt after the daemon is back. A daemon that starts creates its socket anew (BIRD and FRR unlink the
//! path and bind again, whether the old file was left by a crash or removed), so the gate remembers which
//! file was at the path when a connect failed and opens at once when another one is there: the reconciler's
//! attempt right after the log watch saw BIRD return is never refused or delayed by a window left over from
//! the outage. While the same file stays (a daemon hung, or a socket nobody listens on) the backoff holds.

use std::future::Future;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use tokio::time::Instant;

use crate::backoff::Backoff;

/// The spacing of failed connects: 50 ms after the first, doubling to 2 s.
pub(crate) const CONNECT_BACKOFF: Backoff =
    Backoff::new(Duration::from_millis(50), Duration::from_secs(2));

/// How often a client waiting out a backoff looks whether the socket file was replaced: a stat of one
/// path, only while waiting, so the first attempt after a restart is at most this late.
const SOCKET_POLL: Duration = Duration::from_millis(10);

/// Which file is at a socket path: a daemon that starts again binds a new one (another inode, a new ctime).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SocketFile {
    device: u64,
    inode: u64,
    changed_sec: i64,
    changed_nsec: i64,
}

impl SocketFile {
    /// The file at `path` now, `None` when there is none (or it cannot be looked at, which the connect
    /// attempt reports properly).
    pub(crate) fn at(path: &Path) -> Option<SocketFile> {
        let meta = std::fs::metadata(path).ok()?;
        Some(SocketFile {
            device: meta.dev(),
            inode: meta.ino(),
            changed_sec: meta.ctime(),
            changed_nsec: meta.ctime_nsec(),
        })
    }

    /// Whether a file other than `known` is at `path` now (a missing file is no news: nothing to connect to).
    pub(crate) fn replaced(path: &Path, known: Option<SocketFile>) -> bool {
        SocketFile::at(path).is_some_and(|now| Some(now) != known)
    }
}

/// Sleeps until `until`, or until a file other than `known` appears at `path`, whichever comes first.
/// Returns whether the file was replaced.
pub(crate) async fn sleep_unless_replaced(
    path: &Path,
    known: Option<SocketFile>,
    until: Instant,
) -> bool {
    loop {
        if SocketFile::replaced(path, known) {
            return true;
        }
        let now = Instant::now();
        if now >= until {
            return false;
        }
        tokio::time::sleep_until(until.min(now + SOCKET_POLL)).await;
    }
}

/// How one exchange on an established connection failed.
pub(crate) enum ExchangeError<E> {
    /// The peer closed or reset the connection before any byte of the reply arrived: on a reused
    /// connection, the daemon restarted since the last command and nothing of this one ran.
    DeadBeforeReply(E),
    /// Anything else.
    Other(E),
}

impl<E> ExchangeError<E> {
    /// The error, whichever way the exchange failed.
    pub(crate) fn into_inner(self) -> E {
        match self {
            ExchangeError::DeadBeforeReply(err) | ExchangeError::Other(err) => err,
        }
    }
}

/// Why [`SocketState::connect`] returned no connection.
pub(crate) enum ConnectRefused<E, F> {
    /// The next attempt is not allowed before the caller's deadline and the socket file is the one that
    /// failed: the remembered failure of the last attempt, if any was kept.
    Backoff(Option<F>),
    /// This attempt failed.
    Failed(E),
}

/// A client's connection (`C`) and its reconnect gate; `F` is what the client remembers of a failed
/// connect to answer commands that fall inside the backoff window.
#[derive(Debug)]
pub(crate) struct SocketState<C, F> {
    /// The open connection, if any. Taken out for an exchange and put back only when still in step.
    pub(crate) connection: Option<C>,
    consecutive_failures: u32,
    retry_at: Option<Instant>,
    last_failure: Option<F>,
    failed_file: Option<SocketFile>,
}

impl<C, F> Default for SocketState<C, F> {
    fn default() -> SocketState<C, F> {
        SocketState {
            connection: None,
            consecutive_failures: 0,
            retry_at: None,
            last_failure: None,
            failed_file: None,
        }
    }
}

impl<C, F: Clone> SocketState<C, F> {
    /// Runs `connect_once` for the socket at `path` once the gate allows it before `deadline`.
    ///
    /// Inside the backoff window, a deadline before the window's end is refused at once with the last
    /// failure (`remember` picks what of a failure to keep); a later deadline waits for the window's end.
    /// Either way, a socket file other than the one at the path when the last attempt failed opens the
    /// gate at once and starts the backoff over.
    pub(crate) async fn connect<E>(
        &mut self,
        path: &Path,
        deadline: Instant,
        connect_once: impl Future<Output = Result<C, E>>,
        remember: impl FnOnce(&E) -> Option<F>,
    ) -> Result<C, ConnectRefused<E, F>> {
        if let Some(retry_at) = self.retry_at.filter(|&at| at > Instant::now()) {
            let replaced = SocketFile::replaced(path, self.failed_file)
                || (retry_at < deadline
                    && sleep_unless_replaced(path, self.failed_file, retry_at).await);
            if replaced {
                tracing::debug!(socket = %path.display(), "socket file replaced (daemon restarted): connecting without waiting out the backoff");
                self.consecutive_failures = 0;
            } else if retry_at >= deadline {
                return Err(ConnectRefused::Backoff(self.last_failure.clone()));
            }
        }
        // The file is looked at before the attempt: one that appears during it is news for the next one.
        let file = SocketFile::at(path);
        match connect_once.await {
            Ok(connection) => {
                self.consecutive_failures = 0;
                self.retry_at = None;
                self.last_failure = None;
                self.failed_file = None;
                Ok(connection)
            }
            Err(err) => {
                self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                self.retry_at = Some(
                    Instant::now() + CONNECT_BACKOFF.after_failures(self.consecutive_failures),
                );
                self.last_failure = remember(&err);
                self.failed_file = file;
                Err(ConnectRefused::Failed(err))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    /// A failed attempt of no kind in particular.
    struct Failure;

    async fn attempt(
        state: &mut SocketState<(), &'static str>,
        path: &Path,
        deadline: Instant,
        succeed: bool,
    ) -> Result<(), ConnectRefused<Failure, &'static str>> {
        let connect_once = async move { if succeed { Ok(()) } else { Err(Failure) } };
        state
            .connect(path, deadline, connect_once, |_| Some("refused"))
            .await
    }

    // A paused clock: waiting out a window would show as its exact length.
    #[tokio::test(start_paused = true)]
    async fn the_backoff_holds_while_the_same_file_stays_and_opens_for_a_new_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("daemon.ctl");
        let first = UnixListener::bind(&path).expect("bind");
        let mut state = SocketState::default();
        let far = || Instant::now() + Duration::from_secs(10);
        let near = || Instant::now() + Duration::from_millis(10);

        assert!(matches!(
            attempt(&mut state, &path, far(), false).await,
            Err(ConnectRefused::Failed(_))
        ));
        // The same file, a deadline inside the 50 ms window: refused at once with the remembered failure.
        let started = Instant::now();
        assert!(matches!(
            attempt(&mut state, &path, near(), true).await,
            Err(ConnectRefused::Backoff(Some("refused")))
        ));
        assert_eq!(started.elapsed(), Duration::ZERO);
        // A later deadline waits the window out.
        assert!(attempt(&mut state, &path, far(), false).await.is_err());
        assert_eq!(started.elapsed(), Duration::from_millis(50));

        // The daemon restarts: a new file at the path opens the gate at once, whatever the deadline.
        drop(first);
        std::fs::remove_file(&path).expect("unlink");
        let _second = UnixListener::bind(&path).expect("bind again");
        let started = Instant::now();
        assert!(attempt(&mut state, &path, near(), true).await.is_ok());
        assert_eq!(started.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_file_appearing_during_the_wait_ends_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("daemon.ctl");
        let mut state = SocketState::default();
        for _ in 0..8 {
            let _ = attempt(
                &mut state,
                &path,
                Instant::now() + Duration::from_secs(10),
                false,
            )
            .await;
        }
        // Eight failures: the window is 2 s now. A missing file stays no news.
        assert!(!SocketFile::replaced(&path, None));
        let started = Instant::now();
        let creator = {
            let path = path.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                UnixListener::bind(&path).expect("bind")
            })
        };
        assert!(
            attempt(
                &mut state,
                &path,
                Instant::now() + Duration::from_secs(10),
                true
            )
            .await
            .is_ok()
        );
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(300)
                && waited <= Duration::from_millis(300) + SOCKET_POLL,
            "{waited:?}"
        );
        drop(creator.await.expect("bound"));
    }
}
