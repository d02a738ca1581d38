//! A configuration reload: jobs added, removed or changed, state and
//! open incidents kept where the job stays.

use super::*;

/// What a configuration reload changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Reconfigured {
    /// Jobs new in the configuration.
    pub added: usize,
    /// Jobs no longer in it (their state is dropped).
    pub removed: usize,
    /// Jobs whose settings changed (state kept, timers recomputed).
    pub changed: usize,
    /// Jobs exactly as before (state and timers untouched).
    pub unchanged: usize,
    /// The names of the removed jobs (their saved state goes too).
    pub removed_names: Vec<String>,
    /// The follow-ups owed for incidents of removed jobs that were notified:
    /// every alarm gets one, even when its job goes away.
    #[serde(skip)]
    pub closed: Vec<Notification>,
}

impl Registry {
    /// Takes a new job list (SIGHUP) without losing state: a job whose
    /// settings are unchanged keeps its state and its timers exactly; a job
    /// whose settings changed keeps its state (last message, runs, open
    /// incidents, streaks, silence, history) and has its timers recomputed;
    /// a new job is watched as at start-up (one full period before it can be
    /// down); a removed job is forgotten.
    pub fn reconfigure(
        &mut self,
        jobs: &[JobConfig],
        max_unknown: usize,
        max_skew: Duration,
        now: Now,
    ) -> Reconfigured {
        self.max_unknown = max_unknown;
        self.hosts.max_skew = max_skew;
        // Declared jobs stay, unless the configuration has them now (it
        // wins) or the policy, as it is now, no longer takes them.
        let configured: HashSet<&str> = jobs.iter().map(|j| j.name.as_str()).collect();
        let mut judged = Vec::new();
        for state in &self.jobs {
            let Some(declared) = state.declared.as_deref() else {
                continue;
            };
            if configured.contains(&*state.name) {
                continue;
            }
            let max_jobs = self.declare.as_ref().map_or(0, |p| p.max_jobs);
            match self.rejudge(&state.name, declared) {
                Ok(_) if judged.len() >= max_jobs => {
                    warn!(job = %state.name, max_jobs, "more declared jobs than [declare] max_jobs; removed");
                }
                Ok(cfg) => judged.push((cfg, declared.clone())),
                Err(reason) => {
                    warn!(job = %state.name, %reason, "a declared job is no longer taken by the [declare] policy; removed");
                }
            }
        }
        let mut entries: Vec<(&JobConfig, Option<&Declaration>)> =
            jobs.iter().map(|cfg| (cfg, None)).collect();
        entries.extend(judged.iter().map(|(cfg, d)| (cfg, Some(d))));
        let mut summary = self.rebuild(&entries, now);
        // The caller drops the state of every removed job already.
        drop(configured);
        // Unknown names the configuration has now: their alerts' follow-ups.
        let known: Vec<String> = self
            .unknown
            .names
            .keys()
            .filter(|name| self.index.contains_key(name.as_str()))
            .cloned()
            .collect();
        for name in known {
            self.became_known(&name, now, &mut summary.closed);
        }
        summary
    }

