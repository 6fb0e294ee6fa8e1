//! Drain persistence: which services an operator drained, kept in `state_dir/drain.json` so that a drain
//! survives restarts (a node drained for maintenance must not re-announce because nsbeacon restarted).
//!
//! The file is rewritten atomically (write a temporary file in the same directory, fsync, rename, fsync
//! the directory), so a reader never sees half a file and a crash leaves either the old or the new state.
//! Separately, the config's `drain_file` drains every service while it exists ([`DrainRequest::from_file`]),
//! for scripts and configuration management.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, UNIX_EPOCH};

use nix::fcntl::{Flock, FlockArg};

use serde::{Deserialize, Serialize};

use crate::file::{self, FileError};

/// File name of the drain store inside the state directory.
pub const DRAIN_STORE_FILE: &str = "drain.json";

/// Lock file serialising concurrent writers (two `nsbeacon drain` runs at once) in the state directory.
pub const DRAIN_LOCK_FILE: &str = ".drain.lock";

/// How long a writer waits for the lock before giving up with an error.
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// Largest drain store nsbeacon reads: one entry per service with a reason is a few hundred bytes, so a
/// bigger file is not a store nsbeacon wrote.
pub const MAX_DRAIN_STORE_BYTES: u64 = 1024 * 1024;

/// Format version written to the store.
const STORE_VERSION: u32 = 1;

/// One drain: why, and since when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrainRequest {
    /// The operator's reason (shown in `/status`, logs and the service's reason).
    pub reason: String,
    /// When the drain was requested, in seconds since the Unix epoch (0 if unknown).
    pub since_unix: u64,
}

impl DrainRequest {
    /// A drain requested now.
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            since_unix: crate::clock::unix_now_secs(),
        }
    }

    /// The drain implied by an existing drain file. `since_unix` is the file's modification time, so the
    /// value stays the same between polls of an unchanged file.
    pub fn from_file(path: &Path) -> Self {
        let since_unix = std::fs::metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        Self {
            reason: format!("drain file {} exists", path.display()),
            since_unix,
        }
    }
}

/// The on-disk format.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreFile {
    version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    all: Option<DrainRequest>,
    #[serde(default)]
    services: BTreeMap<String, DrainRequest>,
}

