//! The rules: what each message kind does to a job, and what each passed
//! deadline raises.

use super::*;

impl Registry {
    pub(super) fn remember(&mut self, j: JobIdx, wall_ms: u64, entry: impl Into<HistoryEntry>) {
        let history = &mut self.jobs[j].history;
        if history.len() == HISTORY_LEN {
            history.pop_front();
        }
        if history.capacity() == 0 {
            // Most jobs only ever hold one line ("heartbeat", repeated):
            // room for one, not the four a first push would reserve.
            history.reserve_exact(1);
        }
        history.push_back((wall_ms, entry.into()));
    }

    /// Applies a message. A `stale` one (see [`Registry::stale`]) is what
    /// it says (a failure, a run's end), but no sign of life now: it moves
    /// no deadline and ends no `down`.
    pub(super) fn apply(
        &mut self,
        j: JobIdx,
        msg: &Message,
        host: Arc<str>,
        stale: bool,
        now: Now,
    ) -> Vec<Notification> {
        let mut out = Vec::new();
        if !stale {
            self.heard_alive(j, msg, host, now);
        }
        let job = &mut self.jobs[j];
        let run_id = msg.run_id.unwrap_or(0);
        let good = !stale && matches!(msg.kind, Kind::Success | Kind::Heartbeat);
        if good {
            job.alive_streak = job.alive_streak.saturating_add(1);
            job.bad_streak = 0;
        }
        if msg.kind == Kind::Success {
            job.success_streak = job.success_streak.saturating_add(1);
        }
        // Any message ends a down incident (after recover_after_successes
        // good messages, if that is more than one).
        let down_recovers = !stale
            && (self.jobs[j].cfg.recover_after_successes <= 1
                || (good && self.jobs[j].alive_streak >= self.jobs[j].cfg.recover_after_successes));
        if down_recovers {
            let kind = msg.kind;
            self.close(j, Slot::Down, now, || format!("{kind} received"), &mut out);
        }
        // A message of a run shows it is not stalled.
        if msg.run_id.is_some() && self.jobs[j].runs.contains_key(&run_id) {
            self.touch_run(j, run_id, now, &mut out);
        }
        match msg.kind {
            Kind::Start => {
                self.start_run(j, run_id, msg, now, &mut out);
                self.close(j, Slot::Late, now, || "start received".into(), &mut out);
                self.arm_late(j, now, now.wall_ms);
            }
            Kind::Progress => {}
            // Taken by `on_message_from` before it gets here.
            Kind::Declare => {}
            Kind::Success => {
                // When the run that succeeded began, for its chain.
                let began = msg
                    .run_id
                    .and_then(|id| self.jobs[j].runs.get(&id))
                    .map(|r| r.started_ms);
                let ran = self.jobs[j]
                    .runs
                    .get(&run_id)
                    .map(|r| now.at.saturating_duration_since(r.started));
                self.record_end(j, msg, crate::history::Outcome::Success, now);
                if let (Some(ran), Some(_)) = (ran, self.jobs[j].cfg.slow_after) {
                    let recent = self.jobs[j].recent.get_or_insert_with(Default::default);
                    if recent.len() == super::job::SLOW_RUNS {
                        recent.pop_front();
                    }
                    recent.push_back(millis(ran));
                }
                self.end_run(j, run_id, "run ended with success", now, &mut out);
                if !stale {
                    self.chain_success(j, msg, began, now);
                }
                match (ran, self.jobs[j].cfg.min_runtime) {
                    (Some(ran), Some(min)) if ran < min => {
                        let text = format!(
                            "succeeded after {}, sooner than min_runtime {}",
                            human(ran),
                            human(min)
                        );
                        let basis = format!("run:{run_id}/{}", msg_basis(msg));
                        let id = incident_id(&msg.job, Event::TooFast, &basis);
                        self.open(j, Slot::TooFast, id, now, Some(text), msg, &mut out);
                    }
                    _ => {
                        self.close(
                            j,
                            Slot::TooFast,
                            now,
                            || "a run of normal length succeeded".into(),
                            &mut out,
                        );
                    }
                }
                // A failed run is redone only by successful runs; a failure
                // outside a run ends after as many signs of life.
                let job = &self.jobs[j];
                let streak = match self.failed_run(j) {
                    Some(_) => job.success_streak,
                    None => job.alive_streak,
                };
                if streak >= job.cfg.recover_after_successes {
                    self.close(j, Slot::Failed, now, || "success received".into(), &mut out);
                }
            }
            Kind::Fail => {
                self.record_end(j, msg, crate::history::Outcome::Fail, now);
                self.end_run(j, run_id, "run ended with fail", now, &mut out);
                let job = &mut self.jobs[j];
                job.bad_streak = job.bad_streak.saturating_add(1);
                job.success_streak = 0;
                job.alive_streak = 0;
                if job.bad_streak >= job.cfg.alert_after_failures {
                    // The failing message itself names the incident: every
                    // watcher heard the same one, and no other message is it.
                    let basis = match msg.run_id {
                        Some(run_id) => format!("run:{run_id}/{}", msg_basis(msg)),
                        None => format!("msg:{}", msg_basis(msg)),
                    };
                    let id = incident_id(&msg.job, Event::Failed, &basis);
                    self.open(j, Slot::Failed, id, now, msg.text.clone(), msg, &mut out);
                } else {
                    let text = format!(
                        "failure {} of {} before alerting",
                        job.bad_streak, job.cfg.alert_after_failures
                    );
                    self.remember(j, now.wall_ms, text);
                }
            }
            Kind::Heartbeat => {
                // A heartbeat shows a process alive, not that a failed run
                // was redone; it ends only a failure reported outside a run.
                let runless = self.failed_run(j).is_none();
                if runless && self.jobs[j].alive_streak >= self.jobs[j].cfg.recover_after_successes
                {
                    self.close(
                        j,
                        Slot::Failed,
                        now,
                        || "heartbeat received".into(),
                        &mut out,
                    );
                }
            }
        }
        out
    }