    /// The registry for `entries` (a job's settings, and its declaration
    /// if it declared itself), keeping the state of every job that stays.
    pub(super) fn rebuild(
        &mut self,
        entries: &[(&JobConfig, Option<&Declaration>)],
        now: Now,
    ) -> Reconfigured {
        self.wall_timers = entries.iter().any(|(cfg, _)| cfg.follows_wall_clock())
            || self.jobs.iter().any(|job| job.silence.is_some())
            || !self.maintenance.is_empty();
        let mut old: Vec<Option<JobState>> = std::mem::take(&mut self.jobs)
            .into_iter()
            .map(Some)
            .collect();
        let old_index = std::mem::take(&mut self.index);
        let old_deadlines = std::mem::take(&mut self.deadlines);
        let old_dirty = std::mem::take(&mut self.dirty);
        let mut summary = Reconfigured::default();
        // Old index -> new index, for jobs whose timers carry over as they are.
        let mut kept: HashMap<usize, usize> = HashMap::new();
        let mut rearm = Vec::new();
        let mut shared: Option<Arc<JobConfig>> = None;
        for (j, &(cfg, declared)) in entries.iter().enumerate() {
            let declared = declared.map(|d| Box::new(d.clone()));
            let before = old_index
                .get(cfg.name.as_str())
                .and_then(|&o| Some((o, old.get_mut(o)?.take()?)));
            match before {
                Some((o, mut state)) if state.cfg.same_settings(cfg) => {
                    summary.unchanged += 1;
                    kept.insert(o, j);
                    if old_dirty.contains(&o) {
                        self.touch(j);
                    }
                    state.cfg = share(&mut shared, cfg);
                    state.declared = declared;
                    self.index.insert(Arc::clone(&state.name), j);
                    self.jobs.push(state);
                }
                Some((_, mut state)) => {
                    summary.changed += 1;
                    let same_schedule = state.cfg.schedule == cfg.schedule;
                    state.cfg = share(&mut shared, cfg);
                    state.declared = declared;
                    self.index.insert(Arc::clone(&state.name), j);
                    self.jobs.push(state);
                    rearm.push((j, Some(same_schedule)));
                    self.touch(j);
                }
                None => {
                    summary.added += 1;
                    let name: Arc<str> = Arc::from(cfg.name.as_str());
                    self.index.insert(Arc::clone(&name), j);
                    let mut state = JobState::new(name, share(&mut shared, cfg), now.wall_ms);
                    state.declared = declared;
                    self.jobs.push(state);
                    rearm.push((j, None));
                    self.touch(j);
                }
            }
        }
        for state in old.into_iter().flatten() {
            for (slot, open) in &state.open {
                if !open.notified {
                    continue; // never alarmed (silenced): no follow-up owed
                }
                let mut note = Registry::follow_up_of(
                    &open.first,
                    *slot,
                    open.escalated,
                    open.ack.as_deref().cloned(),
                    now.wall_ms,
                );
                note.last_seen_ms = state.last.as_ref().map(|s| s.wall_ms);
                note.duration_ms = Some(millis(now.at.saturating_duration_since(open.since)));
                note.route = self.route_of(&state);
                note.text = Some(if state.declared.is_some() {
                    "the declared job is no longer watched (forgotten, retired, or no longer taken by the [declare] policy)".into()
                } else {
                    "the job was removed from the configuration".into()
                });
                summary.closed.push(note);
            }
            summary.removed_names.push(state.name.to_string());
        }
        summary.removed = summary.removed_names.len();
        for (key, at) in old_deadlines.iter() {
            if let Some(&j) = kept.get(&key.job()) {
                match key {
                    // The job's own `down_at` came along with its state.
                    Timer::Down(_) => self.deadlines.insert_untracked(Timer::Down(j), at),
                    _ => self.deadlines.set(key.with_job(j), at),
                }
            }
        }
        for (j, same_schedule) in rearm {
            match same_schedule {
                Some(keep_expected) => self.rearm(j, keep_expected, now),
                None => {
                    self.arm_down(j, now);
                    self.arm_late_fresh(j, now);
                }
            }
            if self.deadlines.get(&Timer::Retire(j)).is_none() {
                self.arm_retire(j, now);
            }
        }
        self.route_declared();
        self.watch_declared(&summary.removed_names);
        self.declared_jobs = self.jobs.iter().filter(|j| j.declared.is_some()).count();
        self.stats.declared_jobs.store(
            u64::try_from(self.declared_jobs).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        // A job depended on may be gone (removed, forgotten, retired), or
        // the links changed: held alarms are judged again.
        self.relink();
        self.release_all(now, &mut summary.closed);
        summary
    }
}
