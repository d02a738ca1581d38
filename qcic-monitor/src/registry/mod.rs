//! What the watcher knows of each job, and the rules that turn messages and
//! passed deadlines into notifications.
//!
//! Pure logic: time comes in as arguments (a monotonic `Instant` for
//! deadlines, the watcher's wall clock in unix ms for schedules and records),
//! so tests drive it directly and the checker drives it from a (pausable)
//! tokio clock.
//!
//! Every kind of trouble is an incident in one of the job's slots: `down`,
//! `failed`, `late` and `too_fast` per job, `overrun` and `stalled` per run.
//! A slot opens once (no storm), may remind (`repeat`), and closes with one
//! `recovered` carrying the same incident id.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use qcic_sdk::{Kind, Message};
use tokio::time::Instant;
use tracing::warn;

use crate::config::JobConfig;
use crate::deadlines::Deadlines;
use crate::notification::{Event, Notification, incident_id};
use crate::schedule::Schedule;
use crate::stats::Stats;

mod farm;

pub use farm::PeerSeen;

/// An open incident, as shown to people and tools.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IncidentView {
    /// The incident id.
    pub id: String,
    /// What it is.
    pub event: Event,
    /// The run concerned, if any.
    pub run_id: Option<u64>,
}

/// One job as the watcher sees it now.
#[derive(Debug, Clone, serde::Serialize)]
pub struct JobView {
    /// The job.
    pub name: String,
    /// waiting (never heard from), up, running, down, failed, late, stalled, overrun or too_fast.
    pub state: &'static str,
    /// The schedule, as configured ("every 10s", "cron \"30 2 * * 1-5\" Europe/London").
    pub schedule: String,
    /// The time between expected messages, ms (for cron: between the next two fires).
    pub period_ms: u64,
    /// `grace`, ms.
    pub grace_ms: u64,
    /// When its last message arrived (watcher clock, unix ms).
    pub last_seen_ms: Option<u64>,
    /// The kind of its last message.
    pub last_kind: Option<&'static str>,
    /// The host of its last message.
    pub last_host: Option<String>,
    /// When it will be declared down without news (unix ms).
    pub next_deadline_ms: Option<u64>,
    /// Runs started and not ended.
    pub runs_in_progress: usize,
    /// Open incidents.
    pub incidents: Vec<IncidentView>,
    /// The job's silence or pause, if any.
    pub silence: Option<Silence>,
    /// Recent events, oldest first: (unix ms, what).
    pub history: Vec<(u64, String)>,
}

