//! What keeps alarms few and true: job dependencies and chains, recurring
//! maintenance windows, escalation steps, and the HTTP API's tokens.

use super::*;

/// One escalation step: `after` an incident opened (and while it stays
/// open and unacknowledged), it goes to the `notify` channels too, once.
#[derive(Debug, Clone, PartialEq)]
pub struct EscalationStep {
    /// How long after the first notification.
    pub after: Duration,
    /// The channels it goes to then (`[[notify]] name`s).
    pub notify: Vec<String>,
}

/// A recurring `[[maintenance]]` window.
#[derive(Debug, Clone, PartialEq)]
pub struct MaintenanceWindow {
    /// Its name, in notifications (`held_by`).
    pub name: String,
    /// When it opens: a cron pattern in a time zone.
    pub opens: Schedule,
    /// How long it stays open.
    pub duration: Duration,
    /// Name patterns of the jobs it covers; `None`: every job.
    pub jobs: Option<Vec<glob::Pattern>>,
}

impl MaintenanceWindow {
    /// Whether it covers `job`.
    pub fn covers(&self, job: &str) -> bool {
        self.jobs
            .as_ref()
            .is_none_or(|patterns| patterns.iter().any(|p| p.matches(job)))
    }

    /// If it is open at `wall_ms`: when it closes (unix ms). Open from each
    /// opening `t` until `t + duration`, excluded.
    pub fn open_until(&self, wall_ms: u64) -> Option<u64> {
        let span = u64::try_from(self.duration.as_millis()).unwrap_or(u64::MAX);
        let opened = self
            .opens
            .next_fire_ms(wall_ms.saturating_sub(span))
            .filter(|t| *t <= wall_ms)?;
        Some(opened.saturating_add(span))
    }
}

/// What an HTTP token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Read the API, the page and the metrics.
    Read,
    /// Read, and change things: acknowledge, silence, pause, forget.
    Write,
}

/// One of `[http] tokens`, read from its file or variable at load.
#[derive(Clone, PartialEq)]
pub struct ApiToken {
    /// Who holds it (in logs; the token never is).
    pub name: String,
    /// The secret.
    pub secret: Vec<u8>,
    /// What it may do.
    pub scope: Scope,
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiToken")
            .field("name", &self.name)
            .field("secret", &"<secret>")
            .field("scope", &self.scope)
            .finish()
    }
}

/// Shortest token taken: a guessable one would make the API's guard a formality.
pub const MIN_TOKEN_LEN: usize = 16;

/// `[http] tokens`.
pub(super) fn check_tokens(raw: Vec<RawToken>) -> Result<Vec<ApiToken>, (String, String)> {
    let mut tokens: Vec<ApiToken> = Vec::with_capacity(raw.len());
    for (i, t) in raw.into_iter().enumerate() {
        let key = |k: &str| format!("http.tokens[{i}].{k}");
        if t.name.trim().is_empty() {
            return Err((key("name"), "must not be empty".into()));
        }
        if tokens.iter().any(|o| o.name == t.name) {
            return Err((key("name"), format!("{:?} is given twice", t.name)));
        }
        let scope = match t.scope.as_str() {
            "read" => Scope::Read,
            "write" => Scope::Write,
            other => {
                return Err((
                    key("scope"),
                    format!("{other:?} is not \"read\" or \"write\""),
                ));
            }
        };
        let secret = match (&t.token_file, &t.token_env) {
            (Some(path), None) => std::fs::read_to_string(path)
                .map_err(|e| (key("token_file"), format!("{}: {e}", path.display())))?,
            (None, Some(var)) => std::env::var(var).map_err(|_| {
                (
                    key("token_env"),
                    format!("the environment variable {var} is not set (or not UTF-8)"),
                )
            })?,
            _ => {
                return Err((
                    key("token_file"),
                    "give token_file or token_env (exactly one)".into(),
                ));
            }
        };
        let secret = secret.trim().as_bytes().to_vec();
        if secret.len() < MIN_TOKEN_LEN {
            let which = if t.token_file.is_some() {
                "token_file"
            } else {
                "token_env"
            };
            return Err((
                key(which),
                format!(
                    "the token is {} characters long; at least {MIN_TOKEN_LEN} are needed (e.g. openssl rand -hex 32)",
                    secret.len()
                ),
            ));
        }
        if tokens.iter().any(|o| o.secret == secret) {
            return Err((key("name"), "has the same token as another entry".into()));
        }
        tokens.push(ApiToken {
            name: t.name,
            secret,
            scope,
        });
    }
    Ok(tokens)
}

/// `escalate` (of a job, or `[monitor]`'s default); `at`: its key path.
pub(super) fn check_escalation(
    raw: Vec<RawEscalation>,
    at: &str,
) -> Result<Vec<EscalationStep>, (String, String)> {
    let mut steps: Vec<EscalationStep> = Vec::with_capacity(raw.len());
    for (i, step) in raw.into_iter().enumerate() {
        if step.after.is_zero() {
            return Err((format!("{at}[{i}].after"), "must be longer than 0s".into()));
        }
        if steps.last().is_some_and(|s| s.after >= step.after) {
            return Err((
                format!("{at}[{i}].after"),
                "must be later than the step before it (steps are in order)".into(),
            ));
        }
        if step.notify.is_empty() {
            return Err((
                format!("{at}[{i}].notify"),
                "needs at least one channel name".into(),
            ));
        }
        steps.push(EscalationStep {
            after: step.after,
            notify: step.notify,
        });
    }
    Ok(steps)
}

