//! What the watcher knows of each job, and the rules that turn messages and
//! passed deadlines into notifications.
//!
//! Pure logic: time comes in as an argument, a [`Now`] (a monotonic
//! instant for deadlines and the watcher's wall clock in unix ms for
//! schedules and records), so tests drive it directly and the checker
//! drives it from a (pausable) tokio clock.
//!
//! Every kind of trouble is an incident in one of the job's slots: `down`,
//! `failed`, `late` and `too_fast` per job, `overrun` and `stalled` per run.
//! A slot opens once (no storm), may remind (`repeat`), and closes with one
//! `recovered` carrying the same incident id.
//!
//! This file holds the registry and its two entry points, [`Registry::on_message`]
//! and [`Registry::on_deadlines`]; each part of the state and its methods
//! live in a file of their own:
//! - `job`: one job's state, its runs, slots and deadline keys;
//! - `rules`: what each message kind and each passed deadline does;
//! - `incidents`: opening, naming and closing incidents;
//! - `timers`: arming the deadlines, following the wall clock;
//! - `silence`: silences and pauses;
//! - `declared`: jobs that declare themselves, under the `[declare]` policy;
//! - `reconfigure`: a configuration reload;
//! - `persist`: the state database's form of a job, and the restore;
//! - `peer`: what farm peers heard, and what this watcher tells them;
//! - `hosts`: sender clocks (skew);
//! - `view`: what `status`, the page and the API show.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use qcic_sdk::{Kind, Message};
use tokio::time::Instant;
use tracing::{info, warn};

use crate::clock::{Now, human, millis};
use crate::config::JobConfig;
use crate::deadlines::Deadlines;
use crate::notification::{Event, Notification, incident_id};
use crate::schedule::Schedule;
use crate::stats::Stats;

mod acks;
mod chains;
mod declared;
mod holds;
mod hosts;
mod incidents;
mod job;
mod peer;
mod persist;
mod reconfigure;
mod rules;
mod silence;
mod timers;
mod unknown;
mod view;

use hosts::HostClocks;
use job::*;
use timers::{at_wall, past_at_wall};

pub use acks::Acked;
pub use declared::{Declaration, DeclaredRoutes, WatchChange};
pub use hosts::{HOSTS_SHOWN, HostView};
pub use job::Held;
pub use job::{HISTORY_LEN, MAX_RUNS_PER_JOB};
pub use peer::PeerSeen;
pub use persist::JobRecord;
pub use reconfigure::Reconfigured;
pub use silence::Silence;
pub use view::{IncidentView, JobStatus, JobView, under_causes};

