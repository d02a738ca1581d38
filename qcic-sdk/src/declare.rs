//! Declarations: what a job expects of itself, sent as a `declare` message
//! (`docs/PROTOCOL.md`, field 10 `expect`), so that a watcher can watch a
//! job nobody wrote into its configuration.
//!
//! Three spellings of one thing: [`JobSpec`]'s builder (Rust), the spec
//! string `every=1d grace=1h` ([`JobSpec::parse`]: C, the shell, Python's
//! keyword arguments) and the wire map. Every one is checked by
//! [`Expectations::check`], the rule the watcher applies too, so a job
//! hears of a bad declaration where it is made.

use std::fmt;
use std::time::Duration;

use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest cron expression, in bytes.
pub const MAX_CRON_LEN: usize = 128;
/// Longest time zone name, in bytes.
pub const MAX_TIMEZONE_LEN: usize = 64;
/// Most channel names a declaration may give.
pub const MAX_CHANNELS: usize = 8;
/// Longest channel name, in bytes.
pub const MAX_CHANNEL_LEN: usize = 64;
/// Largest `alert_after_failures` and `recover_after_successes`.
pub const MAX_COUNT: u32 = 1000;
/// `slow_after` in thousandths on the wire: above 1000 (a factor above
/// 1), at most this (a factor of 1000).
pub const MAX_SLOW_AFTER_PERMILLE: u32 = 1_000_000;
/// Most jobs a declaration may depend on (`depends_on`): the largest
/// declaration stays within a frame.
pub const MAX_DEPENDS: usize = 4;
/// Longest duration a declaration may give: 100 years, as in a watcher's
/// configuration.
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// When a job's messages are due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// At least one message every so long.
    Every(Duration),
    /// A run at each time of a cron expression.
    Cron {
        /// Five fields (minute hour day-of-month month day-of-week), or
        /// six with seconds first, or a shortcut such as `@daily`.
        expr: String,
        /// An IANA time zone (`Europe/London`); `None`: UTC.
        timezone: Option<String>,
    },
}

/// What a job expects of itself: a schedule and the optional limits of a
/// `[[job]]` table. Absent values take the watcher's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectations {
    /// When messages are due.
    pub schedule: Schedule,
    /// Slack after a due time before the job counts as down.
    pub grace: Option<Duration>,
    /// A scheduled run not started this long after its time is late.
    pub start_within: Option<Duration>,
    /// A run not ended this long after its start is overrunning.
    pub max_runtime: Option<Duration>,
    /// A run silent this long is stalled.
    pub stall_after: Option<Duration>,
    /// A success sooner than this after its start is too fast.
    pub min_runtime: Option<Duration>,
    /// Alarm only after this many failures or misses in a row.
    pub alert_after_failures: Option<u32>,
    /// Close an alarm only after this many successes in a row.
    pub recover_after_successes: Option<u32>,
    /// `slow` when a run lasts this factor × the median of the last
    /// successful runs, in thousandths (`3000`: three times).
    pub slow_after_permille: Option<u32>,
    /// Channel names (the watcher's `[[notify]] name`s); empty: the
    /// watcher's choice.
    pub notify: Vec<String>,
    /// Jobs whose `down` or `failed` holds this one's alarms back (at most
    /// [`MAX_DEPENDS`]).
    pub depends_on: Vec<String>,
    /// A step of a chain: a start is due `start_within` after each
    /// success of this job.
    pub after: Option<String>,
}

/// A declaration that breaks a rule: the key, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct SpecError {
    /// The key as spelled in a spec string (`every`, `cron`, ...), or
    /// `spec` for the string as a whole.
    pub key: &'static str,
    /// What is wrong.
    pub reason: String,
}

impl SpecError {
    fn new(key: &'static str, reason: impl Into<String>) -> SpecError {
        SpecError {
            key,
            reason: reason.into(),
        }
    }
}

/// The spec-string keys, in wire order; a key's wire code is its place
/// here plus one (never renumbered).
pub const KEYS: [&str; 14] = [
    "every",
    "cron",
    "timezone",
    "grace",
    "start_within",
    "max_runtime",
    "stall_after",
    "min_runtime",
    "alert_after_failures",
    "recover_after_successes",
    "notify",
    "slow_after",
    "depends_on",
    "after",
];

