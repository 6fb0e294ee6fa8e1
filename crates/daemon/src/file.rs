//! Bounded file reading: every file nsbeacon reads (the config file, zones files, the drain store) goes
//! through [`read_text`], so that no path an operator writes can hang or exhaust the process.
//!
//! - The file is opened with `O_NONBLOCK`, so opening a FIFO without a writer returns at once instead of
//!   blocking until someone writes (which froze SIGHUP reloads and `check-config`).
//! - Anything that is not a regular file (FIFO, character or block device, directory, socket) is refused
//!   after `fstat` on the open descriptor, before a single byte is read: `/dev/zero` never ends,
//!   `/dev/stdin` or a FIFO may never deliver.
//! - At most `limit` bytes are read; a longer file is an error naming the limit (a file that grows while
//!   it is read is caught too, because the read itself is capped, not just the size `fstat` reported).
//! - The text must be UTF-8; otherwise the error names the line and column of the first invalid byte.
//!
//! Time: a regular file on a local file system cannot block for long, but a hung network or FUSE mount
//! can. [`run_with_deadline`] runs such work on a helper thread and gives up waiting after a deadline; the
//! daemon additionally never waits for a reload on its signal-handling path (see [`crate::daemon`]).

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

/// Why a file could not be read, naming the file; [`FileError::hint`] says how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file could not be opened (missing, no permission, ...).
    #[error("cannot open {}: {source}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The path is a FIFO, device, directory or socket.
    #[error("{} is {kind}, not a regular file", path.display())]
    NotRegular {
        /// The file.
        path: PathBuf,
        /// What it is instead ("a FIFO (named pipe)", "a character device", ...).
        kind: &'static str,
    },
    /// The file is longer than the limit for its purpose.
    #[error("{} is larger than {}, the limit for {what}", path.display(), fmt_bytes(*limit))]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit in bytes.
        limit: u64,
        /// What the file is for ("a config file", "a zones file", "the drain store").
        what: &'static str,
    },
    /// Reading failed after the file was opened.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not UTF-8 text.
    #[error(
        "{} is not UTF-8 text: invalid byte 0x{byte:02x} at line {line}, column {column} (byte offset {offset})",
        path.display()
    )]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// The first invalid byte.
        byte: u8,
        /// Its byte offset in the file.
        offset: usize,
        /// Its 1-based line.
        line: usize,
        /// Its 1-based column, in characters.
        column: usize,
    },
    /// Reading did not finish in time (a hung network or FUSE file system).
    #[error("reading {} did not finish within {}", path.display(), humantime::format_duration(*after))]
    TimedOut {
        /// The file.
        path: PathBuf,
        /// How long nsbeacon waited.
        after: Duration,
    },
}

impl FileError {
    /// How to fix it, for the `(hint: ...)` part of a message.
    pub fn hint(&self) -> &'static str {
        match self {
            FileError::Open { .. } | FileError::Read { .. } => {
                "check the path and that the user running nsbeacon may read the file"
            }
            FileError::NotRegular { .. } => {
                "give the path of a plain file: nsbeacon refuses FIFOs, devices and directories, whose reads \
                 can block forever or never end"
            }
            FileError::TooLarge { .. } => {
                "check that the path names the intended file; nsbeacon caps what it reads so that a wrong \
                 path cannot exhaust memory"
            }
            FileError::NotUtf8 { .. } => {
                "nsbeacon reads UTF-8 text only; convert the file to UTF-8 (e.g. iconv -f LATIN1 -t UTF-8) or \
                 remove the offending bytes"
            }
            FileError::TimedOut { .. } => {
                "the file system holding the file does not answer (a hung NFS or FUSE mount?); move the file \
                 to a local file system"
            }
        }
    }

    /// True when the file does not exist (for callers to which a missing file is not an error).
    pub fn is_not_found(&self) -> bool {
        matches!(self, FileError::Open { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

/// Replaces the file at `path` with `bytes` atomically: a temporary file in the same directory, fsync,
/// rename over `path`, fsync of the directory (where the file system supports it). A reader sees the old
/// or the new content, never a mix, and a crash leaves one of the two.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{name}.tmp-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            // Persist the rename; not every file system supports fsync on a directory.
            let _ = d.sync_all();
        }
        Ok(())
    };
    write().inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Reads at most `limit` bytes of the regular file at `path` as UTF-8 text. `what` names the file's
/// purpose in the too-large error ("a zones file").
pub fn read_text(path: &Path, limit: u64, what: &'static str) -> Result<String, FileError> {
    let bytes = read_bytes(path, limit, what)?;
    String::from_utf8(bytes).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        let (line, column) = position(bytes, offset);
        FileError::NotUtf8 {
            path: path.to_path_buf(),
            byte: bytes.get(offset).copied().unwrap_or_default(),
            offset,
            line,
            column,
        }
    })
}

