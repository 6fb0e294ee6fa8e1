//! Decision files: nsbeacon's current decision for each BIRD protocol, as a config snippet BIRD includes.
//!
//! BIRD restarts a protocol on `configure` when the protocol's configured `disabled` differs from its
//! running state (`proto_reconfigure` in BIRD's nest/proto.c), and starts every protocol as configured.
//! The templates therefore say `disabled;` and then include `<dir>/<protocol>.conf`, which nsbeacon writes
//! with `disabled no;` while it announces the protocol and `disabled yes;` while it does not. Written
//! atomically *before* each `enable`/`disable`, so a `birdc configure` at any instant finds config and state
//! agreeing (no restart, no flap upstream), and a restarted BIRD starts a healthy node's protocols enabled.
//! A missing file leaves the template's `disabled`: a node that boots without nsbeacon announces nothing.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::time::{Instant, timeout_at};

use super::error::BirdError;
use crate::BirdProtocolName;

/// Largest decision file read back; nsbeacon's own are under 200 bytes.
const MAX_DECISION_BYTES: u64 = 4096;

/// The directory of decision files (`[backend] decision_dir`), one `<protocol>.conf` per protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionDir {
    path: PathBuf,
}

/// What a decision file says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// `disabled no;`: BIRD starts (and a `configure` keeps) the protocol enabled.
    Enabled,
    /// `disabled yes;`, no file, or a file this version did not write: the template's `disabled` holds.
    Disabled,
}

