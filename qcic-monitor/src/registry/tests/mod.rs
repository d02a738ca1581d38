//! The registry's tests: the real state machine, driven on a fake clock
//! (a `Now` passed in), one file per area.

use super::*;

mod basics;
mod noise;
mod silence;
mod slow;
mod timers;

pub(crate) const S: Duration = Duration::from_secs(1);

/// A message of `kind` for `job`, from host `h`, pid 1, with no timestamp.
pub(crate) fn msg(kind: Kind, job: &str, run_id: Option<u64>, seq: u64) -> Message {
    Message {
        run_id,
        seq,
        host: "h".into(),
        pid: 1,
        ..Message::new(kind, job)
    }
}

/// A registry as the checker makes one: 4 unknown job names remembered,
/// clock skew reported past 300 s.
pub(crate) fn registry_of(watcher: &str, jobs: &[JobConfig], t0: Instant, wall: u64) -> Registry {
    Registry::new(
        watcher,
        jobs,
        4,
        S * 300,
        Arc::new(Stats::default()),
        Now::new(t0, wall),
    )
}
