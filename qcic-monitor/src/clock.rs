//! The watcher's wall clock and the way durations are written for people.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The watcher's wall clock, unix ms.
pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(millis)
        .unwrap_or(0)
}

/// `d` in whole ms, saturating.
pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `d` for people: whole seconds (or ms below one), which read better than
/// humantime's nanosecond detail.
pub fn human(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
    }
}
