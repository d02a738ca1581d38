//! Telling a watcher cut off from everything from a farm whose jobs went
//! silent: what decides `watcher_isolated`, and whether an absence alarm
//! with no peer reachable should wait.

use tokio::time::Instant;

/// What the gate knows that bears on its own isolation.
#[derive(Debug)]
pub struct Isolation {
    /// `[farm] isolation_jobs`.
    pub min_jobs: usize,
    /// Jobs this watcher watches.
    pub jobs: usize,
    /// How long without any message from any sender counts as hearing none.
    pub quiet_after: std::time::Duration,
    /// When this watcher last heard any sender.
    last_heard: Option<Instant>,
}

impl Isolation {
    /// As at start: nothing heard yet.
    pub fn new(min_jobs: usize, jobs: usize, quiet_after: std::time::Duration) -> Isolation {
        Isolation {
            min_jobs,
            jobs,
            quiet_after,
            last_heard: None,
        }
    }

    /// Some sender was heard at `now`.
    pub fn heard(&mut self, now: Instant) {
        self.last_heard = Some(now);
    }

    /// Whether this watcher still hears senders: then it is plainly not
    /// cut off, and its absence alarms are real.
    pub fn hears_senders(&self, now: Instant) -> bool {
        self.last_heard
            .is_some_and(|t| now.saturating_duration_since(t) < self.quiet_after)
    }

    /// With no peer reachable, whether `silent` jobs falling silent at once
    /// mean this watcher is the one cut off: many of them, half of all,
    /// and no sender heard lately.
    pub fn looks_isolated(&self, live_peers: usize, silent: usize, now: Instant) -> bool {
        live_peers == 0
            && silent >= self.min_jobs
            && silent * 2 >= self.jobs
            && !self.hears_senders(now)
    }

    /// Whether an absence alarm raised with no peer reachable waits
    /// (`peer_timeout`) to see whether this watcher is the one cut off:
    /// only while it hears no sender.
    pub fn hold_absence(&self, live_peers: usize, now: Instant) -> bool {
        live_peers == 0 && !self.hears_senders(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_watcher_that_still_hears_senders_is_not_isolated() {
        let t0 = Instant::now();
        let mut iso = Isolation::new(3, 6, Duration::from_secs(4));
        assert!(iso.looks_isolated(0, 3, t0), "nothing heard, half silent");
        assert!(!iso.looks_isolated(1, 6, t0), "a peer is reachable");
        assert!(!iso.looks_isolated(0, 2, t0), "too few");
        iso.heard(t0);
        assert!(!iso.looks_isolated(0, 6, t0 + Duration::from_secs(3)));
        assert!(!iso.hold_absence(0, t0 + Duration::from_secs(3)));
        assert!(iso.looks_isolated(0, 6, t0 + Duration::from_secs(4)));
        assert!(iso.hold_absence(0, t0 + Duration::from_secs(4)));
        assert!(!iso.hold_absence(1, t0 + Duration::from_secs(4)));
    }
}