/// Concurrent runs remembered per job. Older runs beyond it are forgotten, so
/// a sender that starts runs and never ends them cannot grow memory.
pub const MAX_RUNS_PER_JOB: usize = 64;
/// A message sent (by its corrected timestamp) less than this before it
/// arrived is never stale: transit and scheduling take some time.
const STALE_AFTER_MS: u64 = 2_000;
/// Closed incident ids remembered per job (see `JobState::closed`).
const CLOSED_KEPT: usize = 8;
/// Events remembered per job for the status page.
pub const HISTORY_LEN: usize = 10;
/// `v` within `i64`, saturating at either end.
fn clamp_i64(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

/// Hosts whose clock state is remembered. Host names are not
/// authenticated (any sender may claim any), so the table is kept by
/// recency: when full, the eighth heard from longest ago make room.
const MAX_SKEW_HOSTS: usize = 10_000;
/// Hosts `hosts()` gives (status, page, API, metrics): the largest skews
/// first; the rest are only counted (`Stats::hosts_known`).
pub const HOSTS_SHOWN: usize = 100;

/// Where an incident lives: one per job, or one per run.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
enum Slot {
    Down,
    Failed,
    Late,
    TooFast,
    Overrun(u64),
    Stalled(u64),
}

impl Slot {
    fn event(self) -> Event {
        match self {
            Slot::Down => Event::Down,
            Slot::Failed => Event::Failed,
            Slot::Late => Event::Late,
            Slot::TooFast => Event::TooFast,
            Slot::Overrun(_) => Event::Overrun,
            Slot::Stalled(_) => Event::Stalled,
        }
    }

    fn run(self) -> Option<u64> {
        match self {
            Slot::Overrun(r) | Slot::Stalled(r) => Some(r),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Key {
    Down(usize),
    Late(usize),
    Overrun(usize, u64),
    Stall(usize, u64),
    Repeat(usize, Slot),
    SilenceEnd(usize),
}

impl Key {
    fn job(self) -> usize {
        match self {
            Key::Down(j)
            | Key::Late(j)
            | Key::Overrun(j, _)
            | Key::Stall(j, _)
            | Key::Repeat(j, _)
            | Key::SilenceEnd(j) => j,
        }
    }

    fn with_job(self, j: usize) -> Key {
        match self {
            Key::Down(_) => Key::Down(j),
            Key::Late(_) => Key::Late(j),
            Key::Overrun(_, r) => Key::Overrun(j, r),
            Key::Stall(_, r) => Key::Stall(j, r),
            Key::Repeat(_, slot) => Key::Repeat(j, slot),
            Key::SilenceEnd(_) => Key::SilenceEnd(j),
        }
    }
}

#[derive(Debug)]
struct Seen {
    at: Instant,
    wall_ms: u64,
    kind: Kind,
    pid: u32,
    seq: u64,
    /// The sender's clock when it sent the message (unix ms).
    ts_ms: u64,
    /// Shared with every other job the host reports (interned).
    host: Arc<str>,
    /// Since when the job has been heard without a break (unix ms): the
    /// first message after it was last down or unheard. A farm peer reads
    /// it to tell a false alarm (heard all along) from a recovery.
    up_since_ms: u64,
    /// When the job's last `start` was heard (unix ms; 0: none since the
    /// watcher started). A farm peer reads it to tell whether the run of a
    /// scheduled slot started, when only the peer heard it.
    start_ms: u64,
    /// Learnt from a farm peer, not heard here.
    by_peer: bool,
    /// Its identity (pid, seq, ts, host) is another message's, later by
    /// the sender's clock, that names the job's next outage (see
    /// [`Seen::name_by_latest`]): not the message heard last.
    renamed: bool,
}

impl Seen {
    /// Whether the message (pid, seq, ts, host) comes after this one's
    /// identity: by seq within one process (its clock may be set back, its
    /// seq never goes back), by the sender's clock between processes
    /// (ts, then seq, pid, host). Every watcher orders the same messages
    /// alike, whatever order or subset of them it heard.
    fn is_later(&self, pid: u32, seq: u64, ts_ms: u64, host: &str) -> bool {
        if pid == self.pid && *host == *self.host {
            return (seq, ts_ms) > (self.seq, self.ts_ms);
        }
        (ts_ms, seq, pid, host) > (self.ts_ms, self.seq, self.pid, &*self.host)
    }

    /// Takes the identity of `other` if it is later (see
    /// [`Seen::is_later`]): the message that names the job's next outage
    /// is the latest one any watcher heard, so every watcher of a farm
    /// names it alike.
    fn name_by_latest(&mut self, pid: u32, seq: u64, ts_ms: u64, host: &Arc<str>) -> bool {
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
    fn basis(&self) -> String {
        message_basis(&self.host, self.pid, self.seq, self.ts_ms)
    }
}

/// What names one message among every message ever sent, for incident ids:
/// `host/pid/seq/ts`. Host, pid and seq alone repeat: a job restarted in a
/// container is pid 1 again and counts its messages from 1 again, and its
/// next outage would be taken for the last one (and never notified). The
/// sender's timestamp tells them apart, and every watcher that heard the
/// message reads the same one.
fn message_basis(host: &str, pid: u32, seq: u64, ts_ms: u64) -> String {
    format!("{host}/{pid}/{seq}/{ts_ms}")
}

/// What an awaited start was derived from: the schedule and `start_within`.
fn expected_for(cfg: &JobConfig) -> String {
    format!("{} within {:?}", cfg.schedule, cfg.start_within)
}

/// [`message_basis`] of a message as received.
fn msg_basis(msg: &Message) -> String {
    message_basis(&msg.host, msg.pid, msg.seq, msg.ts_ms)
}

/// One line of a job's history. Most are a message kind: no allocation.
#[derive(Debug, Clone)]
enum Entry {
    Kind(Kind),
    Text(Box<str>),
}

impl Entry {
    fn text(&self) -> &str {
        match self {
            Entry::Kind(kind) => kind.name(),
            Entry::Text(text) => text,
        }
    }
}

impl From<String> for Entry {
    fn from(text: String) -> Entry {
        Entry::Text(text.into_boxed_str())
    }
}

#[derive(Debug)]
struct Open {
    id: String,
    /// When the trouble began (for `down`: the last message before it).
    since: Instant,
    /// The run concerned (for `failed`: `None` if reported outside a run).
    run_id: Option<u64>,
    /// Reminders sent so far.
    repeats: u32,
    /// Whether the first notification went out (not while silenced).
    notified: bool,
    /// The first notification, kept for reminders.
    first: Notification,
}

/// A silence (or, without an end, a pause) on a job.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Silence {
    /// When it ends (unix ms); `None`: paused until resumed.
    pub until_ms: Option<u64>,
    /// Why.
    pub reason: String,
}

/// One sender host's clock, as measured from its messages.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct HostView {
    /// The host name senders report.
    pub host: String,
    /// The watcher's clock minus the host's, ms (positive: the host is
    /// behind), from the recent message that arrived quickest: transit and
    /// queueing only ever add to it.
    pub skew_ms: i64,
    /// Whether it is beyond `max_clock_skew`.
    pub skewed: bool,
    /// When its last message arrived (watcher clock, unix ms).
    pub last_seen_ms: u64,
    /// Messages from it since the watcher started.
    pub messages: u64,
}

/// Buckets per host for the offset estimate, and the watcher time each
/// covers: the estimate remembers at least `SKEW_WINDOW` × `SKEW_BUCKET_MS`
/// of a host's traffic, however many messages arrive at once. A backlog
/// queued while a link was cut arrives in one burst and fills one bucket,
/// so it cannot push out the offsets measured before the cut (with a
/// window counted in messages, a long enough backlog would measure itself
/// and pass for fresh).
const SKEW_WINDOW: usize = 8;
const SKEW_BUCKET_MS: u64 = 30_000;
/// Two messages at least this far apart in arrival, equally late within
/// `STEP_TOLERANCE_MS`, show a sender clock that stepped (see
/// `HostClock::stepped`).
const STEP_SPACING_MS: u64 = 1_000;
const STEP_TOLERANCE_MS: u64 = 1_000;

#[derive(Debug)]
struct HostClock {
    /// The interned name (the map's key too).
    name: Arc<str>,
    /// With CURVE, the key of the sender that first claimed the name:
    /// another key claiming it is measured apart, under a name of its own,
    /// so it cannot move this host's estimate.
    key: Option<Arc<str>>,
    /// The last `SKEW_WINDOW` buckets: (first arrival in it, watcher clock
    /// unix ms; the smallest offset in it, watcher minus sender, ms).
    samples: VecDeque<(u64, i64)>,
    skewed: bool,
    last_seen_ms: u64,
    messages: u64,
    /// The previous message's (arrival, offset), to tell a sender whose
    /// clock stepped from a backlog.
    previous: Option<(u64, i64)>,
}

impl HostClock {
    fn new(name: Arc<str>, wall_ms: u64) -> HostClock {
        HostClock {
            name,
            key: None,
            samples: VecDeque::with_capacity(SKEW_WINDOW),
            skewed: false,
            last_seen_ms: wall_ms,
            messages: 0,
            previous: None,
        }
    }

    /// Whether the host's clock stepped back: this message and the one
    /// before it both look late, by the same amount, yet arrived well
    /// apart. A backlog arrives in a burst, each message less late than the
    /// one before; messages sent live by a clock set back arrive spaced as
    /// they were sent, all late alike. The offsets measured before the step
    /// are then void.
    fn stepped(&self, wall_ms: u64, sample: i64) -> bool {
        let (Some(estimate), Some((at, before))) = (self.measured(), self.previous) else {
            return false;
        };
        let late = |s: i64| {
            s.saturating_sub(estimate) >= i64::try_from(STALE_AFTER_MS).unwrap_or(i64::MAX)
        };
        late(sample)
            && late(before)
            && sample.abs_diff(before) <= STEP_TOLERANCE_MS
            && wall_ms.saturating_sub(at) >= STEP_SPACING_MS
    }

    /// The offset with the least transit delay in it: delay (and a message
    /// queued at the sender while the link was cut) only adds to
    /// watcher-minus-sender, so the smallest recent sample is the best.
    /// `None` until the host is measured (or since the watcher's clock
    /// stepped).
    fn measured(&self) -> Option<i64> {
        self.samples.iter().map(|(_, s)| *s).min()
    }

    fn estimate(&self) -> i64 {
        self.measured().unwrap_or(0)
    }

    fn sample(&mut self, wall_ms: u64, sample: i64) {
        match self.samples.back_mut() {
            Some((from, least)) if wall_ms.saturating_sub(*from) < SKEW_BUCKET_MS => {
                *least = (*least).min(sample);
            }
            _ => {
                if self.samples.len() == SKEW_WINDOW {
                    self.samples.pop_front();
                }
                self.samples.push_back((wall_ms, sample));
            }
        }
    }
}

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

#[derive(Debug)]
struct RunState {
    started: Instant,
    /// Its last message (`stall_after` counts from it).
    active: Instant,
    host: String,
    /// The `start` message's [`message_basis`]: with the run id, what
    /// names the run's incidents (run ids come from senders and may repeat).
    basis: String,
    /// How often the run has stalled so far: each stall is an incident of
    /// its own (a run that stalls, moves on and stalls again is notified twice).
    stalls: u32,
}

#[derive(Debug)]
struct JobState {
    /// Shared with the index.
    name: Arc<str>,
    /// Shared by consecutive jobs with the same settings (a generated
    /// config of a million alike jobs holds one); its `name` is the first
    /// such job's: use `name` above.
    cfg: Arc<JobConfig>,
    last: Option<Seen>,
    runs: BTreeMap<u64, RunState>,
    open: BTreeMap<Slot, Open>,
    /// Consecutive failures and misses (for `alert_after_failures`).
    bad_streak: u32,
    /// Successful runs since the last failure or miss: what ends a failed
    /// run's incident (`recover_after_successes`). A heartbeat shows a
    /// process alive, not that the failed work was redone: it counts only
    /// in `alive_streak`.
    success_streak: u32,
    /// Heartbeats and successes since the last failure or miss: what ends
    /// `down` and a failure reported outside a run.
    alive_streak: u32,
    /// The scheduled start the `late` timer waits for (unix ms).
    expected_start_ms: Option<u64>,
    /// Since when this watcher has watched the job (unix ms): names the
    /// `down` of a job never heard from, so a job removed and added back
    /// gets a new incident.
    watching_since_ms: u64,
    /// The wall time the `down` deadline was derived from (the last
    /// message, or when watching began): a cron deadline is derived from it
    /// again when the wall clock steps.
    down_from_ms: u64,
    /// When the job is down without news: the deadline index holds this
    /// one untracked (every job has it; a lookup entry each would cost
    /// ~85 bytes per job).
    down_at: Option<Instant>,
    /// Notifications held back while set.
    silence: Option<Box<Silence>>,
    /// The ids of the job's last few closed incidents: a new incident that
    /// would take one of them (a sender that repeats host, pid, seq and
    /// timestamp, e.g. one that sends no clock) is named anew instead of
    /// being taken for the closed one and dropped by the notification log.
    #[expect(
        clippy::box_collection,
        reason = "8 bytes a job, not 32: most jobs never close an incident"
    )]
    closed: Option<Box<VecDeque<Arc<str>>>>,
    /// Recent events for people to read (status page), newest last.
    history: VecDeque<(u64, Entry)>,
}

/// Every job's state, and the deadlines that watch them.
#[derive(Debug)]
pub struct Registry {
    watcher: Arc<str>,
    started: Instant,
    jobs: Vec<JobState>,
    /// foldhash, not SipHash: looked up for every message (a fifth of the
    /// checker's time went to SipHash); the keys come from the config.
    index: HashMap<Arc<str>, usize, foldhash::fast::RandomState>,
    deadlines: Deadlines<Key>,
    unknown: HashSet<String>,
    max_unknown: usize,
    /// Per host: its clock offset as measured, and whether it is off by
    /// more than `max_skew`.
    /// foldhash, seeded per process: hosts come from senders, but at most
    /// MAX_SKEW_HOSTS are inserted.
    hosts: HashMap<Arc<str>, HostClock, foldhash::fast::RandomState>,
    max_skew: Duration,
    stats: Arc<Stats>,
    /// Jobs changed since the last [`Registry::take_dirty`].
    dirty: HashSet<usize>,
    /// Whether to keep `dirty` (only a state database reads it).
    track_dirty: bool,
    /// In a farm: jobs heard here since the last [`Registry::take_heard`]
    /// (what this watcher tells its peers).
    heard: Option<HashSet<usize>>,
    /// Whether some deadline is a wall time (see [`Registry::follows_wall_clock`]).
    wall_timers: bool,
}

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
    last: Option<SeenRecord>,
    /// (run id, started, host): the first version's form.
    runs: Vec<(u64, u64, String)>,
    /// What later versions keep of each run besides.
    run_details: Vec<RunDetail>,
    open: Vec<OpenRecord>,
    bad_streak: u32,
    /// The first version's one streak (it counted heartbeats as successes):
    /// written for it as the successful runs; read only from its records.
    good_streak: u32,
    success_streak: Option<u32>,
    alive_streak: Option<u32>,
    silence: Option<Silence>,
    expected_start_ms: Option<u64>,
    /// The schedule `expected_start_ms` was derived from: a slot awaited
    /// under a schedule changed while the watcher was stopped is not kept.
    expected_for: Option<String>,
    watching_since_ms: Option<u64>,
    /// The job's recently closed incidents (see `JobState::closed`).
    closed: Vec<String>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct SeenRecord {
    wall_ms: u64,
    kind: String,
    /// `host/pid/seq`.
    basis: String,
    host: String,
    #[serde(default)]
    ts_ms: u64,
    #[serde(default)]
    start_ms: u64,
    #[serde(default)]
    up_since_ms: Option<u64>,
    /// Its host's measured clock offset (watcher minus sender, ms): a
    /// restarted watcher still tells a backlog delivered late (the first
    /// thing its senders send it on reconnecting) from fresh news.
    #[serde(default)]
    host_offset_ms: Option<i64>,
    /// Learnt from a farm peer, not heard here.
    #[serde(default)]
    by_peer: bool,
    /// Its identity is a later message's (see `Seen::renamed`).
    #[serde(default)]
    renamed: Option<bool>,
}

/// What a run carries besides the first version's (id, started, host).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct RunDetail {
    run_id: u64,
    active_ms: u64,
    basis: String,
    stalls: u32,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct OpenRecord {
    slot: Slot,
    id: String,
    since_ms: u64,
    run_id: Option<u64>,
    repeats: u32,
    notified: bool,
    first: Notification,
}

/// The instant at wall time `at_ms`, given that `now` is `wall_ms`. Far
/// future (a cron pattern that never fires again) is capped at 100 years.
fn at_wall(now: Instant, wall_ms: u64, at_ms: u64) -> Instant {
    const CAP: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    now + Duration::from_millis(at_ms.saturating_sub(wall_ms)).min(CAP)
}

/// The instant at a past wall time `at_ms`, given that `now` is `wall_ms`
/// (`now` for a time not in the past, or before the monotonic clock's
/// start).
fn past_at_wall(now: Instant, wall_ms: u64, at_ms: u64) -> Instant {
    now.checked_sub(Duration::from_millis(wall_ms.saturating_sub(at_ms)))
        .unwrap_or(now)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn human(d: Duration) -> String {
    // Whole seconds (or ms below one) read better than humantime's ns detail.
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
    }
}

/// `cfg` as an `Arc`, the same one as the previous job's if configured alike.
fn share(previous: &mut Option<Arc<JobConfig>>, cfg: &JobConfig) -> Arc<JobConfig> {
    match previous {
        Some(prev) if prev.same_settings(cfg) => Arc::clone(prev),
        _ => {
            let fresh = Arc::new(cfg.clone());
            *previous = Some(Arc::clone(&fresh));
            fresh
        }
    }
}

impl JobState {
    fn new(name: Arc<str>, cfg: Arc<JobConfig>, watching_since_ms: u64) -> JobState {
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
        }
    }
}

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
        now: Instant,
        wall_ms: u64,
    ) -> Registry {
        let mut registry = Registry {
            watcher: Arc::from(watcher),
            started: now,
            jobs: Vec::with_capacity(jobs.len()),
            index: HashMap::with_capacity_and_hasher(
                jobs.len(),
                foldhash::fast::RandomState::default(),
            ),
            deadlines: Deadlines::default(),
            unknown: HashSet::new(),
            max_unknown,
            hosts: HashMap::default(),
            max_skew,
            stats,
            dirty: HashSet::new(),
            track_dirty: true,
            heard: None,
            wall_timers: jobs.iter().any(JobConfig::follows_wall_clock),
        };
        let mut shared: Option<Arc<JobConfig>> = None;
        for (j, cfg) in jobs.iter().enumerate() {
            let name: Arc<str> = Arc::from(cfg.name.as_str());
            let cfg = share(&mut shared, cfg);
            registry.index.insert(Arc::clone(&name), j);
            registry.jobs.push(JobState::new(name, cfg, wall_ms));
            registry.arm_down(j, now, wall_ms);
            registry.arm_late_fresh(j, now, wall_ms);
        }
        registry
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

    /// Stops keeping the set of changed jobs (no state database reads it).
    pub fn without_dirty_tracking(mut self) -> Registry {
        self.track_dirty = false;
        self.dirty = HashSet::new();
        self
    }

    fn touch(&mut self, j: usize) {
        if self.track_dirty {
            self.dirty.insert(j);
        }
    }

    /// Whether a job changed since the last [`Registry::take_dirty`].
    pub fn is_dirty(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// The jobs changed since the last call, as (name, JSON record), for the
    /// state database.
    pub fn take_dirty(&mut self, now: Instant, wall_ms: u64) -> Vec<(String, JobRecord)> {
        let wall_of =
            |at: Instant| wall_ms.saturating_sub(millis(now.saturating_duration_since(at)));
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
                        host_offset_ms: self.hosts.get(&*s.host).and_then(HostClock::measured),
                        by_peer: s.by_peer,
                        renamed: Some(s.renamed),
                    }),
                    runs: job
                        .runs
                        .iter()
                        .map(|(id, r)| (*id, wall_of(r.started), r.host.clone()))
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
                };
                (job.name.to_string(), record)
            })
            .collect()
    }

    /// Carries on from records of an earlier run (by job name; unknown names
    /// and unreadable records are skipped). Deadlines are recomputed from the
    /// recorded wall times, so one that passed while the watcher was down
    /// fires at once.
    pub fn restore(&mut self, records: &[(String, String)], now: Instant, wall_ms: u64) -> usize {
        let instant_of = |at_ms: u64| past_at_wall(now, wall_ms, at_ms);
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
                if !self.hosts.contains_key(&host) && self.hosts.len() < MAX_SKEW_HOSTS {
                    let mut clock = HostClock::new(Arc::clone(&host), at);
                    clock.sample(at, offset);
                    self.hosts.insert(host, clock);
                    self.stats
                        .hosts_known
                        .store(self.hosts.len() as u64, Ordering::Relaxed);
                }
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
                        // Unknown (an older record): as if active now.
                        active: detail.as_ref().map_or(now, |d| instant_of(d.active_ms)),
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
                    },
                );
            }
            self.rearm(j, keep_expected, now, wall_ms);
            seen[j] = true;
            // In a farm, what this watcher knew is told to its peers again:
            // its gossip state did not survive the restart.
            if let (Some(heard), true) = (&mut self.heard, self.jobs[j].last.is_some()) {
                heard.insert(j);
            }
        }
        // A job with nothing saved is saved now: when watching began must
        // survive the next restart, or a watcher restarted more often than
        // a never-heard job's period would never raise its `down`.
        for (j, seen) in seen.into_iter().enumerate() {
            if !seen {
                self.touch(j);
            }
        }
        restored
    }

    /// Sets every timer of job `j` from its state, as after a restart:
    /// `down` from its last message (from when watching began if never
    /// heard), each run's `max_runtime` from its start and `stall_after` from
    /// its last message, silence ends, reminders one `repeat` from now. `late` keeps the
    /// scheduled start it waited for if `keep_expected`, else watches the
    /// next one.
    fn rearm(&mut self, j: usize, keep_expected: bool, now: Instant, wall_ms: u64) {
        let job = &self.jobs[j];
        match (&job.last, &job.cfg.schedule) {
            // A duration from the last message, on the monotonic clock (its
            // wall time may be from before a clock step).
            (Some(last), Schedule::Every(every)) => {
                let (at, from) = (last.at + *every + job.cfg.grace, last.wall_ms);
                self.jobs[j].down_from_ms = from;
                self.set_down(j, at.max(now));
            }
            (Some(last), Schedule::Cron { .. }) => {
                let from = last.wall_ms;
                self.arm_down_from(j, from, now, wall_ms);
            }
            (None, _) => {
                let since = job.watching_since_ms;
                self.arm_down_from(j, since, now, wall_ms);
            }
        }
        let job = &self.jobs[j];
        match (job.expected_start_ms, job.cfg.start_within) {
            (Some(expected), Some(within)) if keep_expected => {
                let at = expected.saturating_add(millis(within));
                self.deadlines.set(Key::Late(j), at_wall(now, wall_ms, at));
            }
            _ => {
                self.jobs[j].expected_start_ms = None;
                self.deadlines.clear(&Key::Late(j));
                self.arm_late_fresh(j, now, wall_ms);
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
                    .set(Key::Overrun(j, run_id), (started + max).max(now));
            }
            if let Some(stall) = stall {
                self.deadlines
                    .set(Key::Stall(j, run_id), (active + stall).max(now));
            }
        }
        if let Some(until) = until {
            self.deadlines
                .set(Key::SilenceEnd(j), at_wall(now, wall_ms, until));
        }
        if let Some(every) = repeat {
            for slot in slots {
                self.deadlines.set(Key::Repeat(j, slot), now + every);
            }
        }
    }

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
        now: Instant,
        wall_ms: u64,
    ) -> Reconfigured {
        self.max_unknown = max_unknown;
        self.max_skew = max_skew;
        self.wall_timers = jobs.iter().any(JobConfig::follows_wall_clock)
            || self.jobs.iter().any(|job| job.silence.is_some());
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
        for (j, cfg) in jobs.iter().enumerate() {
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
                    self.index.insert(Arc::clone(&state.name), j);
                    self.jobs.push(state);
                }
                Some((_, mut state)) => {
                    summary.changed += 1;
                    let same_schedule = state.cfg.schedule == cfg.schedule;
                    state.cfg = share(&mut shared, cfg);
                    self.index.insert(Arc::clone(&state.name), j);
                    self.jobs.push(state);
                    rearm.push((j, Some(same_schedule)));
                    self.touch(j);
                }
                None => {
                    summary.added += 1;
                    let name: Arc<str> = Arc::from(cfg.name.as_str());
                    self.index.insert(Arc::clone(&name), j);
                    self.jobs
                        .push(JobState::new(name, share(&mut shared, cfg), wall_ms));
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
                let mut note = open.first.clone();
                note.event = Event::Recovered;
                note.resolves = Some(slot.event());
                note.detected_ms = wall_ms;
                note.last_seen_ms = state.last.as_ref().map(|s| s.wall_ms);
                note.duration_ms = Some(millis(now.saturating_duration_since(open.since)));
                note.exit_code = None;
                note.repeat = 0;
                note.text = Some("the job was removed from the configuration".into());
                summary.closed.push(note);
            }
            summary.removed_names.push(state.name.to_string());
        }
        summary.removed = summary.removed_names.len();
        for (key, at) in old_deadlines.iter() {
            if let Some(&j) = kept.get(&key.job()) {
                match key {
                    // The job's own `down_at` came along with its state.
                    Key::Down(_) => self.deadlines.insert_untracked(Key::Down(j), at),
                    _ => self.deadlines.set(key.with_job(j), at),
                }
            }
        }
        for (j, same_schedule) in rearm {
            match same_schedule {
                Some(keep_expected) => self.rearm(j, keep_expected, now, wall_ms),
                None => {
                    self.arm_down(j, now, wall_ms);
                    self.arm_late_fresh(j, now, wall_ms);
                }
            }
        }
        summary
    }

    /// The earliest deadline, if any is set.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.next()
    }

    /// Arms `down` one full period from now.
    fn arm_down(&mut self, j: usize, now: Instant, wall_ms: u64) {
        self.arm_down_from(j, wall_ms, now, wall_ms);
    }

    /// Arms `down` as due one period after wall time `from_ms` (the last
    /// message, or when watching began).
    fn arm_down_from(&mut self, j: usize, from_ms: u64, now: Instant, wall_ms: u64) {
        let cfg = &self.jobs[j].cfg;
        let at = cfg.schedule.down_at_ms(from_ms, cfg.grace);
        self.jobs[j].down_from_ms = from_ms;
        self.set_down(j, at_wall(now, wall_ms, at));
    }

    // Exact, not lazy: leaving the old entry in the index when a message
    // moves the deadline later would save the two tree operations per
    // heartbeat, but wake the loop early once per job and period; the
    // checker sleeps until the true next deadline instead.
    fn set_down(&mut self, j: usize, at: Instant) {
        if let Some(old) = self.jobs[j].down_at.replace(at) {
            self.deadlines.remove_untracked(Key::Down(j), old);
        }
        self.deadlines.insert_untracked(Key::Down(j), at);
    }

    /// Arms the `late` timer for the first scheduled start after a start
    /// (heard, or awaited) at `from_ms`.
    fn arm_late(&mut self, j: usize, now: Instant, wall_ms: u64, from_ms: u64) {
        let cfg = &self.jobs[j].cfg;
        let Some(within) = cfg.start_within else {
            return;
        };
        // A start up to `start_within` early counts for the coming slot.
        let expected = match &cfg.schedule {
            Schedule::Every(every) => Some(from_ms.saturating_add(millis(*every))),
            Schedule::Cron { .. } => cfg
                .schedule
                .next_fire_ms(from_ms.saturating_add(millis(within))),
        };
        self.expect_start(j, expected, now, wall_ms);
    }

    /// Arms the `late` timer with no start to go by (at start-up without
    /// saved state, for a new job, or after its schedule changed): the next
    /// slot still to come, unless the last start heard already counted for it.
    /// (Searching from `now + start_within`, as after a start, skipped a
    /// slot due within `start_within` of a restart or reload.)
    fn arm_late_fresh(&mut self, j: usize, now: Instant, wall_ms: u64) {
        let job = &self.jobs[j];
        let Some(within) = job.cfg.start_within else {
            return;
        };
        let expected = match &job.cfg.schedule {
            Schedule::Every(every) => Some(wall_ms.saturating_add(millis(*every))),
            Schedule::Cron { .. } => {
                let started = job.last.as_ref().map_or(0, |l| l.start_ms);
                let from = match started {
                    0 => wall_ms,
                    s => wall_ms.max(s.saturating_add(millis(within))),
                };
                job.cfg.schedule.next_fire_ms(from)
            }
        };
        self.expect_start(j, expected, now, wall_ms);
    }

    /// Awaits a start for the slot at `expected` (unix ms): `late` falls
    /// due `start_within` after it.
    fn expect_start(&mut self, j: usize, expected: Option<u64>, now: Instant, wall_ms: u64) {
        let within = self.jobs[j].cfg.start_within.map_or(0, millis);
        self.jobs[j].expected_start_ms = expected;
        match expected {
            Some(t) => self.deadlines.set(
                Key::Late(j),
                at_wall(now, wall_ms, t.saturating_add(within)),
            ),
            None => self.deadlines.clear(&Key::Late(j)),
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
    pub fn on_clock_step(&mut self, now: Instant, wall_ms: u64) {
        // Offsets measured against the old reading are void.
        for clock in self.hosts.values_mut() {
            clock.samples.clear();
            clock.previous = None;
        }
        for j in 0..self.jobs.len() {
            let job = &self.jobs[j];
            if matches!(job.cfg.schedule, Schedule::Cron { .. }) && job.down_at.is_some() {
                let from = job.down_from_ms;
                self.arm_down_from(j, from, now, wall_ms);
            }
            // An `every` job's start is awaited a duration after the last
            // one: only a cron slot is a wall time.
            let job = &self.jobs[j];
            let cron = matches!(job.cfg.schedule, Schedule::Cron { .. });
            if let (Some(expected), Some(within), true) =
                (job.expected_start_ms, job.cfg.start_within, cron)
            {
                if self.deadlines.get(&Key::Late(j)).is_some() {
                    let at = expected.saturating_add(millis(within));
                    self.deadlines.set(Key::Late(j), at_wall(now, wall_ms, at));
                }
            }
            if let Some(until) = self.jobs[j].silence.as_ref().and_then(|s| s.until_ms) {
                self.deadlines
                    .set(Key::SilenceEnd(j), at_wall(now, wall_ms, until));
            }
        }
    }

    /// Applies one message from a sender without CURVE.
    pub fn on_message(&mut self, msg: &Message, now: Instant, wall_ms: u64) -> Vec<Notification> {
        self.on_message_from(msg, None, now, wall_ms)
    }

    /// Applies one message received at `now` (`wall_ms` on the watcher's
    /// clock) from the sender with CURVE key `sender_key`, if any.
    pub fn on_message_from(
        &mut self,
        msg: &Message,
        sender_key: Option<&str>,
        now: Instant,
        wall_ms: u64,
    ) -> Vec<Notification> {
        let Some(&j) = self.index.get(msg.job.as_str()) else {
            self.unknown_job(msg);
            return Vec::new();
        };
        if let Some(allowed) = &self.jobs[j].cfg.senders {
            if !sender_key.is_some_and(|key| allowed.contains(key)) {
                let total = self.stats.dropped[7].fetch_add(1, Ordering::Relaxed) + 1;
                if total.is_power_of_two() {
                    warn!(job = %msg.job, sender_key = sender_key.unwrap_or("(none)"), host = %msg.host, dropped_wrong_sender = total, "message from a sender key the job is not pinned to; dropped");
                }
                return Vec::new();
            }
        }
        let host = self.check_skew(msg, sender_key, wall_ms);
        self.touch(j);
        // The history is for people: a run of identical heartbeats or
        // progress notes without text is one line (and costs no allocation).
        let repeated = msg.text.is_none()
            && self.jobs[j]
                .history
                .back()
                .is_some_and(|(_, last)| matches!(last, Entry::Kind(k) if *k == msg.kind));
        if !repeated {
            let entry = match &msg.text {
                Some(text) => Entry::from(format!(
                    "{}: {}",
                    msg.kind,
                    text.chars().take(80).collect::<String>()
                )),
                None => Entry::Kind(msg.kind),
            };
            self.remember(j, wall_ms, entry);
        }
        let stale = self.stale(j, msg, now, wall_ms);
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
            self.remember(j, wall_ms, text);
        }
        let out = self.apply(j, msg, host, stale.is_some(), now, wall_ms);
        for n in &out {
            self.remember(j, wall_ms, format!("notified {}", n.headline()));
        }
        out
    }

    fn remember(&mut self, j: usize, wall_ms: u64, entry: impl Into<Entry>) {
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
    fn apply(
        &mut self,
        j: usize,
        msg: &Message,
        host: Arc<str>,
        stale: bool,
        now: Instant,
        wall_ms: u64,
    ) -> Vec<Notification> {
        let mut out = Vec::new();
        if !stale {
            self.heard_alive(j, msg, host, now, wall_ms);
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
            self.close(
                j,
                Slot::Down,
                now,
                wall_ms,
                || format!("{kind} received"),
                &mut out,
            );
        }
        // A message of a run shows it is not stalled.
        if msg.run_id.is_some() && self.jobs[j].runs.contains_key(&run_id) {
            self.touch_run(j, run_id, now, wall_ms, &mut out);
        }
        match msg.kind {
            Kind::Start => {
                self.start_run(j, run_id, msg, now, wall_ms, &mut out);
                self.close(
                    j,
                    Slot::Late,
                    now,
                    wall_ms,
                    || "start received".into(),
                    &mut out,
                );
                self.arm_late(j, now, wall_ms, wall_ms);
            }
            Kind::Progress => {}
            Kind::Success => {
                let ran = self.jobs[j]
                    .runs
                    .get(&run_id)
                    .map(|r| now.saturating_duration_since(r.started));
                self.end_run(j, run_id, "run ended with success", now, wall_ms, &mut out);
                match (ran, self.jobs[j].cfg.min_runtime) {
                    (Some(ran), Some(min)) if ran < min => {
                        let text = format!(
                            "succeeded after {}, sooner than min_runtime {}",
                            human(ran),
                            human(min)
                        );
                        let basis = format!("run:{run_id}/{}", msg_basis(msg));
                        let id = incident_id(&msg.job, Event::TooFast, &basis);
                        self.open(
                            j,
                            Slot::TooFast,
                            id,
                            now,
                            wall_ms,
                            Some(text),
                            msg,
                            &mut out,
                        );
                    }
                    _ => {
                        self.close(
                            j,
                            Slot::TooFast,
                            now,
                            wall_ms,
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
                    self.close(
                        j,
                        Slot::Failed,
                        now,
                        wall_ms,
                        || "success received".into(),
                        &mut out,
                    );
                }
            }
            Kind::Fail => {
                self.end_run(j, run_id, "run ended with fail", now, wall_ms, &mut out);
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
                    self.open(
                        j,
                        Slot::Failed,
                        id,
                        now,
                        wall_ms,
                        msg.text.clone(),
                        msg,
                        &mut out,
                    );
                } else {
                    let text = format!(
                        "failure {} of {} before alerting",
                        job.bad_streak, job.cfg.alert_after_failures
                    );
                    self.remember(j, wall_ms, text);
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
                        wall_ms,
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
    fn heard_alive(&mut self, j: usize, msg: &Message, host: Arc<str>, now: Instant, wall_ms: u64) {
        self.arm_down(j, now, wall_ms);
        if let Some(heard) = &mut self.heard {
            heard.insert(j);
        }
        let job = &mut self.jobs[j];
        let start_ms = match (&job.last, msg.kind) {
            (_, Kind::Start) => wall_ms,
            (Some(last), _) => last.start_ms,
            (None, _) => 0,
        };
        let up_since_ms = match &job.last {
            Some(last) if !last.by_peer && !job.open.contains_key(&Slot::Down) => {
                last.up_since_ms.min(wall_ms)
            }
            _ => wall_ms,
        };
        let before = job.last.take();
        let mut seen = Seen {
            at: now,
            wall_ms,
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
    fn stale(&self, j: usize, msg: &Message, now: Instant, wall_ms: u64) -> Option<u64> {
        // Judged by the clock alone, never by seq: a process restarted
        // under the same pid counts from 1 again, and a seq (or a
        // timestamp) from a hostile or broken sender would otherwise make
        // every later message look old.
        self.sent_late(j, &msg.host, msg.ts_ms, wall_ms, now, wall_ms)
    }

    /// How late a message of job `j` from `host`, stamped `ts_ms` by the
    /// sender, arrived at `arrived_ms` (here or at a peer), if it was so
    /// late that the job would be overdue by it now (`wall_ms`), and the
    /// job is overdue here; `None` if it was not, or if it cannot be told
    /// (no sender clock, the host not measured here).
    fn sent_late(
        &self,
        j: usize,
        host: &str,
        ts_ms: u64,
        arrived_ms: u64,
        now: Instant,
        wall_ms: u64,
    ) -> Option<u64> {
        if ts_ms == 0 {
            return None; // no sender clock
        }
        let job = &self.jobs[j];
        let overdue = job.open.contains_key(&Slot::Down) || job.down_at.is_none_or(|at| at <= now);
        if !overdue {
            return None;
        }
        let offset = self.hosts.get(host)?.measured()?;
        let sent = u64::try_from(i128::from(ts_ms) + i128::from(offset)).ok()?;
        let late = arrived_ms.checked_sub(sent)?;
        let cfg = &job.cfg;
        (late >= STALE_AFTER_MS && cfg.schedule.down_at_ms(sent, cfg.grace) <= wall_ms)
            .then_some(late)
    }

    /// The run of the open `failed` incident; `None` if it is run-less or closed.
    fn failed_run(&self, j: usize) -> Option<u64> {
        self.jobs[j].open.get(&Slot::Failed).and_then(|o| o.run_id)
    }

    /// Opens the incident in `slot` unless one is open there, and notifies.
    #[expect(clippy::too_many_arguments, reason = "the parts of one notification")]
    fn open(
        &mut self,
        j: usize,
        slot: Slot,
        id: String,
        now: Instant,
        wall_ms: u64,
        text: Option<String>,
        msg: &Message,
        out: &mut Vec<Notification>,
    ) {
        if self.jobs[j].open.contains_key(&slot) {
            return;
        }
        let mut note = self.note(j, slot.event(), &id, wall_ms);
        note.run_id = msg.run_id.or(slot.run());
        note.host = Some(Arc::from(msg.host.as_str()));
        note.exit_code = msg.exit_code;
        note.text = text;
        self.insert_open(j, slot, id, now, now, note, out);
    }

    /// Opens an incident and notifies, unless the job is silenced: then the
    /// incident is recorded and notified when the silence ends (if still open).
    #[expect(clippy::too_many_arguments, reason = "the parts of one incident")]
    fn insert_open(
        &mut self,
        j: usize,
        slot: Slot,
        mut id: String,
        since: Instant,
        now: Instant,
        mut first: Notification,
        out: &mut Vec<Notification>,
    ) {
        // An id is never given to a second occurrence: derived again from
        // itself until it is new (every watcher that saw the same history
        // derives the same).
        if let Some(closed) = &self.jobs[j].closed {
            while closed.iter().any(|c| **c == *id) {
                id = incident_id(&self.jobs[j].name, slot.event(), &format!("again:{id}"));
            }
            first.incident = Arc::from(id.as_str());
        }
        let run_id = first.run_id;
        let notified = self.jobs[j].silence.is_none();
        if notified {
            out.push(first.clone());
        }
        self.jobs[j].open.insert(
            slot,
            Open {
                id,
                since,
                run_id,
                repeats: 0,
                notified,
                first,
            },
        );
        if let Some(every) = self.jobs[j].cfg.repeat {
            self.deadlines.set(Key::Repeat(j, slot), now + every);
        }
    }

    /// Closes the incident in `slot`, if open, with one `recovered`.
    fn close(
        &mut self,
        j: usize,
        slot: Slot,
        now: Instant,
        wall_ms: u64,
        text: impl FnOnce() -> String,
        out: &mut Vec<Notification>,
    ) {
        self.close_as(j, slot, Event::Recovered, now, wall_ms, text, out);
    }

    /// Closes the incident in `slot`, if open, with one follow-up `event`.
    #[allow(clippy::too_many_arguments)]
    fn close_as(
        &mut self,
        j: usize,
        slot: Slot,
        event: Event,
        now: Instant,
        wall_ms: u64,
        text: impl FnOnce() -> String,
        out: &mut Vec<Notification>,
    ) {
        // `text` is a closure: most messages close nothing, and should not
        // pay for formatting what no one reads.
        let Some(open) = self.jobs[j].open.remove(&slot) else {
            return;
        };
        self.deadlines.clear(&Key::Repeat(j, slot));
        let closed = self.jobs[j].closed.get_or_insert_with(Box::default);
        if closed.len() == CLOSED_KEPT {
            closed.pop_front();
        }
        closed.push_back(Arc::from(open.id.as_str()));
        if !open.notified {
            // Never alarmed (it opened and closed during a silence): no
            // follow-up is owed.
            self.remember(
                j,
                wall_ms,
                format!("{} incident closed while silenced", slot.event()),
            );
            return;
        }
        let mut note = self.note(j, event, &open.id, wall_ms);
        note.resolves = Some(slot.event());
        note.duration_ms = Some(millis(now.saturating_duration_since(open.since)));
        note.run_id = open.run_id;
        note.text = Some(text());
        out.push(note);
    }

    fn start_run(
        &mut self,
        j: usize,
        run_id: u64,
        msg: &Message,
        now: Instant,
        wall_ms: u64,
        out: &mut Vec<Notification>,
    ) {
        if !self.jobs[j].runs.contains_key(&run_id) && self.jobs[j].runs.len() >= MAX_RUNS_PER_JOB {
            let oldest = self.jobs[j]
                .runs
                .iter()
                .min_by_key(|(_, r)| r.started)
                .map(|(id, _)| *id);
            if let Some(oldest) = oldest {
                let text =
                    format!("run no longer tracked: more than {MAX_RUNS_PER_JOB} runs at once");
                self.end_run(j, oldest, &text, now, wall_ms, out);
            }
        }
        self.jobs[j].runs.insert(
            run_id,
            RunState {
                started: now,
                active: now,
                host: msg.host.clone(),
                basis: msg_basis(msg),
                stalls: 0,
            },
        );
        if let Some(max) = self.jobs[j].cfg.max_runtime {
            self.deadlines.set(Key::Overrun(j, run_id), now + max);
        }
        if let Some(stall) = self.jobs[j].cfg.stall_after {
            self.deadlines.set(Key::Stall(j, run_id), now + stall);
        }
    }

    /// A message of a live run: it is not stalled.
    fn touch_run(
        &mut self,
        j: usize,
        run_id: u64,
        now: Instant,
        wall_ms: u64,
        out: &mut Vec<Notification>,
    ) {
        if let Some(run) = self.jobs[j].runs.get_mut(&run_id) {
            run.active = now;
        }
        if let Some(stall) = self.jobs[j].cfg.stall_after {
            self.deadlines.set(Key::Stall(j, run_id), now + stall);
        }
        self.close(
            j,
            Slot::Stalled(run_id),
            now,
            wall_ms,
            || "the run sent a message again".into(),
            out,
        );
    }

    fn end_run(
        &mut self,
        j: usize,
        run_id: u64,
        text: &str,
        now: Instant,
        wall_ms: u64,
        out: &mut Vec<Notification>,
    ) {
        self.deadlines.clear(&Key::Overrun(j, run_id));
        self.deadlines.clear(&Key::Stall(j, run_id));
        self.jobs[j].runs.remove(&run_id);
        self.close(
            j,
            Slot::Overrun(run_id),
            now,
            wall_ms,
            || text.to_owned(),
            out,
        );
        self.close(
            j,
            Slot::Stalled(run_id),
            now,
            wall_ms,
            || text.to_owned(),
            out,
        );
    }

    /// Handles every deadline at or before `now`.
    pub fn on_deadlines(&mut self, now: Instant, wall_ms: u64) -> Vec<Notification> {
        self.on_deadlines_max(now, wall_ms, usize::MAX)
    }

    /// Handles at most `max` of the deadlines at or before `now` (the
    /// earliest); the rest stay due.
    pub fn on_deadlines_max(
        &mut self,
        now: Instant,
        wall_ms: u64,
        max: usize,
    ) -> Vec<Notification> {
        let mut out = Vec::new();
        for key in self.deadlines.pop_due_max(now, max) {
            let j = key.job();
            self.touch(j);
            let before = out.len();
            match key {
                Key::Down(j) => {
                    self.jobs[j].down_at = None;
                    self.fire_down(j, now, wall_ms, &mut out);
                }
                Key::Late(j) => self.fire_late(j, now, wall_ms, &mut out),
                Key::Overrun(j, run_id) => {
                    self.fire_run(j, Slot::Overrun(run_id), now, wall_ms, &mut out)
                }
                Key::Stall(j, run_id) => {
                    self.fire_run(j, Slot::Stalled(run_id), now, wall_ms, &mut out)
                }
                Key::Repeat(j, slot) => self.fire_repeat(j, slot, now, wall_ms, &mut out),
                Key::SilenceEnd(j) => self.end_silence(j, wall_ms, &mut out),
            }
            let notes: Vec<String> = out[before..]
                .iter()
                .map(|n| format!("notified {}", n.headline()))
                .collect();
            for text in notes {
                self.remember(j, wall_ms, text);
            }
        }
        out
    }

    fn fire_down(&mut self, j: usize, now: Instant, wall_ms: u64, out: &mut Vec<Notification>) {
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
            self.remember(j, wall_ms, text);
            self.arm_down(j, now, wall_ms);
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
        let quiet = now.saturating_duration_since(since);
        let mut note = self.note(j, Event::Down, &id, wall_ms);
        note.text = Some(match &job.last {
            Some(_) => format!("no message for {}", human(quiet)),
            None => format!(
                "never heard from since the watcher started {} ago",
                human(quiet)
            ),
        });
        self.insert_open(j, Slot::Down, id, since, now, note, out);
    }

    fn fire_late(&mut self, j: usize, now: Instant, wall_ms: u64, out: &mut Vec<Notification>) {
        let Some(expected) = self.jobs[j].expected_start_ms else {
            return;
        };
        if !self.jobs[j].open.contains_key(&Slot::Late) {
            let name = self.jobs[j].name.to_string();
            let id = incident_id(&name, Event::Late, &format!("due:{expected}"));
            let mut note = self.note(j, Event::Late, &id, wall_ms);
            let due = crate::notification::rfc3339(expected);
            note.text = Some(format!(
                "no start within {} of the scheduled {due}",
                human(self.jobs[j].cfg.start_within.unwrap_or_default())
            ));
            self.insert_open(j, Slot::Late, id, now, now, note, out);
        }
        // Watch the next scheduled start too (the incident stays one).
        self.arm_late(j, now, wall_ms, expected);
    }

    fn fire_run(
        &mut self,
        j: usize,
        slot: Slot,
        now: Instant,
        wall_ms: u64,
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
        let running = now.saturating_duration_since(run.started);
        let host = run.host.clone();
        let name = self.jobs[j].name.to_string();
        let id = incident_id(&name, slot.event(), &basis);
        let mut note = self.note(j, slot.event(), &id, wall_ms);
        note.run_id = Some(run_id);
        note.host = Some(Arc::from(host));
        note.text = Some(match slot {
            Slot::Stalled(_) => format!(
                "run started {} ago sent nothing for {}",
                human(running),
                human(self.jobs[j].cfg.stall_after.unwrap_or_default())
            ),
            _ => format!("run started {} ago has not ended", human(running)),
        });
        self.insert_open(j, slot, id, now, now, note, out);
    }

    fn fire_repeat(
        &mut self,
        j: usize,
        slot: Slot,
        now: Instant,
        wall_ms: u64,
        out: &mut Vec<Notification>,
    ) {
        let every = self.jobs[j].cfg.repeat;
        let silenced = self.jobs[j].silence.is_some();
        let Some(open) = self.jobs[j].open.get_mut(&slot) else {
            return;
        };
        if silenced || !open.notified {
            if let Some(every) = every {
                self.deadlines.set(Key::Repeat(j, slot), now + every);
            }
            return;
        }
        open.repeats += 1;
        let mut note = open.first.clone();
        note.repeat = open.repeats;
        note.detected_ms = wall_ms;
        note.last_seen_ms = self.jobs[j].last.as_ref().map(|s| s.wall_ms);
        out.push(note);
        if let Some(every) = every {
            self.deadlines.set(Key::Repeat(j, slot), now + every);
        }
    }

    /// Silences a job until `until_ms` (unix ms), or pauses it (`None`)
    /// until [`Registry::unsilence`]. Returns an error text for an unknown job.
    pub fn silence(
        &mut self,
        job: &str,
        until_ms: Option<u64>,
        reason: &str,
        now: Instant,
        wall_ms: u64,
    ) -> Result<(), String> {
        let &j = self
            .index
            .get(job)
            .ok_or_else(|| format!("no job named {job:?}"))?;
        self.jobs[j].silence = Some(Box::new(Silence {
            until_ms,
            reason: reason.to_owned(),
        }));
        self.wall_timers |= until_ms.is_some();
        // Saved like any change: a pause must survive a restart.
        self.touch(j);
        match until_ms {
            Some(until) => self
                .deadlines
                .set(Key::SilenceEnd(j), at_wall(now, wall_ms, until)),
            None => self.deadlines.clear(&Key::SilenceEnd(j)),
        }
        let what = match until_ms {
            Some(until) => format!(
                "silenced until {}: {reason}",
                crate::notification::rfc3339(until)
            ),
            None => format!("paused: {reason}"),
        };
        self.remember(j, wall_ms, what);
        Ok(())
    }

    /// Ends a job's silence or pause now; returns the notifications held
    /// back for incidents still open.
    pub fn unsilence(&mut self, job: &str, wall_ms: u64) -> Result<Vec<Notification>, String> {
        let &j = self
            .index
            .get(job)
            .ok_or_else(|| format!("no job named {job:?}"))?;
        self.deadlines.clear(&Key::SilenceEnd(j));
        let mut out = Vec::new();
        self.end_silence(j, wall_ms, &mut out);
        Ok(out)
    }

    /// Every silence: (job, silence).
    pub fn silences(&self) -> Vec<(String, Silence)> {
        self.jobs
            .iter()
            .filter_map(|job| Some((job.name.to_string(), job.silence.as_deref()?.clone())))
            .collect()
    }

    fn end_silence(&mut self, j: usize, wall_ms: u64, out: &mut Vec<Notification>) {
        if self.jobs[j].silence.take().is_none() {
            return;
        }
        self.touch(j);
        self.remember(j, wall_ms, Entry::Text("silence ended".into()));
        // Incidents still open were never notified: they are now.
        for open in self.jobs[j].open.values_mut() {
            if !open.notified {
                open.notified = true;
                let mut note = open.first.clone();
                note.text = Some(format!(
                    "{} (held back by a silence)",
                    note.text.as_deref().unwrap_or("")
                ));
                note.detected_ms = wall_ms;
                out.push(note);
            }
        }
    }

    /// A view of every job for people and tools (status, HTTP API).
    pub fn views(&self, now: Instant, wall_ms: u64) -> Vec<JobView> {
        let wall_at = |at: Instant| {
            let ahead = at.saturating_duration_since(now);
            wall_ms.saturating_add(u64::try_from(ahead.as_millis()).unwrap_or(u64::MAX))
        };
        self.jobs
            .iter()
            .map(|job| {
                let incidents: Vec<IncidentView> = job
                    .open
                    .iter()
                    .map(|(slot, open)| IncidentView {
                        id: open.id.clone(),
                        event: slot.event(),
                        run_id: open.run_id,
                    })
                    .collect();
                // The worst open incident names the state.
                let state = match job.open.keys().next() {
                    Some(slot) => slot.event().name(),
                    None if job.last.is_none() => "waiting",
                    None if !job.runs.is_empty() => "running",
                    None => "up",
                };
                JobView {
                    name: job.name.to_string(),
                    state,
                    schedule: job.cfg.schedule.to_string(),
                    period_ms: job.cfg.schedule.period_ms(wall_ms),
                    grace_ms: millis(job.cfg.grace),
                    last_seen_ms: job.last.as_ref().map(|s| s.wall_ms),
                    last_kind: job.last.as_ref().map(|s| s.kind.name()),
                    last_host: job.last.as_ref().map(|s| s.host.to_string()),
                    next_deadline_ms: job.down_at.map(wall_at),
                    runs_in_progress: job.runs.len(),
                    incidents,
                    silence: job.silence.as_deref().cloned(),
                    history: job
                        .history
                        .iter()
                        .map(|(ms, entry)| (*ms, entry.text().to_owned()))
                        .collect(),
                }
            })
            .collect()
    }

    fn note(&self, j: usize, event: Event, incident: &str, wall_ms: u64) -> Notification {
        let job = &self.jobs[j];
        let mut note = Notification::new(
            event,
            Arc::clone(&job.name),
            Arc::from(incident),
            Arc::clone(&self.watcher),
            wall_ms,
        );
        note.last_seen_ms = job.last.as_ref().map(|s| s.wall_ms);
        note.host = job.last.as_ref().map(|s| Arc::clone(&s.host));
        note
    }

    /// Deadlines never use the sender's clock; a clock far off is only
    /// reported (and shown per host), once each time a host goes out of (or
    /// back into) bounds.
    fn check_skew(&mut self, msg: &Message, sender_key: Option<&str>, wall_ms: u64) -> Arc<str> {
        // Saturated, sign kept: a timestamp of u64::MAX is a host far
        // ahead (negative), never the most behind there is.
        let sample = clamp_i64(i128::from(wall_ms) - i128::from(msg.ts_ms));
        if sample.unsigned_abs() > u64::try_from(self.max_skew.as_millis()).unwrap_or(u64::MAX) {
            self.stats.skewed_messages.fetch_add(1, Ordering::Relaxed);
        }
        // With CURVE, a name first claimed by another key is measured
        // under a name of its own.
        let claimed = msg.host.as_str();
        let table_name: std::borrow::Cow<'_, str> = match (self.hosts.get(claimed), sender_key) {
            (Some(clock), Some(key)) if clock.key.as_deref() != Some(key) => {
                std::borrow::Cow::Owned(format!("{claimed} [key {}]", key.get(..8).unwrap_or(key)))
            }
            _ => std::borrow::Cow::Borrowed(claimed),
        };
        if !self.hosts.contains_key(&*table_name) {
            if self.hosts.len() >= MAX_SKEW_HOSTS {
                self.forget_oldest_hosts();
            }
            let name: Arc<str> = Arc::from(&*table_name);
            let mut clock = HostClock::new(Arc::clone(&name), wall_ms);
            clock.key = sender_key.map(Arc::from);
            self.hosts.insert(name, clock);
            self.stats
                .hosts_known
                .store(self.hosts.len() as u64, Ordering::Relaxed);
        }
        // Looked up again rather than with `entry`, which would allocate
        // the host name for every message; the key is the interned name
        // every job's last message shares.
        let Some(clock) = self.hosts.get_mut(&*table_name) else {
            return Arc::from(msg.host.as_str());
        };
        // A job's last message keeps the name the sender claimed.
        let host = if clock.name.as_ref() == claimed {
            Arc::clone(&clock.name)
        } else {
            Arc::from(claimed)
        };
        let shown = Arc::clone(&clock.name);
        if clock.stepped(wall_ms, sample) {
            tracing::info!(host = %shown, offset_ms = sample, "sender clock stepped back (messages arrive live, all late alike): its offset is measured afresh");
            clock.samples.clear();
        }
        clock.previous = Some((wall_ms, sample));
        clock.sample(wall_ms, sample);
        clock.last_seen_ms = wall_ms;
        clock.messages += 1;
        let skew_ms = clock.estimate();
        let skewed = u128::from(skew_ms.unsigned_abs()) > self.max_skew.as_millis();
        if skewed != clock.skewed {
            clock.skewed = skewed;
            if skewed {
                warn!(host = %shown, skew_ms, max_clock_skew = ?self.max_skew, "sender clock is off (positive: behind the watcher); deadlines use the watcher's clock, the sender's timestamps are only recorded");
            } else {
                tracing::info!(host = %shown, skew_ms, "sender clock back within bounds");
            }
        }
        host
    }

    /// The sender hosts with the largest clock offsets, at most
    /// [`HOSTS_SHOWN`], largest first (then by name): what people look
    /// for, in a size that stays readable however many hosts there are.
    pub fn hosts(&self) -> Vec<HostView> {
        let mut hosts: Vec<HostView> = self
            .hosts
            .iter()
            .map(|(host, c)| HostView {
                host: host.to_string(),
                skew_ms: c.estimate(),
                skewed: c.skewed,
                last_seen_ms: c.last_seen_ms,
                messages: c.messages,
            })
            .collect();
        hosts.sort_by(|a, b| {
            b.skew_ms
                .unsigned_abs()
                .cmp(&a.skew_ms.unsigned_abs())
                .then_with(|| a.host.cmp(&b.host))
        });
        hosts.truncate(HOSTS_SHOWN);
        hosts
    }

    /// Makes room in the full host table: the eighth heard from longest
    /// ago go (one sort per 1 250 new names, not a scan per message).
    fn forget_oldest_hosts(&mut self) {
        let mut by_age: Vec<(u64, Arc<str>)> = self
            .hosts
            .values()
            .map(|c| (c.last_seen_ms, Arc::clone(&c.name)))
            .collect();
        by_age.sort_unstable();
        for (_, name) in by_age.into_iter().take(MAX_SKEW_HOSTS / 8) {
            self.hosts.remove(&name);
        }
    }

    fn unknown_job(&mut self, msg: &Message) {
        let total = self
            .stats
            .unknown_job_messages
            .fetch_add(1, Ordering::Relaxed)
            + 1;
        if self.unknown.contains(&msg.job) {
            return;
        }
        if self.unknown.len() < self.max_unknown {
            self.unknown.insert(msg.job.clone());
            self.stats.unknown_job_names.fetch_add(1, Ordering::Relaxed);
            warn!(job = %msg.job, host = %msg.host, kind = %msg.kind, "message for a job not in the config; counted and ignored");
        } else if total.is_power_of_two() {
            // Past the cap names are no longer remembered; log at 1, 2, 4, ...
            // messages so a flood costs a few lines, not one per message.
            warn!(job = %msg.job, unknown_job_messages = total, "messages for unknown jobs keep arriving; names past the cap are not remembered");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn job(name: &str, every: u64, grace: u64, max_runtime: Option<u64>) -> JobConfig {
        let mut cfg = JobConfig::new(
            name,
            crate::schedule::Schedule::Every(S * every as u32),
            S * grace as u32,
        );
        cfg.max_runtime = max_runtime.map(|m| S * m as u32);
        cfg
    }

    fn msg(kind: Kind, job: &str, run_id: Option<u64>, seq: u64) -> Message {
        Message {
            kind,
            job: job.into(),
            run_id,
            seq,
            ts_ms: 0,
            host: "h".into(),
            pid: 1,
            exit_code: None,
            text: None,
        }
    }

    fn registry(jobs: &[JobConfig], t0: Instant) -> Registry {
        Registry::new("w1", jobs, 4, S * 300, Arc::new(Stats::default()), t0, 0)
    }

    #[test]
    fn silent_job_goes_down_then_recovers_with_the_same_incident() {
        let t0 = Instant::now();
        let mut r = registry(&[job("etl", 10, 5, None)], t0);
        assert_eq!(r.next_deadline(), Some(t0 + 15 * S));
        assert!(
            r.on_message(&msg(Kind::Heartbeat, "etl", None, 1), t0 + S, 1)
                .is_empty()
        );
        assert_eq!(r.next_deadline(), Some(t0 + 16 * S));
        assert!(r.on_deadlines(t0 + 15 * S, 2).is_empty());
        let down = r.on_deadlines(t0 + 16 * S, 3);
        assert_eq!(down.len(), 1);
        assert_eq!(down[0].event, Event::Down);
        assert_eq!(&*down[0].watcher, "w1");
        assert_eq!(down[0].last_seen_ms, Some(1));
        assert_eq!(r.next_deadline(), None, "no repeat without a message");
        assert!(r.on_deadlines(t0 + 100 * S, 4).is_empty());
        let up = r.on_message(&msg(Kind::Heartbeat, "etl", None, 2), t0 + 20 * S, 5);
        assert_eq!(up.len(), 1);
        assert_eq!(up[0].event, Event::Recovered);
        assert_eq!(up[0].resolves, Some(Event::Down));
        assert_eq!(up[0].incident, down[0].incident);
        assert_eq!(
            up[0].duration_ms,
            Some(19_000),
            "from the last message to this one"
        );
    }

    #[test]
    fn a_job_never_heard_from_gets_one_full_period() {
        let t0 = Instant::now();
        let mut r = registry(&[job("etl", 10, 5, None)], t0);
        assert!(
            r.on_deadlines(t0 + 15 * S - Duration::from_millis(1), 0)
                .is_empty()
        );
        let down = r.on_deadlines(t0 + 15 * S, 0);
        assert_eq!(down.len(), 1);
        assert_eq!(down[0].last_seen_ms, None);
        assert_eq!(
            *down[0].incident,
            *incident_id("etl", Event::Down, "never:0"),
            "named by when watching began"
        );
    }

    #[test]
    fn fail_is_notified_at_once_and_success_resolves_it() {
        let t0 = Instant::now();
        let mut r = registry(&[job("etl", 3600, 0, None)], t0);
        let mut fail = msg(Kind::Fail, "etl", Some(7), 2);
        fail.exit_code = Some(3);
        fail.text = Some("disk full".into());
        let out = r.on_message(&fail, t0, 0);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].event, Event::Failed);
        assert_eq!(out[0].exit_code, Some(3));
        assert_eq!(out[0].text.as_deref(), Some("disk full"));
        assert_eq!(out[0].run_id, Some(7));
        // A further fail while the incident is open is not a new incident.
        assert!(
            r.on_message(&msg(Kind::Fail, "etl", Some(8), 3), t0, 0)
                .is_empty()
        );
        // A heartbeat does not undo a failed run; a success does.
        assert!(
            r.on_message(&msg(Kind::Heartbeat, "etl", None, 4), t0, 0)
                .is_empty()
        );
        assert!(
            r.on_message(&msg(Kind::Start, "etl", Some(9), 5), t0, 0)
                .is_empty()
        );
        let ok = r.on_message(&msg(Kind::Success, "etl", Some(9), 6), t0 + 2 * S, 0);
        assert_eq!(ok.len(), 1);
        assert_eq!(ok[0].resolves, Some(Event::Failed));
        assert_eq!(ok[0].incident, out[0].incident);
        assert_eq!(ok[0].duration_ms, Some(2000));
    }

    #[test]
    fn runless_fail_is_resolved_by_a_heartbeat() {
        let t0 = Instant::now();
        let mut r = registry(&[job("etl", 3600, 0, None)], t0);
        assert_eq!(
            r.on_message(&msg(Kind::Fail, "etl", None, 1), t0, 0).len(),
            1
        );
        let up = r.on_message(&msg(Kind::Heartbeat, "etl", None, 2), t0, 0);
        assert_eq!(up.len(), 1);
        assert_eq!(up[0].resolves, Some(Event::Failed));
    }

    #[test]
    fn overrun_is_per_run_and_resolved_when_that_run_ends() {
        let t0 = Instant::now();
        let mut r = registry(&[job("etl", 3600, 0, Some(60))], t0);
        r.on_message(&msg(Kind::Start, "etl", Some(1), 1), t0, 0);
        r.on_message(&msg(Kind::Start, "etl", Some(2), 2), t0 + 30 * S, 0);
        assert_eq!(r.next_deadline(), Some(t0 + 60 * S));
        let over = r.on_deadlines(t0 + 60 * S, 0);
        assert_eq!(over.len(), 1);
        assert_eq!(over[0].event, Event::Overrun);
        assert_eq!(over[0].run_id, Some(1));
        // Run 2 ends in time: no notification, its deadline is gone.
        assert!(
            r.on_message(&msg(Kind::Success, "etl", Some(2), 3), t0 + 61 * S, 0)
                .is_empty()
        );
        assert!(r.on_deadlines(t0 + 95 * S, 0).is_empty());
        let done = r.on_message(&msg(Kind::Success, "etl", Some(1), 4), t0 + 100 * S, 0);
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].resolves, Some(Event::Overrun));
        assert_eq!(done[0].incident, over[0].incident);
    }

    #[test]
    fn unknown_jobs_are_counted_with_bounded_memory() {
        let t0 = Instant::now();
        let stats = Arc::new(Stats::default());
        let mut r = Registry::new(
            "w1",
            &[job("etl", 10, 0, None)],
            4,
            S * 300,
            Arc::clone(&stats),
            t0,
            0,
        );
        for i in 0..100 {
            assert!(
                r.on_message(&msg(Kind::Heartbeat, &format!("x{i}"), None, i), t0, 0)
                    .is_empty()
            );
        }
        assert_eq!(stats.unknown_job_messages.load(Ordering::Relaxed), 100);
        assert_eq!(stats.unknown_job_names.load(Ordering::Relaxed), 4);
        assert_eq!(r.unknown.len(), 4);
    }

    #[test]
    fn runs_per_job_are_bounded() {
        let t0 = Instant::now();
        let mut r = registry(&[job("etl", 10, 0, Some(5))], t0);
        for i in 0..(MAX_RUNS_PER_JOB as u64 + 10) {
            r.on_message(&msg(Kind::Start, "etl", Some(i), i), t0, 0);
        }
        assert_eq!(r.jobs[0].runs.len(), MAX_RUNS_PER_JOB);
        // One down deadline plus one overrun deadline per remembered run.
        assert_eq!(r.deadlines.len(), MAX_RUNS_PER_JOB + 1);
    }
}

#[cfg(test)]
mod timer_tests {
    use super::*;
    use crate::schedule::Schedule;

    const S: Duration = Duration::from_secs(1);

    fn msg(kind: Kind, run_id: Option<u64>, seq: u64) -> Message {
        Message {
            kind,
            job: "etl".into(),
            run_id,
            seq,
            ts_ms: 0,
            host: "h".into(),
            pid: 1,
            exit_code: None,
            text: None,
        }
    }

    fn registry(cfg: JobConfig, t0: Instant, wall: u64) -> Registry {
        Registry::new(
            "w",
            &[cfg],
            4,
            S * 300,
            Arc::new(Stats::default()),
            t0,
            wall,
        )
    }

    fn every(secs: u32, grace: u32) -> JobConfig {
        JobConfig::new("etl", Schedule::Every(S * secs), S * grace)
    }

    fn events(notes: &[Notification]) -> Vec<(Event, Option<Event>, u32)> {
        notes
            .iter()
            .map(|n| (n.event, n.resolves, n.repeat))
            .collect()
    }

    /// Runs every deadline up to `until`, one second at a time, collecting notifications.
    fn run_until(
        r: &mut Registry,
        t0: Instant,
        wall0: u64,
        from: u64,
        until: u64,
    ) -> Vec<(u64, Notification)> {
        let mut out = Vec::new();
        for s in from..=until {
            for n in r.on_deadlines(t0 + S * u32::try_from(s).unwrap(), wall0 + s * 1000) {
                out.push((s, n));
            }
        }
        out
    }

    const DAY: u64 = 86_400;

    fn ms(rfc3339: &str) -> u64 {
        u64::try_from(
            chrono::DateTime::parse_from_rfc3339(rfc3339)
                .unwrap()
                .timestamp_millis(),
        )
        .unwrap()
    }

    #[test]
    fn a_cron_job_is_down_after_its_fire_time_plus_grace_across_spring_forward() {
        // 01:30 London on 2026-03-29 falls in the gap: expected at 02:00 BST (01:00 UTC).
        let cfg = JobConfig::new(
            "etl",
            Schedule::cron("30 1 * * *", "Europe/London").unwrap(),
            S * 300,
        );
        let wall0 = ms("2026-03-28T12:00:00Z");
        let t0 = Instant::now();
        let mut r = registry(cfg, t0, wall0);
        // Never heard: down at the first fire + grace = 01:05 UTC on the 29th.
        let expected = (ms("2026-03-29T01:05:00Z") - wall0) / 1000;
        assert_eq!(
            r.next_deadline(),
            Some(t0 + S * u32::try_from(expected).unwrap())
        );
        let fired = run_until(&mut r, t0, wall0, expected - 1, expected);
        assert_eq!(fired.len(), 1);
        assert_eq!((fired[0].0, fired[0].1.event), (expected, Event::Down));
    }

    #[test]
    fn a_cron_job_heard_on_time_each_day_never_goes_down_across_fall_back() {
        // 01:30 London happens twice on 2026-10-25; the job runs once and is fine.
        let cfg = JobConfig::new(
            "etl",
            Schedule::cron("30 1 * * *", "Europe/London").unwrap(),
            S * 600,
        );
        let wall0 = ms("2026-10-24T00:00:00Z");
        let t0 = Instant::now();
        let mut r = registry(cfg, t0, wall0);
        let mut notes = Vec::new();
        // The job reports at each real 01:30 London: 00:30 UTC (BST) on the
        // 24th and 25th, 01:30 UTC (GMT) on the 26th and 27th.
        let runs = [
            "2026-10-24T00:31:00Z",
            "2026-10-25T00:31:00Z",
            "2026-10-26T01:31:00Z",
            "2026-10-27T01:31:00Z",
        ];
        let mut from = 0;
        for (i, at) in runs.iter().enumerate() {
            let s = (ms(at) - wall0) / 1000;
            notes.extend(run_until(&mut r, t0, wall0, from, s));
            notes.extend(
                r.on_message(
                    &msg(Kind::Success, None, i as u64),
                    t0 + S * u32::try_from(s).unwrap(),
                    wall0 + s * 1000,
                )
                .into_iter()
                .map(|n| (s, n)),
            );
            from = s + 1;
        }
        assert!(
            notes.is_empty(),
            "no false alarm around the repeated hour: {notes:?}"
        );
        // And when it stops, it is down at the next fire + grace: 01:40 UTC on the 28th.
        let down_at = (ms("2026-10-28T01:40:00Z") - wall0) / 1000;
        assert_eq!(
            r.next_deadline(),
            Some(t0 + S * u32::try_from(down_at).unwrap())
        );
        let _ = DAY;
    }

    #[test]
    fn late_when_a_scheduled_start_does_not_come_then_recovered_by_the_start() {
        let mut cfg = JobConfig::new("etl", Schedule::cron("0 2 * * *", "UTC").unwrap(), S * 3600);
        cfg.start_within = Some(S * 900);
        let wall0 = ms("2026-01-01T00:00:00Z");
        let t0 = Instant::now();
        let mut r = registry(cfg, t0, wall0);
        let due = (ms("2026-01-01T02:15:00Z") - wall0) / 1000;
        let late = run_until(&mut r, t0, wall0, 0, due);
        assert_eq!(late.len(), 1);
        assert_eq!((late[0].0, late[0].1.event), (due, Event::Late));
        let s = due + 60;
        let up = r.on_message(
            &msg(Kind::Start, Some(7), 1),
            t0 + S * u32::try_from(s).unwrap(),
            wall0 + s * 1000,
        );
        assert_eq!(events(&up), [(Event::Recovered, Some(Event::Late), 0)]);
        assert_eq!(up[0].incident, late[0].1.incident);
    }

    /// Saves every job's state and starts a new registry on it, as a
    /// restart does (through the JSON the state database keeps).
    fn restart(r: &mut Registry, cfg: JobConfig, now: Instant, wall: u64) -> Registry {
        restart_saved(r, &mut BTreeMap::new(), cfg, now, wall)
    }

    /// `restart`, with `saved` the state database's rows kept across restarts.
    fn restart_saved(
        r: &mut Registry,
        saved: &mut BTreeMap<String, String>,
        cfg: JobConfig,
        now: Instant,
        wall: u64,
    ) -> Registry {
        for (name, rec) in r.take_dirty(now, wall) {
            saved.insert(name, serde_json::to_string(&rec).unwrap());
        }
        let records: Vec<(String, String)> = saved.clone().into_iter().collect();
        let mut fresh = registry(cfg, now, wall);
        assert_eq!(fresh.restore(&records, now, wall), records.len());
        fresh
    }

    fn daily_at_2() -> JobConfig {
        let mut cfg = JobConfig::new("etl", Schedule::cron("0 2 * * *", "UTC").unwrap(), S * 3600);
        cfg.start_within = Some(S * 900);
        cfg
    }

    #[test]
    fn the_slot_late_awaits_survives_a_restart_after_its_time() {
        let wall0 = ms("2026-01-01T02:05:00Z");
        let t0 = Instant::now();
        let mut r = registry(daily_at_2(), t0, wall0);
        // Started on time today: tomorrow's 02:00 is awaited.
        r.on_message(&msg(Kind::Start, Some(1), 1), t0, wall0);
        r.on_message(&msg(Kind::Success, Some(1), 2), t0 + S, wall0 + 1000);
        // Stopped until 02:05 tomorrow, within start_within of the slot.
        let back = ms("2026-01-02T02:05:00Z");
        let t1 = t0 + Duration::from_millis(back - wall0);
        let mut r = restart(&mut r, daily_at_2(), t1, back);
        let due = ms("2026-01-02T02:15:00Z");
        let late = r.on_deadlines(t1 + Duration::from_millis(due - back), due);
        assert_eq!(events(&late), [(Event::Late, None, 0)]);
        assert!(
            late[0]
                .text
                .as_deref()
                .unwrap()
                .contains("2026-01-02T02:00:00Z")
        );
    }

    #[test]
    fn a_slot_awaited_under_a_schedule_changed_while_stopped_is_not_kept() {
        let wall0 = ms("2026-06-01T01:00:00Z");
        let t0 = Instant::now();
        let mut r = registry(daily_at_2(), t0, wall0);
        r.on_message(&msg(Kind::Heartbeat, None, 1), t0, wall0);
        let mut at_3 = daily_at_2();
        at_3.schedule = Schedule::cron("0 3 * * *", "UTC").unwrap();
        let mut r = restart(&mut r, at_3, t0, wall0);
        let quarter_past_2 = ms("2026-06-01T02:15:00Z");
        let at = t0 + Duration::from_millis(quarter_past_2 - wall0);
        assert!(
            r.on_deadlines(at, quarter_past_2).is_empty(),
            "no late for the old 02:00"
        );
        let quarter_past_3 = ms("2026-06-01T03:15:00Z");
        let late = r.on_deadlines(
            t0 + Duration::from_millis(quarter_past_3 - wall0),
            quarter_past_3,
        );
        assert_eq!(events(&late), [(Event::Late, None, 0)]);
    }

    #[test]
    fn a_wall_step_moves_cron_deadlines_not_an_every_jobs_late() {
        let mut cfg = every(3600, 0);
        cfg.start_within = Some(S * 300);
        let t0 = Instant::now();
        let mut r = registry(cfg, t0, 0);
        r.on_message(&msg(Kind::Start, Some(1), 1), t0, 0);
        // 10 min on, the wall clock jumps 40 min ahead.
        let t1 = t0 + S * 600;
        r.on_clock_step(t1, 3_000_000);
        // `late` stays 1 h + 5 min after the start, on the monotonic clock
        // (the down at 1 h is this job's own, a duration too).
        let early = r.on_deadlines(t0 + S * 3899, 5_000_000);
        assert_eq!(events(&early), [(Event::Down, None, 0)]);
        let late = r.on_deadlines(t0 + S * 3900, 5_000_000);
        assert_eq!(events(&late), [(Event::Late, None, 0)]);
    }

    #[test]
    fn a_sender_that_repeats_its_identity_still_gets_each_outage_notified() {
        // pid 1, seq 1, no clock (ts 0) every time: only the watcher can tell
        // the outages apart.
        let t0 = Instant::now();
        let mut r = registry(every(10, 0), t0, 0);
        let mut ids = Vec::new();
        for round in 0..3u32 {
            let t = t0 + S * (20 * round);
            let up = r.on_message(&msg(Kind::Heartbeat, None, 1), t, u64::from(round) * 20_000);
            if round > 0 {
                assert_eq!(events(&up), [(Event::Recovered, Some(Event::Down), 0)]);
            }
            let down = r.on_deadlines(t + S * 10, u64::from(round) * 20_000 + 10_000);
            assert_eq!(events(&down), [(Event::Down, None, 0)]);
            ids.push(down[0].incident.clone());
        }
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 3, "three outages, three incidents");
    }

    #[test]
    fn a_never_heard_jobs_start_is_saved_so_restarts_cannot_postpone_its_down() {
        let t0 = Instant::now();
        let mut r = registry(every(6, 0), t0, 0);
        assert_eq!(r.restore(&[], t0, 0), 0);
        // Restarted every 4 s: the down still comes 6 s after watching began.
        let mut saved = BTreeMap::new();
        let mut r = restart_saved(&mut r, &mut saved, every(6, 0), t0 + S * 4, 4000);
        let mut r = restart_saved(&mut r, &mut saved, every(6, 0), t0 + S * 8, 8000);
        let down = r.on_deadlines(t0 + S * 8, 8000);
        assert_eq!(events(&down), [(Event::Down, None, 0)]);
    }

    #[test]
    fn records_read_both_ways_across_the_upgrade() {
        // As the previous version wrote it: one streak that counted a
        // heartbeat after a failed run, runs as (id, started, host).
        let old = r#"{"last":{"wall_ms":5000,"kind":"heartbeat","basis":"h/1/3","host":"h"},
            "runs":[[9,4000,"h"]],"open":[],"bad_streak":0,"good_streak":1,"silence":null}"#;
        let mut cfg = every(3600, 0);
        cfg.recover_after_successes = 2;
        let t0 = Instant::now();
        let mut r = registry(cfg.clone(), t0, 6000);
        assert_eq!(r.restore(&[("etl".into(), old.into())], t0, 6000), 1);
        assert_eq!((r.jobs[0].success_streak, r.jobs[0].alive_streak), (0, 1));
        assert_eq!(r.jobs[0].runs.len(), 1);
        // The previous version's reader: what it knew, and nothing more.
        #[derive(serde::Deserialize)]
        #[expect(dead_code, reason = "only whether it parses matters")]
        struct PreviousRecord {
            last: Option<serde_json::Value>,
            runs: Vec<(u64, u64, String)>,
            open: Vec<serde_json::Value>,
            bad_streak: u32,
            good_streak: u32,
            silence: Option<Silence>,
        }
        for (_, record) in r.take_dirty(t0, 6000) {
            let text = serde_json::to_string(&record).unwrap();
            let back: PreviousRecord = serde_json::from_str(&text).unwrap();
            assert_eq!(back.runs.len(), 1);
        }
    }

    fn from(pid: u32, seq: u64, ts_ms: u64) -> Message {
        let mut m = msg(Kind::Heartbeat, None, seq);
        m.pid = pid;
        m.ts_ms = ts_ms;
        m
    }

    fn evidence(r: &Registry) -> PeerSeen {
        r.jobs[0].last.as_ref().unwrap().as_peer_seen()
    }

    #[test]
    fn two_watchers_that_heard_different_last_messages_name_the_outage_alike() {
        // Two processes report one job; a heard process 1's last message
        // (sent at 1000), b only process 2's (sent at 900, arriving later).
        let t0 = Instant::now();
        let (mut a, mut b) = (registry(every(10, 0), t0, 0), registry(every(10, 0), t0, 0));
        a.on_message(&from(1, 5, 1000), t0 + S, 1000);
        b.on_message(&from(2, 9, 900), t0 + S * 2, 2000);
        // Each tells the other what it heard (gossip).
        let (ea, eb) = (evidence(&a), evidence(&b));
        a.on_peer_seen("b", "etl", &eb, t0 + S * 3, 3000);
        b.on_peer_seen("a", "etl", &ea, t0 + S * 3, 3000);
        let da = a.on_deadlines(t0 + S * 20, 20_000);
        let db = b.on_deadlines(t0 + S * 20, 20_000);
        assert_eq!(
            (events(&da), events(&db)),
            (vec![(Event::Down, None, 0)], vec![(Event::Down, None, 0)])
        );
        assert_eq!(da[0].incident, db[0].incident, "one outage, one name");
        assert_eq!(
            *da[0].incident,
            *incident_id("etl", Event::Down, "h/1/5/1000"),
            "the later message by the sender's clock"
        );
    }

    #[test]
    fn messages_queued_during_a_cut_are_not_taken_as_life() {
        let t0 = Instant::now();
        let mut r = registry(every(10, 0), t0, 0);
        // On time: the host's clock offset is learnt (0).
        for s in 0..3u32 {
            let at = u64::from(s) * 1000;
            assert!(
                r.on_message(&from(1, u64::from(s) + 1, at), t0 + S * s, at)
                    .is_empty()
            );
        }
        // Cut at 2 s; the job sends at 4 s and 6 s, then stops; down at 12 s.
        let down = r.on_deadlines(t0 + S * 12, 12_000);
        assert_eq!(events(&down), [(Event::Down, None, 0)]);
        // Healed at 30 s: the queued messages arrive, long overdue by themselves.
        for (seq, sent) in [(4, 4000), (5, 6000)] {
            let out = r.on_message(&from(1, seq, sent), t0 + S * 30, 30_000);
            assert!(
                out.is_empty(),
                "a queued message recovered the job: {out:?}"
            );
        }
        assert_eq!(r.stats.stale_messages.load(Ordering::Relaxed), 2);
        assert!(r.jobs[0].open.contains_key(&Slot::Down), "still down");
        // A fresh one is life.
        let up = r.on_message(&from(1, 6, 31_000), t0 + S * 31, 31_000);
        assert_eq!(events(&up), [(Event::Recovered, Some(Event::Down), 0)]);
        // A sender whose clock steps back, heard on time, is not stale.
        let ok = r.on_message(&from(1, 7, 1_000), t0 + S * 32, 32_000);
        assert!(ok.is_empty());
        assert_eq!(r.stats.stale_messages.load(Ordering::Relaxed), 2);
    }

    /// A backlog longer than the offset window, delivered at once after a
    /// two-minute cut, and the same backlog delivered to a watcher that
    /// restarted meanwhile (its offsets come back with its saved state):
    /// no message of it is life.
    #[test]
    fn a_long_backlog_is_no_life_even_after_a_restart() {
        let t0 = Instant::now();
        for restarted in [false, true] {
            let mut r = registry(every(10, 0), t0, 0);
            for s in 0..3u32 {
                let at = u64::from(s) * 1000;
                r.on_message(&from(1, u64::from(s) + 1, at), t0 + S * s, at);
            }
            // Cut at 2 s: the job beats every second until 100 s, then stops.
            let down = r.on_deadlines(t0 + S * 12, 12_000);
            assert_eq!(events(&down), [(Event::Down, None, 0)]);
            if restarted {
                r = restart(&mut r, every(10, 0), t0 + S * 60, 60_000);
            }
            for seq in 4..=100u64 {
                let out = r.on_message(&from(1, seq, (seq - 1) * 1000), t0 + S * 130, 130_000);
                assert!(
                    out.is_empty(),
                    "restarted {restarted}: queued message {seq} taken as life: {out:?}"
                );
            }
            assert_eq!(
                r.stats.stale_messages.load(Ordering::Relaxed),
                97,
                "restarted {restarted}"
            );
            assert!(r.jobs[0].open.contains_key(&Slot::Down), "still down");
        }
    }

    fn peer(wall_ms: u64, up_since_ms: u64, start_ms: u64, kind: Kind) -> PeerSeen {
        PeerSeen {
            wall_ms,
            up_since_ms,
            start_ms,
            pid: 1,
            seq: 9,
            ts_ms: wall_ms,
            kind,
            host: Arc::from("h"),
        }
    }

    #[test]
    fn peer_evidence_round_trips_its_gossip_form() {
        let seen = peer(1_700_000_000_123, 1_700_000_000_000, 5, Kind::Progress);
        let mut with_semicolon = seen.clone();
        with_semicolon.host = Arc::from("odd;host");
        for s in [seen, with_semicolon] {
            assert_eq!(PeerSeen::decode(&s.encode()), Some(s));
        }
        assert_eq!(PeerSeen::decode("1;2;3"), None);
    }

    #[test]
    fn what_a_peer_heard_moves_down_and_tells_a_false_alarm_from_a_recovery() {
        let t0 = Instant::now();
        let mut r = registry(every(10, 5), t0, 0);
        r.on_message(&msg(Kind::Heartbeat, None, 1), t0, 0);
        // A peer heard the job at 12 s: not down at 15 s any more, at 27 s.
        assert!(
            r.on_peer_seen(
                "b",
                "etl",
                &peer(12_000, 0, 0, Kind::Heartbeat),
                t0 + S * 13,
                13_000
            )
            .is_empty()
        );
        assert!(r.on_deadlines(t0 + S * 26, 26_000).is_empty());
        let down = r.on_deadlines(t0 + S * 27, 27_000);
        assert_eq!(events(&down), [(Event::Down, None, 0)]);
        // Its basis is the peer's last message: every watcher names it alike.
        assert_eq!(
            *down[0].incident,
            *incident_id("etl", Event::Down, "h/1/9/12000")
        );
        // The peer has heard it without a break since 0 s: a false alarm.
        let back = r.on_peer_seen(
            "b",
            "etl",
            &peer(28_000, 0, 0, Kind::Heartbeat),
            t0 + S * 28,
            28_000,
        );
        assert_eq!(events(&back), [(Event::Retracted, Some(Event::Down), 0)]);
        assert_eq!(back[0].incident, down[0].incident);
        // Down again; this time the peer heard it come back after the alarm.
        let down = r.on_deadlines(t0 + S * 43, 43_000);
        assert_eq!(events(&down), [(Event::Down, None, 0)]);
        let back = r.on_peer_seen(
            "b",
            "etl",
            &peer(50_000, 50_000, 0, Kind::Heartbeat),
            t0 + S * 50,
            50_000,
        );
        assert_eq!(events(&back), [(Event::Recovered, Some(Event::Down), 0)]);
        // Older news than what was heard here changes nothing.
        assert!(
            r.on_peer_seen(
                "b",
                "etl",
                &peer(49_000, 0, 0, Kind::Heartbeat),
                t0 + S * 51,
                51_000
            )
            .is_empty()
        );
    }

    #[test]
    fn a_start_a_peer_heard_counts_for_late() {
        let mut cfg = JobConfig::new("etl", Schedule::cron("0 2 * * *", "UTC").unwrap(), S * 3600);
        cfg.start_within = Some(S * 900);
        let wall0 = ms("2026-01-01T00:00:00Z");
        let t0 = Instant::now();
        let at = |iso: &str| {
            let w = ms(iso);
            (t0 + Duration::from_millis(w - wall0), w)
        };
        // Only the peer heard the 02:00 start: no `late` here at 02:15.
        let mut r = registry(cfg.clone(), t0, wall0);
        let (now, wall) = at("2026-01-01T02:00:30Z");
        let start = ms("2026-01-01T02:00:10Z");
        assert!(
            r.on_peer_seen(
                "b",
                "etl",
                &peer(start, start, start, Kind::Start),
                now,
                wall
            )
            .is_empty()
        );
        let (now, wall) = at("2026-01-01T02:16:00Z");
        assert!(
            r.on_deadlines(now, wall).is_empty(),
            "the start was heard in the farm"
        );
        // Cut off from both, this watcher raised `late`; the peer's news of
        // the on-time start makes it a false alarm.
        let mut r = registry(cfg, t0, wall0);
        let (now, wall) = at("2026-01-01T02:15:00Z");
        let late = r.on_deadlines(now, wall);
        assert_eq!(events(&late), [(Event::Late, None, 0)]);
        let (now, wall) = at("2026-01-01T02:20:00Z");
        let back = r.on_peer_seen(
            "b",
            "etl",
            &peer(start, start, start, Kind::Start),
            now,
            wall,
        );
        assert_eq!(events(&back), [(Event::Retracted, Some(Event::Late), 0)]);
        assert_eq!(back[0].incident, late[0].incident);
    }

    #[test]
    fn stalled_when_a_run_goes_quiet_reset_by_progress() {
        let mut cfg = every(3600, 0);
        cfg.stall_after = Some(S * 60);
        let t0 = Instant::now();
        let mut r = registry(cfg, t0, 0);
        r.on_message(&msg(Kind::Start, Some(1), 1), t0, 0);
        r.on_message(&msg(Kind::Progress, Some(1), 2), t0 + S * 50, 50_000);
        assert!(
            r.on_deadlines(t0 + S * 100, 100_000).is_empty(),
            "progress at 50 s moved it to 110 s"
        );
        let stalled = r.on_deadlines(t0 + S * 110, 110_000);
        assert_eq!(events(&stalled), [(Event::Stalled, None, 0)]);
        assert_eq!(stalled[0].run_id, Some(1));
        let back = r.on_message(&msg(Kind::Progress, Some(1), 3), t0 + S * 120, 120_000);
        assert_eq!(events(&back), [(Event::Recovered, Some(Event::Stalled), 0)]);
        // It can stall again, as a new incident of the same run.
        assert_eq!(
            events(&r.on_deadlines(t0 + S * 180, 180_000)),
            [(Event::Stalled, None, 0)]
        );
        let done = r.on_message(&msg(Kind::Success, Some(1), 4), t0 + S * 200, 200_000);
        assert_eq!(events(&done), [(Event::Recovered, Some(Event::Stalled), 0)]);
    }

    #[test]
    fn a_success_sooner_than_min_runtime_is_too_fast() {
        let mut cfg = every(3600, 0);
        cfg.min_runtime = Some(S * 60);
        let t0 = Instant::now();
        let mut r = registry(cfg, t0, 0);
        r.on_message(&msg(Kind::Start, Some(1), 1), t0, 0);
        let fast = r.on_message(&msg(Kind::Success, Some(1), 2), t0 + S * 2, 2000);
        assert_eq!(events(&fast), [(Event::TooFast, None, 0)]);
        assert!(
            fast[0]
                .text
                .as_ref()
                .unwrap()
                .contains("sooner than min_runtime")
        );
        r.on_message(&msg(Kind::Start, Some(2), 3), t0 + S * 100, 100_000);
        let ok = r.on_message(&msg(Kind::Success, Some(2), 4), t0 + S * 200, 200_000);
        assert_eq!(events(&ok), [(Event::Recovered, Some(Event::TooFast), 0)]);
    }

    #[test]
    fn damping_waits_for_n_failures_and_n_successes() {
        let mut cfg = every(3600, 0);
        cfg.alert_after_failures = 3;
        cfg.recover_after_successes = 2;
        let t0 = Instant::now();
        let mut r = registry(cfg, t0, 0);
        assert!(r.on_message(&msg(Kind::Fail, None, 1), t0, 0).is_empty());
        assert!(r.on_message(&msg(Kind::Fail, None, 2), t0, 0).is_empty());
        assert_eq!(
            events(&r.on_message(&msg(Kind::Fail, None, 3), t0, 0)),
            [(Event::Failed, None, 0)]
        );
        assert!(
            r.on_message(&msg(Kind::Success, None, 4), t0, 0).is_empty(),
            "one success is not enough"
        );
        assert_eq!(
            events(&r.on_message(&msg(Kind::Success, None, 5), t0, 0)),
            [(Event::Recovered, Some(Event::Failed), 0)]
        );
        // A success between failures resets the count.
        assert!(r.on_message(&msg(Kind::Fail, None, 6), t0, 0).is_empty());
        r.on_message(&msg(Kind::Success, None, 7), t0, 0);
        assert!(r.on_message(&msg(Kind::Fail, None, 8), t0, 0).is_empty());
        assert!(r.on_message(&msg(Kind::Fail, None, 9), t0, 0).is_empty());
    }

    #[test]
    fn damping_counts_missed_periods_before_down() {
        let mut cfg = every(10, 0);
        cfg.alert_after_failures = 3;
        let t0 = Instant::now();
        let mut r = registry(cfg, t0, 0);
        let fired = run_until(&mut r, t0, 0, 0, 40);
        assert_eq!(fired.len(), 1, "{fired:?}");
        assert_eq!(
            (fired[0].0, fired[0].1.event),
            (30, Event::Down),
            "the third missed period"
        );
    }

    #[test]
    fn repeat_reminds_while_open_and_stops_on_recovery() {
        let mut cfg = every(10, 0);
        cfg.repeat = Some(S * 60);
        let t0 = Instant::now();
        let mut r = registry(cfg, t0, 0);
        let fired = run_until(&mut r, t0, 0, 0, 135);
        let got: Vec<(u64, u32)> = fired.iter().map(|(s, n)| (*s, n.repeat)).collect();
        assert_eq!(got, [(10, 0), (70, 1), (130, 2)]);
        assert!(
            fired
                .iter()
                .all(|(_, n)| n.incident == fired[0].1.incident && n.event == Event::Down)
        );
        assert!(fired[1].1.headline().contains("reminder 1"));
        let up = r.on_message(&msg(Kind::Heartbeat, None, 1), t0 + S * 140, 140_000);
        assert_eq!(events(&up), [(Event::Recovered, Some(Event::Down), 0)]);
        let later = run_until(&mut r, t0, 0, 141, 300);
        assert!(
            later.iter().all(|(_, n)| n.incident != fired[0].1.incident),
            "no reminder of the closed incident: {later:?}"
        );
        assert_eq!(
            later[0].0, 150,
            "silent again after the heartbeat: a new incident"
        );
    }

    fn named(name: &str, secs: u32, grace: u32) -> JobConfig {
        JobConfig::new(name, Schedule::Every(S * secs), S * grace)
    }

    fn at(t0: Instant, wall0: u64, s: u64) -> (Instant, u64) {
        (t0 + S * u32::try_from(s).unwrap(), wall0 + s * 1000)
    }

    #[test]
    fn a_reload_keeps_state_timers_and_open_incidents() {
        let (t0, wall0) = (Instant::now(), 1_700_000_000_000);
        let mut r = Registry::new(
            "w",
            &[
                named("etl", 10, 5),
                named("gone", 10, 5),
                named("steady", 100, 0),
            ],
            4,
            S * 300,
            Arc::new(Stats::default()),
            t0,
            wall0,
        );
        let (now, wall) = at(t0, wall0, 1);
        r.on_message(&msg(Kind::Heartbeat, None, 1), now, wall);
        let mut fail = msg(Kind::Fail, None, 2);
        fail.exit_code = Some(3);
        let opened = r.on_message(&fail, now, wall);
        assert_eq!(events(&opened), vec![(Event::Failed, None, 0)]);
        let steady_down = r.jobs[2].down_at.unwrap();

        // etl's grace changes, "gone" goes, "new" comes; steady is untouched.
        let (now, wall) = at(t0, wall0, 5);
        let summary = r.reconfigure(
            &[
                named("new", 20, 0),
                named("steady", 100, 0),
                named("etl", 10, 30),
            ],
            4,
            S * 300,
            now,
            wall,
        );
        assert_eq!(
            (
                summary.added,
                summary.removed,
                summary.changed,
                summary.unchanged
            ),
            (1, 1, 1, 1)
        );
        assert_eq!(summary.removed_names, vec!["gone".to_owned()]);
        assert_eq!(
            r.jobs[1].down_at,
            Some(steady_down),
            "steady's timer is exactly kept"
        );
        assert_eq!(
            r.jobs[2].down_at,
            Some(t0 + S * 41),
            "etl: down 10 s + the new 30 s grace after its last message at 1 s"
        );
        assert_eq!(
            r.jobs[0].down_at,
            Some(now + S * 20),
            "new: one full period"
        );
        let views = r.views(now, wall);
        let etl = views.iter().find(|v| v.name == "etl").unwrap();
        assert_eq!(etl.incidents.len(), 1, "the open failed incident survives");
        assert!(views.iter().all(|v| v.name != "gone"));
        assert!(r.is_dirty());

        // The same incident closes with one follow-up after the reload.
        let (now, wall) = at(t0, wall0, 6);
        let up = r.on_message(&msg(Kind::Success, None, 3), now, wall);
        assert_eq!(
            events(&up),
            vec![(Event::Recovered, Some(Event::Failed), 0)]
        );
        assert_eq!(up[0].incident, opened[0].incident);
        // Nothing fires for the removed job, and the new one waits its period.
        let fired = run_until(&mut r, t0, wall0, 7, 24);
        assert!(fired.is_empty(), "{fired:?}");
        let fired = run_until(&mut r, t0, wall0, 25, 25);
        assert_eq!(fired.len(), 1);
        assert_eq!((&*fired[0].1.job, fired[0].1.event), ("new", Event::Down));
    }

    #[test]
    fn host_skew_is_the_smallest_recent_offset() {
        let (t0, wall0) = (Instant::now(), 1_700_000_000_000);
        let mut r = registry(every(10, 5), t0, wall0);
        // Three messages queued at the sender while the watcher was down
        // (old timestamps), then one that came straight through from a
        // host 2 s behind.
        for (i, late_ms) in [(1, 60_000), (2, 40_000), (3, 20_000), (4, 2_000)] {
            let mut m = msg(Kind::Heartbeat, None, i);
            m.ts_ms = wall0 - late_ms;
            r.on_message(&m, t0, wall0);
        }
        let hosts = r.hosts();
        assert_eq!(hosts.len(), 1);
        assert_eq!(
            (hosts[0].host.as_str(), hosts[0].skew_ms, hosts[0].messages),
            ("h", 2_000, 4)
        );
        assert!(!hosts[0].skewed, "2 s is within the 300 s allowed");
    }

    /// A timestamp of u64::MAX is a host as far ahead as can be told
    /// (before, the overflow flipped it to the most behind).
    #[test]
    fn an_absurd_timestamp_saturates_with_its_sign() {
        let (t0, wall0) = (Instant::now(), 1_700_000_000_000);
        let mut r = registry(every(10, 5), t0, wall0);
        let mut m = msg(Kind::Heartbeat, None, 1);
        m.ts_ms = u64::MAX;
        r.on_message(&m, t0, wall0);
        assert_eq!(r.hosts()[0].skew_ms, i64::MIN);
    }

    /// With CURVE, a host name first claimed by one key and then by
    /// another is measured apart: the second cannot move the first's
    /// estimate, and the job still records the name it was sent with.
    #[test]
    fn a_host_name_claimed_by_another_key_is_measured_apart() {
        let (t0, wall0) = (Instant::now(), 1_700_000_000_000);
        let mut r = registry(every(10, 5), t0, wall0);
        let mut honest = msg(Kind::Heartbeat, None, 1);
        honest.ts_ms = wall0 - 1_000;
        r.on_message_from(&honest, Some("KEYAAAAAAAAAAAAA"), t0, wall0);
        let mut liar = msg(Kind::Heartbeat, None, 2);
        liar.ts_ms = wall0 - 3_600_000;
        r.on_message_from(&liar, Some("KEYBBBBBBBBBBBBB"), t0, wall0);
        let hosts = r.hosts();
        let skews: Vec<(&str, i64)> = hosts.iter().map(|h| (h.host.as_str(), h.skew_ms)).collect();
        assert_eq!(skews, [("h [key KEYBBBBB]", 3_600_000), ("h", 1_000)]);
    }

    // Found by an outside review of the farm's trust fixes (issue 14).
    const MS: Duration = Duration::from_millis(1);

    /// Beats every second from `from` to `to` s, `mk(s)` the message, collecting notes.
    fn beat(
        r: &mut Registry,
        t0: Instant,
        wall: impl Fn(u64) -> u64,
        range: std::ops::RangeInclusive<u64>,
        mk: impl Fn(u64) -> Message,
    ) -> Vec<(u64, Event)> {
        let mut got = Vec::new();
        for s in range {
            let now = t0 + S * u32::try_from(s).unwrap();
            got.extend(r.on_deadlines(now, wall(s)).iter().map(|n| (s, n.event)));
            got.extend(
                r.on_message(&mk(s), now, wall(s))
                    .iter()
                    .map(|n| (s, n.event)),
            );
        }
        got
    }

    /// A container job (pid 1) restarted with its clock set back, or a
    /// sender with no clock, counts from seq 1 again: still life.
    #[test]
    fn a_process_restarted_under_its_pid_with_an_earlier_clock_is_life() {
        let t0 = Instant::now();
        let w = |s: u64| 100_000 + s * 1000;
        // (a) sender clock stepped back 60 s across a container restart (pid 1 again);
        // (b) a sender without a clock (ts 0) whose container restarts.
        let mut all = Vec::new();
        for clockless in [false, true] {
            let mut r = registry(every(10, 2), t0, w(0));
            let ts = |s: u64, back: u64| if clockless { 0 } else { w(s) - back };
            let mut got = beat(&mut r, t0, w, 1..=50, |s| from(1, s, ts(s, 0)));
            got.extend(beat(&mut r, t0, w, 51..=200, |s| {
                from(1, s - 50, ts(s, 60_000))
            }));
            all.push((clockless, got));
        }
        assert_eq!(
            all,
            [(false, vec![]), (true, vec![])],
            "a job beating every second"
        );
    }

    /// Two watchers 6 s apart by their clocks, both hearing every beat of a
    /// 60 s job: no watcher dates the other's evidence as a late delivery.
    #[test]
    fn watchers_whose_clocks_differ_by_seconds_raise_no_false_down() {
        // a's wall clock is 6 s ahead of b's; the sender's agrees with b.
        let t0 = Instant::now();
        let (wa, wb) = (|r: u64| 106_000 + r, |r: u64| 100_000 + r);
        let mut a = registry(every(60, 5), t0, wa(0));
        let mut b = registry(every(60, 5), t0, wb(0));
        let mut got = Vec::new();
        for r in (0..=300_000u64).step_by(100) {
            let now = t0 + MS * u32::try_from(r).unwrap();
            for n in a.on_deadlines(now, wa(r)) {
                got.push((r, "a", n.event));
            }
            for n in b.on_deadlines(now, wb(r)) {
                got.push((r, "b", n.event));
            }
            if r % 60_000 == 0 {
                let m = from(1, r / 1000 + 1, wb(r));
                for n in a.on_message(&m, now, wa(r)) {
                    got.push((r, "a", n.event));
                }
                for n in b.on_message(&m, now, wb(r)) {
                    got.push((r, "b", n.event));
                }
            }
            if r % 60_000 == 100 {
                // gossip, 100 ms after the beat, both ways
                let (ea, eb) = (evidence(&a), evidence(&b));
                for n in a.on_peer_seen("b", "etl", &eb, now, wa(r)) {
                    got.push((r, "a", n.event));
                }
                for n in b.on_peer_seen("a", "etl", &ea, now, wb(r)) {
                    got.push((r, "b", n.event));
                }
            }
        }
        assert_eq!(got, [], "a job heard on time by both watchers");
    }

    /// A host back from an outage with its clock a minute behind: its live
    /// messages are life again from the second one, not after the offset
    /// window rolls over.
    #[test]
    fn a_sender_clock_stepped_back_during_an_outage_recovers_at_its_second_message() {
        let t0 = Instant::now();
        let w = |s: u64| 100_000 + s * 1000;
        let mut r = registry(every(10, 2), t0, w(0));
        // Host reboots at 20 s (job down); back at 100 s with its clock 60 s behind.
        let mut got = beat(&mut r, t0, w, 1..=20, |s| from(1, s, w(s)));
        for s in 21..=99u64 {
            let n = r.on_deadlines(t0 + S * u32::try_from(s).unwrap(), w(s));
            got.extend(n.iter().map(|n| (s, n.event)));
        }
        got.extend(beat(&mut r, t0, w, 100..=600, |s| {
            from(2, s - 99, w(s) - 60_000)
        }));
        // The first message after the step cannot be told from a backlog;
        // the second, a second later and late alike, shows the step.
        assert_eq!(got, [(32, Event::Down), (101, Event::Recovered)]);
    }

    /// A record written before offsets were saved still dates a backlog
    /// (by the last message heard).
    #[test]
    fn a_backlog_after_a_restore_from_an_older_record_is_no_life() {
        let t0 = Instant::now();
        let mut r = registry(every(10, 0), t0, 0);
        for s in 0..3u32 {
            let at = u64::from(s) * 1000;
            r.on_message(&from(1, u64::from(s) + 1, at), t0 + S * s, at);
        }
        assert_eq!(
            events(&r.on_deadlines(t0 + S * 12, 12_000)),
            [(Event::Down, None, 0)]
        );
        // Saved by the previous version: no host_offset_ms.
        let saved: Vec<(String, String)> = r
            .take_dirty(t0 + S * 50, 50_000)
            .into_iter()
            .map(|(n, rec)| {
                let mut v = serde_json::to_value(&rec).unwrap();
                v["last"].as_object_mut().unwrap().remove("host_offset_ms");
                (n, v.to_string())
            })
            .collect();
        let mut r = registry(every(10, 0), t0 + S * 60, 60_000);
        r.restore(&saved, t0 + S * 60, 60_000);
        let mut got = Vec::new();
        for seq in 4..=100u64 {
            got.extend(events(&r.on_message(
                &from(1, seq, (seq - 1) * 1000),
                t0 + S * 130,
                130_000,
            )));
        }
        assert_eq!(got, [], "queued messages taken as life");
    }

    /// A message stamped seq = ts = u64::MAX (broken or hostile) does not
    /// make every later message look old.
    #[test]
    fn one_message_stamped_u64_max_does_not_kill_the_job() {
        let t0 = Instant::now();
        let w = |s: u64| 100_000 + s * 1000;
        let mut r = registry(every(10, 2), t0, w(0));
        let mut got = beat(&mut r, t0, w, 1..=5, |s| from(1, s, w(s)));
        got.extend(beat(&mut r, t0, w, 6..=6, |_| from(1, u64::MAX, u64::MAX)));
        got.extend(beat(&mut r, t0, w, 7..=100, |s| from(1, s, w(s))));
        assert_eq!(got, [], "a job beating every second");
    }
}

#[cfg(test)]
mod silence_tests {
    use super::*;
    use crate::schedule::Schedule;

    const S: Duration = Duration::from_secs(1);

    fn hb(seq: u64) -> Message {
        Message {
            kind: Kind::Heartbeat,
            job: "etl".into(),
            run_id: None,
            seq,
            ts_ms: 0,
            host: "h".into(),
            pid: 1,
            exit_code: None,
            text: None,
        }
    }

    #[test]
    fn a_silence_holds_back_and_then_releases_an_open_incident() {
        let t0 = Instant::now();
        let cfg = JobConfig::new("etl", Schedule::Every(S * 10), Duration::ZERO);
        let mut r = Registry::new("w", &[cfg], 4, S * 300, Arc::new(Stats::default()), t0, 0);
        r.silence("etl", Some(60_000), "db upgrade", t0, 0).unwrap();
        assert!(
            r.on_deadlines(t0 + S * 10, 10_000).is_empty(),
            "down, but silenced"
        );
        assert_eq!(
            r.views(t0 + S * 10, 10_000)[0].state,
            "down",
            "still recorded"
        );
        let released = r.on_deadlines(t0 + S * 60, 60_000);
        assert_eq!(released.len(), 1);
        assert_eq!(released[0].event, Event::Down);
        assert!(
            released[0]
                .text
                .as_ref()
                .unwrap()
                .contains("held back by a silence")
        );
        let up = r.on_message(&hb(1), t0 + S * 61, 61_000);
        assert_eq!(up[0].resolves, Some(Event::Down));
        assert_eq!(up[0].incident, released[0].incident);
    }

    #[test]
    fn an_incident_that_opens_and_closes_during_a_pause_is_never_notified() {
        let t0 = Instant::now();
        let cfg = JobConfig::new("etl", Schedule::Every(S * 10), Duration::ZERO);
        let mut r = Registry::new("w", &[cfg], 4, S * 300, Arc::new(Stats::default()), t0, 0);
        r.silence("etl", None, "maintenance", t0, 0).unwrap();
        assert!(r.on_deadlines(t0 + S * 10, 10_000).is_empty());
        assert!(
            r.on_message(&hb(1), t0 + S * 12, 12_000).is_empty(),
            "no follow-up owed"
        );
        assert!(r.unsilence("etl", 13_000).unwrap().is_empty());
        assert!(r.silence("nope", None, "", t0, 0).is_err());
    }
}
