//! `[declare]`: whether and how jobs may declare themselves, and the turn
//! of a declaration into a job, through the same checks as a `[[job]]`
//! table, so a declared job is bound by exactly the rules of a written one.

use super::check::check_job;
use super::*;
use crate::stats::DeclareRefusal;
use qcic_sdk::Expectations;

/// The `[declare]` table, checked: the watcher's owner's policy for jobs
/// that declare themselves.
#[derive(Debug, Clone, PartialEq)]
pub struct DeclareConfig {
    /// Whether declarations are taken at all.
    pub allow: bool,
    /// Name patterns (`*`, `?`, `[...]`) a declared job must match; `None`: any name.
    pub jobs: Option<Vec<glob::Pattern>>,
    /// With CURVE: the only sender keys (Z85) that may declare; `None`: any
    /// key the watcher lets in.
    pub senders: Option<HashSet<String>>,
    /// Declared jobs kept at most.
    pub max_jobs: usize,
    /// The tightest schedule a declaration may ask for.
    pub min_every: Duration,
    /// The channels of a declared job that names none; `None`: the defaults.
    pub notify: Option<Vec<String>>,
    /// A declared job overdue this long (silent past its due time) is
    /// removed, with one notice.
    pub retire_after: Duration,
    /// Whether `[curve]` is on: a declared job is pinned to the key that
    /// declared it.
    pub curve: bool,
    /// Every `[[notify]]` channel's name: a declaration may name only these.
    pub channels: Vec<String>,
    /// `[monitor] escalate`: a declared job's escalation.
    pub escalate: Vec<super::EscalationStep>,
}

impl DeclareConfig {
    /// Judges a declaration of `job` by `sender_key` against this policy
    /// and turns it into the job it asks for, or says why not.
    pub fn judge(
        &self,
        job: &str,
        expect: &Expectations,
        sender_key: Option<&str>,
    ) -> Result<JobConfig, (DeclareRefusal, String)> {
        if !self.allow {
            return Err((DeclareRefusal::Disabled, "[declare] allow is false".into()));
        }
        if let Some(patterns) = &self.jobs {
            if !patterns.iter().any(|p| p.matches(job)) {
                let list: Vec<&str> = patterns.iter().map(glob::Pattern::as_str).collect();
                return Err((
                    DeclareRefusal::Name,
                    format!("the name matches none of [declare] jobs {list:?}"),
                ));
            }
        }
        if let Some(allowed) = &self.senders {
            if !sender_key.is_some_and(|key| allowed.contains(key)) {
                return Err((
                    DeclareRefusal::Sender,
                    format!(
                        "sender key {} is not in [declare] senders",
                        sender_key.unwrap_or("(none)")
                    ),
                ));
            }
        }
        for name in &expect.notify {
            if !self.channels.contains(name) {
                return Err((
                    DeclareRefusal::Channel,
                    format!(
                        "no [[notify]] channel is named {name:?} (names: {:?})",
                        self.channels
                    ),
                ));
            }
        }
        let raw = raw_job(job, expect, self, sender_key);
        let mut cfg = check_job(raw, self.curve)
            .map_err(|(key, reason)| (DeclareRefusal::Invalid, format!("{key}: {reason}")))?;
        let tightest = tightest_gap(&cfg.schedule);
        if tightest == Duration::MAX {
            return Err((
                DeclareRefusal::Schedule,
                "its schedule comes due once at most (a date that never or no longer comes): nothing to watch".into(),
            ));
        }
        if tightest < self.min_every {
            return Err((
                DeclareRefusal::Schedule,
                format!(
                    "its schedule comes due every {} at the tightest, under [declare] min_every {}",
                    humantime::format_duration(tightest),
                    humantime::format_duration(self.min_every)
                ),
            ));
        }
        cfg.escalate.clone_from(&self.escalate);
        Ok(cfg)
    }
}