    /// A message that shows the job alive now: the `down` deadline moves,
    /// and it is what the job was last heard from (named, for the next
    /// outage, by the latest message by the sender's clock).
    pub(super) fn heard_alive(&mut self, j: JobIdx, msg: &Message, host: Arc<str>, now: Now) {
        self.arm_down(j, now);
        if let Some(heard) = &mut self.heard {
            heard.insert(j);
        }
        let job = &mut self.jobs[j];
        let start_ms = match (&job.last, msg.kind) {
            (_, Kind::Start) => now.wall_ms,
            (Some(last), _) => last.start_ms,
            (None, _) => 0,
        };
        let up_since_ms = match &job.last {
            Some(last) if !last.by_peer && !job.open.contains_key(&Slot::Down) => {
                last.up_since_ms.min(now.wall_ms)
            }
            _ => now.wall_ms,
        };
        let before = job.last.take();
        let mut seen = Seen {
            at: now.at,
            wall_ms: now.wall_ms,
            kind: msg.kind,
            pid: msg.pid,
            seq: msg.seq,
            ts_ms: msg.ts_ms,
            host,
            up_since_ms,
            start_ms,
            by_peer: false,
            renamed: false,
        };
        if let Some(before) = before {
            seen.name_by_latest(before.pid, before.seq, before.ts_ms, &before.host);
        }
        job.last = Some(seen);
    }

    /// Whether a message is older than what is known of its job: sent (by
    /// its timestamp, corrected by its host's measured clock offset) so
    /// long ago that the job would be overdue by it already, and arriving
    /// while the job is overdue (down, or its deadline passed), as a message
    /// queued at the sender while its link was cut and delivered when the
    /// link healed; or, from the same process, an earlier one than the
    /// last. Returns how long ago it was sent. (A job heard on time is never
    /// judged stale: a sender whose clock stepped back looks late too.)
    pub(super) fn stale(&self, j: JobIdx, msg: &Message, now: Now) -> Option<u64> {
        // Judged by the clock alone, never by seq: a process restarted
        // under the same pid counts from 1 again, and a seq (or a
        // timestamp) from a hostile or broken sender would otherwise make
        // every later message look old.
        self.sent_late(j, &msg.host, msg.ts_ms, now.wall_ms, now)
    }