/// Every job's state, and the deadlines that watch them.
#[derive(Debug)]
pub struct Registry {
    watcher: Arc<str>,
    started: Instant,
    jobs: Vec<JobState>,
    /// foldhash, not SipHash: looked up for every message (a fifth of the
    /// checker's time went to SipHash); the keys come from the config.
    index: HashMap<Arc<str>, JobIdx, foldhash::fast::RandomState>,
    deadlines: Deadlines<Timer>,
    unknown: unknown::Unknown,
    max_unknown: usize,
    /// The `[declare]` policy; `None`: declarations are refused.
    declare: Option<Arc<crate::config::DeclareConfig>>,
    /// Declared jobs watched now.
    declared_jobs: usize,
    /// Configured jobs that declared themselves too (said once each).
    config_wins: HashSet<Arc<str>>,
    /// Refused declarations already logged, by (job, reason); bounded.
    refusals_said: HashSet<(String, &'static str)>,
    /// Declared jobs removed since the last [`Registry::take_removed`].
    removed: Vec<String>,
    /// The declared jobs' channels, shared with the dispatcher.
    routes: declared::DeclaredRoutes,
    /// Changes to the receive thread's watched set, for the checker.
    watch_changes: Vec<declared::WatchChange>,
    /// Notifications owed outside a message or deadline, for the checker.
    owed: Vec<Notification>,
    /// Sender hosts' clocks.
    hosts: HostClocks,
    stats: Arc<Stats>,
    /// Jobs changed since the last [`Registry::take_dirty`].
    dirty: HashSet<JobIdx>,
    /// Whether to keep `dirty` (only a state database reads it).
    track_dirty: bool,
    /// In a farm: jobs heard here since the last [`Registry::take_heard`]
    /// (what this watcher tells its peers).
    heard: Option<HashSet<JobIdx>>,
    /// Whether some deadline is a wall time (see [`Registry::follows_wall_clock`]).
    wall_timers: bool,
    /// Runs ended (or overrun, or stalled) since the last
    /// [`Registry::take_runs`], for the run history (only with a state
    /// database, as `dirty`).
    runs: std::collections::VecDeque<crate::history::RunRecord>,
    /// Recurring maintenance windows.
    maintenance: Arc<[crate::config::MaintenanceWindow]>,
    /// Job -> the jobs that depend on it (`depends_on`).
    dependents: HashMap<Arc<str>, Vec<Arc<str>>>,
    /// Job -> the jobs that follow it (`after`).
    followers: HashMap<Arc<str>, Vec<Arc<str>>>,
    /// Farm peers' acknowledgements of incidents not open here yet.
    early_acks: VecDeque<(Box<str>, crate::notification::Ack)>,
}

/// Farm peers' acknowledgements kept for incidents not open here yet.
pub const EARLY_ACKS_KEPT: usize = 1_000;

impl Registry {
    /// A registry for `jobs`, as of `now` (`wall_ms` on the watcher's
    /// clock). A job not heard of yet gets one full period from now before it
    /// can be declared down.
    pub fn new(
        watcher: &str,
        jobs: &[JobConfig],
        max_unknown: usize,
        max_skew: Duration,
        stats: Arc<Stats>,
        now: Now,
    ) -> Registry {
        let mut registry = Registry {
            watcher: Arc::from(watcher),
            started: now.at,
            jobs: Vec::with_capacity(jobs.len()),
            index: HashMap::with_capacity_and_hasher(
                jobs.len(),
                foldhash::fast::RandomState::default(),
            ),
            deadlines: Deadlines::default(),
            unknown: unknown::Unknown::new(crate::config::UnknownJobs::Count),
            declare: None,
            declared_jobs: 0,
            config_wins: HashSet::new(),
            refusals_said: HashSet::new(),
            removed: Vec::new(),
            routes: declared::DeclaredRoutes::default(),
            watch_changes: Vec::new(),
            owed: Vec::new(),
            max_unknown,
            hosts: HostClocks::new(max_skew, Arc::clone(&stats)),
            stats,
            dirty: HashSet::new(),
            track_dirty: true,
            heard: None,
            wall_timers: jobs.iter().any(JobConfig::follows_wall_clock),
            runs: std::collections::VecDeque::new(),
            maintenance: Arc::from(Vec::new()),
            dependents: HashMap::new(),
            followers: HashMap::new(),
            early_acks: VecDeque::new(),
        };
        let mut shared: Option<Arc<JobConfig>> = None;
        for (j, cfg) in jobs.iter().enumerate() {
            let name: Arc<str> = Arc::from(cfg.name.as_str());
            let cfg = share(&mut shared, cfg);
            registry.index.insert(Arc::clone(&name), j);
            registry.jobs.push(JobState::new(name, cfg, now.wall_ms));
            registry.arm_down(j, now);
            registry.arm_late_fresh(j, now);
        }
        registry.relink();
        registry
    }

    /// The sender hosts with the largest clock offsets (see [`HostView`]).
    pub fn hosts(&self) -> Vec<HostView> {
        self.hosts.views()
    }

    /// How many jobs it watches.
    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    /// Whether it watches no job.
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// The ids of every incident open now.
    pub fn open_incidents(&self) -> std::collections::BTreeSet<Arc<str>> {
        self.jobs
            .iter()
            .flat_map(|job| job.open.values().map(|o| Arc::from(o.id.as_str())))
            .collect()
    }

    /// The earliest deadline, if any is set.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.next()
    }

    /// Applies one message from a sender without CURVE.
    pub fn on_message(&mut self, msg: &Message, now: Now) -> Vec<Notification> {
        self.on_message_from(msg, None, now)
    }

