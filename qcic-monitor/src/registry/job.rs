//! One job's state: its last message, its runs, its open incidents (one
//! per slot), its streaks and its recent history; and the keys its
//! deadlines are filed under.

use super::*;

/// Concurrent runs remembered per job. Older runs beyond it are forgotten, so
/// a sender that starts runs and never ends them cannot grow memory.
pub const MAX_RUNS_PER_JOB: usize = 64;

/// A message sent (by its corrected timestamp) less than this before it
/// arrived is never stale: transit and scheduling take some time.
pub(super) const STALE_AFTER_MS: u64 = 2_000;

/// Closed incident ids remembered per job (see `JobState::closed`).
pub(super) const CLOSED_KEPT: usize = 8;

/// Events remembered per job for the status page.
pub const HISTORY_LEN: usize = 10;

/// Where an incident lives: one per job, or one per run.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub(super) enum Slot {
    Down,
    Failed,
    Late,
    TooFast,
    Overrun(u64),
    Stalled(u64),
    Slow(u64),
}

impl Slot {
    pub(super) fn event(self) -> Event {
        match self {
            Slot::Down => Event::Down,
            Slot::Failed => Event::Failed,
            Slot::Late => Event::Late,
            Slot::TooFast => Event::TooFast,
            Slot::Overrun(_) => Event::Overrun,
            Slot::Stalled(_) => Event::Stalled,
            Slot::Slow(_) => Event::Slow,
        }
    }

    pub(super) fn run(self) -> Option<u64> {
        match self {
            Slot::Overrun(r) | Slot::Stalled(r) | Slot::Slow(r) => Some(r),
            _ => None,
        }
    }
}

/// A job's place in the registry's list (a reload renumbers them).
pub(super) type JobIdx = usize;

/// A deadline in the index: which job, and which of its timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) enum Timer {
    Down(JobIdx),
    Late(JobIdx),
    Overrun(JobIdx, u64),
    Stall(JobIdx, u64),
    /// A run lasting `slow_after` × the median of the job's last runs.
    Slow(JobIdx, u64),
    Repeat(JobIdx, Slot),
    /// The next escalation step of the incident in a slot.
    Escalate(JobIdx, Slot),
    SilenceEnd(JobIdx),
    /// The end of the maintenance window holding the job's alarms.
    HoldEnd(JobIdx),
    /// A declared job's `[declare] retire_after` since it was last heard.
    Retire(JobIdx),
}

impl Timer {
    pub(super) fn job(self) -> JobIdx {
        match self {
            Timer::Down(j)
            | Timer::Late(j)
            | Timer::Overrun(j, _)
            | Timer::Stall(j, _)
            | Timer::Slow(j, _)
            | Timer::Repeat(j, _)
            | Timer::Escalate(j, _)
            | Timer::HoldEnd(j)
            | Timer::SilenceEnd(j)
            | Timer::Retire(j) => j,
        }
    }

    pub(super) fn with_job(self, j: JobIdx) -> Timer {
        match self {
            Timer::Down(_) => Timer::Down(j),
            Timer::Late(_) => Timer::Late(j),
            Timer::Overrun(_, r) => Timer::Overrun(j, r),
            Timer::Stall(_, r) => Timer::Stall(j, r),
            Timer::Slow(_, r) => Timer::Slow(j, r),
            Timer::Repeat(_, slot) => Timer::Repeat(j, slot),
            Timer::Escalate(_, slot) => Timer::Escalate(j, slot),
            Timer::HoldEnd(_) => Timer::HoldEnd(j),
            Timer::SilenceEnd(_) => Timer::SilenceEnd(j),
            Timer::Retire(_) => Timer::Retire(j),
        }
    }
}

#[derive(Debug)]
pub(super) struct Seen {
    pub(super) at: Instant,
    pub(super) wall_ms: u64,
    pub(super) kind: Kind,
    pub(super) pid: u32,
    pub(super) seq: u64,
    /// The sender's clock when it sent the message (unix ms).
    pub(super) ts_ms: u64,
    /// Shared with every other job the host reports (interned).
    pub(super) host: Arc<str>,
    /// Since when the job has been heard without a break (unix ms): the
    /// first message after it was last down or unheard. A farm peer reads
    /// it to tell a false alarm (heard all along) from a recovery.
    pub(super) up_since_ms: u64,
    /// When the job's last `start` was heard (unix ms; 0: none since the
    /// watcher started). A farm peer reads it to tell whether the run of a
    /// scheduled slot started, when only the peer heard it.
    pub(super) start_ms: u64,
    /// Learnt from a farm peer, not heard here.
    pub(super) by_peer: bool,
    /// Its identity (pid, seq, ts, host) is another message's, later by
    /// the sender's clock, that names the job's next outage (see
    /// [`Seen::name_by_latest`]): not the message heard last.
    pub(super) renamed: bool,
}

