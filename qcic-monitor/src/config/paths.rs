//! Where the state database and the control socket go by default.

use super::*;

/// A watcher id as a file name: anything but `[A-Za-z0-9_-]` becomes `_`.
pub(super) fn file_safe(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The default state database for a watcher id: in `$XDG_STATE_HOME/qcic`,
/// else `~/.local/state/qcic`, else the temporary directory.
pub fn default_state_path(id: &str) -> PathBuf {
    let dir = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir)
        .join("qcic");
    dir.join(format!("{}.db", file_safe(id)))
}

/// The default control socket for a watcher id: in `$XDG_RUNTIME_DIR` if
/// set, else in [`private_tmp_dir`] (never straight in `/tmp`, where
/// another local user could make the socket first and answer `status`).
pub fn default_control_path(id: &str) -> PathBuf {
    let dir = std::env::var_os("XDG_RUNTIME_DIR").map_or_else(private_tmp_dir, PathBuf::from);
    dir.join(format!("qcic-monitor-{}.sock", file_safe(id)))
}

/// `qcic-<uid>` in the temporary directory: made mode 0700 by the monitor,
/// and trusted by the monitor and by `status` only while it belongs to
/// this user and nobody else may enter it (`control::check_private`).
pub fn private_tmp_dir() -> PathBuf {
    std::env::temp_dir().join(format!("qcic-{}", nix::unistd::geteuid()))
}
