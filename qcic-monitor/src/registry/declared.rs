//! Jobs that declare themselves (`declare` messages): taken under the
//! watcher's `[declare]` policy, or refused with a counted, logged reason;
//! forgotten on request, and retired after `retire_after` of silence.

use super::*;
use crate::config::DeclareConfig;
use crate::stats::DeclareRefusal;

pub use super::job::Declaration;

/// Refused (job, reason) pairs logged once each, at most.
const REFUSALS_SAID: usize = 1024;

/// A change to the watched set the receive thread keeps (it tells the
/// connections that proved themselves by the jobs watched).
#[derive(Debug, Clone)]
pub enum WatchChange {
    /// A declared job, pinned to these sender keys if CURVE is on.
    Add(String, Option<std::collections::HashSet<String>>),
    /// A declared job no longer watched.
    Remove(String),
}

/// The channels (by index) of each declared job that names some: shared
/// with the dispatcher's routing, which looks a job up here when the
/// configuration does not route it.
pub type DeclaredRoutes = Arc<std::sync::Mutex<HashMap<String, Vec<usize>>>>;

impl Registry {
    /// Takes the `[declare]` policy (at start and on each reload, before
    /// [`Registry::reconfigure`]); `None`: declarations are refused.
    pub fn set_declare_policy(&mut self, policy: Option<DeclareConfig>) {
        self.declare = policy.map(Arc::new);
    }

    /// The same, as a builder.
    pub fn with_declare_policy(mut self, policy: Option<DeclareConfig>) -> Registry {
        self.set_declare_policy(policy);
        self
    }

    /// The declared jobs' routes, for the dispatcher.
    pub fn routes(&self) -> DeclaredRoutes {
        Arc::clone(&self.routes)
    }

    /// Makes the routes again from the declared jobs (after any change).
    pub(super) fn route_declared(&self) {
        let routes: HashMap<String, Vec<usize>> = self
            .jobs
            .iter()
            .filter(|job| job.declared.is_some())
            .filter_map(|job| {
                let names = job.cfg.notify.as_ref()?;
                Some((job.name.to_string(), self.channel_indexes(names)))
            })
            .collect();
        *self
            .routes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = routes;
    }

    /// Every declared job, for the watched set (after a rebuild: a reload
    /// replaced that set with the configured jobs).
    pub(super) fn watch_declared(&mut self, removed: &[String]) {
        let adds: Vec<WatchChange> = self
            .jobs
            .iter()
            .filter(|job| job.declared.is_some())
            .map(|job| WatchChange::Add(job.name.to_string(), job.cfg.senders.clone()))
            .collect();
        self.watch_changes.extend(
            removed
                .iter()
                .filter(|name| !self.index.contains_key(name.as_str()))
                .map(|name| WatchChange::Remove(name.clone())),
        );
        self.watch_changes.extend(adds);
    }

    /// Updates one declared job's route (after it was added or changed).
    fn route_one(&self, j: JobIdx) {
        let job = &self.jobs[j];
        let route = job
            .cfg
            .notify
            .as_ref()
            .map(|names| self.channel_indexes(names));
        let mut routes = self
            .routes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match route {
            Some(route) => {
                routes.insert(job.name.to_string(), route);
            }
            None => {
                routes.remove(&*job.name);
            }
        }
    }

    /// Notifications owed outside a message or a deadline (follow-ups of
    /// a declared job the policy refused at start), since the last call.
    pub fn take_owed(&mut self) -> Vec<Notification> {
        std::mem::take(&mut self.owed)
    }

    /// Changes to the watched set since the last call.
    pub fn take_watch_changes(&mut self) -> Vec<WatchChange> {
        std::mem::take(&mut self.watch_changes)
    }

    /// Names of declared jobs removed since the last call (forgotten or
    /// retired), for the state database to drop.
    pub fn take_removed(&mut self) -> Vec<String> {
        std::mem::take(&mut self.removed)
    }