    /// Applies one message received at `now` (`wall_ms` on the watcher's
    /// clock) from the sender with CURVE key `sender_key`, if any.
    pub fn on_message_from(
        &mut self,
        msg: &Message,
        sender_key: Option<&str>,
        now: Now,
    ) -> Vec<Notification> {
        if msg.kind == Kind::Declare {
            return self.on_declare(msg, sender_key, now);
        }
        let Some(&j) = self.index.get(msg.job.as_str()) else {
            return self.unknown_job(msg, now);
        };
        if let Some(allowed) = &self.jobs[j].cfg.senders {
            if !sender_key.is_some_and(|key| allowed.contains(key)) {
                let total = self.stats.drop_frame(crate::stats::DropReason::WrongSender);
                if total.is_power_of_two() {
                    warn!(job = %msg.job, sender_key = sender_key.unwrap_or("(none)"), host = %msg.host, dropped_wrong_sender = total, "message from a sender key the job is not pinned to; dropped");
                }
                return Vec::new();
            }
        }
        let host = self.hosts.observe(msg, sender_key, now.wall_ms);
        self.touch(j);
        // The history is for people: a run of identical heartbeats or
        // progress notes without text is one line (and costs no allocation).
        let repeated = msg.text.is_none()
            && self.jobs[j]
                .history
                .back()
                .is_some_and(|(_, last)| matches!(last, HistoryEntry::Kind(k) if *k == msg.kind));
        if !repeated {
            let entry = match &msg.text {
                Some(text) => HistoryEntry::from(format!(
                    "{}: {}",
                    msg.kind,
                    text.chars().take(80).collect::<String>()
                )),
                None => HistoryEntry::Kind(msg.kind),
            };
            self.remember(j, now.wall_ms, entry);
        }
        let stale = self.stale(j, msg, now);
        if let Some(late) = stale {
            let total = self.stats.stale_messages.fetch_add(1, Ordering::Relaxed) + 1;
            if total.is_power_of_two() {
                warn!(job = %msg.job, host = %msg.host, sent_ms_ago = late, stale_messages = total, "a message delivered late (queued while a link was cut?) is older than what is known of its job: recorded, not taken as life");
            }
            let text = format!(
                "{} sent {} ago, delivered late: not taken as life",
                msg.kind,
                human(Duration::from_millis(late))
            );
            self.remember(j, now.wall_ms, text);
        }
        let out = self.apply(j, msg, host, stale.is_some(), now);
        for n in &out {
            self.remember(j, now.wall_ms, format!("notified {}", n.headline()));
        }
        out
    }

    /// Handles every deadline at or before `now`.
    pub fn on_deadlines(&mut self, now: Now) -> Vec<Notification> {
        self.on_deadlines_max(now, usize::MAX)
    }

    /// Handles at most `max` of the deadlines at or before `now` (the
    /// earliest); the rest stay due.
    pub fn on_deadlines_max(&mut self, now: Now, max: usize) -> Vec<Notification> {
        let mut out = Vec::new();
        let mut retiring = Vec::new();
        for key in self.deadlines.pop_due_max(now.at, max) {
            let j = key.job();
            self.touch(j);
            let before = out.len();
            match key {
                Timer::Down(j) => {
                    self.jobs[j].down_at = None;
                    self.fire_down(j, now, &mut out);
                }
                Timer::Late(j) => self.fire_late(j, now, &mut out),
                Timer::Overrun(j, run_id) => self.fire_run(j, Slot::Overrun(run_id), now, &mut out),
                Timer::Stall(j, run_id) => self.fire_run(j, Slot::Stalled(run_id), now, &mut out),
                Timer::Slow(j, run_id) => self.fire_run(j, Slot::Slow(run_id), now, &mut out),
                Timer::Repeat(j, slot) => self.fire_repeat(j, slot, now, &mut out),
                Timer::Escalate(j, slot) => self.fire_escalate(j, slot, now, &mut out),
                Timer::SilenceEnd(j) => self.end_silence(j, now, &mut out),
                Timer::HoldEnd(j) => self.release(j, now, &mut out),
                Timer::Retire(j) => self.fire_retire(j, now, &mut retiring),
            }
            let notes: Vec<String> = out[before..]
                .iter()
                .map(|n| format!("notified {}", n.headline()))
                .collect();
            for text in notes {
                self.remember(j, now.wall_ms, text);
            }
        }
        // After the loop: a retirement renumbers the jobs.
        if !retiring.is_empty() {
            self.retire(retiring, now, &mut out);
        }
        out
    }
}

#[cfg(test)]
pub(crate) mod tests;
