//! What people and tools see of the jobs (`status`, the page, the API,
//! `/metrics`).

use super::*;

/// A job's state as people see it: its worst open incident, else whether
/// it was ever heard from and whether a run is going. Written in JSON,
/// `/metrics` and the page by [`JobStatus::name`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Never heard from.
    Waiting,
    /// Heard from in time, no run going.
    Up,
    /// A run started and has not ended.
    Running,
    /// Not heard from in time.
    Down,
    /// Its last run (or report) failed.
    Failed,
    /// A scheduled start did not come.
    Late,
    /// A run went quiet.
    Stalled,
    /// A run took longer than `max_runtime`.
    Overrun,
    /// A run ended sooner than `min_runtime`.
    TooFast,
    /// A run going on for `slow_after` × its usual length.
    Slow,
}

impl JobStatus {
    /// Every state, so that what counts jobs by state misses none.
    pub const ALL: [JobStatus; 10] = [
        JobStatus::Waiting,
        JobStatus::Up,
        JobStatus::Running,
        JobStatus::Down,
        JobStatus::Failed,
        JobStatus::Late,
        JobStatus::Stalled,
        JobStatus::Overrun,
        JobStatus::TooFast,
        JobStatus::Slow,
    ];

    /// Its place in [`JobStatus::ALL`]. An exhaustive match: a new state
    /// must take a place here, and the test below fails until `ALL` holds
    /// it there (a state missing from `ALL` vanished from `/metrics` once).
    pub const fn index(self) -> usize {
        match self {
            JobStatus::Waiting => 0,
            JobStatus::Up => 1,
            JobStatus::Running => 2,
            JobStatus::Down => 3,
            JobStatus::Failed => 4,
            JobStatus::Late => 5,
            JobStatus::Stalled => 6,
            JobStatus::Overrun => 7,
            JobStatus::TooFast => 8,
            JobStatus::Slow => 9,
        }
    }

    /// The lower-case name (as in JSON).
    pub fn name(self) -> &'static str {
        match self {
            JobStatus::Waiting => "waiting",
            JobStatus::Up => "up",
            JobStatus::Running => "running",
            JobStatus::Down => "down",
            JobStatus::Failed => "failed",
            JobStatus::Late => "late",
            JobStatus::Stalled => "stalled",
            JobStatus::Overrun => "overrun",
            JobStatus::TooFast => "too_fast",
            JobStatus::Slow => "slow",
        }
    }

    /// The state an open incident in `slot` gives its job.
    fn of_incident(slot: Slot) -> JobStatus {
        match slot {
            Slot::Down => JobStatus::Down,
            Slot::Failed => JobStatus::Failed,
            Slot::Late => JobStatus::Late,
            Slot::TooFast => JobStatus::TooFast,
            Slot::Overrun(_) => JobStatus::Overrun,
            Slot::Stalled(_) => JobStatus::Stalled,
            Slot::Slow(_) => JobStatus::Slow,
        }
    }
}

impl std::fmt::Display for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// An open incident, as shown to people and tools.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct IncidentView {
    /// The incident id.
    pub id: String,
    /// What it is.
    pub event: Event,
    /// The run concerned, if any (16 hex digits in JSON).
    #[serde(with = "crate::notification::run_id_form")]
    pub run_id: Option<u64>,
    /// Who acknowledged it, if anyone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acked: Option<crate::notification::Ack>,
    /// While its first notification is held back: by what, since when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<Held>,
    /// Escalation steps sent so far.
    #[serde(default)]
    pub escalated: u32,
}

/// One job as the watcher sees it now.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct JobView {
    /// The job.
    pub name: String,
    /// Its state now.
    pub state: JobStatus,
    /// The schedule, as configured ("every 10s", "cron \"30 2 * * 1-5\" Europe/London").
    pub schedule: String,
    /// The time between expected messages, ms (for cron: between the next two fires).
    pub period_ms: u64,
    /// `grace`, ms.
    pub grace_ms: u64,
    /// When its last message arrived (watcher clock, unix ms).
    pub last_seen_ms: Option<u64>,
    /// The kind of its last message.
    pub last_kind: Option<String>,
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
    /// Where the job comes from: `config`, or `declared` (see `declared`).
    #[serde(default = "config_origin")]
    pub origin: String,
    /// How it declared itself, if it did: the spec, host, key and when.
    #[serde(default)]
    pub declared: Option<Declaration>,
    /// The jobs it depends on that are down or failed now: its new
    /// alarms are held back (shown under that cause).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocked_by: Vec<String>,
    /// The maintenance window over it now, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<String>,
}

