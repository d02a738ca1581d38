//! Messages for jobs nobody configured or declared: counted, and with
//! `[monitor] unknown_jobs = "alert"` one `unknown_job` notification per
//! new name (rate-limited, bounded by `max_unknown_jobs`), closed by a
//! `recovered` when the name becomes known. A job reporting into the void
//! is noticed, not silently dropped.

use super::*;
use crate::config::UnknownJobs;

/// `unknown_job` notifications at most per minute (a burst as large); past
/// it new names are counted and logged, not alerted.
const ALERTS_PER_MINUTE: u32 = 10;

/// The unknown names and their open incidents.
#[derive(Debug)]
pub(super) struct Unknown {
    /// Names remembered (at most `max_unknown_jobs`), with the incident
    /// alerted for each, if one was.
    pub(super) names: HashMap<String, Option<(Arc<str>, u64)>>,
    pub(super) policy: UnknownJobs,
    /// Alerts left in this minute, and when it began (unix ms).
    budget: (u32, u64),
}

impl Unknown {
    pub(super) fn new(policy: UnknownJobs) -> Unknown {
        Unknown {
            names: HashMap::new(),
            policy,
            budget: (ALERTS_PER_MINUTE, 0),
        }
    }

    fn spend(&mut self, wall_ms: u64) -> bool {
        if wall_ms.saturating_sub(self.budget.1) >= 60_000 {
            self.budget = (ALERTS_PER_MINUTE, wall_ms);
        }
        if self.budget.0 == 0 {
            return false;
        }
        self.budget.0 -= 1;
        true
    }
}

impl Registry {
    /// Sets what a message for an unknown job does.
    pub fn set_unknown_jobs(&mut self, policy: UnknownJobs) {
        self.unknown.policy = policy;
    }

    pub(super) fn unknown_job(&mut self, msg: &Message, now: Now) -> Vec<Notification> {
        let total = self
            .stats
            .unknown_job_messages
            .fetch_add(1, Ordering::Relaxed)
            + 1;
        if self.unknown.names.contains_key(&msg.job) {
            return Vec::new();
        }
        if self.unknown.names.len() >= self.max_unknown {
            if total.is_power_of_two() {
                // Past the cap names are no longer remembered; log at 1, 2,
                // 4, ... messages so a flood costs a few lines, not one per
                // message.
                warn!(job = %msg.job, unknown_job_messages = total, "messages for unknown jobs keep arriving; names past the cap are not remembered");
            }
            return Vec::new();
        }
        if self.unknown.policy == UnknownJobs::Count {
            self.stats.unknown_job_names.fetch_add(1, Ordering::Relaxed);
            warn!(job = %msg.job, host = %msg.host, kind = %msg.kind, "message for a job neither configured nor declared; counted and ignored");
            self.unknown.names.insert(msg.job.clone(), None);
            return Vec::new();
        }
        if !self.unknown.spend(now.wall_ms) {
            // Not remembered: the name alerts once the budget allows, so
            // a flood of made-up names cannot hide a real one for good.
            let held = self
                .stats
                .unknown_job_alerts_held
                .fetch_add(1, Ordering::Relaxed)
                + 1;
            if held.is_power_of_two() {
                warn!(job = %msg.job, unknown_job_alerts_held = held, "more new unknown jobs than 10 alerts a minute; this one alerts when there is room");
            }
            return Vec::new();
        }
        self.stats.unknown_job_names.fetch_add(1, Ordering::Relaxed);
        warn!(job = %msg.job, host = %msg.host, kind = %msg.kind, "message for a job neither configured nor declared; alerting once");
        // Named by the message that found it unknown: every watcher that
        // heard it names it alike, and a job unknown again later (declared,
        // then forgotten) is a new incident, not a repeat of the closed one.
        let basis = format!("unknown:{}", msg_basis(msg));
        let id: Arc<str> = Arc::from(incident_id(&msg.job, Event::UnknownJob, &basis).as_str());
        let mut note = Notification::new(
            Event::UnknownJob,
            Arc::from(msg.job.as_str()),
            Arc::clone(&id),
            Arc::clone(&self.watcher),
            now.wall_ms,
        );
        note.last_seen_ms = Some(now.wall_ms);
        note.host = Some(Arc::from(msg.host.as_str()));
        note.text = Some(format!(
            "{} from {} for a job this watcher neither has in its configuration nor was declared: nobody watches it",
            msg.kind, msg.host
        ));
        self.unknown
            .names
            .insert(msg.job.clone(), Some((id, now.wall_ms)));
        self.stats
            .unknown_job_alerts
            .fetch_add(1, Ordering::Relaxed);
        vec![note]
    }

    /// `job` is watched now (declared, or configured by a reload): the
    /// follow-up of its `unknown_job` alert, if it had one.
    pub(super) fn became_known(&mut self, job: &str, now: Now, out: &mut Vec<Notification>) {
        let Some(alerted) = self.unknown.names.remove(job) else {
            return;
        };
        let Some((id, since_ms)) = alerted else {
            return;
        };
        let mut note = Notification::new(
            Event::Recovered,
            Arc::from(job),
            id,
            Arc::clone(&self.watcher),
            now.wall_ms,
        );
        note.resolves = Some(Event::UnknownJob);
        note.duration_ms = Some(now.wall_ms.saturating_sub(since_ms));
        note.text = Some("the job is watched now".into());
        out.push(note);
    }
}