    /// How late a message of job `j` from `host`, stamped `ts_ms` by the
    /// sender, arrived at `arrived_ms` (here or at a peer), if it was so
    /// late that the job would be overdue by it now (`wall_ms`), and the
    /// job is overdue here; `None` if it was not, or if it cannot be told
    /// (no sender clock, the host not measured here).
    pub(super) fn sent_late(
        &self,
        j: JobIdx,
        host: &str,
        ts_ms: u64,
        arrived_ms: u64,
        now: Now,
    ) -> Option<u64> {
        if ts_ms == 0 {
            return None; // no sender clock
        }
        let job = &self.jobs[j];
        let overdue =
            job.open.contains_key(&Slot::Down) || job.down_at.is_none_or(|at| at <= now.at);
        if !overdue {
            return None;
        }
        let offset = self.hosts.offset_of(host)?;
        let sent = u64::try_from(i128::from(ts_ms) + i128::from(offset)).ok()?;
        let late = arrived_ms.checked_sub(sent)?;
        let cfg = &job.cfg;
        (late >= STALE_AFTER_MS && cfg.schedule.down_at_ms(sent, cfg.grace) <= now.wall_ms)
            .then_some(late)
    }

    /// The run of the open `failed` incident; `None` if it is run-less or closed.
    /// A run ended by `msg` (its `success` or `fail`), for the history:
    /// with its start if the watcher saw it, else a lone one.
    fn record_end(&mut self, j: JobIdx, msg: &Message, outcome: crate::history::Outcome, now: Now) {
        let started = msg
            .run_id
            .and_then(|id| self.jobs[j].runs.get(&id))
            .map(|r| {
                (
                    r.started_ms,
                    millis(now.at.saturating_duration_since(r.started)),
                )
            });
        let run = crate::history::RunRecord {
            job: self.jobs[j].name.to_string(),
            run_id: msg.run_id.map(crate::history::run_id_text),
            host: msg.host.clone(),
            pid: msg.pid,
            started_ms: started.map(|(at, _)| at),
            ended_ms: Some(now.wall_ms),
            duration_ms: started.map(|(_, ran)| ran),
            outcome,
            exit_code: msg.exit_code,
            text: msg.text.clone(),
            seq: msg.seq,
        };
        self.stats.runs.observe(
            &run.job,
            outcome == crate::history::Outcome::Success,
            now.wall_ms,
            run.duration_ms,
        );
        self.record_run(run);
    }

    pub(super) fn failed_run(&self, j: JobIdx) -> Option<u64> {
        self.jobs[j].open.get(&Slot::Failed).and_then(|o| o.run_id)
    }

    pub(super) fn start_run(
        &mut self,
        j: JobIdx,
        run_id: u64,
        msg: &Message,
        now: Now,
        out: &mut Vec<Notification>,
    ) {
        match self.jobs[j].runs.get(&run_id) {
            // The same start again (a resend): nothing new.
            Some(run) if run.basis == msg_basis(msg) => return,
            // Another run under the same id: the one before it ends here,
            // and what it had open is closed with how long it went on.
            Some(_) => {
                self.end_run(
                    j,
                    run_id,
                    "run started again under the same run id",
                    now,
                    out,
                );
            }
            None => {}
        }
        if !self.jobs[j].runs.contains_key(&run_id) && self.jobs[j].runs.len() >= MAX_RUNS_PER_JOB {
            let oldest = self.jobs[j]
                .runs
                .iter()
                .min_by_key(|(_, r)| r.started)
                .map(|(id, _)| *id);
            if let Some(oldest) = oldest {
                let text =
                    format!("run no longer tracked: more than {MAX_RUNS_PER_JOB} runs at once");
                self.end_run(j, oldest, &text, now, out);
            }
        }
        self.jobs[j].runs.insert(
            run_id,
            RunState {
                started: now.at,
                started_ms: now.wall_ms,
                active: now.at,
                host: msg.host.clone(),
                basis: msg_basis(msg),
                stalls: 0,
            },
        );
        if let Some(max) = self.jobs[j].cfg.max_runtime {
            self.deadlines.set(Timer::Overrun(j, run_id), now.at + max);
        }
        if let Some(stall) = self.jobs[j].cfg.stall_after {
            self.deadlines.set(Timer::Stall(j, run_id), now.at + stall);
        }
        if let Some(after) = self.slow_after(j) {
            self.deadlines.set(Timer::Slow(j, run_id), now.at + after);
        }
    }

