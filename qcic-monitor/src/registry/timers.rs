//! The deadlines each job is armed with (`down`, `late`, per run) and how
//! they follow the wall clock for cron schedules.

use super::*;

/// The instant at wall time `at_ms`, given that `now` is `wall_ms`. Far
/// future (a cron pattern that never fires again) is capped at 100 years.
pub(super) fn at_wall(now: Now, at_ms: u64) -> Instant {
    const CAP: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    now.at + Duration::from_millis(at_ms.saturating_sub(now.wall_ms)).min(CAP)
}

/// The instant at a past wall time `at_ms`, given that `now` is `wall_ms`
/// (`now` for a time not in the past, or before the monotonic clock's
/// start).
pub(super) fn past_at_wall(now: Now, at_ms: u64) -> Instant {
    now.at
        .checked_sub(Duration::from_millis(now.wall_ms.saturating_sub(at_ms)))
        .unwrap_or(now.at)
}

impl Registry {
    /// Sets every timer of job `j` from its state, as after a restart:
    /// `down` from its last message (from when watching began if never
    /// heard), each run's `max_runtime` from its start and `stall_after` from
    /// its last message, silence ends, reminders one `repeat` from now. `late` keeps the
    /// scheduled start it waited for if `keep_expected`, else watches the
    /// next one.
    pub(super) fn rearm(&mut self, j: JobIdx, keep_expected: bool, now: Now) {
        let job = &self.jobs[j];
        match (&job.last, &job.cfg.schedule) {
            // A duration from the last message, on the monotonic clock (its
            // wall time may be from before a clock step).
            (Some(last), Schedule::Every(every)) => {
                let (at, from) = (last.at + *every + job.cfg.grace, last.wall_ms);
                self.jobs[j].down_from_ms = from;
                self.set_down(j, at.max(now.at));
            }
            (Some(last), Schedule::Cron { .. }) => {
                let from = last.wall_ms;
                self.arm_down_from(j, from, now);
            }
            (None, _) => {
                let since = job.watching_since_ms;
                self.arm_down_from(j, since, now);
            }
        }
        let job = &self.jobs[j];
        match (job.expected_start_ms, job.cfg.start_within) {
            (Some(expected), Some(within)) if keep_expected => {
                let at = expected.saturating_add(millis(within));
                self.deadlines.set(Timer::Late(j), at_wall(now, at));
            }
            _ => {
                self.jobs[j].expected_start_ms = None;
                self.deadlines.clear(&Timer::Late(j));
                self.arm_late_fresh(j, now);
            }
        }
        let job = &self.jobs[j];
        let (max, stall, repeat) = (job.cfg.max_runtime, job.cfg.stall_after, job.cfg.repeat);
        let runs: Vec<(u64, Instant, Instant)> = job
            .runs
            .iter()
            .map(|(id, r)| (*id, r.started, r.active))
            .collect();
        let slots: Vec<Slot> = job.open.keys().copied().collect();
        let until = job.silence.as_ref().and_then(|s| s.until_ms);
        for (run_id, started, active) in runs {
            if let Some(max) = max {
                self.deadlines
                    .set(Timer::Overrun(j, run_id), (started + max).max(now.at));
            }
            if let Some(stall) = stall {
                self.deadlines
                    .set(Timer::Stall(j, run_id), (active + stall).max(now.at));
            }
            if let Some(after) = self.slow_after(j) {
                self.deadlines
                    .set(Timer::Slow(j, run_id), (started + after).max(now.at));
            }
        }
        if let Some(until) = until {
            self.deadlines
                .set(Timer::SilenceEnd(j), at_wall(now, until));
        }
        for slot in slots {
            let acked = self.jobs[j]
                .open
                .get(&slot)
                .is_some_and(|o| o.ack.is_some());
            if let (Some(every), false) = (repeat, acked) {
                self.deadlines.set(Timer::Repeat(j, slot), now.at + every);
            }
            self.arm_escalation(j, slot, now);
        }
        if self.jobs[j].open.values().any(|o| !o.notified) {
            // A maintenance window holding its alarms ends at a wall time.
            if let Some((_, until)) = self.window_over(j, now.wall_ms) {
                self.deadlines.set(Timer::HoldEnd(j), at_wall(now, until));
            }
        }
    }

    /// Arms `down` one full period from now.
    pub(super) fn arm_down(&mut self, j: JobIdx, now: Now) {
        self.arm_down_from(j, now.wall_ms, now);
    }

    /// Arms `down` as due one period after wall time `from_ms` (the last
    /// message, or when watching began).
    pub(super) fn arm_down_from(&mut self, j: JobIdx, from_ms: u64, now: Now) {
        let cfg = &self.jobs[j].cfg;
        let at = cfg.schedule.down_at_ms(from_ms, cfg.grace);
        self.jobs[j].down_from_ms = from_ms;
        self.set_down(j, at_wall(now, at));
    }

    // Exact, not lazy: leaving the old entry in the index when a message
    // moves the deadline later would save the two tree operations per
    // heartbeat, but wake the loop early once per job and period; the
    // checker sleeps until the true next deadline instead.
    pub(super) fn set_down(&mut self, j: JobIdx, at: Instant) {
        if let Some(old) = self.jobs[j].down_at.replace(at) {
            self.deadlines.remove_untracked(Timer::Down(j), old);
        }
        self.deadlines.insert_untracked(Timer::Down(j), at);
    }

