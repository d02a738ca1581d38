//! Every default, named: what a key is when the file leaves it out. The
//! README's "Configuration keys" lists the same values.

use std::time::Duration;

/// `[monitor] listen`.
pub const DEFAULT_LISTEN: &str = "tcp://127.0.0.1:7700";
/// `[monitor] max_unknown_jobs`.
pub const MAX_UNKNOWN_JOBS: usize = 1000;
/// `[monitor] max_rate_per_sender` (messages a second, per job and sender).
pub const MAX_RATE_PER_SENDER: u32 = 1000;
/// `[monitor] max_connections_per_address`.
pub const MAX_CONNECTIONS_PER_ADDRESS: usize = 256;
/// `[monitor] sender_ping`.
pub const SENDER_PING: Duration = Duration::from_secs(60);
/// `[monitor] max_clock_skew`.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(300);
/// `[http] listen`.
pub const HTTP_LISTEN: &str = "127.0.0.1:7780";
/// `[[job]] timezone` (of a cron schedule).
pub const TIMEZONE: &str = "UTC";
/// `[[job]] grace`.
pub const GRACE: Duration = Duration::ZERO;
/// `[[job]] alert_after_failures`.
pub const ALERT_AFTER_FAILURES: u32 = 1;
/// `[[job]] recover_after_successes`.
pub const RECOVER_AFTER_SUCCESSES: u32 = 1;
/// `[declare] max_jobs`.
pub const MAX_DECLARED_JOBS: usize = 10_000;
/// `[declare] min_every`.
pub const MIN_EVERY: Duration = Duration::from_secs(10);
/// `[declare] retire_after`.
pub const RETIRE_AFTER: Duration = Duration::from_secs(30 * 24 * 3600);
/// `[farm] gossip_interval`.
pub const GOSSIP_INTERVAL: Duration = Duration::from_millis(500);
/// `[farm] dead_after`, in gossip intervals.
pub const DEAD_AFTER_INTERVALS: u32 = 8;
/// `[farm] peer_timeout`.
pub const PEER_TIMEOUT: Duration = Duration::from_secs(15);
/// `[farm] isolation_jobs`.
pub const ISOLATION_JOBS: usize = 3;
/// `[farm] cluster`.
pub const CLUSTER: &str = "qcic";
/// `[[notify]] timeout` of an email channel.
pub const EMAIL_TIMEOUT: Duration = Duration::from_secs(30);
/// `[[notify]] timeout` of a webhook.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);
/// `[[notify]] timeout` of a command.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// `[[notify]] subject_prefix` of an email channel.
pub const SUBJECT_PREFIX: &str = "[qcic]";

// For serde's `default = "..."`, which takes a function.
pub(super) fn email_timeout() -> Duration {
    EMAIL_TIMEOUT
}

pub(super) fn webhook_timeout() -> Duration {
    WEBHOOK_TIMEOUT
}

pub(super) fn command_timeout() -> Duration {
    COMMAND_TIMEOUT
}

pub(super) fn default_subject_prefix() -> String {
    SUBJECT_PREFIX.into()
}

/// How long runs stay in the history by default.
pub const HISTORY: Duration = Duration::from_secs(90 * 24 * 3600);
/// How many runs of each job the history keeps by default.
pub const HISTORY_RUNS: usize = 1000;

/// How long an email or chat channel gathers notifications into one
/// digest by default (Alertmanager's `group_wait` default too).
pub const DIGEST_WAIT: Option<Duration> = Some(Duration::from_secs(30));
/// The most notifications one digest email lists by default.
pub const EMAIL_DIGEST_MAX: usize = 1000;
/// The most notifications one digest chat message (or webhook call) lists
/// by default: chat services cut long messages.
pub const CHAT_DIGEST_MAX: usize = 100;

/// How often open alerts are posted to Alertmanager again.
pub const ALERTMANAGER_RESEND: Duration = Duration::from_secs(60);

pub(super) fn alertmanager_resend() -> Duration {
    ALERTMANAGER_RESEND
}

pub(super) fn yes() -> bool {
    true
}
