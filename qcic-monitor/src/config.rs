//! The watcher's TOML configuration: parsing, defaults and checks.
//!
//! Every error names the file, the key (as a path such as `job[1].every`) and
//! the reason, and the monitor refuses to start on it.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::schedule::Schedule;

/// The configuration the monitor runs on when no `--config` is given: the
/// README's example, so the newcomer's first run and the docs agree.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../examples/monitor.toml");
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
    /// CURVE encryption and authentication, if configured.
    pub curve: Option<CurveConfig>,
    /// The local control socket (`qcic-monitor status` talks to it).
    pub control: PathBuf,
    /// The HTTP endpoint (API, metrics, status page), if configured.
    pub http: Option<std::net::SocketAddr>,
    /// The state database (`state = "off"`: none).
    pub state: Option<PathBuf>,
    /// The watcher farm this watcher belongs to (`[farm]` and `[[peer]]`), if any.
    pub farm: Option<FarmConfig>,
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
}

/// One `[[peer]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerConfig {
    /// Its `[monitor] id`.
    pub id: String,
    /// Its gossip address, `host:port`.
    pub gossip: String,
}

/// A watcher id as a file name: anything but `[A-Za-z0-9_-]` becomes `_`.
fn file_safe(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The default state database for a watcher id: in `$XDG_STATE_HOME/qcic`,
/// else `~/.local/state/qcic`, else the temporary directory.
pub fn default_state_path(id: &str) -> PathBuf {
    let dir = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir)
        .join("qcic");
    dir.join(format!("{}.db", file_safe(id)))
}

/// The default control socket for a watcher id: in `$XDG_RUNTIME_DIR` if
/// set, else in [`private_tmp_dir`] (never straight in `/tmp`, where
/// another local user could make the socket first and answer `status`).
pub fn default_control_path(id: &str) -> PathBuf {
    let dir = std::env::var_os("XDG_RUNTIME_DIR").map_or_else(private_tmp_dir, PathBuf::from);
    dir.join(format!("qcic-monitor-{}.sock", file_safe(id)))
}

/// `qcic-<uid>` in the temporary directory: made mode 0700 by the monitor,
/// and trusted by the monitor and by `status` only while it belongs to
/// this user and nobody else may enter it (`control::check_private`).
pub fn private_tmp_dir() -> PathBuf {
    std::env::temp_dir().join(format!("qcic-{}", nix::unistd::geteuid()))
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
        }
    }
}

/// One `[[notify]]` channel.
#[derive(Debug, Clone, PartialEq)]
pub enum NotifyConfig {
    /// Email through an SMTP server.
    Email(EmailConfig),
    /// A ZeroMQ PUB alert stream.
    Zmq(ZmqConfig),
    /// An HTTP POST of the notification as JSON.
    Webhook(WebhookConfig),
    /// A program run with the notification as JSON on stdin.
    Command(CommandConfig),
}

/// Keys every `[[notify]]` channel has.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// The name jobs use in `notify = [...]`; default `notify[INDEX]`.
    pub name: Option<String>,
    /// Whether jobs without a `notify` list use this channel (default true).
    #[serde(default = "yes")]
    pub default: bool,
}

fn yes() -> bool {
    true
}

impl NotifyConfig {
    /// The routing keys.
    pub fn route(&self) -> &Route {
        match self {
            NotifyConfig::Email(c) => &c.route,
            NotifyConfig::Zmq(c) => &c.route,
            NotifyConfig::Webhook(c) => &c.route,
            NotifyConfig::Command(c) => &c.route,
        }
    }

    /// The channel's name for routing and metrics.
    pub fn name(&self, index: usize) -> String {
        self.route()
            .name
            .clone()
            .unwrap_or_else(|| format!("notify[{index}]"))
    }
}

/// `kind = "webhook"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where to POST; `env:VAR` or `file:PATH` reads it from there (a URL
    /// that holds its credential). Never logged whole.
    pub url: String,
    /// Extra headers; a value `env:VAR` or `file:PATH` is read from there (secrets).
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    /// The timeout of one call.
    #[serde(default = "webhook_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// Routing.
    #[serde(flatten)]
    pub route: Route,
}