    /// Arms the `late` timer for the first scheduled start after a start
    /// (heard, or awaited) at `from_ms`.
    pub(super) fn arm_late(&mut self, j: JobIdx, now: Now, from_ms: u64) {
        let cfg = &self.jobs[j].cfg;
        let Some(within) = cfg.start_within else {
            return;
        };
        if cfg.after.is_some() {
            // A step of a chain awaits a start only after its
            // predecessor's next success.
            self.jobs[j].chain_basis = None;
            self.expect_start(j, None, now);
            return;
        }
        // A start up to `start_within` early counts for the coming slot.
        let expected = match &cfg.schedule {
            Schedule::Every(every) => Some(from_ms.saturating_add(millis(*every))),
            Schedule::Cron { .. } => cfg
                .schedule
                .next_fire_ms(from_ms.saturating_add(millis(within))),
        };
        self.expect_start(j, expected, now);
    }

    /// Arms the `late` timer with no start to go by (at start-up without
    /// saved state, for a new job, or after its schedule changed): the next
    /// slot still to come, unless the last start heard already counted for it.
    /// (Searching from `now + start_within`, as after a start, skipped a
    /// slot due within `start_within` of a restart or reload.)
    pub(super) fn arm_late_fresh(&mut self, j: JobIdx, now: Now) {
        let job = &self.jobs[j];
        let Some(within) = job.cfg.start_within else {
            return;
        };
        if job.cfg.after.is_some() {
            return;
        }
        let expected = match &job.cfg.schedule {
            Schedule::Every(every) => Some(now.wall_ms.saturating_add(millis(*every))),
            Schedule::Cron { .. } => {
                let started = job.last.as_ref().map_or(0, |l| l.start_ms);
                let from = match started {
                    0 => now.wall_ms,
                    s => now.wall_ms.max(s.saturating_add(millis(within))),
                };
                job.cfg.schedule.next_fire_ms(from)
            }
        };
        self.expect_start(j, expected, now);
    }

    /// Awaits a start for the slot at `expected` (unix ms): `late` falls
    /// due `start_within` after it.
    pub(super) fn expect_start(&mut self, j: JobIdx, expected: Option<u64>, now: Now) {
        let within = self.jobs[j].cfg.start_within.map_or(0, millis);
        self.jobs[j].expected_start_ms = expected;
        match expected {
            Some(t) => self
                .deadlines
                .set(Timer::Late(j), at_wall(now, t.saturating_add(within))),
            None => self.deadlines.clear(&Timer::Late(j)),
        }
    }

    /// Whether some deadline follows the wall clock (a cron schedule, a
    /// scheduled start, a silence's end): the checker then looks at the
    /// clocks often enough to see a step (see [`Registry::on_clock_step`]).
    pub fn follows_wall_clock(&self) -> bool {
        self.wall_timers
    }

    /// The wall clock moved against the monotonic one (an NTP step, a
    /// clock set by hand, a VM resumed): every deadline that is a wall
    /// time (a cron slot, a scheduled start, a silence's end) is derived
    /// again from the wall times it came from, so it falls due by the wall
    /// clock as it now reads. Deadlines that are durations (`every` +
    /// `grace`, `max_runtime`, `stall_after`, `repeat`) stay as they are.
    pub fn on_clock_step(&mut self, now: Now) {
        // Offsets measured against the old reading are void.
        self.hosts.forget_offsets();
        for j in 0..self.jobs.len() {
            let job = &self.jobs[j];
            if matches!(job.cfg.schedule, Schedule::Cron { .. }) && job.down_at.is_some() {
                let from = job.down_from_ms;
                self.arm_down_from(j, from, now);
            }
            // An `every` job's start is awaited a duration after the last
            // one: only a cron slot is a wall time.
            let job = &self.jobs[j];
            let cron = matches!(job.cfg.schedule, Schedule::Cron { .. });
            if let (Some(expected), Some(within), true) =
                (job.expected_start_ms, job.cfg.start_within, cron)
            {
                if self.deadlines.get(&Timer::Late(j)).is_some() {
                    let at = expected.saturating_add(millis(within));
                    self.deadlines.set(Timer::Late(j), at_wall(now, at));
                }
            }
            if let Some(until) = self.jobs[j].silence.as_ref().and_then(|s| s.until_ms) {
                self.deadlines
                    .set(Timer::SilenceEnd(j), at_wall(now, until));
            }
            let slots: Vec<Slot> = self.jobs[j].open.keys().copied().collect();
            for slot in slots {
                if self.deadlines.get(&Timer::Escalate(j, slot)).is_some() {
                    self.arm_escalation(j, slot, now);
                }
            }
            if self.deadlines.get(&Timer::HoldEnd(j)).is_some() {
                match self.window_over(j, now.wall_ms) {
                    Some((_, until)) => self.deadlines.set(Timer::HoldEnd(j), at_wall(now, until)),
                    // Closed by the new reading: judged at once.
                    None => self.deadlines.set(Timer::HoldEnd(j), now.at),
                }
            }
        }
    }
}