/// Errors of the drain store, naming the file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum DrainError {
    /// The store exists but could not be read (no permission, not a regular file, larger than
    /// [`MAX_DRAIN_STORE_BYTES`], not UTF-8).
    #[error("cannot read the drain store: {source} (hint: {})", source.hint())]
    Read {
        /// The store file.
        path: PathBuf,
        /// What went wrong, naming the file.
        source: FileError,
    },
    /// The store is not valid JSON of the expected shape.
    #[error(
        "the drain store {} is corrupt: {source} (hint: fix the JSON, or delete the file to undrain every \
         service)",
        path.display()
    )]
    Corrupt {
        /// The store file.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
    /// The store was written by a newer nsbeacon.
    #[error(
        "the drain store {} has format version {found}, this nsbeacon understands {STORE_VERSION} (hint: \
         upgrade nsbeacon, or delete the file to undrain every service)",
        path.display()
    )]
    Version {
        /// The store file.
        path: PathBuf,
        /// The version found.
        found: u32,
    },
    /// The store could not be written.
    #[error(
        "cannot write the drain store {}: {source} (hint: the state directory must exist or be creatable and \
         be writable by the user running nsbeacon; set state_dir in the config)",
        path.display()
    )]
    Write {
        /// The file or directory being written.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// The persistent drain state of one node.
#[derive(Debug, Clone)]
pub struct DrainStore {
    path: PathBuf,
    file: StoreFile,
}

impl DrainStore {
    /// Opens the store in `state_dir` (which need not exist yet: a missing store means nothing drained).
    pub fn open(state_dir: &Path) -> Result<Self, DrainError> {
        let path = state_dir.join(DRAIN_STORE_FILE);
        let file = match file::read_text(&path, MAX_DRAIN_STORE_BYTES, "the drain store") {
            Ok(text) => {
                let file: StoreFile =
                    serde_json::from_str(&text).map_err(|source| DrainError::Corrupt {
                        path: path.clone(),
                        source,
                    })?;
                if file.version != STORE_VERSION {
                    return Err(DrainError::Version {
                        path,
                        found: file.version,
                    });
                }
                file
            }
            Err(e) if e.is_not_found() => StoreFile {
                version: STORE_VERSION,
                ..StoreFile::default()
            },
            Err(source) => return Err(DrainError::Read { path, source }),
        };
        Ok(Self { path, file })
    }

    /// The store file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The drain that applies to `service`: its own, else the drain of every service.
    pub fn get(&self, service: &str) -> Option<DrainRequest> {
        self.file
            .services
            .get(service)
            .or(self.file.all.as_ref())
            .cloned()
    }

    /// The drain of every service (`nsbeacon drain` without a service), if any.
    pub fn all(&self) -> Option<DrainRequest> {
        self.file.all.clone()
    }

    /// The drain recorded for exactly `service` (`None`: the drain of all services), ignoring the other
    /// key: what `drain --keep-existing` and `undrain --if-reason` compare against.
    pub fn own(&self, service: Option<&str>) -> Option<DrainRequest> {
        match service {
            Some(name) => self.file.services.get(name).cloned(),
            None => self.file.all.clone(),
        }
    }

    /// Drains of single services, by service name.
    pub fn entries(&self) -> BTreeMap<String, DrainRequest> {
        self.file.services.clone()
    }

    /// Drains `service` (or every service with `None`) with `reason`, and persists the store.
    pub fn set(&mut self, service: Option<&str>, reason: &str) -> Result<(), DrainError> {
        let request = DrainRequest::new(reason);
        self.modify(|file| match service {
            Some(name) => {
                file.services.insert(name.to_owned(), request);
            }
            None => file.all = Some(request),
        })
    }

    /// Undrains `service` (its own drain only; a drain of every service still applies), or with `None`
    /// undrains everything: the drain of every service and every single-service drain. Persists the store.
    /// The config's drain file is not touched: remove it yourself.
    pub fn clear(&mut self, service: Option<&str>) -> Result<(), DrainError> {
        self.modify(|file| match service {
            Some(name) => {
                file.services.remove(name);
            }
            None => {
                file.all = None;
                file.services.clear();
            }
        })
    }

    /// Applies `change` to the latest state on disk under an exclusive lock and saves it, so that two
    /// concurrent writers never lose each other's drains.
    fn modify(&mut self, change: impl FnOnce(&mut StoreFile)) -> Result<(), DrainError> {
        let dir = self.dir().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|source| DrainError::Write {
            path: dir.clone(),
            source,
        })?;
        let lock_path = dir.join(DRAIN_LOCK_FILE);
        let lock_error = |source: std::io::Error| DrainError::Write {
            path: lock_path.clone(),
            source,
        };
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(lock_error)?;
        let started = Instant::now();
        let _lock = loop {
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => break lock,
                Err((f, nix::errno::Errno::EWOULDBLOCK)) if started.elapsed() < LOCK_WAIT => {
                    file = f;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err((_, errno)) => return Err(lock_error(std::io::Error::from(errno))),
            }
        };
        self.file = Self::open(&dir)?.file;
        change(&mut self.file);
        self.save()
    }

    fn dir(&self) -> &Path {
        self.path.parent().unwrap_or_else(|| Path::new("."))
    }

    /// Writes the store atomically (see [`crate::file::write_atomic`]).
    fn save(&self) -> Result<(), DrainError> {
        let mut text = serde_json::to_string_pretty(&self.file).map_err(|e| DrainError::Write {
            path: self.path.clone(),
            source: std::io::Error::other(e),
        })?;
        text.push('\n');
        crate::file::write_atomic(&self.path, text.as_bytes()).map_err(|source| DrainError::Write {
            path: self.path.clone(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_that_is_a_fifo_or_too_large_is_refused_at_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = dir.path().join(DRAIN_STORE_FILE);
        nix::unistd::mkfifo(&store, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .expect("mkfifo");
        let started = Instant::now();
        let err = DrainStore::open(dir.path()).expect_err("a FIFO is not a store");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert!(
            err.to_string()
                .contains("is a FIFO (named pipe), not a regular file"),
            "{err}"
        );
        std::fs::remove_file(&store).expect("remove");
        std::fs::File::create(&store)
            .and_then(|f| f.set_len(MAX_DRAIN_STORE_BYTES + 1))
            .expect("sparse file");
        let err = DrainStore::open(dir.path()).expect_err("too large");
        assert!(
            err.to_string()
                .contains("is larger than 1 MiB, the limit for the drain store"),
            "{err}"
        );
    }

    #[test]
    fn missing_state_dir_means_nothing_drained() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = DrainStore::open(&dir.path().join("does/not/exist")).expect("open");
        assert_eq!(store.get("dns"), None);
        assert_eq!(store.all(), None);
        assert!(store.entries().is_empty());
    }

    #[test]
    fn drains_survive_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state");
        let mut store = DrainStore::open(&state).expect("open");
        store.set(Some("dns"), "maintenance window").expect("set");
        let reopened = DrainStore::open(&state).expect("reopen");
        let drain = reopened.get("dns").expect("dns drained");
        assert_eq!(drain.reason, "maintenance window");
        assert!(drain.since_unix > 1_600_000_000, "{drain:?}");
        assert_eq!(reopened.get("other"), None);
        assert_eq!(reopened.entries().len(), 1);
        // Only the store file remains: the temporary file was renamed.
        let mut names: Vec<String> = std::fs::read_dir(&state)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, [DRAIN_LOCK_FILE, DRAIN_STORE_FILE]);
    }

    #[test]
    fn drain_all_applies_to_every_service_and_own_drain_wins() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = DrainStore::open(dir.path()).expect("open");
        store.set(None, "site down").expect("set all");
        store.set(Some("dns"), "own reason").expect("set dns");
        let store = DrainStore::open(dir.path()).expect("reopen");
        assert_eq!(store.get("anything").expect("drained").reason, "site down");
        assert_eq!(store.get("dns").expect("drained").reason, "own reason");
        assert_eq!(store.all().expect("all").reason, "site down");
    }

    #[test]
    fn clear_one_service_keeps_drain_all_and_clear_all_clears_everything() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = DrainStore::open(dir.path()).expect("open");
        store.set(None, "all").expect("set all");
        store.set(Some("dns"), "dns").expect("set dns");
        store.set(Some("other"), "other").expect("set other");
        store.clear(Some("dns")).expect("clear dns");
        let mut store = DrainStore::open(dir.path()).expect("reopen");
        assert_eq!(
            store.get("dns").expect("still drained by all").reason,
            "all"
        );
        assert_eq!(store.entries().keys().collect::<Vec<_>>(), ["other"]);
        store.clear(None).expect("clear all");
        let store = DrainStore::open(dir.path()).expect("reopen");
        assert_eq!(store.get("dns"), None);
        assert_eq!(store.get("other"), None);
        assert_eq!(store.all(), None);
    }

    #[test]
    fn concurrent_writers_do_not_lose_drains() {
        let dir = tempfile::tempdir().expect("tempdir");
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let state = dir.path().to_path_buf();
                std::thread::spawn(move || {
                    // Each writer opened the store before the others wrote: a stale view.
                    let mut store = DrainStore::open(&state).expect("open");
                    store
                        .set(Some(&format!("svc{i}")), "parallel")
                        .expect("set");
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        let store = DrainStore::open(dir.path()).expect("open");
        assert_eq!(store.entries().len(), 8, "{:?}", store.entries());
    }

    #[test]
    fn a_stale_store_sees_other_writers_before_changing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut stale = DrainStore::open(dir.path()).expect("open");
        DrainStore::open(dir.path())
            .expect("open")
            .set(Some("a"), "first")
            .expect("set");
        stale.set(Some("b"), "second").expect("set");
        let store = DrainStore::open(dir.path()).expect("open");
        assert!(store.get("a").is_some() && store.get("b").is_some());
    }

    #[test]
    fn corrupt_store_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(DRAIN_STORE_FILE), "{not json").expect("write");
        let err = DrainStore::open(dir.path()).expect_err("corrupt");
        assert!(matches!(err, DrainError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains(DRAIN_STORE_FILE), "{err}");
        assert!(err.to_string().contains("delete the file"), "{err}");

        std::fs::write(
            dir.path().join(DRAIN_STORE_FILE),
            r#"{"version": 7, "services": {}}"#,
        )
        .expect("write");
        let err = DrainStore::open(dir.path()).expect_err("future version");
        assert!(matches!(err, DrainError::Version { found: 7, .. }), "{err}");
    }

    #[test]
    fn unwritable_state_dir_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state");
        let mut store = DrainStore::open(&state).expect("open");
        // A regular file where the state directory should be: it can never be created, even by root.
        std::fs::write(&state, "x").expect("write");
        let err = store.set(Some("dns"), "x").expect_err("cannot write");
        assert!(matches!(err, DrainError::Write { .. }), "{err}");
        assert!(err.to_string().contains("state_dir"), "{err}");
    }

    #[test]
    fn drain_file_request_is_stable_between_polls() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("drain");
        std::fs::write(&file, "").expect("touch");
        let a = DrainRequest::from_file(&file);
        let b = DrainRequest::from_file(&file);
        assert_eq!(a, b);
        assert!(a.reason.contains(&file.display().to_string()), "{a:?}");
        assert!(a.since_unix > 0);
    }

    #[test]
    fn store_format_is_documented_json() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = DrainStore::open(dir.path()).expect("open");
        store.set(Some("dns"), "why").expect("set");
        let text = std::fs::read_to_string(dir.path().join(DRAIN_STORE_FILE)).expect("read");
        let value: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(value["version"], 1);
        assert_eq!(value["services"]["dns"]["reason"], "why");
        assert!(value.get("all").is_none());
    }
}