/// `kind = "command"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandConfig {
    /// The program and its arguments (no shell).
    pub command: Vec<String>,
    /// Kill it after this long (and retry).
    #[serde(default = "command_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// Routing.
    #[serde(flatten)]
    pub route: Route,
}

fn email_timeout() -> Duration {
    Duration::from_secs(30)
}

fn webhook_timeout() -> Duration {
    Duration::from_secs(10)
}

fn command_timeout() -> Duration {
    Duration::from_secs(30)
}

/// `kind = "email"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// `smtp://host:port` (plain; add `?tls=required` for STARTTLS) or `smtps://host:port`.
    pub smtp: String,
    /// The From address.
    pub from: String,
    /// Recipients.
    pub to: Vec<String>,
    /// SMTP user name, if the server wants one.
    #[serde(default)]
    pub username: Option<String>,
    /// Environment variable holding the SMTP password (default `QCIC_SMTP_PASSWORD`).
    #[serde(default)]
    pub password_env: Option<String>,
    /// File holding the SMTP password (first line).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Text put before every subject.
    #[serde(default = "default_subject_prefix")]
    pub subject_prefix: String,
    /// The longest one delivery attempt (connect, greeting, the whole
    /// exchange) may take before it is abandoned and retried.
    #[serde(default = "email_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// Routing.
    #[serde(flatten)]
    pub route: Route,
}

/// `kind = "zmq"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZmqConfig {
    /// Endpoint the PUB socket binds.
    pub publish: String,
    /// Routing.
    #[serde(flatten)]
    pub route: Route,
}

fn default_subject_prefix() -> String {
    "[qcic]".into()
}

