//! The watcher's TOML configuration: parsing, defaults and checks.
//!
//! Every error names the file, the key (as a path such as `job[1].every`) and
//! the reason, and the monitor refuses to start on it.

use crate::keys::{public_key, read_key_file};
use crate::schedule::Schedule;
use serde::{Deserialize, Deserializer};
use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod check;
mod declare;
pub mod defaults;
mod describe;
mod noise;
mod notify;
mod paths;
mod raw;
pub mod starter;

use defaults::*;
use raw::*;

pub use declare::DeclareConfig;
pub use defaults::DEFAULT_LISTEN;
pub use describe::describe;
pub use noise::{ApiToken, EscalationStep, MaintenanceWindow, Scope, dependency_cycle};
pub use notify::{
    AlertmanagerConfig, CommandConfig, DiscordConfig, EmailConfig, GroupWait, Grouping,
    MatrixConfig, NotifyConfig, NtfyConfig, OpsgenieConfig, PagerDutyConfig, PushoverConfig, Route,
    SlackConfig, TeamsConfig, TelegramConfig, TemplateKeys, WebhookConfig, ZmqConfig, redacted_url,
};
pub use paths::{default_control_path, default_state_path, private_tmp_dir};
/// The configuration the monitor runs on when no `--config` is given: the
/// README's example, so the newcomer's first run and the docs agree.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../../examples/monitor.toml");
/// The name shown for the embedded configuration in errors and logs.
pub const EMBEDDED_NAME: &str = "<embedded examples/monitor.toml>";
/// A configuration error: which file, which key, and why.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {key}: {reason}")]
pub struct ConfigError {
    /// The file (or [`EMBEDDED_NAME`]).
    pub file: String,
    /// The key path, such as `job[0].every`, or `(file)`.
    pub key: String,
    /// What is wrong.
    pub reason: String,
}
/// A checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it came from.
    pub source: String,
    /// The file it was read from (`None`: embedded or parsed text); SIGHUP
    /// reads it again.
    pub path: Option<PathBuf>,
    /// This watcher.
    pub monitor: MonitorConfig,
    /// The jobs it expects messages from.
    pub jobs: Vec<JobConfig>,
    /// Where notifications go (besides the log, which always gets them).
    pub notify: Vec<NotifyConfig>,
    /// Whether and how jobs may declare themselves (`[declare]`).
    pub declare: Option<DeclareConfig>,
    /// Recurring maintenance windows (`[[maintenance]]`).
    pub maintenance: Vec<MaintenanceWindow>,
}

/// What a message for a job nobody configured or declared does
/// (`[monitor] unknown_jobs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownJobs {
    /// Counted (and its name logged, up to `max_unknown_jobs`).
    Count,
    /// Counted, and one `unknown_job` notification per new name (rate-limited).
    Alert,
}
/// The `[monitor]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct MonitorConfig {
    /// Names this watcher in every notification.
    pub id: String,
    /// ZeroMQ endpoints the PULL socket binds.
    pub listen: Vec<String>,
    /// Distinct unknown job names remembered for the log; beyond it they are only counted.
    pub max_unknown_jobs: usize,
    /// Messages per second of one job from one sender (burst the same); 0: no limit.
    pub max_rate_per_sender: u32,
    /// Connections to the ingest port at once; None: what the descriptor
    /// limit leaves after the reserve, at most 4 096.
    pub max_connections: Option<usize>,
    /// Connections from one address at once.
    pub max_connections_per_address: usize,
    /// How often each ingest connection is pinged (ZMTP PING); one that
    /// does not answer within the same time is closed. Zero: never.
    pub sender_ping: Duration,
    /// A sender whose clock is off by more than this is reported.
    pub max_clock_skew: Duration,
    /// What a message for an unknown job does: counted, or an alert too
    /// (the default when `[declare]` is absent).
    pub unknown_jobs: UnknownJobs,
    /// CURVE encryption and authentication, if configured.
    pub curve: Option<CurveConfig>,
    /// The local control socket (`qcic-monitor status` talks to it).
    pub control: PathBuf,
    /// The HTTP endpoint (API, metrics, status page), if configured.
    pub http: Option<std::net::SocketAddr>,
    /// Where people reach the status page (`[http] public_url`), for links
    /// in notifications.
    pub public_url: Option<String>,
    /// The most jobs with per-job series in `/metrics`.
    pub metrics_jobs: usize,
    /// `qcic_run_duration_seconds`'s bucket bounds, seconds, rising.
    pub run_duration_buckets: Vec<f64>,
    /// The state database (`state = "off"`: none).
    pub state: Option<PathBuf>,
    /// How long runs stay in the history (`None`: by count only).
    pub history: Option<Duration>,
    /// How many runs of each job the history keeps.
    pub history_runs: usize,
    /// The watcher farm this watcher belongs to (`[farm]` and `[[peer]]`), if any.
    pub farm: Option<FarmConfig>,
    /// `[http] tokens`: none means the HTTP API is read-only and open.
    pub tokens: Vec<ApiToken>,
    /// `[http] metrics_public`: `/metrics` needs no token.
    pub metrics_public: bool,
}
/// The `[farm]` table and the `[[peer]]` entries, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct FarmConfig {
    /// The UDP address the gossip binds.
    pub gossip: std::net::SocketAddr,
    /// The address peers reach this watcher's gossip at (NAT, proxies);
    /// `gossip` if not given.
    pub advertise: std::net::SocketAddr,
    /// The other watchers.
    pub peers: Vec<PeerConfig>,
    /// How often gossip runs.
    pub gossip_interval: Duration,
    /// Rank k waits k × this before it notifies (if the higher ranks are alive).
    pub peer_timeout: Duration,
    /// A peer not heard from for this long is taken for dead (an upper
    /// bound: chitchat measured ~0.6 × this with two watchers).
    pub dead_after: Duration,
    /// With no peer reachable, this many jobs falling silent at once (and
    /// at least half of them) make one `watcher_isolated` notice instead of
    /// a storm of per-job alerts.
    pub isolation_jobs: usize,
    /// Farms sharing a network keep apart by this name.
    pub cluster: String,
    /// The farm's shared key: gossip is sealed with it (`farm::sealed`).
    /// `None`: gossip in the clear, with a warning at start.
    pub key: Option<FarmKey>,
}