/// Reads at most `limit` bytes of the regular file at `path`, refusing anything else without blocking.
pub fn read_bytes(path: &Path, limit: u64, what: &'static str) -> Result<Vec<u8>, FileError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY)
        .open(path)
        .map_err(|source| FileError::Open {
            path: path.to_path_buf(),
            source,
        })?;
    let meta = file.metadata().map_err(|source| FileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if let Some(kind) = not_regular(&meta.file_type()) {
        return Err(FileError::NotRegular {
            path: path.to_path_buf(),
            kind,
        });
    }
    let too_large = || FileError::TooLarge {
        path: path.to_path_buf(),
        limit,
        what,
    };
    if meta.len() > limit {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    // One byte past the limit tells a file that grew while being read from one exactly at the limit.
    Read::take(&file, limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|source| FileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > limit {
        return Err(too_large());
    }
    Ok(bytes)
}

/// Runs `work` on a helper thread and waits at most `deadline` for it. On timeout the thread is left to
/// finish on its own (it only reads; its result is dropped) and `on_timeout` is returned.
pub fn run_with_deadline<T: Send + 'static>(
    deadline: Duration,
    on_timeout: impl FnOnce() -> T,
    work: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::sync_channel(1);
    let spawned = std::thread::Builder::new()
        .name("nsbeacon-read".to_owned())
        .spawn(move || {
            let _ = tx.send(work());
        });
    match spawned {
        Ok(_) => rx.recv_timeout(deadline).unwrap_or_else(|_| on_timeout()),
        Err(_) => on_timeout(),
    }
}

/// The async form of [`run_with_deadline`]: the caller's task is not blocked while the thread works, so
/// it can keep reacting to other events (signals) with `select!`.
pub async fn run_with_deadline_async<T: Send + 'static>(
    deadline: Duration,
    on_timeout: impl FnOnce() -> T,
    work: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("nsbeacon-read".to_owned())
        .spawn(move || {
            let _ = tx.send(work());
        });
    if spawned.is_err() {
        return on_timeout();
    }
    match tokio::time::timeout(deadline, rx).await {
        Ok(Ok(result)) => result,
        _ => on_timeout(),
    }
}

/// What a non-regular file is, for the error message; `None` for a regular file.
fn not_regular(kind: &std::fs::FileType) -> Option<&'static str> {
    if kind.is_file() {
        None
    } else if kind.is_fifo() {
        Some("a FIFO (named pipe)")
    } else if kind.is_char_device() {
        Some("a character device")
    } else if kind.is_block_device() {
        Some("a block device")
    } else if kind.is_dir() {
        Some("a directory")
    } else if kind.is_socket() {
        Some("a socket")
    } else {
        Some("not a regular file")
    }
}

/// 1-based line and column (in characters, counting the valid UTF-8 before it) of byte `offset`.
fn position(bytes: &[u8], offset: usize) -> (usize, usize) {
    let before = bytes.get(..offset).unwrap_or(bytes);
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    (line, column)
}

/// A byte count the way limits are written in messages (`4 MiB`, `512 KiB`, `100 bytes`).
pub fn fmt_bytes(bytes: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * KIB;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= KIB && bytes.is_multiple_of(KIB) {
        format!("{} KiB", bytes / KIB)
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_is_refused_at_once_without_blocking() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("f");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .expect("mkfifo");
        let started = std::time::Instant::now();
        let err = read_text(&fifo, 1024, "a test file").expect_err("a FIFO must be refused");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert!(matches!(err, FileError::NotRegular { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            format!(
                "{} is a FIFO (named pipe), not a regular file",
                fifo.display()
            )
        );
    }

    #[test]
    fn devices_and_directories_are_refused() {
        let err = read_text(Path::new("/dev/zero"), 1024, "a test file").expect_err("device");
        assert_eq!(
            err.to_string(),
            "/dev/zero is a character device, not a regular file"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let err = read_text(dir.path(), 1024, "a test file").expect_err("directory");
        assert!(
            err.to_string()
                .ends_with("is a directory, not a regular file"),
            "{err}"
        );
    }

    #[test]
    fn the_size_is_capped_with_the_limit_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("big");
        std::fs::write(&path, vec![b'a'; 2049]).expect("write");
        let err = read_text(&path, 2048, "a zones file").expect_err("too large");
        assert_eq!(
            err.to_string(),
            format!(
                "{} is larger than 2 KiB, the limit for a zones file",
                path.display()
            )
        );
        std::fs::write(&path, vec![b'a'; 2048]).expect("write");
        assert_eq!(
            read_text(&path, 2048, "a zones file")
                .expect("at the limit")
                .len(),
            2048
        );
    }

    #[test]
    fn non_utf8_names_line_and_column() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("latin1");
        std::fs::write(&path, b"a = 1\nname = \"caf\xe9\"\n").expect("write");
        let err = read_text(&path, 1024, "a test file").expect_err("not UTF-8");
        assert!(
            matches!(
                err,
                FileError::NotUtf8 {
                    byte: 0xe9,
                    offset: 17,
                    line: 2,
                    column: 12,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .contains("not UTF-8 text: invalid byte 0xe9 at line 2, column 12"),
            "{err}"
        );
        assert!(err.hint().contains("UTF-8"), "{}", err.hint());
    }

    #[test]
    fn missing_files_are_reported_as_such() {
        let err = read_text(Path::new("/nonexistent/nsbeacon"), 1024, "x").expect_err("missing");
        assert!(err.is_not_found(), "{err:?}");
    }

    #[test]
    fn a_deadline_gives_up_waiting() {
        let started = std::time::Instant::now();
        let result = run_with_deadline(
            Duration::from_millis(50),
            || "timed out",
            || {
                std::thread::sleep(Duration::from_secs(5));
                "done"
            },
        );
        assert_eq!(result, "timed out");
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(run_with_deadline(Duration::from_secs(5), || 0, || 42), 42);
    }
}