impl DecisionDir {
    /// Decision files in `path` (created with mode 0755 on the first write if missing).
    pub fn new(path: impl Into<PathBuf>) -> DecisionDir {
        DecisionDir { path: path.into() }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The decision file of `protocol`: `<dir>/<protocol>.conf`.
    pub fn file(&self, protocol: &BirdProtocolName) -> PathBuf {
        self.path.join(format!("{protocol}.conf"))
    }

    /// The file's text for `decision`: a comment for whoever finds it, then the one BIRD option.
    pub fn text(protocol: &BirdProtocolName, decision: Decision) -> String {
        let option = match decision {
            Decision::Enabled => "disabled no;",
            Decision::Disabled => "disabled yes;",
        };
        format!(
            "# Written by nsbeacon: its current decision for BIRD protocol {protocol}, included by the protocol's\n\
             # config so that `birdc configure` and a BIRD restart keep what nsbeacon decided. Do not edit.\n\
             {option}\n"
        )
    }

    /// Reads what the file of `protocol` says now, by `deadline`. Anything but exactly what
    /// [`text`](Self::text) writes for [`Decision::Enabled`] is [`Decision::Disabled`].
    pub async fn read(
        &self,
        protocol: &BirdProtocolName,
        deadline: Instant,
    ) -> Result<Decision, BirdError> {
        let path = self.file(protocol);
        let enabled = Self::text(protocol, Decision::Enabled);
        let job_path = path.clone();
        let job = tokio::task::spawn_blocking(move || read_small(&job_path));
        match self.bounded(&path, deadline, job).await? {
            Some(text) if text == enabled => Ok(Decision::Enabled),
            _ => Ok(Decision::Disabled),
        }
    }

    /// Writes `decision` for `protocol` atomically (temporary file, fsync, rename), by `deadline`. The
    /// temporary file starts with a dot, so the templates' include never sees a half-written file.
    pub async fn write(
        &self,
        protocol: &BirdProtocolName,
        decision: Decision,
        deadline: Instant,
    ) -> Result<(), BirdError> {
        let path = self.file(protocol);
        let text = Self::text(protocol, decision);
        let dir = self.path.clone();
        let job_path = path.clone();
        let job =
            tokio::task::spawn_blocking(move || write_atomic(&dir, &job_path, text.as_bytes()));
        self.bounded(&path, deadline, job).await
    }

    /// Removes the file of `protocol` (a missing file means disabled), by `deadline`: the fallback when
    /// writing `disabled yes;` failed. Succeeds when there was no file.
    pub async fn remove(
        &self,
        protocol: &BirdProtocolName,
        deadline: Instant,
    ) -> Result<(), BirdError> {
        let path = self.file(protocol);
        let job_path = path.clone();
        let job = tokio::task::spawn_blocking(move || match std::fs::remove_file(&job_path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other,
        });
        self.bounded(&path, deadline, job).await
    }

    async fn bounded<T>(
        &self,
        path: &Path,
        deadline: Instant,
        job: tokio::task::JoinHandle<std::io::Result<T>>,
    ) -> Result<T, BirdError> {
        let error = |reason: String| BirdError::DecisionFile {
            path: path.to_owned(),
            reason,
        };
        match timeout_at(deadline, job).await {
            Err(_) => Err(error(
                "timed out (is the file system under the decision dir hung?)".to_owned(),
            )),
            Ok(Err(join)) => Err(error(format!("the file task failed: {join}"))),
            Ok(Ok(Err(io))) => Err(error(io.to_string())),
            Ok(Ok(Ok(value))) => Ok(value),
        }
    }
}

/// The file's text, `None` when it does not exist; at most [`MAX_DECISION_BYTES`] are read.
fn read_small(path: &Path) -> std::io::Result<Option<String>> {
    use std::io::Read;
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if !file.metadata()?.is_file() {
        return Ok(None);
    }
    let mut bytes = Vec::new();
    file.take(MAX_DECISION_BYTES).read_to_end(&mut bytes)?;
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

/// Creates `dir` (mode 0755, so BIRD's user can read it whatever nsbeacon's umask) and writes `path` in it
/// through a dot-file and a rename, mode 0644.
fn write_atomic(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    if !dir.is_dir() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    }
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
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o644))?;
        file.sync_all()?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;

    fn name(s: &str) -> BirdProtocolName {
        BirdProtocolName::new(s).expect("valid name")
    }

    #[tokio::test]
    async fn write_read_remove_round_trip_with_modes_bird_can_read() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = DecisionDir::new(tmp.path().join("run/nsbeacon/bird"));
        let p = name("anycast_dns");
        let deadline = || Instant::now() + Duration::from_secs(2);
        assert_eq!(
            dir.read(&p, deadline()).await.expect("read"),
            Decision::Disabled
        );
        dir.write(&p, Decision::Enabled, deadline())
            .await
            .expect("write");
        assert_eq!(
            dir.read(&p, deadline()).await.expect("read"),
            Decision::Enabled
        );
        let text = std::fs::read_to_string(dir.file(&p)).expect("file");
        assert!(text.ends_with("disabled no;\n"), "{text}");
        let mode =
            |path: &Path| std::fs::metadata(path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&dir.file(&p)), 0o644);
        assert_eq!(mode(dir.path()), 0o755);
        dir.write(&p, Decision::Disabled, deadline())
            .await
            .expect("write");
        assert_eq!(
            dir.read(&p, deadline()).await.expect("read"),
            Decision::Disabled
        );
        assert!(
            std::fs::read_to_string(dir.file(&p))
                .expect("file")
                .ends_with("disabled yes;\n")
        );
        dir.remove(&p, deadline()).await.expect("remove");
        dir.remove(&p, deadline()).await.expect("remove again");
        assert!(!dir.file(&p).exists());
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[tokio::test]
    async fn a_foreign_file_reads_as_disabled_and_a_blocked_dir_is_an_error() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = DecisionDir::new(tmp.path());
        let p = name("anycast_dns");
        std::fs::write(dir.file(&p), "disabled no; # edited by hand\n").expect("write");
        let deadline = Instant::now() + Duration::from_secs(2);
        assert_eq!(
            dir.read(&p, deadline).await.expect("read"),
            Decision::Disabled
        );
        // A regular file where the directory should be: writing fails with the path in the message.
        let blocked = DecisionDir::new(tmp.path().join("anycast_dns.conf"));
        let err = blocked
            .write(&p, Decision::Enabled, deadline)
            .await
            .expect_err("not a directory");
        assert!(err.to_string().contains("anycast_dns.conf"), "{err}");
    }
}