impl Expectations {
    /// Expectations with this schedule and nothing else set.
    pub fn new(schedule: Schedule) -> Expectations {
        Expectations {
            schedule,
            grace: None,
            start_within: None,
            max_runtime: None,
            stall_after: None,
            min_runtime: None,
            alert_after_failures: None,
            recover_after_successes: None,
            slow_after_permille: None,
            notify: Vec::new(),
            depends_on: Vec::new(),
            after: None,
        }
    }

    /// Checks every value against the protocol's rules (a watcher's policy
    /// may refuse more: a tighter schedule than it allows, an unknown
    /// channel, a cron expression or time zone it cannot read).
    pub fn check(&self) -> Result<(), SpecError> {
        match &self.schedule {
            Schedule::Every(every) => {
                if every.as_millis() == 0 {
                    return Err(SpecError::new("every", "must be at least 1ms"));
                }
                check_duration("every", *every)?;
            }
            Schedule::Cron { expr, timezone } => {
                if expr.is_empty() || expr.len() > MAX_CRON_LEN {
                    return Err(SpecError::new("cron", "must be 1 to 128 bytes"));
                }
                if !expr.bytes().all(|b| (0x20..0x7f).contains(&b)) {
                    return Err(SpecError::new(
                        "cron",
                        "may hold only printable ASCII characters",
                    ));
                }
                if let Some(tz) = timezone {
                    if tz.is_empty() || tz.len() > MAX_TIMEZONE_LEN {
                        return Err(SpecError::new("timezone", "must be 1 to 64 bytes"));
                    }
                    if !tz.bytes().all(|b| {
                        b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'+' | b'-')
                    }) {
                        return Err(SpecError::new(
                            "timezone",
                            "may hold only ASCII letters, digits, '/', '_', '+' and '-'",
                        ));
                    }
                }
            }
        }
        for (key, value) in [
            ("grace", self.grace),
            ("start_within", self.start_within),
            ("max_runtime", self.max_runtime),
            ("stall_after", self.stall_after),
            ("min_runtime", self.min_runtime),
        ] {
            if let Some(d) = value {
                check_duration(key, d)?;
            }
        }
        for (key, value) in [
            ("alert_after_failures", self.alert_after_failures),
            ("recover_after_successes", self.recover_after_successes),
        ] {
            if value.is_some_and(|n| n == 0 || n > MAX_COUNT) {
                return Err(SpecError::new(key, "must be 1 to 1000"));
            }
        }
        if self
            .slow_after_permille
            .is_some_and(|p| p <= 1000 || p > MAX_SLOW_AFTER_PERMILLE)
        {
            return Err(SpecError::new(
                "slow_after",
                "must be a factor above 1 and at most 1000, such as 3 or 2.5",
            ));
        }
        if self.notify.len() > MAX_CHANNELS {
            return Err(SpecError::new("notify", "names at most 8 channels"));
        }
        for name in &self.notify {
            if name.is_empty()
                || name.len() > MAX_CHANNEL_LEN
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            {
                return Err(SpecError::new(
                    "notify",
                    format!(
                        "{name:?}: a channel name is 1 to 64 bytes of ASCII letters, digits, '.', '_' and '-'"
                    ),
                ));
            }
        }
        if self.depends_on.len() > MAX_DEPENDS {
            return Err(SpecError::new(
                "depends_on",
                format!("names at most {MAX_DEPENDS} jobs"),
            ));
        }
        for (i, name) in self.depends_on.iter().enumerate() {
            crate::message::check_job_name(name)
                .map_err(|r| SpecError::new("depends_on", format!("{name:?} {r}")))?;
            if self.depends_on[..i].contains(name) {
                return Err(SpecError::new(
                    "depends_on",
                    format!("{name:?} is named twice"),
                ));
            }
        }
        if let Some(after) = &self.after {
            crate::message::check_job_name(after)
                .map_err(|r| SpecError::new("after", format!("{after:?} {r}")))?;
            if self.start_within.is_none() {
                return Err(SpecError::new(
                    "after",
                    "needs start_within: how soon after each success of that job a start is due",
                ));
            }
        }
        Ok(())
    }

    fn durations(&self) -> [(&'static str, Option<Duration>); 5] {
        [
            ("grace", self.grace),
            ("start_within", self.start_within),
            ("max_runtime", self.max_runtime),
            ("stall_after", self.stall_after),
            ("min_runtime", self.min_runtime),
        ]
    }
}