// ---- the file's shape, as serde reads it ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    monitor: RawMonitor,
    #[serde(default)]
    curve: Option<RawCurve>,
    #[serde(default)]
    http: Option<RawHttp>,
    #[serde(default)]
    job: Vec<RawJob>,
    #[serde(default)]
    notify: Vec<RawNotify>,
    #[serde(default)]
    farm: Option<RawFarm>,
    #[serde(default)]
    peer: Vec<RawPeer>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFarm {
    gossip: String,
    advertise: Option<String>,
    #[serde(default, deserialize_with = "opt_duration")]
    gossip_interval: Option<Duration>,
    #[serde(default, deserialize_with = "opt_duration")]
    peer_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "opt_duration")]
    dead_after: Option<Duration>,
    isolation_jobs: Option<usize>,
    cluster: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPeer {
    id: String,
    gossip: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMonitor {
    id: Option<String>,
    listen: Option<Vec<String>>,
    max_unknown_jobs: Option<usize>,
    max_rate_per_sender: Option<u32>,
    max_connections: Option<usize>,
    max_connections_per_address: Option<usize>,
    #[serde(default, deserialize_with = "opt_duration")]
    sender_ping: Option<Duration>,
    #[serde(default, deserialize_with = "opt_duration")]
    max_clock_skew: Option<Duration>,
    control: Option<PathBuf>,
    state: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    listen: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCurve {
    secret_key_file: Option<PathBuf>,
    secret_key_env: Option<String>,
    allowed_senders: Option<Vec<String>>,
    allowed_senders_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJob {
    name: String,
    #[serde(default, deserialize_with = "opt_duration")]
    every: Option<Duration>,
    cron: Option<String>,
    timezone: Option<String>,
    #[serde(default, deserialize_with = "opt_duration")]
    grace: Option<Duration>,
    #[serde(default, deserialize_with = "opt_duration")]
    max_runtime: Option<Duration>,
    senders: Option<Vec<String>>,
    #[serde(default, deserialize_with = "opt_duration")]
    start_within: Option<Duration>,
    #[serde(default, deserialize_with = "opt_duration")]
    stall_after: Option<Duration>,
    #[serde(default, deserialize_with = "opt_duration")]
    min_runtime: Option<Duration>,
    alert_after_failures: Option<u32>,
    recover_after_successes: Option<u32>,
    #[serde(default, deserialize_with = "opt_duration")]
    repeat: Option<Duration>,
    notify: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum RawNotify {
    Email(EmailConfig),
    Zmq(ZmqConfig),
    Webhook(WebhookConfig),
    Command(CommandConfig),
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

fn duration<'de, D: Deserializer<'de>>(de: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(de)?;
    parse_duration(&text).map_err(serde::de::Error::custom)
}

fn opt_duration<'de, D: Deserializer<'de>>(de: D) -> Result<Option<Duration>, D::Error> {
    duration(de).map(Some)
}

/// The default listen endpoint.
pub const DEFAULT_LISTEN: &str = "tcp://127.0.0.1:7700";

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
        raw.check()
            .map_err(|(key, reason)| err(key, reason))
            .map(|(monitor, jobs, notify)| Config {
                source: file.to_owned(),
                path: None,
                monitor,
                jobs,
                notify,
            })
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
        differs("http", a.http == b.http);
        differs("farm", a.farm == b.farm);
        differs("notify", self.notify == new.notify);
        keys
    }
}

/// Checks `[farm]` and `[[peer]]`: both or neither, distinct ids, sane timings.
fn check_farm(
    farm: Option<RawFarm>,
    peers: Vec<RawPeer>,
    id: &str,
) -> Result<Option<FarmConfig>, (String, String)> {
    let Some(farm) = farm else {
        if peers.is_empty() {
            return Ok(None);
        }
        return Err((
            "peer".into(),
            "[[peer]] entries need a [farm] table with this watcher's gossip address".into(),
        ));
    };
    let addr = |key: &str, text: &str| {
        text.parse::<std::net::SocketAddr>().map_err(|e| {
            (
                key.to_owned(),
                format!("{text:?} is not an address such as \"10.0.0.5:7790\": {e}"),
            )
        })
    };
    let gossip = addr("farm.gossip", &farm.gossip)?;
    let advertise = match &farm.advertise {
        Some(text) => addr("farm.advertise", text)?,
        None => gossip,
    };
    if peers.is_empty() {
        return Err((
            "peer".into(),
            "a [farm] needs at least one [[peer]] (id and gossip address)".into(),
        ));
    }
    let mut seen = HashSet::new();
    let mut checked = Vec::with_capacity(peers.len());
    for (i, peer) in peers.into_iter().enumerate() {
        if peer.id.trim().is_empty() {
            return Err((format!("peer[{i}].id"), "must not be empty".into()));
        }
        if peer.id == id {
            return Err((
                format!("peer[{i}].id"),
                format!("{:?} is this watcher's own id (monitor.id)", peer.id),
            ));
        }
        if !seen.insert(peer.id.clone()) {
            return Err((
                format!("peer[{i}].id"),
                format!("peer {:?} is listed twice", peer.id),
            ));
        }
        if !peer.gossip.contains(':') {
            return Err((
                format!("peer[{i}].gossip"),
                format!("{:?} needs a port, such as \"10.0.0.6:7790\"", peer.gossip),
            ));
        }
        checked.push(PeerConfig {
            id: peer.id,
            gossip: peer.gossip,
        });
    }
    let gossip_interval = farm.gossip_interval.unwrap_or(Duration::from_millis(500));
    if gossip_interval < Duration::from_millis(10) {
        return Err((
            "farm.gossip_interval".into(),
            "must be at least 10ms".into(),
        ));
    }
    let dead_after = farm.dead_after.unwrap_or(gossip_interval * 8);
    if dead_after < gossip_interval * 3 {
        return Err((
            "farm.dead_after".into(),
            format!(
                "must be at least 3 gossip intervals ({}): shorter, a live peer is taken for dead between two rounds",
                humantime::format_duration(gossip_interval * 3)
            ),
        ));
    }
    let peer_timeout = farm.peer_timeout.unwrap_or(Duration::from_secs(15));
    if peer_timeout < gossip_interval * 2 {
        return Err((
            "farm.peer_timeout".into(),
            format!(
                "must be at least 2 gossip intervals ({}): a lower rank must be able to learn that a higher one notified",
                humantime::format_duration(gossip_interval * 2)
            ),
        ));
    }
    let isolation_jobs = farm.isolation_jobs.unwrap_or(3);
    if isolation_jobs == 0 {
        return Err(("farm.isolation_jobs".into(), "must be at least 1".into()));
    }
    Ok(Some(FarmConfig {
        gossip,
        advertise,
        peers: checked,
        gossip_interval,
        peer_timeout,
        dead_after,
        isolation_jobs,
        cluster: farm.cluster.unwrap_or_else(|| "qcic".into()),
    }))
}

type Checked = (MonitorConfig, Vec<JobConfig>, Vec<NotifyConfig>);

impl RawConfig {
    fn check(self) -> Result<Checked, (String, String)> {
        let id = match self.monitor.id {
            Some(id) if id.trim().is_empty() => {
                return Err(("monitor.id".into(), "must not be empty".into()));
            }
            Some(id) => id,
            None => gethostname::gethostname().to_string_lossy().into_owned(),
        };
        let listen = self
            .monitor
            .listen
            .unwrap_or_else(|| vec![DEFAULT_LISTEN.to_owned()]);
        if listen.is_empty() {
            return Err((
                "monitor.listen".into(),
                "needs at least one endpoint, such as \"tcp://0.0.0.0:7700\"".into(),
            ));
        }
        for (i, endpoint) in listen.iter().enumerate() {
            check_endpoint(endpoint).map_err(|r| (format!("monitor.listen[{i}]"), r))?;
        }
        for (key, value) in [
            ("monitor.max_connections", self.monitor.max_connections),
            (
                "monitor.max_connections_per_address",
                self.monitor.max_connections_per_address,
            ),
        ] {
            if value == Some(0) {
                return Err((key.into(), "must be at least 1".into()));
            }
        }
        let sender_ping = self.monitor.sender_ping.unwrap_or(Duration::from_secs(60));
        if !sender_ping.is_zero()
            && !(Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&sender_ping)
        {
            return Err((
                "monitor.sender_ping".into(),
                "must be between 1s and 1h, or 0s to turn pings off".into(),
            ));
        }
        let curve = self.curve.map(RawCurve::check).transpose()?;
        let farm = check_farm(self.farm, self.peer, &id)?;
        let http = match self.http {
            None => None,
            Some(h) => {
                let text = h.listen.unwrap_or_else(|| "127.0.0.1:7780".into());
                Some(text.parse::<std::net::SocketAddr>().map_err(|e| {
                    (
                        "http.listen".to_owned(),
                        format!("{text:?} is not an address such as \"127.0.0.1:7780\": {e}"),
                    )
                })?)
            }
        };
        let control = self
            .monitor
            .control
            .unwrap_or_else(|| default_control_path(&id));
        let state = match self.monitor.state.as_deref() {
            Some("off") => None,
            Some(path) => Some(PathBuf::from(path)),
            None => Some(default_state_path(&id)),
        };
        let monitor = MonitorConfig {
            state,
            id,
            listen,
            max_unknown_jobs: self.monitor.max_unknown_jobs.unwrap_or(1000),
            max_rate_per_sender: self.monitor.max_rate_per_sender.unwrap_or(1000),
            max_connections: self.monitor.max_connections,
            max_connections_per_address: self.monitor.max_connections_per_address.unwrap_or(256),
            sender_ping,
            max_clock_skew: self
                .monitor
                .max_clock_skew
                .unwrap_or(Duration::from_secs(300)),
            curve,
            control,
            http,
            farm,
        };

        let mut names = HashSet::new();
        let mut jobs = Vec::with_capacity(self.job.len());
        for (i, job) in self.job.into_iter().enumerate() {
            qcic_sdk::message::check_job_name(&job.name)
                .map_err(|r| (format!("job[{i}].name"), format!("{:?} {r}", job.name)))?;
            if !names.insert(job.name.clone()) {
                return Err((
                    format!("job[{i}].name"),
                    format!("job {:?} is defined twice", job.name),
                ));
            }
            let schedule = match (job.every, &job.cron) {
                (Some(every), None) => {
                    if every.is_zero() {
                        return Err((format!("job[{i}].every"), "must be longer than 0s".into()));
                    }
                    if job.timezone.is_some() {
                        return Err((
                            format!("job[{i}].timezone"),
                            "applies to cron schedules only".into(),
                        ));
                    }
                    Schedule::Every(every)
                }
                (None, Some(pattern)) => {
                    Schedule::cron(pattern, job.timezone.as_deref().unwrap_or("UTC"))
                        .map_err(|(key, reason)| (format!("job[{i}].{key}"), reason))?
                }
                (Some(_), Some(_)) => {
                    return Err((
                        format!("job[{i}].cron"),
                        "give every or cron, not both".into(),
                    ));
                }
                (None, None) => {
                    return Err((
                        format!("job[{i}]"),
                        "needs a schedule: every = \"10m\" or cron = \"30 2 * * *\"".into(),
                    ));
                }
            };
            if job.max_runtime.is_some_and(|d| d.is_zero()) {
                return Err((
                    format!("job[{i}].max_runtime"),
                    "must be longer than 0s".into(),
                ));
            }
            let senders = match job.senders {
                None => None,
                Some(_) if monitor.curve.is_none() => {
                    return Err((
                        format!("job[{i}].senders"),
                        "pins the job to CURVE sender keys, so it needs a [curve] table".into(),
                    ));
                }
                Some(keys) => Some(
                    keys.iter()
                        .enumerate()
                        .map(|(k, key)| {
                            public_key(key).map_err(|r| (format!("job[{i}].senders[{k}]"), r))
                        })
                        .collect::<Result<HashSet<String>, _>>()?,
                ),
            };
            for (key, value) in [
                ("start_within", job.start_within),
                ("stall_after", job.stall_after),
                ("min_runtime", job.min_runtime),
                ("repeat", job.repeat),
            ] {
                if value.is_some_and(|d| d.is_zero()) {
                    return Err((format!("job[{i}].{key}"), "must be longer than 0s".into()));
                }
            }
            for (key, value) in [
                ("alert_after_failures", job.alert_after_failures),
                ("recover_after_successes", job.recover_after_successes),
            ] {
                if value == Some(0) {
                    return Err((format!("job[{i}].{key}"), "must be at least 1".into()));
                }
            }
            jobs.push(JobConfig {
                name: job.name,
                schedule,
                grace: job.grace.unwrap_or(Duration::ZERO),
                max_runtime: job.max_runtime,
                senders,
                start_within: job.start_within,
                stall_after: job.stall_after,
                min_runtime: job.min_runtime,
                alert_after_failures: job.alert_after_failures.unwrap_or(1),
                recover_after_successes: job.recover_after_successes.unwrap_or(1),
                repeat: job.repeat,
                notify: job.notify,
            });
        }

        let mut notify = Vec::with_capacity(self.notify.len());
        for (i, channel) in self.notify.into_iter().enumerate() {
            match channel {
                RawNotify::Email(email) => {
                    check_email(&email).map_err(|(k, r)| (format!("notify[{i}].{k}"), r))?;
                    notify.push(NotifyConfig::Email(email));
                }
                RawNotify::Zmq(zmq) => {
                    check_endpoint(&zmq.publish)
                        .map_err(|r| (format!("notify[{i}].publish"), r))?;
                    notify.push(NotifyConfig::Zmq(zmq));
                }
                RawNotify::Webhook(hook) => {
                    let indirect = hook.url.starts_with("env:") || hook.url.starts_with("file:");
                    if !(indirect
                        || hook.url.starts_with("http://")
                        || hook.url.starts_with("https://"))
                    {
                        return Err((
                            format!("notify[{i}].url"),
                            format!(
                                "{} must start with http:// or https:// (or be env:VAR or file:PATH)",
                                redacted_url(&hook.url)
                            ),
                        ));
                    }
                    notify.push(NotifyConfig::Webhook(hook));
                }
                RawNotify::Command(cmd) => {
                    if cmd.command.is_empty() {
                        return Err((
                            format!("notify[{i}].command"),
                            "needs the program, e.g. [\"/usr/local/bin/send-sms\", \"--to\", \"+44...\"]".into(),
                        ));
                    }
                    notify.push(NotifyConfig::Command(cmd));
                }
            }
        }
        let names: Vec<String> = notify.iter().enumerate().map(|(i, n)| n.name(i)).collect();
        for (i, name) in names.iter().enumerate() {
            if names[..i].contains(name) {
                return Err((
                    format!("notify[{i}].name"),
                    format!("{name:?} is used twice"),
                ));
            }
        }
        for (i, job) in jobs.iter().enumerate() {
            for (k, channel) in job.notify.iter().flatten().enumerate() {
                if !names.contains(channel) {
                    return Err((
                        format!("job[{i}].notify[{k}]"),
                        format!("no [[notify]] channel is named {channel:?} (names: {names:?})"),
                    ));
                }
            }
        }
        Ok((monitor, jobs, notify))
    }
}

/// `qcic-monitor check`: the configuration in words, with the next fire
/// times of every cron job after `now_ms`.
pub fn describe(config: &Config, now_ms: u64) -> String {
    use std::fmt::Write as _;
    let mut out = format!(
        "{}: ok: watcher {}, {} jobs, {} notify channels\n",
        config.source,
        config.monitor.id,
        config.jobs.len(),
        config.notify.len()
    );
    for job in &config.jobs {
        let _ = writeln!(out, "job {job}");
        let timers = [
            ("start_within", job.start_within),
            ("max_runtime", job.max_runtime),
            ("stall_after", job.stall_after),
            ("min_runtime", job.min_runtime),
            ("repeat", job.repeat),
        ];
        for (name, value) in timers {
            if let Some(d) = value {
                let _ = writeln!(out, "  {name} {}", humantime::format_duration(d));
            }
        }
        for fire in job.schedule.next_fires(now_ms, 5) {
            let _ = writeln!(out, "  next {fire}");
        }
    }
    out
}

/// Checks a Z85 CURVE key; returns it trimmed.
pub fn public_key(z85: &str) -> Result<String, String> {
    let z85 = z85.trim();
    match qcic_sdk::decode_curve_key(z85) {
        Some(_) => Ok(z85.to_owned()),
        None => Err(format!(
            "{z85:?} is not a CURVE key (40 Z85 characters, as written by `qcic-monitor keygen`)"
        )),
    }
}

/// Reads a key file written by `qcic-monitor keygen`: TOML with
/// `public-key` and/or `secret-key`.
pub fn read_key_file(path: &Path, which: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let table: toml::Table = toml::from_str(&text)
        .map_err(|e| format!("{} is not a qcic key file: {}", path.display(), e.message()))?;
    table
        .get(which)
        .and_then(toml::Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| format!("{} has no {which}", path.display()))
}

impl RawCurve {
    fn check(self) -> Result<CurveConfig, (String, String)> {
        if zmq::has("curve") != Some(true) {
            return Err((
                "curve".into(),
                "this build's libzmq has no CURVE support (link Debian's libzmq5, see .cargo/config.toml)".into(),
            ));
        }
        let secret = match (&self.secret_key_file, &self.secret_key_env) {
            (Some(path), None) => read_key_file(path, "secret-key")
                .map_err(|r| ("curve.secret_key_file".to_owned(), r))?,
            (None, Some(var)) => std::env::var(var).map_err(|_| {
                (
                    "curve.secret_key_env".to_owned(),
                    format!("the environment variable {var} is not set"),
                )
            })?,
            (Some(_), Some(_)) => {
                return Err((
                    "curve.secret_key_env".into(),
                    "give secret_key_file or secret_key_env, not both".into(),
                ));
            }
            (None, None) => {
                return Err((
                    "curve".into(),
                    "needs secret_key_file or secret_key_env (the secret key is never written in the config itself)".into(),
                ));
            }
        };
        let secret_key: [u8; 32] = qcic_sdk::decode_curve_key(&secret).ok_or_else(|| {
            let key = if self.secret_key_file.is_some() {
                "curve.secret_key_file"
            } else {
                "curve.secret_key_env"
            };
            // Never echo the secret itself.
            (
                key.to_owned(),
                "the secret key is not 40 Z85 characters".to_owned(),
            )
        })?;
        let mut allowed: Option<HashSet<String>> = None;
        if let Some(keys) = self.allowed_senders {
            let set = allowed.get_or_insert_with(HashSet::new);
            for (i, key) in keys.iter().enumerate() {
                set.insert(
                    public_key(key).map_err(|r| (format!("curve.allowed_senders[{i}]"), r))?,
                );
            }
        }
        if let Some(path) = self.allowed_senders_file {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                (
                    "curve.allowed_senders_file".to_owned(),
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            let set = allowed.get_or_insert_with(HashSet::new);
            for (n, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                set.insert(public_key(line).map_err(|r| {
                    (
                        "curve.allowed_senders_file".to_owned(),
                        format!("{} line {}: {r}", path.display(), n + 1),
                    )
                })?);
            }
        }
        Ok(CurveConfig {
            secret_key,
            allowed_senders: allowed,
        })
    }
}

fn check_endpoint(endpoint: &str) -> Result<(), String> {
    let ok = ["tcp://", "ipc://", "inproc://"]
        .iter()
        .any(|scheme| endpoint.starts_with(scheme) && endpoint.len() > scheme.len());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{endpoint:?} is not a ZeroMQ endpoint (tcp://HOST:PORT, ipc://PATH)"
        ))
    }
}

fn check_email(email: &EmailConfig) -> Result<(), (&'static str, String)> {
    if !(email.smtp.starts_with("smtp://") || email.smtp.starts_with("smtps://")) {
        return Err((
            "smtp",
            format!("{:?} must start with smtp:// or smtps://", email.smtp),
        ));
    }
    email
        .from
        .parse::<lettre::message::Mailbox>()
        .map_err(|e| {
            (
                "from",
                format!("{:?} is not an email address: {e}", email.from),
            )
        })?;
    if email.to.is_empty() {
        return Err(("to", "needs at least one address".into()));
    }
    for to in &email.to {
        to.parse::<lettre::message::Mailbox>()
            .map_err(|e| ("to", format!("{to:?} is not an email address: {e}")))?;
    }
    if email.password_env.is_some() && email.password_file.is_some() {
        return Err((
            "password_file",
            "give password_env or password_file, not both".into(),
        ));
    }
    Ok(())
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
            self.schedule,
            humantime::format_duration(self.grace)
        )
    }
}

