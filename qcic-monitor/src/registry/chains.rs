//! Chains (`after = "job"`): a step of a pipeline is expected to start
//! `start_within` after each success of the job it follows, so later
//! steps follow the first one's real timing instead of a clock.

use super::*;

impl Registry {
    /// Job `j` succeeded (by `msg`): every job that follows it awaits its
    /// start now, unless it started already for this success (a step
    /// started by its predecessor may be heard before that one's success).
    pub(super) fn chain_success(&mut self, j: JobIdx, msg: &Message, began: Option<u64>, now: Now) {
        if self.followers.is_empty() {
            return;
        }
        let Some(next) = self.followers.get(&self.jobs[j].name).cloned() else {
            return;
        };
        for name in next {
            let Some(&c) = self.index.get(&name) else {
                continue;
            };
            let cfg = &self.jobs[c].cfg;
            let (Some(after), Some(within)) = (&cfg.after, cfg.start_within) else {
                continue;
            };
            if **after != *self.jobs[j].name {
                continue; // a stale link: the job follows another now
            }
            // Started during the predecessor's run that succeeded (it may
            // start its next step itself); for a success outside a run
            // heard here, within `start_within` before it.
            let started = self.jobs[c].last.as_ref().map_or(0, |l| l.start_ms);
            let counts = match began {
                Some(began) => started >= began,
                None => started.saturating_add(millis(within)) >= now.wall_ms,
            };
            if started > 0 && counts {
                continue;
            }
            self.jobs[c].chain_basis = Some(Box::new(msg_basis(msg)));
            self.expect_start(c, Some(now.wall_ms), now);
            self.touch(c);
        }
    }
}