fn check_duration(key: &'static str, d: Duration) -> Result<(), SpecError> {
    if d > MAX_DURATION {
        return Err(SpecError::new(key, "must be at most 100 years"));
    }
    Ok(())
}

/// Whole milliseconds, as on the wire.
fn ms(d: Duration) -> Duration {
    Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A duration in the spec string's canonical form: the largest of `d`,
/// `h`, `m`, `s` and `ms` that holds it whole (`1d`, `90m`, `1500ms`).
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
    ] {
        if ms != 0 && ms % size == 0 {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

/// The spec string: `every=1d grace=1h`, keys in wire order, values
/// quoted as a POSIX shell would (`cron='30 2 * * 1-5'`), channels joined
/// by commas. [`JobSpec::parse`] reads it back to the same value.
impl fmt::Display for Expectations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Quoted only where a shell would need it: channel lists and zones
        // stay readable.
        let quote = |text: &str| -> String {
            let plain = !text.is_empty()
                && text
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"@%+:,./_-".contains(&b));
            if plain {
                return text.to_owned();
            }
            shlex::try_quote(text).map_or_else(|_| text.to_owned(), |q| q.into_owned())
        };
        let mut parts = Vec::new();
        match &self.schedule {
            Schedule::Every(every) => parts.push(format!("every={}", format_duration(*every))),
            Schedule::Cron { expr, timezone } => {
                parts.push(format!("cron={}", quote(expr)));
                if let Some(tz) = timezone {
                    parts.push(format!("timezone={}", quote(tz)));
                }
            }
        }
        for (key, value) in self.durations() {
            if let Some(d) = value {
                parts.push(format!("{key}={}", format_duration(d)));
            }
        }
        if let Some(n) = self.alert_after_failures {
            parts.push(format!("alert_after_failures={n}"));
        }
        if let Some(n) = self.recover_after_successes {
            parts.push(format!("recover_after_successes={n}"));
        }
        if !self.notify.is_empty() {
            parts.push(format!("notify={}", quote(&self.notify.join(","))));
        }
        if let Some(p) = self.slow_after_permille {
            parts.push(format!("slow_after={}", format_factor(p)));
        }
        if !self.depends_on.is_empty() {
            parts.push(format!("depends_on={}", quote(&self.depends_on.join(","))));
        }
        if let Some(after) = &self.after {
            parts.push(format!("after={}", quote(after)));
        }
        f.write_str(&parts.join(" "))
    }
}

/// A factor in thousandths as people write it: `3`, `2.5`, `1.125`.
pub fn format_factor(permille: u32) -> String {
    let whole = permille / 1000;
    let part = permille % 1000;
    if part == 0 {
        return whole.to_string();
    }
    format!("{whole}.{part:03}")
        .trim_end_matches('0')
        .to_owned()
}

/// A factor (`3`, `2.5`) in thousandths, rounded to the nearest.
fn parse_factor(key: &'static str, text: &str) -> Result<u32, SpecError> {
    let factor: f64 = text
        .parse()
        .map_err(|_| SpecError::new(key, format!("{text:?} is not a number such as 3 or 2.5")))?;
    if !factor.is_finite() || factor <= 0.0 || factor > f64::from(MAX_SLOW_AFTER_PERMILLE) / 1000.0
    {
        return Err(SpecError::new(
            key,
            "must be a factor above 1 and at most 1000, such as 3 or 2.5",
        ));
    }
    // In range: the cast cannot overflow or be negative.
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "checked range"
    )]
    Ok((factor * 1000.0).round() as u32)
}

