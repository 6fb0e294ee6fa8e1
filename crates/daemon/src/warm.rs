//! The warm-restart record: how a clean `on_shutdown = "keep"` exit tells the next start which routes it
//! left announced, so that an upgrade or `systemctl restart` does not withdraw a healthy node.
//!
//! A clean exit with `keep` writes `warm-restart.json` in `state_dir` (atomically) listing the targets the
//! BGP daemon reported announced at the last read-back. The next start takes the record (it is deleted at
//! once: it is good for one start only), ignores it when it is older than [`MAX_AGE`], and keeps only the
//! targets the BGP daemon still reports announced; each service then starts warm with those
//! ([`crate::health::ServiceHealth::warm_start`]). A crash writes no record, so a start after a crash
//! withdraws everything until DNS is verified, as before.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::clock::unix_now_secs;
use crate::routes::TargetId;

/// The record's file name inside `state_dir`.
pub const WARM_RESTART_FILE: &str = "warm-restart.json";

/// A record older than this is ignored: the restart was not a quick one.
pub const MAX_AGE: Duration = Duration::from_secs(600);

/// Largest record read (a few thousand targets).
const MAX_SIZE: u64 = 1024 * 1024;

/// What a clean `keep` exit left announced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WarmRestartRecord {
    /// When it was written (seconds since the Unix epoch).
    pub written_unix: u64,
    /// The process that wrote it.
    pub pid: u32,
    /// Targets the BGP daemon reported announced at shutdown.
    pub announced: Vec<TargetId>,
}

/// Where the record lives.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(WARM_RESTART_FILE)
}

/// Writes the record atomically (see [`crate::file::write_atomic`]).
pub fn save(state_dir: &Path, announced: Vec<TargetId>) -> std::io::Result<()> {
    std::fs::create_dir_all(state_dir)?;
    let record = WarmRestartRecord {
        written_unix: unix_now_secs(),
        pid: std::process::id(),
        announced,
    };
    let json = serde_json::to_vec_pretty(&record).map_err(std::io::Error::other)?;
    crate::file::write_atomic(&path(state_dir), &json)
}

/// Removes a record, e.g. when the process exits without `keep` (a withdrawal leaves nothing to keep).
pub fn discard(state_dir: &Path) {
    let _ = std::fs::remove_file(path(state_dir));
}

/// Takes the record for this start: reads it, deletes it, and returns it if it is fresh and well-formed.
/// Anything else (missing, not a regular file, too big, corrupt, stale) means a cold start; problems other
/// than a missing file are logged.
pub fn take(state_dir: &Path) -> Option<WarmRestartRecord> {
    let path = path(state_dir);
    let read = crate::file::read_bytes(&path, MAX_SIZE, "the warm-restart record");
    discard(state_dir);
    let bytes = match read {
        Ok(bytes) => bytes,
        Err(e) if e.is_not_found() => return None,
        Err(e) => {
            warn!(error = %e, "ignoring the warm-restart record; starting cold");
            return None;
        }
    };
    let record: WarmRestartRecord = match serde_json::from_slice(&bytes) {
        Ok(record) => record,
        Err(e) => {
            warn!(path = %path.display(), error = %e, "ignoring a corrupt warm-restart record; starting cold");
            return None;
        }
    };
    let age = unix_now_secs().saturating_sub(record.written_unix);
    if age > MAX_AGE.as_secs() {
        warn!(
            path = %path.display(),
            age_seconds = age,
            "ignoring a warm-restart record older than {} s; starting cold",
            MAX_AGE.as_secs()
        );
        return None;
    }
    Some(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::TargetKind;

    fn id(name: &str) -> TargetId {
        TargetId {
            kind: TargetKind::BirdProtocol,
            target: name.to_owned(),
        }
    }

    #[test]
    fn a_record_is_taken_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        save(dir.path(), vec![id("anycast_dns")]).expect("saved");
        let record = take(dir.path()).expect("a fresh record");
        assert_eq!(record.announced, vec![id("anycast_dns")]);
        assert_eq!(record.pid, std::process::id());
        assert!(take(dir.path()).is_none(), "good for one start only");
    }

    #[test]
    fn stale_corrupt_or_odd_records_mean_a_cold_start() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert!(take(dir.path()).is_none(), "no record");

        let stale = WarmRestartRecord {
            written_unix: unix_now_secs() - MAX_AGE.as_secs() - 5,
            pid: 1,
            announced: vec![id("anycast_dns")],
        };
        std::fs::write(path(dir.path()), serde_json::to_vec(&stale).expect("json")).expect("write");
        assert!(take(dir.path()).is_none(), "stale");
        assert!(!path(dir.path()).exists(), "a stale record is removed too");

        std::fs::write(path(dir.path()), b"{not json").expect("write");
        assert!(take(dir.path()).is_none(), "corrupt");

        std::fs::create_dir(path(dir.path())).expect("dir");
        assert!(take(dir.path()).is_none(), "a directory");
    }
}
