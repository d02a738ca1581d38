//! Warnings that could come once per frame (a flood), logged at most once
//! per interval with a count of what was held back.

use std::time::{Duration, Instant};

/// At most one log line per interval; counts what it held back.
pub(crate) struct LogLimit {
    last: Option<Instant>,
    suppressed: u64,
}

impl LogLimit {
    const INTERVAL: Duration = Duration::from_secs(10);

    pub(crate) fn new() -> LogLimit {
        LogLimit {
            last: None,
            suppressed: 0,
        }
    }

    pub(crate) fn note(&mut self, log: impl FnOnce(u64)) {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < Self::INTERVAL)
        {
            self.suppressed += 1;
            return;
        }
        log(self.suppressed);
        self.last = Some(now);
        self.suppressed = 0;
    }
}