/// A job and what it expects of itself: what [`crate::Client::declare`]
/// sends.
///
/// ```
/// use std::time::Duration;
/// use qcic_sdk::JobSpec;
///
/// let nightly = JobSpec::cron("nightly-etl", "30 2 * * 1-5", "Europe/London")
///     .grace(Duration::from_secs(3600))
///     .max_runtime(Duration::from_secs(2 * 3600));
/// assert_eq!(
///     nightly.expect.to_string(),
///     "cron='30 2 * * 1-5' timezone=Europe/London grace=1h max_runtime=2h"
/// );
/// let same = JobSpec::parse("nightly-etl", &nightly.expect.to_string())?;
/// assert_eq!(same, nightly);
/// # Ok::<(), qcic_sdk::SpecError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSpec {
    /// The job's name.
    pub job: String,
    /// What it expects.
    pub expect: Expectations,
}

impl JobSpec {
    /// A job due at least once every `period` (whole milliseconds).
    pub fn every(job: impl Into<String>, period: Duration) -> JobSpec {
        JobSpec {
            job: job.into(),
            expect: Expectations::new(Schedule::Every(ms(period))),
        }
    }

    /// A job run at the times of a cron expression in a time zone (an
    /// empty `timezone`: UTC).
    pub fn cron(
        job: impl Into<String>,
        expr: impl Into<String>,
        timezone: impl Into<String>,
    ) -> JobSpec {
        let timezone: String = timezone.into();
        JobSpec {
            job: job.into(),
            expect: Expectations::new(Schedule::Cron {
                expr: expr.into(),
                timezone: (!timezone.is_empty()).then_some(timezone),
            }),
        }
    }

    /// Slack after a due time before the job counts as down.
    pub fn grace(mut self, d: Duration) -> JobSpec {
        self.expect.grace = Some(ms(d));
        self
    }

    /// A scheduled run not started this long after its time is late.
    pub fn start_within(mut self, d: Duration) -> JobSpec {
        self.expect.start_within = Some(ms(d));
        self
    }

    /// A run not ended this long after its start is overrunning.
    pub fn max_runtime(mut self, d: Duration) -> JobSpec {
        self.expect.max_runtime = Some(ms(d));
        self
    }

    /// A run silent this long is stalled.
    pub fn stall_after(mut self, d: Duration) -> JobSpec {
        self.expect.stall_after = Some(ms(d));
        self
    }

    /// A success sooner than this after its start is too fast.
    pub fn min_runtime(mut self, d: Duration) -> JobSpec {
        self.expect.min_runtime = Some(ms(d));
        self
    }

    /// Alarm only after this many failures or misses in a row.
    pub fn alert_after_failures(mut self, n: u32) -> JobSpec {
        self.expect.alert_after_failures = Some(n);
        self
    }

    /// Close an alarm only after this many successes in a row.
    pub fn recover_after_successes(mut self, n: u32) -> JobSpec {
        self.expect.recover_after_successes = Some(n);
        self
    }

    /// `slow` when a run lasts `factor` × the median of the job's last
    /// successful runs (above 1, at most 1000; kept to thousandths).
    pub fn slow_after(mut self, factor: f64) -> JobSpec {
        // Out of range, it is kept as 0, which the declaration's check
        // refuses with the key named, as a spec string's would be.
        self.expect.slow_after_permille =
            Some(parse_factor("slow_after", &factor.to_string()).unwrap_or(0));
        self
    }

