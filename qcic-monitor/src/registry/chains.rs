//! Chains (`after = "job"`): a step of a pipeline is expected to start
//! `start_within` after each success of the job it follows, so later
//! steps follow the first one's real timing instead of a clock.

use super::*;

impl Registry {
    /// Job `j` succeeded (by `msg`): every job that follows it awaits its
    /// start now, unless it started already for this success (a step
    /// started by its predecessor may be heard before that one's success).
    pub(super) fn chain_success(&mut self, j: JobIdx, msg: &Message, now: Now) {
        if self.followers.is_empty() {
            return;
        }
        let Some(next) = self.followers.get(&self.jobs[j].name).cloned() else {
            return;
        };
        let run_began = self.jobs[j].last.as_ref().map_or(0, |l| l.start_ms);
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
            let started = self.jobs[c].last.as_ref().map_or(0, |l| l.start_ms);
            if started > 0
                && started >= run_began
                && started.saturating_add(millis(within)) >= now.wall_ms
            {
                continue;
            }
            self.jobs[c].chain_basis = Some(Box::new(msg_basis(msg)));
            self.expect_start(c, Some(now.wall_ms), now);
            self.touch(c);
        }
    }
}