impl Seen {
    /// Whether the message (pid, seq, ts, host) comes after this one's
    /// identity: by seq within one process (its clock may be set back, its
    /// seq never goes back), by the sender's clock between processes
    /// (ts, then seq, pid, host). Every watcher orders the same messages
    /// alike, whatever order or subset of them it heard.
    pub(super) fn is_later(&self, pid: u32, seq: u64, ts_ms: u64, host: &str) -> bool {
        if pid == self.pid && *host == *self.host {
            return (seq, ts_ms) > (self.seq, self.ts_ms);
        }
        (ts_ms, seq, pid, host) > (self.ts_ms, self.seq, self.pid, &*self.host)
    }

    /// Takes the identity of `other` if it is later (see
    /// [`Seen::is_later`]): the message that names the job's next outage
    /// is the latest one any watcher heard, so every watcher of a farm
    /// names it alike.
    pub(super) fn name_by_latest(
        &mut self,
        pid: u32,
        seq: u64,
        ts_ms: u64,
        host: &Arc<str>,
    ) -> bool {
        if !self.is_later(pid, seq, ts_ms, host) {
            return false;
        }
        self.pid = pid;
        self.seq = seq;
        self.ts_ms = ts_ms;
        self.host = Arc::clone(host);
        self.renamed = true;
        true
    }

    /// Identifies the message, for incident ids (see [`message_basis`]).
    /// Built when an incident needs it, not stored: one allocation less
    /// per message and per job.
    pub(super) fn basis(&self) -> String {
        message_basis(&self.host, self.pid, self.seq, self.ts_ms)
    }
}

/// What names one message among every message ever sent, for incident ids:
/// `host/pid/seq/ts`. Host, pid and seq alone repeat: a job restarted in a
/// container is pid 1 again and counts its messages from 1 again, and its
/// next outage would be taken for the last one (and never notified). The
/// sender's timestamp tells them apart, and every watcher that heard the
/// message reads the same one.
pub(super) fn message_basis(host: &str, pid: u32, seq: u64, ts_ms: u64) -> String {
    format!("{host}/{pid}/{seq}/{ts_ms}")
}

/// [`message_basis`] of a message as received.
pub(super) fn msg_basis(msg: &Message) -> String {
    message_basis(&msg.host, msg.pid, msg.seq, msg.ts_ms)
}

/// One line of a job's history. Most are a message kind: no allocation.
#[derive(Debug, Clone)]
pub(super) enum HistoryEntry {
    Kind(Kind),
    Text(Box<str>),
}

impl HistoryEntry {
    pub(super) fn text(&self) -> &str {
        match self {
            HistoryEntry::Kind(kind) => kind.name(),
            HistoryEntry::Text(text) => text,
        }
    }
}

impl From<String> for HistoryEntry {
    fn from(text: String) -> HistoryEntry {
        HistoryEntry::Text(text.into_boxed_str())
    }
}

#[derive(Debug)]
pub(super) struct Open {
    pub(super) id: String,
    /// When the trouble began (for `down`: the last message before it).
    pub(super) since: Instant,
    /// The run concerned (for `failed`: `None` if reported outside a run).
    pub(super) run_id: Option<u64>,
    /// Reminders sent so far.
    pub(super) repeats: u32,
    /// Whether the first notification went out (not while held).
    pub(super) notified: bool,
    /// The first notification, kept for reminders (once sent, as sent).
    pub(super) first: Notification,
    /// Who acknowledged it: no reminders, no escalation.
    pub(super) ack: Option<Box<crate::notification::Ack>>,
    /// Escalation steps sent so far.
    pub(super) escalated: u32,
    /// While not notified: what holds it back, since when.
    pub(super) held: Option<Box<Held>>,
}

/// What holds an incident's first notification back, and since when.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Held {
    /// Since when (unix ms, the watcher's clock).
    pub since_ms: u64,
    /// The maintenance window that held it (the last one), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<String>,
    /// The job it depends on that held it (the last one), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked_by: Option<String>,
    /// Whether a silence or pause held it.
    #[serde(default)]
    pub silence: bool,
}

#[derive(Debug)]
pub(super) struct RunState {
    pub(super) started: Instant,
    /// The same moment on the wall clock (unix ms): what names the run in
    /// the history, so its overrun row and its end are one row.
    pub(super) started_ms: u64,
    /// Its last message (`stall_after` counts from it).
    pub(super) active: Instant,
    pub(super) host: String,
    /// The `start` message's [`message_basis`]: with the run id, what
    /// names the run's incidents (run ids come from senders and may repeat).
    pub(super) basis: String,
    /// How often the run has stalled so far: each stall is an incident of
    /// its own (a run that stalls, moves on and stalls again is notified twice).
    pub(super) stalls: u32,
}