/// A URL as an error message may show it: scheme, host and port only.
/// A webhook's path or query (and any user name or password) is often its
/// credential.
pub fn redacted_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "the value (not shown: it may hold a secret)".into();
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or("");
    let hidden = if rest.len() > authority.len() || authority.contains('@') {
        "/…"
    } else {
        ""
    };
    format!("{scheme}://{host}{hidden}")
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_url_in_an_error_shows_no_path_query_or_user() {
        assert_eq!(
            redacted_url("https://hooks.slack.com/services/T0/B0/SECRET?token=x"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(redacted_url("ftp://user:pw@host:21"), "ftp://host:21/…");
        assert_eq!(redacted_url("https://host"), "https://host");
        assert!(!redacted_url("hooks.example.com/SECRET").contains("SECRET"));
    }

    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, "test.toml")
    }

    #[test]
    fn farm_keys_are_checked() {
        let base = "[monitor]\nid = \"a\"\nstate = \"off\"\n";
        let ok = parse(&format!(
            "{base}[farm]\ngossip = \"127.0.0.1:7790\"\n[[peer]]\nid = \"b\"\ngossip = \"10.0.0.6:7790\"\n"
        ))
        .unwrap();
        let farm = ok.monitor.farm.unwrap();
        assert_eq!(farm.advertise, farm.gossip);
        assert_eq!(farm.dead_after, farm.gossip_interval * 8);
        assert_eq!(farm.peers[0].id, "b");
        for (text, key, reason) in [
            (
                "[[peer]]\nid = \"b\"\ngossip = \"h:1\"\n",
                "peer",
                "need a [farm]",
            ),
            ("[farm]\ngossip = \"127.0.0.1:1\"\n", "peer", "at least one"),
            (
                "[farm]\ngossip = \"nowhere\"\n[[peer]]\nid = \"b\"\ngossip = \"h:1\"\n",
                "farm.gossip",
                "not an address",
            ),
            (
                "[farm]\ngossip = \"127.0.0.1:1\"\n[[peer]]\nid = \"a\"\ngossip = \"h:1\"\n",
                "peer[0].id",
                "own id",
            ),
            (
                "[farm]\ngossip = \"127.0.0.1:1\"\n[[peer]]\nid = \"b\"\ngossip = \"h:1\"\n[[peer]]\nid = \"b\"\ngossip = \"h:2\"\n",
                "peer[1].id",
                "twice",
            ),
            (
                "[farm]\ngossip = \"127.0.0.1:1\"\ngossip_interval = \"1s\"\ndead_after = \"2s\"\n[[peer]]\nid = \"b\"\ngossip = \"h:1\"\n",
                "farm.dead_after",
                "3 gossip intervals",
            ),
            (
                "[farm]\ngossip = \"127.0.0.1:1\"\n[[peer]]\nid = \"b\"\ngossip = \"h\"\n",
                "peer[0].gossip",
                "needs a port",
            ),
        ] {
            let err = parse(&format!("{base}{text}")).unwrap_err();
            assert_eq!(
                (err.file.as_str(), err.key.as_str()),
                ("test.toml", key),
                "{err}"
            );
            assert!(err.reason.contains(reason), "{key}: {}", err.reason);
        }
    }

    #[test]
    fn the_issue_example_parses() {
        let config = parse(
            r#"
            [monitor]
            id = "watcher-a"
            listen = ["tcp://127.0.0.1:7700"]

            [[job]]
            name = "nightly-etl"
            every = "10s"
            grace = "5s"
            max_runtime = "1m"

            [[notify]]
            kind = "email"
            smtp = "smtp://127.0.0.1:2525"
            from = "qcic@example.com"
            to = ["ops@example.com"]

            [[notify]]
            kind = "zmq"
            publish = "tcp://127.0.0.1:7701"
            "#,
        )
        .unwrap();
        assert_eq!(config.monitor.id, "watcher-a");
        assert!(
            matches!(config.jobs[0].schedule, Schedule::Every(d) if d == Duration::from_secs(10))
        );
        assert_eq!(config.jobs[0].grace, Duration::from_secs(5));
        assert_eq!(config.jobs[0].max_runtime, Some(Duration::from_secs(60)));
        assert_eq!(config.notify.len(), 2);
    }

    #[test]
    fn the_embedded_default_parses() {
        let config = Config::embedded().unwrap();
        assert!(!config.jobs.is_empty());
    }

    #[test]
    fn errors_name_file_key_and_reason() {
        let err = parse("[[job]]\nname = \"a\"\nevery = \"10 parsecs\"\n").unwrap_err();
        assert_eq!(err.file, "test.toml");
        assert_eq!(err.key, "job[0].every");
        assert!(err.reason.contains("10 parsecs"), "{err}");
        assert!(err.reason.contains("line 3"), "{err}");

        let err = parse("[[job]]\nname = \"a\"\nevery = \"1s\"\ngrase = \"1s\"\n").unwrap_err();
        assert!(err.reason.contains("grase"), "{err}");

        let err = parse("[[job]]\nname = \"a b\"\nevery = \"1s\"\n").unwrap_err();
        assert_eq!(err.key, "job[0].name");

        let err =
            parse("[[job]]\nname = \"a\"\nevery = \"1s\"\n[[job]]\nname = \"a\"\nevery = \"2s\"\n")
                .unwrap_err();
        assert_eq!(err.key, "job[1].name");
        assert!(err.reason.contains("twice"));

        let err = parse("[[notify]]\nkind = \"email\"\nsmtp = \"smtp://x\"\nfrom = \"nope\"\nto = [\"a@b.c\"]\n")
            .unwrap_err();
        assert_eq!(err.key, "notify[0].from");

        let err = parse("[[notify]]\nkind = \"pigeon\"\n").unwrap_err();
        assert!(err.key.starts_with("notify[0]"), "{err}");
        assert!(err.reason.contains("pigeon"), "{err}");

        let err = parse("[monitor]\nlisten = [\"7700\"]\n").unwrap_err();
        assert_eq!(err.key, "monitor.listen[0]");

        let err = parse("[monitor\n").unwrap_err();
        assert_eq!(err.key, "(syntax)");
        assert!(err.to_string().starts_with("test.toml: "));
    }
}