/// The order people see jobs in: each job held back by a job it depends
/// on comes right under that cause (at `depth` 1, its own dependents at
/// 2, ...), every other job where it is. (index in `jobs`, depth).
pub fn under_causes(jobs: &[JobView]) -> Vec<(usize, usize)> {
    let position: HashMap<&str, usize> = jobs
        .iter()
        .enumerate()
        .map(|(i, j)| (j.name.as_str(), i))
        .collect();
    let mut under: HashMap<usize, Vec<usize>> = HashMap::new();
    let mut placed = vec![false; jobs.len()];
    for (i, job) in jobs.iter().enumerate() {
        if let Some(&cause) = job.blocked_by.iter().find_map(|c| position.get(c.as_str())) {
            under.entry(cause).or_default().push(i);
            placed[i] = true;
        }
    }
    let mut order = Vec::with_capacity(jobs.len());
    let mut shown = vec![false; jobs.len()];
    let roots: Vec<usize> = (0..jobs.len()).filter(|&i| !placed[i]).collect();
    for root in roots {
        let mut stack = vec![(root, 0)];
        while let Some((i, depth)) = stack.pop() {
            // A cycle of blocks cannot be configured, but is never followed.
            if std::mem::replace(&mut shown[i], true) {
                continue;
            }
            order.push((i, depth));
            if let Some(children) = under.get(&i) {
                stack.extend(children.iter().rev().map(|&c| (c, depth + 1)));
            }
        }
    }
    // Jobs only reachable through a cycle: shown at the end, flat.
    for (i, done) in shown.iter().enumerate() {
        if !done {
            order.push((i, 0));
        }
    }
    order
}

fn config_origin() -> String {
    "config".into()
}

impl Registry {
    /// A view of every job for people and tools (status, HTTP API).
    pub fn views(&self, now: Now) -> Vec<JobView> {
        let wall_at = |at: Instant| {
            let ahead = at.saturating_duration_since(now.at);
            now.wall_ms
                .saturating_add(u64::try_from(ahead.as_millis()).unwrap_or(u64::MAX))
        };
        let open_windows = self.open_windows(now.wall_ms);
        self.jobs
            .iter()
            .enumerate()
            .map(|(j, job)| {
                let incidents: Vec<IncidentView> = job
                    .open
                    .iter()
                    .map(|(slot, open)| IncidentView {
                        id: open.id.clone(),
                        event: slot.event(),
                        run_id: open.run_id,
                        acked: open.ack.as_deref().cloned(),
                        held: open.held.as_deref().cloned(),
                        escalated: open.escalated,
                    })
                    .collect();
                // The worst open incident names the state.
                let state = match job.open.keys().next() {
                    Some(slot) => JobStatus::of_incident(*slot),
                    None if job.last.is_none() => JobStatus::Waiting,
                    None if !job.runs.is_empty() => JobStatus::Running,
                    None => JobStatus::Up,
                };
                JobView {
                    name: job.name.to_string(),
                    state,
                    schedule: job.cfg.schedule_text(),
                    period_ms: job.cfg.schedule.period_ms(now.wall_ms),
                    grace_ms: millis(job.cfg.grace),
                    last_seen_ms: job.last.as_ref().map(|s| s.wall_ms),
                    last_kind: job.last.as_ref().map(|s| s.kind.name().to_owned()),
                    last_host: job.last.as_ref().map(|s| s.host.to_string()),
                    next_deadline_ms: job.down_at.filter(|_| !job.cfg.chained_only()).map(wall_at),
                    runs_in_progress: job.runs.len(),
                    incidents,
                    silence: job.silence.as_deref().cloned(),
                    history: job
                        .history
                        .iter()
                        .map(|(ms, entry)| (*ms, entry.text().to_owned()))
                        .collect(),
                    origin: if job.declared.is_some() {
                        "declared".into()
                    } else {
                        config_origin()
                    },
                    declared: job.declared.as_deref().cloned(),
                    blocked_by: self.blocked_all(j),
                    maintenance: self.window_among(j, &open_windows).map(|(name, _)| name),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod view_tests {
    use super::JobStatus;

    #[test]
    fn every_state_is_in_all_at_its_place() {
        let places: Vec<usize> = JobStatus::ALL.iter().map(|s| s.index()).collect();
        assert_eq!(places, (0..JobStatus::ALL.len()).collect::<Vec<_>>());
        // The largest place any state takes is the last of ALL.
        assert_eq!(JobStatus::Slow.index() + 1, JobStatus::ALL.len());
    }
}