#[derive(Debug)]
pub(super) struct JobState {
    /// Shared with the index.
    pub(super) name: Arc<str>,
    /// Shared by consecutive jobs with the same settings (a generated
    /// config of a million alike jobs holds one); its `name` is the first
    /// such job's: use `name` above.
    pub(super) cfg: Arc<JobConfig>,
    pub(super) last: Option<Seen>,
    pub(super) runs: BTreeMap<u64, RunState>,
    pub(super) open: BTreeMap<Slot, Open>,
    /// Consecutive failures and misses (for `alert_after_failures`).
    pub(super) bad_streak: u32,
    /// Successful runs since the last failure or miss: what ends a failed
    /// run's incident (`recover_after_successes`). A heartbeat shows a
    /// process alive, not that the failed work was redone: it counts only
    /// in `alive_streak`.
    pub(super) success_streak: u32,
    /// Heartbeats and successes since the last failure or miss: what ends
    /// `down` and a failure reported outside a run.
    pub(super) alive_streak: u32,
    /// The scheduled start the `late` timer waits for (unix ms).
    pub(super) expected_start_ms: Option<u64>,
    /// Since when this watcher has watched the job (unix ms): names the
    /// `down` of a job never heard from, so a job removed and added back
    /// gets a new incident.
    pub(super) watching_since_ms: u64,
    /// The wall time the `down` deadline was derived from (the last
    /// message, or when watching began): a cron deadline is derived from it
    /// again when the wall clock steps.
    pub(super) down_from_ms: u64,
    /// When the job is down without news: the deadline index holds this
    /// one untracked (every job has it; a lookup entry each would cost
    /// ~85 bytes per job).
    pub(super) down_at: Option<Instant>,
    /// Notifications held back while set.
    pub(super) silence: Option<Box<Silence>>,
    /// The ids of the job's last few closed incidents: a new incident that
    /// would take one of them (a sender that repeats host, pid, seq and
    /// timestamp, e.g. one that sends no clock) is named anew instead of
    /// being taken for the closed one and dropped by the notification log.
    #[expect(
        clippy::box_collection,
        reason = "8 bytes a job, not 32: most jobs never close an incident"
    )]
    pub(super) closed: Option<Box<VecDeque<Arc<str>>>>,
    /// Recent events for people to read (status page), newest last.
    pub(super) history: VecDeque<(u64, HistoryEntry)>,
    /// How the job declared itself; `None`: it is in the configuration.
    pub(super) declared: Option<Box<Declaration>>,
    /// With `slow_after`: the durations (ms) of its last successful runs,
    /// newest last, at most [`SLOW_RUNS`]. Boxed and absent otherwise: a
    /// million jobs without it pay one pointer each.
    #[expect(
        clippy::box_collection,
        reason = "8 bytes a job, not 32: most jobs have no slow_after"
    )]
    pub(super) recent: Option<Box<VecDeque<u64>>>,
    /// With `after`: the basis (see [`message_basis`]) of the success of
    /// the job it follows that the awaited start is due after; names the
    /// `late` incident alike on every watcher.
    #[expect(
        clippy::box_collection,
        reason = "8 bytes a job, not 24: most jobs are no step of a chain"
    )]
    pub(super) chain_basis: Option<Box<String>>,
}

/// How many successful runs `slow_after`'s median is taken over.
pub const SLOW_RUNS: usize = 20;
/// How many it needs before any run is called slow.
pub const SLOW_RUNS_NEEDED: usize = 5;

/// The median of `durations` (ms), once there are [`SLOW_RUNS_NEEDED`].
pub(super) fn usual(durations: &VecDeque<u64>) -> Option<u64> {
    if durations.len() < SLOW_RUNS_NEEDED {
        return None;
    }
    let mut sorted: Vec<u64> = durations.iter().copied().collect();
    sorted.sort_unstable();
    let mid = sorted.len() / 2;
    Some(if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        sorted[mid - 1] / 2 + sorted[mid] / 2 + (sorted[mid - 1] % 2 + sorted[mid] % 2) / 2
    })
}

/// How a job declared itself (a `declare` message the policy took).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Declaration {
    /// What it expects, as a canonical spec string (`every=1d grace=1h`).
    pub spec: String,
    /// The host that declared it.
    pub host: String,
    /// With CURVE: the key that declared it (and the only one that may
    /// report for it, or declare it again).
    pub key: Option<String>,
    /// When it was first declared, or last changed (unix ms, watcher's clock).
    pub at_ms: u64,
}

impl JobState {
    pub(super) fn new(name: Arc<str>, cfg: Arc<JobConfig>, watching_since_ms: u64) -> JobState {
        JobState {
            name,
            cfg,
            last: None,
            runs: BTreeMap::new(),
            open: BTreeMap::new(),
            bad_streak: 0,
            success_streak: 0,
            alive_streak: 0,
            expected_start_ms: None,
            closed: None,
            watching_since_ms,
            down_from_ms: watching_since_ms,
            down_at: None,
            silence: None,
            history: VecDeque::new(),
            declared: None,
            recent: None,
            chain_basis: None,
        }
    }
}

/// `cfg` as an `Arc`, the same one as the previous job's if configured alike.
pub(super) fn share(previous: &mut Option<Arc<JobConfig>>, cfg: &JobConfig) -> Arc<JobConfig> {
    match previous {
        Some(prev) if prev.same_settings(cfg) => Arc::clone(prev),
        _ => {
            let fresh = Arc::new(cfg.clone());
            *previous = Some(Arc::clone(&fresh));
            fresh
        }
    }
}