/// `[[maintenance]]`.
pub(super) fn check_maintenance(
    raw: Vec<RawMaintenance>,
) -> Result<Vec<MaintenanceWindow>, (String, String)> {
    let mut windows: Vec<MaintenanceWindow> = Vec::with_capacity(raw.len());
    for (i, w) in raw.into_iter().enumerate() {
        let key = |k: &str| format!("maintenance[{i}].{k}");
        if w.name.trim().is_empty() {
            return Err((key("name"), "must not be empty".into()));
        }
        if windows.iter().any(|o| o.name == w.name) {
            return Err((key("name"), format!("{:?} is defined twice", w.name)));
        }
        let opens = Schedule::cron(&w.cron, w.timezone.as_deref().unwrap_or(TIMEZONE))
            .map_err(|(k, reason)| (key(k), reason))?;
        if w.duration.is_zero() {
            return Err((key("duration"), "must be longer than 0s".into()));
        }
        // Overlapping openings would make one window of unclear end.
        let gap = super::declare::tightest_gap(&opens);
        if w.duration > gap {
            return Err((
                key("duration"),
                format!(
                    "{} is longer than the time between two openings ({}): the windows would overlap",
                    humantime::format_duration(w.duration),
                    humantime::format_duration(gap)
                ),
            ));
        }
        let jobs = match w.jobs {
            None => None,
            Some(list) => Some(
                list.iter()
                    .enumerate()
                    .map(|(k, p)| {
                        glob::Pattern::new(p).map_err(|e| {
                            (
                                format!("maintenance[{i}].jobs[{k}]"),
                                format!("{p:?} is not a name pattern: {e}"),
                            )
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        windows.push(MaintenanceWindow {
            name: w.name,
            opens,
            duration: w.duration,
            jobs,
        });
    }
    Ok(windows)
}

/// Whether adding `job`'s `depends_on` to the jobs `known` makes a cycle;
/// the cycle as `a -> b -> a` if so. `depends` gives any job's parents.
pub fn dependency_cycle<'a>(
    job: &'a str,
    parents: &'a [String],
    depends: &dyn Fn(&str) -> Option<Vec<String>>,
) -> Option<String> {
    // Depth-first from the job's parents: reaching the job again is a cycle.
    let mut stack: Vec<(String, Vec<String>)> = parents
        .iter()
        .map(|p| (p.clone(), vec![job.to_owned(), p.clone()]))
        .collect();
    let mut seen = HashSet::new();
    while let Some((name, path)) = stack.pop() {
        if name == job {
            return Some(path.join(" -> "));
        }
        if !seen.insert(name.clone()) {
            continue;
        }
        for parent in depends(&name).unwrap_or_default() {
            let mut next = path.clone();
            next.push(parent.clone());
            stack.push((parent, next));
        }
    }
    None
}

/// `depends_on`, `after` and `escalate` across the jobs: names exist, no
/// job depends on itself, no cycle; escalation channels exist.
pub(super) fn check_links(jobs: &[JobConfig], channels: &[String]) -> Result<(), (String, String)> {
    let by_name: std::collections::HashMap<&str, &JobConfig> =
        jobs.iter().map(|j| (j.name.as_str(), j)).collect();
    let depends = |name: &str| by_name.get(name).map(|j| j.depends_on.clone());
    for (i, job) in jobs.iter().enumerate() {
        for (k, parent) in job.depends_on.iter().enumerate() {
            if !by_name.contains_key(parent.as_str()) {
                return Err((
                    format!("job[{i}].depends_on[{k}]"),
                    format!("no [[job]] is named {parent:?}"),
                ));
            }
        }
        if let Some(cycle) = dependency_cycle(&job.name, &job.depends_on, &depends) {
            return Err((
                format!("job[{i}].depends_on"),
                format!("makes a cycle: {cycle}"),
            ));
        }
        if let Some(after) = &job.after {
            if !by_name.contains_key(after.as_str()) {
                return Err((
                    format!("job[{i}].after"),
                    format!("no [[job]] is named {after:?}"),
                ));
            }
        }
        check_step_channels(&job.escalate, channels, &format!("job[{i}].escalate"))?;
    }
    Ok(())
}

/// Every channel an escalation names exists.
pub(super) fn check_step_channels(
    steps: &[EscalationStep],
    channels: &[String],
    at: &str,
) -> Result<(), (String, String)> {
    for (s, step) in steps.iter().enumerate() {
        for (k, name) in step.notify.iter().enumerate() {
            if !channels.contains(name) {
                return Err((
                    format!("{at}[{s}].notify[{k}]"),
                    format!("no [[notify]] channel is named {name:?} (names: {channels:?})"),
                ));
            }
        }
    }
    Ok(())
}