/// The `[[job]]` table a declaration stands for.
fn raw_job(
    job: &str,
    expect: &Expectations,
    policy: &DeclareConfig,
    sender_key: Option<&str>,
) -> RawJob {
    let (every, cron, timezone) = match &expect.schedule {
        qcic_sdk::Schedule::Every(every) => (Some(*every), None, None),
        qcic_sdk::Schedule::Cron { expr, timezone } => (None, Some(expr.clone()), timezone.clone()),
    };
    RawJob {
        name: job.to_owned(),
        every,
        cron,
        timezone,
        grace: expect.grace,
        max_runtime: expect.max_runtime,
        // Pinned to the key that declared it: nobody else reports for it.
        senders: policy
            .curve
            .then(|| sender_key.map(|k| vec![k.to_owned()]))
            .flatten(),
        start_within: expect.start_within,
        stall_after: expect.stall_after,
        min_runtime: expect.min_runtime,
        alert_after_failures: expect.alert_after_failures,
        recover_after_successes: expect.recover_after_successes,
        repeat: None,
        slow_after: expect.slow_after_permille.map(|p| f64::from(p) / 1000.0),
        depends_on: (!expect.depends_on.is_empty()).then(|| expect.depends_on.clone()),
        after: expect.after.clone(),
        escalate: None,
        notify: if expect.notify.is_empty() {
            policy.notify.clone()
        } else {
            Some(expect.notify.clone())
        },
    }
}

/// The shortest time between two due times of a schedule (over its next
/// hundred fire times, for cron: `0,1 * * * *` is due twice a minute apart).
pub(super) fn tightest_gap(schedule: &crate::schedule::Schedule) -> Duration {
    match schedule {
        crate::schedule::Schedule::Every(every) => *every,
        crate::schedule::Schedule::Cron { .. } => {
            let Some(mut prev) = schedule.next_fire_ms(crate::clock::wall_ms()) else {
                return Duration::MAX;
            };
            let mut tightest = u64::MAX;
            for _ in 0..100 {
                let Some(next) = schedule.next_fire_ms(prev) else {
                    break;
                };
                tightest = tightest.min(next.saturating_sub(prev));
                prev = next;
            }
            Duration::from_millis(tightest)
        }
    }
}

/// Checks `[declare]`; `curve`: whether `[curve]` is set; `channels`: the
/// `[[notify]]` names.
pub(super) fn check_declare(
    raw: Option<RawDeclare>,
    curve: bool,
    channels: Vec<String>,
) -> Result<Option<DeclareConfig>, (String, String)> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let jobs = match raw.jobs {
        None => None,
        Some(patterns) => Some(
            patterns
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    glob::Pattern::new(p).map_err(|e| {
                        (
                            format!("declare.jobs[{i}]"),
                            format!("{p:?} is not a name pattern: {e}"),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let senders = match raw.senders {
        None => None,
        Some(_) if !curve => {
            return Err((
                "declare.senders".into(),
                "names CURVE sender keys, so it needs a [curve] table".into(),
            ));
        }
        Some(keys) => Some(
            keys.iter()
                .enumerate()
                .map(|(i, key)| public_key(key).map_err(|r| (format!("declare.senders[{i}]"), r)))
                .collect::<Result<HashSet<String>, _>>()?,
        ),
    };
    if let Some(names) = &raw.notify {
        for (i, name) in names.iter().enumerate() {
            if !channels.contains(name) {
                return Err((
                    format!("declare.notify[{i}]"),
                    format!("no [[notify]] channel is named {name:?} (names: {channels:?})"),
                ));
            }
        }
    }
    let retire_after = raw.retire_after.unwrap_or(RETIRE_AFTER);
    if retire_after.is_zero() {
        return Err((
            "declare.retire_after".into(),
            "must be longer than 0s".into(),
        ));
    }
    Ok(Some(DeclareConfig {
        escalate: Vec::new(),
        allow: raw.allow.unwrap_or(false),
        jobs,
        senders,
        max_jobs: raw.max_jobs.unwrap_or(MAX_DECLARED_JOBS),
        min_every: raw.min_every.unwrap_or(MIN_EVERY),
        notify: raw.notify,
        retire_after,
        curve,
        channels,
    }))
}