    /// Jobs whose `down` or `failed` holds this job's alarms back (the
    /// watcher notifies their cause, not each dependent).
    pub fn depends_on<I, S>(mut self, jobs: I) -> JobSpec
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.expect.depends_on = jobs.into_iter().map(Into::into).collect();
        self
    }

    /// A step of a chain: a start is due `start_within` after each success
    /// of `job` (set `start_within` too).
    pub fn after(mut self, job: impl Into<String>) -> JobSpec {
        self.expect.after = Some(job.into());
        self
    }

    /// The watcher's channels (by name) this job's notifications go to.
    pub fn notify<I, S>(mut self, channels: I) -> JobSpec
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.expect.notify = channels.into_iter().map(Into::into).collect();
        self
    }

    /// Reads a spec string: `key=value` pairs split as a POSIX shell
    /// would (so `cron='30 2 * * 1-5'` is one pair), durations as people
    /// write them (`90s`, `1h30m`, `1d`), channels joined by commas. The
    /// keys are [`KEYS`]; exactly one of `every` and `cron` is required.
    pub fn parse(job: impl Into<String>, spec: &str) -> Result<JobSpec, SpecError> {
        let words = shlex::split(spec)
            .ok_or_else(|| SpecError::new("spec", "has an unclosed quote or a trailing '\\'"))?;
        let mut pairs = Vec::with_capacity(words.len());
        for word in &words {
            let (key, value) = word.split_once('=').ok_or_else(|| {
                SpecError::new("spec", format!("{word:?} is not a key=value pair"))
            })?;
            pairs.push((key, value));
        }
        JobSpec::from_pairs(job, &pairs)
    }

    /// Like [`JobSpec::parse`], from pairs already apart (keyword
    /// arguments, command-line options): values as in a spec string.
    pub fn from_pairs(
        job: impl Into<String>,
        pairs: &[(&str, &str)],
    ) -> Result<JobSpec, SpecError> {
        let mut values: [Option<String>; KEYS.len()] = Default::default();
        for &(key, value) in pairs {
            let Some(i) = KEYS.iter().position(|k| *k == key) else {
                return Err(SpecError::new(
                    "spec",
                    format!(
                        "{key:?} is not a declaration key (keys: {})",
                        KEYS.join(", ")
                    ),
                ));
            };
            if values[i].replace(value.to_owned()).is_some() {
                return Err(SpecError::new(KEYS[i], "is given twice"));
            }
        }
        let [
            every,
            cron,
            timezone,
            grace,
            start_within,
            max_runtime,
            stall_after,
            min_runtime,
            alert_after_failures,
            recover_after_successes,
            notify,
            slow_after,
            depends_on,
            after,
        ] = values;
        let duration = |key: &'static str, text: Option<String>| {
            text.map(|t| {
                humantime::parse_duration(&t)
                    .map(ms)
                    .map_err(|e| SpecError::new(key, format!("{t:?} is not a duration: {e}")))
            })
            .transpose()
        };
        let count = |key: &'static str, text: Option<String>| {
            text.map(|t| {
                t.parse::<u32>()
                    .map_err(|_| SpecError::new(key, format!("{t:?} is not a whole number")))
            })
            .transpose()
        };
        let schedule = match (duration("every", every)?, cron) {
            (Some(every), None) => {
                if timezone.is_some() {
                    return Err(SpecError::new("timezone", "applies to cron schedules only"));
                }
                Schedule::Every(every)
            }
            (None, Some(expr)) => Schedule::Cron { expr, timezone },
            (Some(_), Some(_)) => {
                return Err(SpecError::new("cron", "give every or cron, not both"));
            }
            (None, None) => {
                return Err(SpecError::new(
                    "spec",
                    "needs a schedule: every=10m or cron='30 2 * * *'",
                ));
            }
        };
        let expect = Expectations {
            schedule,
            grace: duration("grace", grace)?,
            start_within: duration("start_within", start_within)?,
            max_runtime: duration("max_runtime", max_runtime)?,
            stall_after: duration("stall_after", stall_after)?,
            min_runtime: duration("min_runtime", min_runtime)?,
            alert_after_failures: count("alert_after_failures", alert_after_failures)?,
            recover_after_successes: count("recover_after_successes", recover_after_successes)?,
            slow_after_permille: slow_after
                .map(|t| parse_factor("slow_after", &t))
                .transpose()?,
            notify: notify
                .map(|n| n.split(',').map(str::to_owned).collect())
                .unwrap_or_default(),
            depends_on: depends_on
                .map(|n| n.split(',').map(str::to_owned).collect())
                .unwrap_or_default(),
            after,
        };
        expect.check()?;
        Ok(JobSpec {
            job: job.into(),
            expect,
        })
    }
}