    /// How long a run of `j` may last before it is `slow`: `slow_after` ×
    /// the median of its last successful runs (none until there are
    /// enough of them).
    pub(super) fn slow_after(&self, j: JobIdx) -> Option<Duration> {
        let job = &self.jobs[j];
        let factor = job.cfg.slow_after?;
        let usual = super::job::usual(job.recent.as_deref()?)?;
        let after = Duration::from_millis(usual).mul_f64(factor);
        // A job whose runs take no time yet is not slow within a second.
        Some(after.max(Duration::from_secs(1)))
    }

    /// A message of a live run: it is not stalled.
    pub(super) fn touch_run(
        &mut self,
        j: JobIdx,
        run_id: u64,
        now: Now,
        out: &mut Vec<Notification>,
    ) {
        if let Some(run) = self.jobs[j].runs.get_mut(&run_id) {
            run.active = now.at;
        }
        if let Some(stall) = self.jobs[j].cfg.stall_after {
            self.deadlines.set(Timer::Stall(j, run_id), now.at + stall);
        }
        self.close(
            j,
            Slot::Stalled(run_id),
            now,
            || "the run sent a message again".into(),
            out,
        );
    }

    pub(super) fn end_run(
        &mut self,
        j: JobIdx,
        run_id: u64,
        text: &str,
        now: Now,
        out: &mut Vec<Notification>,
    ) {
        self.deadlines.clear(&Timer::Overrun(j, run_id));
        self.deadlines.clear(&Timer::Stall(j, run_id));
        self.deadlines.clear(&Timer::Slow(j, run_id));
        let ran = self.jobs[j]
            .runs
            .remove(&run_id)
            .map(|r| now.at.saturating_duration_since(r.started));
        self.close(j, Slot::Overrun(run_id), now, || text.to_owned(), out);
        self.close(j, Slot::Stalled(run_id), now, || text.to_owned(), out);
        // A slow run's follow-up says how long it took in the end.
        self.close(
            j,
            Slot::Slow(run_id),
            now,
            || match ran {
                Some(ran) => format!("{text} after {}", human(ran)),
                None => text.to_owned(),
            },
            out,
        );
    }

    pub(super) fn fire_down(&mut self, j: JobIdx, now: Now, out: &mut Vec<Notification>) {
        if self.jobs[j].open.contains_key(&Slot::Down) {
            return;
        }
        let job = &mut self.jobs[j];
        job.bad_streak = job.bad_streak.saturating_add(1);
        job.success_streak = 0;
        job.alive_streak = 0;
        if job.bad_streak < job.cfg.alert_after_failures {
            // Damped: count the miss, and watch the next period.
            let text = format!(
                "missed ({} of {} before alerting)",
                job.bad_streak, job.cfg.alert_after_failures
            );
            self.remember(j, now.wall_ms, text);
            self.arm_down(j, now);
            return;
        }
        let job = &self.jobs[j];
        // Never heard: the occurrence is this watch of the job (a job
        // removed and added back, or a new watcher, is a new one).
        let basis = job
            .last
            .as_ref()
            .map_or_else(|| format!("never:{}", job.watching_since_ms), Seen::basis);
        let id = incident_id(&job.name, Event::Down, &basis);
        let since = job.last.as_ref().map_or(self.started, |s| s.at);
        let quiet = now.at.saturating_duration_since(since);
        let mut note = self.note(j, Event::Down, &id, now.wall_ms);
        note.text = Some(match &job.last {
            Some(_) => format!("no message for {}", human(quiet)),
            None => format!(
                "never heard from since the watcher started {} ago",
                human(quiet)
            ),
        });
        self.insert_open(j, Slot::Down, id, since, now.at, note, out);
    }

    pub(super) fn fire_late(&mut self, j: JobIdx, now: Now, out: &mut Vec<Notification>) {
        let Some(expected) = self.jobs[j].expected_start_ms else {
            return;
        };
        if !self.jobs[j].open.contains_key(&Slot::Late) {
            let name = self.jobs[j].name.to_string();
            let due = crate::notification::rfc3339(expected);
            let within = human(self.jobs[j].cfg.start_within.unwrap_or_default());
            // A step of a chain: named by the success it follows (every
            // watcher heard the same message, at its own time).
            let (basis, text) = match (&self.jobs[j].cfg.after, &self.jobs[j].chain_basis) {
                (Some(after), Some(basis)) => (
                    format!("after:{after}/{basis}"),
                    format!("no start within {within} of {after}'s success at {due}"),
                ),
                _ => (
                    format!("due:{expected}"),
                    format!("no start within {within} of the scheduled {due}"),
                ),
            };
            let id = incident_id(&name, Event::Late, &basis);
            let mut note = self.note(j, Event::Late, &id, now.wall_ms);
            note.text = Some(text);
            self.insert_open(j, Slot::Late, id, now.at, now.at, note, out);
        }
        // Watch the next scheduled start too (the incident stays one).
        self.arm_late(j, now, expected);
    }