/// A farm's shared gossip key (32 bytes), never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct FarmKey(pub [u8; 32]);

impl fmt::Debug for FarmKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FarmKey(..)")
    }
}
/// One `[[peer]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerConfig {
    /// Its `[monitor] id`.
    pub id: String,
    /// Its gossip address, `host:port`.
    pub gossip: String,
}
/// The `[curve]` table, checked: the watcher's secret key and the senders it allows.
#[derive(Clone, PartialEq)]
pub struct CurveConfig {
    /// The watcher's CURVE secret key.
    pub secret_key: [u8; 32],
    /// Sender public keys (Z85) allowed to connect; `None`: any sender that
    /// knows the watcher's public key.
    pub allowed_senders: Option<HashSet<String>>,
}
impl fmt::Debug for CurveConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The secret key is never printed, not even in debug output.
        f.debug_struct("CurveConfig")
            .field("secret_key", &"<secret>")
            .field("allowed_senders", &self.allowed_senders)
            .finish()
    }
}
/// One `[[job]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct JobConfig {
    /// The job's name, as senders spell it.
    pub name: String,
    /// When messages are expected: `every`, or `cron` + `timezone`.
    pub schedule: Schedule,
    /// Slack after `every` before the job counts as down.
    pub grace: Duration,
    /// A run that has not ended this long after its start is overrunning.
    pub max_runtime: Option<Duration>,
    /// With CURVE: the only sender public keys (Z85) allowed to report for this job.
    pub senders: Option<HashSet<String>>,
    /// A scheduled run that has not started this long after its time is late.
    pub start_within: Option<Duration>,
    /// A run that sends nothing for this long is stalled.
    pub stall_after: Option<Duration>,
    /// A success sooner than this after the start is too fast.
    pub min_runtime: Option<Duration>,
    /// Notify failed/down only after this many failures or misses in a row (1: at once).
    pub alert_after_failures: u32,
    /// Close failed/down only after this many successes in a row (1: at once).
    pub recover_after_successes: u32,
    /// Remind every so long while an incident stays open.
    pub repeat: Option<Duration>,
    /// The channels (by name) this job's notifications go to; `None`: the defaults.
    pub notify: Option<Vec<String>>,
    /// `slow` when a run in progress lasts this factor × the median of the
    /// job's last successful runs.
    pub slow_after: Option<f64>,
    /// Jobs whose `down` or `failed` holds this one's new alarms back.
    pub depends_on: Vec<String>,
    /// A chain: a start is expected `start_within` after each success of
    /// this job (instead of by the clock).
    pub after: Option<String>,
    /// Escalation steps (the job's own, or `[monitor] escalate`).
    pub escalate: Vec<EscalationStep>,
}
impl JobConfig {
    /// Whether two jobs are configured alike, names aside.
    pub fn same_settings(&self, other: &JobConfig) -> bool {
        // Destructured whole: a new field is a compile error here until
        // it is compared.
        let JobConfig {
            name: _,
            schedule,
            grace,
            max_runtime,
            senders,
            start_within,
            stall_after,
            min_runtime,
            alert_after_failures,
            recover_after_successes,
            repeat,
            notify,
            slow_after,
            depends_on,
            after,
            escalate,
        } = self;
        *schedule == other.schedule
            && *grace == other.grace
            && *max_runtime == other.max_runtime
            && *senders == other.senders
            && *start_within == other.start_within
            && *stall_after == other.stall_after
            && *min_runtime == other.min_runtime
            && *alert_after_failures == other.alert_after_failures
            && *recover_after_successes == other.recover_after_successes
            && *repeat == other.repeat
            && *notify == other.notify
            && *slow_after == other.slow_after
            && *depends_on == other.depends_on
            && *after == other.after
            && *escalate == other.escalate
    }

    /// Whether one of its deadlines is a wall time (a cron slot, a
    /// scheduled start) rather than a duration.
    pub fn follows_wall_clock(&self) -> bool {
        matches!(self.schedule, crate::schedule::Schedule::Cron { .. })
            || self.start_within.is_some()
    }