fn as_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The wire form: a map from key codes to values, ascending, absent keys
/// left out (`docs/PROTOCOL.md`).
impl Serialize for Expectations {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        match &self.schedule {
            Schedule::Every(every) => map.serialize_entry(&1u8, &as_ms(*every))?,
            Schedule::Cron { expr, timezone } => {
                map.serialize_entry(&2u8, expr)?;
                if let Some(tz) = timezone {
                    map.serialize_entry(&3u8, tz)?;
                }
            }
        }
        for (code, (_, value)) in (4u8..).zip(self.durations()) {
            if let Some(d) = value {
                map.serialize_entry(&code, &as_ms(d))?;
            }
        }
        if let Some(n) = self.alert_after_failures {
            map.serialize_entry(&9u8, &n)?;
        }
        if let Some(n) = self.recover_after_successes {
            map.serialize_entry(&10u8, &n)?;
        }
        if !self.notify.is_empty() {
            map.serialize_entry(&11u8, &self.notify)?;
        }
        if let Some(p) = self.slow_after_permille {
            map.serialize_entry(&12u8, &p)?;
        }
        if !self.depends_on.is_empty() {
            map.serialize_entry(&13u8, &self.depends_on)?;
        }
        if let Some(after) = &self.after {
            map.serialize_entry(&14u8, after)?;
        }
        map.end()
    }
}

/// The wire map as read: values typed, nothing checked yet.
#[derive(Debug, Default)]
pub(crate) struct RawExpectations {
    every: Option<u64>,
    cron: Option<String>,
    timezone: Option<String>,
    durations: [Option<u64>; 5],
    alert_after_failures: Option<u32>,
    recover_after_successes: Option<u32>,
    notify: Option<Vec<String>>,
    slow_after_permille: Option<u32>,
    depends_on: Option<Vec<String>>,
    after: Option<String>,
}

impl RawExpectations {
    /// The expectations, checked.
    pub(crate) fn check(self) -> Result<Expectations, SpecError> {
        let schedule = match (self.every, self.cron) {
            (Some(every), None) => {
                if self.timezone.is_some() {
                    return Err(SpecError::new("timezone", "applies to cron schedules only"));
                }
                Schedule::Every(Duration::from_millis(every))
            }
            (None, Some(expr)) => Schedule::Cron {
                expr,
                timezone: self.timezone,
            },
            (Some(_), Some(_)) => {
                return Err(SpecError::new("cron", "give every or cron, not both"));
            }
            (None, None) => {
                return Err(SpecError::new(
                    "every",
                    "a schedule (every or cron) is required",
                ));
            }
        };
        let [grace, start_within, max_runtime, stall_after, min_runtime] =
            self.durations.map(|d| d.map(Duration::from_millis));
        let expect = Expectations {
            schedule,
            grace,
            start_within,
            max_runtime,
            stall_after,
            min_runtime,
            alert_after_failures: self.alert_after_failures,
            recover_after_successes: self.recover_after_successes,
            slow_after_permille: self.slow_after_permille,
            notify: self.notify.unwrap_or_default(),
            depends_on: self.depends_on.unwrap_or_default(),
            after: self.after,
        };
        expect.check()?;
        Ok(expect)
    }
}

impl<'de> Deserialize<'de> for RawExpectations {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(RawVisitor)
    }
}

struct RawVisitor;

fn once<'de, A: MapAccess<'de>, T: Deserialize<'de>>(
    map: &mut A,
    slot: &mut Option<T>,
    code: u64,
) -> Result<(), A::Error> {
    let value = map.next_value()?;
    if slot.replace(value).is_some() {
        return Err(de::Error::custom(format!("expect key {code} given twice")));
    }
    Ok(())
}

