//! Who owns a unix socket, for "permission denied" errors that tell the operator which group to join.
//!
//! Shared by the BIRD control socket and FRR's vty socket: both are created by the routing daemon with a
//! group meant for its clients (`bird`, `frrvty`), so the fix is nearly always group membership.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// Describes the socket's owner and mode, and says how to get access (usually: join the socket's group).
///
/// `daemon` names the program that creates the socket ("BIRD", "FRR") in the hint. Returns
/// `(owner, hint)`.
pub(crate) fn permission_hint(path: &Path, daemon: &str) -> (String, String) {
    let Ok(meta) = std::fs::metadata(path) else {
        return (
            "owner unknown: its directory cannot be searched".to_owned(),
            format!(
                "grant nsbeacon's user search (x) permission on every directory leading to {}",
                path.display()
            ),
        );
    };
    let group = group_name(meta.gid()).unwrap_or_else(|| meta.gid().to_string());
    let user = user_name(meta.uid()).unwrap_or_else(|| meta.uid().to_string());
    let mode = meta.permissions().mode() & 0o7777;
    let owner = format!("owner {user}:{group}, mode {mode:04o}");
    let hint = if mode & 0o060 == 0o060 {
        format!(
            "run nsbeacon as a member of group `{group}` (e.g. `SupplementaryGroups={group}` in its systemd unit) \
             or as user `{user}`"
        )
    } else {
        format!(
            "the socket is not read/write for its group: start {daemon} so the socket is mode 0660 in group \
             `{group}` (or a group nsbeacon runs in), or run nsbeacon as user `{user}`"
        )
    };
    (owner, hint)
}

/// Looks `gid` up in `/etc/group` (only for error messages: a miss falls back to the number).
fn group_name(gid: u32) -> Option<String> {
    name_from_db("/etc/group", gid)
}

/// Looks `uid` up in `/etc/passwd` (only for error messages: a miss falls back to the number).
fn user_name(uid: u32) -> Option<String> {
    name_from_db("/etc/passwd", uid)
}

fn name_from_db(file: &str, id: u32) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let _password = fields.next()?;
        let found: u32 = fields.next()?.parse().ok()?;
        (found == id).then(|| name.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_lookup_finds_root() {
        assert_eq!(group_name(0).as_deref(), Some("root"));
        assert_eq!(user_name(0).as_deref(), Some("root"));
    }
}
