//! The state database's form of a job (`JobRecord`), what changed since
//! the last save, and the restore at start-up.

use super::*;

/// Runs recorded and not yet saved that are kept (the store saves them
/// with the job state, a moment later); more would mean the saves stopped.
pub const RUNS_KEPT: usize = 100_000;

/// What the state database keeps of a job (JSON in `jobs.state`; the store
/// thread writes it, off the checker's hot path). Times are
/// the watcher's wall clock (unix ms): monotonic instants do not survive a
/// restart.
///
/// Fields added since the first version default when absent, so a database
/// written by an older watcher is still read; and the first version's
/// fields are still written, in its form, so that it can read this one
/// (a rollback keeps the job state).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct JobRecord {
    pub(super) last: Option<SeenRecord>,
    /// (run id, started, host): the first version's form.
    pub(super) runs: Vec<(u64, u64, String)>,
    /// What later versions keep of each run besides.
    pub(super) run_details: Vec<RunDetail>,
    pub(super) open: Vec<OpenRecord>,
    pub(super) bad_streak: u32,
    /// The first version's one streak (it counted heartbeats as successes):
    /// written for it as the successful runs; read only from its records.
    pub(super) good_streak: u32,
    pub(super) success_streak: Option<u32>,
    pub(super) alive_streak: Option<u32>,
    pub(super) silence: Option<Silence>,
    pub(super) expected_start_ms: Option<u64>,
    /// The schedule `expected_start_ms` was derived from: a slot awaited
    /// under a schedule changed while the watcher was stopped is not kept.
    pub(super) expected_for: Option<String>,
    pub(super) watching_since_ms: Option<u64>,
    /// The job's recently closed incidents (see `JobState::closed`).
    pub(super) closed: Vec<String>,
    /// How the job declared itself, if it did: a restarted watcher watches
    /// it again without waiting for its next declaration.
    pub(super) declared: Option<Declaration>,
    /// With `slow_after`: its last successful runs' durations (ms).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) recent_ms: Vec<u64>,
    /// With `after`: what the awaited start follows (see `JobState::chain_basis`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) chain_basis: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct SeenRecord {
    pub(super) wall_ms: u64,
    pub(super) kind: String,
    /// `host/pid/seq`.
    pub(super) basis: String,
    pub(super) host: String,
    #[serde(default)]
    pub(super) ts_ms: u64,
    #[serde(default)]
    pub(super) start_ms: u64,
    #[serde(default)]
    pub(super) up_since_ms: Option<u64>,
    /// Its host's measured clock offset (watcher minus sender, ms): a
    /// restarted watcher still tells a backlog delivered late (the first
    /// thing its senders send it on reconnecting) from fresh news.
    #[serde(default)]
    pub(super) host_offset_ms: Option<i64>,
    /// Learnt from a farm peer, not heard here.
    #[serde(default)]
    pub(super) by_peer: bool,
    /// Its identity is a later message's (see `Seen::renamed`).
    #[serde(default)]
    pub(super) renamed: Option<bool>,
}

/// What a run carries besides the first version's (id, started, host).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct RunDetail {
    pub(super) run_id: u64,
    pub(super) active_ms: u64,
    pub(super) basis: String,
    pub(super) stalls: u32,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct OpenRecord {
    pub(super) slot: Slot,
    pub(super) id: String,
    pub(super) since_ms: u64,
    pub(super) run_id: Option<u64>,
    pub(super) repeats: u32,
    pub(super) notified: bool,
    pub(super) first: Notification,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) ack: Option<crate::notification::Ack>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(super) escalated: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) held: Option<Held>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// What an awaited start was derived from: the schedule and `start_within`.
pub(super) fn expected_for(cfg: &JobConfig) -> String {
    match &cfg.after {
        Some(after) => format!("after {after} within {:?}", cfg.start_within),
        None => format!("{} within {:?}", cfg.schedule, cfg.start_within),
    }
}