impl<'de> Visitor<'de> for RawVisitor {
    type Value = RawExpectations;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of declaration keys")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawExpectations, A::Error> {
        let mut raw = RawExpectations::default();
        while let Some(code) = map.next_key::<u64>()? {
            match code {
                1 => once(&mut map, &mut raw.every, code)?,
                2 => once(&mut map, &mut raw.cron, code)?,
                3 => once(&mut map, &mut raw.timezone, code)?,
                4..=8 => {
                    let i = usize::try_from(code - 4).unwrap_or(0);
                    once(&mut map, &mut raw.durations[i], code)?;
                }
                9 => once(&mut map, &mut raw.alert_after_failures, code)?,
                10 => once(&mut map, &mut raw.recover_after_successes, code)?,
                11 => once(&mut map, &mut raw.notify, code)?,
                12 => once(&mut map, &mut raw.slow_after_permille, code)?,
                13 => once(&mut map, &mut raw.depends_on, code)?,
                14 => once(&mut map, &mut raw.after, code)?,
                // A later revision's key: skipped, as trailing fields are.
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependencies_and_chains_are_checked_and_read_back() {
        let spec = JobSpec::every("j", Duration::from_secs(3600))
            .start_within(Duration::from_secs(60))
            .depends_on(["db", "extract"])
            .after("extract");
        let text = spec.expect.to_string();
        assert_eq!(
            text,
            "every=1h start_within=1m depends_on=db,extract after=extract"
        );
        assert_eq!(JobSpec::parse("j", &text).unwrap(), spec);
        for (text, key) in [
            ("every=1h depends_on=a,b,c,d,e", "depends_on"),
            ("every=1h depends_on=a,a", "depends_on"),
            ("every=1h depends_on='a b'", "depends_on"),
            ("every=1h after=a", "after"),
            ("every=1h start_within=1m after=", "after"),
        ] {
            assert_eq!(JobSpec::parse("j", text).unwrap_err().key, key, "{text}");
        }
    }

    #[test]
    fn slow_after_is_a_factor_in_thousandths() {
        let spec = JobSpec::every("j", Duration::from_secs(3600)).slow_after(2.5);
        assert_eq!(spec.expect.slow_after_permille, Some(2500));
        assert_eq!(spec.expect.to_string(), "every=1h slow_after=2.5");
        assert_eq!(format_factor(3000), "3");
        assert_eq!(format_factor(1125), "1.125");
        // Out of range from the builder: refused when checked, key named.
        let bad = JobSpec::every("j", Duration::from_secs(3600)).slow_after(0.5);
        assert_eq!(bad.expect.check().unwrap_err().key, "slow_after");
    }

    #[test]
    fn spec_strings_round_trip() {
        for text in [
            "every=10m",
            "every=1d grace=1h max_runtime=2h",
            "cron='30 2 * * 1-5' timezone=Europe/London grace=15m start_within=5m",
            "cron=@daily stall_after=90s min_runtime=1500ms alert_after_failures=3 recover_after_successes=2 notify=ops-mail,pager",
            "every=1h slow_after=3",
            "every=1h max_runtime=4h slow_after=2.5",
            "every=1h slow_after=1.125",
        ] {
            let spec = JobSpec::parse("j", text).unwrap();
            assert_eq!(spec.expect.to_string(), text);
        }
    }

    #[test]
    fn bad_specs_name_their_key() {
        for (text, key) in [
            ("", "spec"),
            ("every=10m cron=@daily", "cron"),
            ("every=ten", "every"),
            ("every=0s", "every"),
            ("every=10m grace=200years", "grace"),
            ("every=10m timezone=UTC", "timezone"),
            ("every=10m slow_after=1", "slow_after"),
            ("every=10m slow_after=0.5", "slow_after"),
            ("every=10m slow_after=lots", "slow_after"),
            ("every=10m slow_after=1001", "slow_after"),
            ("every=10m slow_after=nan", "slow_after"),
            ("cron='1 2 3", "spec"),
            ("every=10m sometimes=1", "spec"),
            ("every=10m every=5m", "every"),
            ("every=10m alert_after_failures=0", "alert_after_failures"),
            (
                "every=10m recover_after_successes=x",
                "recover_after_successes",
            ),
            ("every=10m notify=a,,b", "notify"),
            ("cron=@daily timezone='Europe/London;rm'", "timezone"),
            ("cron='30 2 * * *\n'", "cron"),
        ] {
            let err = JobSpec::parse("j", text).unwrap_err();
            assert_eq!(err.key, key, "{text:?}: {err}");
        }
    }

    #[test]
    fn durations_have_one_canonical_spelling() {
        for (ms, text) in [
            (86_400_000, "1d"),
            (5_400_000, "90m"),
            (3_600_000, "1h"),
            (1_500, "1500ms"),
            (0, "0ms"),
        ] {
            assert_eq!(format_duration(Duration::from_millis(ms)), text);
        }
    }
}