    pub(super) fn fire_run(
        &mut self,
        j: JobIdx,
        slot: Slot,
        now: Now,
        out: &mut Vec<Notification>,
    ) {
        let Some(run_id) = slot.run() else { return };
        if self.jobs[j].open.contains_key(&slot) {
            return;
        }
        let Some(run) = self.jobs[j].runs.get_mut(&run_id) else {
            return;
        };
        // The run, named by its id and its start message, and for a stall
        // which stall of the run it is.
        let basis = match slot {
            Slot::Stalled(_) => {
                run.stalls = run.stalls.saturating_add(1);
                format!("run:{run_id}/{}/stall:{}", run.basis, run.stalls)
            }
            _ => format!("run:{run_id}/{}", run.basis),
        };
        let running = now.at.saturating_duration_since(run.started);
        let host = run.host.clone();
        let started_ms = run.started_ms;
        let history = crate::history::RunRecord {
            job: self.jobs[j].name.to_string(),
            run_id: Some(crate::history::run_id_text(run_id)),
            host: host.clone(),
            pid: 0,
            started_ms: Some(started_ms),
            ended_ms: None,
            duration_ms: Some(millis(running)),
            outcome: match slot {
                Slot::Stalled(_) => crate::history::Outcome::Stalled,
                _ => crate::history::Outcome::Overrun,
            },
            exit_code: None,
            text: None,
            seq: 0,
        };
        if !matches!(slot, Slot::Slow(_)) {
            self.record_run(history);
        }
        let name = self.jobs[j].name.to_string();
        let id = incident_id(&name, slot.event(), &basis);
        let mut note = self.note(j, slot.event(), &id, now.wall_ms);
        note.run_id = Some(run_id);
        note.host = Some(Arc::from(host));
        note.text = Some(match slot {
            Slot::Stalled(_) => format!(
                "run started {} ago sent nothing for {}",
                human(running),
                human(self.jobs[j].cfg.stall_after.unwrap_or_default())
            ),
            Slot::Slow(_) => {
                let job = &self.jobs[j];
                let usual = job
                    .recent
                    .as_deref()
                    .and_then(super::job::usual)
                    .unwrap_or(0);
                let runs = job.recent.as_ref().map_or(0, |r| r.len());
                format!(
                    "run started {} ago is still going: more than {} x the median {} of the last {runs} successful runs",
                    human(running),
                    job.cfg.slow_after.unwrap_or_default(),
                    human(Duration::from_millis(usual))
                )
            }
            _ => format!("run started {} ago has not ended", human(running)),
        });
        self.insert_open(j, slot, id, now.at, now.at, note, out);
    }

    pub(super) fn fire_repeat(
        &mut self,
        j: JobIdx,
        slot: Slot,
        now: Now,
        out: &mut Vec<Notification>,
    ) {
        let every = self.jobs[j].cfg.repeat;
        // No reminders in a silence or a maintenance window.
        let quiet = self.jobs[j].silence.is_some() || self.window_over(j, now.wall_ms).is_some();
        let Some(open) = self.jobs[j].open.get_mut(&slot) else {
            return;
        };
        if open.ack.is_some() {
            return;
        }
        if quiet || !open.notified {
            if let Some(every) = every {
                self.deadlines.set(Timer::Repeat(j, slot), now.at + every);
            }
            return;
        }
        open.repeats += 1;
        let mut note = open.first.clone();
        note.repeat = open.repeats;
        note.detected_ms = now.wall_ms;
        note.last_seen_ms = self.jobs[j].last.as_ref().map(|s| s.wall_ms);
        out.push(note);
        if let Some(every) = every {
            self.deadlines.set(Timer::Repeat(j, slot), now.at + every);
        }
    }
}