    /// A job with this schedule and every optional timer off (for tests and tools).
    pub fn new(name: &str, schedule: Schedule, grace: Duration) -> JobConfig {
        JobConfig {
            name: name.to_owned(),
            schedule,
            grace,
            max_runtime: None,
            senders: None,
            start_within: None,
            stall_after: None,
            min_runtime: None,
            alert_after_failures: 1,
            recover_after_successes: 1,
            repeat: None,
            notify: None,
            slow_after: None,
            depends_on: Vec::new(),
            after: None,
            escalate: Vec::new(),
        }
    }
}
/// The longest duration the watcher takes anywhere (a period, a timer, a
/// silence): 100 years. Longer ones are refused with a clear error: a time
/// that far ahead is a typo, and past the year 9999 no date can name it.
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
/// A duration as people write it (`90s`, `1h 30m`, `2d`), at most [`MAX_DURATION`].
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text)
        .map_err(|err| format!("invalid duration {text:?}: {err}"))?;
    if d > MAX_DURATION {
        return Err(format!(
            "duration {text:?} is longer than the longest allowed, 100 years"
        ));
    }
    Ok(d)
}
impl Config {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|err| ConfigError {
            file: file.clone(),
            key: "(file)".into(),
            reason: format!("cannot read: {err}"),
        })?;
        let mut config = Config::parse(&text, &file)?;
        config.path = Some(path.to_owned());
        Ok(config)
    }

    /// The embedded default configuration.
    pub fn embedded() -> Result<Config, ConfigError> {
        Config::parse(EMBEDDED_DEFAULT, EMBEDDED_NAME)
    }

    /// Parses and checks configuration text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        let err = |key: String, reason: String| ConfigError {
            file: file.to_owned(),
            key,
            reason,
        };
        let de = toml::Deserializer::parse(text)
            .map_err(|e| err("(syntax)".into(), toml_reason(text, &e)))?;
        let raw: RawConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = match e.path().to_string() {
                p if p == "." => "(top level)".to_owned(),
                p => p,
            };
            err(key, toml_reason(text, e.inner()))
        })?;
        raw.check().map_err(|(key, reason)| err(key, reason)).map(
            |(monitor, jobs, notify, declare, maintenance)| Config {
                source: file.to_owned(),
                path: None,
                monitor,
                jobs,
                notify,
                declare,
                maintenance,
            },
        )
    }
}
impl Config {
    /// The parts of `new` that differ from `self` but take effect only on a
    /// restart (they own sockets, files or threads): SIGHUP reloads jobs and
    /// routing, and names these in a warning instead.
    pub fn restart_needed(&self, new: &Config) -> Vec<&'static str> {
        let (a, b) = (&self.monitor, &new.monitor);
        let mut keys = Vec::new();
        let mut differs = |key, same: bool| {
            if !same {
                keys.push(key);
            }
        };
        differs("monitor.id", a.id == b.id);
        differs("monitor.listen", a.listen == b.listen);
        differs(
            "monitor.max_rate_per_sender",
            a.max_rate_per_sender == b.max_rate_per_sender,
        );
        differs(
            "monitor.max_connections",
            a.max_connections == b.max_connections
                && a.max_connections_per_address == b.max_connections_per_address,
        );
        differs("monitor.sender_ping", a.sender_ping == b.sender_ping);
        differs("monitor.control", a.control == b.control);
        differs("monitor.state", a.state == b.state);
        differs("curve", a.curve == b.curve);
        differs(
            "monitor.history",
            a.history == b.history && a.history_runs == b.history_runs,
        );
        differs(
            "http",
            a.http == b.http
                && a.public_url == b.public_url
                && a.metrics_jobs == b.metrics_jobs
                && a.run_duration_buckets == b.run_duration_buckets
                && a.tokens == b.tokens
                && a.metrics_public == b.metrics_public,
        );
        differs("farm", a.farm == b.farm);
        differs("notify", self.notify == new.notify);
        keys
    }
}
/// toml's message with the line and column of its span, without the source excerpt.
fn toml_reason(text: &str, err: &toml::de::Error) -> String {
    let message = err.message().trim().to_owned();
    match err.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("{message} (line {line}, column {column})")
        }
        None => message,
    }
}
impl fmt::Display for JobConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}, grace {})",
            self.name,
            self.schedule_text(),
            humantime::format_duration(self.grace)
        )
    }
}

impl JobConfig {
    /// A step of a chain with no clock schedule of its own: silence alone
    /// never makes it down.
    pub fn chained_only(&self) -> bool {
        self.after.is_some() && self.schedule == Schedule::Every(MAX_DURATION)
    }

    /// The schedule as people read it: `every 10m`, `cron "..." UTC`,
    /// `after nightly-extract` (with its own schedule too, if it has one).
    pub fn schedule_text(&self) -> String {
        match &self.after {
            Some(after) if self.chained_only() => format!("after {after}"),
            Some(after) => format!("{}, after {after}", self.schedule),
            None => self.schedule.to_string(),
        }
    }
}

#[cfg(test)]
mod tests;