    /// A declaration. Not a sign of life: it moves no deadline.
    pub(super) fn on_declare(
        &mut self,
        msg: &Message,
        sender_key: Option<&str>,
        now: Now,
    ) -> Vec<Notification> {
        let Some(expect) = msg.expect.as_deref() else {
            return Vec::new(); // the decoder lets no declare through without one
        };
        let Some(policy) = self.declare.clone() else {
            self.refuse(
                msg,
                DeclareRefusal::Disabled,
                "this watcher has no [declare] table",
            );
            return Vec::new();
        };
        let cfg = match policy.judge(&msg.job, expect, sender_key) {
            Ok(cfg) => cfg,
            Err((why, detail)) => {
                self.refuse(msg, why, &detail);
                return Vec::new();
            }
        };
        if let Err(detail) = self.check_links(&msg.job, &cfg) {
            self.refuse(msg, DeclareRefusal::Invalid, &detail);
            return Vec::new();
        }
        let declaration = Declaration {
            spec: expect.to_string(),
            host: msg.host.clone(),
            key: sender_key.map(str::to_owned),
            at_ms: now.wall_ms,
        };
        let mut out = Vec::new();
        match self.index.get(msg.job.as_str()).copied() {
            Some(j) => {
                let Some(old) = self.jobs[j].declared.as_deref() else {
                    // The configuration wins; said once per job, counted always.
                    let first = self.config_wins.insert(Arc::clone(&self.jobs[j].name));
                    let total = self.stats.refuse_declaration(DeclareRefusal::Configured);
                    if first {
                        warn!(job = %msg.job, host = %msg.host, declared = %declaration.spec, configured = %self.jobs[j].cfg.schedule, declarations_refused_configured = total, "a job in the configuration declared itself too; the configuration wins");
                    }
                    return out;
                };
                // A job declared before CURVE was on has no key: the first
                // key that declares it again takes it.
                if policy.curve && old.key.is_some() && old.key.as_deref() != sender_key {
                    self.refuse(
                        msg,
                        DeclareRefusal::Pinned,
                        &format!(
                            "declared by key {}, not {}",
                            old.key.as_deref().unwrap_or("(none)"),
                            sender_key.unwrap_or("(none)")
                        ),
                    );
                    return out;
                }
                if self.jobs[j].cfg.same_settings(&cfg) {
                    self.stats
                        .declarations_unchanged
                        .fetch_add(1, Ordering::Relaxed);
                    return out;
                }
                let same_schedule = self.jobs[j].cfg.schedule == cfg.schedule;
                // Two senders flapping one job's declaration cost a line
                // at 1, 2, 4, ... changes, not one each.
                let changes = self
                    .stats
                    .declarations_changed
                    .fetch_add(1, Ordering::Relaxed)
                    + 1;
                if changes.is_power_of_two() {
                    info!(job = %msg.job, host = %msg.host, was = %old.spec, now = %declaration.spec, declarations_changed = changes, "a declared job changed its declaration");
                }
                self.jobs[j].cfg = Arc::new(cfg);
                self.jobs[j].declared = Some(Box::new(declaration));
                self.wall_timers |= self.jobs[j].cfg.follows_wall_clock();
                self.rearm(j, same_schedule, now);
                self.link(j);
                self.route_one(j);
                self.watch_changes.push(WatchChange::Add(
                    msg.job.clone(),
                    self.jobs[j].cfg.senders.clone(),
                ));
                self.touch(j);
                self.remember(j, now.wall_ms, String::from("declaration changed"));
            }
            None => {
                if self.declared_jobs >= policy.max_jobs {
                    self.refuse(
                        msg,
                        DeclareRefusal::Full,
                        &format!(
                            "[declare] max_jobs = {} declared jobs already",
                            policy.max_jobs
                        ),
                    );
                    return out;
                }
                info!(job = %msg.job, host = %msg.host, key = sender_key.unwrap_or("(none)"), spec = %declaration.spec, "a job declared itself; watching it");
                let j = self.add_declared(&msg.job, cfg, declaration, now);
                self.route_one(j);
                self.watch_changes.push(WatchChange::Add(
                    msg.job.clone(),
                    self.jobs[j].cfg.senders.clone(),
                ));
                self.touch(j);
                self.remember(j, now.wall_ms, String::from("declared"));
                self.became_known(&msg.job, now, &mut out);
            }
        }
        self.stats
            .declarations_taken
            .fetch_add(1, Ordering::Relaxed);
        out
    }