impl Registry {
    /// Stops keeping the set of changed jobs (no state database reads it).
    pub fn without_dirty_tracking(mut self) -> Registry {
        self.track_dirty = false;
        self.dirty = HashSet::new();
        self
    }

    pub(super) fn touch(&mut self, j: JobIdx) {
        if self.track_dirty {
            self.dirty.insert(j);
        }
    }

    /// Records a run for the history (with a state database only). Bounded:
    /// past [`RUNS_KEPT`] unsaved runs the oldest go.
    pub(super) fn record_run(&mut self, run: crate::history::RunRecord) {
        if !self.track_dirty {
            return;
        }
        if self.runs.len() >= RUNS_KEPT {
            self.runs.pop_front();
        }
        self.runs.push_back(run);
    }

    /// The runs recorded since the last call, for the state database.
    pub fn take_runs(&mut self) -> Vec<crate::history::RunRecord> {
        std::mem::take(&mut self.runs).into()
    }

    /// Whether a job changed since the last [`Registry::take_dirty`].
    pub fn is_dirty(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// The jobs changed since the last call, as (name, JSON record), for the
    /// state database.
    pub fn take_dirty(&mut self, now: Now) -> Vec<(String, JobRecord)> {
        let wall_of = |at: Instant| {
            now.wall_ms
                .saturating_sub(millis(now.at.saturating_duration_since(at)))
        };
        let dirty: Vec<usize> = self.dirty.drain().collect();
        dirty
            .into_iter()
            .map(|j| {
                let job = &self.jobs[j];
                let record = JobRecord {
                    last: job.last.as_ref().map(|s| SeenRecord {
                        wall_ms: s.wall_ms,
                        kind: s.kind.name().to_owned(),
                        basis: format!("{}/{}/{}", s.host, s.pid, s.seq),
                        host: s.host.to_string(),
                        ts_ms: s.ts_ms,
                        start_ms: s.start_ms,
                        up_since_ms: Some(s.up_since_ms),
                        host_offset_ms: self.hosts.offset_of(&s.host),
                        by_peer: s.by_peer,
                        renamed: Some(s.renamed),
                    }),
                    runs: job
                        .runs
                        .iter()
                        .map(|(id, r)| (*id, r.started_ms, r.host.clone()))
                        .collect(),
                    run_details: job
                        .runs
                        .iter()
                        .map(|(id, r)| RunDetail {
                            run_id: *id,
                            active_ms: wall_of(r.active),
                            basis: r.basis.clone(),
                            stalls: r.stalls,
                        })
                        .collect(),
                    open: job
                        .open
                        .iter()
                        .map(|(slot, o)| OpenRecord {
                            slot: *slot,
                            id: o.id.clone(),
                            since_ms: wall_of(o.since),
                            run_id: o.run_id,
                            repeats: o.repeats,
                            notified: o.notified,
                            first: o.first.clone(),
                            ack: o.ack.as_deref().cloned(),
                            escalated: o.escalated,
                            held: o.held.as_deref().cloned(),
                        })
                        .collect(),
                    bad_streak: job.bad_streak,
                    good_streak: job.success_streak,
                    success_streak: Some(job.success_streak),
                    alive_streak: Some(job.alive_streak),
                    silence: job.silence.as_deref().cloned(),
                    expected_start_ms: job.expected_start_ms,
                    expected_for: job.expected_start_ms.map(|_| expected_for(&job.cfg)),
                    watching_since_ms: Some(job.watching_since_ms),
                    closed: job
                        .closed
                        .iter()
                        .flat_map(|c| c.iter().map(|id| id.to_string()))
                        .collect(),
                    declared: job.declared.as_deref().cloned(),
                    recent_ms: job
                        .recent
                        .as_ref()
                        .map(|r| r.iter().copied().collect())
                        .unwrap_or_default(),
                    chain_basis: job.chain_basis.as_deref().cloned(),
                };
                (job.name.to_string(), record)
            })
            .collect()
    }

    /// Carries on from records of an earlier run (by job name; unknown names
    /// and unreadable records are skipped). Deadlines are recomputed from the
    /// recorded wall times, so one that passed while the watcher was down
    /// fires at once.
    pub fn restore(&mut self, records: &[(String, String)], now: Now) -> usize {
        self.restore_declared(records, now);
        let instant_of = |at_ms: u64| past_at_wall(now, at_ms);
        let mut restored = 0;
        let mut seen = vec![false; self.jobs.len()];
        for (name, text) in records {
            let Some(&j) = self.index.get(name.as_str()) else {
                continue;
            };
            let Ok(record) = serde_json::from_str::<JobRecord>(text) else {
                warn!(job = %name, "unreadable job state skipped");
                continue;
            };
            restored += 1;
            // An older watcher's record has no offset: the last message
            // heard here gives one (an upper bound, transit included).
            if let Some((host, offset, at)) = record.last.as_ref().and_then(|s| {
                let heard = (!s.by_peer && s.ts_ms > 0)
                    .then(|| i64::try_from(i128::from(s.wall_ms) - i128::from(s.ts_ms)).ok())
                    .flatten();
                s.host_offset_ms
                    .or(heard)
                    .map(|o| (Arc::<str>::from(s.host.as_str()), o, s.wall_ms))
            }) {
                self.hosts.restore(host, offset, at);
            }
            let job = &mut self.jobs[j];
            job.last = record.last.map(|s| {
                // basis is `host/pid/seq`; the host may hold a '/'.
                let mut parts = s.basis.rsplitn(3, '/');
                let seq = parts.next().and_then(|v| v.parse().ok()).unwrap_or(0);
                let pid = parts.next().and_then(|v| v.parse().ok()).unwrap_or(0);
                Seen {
                    at: instant_of(s.wall_ms),
                    wall_ms: s.wall_ms,
                    kind: Kind::from_name(&s.kind).unwrap_or(Kind::Heartbeat),
                    pid,
                    seq,
                    ts_ms: s.ts_ms,
                    host: Arc::from(s.host),
                    up_since_ms: s.up_since_ms.unwrap_or(s.wall_ms),
                    start_ms: s.start_ms,
                    by_peer: s.by_peer,
                    // Unknown in an older record: taken as renamed (the
                    // safe side: it is then never taken for the message
                    // heard last).
                    renamed: s.renamed.unwrap_or(true),
                }
            });
            job.bad_streak = record.bad_streak;
            // The first version kept one streak that counted heartbeats too:
            // it may stand for signs of life, never for successful runs.
            job.alive_streak = record.alive_streak.unwrap_or(record.good_streak);
            job.success_streak = record.success_streak.unwrap_or(0);
            if record
                .silence
                .as_ref()
                .is_some_and(|s| s.until_ms.is_some())
            {
                self.wall_timers = true;
            }
            job.silence = record.silence.map(Box::new);
            if !record.recent_ms.is_empty() && job.cfg.slow_after.is_some() {
                let keep = record.recent_ms.len().saturating_sub(super::job::SLOW_RUNS);
                job.recent = Some(Box::new(record.recent_ms.into_iter().skip(keep).collect()));
            }
            if let Some(since) = record.watching_since_ms {
                job.watching_since_ms = since;
            }
            // The slot `late` waited for before the restart is still
            // awaited (a restart just before or after a daily run's time
            // must not skip it), unless the schedule changed meanwhile.
            let keep_expected = record.expected_start_ms.is_some()
                && record.expected_for.as_deref() == Some(expected_for(&job.cfg).as_str());
            if keep_expected {
                job.expected_start_ms = record.expected_start_ms;
                job.chain_basis = record.chain_basis.map(Box::new);
            }
            if !record.closed.is_empty() {
                job.closed = Some(Box::new(
                    record
                        .closed
                        .iter()
                        .map(|id| Arc::from(id.as_str()))
                        .collect(),
                ));
            }
            let mut details: HashMap<u64, RunDetail> = record
                .run_details
                .into_iter()
                .map(|d| (d.run_id, d))
                .collect();
            for (run_id, started_ms, host) in record.runs {
                let detail = details.remove(&run_id);
                job.runs.insert(
                    run_id,
                    RunState {
                        started: instant_of(started_ms),
                        started_ms,
                        // Unknown (an older record): as if active now.at.
                        active: detail.as_ref().map_or(now.at, |d| instant_of(d.active_ms)),
                        host,
                        basis: detail.as_ref().map(|d| d.basis.clone()).unwrap_or_default(),
                        stalls: detail.map_or(0, |d| d.stalls),
                    },
                );
            }
            for o in record.open {
                job.open.insert(
                    o.slot,
                    Open {
                        id: o.id,
                        since: instant_of(o.since_ms),
                        run_id: o.run_id,
                        repeats: o.repeats,
                        notified: o.notified,
                        first: o.first,
                        ack: o.ack.map(Box::new),
                        escalated: o.escalated,
                        held: o.held.map(Box::new),
                    },
                );
            }
            self.rearm(j, keep_expected, now);
            seen[j] = true;
            // In a farm, what this watcher knew is told to its peers again:
            // its gossip state did not survive the restart.
            if let (Some(heard), true) = (&mut self.heard, self.jobs[j].last.is_some()) {
                heard.insert(j);
            }
        }
        // A hold that ended while the watcher was stopped (a window that
        // closed, a job depended on that recovered) ends now.
        let mut released = Vec::new();
        self.release_all(now, &mut released);
        self.owed.extend(released);
        // A job with nothing saved is saved now.at: when watching began must
        // survive the next restart, or a watcher restarted more often than
        // a never-heard job's period would never raise its `down`.
        for (j, seen) in seen.into_iter().enumerate() {
            if !seen {
                self.touch(j);
            }
        }
        restored
    }

    /// The declared jobs of an earlier run, watched again if the policy,
    /// as it is now, still takes them (their state is restored after).
    fn restore_declared(&mut self, records: &[(String, String)], now: Now) {
        for (name, text) in records {
            if self.index.contains_key(name.as_str()) {
                continue;
            }
            let Ok(JobRecord {
                declared: Some(declared),
                open,
                ..
            }) = serde_json::from_str::<JobRecord>(text)
            else {
                continue;
            };
            let max_jobs = self.declare.as_ref().map_or(0, |p| p.max_jobs);
            let judged = self.rejudge(name, &declared).and_then(|cfg| {
                if self.declared_jobs >= max_jobs {
                    Err(format!(
                        "[declare] max_jobs = {max_jobs} declared jobs already"
                    ))
                } else {
                    Ok(cfg)
                }
            });
            let cfg = match judged {
                Ok(cfg) => cfg,
                Err(reason) => {
                    warn!(job = %name, %reason, "a job declared before the restart is not taken by the [declare] policy now; not watched");
                    self.removed.push(name.clone());
                    // Every alarm gets its follow-up, as on a reload.
                    for o in open.into_iter().filter(|o| o.notified) {
                        let mut note = Registry::follow_up_of(
                            &o.first,
                            o.slot,
                            o.escalated,
                            o.ack,
                            now.wall_ms,
                        );
                        note.duration_ms = Some(now.wall_ms.saturating_sub(o.since_ms));
                        note.text =
                            Some(format!("the declared job is no longer watched: {reason}"));
                        self.owed.push(note);
                    }
                    continue;
                }
            };
            self.add_declared(name, cfg, declared, now);
        }
        self.route_declared();
        self.watch_declared(&[]);
        self.stats.declared_jobs.store(
            u64::try_from(self.declared_jobs).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }
}
