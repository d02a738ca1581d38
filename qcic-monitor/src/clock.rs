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

/// A moment as the registry reads it: the monotonic instant deadlines are
/// measured on, and the wall clock (unix ms) that schedules and saved
/// state are written in. Taken together, once, so that every rule in one
/// step sees the same moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// The monotonic clock (tokio's, so tests can pause it).
    pub at: tokio::time::Instant,
    /// The wall clock, unix ms.
    pub wall_ms: u64,
}

impl Now {
    /// `at`, which the wall clock reads as `wall_ms`.
    pub fn new(at: tokio::time::Instant, wall_ms: u64) -> Now {
        Now { at, wall_ms }
    }

    /// The present moment.
    pub fn current() -> Now {
        Now::new(tokio::time::Instant::now(), wall_ms())
    }
}