    /// A declaration's `depends_on` and `after` name jobs watched here,
    /// and make no cycle (as a configuration's are checked at load).
    fn check_links(&self, job: &str, cfg: &JobConfig) -> Result<(), String> {
        for (key, name) in cfg
            .depends_on
            .iter()
            .map(|p| ("depends_on", p))
            .chain(cfg.after.iter().map(|a| ("after", a)))
        {
            if !self.index.contains_key(name.as_str()) {
                return Err(format!("{key}: no job named {name:?} is watched here"));
            }
        }
        let parents = |name: &str| {
            self.index
                .get(name)
                .map(|&p| self.jobs[p].cfg.depends_on.clone())
        };
        match crate::config::dependency_cycle(job, &cfg.depends_on, &parents) {
            Some(cycle) => Err(format!("depends_on: makes a cycle: {cycle}")),
            None => Ok(()),
        }
    }

    /// Watches a declared job from now on (a new declaration, or one
    /// restored from the state database).
    pub(super) fn add_declared(
        &mut self,
        name: &str,
        cfg: JobConfig,
        declaration: Declaration,
        now: Now,
    ) -> JobIdx {
        let name: Arc<str> = Arc::from(name);
        let j = self.jobs.len();
        self.index.insert(Arc::clone(&name), j);
        let mut state = JobState::new(name, Arc::new(cfg), now.wall_ms);
        state.declared = Some(Box::new(declaration));
        self.wall_timers |= state.cfg.follows_wall_clock();
        self.jobs.push(state);
        self.declared_jobs += 1;
        self.stats.declared_jobs.store(
            u64::try_from(self.declared_jobs).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        self.arm_down(j, now);
        self.arm_late_fresh(j, now);
        self.arm_retire(j, now);
        self.link(j);
        j
    }

    /// Where a declared job's notifications go, when it names channels:
    /// given to the follow-ups it is owed when it goes away, whose route
    /// leaves with it.
    pub(super) fn route_of(&self, job: &JobState) -> Option<Arc<[usize]>> {
        job.declared.as_ref()?;
        let names = job.cfg.notify.as_ref()?;
        Some(self.channel_indexes(names).into())
    }

    /// The indexes of the channels named.
    fn channel_indexes(&self, names: &[String]) -> Vec<usize> {
        let channels = self
            .declare
            .as_ref()
            .map(|p| p.channels.as_slice())
            .unwrap_or_default();
        names
            .iter()
            .filter_map(|n| channels.iter().position(|c| c == n))
            .collect()
    }

    fn refuse(&mut self, msg: &Message, why: DeclareRefusal, detail: &str) {
        let total = self.stats.refuse_declaration(why);
        // Each job's refusal said once (up to a bound: a flood of names
        // costs a line at 1, 2, 4, ... refusals after it).
        let first = self.refusals_said.len() < REFUSALS_SAID
            && self.refusals_said.insert((msg.job.clone(), why.name()));
        if first || total.is_power_of_two() {
            warn!(job = %msg.job, host = %msg.host, reason = %why.name(), %detail, refused = total, "a declaration was refused");
        }
    }

    /// Arms a declared job's retirement, `retire_after` from now.
    pub(super) fn arm_retire(&mut self, j: JobIdx, now: Now) {
        if let (Some(policy), true) = (&self.declare, self.jobs[j].declared.is_some()) {
            let at = now.at + policy.retire_after;
            self.deadlines.set(Timer::Retire(j), at);
        }
    }

    /// A declared job's retirement came due: retired if nothing was heard
    /// of it for `retire_after`, else armed again from its last message.
    pub(super) fn fire_retire(&mut self, j: JobIdx, now: Now, retiring: &mut Vec<JobIdx>) {
        let Some(policy) = self.declare.clone() else {
            return;
        };
        let job = &self.jobs[j];
        if job.declared.is_none() {
            return;
        }
        // Overdue by `retire_after`: silent that long past the time it was
        // due, so a job whose own period is longer (a monthly cron under a
        // 30-day `retire_after`) is never retired while it keeps time.
        let heard = job.last.as_ref().map_or(job.watching_since_ms, |l| {
            l.wall_ms.max(job.watching_since_ms)
        });
        let due_ms = job.cfg.schedule.down_at_ms(heard, job.cfg.grace);
        let retire_at_ms = due_ms.saturating_add(millis(policy.retire_after));
        if now.wall_ms >= retire_at_ms {
            retiring.push(j);
        } else if retire_at_ms != u64::MAX {
            let at = now.at + Duration::from_millis(retire_at_ms - now.wall_ms);
            self.deadlines.set(Timer::Retire(j), at);
        }
    }

    /// Removes the declared jobs in `retiring` (overdue by `retire_after`),
    /// each with one notice, and follow-ups for what they left open.
    pub(super) fn retire(&mut self, retiring: Vec<JobIdx>, now: Now, out: &mut Vec<Notification>) {
        let names: HashSet<Arc<str>> = retiring
            .iter()
            .map(|&j| Arc::clone(&self.jobs[j].name))
            .collect();
        let retire_after = self
            .declare
            .as_ref()
            .map_or(Duration::ZERO, |p| p.retire_after);
        for &j in &retiring {
            let job = &self.jobs[j];
            let basis = format!("retired:{}", job.declared.as_ref().map_or(0, |d| d.at_ms));
            let mut note = Notification::new(
                Event::Retired,
                Arc::clone(&job.name),
                Arc::from(incident_id(&job.name, Event::Retired, &basis).as_str()),
                Arc::clone(&self.watcher),
                now.wall_ms,
            );
            note.last_seen_ms = job.last.as_ref().map(|l| l.wall_ms);
            note.route = self.route_of(job);
            note.text = Some(format!(
                "declared by {}, then overdue for {} ([declare] retire_after): no longer watched",
                job.declared.as_ref().map_or("?", |d| d.host.as_str()),
                human(retire_after)
            ));
            warn!(job = %job.name, retire_after = %human(retire_after), "a declared job was silent too long; retired");
            out.push(note);
            self.stats.declared_retired.fetch_add(1, Ordering::Relaxed);
        }
        let mut summary = self.rebuild_without(|name| names.contains(name), now);
        out.append(&mut summary.closed);
    }

    /// Forgets a declared job (`qcic-monitor forget`): it is no longer
    /// watched until it declares itself again; the follow-ups its open
    /// incidents are owed come back.
    pub fn forget(&mut self, job: &str, now: Now) -> Result<Vec<Notification>, String> {
        let Some(&j) = self.index.get(job) else {
            return Err(format!("no job {job:?} is watched here"));
        };
        if self.jobs[j].declared.is_none() {
            return Err(format!(
                "{job:?} is in the configuration: remove it there and reload (SIGHUP)"
            ));
        }
        info!(job, "a declared job was forgotten on request");
        let summary = self.rebuild_without(|name| name == job, now);
        Ok(summary.closed)
    }

    /// Every job but those `drop` names, kept as they are.
    fn rebuild_without(&mut self, drop: impl Fn(&str) -> bool, now: Now) -> Reconfigured {
        let kept: Vec<(Arc<JobConfig>, Option<Box<Declaration>>)> = self
            .jobs
            .iter()
            .filter(|s| !drop(&s.name))
            .map(|s| (Arc::clone(&s.cfg), s.declared.clone()))
            .collect();
        let entries: Vec<(&JobConfig, Option<&Declaration>)> =
            kept.iter().map(|(c, d)| (&**c, d.as_deref())).collect();
        let summary = self.rebuild(&entries, now);
        self.removed.extend(summary.removed_names.iter().cloned());
        summary
    }

    /// A declared job as the policy takes it now (after a reload, or from
    /// the state database at start).
    pub(super) fn rejudge(&self, name: &str, declared: &Declaration) -> Result<JobConfig, String> {
        let Some(policy) = &self.declare else {
            return Err("this watcher has no [declare] table".into());
        };
        let spec = qcic_sdk::JobSpec::parse(name, &declared.spec)
            .map_err(|e| format!("its saved declaration no longer reads: {e}"))?;
        policy
            .judge(name, &spec.expect, declared.key.as_deref())
            .map_err(|(why, detail)| format!("{}: {detail}", why.name()))
    }
}
